"""2-D max and average pooling, forward and backward, with PyTorch's arguments and conventions.

Pooling slides a KH x KW window over each channel separately (the depth is kept) with strides
``(sh, sw)``, on the input padded by ``(ph, pw)``, and keeps one number per window:

    max:      out[n, c, r, s] = max_{i, j}  xp[n, c, r*sh + i, s*sw + j]
    average:  out[n, c, r, s] = (1 / (KH*KW)) * sum_{i, j} xp[n, c, r*sh + i, s*sw + j]

with OH = (H + 2*ph - KH) // sh + 1 and OW likewise. As in torch, ``stride=None`` means a stride
equal to the kernel size (non-overlapping windows), padding may be at most half the kernel size,
max pooling pads with -inf (a padded position never wins), and average pooling pads with zeros
that count in the divisor (torch's default ``count_include_pad=True``). ``ceil_mode``,
``dilation`` and ``divisor_override`` are not supported (torch's defaults apply).

Backward passes:

* max: each dout goes, unchanged, to the position of its window's maximum; the others get 0.
  Ties go to the *first* maximum in row-major order within the window (torch's CPU kernel does
  the same: it replaces the running maximum only on a strictly larger value, or on a NaN).
* average: each dout is spread evenly, dout / (KH*KW), over its window (delta / 4 for 2x2).

Where windows overlap (stride < kernel size) the contributions add up.

Stochastic pooling (Zeiler and Fergus, 2013) draws one entry of each non-negative window with
probability proportional to its value and routes the gradient like max pooling; it takes an
explicit ``rng`` and has no torch counterpart.

The ``*_naive`` functions loop over output positions (what the chapter prints); the others loop
only over the KH*KW offsets inside a window and are vectorised over everything else.
"""

from __future__ import annotations

import numpy as np

from dlbook._validate import as_array, check_ndim, check_shape, pair
from dlbook.conv import _geometry, _Geometry
from dlbook.module import Module

__all__ = [
    "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
    "max_pool2d_forward_naive", "max_pool2d_backward_naive",
    "avg_pool2d_forward_naive", "avg_pool2d_backward_naive",
    "MaxPool2d", "AvgPool2d",
    "global_avg_pool2d_forward", "global_avg_pool2d_backward", "GlobalAvgPool2d",
    "stochastic_pool2d_forward", "stochastic_pool2d_backward",
]


def _pool_args(x, kernel_size, stride, padding):
    """Validate a pooling call as torch does; return ``x`` as a float array and the geometry."""
    x = as_array(x, "x")
    check_ndim(x, 4, "x", "(N, C, H, W)")
    kh, kw = pair(kernel_size, "kernel_size")
    if kh < 1 or kw < 1:
        raise ValueError(f"kernel_size: expected positive ints, got {kernel_size!r}")
    g = _geometry(x.shape, (kh, kw), 1, (kh, kw) if stride is None else stride, padding, "kernel_size")
    if 2 * g.ph > kh or 2 * g.pw > kw:
        raise ValueError(f"padding: expected at most half the kernel size ({kh // 2}, {kw // 2}) "
                         f"for kernel_size ({kh}, {kw}), got ({g.ph}, {g.pw})")
    return x, g


def _window(xp: np.ndarray, i: int, j: int, g: _Geometry) -> np.ndarray:
    """Entry (i, j) of every window: the view (N, C, OH, OW) with [n, c, r, s] = xp[n, c, r*sh + i, s*sw + j]."""
    return xp[:, :, i:i + g.sh * (g.OH - 1) + 1:g.sh, j:j + g.sw * (g.OW - 1) + 1:g.sw]


def _padded(x: np.ndarray, g: _Geometry, fill: float) -> np.ndarray:
    xp = np.full((g.N, g.C, g.Hp, g.Wp), fill, dtype=x.dtype)  # (N, C, Hp, Wp)
    xp[:, :, g.ph:g.ph + g.H, g.pw:g.pw + g.W] = x
    return xp


