"""Weight sharing by k-means (Han et al., 2016, "Deep Compression").

The weights of a layer are clustered into k = 2^bits values (the *codebook*); each weight is
replaced by its cluster's centroid and stored as a ``bits``-bit index into the codebook. Scalar
k-means minimises the squared error of that replacement,

    min over c_1..c_k and assignments a(i) of   sum_i (w_i - c_{a(i)})^2,

by Lloyd's iteration: assign each weight to the nearest centroid, move each centroid to the mean
of its members, repeat until the assignments stop changing. Han et al. start from centroids
spaced linearly between min w and max w ("linear" initialisation): unlike random or
density-based starts it keeps a few centroids out among the rare large weights, which matter
most.

After clustering, the network is fine-tuned with the codebook as the parameters: the layer's
weights are ``codebook[indices]``, so by the chain rule the gradient of a centroid is the sum of
the gradients of the weights that share it,

    dL/dc_j = sum_{i : a(i) = j} dL/dw_i,

which :func:`shared_weights_backward` computes (``torch.Tensor.index_add_`` in torch).

Product quantisation (:func:`product_quantize`) shares short *vectors* instead of scalars: the
columns of W (m, n) are cut into s blocks of d = n / s, and in each block the m row pieces
(vectors of length d) are clustered into k centroids. Storage is s codebooks of k * d floats
plus m * s indices of log2(k) bits, so the compression ratio against float32 is

    32 m n / (32 k n + m s log2 k).
"""

from __future__ import annotations

import numpy as np

from dlbook._validate import as_array

__all__ = [
    "smallest_uint", "kmeans_share", "shared_weights_forward", "shared_weights_backward_naive",
    "shared_weights_backward", "product_quantize", "product_reconstruct", "pq_compression_ratio",
]

_INITS = ("linear", "random", "density")


def smallest_uint(max_value: int) -> np.dtype:
    """The smallest unsigned integer dtype that holds every value in [0, max_value]."""
    if max_value < 0:
        raise ValueError(f"max_value: expected a non-negative int, got {max_value}")
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if max_value <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"max_value: {max_value} does not fit in 64 bits")


def _initial_centroids(w_flat: np.ndarray, k: int, init: str, rng) -> np.ndarray:
    if init == "linear":  # Han et al.: evenly spaced over [min w, max w]
        return np.linspace(w_flat.min(), w_flat.max(), k)
    if init == "density":  # evenly spaced in the CDF: the quantiles of the weights
        return np.quantile(w_flat, (np.arange(k) + 0.5) / k)
    if rng is None:
        raise ValueError("rng: init='random' draws its centroids; pass an np.random.Generator")
    return rng.choice(w_flat, size=k, replace=False)  # "Forgy": k distinct weights at random


def _lloyd(points: np.ndarray, centroids: np.ndarray, max_iter: int):
    """Lloyd's k-means on points (n, d) from centroids (k, d): ``(centroids, assignment)``.

    Assign each point to the nearest centroid (squared Euclidean distance; ties to the lower
    index), move each centroid to the mean of its points (a centroid without points stays),
    repeat until the assignment is unchanged or ``max_iter`` updates were made.
    """
    centroids = centroids.copy()
    k = centroids.shape[0]

    def nearest(c):
        return np.argmin(np.sum((points[:, None, :] - c[None, :, :]) ** 2, axis=2), axis=1)

    assign = nearest(centroids)  # (n,)
    for _ in range(max_iter):
        counts = np.bincount(assign, minlength=k)
        filled = counts > 0
        for j in range(points.shape[1]):  # per coordinate: sums of the members, by cluster
            sums = np.bincount(assign, weights=points[:, j], minlength=k)
            centroids[filled, j] = sums[filled] / counts[filled]
        new_assign = nearest(centroids)
        if np.array_equal(new_assign, assign):
            break
        assign = new_assign
    return centroids, assign


def kmeans_share(w: np.ndarray, bits: int, rng: np.random.Generator | None = None,
                 init: str = "linear", max_iter: int = 100):
    """Cluster the entries of ``w`` into k = 2^bits shared values (scalar k-means, Lloyd).

    Args:
        w: weights of any shape, at least k entries.
        bits: index width b >= 1; k = 2^b centroids.
        rng: the generator for ``init="random"`` (unused by the deterministic inits).
        init: "linear" (Han et al.; k values evenly spaced over [min w, max w]), "density"
            (the k quantiles at (j + 1/2) / k of the weights), or "random" (k distinct weights).
        max_iter: at most this many Lloyd iterations (0 returns the initial codebook).
    Returns:
        ``(codebook, indices)``: codebook (k,) in w's dtype, indices with w's shape in the smallest
        unsigned dtype (uint8 for b <= 8); ``codebook[indices]`` is the shared-weight layer.
        A weight equidistant from two centroids joins the lower-numbered one; a centroid that
        loses all its members stays where it is.
    """
    w = as_array(w, "w")
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 16:
        raise ValueError(f"bits: expected an int in [1, 16], got {bits!r}")
    k = 2 ** int(bits)
    if w.size < k:
        raise ValueError(f"w: expected at least k = 2^{bits} = {k} entries, got {w.size}")
    if init not in _INITS:
        raise ValueError(f"init: expected one of {_INITS}, got {init!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 0:
        raise ValueError(f"max_iter: expected an int >= 0, got {max_iter!r}")
    w_flat = w.ravel()
    start = _initial_centroids(w_flat, k, init, rng).astype(w.dtype)
    codebook, assign = _lloyd(w_flat[:, None], start[:, None], max_iter)  # scalars: d = 1
    codebook = codebook[:, 0]
    return codebook, assign.astype(smallest_uint(k - 1)).reshape(w.shape)


def _check_indices(indices, k: int) -> np.ndarray:
    indices = np.asarray(indices)
    if not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"indices: expected an integer array, got dtype {indices.dtype}")
    if indices.size and (indices.min() < 0 or indices.max() >= k):
        raise ValueError(f"indices: expected values in [0, {k}) (the codebook has {k} entries), "
                         f"got range [{indices.min()}, {indices.max()}]")
    return indices


