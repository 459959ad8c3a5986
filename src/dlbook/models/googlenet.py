"""GoogLeNet (Szegedy et al., 2015): Inception v1, as in Table 1 of the paper.

Input 3x224x224. Every convolution has a bias and is followed by ReLU (the paper predates batch
normalisation; torchvision's ``googlenet`` adds it, drops the biases and uses a 3x3 kernel in the
"5x5" branch, so its count, 6,624,904, is of a different network):

    conv 64@7x7/2 p3 -> 112x112, max pool 3x3/2 -> 56x56, LRN
    conv 64@1x1, conv 192@3x3 p1 -> 56x56, LRN, max pool 3x3/2 -> 28x28
    inception 3a (256), 3b (480), max pool 3x3/2 -> 14x14
    inception 4a (512), 4b (512), 4c (512), 4d (528), 4e (832), max pool 3x3/2 -> 7x7
    inception 5a (832), 5b (1024), average pool 7x7 -> 1x1, dropout 0.4, linear num_classes

An Inception module runs four branches on the same input and concatenates their maps: a 1x1
convolution; a 1x1 "reduction" then a 3x3; a 1x1 reduction then a 5x5; a 3x3/1 max pooling then
a 1x1 "pool projection". :data:`INCEPTION_TABLE` holds Table 1's six channel columns.

The LRN layers (Figure 3 of the paper, after the first pooling and after the 3x3 convolution)
use the Caffe reference model's settings, size 5, alpha 1e-4 (Caffe, like torch, divides alpha
by the size), beta 0.75, k = 1. Pooled sizes are rounded up (``ceil_mode=True``), as in Caffe:
112 -> 56 -> 28 -> 14 -> 7.

Two auxiliary classifiers (``aux_logits=True``) sit on the outputs of 4a and 4d: average pool
5x5/3 -> 4x4, conv 128@1x1, ReLU, linear 2048 -> 1024, ReLU, dropout 0.7, linear num_classes.
They only add to the training loss (with weight 0.3 in the paper): in training mode the model
returns ``(logits, aux1, aux2)``, in evaluation mode only ``logits``.

Parameters for 1000 classes: 6,998,552 without the auxiliary heads, 13,378,280 with them (the
head on 4a holds 3,188,840, the one on 4d 3,190,888). The paper's Table 1 lists parameters per
layer in thousands; :func:`dlbook.models.summary` prints the exact numbers to set beside it.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from dlbook.models._args import check_num_classes

__all__ = ["INCEPTION_TABLE", "Inception", "InceptionAux", "GoogLeNet", "googlenet"]

# Table 1 of the paper: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
INCEPTION_TABLE = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def _conv_relu(in_channels: int, out_channels: int, kernel_size: int, **kwargs) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, **kwargs),
                         nn.ReLU(inplace=True))


def _lrn() -> nn.LocalResponseNorm:
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)


class Inception(nn.Module):
    """An Inception module: four parallel branches, concatenated along the channels.

    (N, C, H, W) -> (N, c1 + c3 + c5 + cp, H, W), with the channel numbers of one row of
    Table 1: ``(c1, c3_reduce, c3, c5_reduce, c5, cp)``.
    """

    def __init__(self, in_channels: int, c1: int, c3_reduce: int, c3: int, c5_reduce: int,
                 c5: int, pool_proj: int) -> None:
        super().__init__()
        self.branch1 = _conv_relu(in_channels, c1, 1)
        self.branch3 = nn.Sequential(_conv_relu(in_channels, c3_reduce, 1),
                                     _conv_relu(c3_reduce, c3, 3, padding=1))
        self.branch5 = nn.Sequential(_conv_relu(in_channels, c5_reduce, 1),
                                     _conv_relu(c5_reduce, c5, 5, padding=2))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                         _conv_relu(in_channels, pool_proj, 1))
        self.out_channels = c1 + c3 + c5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the four branches on ``x`` and concatenate their maps (same H, W)."""
        branches = (self.branch1, self.branch3, self.branch5, self.branch_pool)
        return torch.cat([branch(x) for branch in branches], dim=1)  # (N, C_out, H, W)


