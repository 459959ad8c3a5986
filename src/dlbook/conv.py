"""2-D convolution (cross-correlation, as in PyTorch): naive loops, im2col + one matrix product, backward.

Layout is PyTorch's: input ``x`` (N, C, H, W), weights ``w`` (F, C, KH, KW), bias ``b`` (F,),
output (N, F, OH, OW). With the input zero-padded by ``(ph, pw)`` to ``xp`` and strides ``(sh, sw)``,

    out[n, f, r, s] = b[f] + sum_{c, i, j} w[f, c, i, j] * xp[n, c, r*sh + i, s*sw + j],
    OH = (H + 2*ph - KH) // sh + 1,   OW = (W + 2*pw - KW) // sw + 1.

The kernel is *not* flipped (that would be a convolution in the signal-processing sense); deep
learning libraries call this cross-correlation "convolution", and so do we.

Three implementations of the same map, tested against each other and against
``torch.nn.functional.conv2d`` in float64:

* ``conv2d_forward_naive`` / ``conv2d_backward_naive``: explicit loops over output positions that
  mirror the equations (slow; what Section 3.2 and 3.6 print).
* ``conv2d_forward_im2col`` / ``conv2d_backward_im2col``: ``im2col`` copies every receptive field
  into one column of a matrix, so the whole convolution is one matrix product
  ``w.reshape(F, C*KH*KW) @ cols``; ``col2im``, its adjoint, sends the columns' gradients back
  (what Section 3.7 prints).
* ``conv2d_forward`` / ``conv2d_backward``: the same computation, tuned (groups of images sized to
  the cache, worker threads, reused scratch buffers); the code is in :mod:`dlbook._conv_fast`.
  ``Conv2d`` and the models use it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dlbook import _conv_fast, init
from dlbook._conv_fast import ConvCache
from dlbook._validate import as_array, check_ndim, check_shape, pair
from dlbook.module import Module

__all__ = [
    "conv_output_size", "im2col", "col2im",
    "conv2d_forward_naive", "conv2d_backward_naive",
    "conv2d_forward_im2col", "conv2d_backward_im2col",
    "conv2d_forward", "conv2d_backward", "ConvCache", "Conv2d",
]


# --- sizes and argument checks ------------------------------------------------------------------

def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution or pooling along one axis.

    ``(size + 2*padding - kernel_size) // stride + 1``.

    With input height H, kernel height KH, padding P and stride S this is
    OH = (H + 2P - KH) // S + 1, and likewise OW for the width. Integer division: when the stride
    does not divide H + 2P - KH, the last positions of the input that a full window cannot
    reach are dropped (as torch does).

    Args:
        size: input length (>= 1).
        kernel_size: window length (>= 1, at most ``size + 2*padding``).
        stride: step between windows (>= 1).
        padding: zeros added at each end (>= 0).
    Returns:
        The number of window positions, an int >= 1.
    Raises:
        ValueError: for non-integer or out-of-range arguments, or a kernel longer than the padded input.
    """
    size = _check_int(size, "size", 1)
    kernel_size = _check_int(kernel_size, "kernel_size", 1)
    stride = _check_int(stride, "stride", 1)
    padding = _check_int(padding, "padding", 0)
    if kernel_size > size + 2 * padding:
        raise ValueError(f"kernel_size: expected at most the padded size {size} + 2*{padding} = "
                         f"{size + 2 * padding}, got {kernel_size}")
    return (size + 2 * padding - kernel_size) // stride + 1


def _stride_padding(stride, padding) -> tuple[tuple[int, int], tuple[int, int]]:
    """Validate ``stride`` (ints >= 1) and ``padding`` (ints >= 0), each an int or a pair."""
    sh, sw = pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    if sh < 1 or sw < 1:
        raise ValueError(f"stride: expected positive ints, got {stride!r}")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding: expected non-negative ints, got {padding!r}")
    return (sh, sw), (ph, pw)


