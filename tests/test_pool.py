"""dlbook.pool: naive loops == vectorised == torch max_pool2d / avg_pool2d, forward and backward, in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import TIGHT, torch_forward_backward
from dlbook.gradcheck import GradientCheckError, check_gradients, check_module_gradients
from dlbook.pool import (AvgPool2d, GlobalAvgPool2d, MaxPool2d, avg_pool2d_backward,
                         avg_pool2d_backward_naive, avg_pool2d_forward, avg_pool2d_forward_naive,
                         global_avg_pool2d_backward, global_avg_pool2d_forward, max_pool2d_backward,
                         max_pool2d_backward_naive, max_pool2d_forward, max_pool2d_forward_naive)

FAMILIES = {
    "max": (max_pool2d_forward, max_pool2d_backward, max_pool2d_forward_naive, max_pool2d_backward_naive,
            F.max_pool2d),
    "avg": (avg_pool2d_forward, avg_pool2d_backward, avg_pool2d_forward_naive, avg_pool2d_backward_naive,
            F.avg_pool2d),
}

# (x shape, kernel_size, stride, padding): the usual 2x2/2, overlapping windows, non-square
# inputs and kernels, strides and paddings as ints and pairs, odd sizes that drop a last row.
CASES = [
    ((2, 3, 6, 8), 2, None, 0),
    ((2, 3, 7, 6), 3, 2, 1),
    ((1, 2, 5, 9), (2, 3), (1, 2), (1, 1)),
    ((3, 2, 6, 6), 3, 1, 1),
    ((2, 4, 7, 5), (3, 2), None, (1, 0)),
    ((2, 1, 9, 9), 4, (3, 2), 2),
]


def run_family(kind, x, kernel, stride, padding, dout=None, rng=None):
    fwd, bwd, fwd_naive, bwd_naive, torch_fn = FAMILIES[kind]
    out, cache = fwd(x, kernel, stride, padding)
    if dout is None:
        dout = rng.standard_normal(out.shape)
    out_n, cache_n = fwd_naive(x, kernel, stride, padding)
    ref_out, ref = torch_forward_backward(lambda x: torch_fn(x, kernel, stride, padding), {"x": x}, dout)
    return (out, bwd(dout, cache)), (out_n, bwd_naive(dout, cache_n)), (ref_out, ref["x"])


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("x_shape, kernel, stride, padding", CASES)
def test_naive_equals_fast_equals_torch(kind, x_shape, kernel, stride, padding, rng):
    x = rng.standard_normal(x_shape)
    (out, dx), (out_n, dx_n), (ref_out, ref_dx) = run_family(kind, x, kernel, stride, padding, rng=rng)
    np.testing.assert_allclose(out, ref_out, **TIGHT)
    np.testing.assert_allclose(out_n, ref_out, **TIGHT)
    np.testing.assert_allclose(dx, ref_dx, **TIGHT)
    np.testing.assert_allclose(dx_n, ref_dx, **TIGHT)


@pytest.mark.parametrize("x_shape, kernel, stride, padding", CASES)
def test_max_pool_ties_go_where_torch_sends_them(x_shape, kernel, stride, padding, rng):
    # Small integers make many windows with several equal maxima.
    x = rng.integers(0, 3, x_shape).astype(np.float64)
    (out, dx), (out_n, dx_n), (ref_out, ref_dx) = run_family("max", x, kernel, stride, padding, rng=rng)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_allclose(dx, ref_dx, **TIGHT)
    np.testing.assert_allclose(dx_n, ref_dx, **TIGHT)


def test_max_pool_edge_values_match_torch():
    # All -inf windows (padding must not win) and NaN (torch propagates it; its gradient goes to the last NaN).
    x = np.full((1, 1, 4, 5), -np.inf)
    x[0, 0, 3, 4] = 1.0
    y = np.array([[[[1.0, np.nan, 3.0, np.nan], [np.nan, 2.0, 0.0, 1.0], [5, 5, 5, 5], [5, 5, 5, 5]]]])
    for arr, kernel, padding in ((x, 3, 1), (y, 2, 1), (y, 3, 0)):
        out, cache = max_pool2d_forward(arr, kernel, 1, padding)
        dout = np.arange(1.0, out.size + 1).reshape(out.shape)
        ref_out, ref = torch_forward_backward(lambda x: F.max_pool2d(x, kernel, 1, padding), {"x": arr}, dout)
        np.testing.assert_array_equal(out, ref_out)  # NaN == NaN for assert_array_equal
        np.testing.assert_array_equal(max_pool2d_backward(dout, cache), ref["x"])


@settings(max_examples=25, deadline=None, derandomize=True)
@given(kind=st.sampled_from(["max", "avg"]), n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 9),
       w=st.integers(1, 9), kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3),
       sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_random_shapes_fast_equals_torch(kind, n, c, h, w, kh, kw, sh, sw, ph, pw, seed):
    ph, pw = min(ph, kh // 2), min(pw, kw // 2)  # torch's limit on padding
    kh, kw = min(kh, h + 2 * ph), min(kw, w + 2 * pw)
    ph, pw = min(ph, kh // 2), min(pw, kw // 2)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    fwd, bwd, *_, torch_fn = FAMILIES[kind]
    out, cache = fwd(x, (kh, kw), (sh, sw), (ph, pw))
    dout = rng.standard_normal(out.shape)
    ref_out, ref = torch_forward_backward(lambda x: torch_fn(x, (kh, kw), (sh, sw), (ph, pw)), {"x": x}, dout)
    np.testing.assert_allclose(out, ref_out, **TIGHT)
    np.testing.assert_allclose(bwd(dout, cache), ref["x"], **TIGHT)


# --- the sources' worked numbers -----------------------------------------------------------------------

def test_max_pool_2x2_example_and_routing():
    # The classic 2x2, stride-2 max-pooling figure (CS231n; the CNN article draws one without numbers).
    x = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], dtype=np.float64)[None, None]
    out, cache = max_pool2d_forward(x, 2)
    np.testing.assert_array_equal(out[0, 0], [[6, 8], [3, 4]])
    # each delta goes to its window's maximum, unchanged; the other 12 positions get 0 (the CNN slides)
    delta = np.array([[2.0, 8.0], [4.0, 6.0]])[None, None]
    np.testing.assert_array_equal(max_pool2d_backward(delta, cache)[0, 0],
                                  [[0, 0, 0, 0], [0, 2, 0, 8], [4, 0, 0, 0], [0, 0, 0, 6]])
    # 2x2 at stride 2 keeps one value in four: 75 % of the activations are discarded
    assert out.size / x.size == 0.25


def test_avg_pool_backward_spreads_delta_over_four():
    # the CNN slides: the residual of each 2x2 window is split into 4 equal parts
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    out, cache = avg_pool2d_forward(x, 2)
    np.testing.assert_allclose(out[0, 0], [[2.5, 4.5], [10.5, 12.5]], **TIGHT)
    delta = np.array([[2.0, 8.0], [4.0, 6.0]])[None, None]
    dx = avg_pool2d_backward(delta, cache)[0, 0]
    np.testing.assert_array_equal(dx, [[0.5, 0.5, 2, 2], [0.5, 0.5, 2, 2], [1, 1, 1.5, 1.5], [1, 1, 1.5, 1.5]])
    assert dx.sum() == delta.sum()  # the gradient's total is preserved
    np.testing.assert_array_equal(avg_pool2d_backward_naive(delta, avg_pool2d_forward_naive(x, 2)[1])[0, 0], dx)


def test_avg_pool_counts_padding_in_the_divisor():
    # torch's default count_include_pad=True: a corner window of a 3x3 kernel with padding 1 sees
    # 4 real ones and 5 padded zeros and averages to 4/9, not 1
    out, _ = avg_pool2d_forward(np.ones((1, 1, 4, 4)), 3, 1, 1)
    assert out[0, 0, 0, 0] == pytest.approx(4 / 9, rel=1e-15)
    assert out[0, 0, 1, 1] == 1.0


# --- central differences and checks that can fail ----------------------------------------------------

@pytest.mark.parametrize("kind", ["max", "avg"])
def test_central_differences_and_a_broken_backward(kind, rng):
    fwd, bwd, *_ = FAMILIES[kind]
    x = rng.standard_normal((2, 3, 5, 6))  # continuous values: no ties, so max pooling is differentiable
    out, cache = fwd(x, (3, 2), (2, 1), (1, 1))
    dout = rng.standard_normal(out.shape)
    dx = bwd(dout, cache)
    f = lambda x: fwd(x, (3, 2), (2, 1), (1, 1))[0]  # noqa: E731
    check_gradients(f, {"x": x}, {"x": dx}, dout, rtol=1e-7, atol=1e-9)
    # broken on purpose: max routed to the window's minimum; average not divided by KH*KW
    if kind == "max":
        wrong = max_pool2d_backward(dout, max_pool2d_forward(-x, (3, 2), (2, 1), (1, 1))[1])
    else:
        wrong = dx * 6
    with pytest.raises(GradientCheckError, match="'x'"):
        check_gradients(f, {"x": x}, {"x": wrong}, dout)


def test_max_pool_backward_with_overlapping_windows_accumulates(rng):
    # One input can be the maximum of several windows (stride < kernel): its gradients add up.
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0
    out, cache = max_pool2d_forward(x, 2, 1)
    dout = rng.standard_normal(out.shape)
    dx = max_pool2d_backward(dout, cache)
    assert dx[0, 0, 1, 1] == pytest.approx(dout.sum(), rel=1e-15)
    assert np.count_nonzero(dx) == 1


# --- dtypes, bad input, layers ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(kind, dtype, rng):
    fwd, bwd, *_ = FAMILIES[kind]
    x = rng.standard_normal((2, 3, 6, 6)).astype(dtype)
    out, cache = fwd(x, 2)
    dx = bwd(rng.standard_normal(out.shape).astype(dtype), cache)
    assert out.dtype == dtype and dx.dtype == dtype


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("x_shape, kernel, stride, padding, match", [
    ((3, 6, 6), 2, None, 0, r"x: expected a 4-D array \(N, C, H, W\), got shape \(3, 6, 6\)"),
    ((1, 1, 6, 6), 0, None, 0, r"kernel_size: expected positive ints, got 0"),
    ((1, 1, 6, 6), (2, 2, 2), None, 0, r"kernel_size: expected an int or a pair of ints"),
    ((1, 1, 6, 6), 2, 0, 0, r"stride: expected positive ints, got 0"),
    ((1, 1, 6, 6), 2, 2, -1, r"padding: expected non-negative ints"),
    ((1, 1, 6, 6), 2, 2, 2, r"padding: expected at most half the kernel size \(1, 1\) .*got \(2, 2\)"),
    ((1, 1, 3, 6), (6, 2), None, (1, 0), r"kernel_size: expected a kernel \(KH, KW\) at most .*\(5, 6\).*got \(6, 2\)"),
    ((1, 1, 3, 6), (5, 2), None, (0, 0), r"kernel_size: .*\(3, 6\).*got \(5, 2\)"),
])
def test_bad_input_is_a_value_error_naming_the_argument(kind, x_shape, kernel, stride, padding, match):
    fwd, _, fwd_naive, *_ = FAMILIES[kind]
    for forward in (fwd, fwd_naive):
        with pytest.raises(ValueError, match=match):
            forward(np.zeros(x_shape), kernel, stride, padding)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_bad_dout(kind, rng):
    fwd, bwd, fwd_naive, bwd_naive, _ = FAMILIES[kind]
    x = rng.standard_normal((2, 3, 6, 6))
    for forward, backward in ((fwd, bwd), (fwd_naive, bwd_naive)):
        _, cache = forward(x, 2)
        with pytest.raises(ValueError, match=r"dout: expected shape \(2, 3, 3, 3\), got \(2, 3, 3\)"):
            backward(np.zeros((2, 3, 3)), cache)


@pytest.mark.parametrize("layer_cls, torch_cls, kind", [(MaxPool2d, torch.nn.MaxPool2d, "max"),
                                                       (AvgPool2d, torch.nn.AvgPool2d, "avg")])
def test_layers_wrap_the_functions_and_match_torch(layer_cls, torch_cls, kind, rng):
    layer = layer_cls((3, 2), stride=(2, 1), padding=(1, 0))
    assert layer.params == {} and layer.num_parameters() == 0
    assert repr(layer) == f"{layer_cls.__name__}(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0))"
    assert layer_cls(2).stride == (2, 2)  # stride=None means the kernel size, as in torch
    x = rng.standard_normal((2, 3, 7, 6))
    out = layer(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    fwd, bwd, *_ = FAMILIES[kind]
    ref_out, cache = fwd(x, (3, 2), (2, 1), (1, 0))
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(dx, bwd(dout, cache))
    np.testing.assert_allclose(out, torch_cls((3, 2), (2, 1), (1, 0))(torch.from_numpy(x)).numpy(), **TIGHT)
    check_module_gradients(layer, x, dout, rtol=1e-7, atol=1e-9)
    with pytest.raises(ValueError, match="padding: expected at most half the kernel size"):
        layer_cls(2, padding=2)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer_cls(2).backward(np.zeros((1, 1, 1, 1)))


# --- global average pooling ------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 1, 1, 1), (3, 2, 1, 7)])
def test_global_avg_pool_matches_torch_adaptive_avg_pool(shape, rng):
    x = rng.standard_normal(shape)
    x_before = x.copy()
    out, cache = global_avg_pool2d_forward(x)
    dout = rng.standard_normal(out.shape)
    dout_before = dout.copy()
    dx = global_avg_pool2d_backward(dout, cache)
    ref_out, ref = torch_forward_backward(lambda x: F.adaptive_avg_pool2d(x, 1), {"x": x}, dout)
    np.testing.assert_allclose(out, ref_out, **TIGHT)
    np.testing.assert_allclose(dx, ref["x"], **TIGHT)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dout, dout_before)
    dx[...] = 0.0  # the gradient is a writable array of its own, not a broadcast view
    # the same as average pooling with one window the size of the map
    out_avg, cache_avg = avg_pool2d_forward(x, shape[2:])
    np.testing.assert_allclose(out, out_avg, **TIGHT)
    np.testing.assert_allclose(global_avg_pool2d_backward(dout, cache),
                               avg_pool2d_backward(dout, cache_avg), **TIGHT)


def test_global_avg_pool_layer_gradients_and_a_wrong_share_fails(rng):
    layer = GlobalAvgPool2d()
    x = rng.standard_normal((2, 3, 4, 5))
    dout = rng.standard_normal((2, 3, 1, 1))
    check_module_gradients(layer, x, dout)
    assert layer.num_parameters() == 0
    f = lambda x: global_avg_pool2d_forward(x)[0]  # noqa: E731
    wrong = np.broadcast_to(dout, x.shape).copy()  # forgetting the 1/(H*W)
    with pytest.raises(GradientCheckError):
        check_gradients(f, {"x": x}, {"x": wrong}, dout)


def test_global_avg_pool_bad_input(rng):
    with pytest.raises(ValueError, match=r"x: expected a 4-D array"):
        global_avg_pool2d_forward(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="non-empty"):
        global_avg_pool2d_forward(np.zeros((2, 3, 0, 4)))
    _, cache = global_avg_pool2d_forward(rng.standard_normal((2, 3, 4, 4)))
    with pytest.raises(ValueError, match=r"dout: expected shape \(2, 3, 1, 1\), got \(2, 3\)"):
        global_avg_pool2d_backward(np.zeros((2, 3)), cache)


# --- stochastic pooling ------------------------------------------------------------------------

from dlbook.pool import stochastic_pool2d_backward, stochastic_pool2d_forward  # noqa: E402

STOCHASTIC_CASES = [((2, 3, 6, 8), 2, None), ((1, 2, 7, 5), 3, 2), ((2, 1, 5, 9), (2, 3), (1, 2))]


def stochastic_by_definition(x, kernel_size, stride, seed):
    """The definition, one window at a time: u ~ U[0, 1) per window in output order, and the entry
    k with a_0 + ... + a_{k-1} <= u * sum(a) < a_0 + ... + a_k."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    if stride is None:
        sh, sw = kh, kw
    else:
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
    N, C, H, W = x.shape
    OH, OW = (H - kh) // sh + 1, (W - kw) // sw + 1
    draw = np.random.default_rng(seed)
    out, arg = np.zeros((N, C, OH, OW)), np.zeros((N, C, OH, OW), dtype=int)
    for n in range(N):
        for c in range(C):
            for r in range(OH):
                for s in range(OW):
                    window = x[n, c, r * sh:r * sh + kh, s * sw:s * sw + kw].ravel()
                    u, acc = draw.random(), 0.0
                    total = float(np.cumsum(window)[-1])
                    for k, a in enumerate(window):
                        acc += a
                        if u * total < acc:
                            out[n, c, r, s], arg[n, c, r, s] = a, k
                            break
    return out, arg


