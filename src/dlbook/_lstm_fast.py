"""The LSTM's tuned path, used by ``dlbook.lstm.LSTM``; same maths as ``lstm_forward/backward``.

Not printed by the book; tested equal to the readable functions (float64 to 1e-10, float32 to
float32 rounding). At the sizes of ``benchmarks/bench_lstm.py`` every step's work is one small
matrix product and a few short elementwise operations on arrays of a few thousand numbers,
where numpy's cost per call (about a microsecond, two to four times more on a strided 2-D
slice than on a contiguous block), not the arithmetic, sets the time of everything but the
products. What this module does about that, and why:

* Everything inside the time loops is transposed, (features, batch): the recurrent product is
  W (4H, H) @ h_{t-1}^T (H, N), so each gate of each step is a contiguous (H, N) block and every
  elementwise call works on contiguous memory.
* The input projections of all steps are computed outside the loop, straight into each step's
  (4H, N) block of the gate array; the bias rides along as one more weight column against a
  row of ones under the transposed input.
* One ``np.tanh`` over the whole gate block computes all four gate nonlinearities:
  sigmoid(a) = 0.5 + 0.5 tanh(a / 2). The forward weights put the gates in the order i, f, o, g
  (the three sigmoids side by side) with the sigmoid rows halved (exact in binary floating
  point), so after the tanh one multiply and one add on the first 3H rows finish them.
* Each step's block of the gate array holds i, f, o, g and then c_{t-1}, so [i, f] and
  [g, c_{t-1}] are adjacent pairs: one multiply gives [i g, f c_{t-1}], one add c_t, written
  straight into the next step's c slot. The forward step is nine numpy calls.
* The backward step needs dc += dh_t K_c, dA_o = dh_t K_o and [dA_i, dA_f, dA_g] =
  dc [K_i, K_f, K_g] with local factors that depend only on the forward pass (K_i = g i(1-i),
  K_f = c_{t-1} f(1-f), K_g = i(1-g^2), K_o = tanh(c) o(1-o), K_c = o(1-tanh(c)^2)). They are
  computed a few steps at a time (``_CHUNK_BYTES``), ten numpy calls per chunk, while the chunk
  is in the processor's cache (over the whole sequence at once the passes ran from main memory);
  the step is then six calls: two broadcast multiplies write [dA_o, dh_t K_c] and
  [dA_i, dA_f, dA_g] into adjacent slots of one (5, H, N) block, an add, dc *= f and
  dh = W_hh^T dA.
* dx, and dW_ih, dW_hh and the bias gradient together, are two products with the (4H, T*N)
  matrix of all steps' dA after the loop: the cache holds [x_t, h_{t-1}, 1] side by side for
  every step, so one product gives [dW_ih, dW_hh, dbias]. They run in chunks of steps, the
  weight gradients as sums over chunks.
* Arrays that a call returns or caches come from a small pool (``_pooled``) and are reused once
  nothing refers to them any more; scratch arrays are reused per thread (``_workspace``). Fresh
  memory costs a page fault per 4 kB page when first written: about 1000 faults, 1.7 ms, per
  forward + backward at the first benchmark shape before this. The dtype of the inputs is kept.
* Threads: with two or more cores and a large enough step (``_MIN_OVERLAP_STEP_WORK``), the
  time loop runs in the caller's thread while a helper thread computes the input projections
  ahead of it and each chunk's gradient products behind it (:func:`_run`), BLAS held to one
  thread (threadpoolctl) for both. The helper is a plain thread started for the call, not one
  of :mod:`dlbook._parallel`'s workers: those are tied to one CPU each, and on a busy machine a
  loop tied to a CPU waited for it while the other was free. Otherwise the loop runs alone on
  one BLAS thread and the products before and after it are shared out between the workers of
  :mod:`dlbook._parallel`. Measured on a busy two-core machine, OpenBLAS's own two threads made
  the small per-step products several times slower than one thread. An earlier version split
  the batch between two loops instead; in the transposed layout each part would need buffers
  of its own, and a per-step product on half the batch still took 0.77 of the whole one's
  time at the second benchmark shape (the whole weight matrix is read either way).
* Compiled loops: when numba is installed (it is in the requirements), ``lstm_forward`` and
  ``lstm_backward`` run the time loops compiled instead (:mod:`dlbook._lstm_numba`; its
  docstring has the design): per step one product and one fused elementwise pass, and, when
  other processes leave both cores nearly free (:func:`_parts`), the hidden units split between
  the caller's thread and a worker thread that meet at a barrier once per step. Without numba
  the numpy loops above run. ``USE_NUMBA`` switches it (None: when numba imports). The
  compiled path's cache is a :class:`_CompiledCache`; the numpy path's a plain tuple.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time

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


# Arrays that a call returns or caches (the forward cache, ``out``, ``dx``) are carved out of
# buffers kept here. A buffer is handed out again only when nothing refers to it any more: every
# array carved out of it, and every view of those, holds a reference to it (numpy's ``base``), so
# its reference count is back to the pool's own once the caller has dropped them all. The pool
# keeps at most _POOL_MAX_BYTES; anything beyond is allocated normally.
_pool: list[np.ndarray] = []
_pool_lock = threading.Lock()
_POOL_MAX_BYTES = 64 * 2**20
_ALIGN = 64  # bytes: each array starts on a cache line
_probe = [np.empty(0, dtype=np.uint8)]  # referred to by nothing else: what "free" counts as


def _free_buffers() -> list[np.ndarray]:
    """The pool's buffers that no array refers to, oldest first (call with _pool_lock held).

    A free buffer has the reference count of ``_probe[0]`` counted the same way (the lists, the
    loop's name, the call's argument), whatever the interpreter counts for those.
    """
    free, expected = [], None
    for buf in _probe + _pool:
        count = sys.getrefcount(buf)
        if expected is None:
            expected = count
        elif count == expected:
            free.append(buf)
    return free


def _pooled(shapes: list[tuple[int, ...]], dtype) -> list[np.ndarray]:
    """Uninitialised arrays of ``shapes`` in one pooled buffer that nothing else refers to."""
    dtype = np.dtype(dtype)
    offsets, total = [], 0
    for shape in shapes:
        offsets.append(total)
        total += -(-math.prod(shape) * dtype.itemsize // _ALIGN) * _ALIGN
    nbytes = total + _ALIGN
    with _pool_lock:
        free = _free_buffers()
        fits = [buf for buf in free if buf.nbytes >= nbytes]
        if fits:
            chosen = min(fits, key=lambda buf: buf.nbytes)
        else:
            chosen = np.empty(nbytes, dtype=np.uint8)
            pooled = sum(buf.nbytes for buf in _pool)
            for buf in free:  # make room: drop free buffers, oldest first
                if pooled + nbytes <= _POOL_MAX_BYTES:
                    break
                # by identity: list.remove would compare arrays with ==, element by element
                del _pool[next(k for k, held in enumerate(_pool) if held is buf)]
                pooled -= buf.nbytes
            if pooled + nbytes <= _POOL_MAX_BYTES:
                _pool.append(chosen)
        del free, fits
    start = -chosen.ctypes.data % _ALIGN
    return [chosen[start + off:start + off + math.prod(shape) * dtype.itemsize].view(dtype)
            .reshape(shape) for off, shape in zip(offsets, shapes)]


# The backward pass computes its local factors this many bytes of (5H, N) steps at a time.
_CHUNK_BYTES = 2**18
# The helper thread's products (input projections, gradients) come in this many chunks of steps:
# more chunks overlap more of them with the time loop, fewer make larger, faster products (4 is
# a choice between the two, not tuned: the machine was too loaded to tell 4 from 8).
_HELPER_CHUNKS = 4
# The loop runs beside the helper thread only when each step's recurrent product is at least this
# many multiply-adds (both benchmark shapes are, with 2**21 and 2**22); below it the products
# before and after the loop are shared out instead. The bound is a guess, not a measurement:
# starting a thread costs about 0.1 ms, which small layers would not win back. Measured on
# the two-core machine under heavy load from other processes (load average 8-13), forward +
# backward beside the helper took 0.85x (first shape) and 0.88x (second) the time with the loop
# alone; with the helper and the loop on pinned worker threads instead, 1.0-1.2x.
_MIN_OVERLAP_STEP_WORK = 2**18
# The per-step products are computed in blocks of rows of the weight matrix, each block's
# M * K * N at most this many multiply-adds: OpenBLAS (0.3.31, numpy's wheels) runs products that
# small through its small-matrix kernels, 15-25 % faster per step here than the whole product
# (measured at both benchmark shapes, one thread, float32; best at 2**19).
_BLOCK_WORK = 2**19
# numpy's and scipy's BLAS on one thread, shared with every other caller (see dlbook._parallel)
_one_blas_thread = _parallel.one_blas_thread


def _overlap(batch: int, hidden: int) -> bool:
    """Whether the time loop runs beside a helper thread (see :func:`_run`)."""
    return (_parallel.available_threads() >= 2
            and batch * 4 * hidden * hidden >= _MIN_OVERLAP_STEP_WORK)


def _run(overlap: bool, loop, helper) -> None:
    """Run ``loop()`` in the caller's thread and ``helper()`` at the same time in a thread of its
    own (BLAS on one thread for both) when ``overlap``, else ``loop()`` and then ``helper()``.

    ``helper`` may wait for progress of ``loop`` but never the other way round, so the two can
    also run one after the other; ``loop`` must not return or raise before it has released
    everything ``helper`` waits for.
    """
    if overlap:
        errors: list[BaseException] = []

        def guarded() -> None:
            try:
                helper()
            except BaseException as err:  # re-raised in the caller's thread
                errors.append(err)

        # The loop stays in the caller's thread, free to run on whichever core is idle; the
        # helper gets a thread of its own for this call. BLAS runs on one thread in both.
        with _one_blas_thread():
            thread = threading.Thread(target=guarded, name="dlbook-lstm-helper", daemon=True)
            thread.start()
            try:
                loop()
            finally:
                thread.join()
        if errors:
            raise errors[0]
    else:
        with _one_blas_thread():  # small products: a second BLAS thread would only wait
            loop()
        helper()


def _step_chunks(steps: int, overlap: bool) -> list[tuple[int, int]]:
    """Consecutive chunks of the time steps for the helper's products: ``_HELPER_CHUNKS`` of them
    beside the loop, else one per thread (shared out by :func:`dlbook._parallel.run_parts`)."""
    chunks = _HELPER_CHUNKS if overlap else _parallel.available_threads()
    return _parallel.split(steps, max(1, -(-steps // chunks)))


def _row_blocks(weight: np.ndarray, out: np.ndarray, batch: int) -> list:
    """``(weight[r0:r1], out[r0:r1])`` pairs covering the rows, each small (``_BLOCK_WORK``)."""
    rows, inner = weight.shape
    size = max(16, _BLOCK_WORK // max(1, inner * batch) // 16 * 16)
    return [(weight[r0:r1], out[r0:r1]) for r0, r1 in _parallel.split(rows, size)]


def _forward_loop(gates, h_t, tanh_c, w_hh_fwd, chunks, ready) -> None:
    """The time loop, on transposed (features, batch) blocks.

    ``gates`` (T + 1, 5H, N) holds each step's input projection in its first 4H rows (gate order
    i, f, o, g, sigmoid rows halved), which the loop turns into the gate values, and c_{t-1} in
    the last H rows of step t (c_0 is there on entry, c_T is written to step T);
    ``h_t`` (T + 1, H, N) holds h_0 on entry and receives h_1..h_T; ``tanh_c`` (T, H, N).
    ``ready(k)`` returns once the projections of the steps ``chunks[k]`` are in ``gates``.
    """
    steps, hidden, batch = tanh_c.shape
    h2, h3, h4 = 2 * hidden, 3 * hidden, 4 * hidden
    rec = np.empty((h4, batch), dtype=gates.dtype)
    pair = np.empty((h2, batch), dtype=gates.dtype)
    starts = {t0: k for k, (t0, _) in enumerate(chunks)}
    blocks = _row_blocks(w_hh_fwd, rec, batch)
    for t in range(steps):
        if t in starts:
            ready(starts[t])
        gt = gates[t]
        a = gt[:h4]
        for w_rows, rec_rows in blocks:
            np.matmul(w_rows, h_t[t], out=rec_rows)
        a += rec
        np.tanh(a, out=a)  # tanh(a/2) for i, f, o; tanh(a) for g
        s = gt[:h3]
        s *= 0.5
        s += 0.5  # sigmoid(a) = 0.5 + 0.5 tanh(a/2)
        np.multiply(gt[:h2], gt[h3:], out=pair)  # [i g, f c_prev]
        c = gates[t + 1, h4:]
        np.add(pair[:hidden], pair[hidden:], out=c)  # c_t = i g + f c_prev
        np.tanh(c, out=tanh_c[t])
        np.multiply(gt[h2:h3], tanh_c[t], out=h_t[t + 1])  # h_t = o tanh(c_t)


def lstm_forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh):
    """Same arguments and results as :func:`dlbook.lstm.lstm_forward` (its own cache)."""
    x, states, weight_ih, weight_hh, bias_ih, bias_hh, hidden = check_cell_args(
        x, {"h0": h0, "c0": c0}, weight_ih, weight_hh, bias_ih, bias_hh, gates=4, sequence=True)
    h0, c0 = states["h0"], states["c0"]
    dtype = np.result_type(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh)
    # The compiled loops pass sizes to BLAS as 32-bit ints: larger layers take the numpy loops.
    small = max((x.shape[0] + 1) * x.shape[1] + 64, 4 * hidden + x.shape[2]) <= _BLAS_INT_MAX
    compiled = _compiled() if dtype in (np.float32, np.float64) and small else None
    if compiled is not None:
        return _compiled_forward(compiled, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh,
                                 dtype)
    steps, batch, features = x.shape
    h4 = 4 * hidden
    order = np.r_[0:2 * hidden, 3 * hidden:h4, 2 * hidden:3 * hidden]  # i, f, o, g
    scale = np.full(h4, 0.5, dtype=dtype)
    scale[3 * hidden:] = 1.0  # g is a tanh
    w_ih = weight_ih.astype(dtype, copy=False)  # (4H, D), kept for dx
    w_hh = weight_hh.astype(dtype, copy=False)  # (4H, H), kept for dh
    w_hh_fwd = w_hh[order] * scale[:, None]  # (4H, H)
    # The bias rides along in the input projection: one more column of the weights, against a
    # row of ones under each step's transposed input.
    w_ih_fwd = np.empty((h4, features + 1), dtype=dtype)  # (4H, D + 1)
    w_ih_fwd[:, :features] = w_ih[order] * scale[:, None]
    w_ih_fwd[:, features] = (bias_ih + bias_hh)[order] * scale

    # The cache keeps [x_t, h_{t-1}, 1] side by side, one row per step and sequence, so that
    # one product gives dW_ih, dW_hh and the bias gradient in the backward pass.
    gates, tanh_c, xh1 = _pooled([(steps + 1, 5 * hidden, batch), (steps, hidden, batch),
                                  (steps, batch, features + hidden + 1)], dtype)
    xh1[:, :, :features] = x
    xh1[:, :, features + hidden] = 1
    x_ones = _workspace("x_ones", (steps, features + 1, batch), dtype)  # [x_t^T; 1]
    x_ones[:, :features] = x.transpose(0, 2, 1)
    x_ones[:, features] = 1
    h_t = _workspace("h_t", (steps + 1, hidden, batch), dtype)
    h_t[0] = h0.T
    gates[0, h4:] = c0.T
    # The input projections, a chunk of steps at a time, each by whichever thread claims it first:
    # the helper thread works ahead of the time loop, which computes a chunk itself if it gets
    # there first (and computes them all when the two run one after the other).
    overlap = _overlap(batch, hidden)
    chunks = _step_chunks(steps, overlap)
    claims = [threading.Lock() for _ in chunks]
    done = [threading.Event() for _ in chunks]

    def claim(k: int) -> bool:  # compute chunk k unless the other thread has claimed it
        if not claims[k].acquire(blocking=False):
            return False
        t0, t1 = chunks[k]
        try:  # each step's projection straight into its (4H, N) block of the gate array
            np.matmul(w_ih_fwd, x_ones[t0:t1], out=gates[t0:t1, :h4])
        finally:
            done[k].set()
        return True

    def ready(k: int) -> None:
        if not claim(k):
            done[k].wait()

    if not overlap:  # all projections first, shared out between the threads
        _parallel.run_parts(lambda k0, k1: claim(k0), len(chunks), 1,
                            steps * batch * h4 * features)
    _run(overlap, lambda: _forward_loop(gates, h_t, tanh_c, w_hh_fwd, chunks, ready),
         lambda: [claim(k) for k in range(len(chunks))])
    xh1[:, :, features:features + hidden] = h_t[:-1].transpose(0, 2, 1)  # h_0..h_{T-1}
    cache = (xh1, w_ih, w_hh, gates, tanh_c)
    # Copies: the caller may change what it gets without touching the cache.
    out, h_n, c_n = _pooled([(steps, batch, hidden), (batch, hidden), (batch, hidden)], dtype)
    out[...] = h_t[1:].transpose(0, 2, 1)
    h_n[...] = h_t[steps].T
    c_n[...] = gates[steps, h4:].T
    return out, (h_n, c_n), cache


def _local_factors(gates, tanh_c, k, ds) -> None:
    """The backward pass's local factors K (c, 5, H, N) for the steps of ``gates`` (c, 5H, N)."""
    hidden = tanh_c.shape[1]
    h2, h3, h4 = 2 * hidden, 3 * hidden, 4 * hidden
    k3 = k.reshape(k.shape[0], 5 * hidden, k.shape[3])  # a view: k is a contiguous buffer
    sig = gates[:, :h3]  # i, f, o
    np.subtract(1, sig, out=ds)
    ds *= sig  # i(1-i), f(1-f), o(1-o)
    np.multiply(ds[:, :h2], gates[:, h3:], out=k3[:, :h2])  # K_i = g i(1-i), K_f = c_prev f(1-f)
    np.multiply(ds[:, h2:], tanh_c, out=k3[:, h3:h4])  # K_o = tanh(c) o(1-o)
    k_g, k_c = k[:, 2], k[:, 4]
    np.multiply(gates[:, h3:h4], gates[:, h3:h4], out=k_g)
    np.subtract(1, k_g, out=k_g)
    k_g *= gates[:, :hidden]  # K_g = i (1 - g^2)
    np.multiply(tanh_c, tanh_c, out=k_c)
    np.subtract(1, k_c, out=k_c)
    k_c *= gates[:, h2:h3]  # K_c = o (1 - tanh(c)^2)


