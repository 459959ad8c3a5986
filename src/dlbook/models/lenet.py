"""LeNet-5 as LeCun et al. (1998) built it, and the "modern" LeNet most courses teach.

The 1998 network (input 1x32x32, seven layers with trainable parameters):

    C1  conv 6@5x5                      -> 6x28x28      156 parameters
    S2  trainable subsampling 2x2/2     -> 6x14x14       12  (a coefficient and a bias per map)
    C3  conv 16@5x5, partial connection -> 16x10x10   1,516  (Table I of the paper: C3_TABLE)
    S4  trainable subsampling 2x2/2     -> 16x5x5        32
    C5  conv 120@5x5                    -> 120x1x1   48,120
    F6  fully connected                 -> 84        10,164
    RBF Euclidean radial basis units    -> 10           840  (10 centres of 84 values, no bias)
                                                     60,840

Every layer up to F6 passes its weighted sum through the paper's squashing function
f(a) = A tanh(S a) with A = 1.7159 and S = 2/3 (Section II-B; Appendix A explains the
constants, chosen so that f(1) = 1 and f(-1) = -1). A subsampling unit adds up the four
inputs of its 2x2 window, multiplies the sum by its map's trainable coefficient, adds its map's
bias, and squashes. An RBF output unit computes the squared
Euclidean distance between F6's output and its centre, y_k = sum_j (x_j - w_kj)^2: a
*penalty*, small for the class the input resembles, so the predicted class is ``argmin``
(``-y`` can serve as logits). The paper chose the centres by hand (stylised 7x12 bitmaps of the
characters, entries -1 or +1) and kept them fixed, at least initially; here they are trainable
parameters initialised to random +-1 entries, as no bitmaps are shipped.

The modern LeNet (``lenet5(modern=True)``): C3 fully connected (2,416 parameters), parameter-free
pooling, ReLU, and a linear output layer 84 -> 10 (850 parameters): 61,706 parameters.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlbook.models._args import check_num_classes

__all__ = ["C3_TABLE", "LeNetSquash", "Subsampling", "PartialConv2d", "RBFOutput", "lenet5"]

# Table I of LeCun et al. (1998): C3_TABLE[m] lists the S2 maps that C3 map m reads. The first
# six maps take three contiguous maps, the next six four contiguous ones, three take four
# discontinuous ones, and the last takes all six: 60 (map, input) pairs of 25 weights each.
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class LeNetSquash(nn.Module):
    """The paper's squashing function f(a) = A tanh(S a), A = 1.7159, S = 2/3 (no parameters).

    With these constants f(1) = 1 and f(-1) = -1, and the gain is largest around the origin.
    """

    A = 1.7159
    S = 2.0 / 3.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply A tanh(S x) elementwise."""
        return self.A * torch.tanh(self.S * x)


class Subsampling(nn.Module):
    """LeNet's trainable subsampling: out[n, c] = coef[c] * (sum of each 2x2 window) + bias[c].

    Windows do not overlap (stride = kernel size), so (N, C, H, W) -> (N, C, H // 2, W // 2).
    Two parameters per map; the squashing function is a separate layer after it.
    """

    def __init__(self, channels: int, kernel_size: int = 2) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))
        bound = 1.0 / kernel_size  # torch's 1/sqrt(fan_in), with the window's k*k inputs as fan_in
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H // k, W // k): coefficient times window sum plus bias."""
        window_sum = F.avg_pool2d(x, self.kernel_size) * self.kernel_size**2  # (N, C, OH, OW)
        return window_sum * self.weight[:, None, None] + self.bias[:, None, None]


