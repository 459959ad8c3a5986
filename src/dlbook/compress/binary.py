"""Binary weights: BinaryConnect (Courbariaux et al., 2015) and XNOR-Net (Rastegari et al., 2016).

BinaryConnect keeps real-valued "shadow" weights w for the optimiser and uses their signs
w_b = sign(w) in +-1 in the forward and backward passes. We define sign(0) = +1, so that every
binary weight is +-1 (``np.sign`` and ``torch.sign`` return 0 at 0, which is not a binary
value). sign() has zero derivative almost everywhere, so the backward pass uses the
straight-through estimator of the "hard tanh" Htanh(w) = clip(w, -1, 1):

    dw = dw_b * 1[|w| <= 1],

the gradient passes where |w| <= 1 and is cancelled where the shadow weight is already
saturated. After each update the shadow weights are clipped to [-1, 1]
(:func:`clip_shadow_weights`), otherwise they could grow without changing sign(w).

XNOR-Net's binary-weight networks add one real scale per output filter: w ~ alpha_f * sign(w)
with alpha_f = mean |w[f]| over the filter's n = C*KH*KW entries, the alpha that minimises
||w[f] - alpha * sign(w[f])||^2. Its backward pass differentiates alpha too (see
:func:`xnor_binarize_backward`).
"""

from __future__ import annotations

import numpy as np

from dlbook._validate import as_array, check_shape

__all__ = [
    "binary_sign", "binarize_forward", "binarize_backward", "binarize_stochastic",
    "clip_shadow_weights", "xnor_binarize_forward", "xnor_binarize_backward", "xnor_dot",
]


def binary_sign(w: np.ndarray) -> np.ndarray:
    """sign(w) in {-1, +1}, with sign(0) = +1 (a binary weight is never 0)."""
    w = as_array(w, "w")
    return np.where(w >= 0, 1.0, -1.0).astype(w.dtype)


def binarize_forward(w: np.ndarray):
    """BinaryConnect's deterministic binarisation, w_b = sign(w) with sign(0) = +1.

    Returns:
        ``(w_b, cache)``, w_b shaped like w with entries +-1.
    """
    w = as_array(w, "w")
    return binary_sign(w), w


def binarize_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Straight-through gradient of sign through Htanh: dw = dout * 1[|w| <= 1].

    Matches torch's autograd of ``torch.clamp(w, -1, 1)`` (gradient 1 on the closed interval
    [-1, 1]), the usual way to write this estimator in torch.
    """
    w = cache
    dout = as_array(dout, "dout")
    check_shape(dout, w.shape, "dout")
    return np.where(np.abs(w) <= 1.0, dout, 0.0).astype(dout.dtype)


def binarize_stochastic(w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """BinaryConnect's stochastic binarisation: +1 with probability clip((w + 1) / 2, 0, 1).

    The "hard sigmoid" probability makes the expected binary weight equal clip(w, -1, 1).
    """
    w = as_array(w, "w")
    p_plus = np.clip((w + 1.0) / 2.0, 0.0, 1.0)
    return np.where(rng.random(w.shape) < p_plus, 1.0, -1.0).astype(w.dtype)


def clip_shadow_weights(w: np.ndarray) -> np.ndarray:
    """The real-valued weights clipped to [-1, 1] after an update (a new array)."""
    w = as_array(w, "w")
    return np.clip(w, -1.0, 1.0)


def xnor_binarize_forward(w: np.ndarray):
    """Scaled binary weights, w_hat[f] = alpha_f * sign(w[f]) with alpha_f = mean |w[f]|.

    Args:
        w: (F, ...) weights with output filters (or output units) along axis 0:
            (F, C, KH, KW) for a conv, (D_out, D_in) for a linear layer.
    Returns:
        ``(w_hat, cache)``; w_hat has w's shape. alpha_f = ||w[f]||_1 / n, n = w[f].size, is the
        least-squares scale of sign(w[f]) (XNOR-Net's binary-weight networks).
    """
    w = as_array(w, "w")
    if w.ndim < 2:
        raise ValueError(f"w: expected filters along axis 0, e.g. (F, C, KH, KW), got shape "
                         f"{w.shape}")
    b = binary_sign(w)
    alpha = np.abs(w).reshape(w.shape[0], -1).mean(axis=1)  # (F,)
    alpha_b = alpha.reshape((-1,) + (1,) * (w.ndim - 1))  # (F, 1, 1, 1)
    return alpha_b * b, (w, b, alpha_b)


def xnor_binarize_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Gradient of w_hat = alpha * sign(w), straight-through for sign, exact for alpha.

    With n entries per filter, the chain rule through both factors gives

        dw_i = dout_i * alpha * 1[|w_i| <= 1] + (1/n) sgn(w_i) * sum_j dout_j * sign(w_j),

    the first term the straight-through path of sign, the second the path of alpha = mean|w|
    (d|w_i|/dw_i = sgn(w_i), which is 0 at w_i = 0, as torch's ``abs``). Matches torch's autograd
    of ``w.abs().mean(dims, keepdim=True) * ste_sign(w)`` with the clamp estimator of
    :func:`binarize_backward`.
    """
    w, b, alpha_b = cache
    dout = as_array(dout, "dout")
    check_shape(dout, w.shape, "dout")
    n = w[0].size
    axes = tuple(range(1, w.ndim))
    through_sign = dout * alpha_b * (np.abs(w) <= 1.0)
    through_alpha = np.sum(dout * b, axis=axes, keepdims=True) * np.sign(w) / n  # (F,1,1,1)*...
    return through_sign + through_alpha


def xnor_dot(a_bits: np.ndarray, b_bits: np.ndarray, n: int) -> int:
    """Dot product of two +-1 vectors stored as packed bits (1 for +1, 0 for -1).

    With both vectors of length n packed by ``np.packbits``, a . b = (#agree) - (#disagree)
    = 2 * popcount(XNOR(a, b)) - n = n - 2 * popcount(XOR(a, b)): why binary weights *and*
    activations replace multiply-adds by bit operations. The padding bits that ``np.packbits``
    adds are zero in both, so they never disagree.
    """
    a_bits, b_bits = np.asarray(a_bits), np.asarray(b_bits)
    if a_bits.dtype != np.uint8 or b_bits.dtype != np.uint8 or a_bits.shape != b_bits.shape:
        raise ValueError(f"a_bits, b_bits: expected two uint8 arrays of one shape (np.packbits), "
                         f"got {a_bits.dtype} {a_bits.shape} and {b_bits.dtype} {b_bits.shape}")
    if not 0 <= n <= 8 * a_bits.size:
        raise ValueError(f"n: expected a length in [0, {8 * a_bits.size}], got {n}")
    disagree = int(np.bitwise_count(np.bitwise_xor(a_bits, b_bits)).sum())
    return n - 2 * disagree
