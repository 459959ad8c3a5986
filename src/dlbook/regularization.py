"""L1 and L2 weight penalties, their gradients, and the gradient-descent step that uses them.

A regularised cost adds a penalty on the weights to the data cost C0:

    L1:  C = C0 + lam * sum |w|          dC/dw = dC0/dw + lam * sgn(w)
    L2:  C = C0 + (lam / 2) * sum w^2    dC/dw = dC0/dw + lam * w

Here ``lam`` is the whole coefficient in front of the sum. Seed 000 writes the penalties as
(lambda / n) sum |w| and (lambda / 2n) sum w^2 with n the number of training samples, so its
lambda / n is this module's ``lam``. A descent step moves *against* the gradient, which is what
makes both penalties shrink the weights (see :func:`regularized_sgd_step`).
"""

from __future__ import annotations

import numpy as np

from dlbook._validate import as_array, check_positive, check_shape

__all__ = ["l1_penalty", "l1_penalty_grad", "l2_penalty", "l2_penalty_grad", "regularized_sgd_step"]


def _check_strength(lam: float, name: str = "lam") -> float:
    if not np.isfinite(lam) or lam < 0:
        raise ValueError(f"{name}: expected a finite coefficient >= 0, got {lam!r}")
    return float(lam)


def l1_penalty(w: np.ndarray, lam: float) -> float:
    """L1 penalty, lam * sum_i |w_i| (seed 000 (2-13) with lam = lambda / n).

    Args:
        w: weights, any shape.
        lam: coefficient >= 0.
    Returns:
        A float. Matches ``lam * torch.abs(w).sum()``.
    """
    w = as_array(w, "w")
    return _check_strength(lam) * float(np.sum(np.abs(w)))


def l1_penalty_grad(w: np.ndarray, lam: float) -> np.ndarray:
    """(Sub)gradient of the L1 penalty, lam * sgn(w), with sgn(0) = 0 (torch's choice for abs).

    Args:
        w: weights, any shape.
    Returns:
        Array with the shape of ``w`` (seed 000 (2-14), penalty part).
    """
    w = as_array(w, "w")
    return _check_strength(lam) * np.sign(w)


def l2_penalty(w: np.ndarray, lam: float) -> float:
    """L2 penalty, (lam / 2) * sum_i w_i^2 (seed 000 (2-16) with lam = lambda / n).

    The 1/2 cancels the 2 of the derivative. Matches ``lam / 2 * (w ** 2).sum()``.
    """
    w = as_array(w, "w")
    return 0.5 * _check_strength(lam) * float(np.sum(w * w))


def l2_penalty_grad(w: np.ndarray, lam: float) -> np.ndarray:
    """Gradient of the L2 penalty, lam * w. Returns an array with the shape of ``w``."""
    w = as_array(w, "w")
    return _check_strength(lam) * w


def regularized_sgd_step(w: np.ndarray, grad: np.ndarray, *, lr: float, l1: float = 0.0,
                         l2: float = 0.0) -> np.ndarray:
    """One gradient-descent step on C = C0 + l1 sum|w| + (l2/2) sum w^2, returned as a new array.

        w <- w - lr * (dC0/dw + l1 * sgn(w) + l2 * w)
           = (1 - lr l2) w - lr l1 sgn(w) - lr dC0/dw

    so the L2 term multiplies w by the decay factor 1 - lr l2 and the L1 term moves every
    non-zero weight by lr l1 towards zero. Seed 000 prints both updates, (2-15) and (2-17),
    with "+" signs, which is gradient ascent: the weights would grow.

    Args:
        w: current weights, any shape.
        grad: dC0/dw, the gradient of the data cost, same shape.
        lr: learning rate (eta) > 0.
        l1, l2: penalty coefficients >= 0 (lambda / n in seed 000's notation).
    Returns:
        The updated weights (``w`` is not modified). With ``l1 = 0`` this is exactly
        ``torch.optim.SGD(lr=lr, weight_decay=l2)``.
    """
    w = as_array(w, "w")
    grad = as_array(grad, "grad")
    check_shape(grad, w.shape, "grad")
    check_positive(lr, "lr")
    l1 = _check_strength(l1, "l1")
    l2 = _check_strength(l2, "l2")
    return w - lr * (grad + l1 * np.sign(w) + l2 * w)