class PartialConv2d(nn.Module):
    """A convolution in which output map m sees only the input maps ``table[m]``.

    One weight (1, len(table[m]), K, K) and one bias per output map, stored in ``weights`` and
    ``biases``: the parameter count is sum_m (len(table[m]) K^2 + 1), 1,516 for LeNet's C3
    (2,416 if every map saw all six inputs).
    """

    def __init__(self, table, kernel_size: int) -> None:
        super().__init__()
        self.table = tuple(tuple(int(c) for c in inputs) for inputs in table)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for inputs in self.table:
            conv = nn.Conv2d(len(inputs), 1, kernel_size)  # torch's default initialisation
            self.weights.append(conv.weight)
            self.biases.append(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, len(table), OH, OW), one small convolution per output map."""
        maps = [F.conv2d(x[:, list(inputs)], w, b)
                for inputs, w, b in zip(self.table, self.weights, self.biases)]
        return torch.cat(maps, dim=1)

    def connection_mask(self) -> torch.Tensor:
        """The table as a (len(table), C_in) 0/1 matrix: entry [m, c] = 1 if map m reads map c."""
        c_in = 1 + max(max(inputs) for inputs in self.table)
        mask = torch.zeros(len(self.table), c_in, dtype=torch.int64)
        for m, inputs in enumerate(self.table):
            mask[m, list(inputs)] = 1
        return mask


class RBFOutput(nn.Module):
    """Euclidean radial basis output units: y[n, k] = sum_j (x[n, j] - centres[k, j])^2.

    ``centres`` (num_classes, in_features) has no bias. The output is a penalty (a squared
    distance), not a score: the predicted class is ``y.argmin(dim=1)``, and ``-y`` can be used as
    logits. The centres start as random entries of -1 and +1, as the paper's bitmaps were.
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        signs = torch.randint(0, 2, (num_classes, in_features)) * 2 - 1
        self.centres = nn.Parameter(signs.to(torch.get_default_dtype()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_features) -> (N, num_classes) squared distances to the centres."""
        diff = x[:, None, :] - self.centres[None, :, :]  # (N, K, D)
        return (diff * diff).sum(dim=2)  # (N, K)


def lenet5(num_classes: int = 10, modern: bool = False, pooling: str = "max") -> nn.Sequential:
    """LeNet-5 for 1x32x32 inputs, as in LeCun et al. (1998) or in its modern form.

    ``modern=False`` (the paper, see the module docstring): C1, S2 (trainable subsampling), C3
    with the partial connection table :data:`C3_TABLE`, S4, C5, F6 with the squashing function
    after each, and RBF output units: 60,840 parameters for 10 classes. The output (N, 10) is the
    RBF penalties: predict with ``argmin``.

    ``modern=True``: C3 is a full 6 -> 16 convolution, ReLU replaces the squashing, S2 and S4 are
    parameter-free 2x2/2 pooling (``pooling="max"`` or ``"avg"``), and the output is a linear
    layer giving logits: 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706 parameters.

    Args:
        num_classes: output units. Departs from the other models' default of 1000: LeNet-5 read
            the ten digits, and its published parameter count is for ten outputs.
        modern: the modern variant instead of the 1998 network.
        pooling: "max" or "avg", the modern variant's pooling (ignored by the 1998 network).
    Returns:
        An ``nn.Sequential`` mapping (N, 1, 32, 32) to (N, num_classes), parameters initialised
        by torch's defaults (no downloaded weights), in torch's default dtype.
    """
    check_num_classes(num_classes)
    if pooling not in ("max", "avg"):
        raise ValueError(f"pooling: expected 'max' or 'avg', got {pooling!r}")
    if not modern:
        return nn.Sequential(
            nn.Conv2d(1, 6, 5), LeNetSquash(),  # C1: (N, 6, 28, 28)
            Subsampling(6), LeNetSquash(),  # S2: (N, 6, 14, 14)
            PartialConv2d(C3_TABLE, 5), LeNetSquash(),  # C3: (N, 16, 10, 10)
            Subsampling(16), LeNetSquash(),  # S4: (N, 16, 5, 5)
            nn.Conv2d(16, 120, 5), LeNetSquash(),  # C5: (N, 120, 1, 1)
            nn.Flatten(),  # (N, 120)
            nn.Linear(120, 84), LeNetSquash(),  # F6: (N, 84)
            RBFOutput(84, num_classes),  # (N, num_classes) penalties
        )
    pool = nn.MaxPool2d if pooling == "max" else nn.AvgPool2d
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), pool(2),  # (N, 6, 14, 14)
        nn.Conv2d(6, 16, 5), nn.ReLU(), pool(2),  # (N, 16, 5, 5)
        nn.Conv2d(16, 120, 5), nn.ReLU(),  # (N, 120, 1, 1)
        nn.Flatten(),  # (N, 120)
        nn.Linear(120, 84), nn.ReLU(),  # (N, 84)
        nn.Linear(84, num_classes),  # (N, num_classes) logits
    )
