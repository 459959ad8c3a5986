"""The modern LeNet-5 from dlbook's numpy layers (in torch: ``dlbook.models.lenet5(modern=True)``).

    Conv2d(1, 6, 5)    -> (N, 6, 28, 28), ReLU, 2x2/2 pooling -> (N, 6, 14, 14)
    Conv2d(6, 16, 5)   -> (N, 16, 10, 10), ReLU, 2x2/2 pooling -> (N, 16, 5, 5)
    Conv2d(16, 120, 5) -> (N, 120, 1, 1), ReLU, Flatten -> (N, 120)
    Linear(120, 84), ReLU, Linear(84, num_classes) -> logits (N, num_classes)

156 + 2,416 + 48,120 + 10,164 + 850 = 61,706 parameters for ten classes. Every layer is one of
the library's (conv, pool, activations, reshape, linear), so the forward and backward passes are
the ones the earlier chapters derived; :func:`dlbook.reference.copy_params_to_torch` gives the
torch twin the same weights.
"""

from __future__ import annotations

import numpy as np

from dlbook.activations import ReLU
from dlbook.conv import Conv2d
from dlbook.linear import Linear
from dlbook.pool import AvgPool2d, MaxPool2d
from dlbook.reshape import Flatten
from dlbook.sequential import Sequential

__all__ = ["lenet5"]


def lenet5(*, rng: np.random.Generator, num_classes: int = 10, pooling: str = "max",
           dtype=np.float64) -> Sequential:
    """The modern LeNet-5 for (N, 1, 32, 32) inputs as a :class:`~dlbook.sequential.Sequential`.

    Args:
        rng: draws the initial weights, layer by layer (torch's default initialisation).
        num_classes: outputs of the last layer.
        pooling: "max" or "avg" for the two 2x2/2 pooling layers.
        dtype: of the parameters.
    Returns:
        The network; ``forward`` maps (N, 1, 32, 32) to logits (N, num_classes). Its torch twin is
        ``dlbook.models.lenet5(num_classes, modern=True, pooling=pooling)``.
    """
    if pooling not in ("max", "avg"):
        raise ValueError(f"pooling: expected 'max' or 'avg', got {pooling!r}")
    pool = MaxPool2d if pooling == "max" else AvgPool2d
    return Sequential(
        Conv2d(1, 6, 5, rng=rng, dtype=dtype), ReLU(), pool(2),  # (N, 6, 14, 14)
        Conv2d(6, 16, 5, rng=rng, dtype=dtype), ReLU(), pool(2),  # (N, 16, 5, 5)
        Conv2d(16, 120, 5, rng=rng, dtype=dtype), ReLU(),  # (N, 120, 1, 1)
        Flatten(),  # (N, 120)
        Linear(120, 84, rng=rng, dtype=dtype), ReLU(),  # (N, 84)
        Linear(84, num_classes, rng=rng, dtype=dtype),  # (N, num_classes) logits
    )
