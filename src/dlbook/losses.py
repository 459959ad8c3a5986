"""Loss functions as forward/backward pairs, each averaged over the batch like PyTorch's defaults.

``xxx_forward(...) -> (loss, cache)`` returns a Python float and a cache;
``xxx_backward(cache, dout=1.0) -> dx`` returns the gradient with respect to the first
argument (predictions, probabilities or logits). ``dout`` is the upstream gradient of the
scalar loss. This is the one departure from the layers' ``(dout, cache)`` order: a loss is
almost always the end of the graph, so its upstream gradient comes second, defaulting to 1.
:func:`large_margin_softmax_backward` returns two gradients, ``(dx, dweight)``, because the
class weights are part of the loss.

The losses by task:

* classification: ``cross_entropy``, ``multi_margin`` (multi-class hinge), ``ramp`` (the hinge
  truncated for robustness to wrong labels), ``large_margin_softmax`` (L-Softmax), and
  ``center_loss`` on the features (with its centre update :func:`center_update`);
* regression: ``mse``, ``l1``, ``smooth_l1``, ``tukey_biweight`` (robust to outliers);
* distributions: ``binary_cross_entropy``, ``kl_div`` (label-distribution learning).

Two departures from "averaged over the batch": ``center_loss_forward`` sums over the batch by
default (the paper's form; ``reduction='mean'`` averages), and ``ramp_forward`` sums its
per-class terms without dividing by the number of classes (torch's ``multi_margin_loss``
divides; the ramp has no torch counterpart).
"""

from __future__ import annotations

import numpy as np

import math

from dlbook._validate import as_array, check_ndim, check_positive, check_shape
from dlbook.activations import log_softmax

__all__ = [
    "mse_forward", "mse_backward",
    "binary_cross_entropy_forward", "binary_cross_entropy_backward",
    "cross_entropy_forward", "cross_entropy_backward",
    "l1_forward", "l1_backward", "smooth_l1_forward", "smooth_l1_backward",
    "tukey_biweight", "tukey_biweight_forward", "tukey_biweight_backward",
    "kl_div_forward", "kl_div_backward",
    "multi_margin_forward", "multi_margin_backward",
    "hinge", "ramp", "ramp_forward", "ramp_backward",
    "lsoftmax_psi", "large_margin_softmax_forward", "large_margin_softmax_backward",
    "center_loss_forward", "center_loss_backward", "center_update",
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



def _check_pair(pred, target, pred_name: str = "pred", target_name: str = "target"):
    pred = as_array(pred, pred_name)
    target = as_array(target, target_name)
    check_shape(target, pred.shape, target_name)
    if pred.size == 0:
        raise ValueError(f"{pred_name}: empty array")
    return pred, target


def _check_class_targets(targets, n: int, k: int, name: str = "targets") -> np.ndarray:
    targets = np.asarray(targets)
    check_shape(targets, (n,), name)
    if not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"{name}: expected integer class indices, got dtype {targets.dtype}")
    if n == 0:
        raise ValueError(f"{name}: the batch is empty (N = 0)")
    if targets.min() < 0 or targets.max() >= k:
        raise ValueError(f"{name}: class indices must lie in [0, {k}), got range "
                         f"[{targets.min()}, {targets.max()}]")
    return targets


# --- regression: L1, smooth L1, Tukey's biweight ---------------------------------------------

def l1_forward(pred: np.ndarray, target: np.ndarray):
    """Mean absolute error, L = (1/M) sum_i |pred_i - target_i| over all M elements.

    Matches ``F.l1_loss(pred, target)`` (reduction ``'mean'``). The source's form
    (1/N) sum_i sum_t |l_t^i| is this times the number of outputs per sample.
    """
    pred, target = _check_pair(pred, target)
    diff = pred - target
    return float(np.mean(np.abs(diff))), (diff,)