def shared_weights_forward(codebook: np.ndarray, indices: np.ndarray):
    """The layer's weights from the codebook: w[i] = codebook[indices[i]].

    Args:
        codebook: (k,) shared values; indices: integer array of any shape, values in [0, k).
    Returns:
        ``(w, cache)`` with w of ``indices``' shape. Matches torch's ``codebook[indices]``.
    """
    codebook = as_array(codebook, "codebook")
    if codebook.ndim != 1:
        raise ValueError(f"codebook: expected a 1-D array (k,), got shape {codebook.shape}")
    indices = _check_indices(indices, codebook.size)
    return codebook[indices], (indices, codebook.size)


def shared_weights_backward_naive(dw: np.ndarray, cache) -> np.ndarray:
    """Readable version of :func:`shared_weights_backward`: one loop over the weights."""
    indices, k = cache
    dw = as_array(dw, "dw")
    dcodebook = np.zeros(k, dtype=dw.dtype)
    for index, grad in zip(indices.ravel(), dw.ravel()):
        dcodebook[index] += grad  # every weight adds its gradient to its centroid
    return dcodebook


def shared_weights_backward(dw: np.ndarray, cache) -> np.ndarray:
    """Gradient of the codebook: dcodebook[j] = sum of dw[i] over the weights with indices[i] = j.

    Args:
        dw: gradient of the loss with respect to the layer's weights, shaped like ``indices``.
    Returns:
        (k,) dcodebook. Matches torch's autograd of ``codebook[indices]`` (and
        ``torch.zeros(k).index_add_(0, indices.flatten(), dw.flatten())``).
    """
    indices, k = cache
    dw = as_array(dw, "dw")
    if dw.shape != indices.shape:
        raise ValueError(f"dw: expected shape {indices.shape} (that of indices), got {dw.shape}")
    return np.bincount(indices.ravel(), weights=dw.ravel(), minlength=k).astype(dw.dtype)


def product_quantize(w: np.ndarray, num_subspaces: int, bits: int, rng: np.random.Generator,
                     max_iter: int = 100):
    """Product quantisation of a matrix: k-means on the row pieces of each column block.

    Args:
        w: (m, n) weight matrix; n must be a multiple of ``num_subspaces`` s.
        num_subspaces: s, the number of column blocks of width d = n / s.
        bits: log2 k; k = 2^bits centroids per block, at most m.
        rng: draws the start of each block's k-means: for block 0, 1, ... in turn, the k distinct
            rows ``rng.choice(m, size=k, replace=False)`` of that block.
        max_iter: at most this many Lloyd updates per block.
    Returns:
        ``(codebooks, indices)``: codebooks (s, k, d) in w's dtype, indices (m, s) in the smallest
        unsigned dtype; row i of block b is replaced by ``codebooks[b, indices[i, b]]``.
    """
    w = as_array(w, "w")
    if w.ndim != 2:
        raise ValueError(f"w: expected a 2-D matrix (m, n), got shape {w.shape}")
    m, n = w.shape
    s = num_subspaces
    if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 or n % s:
        raise ValueError(f"num_subspaces: expected a positive divisor of n = {n}, got {s!r}")
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits < 1 or 2**bits > m:
        raise ValueError(f"bits: expected an int >= 1 with 2^bits <= m = {m} (k centroids need k "
                         f"rows), got {bits!r}")
    k, d = 2 ** int(bits), n // s
    codebooks = np.empty((s, k, d), dtype=w.dtype)
    indices = np.empty((m, s), dtype=smallest_uint(k - 1))
    for b in range(s):
        block = w[:, b * d:(b + 1) * d]  # (m, d)
        start = block[rng.choice(m, size=k, replace=False)]  # (k, d)
        codebooks[b], indices[:, b] = _lloyd(block, start, max_iter)
    return codebooks, indices


def product_reconstruct(codebooks: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The (m, n) matrix that :func:`product_quantize`'s codebooks and indices stand for."""
    codebooks, indices = np.asarray(codebooks), np.asarray(indices)
    if codebooks.ndim != 3 or indices.ndim != 2 or indices.shape[1] != codebooks.shape[0]:
        raise ValueError(f"codebooks, indices: expected (s, k, d) and (m, s), got "
                         f"{codebooks.shape} and {indices.shape}")
    _check_indices(indices, codebooks.shape[1])
    blocks = [codebooks[b][indices[:, b]] for b in range(codebooks.shape[0])]  # s x (m, d)
    return np.concatenate(blocks, axis=1)


def pq_compression_ratio(m: int, n: int, num_subspaces: int, k: int) -> float:
    """float32 size over product-quantised size: 32 m n / (32 k n + m s log2 k).

    The s codebooks hold k * (n / s) floats each (32 k n bits in all); the m * s indices take
    log2 k bits each. For a 4096 x 4096 layer with s = 1024 and k = 256 this is 8.
    """
    for name, value in (("m", m), ("n", n), ("num_subspaces", num_subspaces), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    if k & (k - 1) or k < 2:
        raise ValueError(f"k: expected a power of two >= 2, got {k}")
    return 32 * m * n / (32 * k * n + m * num_subspaces * np.log2(k))