def torch_gather(x, kernel_size, stride, arg, dout):
    """out and dx from torch.autograd through gathering the drawn entry of every window."""
    kernel = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    N, C = x.shape[:2]
    OH, OW = arg.shape[2:]

    def fn(x):
        cols = F.unfold(x, kernel, stride=kernel if stride is None else stride)
        cols = cols.reshape(N, C, kernel[0] * kernel[1], OH, OW)
        return torch.gather(cols, 2, torch.from_numpy(arg)[:, :, None]).squeeze(2)

    out, grads = torch_forward_backward(fn, {"x": x}, dout)
    return out, grads["x"]


@pytest.mark.parametrize("x_shape, kernel, stride", STOCHASTIC_CASES)
def test_stochastic_pool_draws_as_defined(x_shape, kernel, stride, rng):
    x = rng.random(x_shape) * (rng.random(x_shape) < 0.7)  # non-negative, with zeros
    out, (arg, _, _) = stochastic_pool2d_forward(x, kernel, stride, rng=np.random.default_rng(7))
    ref_out, ref_arg = stochastic_by_definition(x, kernel, stride, seed=7)
    np.testing.assert_array_equal(arg, ref_arg)
    np.testing.assert_array_equal(out, ref_out)
    # negative case: another seed draws other positions somewhere
    other, _ = stochastic_pool2d_forward(x, kernel, stride, rng=np.random.default_rng(8))
    assert not np.array_equal(other, ref_out)


