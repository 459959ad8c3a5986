"""dlbook.imbalance: samplers against their definitions, cost-sensitive losses against torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TIGHT, torch_forward_backward
from dlbook.imbalance import (balanced_class_weights, class_balanced_sample, class_indices,
                              cost_matrix_from_confusion, cost_matrix_from_counts,
                              expected_cost_backward, expected_cost_forward, label_shuffling,
                              random_oversample, random_undersample,
                              weighted_cross_entropy_backward, weighted_cross_entropy_forward)

SAMPLERS = [random_oversample, random_undersample, label_shuffling,
            lambda y, rng: class_balanced_sample(y, 50, rng=rng)]


def _long_tail(rng, sizes=(40, 12, 5, 1)):
    y = np.repeat(np.arange(len(sizes)), sizes)
    return rng.permutation(y)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_samplers_are_deterministic_under_a_seed(sampler, rng):
    y = _long_tail(rng)
    a = sampler(y, rng=np.random.default_rng(5))
    b = sampler(y, rng=np.random.default_rng(5))
    c = sampler(y, rng=np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype.kind == "i" and a.min() >= 0 and a.max() < len(y)


def test_label_shuffling_gives_every_class_the_largest_count(rng):
    # The source's toy example: class sizes 3, 5, 10 give 30 entries, 10 per class.
    y = rng.permutation(np.repeat([0, 1, 2], [3, 5, 10]))
    idx = label_shuffling(y, rng=rng)
    assert len(idx) == 30
    np.testing.assert_array_equal(np.bincount(y[idx]), [10, 10, 10])
    # Within a class, each example appears floor(M / n_c) or ceil(M / n_c) times.
    uses = np.bincount(idx, minlength=len(y))
    for c, members in class_indices(y).items():
        m, n = 10, len(members)
        assert set(uses[members]) <= {m // n, -(-m // n)}
        assert uses[members].sum() == m
    # The largest class is a permutation of itself: each of its examples exactly once.
    assert set(uses[y == 2]) == {1}
    # Negative case: plain shuffling keeps the imbalance, and the equal-count check sees it.
    plain = rng.permutation(len(y))
    assert not np.array_equal(np.bincount(y[plain]), [10, 10, 10])


def test_over_and_under_sampling_follow_their_definitions(rng):
    y = _long_tail(rng)
    over = random_oversample(y, rng=rng)
    np.testing.assert_array_equal(np.bincount(y[over]), [40, 40, 40, 40])
    assert set(over) == set(range(len(y)))  # every original example is kept
    under = random_undersample(y, rng=rng)
    np.testing.assert_array_equal(np.bincount(y[under]), [1, 1, 1, 1])
    assert len(set(under)) == len(under)     # drawn without replacement
    y2 = _long_tail(rng, sizes=(30, 7, 9))
    under2 = random_undersample(y2, rng=rng)
    np.testing.assert_array_equal(np.bincount(y2[under2]), [7, 7, 7])


def test_class_balanced_sampling_draws_classes_uniformly(rng):
    y = _long_tail(rng, sizes=(500, 50, 5))
    idx = class_balanced_sample(y, 30000, rng=rng)
    freq = np.bincount(y[idx]) / len(idx)
    # Binomial standard error of a 1/3 share with 30000 draws is 0.0027: allow 5 of them.
    np.testing.assert_allclose(freq, 1 / 3, atol=0.014)
    # Within the rarest class every member is drawn about equally often (1/15 of all draws).
    rare = np.bincount(idx, minlength=len(y))[y == 2] / len(idx)
    np.testing.assert_allclose(rare, 1 / 15, atol=0.008)
    # Negative case: uniform sampling over examples reproduces the imbalance and fails the check.
    plain = rng.integers(0, len(y), 30000)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(np.bincount(y[plain]) / 30000, 1 / 3, atol=0.014)


def test_bad_labels(rng):
    for sampler in SAMPLERS:
        with pytest.raises(ValueError, match="y: expected integer"):
            sampler(np.array([0.0, 1.0]), rng=rng)
        with pytest.raises(ValueError, match="y: expected a non-empty 1-D"):
            sampler(np.zeros((2, 2), dtype=int), rng=rng)
    with pytest.raises(ValueError, match="num_samples"):
        class_balanced_sample(np.array([0, 1]), -1, rng=rng)


def test_cost_matrices_from_the_sources_examples():
    # Class sizes 3 : 2 : 1; scaled by 6 the costs are integers.
    cost = cost_matrix_from_counts([3, 2, 1])
    np.testing.assert_allclose(cost, [[0, 2 / 3, 1 / 3], [3 / 2, 0, 1 / 2], [3, 2, 0]], rtol=1e-15)
    np.testing.assert_allclose(6 * cost, [[0, 4, 2], [9, 0, 3], [18, 12, 0]], rtol=1e-15)
    # From a confusion matrix: error rates 4/8, 6/9, 5/26, each row scaled by its share.
    confusion = np.array([[4, 1, 3], [2, 3, 4], [3, 2, 21]])
    rates = np.array([4 / 8, 6 / 9, 5 / 26])
    expected = (confusion - np.diag(np.diag(confusion))) * (rates / rates.sum())[:, None]
    got = cost_matrix_from_confusion(confusion)
    np.testing.assert_allclose(got, expected, rtol=1e-15)
    np.testing.assert_array_equal(np.rint(100 * got), [[0, 37, 110], [98, 0, 196], [42, 28, 0]])
    np.testing.assert_allclose(balanced_class_weights([3, 2, 1]), [6 / 9, 1.0, 2.0], rtol=1e-15)
    with pytest.raises(ValueError, match="confusion"):
        cost_matrix_from_confusion(np.ones((2, 3)))
    with pytest.raises(ValueError, match="counts"):
        cost_matrix_from_counts([3, 0, 1])


@pytest.mark.parametrize("n, k", [(7, 3), (1, 2), (12, 5)])
def test_weighted_cross_entropy_matches_torch(n, k, rng):
    logits = 3.0 * rng.standard_normal((n, k))
    targets = rng.integers(0, k, n)
    weight = rng.uniform(0.1, 5.0, k)
    dout = float(rng.standard_normal())
    loss, cache = weighted_cross_entropy_forward(logits, targets, weight)
    loss_t, grads = torch_forward_backward(
        lambda logits, targets: F.cross_entropy(logits, targets, weight=torch.from_numpy(weight)),
        dict(logits=logits, targets=targets), np.array(dout))
    assert loss == pytest.approx(float(loss_t), rel=1e-12)
    dlogits = weighted_cross_entropy_backward(cache, dout)
    np.testing.assert_allclose(dlogits, grads["logits"], **TIGHT)
    # Negative case: dividing by N instead of the summed weights (a plain mean) is told apart.
    w = weight[targets]
    if not np.isclose(w.sum(), n):
        plain_mean = dlogits * w.sum() / n
        with pytest.raises(AssertionError):
            np.testing.assert_allclose(plain_mean, grads["logits"], **TIGHT)


def test_weighted_cross_entropy_bad_input(rng):
    logits = rng.standard_normal((4, 3))
    y = np.array([0, 1, 2, 1])
    with pytest.raises(ValueError, match=r"weight: expected shape \(3,\), got \(4,\)"):
        weighted_cross_entropy_forward(logits, y, np.ones(4))
    with pytest.raises(ValueError, match="weight: expected non-negative"):
        weighted_cross_entropy_forward(logits, y, -np.ones(3))
    with pytest.raises(ValueError, match="targets"):
        weighted_cross_entropy_forward(logits, np.array([0, 1, 3, 1]), np.ones(3))


def _central_differences(f, x, h=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        grad[i] = (f(xp) - f(xm)) / (2 * h)
    return grad


def test_expected_cost_gradient_agrees_with_central_differences(rng):
    logits = rng.standard_normal((6, 4))
    targets = rng.integers(0, 4, 6)
    cost = rng.uniform(0.0, 3.0, (4, 4))
    np.fill_diagonal(cost, 0.0)
    dout = float(rng.standard_normal())
    logits_before = logits.copy()
    loss, cache = expected_cost_forward(logits, targets, cost)
    dlogits = expected_cost_backward(cache, dout)
    numeric = dout * _central_differences(lambda z: expected_cost_forward(z, targets, cost)[0],
                                          logits)
    np.testing.assert_allclose(dlogits, numeric, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(logits, logits_before)
    # Negative case: forgetting the softmax's coupling term (d/dz_k = p_k C_k) fails.
    p, c, _ = cache
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(dout * p * c / 6, numeric, rtol=1e-6, atol=1e-9)


def test_expected_cost_against_torch_autograd_and_its_zero_one_case(rng):
    logits = rng.standard_normal((5, 3))
    targets = rng.integers(0, 3, 5)
    cost = rng.uniform(0.0, 2.0, (3, 3))
    dout = float(rng.standard_normal())
    loss, cache = expected_cost_forward(logits, targets, cost)
    loss_t, grads = torch_forward_backward(
        lambda logits: (F.softmax(logits, 1) * torch.from_numpy(cost)[torch.from_numpy(targets)])
        .sum(1).mean(), dict(logits=logits), np.array(dout))
    assert loss == pytest.approx(float(loss_t), rel=1e-13)
    np.testing.assert_allclose(expected_cost_backward(cache, dout), grads["logits"], **TIGHT)
    # With C = 1 - I the loss is the expected error rate 1 - mean p(true class).
    zero_one, _ = expected_cost_forward(logits, targets, 1.0 - np.eye(3))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert zero_one == pytest.approx(1.0 - p[np.arange(5), targets].mean(), rel=1e-14)
    with pytest.raises(ValueError, match=r"cost: expected shape \(3, 3\)"):
        expected_cost_forward(logits, targets, np.ones((2, 2)))
