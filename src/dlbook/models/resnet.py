"""Residual networks (He, Zhang, Ren and Sun, 2016): ResNet-18, -34 and -50 for ImageNet.

A residual block computes y = relu(F(x) + shortcut(x)): the stacked layers F learn the residual
F(x) = H(x) - x of the mapping H they should represent, and the identity shortcut adds x back.
The shortcut has no parameters when F keeps the shape; where a stage halves the map size and
widens the channels, it is a 1x1 convolution with stride 2 and batch normalisation (the paper's
"projection shortcut", option B).

* :class:`BasicBlock` (ResNet-18/34): 3x3 conv, BN, ReLU, 3x3 conv, BN, add, ReLU.
* :class:`Bottleneck` (ResNet-50 and deeper): 1x1 conv reducing to ``width``, 3x3 conv, 1x1 conv
  restoring 4 x ``width`` channels, each with BN, ReLU after the first two and after the add.
  The stride sits on the 3x3 convolution, as in torchvision (often called ResNet v1.5); the
  paper puts it on the first 1x1 convolution. The parameter count is the same.

The network: conv 64@7x7/2 p3, BN, ReLU, max pool 3x3/2 p1 (224 -> 112 -> 56), four stages of
blocks with 64, 128, 256 and 512 base channels (the last three start with stride 2: 56 -> 28
-> 14 -> 7), global average pooling, linear num_classes. Convolutions have no bias (BN follows
each one). Parameters for 1000 classes: ResNet-18 11,689,512, ResNet-34 21,797,672, ResNet-50
25,557,032, the counts of torchvision's models of the same names.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from dlbook.models._args import check_num_classes

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50"]


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """The shortcut: None (identity) if the shape is kept, else 1x1 conv with stride, and BN."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut: (N, C, H, W) -> (N, channels, H // stride, W // stride).

    out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), with an identity shortcut when
    ``stride == 1`` and ``in_channels == channels``, a 1x1 projection otherwise.
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _projection(in_channels, channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch plus the shortcut, then ReLU."""
        identity = x if self.shortcut is None else self.shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))  # (N, channels, H', W')
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 (reduce) -> 3x3 -> 1x1 (expand x4) and a shortcut: (N, C, H, W) -> (N, 4 width, H', W').

    out = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x)), H' = H // stride.
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The bottleneck branch plus the shortcut, then ReLU."""
        identity = x if self.shortcut is None else self.shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))  # (N, width, H, W)
        out = self.relu(self.bn2(self.conv2(out)))  # (N, width, H', W')
        out = self.bn3(self.conv3(out))  # (N, 4 width, H', W')
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A residual network: stem, four stages of ``block``s, global average pooling, linear.

    ``layers`` gives the number of blocks per stage: (2, 2, 2, 2) for ResNet-18, (3, 4, 6, 3)
    for ResNet-34 (basic blocks) and ResNet-50 (bottlenecks).
    """

    def __init__(self, block, layers, num_classes: int = 1000) -> None:
        super().__init__()
        check_num_classes(num_classes)
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),  # (N, 64, 112, 112)
            nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),  # (N, 64, 56, 56)
        )
        stages = []
        channels = 64
        for i, (base, count) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for j in range(count):
                stride = 2 if i > 0 and j == 0 else 1  # each later stage halves H and W
                blocks.append(block(channels, base, stride))
                channels = base * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages  # 56, 28, 14, 7
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # (N, C, 1, 1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 224, 224) -> (N, num_classes) logits."""
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (N, C, 7, 7)
        return self.fc(self.flatten(self.avgpool(x)))


def resnet18(num_classes: int = 1000) -> ResNet:
    """ResNet-18: basic blocks (2, 2, 2, 2), 11,689,512 parameters for 1000 classes."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes)


def resnet34(num_classes: int = 1000) -> ResNet:
    """ResNet-34: basic blocks (3, 4, 6, 3), 21,797,672 parameters for 1000 classes."""
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes)


def resnet50(num_classes: int = 1000) -> ResNet:
    """ResNet-50: bottleneck blocks (3, 4, 6, 3), 25,557,032 parameters for 1000 classes."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes)
