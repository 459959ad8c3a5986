"""dlbook.compress.binary: BinaryConnect and XNOR-Net scaling against torch autograd of the
straight-through estimator written the usual torch way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TIGHT
from dlbook.compress import (binarize_backward, binarize_forward, binarize_stochastic, binary_sign,
                             clip_shadow_weights, xnor_binarize_backward, xnor_binarize_forward,
                             xnor_dot)


def ste_sign(w: torch.Tensor) -> torch.Tensor:
    """sign(w) forward (sign(0) = +1), gradient of clamp(w, -1, 1) backward."""
    hard = torch.clamp(w, -1.0, 1.0)
    return hard + (torch.where(w >= 0, 1.0, -1.0) - hard).detach()


def awkward_weights(rng, shape):
    """Mostly inside [-1, 1], some outside, and the edge cases 0, -1, +1."""
    w = rng.standard_normal(shape) * 0.8
    flat = w.reshape(-1)
    flat[:3] = [0.0, -1.0, 1.0]
    return w


def test_sign_of_zero_is_plus_one(rng):
    w = awkward_weights(rng, (5, 4))
    b = binary_sign(w)
    assert set(np.unique(b)) == {-1.0, 1.0} and b.reshape(-1)[0] == 1.0
    nonzero = w != 0
    np.testing.assert_array_equal(b[nonzero], torch.sign(torch.from_numpy(w)).numpy()[nonzero])
    assert torch.sign(torch.zeros(1)).item() == 0.0  # why we do not use torch's (or numpy's) sign


@pytest.mark.parametrize("shape", [(7,), (6, 5), (4, 3, 3, 2)])
def test_binaryconnect_matches_torch_ste(shape, rng):
    w = awkward_weights(rng, shape)
    dout = rng.standard_normal(shape)
    w0, dout0 = w.copy(), dout.copy()
    wb, cache = binarize_forward(w)
    dw = binarize_backward(dout, cache)
    w_t = torch.from_numpy(w).requires_grad_(True)
    wb_t = ste_sign(w_t)
    (wb_t * torch.from_numpy(dout)).sum().backward()
    np.testing.assert_array_equal(wb, wb_t.detach().numpy())
    np.testing.assert_allclose(dw, w_t.grad.numpy(), **TIGHT)
    np.testing.assert_array_equal(dw[np.abs(w) > 1], 0.0)
    inside = np.abs(w) <= 1  # the gate is the closed interval [-1, 1]
    np.testing.assert_array_equal(dw[inside], dout[inside])
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(dout, dout0)
    with pytest.raises(AssertionError):  # negative case: the ungated identity is caught
        np.testing.assert_allclose(dout, w_t.grad.numpy(), **TIGHT)


@pytest.mark.parametrize("shape", [(5, 3, 3, 3), (6, 4), (2, 1, 1, 5)])
def test_xnor_matches_torch_autograd(shape, rng):
    w = awkward_weights(rng, shape) * 1.3
    dout = rng.standard_normal(shape)
    w0 = w.copy()
    w_hat, cache = xnor_binarize_forward(w)
    dw = xnor_binarize_backward(dout, cache)
    w_t = torch.from_numpy(w).requires_grad_(True)
    dims = tuple(range(1, len(shape)))
    w_hat_t = w_t.abs().mean(dim=dims, keepdim=True) * ste_sign(w_t)
    (w_hat_t * torch.from_numpy(dout)).sum().backward()
    np.testing.assert_allclose(w_hat, w_hat_t.detach().numpy(), **TIGHT)
    np.testing.assert_allclose(dw, w_t.grad.numpy(), **TIGHT)
    np.testing.assert_array_equal(w, w0)
    alpha = np.abs(w).reshape(shape[0], -1).mean(axis=1)
    np.testing.assert_allclose(np.abs(w_hat).reshape(shape[0], -1).max(axis=1), alpha, **TIGHT)
    with pytest.raises(AssertionError):  # negative case: forgetting alpha's own gradient
        alpha_b = alpha.reshape((-1,) + (1,) * (len(shape) - 1))
        np.testing.assert_allclose(dout * alpha_b * (np.abs(w) <= 1), w_t.grad.numpy(), **TIGHT)


def test_alpha_is_the_least_squares_scale(rng):
    w = rng.standard_normal((3, 2, 3, 3))
    w_hat, _ = xnor_binarize_forward(w)
    b = binary_sign(w)
    for f in range(3):
        best = np.sum((w[f] - w_hat[f]) ** 2)
        for alpha in np.abs(w_hat[f]).max() * np.array([0.9, 0.99, 1.01, 1.1]):
            assert np.sum((w[f] - alpha * b[f]) ** 2) > best
        # the normal equation of min_a ||w - a b||^2: sum b (w - a b) = 0
        np.testing.assert_allclose(np.sum(b[f] * (w[f] - w_hat[f])), 0.0, atol=1e-12)


def test_stochastic_binarisation(rng):
    w = np.array([-2.0, -1.0, -0.5, 0.0, 0.3, 1.0, 1.5])
    draws = np.stack([binarize_stochastic(w, rng) for _ in range(20000)])
    assert set(np.unique(draws)) == {-1.0, 1.0}
    np.testing.assert_array_equal(draws[:, [0, 1]], -1.0)  # p(+1) = 0
    np.testing.assert_array_equal(draws[:, [5, 6]], 1.0)  # p(+1) = 1
    expected = np.clip(w, -1, 1)  # E[w_b] = 2 p - 1 = clip(w, -1, 1)
    bound = 5 * np.sqrt((1 - expected**2) / draws.shape[0]) + 1e-12  # five standard errors
    assert np.all(np.abs(draws.mean(axis=0) - expected) <= bound)
    again = binarize_stochastic(w, np.random.default_rng(3))
    np.testing.assert_array_equal(again, binarize_stochastic(w, np.random.default_rng(3)))


def test_clip_shadow_weights(rng):
    w = rng.standard_normal(50) * 2
    w0 = w.copy()
    clipped = clip_shadow_weights(w)
    np.testing.assert_array_equal(clipped, torch.clamp(torch.from_numpy(w), -1, 1).numpy())
    np.testing.assert_array_equal(w, w0)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 64, 100])
def test_xnor_popcount_dot_equals_the_pm1_dot(n, rng):
    a = np.where(rng.random(n) < 0.5, -1, 1)
    b = np.where(rng.random(n) < 0.5, -1, 1)
    a_bits, b_bits = np.packbits(a > 0), np.packbits(b > 0)
    assert xnor_dot(a_bits, b_bits, n) == int(a @ b)
    flipped = b.copy()
    flipped[0] *= -1
    assert xnor_dot(a_bits, np.packbits(flipped > 0), n) != int(a @ b)  # one bit changes it by 2


@pytest.mark.parametrize("call, match", [
    (lambda: xnor_binarize_forward(np.ones(4)), "w: expected filters along axis 0"),
    (lambda: binarize_backward(np.ones(3), binarize_forward(np.ones(4))[1]),
     r"dout: expected shape \(4,\)"),
    (lambda: xnor_binarize_backward(np.ones((2, 2)), xnor_binarize_forward(np.ones((2, 3)))[1]),
     r"dout: expected shape \(2, 3\)"),
    (lambda: xnor_dot(np.zeros(2, np.uint8), np.zeros(3, np.uint8), 8),
     "a_bits, b_bits: expected two"),
    (lambda: xnor_dot(np.zeros(2, np.uint8), np.zeros(2, np.uint8), 17),
     r"n: expected a length in \[0, 16\]"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
