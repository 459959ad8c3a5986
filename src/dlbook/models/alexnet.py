"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012), as trained on two GPUs, or ungrouped.

The network has eight weight layers, five convolutional and three fully connected, for
3x227x227 inputs:

    conv1 96@11x11/4          -> 96x55x55     ReLU, LRN, max pool 3x3/2 -> 96x27x27
    conv2 256@5x5 p2, g2      -> 256x27x27    ReLU, LRN, max pool 3x3/2 -> 256x13x13
    conv3 384@3x3 p1          -> 384x13x13    ReLU
    conv4 384@3x3 p1, g2      -> 384x13x13    ReLU
    conv5 256@3x3 p1, g2      -> 256x13x13    ReLU, max pool 3x3/2 -> 256x6x6 = 9,216
    fc6 4096, ReLU, dropout 0.5;  fc7 4096, ReLU, dropout 0.5;  fc8 num_classes

Why 227 and not the paper's 224: with an 11x11 kernel at stride 4 and no padding, a 224 input
gives (224 - 11) / 4 + 1 = 54.25 positions, which does not tile; 227 gives exactly 55, the 55x55
maps the paper draws (many re-implementations therefore use 227, as Table 3.1 of Wei 2017 does).

"g2" is ``groups=2``: the paper split every layer between two GPUs, and conv2, conv4 and conv5
only read the maps on their own GPU, so each of their filters sees half the input channels.
conv3 and the fully connected layers read both halves. Grouped, the network has 60,965,224
parameters (the paper's "60 million"); ungrouped (every filter sees every channel, Table 3.1's
view) 62,378,344. torchvision's ``alexnet`` is a different, later variant (64/192/384/256/256
channels, no LRN, 61,100,840 parameters).

Local response normalisation (LRN): the paper's b = a / (k + alpha * sum over n neighbouring
channels of a^2)^beta with k = 2, n = 5, alpha = 1e-4, beta = 0.75. ``torch.nn.LocalResponseNorm``
divides its ``alpha`` by ``size``, so the paper's layer is ``LocalResponseNorm(5, alpha=5e-4,
beta=0.75, k=2.0)``. Where it sits: the paper normalises after the ReLU of conv1 and conv2 and
pools afterwards; Table 3.1 of Wei 2017 pools first and normalises after (the order of Caffe's
reference model). ``alexnet(grouped=True)`` follows the paper, ``alexnet(grouped=False)``
Table 3.1; the order changes no shape and no parameter count.
"""

from __future__ import annotations

import torch.nn as nn

from dlbook.models._args import check_num_classes

__all__ = ["ALEXNET_LRN", "alexnet"]

# The paper's LRN hyper-parameters, in its own convention (alpha multiplies the plain sum).
ALEXNET_LRN = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)


def _paper_lrn() -> nn.LocalResponseNorm:
    """The paper's LRN as a torch layer: torch divides alpha by size, so pass alpha * size."""
    p = ALEXNET_LRN
    return nn.LocalResponseNorm(p["size"], alpha=p["alpha"] * p["size"], beta=p["beta"], k=p["k"])


def alexnet(num_classes: int = 1000, grouped: bool = True, dropout: float = 0.5) -> nn.Sequential:
    """AlexNet for 3x227x227 inputs (see the module docstring for the layer table).

    Args:
        num_classes: outputs of fc8.
        grouped: True for the paper's two-GPU network (``groups=2`` in conv2, conv4, conv5; LRN
            after ReLU, before pooling): 60,965,224 parameters for 1000 classes. False for the
            ungrouped network of Table 3.1 in Wei 2017 (LRN after pooling): 62,378,344.
        dropout: drop probability of the dropout after fc6 and fc7.
    Returns:
        An ``nn.Sequential`` (N, 3, 227, 227) -> (N, num_classes) logits; torch's default
        initialisation, no downloaded weights.
    """
    check_num_classes(num_classes)
    groups = 2 if grouped else 1

    def stage(conv: nn.Conv2d) -> list[nn.Module]:  # conv, ReLU, then LRN and pooling in order
        pool = nn.MaxPool2d(3, stride=2)  # overlapping pooling: window 3 > stride 2
        tail = [_paper_lrn(), pool] if grouped else [pool, _paper_lrn()]
        return [conv, nn.ReLU(inplace=True)] + tail

    return nn.Sequential(
        *stage(nn.Conv2d(3, 96, 11, stride=4)),  # (N, 96, 55, 55) -> (N, 96, 27, 27)
        *stage(nn.Conv2d(96, 256, 5, padding=2, groups=groups)),  # (N, 256, 27, 27) -> 13x13
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),  # (N, 384, 13, 13)
        nn.Conv2d(384, 384, 3, padding=1, groups=groups), nn.ReLU(inplace=True),  # (N, 384, 13, 13)
        nn.Conv2d(384, 256, 3, padding=1, groups=groups), nn.ReLU(inplace=True),  # (N, 256, 13, 13)
        nn.MaxPool2d(3, stride=2),  # (N, 256, 6, 6)
        nn.Flatten(),  # (N, 9216)
        nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),  # fc6
        nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),  # fc7
        nn.Linear(4096, num_classes),  # fc8: (N, num_classes)
    )
