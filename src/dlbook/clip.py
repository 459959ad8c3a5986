"""Gradient clipping by the global norm, as ``torch.nn.utils.clip_grad_norm_``.

Exploding gradients in a recurrent network come from the product of T Jacobians
W_hh^T diag(f'(a_t)) in backpropagation through time: when its largest singular values
exceed one, the gradient grows geometrically with T. Clipping rescales all gradients together
so that their joint norm is at most ``max_norm``; the direction of the update is kept.

    total = || (||g_1||_p, ||g_2||_p, ...) ||_p          (the p-norm of all entries at once)
    coef  = min(max_norm / (total + 1e-6), 1)
    g_k  <- coef * g_k                                     for every gradient array
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np

from dlbook.module import Module

__all__ = ["clip_grad_norm"]


def _gradient_arrays(grads) -> list[np.ndarray]:
    """The gradient arrays inside a Module, a list of Modules, a dict or a list of arrays."""
    if isinstance(grads, Module):
        grads = [grads]
    if isinstance(grads, np.ndarray):
        grads = [grads]
    elif isinstance(grads, Mapping):
        grads = list(grads.values())
    else:
        grads = list(grads)
    arrays: dict[int, np.ndarray] = {}  # each array once, in order, even if listed twice
    for item in grads:
        if isinstance(item, Module):
            for module in item.modules():
                for value in module.grads.values():
                    arrays.setdefault(id(value), value)
        else:
            arrays.setdefault(id(item), item)
    for value in arrays.values():
        if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.floating):
            raise ValueError(f"grads: expected floating-point ndarrays (they are scaled in place), "
                             f"got {type(value).__name__} of dtype {getattr(value, 'dtype', None)}")
    return list(arrays.values())


def clip_grad_norm(grads: Module | Iterable | Mapping[str, np.ndarray], max_norm: float,
                   norm_type: float = 2.0, error_if_nonfinite: bool = False) -> float:
    """Scale gradients in place so that their total ``norm_type``-norm is at most ``max_norm``.

    Args:
        grads: a dlbook :class:`~dlbook.module.Module` (every ``grads`` array of it and its
            children), a list of Modules, a dict of arrays, or a list of arrays.
        max_norm: the largest allowed total norm (> 0).
        norm_type: p of the p-norm, p > 0, or ``float('inf')`` for the largest |entry|.
        error_if_nonfinite: raise ``RuntimeError`` when the total norm is NaN or infinite
            (otherwise the gradients are scaled by a NaN coefficient, as torch does).
    Returns:
        The total norm of the gradients *before* clipping, as a Python float.

    Matches ``torch.nn.utils.clip_grad_norm_``: the same total norm (the norm of the per-array
    norms), the same coefficient max_norm / (total + 1e-6) clamped at 1, applied to every array
    (a factor of exactly 1 when the norm is already small enough).
    """
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"norm_type: expected a positive number or inf, got {norm_type!r}")
    if not max_norm > 0:
        raise ValueError(f"max_norm: expected a positive number, got {max_norm!r}")
    arrays = _gradient_arrays(grads)
    if not arrays:
        return 0.0
    if math.isinf(norm_type):
        total = max(float(np.max(np.abs(a))) if a.size else 0.0 for a in arrays)
    else:
        norms = np.array([np.linalg.norm(a.ravel(), ord=norm_type) if a.size else 0.0
                          for a in arrays], dtype=np.float64)
        total = float(np.linalg.norm(norms, ord=norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm: the total norm of order {norm_type} is {total}; "
                           "set error_if_nonfinite=False to scale anyway")
    coef = min(max_norm / (total + 1e-6), 1.0)
    with np.errstate(invalid="ignore"):  # inf * 0 -> nan, as in torch
        for a in arrays:
            a *= coef
    return total