def l1_backward(cache, dout: float = 1.0) -> np.ndarray:
    """dL/dpred = sgn(pred - target) / M, times ``dout`` (sgn(0) = 0, as torch)."""
    (diff,) = cache
    return dout * np.sign(diff) / diff.size


def smooth_l1_forward(pred: np.ndarray, target: np.ndarray, beta: float = 1.0):
    """Smooth L1 (Huber-like) loss, averaged over all elements; d = pred - target:

        l(d) = 0.5 d^2 / beta   if |d| < beta,     |d| - 0.5 beta   otherwise.

    Quadratic near 0 (a gradient that fades as the fit improves), linear in the tails (the
    bounded gradient of L1 for outliers). ``beta = 0`` is the L1 loss. Matches
    ``F.smooth_l1_loss(pred, target, beta=beta)``.
    """
    pred, target = _check_pair(pred, target)
    if not beta >= 0:
        raise ValueError(f"beta: expected >= 0, got {beta!r}")
    diff = pred - target
    absd = np.abs(diff)
    inner = absd < beta
    safe_beta = beta if beta > 0 else 1.0  # beta = 0 has no quadratic part at all
    loss = np.where(inner, 0.5 * diff * diff / safe_beta, absd - 0.5 * beta)
    return float(np.mean(loss)), (diff, beta)


def smooth_l1_backward(cache, dout: float = 1.0) -> np.ndarray:
    """dL/dpred = (d / beta if |d| < beta else sgn(d)) / M, times ``dout``."""
    diff, beta = cache
    safe_beta = beta if beta > 0 else 1.0
    grad = np.where(np.abs(diff) < beta, diff / safe_beta, np.sign(diff))
    return dout * grad / diff.size


TUKEY_C = 4.6851  # 95 % asymptotic efficiency for Gaussian residuals


def tukey_biweight(r: np.ndarray, c: float = TUKEY_C) -> np.ndarray:
    """Tukey's biweight rho(r), element-wise:

        rho(r) = c^2 / 6 * (1 - (1 - (r / c)^2)^3)   if |r| <= c,     c^2 / 6   otherwise.

    Quadratic near 0 (rho ~ r^2 / 2), flat beyond c: a residual larger than c adds a constant
    and pulls on the fit no more.
    """
    r = as_array(r, "r")
    check_positive(c, "c")
    inside = 1.0 - (r / c) ** 2
    return np.where(np.abs(r) <= c, c * c / 6.0 * (1.0 - inside ** 3), c * c / 6.0)


def tukey_biweight_forward(pred: np.ndarray, target: np.ndarray, c: float = TUKEY_C):
    """Tukey's biweight loss, L = (1/M) sum_i rho(pred_i - target_i) over all M elements.

    The source's form (1/N) sum_n sum_t rho(l_t^n) is this times the number of outputs per
    sample. Belagiannis et al. (2015) use it for robust regression (they also divide the residuals by
    1.4826 times their median absolute deviation before applying rho; do that outside if
    wanted). ``c = 4.6851`` gives 95 % efficiency under Gaussian noise. No torch equivalent:
    tested by central differences and a torch autograd twin of the formula.
    """
    pred, target = _check_pair(pred, target)
    diff = pred - target
    return float(np.mean(tukey_biweight(diff, c))), (diff, c)


def tukey_biweight_backward(cache, dout: float = 1.0) -> np.ndarray:
    """dL/dpred = psi(d) / M with psi(r) = r (1 - (r/c)^2)^2 for |r| <= c and 0 beyond."""
    diff, c = cache
    inside = 1.0 - (diff / c) ** 2
    psi = np.where(np.abs(diff) <= c, diff * inside * inside, 0.0)
    return dout * psi / diff.size


# --- label distributions: KL divergence -------------------------------------------------------