@pytest.mark.parametrize("x_shape, kernel, stride", STOCHASTIC_CASES)
def test_stochastic_pool_backward_matches_torch_gather(x_shape, kernel, stride, rng):
    x = rng.random(x_shape)
    out, cache = stochastic_pool2d_forward(x, kernel, stride, rng=rng)
    dout = rng.standard_normal(out.shape)
    x_copy, dout_copy = x.copy(), dout.copy()
    dx = stochastic_pool2d_backward(dout, cache)
    ref_out, ref_dx = torch_gather(x, kernel, stride, cache[0], dout)
    np.testing.assert_allclose(out, ref_out, **TIGHT)
    np.testing.assert_allclose(dx, ref_dx, **TIGHT)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(dout, dout_copy)
    # negative case: routing to a different entry of each window is caught
    wrong_arg = (cache[0] + 1) % np.prod(np.atleast_1d(kernel) * np.ones(2, int))
    _, wrong_dx = torch_gather(x, kernel, stride, wrong_arg, dout)
    assert not np.allclose(dx, wrong_dx, **TIGHT)


def test_stochastic_pool_expectation_is_the_probability_weighted_average():
    x = np.array([[[[1.0, 2.0, 0.0, 5.0],
                    [3.0, 4.0, 1.0, 0.0]]]])  # (1, 1, 2, 4): two 2 x 2 windows
    windows = [np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 5.0, 1.0, 0.0])]
    draws = 20_000
    batch = np.broadcast_to(x, (draws, 1, 2, 4))
    out, (arg, _, _) = stochastic_pool2d_forward(batch, 2, rng=np.random.default_rng(0))
    for k, a in enumerate(windows):
        p = a / a.sum()
        expected = float(p @ a)  # sum a^2 / sum a
        sample = out[:, 0, 0, k]
        standard_error = sample.std() / np.sqrt(draws)
        assert abs(sample.mean() - expected) < 5 * standard_error
        frequencies = np.bincount(arg[:, 0, 0, k], minlength=4) / draws
        assert np.all(np.abs(frequencies - p) < 5 * np.sqrt(p * (1 - p) / draws) + 1e-12)
        # negative cases: the Monte-Carlo check tells this apart from average and max pooling
        assert abs(sample.mean() - a.mean()) > 5 * standard_error
        assert abs(sample.mean() - a.max()) > 5 * standard_error


