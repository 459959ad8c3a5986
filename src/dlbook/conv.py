"""2-D convolution (cross-correlation, as in PyTorch): naive loops, im2col + one matrix multiply, backward.

Layout is PyTorch's: input ``x`` (N, C, H, W), weights ``w`` (F, C, KH, KW), bias ``b`` (F,),
output (N, F, OH, OW). With the input zero-padded by ``(ph, pw)`` to ``xp`` and strides ``(sh, sw)``,

    out[n, f, r, s] = b[f] + sum_{c, i, j} w[f, c, i, j] * xp[n, c, r*sh + i, s*sw + j],
    OH = (H + 2*ph - KH) // sh + 1,   OW = (W + 2*pw - KW) // sw + 1.

The kernel is *not* flipped (that would be a convolution in the signal-processing sense); deep
learning libraries call this cross-correlation "convolution", and so do we.

Three implementations of the same map, tested against each other and against
``torch.nn.functional.conv2d`` in float64:

* ``conv2d_forward_naive`` / ``conv2d_backward_naive``: explicit loops over output positions that
  mirror the equations (what the chapter prints; slow).
* ``im2col`` / ``col2im``: the building blocks of the fast path. ``im2col`` copies every receptive
  field into one column of a matrix, so the whole convolution becomes a single matrix product
  ``w.reshape(F, C*KH*KW) @ cols``; ``col2im`` is its adjoint (it adds columns back into an image).
* ``conv2d_forward`` / ``conv2d_backward``: the fast path used by models. The forward pass and the
  two gradients are three matrix products around im2col/col2im (see their docstrings).

How the fast path is organised (implementation details, invisible in the results; each one was
measured on the benchmark in ``benchmarks/bench_conv.py``, where the matrix products run near
the BLAS library's peak and the time goes into the memory copies around them):

* It works through the batch a group of images at a time (a group's column matrix holds at most
  ``_CHUNK_BYTES``, 2 MB), so the column matrix and the temporaries around it stay in the
  processor's cache. The backward pass rebuilds each group's columns from the padded input
  rather than keeping a whole-batch column matrix (KH*KW times the size of the input) from the
  forward pass: copying within the cache is cheaper than writing and re-reading that matrix in
  main memory.
* On a machine with several cores the groups are shared out between worker threads, one per
  core, each doing its own copies and its own matrix products on one core
  (:mod:`dlbook._parallel`; numpy's BLAS library is held to one thread meanwhile). Otherwise
  numpy would run the products on all cores but every copy on one, leaving the others idle.
* Scratch buffers are reused from call to call (per thread): freshly allocated memory costs a
  page fault per 4 kB page when first written.
* At stride 1 it builds "wide rows": each output row is computed ``Wp = W + 2*pw`` positions wide
  instead of ``OW`` and the ``KW - 1`` extra positions are discarded. Then the block of the column
  matrix for kernel offset (i, j) is, per image and channel, one *contiguous* slice of the
  flattened padded image, ``xp_flat[n, c, i*Wp + j : i*Wp + j + OH*Wp]``, so building the matrix
  (and adding it back in the backward pass) is a few long memory copies instead of many short ones.
  The extra columns cost ``Wp / OW - 1`` more arithmetic (6 % for a 32x32 image with a 3x3 kernel
  and padding 1). The backward pass gives them a zero upstream gradient, so they contribute
  nothing to dw or dx. Any other stride uses the textbook columns.
* The bias rides along in the matrix products: it is one more column of the weight matrix,
  against a row of ones appended to the columns, so the forward product already holds
  ``w @ cols + b``, and in the backward pass the same row of ones turns one more row of the dw
  product into db. That saves a pass over the output and one over dout.
* dw is computed as its transpose, ``cols @ dout_matrix.T``, which the BLAS library runs faster
  than ``dout_matrix @ cols.T`` for these shapes.
"""

from __future__ import annotations

import math
import threading
from typing import NamedTuple

import numpy as np

from dlbook import _parallel, init
from dlbook._validate import as_array, check_ndim, check_shape, pair
from dlbook.module import Module

__all__ = [
    "conv_output_size", "im2col", "col2im",
    "conv2d_forward_naive", "conv2d_backward_naive",
    "conv2d_forward", "conv2d_backward", "ConvCache", "Conv2d",
]

