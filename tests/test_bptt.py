"""dlbook.bptt.truncated_bptt: full BPTT when k >= T, torch with .detach() at chunk boundaries."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TIGHT
from dlbook.bptt import truncated_bptt
from dlbook.gru import GRU
from dlbook.lstm import LSTM
from dlbook.rnn import RNN

CLASSES = {"RNN": RNN, "GRU": GRU, "LSTM": LSTM}


def mse(targets):
    """loss_fn for a squared error against ``targets`` (T, N, H): 0.5 * sum((out - y)^2)."""
    def loss_fn(out, start):
        diff = out - targets[start:start + out.shape[0]]
        return 0.5 * float(np.sum(diff**2)), diff
    return loss_fn


def setup(kind, rng, steps=7, num_layers=2):
    model = CLASSES[kind](3, 4, num_layers=num_layers, rng=rng)
    x = rng.standard_normal((steps, 2, 3))
    targets = rng.standard_normal((steps, 2, 4))
    return model, x, targets


def full_bptt(model, x, targets):
    out, _ = model(x)
    model.backward(out - targets)
    return 0.5 * np.sum((out - targets) ** 2), {k: v.copy() for k, v in model.grads.items()}


def torch_truncated(kind, model, x, targets, k):
    """The torch training-loop idiom: detach the state between chunks, sum the chunks' losses."""
    twin = getattr(torch.nn, kind)(3, 4, num_layers=model.num_layers, dtype=torch.float64)
    with torch.no_grad():
        for name, p in twin.named_parameters():
            p.copy_(torch.from_numpy(model.params[name]))
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(targets)
    state, total = None, 0.0
    for start in range(0, x.shape[0], k):
        if state is not None:
            state = tuple(s.detach() for s in state) if kind == "LSTM" else state.detach()
        out, state = twin(x_t[start:start + k], state)
        loss = 0.5 * ((out - y_t[start:start + k]) ** 2).sum()
        loss.backward()  # gradients accumulate in .grad over the chunks
        total += float(loss.detach())
    return total, {name: p.grad.numpy() for name, p in twin.named_parameters()}


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("k", [7, 50])
def test_k_at_least_t_is_full_bptt(kind, k, rng):
    model, x, targets = setup(kind, rng)
    loss_full, grads_full = full_bptt(model, x, targets)
    result = truncated_bptt(model, x, k, mse(targets))
    np.testing.assert_allclose(result.loss, loss_full, **TIGHT)
    for name, grad in grads_full.items():
        np.testing.assert_allclose(result.grads[name], grad, **TIGHT, err_msg=name)
        np.testing.assert_array_equal(model.grads[name], result.grads[name])


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("k", [1, 3])
def test_k_below_t_matches_torch_with_detach(kind, k, rng):
    model, x, targets = setup(kind, rng)
    result = truncated_bptt(model, x, k, mse(targets))
    loss_t, grads_t = torch_truncated(kind, model, x, targets, k)
    np.testing.assert_allclose(result.loss, loss_t, **TIGHT)
    for name, grad in grads_t.items():
        np.testing.assert_allclose(result.grads[name], grad, **TIGHT, err_msg=name)
    # The forward pass is the full sequence's: the state carries over between chunks.
    out_full, state_full = model(x)
    np.testing.assert_allclose(result.out, out_full, **TIGHT)
    finals = state_full if kind == "LSTM" else (state_full,)
    ours = result.state if kind == "LSTM" else (result.state,)
    for a, b in zip(ours, finals):
        np.testing.assert_allclose(a, b, **TIGHT)
    # Negative case: truncation changes the gradient, so full BPTT does not match it.
    _, grads_full = full_bptt(model, x, targets)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(grads_full["weight_hh_l0"], grads_t["weight_hh_l0"], **TIGHT)


def test_initial_state_is_used(rng):
    model, x, targets = setup("RNN", rng, num_layers=1)
    hx = rng.standard_normal((1, 2, 4))
    with_hx = truncated_bptt(model, x, 3, mse(targets), hx)
    out_full, _ = model(x, hx)
    np.testing.assert_allclose(with_hx.out, out_full, **TIGHT)


def test_bad_arguments_raise(rng):
    model, x, targets = setup("LSTM", rng, num_layers=1)
    for k in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match="k"):
            truncated_bptt(model, x, k, mse(targets))
    with pytest.raises(ValueError, match="bidirectional"):
        truncated_bptt(LSTM(3, 4, bidirectional=True, rng=rng), x, 3, mse(targets))
    with pytest.raises(ValueError, match="layer"):
        truncated_bptt(object(), x, 3, mse(targets))
    with pytest.raises(ValueError, match="x"):
        truncated_bptt(model, x[0], 3, mse(targets))
