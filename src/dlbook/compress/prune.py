"""Pruning: zero the least important weights (magnitude pruning) or remove whole filters.

Two granularities, as in the chapter:

* **Unstructured (magnitude) pruning** (Han et al., 2015). Keep a binary mask beside each weight
  array; a weight is pruned (mask 0) when its magnitude ``|w|`` is among the ``amount`` smallest.
  The network keeps its shape, so a dense implementation runs no faster; only a sparse format
  (:mod:`dlbook.compress.sparse`) makes the model smaller. Words as ``torch.nn.utils.prune``:
  ``amount`` is a fraction (float in [0, 1]) or a count (int) of entries to prune.
* **Structured sparsity** (Wen et al., 2016, "SSL"): a group-lasso penalty
  lambda * sum_g ||w_g||_2 over groups g (whole filters, or whole input channels) added to the
  loss drives entire groups to zero during training, after which they can be removed.
* **Filter pruning** (Li et al., 2017). Score each filter of a conv layer by its l1 norm
  ``s_f = sum_{c,i,j} |w[f, c, i, j]|``, keep the largest, and build a genuinely smaller dense
  network: the kept filters (and biases) of this layer, and the matching input channels of the
  next layer (a conv, or a fully connected layer reading the flattened feature maps).
"""

from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np

from dlbook._validate import as_array, check_ndim

__all__ = [
    "num_to_prune", "magnitude_mask_naive", "magnitude_mask", "global_magnitude_masks",
    "filter_l1_norms", "filters_to_keep", "prune_filters",
    "group_norms", "group_lasso_forward", "group_lasso_backward",
]


def num_to_prune(amount: float | int, size: int) -> int:
    """How many of ``size`` entries ``amount`` prunes: an int is a count, a float a fraction.

    A fraction becomes ``round(amount * size)`` with Python's ``round`` (half to even), as
    ``torch.nn.utils.prune`` does: 0.5 of 5 entries prunes 2, 0.5 of 7 prunes 4 (3.5 -> 4).

    Raises:
        ValueError: for a negative amount, a fraction above 1, a count above ``size``, or a bool.
    """
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
        raise ValueError(f"amount: expected a float in [0, 1] or an int count, got {amount!r}")
    if isinstance(amount, numbers.Integral):
        count = int(amount)
        if not 0 <= count <= size:
            raise ValueError(f"amount: expected a count in [0, {size}] (the number of entries), "
                             f"got {count}")
        return count
    if not 0.0 <= float(amount) <= 1.0:
        raise ValueError(f"amount: expected a fraction in [0, 1], got {amount!r}")
    return round(float(amount) * size)


def magnitude_mask_naive(w: np.ndarray, amount: float | int) -> np.ndarray:
    """Readable version of :func:`magnitude_mask`: prune the smallest |w| one at a time.

    O(k * size) work: for printing and for small arrays; use :func:`magnitude_mask` on layers.
    """
    w = as_array(w, "w")
    k = num_to_prune(amount, w.size)
    mask = np.ones(w.size)
    magnitudes = list(np.abs(w).ravel())
    for _ in range(k):
        # the smallest magnitude still unpruned; among ties, the first in flat (C) order
        smallest = min((m, i) for i, m in enumerate(magnitudes) if mask[i] == 1)[1]
        mask[smallest] = 0.0
    return mask.reshape(w.shape)


def magnitude_mask(w: np.ndarray, amount: float | int) -> np.ndarray:
    """Mask that prunes the ``amount`` entries of ``w`` with the smallest magnitude.

    mask[i] = 0 for the k = num_to_prune(amount, w.size) smallest |w[i]|, 1 otherwise; the
    pruned weights are ``w * mask``.

    Args:
        w: weights of any shape.
        amount: a float fraction in [0, 1] (``round(amount * w.size)`` entries, half to even) or
            an int count in [0, w.size].
    Returns:
        A float array of 0s and 1s with the shape (and floating dtype) of ``w``.

    Matches the mask of ``torch.nn.utils.prune.l1_unstructured(module, name, amount)``.
    One stated departure, at ties: when several weights share the threshold magnitude and only
    some of them are pruned, we prune the first ones in flat (C) order. Torch picks them with
    ``torch.topk``, whose choice among equal values is unspecified (it changes with the array
    size and the platform). The number pruned and the pruned magnitudes are the same either way.
    """
    w = as_array(w, "w")
    k = num_to_prune(amount, w.size)
    order = np.argsort(np.abs(w).ravel(), kind="stable")  # smallest first; ties by position
    mask = np.ones(w.size, dtype=w.dtype)
    mask[order[:k]] = 0.0
    return mask.reshape(w.shape)