# The fast path works through the batch a group of images at a time; a group's column matrix holds
# at most this many bytes (but always at least one image), so that it and the temporaries around
# it stay in the processor's cache. Measured on the benchmark shapes: 1-2 MB is best.
_CHUNK_BYTES = 2 * 2**20

# Scratch buffers of the fast path (a group's columns, products, gradients), kept per thread and
# reused from call to call: fresh memory of a few MB costs a page fault per 4 kB page on first
# touch, which on the benchmark's machine made up to a third of the time of a small convolution.
# Nothing that a function returns or caches lives here. A buffer larger than _SCRATCH_MAX_BYTES
# (one huge image can need one) is allocated for the call only, so at most a few times that
# stays allocated per thread.
_scratch = threading.local()
_SCRATCH_MAX_BYTES = 16 * 2**20


def _workspace(name: str, size: int, dtype) -> np.ndarray:
    """A flat scratch array of at least ``size`` elements, reused between calls (per thread)."""
    dtype = np.dtype(dtype)
    if size * dtype.itemsize > _SCRATCH_MAX_BYTES:
        return np.empty(size, dtype=dtype)
    buffers = _scratch.__dict__.setdefault("buffers", {})
    key = (name, dtype)
    buf = buffers.get(key)
    if buf is None or buf.size < size:
        buf = buffers[key] = np.empty(size, dtype=dtype)
    return buf


# --- sizes and argument checks ------------------------------------------------------------------

def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution (or pooling) along one axis, ``(size - kernel_size + 2*padding) // stride + 1``.

    With input width W, filter width F, padding P and stride S this is the familiar
    (W - F + 2P) // S + 1. Integer division: when the stride does not divide W - F + 2P, the
    last positions of the input that a full window cannot reach are dropped (as torch does).

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


def _pad(x: np.ndarray, g: _Geometry, spare_row: bool = False) -> np.ndarray:
    """Zero-pad ``x`` (N, C, H, W) to (N, C, Hp [+ 1], Wp); the spare row absorbs wide-row overrun."""
    xp = np.zeros((g.N, g.C, g.Hp + int(spare_row), g.Wp), dtype=x.dtype)
    xp[:, :, g.ph:g.ph + g.H, g.pw:g.pw + g.W] = x
    return xp


# --- im2col / col2im --------------------------------------------------------------------------

def _window(xp: np.ndarray, i: int, j: int, g: _Geometry, wide: bool) -> np.ndarray:
    """Entry (i, j) of every receptive field: a view of ``xp`` (N, C, Hp[+1], Wp).

    Element [n, c, r, s] of the view is ``xp[n, c, r*sh + i, s*sw + j]``. Shape (N, C, OH, OW),
    or (N, C, OH*Wp) for wide rows (stride 1), where it is one contiguous slice per image and channel.
    """
    if wide:
        flat = xp.reshape(xp.shape[0], xp.shape[1], -1)  # (N, C, (Hp+1)*Wp), a view
        start = i * g.Wp + j
        return flat[:, :, start:start + g.OH * g.Wp]  # (N, C, OH*Wp)
    return xp[:, :, i:i + g.sh * (g.OH - 1) + 1:g.sh, j:j + g.sw * (g.OW - 1) + 1:g.sw]  # (N, C, OH, OW)


def _all_windows(xp: np.ndarray, g: _Geometry, wide: bool) -> np.ndarray:
    """Every receptive field of ``xp`` (N, C, R, Wp), as a read-only strided view (no copy).

    Shape (C, KH, KW, N, OH, OW) with [c, i, j, n, r, s] = xp[n, c, r*sh + i, s*sw + j]: the
    column matrix before it is copied into contiguous memory. For wide rows (stride 1) the last
    two axes are one, (OH*Wp,), the contiguous slice described in :func:`_window`.
    """
    if not xp.flags.c_contiguous:
        xp = np.ascontiguousarray(xp)
    n, c, rows, width = xp.shape
    e = xp.itemsize
    plane = rows * width * e  # bytes from one channel to the next
    head = (c, g.KH, g.KW, n)
    strides = (plane, width * e, e, c * plane)
    if wide:
        shape, strides = head + (g.OH * width,), strides + (e,)
    else:
        shape, strides = head + (g.OH, g.OW), strides + (g.sh * width * e, g.sw * e)
    # np.ndarray over xp's memory checks the view stays inside it (like as_strided, but faster)
    windows = np.ndarray(shape, xp.dtype, xp, 0, strides)
    windows.flags.writeable = False
    return windows


