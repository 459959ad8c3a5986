"""dlbook.linear against torch.nn.functional.linear in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TIGHT, torch_forward_backward
from dlbook.gradcheck import GradientCheckError, check_gradients
from dlbook.linear import Linear, linear_backward, linear_forward


@pytest.mark.parametrize("shape_x, d_out, bias", [((1, 3), 2, True), ((7, 5), 4, True), ((7, 5), 3, False),
                                                  ((2, 3, 5), 4, True)])
def test_matches_torch(shape_x, d_out, bias, rng):
    x = rng.standard_normal(shape_x)
    w = rng.standard_normal((d_out, shape_x[-1]))
    b = rng.standard_normal(d_out) if bias else None
    out, cache = linear_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = linear_backward(dout, cache)
    inputs = {"x": x, "w": w} | ({"b": b} if bias else {})
    out_t, g = torch_forward_backward(lambda **t: F.linear(t["x"], t["w"], t.get("b")), inputs, dout)
    np.testing.assert_allclose(out, out_t, **TIGHT)
    np.testing.assert_allclose(dx, g["x"], **TIGHT)
    np.testing.assert_allclose(dw, g["w"], **TIGHT)
    if bias:
        np.testing.assert_allclose(db, g["b"], **TIGHT)
    else:
        assert db is None


def test_central_differences_and_a_transposed_bug(rng):
    x, w, b = rng.standard_normal((4, 3)), rng.standard_normal((2, 3)), rng.standard_normal(2)
    out, cache = linear_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = linear_backward(dout, cache)
    f = lambda x, w, b: linear_forward(x, w, b)[0]  # noqa: E731
    check_gradients(f, {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}, dout)
    # A classic slip, x^T dout instead of dout^T x, has the transposed shape: caught by shape.
    with pytest.raises(ValueError, match="analytic"):
        check_gradients(f, {"x": x, "w": w, "b": b}, {"w": x.T @ dout}, dout)
    # Summing the bias gradient over the wrong axis gives the right shape only by luck; use a
    # square case where it does, and see the check fail on the values.
    xs, ws, bs = rng.standard_normal((3, 3)), rng.standard_normal((3, 3)), rng.standard_normal(3)
    outs, caches = linear_forward(xs, ws, bs)
    douts = rng.standard_normal(outs.shape)
    with pytest.raises(GradientCheckError, match="'b'"):
        check_gradients(f, {"x": xs, "w": ws, "b": bs}, {"b": douts.sum(axis=1)}, douts)


def test_stacked_linear_layers_collapse_to_one(rng):
    # x W1 W2 = x W' (the CNN textbook chapter (2-2)..(2-4)); in torch's layout that is w' = w2 @ w1.
    x = rng.standard_normal((5, 4))
    w1, w2 = rng.standard_normal((3, 4)), rng.standard_normal((2, 3))
    two, _ = linear_forward(linear_forward(x, w1)[0], w2)
    one, _ = linear_forward(x, w2 @ w1)
    np.testing.assert_allclose(two, one, **TIGHT)


def test_layer_class_initialises_like_torch_and_fills_grads(rng):
    layer = Linear(50, 20, rng=rng)
    bound = 1 / np.sqrt(50)
    assert layer.params["w"].shape == (20, 50) and layer.params["b"].shape == (20,)
    assert np.abs(layer.params["w"]).max() <= bound and np.abs(layer.params["w"]).max() > 0.9 * bound
    assert layer.num_parameters() == 50 * 20 + 20
    x = rng.standard_normal((3, 50))
    dout = rng.standard_normal((3, 20))
    out = layer(x)
    dx = layer.backward(dout)
    ref_out, cache = linear_forward(x, layer.params["w"], layer.params["b"])
    ref = linear_backward(dout, cache)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(dx, ref[0])
    np.testing.assert_array_equal(layer.grads["w"], ref[1])
    np.testing.assert_array_equal(layer.grads["b"], ref[2])
    assert "b" not in Linear(3, 2, bias=False, rng=rng).params
    tl = torch.nn.Linear(50, 20)  # same layout as torch's layer
    assert tuple(tl.weight.shape) == layer.params["w"].shape


def test_bad_input_raises_clear_errors(rng):
    with pytest.raises(ValueError, match=r"x: expected last dimension D_in = 3 \(w is \(2, 3\)\), got shape \(4, 5\)"):
        linear_forward(np.zeros((4, 5)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"b: expected shape \(2,\), got \(3,\)"):
        linear_forward(np.zeros((4, 3)), np.zeros((2, 3)), np.zeros(3))
    with pytest.raises(ValueError, match=r"w: expected a 2-D array \(D_out, D_in\)"):
        linear_forward(np.zeros((4, 3)), np.zeros(3))
    _, cache = linear_forward(np.zeros((4, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"dout: expected shape \(4, 2\), got \(2, 4\)"):
        linear_backward(np.zeros((2, 4)), cache)
    with pytest.raises(ValueError, match="in_features"):
        Linear(0, 3)