def kl_div_forward(log_probs: np.ndarray, target: np.ndarray):
    """KL divergence from the predicted to the target distribution, averaged over the batch:

        L = (1/N) sum_n sum_k y_nk (log y_nk - log p_nk),   with 0 log 0 = 0.

    It equals the soft-target cross-entropy -(1/N) sum y log p minus the constant entropy of y,
    so both have the same gradient. Feed ``log_softmax(logits)`` as ``log_probs``.

    Args:
        log_probs: (N, K) predicted log-probabilities.
        target: (N, K) target distributions (each row non-negative, summing to 1).
    Returns:
        ``(loss, cache)``. Matches ``F.kl_div(log_probs, target, reduction='batchmean')``.
    """
    log_probs, target = _check_pair(log_probs, target, "log_probs", "target")
    check_ndim(log_probs, 2, "log_probs", "(N, K)")
    if np.any(target < 0):
        raise ValueError("target: expected non-negative probabilities")
    positive = target > 0
    log_target = np.log(np.where(positive, target, 1.0))
    terms = np.where(positive, target * (log_target - log_probs), 0.0)
    return float(terms.sum() / log_probs.shape[0]), (target,)


def kl_div_backward(cache, dout: float = 1.0) -> np.ndarray:
    """dL/dlog_probs = -y / N, times ``dout``."""
    (target,) = cache
    return -dout * target / target.shape[0]


# --- classification margins: multi-class hinge, ramp ------------------------------------------

def multi_margin_forward(scores: np.ndarray, targets: np.ndarray, p: int = 1,
                         margin: float = 1.0, weight: np.ndarray | None = None):
    """Multi-class hinge loss (Weston-Watkins), averaged over the batch:

        L = (1/N) sum_n (1/K) sum_{j != y_n} w_{y_n} max(0, margin - s_{n,y_n} + s_{n,j})^p

    Every wrong class whose score comes within ``margin`` of the true one is penalised.

    Args:
        scores: (N, K) class scores.
        targets: (N,) integer classes.
        p: 1 (hinge) or 2 (squared hinge).
        margin: the required gap.
        weight: optional (K,) class weights (indexed by the true class).
    Returns:
        ``(loss, cache)``. Matches ``F.multi_margin_loss(scores, targets, p, margin, weight)``.
    """
    scores = as_array(scores, "scores")
    check_ndim(scores, 2, "scores", "(N, K)")
    n, k = scores.shape
    targets = _check_class_targets(targets, n, k)
    if p not in (1, 2):
        raise ValueError(f"p: expected 1 or 2, got {p!r}")
    if weight is not None:
        weight = as_array(weight, "weight")
        check_shape(weight, (k,), "weight")
    rows = np.arange(n)
    gaps = margin - scores[rows, targets][:, None] + scores  # (N, K)
    gaps[rows, targets] = 0.0  # the true class is not compared with itself
    active = gaps > 0
    w = np.ones(n) if weight is None else weight[targets]  # (N,)
    terms = np.where(active, gaps, 0.0) ** p * w[:, None]
    return float(terms.sum() / (n * k)), (gaps, active, w, targets, p)


def multi_margin_backward(cache, dout: float = 1.0) -> np.ndarray:
    """d/ds_j = w p gap_j^(p-1) / (N K) for each active wrong class j; d/ds_y = minus their sum."""
    gaps, active, w, targets, p = cache
    n, k = gaps.shape
    per = np.where(active, p * gaps ** (p - 1), 0.0) * w[:, None] / (n * k)  # (N, K)
    dscores = per.copy()
    dscores[np.arange(n), targets] = -per.sum(axis=1)
    return dout * dscores


def hinge(z: np.ndarray, margin: float = 1.0) -> np.ndarray:
    """Hinge of a margin z = y f(x) (y in {-1, +1}): H(z) = max(0, margin - z), element-wise."""
    z = as_array(z, "z")
    return np.maximum(0.0, margin - z)