def _backward_loop(dout_t, dh, dc, gates, tanh_c, dgates, w_hh_t, k_buf, ds_buf, marks) -> None:
    """The time loop on transposed (features, batch) blocks; ``dh``, ``dc`` (H, N) change in place.

    ``dout_t`` (T, H, N); ``dgates`` (T, 5, H, N) receives dA_i, dA_f, dA_g, dA_o (torch's gate
    order) and, in its last slot, each step's dh_t K_c; ``k_buf`` (chunk, 5, H, N) and
    ``ds_buf`` (chunk, 3H, N) are scratch for a chunk of steps' local factors. ``marks[t]``, an
    event, is set once steps t..T-1 are done.
    """
    steps, hidden, batch = tanh_c.shape
    chunk = k_buf.shape[0]
    h4 = 4 * hidden
    dg3 = dgates.reshape(steps, 5 * hidden, batch)  # a view: dgates is a contiguous buffer
    dh_t = np.empty((hidden, batch), dtype=dgates.dtype)
    blocks = _row_blocks(w_hh_t, dh, batch)
    for t1 in range(steps, 0, -chunk):
        t0 = max(0, t1 - chunk)
        k = k_buf[:t1 - t0]
        _local_factors(gates[t0:t1], tanh_c[t0:t1], k, ds_buf[:t1 - t0])
        for t in reversed(range(t0, t1)):
            kt, da = k[t - t0], dgates[t]
            np.add(dout_t[t], dh, out=dh_t)
            np.multiply(dh_t, kt[3:], out=da[3:])  # dA_o = dh_t K_o, and dh_t K_c
            dc += da[4]  # dc = dc_next + dh_t o (1 - tanh(c)^2)
            np.multiply(dc, kt[:3], out=da[:3])  # dA_i, dA_f, dA_g = dc [K_i, K_f, K_g]
            dc *= gates[t, hidden:2 * hidden]  # dc_prev = dc f
            for w_rows, dh_rows in blocks:
                np.matmul(w_rows, dg3[t, :h4], out=dh_rows)  # dh_prev = W_hh^T dA
            if t in marks:
                marks[t].set()


