"""Layers that only rearrange their input: ``Flatten``, the bridge from feature maps to a fully connected layer.

A CNN ends its convolution and pooling stages with feature maps (N, C, H, W); a fully connected
layer wants vectors (N, D). Flattening lays each example's C*H*W numbers out in one row, in
row-major (C, H, W) order, which is the order ``torch.nn.Flatten`` uses, so weights move between
the two libraries unchanged. No number changes, so the backward pass only reshapes the upstream
gradient back to the input's shape.
"""

from __future__ import annotations

import numpy as np

from dlbook._validate import as_array, check_shape
from dlbook.module import Module

__all__ = ["flatten_forward", "flatten_backward", "Flatten"]


def _axis(dim: int, ndim: int, name: str) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not -ndim <= dim < ndim:
        raise ValueError(f"{name}: expected an axis in [{-ndim}, {ndim - 1}] for an input with {ndim} "
                         f"dimensions, got {dim!r}")
    return int(dim) % ndim


def flatten_forward(x: np.ndarray, start_dim: int = 1, end_dim: int = -1):
    """Merge axes ``start_dim..end_dim`` into one: (N, C, H, W) -> (N, C*H*W) with the defaults.

    Args:
        x: array with at least ``start_dim + 1`` dimensions, e.g. (N, C, H, W).
        start_dim, end_dim: first and last axis to merge (inclusive; negative counts from the end).
    Returns:
        ``(out, cache)``: ``out`` is a reshaped *copy* of ``x``, e.g. (N, C*H*W) (torch returns a
        view; a copy costs little here and keeps in-place perturbation of ``x``, as the
        gradient checks do, from changing an output computed earlier); the cache holds the
        input's and the output's shapes. Matches ``torch.flatten(x, start_dim, end_dim)``.
    """
    x = as_array(x, "x")
    if x.ndim == 0:
        raise ValueError("x: expected an array with at least 1 dimension, got a scalar")
    start = _axis(start_dim, x.ndim, "start_dim")
    end = _axis(end_dim, x.ndim, "end_dim")
    if start > end:
        raise ValueError(f"start_dim: expected an axis at or before end_dim = {end_dim} (input shape "
                         f"{x.shape}), got {start_dim}")
    merged = int(np.prod(x.shape[start:end + 1]))
    out = x.reshape(x.shape[:start] + (merged,) + x.shape[end + 1:]).copy()  # e.g. (N, C*H*W)
    return out, (x.shape, out.shape)


def flatten_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Gradient of flattening: ``dout`` reshaped to the input's shape, e.g. (N, C*H*W) -> (N, C, H, W)."""
    in_shape, out_shape = cache
    dout = as_array(dout, "dout")
    check_shape(dout, out_shape, "dout")
    return dout.reshape(in_shape)  # e.g. (N, C, H, W)


class Flatten(Module):
    """Flattening layer, like ``torch.nn.Flatten(start_dim=1, end_dim=-1)``: (N, C, H, W) -> (N, C*H*W)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, self._cache = flatten_forward(x, self.start_dim, self.end_dim)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return flatten_backward(dout, self._need_cache())

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
