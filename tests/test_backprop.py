"""dlbook.backprop: the hand-derived two-layer sigmoid network against torch.autograd and central differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TIGHT
from dlbook.backprop import (PARAM_NAMES, bp_learning_rule, init_two_layer_sigmoid, two_layer_sigmoid_backward,
                             two_layer_sigmoid_deltas, two_layer_sigmoid_forward)
from dlbook.gradcheck import GradientCheckError, check_gradients


def torch_reference(x, d, params):
    t = {k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in params.items()}
    x_t = torch.from_numpy(np.array(x, copy=True)).requires_grad_(True)
    h = torch.sigmoid(x_t @ t["w0"].T + t["b0"] - t["theta0"])
    o = torch.sigmoid(h @ t["w1"].T + t["b1"] - t["theta1"])
    E = 0.5 * ((torch.from_numpy(d) - o) ** 2).sum()
    E.backward()
    return E.item(), {k: v.grad.numpy() for k, v in t.items()} | {"x": x_t.grad.numpy()}


@pytest.mark.parametrize("batch", [None, 1, 5])
def test_gradients_match_torch(batch, rng):
    n, m, l = 3, 4, 2  # noqa: E741
    params = init_two_layer_sigmoid(n, m, l, rng=rng)
    shape_x = (n,) if batch is None else (batch, n)
    x = rng.standard_normal(shape_x)
    d = rng.uniform(0, 1, shape_x[:-1] + (l,))
    E, cache = two_layer_sigmoid_forward(x, d, params)
    grads = two_layer_sigmoid_backward(cache)
    E_t, grads_t = torch_reference(x, d, params)
    assert E == pytest.approx(E_t, rel=1e-12)
    for name, g in grads_t.items():
        assert grads[name].shape == g.shape, name
        np.testing.assert_allclose(grads[name], g, **TIGHT, err_msg=name)
    # The learning rule is one step against the gradient: Delta = -eta dE/dparam.
    updates = bp_learning_rule(cache, eta=0.3)
    for name in PARAM_NAMES:
        np.testing.assert_allclose(updates[name], -0.3 * grads_t[name], **TIGHT, err_msg=name)
    # Thresholds only undo biases: dE/dtheta = -dE/db.
    np.testing.assert_allclose(grads["theta0"], -grads["b0"], **TIGHT)


def test_deltas_are_minus_dE_dnet_and_central_differences_agree(rng):
    params = init_two_layer_sigmoid(3, 4, 2, rng=rng)
    x, d = rng.standard_normal(3), np.array([0.2, 0.9])
    E, cache = two_layer_sigmoid_forward(x, d, params)
    delta_o, delta_y = two_layer_sigmoid_deltas(cache)
    assert delta_o.shape == (2,) and delta_y.shape == (4,)
    grads = two_layer_sigmoid_backward(cache)

    def f(x, **p):
        return two_layer_sigmoid_forward(x, d, p)[0]

    check_gradients(f, {"x": x} | params, grads, rtol=1e-7, atol=1e-10)
    # delta_o = -dE/dnet1 = dE/dtheta1 for one sample.
    np.testing.assert_allclose(delta_o, grads["theta1"], **TIGHT)


def test_the_printed_bias_rules_fail_the_check(rng):
    # The deep-learning textbook chapter prints Delta b_hidden = eta delta_o (5-19) and Delta b_out = eta delta_y (5-21): swapped.
    # With m = l the shapes agree, so only the values can tell; the gradient check does.
    params = init_two_layer_sigmoid(3, 2, 2, rng=rng)
    x, d = rng.standard_normal(3), np.array([0.1, 0.8])
    _, cache = two_layer_sigmoid_forward(x, d, params)
    delta_o, delta_y = two_layer_sigmoid_deltas(cache)

    def f(x, **p):
        return two_layer_sigmoid_forward(x, d, p)[0]

    with pytest.raises(GradientCheckError, match="'b0'"):
        check_gradients(f, {"x": x} | params, {"b0": -delta_o}, rtol=1e-7, atol=1e-10)
    with pytest.raises(GradientCheckError, match="'b1'"):
        check_gradients(f, {"x": x} | params, {"b1": -delta_y}, rtol=1e-7, atol=1e-10)


def test_bad_input(rng):
    params = init_two_layer_sigmoid(3, 4, 2, rng=rng)
    with pytest.raises(ValueError, match=r"x: expected shape \(n,\) or \(N, n\) with n = 3, got \(5,\)"):
        two_layer_sigmoid_forward(np.ones(5), np.ones(2), params)
    with pytest.raises(ValueError, match=r"d: expected shape \(1, 2\), got \(1, 3\)"):
        two_layer_sigmoid_forward(np.ones(3), np.ones(3), params)
    with pytest.raises(ValueError, match=r"missing \['theta1'\]"):
        two_layer_sigmoid_forward(np.ones(3), np.ones(2), {k: v for k, v in params.items() if k != "theta1"})
    with pytest.raises(ValueError, match=r"b0: expected shape \(4,\), got \(2,\)"):
        two_layer_sigmoid_forward(np.ones(3), np.ones(2), params | {"b0": np.ones(2)})
    with pytest.raises(ValueError, match="eta"):
        bp_learning_rule(two_layer_sigmoid_forward(np.ones(3), np.ones(2), params)[1], eta=0.0)
    with pytest.raises(ValueError, match="m: expected a positive layer size"):
        init_two_layer_sigmoid(3, 0, 2, rng=rng)


@pytest.mark.parametrize("batch", [False, True])
def test_cross_entropy_gradients_match_torch(batch, rng):
    params = init_two_layer_sigmoid(3, 4, 2, rng=rng)
    x = rng.standard_normal((5, 3) if batch else 3)
    d = rng.uniform(0, 1, (5, 2) if batch else 2)
    E, cache = two_layer_sigmoid_forward(x, d, params, loss="cross_entropy")
    grads = two_layer_sigmoid_backward(cache)
    t = {k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in params.items()}
    x_t = torch.from_numpy(np.atleast_2d(x).copy()).requires_grad_(True)
    h_t = torch.sigmoid(x_t @ t["w0"].T + t["b0"] - t["theta0"])
    o_t = torch.sigmoid(h_t @ t["w1"].T + t["b1"] - t["theta1"])
    E_t = torch.nn.functional.binary_cross_entropy(o_t, torch.from_numpy(np.atleast_2d(d)), reduction="sum")
    E_t.backward()
    np.testing.assert_allclose(E, E_t.item(), rtol=1e-12)
    for name in PARAM_NAMES:
        np.testing.assert_allclose(grads[name], t[name].grad.numpy(), rtol=1e-10, atol=1e-12)
    # The squared-error deltas are not the cross-entropy's: the check can fail.
    _, squared = two_layer_sigmoid_forward(x, d, params)
    assert not np.allclose(two_layer_sigmoid_backward(squared)["w1"], t["w1"].grad.numpy())
    with pytest.raises(ValueError, match="loss"):
        two_layer_sigmoid_forward(x, d, params, loss="hinge")
