"""The long short-term memory (LSTM) layer: a step pair, a loop over time, and a torch-like class.

Each step computes one stacked gate product and splits it in four, gate order i, f, g, o as
``torch.nn.LSTM``:

    i   = sigmoid(x W_ii^T + b_ii + h_prev W_hi^T + b_hi)     input gate
    f   = sigmoid(x W_if^T + b_if + h_prev W_hf^T + b_hf)     forget gate
    g   = tanh(x W_ig^T + b_ig + h_prev W_hg^T + b_hg)        candidate cell
    o   = sigmoid(x W_io^T + b_io + h_prev W_ho^T + b_ho)     output gate
    c   = f * c_prev + i * g
    h   = o * tanh(c)

``weight_ih`` (4H, D) stacks W_ii, W_if, W_ig, W_io row-block by row-block, ``weight_hh`` (4H, H)
likewise, and each bias is (4H,). The cell state c carries gradient back through time
multiplied only by the forget gate (dc_prev = dc * f), which is why an LSTM forgets gradients
more slowly than a simple RNN.

The functions here are the readable version the book prints; the ``LSTM`` class runs the same
maths through ``dlbook._lstm_fast`` (tested equal to these functions).
"""

from __future__ import annotations

import numpy as np

from dlbook import _lstm_fast
from dlbook._recurrent import StackedRecurrent, check_cell_args, check_upstream
from dlbook._validate import as_array, check_shape
from dlbook.activations import sigmoid

__all__ = ["lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward", "LSTM"]


def lstm_step_forward(x: np.ndarray, h_prev: np.ndarray, c_prev: np.ndarray,
                      weight_ih: np.ndarray, weight_hh: np.ndarray, bias_ih: np.ndarray,
                      bias_hh: np.ndarray):
    """One LSTM step (the equations in the module docstring).

    Args:
        x: (N, D) input; h_prev, c_prev: (N, H) previous hidden and cell states.
        weight_ih: (4H, D); weight_hh: (4H, H); bias_ih, bias_hh: (4H,); gates i, f, g, o.
    Returns:
        ``(h_next, c_next, cache)``, both states (N, H). Matches ``torch.nn.LSTMCell``.
    """
    x, states, weight_ih, weight_hh, bias_ih, bias_hh, _ = check_cell_args(
        x, {"h_prev": h_prev, "c_prev": c_prev}, weight_ih, weight_hh, bias_ih, bias_hh,
        gates=4, sequence=False)
    h_prev, c_prev = states["h_prev"], states["c_prev"]
    gates = x @ weight_ih.T + bias_ih + h_prev @ weight_hh.T + bias_hh  # (N, 4H)
    a_i, a_f, a_g, a_o = np.split(gates, 4, axis=1)  # 4 x (N, H)
    i = sigmoid(a_i)  # input gate
    f = sigmoid(a_f)  # forget gate
    g = np.tanh(a_g)  # candidate cell
    o = sigmoid(a_o)  # output gate
    c_next = f * c_prev + i * g
    h_next = o * np.tanh(c_next)
    return h_next, c_next, (x, h_prev, c_prev, weight_ih, weight_hh, i, f, g, o, c_next)


def lstm_step_backward(dh_next: np.ndarray, dc_next: np.ndarray, cache):
    """Gradients of one LSTM step, from dL/dh_next and dL/dc_next.

        dc   = dc_next + dh_next * o * (1 - tanh(c)^2)     c feeds h and the next step
        do   = dh_next * tanh(c)
        di   = dc * g,   dg = dc * i,   df = dc * c_prev,   dc_prev = dc * f
        da   = [di * i(1-i), df * f(1-f), dg * (1-g^2), do * o(1-o)]      (N, 4H)
        dx   = da W_ih,   dh_prev = da W_hh,   dW_ih = da^T x,   dW_hh = da^T h_prev
        dbias_ih = dbias_hh = sum_n da

    Returns:
        ``(dx, dh_prev, dc_prev, dweight_ih, dweight_hh, dbias_ih, dbias_hh)``.
    """
    x, h_prev, c_prev, weight_ih, weight_hh, i, f, g, o, c_next = cache
    dh_next = as_array(dh_next, "dh_next")
    check_shape(dh_next, c_next.shape, "dh_next")
    dc_next = as_array(dc_next, "dc_next")
    check_shape(dc_next, c_next.shape, "dc_next")
    tanh_c = np.tanh(c_next)
    dc = dc_next + dh_next * o * (1 - tanh_c**2)  # a new array: the caller's dc_next is kept
    do = dh_next * tanh_c
    di, dg, df = dc * g, dc * i, dc * c_prev
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g**2), do * o * (1 - o)],
                        axis=1)  # (N, 4H)
    db = da.sum(axis=0)
    return da @ weight_ih, da @ weight_hh, dc * f, da.T @ x, da.T @ h_prev, db, db.copy()


