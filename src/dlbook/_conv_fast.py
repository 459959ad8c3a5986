"""The tuned convolution behind :func:`dlbook.conv.conv2d_forward` and :func:`dlbook.conv.conv2d_backward`.

The book prints :func:`dlbook.conv.conv2d_forward_im2col` (im2col over the whole batch and one
matrix product); this module computes the same map faster, and ``tests/test_conv.py`` holds it
equal to that version, to the naive loops and to ``torch.nn.functional.conv2d`` in float64.
It is engineering, not teaching: ``benchmarks/README.md`` explains the measurements behind it.

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
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from dlbook import _parallel
from dlbook._validate import as_array, check_shape

if TYPE_CHECKING:  # the geometry is computed and checked by dlbook.conv
    from dlbook.conv import _Geometry

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


def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, g: _Geometry):
    """out = w.reshape(F, C*KH*KW) @ im2col(x) + b, by groups of images and threads.

    The bias is one more column of the weight matrix, multiplied by a row of ones under the
    columns. The work goes a group of images at a time: build the group's column matrix,
    multiply, and copy the product into ``out`` (N, F, OH, OW). On a machine with several cores
    the batch is split between threads, each with its own groups (see :mod:`dlbook._parallel`).
    Only the padded input is kept for the backward pass, which rebuilds each group's columns.

    Args:
        x, w, b, g: as validated by ``dlbook.conv._conv_args``.
    Returns:
        ``(out, cache)``: out (N, F, OH, OW) in the dtype of ``x``; the cache for :func:`backward`.
    """
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




def backward(dout: np.ndarray, cache: ConvCache):
    """Gradients of :func:`forward`: two matrix products and a col2im per group of images.

    With D = dout arranged as an (F, N*OH*OW) matrix and cols = im2col(x): dw = D @ cols.T
    (computed as its transpose cols @ D.T, which the BLAS library runs faster, and summed over
    the groups); db = the sum of dout (a row of ones under the columns makes it one more row of
    that product); dx = col2im(w.reshape(F, -1).T @ D).

    Returns:
        ``(dx, dw, db)`` with the shapes of x, w and b (db is None without a bias).
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
