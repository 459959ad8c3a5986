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
    # softmax([1, 2, 3]) (the deep-learning textbook chapter, (5-30) corrected; the printed e^{-O} version reverses it)
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
    # leaky ReLU derivative on [-2, 0, 3] (the deep-learning textbook chapter Listing 2 returns 0 at -2: an int-dtype bug)
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


# --- PReLU and RReLU ---------------------------------------------------------------------------

PRELU_SHAPES = [((5, 3), 1), ((5, 3), 3), ((2, 4, 3, 5), 4), ((2, 4, 3, 5), 1), ((3, 2, 7), 2),
                ((6,), 1)]


@pytest.mark.parametrize("shape, channels", PRELU_SHAPES)
def test_prelu_matches_torch(shape, channels, rng):
    x = rng.standard_normal(shape)
    x.flat[0] = 0.0  # the kink: torch takes the slope for x <= 0
    weight = rng.uniform(-0.5, 0.8, channels)
    dout = rng.standard_normal(shape)
    x0, w0, d0 = x.copy(), weight.copy(), dout.copy()
    out, cache = A.prelu_forward(x, weight)
    dx, dweight = A.prelu_backward(dout, cache)
    out_t, grads = torch_forward_backward(F.prelu, {"input": x, "weight": weight}, dout)
    np.testing.assert_allclose(out, out_t, **TIGHT)
    np.testing.assert_allclose(dx, grads["input"], **TIGHT)
    np.testing.assert_allclose(dweight, grads["weight"], **TIGHT)
    assert dweight.shape == weight.shape
    for before, after in [(x0, x), (w0, weight), (d0, dout)]:
        np.testing.assert_array_equal(before, after)


def test_prelu_gradients_match_central_differences_and_a_wrong_one_fails(rng):
    x = rng.standard_normal((4, 3, 2))
    x[np.abs(x) < 1e-3] = 0.5
    weight = rng.uniform(0.0, 0.5, 3)
    dout = rng.standard_normal(x.shape)
    _, cache = A.prelu_forward(x, weight)
    dx, dweight = A.prelu_backward(dout, cache)
    fn = lambda x, weight: A.prelu_forward(x, weight)[0]  # noqa: E731
    check_gradients(fn, {"x": x, "weight": weight}, {"x": dx, "weight": dweight}, dout)
    wrong = dweight.copy()
    wrong[1] += 1e-3  # a slope gradient off in one channel is caught
    with pytest.raises(GradientCheckError, match="'weight'"):
        check_gradients(fn, {"x": x, "weight": weight}, {"weight": wrong}, dout)


def test_prelu_layer_equals_torch_module(rng):
    x = rng.standard_normal((4, 3, 5))
    dout = rng.standard_normal(x.shape)
    for n in (1, 3):
        layer = A.PReLU(n)
        ref = torch.nn.PReLU(n)
        np.testing.assert_array_equal(layer.params["weight"], ref.weight.detach().numpy())
        xt = torch.from_numpy(x).requires_grad_(True)
        out_t = ref(xt)
        (out_t * torch.from_numpy(dout)).sum().backward()
        np.testing.assert_allclose(layer.forward(x), out_t.detach().numpy(), **TIGHT)
        np.testing.assert_allclose(layer.backward(dout), xt.grad.numpy(), **TIGHT)
        np.testing.assert_allclose(layer.grads["weight"], ref.weight.grad.numpy(), **TIGHT)
        assert layer.num_parameters() == n


def test_prelu_bad_input(rng):
    with pytest.raises(ValueError, match=r"weight: expected shape \(1,\) or \(3,\)"):
        A.prelu_forward(rng.standard_normal((2, 3)), np.ones(4))
    with pytest.raises(ValueError, match="weight: expected a 1-D array"):
        A.prelu_forward(rng.standard_normal((2, 3)), np.ones((3, 1)))
    with pytest.raises(ValueError, match="num_parameters"):
        A.PReLU(0)
    _, cache = A.prelu_forward(rng.standard_normal((2, 3)), np.ones(3))
    with pytest.raises(ValueError, match="dout: expected shape"):
        A.prelu_backward(np.ones((3, 2)), cache)