def _check_dout(dout, g: _Geometry) -> np.ndarray:
    dout = as_array(dout, "dout")
    check_shape(dout, (g.N, g.C, g.OH, g.OW), "dout")
    return dout


def _first_valid_offset(g: _Geometry) -> np.ndarray:
    """Row-major offset i*KW + j of the first unpadded position of each window, (OH, OW)."""
    i0 = np.maximum(g.ph - g.sh * np.arange(g.OH), 0)  # (OH,)
    j0 = np.maximum(g.pw - g.sw * np.arange(g.OW), 0)  # (OW,)
    return i0[:, None] * g.KW + j0[None, :]


# --- max pooling ---------------------------------------------------------------------------------

def max_pool2d_forward(x: np.ndarray, kernel_size, stride=None, padding=0):
    """Max pooling, out[n, c, r, s] = max_{i, j} xp[n, c, r*sh + i, s*sw + j] (xp padded with -inf).

    Args:
        x: (N, C, H, W) input.
        kernel_size: KH = KW, or a pair (KH, KW).
        stride: an int or a pair; None (the default) means ``kernel_size``.
        padding: an int or a pair, at most half the kernel size.
    Returns:
        ``(out, cache)``: out (N, C, OH, OW) in the dtype of ``x``; the cache holds, for each
        output, the row-major offset i*KW + j of the winner within its window. Matches
        ``torch.nn.functional.max_pool2d(x, kernel_size, stride, padding)``, ties included.
    """
    x, g = _pool_args(x, kernel_size, stride, padding)
    xp = _padded(x, g, -np.inf)
    out = np.full((g.N, g.C, g.OH, g.OW), -np.inf, dtype=x.dtype)
    # Start each window at its first real position, as torch does (matters only for -inf inputs).
    arg = np.broadcast_to(_first_valid_offset(g), out.shape).copy()  # (N, C, OH, OW)
    for i in range(g.KH):
        for j in range(g.KW):
            candidate = _window(xp, i, j, g)
            better = (candidate > out) | np.isnan(candidate)  # strictly larger: the first maximum stays
            np.copyto(out, candidate, where=better)
            arg[better] = i * g.KW + j
    return out, (arg, g, x.dtype)


