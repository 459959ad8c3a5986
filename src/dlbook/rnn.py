"""The simple (Elman) recurrent layer: a step pair, a loop over time, and a torch-like class.

One step reads the input x_t and the previous hidden state h_{t-1}:

    h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)        (or relu instead of tanh)

The same weights serve every step. Backpropagation through time (BPTT) runs the steps in
reverse: the gradient reaching h_t is the upstream gradient on the output at t plus what
step t + 1 sends back to its h_{t-1}, and the weight gradients are summed over the steps.

Shapes follow ``torch.nn.RNN`` (time-major): ``x (T, N, D)``, ``h0 (N, H)``,
``weight_ih (H, D)``, ``weight_hh (H, H)``, ``bias_ih (H,)``, ``bias_hh (H,)``, ``out (T, N, H)``.
"""

from __future__ import annotations

import numpy as np

from dlbook._recurrent import StackedRecurrent, check_cell_args, check_upstream
from dlbook._validate import as_array, check_shape

__all__ = ["rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward", "RNN"]

_NONLINEARITIES = ("tanh", "relu")


def _check_nonlinearity(nonlinearity: str) -> None:
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")


def rnn_step_forward(x: np.ndarray, h_prev: np.ndarray, weight_ih: np.ndarray,
                     weight_hh: np.ndarray, bias_ih: np.ndarray, bias_hh: np.ndarray,
                     nonlinearity: str = "tanh"):
    """One step of the recurrent layer.

        a      = x W_ih^T + b_ih + h_prev W_hh^T + b_hh
        h_next = tanh(a)          (or relu(a))

    Args:
        x: (N, D) input at this step; h_prev: (N, H) previous hidden state.
        weight_ih: (H, D); weight_hh: (H, H); bias_ih, bias_hh: (H,).
        nonlinearity: ``"tanh"`` or ``"relu"``.
    Returns:
        ``(h_next, cache)`` with ``h_next`` of shape (N, H). Matches ``torch.nn.RNNCell``.
    """
    _check_nonlinearity(nonlinearity)
    x, states, weight_ih, weight_hh, bias_ih, bias_hh, _ = check_cell_args(
        x, {"h_prev": h_prev}, weight_ih, weight_hh, bias_ih, bias_hh, gates=1, sequence=False)
    h_prev = states["h_prev"]
    a = x @ weight_ih.T + bias_ih + h_prev @ weight_hh.T + bias_hh  # (N, H)
    h_next = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0).astype(a.dtype)
    return h_next, (x, h_prev, weight_ih, weight_hh, h_next, nonlinearity)


def rnn_step_backward(dh_next: np.ndarray, cache):
    """Gradients of one step, from dh_next = dL/dh_next.

        da       = dh_next * (1 - h_next^2)      (tanh; relu: dh_next * [a > 0])
        dx       = da W_ih,      dh_prev    = da W_hh
        dW_ih    = da^T x,       dW_hh      = da^T h_prev
        dbias_ih = dbias_hh = sum_n da

    Returns:
        ``(dx, dh_prev, dweight_ih, dweight_hh, dbias_ih, dbias_hh)``.
    """
    x, h_prev, weight_ih, weight_hh, h_next, nonlinearity = cache
    dh_next = as_array(dh_next, "dh_next")
    check_shape(dh_next, h_next.shape, "dh_next")
    if nonlinearity == "tanh":
        da = dh_next * (1 - h_next**2)  # (N, H)
    else:
        da = dh_next * (h_next > 0)  # relu(a) > 0 exactly where a > 0; relu'(0) = 0 as torch
    db = da.sum(axis=0)
    return da @ weight_ih, da @ weight_hh, da.T @ x, da.T @ h_prev, db, db.copy()


