"""The torch oracle shared by the recurrent-layer tests (test_rnn, test_lstm, test_gru).

``torch_recurrent`` builds the torch twin of a layer, copies the weights in, runs it on float64
copies of the inputs and backpropagates random upstream gradients on the output and on every
final state together: L = sum(out * dout) + sum(h_n * dh_n) (+ sum(c_n * dc_n)).
"""

from __future__ import annotations

import numpy as np
import torch


def torch_recurrent(kind: str, params: dict[str, np.ndarray], x: np.ndarray, states, dout,
                    dfinals, *, num_layers: int = 1, bidirectional: bool = False, **options):
    """Run ``torch.nn.<kind>`` with ``params`` (torch's names) and return everything as numpy.

    Args:
        kind: "RNN", "LSTM" or "GRU"; options: e.g. ``nonlinearity="relu"``.
        states: tuple of initial states (L * dirs, N, H) (one for RNN/GRU, two for LSTM) or None.
        dout: upstream gradient on ``out``; dfinals: tuple of gradients on the final states.
    Returns:
        ``(out, finals, dx, dstates, grads)``: grads maps each parameter name to its gradient;
        dstates is None when ``states`` is None.
    """
    hidden = params["weight_hh_l0"].shape[1]
    module = getattr(torch.nn, kind)(x.shape[2], hidden, num_layers=num_layers,
                                     bidirectional=bidirectional, dtype=torch.float64, **options)
    assert sorted(dict(module.named_parameters())) == sorted(params), "parameter names differ"
    with torch.no_grad():
        for name, value in module.named_parameters():
            value.copy_(torch.from_numpy(np.asarray(params[name], dtype=np.float64)))
    x_t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    states_t = None
    if states is not None:
        states_t = tuple(torch.tensor(s, dtype=torch.float64, requires_grad=True) for s in states)
    hx = None if states_t is None else (states_t[0] if len(states_t) == 1 else states_t)
    out, final = module(x_t, hx)
    finals = (final,) if isinstance(final, torch.Tensor) else tuple(final)
    loss = (out * torch.from_numpy(dout)).sum()
    for value, grad in zip(finals, dfinals):
        loss = loss + (value * torch.from_numpy(grad)).sum()
    loss.backward()
    grads = {name: p.grad.numpy() for name, p in module.named_parameters()}
    dstates = None if states_t is None else tuple(s.grad.numpy() for s in states_t)
    return (out.detach().numpy(), tuple(f.detach().numpy() for f in finals), x_t.grad.numpy(),
            dstates, grads)


def layer_params(weights, suffix: str = "", layer: int = 0) -> dict[str, np.ndarray]:
    """``{'weight_ih_l0': ..., ...}`` from ``(weight_ih, weight_hh, bias_ih, bias_hh)``."""
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    return {f"{n}_l{layer}{suffix}": w for n, w in zip(names, weights)}


def random_weights(rng: np.random.Generator, gates: int, features: int, hidden: int,
                   scale: float = 0.5):
    """``(weight_ih, weight_hh, bias_ih, bias_hh)`` drawn from a normal of std ``scale``."""
    rows = gates * hidden
    return (scale * rng.standard_normal((rows, features)),
            scale * rng.standard_normal((rows, hidden)),
            scale * rng.standard_normal(rows), scale * rng.standard_normal(rows))
