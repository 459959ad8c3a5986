"""The LSTM's time loops compiled with numba: an optional accelerator of :mod:`dlbook._lstm_fast`.

Imported by :mod:`dlbook._lstm_fast` only when numba is installed; without it that module's numpy
loops run. Not printed by the book; tested equal to the readable functions of :mod:`dlbook.lstm`.

The numpy loops spend most of a step's time in the cost per numpy call (about a microsecond
each, some twenty calls per step forward and backward together), not in arithmetic. Here each
time loop is one compiled function: per step, the recurrent matrix product (BLAS's gemm, called
directly: see below) and one fused elementwise pass over all gates.

Two threads split every step by hidden units: part k owns the units [u_k, u_{k+1}), the rows
of all four gates of those units (half the recurrent weights), and its units of c_t and h_t.
The next step's product needs all of h_t, so the parts meet at a barrier once per step (a spin
on an atomic counter, a fraction of a microsecond when both run). The backward step is split
the same way: each part computes its units' gate gradients dA, waits at the barrier for the
other's, and then its units' rows of dh_{t-1} = W_hh^T dA. Within a step each part writes only
its own rows; what one part reads of the other's is h_t forward, dA_t backward, and, once
after the loop, the other's share of dx.

The gates use exp only, written out here (a Cephes-style polynomial, accurate to about one unit
in the last place in float32 and float64) so that the compiler vectorises the elementwise pass:
numba calls libm's scalar exp and tanh otherwise, one at a time.

Layouts (transposed, as in :mod:`dlbook._lstm_fast`): in the time loops each step's block of
a state is (H, N), contiguous; the gate rows are in *part order*: for each part in turn, the i,
f, o and g rows of its units. Each step's product is [W_ih, W_hh] [x_t; h_{t-1}] (one product,
no separate input projection), in blocks small enough for OpenBLAS's small-matrix kernels
(which read the operands where they are; a larger product is first copied into packed
panels); backward, dh_{t-1} = W_hh^T dA_t per step. The products over all steps after the loop
need each gate row's values of all steps side by side, (4H, T N): [dW_ih, dW_hh] =
dA [x, h_prev], one product per part for its own rows, and dx = dA^T W_ih, each part the share
of its own rows of dA (summed after a barrier). So each part copies its rows of every step's
block into such a matrix while they are in its cache: the per-step products read a contiguous
block, which measured 35-50 % faster than the same block taken out of the wide matrix with its
long rows. Row lengths there are padded off multiples of 4 kB (rows 4 kB apart fall into the
same few cache sets). All copies between layouts are done inside the loops' functions, by each
part for its own rows; the part that reads a row is, wherever possible, the part that wrote it.

numba's ``np.dot`` takes contiguous matrices only (a strided operand is copied first); the
kernels call the BLAS that numba would use, scipy's, through the addresses of its sgemm and
dgemm (:func:`_gemm`), with the leading dimensions that a row-major matrix inside a larger one
needs.
"""

from __future__ import annotations

import sys
import time

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic, overload

# nogil: the two parts run in two threads at once; cache: compiled once, to __pycache__;
# error_model "numpy": a division never checks for zero, so the elementwise loops vectorise;
# fastmath "contract" only: a * b + c may become one fused multiply-add (28 % faster gates),
# nothing is reordered or assumed finite.
_JIT = {"nogil": True, "cache": True, "error_model": "numpy", "fastmath": {"contract"}}


# ---------------------------------------------------------------------------------------------
# Atomic operations for the barrier, and the bit casts for 2**k.

def _element_pointer(context, builder, aryty, ary_value, index):
    ary = context.make_array(aryty)(context, builder, ary_value)
    return cgutils.get_item_pointer(context, builder, aryty, ary, [index])


@intrinsic
def _atomic_add(typingctx, ary, index, value):
    """``ary[index] += value`` atomically (sequentially consistent); returns the old value."""
    sig = types.int64(ary, types.intp, types.int64)

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.atomic_rmw("add", ptr, args[2], "seq_cst")

    return sig, codegen