def test_stochastic_pool_edge_cases_and_bad_input(rng):
    x = np.zeros((1, 1, 2, 4))
    x[0, 0, 1, 3] = 2.0  # first window all zeros, second has one positive entry
    out, cache = stochastic_pool2d_forward(x, 2, rng=rng)
    np.testing.assert_array_equal(out, [[[[0.0, 2.0]]]])
    dx = stochastic_pool2d_backward(np.array([[[[3.0, 5.0]]]]), cache)
    np.testing.assert_array_equal(dx, [[[[3.0, 0, 0, 0], [0, 0, 0, 5.0]]]])
    with pytest.raises(ValueError, match="x: expected non-negative"):
        stochastic_pool2d_forward(-np.ones((1, 1, 2, 2)), 2, rng=rng)
    with pytest.raises(ValueError, match="x: expected non-negative"):
        stochastic_pool2d_forward(np.full((1, 1, 2, 2), np.nan), 2, rng=rng)
    with pytest.raises(ValueError, match="rng"):
        stochastic_pool2d_forward(np.ones((1, 1, 2, 2)), 2, rng=0)
    with pytest.raises(ValueError, match="x"):
        stochastic_pool2d_forward(np.ones((2, 2)), 2, rng=rng)
    with pytest.raises(ValueError, match="dout"):
        stochastic_pool2d_backward(np.ones((1, 1, 1, 3)), cache)