def rnn_forward(x: np.ndarray, h0: np.ndarray, weight_ih: np.ndarray, weight_hh: np.ndarray,
                bias_ih: np.ndarray, bias_hh: np.ndarray, nonlinearity: str = "tanh"):
    """Run the recurrent layer over a whole sequence, keeping every step's cache.

        h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),   t = 1..T,  h_0 = h0

    Args:
        x: (T, N, D) inputs, time first; h0: (N, H) initial hidden state.
        weight_ih: (H, D); weight_hh: (H, H); bias_ih, bias_hh: (H,).
        nonlinearity: ``"tanh"`` or ``"relu"``.
    Returns:
        ``(out, h_n, cache)``: ``out`` (T, N, H) holds h_1..h_T, ``h_n`` (N, H) is h_T.
        Matches one layer of ``torch.nn.RNN`` (``out`` and ``h_n[0]``).
    """
    _check_nonlinearity(nonlinearity)
    x, states, weight_ih, weight_hh, bias_ih, bias_hh, hidden = check_cell_args(
        x, {"h0": h0}, weight_ih, weight_hh, bias_ih, bias_hh, gates=1, sequence=True)
    h = states["h0"]
    steps = x.shape[0]
    out = np.empty((steps, x.shape[1], hidden), dtype=np.result_type(x, h, weight_ih))
    caches = []
    for t in range(steps):
        h, step_cache = rnn_step_forward(x[t], h, weight_ih, weight_hh, bias_ih, bias_hh,
                                         nonlinearity)
        out[t] = h
        caches.append(step_cache)
    return out, h, (caches, x.shape, hidden)


def rnn_backward(dout: np.ndarray, cache, dh_n: np.ndarray | None = None):
    """Backpropagation through time for :func:`rnn_forward`.

    Going backwards from t = T, the gradient on h_t is dout[t] plus the gradient that step
    t + 1 sent to its h_prev (``dh_n`` at t = T, zero when None); the weight gradients add up
    over the steps.

    Args:
        dout: (T, N, H) upstream gradient on ``out``; dh_n: (N, H) gradient on ``h_n``, or None.
    Returns:
        ``(dx, dh0, dweight_ih, dweight_hh, dbias_ih, dbias_hh)`` with the shapes of the inputs.
    """
    caches, x_shape, hidden = cache
    steps, batch, _ = x_shape
    dout = as_array(dout, "dout")
    check_shape(dout, (steps, batch, hidden), "dout")
    dh = check_upstream(dh_n, (batch, hidden), "dh_n", dout.dtype)
    dx = np.empty(x_shape, dtype=np.result_type(dout, caches[0][0]))
    dweight_ih = dweight_hh = dbias_ih = dbias_hh = 0
    for t in reversed(range(steps)):
        dx[t], dh, dw_ih, dw_hh, db_ih, db_hh = rnn_step_backward(dout[t] + dh, caches[t])
        dweight_ih, dweight_hh = dweight_ih + dw_ih, dweight_hh + dw_hh
        dbias_ih, dbias_hh = dbias_ih + db_ih, dbias_hh + db_hh
    return dx, dh, dweight_ih, dweight_hh, dbias_ih, dbias_hh


class RNN(StackedRecurrent):
    """A stack of recurrent layers, optionally bidirectional, like ``torch.nn.RNN``.

    ``forward(x, hx=None)`` returns ``(out, h_n)``: ``out`` (T, N, num_directions * H) is the
    last layer's output, ``h_n`` (num_layers * num_directions, N, H) every layer's final state.
    ``backward(dout, dh_n=None)`` returns dx, fills ``grads`` and leaves the gradient on
    ``hx`` in ``dhx``. Parameters are named and initialised as torch's (``weight_ih_l0``,
    ``weight_hh_l0_reverse``, ..., all U(-1/sqrt(H), 1/sqrt(H))). Time-major only; no
    ``batch_first``, ``bias=False`` or ``dropout``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", *, bidirectional: bool = False,
                 rng: np.random.Generator | None = None, dtype=np.float64) -> None:
        _check_nonlinearity(nonlinearity)
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bidirectional=bidirectional,
                         rng=rng, dtype=dtype)

    def _cell_forward(self, x, states, weights):
        out, h_n, cache = rnn_forward(x, states[0], *weights, nonlinearity=self.nonlinearity)
        return out, (h_n,), cache

    def _cell_backward(self, dout, cache, dstates):
        dx, dh0, *dweights = rnn_backward(dout, cache, dstates[0])
        return dx, (dh0,), dweights

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")