class _Geometry(NamedTuple):
    """Every size a convolution needs, computed once by :func:`_geometry`."""

    N: int
    C: int
    H: int
    W: int
    F: int
    KH: int
    KW: int
    sh: int
    sw: int
    ph: int
    pw: int
    OH: int
    OW: int

    @property
    def Hp(self) -> int:
        return self.H + 2 * self.ph

    @property
    def Wp(self) -> int:
        return self.W + 2 * self.pw

    @property
    def wide(self) -> bool:
        """Stride 1: output rows are computed ``Wp`` wide (see the module docstring)."""
        return self.sh == 1 and self.sw == 1

    @property
    def Q(self) -> int:
        """Columns per output row in the fast path's column matrix."""
        return self.Wp if self.wide else self.OW


def _geometry(x_shape, kernel_shape, n_filters: int, stride, padding, kernel_name: str) -> _Geometry:
    """Check the input shape against the kernel, stride and padding; return all sizes.

    ``kernel_name`` is the argument that carries the kernel size, named in the error messages.
    """
    (sh, sw), (ph, pw) = _stride_padding(stride, padding)
    N, C, H, W = x_shape
    KH, KW = kernel_shape
    if min(x_shape) < 1:
        raise ValueError(f"x: expected a non-empty (N, C, H, W) array, got shape {tuple(x_shape)}")
    if min(kernel_shape) < 1 or n_filters < 1:
        raise ValueError(f"{kernel_name}: expected a non-empty kernel, got {n_filters} filter(s) of "
                         f"size {tuple(kernel_shape)}")
    if KH > H + 2 * ph or KW > W + 2 * pw:
        raise ValueError(f"{kernel_name}: expected a kernel (KH, KW) at most the padded input (H + 2*ph, W + 2*pw) = "
                         f"({H + 2 * ph}, {W + 2 * pw}) (x {tuple(x_shape)}, padding ({ph}, {pw})), "
                         f"got ({KH}, {KW})")
    OH = (H + 2 * ph - KH) // sh + 1
    OW = (W + 2 * pw - KW) // sw + 1
    return _Geometry(N, C, H, W, n_filters, KH, KW, sh, sw, ph, pw, OH, OW)


def _conv_args(x, w, b, stride, padding):
    """Validate the arguments of a convolution; return ``x, w, b`` in one float dtype and the geometry."""
    x = as_array(x, "x")
    w = as_array(w, "w")
    check_ndim(x, 4, "x", "(N, C, H, W)")
    check_ndim(w, 4, "w", "(F, C, KH, KW)")
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"w: expected (F, C, KH, KW) with C = {x.shape[1]} input channels "
                         f"(x has shape {x.shape}), got shape {w.shape}")
    dtype = np.result_type(x, w)
    if b is not None:
        b = as_array(b, "b")
        check_shape(b, (w.shape[0],), "b")
        dtype = np.result_type(dtype, b)
        b = b.astype(dtype, copy=False)
    g = _geometry(x.shape, w.shape[2:], w.shape[0], stride, padding, "w")
    return x.astype(dtype, copy=False), w.astype(dtype, copy=False), b, g


# --- im2col / col2im --------------------------------------------------------------------------