def ramp(z: np.ndarray, s: float = -1.0) -> np.ndarray:
    """Ramp (truncated hinge) of a margin z: R_s(z) = H_1(z) - H_s(z) = min(max(0, 1 - z), 1 - s).

    Collobert et al. (2006): the hinge, capped at 1 - s for z <= s, so a badly misclassified
    point (an outlier or a wrong label) costs at most 1 - s. Requires s < 1.
    """
    z = as_array(z, "z")
    if not s < 1:
        raise ValueError(f"s: expected s < 1, got {s!r}")
    return np.maximum(0.0, 1.0 - z) - np.maximum(0.0, s - z)


def ramp_forward(scores: np.ndarray, targets: np.ndarray, s: float | None = None):
    """Multi-class ramp loss: the Weston-Watkins hinge with each term truncated at 1 - s.

        L = (1/N) sum_n sum_{j != y_n} R_s(s_{n,y_n} - s_{n,j}),
        R_s(z) = min(max(0, 1 - z), 1 - s)

    The default ``s = -1 / (K - 1)`` is Wu & Liu's (2007) choice (-1 for two classes, -0.5 for
    three). With K = 2 this is the binary ramp of the margin f = s_1 - s_0 with y = +-1.
    Unlike :func:`multi_margin_forward` the terms are not divided by K.

    Args:
        scores: (N, K) class scores.
        targets: (N,) integer classes.
        s: truncation point, s < 1.
    Returns:
        ``(loss, cache)``. The loss is not convex; the kinks at z = 1 and z = s take the
        subgradient 0. No torch equivalent: tested by central differences.
    """
    scores = as_array(scores, "scores")
    check_ndim(scores, 2, "scores", "(N, K)")
    n, k = scores.shape
    if k < 2:
        raise ValueError(f"scores: expected at least 2 classes, got shape {scores.shape}")
    targets = _check_class_targets(targets, n, k)
    s = -1.0 / (k - 1) if s is None else float(s)
    rows = np.arange(n)
    z = scores[rows, targets][:, None] - scores  # (N, K) margins of the true class over each j
    terms = ramp(z, s)
    terms[rows, targets] = 0.0
    slope = (z > s) & (z < 1)  # where R_s'(z) = -1
    slope[rows, targets] = False
    return float(terms.sum() / n), (slope, targets)


def ramp_backward(cache, dout: float = 1.0) -> np.ndarray:
    """dR/dz = -1 for s < z < 1, else 0; z = s_y - s_j, so d/ds_j = +1/N and d/ds_y = -count/N."""
    slope, targets = cache
    n = slope.shape[0]
    dscores = slope / n
    dscores[np.arange(n), targets] = -slope.sum(axis=1) / n
    return dout * dscores


# --- large-margin softmax (L-Softmax) ---------------------------------------------------------

def lsoftmax_psi(theta: np.ndarray, m: int) -> np.ndarray:
    """psi(theta) = (-1)^k cos(m theta) - 2k for theta in [k pi/m, (k+1) pi/m], k = 0..m-1.

    Liu et al. (2016): it equals cos(m theta) on [0, pi/m], decreases monotonically over
    [0, pi] (so the margin keeps a gradient at every angle), and psi(pi) = 1 - 2m. m = 1 is cos.
    """
    theta = as_array(theta, "theta")
    m = _check_m(m)
    k = np.clip(np.floor(theta * m / math.pi), 0, m - 1)
    return (-1.0) ** k * np.cos(m * theta) - 2.0 * k


def _check_m(m) -> int:
    if not isinstance(m, (int, np.integer)) or isinstance(m, bool) or m < 1:
        raise ValueError(f"m: expected a positive int (the angular margin), got {m!r}")
    return int(m)


