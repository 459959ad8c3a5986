"""The gated recurrent unit (GRU): a step pair, a loop over time, and a torch-like class.

Each step computes one stacked input product and one stacked recurrent product, each split in
three, gate order r, z, n as ``torch.nn.GRU``:

    r      = sigmoid(x W_ir^T + b_ir + h_prev W_hr^T + b_hr)         reset gate
    z      = sigmoid(x W_iz^T + b_iz + h_prev W_hz^T + b_hz)         update gate
    n      = tanh(x W_in^T + b_in + r * (h_prev W_hn^T + b_hn))      candidate state
    h_next = (1 - z) * n + z * h_prev

The reset gate multiplies the recurrent product *after* the weight and its bias (torch's and
cuDNN's form; Cho et al. (2014) apply r to h_prev before the product). ``weight_ih`` (3H, D)
stacks W_ir, W_iz, W_in; ``weight_hh`` (3H, H) likewise; each bias is (3H,).
"""

from __future__ import annotations

import numpy as np

from dlbook._recurrent import StackedRecurrent, check_cell_args, check_upstream
from dlbook._validate import as_array, check_shape
from dlbook.activations import sigmoid

__all__ = ["gru_step_forward", "gru_step_backward", "gru_forward", "gru_backward", "GRU"]


def gru_step_forward(x: np.ndarray, h_prev: np.ndarray, weight_ih: np.ndarray,
                     weight_hh: np.ndarray, bias_ih: np.ndarray, bias_hh: np.ndarray):
    """One GRU step (the equations in the module docstring).

    Args:
        x: (N, D) input; h_prev: (N, H) previous hidden state.
        weight_ih: (3H, D); weight_hh: (3H, H); bias_ih, bias_hh: (3H,); gates r, z, n.
    Returns:
        ``(h_next, cache)`` with ``h_next`` (N, H). Matches ``torch.nn.GRUCell``.
    """
    x, states, weight_ih, weight_hh, bias_ih, bias_hh, _ = check_cell_args(
        x, {"h_prev": h_prev}, weight_ih, weight_hh, bias_ih, bias_hh, gates=3, sequence=False)
    h_prev = states["h_prev"]
    x_r, x_z, x_n = np.split(x @ weight_ih.T + bias_ih, 3, axis=1)  # 3 x (N, H)
    h_r, h_z, h_n = np.split(h_prev @ weight_hh.T + bias_hh, 3, axis=1)  # 3 x (N, H)
    r = sigmoid(x_r + h_r)  # reset gate
    z = sigmoid(x_z + h_z)  # update gate
    n = np.tanh(x_n + r * h_n)  # candidate state
    h_next = (1 - z) * n + z * h_prev
    return h_next, (x, h_prev, weight_ih, weight_hh, r, z, n, h_n)


def gru_step_backward(dh_next: np.ndarray, cache):
    """Gradients of one GRU step, from dL/dh_next.

        dn  = dh_next * (1 - z),   dz = dh_next * (h_prev - n)
        da_n = dn * (1 - n^2),     dr = da_n * (h_prev W_hn^T + b_hn)
        da_r = dr * r(1-r),        da_z = dz * z(1-z)
        dA_x = [da_r, da_z, da_n],         dA_h = [da_r, da_z, da_n * r]      (N, 3H)
        dx = dA_x W_ih,   dh_prev = dh_next * z + dA_h W_hh
        dW_ih = dA_x^T x,  dW_hh = dA_h^T h_prev,  dbias_ih = sum_n dA_x,  dbias_hh = sum_n dA_h

    Returns:
        ``(dx, dh_prev, dweight_ih, dweight_hh, dbias_ih, dbias_hh)``.
    """
    x, h_prev, weight_ih, weight_hh, r, z, n, h_n = cache
    dh_next = as_array(dh_next, "dh_next")
    check_shape(dh_next, h_prev.shape, "dh_next")
    dn = dh_next * (1 - z)
    dz = dh_next * (h_prev - n)
    da_n = dn * (1 - n**2)
    da_r = da_n * h_n * r * (1 - r)
    da_z = dz * z * (1 - z)
    da_x = np.concatenate([da_r, da_z, da_n], axis=1)  # (N, 3H)
    da_h = np.concatenate([da_r, da_z, da_n * r], axis=1)  # (N, 3H)
    dh_prev = dh_next * z + da_h @ weight_hh
    return (da_x @ weight_ih, dh_prev, da_x.T @ x, da_h.T @ h_prev, da_x.sum(axis=0),
            da_h.sum(axis=0))