def im2col(x: np.ndarray, kernel_size, stride=1, padding=0) -> np.ndarray:
    """Unfold every receptive field of ``x`` into a column: convolution becomes one matrix product.

    cols[(c*KH + i)*KW + j, (n*OH + r)*OW + s] = xp[n, c, r*sh + i, s*sw + j],

    where ``xp`` is ``x`` zero-padded by ``padding``. Then for weights ``w`` (F, C, KH, KW),
    ``w.reshape(F, -1) @ cols`` is the convolution, as an (F, N*OH*OW) matrix. The matrix holds
    about KH*KW / (sh*sw) times as many numbers as the input.

    Args:
        x: (N, C, H, W) input.
        kernel_size: KH = KW, or a pair (KH, KW).
        stride, padding: an int or a pair (vertical, horizontal), as in torch.
    Returns:
        (C*KH*KW, N*OH*OW) array in the dtype of ``x``. Matches ``torch.nn.functional.unfold``
        up to the order of axes (torch returns (N, C*KH*KW, OH*OW)).
    """
    x = as_array(x, "x")
    check_ndim(x, 4, "x", "(N, C, H, W)")
    kh, kw = pair(kernel_size, "kernel_size")
    g = _geometry(x.shape, (kh, kw), 1, stride, padding, "kernel_size")
    xp = np.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)))  # (N, C, Hp, Wp)
    cols = np.empty((g.C, kh, kw, g.N, g.OH, g.OW), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            # entry (i, j) of every window: rows i, i + sh, ..., columns j, j + sw, ...
            entry = xp[:, :, i:i + g.sh * g.OH:g.sh, j:j + g.sw * g.OW:g.sw]  # (N, C, OH, OW)
            cols[:, i, j] = entry.transpose(1, 0, 2, 3)  # (C, N, OH, OW)
    return cols.reshape(g.C * kh * kw, g.N * g.OH * g.OW)


def col2im(cols: np.ndarray, x_shape, kernel_size, stride=1, padding=0) -> np.ndarray:
    """Fold columns back into an image, *adding* where receptive fields overlap (the adjoint of im2col).

    dx[n, c, r*sh + i - ph, s*sw + j - pw] += cols[(c*KH + i)*KW + j, (n*OH + r)*OW + s]

    for every column entry whose position falls inside the unpadded image (entries on the padding
    are dropped). This is exactly the backward pass of :func:`im2col`: if ``cols = im2col(x)``
    then ``sum(cols * G) == sum(x * col2im(G))`` for any G.

    Args:
        cols: (C*KH*KW, N*OH*OW) array, laid out as :func:`im2col` returns it.
        x_shape: (N, C, H, W), the shape of the image the columns came from.
        kernel_size, stride, padding: as given to :func:`im2col`.
    Returns:
        (N, C, H, W) array. Matches ``torch.nn.functional.fold`` up to the order of axes.
    """
    cols = as_array(cols, "cols")
    if len(tuple(x_shape)) != 4:
        raise ValueError(f"x_shape: expected (N, C, H, W), got {tuple(x_shape)!r}")
    kh, kw = pair(kernel_size, "kernel_size")
    g = _geometry(tuple(int(s) for s in x_shape), (kh, kw), 1, stride, padding, "kernel_size")
    check_shape(cols, (g.C * kh * kw, g.N * g.OH * g.OW), "cols")
    blocks = cols.reshape(g.C, kh, kw, g.N, g.OH, g.OW)
    dxp = np.zeros((g.N, g.C, g.Hp, g.Wp), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            # the positions entry (i, j) of every window was copied from get its gradient back
            dxp[:, :, i:i + g.sh * g.OH:g.sh, j:j + g.sw * g.OW:g.sw] += blocks[:, i, j].transpose(1, 0, 2, 3)
    return dxp[:, :, g.ph:g.ph + g.H, g.pw:g.pw + g.W].copy()


# --- naive: the equations as loops ------------------------------------------------------------

def conv2d_forward_naive(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride=1, padding=0):
    """Convolution (cross-correlation) by explicit loops over the output, straight from the equation.

    out[n, f, r, s] = b[f] + sum_{c, i, j} w[f, c, i, j] * xp[n, c, r*sh + i, s*sw + j]

    Args:
        x: (N, C, H, W) input; w: (F, C, KH, KW) filters; b: (F,) bias or None.
        stride, padding: an int or a pair (vertical, horizontal).
    Returns:
        ``(out, cache)``: out (N, F, OH, OW), and the cache for :func:`conv2d_backward_naive`.
        Matches ``torch.nn.functional.conv2d(x, w, b, stride, padding)``; slow, for teaching and tests.
    """
    x, w, b, g = _conv_args(x, w, b, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)))  # (N, C, Hp, Wp)
    out = np.zeros((g.N, g.F, g.OH, g.OW), dtype=x.dtype)
    for n in range(g.N):
        for f in range(g.F):
            for r in range(g.OH):
                for s in range(g.OW):
                    field = xp[n, :, r * g.sh:r * g.sh + g.KH, s * g.sw:s * g.sw + g.KW]  # (C, KH, KW)
                    out[n, f, r, s] = np.sum(field * w[f]) + (b[f] if b is not None else 0.0)
    return out, (x, w, b, (g.sh, g.sw), (g.ph, g.pw))


