"""dlbook.init against torch.nn.init: fans, gains, bounds and standard deviations, and draws."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import init as tinit

from dlbook import init
from dlbook.conv import Conv2d
from dlbook.linear import Linear

SHAPES = [(7, 3), (1, 1), (5, 3, 3, 2), (4, 6, 5), (2, 3, 1, 2, 3)]
GAIN_CASES = [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
              ("relu", None), ("relu", 0.3), ("leaky_relu", None), ("leaky_relu", 0.2),
              ("leaky_relu", 3), ("leaky_relu", math.sqrt(5)), ("selu", None)]


def torch_fans(shape):
    return tinit._calculate_fan_in_and_fan_out(torch.empty(shape))


@pytest.mark.parametrize("shape", SHAPES)
def test_fans_equal_torch(shape):
    assert init.calculate_fan_in_and_fan_out(shape) == torch_fans(shape)


def test_conv_fan_in_is_channels_times_kernel_area():
    assert init.calculate_fan_in_and_fan_out((16, 3, 5, 7)) == (3 * 5 * 7, 16 * 5 * 7)


@pytest.mark.parametrize("nonlinearity, param", GAIN_CASES)
def test_gain_equals_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == tinit.calculate_gain(nonlinearity, param)


def test_relu_gain_differs_from_leaky_default():
    # the negative case: the default leaky slope 0.01 is not plain ReLU
    assert init.calculate_gain("leaky_relu") != tinit.calculate_gain("relu")


def _torch_std(kind, shape, gain=1.0, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """The standard deviation torch.nn.init uses, from torch's own helpers."""
    fan_in, fan_out = torch_fans(shape)
    if kind == "xavier":
        return gain * math.sqrt(2.0 / float(fan_in + fan_out))
    fan = tinit._calculate_correct_fan(torch.empty(shape), mode)
    return tinit.calculate_gain(nonlinearity, a) / math.sqrt(fan)


