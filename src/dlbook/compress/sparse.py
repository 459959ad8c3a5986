"""Storing a compressed layer, and counting its bytes honestly.

A pruned layer is only smaller once it is stored in a sparse format, and a quantised one once its
codes are packed. Each encoder here returns the real arrays a deployment would write to disk, and
:func:`size_in_bytes` adds up their ``.nbytes``; no size is a formula on its own.

* CSR (compressed sparse row) of a matrix W (m, n) with nnz non-zeros: ``data`` (nnz,) the
  values row by row, ``indices`` (nnz,) their column numbers, ``indptr`` (m + 1,) where row i's
  entries are ``data[indptr[i]:indptr[i + 1]]``. Index arrays use the smallest unsigned dtype
  that holds their largest possible value (columns < n, pointers <= nnz); scipy uses int32.
* Relative indices (Han et al., 2016): walk the flattened weights and store, for each kept
  entry, its value and the number of zeros skipped since the previous kept entry, in ``bits``
  bits. A run of more than 2^bits - 1 zeros is bridged by a filler entry (value 0) stored
  2^bits positions after the previous one, as in the paper.
* Bit packing: a binary mask at one bit per entry (``np.packbits``), k-bit codes (k-means
  indices, relative gaps) at exactly k bits each, padded to a whole byte at the end.
"""

from __future__ import annotations

import numpy as np

from dlbook._validate import as_array
from dlbook.compress.share import smallest_uint

__all__ = [
    "to_csr_naive", "to_csr", "from_csr", "pack_mask", "unpack_mask", "pack_codes",
    "unpack_codes", "to_relative", "from_relative", "size_in_bytes",
]


def _matrix(w) -> np.ndarray:
    w = as_array(w, "w")
    if w.ndim != 2:
        raise ValueError(f"w: expected a 2-D matrix (reshape a conv weight to (F, C*KH*KW)), "
                         f"got shape {w.shape}")
    return w


def to_csr_naive(w: np.ndarray):
    """Readable version of :func:`to_csr`: one pass over the rows."""
    w = _matrix(w)
    data, indices, indptr = [], [], [0]
    for row in w:
        for col, value in enumerate(row):
            if value != 0:
                data.append(value)
                indices.append(col)
        indptr.append(len(data))
    return (np.array(data, dtype=w.dtype), np.array(indices, dtype=smallest_uint(w.shape[1] - 1)),
            np.array(indptr, dtype=smallest_uint(len(data))))


def to_csr(w: np.ndarray):
    """CSR arrays ``(data, indices, indptr)`` of a matrix w (m, n).

    Returns:
        data (nnz,) in w's dtype; indices (nnz,) column numbers in the smallest unsigned dtype
        holding n - 1; indptr (m + 1,) in the smallest holding nnz. The values equal
        ``scipy.sparse.csr_matrix(w)``'s ``data``, ``indices`` and ``indptr``.
    """
    w = _matrix(w)
    rows, cols = np.nonzero(w)  # row-major order, columns ascending within a row
    counts = np.bincount(rows, minlength=w.shape[0])  # non-zeros per row
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return (w[rows, cols], cols.astype(smallest_uint(w.shape[1] - 1)),
            indptr.astype(smallest_uint(rows.size)))


def from_csr(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape) -> np.ndarray:
    """The dense matrix (m, n) = ``shape`` back from its CSR arrays."""
    data, indices, indptr = np.asarray(data), np.asarray(indices), np.asarray(indptr)
    m, n = shape
    if indptr.shape != (m + 1,) or indptr[0] != 0 or np.any(np.diff(indptr.astype(np.int64)) < 0):
        raise ValueError(f"indptr: expected a non-decreasing ({m + 1},) array from 0, got "
                         f"shape {indptr.shape}")
    if data.shape != indices.shape or data.shape != (int(indptr[-1]),):
        raise ValueError(f"data, indices: expected shape ({int(indptr[-1])},) (indptr[-1]), got "
                         f"{data.shape} and {indices.shape}")
    if indices.size and int(indices.max()) >= n:
        raise ValueError(f"indices: expected column numbers < {n}, got {int(indices.max())}")
    w = np.zeros((m, n), dtype=data.dtype)
    rows = np.repeat(np.arange(m), np.diff(indptr.astype(np.int64)))
    w[rows, indices.astype(np.int64)] = data
    return w