def conv2d_backward_naive(dout: np.ndarray, cache):
    """Gradients of the convolution by loops that mirror their derivation.

    With L the loss and dout = dL/dout (N, F, OH, OW):

    * db[f] = sum_{n, r, s} dout[n, f, r, s]                          (a sum);
    * dw[f, c, i, j] = sum_{n, r, s} dout[n, f, r, s] * xp[n, c, r*sh + i, s*sw + j]
      (a correlation of the padded input with dout, whose entries sit ``stride`` apart);
    * dx is a *full* convolution of dout with the kernel rotated by 180 degrees: spread dout out
      by the stride (insert sh - 1 zero rows and sw - 1 zero columns between entries), pad it by
      KH - 1 and KW - 1 on every side, correlate it with ``w[:, :, ::-1, ::-1]`` summing over the
      filters f, and cut off the padding ``(ph, pw)`` of the input.

    Args:
        dout: (N, F, OH, OW) upstream gradient.
        cache: from :func:`conv2d_forward_naive`.
    Returns:
        ``(dx, dw, db)`` with the shapes of x, w and b (db is None without a bias).
        Matches torch.autograd through ``torch.nn.functional.conv2d``; slow, for teaching and tests.
    """
    x, w, b, stride, padding = cache
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    (sh, sw), (ph, pw) = stride, padding
    OH, OW = (H + 2 * ph - KH) // sh + 1, (W + 2 * pw - KW) // sw + 1
    dout = as_array(dout, "dout")
    check_shape(dout, (N, F, OH, OW), "dout")

    db = dout.sum(axis=(0, 2, 3)) if b is not None else None  # (F,)

    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))  # (N, C, Hp, Wp)
    dw = np.zeros_like(w)
    for f in range(F):
        for c in range(C):
            for i in range(KH):
                for j in range(KW):
                    seen = xp[:, c, i:i + sh * (OH - 1) + 1:sh, j:j + sw * (OW - 1) + 1:sw]  # (N, OH, OW)
                    dw[f, c, i, j] = np.sum(dout[:, f] * seen)

    spread = np.zeros((N, F, sh * (OH - 1) + 1, sw * (OW - 1) + 1), dtype=dout.dtype)
    spread[:, :, ::sh, ::sw] = dout  # dout with the stride's gaps
    full = np.pad(spread, ((0, 0), (0, 0), (KH - 1, KH - 1), (KW - 1, KW - 1)))
    w_rot = w[:, :, ::-1, ::-1]  # (F, C, KH, KW), every kernel rotated by 180 degrees
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=np.result_type(dout, w))
    for n in range(N):
        for c in range(C):
            # rows/columns of xp below/right of the last window get no gradient: they stay 0
            for y in range(spread.shape[2] + KH - 1):
                for z in range(spread.shape[3] + KW - 1):
                    dxp[n, c, y, z] = np.sum(full[n, :, y:y + KH, z:z + KW] * w_rot[:, c])
    dx = dxp[:, :, ph:ph + H, pw:pw + W]
    return dx, dw, db


# --- im2col: the convolution as one matrix product ---------------------------------------------

def conv2d_forward_im2col(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride=1, padding=0):
    """Convolution as one matrix product: out = w.reshape(F, C*KH*KW) @ im2col(x) + b.

    Args:
        x: (N, C, H, W) input; w: (F, C, KH, KW) filters; b: (F,) bias or None.
        stride, padding: an int or a pair (vertical, horizontal).
    Returns:
        ``(out, cache)``: out (N, F, OH, OW) and the cache for :func:`conv2d_backward_im2col`,
        which keeps the column matrix. Matches ``torch.nn.functional.conv2d``.
    """
    x, w, b, g = _conv_args(x, w, b, stride, padding)
    cols = im2col(x, (g.KH, g.KW), (g.sh, g.sw), (g.ph, g.pw))  # (C*KH*KW, N*OH*OW)
    out = w.reshape(g.F, -1) @ cols  # (F, N*OH*OW)
    if b is not None:
        out += b[:, None]
    out = out.reshape(g.F, g.N, g.OH, g.OW).transpose(1, 0, 2, 3)  # (N, F, OH, OW)
    return out, (x.shape, w, b is not None, cols, g)