UNIFORM = [
    ("xavier", init.xavier_uniform, dict(), dict()),
    ("xavier", init.xavier_uniform, dict(gain=2.5), dict(gain=2.5)),
    ("kaiming", init.kaiming_uniform, dict(), dict()),
    ("kaiming", init.kaiming_uniform, dict(a=0.2, mode="fan_out"), dict(a=0.2, mode="fan_out")),
    ("kaiming", init.kaiming_uniform, dict(nonlinearity="relu"), dict(nonlinearity="relu")),
    ("kaiming", init.kaiming_uniform, dict(a=math.sqrt(5)), dict(a=math.sqrt(5))),
]
NORMAL = [
    ("xavier", init.xavier_normal, dict(), dict()),
    ("xavier", init.xavier_normal, dict(gain=5 / 3), dict(gain=5 / 3)),
    ("kaiming", init.kaiming_normal, dict(), dict()),
    ("kaiming", init.kaiming_normal, dict(mode="fan_out", nonlinearity="relu"),
     dict(mode="fan_out", nonlinearity="relu")),
    ("kaiming", init.kaiming_normal, dict(nonlinearity="tanh"), dict(nonlinearity="tanh")),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind, fn, ours, theirs", UNIFORM)
def test_uniform_draw_uses_torchs_bound(kind, fn, ours, theirs, shape):
    """rng.uniform(-b, b) = -b + 2b u with u = rng.random(): rebuild it with torch's bound."""
    w = fn(shape, np.random.default_rng(3), **ours)
    bound = math.sqrt(3.0) * _torch_std(kind, shape, **theirs)
    u = np.random.default_rng(3).random(shape)
    assert w.dtype == np.float64 and w.shape == shape
    np.testing.assert_array_equal(w, -bound + (bound - -bound) * u)
    wrong = -1.01 * bound + 2.02 * bound * u  # a bound 1 % too large is caught
    assert not np.array_equal(w, wrong)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind, fn, ours, theirs", NORMAL)
def test_normal_draw_uses_torchs_std(kind, fn, ours, theirs, shape):
    w = fn(shape, np.random.default_rng(4), **ours)
    std = _torch_std(kind, shape, **theirs)
    z = np.random.default_rng(4).standard_normal(shape)
    np.testing.assert_allclose(w, std * z, rtol=1e-15, atol=0)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(w, 1.01 * std * z, rtol=1e-6, atol=0)


@pytest.mark.parametrize("ours, theirs", [
    (lambda s, r: init.xavier_uniform(s, r), tinit.xavier_uniform_),
    (lambda s, r: init.xavier_normal(s, r, gain=2.0), lambda t: tinit.xavier_normal_(t, gain=2.0)),
    (lambda s, r: init.kaiming_uniform(s, r, nonlinearity="relu"),
     lambda t: tinit.kaiming_uniform_(t, nonlinearity="relu")),
    (lambda s, r: init.kaiming_normal(s, r, mode="fan_out"),
     lambda t: tinit.kaiming_normal_(t, mode="fan_out")),
])
def test_empirical_distribution_close_to_torchs(ours, theirs, rng):
    shape = (64, 32, 3, 3)
    w = ours(shape, rng)
    t = theirs(torch.empty(shape)).numpy()
    assert abs(w.mean()) < 0.05 * t.std()
    assert w.std() == pytest.approx(t.std(), rel=0.03)
    assert np.abs(w).max() == pytest.approx(np.abs(t).max(), rel=0.25)
    # the negative case: a draw with twice the std is told apart
    assert 2 * w.std() != pytest.approx(t.std(), rel=0.03)


def test_he_normal_variance_times_fan_in_is_two(rng):
    w = init.kaiming_normal((512, 512), rng, nonlinearity="relu")
    assert w.var() * 512 == pytest.approx(2.0, rel=0.02)


def test_uniform_variance_is_bound_squared_over_three(rng):
    n = 512
    w = init.kaiming_uniform((n, n), rng, nonlinearity="relu")  # bound sqrt(6 / n)
    assert w.var() == pytest.approx(2.0 / n, rel=0.02)
    assert np.abs(w).max() <= math.sqrt(6.0 / n)


def test_plain_draws_and_zeros(rng):
    np.testing.assert_array_equal(init.zeros((2, 3)), np.zeros((2, 3)))
    u = init.uniform((3, 4), np.random.default_rng(1), -0.5, 2.0)
    np.testing.assert_array_equal(u, np.random.default_rng(1).uniform(-0.5, 2.0, (3, 4)))
    z = init.normal((5,), np.random.default_rng(1), mean=1.0, std=0.01)
    np.testing.assert_array_equal(z, np.random.default_rng(1).normal(1.0, 0.01, 5))


def test_returns_new_arrays_and_seeded_draws_repeat():
    a = init.kaiming_normal((3, 4), np.random.default_rng(9))
    b = init.kaiming_normal((3, 4), np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)
    assert a is not b and not np.shares_memory(a, b)


@pytest.mark.parametrize("call, match", [
    (lambda r: init.xavier_uniform((5,), r), "shape: fan-in"),
    (lambda r: init.kaiming_normal((3, 0), r), "shape: every dimension"),
    (lambda r: init.kaiming_normal((3, -1), r), "shape: expected non-negative"),
    (lambda r: init.kaiming_uniform((3, 2.5), r), "shape: expected non-negative"),
    (lambda r: init.kaiming_uniform((3, 4), r, mode="fan_avg"), "mode"),
    (lambda r: init.kaiming_uniform((3, 4), r, nonlinearity="swish"), "nonlinearity"),
    (lambda r: init.kaiming_uniform((3, 4), r, a="0.1"), "param"),
    (lambda r: init.xavier_normal((3, 4), 0), "rng"),
    (lambda r: init.uniform((3, 4), r, 1.0, 0.0), "a, b"),
    (lambda r: init.normal((3, 4), r, std=-1.0), "std"),
])
def test_bad_input_raises(call, match, rng):
    with pytest.raises(ValueError, match=match):
        call(rng)


def test_torch_raises_on_the_same_bad_inputs():
    with pytest.raises(ValueError):
        tinit.xavier_uniform_(torch.empty(5))
    with pytest.raises(ValueError):
        tinit.kaiming_uniform_(torch.empty(3, 4), mode="fan_avg")
    with pytest.raises(ValueError):
        tinit.calculate_gain("swish")


def _old_draw(rng, fan_in, shape, n_bias):
    """How Linear and Conv2d drew their weights before they called dlbook.init."""
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, shape), rng.uniform(-bound, bound, n_bias)


@pytest.mark.parametrize("d_in, d_out", [(64, 10), (3, 7), (1, 1), (784, 100)])
def test_linear_draws_are_bit_identical_to_before(d_in, d_out):
    layer = Linear(d_in, d_out, rng=np.random.default_rng(7))
    w, b = _old_draw(np.random.default_rng(7), d_in, (d_out, d_in), d_out)
    np.testing.assert_array_equal(layer.params["w"], w)
    np.testing.assert_array_equal(layer.params["b"], b)
    other = Linear(d_in, d_out, rng=np.random.default_rng(8))
    assert not np.array_equal(other.params["w"], w)


@pytest.mark.parametrize("c, f, k", [(1, 6, 5), (3, 8, (3, 2)), (16, 4, 1)])
def test_conv2d_draws_are_bit_identical_to_before(c, f, k):
    layer = Conv2d(c, f, k, rng=np.random.default_rng(7))
    kh, kw = (k, k) if isinstance(k, int) else k
    w, b = _old_draw(np.random.default_rng(7), c * kh * kw, (f, c, kh, kw), f)
    np.testing.assert_array_equal(layer.params["w"], w)
    np.testing.assert_array_equal(layer.params["b"], b)
    no_bias = Conv2d(c, f, k, bias=False, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(no_bias.params["w"], w)