def large_margin_softmax_forward(x: np.ndarray, weight: np.ndarray, targets: np.ndarray,
                                 m: int = 2, lam: float = 0.0):
    """Large-margin softmax loss (L-Softmax, Liu et al., 2016), averaged over the batch.

    The logit of class j is f_j = W_j . x = |W_j| |x| cos(theta_j). For the true class the
    cosine is replaced by psi(theta_y) (:func:`lsoftmax_psi`), which is smaller, so the true
    class must win by an angular margin:

        f_y = |W_y| |x| (lam cos(theta_y) + psi(theta_y)) / (1 + lam),
        L = -(1/N) sum_n log softmax(f_n)[y_n].

    ``lam`` is the paper's annealing weight (start large, decrease towards 0 during training);
    ``lam = 0`` is the plain L-Softmax and ``m = 1`` the ordinary softmax cross-entropy of
    x W^T. psi is evaluated through the Chebyshev polynomial cos(m theta) = T_m(cos theta), as in
    the paper, so the gradient never divides by sin(theta).

    Args:
        x: (N, D) features (no row may be zero).
        weight: (K, D) class weight vectors, one row per class (no bias).
        targets: (N,) integer classes.
        m: integer angular margin (1, 2, 3, 4 in the paper).
        lam: annealing weight >= 0.
    Returns:
        ``(loss, cache)``. No torch equivalent: tested by central differences and, for m = 1,
        against ``F.cross_entropy(x @ weight.T, targets)``.
    """
    x = as_array(x, "x")
    weight = as_array(weight, "weight")
    check_ndim(x, 2, "x", "(N, D)")
    check_ndim(weight, 2, "weight", "(K, D)")
    n, d = x.shape
    k = weight.shape[0]
    if weight.shape[1] != d:
        raise ValueError(f"weight: expected shape ({k}, {d}) (x has D = {d}), got {weight.shape}")
    targets = _check_class_targets(targets, n, k)
    m = _check_m(m)
    if not lam >= 0:
        raise ValueError(f"lam: expected >= 0, got {lam!r}")
    x_norm = np.linalg.norm(x, axis=1)  # (N,)
    w_y = weight[targets]  # (N, D)
    w_norm = np.linalg.norm(w_y, axis=1)  # (N,)
    if np.any(x_norm == 0) or np.any(w_norm == 0):
        raise ValueError("x, weight: every feature row and true-class weight needs a non-zero norm")
    logits = x @ weight.T  # (N, K)
    rows = np.arange(n)
    cos = np.clip(logits[rows, targets] / (x_norm * w_norm), -1.0, 1.0)  # (N,)
    cheb = np.polynomial.chebyshev.Chebyshev.basis(m)
    kk = np.clip(np.floor(np.arccos(cos) * m / math.pi), 0, m - 1)  # (N,) interval index
    sign = (-1.0) ** kk
    psi = sign * cheb(cos) - 2.0 * kk
    dpsi = sign * cheb.deriv()(cos)  # d psi / d cos
    target_term = (lam * cos + psi) / (1.0 + lam)
    logits = logits.copy()
    logits[rows, targets] = w_norm * x_norm * target_term
    logp = log_softmax(logits, axis=1)
    loss = -np.mean(logp[rows, targets])
    dterm = (lam + dpsi) / (1.0 + lam)
    return float(loss), (x, weight, targets, logp, x_norm, w_norm, cos, target_term, dterm)


def large_margin_softmax_backward(cache, dout: float = 1.0):
    """Gradients of L-Softmax with respect to ``x`` and ``weight``.

    With a = |W_y|, b = |x|, c = cos(theta_y), g(c) the target term and g' its derivative,
    f_y = a b g(c) has

        df_y/dx   = g(c) a x / b + g'(c) (W_y - c a x / b),
        df_y/dW_y = g(c) b W_y / a + g'(c) (x - c b W_y / a),

    and the other logits f_j = W_j . x give df_j/dx = W_j, df_j/dW_j = x. The upstream gradient
    of the logits is (softmax(f) - onehot(y)) / N.

    Returns:
        ``(dx, dweight)`` with the shapes of ``x`` (N, D) and ``weight`` (K, D).
    """
    x, weight, targets, logp, x_norm, w_norm, cos, g, dg = cache
    n = x.shape[0]
    rows = np.arange(n)
    dlogits = np.exp(logp)  # (N, K) softmax
    dlogits[rows, targets] -= 1.0
    dlogits *= dout / n
    d_target = dlogits[rows, targets].copy()  # (N,)
    dlogits[rows, targets] = 0.0  # the plain logits' part
    dx = dlogits @ weight  # (N, D)
    dweight = dlogits.T @ x  # (K, D)
    w_y = weight[targets]  # (N, D)
    ratio = (w_norm / x_norm)[:, None]  # a / b
    dfy_dx = g[:, None] * ratio * x + dg[:, None] * (w_y - cos[:, None] * ratio * x)
    dfy_dw = g[:, None] / ratio * w_y + dg[:, None] * (x - cos[:, None] / ratio * w_y)
    dx += d_target[:, None] * dfy_dx
    np.add.at(dweight, targets, d_target[:, None] * dfy_dw)
    return dx, dweight


