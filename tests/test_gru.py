"""dlbook.gru against torch.nn.GRU in float64, and its steps against central differences."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import TIGHT
from dlbook.gradcheck import GradientCheckError, check_gradients
from dlbook.gru import GRU, gru_backward, gru_forward, gru_step_backward, gru_step_forward
from recurrent_oracle import layer_params, random_weights, torch_recurrent

SHAPES = [(5, 3, 4, 6), (1, 2, 3, 4), (4, 1, 2, 3), (1, 1, 1, 1)]  # (T, N, D, H)
NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def problem(rng, steps, batch, features, hidden):
    x, h0 = rng.standard_normal((steps, batch, features)), rng.standard_normal((batch, hidden))
    weights = random_weights(rng, 3, features, hidden)
    dout, dh_n = rng.standard_normal((steps, batch, hidden)), rng.standard_normal((batch, hidden))
    return x, h0, weights, dout, dh_n


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_backward_match_torch(shape, rng):
    x, h0, weights, dout, dh_n = problem(rng, *shape)
    out, h_n, cache = gru_forward(x, h0, *weights)
    dx, dh0, *dweights = gru_backward(dout, cache, dh_n)
    out_t, (h_n_t,), dx_t, (dh0_t,), grads = torch_recurrent(
        "GRU", layer_params(weights), x, (h0[None],), dout, (dh_n[None],))
    np.testing.assert_allclose(out, out_t, **TIGHT)
    np.testing.assert_allclose(h_n, h_n_t[0], **TIGHT)
    np.testing.assert_allclose(dx, dx_t, **TIGHT)
    np.testing.assert_allclose(dh0, dh0_t[0], **TIGHT)
    for name, grad in zip(NAMES, dweights):
        np.testing.assert_allclose(grad, grads[name], **TIGHT, err_msg=name)


def test_reset_gate_before_the_product_is_caught(rng):
    # Negative case: Cho et al.'s original candidate, tanh(W_in x + W_hn (r * h) + b), is a
    # different function from torch's tanh(W_in x + b_in + r * (W_hn h + b_hn)).
    x, h0, (w_ih, w_hh, b_ih, b_hh), dout, dh_n = problem(rng, 1, 2, 3, 4)
    hidden = 4
    out_t, *_ = torch_recurrent("GRU", layer_params((w_ih, w_hh, b_ih, b_hh)), x, (h0[None],),
                                dout, (dh_n[None],))
    gi = x[0] @ w_ih.T + b_ih
    gh = h0 @ w_hh.T + b_hh
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    r = sig(gi[:, :hidden] + gh[:, :hidden])
    z = sig(gi[:, hidden:2 * hidden] + gh[:, hidden:2 * hidden])
    n = np.tanh(gi[:, 2 * hidden:] + (r * h0) @ w_hh[2 * hidden:].T + b_hh[2 * hidden:])
    with pytest.raises(AssertionError):
        np.testing.assert_allclose((1 - z) * n + z * h0, out_t[0], **TIGHT)


def test_ignoring_the_final_state_gradient_is_caught(rng):
    x, h0, weights, dout, dh_n = problem(rng, 4, 2, 3, 5)
    _, _, cache = gru_forward(x, h0, *weights)
    ours = gru_backward(dout, cache)
    *_, grads = torch_recurrent("GRU", layer_params(weights), x, (h0[None],), dout, (dh_n[None],))
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(ours[3], grads["weight_hh_l0"], **TIGHT)


def test_step_central_differences(rng):
    x, h_prev = rng.standard_normal((3, 4)), rng.standard_normal((3, 5))
    weights = random_weights(rng, 3, 4, 5)
    h_next, cache = gru_step_forward(x, h_prev, *weights)
    dh_next = rng.standard_normal(h_next.shape)
    grads = gru_step_backward(dh_next, cache)
    names = ("x", "h_prev", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
    inputs = dict(zip(names, (x, h_prev, *weights)))
    step = lambda **kw: gru_step_forward(**kw)[0]  # noqa: E731
    check_gradients(step, inputs, dict(zip(names, grads)), dh_next)
    wrong = dict(zip(names, grads))
    wrong["bias_hh"] = grads[4]  # dbias_ih in its place: differs in the n block (r * ...)
    with pytest.raises(GradientCheckError, match="bias_hh"):
        check_gradients(step, inputs, wrong, dh_next)


def test_sequence_central_differences(rng):
    x, h0, weights, dout, _ = problem(rng, 3, 2, 2, 3)
    _, _, cache = gru_forward(x, h0, *weights)
    grads = gru_backward(dout, cache)
    names = ("x", "h0", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
    check_gradients(lambda **kw: gru_forward(**kw)[0], dict(zip(names, (x, h0, *weights))),
                    dict(zip(names, grads)), dout)


def test_arguments_are_not_modified(rng):
    x, h0, weights, dout, dh_n = problem(rng, 3, 2, 3, 4)
    args = (x, h0, *weights, dout, dh_n)
    copies = [a.copy() for a in args]
    _, _, cache = gru_forward(x, h0, *weights)
    gru_backward(dout, cache, dh_n)
    for a, b in zip(args, copies):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad, match", [
    ({"x": np.zeros((2, 3))}, "x"),
    ({"h0": np.zeros((3, 4))}, "h0"),
    ({"weight_ih": np.zeros((12, 2))}, "weight_ih"),
    ({"weight_hh": np.zeros((16, 4))}, "weight_hh"),
    ({"bias_ih": np.zeros(16)}, "bias_ih"),
    ({"bias_hh": np.zeros(4)}, "bias_hh"),
])
def test_bad_arguments_raise(bad, match):
    args = dict(x=np.zeros((3, 2, 3)), h0=np.zeros((2, 4)), weight_ih=np.zeros((12, 3)),
                weight_hh=np.zeros((12, 4)), bias_ih=np.zeros(12), bias_hh=np.zeros(12))
    gru_forward(**args)  # the good arguments pass
    with pytest.raises(ValueError, match=match):
        gru_forward(**(args | bad))


def test_backward_bad_upstream_shapes_raise():
    out, _, cache = gru_forward(np.zeros((3, 2, 3)), np.zeros((2, 4)), np.zeros((12, 3)),
                                np.zeros((12, 4)), np.zeros(12), np.zeros(12))
    with pytest.raises(ValueError, match="dout"):
        gru_backward(np.zeros((2, 2, 4)), cache)
    with pytest.raises(ValueError, match="dh_n"):
        gru_backward(np.zeros_like(out), cache, np.zeros((1, 2, 4)))


@pytest.mark.parametrize("num_layers, bidirectional, with_hx", [
    (1, False, True), (2, False, True), (2, True, True), (1, True, False),
])
def test_class_matches_torch(num_layers, bidirectional, with_hx, rng):
    steps, batch, features, hidden = 4, 3, 5, 6
    model = GRU(features, hidden, num_layers, bidirectional=bidirectional, rng=rng)
    dirs = 2 if bidirectional else 1
    x = rng.standard_normal((steps, batch, features))
    hx = rng.standard_normal((num_layers * dirs, batch, hidden)) if with_hx else None
    out, h_n = model(x, hx)
    dout, dh_n = rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)
    dx = model.backward(dout, dh_n)
    out_t, (h_n_t,), dx_t, dhx_t, grads = torch_recurrent(
        "GRU", model.params, x, None if hx is None else (hx,), dout, (dh_n,),
        num_layers=num_layers, bidirectional=bidirectional)
    for ours, ref in ((out, out_t), (h_n, h_n_t), (dx, dx_t)):
        np.testing.assert_allclose(ours, ref, **TIGHT)
    if with_hx:
        np.testing.assert_allclose(model.dhx, dhx_t[0], **TIGHT)
    assert sorted(model.grads) == sorted(grads)
    for name, grad in grads.items():
        np.testing.assert_allclose(model.grads[name], grad, **TIGHT, err_msg=name)
    with pytest.raises(AssertionError):  # negative case: a transposed gradient would not pass
        np.testing.assert_allclose(model.grads["weight_hh_l0"].reshape(3, hidden, hidden)
                                   .transpose(0, 2, 1).reshape(-1, hidden),
                                   grads["weight_hh_l0"], **TIGHT)


def test_class_parameters_as_torch(rng):
    import torch

    model = GRU(3, 5, num_layers=2, bidirectional=True, rng=rng)
    twin = torch.nn.GRU(3, 5, num_layers=2, bidirectional=True)
    shapes = {name: tuple(p.shape) for name, p in twin.named_parameters()}
    assert {name: p.shape for name, p in model.params.items()} == shapes
    assert model.num_parameters() == sum(p.numel() for p in twin.parameters())
    assert all(np.abs(p).max() <= 1 / np.sqrt(5) for p in model.params.values())
