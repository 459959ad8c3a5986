"""Inverted dropout, as ``torch.nn.Dropout``: zero units at random in training, identity in evaluation.

In training each element is kept with probability 1 - p and the kept ones are scaled by
1 / (1 - p), so that the expected output equals the input and nothing needs rescaling at test
time. A new mask is drawn at every forward pass. Srivastava et al. (2014) describe the
original form, which scales the weights at test time instead.
"""

from __future__ import annotations

import numpy as np

from dlbook._validate import as_array, check_probability, check_shape
from dlbook.module import Module

__all__ = ["dropout_forward", "dropout_backward", "Dropout"]


def dropout_forward(x: np.ndarray, p: float = 0.5, training: bool = True,
                    rng: np.random.Generator | None = None, *, mask: np.ndarray | None = None):
    """Inverted dropout: out = x * m / (1 - p), with m_i ~ Bernoulli(1 - p) drawn afresh.

    Args:
        x: input of any shape, e.g. (N, D) activations.
        p: probability of zeroing an element, in [0, 1]. ``p = 1`` zeroes everything (as torch).
        training: when False the layer is the identity (no mask, no scaling).
        rng: the generator the mask is drawn from; required in training when 0 < p < 1 and no
            ``mask`` is given.
        mask: optional boolean keep-mask with the shape of ``x`` (True = keep), used instead
            of drawing one: for tests against torch and for replaying a forward pass.
    Returns:
        ``(out, cache)``; ``out`` has the shape of ``x``. Matches ``F.dropout(x, p, training)``
        given the same mask.
    """
    x = as_array(x, "x")
    check_probability(p, "p", allow_one=True)
    if not training:
        return x, (None, x.shape)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != bool:
            raise ValueError(f"mask: expected a boolean keep-mask, got dtype {mask.dtype}")
        check_shape(mask, x.shape, "mask")
    elif p == 0.0:
        mask = np.ones(x.shape, dtype=bool)
    elif p == 1.0:
        mask = np.zeros(x.shape, dtype=bool)
    else:
        if rng is None:
            raise ValueError("rng: dropout in training draws a random mask; pass a numpy Generator")
        mask = rng.random(x.shape) >= p  # kept with probability 1 - p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    scaled_mask = mask * np.asarray(scale, dtype=x.dtype)  # (shape of x): 0 or 1 / (1 - p)
    return x * scaled_mask, (scaled_mask, x.shape)


def dropout_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx = dout * m / (1 - p): the gradient flows only through the kept units, scaled alike.

    In evaluation mode the layer is the identity and dx = dout.
    """
    scaled_mask, shape = cache
    dout = as_array(dout, "dout")
    check_shape(dout, shape, "dout")
    return dout if scaled_mask is None else dout * scaled_mask


class Dropout(Module):
    """Dropout layer (``torch.nn.Dropout(p)``): inverted dropout in training, identity in ``eval()``.

    The layer owns its generator, so successive forward passes draw different masks.
    """

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        check_probability(p, "p", allow_one=True)
        self.p = p
        self.rng = np.random.default_rng() if rng is None else rng

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, self._cache = dropout_forward(x, self.p, self.training, self.rng)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dropout_backward(dout, self._need_cache())

    def extra_repr(self) -> str:
        return f"p={self.p}"