def max_pool2d_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Gradient of max pooling: each dout goes to its window's maximum, all other positions get 0.

    dx[n, c, r*sh + i - ph, s*sw + j - pw] += dout[n, c, r, s]   for the winning (i, j) only.

    Args:
        dout: (N, C, OH, OW) upstream gradient; cache: from :func:`max_pool2d_forward`.
    Returns:
        dx (N, C, H, W). Matches torch.autograd through ``max_pool2d``.
    """
    arg, g, dtype = cache
    dout = _check_dout(dout, g)
    dxp = np.zeros((g.N, g.C, g.Hp, g.Wp), dtype=np.result_type(dout, dtype))
    for i in range(g.KH):
        for j in range(g.KW):
            target = _window(dxp, i, j, g)  # a view: += writes into dxp
            target += np.where(arg == i * g.KW + j, dout, 0.0)
    return dxp[:, :, g.ph:g.ph + g.H, g.pw:g.pw + g.W].copy()


def max_pool2d_forward_naive(x: np.ndarray, kernel_size, stride=None, padding=0):
    """Max pooling by loops over the output: the maximum of each window's unpadded positions.

    Returns ``(out, cache)`` like :func:`max_pool2d_forward`; the cache is ``(x, geometry)``.
    """
    x, g = _pool_args(x, kernel_size, stride, padding)
    out = np.empty((g.N, g.C, g.OH, g.OW), dtype=x.dtype)
    for n in range(g.N):
        for c in range(g.C):
            for r in range(g.OH):
                for s in range(g.OW):
                    top, left = r * g.sh - g.ph, s * g.sw - g.pw  # window corner in unpadded coordinates
                    window = x[n, c, max(top, 0):top + g.KH, max(left, 0):left + g.KW]
                    out[n, c, r, s] = window.max()
    return out, (x, g)


def max_pool2d_backward_naive(dout: np.ndarray, cache) -> np.ndarray:
    """Gradient of max pooling by loops: route each dout to the first maximum of its window."""
    x, g = cache
    dout = _check_dout(dout, g)
    dx = np.zeros(x.shape, dtype=np.result_type(dout, x))
    for n in range(g.N):
        for c in range(g.C):
            for r in range(g.OH):
                for s in range(g.OW):
                    top, left = max(r * g.sh - g.ph, 0), max(s * g.sw - g.pw, 0)
                    window = x[n, c, top:r * g.sh - g.ph + g.KH, left:s * g.sw - g.pw + g.KW]
                    i, j = np.unravel_index(np.argmax(window), window.shape)  # first maximum
                    dx[n, c, top + i, left + j] += dout[n, c, r, s]
    return dx


# --- average pooling -----------------------------------------------------------------------------

def avg_pool2d_forward(x: np.ndarray, kernel_size, stride=None, padding=0):
    """Average pooling, out[n, c, r, s] = (1 / (KH*KW)) sum_{i, j} xp[n, c, r*sh + i, s*sw + j].

    ``xp`` is ``x`` zero-padded; the padded zeros count in the divisor (torch's default
    ``count_include_pad=True``).

    Args:
        x: (N, C, H, W) input; kernel_size, stride, padding: as for :func:`max_pool2d_forward`.
    Returns:
        ``(out, cache)``: out (N, C, OH, OW) in the dtype of ``x``. Matches
        ``torch.nn.functional.avg_pool2d(x, kernel_size, stride, padding)``.
    """
    x, g = _pool_args(x, kernel_size, stride, padding)
    xp = _padded(x, g, 0.0)
    out = np.zeros((g.N, g.C, g.OH, g.OW), dtype=x.dtype)
    for i in range(g.KH):
        for j in range(g.KW):
            out += _window(xp, i, j, g)
    out /= g.KH * g.KW
    return out, (g, x.dtype)


def avg_pool2d_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Gradient of average pooling: each dout spread evenly over its window.

    dx[n, c, r*sh + i - ph, s*sw + j - pw] += dout[n, c, r, s] / (KH*KW)   for every (i, j).

    Args:
        dout: (N, C, OH, OW) upstream gradient; cache: from :func:`avg_pool2d_forward`.
    Returns:
        dx (N, C, H, W). Matches torch.autograd through ``avg_pool2d``.
    """
    g, dtype = cache
    dout = _check_dout(dout, g)
    share = dout / (g.KH * g.KW)  # (N, C, OH, OW)
    dxp = np.zeros((g.N, g.C, g.Hp, g.Wp), dtype=np.result_type(share, dtype))
    for i in range(g.KH):
        for j in range(g.KW):
            target = _window(dxp, i, j, g)
            target += share
    return dxp[:, :, g.ph:g.ph + g.H, g.pw:g.pw + g.W].copy()


def avg_pool2d_forward_naive(x: np.ndarray, kernel_size, stride=None, padding=0):
    """Average pooling by loops over the output: each zero-padded window's mean.

    Returns ``(out, cache)``; the cache is ``(x, geometry)``.
    """
    x, g = _pool_args(x, kernel_size, stride, padding)
    xp = _padded(x, g, 0.0)
    out = np.empty((g.N, g.C, g.OH, g.OW), dtype=x.dtype)
    for n in range(g.N):
        for c in range(g.C):
            for r in range(g.OH):
                for s in range(g.OW):
                    window = xp[n, c, r * g.sh:r * g.sh + g.KH, s * g.sw:s * g.sw + g.KW]
                    out[n, c, r, s] = window.sum() / (g.KH * g.KW)
    return out, (x, g)


