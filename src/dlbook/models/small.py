"""Scaled-down classic networks for 1x8x8 digits, small enough to train on a CPU in seconds.

Each keeps the idea of its namesake and nothing of its size:

    small_cnn("lenet")   conv 6@3x3 p1, ReLU, max pool 2 (8 -> 4), conv 16@3x3 p1, ReLU,
                         max pool 2 (4 -> 2), flatten 64, linear 32, ReLU, linear K
    small_cnn("vgg")     two blocks of [conv 3x3 p1, ReLU] x 2 and max pool 2, with 16 then 32
                         channels (8 -> 4 -> 2), flatten 128, linear 64, ReLU, linear K
    small_cnn("nin")     mlpconv [conv 16@3x3 p1, 1x1 16, 1x1 16], max pool 2, mlpconv
                         [conv 32@3x3 p1, 1x1 32, 1x1 K] (each followed by ReLU but the last),
                         global average pooling: no fully connected layer
    small_cnn("resnet")  conv 16@3x3 p1, ReLU, two residual blocks of 16 channels, one of 32 with
                         stride 2 and a 1x1 projection (8 -> 4), global average pooling, linear K

:func:`deep_cnn` is the degradation experiment's network: a 3x3 stem convolution, ``num_blocks``
blocks of two 3x3 convolutions of ``width`` channels, 2x2 max pooling and a linear layer,
2 * num_blocks + 2 weight layers. With ``residual=True`` each block adds its input back,
relu(F(x) + x) as in He et al. (2016); with False it is the same stack without the shortcuts.
No batch normalisation, so that only the shortcut differs. Torch's default initialisation.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from dlbook.models._args import check_num_classes

__all__ = ["SMALL_KINDS", "PlainOrResidualBlock", "he_init_", "small_cnn", "deep_cnn"]

SMALL_KINDS = ("lenet", "vgg", "nin", "resnet")


class PlainOrResidualBlock(nn.Module):
    """Two 3x3 convolutions (N, C, H, W) -> (N, F, H', W'): relu(F(x) + shortcut(x)) or relu(F(x)).

    F(x) = conv2(relu(conv1(x))); the shortcut is the identity when the shape is kept, a 1x1
    convolution with the stride otherwise; ``residual=False`` drops it (a plain block).
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1,
                 residual: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.residual = residual
        self.shortcut = None
        if residual and (stride != 1 or in_channels != channels):
            self.shortcut = nn.Conv2d(in_channels, channels, 1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(torch.relu(self.conv1(x)))  # (N, F, H', W'): the branch F(x)
        if self.residual:
            out = out + (x if self.shortcut is None else self.shortcut(x))
        return torch.relu(out)


def he_init_(model: nn.Module) -> nn.Module:
    """He et al.'s initialisation in place: every conv and linear weight drawn from
    N(0, 2 / fan_in) (``torch.nn.init.kaiming_normal_`` for ReLU), every bias 0. Returns ``model``.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def _relu_convs(pairs, kernel_size: int, padding: int) -> list[nn.Module]:
    layers = []
    for c_in, c_out in pairs:
        layers += [nn.Conv2d(c_in, c_out, kernel_size, padding=padding), nn.ReLU()]
    return layers


def small_cnn(kind: str, num_classes: int = 10) -> nn.Sequential:
    """A scaled-down LeNet, VGG, NIN or ResNet for (N, 1, 8, 8) inputs (module docstring).

    Args:
        kind: one of :data:`SMALL_KINDS`.
        num_classes: outputs K.
    Returns:
        An ``nn.Sequential`` mapping (N, 1, 8, 8) to logits (N, num_classes).
    """
    num_classes = check_num_classes(num_classes)
    if kind == "lenet":
        layers = [nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 6, 4, 4)
                  nn.Conv2d(6, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 16, 2, 2)
                  nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, num_classes)]
    elif kind == "vgg":
        layers = (_relu_convs([(1, 16), (16, 16)], 3, 1) + [nn.MaxPool2d(2)]  # (N, 16, 4, 4)
                  + _relu_convs([(16, 32), (32, 32)], 3, 1) + [nn.MaxPool2d(2)]  # (N, 32, 2, 2)
                  + [nn.Flatten(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, num_classes)])
    elif kind == "nin":
        layers = (_relu_convs([(1, 16)], 3, 1) + _relu_convs([(16, 16), (16, 16)], 1, 0)
                  + [nn.MaxPool2d(2)]  # (N, 16, 4, 4)
                  + _relu_convs([(16, 32)], 3, 1) + _relu_convs([(32, 32)], 1, 0)
                  + [nn.Conv2d(32, num_classes, 1),  # (N, K, 4, 4): one map per class
                     nn.AdaptiveAvgPool2d(1), nn.Flatten()])  # (N, K): each map's mean
    elif kind == "resnet":
        layers = [nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                  PlainOrResidualBlock(16, 16), PlainOrResidualBlock(16, 16),
                  PlainOrResidualBlock(16, 32, stride=2),  # (N, 32, 4, 4)
                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes)]
    else:
        raise ValueError(f"kind: expected one of {SMALL_KINDS}, got {kind!r}")
    return nn.Sequential(*layers)


def deep_cnn(num_blocks: int, residual: bool, width: int = 16, num_classes: int = 10,
             input_size: int = 8) -> nn.Sequential:
    """Stem conv, ``num_blocks`` plain or residual blocks, 2x2 max pooling, flatten, linear.

    (N, 1, input_size, input_size) -> logits (N, num_classes); every block keeps ``width``
    channels and the map size, so the only difference between ``residual=True`` and ``False``
    is the shortcut. 2 * num_blocks + 2 weight layers.
    """
    num_classes = check_num_classes(num_classes)
    if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 0:
        raise ValueError(f"num_blocks: expected an int >= 0, got {num_blocks!r}")
    for name, value, least in (("width", width, 1), ("input_size", input_size, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name}: expected an int >= {least}, got {value!r}")
    blocks = [PlainOrResidualBlock(width, width, residual=residual) for _ in range(num_blocks)]
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), *blocks,
                         nn.MaxPool2d(2), nn.Flatten(),  # (N, width * (H // 2) * (W // 2))
                         nn.Linear(width * (input_size // 2) ** 2, num_classes))
