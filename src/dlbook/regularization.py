"""L1 and L2 weight penalties, their gradients, and the gradient-descent step that uses them.

A regularised cost adds a penalty on the weights to the data cost C0:

    L1:  C = C0 + lam * sum |w|          dC/dw = dC0/dw + lam * sgn(w)
    L2:  C = C0 + (lam / 2) * sum w^2    dC/dw = dC0/dw + lam * w

Here ``lam`` is the whole coefficient in front of the sum. The CNN textbook chapter writes the
penalties as (lambda / n) sum |w| and (lambda / 2n) sum w^2 with n the number of training
samples, so its lambda / n is this module's ``lam``. A descent step moves *against* the
gradient, which is what makes both penalties shrink the weights (see
:func:`regularized_sgd_step`).

The elastic net (Zou & Hastie, 2005) adds both penalties. A max-norm constraint (Srebro &
Shraibman, 2005; used with dropout by Srivastava et al., 2014) does not add to the cost: after
each update it projects every unit's incoming weight vector back into the ball |w| <= c.
"""

from __future__ import annotations

import numpy as np

from dlbook._validate import as_array, check_positive, check_shape

__all__ = ["l1_penalty", "l1_penalty_grad", "l2_penalty", "l2_penalty_grad", "regularized_sgd_step",
           "elastic_net_penalty", "elastic_net_penalty_grad", "max_norm", "apply_max_norm"]


def _check_strength(lam: float, name: str = "lam") -> float:
    if not np.isfinite(lam) or lam < 0:
        raise ValueError(f"{name}: expected a finite coefficient >= 0, got {lam!r}")
    return float(lam)


def l1_penalty(w: np.ndarray, lam: float) -> float:
    """L1 penalty, lam * sum_i |w_i| (the CNN textbook chapter's (2-13) with lam = lambda / n).

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
        Array with the shape of ``w`` (the CNN textbook chapter's (2-14),
        penalty part).
    """
    w = as_array(w, "w")
    return _check_strength(lam) * np.sign(w)


def l2_penalty(w: np.ndarray, lam: float) -> float:
    """L2 penalty, (lam / 2) * sum_i w_i^2 (the CNN textbook chapter's (2-16), lam = lambda / n).

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
    non-zero weight by lr l1 towards zero. The CNN textbook chapter prints both updates, (2-15)
    and (2-17), with "+" signs, which is gradient ascent: the weights would grow.

    Args:
        w: current weights, any shape.
        grad: dC0/dw, the gradient of the data cost, same shape.
        lr: learning rate (eta) > 0.
        l1, l2: penalty coefficients >= 0 (lambda / n in the CNN textbook chapter's
            notation).
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


def elastic_net_penalty(w: np.ndarray, l1: float, l2: float) -> float:
    """Elastic-net penalty, l1 * sum_i |w_i| + (l2 / 2) * sum_i w_i^2 (Zou & Hastie, 2005).

    The L1 part makes weights exactly zero, the L2 part keeps correlated weights together. In
    the source's form lambda_1 |w|_1 + lambda_2 |w|_2^2 this is l1 = lambda_1, l2 = 2 lambda_2.
    """
    l1, l2 = _check_strength(l1, "l1"), _check_strength(l2, "l2")
    return l1_penalty(w, l1) + l2_penalty(w, l2)


def elastic_net_penalty_grad(w: np.ndarray, l1: float, l2: float) -> np.ndarray:
    """(Sub)gradient of the elastic-net penalty, l1 * sgn(w) + l2 * w (sgn(0) = 0)."""
    l1, l2 = _check_strength(l1, "l1"), _check_strength(l2, "l2")
    return l1_penalty_grad(w, l1) + l2_penalty_grad(w, l2)


def max_norm(w: np.ndarray, c: float, eps: float = 0.0) -> np.ndarray:
    """Project each unit's incoming weight vector onto the ball of radius ``c``.

    A unit's incoming weights are one slice w[j] along axis 0 (a row (D_in,) of a (D_out, D_in)
    weight, a filter (C, KH, KW) of a (F, C, KH, KW) one). Each slice with |w[j]|_2 > c is scaled
    by c / (|w[j]|_2 + eps); the others are kept:

        w[j] <- w[j] * min(1, c / (|w[j]| + eps)).

    With ``eps = 0`` (default) the projection is exact (the norm becomes c). ``eps = 1e-7`` is
    ``torch.renorm(w, p=2, dim=0, maxnorm=c)`` exactly.

    Args:
        w: weights with at least 2 dimensions (D_out, ...).
        c: the radius, > 0 (3 to 4 is the usual choice).
        eps: added to the norm in the scale factor, >= 0.
    Returns:
        A new array with the shape of ``w``.
    """
    w = as_array(w, "w")
    if w.ndim < 2:
        raise ValueError(f"w: expected a weight with at least 2 dimensions (D_out, ...), "
                         f"got shape {w.shape}")
    check_positive(c, "c")
    if not eps >= 0:
        raise ValueError(f"eps: expected >= 0, got {eps!r}")
    norms = np.linalg.norm(w.reshape(w.shape[0], -1), axis=1)  # (D_out,)
    scale = np.where(norms > c, c / (norms + eps), 1.0)
    return w * scale.reshape((-1,) + (1,) * (w.ndim - 1))


def apply_max_norm(model, c: float, eps: float = 0.0) -> None:
    """Apply :func:`max_norm` in place to every parameter of ``model`` with 2 or more dimensions.

    Biases (1-D) are left alone. Call it after each optimizer step, e.g. through
    ``fit(..., after_step=lambda: apply_max_norm(model, 3.0))``.
    """
    for module in model.modules():
        for param in module.params.values():
            if param.ndim >= 2:
                param[...] = max_norm(param, c, eps)
