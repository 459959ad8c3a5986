"""Network in Network (Lin, Chen and Yan, 2014): mlpconv blocks, global average pooling.

An mlpconv block is an ordinary convolution followed by two 1x1 convolutions, each with ReLU: a
small multilayer perceptron slid over the image, since a 1x1 convolution is a fully connected
layer applied to the channel vector of every pixel. The last block has one map per class, and
global average pooling turns each map into that class's score: no fully connected classifier.

Two variants, with the layer sizes of the Caffe definitions the first author released (the
paper describes its networks as stacks of mlpconv blocks and global average pooling):

* ``variant="imagenet"`` (default, 3x224x224 input, 7,595,176 parameters for 1000 classes; the
  ImageNet model released with Caffe's model zoo, not one of the paper's experiments): four
  blocks, [conv 96@11x11/4, 1x1 96, 1x1 96], max pool 3x3/2, [conv 256@5x5 p2, 1x1 256, 1x1 256],
  max pool 3x3/2, [conv 384@3x3 p1, 1x1 384, 1x1 384], max pool 3x3/2, dropout 0.5,
  [conv 1024@3x3 p1, 1x1 1024, 1x1 num_classes], global average pooling. Caffe rounds pooled
  sizes up, so the pools use ``ceil_mode=True``: 224 -> 54 -> 27 -> 13 -> 6.
* ``variant="cifar10"`` (3x32x32 input, 966,986 parameters for 10 classes): the paper's three
  blocks for CIFAR-10, [conv 192@5x5 p2, 1x1 160, 1x1 96], max pool 3x3/2, dropout 0.5,
  [conv 192@5x5 p2, 1x1 192, 1x1 192], average pool 3x3/2, dropout 0.5, [conv 192@3x3 p1,
  1x1 192, 1x1 num_classes], global average pooling (32 -> 16 -> 8).

As in the Caffe files, the last 1x1 convolution is followed by ReLU before the averaging.
"""

from __future__ import annotations

import torch.nn as nn

from dlbook.models._args import check_num_classes

__all__ = ["mlpconv", "nin"]


def mlpconv(in_channels: int, channels, kernel_size: int, stride: int = 1,
            padding: int = 0) -> list[nn.Module]:
    """An mlpconv block: a k x k convolution then 1x1 convolutions, each followed by ReLU.

    ``channels`` lists the output channels of the three convolutions, e.g. (96, 96, 96).
    """
    first, *pointwise = channels
    layers = [nn.Conv2d(in_channels, first, kernel_size, stride, padding), nn.ReLU(inplace=True)]
    for c_in, c_out in zip(channels[:-1], pointwise):
        layers += [nn.Conv2d(c_in, c_out, 1), nn.ReLU(inplace=True)]  # per-pixel MLP layer
    return layers


def nin(num_classes: int = 1000, variant: str = "imagenet", dropout: float = 0.5) -> nn.Sequential:
    """Network in Network: mlpconv blocks and global average pooling (see the module docstring).

    Args:
        num_classes: maps of the last 1x1 convolution, one per class.
        variant: "imagenet" (four blocks, 224x224 input) or "cifar10" (the paper's three
            blocks, 32x32 input).
        dropout: drop probability of the dropout layers between blocks.
    Returns:
        An ``nn.Sequential`` (N, 3, H, W) -> (N, num_classes) scores, torch's default
        initialisation.
    """
    check_num_classes(num_classes)
    if variant == "imagenet":
        layers = [
            *mlpconv(3, (96, 96, 96), 11, stride=4),  # (N, 96, 54, 54)
            nn.MaxPool2d(3, stride=2, ceil_mode=True),  # (N, 96, 27, 27)
            *mlpconv(96, (256, 256, 256), 5, padding=2),  # (N, 256, 27, 27)
            nn.MaxPool2d(3, stride=2, ceil_mode=True),  # (N, 256, 13, 13)
            *mlpconv(256, (384, 384, 384), 3, padding=1),  # (N, 384, 13, 13)
            nn.MaxPool2d(3, stride=2, ceil_mode=True),  # (N, 384, 6, 6)
            nn.Dropout(dropout),
            *mlpconv(384, (1024, 1024, num_classes), 3, padding=1),  # (N, K, 6, 6)
        ]
    elif variant == "cifar10":
        layers = [
            *mlpconv(3, (192, 160, 96), 5, padding=2),  # (N, 96, 32, 32)
            nn.MaxPool2d(3, stride=2, ceil_mode=True), nn.Dropout(dropout),  # (N, 96, 16, 16)
            *mlpconv(96, (192, 192, 192), 5, padding=2),  # (N, 192, 16, 16)
            nn.AvgPool2d(3, stride=2, ceil_mode=True), nn.Dropout(dropout),  # (N, 192, 8, 8)
            *mlpconv(192, (192, 192, num_classes), 3, padding=1),  # (N, K, 8, 8)
        ]
    else:
        raise ValueError(f"variant: expected 'imagenet' or 'cifar10', got {variant!r}")
    return nn.Sequential(
        *layers,
        nn.AdaptiveAvgPool2d(1),  # global average pooling: (N, K, 1, 1)
        nn.Flatten(),  # (N, K)
    )
