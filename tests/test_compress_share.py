"""dlbook.compress.share: k-means weight sharing against its definition and scikit-learn's Lloyd
k-means; the codebook gradient against torch's autograd of ``codebook[indices]``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from conftest import TIGHT
from dlbook.compress import (kmeans_share, pack_codes, pq_compression_ratio, product_quantize,
                             product_reconstruct, shared_weights_backward,
                             shared_weights_backward_naive, shared_weights_forward, size_in_bytes,
                             smallest_uint)


def sse(w, codebook, indices) -> float:
    return float(np.sum((w - codebook[indices]) ** 2))


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
@pytest.mark.parametrize("shape", [(40, 25), (8, 4, 3, 3)])
def test_kmeans_is_a_lloyd_fixed_point(bits, shape, rng):
    w = rng.standard_normal(shape) * 0.1
    w0 = w.copy()
    codebook, indices = kmeans_share(w, bits)
    k = 2**bits
    assert codebook.shape == (k,) and indices.shape == w.shape and indices.dtype == np.uint8
    np.testing.assert_array_equal(w, w0)
    # (1) every weight sits with its nearest centroid
    dist = np.abs(w[..., None] - codebook)
    chosen = np.take_along_axis(dist, indices[..., None].astype(int), -1)[..., 0]
    np.testing.assert_allclose(chosen, dist.min(axis=-1), **TIGHT)
    # (2) every centroid is the mean of its members
    for j in range(k):
        members = w[indices == j]
        if members.size:
            np.testing.assert_allclose(codebook[j], members.mean(), **TIGHT)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_kmeans_matches_sklearn_lloyd_from_the_same_start(bits, rng):
    # no cluster empties on this layer (scikit-learn would move an empty cluster; we keep it)
    w = rng.uniform(-0.2, 0.2, 500) + 0.02 * rng.standard_normal(500)
    k = 2**bits
    codebook, indices = kmeans_share(w, bits, init="linear", max_iter=300)
    assert np.bincount(indices, minlength=k).min() > 0
    start = np.linspace(w.min(), w.max(), k)[:, None]
    km = KMeans(n_clusters=k, init=start, n_init=1, max_iter=300, tol=0.0, algorithm="lloyd")
    km.fit(w[:, None])
    np.testing.assert_allclose(codebook, km.cluster_centers_[:, 0], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(indices, km.labels_)
    with pytest.raises(AssertionError):  # negative case: one iteration short is caught
        early, _ = kmeans_share(w, bits, init="linear", max_iter=1)
        np.testing.assert_allclose(early, km.cluster_centers_[:, 0], rtol=1e-10, atol=1e-12)


def test_empty_cluster_keeps_its_centroid():
    w = np.array([0.0, 0.01, 0.02, 1.0])  # linear start 0, 1/3, 2/3, 1: two centroids get nobody
    codebook, indices = kmeans_share(w, 2)
    np.testing.assert_allclose(codebook, [0.01, 1 / 3, 2 / 3, 1.0], **TIGHT)
    np.testing.assert_array_equal(indices, [0, 0, 0, 3])


def test_initialisations(rng):
    w = rng.standard_normal(200)
    codebook, indices = kmeans_share(w, 3, max_iter=0)  # Han et al.'s linear start, unrefined
    np.testing.assert_allclose(codebook, np.linspace(w.min(), w.max(), 8), **TIGHT)
    np.testing.assert_array_equal(indices, np.argmin(np.abs(w[:, None] - codebook), axis=1))
    codebook, _ = kmeans_share(w, 2, init="density", max_iter=0)
    np.testing.assert_allclose(codebook, np.quantile(w, [0.125, 0.375, 0.625, 0.875]), **TIGHT)
    a, _ = kmeans_share(w, 2, rng=np.random.default_rng(5), init="random", max_iter=0)
    b, _ = kmeans_share(w, 2, rng=np.random.default_rng(5), init="random", max_iter=0)
    np.testing.assert_array_equal(a, b)  # explicit randomness: same seed, same start
    assert np.isin(a, w).all() and np.unique(a).size == 4


def test_lloyd_never_increases_the_error(rng):
    w = rng.standard_normal(500) ** 3
    errors = [sse(w, *kmeans_share(w, 3, init="density", max_iter=i)) for i in range(8)]
    assert all(later <= earlier + 1e-12 for earlier, later in zip(errors, errors[1:]))
    assert errors[-1] < errors[0]


def test_index_dtype_is_the_smallest_that_fits(rng):
    assert smallest_uint(255) == np.uint8 and smallest_uint(256) == np.uint16
    assert smallest_uint(2**32) == np.uint64
    _, indices = kmeans_share(rng.standard_normal(600), 9, max_iter=2)
    assert indices.dtype == np.uint16 and indices.max() < 512


@pytest.mark.parametrize("shape", [(6, 5), (4, 3, 2, 2), (17,)])
def test_codebook_gradient_matches_torch_autograd(shape, rng):
    k = 4
    codebook = rng.standard_normal(k)
    indices = rng.integers(0, k, shape).astype(np.uint8)
    w, cache = shared_weights_forward(codebook, indices)
    dw = rng.standard_normal(shape)
    dw0 = dw.copy()
    dcodebook = shared_weights_backward(dw, cache)
    codebook_t = torch.from_numpy(codebook).requires_grad_(True)
    w_t = codebook_t[torch.from_numpy(indices.astype(np.int64))]
    (w_t * torch.from_numpy(dw)).sum().backward()
    np.testing.assert_array_equal(w, w_t.detach().numpy())
    np.testing.assert_allclose(dcodebook, codebook_t.grad.numpy(), **TIGHT)
    index_add = torch.zeros(k).index_add_(0, torch.from_numpy(indices.ravel().astype(np.int64)),
                                          torch.from_numpy(dw.ravel()))
    np.testing.assert_allclose(dcodebook, index_add.numpy(), **TIGHT)
    np.testing.assert_allclose(shared_weights_backward_naive(dw, cache), dcodebook, **TIGHT)
    np.testing.assert_array_equal(dw, dw0)
    with pytest.raises(AssertionError):  # the mean instead of the sum is caught
        counts = np.maximum(np.bincount(indices.ravel(), minlength=k), 1)
        np.testing.assert_allclose(dcodebook / counts, codebook_t.grad.numpy(), **TIGHT)


def test_unused_centroid_gets_zero_gradient(rng):
    indices = np.array([[0, 2], [2, 0]])
    _, cache = shared_weights_forward(rng.standard_normal(4), indices)
    dcodebook = shared_weights_backward(rng.standard_normal((2, 2)), cache)
    assert dcodebook[1] == 0 and dcodebook[3] == 0


@pytest.mark.parametrize("call, match", [
    (lambda w: kmeans_share(w, 0), r"bits: expected an int in \[1, 16\]"),
    (lambda w: kmeans_share(w[:3], 2), "w: expected at least k = 2"),
    (lambda w: kmeans_share(w, 2, init="kmeans++"), "init: expected one of"),
    (lambda w: kmeans_share(w, 2, init="random"), "rng: init='random'"),
    (lambda w: kmeans_share(w, 2, max_iter=-1), "max_iter: expected an int >= 0"),
    (lambda w: shared_weights_forward(w.reshape(2, 5), np.zeros(3, int)),
     "codebook: expected a 1-D"),
    (lambda w: shared_weights_forward(w, np.array([0, 10])),
     r"indices: expected values in \[0, 10\)"),
    (lambda w: shared_weights_forward(w, np.array([0.0, 1.0])), "indices: expected an integer"),
])
def test_bad_input(call, match, rng):
    with pytest.raises(ValueError, match=match):
        call(rng.standard_normal(10))


def test_backward_checks_dw_shape(rng):
    _, cache = shared_weights_forward(rng.standard_normal(4), np.zeros((2, 3), int))
    with pytest.raises(ValueError, match=r"dw: expected shape \(2, 3\)"):
        shared_weights_backward(rng.standard_normal((3, 2)), cache)


# --- product quantisation ---------------------------------------------------------------------

@pytest.mark.parametrize("shape, s, bits", [((64, 16), 4, 3), ((40, 12), 3, 2), ((32, 8), 1, 4)])
def test_product_quantize_matches_sklearn_per_block(shape, s, bits, rng):
    w = rng.standard_normal(shape)
    w0 = w.copy()
    codebooks, indices = product_quantize(w, s, bits, np.random.default_rng(7))
    m, n = shape
    k, d = 2**bits, n // s
    assert codebooks.shape == (s, k, d) and indices.shape == (m, s) and indices.dtype == np.uint8
    np.testing.assert_array_equal(w, w0)
    starts = np.random.default_rng(7)  # the documented starts: k distinct rows per block, in turn
    compared = 0
    for b in range(s):
        block = w[:, b * d:(b + 1) * d]
        start = block[starts.choice(m, size=k, replace=False)]
        km = KMeans(n_clusters=k, init=start, n_init=1, max_iter=100, tol=0.0, algorithm="lloyd")
        km.fit(block)
        if np.bincount(km.labels_, minlength=k).min() == 0:
            continue  # scikit-learn relocates empty clusters; we keep them (documented)
        np.testing.assert_allclose(codebooks[b], km.cluster_centers_, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(indices[:, b], km.labels_)
        compared += 1
    assert compared > 0
    approx = product_reconstruct(codebooks, indices)
    assert approx.shape == shape
    # every row piece sits with its nearest centroid (the assignment step's fixed point)
    for b in range(s):
        dist = ((w[:, None, b * d:(b + 1) * d] - codebooks[b][None]) ** 2).sum(axis=2)
        np.testing.assert_allclose(dist[np.arange(m), indices[:, b]], dist.min(axis=1), **TIGHT)
    with pytest.raises(AssertionError):  # negative case: one index off is caught
        wrong = indices.copy()
        wrong[0, 0] = (wrong[0, 0] + 1) % k
        np.testing.assert_allclose(product_reconstruct(codebooks, wrong), approx, **TIGHT)


def test_pq_ratio_from_the_encoded_arrays(rng):
    m, n, s, bits = 64, 32, 8, 4
    w = rng.standard_normal((m, n)).astype(np.float32)
    codebooks, indices = product_quantize(w, s, bits, rng)
    stored = size_in_bytes(codebooks.astype(np.float32), pack_codes(indices, bits))
    assert stored == 4 * s * 2**bits * (n // s) + m * s * bits // 8
    ratio = pq_compression_ratio(m, n, s, 2**bits)
    assert size_in_bytes(w) / stored == pytest.approx(ratio, rel=1e-12)
    # the corrected formula of the chapter's fc7-like example: 4096 x 4096, s = 1024, k = 256
    assert pq_compression_ratio(4096, 4096, 1024, 256) == pytest.approx(8.0, rel=1e-12)


@pytest.mark.parametrize("call, match", [
    (lambda w: product_quantize(w, 5, 2, np.random.default_rng(0)),
     "num_subspaces: expected a positive divisor"),
    (lambda w: product_quantize(w, 4, 4, np.random.default_rng(0)),
     "bits: expected an int >= 1 with 2"),
    (lambda w: product_quantize(w[0], 4, 1, np.random.default_rng(0)), "w: expected a 2-D matrix"),
    (lambda w: product_reconstruct(np.zeros((2, 4, 2)), np.zeros((3, 3), int)),
     "codebooks, indices"),
    (lambda w: pq_compression_ratio(4, 4, 2, 6), "k: expected a power of two"),
])
def test_pq_bad_input(call, match, rng):
    with pytest.raises(ValueError, match=match):
        call(rng.standard_normal((10, 8)))