def _fill_columns(xp: np.ndarray, g: _Geometry, wide: bool, out: np.ndarray | None = None) -> np.ndarray:
    """The column matrix (C*KH*KW, N*OH*Q): one strided copy of :func:`_all_windows`.

    ``out``, if given, is a flat buffer of at least that many elements to write into.
    """
    windows = _all_windows(xp, g, wide)  # (C, KH, KW, N, ...) view
    cols = np.empty(windows.shape, dtype=xp.dtype) if out is None else _view(out, windows.shape)
    np.copyto(cols, windows)
    return cols.reshape(g.C * g.KH * g.KW, -1)


def _view(buffer: np.ndarray, shape) -> np.ndarray:
    """The first prod(shape) elements of a flat work buffer, as an array of that shape."""
    return buffer[:math.prod(shape)].reshape(shape)


def _add_columns(dcols: np.ndarray, dxp: np.ndarray, g: _Geometry, wide: bool) -> None:
    """Adjoint of :func:`_fill_columns`: add every column back onto its receptive field in ``dxp``."""
    rows = (g.OH * g.Wp,) if wide else (g.OH, g.OW)
    blocks = dcols.reshape((g.C, g.KH, g.KW, dxp.shape[0]) + rows)
    for i in range(g.KH):
        for j in range(g.KW):
            target = _window(dxp, i, j, g, wide)  # a view: += writes into dxp
            target += blocks[:, i, j].swapaxes(0, 1)


