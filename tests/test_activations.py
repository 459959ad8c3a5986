"""dlbook.activations against torch in float64, plus the sources' own numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TIGHT, torch_forward_backward
from dlbook import activations as A
from dlbook.gradcheck import GradientCheckError, check_gradients

# (name, our forward, our backward, torch function, hyper-parameters)
CASES = [
    ("sigmoid", A.sigmoid_forward, A.sigmoid_backward, torch.sigmoid, {}),
    ("tanh", A.tanh_forward, A.tanh_backward, torch.tanh, {}),
    ("relu", A.relu_forward, A.relu_backward, F.relu, {}),
    ("leaky_relu", A.leaky_relu_forward, A.leaky_relu_backward,
     lambda x: F.leaky_relu(x, negative_slope=0.2), {"negative_slope": 0.2}),
    ("elu", A.elu_forward, A.elu_backward, lambda x: F.elu(x, alpha=1.5), {"alpha": 1.5}),
    ("softmax", A.softmax_forward, A.softmax_backward, lambda x: F.softmax(x, dim=-1), {}),
    ("softmax_axis0", A.softmax_forward, A.softmax_backward, lambda x: F.softmax(x, dim=0), {"axis": 0}),
    ("log_softmax", A.log_softmax_forward, A.log_softmax_backward, lambda x: F.log_softmax(x, dim=-1), {}),
    ("log_softmax_axis1", A.log_softmax_forward, A.log_softmax_backward,
     lambda x: F.log_softmax(x, dim=1), {"axis": 1}),
]


@pytest.mark.parametrize("name, fwd, bwd, torch_fn, hyper", CASES, ids=[c[0] for c in CASES])
def test_forward_backward_match_torch(name, fwd, bwd, torch_fn, hyper, rng):
    x = 3.0 * rng.standard_normal((4, 5, 3))
    x[0, 0, 0] = 0.0  # the kink of ReLU-like functions: our convention must match torch's
    dout = rng.standard_normal(x.shape)
    out, cache = fwd(x, **hyper)
    dx = bwd(dout, cache)
    out_t, grads_t = torch_forward_backward(lambda x: torch_fn(x), {"x": x}, dout)
    np.testing.assert_allclose(out, out_t, **TIGHT)
    np.testing.assert_allclose(dx, grads_t["x"], **TIGHT)


@pytest.mark.parametrize("name, fwd, bwd, torch_fn, hyper", CASES, ids=[c[0] for c in CASES])
def test_backward_matches_central_differences(name, fwd, bwd, torch_fn, hyper, rng):
    x = rng.standard_normal((3, 4)) + 0.05  # away from the kink at 0
    x[np.abs(x) < 1e-3] = 0.5
    dout = rng.standard_normal(x.shape)
    _, cache = fwd(x, **hyper)
    check_gradients(lambda x: fwd(x, **hyper)[0], {"x": x}, {"x": bwd(dout, cache)}, dout)


def test_gradient_check_catches_a_wrong_sigmoid_derivative(rng):
    x = rng.standard_normal((3, 4))
    dout = rng.standard_normal(x.shape)
    out, _ = A.sigmoid_forward(x)
    wrong = dout * out  # forgot the (1 - sigma) factor
    with pytest.raises(GradientCheckError, match="'x'"):
        check_gradients(lambda x: A.sigmoid_forward(x)[0], {"x": x}, {"x": wrong}, dout)


def test_plain_functions_equal_the_forward_pass(rng):
    x = rng.standard_normal((2, 6))
    for plain, fwd in [(A.sigmoid, A.sigmoid_forward), (A.tanh, A.tanh_forward), (A.relu, A.relu_forward),
                       (A.leaky_relu, A.leaky_relu_forward), (A.elu, A.elu_forward),
                       (A.softmax, A.softmax_forward), (A.log_softmax, A.log_softmax_forward)]:
        np.testing.assert_array_equal(plain(x), fwd(x)[0])


def test_stable_for_large_inputs():
    # The sources' unstable softmax gives nan on [1000, 1001]; the shifted one does not.
    np.testing.assert_allclose(A.softmax(np.array([1000.0, 1001.0])), [0.26894142, 0.73105858], rtol=1e-8)
    np.testing.assert_allclose(A.log_softmax(np.array([1000.0, 1001.0])),
                               np.log([0.2689414213699951, 0.7310585786300049]), rtol=1e-12)
    with np.errstate(over="raise"):
        s = A.sigmoid(np.array([-1000.0, 0.0, 1000.0]))
        e = A.elu(np.array([-1000.0, 1000.0]))
    np.testing.assert_array_equal(s, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(e, [-1.0, 1000.0])


def test_sources_numbers():
    # softmax([1, 2, 3]) (seed 001, (5-30) corrected; the printed e^{-O} version reverses it)
    np.testing.assert_allclose(A.softmax(np.array([1.0, 2.0, 3.0])), [0.09003057, 0.24472847, 0.66524096],
                               atol=1e-8)
    # the sigmoid derivative peaks at 1/4, at x = 0
    x = np.linspace(-10, 10, 2001)
    _, cache = A.sigmoid_forward(x)
    d = A.sigmoid_backward(np.ones_like(x), cache)
    assert d.max() == pytest.approx(0.25, abs=1e-15)
    assert x[np.argmax(d)] == 0.0
    # ELU derivative for x <= 0 equals f(x) + alpha
    x = np.array([-3.0, -1.0, -0.1])
    out, cache = A.elu_forward(x, alpha=0.7)
    np.testing.assert_allclose(A.elu_backward(np.ones_like(x), cache), out + 0.7, rtol=1e-15)
    # leaky ReLU derivative on [-2, 0, 3] (seed 001 Listing 2 returns 0 at -2: an int-dtype bug)
    _, cache = A.leaky_relu_forward(np.array([-2, 0, 3]))
    np.testing.assert_allclose(A.leaky_relu_backward(np.ones(3), cache), [0.01, 0.01, 1.0])
    # ReLU'(0) = 0
    _, cache = A.relu_forward(np.array([0.0]))
    assert A.relu_backward(np.ones(1), cache)[0] == 0.0


def test_layer_classes_call_the_pairs(rng):
    x = rng.standard_normal((3, 4))
    dout = rng.standard_normal((3, 4))
    for layer, fwd, bwd, hyper in [(A.Sigmoid(), A.sigmoid_forward, A.sigmoid_backward, {}),
                                   (A.Tanh(), A.tanh_forward, A.tanh_backward, {}),
                                   (A.ReLU(), A.relu_forward, A.relu_backward, {}),
                                   (A.LeakyReLU(0.3), A.leaky_relu_forward, A.leaky_relu_backward,
                                    {"negative_slope": 0.3}),
                                   (A.ELU(0.5), A.elu_forward, A.elu_backward, {"alpha": 0.5}),
                                   (A.Softmax(axis=0), A.softmax_forward, A.softmax_backward, {"axis": 0})]:
        out, cache = fwd(x, **hyper)
        np.testing.assert_array_equal(layer.forward(x), out)
        np.testing.assert_array_equal(layer.backward(dout), bwd(dout, cache))
        assert layer.params == {} and layer.num_parameters() == 0


def test_bad_input_raises_clear_errors(rng):
    with pytest.raises(ValueError, match="dout: expected shape \\(3, 4\\), got \\(4, 3\\)"):
        _, cache = A.relu_forward(rng.standard_normal((3, 4)))
        A.relu_backward(rng.standard_normal((4, 3)), cache)
    with pytest.raises(ValueError, match="axis: 2 is out of range"):
        A.softmax(np.ones((2, 2)), axis=2)
    with pytest.raises(ValueError, match="x: expected a numeric array"):
        A.sigmoid(np.array(["a", "b"]))
    with pytest.raises(ValueError, match="alpha"):
        A.elu(np.ones(2), alpha=0.0)
    with pytest.raises(RuntimeError, match="before forward"):
        A.ReLU().backward(np.ones(2))


def test_dtype_is_preserved():
    x32 = np.linspace(-2, 2, 5, dtype=np.float32)
    for fn in (A.sigmoid, A.tanh, A.relu, A.leaky_relu, A.elu, A.softmax, A.log_softmax):
        assert fn(x32).dtype == np.float32, fn.__name__
    assert A.relu(np.array([-1, 2])).dtype == np.float64  # integers are promoted
