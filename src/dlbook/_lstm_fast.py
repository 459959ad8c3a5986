"""The LSTM's tuned path, used by ``dlbook.lstm.LSTM``; same maths as ``lstm_forward/backward``.

Not printed by the book; tested equal to the readable functions (float64 to 1e-10, float32 to
float32 rounding). What it does differently, and why:

* The input projection of every step is one matrix product, (T*N, D) @ (D, 4H), before the
  loop; only the recurrent product h_{t-1} W_hh^T stays inside it.
* One ``np.tanh`` over the whole (N, 4H) block computes all four gate nonlinearities:
  sigmoid(a) = 0.5 + 0.5 tanh(a / 2), and the rows of the i, f and o gates in the forward
  weights and biases are halved once (exact in binary floating point), so that after the
  tanh a multiply and an add by per-column constants (0.5 and 0.5 for i, f, o; 1 and 0 for g)
  turn those columns into sigmoids.
* Every per-step array lives in buffers allocated once per call, written with ``out=``; the
  dtype of the inputs is kept (float32 stays float32).
* The backward loop writes each step's pre-activation gradients dA_t straight into one
  (T, N, 4H) array, with in-place products on (N, H) slices, and carries dh and dc.
* dW_ih, dW_hh, the bias gradient and dx are each one product (or sum) over all T*N rows after
  the loop.
* The sequences of a batch never meet inside the layer, so for a large enough batch and
  hidden size the time loops (forward and backward) run on parts of the batch in worker
  threads, one per core, each with single-threaded BLAS (:mod:`dlbook._parallel`); smaller
  ones run in the caller's thread with BLAS held to one thread (threadpoolctl). The large
  products before and after the loops are shared out by rows of the (T*N, .) matrices between
  the workers, the weight gradients as a sum of per-part products. Measured on a busy two-core
  machine, OpenBLAS's own two threads made the small per-step products several times slower
  than one thread.
"""

from __future__ import annotations

import contextlib
import math
import threading

import numpy as np

from dlbook import _parallel
from dlbook._recurrent import check_cell_args, check_upstream
from dlbook._validate import as_array, check_shape


# Scratch arrays of the backward pass, kept per thread and reused from call to call: fresh
# memory of a few MB costs a page fault per 4 kB page on first touch. Nothing that a function
# returns or caches lives here; an array over _SCRATCH_MAX_BYTES is allocated for the call only.
_scratch = threading.local()
_SCRATCH_MAX_BYTES = 32 * 2**20


