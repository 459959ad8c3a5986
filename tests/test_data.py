"""dlbook.data: the bundled digits, the synthetic sets and the mini-batch iterator."""

from __future__ import annotations

import numpy as np
import pytest

from dlbook.data import (iterate_minibatches, load_digits, make_blobs, make_moons, make_xor,
                         train_test_split)


def test_load_digits_split_is_stratified_scaled_and_seeded():
    split = load_digits()
    assert split.X_train.shape == (1347, 64) and split.X_test.shape == (450, 64)
    assert split.X_train.dtype == np.float64 and split.y_train.dtype == np.int64
    assert split.X_train.min() == 0.0 and split.X_train.max() == 1.0  # 0..16 counts / 16
    assert split.num_classes == 10
    # each class keeps about a quarter of its images in the test part
    counts = np.bincount(split.y_test, minlength=10)
    totals = counts + np.bincount(split.y_train, minlength=10)
    np.testing.assert_array_equal(counts, np.round(0.25 * totals).astype(int))
    again = load_digits()
    np.testing.assert_array_equal(split.X_train, again.X_train)
    other = load_digits(seed=1)
    assert not np.array_equal(split.y_train, other.y_train)
    images = load_digits(images=True)
    assert images.X_train.shape == (1347, 1, 8, 8)
    np.testing.assert_array_equal(images.X_train.reshape(1347, 64), split.X_train)


def test_train_test_split_keeps_every_sample_once(rng):
    X = np.arange(40).reshape(20, 2)
    y = np.repeat([0, 1], 10)
    split = train_test_split(X, y, 0.3, rng=rng)
    rows = np.concatenate([split.X_train, split.X_test])[:, 0]
    assert sorted(rows.tolist()) == list(range(0, 40, 2))
    assert len(split.y_test) == 6 and np.bincount(split.y_test).tolist() == [3, 3]
    with pytest.raises(ValueError, match="same number of samples"):
        train_test_split(X, y[:5], rng=rng)
    with pytest.raises(ValueError, match="test_fraction"):
        train_test_split(X, y, 1.0, rng=rng)


def test_synthetic_sets(rng):
    X, y = make_xor(200, noise=0.0, rng=rng)
    assert X.shape == (200, 2) and set(np.unique(y)) == {0, 1}
    np.testing.assert_array_equal(y, np.logical_xor(X[:, 0] > 0.5, X[:, 1] > 0.5))
    X, y = make_moons(101, noise=0.0, rng=rng)
    assert X.shape == (101, 2) and np.bincount(y).tolist() == [50, 51]
    top = X[y == 0]
    np.testing.assert_allclose(np.hypot(top[:, 0], top[:, 1]), 1.0)  # the upper moon is the unit circle
    X, y = make_blobs(30, [[0, 0], [5, 5], [0, 5]], std=0.5, rng=rng)
    assert X.shape == (90, 2) and np.bincount(y).tolist() == [30, 30, 30]
    np.testing.assert_allclose(X[y == 1].mean(axis=0), [5, 5], atol=0.3)
    with pytest.raises(ValueError, match="centers"):
        make_blobs(3, [0, 1], rng=rng)


@pytest.mark.parametrize("batch_size", [1, 7, 64, 100])
def test_minibatches_cover_the_data_once(batch_size, rng):
    X = np.arange(64).reshape(64, 1)
    y = np.arange(64)
    batches = list(iterate_minibatches(X, y, batch_size, rng=rng))
    seen = np.concatenate([yb for _, yb in batches])
    assert sorted(seen.tolist()) == list(range(64))
    assert all(len(xb) == len(yb) for xb, yb in batches)
    assert [len(yb) for _, yb in batches][:-1] == [batch_size] * (len(batches) - 1)
    for xb, yb in batches:
        np.testing.assert_array_equal(xb[:, 0], yb)  # rows stay paired with their labels


def test_minibatches_shuffle_only_with_a_generator(rng):
    y = np.arange(10)
    in_order = np.concatenate([yb for _, yb in iterate_minibatches(y[:, None], y, 3)])
    np.testing.assert_array_equal(in_order, y)
    shuffled = np.concatenate([yb for _, yb in iterate_minibatches(y[:, None], y, 3, rng=rng)])
    assert not np.array_equal(shuffled, y)
    with pytest.raises(ValueError, match="batch_size"):
        list(iterate_minibatches(y, y, 0))


def test_load_digits_validation_part_is_carved_from_training_only():
    plain = load_digits()
    split = load_digits(val_fraction=0.2)
    # The test part is the same with or without a validation part.
    np.testing.assert_array_equal(split.X_test, plain.X_test)
    np.testing.assert_array_equal(split.y_test, plain.y_test)
    # Train and validation partition the old training part: every sample once, none shared.
    def rows(X):
        return {row.tobytes() for row in X}
    assert abs(len(split.X_val) - 0.2 * 1797) <= 10  # per-class rounding
    assert rows(split.X_train).isdisjoint(rows(split.X_val))
    assert sorted(rows(split.X_train) | rows(split.X_val)) == sorted(rows(plain.X_train))
    assert len(split.X_train) + len(split.X_val) == len(plain.X_train)
    assert set(np.unique(split.y_val)) == set(range(10))
    assert "validation: X(" in repr(split) and plain.X_val is None
    with pytest.raises(ValueError, match="val_fraction"):
        load_digits(val_fraction=0.8)
