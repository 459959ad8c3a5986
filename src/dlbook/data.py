"""Data sets that need no download: scikit-learn's bundled digits and small synthetic sets.

Every function that draws random numbers takes ``rng: np.random.Generator`` or a ``seed``;
nothing here touches numpy's global random state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

__all__ = ["Split", "load_digits", "train_test_split", "make_blobs", "make_xor", "make_moons",
           "iterate_minibatches"]


@dataclass(frozen=True)
class Split:
    """A train/test split, with an optional validation part: ``X_*`` are arrays, ``y_*`` int64 labels.

    The validation part is for choices made while training (curves, early stopping, which model);
    the test part is touched once, for the final number.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        """Number of distinct labels over both parts."""
        return int(max(self.y_train.max(), self.y_test.max()) + 1)

    def __repr__(self) -> str:
        val = "" if self.X_val is None else f"validation: X{self.X_val.shape} y{self.y_val.shape}, "
        return (f"Split(train: X{self.X_train.shape} y{self.y_train.shape}, {val}"
                f"test: X{self.X_test.shape} y{self.y_test.shape})")


def train_test_split(X: np.ndarray, y: np.ndarray, test_fraction: float = 0.25, *,
                     rng: np.random.Generator, stratify: bool = True) -> Split:
    """Shuffle and split ``(X, y)``; with ``stratify`` each class keeps its share in both parts."""
    X = np.asarray(X)
    y = np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"X, y: expected the same number of samples, got {len(X)} and {len(y)}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction: expected a value in (0, 1), got {test_fraction}")
    if stratify:
        test_idx = []
        for label in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == label))
            test_idx.append(idx[: int(round(test_fraction * len(idx)))])
        test = np.sort(np.concatenate(test_idx))
    else:
        test = np.sort(rng.permutation(len(y))[: int(round(test_fraction * len(y)))])
    mask = np.zeros(len(y), dtype=bool)
    mask[test] = True
    train = rng.permutation(np.flatnonzero(~mask))
    test = rng.permutation(test)
    return Split(X[train], y[train].astype(np.int64), X[test], y[test].astype(np.int64))


def load_digits(test_fraction: float = 0.25, seed: int = 0, *, images: bool = False,
                val_fraction: float = 0.0) -> Split:
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), scaled to [0, 1].

    The data ships inside scikit-learn, so this works offline. The split is stratified and
    fixed by ``seed``.

    Args:
        test_fraction: share of each class held out for testing.
        seed: seed of the shuffle.
        images: return ``X`` as (N, 1, 8, 8) images (for convolutions) instead of (N, 64) vectors.
        val_fraction: share of the whole set (per class) moved from the training part into a
            validation part; 0 gives none. The test part does not depend on it.
    Returns:
        A :class:`Split`; pixel values are the original 0..16 counts divided by 16.
    """
    if not 0 <= val_fraction < 1 - test_fraction:
        raise ValueError(f"val_fraction: expected a value in [0, {1 - test_fraction:g}), got {val_fraction}")
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    X = bunch.data.astype(np.float64) / 16.0  # (1797, 64)
    if images:
        X = X.reshape(-1, 1, 8, 8)  # (N, C=1, H=8, W=8)
    rng = np.random.default_rng(seed)
    split = train_test_split(X, bunch.target, test_fraction, rng=rng)
    if val_fraction == 0:
        return split
    inner = train_test_split(split.X_train, split.y_train, val_fraction / (1 - test_fraction), rng=rng)
    return Split(inner.X_train, inner.y_train, split.X_test, split.y_test, inner.X_test, inner.y_test)


def make_blobs(n_per_class: int, centers, std: float = 1.0, *,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs: ``n_per_class`` points around each row of ``centers`` (K, D).

    Returns:
        ``X`` (K * n_per_class, D) float64 and ``y`` (K * n_per_class,) int64, shuffled.
    """
    centers = np.asarray(centers, dtype=np.float64)
    if centers.ndim != 2:
        raise ValueError(f"centers: expected a (K, D) array, got shape {centers.shape}")
    k, d = centers.shape
    X = np.concatenate([c + std * rng.standard_normal((n_per_class, d)) for c in centers])
    y = np.repeat(np.arange(k), n_per_class)
    order = rng.permutation(len(y))
    return X[order], y[order]


def make_xor(n: int, noise: float = 0.1, *, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The XOR problem: points near the four corners of the unit square, label = x1 XOR x2.

    Returns:
        ``X`` (n, 2) and ``y`` (n,) in {0, 1}; the classes are not linearly separable.
    """
    corners = rng.integers(0, 2, size=(n, 2))
    X = corners + noise * rng.standard_normal((n, 2))
    y = np.logical_xor(corners[:, 0], corners[:, 1]).astype(np.int64)
    return X.astype(np.float64), y


def make_moons(n: int, noise: float = 0.1, *, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (as ``sklearn.datasets.make_moons``), with Gaussian noise.

    Returns:
        ``X`` (n, 2) and ``y`` (n,) in {0, 1}, shuffled.
    """
    n_top = n // 2
    n_bottom = n - n_top
    t_top = np.linspace(0, np.pi, n_top)
    t_bottom = np.linspace(0, np.pi, n_bottom)
    top = np.stack([np.cos(t_top), np.sin(t_top)], axis=1)
    bottom = np.stack([1 - np.cos(t_bottom), 0.5 - np.sin(t_bottom)], axis=1)
    X = np.concatenate([top, bottom]) + noise * rng.standard_normal((n, 2))
    y = np.concatenate([np.zeros(n_top, np.int64), np.ones(n_bottom, np.int64)])
    order = rng.permutation(n)
    return X[order], y[order]


def iterate_minibatches(X: np.ndarray, y: np.ndarray, batch_size: int, *,
                        rng: np.random.Generator | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(X_batch, y_batch)`` covering the data once; shuffled when ``rng`` is given.

    The last batch may be smaller. ``batch_size = len(X)`` gives full-batch descent and
    ``batch_size = 1`` stochastic gradient descent.
    """
    if len(X) != len(y):
        raise ValueError(f"X, y: expected the same number of samples, got {len(X)} and {len(y)}")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    order = rng.permutation(len(X)) if rng is not None else np.arange(len(X))
    for start in range(0, len(X), batch_size):
        idx = order[start:start + batch_size]
        yield X[idx], y[idx]
