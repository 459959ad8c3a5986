"""VGG-16 (Simonyan and Zisserman, 2014): configuration D of the paper's Table 1.

Thirteen 3x3 convolutions (stride 1, padding 1, so a block keeps its map size), each followed
by ReLU, in five blocks that end with 2x2/2 max pooling, then three fully connected layers, for
3x224x224 inputs:

    block 1: 2 x conv 64    -> 64x224x224,  pool -> 64x112x112
    block 2: 2 x conv 128   -> 128x112x112, pool -> 128x56x56
    block 3: 3 x conv 256   -> 256x56x56,   pool -> 256x28x28
    block 4: 3 x conv 512   -> 512x28x28,   pool -> 512x14x14
    block 5: 3 x conv 512   -> 512x14x14,   pool -> 512x7x7 = 25,088
    fc6 4096, ReLU, dropout 0.5; fc7 4096, ReLU, dropout 0.5; fc8 num_classes (no ReLU)

138,357,544 parameters for 1000 classes (14,714,688 in the convolutions, 123,642,856 in the
fully connected layers). Other configurations are lists like :data:`VGG16_CONFIG`.
"""

from __future__ import annotations

import torch.nn as nn

from dlbook.models._args import check_num_classes

__all__ = ["VGG16_CONFIG", "vgg", "vgg16"]

# Output channels of each 3x3 convolution, "M" for a 2x2/2 max pooling: configuration D.
VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                512, 512, 512, "M")


def vgg(config, num_classes: int = 1000, dropout: float = 0.5) -> nn.Sequential:
    """A VGG network from a configuration list (ints: 3x3 conv channels; "M": max pooling).

    The classifier expects the 7x7 maps that five poolings make of a 224x224 input.

    Returns:
        An ``nn.Sequential`` (N, 3, 224, 224) -> (N, num_classes) logits, torch's default
        initialisation.
    """
    check_num_classes(num_classes)
    layers: list[nn.Module] = []
    channels = 3
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(2, stride=2))  # halves H and W
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=True)]
            channels = item
    return nn.Sequential(
        *layers,  # (N, 512, 7, 7)
        nn.Flatten(),  # (N, 25088)
        nn.Linear(channels * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),  # fc6
        nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),  # fc7
        nn.Linear(4096, num_classes),  # fc8: (N, num_classes)
    )


def vgg16(num_classes: int = 1000, dropout: float = 0.5) -> nn.Sequential:
    """VGG-16 (configuration D) for 3x224x224 inputs: 138,357,544 parameters for 1000 classes."""
    return vgg(VGG16_CONFIG, num_classes, dropout)
