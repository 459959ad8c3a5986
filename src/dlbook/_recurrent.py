"""What the recurrent layers share: argument checks and the stacked, bidirectional wrapper.

``dlbook.rnn``, ``dlbook.lstm`` and ``dlbook.gru`` each define one cell (a step pair and a loop
over time). This private module checks their arguments in one place, and holds the base class
that stacks cells into layers and runs a second, time-reversed cell per layer, with parameter
names, shapes, initialisation and output layout as ``torch.nn.RNN``/``LSTM``/``GRU``.
"""

from __future__ import annotations

import numpy as np

from dlbook import init
from dlbook._validate import as_array, check_ndim, check_shape
from dlbook.module import Module


def check_cell_args(x, states: dict, weight_ih, weight_hh, bias_ih, bias_hh, gates: int,
                    sequence: bool):
    """Validate a cell's inputs and return them as arrays, with the hidden size H.

    Args:
        x: (T, N, D) when ``sequence`` else (N, D).
        states: name -> (N, H) state (``{"h0": h0}``, or ``{"h0": h0, "c0": c0}``).
        weight_ih: (gates*H, D); weight_hh: (gates*H, H); bias_ih, bias_hh: (gates*H,).
        gates: how many blocks of H rows the weights stack (RNN 1, GRU 3, LSTM 4).
    Returns:
        ``(x, states, weight_ih, weight_hh, bias_ih, bias_hh, H)`` with arrays from ``as_array``.
    Raises:
        ValueError: naming the argument, with the expected and the received shape.
    """
    x = as_array(x, "x")
    layout = "(T, N, D)" if sequence else "(N, D)"
    check_ndim(x, 3 if sequence else 2, "x", layout)
    if sequence and x.shape[0] == 0:
        raise ValueError(f"x: expected at least one time step (T >= 1), got shape {x.shape}")
    weight_hh = as_array(weight_hh, "weight_hh")
    rows = f"{gates}H" if gates > 1 else "H"
    check_ndim(weight_hh, 2, "weight_hh", f"({rows}, H)")
    hidden = weight_hh.shape[1]
    if weight_hh.shape[0] != gates * hidden:
        raise ValueError(f"weight_hh: expected shape ({rows}, H) = {(gates * hidden, hidden)}, "
                         f"got {weight_hh.shape}")
    weight_ih = as_array(weight_ih, "weight_ih")
    check_ndim(weight_ih, 2, "weight_ih", f"({rows}, D)")
    if weight_ih.shape != (gates * hidden, x.shape[-1]):
        raise ValueError(f"weight_ih: expected shape ({rows}, D) = {(gates * hidden, x.shape[-1])} "
                         f"(x is {x.shape}, weight_hh is {weight_hh.shape}), got {weight_ih.shape}")
    bias_ih = as_array(bias_ih, "bias_ih")
    check_shape(bias_ih, (gates * hidden,), "bias_ih")
    bias_hh = as_array(bias_hh, "bias_hh")
    check_shape(bias_hh, (gates * hidden,), "bias_hh")
    batch = x.shape[-2]
    checked = {}
    for name, value in states.items():
        value = as_array(value, name)
        check_ndim(value, 2, name, "(N, H)")
        check_shape(value, (batch, hidden), name)
        checked[name] = value
    return x, checked, weight_ih, weight_hh, bias_ih, bias_hh, hidden


def check_upstream(value, shape, name: str, dtype) -> np.ndarray:
    """``value`` as an array of ``shape``; None means zeros (no gradient flows in there)."""
    if value is None:
        return np.zeros(shape, dtype=dtype)
    value = as_array(value, name)
    check_shape(value, shape, name)
    return value