def test_rrelu_eval_matches_torch(rng):
    x = 2.0 * rng.standard_normal((3, 4, 5))
    x[0, 0, 0] = 0.0
    dout = rng.standard_normal(x.shape)
    lower, upper = 0.1, 0.4
    out, cache = A.rrelu_forward(x, lower, upper, training=False)
    dx = A.rrelu_backward(dout, cache)
    out_t, grads = torch_forward_backward(
        lambda x: F.rrelu(x, lower, upper, training=False), {"x": x}, dout)
    np.testing.assert_allclose(out, out_t, **TIGHT)
    np.testing.assert_allclose(dx, grads["x"], **TIGHT)
    # the book's test-time slope for the default bounds: (1/8 + 1/3) / 2
    out, _ = A.rrelu_forward(np.array([-1.0]))
    assert out[0] == pytest.approx(-0.2291667, abs=1e-7)
    # the negative case: the training-mode output is not the eval one
    out_train, _ = A.rrelu_forward(x, lower, upper, training=True, rng=rng)
    assert not np.allclose(out_train, out_t)


def test_rrelu_training_matches_torch_given_its_slopes(rng):
    x = rng.standard_normal((4, 6))
    x[0, 0] = 0.0
    dout = rng.standard_normal(x.shape)
    xt = torch.from_numpy(x).requires_grad_(True)
    noise = torch.empty_like(xt)
    out_t = torch.ops.aten.rrelu_with_noise(xt, noise, 0.125, 1 / 3, True)
    (out_t * torch.from_numpy(dout)).sum().backward()
    slopes = noise.numpy().copy()
    out, cache = A.rrelu_forward(x, training=True, slopes=slopes)
    np.testing.assert_allclose(out, out_t.detach().numpy(), **TIGHT)
    np.testing.assert_allclose(A.rrelu_backward(dout, cache), xt.grad.numpy(), **TIGHT)
    with pytest.raises(ValueError, match="slopes: expected values in"):
        A.rrelu_forward(x, training=True, slopes=np.full(x.shape, 0.9))


