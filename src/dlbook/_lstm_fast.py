"""The LSTM's tuned path, used by ``dlbook.lstm.LSTM``; same maths as ``lstm_forward/backward``.

Not printed by the book; tested equal to the readable functions (float64 to 1e-10, float32 to
float32 rounding). What it does differently, and why:

* The input projection of every step is one matrix product, (T*N, D) @ (D, 4H), before the
  loop; only the recurrent product h_{t-1} W_hh^T stays inside it.
* The gate rows are reordered once to i, f, o, g, so the three sigmoid gates are one
  contiguous block. sigmoid(a) = 0.5 + 0.5 tanh(a / 2): with the i, f, o rows of the
  forward weights and biases halved (exact in binary floating point), one ``np.tanh`` over the
  whole (N, 4H) block computes all four nonlinearities, and two in-place operations turn the
  first 3H columns into sigmoids.
* Every per-step array lives in buffers allocated once per call, written with ``out=``; the
  dtype of the inputs is kept (float32 stays float32).
* The backward loop only computes the pre-activation gradients dA_t and dh_{t-1} = dA_t W_hh;
  dW_ih, dW_hh, dbias and dx are each one product (or sum) over all T*N rows after the loop.
"""

from __future__ import annotations

import numpy as np

from dlbook._recurrent import check_cell_args, check_upstream
from dlbook._validate import as_array, check_shape


def _order(hidden: int) -> np.ndarray:
    """Row indices taking torch's gate order i, f, g, o to the internal i, f, o, g."""
    blocks = np.arange(4 * hidden).reshape(4, hidden)
    return blocks[[0, 1, 3, 2]].ravel()


def lstm_forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh):
    """Same arguments and results as :func:`dlbook.lstm.lstm_forward` (its own cache)."""
    x, states, weight_ih, weight_hh, bias_ih, bias_hh, hidden = check_cell_args(
        x, {"h0": h0, "c0": c0}, weight_ih, weight_hh, bias_ih, bias_hh, gates=4, sequence=True)
    h0, c0 = states["h0"], states["c0"]
    dtype = np.result_type(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh)
    steps, batch, features = x.shape
    hid, sig = hidden, 3 * hidden  # columns [0, 3H) are sigmoid gates, [3H, 4H) is g
    order = _order(hidden)
    w_ih = weight_ih[order].astype(dtype, copy=False)  # (4H, D), internal order, kept for dx
    w_hh = weight_hh[order].astype(dtype, copy=False)  # (4H, H)
    half = np.ones(4 * hidden, dtype=dtype)
    half[:sig] = 0.5
    w_hh_fwd = np.ascontiguousarray((w_hh * half[:, None]).T)  # (H, 4H)
    bias = ((bias_ih + bias_hh)[order] * half).astype(dtype, copy=False)

    x2d = np.ascontiguousarray(x.reshape(steps * batch, features), dtype=dtype)  # (T*N, D)
    gates = np.empty((steps, batch, 4 * hidden), dtype=dtype)
    np.matmul(x2d, (w_ih * half[:, None]).T, out=gates.reshape(steps * batch, 4 * hidden))
    gates += bias
    hs = np.empty((steps + 1, batch, hidden), dtype=dtype)  # h_0..h_T
    cs = np.empty((steps + 1, batch, hidden), dtype=dtype)  # c_0..c_T
    tanh_c = np.empty((steps, batch, hidden), dtype=dtype)
    hs[0], cs[0] = h0, c0
    rec = np.empty((batch, 4 * hidden), dtype=dtype)
    ig = np.empty((batch, hidden), dtype=dtype)
    for t in range(steps):
        gt = gates[t]
        np.matmul(hs[t], w_hh_fwd, out=rec)
        gt += rec
        np.tanh(gt, out=gt)  # tanh(a/2) on the sigmoid block, tanh(a) on g
        s = gt[:, :sig]
        s *= 0.5
        s += 0.5  # sigmoid(a) = 0.5 + 0.5 tanh(a/2)
        i, f, o, g = gt[:, :hid], gt[:, hid:2 * hid], gt[:, 2 * hid:sig], gt[:, sig:]
        np.multiply(f, cs[t], out=cs[t + 1])
        np.multiply(i, g, out=ig)
        cs[t + 1] += ig
        np.tanh(cs[t + 1], out=tanh_c[t])
        np.multiply(o, tanh_c[t], out=hs[t + 1])
    cache = (x2d, x.shape, w_ih, w_hh, order, gates, hs, cs, tanh_c)
    # Copies: the caller may change what it gets without touching the cache.
    return hs[1:].copy(), (hs[steps].copy(), cs[steps].copy()), cache


