"""dlbook.compress.lowrank: truncated SVD against torch.linalg.svd, Eckart-Young, and the two-layer
replacement run through dlbook.linear / dlbook.conv and torch.nn.functional."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TIGHT
from dlbook.compress import low_rank, low_rank_error
from dlbook.conv import conv2d_forward
from dlbook.linear import linear_forward


def torch_best_rank_k(w_mat: np.ndarray, k: int) -> np.ndarray:
    u, s, vh = torch.linalg.svd(torch.from_numpy(w_mat), full_matrices=False)
    return (u[:, :k] * s[:k] @ vh[:k]).numpy()


@pytest.mark.parametrize("shape, rank", [((7, 5), 1), ((7, 5), 3), ((7, 5), 5), ((4, 9), 2),
                                         ((32, 64), 8)])
def test_linear_factors_match_torch_svd(shape, rank, rng):
    w = rng.standard_normal(shape)
    w0 = w.copy()
    w_first, w_second = low_rank(w, rank)
    assert w_first.shape == (rank, shape[1]) and w_second.shape == (shape[0], rank)
    assert w_first.size + w_second.size == rank * sum(shape)
    np.testing.assert_allclose(w_second @ w_first, torch_best_rank_k(w, rank), **TIGHT)
    np.testing.assert_array_equal(w, w0)
    if rank == min(shape):
        np.testing.assert_allclose(w_second @ w_first, w, **TIGHT)


@pytest.mark.parametrize("shape, rank", [((7, 5), 1), ((7, 5), 3), ((16, 3, 3, 3), 4),
                                         ((6, 2, 1, 3), 2)])
def test_eckart_young_error(shape, rank, rng):
    w = rng.standard_normal(shape)
    w_mat = w.reshape(shape[0], -1)
    first, second = low_rank(w, rank)
    approx = second.reshape(shape[0], rank) @ first.reshape(rank, -1)
    sigma = torch.linalg.svdvals(torch.from_numpy(w_mat)).numpy()
    expected = np.sqrt(np.sum(sigma[rank:] ** 2))
    np.testing.assert_allclose(np.linalg.norm(w_mat - approx), expected, rtol=1e-10)
    np.testing.assert_allclose(low_rank_error(w, rank), expected, rtol=1e-10)
    # negative case: another rank-k matrix (a perturbed factor) is worse, and the check sees it
    worse = (second.reshape(shape[0], rank) + 1e-3) @ first.reshape(rank, -1)
    assert np.linalg.norm(w_mat - worse) > expected
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(np.linalg.norm(w_mat - worse), expected, rtol=1e-10)


def test_two_linear_layers_equal_the_reconstructed_layer(rng):
    x = rng.standard_normal((6, 10))
    w, b = rng.standard_normal((8, 10)), rng.standard_normal(8)
    w_first, w_second = low_rank(w, 3)
    hidden, _ = linear_forward(x, w_first)  # (N, k)
    out, _ = linear_forward(hidden, w_second, b)  # bias on the second layer
    out_t = F.linear(F.linear(torch.from_numpy(x), torch.from_numpy(w_first)),
                     torch.from_numpy(w_second), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(out, out_t, **TIGHT)
    np.testing.assert_allclose(out, linear_forward(x, w_second @ w_first, b)[0], **TIGHT)
    with pytest.raises(AssertionError):  # the full-rank layer computes something else
        np.testing.assert_allclose(out, linear_forward(x, w, b)[0], **TIGHT)


CONV_CASES = [((2, 3, 7, 6), (5, 3, 3, 3), 2, 1, 1),
              ((2, 2, 8, 9), (4, 2, 3, 2), 3, (2, 1), (1, 0)),
              ((1, 4, 5, 5), (6, 4, 1, 1), 4, 1, 0), ((3, 1, 6, 6), (8, 1, 3, 3), 8, 2, 1)]


@pytest.mark.parametrize("x_shape, w_shape, rank, stride, padding", CONV_CASES)
def test_conv_as_filter_bank_then_1x1(x_shape, w_shape, rank, stride, padding, rng):
    x = rng.standard_normal(x_shape)
    w, b = rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    f, c, kh, kw = w_shape
    w_first, w_second = low_rank(w, rank)
    assert w_first.shape == (rank, c, kh, kw) and w_second.shape == (f, rank, 1, 1)
    maps, _ = conv2d_forward(x, w_first, None, stride, padding)  # (N, k, OH, OW)
    out, _ = conv2d_forward(maps, w_second, b)  # 1x1 conv mixes the k maps into F
    w_k = (w_second[:, :, 0, 0] @ w_first.reshape(rank, -1)).reshape(w_shape)
    best = torch_best_rank_k(w.reshape(f, -1), rank)
    np.testing.assert_allclose(w_k.reshape(f, -1), best, **TIGHT)
    np.testing.assert_allclose(out, conv2d_forward(x, w_k, b, stride, padding)[0], **TIGHT)
    maps_t = F.conv2d(torch.from_numpy(x), torch.from_numpy(w_first), None, stride, padding)
    out_t = F.conv2d(maps_t, torch.from_numpy(w_second), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(out, out_t, **TIGHT)
    if rank < min(f, c * kh * kw):  # truncated: not the original layer
        with pytest.raises(AssertionError):
            np.testing.assert_allclose(out, conv2d_forward(x, w, b, stride, padding)[0], **TIGHT)


@pytest.mark.parametrize("shape, rank, match", [((5, 4), 0, r"rank: expected an int in \[1, 4\]"),
                                                ((5, 4), 5, r"rank: expected an int in \[1, 4\]"),
                                                ((5, 4), 2.0, "rank: expected an int"),
                                                ((5, 4, 3), 1, "w: expected a linear"),
                                                ((2, 3, 3, 3), 3,
                                                 r"rank: expected an int in \[1, 2\]")])
def test_bad_input(shape, rank, match, rng):
    w = rng.standard_normal(shape)
    with pytest.raises(ValueError, match=match):
        low_rank(w, rank)
    with pytest.raises(ValueError, match=match):
        low_rank_error(w, rank)
