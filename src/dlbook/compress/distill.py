"""Knowledge distillation (Hinton et al., 2015): train a small student on a teacher's soft targets.

Softmax at temperature T turns logits z into q_j = exp(z_j / T) / sum_k exp(z_k / T); T > 1
softens the distribution and exposes how the teacher ranks the wrong classes. With student
logits s, teacher logits t, hard labels y and N examples, the loss is

    L = alpha * T^2 * (1/N) sum_n KL(q_t[n] || q_s[n]) + (1 - alpha) * CE(s, y),
    KL(p || q) = sum_j p_j (log p_j - log q_j),

with q_s = softmax(s / T), q_t = softmax(t / T) and CE the usual cross-entropy at T = 1. The
gradient of the soft term with respect to s is alpha * T * (q_s - q_t) / N, the factor T^2
included. For large T the difference q_s - q_t shrinks like 1/T, so without the T^2 the soft
gradient alpha * (q_s - q_t) / (N T) would fade like 1/T^2 against the hard term's; with it the
gradient stays roughly the same size as T changes.
The teacher is fixed: no gradient flows into t.
"""

from __future__ import annotations

import numpy as np

from dlbook._validate import as_array, check_ndim, check_positive
from dlbook.activations import log_softmax, softmax

__all__ = ["soft_targets", "distillation_loss_forward", "distillation_loss_backward"]


def soft_targets(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(z / T) along the last axis: the temperature-softened class probabilities."""
    logits = as_array(logits, "logits")
    check_positive(temperature, "temperature")
    return softmax(logits / temperature, axis=-1)


def distillation_loss_forward(student_logits: np.ndarray, teacher_logits: np.ndarray,
                              targets: np.ndarray | None, temperature: float = 4.0,
                              alpha: float = 0.9):
    """Hinton et al.'s loss: alpha T^2 KL(soft teacher || soft student) + (1 - alpha) CE(s, y).

    Args:
        student_logits: (N, K) logits s of the student (the only input that gets a gradient).
        teacher_logits: (N, K) logits t of the teacher.
        targets: (N,) integer labels, or None when ``alpha == 1`` (soft targets only).
        temperature: T > 0.
        alpha: weight of the soft term, in [0, 1].
    Returns:
        ``(loss, cache)`` with loss a float. Equals
        ``alpha * F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean")
        * T * T + (1 - alpha) * F.cross_entropy(s, y)``.
    """
    s = as_array(student_logits, "student_logits")
    t = as_array(teacher_logits, "teacher_logits")
    check_ndim(s, 2, "student_logits", "(N, K)")
    if t.shape != s.shape:
        raise ValueError(f"teacher_logits: expected shape {s.shape} (that of student_logits), "
                         f"got {t.shape}")
    n, k = s.shape
    if n == 0:
        raise ValueError("student_logits: the batch is empty (N = 0)")
    check_positive(temperature, "temperature")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a weight in [0, 1], got {alpha!r}")
    if targets is None:
        if alpha != 1.0:
            raise ValueError("targets: labels are needed unless alpha == 1 (soft term only)")
    else:
        targets = np.asarray(targets)
        if targets.shape != (n,) or not np.issubdtype(targets.dtype, np.integer):
            raise ValueError(f"targets: expected ({n},) integer labels, got shape "
                             f"{targets.shape} and dtype {targets.dtype}")
        if targets.min() < 0 or targets.max() >= k:
            raise ValueError(f"targets: labels must lie in [0, {k}), got range "
                             f"[{targets.min()}, {targets.max()}]")
    log_qs = log_softmax(s / temperature, axis=1)  # (N, K)
    log_qt = log_softmax(t / temperature, axis=1)  # (N, K)
    qt = np.exp(log_qt)
    kl = np.sum(qt * (log_qt - log_qs)) / n  # "batchmean": sum over classes, mean over batch
    loss = alpha * temperature**2 * kl
    log_p = None
    if alpha < 1.0:
        log_p = log_softmax(s, axis=1)  # (N, K), temperature 1
        loss += (1.0 - alpha) * -np.mean(log_p[np.arange(n), targets])
    return float(loss), (log_qs, qt, log_p, targets, temperature, alpha)


def distillation_loss_backward(dout: float, cache) -> np.ndarray:
    """Gradient with respect to the student's logits, times the scalar upstream ``dout``.

    dL/ds = alpha * T * (q_s - q_t) / N + (1 - alpha) * (softmax(s) - onehot(y)) / N.
    """
    log_qs, qt, log_p, targets, temperature, alpha = cache
    dout = np.asarray(dout, dtype=float)
    if dout.ndim != 0:
        raise ValueError(f"dout: expected a scalar (the loss is a scalar), got shape {dout.shape}")
    n = qt.shape[0]
    ds = alpha * temperature * (np.exp(log_qs) - qt) / n  # (N, K)
    if log_p is not None:
        dhard = np.exp(log_p)
        dhard[np.arange(n), targets] -= 1.0
        ds = ds + (1.0 - alpha) * dhard / n
    return float(dout) * ds