def avg_pool2d_backward_naive(dout: np.ndarray, cache) -> np.ndarray:
    """Gradient of average pooling by loops: add dout / (KH*KW) to every position of each window."""
    x, g = cache
    dout = _check_dout(dout, g)
    dxp = np.zeros((g.N, g.C, g.Hp, g.Wp), dtype=np.result_type(dout, x))
    for n in range(g.N):
        for c in range(g.C):
            for r in range(g.OH):
                for s in range(g.OW):
                    dxp[n, c, r * g.sh:r * g.sh + g.KH, s * g.sw:s * g.sw + g.KW] += dout[n, c, r, s] / (g.KH * g.KW)
    return dxp[:, :, g.ph:g.ph + g.H, g.pw:g.pw + g.W]


# --- stochastic pooling --------------------------------------------------------------------------

def stochastic_pool2d_forward(x: np.ndarray, kernel_size, stride=None, *,
                              rng: np.random.Generator):
    """Stochastic pooling: each window outputs one of its entries, drawn with probability
    proportional to the entry (Zeiler and Fergus, 2013).

    For the KH*KW entries a_k of a window (non-negative, e.g. the output of a ReLU)::

        p_k = a_k / sum_j a_j,     out[n, c, r, s] = a_k  with probability p_k

    so that E[out] = sum_k p_k a_k, the probability-weighted average of the window: somewhere
    between its mean and its maximum. A large entry usually wins, as in max pooling, but not
    always. The draw inverts the cumulative sum of the window with one uniform number
    u ~ U[0, 1) per window (drawn in the order of ``out``): entry k is chosen when
    a_0 + ... + a_{k-1} <= u * sum_j a_j < a_0 + ... + a_k. A window of zeros outputs 0 and
    sends its gradient to its first entry.

    Args:
        x: (N, C, H, W) input, every entry >= 0.
        kernel_size: KH = KW, or a pair (KH, KW).
        stride: an int or a pair; None (the default) means ``kernel_size``. No padding.
        rng: the generator that draws the positions.
    Returns:
        ``(out, cache)``: out (N, C, OH, OW); the cache holds the row-major offset i*KW + j of
        each window's chosen entry, in the form :func:`max_pool2d_backward` reads. PyTorch has
        no stochastic pooling: given the chosen positions, the output and its gradient match
        torch.autograd through gathering those positions.
    """
    x, g = _pool_args(x, kernel_size, stride, 0)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    if not np.all(x >= 0):
        bad = "NaN" if np.isnan(x).any() else f"a minimum of {x.min()!r}"
        raise ValueError(f"x: expected non-negative activations (e.g. after a ReLU), got {bad}")
    windows = np.stack([_window(x, i, j, g) for i in range(g.KH) for j in range(g.KW)],
                       axis=-1)  # (N, C, OH, OW, KH*KW)
    cumulative = np.cumsum(windows, axis=-1)  # (N, C, OH, OW, KH*KW)
    u = rng.random((g.N, g.C, g.OH, g.OW))[..., None] * cumulative[..., -1:]  # (N, C, OH, OW, 1)
    arg = np.sum(cumulative <= u, axis=-1)  # (N, C, OH, OW): entries passed before u is reached
    # u rounded up to the total (a one-in-2^53 event) or a window of zeros: the last positive
    # entry, or the first entry when there is none.
    last_positive = g.KH * g.KW - 1 - np.argmax(windows[..., ::-1] > 0, axis=-1)
    empty = cumulative[..., -1] == 0
    arg = np.where(arg >= g.KH * g.KW, last_positive, arg)
    arg = np.where(empty, 0, arg)
    out = np.take_along_axis(windows, arg[..., None], axis=-1)[..., 0]  # (N, C, OH, OW)
    return out, (arg, g, x.dtype)