def lstm_backward(dout, cache, dh_n=None, dc_n=None):
    """Same arguments and results as :func:`dlbook.lstm.lstm_backward`, for this module's cache."""
    x2d, x_shape, w_ih, w_hh, order, gates, hs, cs, tanh_c = cache
    steps, batch, hidden = tanh_c.shape
    hid, sig = hidden, 3 * hidden
    dout = as_array(dout, "dout")
    check_shape(dout, (steps, batch, hidden), "dout")
    dtype = np.result_type(dout, gates)
    dh = check_upstream(dh_n, (batch, hidden), "dh_n", dtype).astype(dtype, copy=True)
    dc = check_upstream(dc_n, (batch, hidden), "dc_n", dtype).astype(dtype, copy=True)
    dgates = np.empty((steps, batch, 4 * hidden), dtype=dtype)  # dL/d(pre-activation)
    dh_t = np.empty((batch, hidden), dtype=dtype)
    tmp = np.empty((batch, hidden), dtype=dtype)
    dsig = np.empty((batch, sig), dtype=dtype)
    slope = np.empty((batch, sig), dtype=dtype)
    for t in reversed(range(steps)):
        gt, dgt, tc = gates[t], dgates[t], tanh_c[t]
        i, o, g = gt[:, :hid], gt[:, 2 * hid:sig], gt[:, sig:]
        np.add(dout[t], dh, out=dh_t)
        np.multiply(tc, tc, out=tmp)
        np.subtract(1, tmp, out=tmp)
        tmp *= o
        tmp *= dh_t
        dc += tmp  # dc = dc_next + dh * o * (1 - tanh(c)^2)
        np.multiply(dc, g, out=dsig[:, :hid])  # di
        np.multiply(dc, cs[t], out=dsig[:, hid:2 * hid])  # df
        np.multiply(dh_t, tc, out=dsig[:, 2 * hid:])  # do
        s = gt[:, :sig]
        np.subtract(1, s, out=slope)
        slope *= s  # sigmoid' = s (1 - s)
        np.multiply(dsig, slope, out=dgt[:, :sig])
        np.multiply(g, g, out=tmp)
        np.subtract(1, tmp, out=tmp)
        tmp *= i
        np.multiply(dc, tmp, out=dgt[:, sig:])  # dg * (1 - g^2)
        dc *= gt[:, hid:2 * hid]  # dc_prev = dc * f
        np.matmul(dgt, w_hh, out=dh)  # dh_prev = dA W_hh
    dgates2d = dgates.reshape(steps * batch, 4 * hidden)
    dx = (dgates2d @ w_ih).reshape(x_shape)  # (T, N, D)
    restore = np.argsort(order)  # internal i, f, o, g back to torch's i, f, g, o
    dweight_ih = (dgates2d.T @ x2d)[restore]  # (4H, D)
    dweight_hh = (dgates2d.T @ hs[:-1].reshape(steps * batch, hidden))[restore]  # (4H, H)
    dbias = dgates2d.sum(axis=0)[restore]
    return dx, dh, dc, dweight_ih, dweight_hh, dbias, dbias.copy()