@intrinsic
def _atomic_load(typingctx, ary, index):
    """``ary[index]``, read atomically (sequentially consistent)."""
    sig = types.int64(ary, types.intp)

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "seq_cst", 8)

    return sig, codegen


@intrinsic
def _atomic_store(typingctx, ary, index, value):
    """``ary[index] = value`` atomically (sequentially consistent)."""
    sig = types.void(ary, types.intp, types.int64)

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        builder.store_atomic(args[2], ptr, "seq_cst", 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float of the same width as ``bits`` whose bit pattern it is (int32: float32, int64:
    float64)."""
    if not isinstance(bits, types.Integer) or bits.bitwidth not in (32, 64):
        return None
    ftype, llvm_type = ((types.float32, ir.FloatType()) if bits.bitwidth == 32
                        else (types.float64, ir.DoubleType()))

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_type)

    return ftype(bits), codegen


# After this many turns of the spin (some 0.03 ms) a thread waiting at the barrier gives up its
# core on each turn: on a busy machine the thread it waits for may have none (sched_yield; a
# plain spin on Windows). Yielding much sooner cost more than the spin: with other programs
# running, a yield gave the core away for a time slice at nearly every step.
_SPINS = 100_000
if sys.platform.startswith("win"):
    @numba.njit
    def _yield():
        pass

    @numba.njit
    def _now():
        """A clock in nanoseconds: none here, so waits are not timed and splits never stop
        (:func:`dlbook._lstm_fast._record_split`)."""
        return 0
else:
    _sched_yield = types.ExternalFunction("sched_yield", types.int32())
    _clock_gettime = types.ExternalFunction("clock_gettime", types.int32(types.int32, types.uintp))
    _MONOTONIC = time.CLOCK_MONOTONIC

    @numba.njit
    def _yield():
        _sched_yield()

    @numba.njit
    def _now():
        """The monotonic clock in nanoseconds (clock_gettime; a struct timespec of two int64, as
        on every 64-bit platform numba supports)."""
        timespec = np.zeros(2, dtype=np.int64)
        _clock_gettime(_MONOTONIC, timespec.ctypes.data)
        return timespec[0] * 1_000_000_000 + timespec[1]


# The barrier's int64 words: arrivals, generation, nanoseconds of long waits, abort.
SYNC_WORDS = 4


@numba.njit
def _barrier(sync, parts):
    """Wait until all ``parts`` threads have called this; True if the call was abandoned.

    ``sync``: :data:`SYNC_WORDS` int64, zero at first. The time of each wait longer than the
    spin (``_SPINS`` turns) is added to ``sync[2]``, in nanoseconds from the end of the spin
    (the caller's evidence that a part's thread had no core); while it lasts, the waiting
    thread checks ``sync[3]``, set by :func:`abort` when a part ends early (an exception), and
    then returns True: its caller returns at once.
    """
    if parts > 1:
        generation = _atomic_load(sync, 1)
        if _atomic_add(sync, 0, 1) == parts - 1:  # the last to arrive lets the others go
            _atomic_store(sync, 0, 0)
            _atomic_add(sync, 1, 1)
        else:
            spins = 0
            start = 0
            while _atomic_load(sync, 1) == generation:
                spins += 1
                if spins > _SPINS:
                    if spins == _SPINS + 1:
                        start = _now()
                    if _atomic_load(sync, 3) != 0:
                        return True
                    _yield()
            if spins > _SPINS:
                _atomic_add(sync, 2, _now() - start)
    return False


@numba.njit(**_JIT)
def abort(sync):
    """Make every part waiting at ``sync``'s barrier return (a part has ended early)."""
    _atomic_store(sync, 3, 1)


@numba.njit(**_JIT)
def spin_until(flags, index, value, spins):
    """Whether ``flags[index]`` became ``value`` within ``spins`` turns of a spin (atomic reads)."""
    for _ in range(spins):
        if _atomic_load(flags, index) == value:
            return True
    return False


@numba.njit(**_JIT)
def publish(flags, index, value):
    """``flags[index] = value``, atomically: everything written before is visible with it."""
    _atomic_store(flags, index, value)


# ---------------------------------------------------------------------------------------------
# exp, sigmoid and tanh, in a form the compiler vectorises (no library calls, no branches).

_F32 = np.float32
_LOG2E32, _LN2_HI32, _LN2_LO32 = _F32(1.44269504088896341), _F32(0.693359375), _F32(-2.12194440e-4)
_EXP32 = tuple(_F32(v) for v in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                   4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
_LO32, _HI32, _ONE32 = _F32(-87.3), _F32(88.3), _F32(1.0)
# Adding and subtracting 1.5 * 2**23 (2**52) rounds to the nearest integer.
_ROUND32, _ROUND64 = _F32(1.5 * 2**23), 1.5 * 2**52

_LOG2E64, _LN2_HI64 = 1.4426950408889634073599, 6.93145751953125e-1
_LN2_LO64 = 1.42860682030941723212e-6
_P64 = (1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1)
_Q64 = (3.00198505138664455042e-6, 2.52448340349684104192e-3, 2.27265548208155028766e-1,
        2.00000000000000000009e0)


@numba.njit
def _exp32(x):
    """exp(x) in float32 (Cephes expf): x = k ln 2 + r, |r| <= ln 2 / 2, exp(r) a polynomial."""
    x = min(max(x, _LO32), _HI32)  # 2**k stays a normal number
    k = (x * _LOG2E32 + _ROUND32) - _ROUND32  # the nearest integer (np.floor is a libm call)
    r = x - k * _LN2_HI32 - k * _LN2_LO32
    c0, c1, c2, c3, c4, c5 = _EXP32
    p = ((((c0 * r + c1) * r + c2) * r + c3) * r + c4) * r + c5
    p = p * r * r + r + _ONE32
    return p * _float_from_bits(np.int32((np.int32(k) + 127) << 23))


@numba.njit
def _exp64(x):
    """exp(x) in float64 (Cephes exp): exp(r) = 1 + 2 r P(r^2) / (Q(r^2) - r P(r^2))."""
    x = min(max(x, -708.0), 709.0)
    k = (x * _LOG2E64 + _ROUND64) - _ROUND64
    r = x - k * _LN2_HI64 - k * _LN2_LO64
    rr = r * r
    p = r * ((_P64[0] * rr + _P64[1]) * rr + _P64[2])
    q = ((_Q64[0] * rr + _Q64[1]) * rr + _Q64[2]) * rr + _Q64[3]
    e = 1.0 + 2.0 * (p / (q - p))
    return e * _float_from_bits(np.int64((np.int64(k) + 1023) << 52))


def _gate_functions(ftype, exp):
    """sigmoid and tanh in the precision ``ftype`` (every constant of that type: numba would
    turn float32 arithmetic with a Python float into float64)."""
    one, two, small = ftype(1), ftype(2), ftype(0.0625)
    # tanh(a) near 0 as its Taylor series a - a^3/3 + 2a^5/15 - ...: (1 - e)/(1 + e) with
    # e = exp(-2|a|) would lose the leading digits there.
    c3, c5, c7, c9, c11 = (ftype(v) for v in (-1 / 3, 2 / 15, -17 / 315, 62 / 2835, -1382 / 155925))

    @numba.njit
    def sigmoid(a):  # exp(-|a|) never overflows; e/(1 + e) keeps tiny values accurate
        e = exp(-abs(a))
        s = one / (one + e)
        return s if a >= 0 else e * s

    @numba.njit
    def tanh(a):
        e = exp(-two * abs(a))
        big = (one - e) / (one + e)
        aa = a * a
        series = a + a * aa * ((((c11 * aa + c9) * aa + c7) * aa + c5) * aa + c3)
        if abs(a) < small:
            return series
        return big if a >= 0 else -big

    return sigmoid, tanh


_sigmoid32, _tanh32 = _gate_functions(np.float32, _exp32)
_sigmoid64, _tanh64 = _gate_functions(np.float64, _exp64)


def _sigmoid(a):
    """sigmoid in a's own precision (chosen at compile time)."""


def _tanh(a):
    """tanh in a's own precision (chosen at compile time)."""


@overload(_sigmoid, inline="always")
def _sigmoid_impl(a):
    return (lambda a: _sigmoid32(a)) if a == types.float32 else (lambda a: _sigmoid64(a))


@overload(_tanh, inline="always")
def _tanh_impl(a):
    return (lambda a: _tanh32(a)) if a == types.float32 else (lambda a: _tanh64(a))


@numba.njit(**_JIT)
def _vector_gates(a, out_sig, out_tanh):
    """sigmoid and tanh of every element of ``a`` (1-D), for the tests."""
    for n in range(a.shape[0]):
        out_sig[n] = _sigmoid(a[n])
        out_tanh[n] = _tanh(a[n])


# ---------------------------------------------------------------------------------------------
# Matrix products: BLAS's gemm called directly, for its leading dimensions.

# scipy's BLAS (the library numba's np.dot calls): the addresses of its sgemm and dgemm. They are
# passed to the kernels as arguments (a constant address in compiled code would stop numba from
# caching it).
GEMM = {np.dtype(np.float32): get_cython_function_address("scipy.linalg.cython_blas", "sgemm"),
        np.dtype(np.float64): get_cython_function_address("scipy.linalg.cython_blas", "dgemm")}


@intrinsic
def _call_gemm(typingctx, fn, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Call the Fortran gemm at address ``fn`` with the addresses of its 13 arguments."""
    sig = types.void(*([types.uintp] * 14))

    def codegen(context, builder, signature, args):
        pointer = ir.IntType(8).as_pointer()
        function = ir.FunctionType(ir.VoidType(), [pointer] * 13)
        callee = builder.inttoptr(args[0], function.as_pointer())
        builder.call(callee, [builder.inttoptr(arg, pointer) for arg in args[1:]])
        return context.get_dummy_value()

    return sig, codegen


@numba.njit
def _gemm(fn, scratch, transpose_a, transpose_b, m, n, k, a, lda, b, ldb, beta, c, ldc):
    """C = op(A) op(B) + beta C, row-major: C (m, n) starts at ``c``'s first element, rows
    ``ldc`` elements apart; op(A) (m, k) is A, or the transpose of A (k, m) when
    ``transpose_a``, starting at ``a``'s first element with rows ``lda`` apart; B likewise.

    A row-major matrix is, read column-major, its transpose, so this is the column-major
    C^T = op(B)^T op(A)^T. ``scratch`` holds the integer and floating-point arguments: a
    :func:`gemm_scratch` (one per thread).
    """
    if m == 0 or n == 0:
        return
    ints, reals, chars = scratch
    ints[0], ints[1], ints[2], ints[3], ints[4], ints[5] = n, m, k, ldb, lda, ldc
    reals[0], reals[1] = 1, beta
    if k == 0:
        reals[0] = 0
    at, rt, ct = ints.ctypes.data, reals.ctypes.data, chars.ctypes.data
    step = reals.itemsize
    _call_gemm(fn, ct + transpose_b, ct + transpose_a, at, at + 4, at + 8, rt, b.ctypes.data,
               at + 12, a.ctypes.data, at + 16, rt + step, c.ctypes.data, at + 20)


@numba.njit
def _blocked_gemm(fn, scratch, m, n, k, a, lda, b, ldb, c, ldc, rows, depth):
    """C = A B (row-major, as :func:`_gemm`), in blocks of at most ``rows`` rows of C and
    ``depth`` columns of A: OpenBLAS multiplies blocks this small with its small-matrix kernels,
    straight from the operands (a larger product is first copied into packed panels)."""
    for i0 in range(0, m, rows):
        i1 = min(i0 + rows, m)
        for k0 in range(0, k, depth):
            _gemm(fn, scratch, 0, 0, i1 - i0, n, min(depth, k - k0), a[i0:, k0:], lda, b[k0:],
                  ldb, 0.0 if k0 == 0 else 1.0, c[i0:], ldc)


@numba.njit
def gemm_scratch(dtype):
    """The argument scratch of :func:`_gemm` for matrices of ``dtype``'s type."""
    return (np.zeros(6, dtype=np.int32), np.zeros(2, dtype=dtype),
            np.array([ord("N"), ord("T")], dtype=np.uint8))


# ---------------------------------------------------------------------------------------------
# The time loops, one part (a range of hidden units) per thread.

@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _block_sum(row, b0, b1):
    """sum(row[b0:b1]) in row's own type, in any order (so that it vectorises: several partial
    sums side by side, as numpy's pairwise sum also has)."""
    total = row.dtype.type(0)
    for q in range(b0, b1):
        total += row[q]
    return total


@numba.njit
def _row_sum(row, n):
    """sum(row[:n]) in float64, from sums of 256 elements at a time in the row's type: as fast
    as one pass, and as accurate as numpy's pairwise sum in float32 whatever n (a float32 sum
    of a million terms in one sequence was off by 4e-4 relative)."""
    total = 0.0
    for b0 in range(0, n, 256):
        total += _block_sum(row, b0, min(b0 + 256, n))
    return total


@numba.njit
def _transpose(src, dst, r0, r1):
    """dst[:, r] = src[r, :] for the rows r0 <= r < r1 of ``src`` (2-D views), in tiles."""
    cols = src.shape[1]
    for q0 in range(r0, r1, 16):
        q1 = min(q0 + 16, r1)
        for j in range(cols):
            for q in range(q0, q1):
                dst[j, q] = src[q, j]


@numba.njit(**_JIT)
def forward_part(part, bounds, x, w_ih, w_hh, b_ih, b_hh, w_xh, w_hh_t, bias, xh, xh_all, gates, c,
                 tanh_c, pre, out, sync, rows, depth, gemm):
    """The forward pass of the units [bounds[part], bounds[part + 1]) over all steps.

    ``x`` (T, N, D) the input, ``w_ih`` (4H, D), ``w_hh`` (4H, H), ``b_ih`` and ``b_hh`` (4H,)
    the weights (torch's gate order); ``w_xh`` (4H, D + H) receives [W_ih, W_hh] and ``bias``
    (4H,) b_ih + b_hh, rows in part order (each part its own rows), and ``w_hh_t`` (H, 4H)
    W_hh^T, columns in part order (each part its units' rows), for the backward pass;
    ``xh`` (T + 1, D + H, N)
    receives [x_t^T; h_{t-1}^T] for each step t (it holds h_0^T on entry; h_T^T goes to the last
    step, whose x rows are unused), and ``xh_all`` (D + H, L), L >= (T + 1) N, the same side by
    side, step t in the columns tN..(t+1)N; ``gates`` (T, 4H, N) receives the gate values i, f,
    o, g (part order); ``c`` (T + 1, H, N) holds c_0 and receives c_t; ``tanh_c`` (T, H, N)
    receives tanh(c_t); ``pre`` (4H, N) is scratch for the pre-activations; ``out`` (T, N, H)
    receives h_1..h_T; ``gemm`` is :data:`GEMM`'s address for the type. All parts run at once,
    one thread each, and meet at ``sync``'s barrier after each step (h_t is read by every part
    in the next step).
    """
    parts = bounds.shape[0] - 1
    steps, hidden, batch = tanh_c.shape
    features = x.shape[2]
    inner = features + hidden
    scratch = gemm_scratch(gates.dtype)
    u0, u1 = bounds[part], bounds[part + 1]
    m = u1 - u0
    r0 = 4 * u0
    d0, d1 = features * part // parts, features * (part + 1) // parts
    for k in range(4):  # this part's rows of the weights, in part order (i, f, o, g)
        gate = k if k < 2 else 5 - k  # torch's order is i, f, g, o
        for j in range(m):
            row, src = r0 + k * m + j, gate * hidden + u0 + j
            w_xh[row, :features] = w_ih[src]
            w_xh[row, features:] = w_hh[src]
            bias[row] = b_ih[src] + b_hh[src]
    # W_hh^T, this part's units, from the weights as given (read by both parts, written by none)
    rows_all = 4 * hidden
    order = np.empty(rows_all, dtype=np.int64)  # order[torch's row] = that row in part order
    for p in range(parts):
        v0, v1 = bounds[p], bounds[p + 1]
        for k in range(4):
            gate = k if k < 2 else 5 - k
            for j in range(v1 - v0):
                order[gate * hidden + v0 + j] = 4 * v0 + k * (v1 - v0) + j
    for k0 in range(0, rows_all, 16):
        for u in range(u0, u1):
            for k in range(k0, min(k0 + 16, rows_all)):
                w_hh_t[u, order[k]] = w_hh[k, u]
    # This part's share of the inputs' rows: x as (T N, D), transposed.
    x2d = x.reshape(steps * batch, features)
    _transpose(x2d[:, d0:d1], xh_all[d0:d1], 0, steps * batch)
    for t in range(steps):
        xh[t, d0:d1] = xh_all[d0:d1, t * batch:(t + 1) * batch]
    if _barrier(sync, parts):
        return
    for t in range(steps):
        # W [x_t; h_{t-1}], this part's rows
        _blocked_gemm(gemm, scratch, 4 * m, batch, inner, w_xh[r0:], inner, xh[t], batch,
                      pre[r0:], batch, rows, depth)
        for j in range(m):
            u = u0 + j
            ri, rf, ro, rg = r0 + j, r0 + m + j, r0 + 2 * m + j, r0 + 3 * m + j
            bi, bf, bo, bg = bias[ri], bias[rf], bias[ro], bias[rg]
            for n in range(batch):
                i = _sigmoid(pre[ri, n] + bi)
                f = _sigmoid(pre[rf, n] + bf)
                o = _sigmoid(pre[ro, n] + bo)
                g = _tanh(pre[rg, n] + bg)
                gates[t, ri, n] = i
                gates[t, rf, n] = f
                gates[t, ro, n] = o
                gates[t, rg, n] = g
                c_t = f * c[t, u, n] + i * g
                c[t + 1, u, n] = c_t
                tc = _tanh(c_t)
                tanh_c[t, u, n] = tc
                xh[t + 1, features + u, n] = o * tc
        # h_t of this part's units into xh_all and out[t], while they are in the cache
        h_t = xh[t + 1, features:]
        xh_all[features + u0:features + u1, (t + 1) * batch:(t + 2) * batch] = h_t[u0:u1]
        _transpose(h_t, out[t], u0, u1)
        if _barrier(sync, parts):
            return


@numba.njit(**_JIT)
def backward_part(part, bounds, gates, c, tanh_c, dout, w_xh, w_hh_t, xh_all, dh, dc, dout_t, da,
                  da_all, dw, dx, dx_parts, dw_ih, dw_hh, dbias, sync, rows, depth, gemm):
    """The backward pass of the units [bounds[part], bounds[part + 1]) over all steps.

    ``gates``, ``c``, ``tanh_c``, ``w_xh``, ``w_hh_t`` and ``xh_all`` as :func:`forward_part`
    left them; ``dout`` (T, N, H); ``dh``, ``dc`` (H, N) hold dh_T, dc_T and receive dh_0,
    dc_0; scratch: ``dout_t`` (H, N) for a step's dout^T, ``da``
    (T, 4H, N) for the gate gradients dA_i, dA_f, dA_o, dA_g (part order), ``da_all`` (4H, L),
    L >= T N, for the same side by side (step t in the columns tN..(t+1)N), ``dw`` (4H, D + H)
    for [dW_ih, dW_hh] in part order, ``dx_parts`` (parts - 1, T N, D) for the other parts'
    shares of the input gradient; ``dx`` (T, N, D) receives the input gradient,
    ``dw_ih`` (4H, D), ``dw_hh`` (4H, H) and ``dbias`` (4H,) the parameter gradients (torch's
    gate order, each part its units' rows). The parts meet at ``sync``'s barrier once per
    step, between the gate gradients and the product dh_{t-1} = W_hh^T dA_t that reads all of
    them, and once more before the sum of the parts' shares of dx = dA^T W_ih.
    """
    parts = bounds.shape[0] - 1
    steps, hidden, batch = tanh_c.shape
    features = dx.shape[2]
    inner = features + hidden
    h4 = 4 * hidden
    ld = da_all.shape[1]
    scratch = gemm_scratch(gates.dtype)
    u0, u1 = bounds[part], bounds[part + 1]
    m = u1 - u0
    r0 = 4 * u0
    one = gates.dtype.type(1)
    for t in range(steps - 1, -1, -1):
        column = t * batch
        _transpose(dout[t].T, dout_t.T, u0, u1)
        for j in range(m):
            u = u0 + j
            ri, rf, ro, rg = r0 + j, r0 + m + j, r0 + 2 * m + j, r0 + 3 * m + j
            for n in range(batch):
                i, f = gates[t, ri, n], gates[t, rf, n]
                o, g = gates[t, ro, n], gates[t, rg, n]
                tc = tanh_c[t, u, n]
                dh_t = dout_t[u, n] + dh[u, n]
                dc_t = dc[u, n] + dh_t * o * (one - tc * tc)
                da[t, ri, n] = dc_t * g * i * (one - i)
                da[t, rf, n] = dc_t * c[t, u, n] * f * (one - f)
                da[t, ro, n] = dh_t * tc * o * (one - o)
                da[t, rg, n] = dc_t * i * (one - g * g)
                dc[u, n] = dc_t * f
        if _barrier(sync, parts):
            return
        # dh_{t-1} = W_hh^T dA_t, this part's units
        _blocked_gemm(gemm, scratch, m, batch, h4, w_hh_t[u0:], h4, da[t], batch, dh[u0:], batch,
                      rows, depth)
        # this part's rows of dA_t into da_all, while they are in the cache
        da_all[r0:r0 + 4 * m, column:column + batch] = da[t, r0:r0 + 4 * m]
    # This part's rows of the parameter gradients, all steps in one product:
    # [dW_ih, dW_hh] = dA [x, h_prev] (xh_all holds [x_t; h_{t-1}]^T side by side), and the
    # bias gradient, a sum over all steps and sequences.
    columns = steps * batch
    _gemm(gemm, scratch, 0, 1, 4 * m, inner, columns, da_all[r0:], ld, xh_all, xh_all.shape[1],
          0.0, dw[r0:], inner)
    for k in range(4 if m > 0 else 0):  # part order i, f, o, g; torch's i, f, g, o
        gate = k if k < 2 else 5 - k
        for j in range(m):
            row, dst = r0 + k * m + j, gate * hidden + u0 + j
            dw_ih[dst] = dw[row, :features]
            dw_hh[dst] = dw[row, features:]
            dbias[dst] = _row_sum(da_all[row], columns)
    # dx = dA^T W_ih for all steps at once: this part's share, from its own rows of dA (in its
    # cache) and of W_ih; then, once every part has its share, the sum, each part a share of
    # the rows (T N of them).
    dx2d = dx.reshape(columns, features)
    mine = dx2d if part == 0 else dx_parts[part - 1]
    if m > 0:
        _gemm(gemm, scratch, 1, 0, columns, features, 4 * m, da_all[r0:], ld, w_xh[r0:], inner,
              0.0, mine, features)
    else:
        mine[...] = 0
    if _barrier(sync, parts):
        return
    q0, q1 = columns * part // parts, columns * (part + 1) // parts
    for p in range(parts - 1):
        dx2d[q0:q1] += dx_parts[p, q0:q1]


def compile_for(kernel, args) -> None:
    """Compile (or load from numba's cache) ``kernel`` for ``args``' types, without running it."""
    kernel.compile(tuple(numba.typeof(a) for a in args))
