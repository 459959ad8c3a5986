"""Input preprocessing fitted on the training split: mean subtraction, standardisation, whitening.

Each transformer follows the fit/transform pattern: ``fit(X_train)`` computes its statistics
from the training array alone and stores them (names ending in ``_``, as scikit-learn's);
``transform(X)`` applies those same statistics to any split. Fitting on validation or test
data would leak information about them into the model, so the chapters always write

    pre = Standardize().fit(X_train)
    X_train, X_val, X_test = pre.transform(X_train), pre.transform(X_val), pre.transform(X_test)

``transform`` returns a new array and never modifies its argument.

* :class:`MeanSubtraction`: x - mu (the mean image, or the mean per channel).
* :class:`Standardize`: (x - mu) / sigma, per feature.
* :class:`PCAWhitening`: rotate onto the principal axes and scale each to unit variance.
* :class:`ZCAWhitening`: the PCA-whitened data rotated back to the input axes, the whitened
  data closest to the original (Bell & Sejnowski's zero-phase whitening).
* :func:`per_example_mean_subtraction`: each example minus its own mean (needs no fitting).
"""

from __future__ import annotations

import numpy as np

from dlbook._validate import as_array, check_ndim

__all__ = ["MeanSubtraction", "Standardize", "PCAWhitening", "ZCAWhitening",
           "per_example_mean_subtraction"]


def _axes(axis, ndim: int) -> tuple[int, ...]:
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    if 0 not in axes:
        raise ValueError(f"axis: the statistics must average over the examples (axis 0), "
                         f"got {axis!r}")
    if any(not -ndim <= a < ndim for a in axes):
        raise ValueError(f"axis: {axis!r} is out of range for a {ndim}-D array")
    return axes


class _Fitted:
    """Shared plumbing: remember the fitted feature shape and check it on transform."""

    _stats: tuple[str, ...] = ()

    def _check_fitted(self) -> None:
        if any(getattr(self, name, None) is None for name in self._stats):
            raise RuntimeError(f"{type(self).__name__}: call fit(X_train) before transform")

    def _check_features(self, X: np.ndarray, name: str = "X") -> np.ndarray:
        X = as_array(X, name)
        if X.shape[1:] != self.feature_shape_:
            features = ", ".join(map(str, self.feature_shape_))
            raise ValueError(f"{name}: expected shape (N, {features}) (the fitted feature shape), "
                             f"got {X.shape}")
        return X

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        """``fit(X)`` then ``transform(X)``: only for the training split."""
        return self.fit(X).transform(X)


class MeanSubtraction(_Fitted):
    """Centre the data with the training mean: x - mu, mu = mean of the training examples.

    ``axis=0`` (default) subtracts the mean example (the "mean image" for (N, C, H, W) data);
    ``axis=(0, 2, 3)`` subtracts one mean per channel. Matches ``X - X_train.mean(axis)``.
    """

    _stats = ("mean_",)

    def __init__(self, axis=0) -> None:
        self.axis = axis
        self.mean_: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> "MeanSubtraction":
        """Compute ``mean_`` (keepdims, broadcastable against one example batch) from ``X``."""
        X = as_array(X, "X")
        if X.ndim < 1 or X.shape[0] == 0:
            raise ValueError(f"X: expected a non-empty batch (N, ...), got shape {X.shape}")
        self.feature_shape_ = X.shape[1:]
        self.mean_ = X.mean(axis=_axes(self.axis, X.ndim), keepdims=True)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Return ``X - mean_`` as a new array."""
        self._check_fitted()
        return self._check_features(X) - self.mean_


class Standardize(_Fitted):
    """Standardise with training statistics: (x - mu) / sigma.

    sigma is the population standard deviation (ddof = 0) over ``axis``; a feature that is
    constant in the training data gets sigma = 1 (left unscaled) instead of a division by zero.
    With ``axis=0`` on (N, D) data this matches ``sklearn.preprocessing.StandardScaler``.
    """

    _stats = ("mean_", "std_")

    def __init__(self, axis=0) -> None:
        self.axis = axis
        self.mean_: np.ndarray | None = None
        self.std_: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> "Standardize":
        """Compute ``mean_`` and ``std_`` from ``X`` alone."""
        X = as_array(X, "X")
        if X.ndim < 1 or X.shape[0] == 0:
            raise ValueError(f"X: expected a non-empty batch (N, ...), got shape {X.shape}")
        axes = _axes(self.axis, X.ndim)
        self.feature_shape_ = X.shape[1:]
        self.mean_ = X.mean(axis=axes, keepdims=True)
        std = X.std(axis=axes, keepdims=True)
        self.std_ = np.where(std == 0, 1.0, std)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Return ``(X - mean_) / std_`` as a new array."""
        self._check_fitted()
        return (self._check_features(X) - self.mean_) / self.std_