def lstm_backward(dout, cache, dh_n=None, dc_n=None):
    """Same arguments and results as :func:`dlbook.lstm.lstm_backward`, for this module's cache."""
    tanh_c = cache[4] if isinstance(cache, _CompiledCache) else cache[-1]
    steps, hidden, batch = tanh_c.shape
    dout = as_array(dout, "dout")
    check_shape(dout, (steps, batch, hidden), "dout")
    dtype = np.result_type(dout, tanh_c)
    dh_n = check_upstream(dh_n, (batch, hidden), "dh_n", dtype)
    dc_n = check_upstream(dc_n, (batch, hidden), "dc_n", dtype)
    if isinstance(cache, _CompiledCache):
        return _compiled_backward(_compiled(), dout, cache, dh_n, dc_n, dtype)
    xh1, w_ih, w_hh, gates, tanh_c = cache
    h4 = 4 * hidden
    dh, dc = np.empty((hidden, batch), dtype=dtype), np.empty((hidden, batch), dtype=dtype)
    dh[...], dc[...] = dh_n.T, dc_n.T
    dout_t = _workspace("dout_t", (steps, hidden, batch), dtype)
    dout_t[...] = dout.transpose(0, 2, 1)
    chunk = max(1, min(steps, _CHUNK_BYTES // (5 * hidden * batch * np.dtype(dtype).itemsize)))
    dgates = _workspace("dgates", (steps, 5, hidden, batch), dtype)
    k_buf = _workspace("local", (chunk, 5, hidden, batch), dtype)
    ds_buf = _workspace("dsig", (chunk, 3 * hidden, batch), dtype)
    da = _workspace("da", (h4, steps * batch), dtype)  # dA of all steps, (4H, T*N)
    da3 = da.reshape(4, hidden, steps, batch)
    features = xh1.shape[2] - hidden - 1
    xh1_2d = xh1.reshape(steps * batch, features + hidden + 1)
    (dx2d,) = _pooled([(steps * batch, features)], dtype)
    w_hh_t = np.ascontiguousarray(w_hh.T)
    overlap = _overlap(batch, hidden)
    chunks = _step_chunks(steps, overlap)[::-1]  # the loop runs backwards in time
    marks = {t0: threading.Event() for t0, _ in chunks}
    sums: list = []

    def loop() -> None:
        try:
            _backward_loop(dout_t, dh, dc, gates, tanh_c, dgates, w_hh_t, k_buf, ds_buf, marks)
        finally:  # never leave the helper waiting
            for event in marks.values():
                event.set()

    def products(k: int):  # dx of the steps of chunks[k], and their share of the weight sums
        t0, t1 = chunks[k]
        marks[t0].wait()
        da3[:, :, t0:t1] = dgates[t0:t1, :4].transpose(1, 2, 0, 3)
        r0, r1 = t0 * batch, t1 * batch
        np.matmul(da[:, r0:r1].T, w_ih, out=dx2d[r0:r1])
        return da[:, r0:r1] @ xh1_2d[r0:r1]  # [dW_ih, dW_hh, dbias] (4H, D + H + 1)

    def helper() -> None:  # each chunk once the loop is past it, beside the loop or after it
        if overlap:
            shares = [products(k) for k in range(len(chunks))]
        else:
            shares = _parallel.run_parts(lambda k0, k1: products(k0), len(chunks), 1,
                                         steps * batch * h4 * (2 * features + hidden))
        sums.append(sum(shares))

    _run(overlap, loop, helper)
    (total,) = sums
    dweight_ih = np.ascontiguousarray(total[:, :features])
    dweight_hh = np.ascontiguousarray(total[:, features:features + hidden])
    dbias = total[:, features + hidden].copy()
    return (dx2d.reshape(steps, batch, features), np.ascontiguousarray(dh.T),
            np.ascontiguousarray(dc.T), dweight_ih, dweight_hh, dbias, dbias.copy())


# ---------------------------------------------------------------------------------------------
# The compiled path (numba), used when numba is installed (see dlbook._lstm_numba).

_BLAS_INT_MAX = 2**31 - 1  # the largest size BLAS's 32-bit int arguments hold
USE_NUMBA: bool | None = None  # None: when numba imports; the tests set True or False
FORCE_PARTS: int | None = None  # None: split when a core is idle (_parts); the tests set 1 or 2
_numba_module: list = []


def _compiled():
    """dlbook._lstm_numba, or None when numba is missing or switched off."""
    if USE_NUMBA is False:
        return None
    if not _numba_module:
        try:
            # scipy's BLAS, which numba calls, loaded before threadpoolctl looks for libraries
            import scipy.linalg.cython_blas  # noqa: F401
            from dlbook import _lstm_numba
        except ImportError:
            if USE_NUMBA:
                raise
            _numba_module.append(None)
        else:
            _numba_module.append(_lstm_numba)
            _parallel.forget_blas_libraries()  # control scipy's BLAS too from now on
    return _numba_module[0]


class _CompiledCache(tuple):
    """The forward cache of the compiled path (a tuple, told apart by its type)."""


# Whether the compiled loops split in two: by what recent split calls met. The barrier adds up the
# time of its waits past the spin (some 0.03 ms); a call whose parts together spent a fifth or
# more of its time in such waits, and at least _WAIT_MIN seconds, shows that a part's thread was
# often without a core: other programs are running. Splits then stop for a while (_BACKOFF seconds
# at first, twice as long after each such call up to _BACKOFF_MAX, back to _BACKOFF after a call
# without); one call tries again after that. Split calls on a loaded machine were slower than one
# part alone: the parts meet at a barrier at every step, and a part whose core another program
# takes for a time slice holds up the other (4-100x at load averages of 8-13; with one other busy
# program on the two cores, 27 ms against 24 ms at the second benchmark shape, when a quiet
# machine gives 12 ms). Long waits on the quiet machine were rare and short (the second thread
# waking, the system running something briefly). Counting the long waits was not enough: with one
# other busy program the calls took twice as long with a few waits, each of a time slice. The load
# average, used before, lags by tens of seconds: right after a test run it kept the split off on
# an idle machine, and it does not tell this process's threads from others'.
_WAIT_SHARE, _WAIT_MIN = 0.2, 0.002
_BACKOFF, _BACKOFF_MAX = 0.5, 8.0
_split_state = {"off_until": 0.0, "backoff": _BACKOFF}
_split_lock = threading.Lock()


def _split_allowed() -> bool:
    """False while splits are off after a call that waited long at its barriers."""
    return time.monotonic() >= _split_state["off_until"]


def _record_split(waited: float, elapsed: float) -> None:
    """Take a split call into account: its parts waited ``waited`` seconds in all at their
    barriers past the spin, in the ``elapsed`` seconds of the call (``_WAIT_SHARE``,
    ``_WAIT_MIN``)."""
    with _split_lock:
        if waited >= max(_WAIT_SHARE * elapsed, _WAIT_MIN):
            _split_state["off_until"] = time.monotonic() + _split_state["backoff"]
            _split_state["backoff"] = min(2 * _split_state["backoff"], _BACKOFF_MAX)
        else:
            _split_state["backoff"] = _BACKOFF


def _parts(batch: int, hidden: int) -> np.ndarray:
    """The hidden units' split between threads: bounds (parts + 1,), int64.

    Two parts when there are two cores, the steps are large enough (``_MIN_OVERLAP_STEP_WORK``)
    and recent split calls did not wait long at their barriers (:func:`_record_split`);
    ``FORCE_PARTS`` overrides the last condition (the tests).
    """
    parts = 2 if (_parallel.available_threads() >= 2 and hidden >= 2
                  and batch * 4 * hidden * hidden >= _MIN_OVERLAP_STEP_WORK
                  and (FORCE_PARTS == 2 or (FORCE_PARTS is None and _split_allowed()))) else 1
    return np.array([hidden * k // parts for k in range(parts + 1)], dtype=np.int64)


# Turns of the spin (about 1 ms) with which the compiled path's second thread waits for the next
# call, and the caller for that thread's end, before either sleeps: like OpenMP's threads (and
# torch's), it keeps the second core awake between the forward and the backward pass. Measured on
# the two-core virtual machine, a thread started per call made a call 1.5-6x slower after a
# pause: the idle core took milliseconds to wake, while the first part waited at the barrier.
_IDLE_SPINS = 1_000_000


class _PartWorker:
    """A daemon thread that runs the second part of the compiled loops' calls."""

    def __init__(self, numba_lstm) -> None:
        self.numba_lstm = numba_lstm
        self.flags = np.zeros(2, dtype=np.int64)  # calls posted, calls finished
        self.cond = threading.Condition()
        self.busy = threading.Lock()  # held by the caller whose part runs here
        self.job = None
        self.error = None
        self.posted = 0  # calls posted by run(), counted here (flags[0] is the worker's copy)
        self.cpus = _two_cpus()
        self.thread = threading.Thread(target=self._loop, name="dlbook-lstm-part", daemon=True)
        self.thread.start()

    def _wait(self, index: int, value: int) -> None:
        """Return once ``flags[index] == value``: a spin first, then asleep (waking now and
        then to look: a notification lost to an interrupted signaller only delays it)."""
        if not self.numba_lstm.spin_until(self.flags, index, value, _IDLE_SPINS):
            with self.cond:
                while self.flags[index] != value:
                    self.cond.wait(timeout=0.05)

    def _signal(self, index: int, value: int) -> None:
        self.numba_lstm.publish(self.flags, index, value)
        with self.cond:
            self.cond.notify_all()

    def _loop(self) -> None:
        _pin(self.cpus[1])
        calls = 0
        while True:
            self._wait(0, calls + 1)
            calls += 1
            try:
                self.job()
            except BaseException as err:  # re-raised in the caller's thread
                self.error = err
            self._signal(1, calls)

    def run(self, part1, part0, abort) -> None:
        """``part1()`` here while the caller runs ``part0()`` (the caller holds ``busy``).

        If the caller's side raises (``part0`` or an interrupt such as Ctrl-C anywhere in
        here), ``abort()`` makes ``part1`` leave its barrier, so that this thread is free for
        the next call. The kernel that ``part1`` runs must be compiled for its arguments already
        (:func:`_run_parts` sees to it): numba's compiler cannot be interrupted safely."""
        self._wait(1, self.posted)  # the previous call's part has finished
        calls = self.posted + 1
        self.job, self.error = part1, None
        self.posted = calls
        try:
            self._signal(0, calls)
            part0()
        except BaseException:
            abort()
            raise
        finally:
            if self.flags[0] == calls:  # this thread was given its part: wait for its end
                self._wait(1, calls)
            else:  # interrupted before: the call never happened here
                self.posted = calls - 1
            self.job = None
        if self.error is not None:
            raise self.error


def _two_cpus() -> tuple:
    """Two CPUs this process may run on (None, None where affinity is not available)."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


def _pin(cpus):
    """Tie the calling thread to ``cpus`` (a CPU number or a set; None: leave it); returns the
    set it had. The two parts run on different CPUs: left free, Linux sometimes woke the
    worker on the caller's CPU, and the two then took turns at every step's barrier (a call
    1.5-3x slower, measured on the two-core machine)."""
    if cpus is None or not hasattr(os, "sched_setaffinity"):
        return None
    saved = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {cpus} if isinstance(cpus, int) else cpus)
    except OSError:
        return None
    return saved


_workers: list = []
_workers_lock = threading.Lock()


def _reset_workers() -> None:
    """A forked child has none of its parent's threads: no worker, and fresh locks (one held by
    another thread of the parent at the fork would stay held for good)."""
    global _workers_lock, _split_lock, _pool_lock
    _workers.clear()
    _workers_lock, _split_lock, _pool_lock = threading.Lock(), threading.Lock(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_workers)


def _part_worker(numba_lstm) -> _PartWorker:
    with _workers_lock:
        if not _workers:
            _workers.append(_PartWorker(numba_lstm))
        return _workers[0]


def _kernel_array(a: np.ndarray, dtype) -> np.ndarray:
    """``a`` as the kernels take every array: of ``dtype``, C-contiguous, aligned and writeable
    (a read-only argument is copied; the kernels never write to it). One kind of argument per
    type means one compiled version of each kernel per type (:func:`_compile_once`)."""
    return np.require(a, dtype=dtype, requirements=("C", "A", "W"))


_compiled_for: set = set()  # (kernel, dtype) pairs that compile_for has seen


def _compile_once(numba_lstm, kernel, args, dtype) -> None:
    """``numba_lstm.compile_for(kernel, args)`` once per kernel and type: every array the
    kernels get is C-contiguous, aligned and writeable (:func:`_kernel_array`), so the type
    decides the compiled version (numba's own type lookup of every argument took 0.02-0.1 ms
    per call)."""
    if (kernel, np.dtype(dtype)) not in _compiled_for:
        numba_lstm.compile_for(kernel, args)
        _compiled_for.add((kernel, np.dtype(dtype)))


def _run_parts(numba_lstm, kernel, bounds, sync, *args, dtype=None) -> None:
    """``kernel(part, bounds, *args)`` for every part at once (one or two): part 0 in the
    caller's thread, part 1 in :class:`_PartWorker`'s thread (or, while another caller has
    that, in a thread started for the call), BLAS on one thread in both. ``sync`` is the parts'
    barrier (one of ``args``): a part that raises aborts it, so that the other returns too, and
    the caller raises the first error; a split call's time and its parts' long waits go to
    :func:`_record_split`. ``dtype``: the type of the arrays, all as :func:`_kernel_array`
    makes them (None: other arguments, looked up by numba at every call)."""
    with _one_blas_thread():
        if len(bounds) == 2:
            kernel(0, bounds, *args)
            return
        if dtype is None:  # compiled before either part starts
            numba_lstm.compile_for(kernel, (1, bounds, *args))
        else:
            _compile_once(numba_lstm, kernel, (1, bounds, *args), dtype)
        start = time.perf_counter()

        def abort() -> None:  # the other part stops waiting at the barrier
            numba_lstm.abort(sync)

        def part(k: int):
            def run() -> None:
                try:
                    kernel(k, bounds, *args)
                except BaseException:
                    abort()
                    raise
            return run

        worker = _part_worker(numba_lstm)
        if worker.busy.acquire(blocking=False):
            saved = _pin(worker.cpus[0])
            try:
                worker.run(part(1), part(0), abort)
            finally:
                worker.busy.release()
                _pin(saved)
        else:  # another caller has the worker: part 1 on a thread of this call's own
            errors: list[BaseException] = []

            def second() -> None:
                try:
                    part(1)()
                except BaseException as err:  # re-raised in the caller's thread
                    errors.append(err)

            thread = threading.Thread(target=second, daemon=True, name="dlbook-lstm-part")
            try:
                thread.start()
                part(0)()
            except BaseException:
                abort()
                raise
            finally:
                if thread.ident is not None:
                    thread.join()
            if errors:
                raise errors[0]
        elapsed = time.perf_counter() - start
    _record_split(sync[2] * 1e-9, elapsed)


# The compiled loops' per-step products in blocks: (multiply-adds per block, columns of the weights
# per block at most). Measured with scipy's OpenBLAS 0.3.30 through numba, one thread, float32.
_BLOCK_FORWARD = (3 * 2**18, 2**30)
_BLOCK_BACKWARD = (2**19, 256)


def _blocks(block, inner: int, batch: int) -> tuple[int, int]:
    """(rows, depth) of the blocks of a per-step product with ``inner`` columns of weights."""
    work, depth = block
    depth = min(depth, inner)
    return max(16, work // max(1, depth * batch) // 16 * 16), depth


def _padded(columns: int, dtype) -> int:
    """A row length of at least ``columns`` elements that is not a multiple of 4 kB: rows of a
    multiple of 4 kB fall into the same few sets of the processor's cache when a step reads a
    short piece of each of a thousand rows (twice as slow at the second benchmark shape)."""
    line = max(1, 64 // np.dtype(dtype).itemsize)
    columns = -(-columns // line) * line  # whole cache lines
    return columns + line if (columns * np.dtype(dtype).itemsize) % 4096 == 0 else columns


def _compiled_forward(numba_lstm, x, h0, c0, w_ih, w_hh, b_ih, b_hh, dtype):
    steps, batch, features = x.shape
    hidden = h0.shape[1]
    bounds = _parts(batch, hidden)
    # w_xh: [W_ih, W_hh] in part order; all cached for the backward pass
    gates, c, tanh_c, xh_all, w_hh_t, w_xh = _pooled(
        [(steps, 4 * hidden, batch), (steps + 1, hidden, batch), (steps, hidden, batch),
         (features + hidden, _padded((steps + 1) * batch, dtype)), (hidden, 4 * hidden),
         (4 * hidden, features + hidden)], dtype)
    bias = _workspace("bias", (4 * hidden,), dtype)
    out, h_n, c_n = _pooled([(steps, batch, hidden), (batch, hidden), (batch, hidden)], dtype)
    xh = _workspace("xh", (steps + 1, features + hidden, batch), dtype)  # [x_t; h_{t-1}]^T
    xh[0, features:] = h0.T
    xh_all[features:, :batch] = h0.T
    c[0] = c0.T
    pre = _workspace("pre", (4 * hidden, batch), dtype)
    sync = np.zeros(numba_lstm.SYNC_WORDS, dtype=np.int64)
    contiguous = [_kernel_array(a, dtype) for a in (x, w_ih, w_hh, b_ih, b_hh)]
    _run_parts(numba_lstm, numba_lstm.forward_part, bounds, sync, *contiguous, w_xh, w_hh_t,
               bias, xh, xh_all, gates, c, tanh_c, pre, out, sync,
               *_blocks(_BLOCK_FORWARD, features + hidden, batch),
               numba_lstm.GEMM[np.dtype(dtype)], dtype=dtype)
    h_n[...] = xh[steps, features:].T
    c_n[...] = c[steps].T
    cache = _CompiledCache((xh_all, w_xh, gates, c, tanh_c, bounds, w_hh_t))
    return out, (h_n, c_n), cache


def _compiled_backward(numba_lstm, dout, cache, dh_n, dc_n, dtype):
    xh_all, w_xh, gates, c, tanh_c, bounds, w_hh_t = cache
    if dtype not in (np.float32, np.float64):
        dtype = np.dtype(np.float64)  # the compiled loops exist for float32 and float64 only
    if dtype != tanh_c.dtype:  # e.g. a float64 dout for a float32 forward pass: work in float64
        xh_all, w_xh, gates, c, tanh_c, w_hh_t = (
            a.astype(dtype) for a in (xh_all, w_xh, gates, c, tanh_c, w_hh_t))
    steps, hidden, batch = tanh_c.shape
    features = xh_all.shape[0] - hidden
    dh, dc = np.empty((hidden, batch), dtype=dtype), np.empty((hidden, batch), dtype=dtype)
    dh[...], dc[...] = dh_n.T, dc_n.T
    dout_t = _workspace("dout_t", (hidden, batch), dtype)
    da = _workspace("da", (steps, 4 * hidden, batch), dtype)
    da_all = _workspace("da_all", (4 * hidden, _padded(steps * batch, dtype)), dtype)
    dx, dweight_ih, dweight_hh, dbias = _pooled(
        [(steps, batch, features), (4 * hidden, features), (4 * hidden, hidden), (4 * hidden,)],
        dtype)
    sync = np.zeros(numba_lstm.SYNC_WORDS, dtype=np.int64)
    _run_parts(numba_lstm, numba_lstm.backward_part, bounds, sync, gates, c, tanh_c,
               _kernel_array(dout, dtype), w_xh, w_hh_t, xh_all, dh, dc, dout_t, da,
               da_all, _workspace("dw", (4 * hidden, features + hidden), dtype), dx,
               _workspace("dx_parts", (len(bounds) - 2, steps * batch, features), dtype),
               dweight_ih, dweight_hh, dbias, sync, *_blocks(_BLOCK_BACKWARD, 4 * hidden, batch),
               numba_lstm.GEMM[np.dtype(dtype)], dtype=dtype)
    return (dx, np.ascontiguousarray(dh.T), np.ascontiguousarray(dc.T), dweight_ih, dweight_hh,
            dbias, dbias.copy())