def global_magnitude_masks(weights: Sequence[np.ndarray], amount: float | int) -> list[np.ndarray]:
    """Magnitude masks over several arrays at once: one threshold for all of them.

    The arrays are flattened and concatenated, :func:`magnitude_mask` prunes ``amount`` of the
    whole (a fraction of the total size, or a count), and the mask is cut back into pieces. A
    layer with many small weights is pruned more than one with large weights, unlike per-layer
    pruning, which takes the same fraction of every layer.

    Returns:
        One mask per array, shaped like it. Matches ``torch.nn.utils.prune.global_unstructured(
        parameters, pruning_method=prune.L1Unstructured, amount=amount)`` (ties as in
        :func:`magnitude_mask`).
    """
    if len(weights) == 0:
        raise ValueError("weights: expected at least one array, got none")
    arrays = [as_array(w, f"weights[{i}]") for i, w in enumerate(weights)]
    flat_mask = magnitude_mask(np.concatenate([a.ravel() for a in arrays]), amount)
    ends = np.cumsum([a.size for a in arrays])
    pieces = np.split(flat_mask, ends[:-1])
    return [p.reshape(a.shape).astype(a.dtype) for p, a in zip(pieces, arrays)]


def filter_l1_norms(w: np.ndarray) -> np.ndarray:
    """Each filter's l1 norm, s_f = sum_{c,i,j} |w[f, c, i, j]| (Li et al., 2017).

    Args:
        w: (F, C, KH, KW) conv weights (any array with filters along axis 0 works).
    Returns:
        (F,) scores. Equals ``torch.norm(w, p=1, dim=(1, 2, 3))``.
    """
    w = as_array(w, "w")
    if w.ndim < 2:
        raise ValueError(f"w: expected filters along axis 0, e.g. (F, C, KH, KW), got shape "
                         f"{w.shape}")
    return np.abs(w).reshape(w.shape[0], -1).sum(axis=1)


def filters_to_keep(w: np.ndarray, amount: float | int) -> np.ndarray:
    """Indices (ascending) of the filters that survive pruning ``amount`` of them by l1 norm.

    ``amount`` counts filters: a fraction of F (rounded half to even) or an int. The filters
    with the smallest l1 norms go; among equal norms the earlier filter goes first. Keeps the
    same filters as ``torch.nn.utils.prune.ln_structured(module, "weight", amount, n=1, dim=0)``
    (whose choice among tied norms is, again, unspecified).
    """
    scores = filter_l1_norms(w)
    k = num_to_prune(amount, scores.size)
    order = np.argsort(scores, kind="stable")
    return np.sort(order[k:])