# --- center loss ------------------------------------------------------------------------------

def center_loss_forward(x: np.ndarray, centers: np.ndarray, targets: np.ndarray,
                        reduction: str = "sum"):
    """Center loss (Wen et al., 2016): L_C = 1/2 sum_n |x_n - c_{y_n}|^2.

    It pulls each deep feature towards the centre of its class. The paper adds it to the
    softmax loss as L_S + lambda L_C and moves the centres with :func:`center_update` rather
    than by the gradient.

    Args:
        x: (N, D) features.
        centers: (K, D) class centres.
        targets: (N,) integer classes.
        reduction: ``'sum'`` (the paper's and the source's form) or ``'mean'`` (divided by N,
            on the scale of the averaged cross-entropy).
    Returns:
        ``(loss, cache)``.
    """
    x = as_array(x, "x")
    centers = as_array(centers, "centers")
    check_ndim(x, 2, "x", "(N, D)")
    check_ndim(centers, 2, "centers", "(K, D)")
    n, d = x.shape
    if centers.shape[1] != d:
        raise ValueError(f"centers: expected shape ({centers.shape[0]}, {d}) (x has D = {d}), "
                         f"got {centers.shape}")
    targets = _check_class_targets(targets, n, centers.shape[0])
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction: expected 'sum' or 'mean', got {reduction!r}")
    diff = x - centers[targets]  # (N, D)
    scale = 1.0 if reduction == "sum" else 1.0 / n
    return float(0.5 * scale * np.sum(diff * diff)), (diff, scale)


def center_loss_backward(cache, dout: float = 1.0) -> np.ndarray:
    """dL_C/dx_n = x_n - c_{y_n} (divided by N for ``'mean'``), times ``dout``."""
    diff, scale = cache
    return dout * scale * diff


def center_update(centers: np.ndarray, x: np.ndarray, targets: np.ndarray,
                  alpha: float = 0.5) -> np.ndarray:
    """One centre update of Wen et al. (2016), returned as a new (K, D) array:

        delta_j = sum_n [y_n = j] (c_j - x_n) / (1 + sum_n [y_n = j]),    c_j <- c_j - alpha delta_j

    A class absent from the batch keeps its centre. With alpha = 1, c_j becomes the mean of the
    old centre and the class's features in the batch, (c_j + sum x_n) / (1 + count).
    """
    centers = as_array(centers, "centers")
    x = as_array(x, "x")
    check_ndim(centers, 2, "centers", "(K, D)")
    check_ndim(x, 2, "x", "(N, D)")
    k, d = centers.shape
    if x.shape[1] != d:
        raise ValueError(f"x: expected shape (N, {d}) (centers are {centers.shape}), got {x.shape}")
    targets = _check_class_targets(targets, x.shape[0], k)
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha: expected a value in [0, 1], got {alpha!r}")
    counts = np.bincount(targets, minlength=k).astype(np.float64)  # (K,)
    sums = np.zeros_like(centers)
    np.add.at(sums, targets, x)  # (K, D) per-class feature sums
    delta = (counts[:, None] * centers - sums) / (1.0 + counts[:, None])
    return centers - alpha * delta