def pack_mask(mask: np.ndarray) -> np.ndarray:
    """A 0/1 mask at one bit per entry: uint8 array of ceil(size / 8) bytes (``np.packbits``)."""
    mask = np.asarray(mask)
    if not np.all((mask == 0) | (mask == 1)):
        raise ValueError("mask: expected only 0s and 1s")
    return np.packbits(mask.ravel().astype(bool))


def unpack_mask(packed: np.ndarray, shape) -> np.ndarray:
    """The float 0/1 mask of ``shape`` back from :func:`pack_mask`'s bytes."""
    size = int(np.prod(shape))
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), count=size)
    return bits.astype(float).reshape(shape)


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 32:
        raise ValueError(f"bits: expected an int in [1, 32], got {bits!r}")
    return int(bits)


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """Non-negative integer codes < 2^bits at exactly ``bits`` bits each, most significant first.

    Returns:
        uint8 array of ceil(codes.size * bits / 8) bytes.
    """
    bits = _check_bits(bits)
    codes = np.asarray(codes)
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes: expected an integer array, got dtype {codes.dtype}")
    flat = codes.ravel().astype(np.uint64)
    if codes.size and (codes.min() < 0 or int(flat.max()) >= 2**bits):
        raise ValueError(f"codes: expected values in [0, 2^{bits}), got range "
                         f"[{codes.min()}, {codes.max()}]")
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint64)
    bit_matrix = (flat[:, None] >> shifts) & np.uint64(1)  # (size, bits)
    return np.packbits(bit_matrix.astype(bool).ravel())


def unpack_codes(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """``count`` codes of ``bits`` bits back from :func:`pack_codes` (as int64)."""
    bits = _check_bits(bits)
    bit_matrix = np.unpackbits(np.asarray(packed, dtype=np.uint8), count=count * bits)
    weights = 2 ** np.arange(bits - 1, -1, -1, dtype=np.int64)
    return bit_matrix.reshape(count, bits).astype(np.int64) @ weights


def to_relative(w: np.ndarray, bits: int):
    """Han et al.'s relative indexing of the non-zeros of ``w`` (flattened in C order).

    Returns:
        ``(values, gaps)``: values (E,) in w's dtype and gaps (E,) in [0, 2^bits), the number of
        zeros skipped before each stored entry. E is the number of non-zeros plus one filler
        (value 0, gap 2^bits - 1) per 2^bits zeros that a run cannot otherwise skip.
        Pack the gaps with ``pack_codes(gaps, bits)``.
    """
    bits = _check_bits(bits)
    w = as_array(w, "w")
    max_gap = 2**bits - 1
    values, gaps = [], []
    previous = -1
    for position in np.flatnonzero(w):
        skipped = position - previous - 1
        while skipped > max_gap:  # a filler entry: a stored zero after max_gap zeros
            values.append(0.0)
            gaps.append(max_gap)
            skipped -= max_gap + 1
        values.append(w.flat[position])
        gaps.append(skipped)
        previous = position
    return np.array(values, dtype=w.dtype), np.array(gaps, dtype=smallest_uint(max_gap))


def from_relative(values: np.ndarray, gaps: np.ndarray, shape) -> np.ndarray:
    """The dense array of ``shape`` back from :func:`to_relative`'s values and gaps."""
    values, gaps = np.asarray(values), np.asarray(gaps)
    if values.shape != gaps.shape or values.ndim != 1:
        raise ValueError(f"values, gaps: expected two 1-D arrays of one length, got "
                         f"{values.shape} and {gaps.shape}")
    positions = np.cumsum(gaps.astype(np.int64) + 1) - 1
    size = int(np.prod(shape))
    if positions.size and positions[-1] >= size:
        raise ValueError(f"gaps: they reach position {positions[-1]}, beyond the size {size}")
    w = np.zeros(size, dtype=values.dtype if values.size else float)
    w[positions] = values
    return w.reshape(shape)


def size_in_bytes(*arrays: np.ndarray) -> int:
    """Total storage of the given encoded arrays: the sum of their ``.nbytes``.

    Pass what is actually stored, e.g. ``size_in_bytes(*to_csr(w))`` for a CSR matrix,
    ``size_in_bytes(codebook.astype(np.float32), pack_codes(indices, bits))`` for a k-means
    layer, ``size_in_bytes(w.astype(np.float32))`` for the dense float32 baseline.
    """
    return int(sum(np.asarray(a).nbytes for a in arrays))