def _workspace(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array of ``shape``, reused between calls of this thread."""
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    if size * dtype.itemsize > _SCRATCH_MAX_BYTES:
        return np.empty(shape, dtype=dtype)
    buffers = _scratch.__dict__.setdefault("buffers", {})
    buf = buffers.get((name, dtype))
    if buf is None or buf.size < size:
        buf = buffers[(name, dtype)] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


def _run_on_parts(fn, n: int, work: float) -> list:
    """``fn(n0, n1)`` over consecutive parts of ``range(n)``, one part per available thread."""
    threads = _parallel.available_threads()
    return _parallel.run_parts(fn, n, -(-n // threads), work)


# The time loops are shared out between threads only when each part's recurrent product is at
# least this many multiply-adds per step: below it, each step's numpy calls are so short that the
# threads mostly wait for each other's turn at the interpreter. Measured on a two-core machine:
# (N/2) * H * 4H = 2**21 (N = 16, H = 256) ran faster in two threads, 2**20 (N = 32, H = 128)
# faster in one.
_MIN_PART_STEP_WORK = 3 * 2**19
_blas_control: list = []  # threadpoolctl's controller of the BLAS libraries, made on first use


def _one_blas_thread():
    """A context in which numpy's BLAS runs on one thread (none without threadpoolctl)."""
    if not _blas_control:
        try:
            from threadpoolctl import ThreadpoolController  # installed with scikit-learn
            _blas_control.append(ThreadpoolController().select(user_api="blas"))
        except ImportError:
            _blas_control.append(None)
    control = _blas_control[0]
    return contextlib.nullcontext() if control is None else control.limit(limits=1)


def _run_time_loop(fn, batch: int, hidden: int) -> None:
    """``fn(n0, n1)`` over the batch: in parts on worker threads, or whole on one BLAS thread."""
    threads = _parallel.available_threads()
    if threads > 1 and (batch // threads) * 4 * hidden * hidden >= _MIN_PART_STEP_WORK:
        _parallel.run_parts(fn, batch, -(-batch // threads), float("inf"))
    else:
        with _one_blas_thread():  # small products: threads would only wait for each other
            fn(0, batch)


def _forward_loop(gates, hs, cs, tanh_c, w_hh_fwd, scale, shift) -> None:
    """The time loop over one part of the batch (all arrays are that part's views)."""
    steps, batch, hidden = tanh_c.shape
    hid = hidden
    rec = np.empty((batch, 4 * hidden), dtype=gates.dtype)
    ig = np.empty((batch, hidden), dtype=gates.dtype)
    for t in range(steps):
        gt = gates[t]
        np.matmul(hs[t], w_hh_fwd, out=rec)
        gt += rec
        np.tanh(gt, out=gt)  # tanh(a/2) for i, f, o; tanh(a) for g
        gt *= scale
        gt += shift  # sigmoid(a) = 0.5 + 0.5 tanh(a/2) for i, f, o; g unchanged
        i, f, g, o = gt[:, :hid], gt[:, hid:2 * hid], gt[:, 2 * hid:3 * hid], gt[:, 3 * hid:]
        np.multiply(f, cs[t], out=cs[t + 1])
        np.multiply(i, g, out=ig)
        cs[t + 1] += ig
        np.tanh(cs[t + 1], out=tanh_c[t])
        np.multiply(o, tanh_c[t], out=hs[t + 1])


def lstm_forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh):
    """Same arguments and results as :func:`dlbook.lstm.lstm_forward` (its own cache)."""
    x, states, weight_ih, weight_hh, bias_ih, bias_hh, hidden = check_cell_args(
        x, {"h0": h0, "c0": c0}, weight_ih, weight_hh, bias_ih, bias_hh, gates=4, sequence=True)
    h0, c0 = states["h0"], states["c0"]
    dtype = np.result_type(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh)
    steps, batch, features = x.shape
    scale = np.full(4 * hidden, 0.5, dtype=dtype)  # per gate column, gate order i, f, g, o
    scale[2 * hidden:3 * hidden] = 1.0  # g is a tanh
    shift = scale.copy()
    shift[2 * hidden:3 * hidden] = 0.0
    w_ih = weight_ih.astype(dtype, copy=False)  # (4H, D), kept for dx
    w_hh = weight_hh.astype(dtype, copy=False)  # (4H, H), kept for dh
    w_ih_fwd = np.ascontiguousarray((w_ih * scale[:, None]).T)  # (D, 4H)
    w_hh_fwd = np.ascontiguousarray((w_hh * scale[:, None]).T)  # (H, 4H)
    bias = ((bias_ih + bias_hh) * scale).astype(dtype, copy=False)

    x2d = np.ascontiguousarray(x.reshape(steps * batch, features), dtype=dtype)  # (T*N, D)
    gates = np.empty((steps, batch, 4 * hidden), dtype=dtype)
    gates2d = gates.reshape(steps * batch, 4 * hidden)

    def project(r0: int, r1: int) -> None:  # rows r0..r1 of the input projection
        np.matmul(x2d[r0:r1], w_ih_fwd, out=gates2d[r0:r1])
        gates2d[r0:r1] += bias

    _run_on_parts(project, steps * batch, steps * batch * 4 * hidden * features)
    hs = np.empty((steps + 1, batch, hidden), dtype=dtype)  # h_0..h_T
    cs = np.empty((steps + 1, batch, hidden), dtype=dtype)  # c_0..c_T
    tanh_c = np.empty((steps, batch, hidden), dtype=dtype)
    hs[0], cs[0] = h0, c0

    def part(n0: int, n1: int) -> None:
        _forward_loop(gates[:, n0:n1], hs[:, n0:n1], cs[:, n0:n1], tanh_c[:, n0:n1], w_hh_fwd,
                      scale, shift)

    _run_time_loop(part, batch, hidden)
    cache = (x2d, x.shape, w_ih, w_hh, gates, hs, cs, tanh_c)
    # Copies: the caller may change what it gets without touching the cache.
    return hs[1:].copy(), (hs[steps].copy(), cs[steps].copy()), cache


def _backward_loop(dout, dh, dc, gates, cs, tanh_c, dgates, w_hh) -> None:
    """The time loop over one part of the batch; ``dh``, ``dc`` are updated in place.

    Each step works on (N, H) slices that stay in the processor's cache; computing the local
    factors here rather than for all steps up front (numpy's passes over the strided gate
    blocks of the whole sequence) was faster at the benchmark shapes.
    """
    steps, batch, hidden = tanh_c.shape
    hid = hidden
    dtype = dgates.dtype
    dh_t = np.empty((batch, hidden), dtype=dtype)
    tmp = np.empty((batch, hidden), dtype=dtype)
    for t in reversed(range(steps)):
        gt, tc, da = gates[t], tanh_c[t], dgates[t]  # (N, 4H), (N, H), (N, 4, H)
        i, f, g, o = gt[:, :hid], gt[:, hid:2 * hid], gt[:, 2 * hid:3 * hid], gt[:, 3 * hid:]
        da_i, da_f, da_g, da_o = da[:, 0], da[:, 1], da[:, 2], da[:, 3]
        np.add(dout[t], dh, out=dh_t)
        np.multiply(tc, tc, out=tmp)
        np.subtract(1, tmp, out=tmp)
        tmp *= o
        tmp *= dh_t
        dc += tmp  # dc = dc_next + dh * o * (1 - tanh(c)^2)
        da_if = da.reshape(batch, 4 * hidden)[:, :2 * hid]
        np.subtract(1, gt[:, :2 * hid], out=da_if)
        da_if *= gt[:, :2 * hid]  # i (1 - i), f (1 - f)
        da_i *= g
        da_i *= dc  # dA_i = dc * g * i (1 - i)
        da_f *= cs[t]
        da_f *= dc  # dA_f = dc * c_prev * f (1 - f)
        np.multiply(g, g, out=da_g)
        np.subtract(1, da_g, out=da_g)
        da_g *= i
        da_g *= dc  # dA_g = dc * i * (1 - g^2)
        np.subtract(1, o, out=da_o)
        da_o *= o
        da_o *= tc
        da_o *= dh_t  # dA_o = dh * tanh(c) * o (1 - o)
        dc *= f  # dc_prev = dc * f
        np.matmul(da.reshape(batch, 4 * hidden), w_hh, out=dh)  # dh_prev = dA W_hh


def lstm_backward(dout, cache, dh_n=None, dc_n=None):
    """Same arguments and results as :func:`dlbook.lstm.lstm_backward`, for this module's cache."""
    x2d, x_shape, w_ih, w_hh, gates, hs, cs, tanh_c = cache
    steps, batch, hidden = tanh_c.shape
    dout = as_array(dout, "dout")
    check_shape(dout, (steps, batch, hidden), "dout")
    dtype = np.result_type(dout, gates)
    dh = check_upstream(dh_n, (batch, hidden), "dh_n", dtype).astype(dtype, copy=True)
    dc = check_upstream(dc_n, (batch, hidden), "dc_n", dtype).astype(dtype, copy=True)
    dgates = _workspace("dgates", (steps, batch, 4, hidden), dtype)  # dL/d(pre-activation)

    def part(n0: int, n1: int) -> None:
        _backward_loop(dout[:, n0:n1], dh[n0:n1], dc[n0:n1], gates[:, n0:n1], cs[:, n0:n1],
                       tanh_c[:, n0:n1], dgates[:, n0:n1], w_hh)

    _run_time_loop(part, batch, hidden)
    dgates2d = dgates.reshape(steps * batch, 4 * hidden)
    h_prev2d = hs[:-1].reshape(steps * batch, hidden)
    dx2d = np.empty((steps * batch, x2d.shape[1]), dtype=dtype)

    def products(r0: int, r1: int):  # rows r0..r1 of dx, and their share of the weight sums
        np.matmul(dgates2d[r0:r1], w_ih, out=dx2d[r0:r1])
        return (dgates2d[r0:r1].T @ x2d[r0:r1], dgates2d[r0:r1].T @ h_prev2d[r0:r1],
                dgates2d[r0:r1].sum(axis=0))

    shares = _run_on_parts(products, steps * batch,
                           steps * batch * 4 * hidden * (2 * x2d.shape[1] + hidden))
    dweight_ih, dweight_hh, dbias = (sum(share[k] for share in shares) for k in range(3))
    return dx2d.reshape(x_shape), dh, dc, dweight_ih, dweight_hh, dbias, dbias.copy()
