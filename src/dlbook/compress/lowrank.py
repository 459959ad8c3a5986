"""Low-rank approximation: replace one layer by two thinner ones (Denton et al., 2014).

A weight matrix W (m, n) with singular value decomposition W = U S V^T is approximated by its
top-k part, W_k = (U_k S_k) V_k^T with U_k (m, k), S_k (k, k), V_k (n, k). By the
Eckart-Young theorem W_k is the best rank-k matrix in the Frobenius norm, and

    ||W - W_k||_F = sqrt(sigma_{k+1}^2 + ... + sigma_r^2),

the root-sum-square of the discarded singular values. The layer x -> W x becomes two layers,
x -> V_k^T x (k outputs) -> (U_k S_k) (.), with k (m + n) parameters instead of m n.

A conv layer with weights w (F, C, KH, KW) is a matrix product on image patches:
``w.reshape(F, C*KH*KW)`` times the patch column (see :func:`dlbook.conv.im2col`). Factorise that
matrix and reshape back: V_k^T (k, C*KH*KW) is a bank of k filters (k, C, KH, KW), applied with
the original stride and padding, and U_k S_k (F, k) is a 1x1 convolution (F, k, 1, 1) that mixes
the k maps into F. The bias stays on the second (last) layer.
"""

from __future__ import annotations

import numpy as np

from dlbook._validate import as_array

__all__ = ["low_rank", "low_rank_error"]


def _matrix(w: np.ndarray) -> np.ndarray:
    if w.ndim == 2:
        return w  # (m, n) = (D_out, D_in)
    if w.ndim == 4:
        return w.reshape(w.shape[0], -1)  # (F, C*KH*KW)
    raise ValueError(f"w: expected a linear (D_out, D_in) or conv (F, C, KH, KW) weight, "
                     f"got shape {w.shape}")


def _check_rank(rank, w_mat: np.ndarray) -> int:
    full = min(w_mat.shape)
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 1 <= rank <= full:
        raise ValueError(f"rank: expected an int in [1, {full}] (min of the matrix shape "
                         f"{w_mat.shape}), got {rank!r}")
    return int(rank)


def low_rank(w: np.ndarray, rank: int):
    """Factor a linear or conv weight into two layers of rank ``rank`` by truncated SVD.

    Args:
        w: (D_out, D_in) linear weight, or (F, C, KH, KW) conv weight.
        rank: k, between 1 and min(m, n) of the matrix (m, n) = (D_out, D_in) or
            (F, C*KH*KW).
    Returns:
        ``(w_first, w_second)``, the layers in the order they are applied:

        * linear: w_first = V_k^T (k, D_in), w_second = U_k S_k (D_out, k), so that
          ``w_second @ w_first`` is the best rank-k approximation W_k of w;
        * conv: w_first (k, C, KH, KW), a conv with w's stride and padding, and w_second
          (F, k, 1, 1), a 1x1 conv; ``w_second[:, :, 0, 0] @ w_first.reshape(k, -1)`` is W_k.

    The singular values go into the second factor (U_k S_k), as in the chapter's (U S) V^T.
    """
    w = as_array(w, "w")
    w_mat = _matrix(w)
    k = _check_rank(rank, w_mat)
    u, s, vt = np.linalg.svd(w_mat, full_matrices=False)  # s descending
    w_first = vt[:k]  # (k, n)
    w_second = u[:, :k] * s[:k]  # (m, k) = U_k S_k
    if w.ndim == 4:
        f, c, kh, kw = w.shape
        return w_first.reshape(k, c, kh, kw), w_second.reshape(f, k, 1, 1)
    return w_first, w_second


def low_rank_error(w: np.ndarray, rank: int) -> float:
    """Eckart-Young: the Frobenius error of the best rank-k approximation, from the spectrum.

    ||W - W_k||_F = sqrt(sum_{i > k} sigma_i^2), for W the matrix of w as in :func:`low_rank`.
    """
    w = as_array(w, "w")
    w_mat = _matrix(w)
    k = _check_rank(rank, w_mat)
    s = np.linalg.svd(w_mat, compute_uv=False)
    return float(np.sqrt(np.sum(s[k:] ** 2)))
