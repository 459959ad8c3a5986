"""Local response normalisation (LRN), the cross-channel normalisation of AlexNet.

Each activation is divided by a power of the sum of squares of the activations at the same
position in ``size`` neighbouring channels (``n`` in the paper), torch's convention:

    s[n, c, ...] = k + (alpha / size) * sum_{c' = c - size//2}^{c + (size - 1)//2} x[n, c', ...]^2
    out[n, c, ...] = x[n, c, ...] / s[n, c, ...]^beta

where channels outside 0..C-1 are left out of the sum (the window is clipped at the ends).

Two conventions for alpha. Krizhevsky et al. (2012) write b = a / (k + alpha * sum a^2)^beta,
with alpha multiplying the plain sum, and use n = 5, k = 2, alpha = 1e-4, beta = 0.75.
``torch.nn.LocalResponseNorm`` (and Caffe) divide alpha by the window size, so the paper's
layer is ``LocalResponseNorm(size=5, alpha=5 * 1e-4, beta=0.75, k=2)`` here as in torch.

Gradient. With t[c] = dout[c] * x[c] * s[c]^(-beta - 1), every x[j] appears in its own output
and, squared, in the sum s[c] of each channel c whose window holds j, that is
c = j - size//2 ... j + (size - 1)//2 turned around: c in [j - (size - 1)//2, j + size//2]. So

    dx[j] = dout[j] s[j]^(-beta) - (2 alpha beta / size) x[j] sum_{c: j in window(c)} t[c].

The ``*_naive`` functions loop over the channels and their windows; the others add shifted
slices of a zero-padded array (one pass per position in the window).
"""

from __future__ import annotations

import numpy as np

from dlbook._validate import as_array, check_shape
from dlbook.module import Module

__all__ = [
    "local_response_norm_forward", "local_response_norm_backward",
    "local_response_norm_forward_naive", "local_response_norm_backward_naive",
    "LocalResponseNorm",
]


def _check_args(x, size, alpha, beta, k) -> np.ndarray:
    x = as_array(x, "x")
    if x.ndim < 3:
        raise ValueError(f"x: expected an array (N, C, ...) with at least 3 dimensions, as torch "
                         f"does, got shape {x.shape}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size: expected an int >= 1, got {size!r}")
    for name, value in (("alpha", alpha), ("beta", beta), ("k", k)):
        if not np.isfinite(value):
            raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return x


def _window_sum(a: np.ndarray, before: int, after: int) -> np.ndarray:
    """sum_{c' = c - before}^{c + after} a[:, c'] for every channel c, clipped to 0..C-1."""
    C = a.shape[1]
    pad = [(0, 0), (before, after)] + [(0, 0)] * (a.ndim - 2)
    padded = np.pad(a, pad)  # (N, before + C + after, ...)
    total = np.zeros_like(a)
    for i in range(before + after + 1):
        total += padded[:, i:i + C]  # channel c + i - before of a, for every c
    return total


# --- vectorised ---------------------------------------------------------------------------------

def local_response_norm_forward(x: np.ndarray, size: int, alpha: float = 1e-4, beta: float = 0.75,
                                k: float = 1.0):
    """LRN across channels: out = x / (k + alpha/size * (windowed sum of x^2))^beta.

    Args:
        x: (N, C, ...) input, normalised across axis 1.
        size: channels in the window (the paper's n), the channel itself included.
        alpha, beta, k: as ``torch.nn.LocalResponseNorm`` (alpha is divided by ``size``).
    Returns:
        ``(out, cache)`` with ``out`` shaped like ``x``. Matches
        ``torch.nn.functional.local_response_norm(x, size, alpha, beta, k)``.
    """
    x = _check_args(x, size, alpha, beta, k)
    s = k + (alpha / size) * _window_sum(x * x, size // 2, (size - 1) // 2)  # (N, C, ...)
    out = x * s ** -beta
    return out, (x, s, size, alpha, beta)


def local_response_norm_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Gradient of :func:`local_response_norm_forward` (the formula in the module docstring).

    Returns:
        dx with the shape of x. Matches torch.autograd through ``local_response_norm``.
    """
    x, s, size, alpha, beta = cache
    dout = as_array(dout, "dout")
    check_shape(dout, x.shape, "dout")
    t = dout * x * s ** (-beta - 1)  # (N, C, ...), one term per normalised output c
    # each x[j] is in the windows of channels j - (size - 1)//2 .. j + size//2: the window reversed
    spread = _window_sum(t, (size - 1) // 2, size // 2)
    return dout * s ** -beta - (2 * alpha * beta / size) * x * spread


# --- naive: loops over the channels -------------------------------------------------------------

def local_response_norm_forward_naive(x: np.ndarray, size: int, alpha: float = 1e-4,
                                      beta: float = 0.75, k: float = 1.0):
    """LRN with a loop over the channels and an explicit, clipped window for each.

    Returns ``(out, cache)`` like :func:`local_response_norm_forward`; the cache is
    ``(x, size, alpha, beta, k)``.
    """
    x = _check_args(x, size, alpha, beta, k)
    C = x.shape[1]
    out = np.empty_like(x)
    for c in range(C):
        lo, hi = max(0, c - size // 2), min(C - 1, c + (size - 1) // 2)
        s = k + (alpha / size) * np.sum(x[:, lo:hi + 1] ** 2, axis=1)  # (N, ...)
        out[:, c] = x[:, c] / s**beta
    return out, (x, size, alpha, beta, k)


def local_response_norm_backward_naive(dout: np.ndarray, cache) -> np.ndarray:
    """Gradient of LRN by loops: output c sends dout[c] to x[c] and to every x[j] in its window.

    d out[c] / d x[j] = [j == c] s[c]^(-beta) - 2 beta (alpha/size) x[c] x[j] s[c]^(-beta - 1)
    for j in the window of c.
    """
    x, size, alpha, beta, k = cache
    dout = as_array(dout, "dout")
    check_shape(dout, x.shape, "dout")
    C = x.shape[1]
    dx = np.zeros(x.shape, dtype=np.result_type(dout, x))
    for c in range(C):
        lo, hi = max(0, c - size // 2), min(C - 1, c + (size - 1) // 2)
        s = k + (alpha / size) * np.sum(x[:, lo:hi + 1] ** 2, axis=1)  # (N, ...)
        dx[:, c] += dout[:, c] * s**-beta
        for j in range(lo, hi + 1):
            coupling = 2 * beta * (alpha / size) * x[:, c] * x[:, j] * s ** (-beta - 1)
            dx[:, j] -= dout[:, c] * coupling
    return dx


class LocalResponseNorm(Module):
    """Local response normalisation layer as ``torch.nn.LocalResponseNorm(size, alpha, beta, k)``.

    No parameters. AlexNet's layer (the paper's n = 5, k = 2, alpha = 1e-4, beta = 0.75) is
    ``LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)``: torch's alpha is divided by size.
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        _check_args(np.zeros((1, 1, 1)), size, alpha, beta, k)
        self.size, self.alpha, self.beta, self.k = int(size), float(alpha), float(beta), float(k)

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, self._cache = local_response_norm_forward(x, self.size, self.alpha, self.beta, self.k)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return local_response_norm_backward(dout, self._need_cache())

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