def prune_filters(w1: np.ndarray, b1: np.ndarray | None, w2: np.ndarray, keep: np.ndarray):
    """Build the smaller dense layers: filters ``keep`` of layer 1, their input channels in layer 2.

    Layer 1 is a conv with weights w1 (F, C, KH, KW) and bias b1 (F,). Layer 2 reads layer 1's F
    feature maps (after any element-wise activation or pooling, which act per channel):

    * a conv, w2 (F2, F, KH2, KW2): keep its input channels ``keep``, w2[:, keep];
    * a fully connected layer on the flattened maps, w2 (D_out, F * S) with S = OH * OW positions
      per map, flattened channel by channel as ``x.reshape(N, -1)`` (torch's ``flatten``) does:
      keep the S columns of each kept channel.

    Removing a filter gives the same result as zeroing it and its bias *only if* what layer 2
    sees from that channel is zero, i.e. for activations with f(0) = 0 (ReLU, tanh) and no
    normalisation in between. Layer 2's bias is unchanged.

    Returns:
        ``(w1_small, b1_small, w2_small)`` with F' = len(keep) filters: (F', C, KH, KW), (F',)
        (or None), and (F2, F', KH2, KW2) or (D_out, F' * S).
    """
    w1 = as_array(w1, "w1")
    w2 = as_array(w2, "w2")
    check_ndim(w1, 4, "w1", "(F, C, KH, KW)")
    n_filters = w1.shape[0]
    keep = np.asarray(keep)
    if keep.ndim != 1 or not np.issubdtype(keep.dtype, np.integer) or keep.size == 0:
        raise ValueError(f"keep: expected a non-empty 1-D array of filter indices, got {keep!r}")
    if keep.min() < 0 or keep.max() >= n_filters or np.unique(keep).size != keep.size:
        raise ValueError(f"keep: expected distinct indices in [0, {n_filters}), got "
                         f"{keep.tolist()}")
    b1_small = None
    if b1 is not None:
        b1 = as_array(b1, "b1")
        if b1.shape != (n_filters,):
            raise ValueError(f"b1: expected shape ({n_filters},), got {b1.shape}")
        b1_small = b1[keep].copy()
    if w2.ndim == 4:
        if w2.shape[1] != n_filters:
            raise ValueError(f"w2: expected {n_filters} input channels "
                             f"(F2, {n_filters}, KH2, KW2), "
                             f"got shape {w2.shape}")
        w2_small = w2[:, keep].copy()  # (F2, F', KH2, KW2)
    elif w2.ndim == 2:
        if w2.shape[1] % n_filters != 0:
            raise ValueError(f"w2: expected (D_out, F * S) with F = {n_filters}, got shape "
                             f"{w2.shape}")
        positions = w2.shape[1] // n_filters
        w2_maps = w2.reshape(w2.shape[0], n_filters, positions)  # (D_out, F, S)
        w2_small = w2_maps[:, keep].reshape(w2.shape[0], -1)  # (D_out, F' * S)
    else:
        raise ValueError(f"w2: expected a conv (F2, F, KH2, KW2) or linear (D_out, F * S) weight, "
                         f"got shape {w2.shape}")
    return w1[keep].copy(), b1_small, w2_small


def _group_matrix(w: np.ndarray, dim: int) -> np.ndarray:
    if w.ndim < 2 or dim not in (0, 1):
        raise ValueError(f"dim: expected 0 (filters) or 1 (input channels) of a weight with at "
                         f"least 2 axes, got dim={dim!r} for shape {w.shape}")
    return np.moveaxis(w, dim, 0).reshape(w.shape[dim], -1)  # (G, rest)


def group_norms(w: np.ndarray, dim: int = 0) -> np.ndarray:
    """l2 norm of each slice of ``w`` along ``dim``: filters (dim 0) or input channels (dim 1).

    For a conv weight (F, C, KH, KW): ||w[f]||_2, shape (F,), or ||w[:, c]||_2, shape (C,).
    """
    w = as_array(w, "w")
    return np.sqrt(np.sum(_group_matrix(w, dim) ** 2, axis=1))


def group_lasso_forward(w: np.ndarray, dim: int = 0):
    """Group-lasso penalty R(w) = sum_g ||w_g||_2 over the slices of ``w`` along ``dim``.

    Multiply by lambda and add to the loss (Wen et al.'s structured sparsity learning, with
    filter-wise groups for dim=0 and channel-wise groups for dim=1 of a (F, C, KH, KW) weight).
    Returns ``(penalty, cache)``, penalty a float.
    """
    w = as_array(w, "w")
    norms = group_norms(w, dim)
    return float(norms.sum()), (w, dim, norms)


def group_lasso_backward(dout: float, cache) -> np.ndarray:
    """dR/dw_g = w_g / ||w_g||_2 for each group, times the scalar ``dout``.

    A group that is exactly zero gets gradient 0 (the subgradient torch's ``linalg.vector_norm``
    also returns there). Matches torch's autograd of ``torch.linalg.vector_norm`` summed over
    the groups.
    """
    w, dim, norms = cache
    dout = np.asarray(dout, dtype=float)
    if dout.ndim != 0:
        raise ValueError(f"dout: expected a scalar (the penalty is a scalar), got shape "
                         f"{dout.shape}")
    safe = np.where(norms > 0, norms, 1.0)
    scale = np.where(norms > 0, 1.0 / safe, 0.0)  # (G,)
    shape = [1] * w.ndim
    shape[dim] = -1
    return float(dout) * w * scale.reshape(shape)