class InceptionAux(nn.Module):
    """An auxiliary classifier on a 14x14 map: (N, C, 14, 14) -> (N, num_classes)."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.AvgPool2d(5, stride=3),  # (N, C, 4, 4)
            _conv_relu(in_channels, 128, 1),  # (N, 128, 4, 4)
            nn.Flatten(),  # (N, 2048)
            nn.Linear(128 * 4 * 4, 1024), nn.ReLU(inplace=True), nn.Dropout(0.7),
            nn.Linear(1024, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The auxiliary logits (N, num_classes)."""
        return self.layers(x)


class GoogLeNet(nn.Module):
    """Inception v1 (see the module docstring); build it with :func:`googlenet`."""

    def __init__(self, num_classes: int = 1000, aux_logits: bool = False,
                 dropout: float = 0.4) -> None:
        super().__init__()
        check_num_classes(num_classes)
        self.stem = nn.Sequential(
            _conv_relu(3, 64, 7, stride=2, padding=3),  # (N, 64, 112, 112)
            nn.MaxPool2d(3, stride=2, ceil_mode=True), _lrn(),  # (N, 64, 56, 56)
            _conv_relu(64, 64, 1),
            _conv_relu(64, 192, 3, padding=1), _lrn(),  # (N, 192, 56, 56)
            nn.MaxPool2d(3, stride=2, ceil_mode=True),  # (N, 192, 28, 28)
        )
        blocks = {}
        channels = 192
        for name, row in INCEPTION_TABLE.items():
            blocks[name] = Inception(channels, *row)
            channels = blocks[name].out_channels
        self.inception3 = nn.Sequential(blocks["3a"], blocks["3b"])  # (N, 480, 28, 28)
        self.pool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # (N, 480, 14, 14)
        self.inception4a = blocks["4a"]  # (N, 512, 14, 14)
        self.inception4bcd = nn.Sequential(blocks["4b"], blocks["4c"], blocks["4d"])  # 528
        self.inception4e = blocks["4e"]  # (N, 832, 14, 14)
        self.pool4 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # (N, 832, 7, 7)
        self.inception5 = nn.Sequential(blocks["5a"], blocks["5b"])  # (N, 1024, 7, 7)
        self.head = nn.Sequential(
            nn.AvgPool2d(7),  # (N, 1024, 1, 1)
            nn.Flatten(),  # (N, 1024)
            nn.Dropout(dropout),
            nn.Linear(1024, num_classes),  # (N, num_classes)
        )
        self.aux_logits = aux_logits
        self.aux1 = InceptionAux(512, num_classes) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes) if aux_logits else None

    def forward(self, x: torch.Tensor):
        """Logits (N, num_classes); in training mode with aux heads, ``(logits, aux1, aux2)``."""
        x = self.pool3(self.inception3(self.stem(x)))  # (N, 480, 14, 14)
        x = self.inception4a(x)  # (N, 512, 14, 14)
        aux1 = self.aux1(x) if self.aux_logits and self.training else None
        x = self.inception4bcd(x)  # (N, 528, 14, 14)
        aux2 = self.aux2(x) if self.aux_logits and self.training else None
        x = self.inception5(self.pool4(self.inception4e(x)))  # (N, 1024, 7, 7)
        logits = self.head(x)
        if aux1 is not None:
            return logits, aux1, aux2
        return logits


def googlenet(num_classes: int = 1000, aux_logits: bool = False, dropout: float = 0.4) -> GoogLeNet:
    """GoogLeNet (Inception v1) for 3x224x224 inputs, with or without the auxiliary classifiers.

    6,998,552 parameters for 1000 classes without the auxiliary heads, 13,378,280 with them.
    torch's default initialisation, no downloaded weights.
    """
    return GoogLeNet(num_classes, aux_logits, dropout)