class PCAWhitening(_Fitted):
    """PCA whitening: x -> diag(1 / sqrt(lambda + eps)) U^T (x - mu).

    U holds the eigenvectors of the training covariance Sigma = (1/N) sum (x - mu)(x - mu)^T as
    columns, in order of decreasing eigenvalue lambda. The whitened training data has covariance
    diag(lambda / (lambda + eps)): the identity up to ``eps``, which keeps directions of nearly
    zero variance (noise) from being blown up. ``n_components`` keeps only the leading axes
    (PCA dimension reduction).

    Args:
        eps: added to every eigenvalue before the square root, >= 0.
        n_components: number of principal axes kept (default all D).
    Fitted attributes: ``mean_`` (D,), ``eigenvalues_`` (D,), ``components_`` (D, D) = U.
    """

    _stats = ("mean_", "eigenvalues_", "components_")

    def __init__(self, eps: float = 1e-5, n_components: int | None = None) -> None:
        if not eps >= 0:
            raise ValueError(f"eps: expected >= 0, got {eps!r}")
        self.eps = eps
        self.n_components = n_components
        self.mean_ = self.eigenvalues_ = self.components_ = None

    def fit(self, X: np.ndarray) -> "PCAWhitening":
        """Eigendecompose the covariance of the (N, D) training array ``X``."""
        X = as_array(X, "X")
        check_ndim(X, 2, "X", "(N, D)")
        n, d = X.shape
        if n < 2:
            raise ValueError(f"X: need at least 2 examples to estimate a covariance, got {n}")
        k = d if self.n_components is None else self.n_components
        if not isinstance(k, (int, np.integer)) or not 1 <= k <= d:
            raise ValueError(f"n_components: expected an int in [1, {d}], "
                             f"got {self.n_components!r}")
        self.feature_shape_ = (d,)
        self.mean_ = X.mean(axis=0)  # (D,)
        centred = X - self.mean_
        cov = centred.T @ centred / n  # (D, D)
        eigenvalues, eigenvectors = np.linalg.eigh(cov)  # ascending
        order = np.argsort(eigenvalues)[::-1]
        self.eigenvalues_ = np.maximum(eigenvalues[order], 0.0)  # round-off can give -1e-17
        self.components_ = eigenvectors[:, order]
        self._k = int(k)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Return the (N, n_components) whitened coordinates of ``X``."""
        self._check_fitted()
        X = self._check_features(X)
        k = self._k
        rotated = (X - self.mean_) @ self.components_[:, :k]  # (N, k)
        return rotated / np.sqrt(self.eigenvalues_[:k] + self.eps)


class ZCAWhitening(PCAWhitening):
    """ZCA whitening: x -> U diag(1 / sqrt(lambda + eps)) U^T (x - mu).

    The PCA-whitened coordinates rotated back onto the input axes (always all D of them): of all
    whitening transforms it changes the data least, so whitened images still look like images
    (with their edges enhanced). Same fitted attributes as :class:`PCAWhitening`.
    """

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__(eps=eps, n_components=None)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Return the (N, D) ZCA-whitened ``X``."""
        return super().transform(X) @ self.components_.T  # (N, D)


def per_example_mean_subtraction(X: np.ndarray) -> np.ndarray:
    """Subtract from each example its own mean over all its features: x_n - mean(x_n).

    Unlike :class:`MeanSubtraction` it uses no training statistics (it removes each image's
    overall brightness), so it needs no fit and cannot leak across splits.
    """
    X = as_array(X, "X")
    if X.ndim < 2:
        raise ValueError(f"X: expected a batch of examples (N, ...), got shape {X.shape}")
    return X - X.reshape(X.shape[0], -1).mean(axis=1).reshape((-1,) + (1,) * (X.ndim - 1))
