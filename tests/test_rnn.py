"""dlbook.rnn against torch.nn.RNN in float64, and its steps against central differences."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import TIGHT
from dlbook.gradcheck import GradientCheckError, check_gradients
from dlbook.rnn import RNN, rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward
from recurrent_oracle import layer_params, random_weights, torch_recurrent

SHAPES = [(5, 3, 4, 6), (1, 2, 3, 4), (4, 1, 2, 3), (1, 1, 1, 1)]  # (T, N, D, H)


def run_ours(x, h0, weights, dout, dh_n, nonlinearity):
    out, h_n, cache = rnn_forward(x, h0, *weights, nonlinearity=nonlinearity)
    return out, h_n, rnn_backward(dout, cache, dh_n)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_backward_match_torch(shape, nonlinearity, rng):
    steps, batch, features, hidden = shape
    x = rng.standard_normal((steps, batch, features))
    h0 = rng.standard_normal((batch, hidden))
    weights = random_weights(rng, 1, features, hidden)
    dout, dh_n = rng.standard_normal((steps, batch, hidden)), rng.standard_normal((batch, hidden))
    out, h_n, (dx, dh0, *dweights) = run_ours(x, h0, weights, dout, dh_n, nonlinearity)
    out_t, (h_n_t,), dx_t, (dh0_t,), grads = torch_recurrent(
        "RNN", layer_params(weights), x, (h0[None],), dout, (dh_n[None],),
        nonlinearity=nonlinearity)
    np.testing.assert_allclose(out, out_t, **TIGHT)
    np.testing.assert_allclose(h_n, h_n_t[0], **TIGHT)
    np.testing.assert_allclose(dx, dx_t, **TIGHT)
    np.testing.assert_allclose(dh0, dh0_t[0], **TIGHT)
    for name, grad in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), dweights):
        np.testing.assert_allclose(grad, grads[name], **TIGHT, err_msg=name)


def test_ignoring_the_final_state_gradient_is_caught(rng):
    # Negative case: drop dh_n (the path from h_n) and the comparison with torch fails.
    x, h0 = rng.standard_normal((4, 2, 3)), rng.standard_normal((2, 5))
    weights = random_weights(rng, 1, 3, 5)
    dout, dh_n = rng.standard_normal((4, 2, 5)), rng.standard_normal((2, 5))
    *_, (dx, dh0, dw_ih, dw_hh, db_ih, db_hh) = run_ours(x, h0, weights, dout, None, "tanh")
    *_, grads = torch_recurrent("RNN", layer_params(weights), x, (h0[None],), dout, (dh_n[None],))
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(dw_hh, grads["weight_hh_l0"], **TIGHT)


def test_dh_n_default_is_zero(rng):
    x, h0 = rng.standard_normal((3, 2, 3)), rng.standard_normal((2, 4))
    weights = random_weights(rng, 1, 3, 4)
    dout = rng.standard_normal((3, 2, 4))
    *_, default = run_ours(x, h0, weights, dout, None, "tanh")
    *_, zeros = run_ours(x, h0, weights, dout, np.zeros((2, 4)), "tanh")
    for a, b in zip(default, zeros):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_step_central_differences(nonlinearity, rng):
    x, h_prev = rng.standard_normal((3, 4)), rng.standard_normal((3, 5))
    weights = random_weights(rng, 1, 4, 5)
    h_next, cache = rnn_step_forward(x, h_prev, *weights, nonlinearity=nonlinearity)
    dh_next = rng.standard_normal(h_next.shape)
    grads = rnn_step_backward(dh_next, cache)
    names = ("x", "h_prev", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
    inputs = dict(zip(names, (x, h_prev, *weights)))

    def step(**kw):
        return rnn_step_forward(**kw, nonlinearity=nonlinearity)[0]

    check_gradients(step, inputs, dict(zip(names, grads)), dh_next)
    wrong = dict(zip(names, grads))
    wrong["weight_hh"] = grads[3] + 1e-3 * rng.standard_normal(grads[3].shape)
    with pytest.raises(GradientCheckError, match="weight_hh"):
        check_gradients(step, inputs, wrong, dh_next)


def test_sequence_central_differences(rng):
    x, h0 = rng.standard_normal((3, 2, 3)), rng.standard_normal((2, 4))
    weights = random_weights(rng, 1, 3, 4)
    dout = rng.standard_normal((3, 2, 4))
    _, _, grads = run_ours(x, h0, weights, dout, None, "tanh")
    names = ("x", "h0", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
    check_gradients(lambda **kw: rnn_forward(**kw)[0], dict(zip(names, (x, h0, *weights))),
                    dict(zip(names, grads)), dout)


def test_source_worked_example():
    # The chapter's two-step example: state size 2, input size 1, W_rnn stacked as
    # [W_state; w_input] in row-vector form, h_t = tanh([h_{t-1}, x_t] W_rnn + b); published states.
    w_rnn = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    weight_hh, weight_ih = w_rnn[:2].T, w_rnn[2:].T  # torch's layout: (H, H), (H, D)
    bias = np.array([0.1, -0.1])
    x = np.array([1.0, 2.0]).reshape(2, 1, 1)
    out, _, _ = rnn_forward(x, np.zeros((1, 2)), weight_ih, weight_hh, bias, np.zeros(2))
    np.testing.assert_allclose(out[:, 0], [[0.53704957, 0.46211716], [0.85973818, 0.88366641]],
                               atol=5e-9)
    outputs = out[:, 0] @ np.array([1.0, 2.0]) + 0.1
    np.testing.assert_allclose(outputs, [1.56128388, 2.72707101], atol=5e-9)


def test_arguments_are_not_modified(rng):
    x, h0 = rng.standard_normal((3, 2, 3)), rng.standard_normal((2, 4))
    weights = random_weights(rng, 1, 3, 4)
    dout, dh_n = rng.standard_normal((3, 2, 4)), rng.standard_normal((2, 4))
    args = (x, h0, *weights, dout, dh_n)
    copies = [a.copy() for a in args]
    run_ours(x, h0, weights, dout, dh_n, "tanh")
    for a, b in zip(args, copies):
        np.testing.assert_array_equal(a, b)


def test_float32_stays_float32(rng):
    x = rng.standard_normal((3, 2, 3), dtype=np.float32)
    h0 = np.zeros((2, 4), np.float32)
    weights = [w.astype(np.float32) for w in random_weights(rng, 1, 3, 4)]
    out, h_n, cache = rnn_forward(x, h0, *weights)
    grads = rnn_backward(np.ones_like(out), cache)
    assert out.dtype == h_n.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads)


@pytest.mark.parametrize("bad, match", [
    ({"x": np.zeros((3, 4))}, "x"),
    ({"x": np.zeros((0, 2, 3))}, "x"),
    ({"h0": np.zeros((2, 5))}, "h0"),
    ({"h0": np.zeros((3, 4))}, "h0"),
    ({"weight_ih": np.zeros((4, 2))}, "weight_ih"),
    ({"weight_hh": np.zeros((4, 5))}, "weight_hh"),
    ({"bias_ih": np.zeros(5)}, "bias_ih"),
    ({"bias_hh": np.zeros((1, 4))}, "bias_hh"),
    ({"nonlinearity": "sigmoid"}, "nonlinearity"),
])
def test_bad_arguments_raise(bad, match, rng):
    args = dict(x=np.zeros((3, 2, 3)), h0=np.zeros((2, 4)), weight_ih=np.zeros((4, 3)),
                weight_hh=np.zeros((4, 4)), bias_ih=np.zeros(4), bias_hh=np.zeros(4))
    rnn_forward(**args)  # the good arguments pass
    with pytest.raises(ValueError, match=match):
        rnn_forward(**(args | bad))


def test_backward_bad_upstream_shapes_raise(rng):
    out, _, cache = rnn_forward(np.zeros((3, 2, 3)), np.zeros((2, 4)), np.zeros((4, 3)),
                                np.zeros((4, 4)), np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="dout"):
        rnn_backward(np.zeros((3, 2, 5)), cache)
    with pytest.raises(ValueError, match="dh_n"):
        rnn_backward(np.zeros_like(out), cache, np.zeros((2, 5)))


@pytest.mark.parametrize("num_layers, bidirectional, nonlinearity, with_hx", [
    (1, False, "tanh", True), (2, False, "relu", True), (3, True, "tanh", True),
    (1, True, "relu", False), (2, True, "tanh", False),
])
def test_class_matches_torch(num_layers, bidirectional, nonlinearity, with_hx, rng):
    steps, batch, features, hidden = 4, 3, 5, 6
    model = RNN(features, hidden, num_layers, nonlinearity, bidirectional=bidirectional, rng=rng)
    dirs = 2 if bidirectional else 1
    x = rng.standard_normal((steps, batch, features))
    hx = rng.standard_normal((num_layers * dirs, batch, hidden)) if with_hx else None
    out, h_n = model(x, hx)
    dout, dh_n = rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)
    dx = model.backward(dout, dh_n)
    out_t, (h_n_t,), dx_t, dhx_t, grads = torch_recurrent(
        "RNN", model.params, x, None if hx is None else (hx,), dout, (dh_n,),
        num_layers=num_layers, bidirectional=bidirectional, nonlinearity=nonlinearity)
    assert out.shape == (steps, batch, dirs * hidden)
    np.testing.assert_allclose(out, out_t, **TIGHT)
    np.testing.assert_allclose(h_n, h_n_t, **TIGHT)
    np.testing.assert_allclose(dx, dx_t, **TIGHT)
    if with_hx:
        np.testing.assert_allclose(model.dhx, dhx_t[0], **TIGHT)
    assert sorted(model.grads) == sorted(grads)
    for name, grad in grads.items():
        np.testing.assert_allclose(model.grads[name], grad, **TIGHT, err_msg=name)
    # Negative case: the reverse direction's gradients do not stand in for the forward ones.
    if bidirectional:
        with pytest.raises(AssertionError):
            np.testing.assert_allclose(model.grads["weight_hh_l0_reverse"], grads["weight_hh_l0"],
                                       **TIGHT)


def test_class_parameters_as_torch(rng):
    import torch

    model = RNN(3, 5, num_layers=2, bidirectional=True, rng=rng)
    twin = torch.nn.RNN(3, 5, num_layers=2, bidirectional=True)
    shapes = {name: tuple(p.shape) for name, p in twin.named_parameters()}
    assert {name: p.shape for name, p in model.params.items()} == shapes
    assert model.num_parameters() == sum(p.numel() for p in twin.parameters())
    bound = 1 / np.sqrt(5)
    assert all(np.abs(p).max() <= bound for p in model.params.values())
    assert "bidirectional=True" in repr(model)


def test_class_bad_arguments_raise(rng):
    with pytest.raises(ValueError, match="nonlinearity"):
        RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="hidden_size"):
        RNN(3, 0)
    model = RNN(3, 4, num_layers=2, rng=rng)
    with pytest.raises(ValueError, match="x"):
        model(np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="h0"):
        model(np.zeros((2, 5, 3)), np.zeros((1, 5, 4)))
    with pytest.raises(RuntimeError, match="before forward"):
        model.backward(np.zeros((2, 5, 4)))


def test_bidirectional_is_keyword_only(rng):
    # torch's fifth positional argument of RNN (fourth of LSTM/GRU) is bias: a positional True
    # here must not silently mean something else.
    from dlbook.gru import GRU
    from dlbook.lstm import LSTM

    with pytest.raises(TypeError):
        RNN(3, 4, 1, "tanh", True)
    with pytest.raises(TypeError):
        LSTM(3, 4, 1, True)
    with pytest.raises(TypeError):
        GRU(3, 4, 1, True)
    assert RNN(3, 4, bidirectional=True, rng=rng).num_directions == 2


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_classes_leave_their_arguments_unmodified(kind, rng):
    # The classes, stacked and bidirectional, never write into x, hx, dout or the final-state
    # gradients (the functions are tested for this above and in test_lstm/test_gru).
    from dlbook.gru import GRU
    from dlbook.lstm import LSTM

    cls = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}[kind]
    model = cls(3, 4, num_layers=2, bidirectional=True, rng=rng)
    x = rng.standard_normal((5, 2, 3))
    hx = rng.standard_normal((4, 2, 4))
    hx = (hx, rng.standard_normal((4, 2, 4))) if kind == "LSTM" else hx
    out, final = model(x, hx)
    dout = rng.standard_normal(out.shape)
    dfinal = ((rng.standard_normal(final[0].shape), rng.standard_normal(final[1].shape))
              if kind == "LSTM" else (rng.standard_normal(final.shape),))
    args = [x, *(hx if kind == "LSTM" else (hx,)), dout, *dfinal]
    copies = [a.copy() for a in args]
    model.backward(dout, *dfinal)

    def unchanged():
        for a, b in zip(args, copies):
            np.testing.assert_array_equal(a, b)

    unchanged()
    # Negative case: an in-place update of the caller's gradient (the CS231n fork's
    # `dnext_c +=`) is caught by the same comparison.
    dout += 1.0
    with pytest.raises(AssertionError):
        unchanged()
