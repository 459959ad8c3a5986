"""dlbook.preprocess: statistics come from the training split alone; whitening by definition."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from dlbook import preprocess as P


def _splits(rng, shape=(40, 6)):
    train = rng.standard_normal(shape) * np.arange(1, shape[-1] + 1) + 3.0
    val = rng.standard_normal((15,) + shape[1:]) + 10.0  # deliberately shifted splits
    test = rng.standard_normal((9,) + shape[1:]) - 7.0
    return train, val, test


@pytest.mark.parametrize("make", [P.MeanSubtraction, P.Standardize])
def test_statistics_come_from_the_training_split_only(make, rng):
    train, val, test = _splits(rng)
    pre = make().fit(train)
    before = {k: v.copy() for k, v in vars(pre).items() if isinstance(v, np.ndarray)}
    for split in (val, test):
        pre.transform(split)
    for name, value in before.items():  # transforming other splits changes nothing fitted
        np.testing.assert_array_equal(getattr(pre, name), value)
    np.testing.assert_array_equal(pre.mean_, train.mean(axis=0, keepdims=True))
    leaky = make().fit(np.concatenate([train, val, test]))  # the mistake the chapter warns about
    assert not np.allclose(leaky.mean_, pre.mean_)


def test_mean_subtraction_definitions(rng):
    train, val, _ = _splits(rng, (30, 3, 4, 5))
    pre = P.MeanSubtraction().fit(train)
    np.testing.assert_allclose(pre.transform(val), val - train.mean(axis=0), rtol=1e-15)
    np.testing.assert_allclose(pre.transform(train).mean(axis=0), 0, atol=1e-13)
    per_channel = P.MeanSubtraction(axis=(0, 2, 3)).fit(train)
    assert per_channel.mean_.shape == (1, 3, 1, 1)
    np.testing.assert_allclose(per_channel.transform(train).mean(axis=(0, 2, 3)), 0, atol=1e-13)


def test_standardize_matches_sklearn(rng):
    train, val, test = _splits(rng)
    train[:, 2] = 4.0  # a constant feature: sklearn leaves it unscaled, so do we
    ours = P.Standardize().fit(train)
    theirs = StandardScaler().fit(train)
    for split in (train, val, test):
        np.testing.assert_allclose(ours.transform(split), theirs.transform(split), rtol=1e-12,
                                   atol=1e-12)
    z = ours.transform(train)
    np.testing.assert_allclose(np.delete(z.std(axis=0), 2), 1.0, rtol=1e-12)
    assert not np.allclose(ours.transform(val), StandardScaler().fit(val).transform(val))


@pytest.mark.parametrize("eps", [0.0, 1e-5, 0.1])
def test_pca_whitened_training_data_has_identity_covariance_up_to_eps(eps, rng):
    mix = rng.standard_normal((5, 5))
    train = rng.standard_normal((200, 5)) @ mix + 2.0
    pre = P.PCAWhitening(eps=eps).fit(train)
    z = pre.transform(train)
    cov = z.T @ z / len(z)
    lam = pre.eigenvalues_
    np.testing.assert_allclose(cov, np.diag(lam / (lam + eps)), atol=1e-10)
    if eps == 0.0:
        np.testing.assert_allclose(cov, np.eye(5), atol=1e-10)
    else:
        assert not np.allclose(cov, np.eye(5), atol=1e-3 * eps)
    assert np.all(np.diff(lam) <= 0)
    np.testing.assert_allclose(lam.sum(), np.trace(np.cov(train.T, bias=True)), rtol=1e-12)


def test_zca_is_pca_rotated_back_and_symmetric(rng):
    train = rng.standard_normal((300, 4)) @ rng.standard_normal((4, 4))
    val = rng.standard_normal((20, 4))
    pca = P.PCAWhitening(eps=1e-3).fit(train)
    zca = P.ZCAWhitening(eps=1e-3).fit(train)
    np.testing.assert_allclose(zca.transform(val), pca.transform(val) @ pca.components_.T,
                               rtol=1e-12, atol=1e-12)
    z = P.ZCAWhitening(eps=0.0).fit(train).transform(train)
    np.testing.assert_allclose(z.T @ z / len(z), np.eye(4), atol=1e-10)
    # ZCA's matrix W = U D^-1/2 U^T is symmetric; PCA's D^-1/2 U^T is not in general
    w_zca = zca.transform(np.eye(4) + zca.mean_)
    np.testing.assert_allclose(w_zca, w_zca.T, atol=1e-12)
    w_pca = pca.transform(np.eye(4) + pca.mean_)
    assert not np.allclose(w_pca, w_pca.T)


def test_pca_n_components_keeps_the_leading_axes(rng):
    train = rng.standard_normal((100, 6)) * np.array([5, 4, 3, 0.1, 0.1, 0.1])
    full = P.PCAWhitening(eps=0).fit(train)
    two = P.PCAWhitening(eps=0, n_components=2).fit(train)
    np.testing.assert_allclose(two.transform(train), full.transform(train)[:, :2], rtol=1e-12)


def test_per_example_mean_subtraction(rng):
    x = rng.standard_normal((4, 3, 2, 2)) + np.arange(4)[:, None, None, None]
    out = P.per_example_mean_subtraction(x)
    np.testing.assert_allclose(out.reshape(4, -1).mean(axis=1), 0, atol=1e-15)
    np.testing.assert_allclose(out, x - x.mean(axis=(1, 2, 3), keepdims=True), rtol=1e-14,
                               atol=1e-15)
    assert not np.allclose(out, P.MeanSubtraction().fit_transform(x))


def test_transform_does_not_modify_its_argument(rng):
    train, val, _ = _splits(rng)
    copy = val.copy()
    for pre in (P.MeanSubtraction(), P.Standardize(), P.PCAWhitening(), P.ZCAWhitening()):
        pre.fit(train).transform(val)
        np.testing.assert_array_equal(val, copy)


def test_bad_input(rng):
    train = rng.standard_normal((10, 3))
    with pytest.raises(RuntimeError, match="call fit"):
        P.Standardize().transform(train)
    with pytest.raises(ValueError, match=r"X: expected shape \(N, 3\)"):
        P.Standardize().fit(train).transform(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"X: expected a 2-D array \(N, D\)"):
        P.PCAWhitening().fit(np.zeros((4, 2, 2)))
    with pytest.raises(ValueError, match="n_components"):
        P.PCAWhitening(n_components=4).fit(train)
    with pytest.raises(ValueError, match="eps"):
        P.ZCAWhitening(eps=-1.0)
    with pytest.raises(ValueError, match="axis: the statistics"):
        P.MeanSubtraction(axis=1).fit(train)
    with pytest.raises(ValueError, match="non-empty"):
        P.MeanSubtraction().fit(np.zeros((0, 3)))