def test_rrelu_training_draws_uniform_slopes_and_backward_uses_them(rng):
    lower, upper = 0.1, 0.3
    x = -np.abs(rng.standard_normal((200, 50))) - 0.1  # all negative: every slope shows
    out, cache = A.rrelu_forward(x, lower, upper, training=True, rng=np.random.default_rng(5))
    slopes = out / x
    assert slopes.min() >= lower and slopes.max() <= upper
    assert slopes.mean() == pytest.approx((lower + upper) / 2, abs=2e-3)
    assert slopes.var() == pytest.approx((upper - lower) ** 2 / 12, rel=0.05)
    dout = rng.standard_normal(x.shape)
    np.testing.assert_allclose(A.rrelu_backward(dout, cache), dout * slopes, rtol=1e-12)
    again, _ = A.rrelu_forward(x, lower, upper, training=True, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(again, out)  # deterministic under a seed
    other, _ = A.rrelu_forward(x, lower, upper, training=True, rng=np.random.default_rng(6))
    assert not np.array_equal(other, out)
    few = slopes[:3, :4]
    check_gradients(lambda x: A.rrelu_forward(x, lower, upper, training=True, slopes=few)[0],
                    {"x": x[:3, :4]}, {"x": dout[:3, :4] * few}, dout[:3, :4])


def test_rrelu_layer_train_and_eval(rng):
    layer = A.RReLU(rng=np.random.default_rng(0))
    x = -np.ones((2, 3))
    first, second = layer.forward(x), layer.forward(x)
    assert not np.array_equal(first, second)  # a fresh draw every training pass
    layer.eval()
    np.testing.assert_allclose(layer.forward(x), -np.full((2, 3), (1 / 8 + 1 / 3) / 2), rtol=1e-15)
    np.testing.assert_allclose(layer.backward(np.ones((2, 3))),
                               np.full((2, 3), (1 / 8 + 1 / 3) / 2))
    with pytest.raises(ValueError, match="rng"):
        A.rrelu_forward(x, training=True)
    with pytest.raises(ValueError, match="lower, upper"):
        A.RReLU(0.5, 0.2)


@pytest.mark.parametrize("shape, pieces", [((4, 6), 2), ((1, 9), 3), ((5, 3), 1), ((3, 8), 4)])
def test_maxout_matches_torch(shape, pieces, rng):
    x = rng.standard_normal(shape)
    dout = rng.standard_normal((shape[0], shape[1] // pieces))
    x_before, dout_before = x.copy(), dout.copy()
    out, cache = A.maxout_forward(x, pieces)
    dx = A.maxout_backward(dout, cache)
    out_t, grads_t = torch_forward_backward(
        lambda x: x.view(shape[0], -1, pieces).amax(-1), {"x": x}, dout)
    np.testing.assert_allclose(out, out_t, **TIGHT)
    np.testing.assert_allclose(dx, grads_t["x"], **TIGHT)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dout, dout_before)


def test_maxout_gradients_match_central_differences_and_a_wrong_one_fails(rng):
    x = rng.standard_normal((3, 6))
    dout = rng.standard_normal((3, 2))
    out, cache = A.maxout_forward(x, 3)
    dx = A.maxout_backward(dout, cache)
    check_gradients(lambda x: A.maxout_forward(x, 3)[0], {"x": x}, {"x": dx}, dout)
    spread = np.repeat(dout, 3, axis=1) / 3  # wrong: every piece gets a share
    with pytest.raises(GradientCheckError, match="'x'"):
        check_gradients(lambda x: A.maxout_forward(x, 3)[0], {"x": x}, {"x": spread}, dout)


def test_maxout_with_two_pieces_is_relu_and_abs():
    z = np.linspace(-2, 2, 9)
    relu_pieces = np.column_stack([z, np.zeros_like(z)])  # max(z, 0)
    abs_pieces = np.column_stack([z, -z])  # max(z, -z)
    np.testing.assert_array_equal(A.maxout_forward(relu_pieces, 2)[0][:, 0], A.relu(z))
    np.testing.assert_array_equal(A.maxout_forward(abs_pieces, 2)[0][:, 0], np.abs(z))


def test_maxout_bad_input(rng):
    with pytest.raises(ValueError, match="divisible by pieces=4"):
        A.maxout_forward(rng.standard_normal((2, 6)), 4)
    with pytest.raises(ValueError, match="pieces: expected a positive integer"):
        A.maxout_forward(rng.standard_normal((2, 6)), 0)
    with pytest.raises(ValueError, match="x: expected a 2-D array"):
        A.maxout_forward(rng.standard_normal(6), 2)
    _, cache = A.maxout_forward(rng.standard_normal((2, 6)), 2)
    with pytest.raises(ValueError, match="dout: expected shape \\(2, 3\\)"):
        A.maxout_backward(np.ones((3, 2)), cache)


def test_maxout_backward_gives_a_tie_to_the_first_piece_unlike_torch_amax():
    tie = np.array([[0.0, 0.0, 1.0, 1.0]])                # two units, each a tie of two pieces
    _, cache = A.maxout_forward(tie, 2)
    dx = A.maxout_backward(np.array([[2.0, 3.0]]), cache)
    np.testing.assert_array_equal(dx, [[2.0, 0.0, 3.0, 0.0]])
    tie_t = torch.tensor(tie, requires_grad=True)
    upstream = torch.tensor([[2.0, 3.0]], dtype=torch.float64)
    (tie_t.view(1, 2, 2).amax(-1) * upstream).sum().backward()
    np.testing.assert_array_equal(tie_t.grad.numpy(), [[1.0, 1.0, 1.5, 1.5]])   # torch splits
    assert not np.array_equal(dx, tie_t.grad.numpy())
