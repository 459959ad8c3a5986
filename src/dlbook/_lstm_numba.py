"""The LSTM's time loops compiled with numba: an optional accelerator of :mod:`dlbook._lstm_fast`.

Imported by :mod:`dlbook._lstm_fast` only when numba is installed; without it that module's numpy
loops run. Not printed by the book; tested equal to the readable functions of :mod:`dlbook.lstm`.

The numpy loops spend most of a step's time in the cost per numpy call (about a microsecond
each, some twenty calls per step forward and backward together), not in arithmetic. Here each
time loop is one compiled function: per step, the recurrent matrix product (``np.dot``, which
numba hands to BLAS through scipy) and one fused elementwise pass over all gates.

Two threads split every step by hidden units: part k owns the units [u_k, u_{k+1}), the rows
of all four gates of those units (half the recurrent weights), and its units of c_t and h_t.
The next step's product needs all of h_t, so the parts meet at a barrier once per step (a spin
on an atomic counter, a fraction of a microsecond when both run); nothing else is shared. The
backward step is split the same way: each part computes its units' gate gradients dA, waits at
the barrier for the other's, and then its units' rows of dh_{t-1} = W_hh^T dA.

The gates use exp only, written out here (a Cephes-style polynomial, accurate to about one unit
in the last place in float32 and float64) so that the compiler vectorises the elementwise pass:
numba calls libm's scalar exp and tanh otherwise, one at a time.

Layouts (transposed, as in :mod:`dlbook._lstm_fast`): in the time loops each step's block of
a state is (H, N), contiguous; the gate rows are in *part order*: for each part in turn, the i,
f, o and g rows of its units. Each step's product is [W_ih, W_hh] [x_t; h_{t-1}] (one product,
no separate input projection) in blocks of rows small enough for OpenBLAS's small-matrix
kernels; backward, dh_{t-1} = W_hh^T dA_t per step, and after the loop dx^T = W_ih^T dA and
[dW_ih, dW_hh] = dA [x, h_prev] for all steps at once, each part its share of the rows. Every
copy between layouts is done inside the loops' functions, by each part for its own rows. (A
layout with all steps of a gate row side by side, (4H, T*N), was twice as slow: each step
touched one 64-byte piece of every 4 kB row, so 1024 rows at the second benchmark shape fell
into the same few cache sets.)
"""

from __future__ import annotations

import sys

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

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
def _f32_from_bits(typingctx, bits):
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@intrinsic
def _f64_from_bits(typingctx, bits):
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


# After this many turns of the spin (some 0.1 ms) a thread waiting at the barrier gives up its
# core on each turn: on a busy machine the thread it waits for may have none (sched_yield; a
# plain spin on Windows). Yielding much sooner cost more than the spin: with other programs
# running, a yield gave the core away for a time slice at nearly every step.
_SPINS = 100_000
if sys.platform.startswith("win"):
    @numba.njit
    def _yield():
        pass
else:
    _sched_yield = types.ExternalFunction("sched_yield", types.int32())

    @numba.njit
    def _yield():
        _sched_yield()


@numba.njit
def _barrier(sync, parts):
    """Wait until all ``parts`` threads have called this (``sync``: two int64, zero at first)."""
    if parts > 1:
        generation = _atomic_load(sync, 1)
        if _atomic_add(sync, 0, 1) == parts - 1:  # the last to arrive lets the others go
            _atomic_store(sync, 0, 0)
            _atomic_add(sync, 1, 1)
        else:
            spins = 0
            while _atomic_load(sync, 1) == generation:
                spins += 1
                if spins > _SPINS:
                    _yield()


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
    return p * _f32_from_bits(np.int32((np.int32(k) + 127) << 23))


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
    return e * _f64_from_bits(np.int64((np.int64(k) + 1023) << 52))


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
# The time loops, one part (a range of hidden units) per thread.

@numba.njit
def _products(weight, rhs, out, r0, r1, block, shift=0):
    """out[r0 - shift:r1 - shift] = weight[r0:r1] @ rhs, in blocks of ``block`` rows (OpenBLAS
    runs small products through its small-matrix kernels, faster here than one large one)."""
    for b0 in range(r0, r1, block):
        b1 = min(b0 + block, r1)
        np.dot(weight[b0:b1], rhs, out[b0 - shift:b1 - shift])


@numba.njit(**_JIT)
def forward_part(part, bounds, x, w_ih, w_hh, b_ih, b_hh, w_xh, bias, xh, gates, c, tanh_c, pre,
                 xh_rows, out, sync, block):
    """The forward pass of the units [bounds[part], bounds[part + 1]) over all steps.

    ``x`` (T, N, D) the input, ``w_ih`` (4H, D), ``w_hh`` (4H, H), ``b_ih`` and ``b_hh`` (4H,)
    the weights (torch's gate order); ``w_xh`` (4H, D + H) receives [W_ih, W_hh] and ``bias``
    (4H,) b_ih + b_hh, rows in part order (each part its own rows); ``xh`` (T + 1, D + H, N)
    receives [x_t^T; h_{t-1}^T] for each step (it holds h_0 on entry; h_T goes to the last
    entry, whose x rows are unused);
    ``gates`` (T, 4H, N) receives the gate values i, f, o, g (part order); ``c`` (T + 1, H, N)
    holds c_0 and receives c_t; ``tanh_c`` (T, H, N) receives tanh(c_t); ``pre`` (4H, N) is
    scratch for the pre-activations; ``xh_rows`` (T, N, D + H) receives [x_t, h_{t-1}] and
    ``out`` (T, N, H) h_1..h_T. All parts run at once, one thread each, and meet at
    ``sync``'s barrier after each step (h_t is read by every part in the next step).
    """
    parts = bounds.shape[0] - 1
    steps, hidden, batch = tanh_c.shape
    features = x.shape[2]
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
    for t in range(steps):  # this part's share of the transposed inputs, and of the copy
        for n in range(batch):
            for d in range(d0, d1):
                xh[t, d, n] = x[t, n, d]
                xh_rows[t, n, d] = x[t, n, d]
    _barrier(sync, parts)
    for t in range(steps):
        _products(w_xh, xh[t], pre, r0, r0 + 4 * m, block)  # W [x_t; h_{t-1}], this part's rows
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
        _barrier(sync, parts)
    for t in range(steps):  # this part's units of h_{t-1} and h_t in the natural layout
        for n in range(batch):
            for u in range(u0, u1):
                xh_rows[t, n, features + u] = xh[t, features + u, n]
                out[t, n, u] = xh[t + 1, features + u, n]


