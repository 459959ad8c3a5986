"""The fully connected (affine) layer: out = x @ w.T + b, with torch's weight layout."""

from __future__ import annotations

import numpy as np

from dlbook import init
from dlbook._validate import as_array, check_ndim, check_shape
from dlbook.module import Module

__all__ = ["linear_forward", "linear_backward", "Linear"]


def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None):
    """Affine map, out = x w^T + b.

    Args:
        x: (N, D_in) inputs. Higher-rank inputs (N, ..., D_in) are accepted, as in torch:
            the map applies to the last axis.
        w: (D_out, D_in) weights (torch's layout: one row per output unit).
        b: (D_out,) bias, or None.
    Returns:
        ``(out, cache)`` with ``out`` of shape (N, D_out). Matches ``F.linear(x, w, b)``.
    """
    x = as_array(x, "x")
    w = as_array(w, "w")
    check_ndim(w, 2, "w", "(D_out, D_in)")
    d_out, d_in = w.shape
    if x.ndim < 1 or x.shape[-1] != d_in:
        raise ValueError(f"x: expected last dimension D_in = {d_in} (w is {w.shape}), got shape {x.shape}")
    out = x @ w.T  # (N, D_out)
    if b is not None:
        b = as_array(b, "b")
        check_shape(b, (d_out,), "b")
        out = out + b
    return out, (x, w, b is not None)


def linear_backward(dout: np.ndarray, cache):
    """Gradients of the affine map.

    dx = dout w,  dw = dout^T x (summed over every leading axis),  db = sum_n dout.

    Returns:
        ``(dx, dw, db)``; ``db`` is None when the forward pass had no bias.
    """
    x, w, has_bias = cache
    dout = as_array(dout, "dout")
    check_shape(dout, x.shape[:-1] + (w.shape[0],), "dout")
    dx = dout @ w  # (N, D_in)
    x2 = x.reshape(-1, x.shape[-1])
    d2 = dout.reshape(-1, dout.shape[-1])
    dw = d2.T @ x2  # (D_out, D_in)
    db = d2.sum(axis=0) if has_bias else None
    return dx, dw, db


class Linear(Module):
    """Fully connected layer holding ``params['w']`` (D_out, D_in) and ``params['b']`` (D_out,).

    Initialised like ``torch.nn.Linear``: both drawn from U(-1/sqrt(D_in), 1/sqrt(D_in)).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 *, rng: np.random.Generator | None = None, dtype=np.float64) -> None:
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"in_features/out_features: expected positive sizes, got "
                             f"{in_features}, {out_features}")
        rng = np.random.default_rng() if rng is None else rng
        shape = (out_features, in_features)
        fan_in, _ = init.calculate_fan_in_and_fan_out(shape)
        # torch's default: kaiming_uniform with a = sqrt(5), which is U(-1/sqrt(fan_in), ...)
        bound = 1.0 / np.sqrt(fan_in)
        self.in_features, self.out_features = in_features, out_features
        self.params["w"] = init.uniform(shape, rng, -bound, bound).astype(dtype)
        if bias:
            self.params["b"] = init.uniform((out_features,), rng, -bound, bound).astype(dtype)
        self.zero_grad()

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, self._cache = linear_forward(x, self.params["w"], self.params.get("b"))
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx, dw, db = linear_backward(dout, self._need_cache())
        self.grads["w"] = dw
        if db is not None:
            self.grads["b"] = db
        return dx

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={'b' in self.params}"