def im2col(x: np.ndarray, kernel_size, stride=1, padding=0) -> np.ndarray:
    """Unfold every receptive field of ``x`` into a column: convolution becomes one matrix product.

    cols[(c*KH + i)*KW + j, (n*OH + r)*OW + s] = xp[n, c, r*sh + i, s*sw + j],

    where ``xp`` is ``x`` zero-padded by ``padding``. Then for weights ``w`` (F, C, KH, KW),
    ``w.reshape(F, -1) @ cols`` is the convolution, as an (F, N*OH*OW) matrix.

    Memory: the matrix has C*KH*KW rows and N*OH*OW columns, i.e. about KH*KW / (sh*sw) times as
    many numbers as the input (9x for a 3x3 kernel at stride 1; 75 MB in float32 for a batch of 32
    images of 64 channels at 32x32). Writing and reading that much memory, not the arithmetic, is
    the price of the method, which is why :func:`conv2d_forward` builds it a few images at a time.

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
    return _fill_columns(_pad(x, g), g, wide=False)


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
    dxp = np.zeros((g.N, g.C, g.Hp, g.Wp), dtype=cols.dtype)
    _add_columns(cols, dxp, g, wide=False)
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
    xp = _pad(x, g)  # (N, C, Hp, Wp)
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


# --- fast: im2col + matrix products -----------------------------------------------------------

class ConvCache(NamedTuple):
    """What :func:`conv2d_backward` needs from the forward pass."""

    xp: np.ndarray  # (N, C, Hp [+ 1], Wp): the zero-padded input (one spare row for wide rows)
    w: np.ndarray  # (F, C, KH, KW)
    has_bias: bool
    geometry: _Geometry


def _group_size(g: _Geometry, itemsize: int) -> int:
    """Images per group: a group's column matrix holds at most ``_CHUNK_BYTES`` (but >= 1 image)."""
    return max(1, min(g.N, _CHUNK_BYTES // (g.C * g.KH * g.KW * g.OH * g.Q * itemsize)))


def _columns_with_ones(xp: np.ndarray, g: _Geometry, ones: bool, buffer: np.ndarray) -> np.ndarray:
    """The group's column matrix in ``buffer``, with a last row of ones if ``ones`` (for the bias).

    Returns (C*KH*KW [+ 1], m*OH*Q). Multiplied by the weights with the bias as one more column,
    the row of ones adds the bias to every output; multiplied by dout, it sums dout into db.
    """
    cols = _fill_columns(xp, g, g.wide, buffer)  # (C*KH*KW, m*OH*Q), a view of buffer
    if not ones:
        return cols
    rows, width = cols.shape
    buffer[rows * width:(rows + 1) * width] = 1.0
    return buffer[:(rows + 1) * width].reshape(rows + 1, width)


def _fold_columns(dcols: np.ndarray, dxp: np.ndarray, g: _Geometry) -> None:
    """Overwrite ``dxp`` (m, C, Hp [+ 1], Wp) with the sum of the columns on their receptive fields.

    The same as ``dxp.fill(0)`` followed by :func:`_add_columns`, one pass shorter with wide rows:
    there the block of kernel offset (0, 0) covers the first OH*Wp entries of every flattened
    image and channel, so it is copied rather than added, and only the rest is zeroed.
    """
    if not g.wide:
        dxp.fill(0.0)
        _add_columns(dcols, dxp, g, wide=False)
        return
    flat = dxp.reshape(g.N, g.C, -1)  # (m, C, (Hp+1)*Wp), a view
    blocks = dcols.reshape(g.C, g.KH, g.KW, g.N, g.OH * g.Wp)
    covered = g.OH * g.Wp
    np.copyto(flat[:, :, :covered], blocks[:, 0, 0].swapaxes(0, 1))
    flat[:, :, covered:] = 0.0
    for i in range(g.KH):
        for j in range(g.KW):
            if i or j:
                start = i * g.Wp + j
                target = flat[:, :, start:start + covered]
                np.add(target, blocks[:, i, j].swapaxes(0, 1), out=target)


def _dout_grid(size: int, g: _Geometry, dtype) -> np.ndarray:
    """Scratch for dout in the column layout, rows of Q entries whose last Q - OW entries stay zero.

    At stride 1 the wide rows' extra positions must get a zero upstream gradient. The buffer is
    allocated filled with zeros and only the first OW entries of each row of Q are ever written
    (whatever the group size, rows start at multiples of Q), so the zeros need no refilling.
    """
    buffers = _scratch.__dict__.setdefault("buffers", {})
    key = ("dout grid", g.Q, g.OW, np.dtype(dtype).str)
    buf = buffers.get(key)
    if buf is None or buf.size < size:
        buf = np.zeros(size, dtype=dtype)
        if size * buf.itemsize <= _SCRATCH_MAX_BYTES:
            buffers[key] = buf
    return buf


def _work(g: _Geometry) -> int:
    """Multiply-adds of one matrix product of the fast path (the forward pass)."""
    return g.N * g.F * g.OH * g.OW * g.C * g.KH * g.KW


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride=1, padding=0):
    """Convolution as a matrix product: out = w.reshape(F, C*KH*KW) @ im2col(x) + b.

    The same map as :func:`conv2d_forward_naive`. The bias is one more column of the weight
    matrix, multiplied by a row of ones under the columns. The work goes a group of images at a
    time: build the group's column matrix, multiply, and copy the product into ``out``
    (N, F, OH, OW). On a machine with several cores the batch is split between threads, each
    with its own groups (see :mod:`dlbook._parallel`). Only the padded input is kept for the
    backward pass, which rebuilds each group's columns: that is faster than writing (and later
    re-reading) a column matrix of the whole batch, KH*KW times the size of the input.

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
    xp = np.empty((g.N, g.C, g.Hp + int(g.wide), g.Wp), dtype=x.dtype)  # padded below, part by part
    w_mat = w.reshape(g.F, -1)  # (F, C*KH*KW)
    if b is not None:
        w_mat = np.concatenate([w_mat, b[:, None]], axis=1)  # (F, C*KH*KW + 1): the bias column
    out = np.empty((g.N, g.F, g.OH, g.OW), dtype=x.dtype)

    def forward_group(n0: int, n1: int) -> None:  # images n0:n1, on one of the threads
        gm = g._replace(N=n1 - n0)
        xp[n0:n1].fill(0.0)
        xp[n0:n1, :, g.ph:g.ph + g.H, g.pw:g.pw + g.W] = x[n0:n1]  # (m, C, Hp [+ 1], Wp)
        cols_buf = _workspace("cols", w_mat.shape[1] * columns, x.dtype)
        cols = _columns_with_ones(xp[n0:n1], gm, b is not None, cols_buf)  # (C*KH*KW [+ 1], m*OH*Q)
        prod = np.matmul(w_mat, cols, out=_view(_workspace("prod", g.F * columns, x.dtype), (g.F, cols.shape[1])))
        out[n0:n1] = prod.reshape(g.F, gm.N, g.OH, g.Q)[..., :g.OW].transpose(1, 0, 2, 3)  # (m, F, OH, OW)

    group = _group_size(g, x.itemsize)
    columns = g.OH * g.Q * group  # of the largest group: the scratch buffers' size
    _parallel.run_parts(forward_group, g.N, group, _work(g))
    return out, ConvCache(xp, w, b is not None, g)


def conv2d_backward(dout: np.ndarray, cache: ConvCache):
    """Gradients of :func:`conv2d_forward`: two matrix products and a col2im per group of images.

    With D = dout arranged as an (F, N*OH*OW) matrix and cols = im2col(x):

    * dw = D @ cols.T, reshaped to (F, C, KH, KW)   (every input value times every dout it met;
      computed as its transpose cols @ D.T, which the BLAS library runs faster, and summed over
      the groups of images);
    * db = the sum of dout over n, r, s   (the same product: a row of ones under the columns
      makes one more row of cols @ D.T);
    * dcols = w.reshape(F, -1).T @ D, then dx = col2im(dcols)   (each output's gradient sent back
      to the receptive field it came from, overlapping fields adding up).

    Args:
        dout: (N, F, OH, OW) upstream gradient.
        cache: from :func:`conv2d_forward`.
    Returns:
        ``(dx, dw, db)`` with the shapes of x, w and b (db is None without a bias). Matches
        torch.autograd through ``torch.nn.functional.conv2d``.
    """
    xp, w, has_bias, g = cache
    dout = as_array(dout, "dout")
    check_shape(dout, (g.N, g.F, g.OH, g.OW), "dout")
    dtype = np.result_type(dout, xp)
    k = g.C * g.KH * g.KW
    w_t = w.reshape(g.F, k).T.astype(dtype, copy=False)  # (C*KH*KW, F)
    dx = np.empty((g.N, g.C, g.H, g.W), dtype=dtype)

    def backward_group(n0: int, n1: int) -> np.ndarray:  # images n0:n1, on one of the threads
        gm = g._replace(N=n1 - n0)
        cols_buf = _workspace("cols", (k + has_bias) * columns, xp.dtype)
        cols = _columns_with_ones(xp[n0:n1], gm, has_bias, cols_buf)  # (C*KH*KW [+ 1], m*OH*Q), rebuilt
        # dout in the column layout (F, m, OH, Q); the wide rows' extra positions stay zero
        grid = _view(_dout_grid(g.F * columns, g, dtype), (g.F, gm.N, g.OH, g.Q))
        grid[..., :g.OW] = dout[n0:n1].transpose(1, 0, 2, 3)
        grid = grid.reshape(g.F, -1)  # (F, m*OH*Q)
        dw_t = cols @ grid.T  # (C*KH*KW [+ 1], F): this group's dw, transposed [and db]
        dcols = np.matmul(w_t, grid, out=_view(_workspace("dcols", k * columns, dtype), (k, grid.shape[1])))
        dxp = _view(_workspace("dxp", group * g.C * xp.shape[2] * xp.shape[3], dtype), (gm.N, g.C) + xp.shape[2:])
        _fold_columns(dcols, dxp, gm)  # col2im, into the padded layout (m, C, Hp [+ 1], Wp)
        dx[n0:n1] = dxp[:, :, g.ph:g.ph + g.H, g.pw:g.pw + g.W]
        return dw_t

    group = _group_size(g, xp.itemsize)
    columns = g.OH * g.Q * group  # of the largest group: the scratch buffers' size
    dw_t = sum(_parallel.run_parts(backward_group, g.N, group, _work(g)))  # (C*KH*KW [+ 1], F)
    db = dw_t[k].copy() if has_bias else None  # (F,)
    return dx, dw_t[:k].T.reshape(w.shape), db  # dw (F, C, KH, KW)


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
