"""Loss functions as forward/backward pairs, each averaged over the batch like PyTorch's defaults.

``xxx_forward(...) -> (loss, cache)`` returns a Python float and a cache;
``xxx_backward(cache, dout=1.0) -> dx`` returns the gradient with respect to the first
argument (predictions, probabilities or logits). ``dout`` is the upstream gradient of the
scalar loss. This is the one departure from the layers' ``(dout, cache)`` order: a loss is
almost always the end of the graph, so its upstream gradient comes second, defaulting to 1.
"""

from __future__ import annotations

import numpy as np

from dlbook._validate import as_array, check_ndim, check_shape
from dlbook.activations import log_softmax

__all__ = [
    "mse_forward", "mse_backward",
    "binary_cross_entropy_forward", "binary_cross_entropy_backward",
    "cross_entropy_forward", "cross_entropy_backward",
]

# torch.nn.functional.binary_cross_entropy clamps each log term at -100 so that a
# prediction of exactly 0 or 1 gives a large finite loss instead of inf; we do the same.
_LOG_CLAMP = -100.0


def mse_forward(pred: np.ndarray, target: np.ndarray):
    """Mean squared error, L = (1/M) sum_i (pred_i - target_i)^2 over all M elements.

    Args:
        pred: predictions, any shape.
        target: same shape as ``pred``.
    Returns:
        ``(loss, cache)``. Matches ``F.mse_loss(pred, target)`` (reduction ``'mean'``).
    """
    pred = as_array(pred, "pred")
    target = as_array(target, "target")
    check_shape(target, pred.shape, "target")
    diff = pred - target
    return float(np.mean(diff * diff)), (diff,)


def mse_backward(cache, dout: float = 1.0) -> np.ndarray:
    """dL/dpred = 2 (pred - target) / M, times ``dout``."""
    (diff,) = cache
    return dout * 2.0 * diff / diff.size


def binary_cross_entropy_forward(prob: np.ndarray, target: np.ndarray):
    """Binary cross-entropy (log loss) on probabilities, averaged over all elements.

    L = -(1/M) sum_i [ y_i log p_i + (1 - y_i) log(1 - p_i) ]

    Each log is clamped at -100 as in ``F.binary_cross_entropy``, so p in {0, 1} is allowed.

    Args:
        prob: predicted probabilities in [0, 1], any shape.
        target: targets in [0, 1], same shape.
    Returns:
        ``(loss, cache)``.
    """
    prob = as_array(prob, "prob")
    target = as_array(target, "target")
    check_shape(target, prob.shape, "target")
    if np.any((prob < 0) | (prob > 1)):
        raise ValueError("prob: expected probabilities in [0, 1] (pass logits through sigmoid first)")
    if np.any((target < 0) | (target > 1)):
        raise ValueError("target: expected values in [0, 1]")
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(prob), _LOG_CLAMP)
        log_1mp = np.maximum(np.log1p(-prob), _LOG_CLAMP)
    loss = -np.mean(target * log_p + (1.0 - target) * log_1mp)
    return float(loss), (prob, target)


def binary_cross_entropy_backward(cache, dout: float = 1.0) -> np.ndarray:
    """dL/dp = (p - y) / (p (1 - p)) / M, with p(1 - p) clamped below at 1e-12 as torch does."""
    prob, target = cache
    denom = np.maximum(prob * (1.0 - prob), 1e-12)
    return dout * (prob - target) / denom / prob.size


def cross_entropy_forward(logits: np.ndarray, targets: np.ndarray):
    """Softmax cross-entropy on logits, averaged over the batch.

    L = -(1/N) sum_n log softmax(z_n)[y_n]

    Args:
        logits: (N, K) unnormalised scores.
        targets: (N,) integer class indices in [0, K).
    Returns:
        ``(loss, cache)``. Matches ``F.cross_entropy(logits, targets)``.
    """
    logits = as_array(logits, "logits")
    check_ndim(logits, 2, "logits", "(N, K)")
    n, k = logits.shape
    targets = np.asarray(targets)
    check_shape(targets, (n,), "targets")
    if not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets: expected integer class indices, got dtype {targets.dtype}")
    if n == 0:
        raise ValueError("logits: the batch is empty (N = 0)")
    if targets.min() < 0 or targets.max() >= k:
        raise ValueError(f"targets: class indices must lie in [0, {k}), got range "
                         f"[{targets.min()}, {targets.max()}]")
    logp = log_softmax(logits, axis=1)  # (N, K)
    loss = -np.mean(logp[np.arange(n), targets])
    return float(loss), (logp, targets)


def cross_entropy_backward(cache, dout: float = 1.0) -> np.ndarray:
    """dL/dz = (softmax(z) - onehot(y)) / N, times ``dout``."""
    logp, targets = cache
    n = logp.shape[0]
    dlogits = np.exp(logp)  # softmax, (N, K)
    dlogits[np.arange(n), targets] -= 1.0
    return dout * dlogits / n
