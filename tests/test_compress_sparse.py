"""dlbook.compress.sparse: CSR against scipy.sparse.csr_matrix, bit packing and Han et al.'s
relative indices against their definitions, sizes from the encoded arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse

from dlbook.compress import (from_csr, from_relative, magnitude_mask, pack_codes, pack_mask,
                             size_in_bytes, to_csr, to_csr_naive, to_relative, unpack_codes,
                             unpack_mask)


def sparse_matrix(rng, shape, density):
    w = rng.standard_normal(shape)
    return w * magnitude_mask(w, 1 - density)


MATRICES = [((1, 1), 1.0), ((5, 7), 0.3), ((6, 4), 0.0), ((4, 4), 1.0), ((3, 300), 0.1),
            ((40, 30), 0.5), ((9, 2), 0.2)]


@pytest.mark.parametrize("shape, density", MATRICES)
def test_csr_matches_scipy(shape, density, rng):
    w = sparse_matrix(rng, shape, density)
    w[min(2, shape[0] - 1)] = 0.0  # an empty row
    w0 = w.copy()
    data, indices, indptr = to_csr(w)
    ref = scipy.sparse.csr_matrix(w)
    np.testing.assert_array_equal(data, ref.data)
    np.testing.assert_array_equal(indices, ref.indices)
    np.testing.assert_array_equal(indptr, ref.indptr)
    for ours, naive in zip((data, indices, indptr), to_csr_naive(w)):
        np.testing.assert_array_equal(ours, naive)
        assert ours.dtype == naive.dtype
    np.testing.assert_array_equal(from_csr(data, indices, indptr, shape), w)
    np.testing.assert_array_equal(w, w0)
    # the smallest index dtypes: columns < n, pointers <= nnz
    assert indices.dtype == (np.uint8 if shape[1] <= 256 else np.uint16)
    assert indptr.dtype == (np.uint8 if data.size <= 255 else np.uint16)
    assert size_in_bytes(data, indices, indptr) <= size_in_bytes(ref.data, ref.indices, ref.indptr)
    if data.size:  # negative case: a column off by one is caught
        bad = indices.astype(np.int64)
        bad[0] = (bad[0] + 1) % shape[1] if shape[1] > 1 else bad[0] + 1
        with pytest.raises(AssertionError):
            np.testing.assert_array_equal(bad, ref.indices)


def test_large_matrix_needs_wider_pointers(rng):
    w = sparse_matrix(rng, (30, 40), 0.5)  # 600 non-zeros: pointers up to 600 need uint16
    data, indices, indptr = to_csr(w)
    assert indptr.dtype == np.uint16 and indices.dtype == np.uint8
    np.testing.assert_array_equal(indptr, scipy.sparse.csr_matrix(w).indptr)


def test_csr_size_of_a_pruned_layer(rng):
    w = rng.standard_normal((128, 256)).astype(np.float32)
    pruned = w * magnitude_mask(w, 0.9)
    data, indices, indptr = to_csr(pruned)
    nnz = data.size
    assert nnz == round(0.1 * w.size)
    # float32 values + one byte per column number (n = 256) + two bytes per row pointer
    assert size_in_bytes(data, indices, indptr) == 4 * nnz + nnz + 2 * 129
    assert size_in_bytes(data, indices, indptr) < size_in_bytes(w) / 6


@pytest.mark.parametrize("size", [1, 7, 8, 9, 1000])
def test_mask_at_one_bit_per_entry(size, rng):
    mask = (rng.random(size) < 0.4).astype(float).reshape(-1, 1)
    packed = pack_mask(mask)
    assert packed.dtype == np.uint8 and packed.nbytes == math.ceil(size / 8)
    np.testing.assert_array_equal(unpack_mask(packed, mask.shape), mask)
    with pytest.raises(AssertionError):  # negative case: a flipped bit is caught
        flipped = packed.copy()
        flipped[0] ^= 0x80
        np.testing.assert_array_equal(unpack_mask(flipped, mask.shape), mask)


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 8, 9, 13, 16])
@pytest.mark.parametrize("count", [1, 5, 64, 333])
def test_codes_at_exactly_k_bits(bits, count, rng):
    codes = rng.integers(0, 2**bits, count)
    packed = pack_codes(codes, bits)
    assert packed.dtype == np.uint8 and packed.nbytes == math.ceil(count * bits / 8)
    np.testing.assert_array_equal(unpack_codes(packed, bits, count), codes)
    if bits == 1:
        np.testing.assert_array_equal(packed, np.packbits(codes.astype(bool)))
    if bits == 8:  # one code per byte: the raw bytes
        assert packed.tobytes() == codes.astype(np.uint8).tobytes()
    if bits == 16:  # two bytes per code, most significant first
        assert packed.tobytes() == codes.astype(">u2").tobytes()


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_relative_indices_round_trip_and_fillers(bits, rng):
    w = sparse_matrix(rng, (20, 37), 0.08)
    w[3:9] = 0.0  # a long run of zeros that needs fillers at small bit widths
    values, gaps = to_relative(w, bits)
    np.testing.assert_array_equal(from_relative(values, gaps, w.shape), w)
    assert gaps.max() < 2**bits and gaps.dtype == np.uint8
    # one filler per 2^bits zeros of each run before a non-zero
    positions = np.flatnonzero(w)
    runs = np.diff(np.concatenate([[-1], positions])) - 1
    fillers = int(np.sum(runs // 2**bits))
    assert values.size == positions.size + fillers
    assert int((values == 0).sum()) == fillers
    stored = (values.astype(np.float32), pack_codes(gaps, bits))
    assert size_in_bytes(*stored) == 4 * values.size + math.ceil(values.size * bits / 8)
    assert (fillers > 0) == (bits < 8)  # 222 zeros in a row: fillers below 8 bits
    if fillers:
        with pytest.raises(AssertionError):  # negative case: dropping the fillers breaks decoding
            keep = values != 0
            np.testing.assert_array_equal(from_relative(values[keep], gaps[keep], w.shape), w)


def test_relative_of_empty_and_full(rng):
    empty = np.zeros((3, 4))
    values, gaps = to_relative(empty, 3)
    assert values.size == 0
    np.testing.assert_array_equal(from_relative(values, gaps, empty.shape), empty)
    full = rng.standard_normal(10)
    values, gaps = to_relative(full, 1)
    np.testing.assert_array_equal(gaps, 0)
    np.testing.assert_array_equal(values, full)


@pytest.mark.parametrize("call, match", [
    (lambda: to_csr(np.zeros((2, 2, 2))), "w: expected a 2-D matrix"),
    (lambda: from_csr(np.ones(2), np.zeros(2, int), np.array([0, 1]), (2, 3)), "indptr: expected"),
    (lambda: from_csr(np.ones(2), np.zeros(1, int), np.array([0, 1, 2]), (2, 3)),
     "data, indices: expected"),
    (lambda: from_csr(np.ones(2), np.array([0, 3]), np.array([0, 1, 2]), (2, 3)),
     "indices: expected column"),
    (lambda: pack_mask(np.array([0, 2])), "mask: expected only 0s and 1s"),
    (lambda: pack_codes(np.array([0, 4]), 2), r"codes: expected values in \[0, 2\^2\)"),
    (lambda: pack_codes(np.array([0.0]), 2), "codes: expected an integer array"),
    (lambda: pack_codes(np.array([0]), 0), r"bits: expected an int in \[1, 32\]"),
    (lambda: from_relative(np.ones(2), np.array([3, 3]), (5,)), "gaps: they reach position 7"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
