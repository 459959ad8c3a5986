"""dlbook.lrn: naive == vectorised == torch's local_response_norm, forward and backward, float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TIGHT, torch_forward_backward
from dlbook.gradcheck import GradientCheckError, check_gradients, check_module_gradients
from dlbook.lrn import (LocalResponseNorm, _window_sum, local_response_norm_backward,
                        local_response_norm_backward_naive, local_response_norm_forward,
                        local_response_norm_forward_naive)

# (x shape, size, alpha, beta, k): AlexNet's settings in torch's convention, even and odd
# windows, a window wider than the channels, size 1, 3-D and 5-D inputs, large alpha.
CASES = [
    ((2, 7, 3, 4), 5, 5e-4, 0.75, 2.0),
    ((2, 6, 3, 3), 4, 0.3, 0.75, 1.0),
    ((1, 3, 2, 5), 7, 1.0, 0.5, 0.5),
    ((3, 5, 4), 1, 0.2, 1.5, 1.0),
    ((2, 9, 2, 3, 2), 3, 2.0, 0.6, 1.3),
    ((2, 8, 1, 1), 2, 1.0, 0.75, 0.1),
]


@pytest.mark.parametrize("shape, size, alpha, beta, k", CASES)
def test_naive_equals_fast_equals_torch(shape, size, alpha, beta, k, rng):
    x = 2 * rng.standard_normal(shape)
    x_before = x.copy()
    out, cache = local_response_norm_forward(x, size, alpha, beta, k)
    out_n, cache_n = local_response_norm_forward_naive(x, size, alpha, beta, k)
    dout = rng.standard_normal(out.shape)
    dout_before = dout.copy()
    dx = local_response_norm_backward(dout, cache)
    dx_n = local_response_norm_backward_naive(dout, cache_n)
    ref_out, ref = torch_forward_backward(
        lambda x: F.local_response_norm(x, size, alpha, beta, k), {"x": x}, dout)
    for ours in (out, out_n):
        np.testing.assert_allclose(ours, ref_out, **TIGHT)
    for ours in (dx, dx_n):
        np.testing.assert_allclose(ours, ref["x"], **TIGHT)
    np.testing.assert_array_equal(x, x_before)  # arguments unmodified
    np.testing.assert_array_equal(dout, dout_before)


def test_central_differences_and_a_wrong_window_fails(rng):
    x = rng.standard_normal((2, 6, 2, 2))
    out, cache = local_response_norm_forward(x, 3, 0.8, 0.75, 1.0)
    dout = rng.standard_normal(out.shape)
    f = lambda x: local_response_norm_forward(x, 3, 0.8, 0.75, 1.0)[0]  # noqa: E731
    check_gradients(f, {"x": x}, {"x": local_response_norm_backward(dout, cache)}, dout)
    # negative case: spreading t over the forward window instead of its reverse. With an even
    # size the two differ, and the check fails.
    x4 = rng.standard_normal((2, 6, 2, 2))
    out4, (xc, s, size, alpha, beta) = local_response_norm_forward(x4, 4, 0.8, 0.75, 1.0)
    dout4 = rng.standard_normal(out4.shape)
    t = dout4 * xc * s ** (-beta - 1)
    wrong = dout4 * s ** -beta - (2 * alpha * beta / size) * xc * _window_sum(t, 2, 1)
    f4 = lambda x: local_response_norm_forward(x, 4, 0.8, 0.75, 1.0)[0]  # noqa: E731
    with pytest.raises(GradientCheckError):
        check_gradients(f4, {"x": x4}, {"x": wrong}, dout4)


def test_alexnet_settings_in_torchs_convention_match_the_papers_formula(rng):
    # the paper: b = a / (2 + 1e-4 * sum over 5 channels of a^2)^0.75, alpha not divided by n
    a = 40 * rng.standard_normal((2, 8, 3, 3))
    padded = np.pad(a**2, [(0, 0), (2, 2), (0, 0), (0, 0)])
    paper = a / (2 + 1e-4 * sum(padded[:, i:i + 8] for i in range(5))) ** 0.75
    out, _ = local_response_norm_forward(a, 5, alpha=5 * 1e-4, beta=0.75, k=2.0)
    np.testing.assert_allclose(out, paper, **TIGHT)
    wrong, _ = local_response_norm_forward(a, 5, alpha=1e-4, beta=0.75, k=2.0)
    assert not np.allclose(wrong, paper, **TIGHT)  # the paper's alpha taken literally


def test_l2_normalisation_needs_a_window_covering_every_channel(rng):
    # k = 0, beta = 1/2 and alpha = 1 in the paper's convention (alpha_torch = size):
    # with size >= 2C - 1 every window holds all C channels and out = x / ||x|| over channels;
    # with size = C the windows are clipped at the ends, and it is not.
    x = rng.standard_normal((2, 8, 3, 3))
    l2 = x / np.sqrt((x**2).sum(axis=1, keepdims=True))
    C = x.shape[1]
    wide, _ = local_response_norm_forward(x, 2 * C, alpha=2 * C, beta=0.5, k=0.0)
    np.testing.assert_allclose(wide, l2, **TIGHT)
    narrow, _ = local_response_norm_forward(x, C, alpha=C, beta=0.5, k=0.0)
    assert not np.allclose(narrow, l2, rtol=1e-3)


def test_layer_matches_torch_module_and_central_differences(rng):
    layer = LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
    x = 10 * rng.standard_normal((2, 6, 3, 3))
    out = layer(x)
    ref = torch.nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)(torch.from_numpy(x))
    np.testing.assert_allclose(out, ref.numpy(), **TIGHT)
    check_module_gradients(layer, x, rng.standard_normal(out.shape))
    assert layer.num_parameters() == 0
    assert repr(layer) == "LocalResponseNorm(5, alpha=0.0005, beta=0.75, k=2.0)"
    with pytest.raises(RuntimeError, match="before forward"):
        LocalResponseNorm(3).backward(np.zeros((1, 1, 1)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(x=np.zeros((2, 3)), size=3), "x: expected an array"),
    (dict(x=np.zeros((2, 3, 4)), size=0), "size"),
    (dict(x=np.zeros((2, 3, 4)), size=2.0), "size"),
    (dict(x=np.zeros((2, 3, 4)), size=3, alpha=float("nan")), "alpha"),
])
def test_bad_input_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        local_response_norm_forward(**kwargs)
    with pytest.raises(ValueError, match=match):
        local_response_norm_forward_naive(**kwargs)


def test_bad_dout_raises(rng):
    _, cache = local_response_norm_forward(rng.standard_normal((2, 3, 4)), 3)
    with pytest.raises(ValueError, match=r"dout: expected shape \(2, 3, 4\)"):
        local_response_norm_backward(np.zeros((2, 4, 3)), cache)