def gru_forward(x: np.ndarray, h0: np.ndarray, weight_ih: np.ndarray, weight_hh: np.ndarray,
                bias_ih: np.ndarray, bias_hh: np.ndarray):
    """Run the GRU over a whole sequence, keeping every step's cache.

    Args:
        x: (T, N, D) inputs, time first; h0: (N, H) initial hidden state.
        weight_ih: (3H, D); weight_hh: (3H, H); bias_ih, bias_hh: (3H,); gates r, z, n.
    Returns:
        ``(out, h_n, cache)``: ``out`` (T, N, H) holds h_1..h_T, ``h_n`` (N, H) is h_T.
        Matches one layer of ``torch.nn.GRU``.
    """
    x, states, weight_ih, weight_hh, bias_ih, bias_hh, hidden = check_cell_args(
        x, {"h0": h0}, weight_ih, weight_hh, bias_ih, bias_hh, gates=3, sequence=True)
    h = states["h0"]
    steps = x.shape[0]
    out = np.empty((steps, x.shape[1], hidden), dtype=np.result_type(x, h, weight_ih))
    caches = []
    for t in range(steps):
        h, step_cache = gru_step_forward(x[t], h, weight_ih, weight_hh, bias_ih, bias_hh)
        out[t] = h
        caches.append(step_cache)
    return out, h, (caches, x.shape, hidden)


def gru_backward(dout: np.ndarray, cache, dh_n: np.ndarray | None = None):
    """Backpropagation through time for :func:`gru_forward`.

    Args:
        dout: (T, N, H) gradient on ``out``; dh_n: (N, H) gradient on ``h_n`` (zero when None).
    Returns:
        ``(dx, dh0, dweight_ih, dweight_hh, dbias_ih, dbias_hh)``.
    """
    caches, x_shape, hidden = cache
    steps, batch, _ = x_shape
    dout = as_array(dout, "dout")
    check_shape(dout, (steps, batch, hidden), "dout")
    dh = check_upstream(dh_n, (batch, hidden), "dh_n", dout.dtype)
    dx = np.empty(x_shape, dtype=np.result_type(dout, caches[0][0]))
    dweight_ih = dweight_hh = dbias_ih = dbias_hh = 0
    for t in reversed(range(steps)):
        dx[t], dh, dw_ih, dw_hh, db_ih, db_hh = gru_step_backward(dout[t] + dh, caches[t])
        dweight_ih, dweight_hh = dweight_ih + dw_ih, dweight_hh + dw_hh
        dbias_ih, dbias_hh = dbias_ih + db_ih, dbias_hh + db_hh
    return dx, dh, dweight_ih, dweight_hh, dbias_ih, dbias_hh


class GRU(StackedRecurrent):
    """A stack of GRU layers, optionally bidirectional, like ``torch.nn.GRU``.

    ``forward(x, hx=None)`` returns ``(out, h_n)`` as :class:`dlbook.rnn.RNN` does;
    ``backward(dout, dh_n=None)`` returns dx, fills ``grads`` and leaves the gradient on ``hx``
    in ``dhx``. Parameters are named and initialised as torch's (``weight_ih_l0`` (3H, D), ...,
    U(-1/sqrt(H), 1/sqrt(H))). Time-major only; no ``batch_first``, ``bias=False`` or
    ``dropout``.
    """

    _gates = 3

    def _cell_forward(self, x, states, weights):
        out, h_n, cache = gru_forward(x, states[0], *weights)
        return out, (h_n,), cache

    def _cell_backward(self, dout, cache, dstates):
        dx, dh0, *dweights = gru_backward(dout, cache, dstates[0])
        return dx, (dh0,), dweights