@numba.njit(**_JIT)
def backward_part(part, bounds, gates, c, tanh_c, dout, w_xh, xh2d, dh, dc, w_xh_t, da, da_all,
                  dx_t, dw, dw_ih, dw_hh, dbias, sync, block):
    """The backward pass of the units [bounds[part], bounds[part + 1]) over all steps.

    ``gates``, ``c``, ``tanh_c`` and ``w_xh`` as :func:`forward_part` left them or took them,
    ``xh2d`` (T*N, D + H) its ``xh_rows``; ``dout`` (T, N, H);
    ``dh``, ``dc`` (H, N) hold dh_T, dc_T and receive dh_0, dc_0; scratch: ``w_xh_t``
    (D + H, 4H) for [W_ih, W_hh]^T, ``da`` (T, 4H, N) for the gate gradients dA_i, dA_f, dA_o,
    dA_g (part order), ``da_all`` (4H, T*N) for the same side by side; ``dx_t`` (D, T*N)
    receives the input gradients, transposed (each part a share of the D rows), ``dw``
    (4H, D + H) is scratch for [dW_ih, dW_hh] in part order; ``dw_ih`` (4H, D),
    ``dw_hh`` (4H, H) and ``dbias`` (4H,) the parameter gradients (torch's gate order, each part
    its units' rows). The parts meet at ``sync``'s barrier once per step, between the gate
    gradients and the product dh_{t-1} = W_hh^T dA_t that reads all of them, and once more
    before dx^T = W_ih^T dA.
    """
    parts = bounds.shape[0] - 1
    steps, hidden, batch = tanh_c.shape
    features = dx_t.shape[0]
    u0, u1 = bounds[part], bounds[part + 1]
    m = u1 - u0
    r0 = 4 * u0
    d0, d1 = features * part // parts, features * (part + 1) // parts
    one = gates.dtype.type(1)
    # This part's rows of the transposed weights: its share of D and its units of H.
    for k0 in range(0, w_xh.shape[0], 16):
        for r in range(d0, d1):
            for k in range(k0, min(k0 + 16, w_xh.shape[0])):
                w_xh_t[r, k] = w_xh[k, r]
        for r in range(features + u0, features + u1):
            for k in range(k0, min(k0 + 16, w_xh.shape[0])):
                w_xh_t[r, k] = w_xh[k, r]
    for t in range(steps - 1, -1, -1):
        for j in range(m):
            u = u0 + j
            ri, rf, ro, rg = r0 + j, r0 + m + j, r0 + 2 * m + j, r0 + 3 * m + j
            for n in range(batch):
                i, f = gates[t, ri, n], gates[t, rf, n]
                o, g = gates[t, ro, n], gates[t, rg, n]
                tc = tanh_c[t, u, n]
                dh_t = dout[t, n, u] + dh[u, n]
                dc_t = dc[u, n] + dh_t * o * (one - tc * tc)
                da[t, ri, n] = dc_t * g * i * (one - i)
                da[t, rf, n] = dc_t * c[t, u, n] * f * (one - f)
                da[t, ro, n] = dh_t * tc * o * (one - o)
                da[t, rg, n] = dc_t * i * (one - g * g)
                dc[u, n] = dc_t * f
        _barrier(sync, parts)
        _products(w_xh_t, da[t], dh, features + u0, features + u1, block, features)
    # This part's rows of the parameter gradients, all steps in one product per gate; the
    # bias gradient summed per batch column first (so that the sums vectorise).
    sums = np.zeros((4 * m, batch), dtype=da.dtype)
    for r in range(r0, r0 + 4 * m):
        for t in range(steps):
            for n in range(batch):
                da_all[r, t * batch + n] = da[t, r, n]
                sums[r - r0, n] += da[t, r, n]
    if m > 0:
        np.dot(da_all[r0:r0 + 4 * m], xh2d, dw[r0:r0 + 4 * m])  # one product: faster than 8
    for k in range(4 if m > 0 else 0):  # part order i, f, o, g; torch's i, f, g, o
        gate = k if k < 2 else 5 - k
        for j in range(m):
            row, dst = r0 + k * m + j, gate * hidden + u0 + j
            dw_ih[dst] = dw[row, :features]
            dw_hh[dst] = dw[row, features:]
            dbias[dst] = np.sum(sums[k * m + j])
    # dx^T = W_ih^T dA for all steps at once (a larger, faster product than one per step), each
    # part its share of the D rows, once every part's dA is in da_all.
    _barrier(sync, parts)
    if d1 > d0:
        np.dot(w_xh_t[d0:d1], da_all, dx_t[d0:d1])


def compile_for(kernel, args) -> None:
    """Compile (or load from numba's cache) ``kernel`` for ``args``' types, without running it."""
    kernel.compile(tuple(numba.typeof(a) for a in args))