def stochastic_pool2d_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Gradient of stochastic pooling: each dout goes to the entry its window drew.

    dx[n, c, r*sh + i, s*sw + j] += dout[n, c, r, s]   for the drawn (i, j) only,

    the routing of :func:`max_pool2d_backward` with the drawn entry in place of the maximum
    (the draw itself is not differentiated).

    Args:
        dout: (N, C, OH, OW) upstream gradient; cache: from :func:`stochastic_pool2d_forward`.
    Returns:
        dx (N, C, H, W).
    """
    return max_pool2d_backward(dout, cache)


# --- layers ----------------------------------------------------------------------------------------

class _Pool2d(Module):
    """Shared argument handling of the pooling layers (they have no parameters)."""

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride")
        self.padding = pair(padding, "padding")
        _pool_args(np.zeros((1, 1) + tuple(k + 2 * p for k, p in zip(self.kernel_size, self.padding))),
                   self.kernel_size, self.stride, self.padding)  # the checks a call would make

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max-pooling layer, like ``torch.nn.MaxPool2d``; calls :func:`max_pool2d_forward` / ``_backward``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, self._cache = max_pool2d_forward(x, self.kernel_size, self.stride, self.padding)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return max_pool2d_backward(dout, self._need_cache())


class AvgPool2d(_Pool2d):
    """Average-pooling layer, like ``torch.nn.AvgPool2d``; calls :func:`avg_pool2d_forward` / ``_backward``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, self._cache = avg_pool2d_forward(x, self.kernel_size, self.stride, self.padding)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return avg_pool2d_backward(dout, self._need_cache())


# --- global average pooling -----------------------------------------------------------------

def global_avg_pool2d_forward(x: np.ndarray):
    """Global average pooling: each channel's map averaged to one number, out = mean_{h, w} x.

    out[n, c, 0, 0] = (1 / (H*W)) * sum_{h, w} x[n, c, h, w]

    Average pooling with one window the size of the whole map. Network in Network ends with it:
    the last layer makes one map per class, and each map's mean is that class's score, in
    place of fully connected layers. It has no parameters and works for any H, W.

    Args:
        x: (N, C, H, W) input.
    Returns:
        ``(out, cache)`` with out (N, C, 1, 1) (flatten it for (N, C) scores). Matches
        ``torch.nn.functional.adaptive_avg_pool2d(x, 1)`` (``torch.nn.AdaptiveAvgPool2d(1)``).
    """
    x = as_array(x, "x")
    check_ndim(x, 4, "x", "(N, C, H, W)")
    if min(x.shape) < 1:
        raise ValueError(f"x: expected a non-empty (N, C, H, W) array, got shape {x.shape}")
    return x.mean(axis=(2, 3), keepdims=True), (x.shape, x.dtype)  # (N, C, 1, 1)


def global_avg_pool2d_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Gradient of global average pooling: each dout shared evenly over its map, dout / (H*W).

    Args:
        dout: (N, C, 1, 1) upstream gradient; cache: from :func:`global_avg_pool2d_forward`.
    Returns:
        dx (N, C, H, W). Matches torch.autograd through ``adaptive_avg_pool2d(x, 1)``.
    """
    (N, C, H, W), dtype = cache
    dout = as_array(dout, "dout")
    check_shape(dout, (N, C, 1, 1), "dout")
    share = dout / (H * W)  # (N, C, 1, 1)
    return np.broadcast_to(share, (N, C, H, W)).astype(np.result_type(share, dtype))


class GlobalAvgPool2d(Module):
    """Global average pooling layer (N, C, H, W) -> (N, C, 1, 1), as ``torch.nn.AdaptiveAvgPool2d(1)``.

    Calls :func:`global_avg_pool2d_forward` / :func:`global_avg_pool2d_backward`.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, self._cache = global_avg_pool2d_forward(x)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return global_avg_pool2d_backward(dout, self._need_cache())