def lstm_forward(x: np.ndarray, h0: np.ndarray, c0: np.ndarray, weight_ih: np.ndarray,
                 weight_hh: np.ndarray, bias_ih: np.ndarray, bias_hh: np.ndarray):
    """Run the LSTM over a whole sequence, keeping every step's cache.

    Args:
        x: (T, N, D) inputs, time first; h0, c0: (N, H) initial hidden and cell states.
        weight_ih: (4H, D); weight_hh: (4H, H); bias_ih, bias_hh: (4H,); gates i, f, g, o.
    Returns:
        ``(out, (h_n, c_n), cache)``: ``out`` (T, N, H) holds h_1..h_T; ``h_n``, ``c_n`` (N, H)
        are the final states. Matches one layer of ``torch.nn.LSTM``.
    """
    x, states, weight_ih, weight_hh, bias_ih, bias_hh, hidden = check_cell_args(
        x, {"h0": h0, "c0": c0}, weight_ih, weight_hh, bias_ih, bias_hh, gates=4, sequence=True)
    h, c = states["h0"], states["c0"]
    steps = x.shape[0]
    out = np.empty((steps, x.shape[1], hidden), dtype=np.result_type(x, h, c, weight_ih))
    caches = []
    for t in range(steps):
        h, c, step_cache = lstm_step_forward(x[t], h, c, weight_ih, weight_hh, bias_ih, bias_hh)
        out[t] = h
        caches.append(step_cache)
    return out, (h, c), (caches, x.shape, hidden)


def lstm_backward(dout: np.ndarray, cache, dh_n: np.ndarray | None = None,
                  dc_n: np.ndarray | None = None):
    """Backpropagation through time for :func:`lstm_forward`.

    From t = T down to 1, the gradient on h_t is dout[t] plus what step t + 1 sent to its
    h_prev, and the gradient on c_t is what step t + 1 sent to its c_prev (``dh_n``, ``dc_n``
    at t = T, zero when None); the weight gradients add up over the steps.

    Args:
        dout: (T, N, H) gradient on ``out``; dh_n, dc_n: (N, H) gradients on ``h_n``, ``c_n``.
    Returns:
        ``(dx, dh0, dc0, dweight_ih, dweight_hh, dbias_ih, dbias_hh)``.
    """
    caches, x_shape, hidden = cache
    steps, batch, _ = x_shape
    dout = as_array(dout, "dout")
    check_shape(dout, (steps, batch, hidden), "dout")
    dh = check_upstream(dh_n, (batch, hidden), "dh_n", dout.dtype)
    dc = check_upstream(dc_n, (batch, hidden), "dc_n", dout.dtype)
    dx = np.empty(x_shape, dtype=np.result_type(dout, caches[0][0]))
    dweight_ih = dweight_hh = dbias_ih = dbias_hh = 0
    for t in reversed(range(steps)):
        dx[t], dh, dc, dw_ih, dw_hh, db_ih, db_hh = lstm_step_backward(dout[t] + dh, dc, caches[t])
        dweight_ih, dweight_hh = dweight_ih + dw_ih, dweight_hh + dw_hh
        dbias_ih, dbias_hh = dbias_ih + db_ih, dbias_hh + db_hh
    return dx, dh, dc, dweight_ih, dweight_hh, dbias_ih, dbias_hh


class LSTM(StackedRecurrent):
    """A stack of LSTM layers, optionally bidirectional, like ``torch.nn.LSTM``.

    ``forward(x, hx=None)`` returns ``(out, (h_n, c_n))``: ``out`` (T, N, num_directions * H),
    ``h_n`` and ``c_n`` (num_layers * num_directions, N, H); ``hx`` is ``(h0, c0)`` of that
    shape, zeros when None. ``backward(dout, dh_n=None, dc_n=None)`` returns dx, fills
    ``grads`` and leaves the gradients on ``(h0, c0)`` in ``dhx``. Parameters are named and
    initialised as torch's (``weight_ih_l0`` (4H, D), ..., U(-1/sqrt(H), 1/sqrt(H))).

    The cell runs on the tuned path ``dlbook._lstm_fast`` (one input projection for all steps,
    preallocated buffers, float32 kept float32), tested equal to :func:`lstm_forward` and
    :func:`lstm_backward`. Time-major only; no ``batch_first``, ``bias=False``, ``dropout``
    or ``proj_size``.
    """

    _gates = 4
    _state_names = ("h", "c")

    def _cell_forward(self, x, states, weights):
        out, final, cache = _lstm_fast.lstm_forward(x, *states, *weights)
        return out, final, cache

    def _cell_backward(self, dout, cache, dstates):
        dx, dh0, dc0, *dweights = _lstm_fast.lstm_backward(dout, cache, *dstates)
        return dx, (dh0, dc0), dweights

    def forward(self, x: np.ndarray, hx: tuple[np.ndarray, np.ndarray] | None = None):
        """``(out, (h_n, c_n))`` for inputs ``x`` (T, N, D) and initial states ``hx = (h0, c0)``."""
        out, (h_n, c_n) = self._run_forward(x, hx)
        return out, (h_n, c_n)

    def __call__(self, x: np.ndarray, hx: tuple[np.ndarray, np.ndarray] | None = None):
        return self.forward(x, hx)

    def backward(self, dout: np.ndarray, dh_n: np.ndarray | None = None,
                 dc_n: np.ndarray | None = None) -> np.ndarray:
        """Return dL/dx for gradients on ``out``, ``h_n``, ``c_n``; fill ``grads`` and ``dhx``."""
        dx, self.dhx = self._run_backward(dout, (dh_n, dc_n))
        return dx