class StackedRecurrent(Module):
    """Base class of ``RNN``, ``LSTM`` and ``GRU``: ``num_layers`` cells, optionally both ways.

    Parameters are named as torch names them: ``weight_ih_l{k}``, ``weight_hh_l{k}``,
    ``bias_ih_l{k}``, ``bias_hh_l{k}``, with the suffix ``_reverse`` for the backward direction,
    each drawn from U(-1/sqrt(H), 1/sqrt(H)) as ``torch.nn.RNNBase.reset_parameters`` does.
    Layer k > 0 reads the previous layer's output, (T, N, num_directions * H); a bidirectional
    layer's output concatenates the forward and the reverse direction's hidden states on the
    last axis, forward first, as torch does. Subclasses define the cell through
    ``_cell_forward``/``_cell_backward`` and the number of gate blocks ``_gates``.

    Departures from torch: time-major input only (no ``batch_first``), always with biases, no
    dropout between layers, no ``proj_size``.
    """

    _gates = 1
    _state_names: tuple[str, ...] = ("h",)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 bidirectional: bool = False, rng: np.random.Generator | None = None,
                 dtype=np.float64) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if self.bidirectional else 1
        rng = np.random.default_rng() if rng is None else rng
        bound = 1.0 / np.sqrt(hidden_size)
        rows = self._gates * hidden_size
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            for suffix in self._suffixes():
                shapes = {"weight_ih": (rows, layer_input), "weight_hh": (rows, hidden_size),
                          "bias_ih": (rows,), "bias_hh": (rows,)}
                for kind, shape in shapes.items():
                    value = init.uniform(shape, rng, -bound, bound).astype(dtype)  # as torch's reset_parameters
                    self.params[f"{kind}_l{layer}{suffix}"] = value
        self.dhx = None  # the gradient on the initial states, after backward
        self.zero_grad()

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def _weights(self, layer: int, suffix: str) -> list[np.ndarray]:
        return [self.params[f"{kind}_l{layer}{suffix}"]
                for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    # --- the cell, defined by each subclass ------------------------------------------------

    def _cell_forward(self, x, states, weights):
        """``(out, final_states, cache)`` for one layer and direction (states: a tuple)."""
        raise NotImplementedError

    def _cell_backward(self, dout, cache, dstates):
        """``(dx, dstates0, dweights)`` for one layer and direction."""
        raise NotImplementedError

    # --- the stack -------------------------------------------------------------------------

    def _check_states(self, hx, x: np.ndarray) -> tuple[np.ndarray, ...]:
        shape = (self.num_layers * self.num_directions, x.shape[1], self.hidden_size)
        if hx is None:
            return tuple(np.zeros(shape, dtype=x.dtype) for _ in self._state_names)
        if len(self._state_names) == 1:
            hx = (hx,)
        elif not isinstance(hx, (tuple, list)) or len(hx) != len(self._state_names):
            names = ", ".join(n + "0" for n in self._state_names)
            raise ValueError(f"hx: expected a tuple ({names}), got {type(hx).__name__}")
        checked = []
        for name, value in zip(self._state_names, hx):
            value = as_array(value, f"{name}0")
            check_shape(value, shape, f"{name}0 (num_layers * num_directions, N, H)")
            checked.append(value)
        return tuple(checked)

    def _run_forward(self, x, hx):
        x = as_array(x, "x")
        check_ndim(x, 3, "x", "(T, N, D)")
        if x.shape[2] != self.input_size:
            raise ValueError(f"x: expected shape (T, N, D) with D = input_size = "
                             f"{self.input_size}, got {x.shape}")
        states0 = self._check_states(hx, x)
        finals = [[] for _ in self._state_names]
        caches = []
        layer_input = x
        for layer in range(self.num_layers):
            outs = []
            for direction, suffix in enumerate(self._suffixes()):
                index = layer * self.num_directions + direction
                seq = layer_input if direction == 0 else layer_input[::-1]  # reverse time
                out, final, cache = self._cell_forward(
                    seq, tuple(s[index] for s in states0), self._weights(layer, suffix))
                outs.append(out if direction == 0 else out[::-1])
                caches.append(cache)
                for store, value in zip(finals, final):
                    store.append(value)
            layer_input = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=2)
        self._cache = caches
        return layer_input, tuple(np.stack(f) for f in finals)  # (T, N, dirs*H), (L*dirs, N, H)

    def _run_backward(self, dout, dfinals):
        caches = self._need_cache()
        hidden, dirs = self.hidden_size, self.num_directions
        dout = as_array(dout, "dout")
        check_ndim(dout, 3, "dout", "(T, N, num_directions * H)")
        shape = (self.num_layers * dirs, dout.shape[1], hidden)
        dfinals = [check_upstream(d, shape, f"d{name}_n", dout.dtype)
                   for d, name in zip(dfinals, self._state_names)]
        dstates0 = [np.zeros(shape, dtype=dout.dtype) for _ in self._state_names]
        dlayer = dout
        for layer in reversed(range(self.num_layers)):
            dinput = None
            for direction, suffix in enumerate(self._suffixes()):
                index = layer * dirs + direction
                dpart = dlayer[:, :, direction * hidden:(direction + 1) * hidden]
                if direction == 1:
                    dpart = dpart[::-1]
                dx, d0, dweights = self._cell_backward(dpart, caches[index],
                                                       tuple(d[index] for d in dfinals))
                if direction == 1:
                    dx = dx[::-1]
                dinput = dx if dinput is None else dinput + dx
                for store, value in zip(dstates0, d0):
                    store[index] = value
                for kind, grad in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), dweights):
                    self.grads[f"{kind}_l{layer}{suffix}"] = grad
            dlayer = dinput
        return dlayer, tuple(dstates0)

    def forward(self, x: np.ndarray, hx: np.ndarray | None = None):
        """``(out, h_n)`` for inputs ``x`` (T, N, D) and initial states ``hx`` (L * dirs, N, H).

        For layers with one state (RNN, GRU); the LSTM, with two, overrides it.
        """
        out, (h_n,) = self._run_forward(x, hx)
        return out, h_n

    def __call__(self, x: np.ndarray, hx=None):
        return self.forward(x, hx)

    def backward(self, dout: np.ndarray, dh_n: np.ndarray | None = None) -> np.ndarray:
        """Return dL/dx for gradients on ``out`` and (optionally) ``h_n``; fill grads, dhx."""
        dx, (self.dhx,) = self._run_backward(dout, (dh_n,))
        return dx

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text