def conv2d_backward_im2col(dout: np.ndarray, cache):
    """Gradients of :func:`conv2d_forward_im2col`: with D = dout as an (F, N*OH*OW) matrix,

    dw = D @ cols.T,   db = D @ 1,   dx = col2im(w.reshape(F, -1).T @ D).

    Returns:
        ``(dx, dw, db)`` with the shapes of x, w and b (db is None without a bias). Matches
        torch.autograd through ``torch.nn.functional.conv2d``.
    """
    x_shape, w, has_bias, cols, g = cache
    dout = as_array(dout, "dout")
    check_shape(dout, (g.N, g.F, g.OH, g.OW), "dout")
    D = dout.transpose(1, 0, 2, 3).reshape(g.F, -1)  # (F, N*OH*OW), columns ordered like im2col's
    dw = (D @ cols.T).reshape(w.shape)  # (F, C, KH, KW)
    db = D.sum(axis=1) if has_bias else None  # (F,)
    dcols = w.reshape(g.F, -1).T @ D  # (C*KH*KW, N*OH*OW)
    dx = col2im(dcols, x_shape, (g.KH, g.KW), (g.sh, g.sw), (g.ph, g.pw))  # (N, C, H, W)
    return dx, dw, db


# --- tuned: what the layers use ---------------------------------------------------------------

def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride=1, padding=0):
    """The convolution the layers and models run: :func:`conv2d_forward_im2col`'s map, tuned.

    The tuned code (:mod:`dlbook._conv_fast`) works through the batch a few images at a time, on
    every core, and keeps only the padded input for the backward pass, which rebuilds the columns.

    Args:
        x: (N, C, H, W) input; w: (F, C, KH, KW) filters; b: (F,) bias or None.
        stride, padding: an int or a pair (vertical, horizontal).
    Returns:
        ``(out, cache)`` with out (N, F, OH, OW) in the common dtype of the arguments (float32 stays
        float32). Matches ``torch.nn.functional.conv2d(x, w, b, stride, padding)``.
    Raises:
        ValueError: for wrong ranks, mismatched channels, a bias of the wrong length, bad stride or
            padding, or a kernel larger than the padded input.
    """
    x, w, b, g = _conv_args(x, w, b, stride, padding)
    return _conv_fast.forward(x, w, b, g)


def conv2d_backward(dout: np.ndarray, cache: ConvCache):
    """Gradients of :func:`conv2d_forward`: ``(dx, dw, db)``, as :func:`conv2d_backward_im2col`.

    Matches torch.autograd through ``torch.nn.functional.conv2d``; db is None without a bias.
    """
    return _conv_fast.backward(dout, cache)


# --- layer ------------------------------------------------------------------------------------

class Conv2d(Module):
    """2-D convolution layer holding ``params['w']`` (F, C, KH, KW) and ``params['b']`` (F,).

    Initialised like ``torch.nn.Conv2d``: weights and bias drawn from U(-1/sqrt(fan_in),
    1/sqrt(fan_in)) with fan_in = C*KH*KW (torch's kaiming_uniform_ with a = sqrt(5)). Forward and
    backward call :func:`conv2d_forward` / :func:`conv2d_backward`. No dilation, groups or
    padding modes (zero padding only).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True, *, rng: np.random.Generator | None = None, dtype=np.float64) -> None:
        super().__init__()
        self.in_channels = _check_int(in_channels, "in_channels", 1)
        self.out_channels = _check_int(out_channels, "out_channels", 1)
        self.kernel_size = pair(kernel_size, "kernel_size")
        if min(self.kernel_size) < 1:
            raise ValueError(f"kernel_size: expected positive ints, got {kernel_size!r}")
        self.stride, self.padding = _stride_padding(stride, padding)
        rng = np.random.default_rng() if rng is None else rng
        shape = (out_channels, in_channels) + self.kernel_size
        fan_in, _ = init.calculate_fan_in_and_fan_out(shape)  # C*KH*KW
        # torch's default: kaiming_uniform with a = sqrt(5), which is U(-1/sqrt(fan_in), ...)
        bound = 1.0 / np.sqrt(fan_in)
        self.params["w"] = init.uniform(shape, rng, -bound, bound).astype(dtype)
        if bias:
            self.params["b"] = init.uniform((out_channels,), rng, -bound, bound).astype(dtype)
        self.zero_grad()

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, self._cache = conv2d_forward(x, self.params["w"], self.params.get("b"), self.stride, self.padding)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx, dw, db = conv2d_backward(dout, self._need_cache())
        self.grads["w"] = dw
        if db is not None:
            self.grads["b"] = db
        return dx

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={'b' in self.params}")
