"""Training on imbalanced classes: resampling at the data level, costs at the loss level.

Data level: each function takes the labels ``y`` (N,) and returns *indices* into the training
set (so ``X[idx], y[idx]`` is the resampled set, and no image is copied until it is used):

- :func:`random_oversample`: every example, plus random repeats of the smaller classes up to the
  largest class's count;
- :func:`random_undersample`: a random subset of each class down to the smallest class's count;
- :func:`class_balanced_sample`: draw a class uniformly, then an example of that class;
- :func:`label_shuffling`: the per-epoch list of Yang et al.'s label shuffling (every class
  brought to the largest count by a random permutation taken modulo the class size).

Loss level: :func:`weighted_cross_entropy_forward` (a weight per class, as
``F.cross_entropy(weight=...)``) and :func:`expected_cost_forward` (a cost per pair of true and
predicted class), each with its backward, and two ways to choose the costs.

Randomness is explicit: every sampler takes ``rng``, so a seed fixes its output.
"""

from __future__ import annotations

import numpy as np

from dlbook._validate import as_array, check_ndim, check_shape
from dlbook.activations import log_softmax

__all__ = [
    "class_indices", "random_oversample", "random_undersample", "class_balanced_sample",
    "label_shuffling", "balanced_class_weights", "cost_matrix_from_counts",
    "cost_matrix_from_confusion", "weighted_cross_entropy_forward",
    "weighted_cross_entropy_backward", "expected_cost_forward", "expected_cost_backward",
]


def _check_labels(y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"y: expected a non-empty 1-D array of class labels (N,), "
                         f"got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y: expected integer class labels, got dtype {y.dtype}")
    return y


def class_indices(y: np.ndarray) -> dict[int, np.ndarray]:
    """The indices of each class present in ``y``, in increasing class order."""
    y = _check_labels(y)
    return {int(c): np.flatnonzero(y == c) for c in np.unique(y)}


def random_oversample(y: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
    """Indices of a set in which every class has the largest class's count.

    Each class keeps all its examples and adds ``max_count - n_c`` of them drawn at random with
    replacement; the result is shuffled. Its length is K * max_count.
    """
    groups = class_indices(y)
    target = max(len(idx) for idx in groups.values())
    parts = [np.concatenate([idx, rng.choice(idx, target - len(idx), replace=True)])
             for idx in groups.values()]
    return rng.permutation(np.concatenate(parts))


def random_undersample(y: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
    """Indices of a set in which every class has the smallest class's count.

    Each class contributes ``min_count`` of its examples drawn without replacement; the result
    is shuffled. (Redrawn every epoch, this is the per-batch under-sampling a deep network
    uses: over the epochs every example is seen, only not all in the same one.)
    """
    groups = class_indices(y)
    target = min(len(idx) for idx in groups.values())
    parts = [rng.choice(idx, target, replace=False) for idx in groups.values()]
    return rng.permutation(np.concatenate(parts))


def class_balanced_sample(y: np.ndarray, num_samples: int, *,
                          rng: np.random.Generator) -> np.ndarray:
    """Class-balanced sampling: for each draw, pick a class uniformly, then one of its examples.

    Every class present in ``y`` is drawn with probability 1/K whatever its size; within a class
    each example has probability 1/n_c (draws are independent, so with replacement). Cut the
    result into mini-batches to give each batch classes in equal expectation.

    Returns:
        (num_samples,) indices into ``y``.
    """
    groups = list(class_indices(y).values())
    if not (isinstance(num_samples, (int, np.integer)) and num_samples >= 0):
        raise ValueError(f"num_samples: expected an int >= 0, got {num_samples!r}")
    classes = rng.integers(0, len(groups), num_samples)      # (num_samples,) uniform over K
    out = np.empty(num_samples, dtype=np.intp)
    for k, idx in enumerate(groups):
        chosen = classes == k
        out[chosen] = idx[rng.integers(0, len(idx), chosen.sum())]  # uniform within the class
    return out


def label_shuffling(y: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
    """One epoch's index list of label shuffling (Yang et al., ILSVRC 2016 scene classification).

    1. Group the examples by class and find the largest class size M.
    2. For each class c of size n_c draw a random permutation of 0 .. M - 1 and take each entry
       modulo n_c: a list of M positions in the class, in which each example appears
       floor(M / n_c) or ceil(M / n_c) times.
    3. Concatenate the K lists and shuffle them.

    Every class then has exactly M entries; call again each epoch for a new list.

    Returns:
        (K * M,) indices into ``y``.
    """
    groups = class_indices(y)
    m = max(len(idx) for idx in groups.values())
    parts = [idx[rng.permutation(m) % len(idx)] for idx in groups.values()]
    return rng.permutation(np.concatenate(parts))


def balanced_class_weights(counts) -> np.ndarray:
    """Weights inversely proportional to class frequency: w_c = N / (K n_c).

    A class's total weight N/K is then the same for every class, and w = 1 for balanced data
    (scikit-learn's ``class_weight="balanced"``). Pass the result as ``weight`` to
    :func:`weighted_cross_entropy_forward`.
    """
    counts = as_array(counts, "counts")
    check_ndim(counts, 1, "counts", "(K,)")
    if np.any(counts <= 0):
        raise ValueError(f"counts: expected positive class counts, got {counts}")
    return counts.sum() / (counts.size * counts)


def cost_matrix_from_counts(counts) -> np.ndarray:
    """Cost matrix from class sizes: C[i, j] = n_j / n_i off the diagonal, 0 on it.

    Row i is the true class, column j the prediction: mistaking a rare class for a frequent one
    costs more than the reverse. For sizes 3 : 2 : 1 the first row is (0, 2/3, 1/3).
    """
    counts = as_array(counts, "counts")
    check_ndim(counts, 1, "counts", "(K,)")
    if np.any(counts <= 0):
        raise ValueError(f"counts: expected positive class counts, got {counts}")
    cost = counts[None, :] / counts[:, None]  # (K, K): n_j / n_i
    np.fill_diagonal(cost, 0.0)
    return cost


def cost_matrix_from_confusion(confusion) -> np.ndarray:
    """Cost matrix from a validation confusion matrix (rows: true class, columns: predicted).

    Each off-diagonal count is scaled by its row's share of the summed error rates:
    C[i, j] = confusion[i, j] * e_i / sum_k e_k for i != j, with e_i = 1 - confusion[i, i] / n_i
    the error rate of class i. The classes the model gets wrong most often, and the confusions
    it makes most often, cost most. (Multiply by 100 for the shares in percent.)
    """
    confusion = as_array(confusion, "confusion")
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"confusion: expected a square (K, K) matrix, got shape {confusion.shape}")
    row_totals = confusion.sum(axis=1)
    if np.any(row_totals <= 0) or np.any(confusion < 0):
        raise ValueError("confusion: expected non-negative counts with every row non-empty")
    error_rate = 1.0 - np.diag(confusion) / row_totals  # (K,)
    if error_rate.sum() == 0:
        raise ValueError("confusion: no errors at all, so there is nothing to weight")
    cost = confusion * (error_rate / error_rate.sum())[:, None]
    np.fill_diagonal(cost, 0.0)
    return cost


def _check_logits_targets(logits, targets):
    logits = as_array(logits, "logits")
    check_ndim(logits, 2, "logits", "(N, K)")
    n, k = logits.shape
    if n == 0:
        raise ValueError("logits: the batch is empty (N = 0)")
    targets = np.asarray(targets)
    check_shape(targets, (n,), "targets")
    if not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets: expected integer class indices, got dtype {targets.dtype}")
    if targets.min() < 0 or targets.max() >= k:
        raise ValueError(f"targets: class indices must lie in [0, {k}), got range "
                         f"[{targets.min()}, {targets.max()}]")
    return logits, targets


def weighted_cross_entropy_forward(logits: np.ndarray, targets: np.ndarray, weight: np.ndarray):
    """Class-weighted softmax cross-entropy, a weighted mean over the batch.

    L = - sum_n w[y_n] log softmax(z_n)[y_n] / sum_n w[y_n]

    Note the denominator: the sum of the weights of the batch's targets, not N (torch's
    convention; with equal weights this is the plain mean).

    Args:
        logits: (N, K) scores. targets: (N,) class indices. weight: (K,) non-negative weights.
    Returns:
        ``(loss, cache)``. Matches ``F.cross_entropy(logits, targets, weight=weight)``.
    """
    logits, targets = _check_logits_targets(logits, targets)
    weight = as_array(weight, "weight")
    check_shape(weight, (logits.shape[1],), "weight")
    if np.any(weight < 0):
        raise ValueError("weight: expected non-negative class weights")
    w = weight[targets]  # (N,) each example's weight
    if w.sum() <= 0:
        raise ValueError("weight: the batch's targets all have weight 0")
    logp = log_softmax(logits, axis=1)  # (N, K)
    loss = -np.sum(w * logp[np.arange(len(targets)), targets]) / w.sum()
    return float(loss), (logp, targets, w)


def weighted_cross_entropy_backward(cache, dout: float = 1.0) -> np.ndarray:
    """dL/dz_n = w[y_n] (softmax(z_n) - onehot(y_n)) / sum_m w[y_m], times ``dout``."""
    logp, targets, w = cache
    dlogits = np.exp(logp)  # softmax, (N, K)
    dlogits[np.arange(len(targets)), targets] -= 1.0
    return dout * dlogits * (w / w.sum())[:, None]


def expected_cost_forward(logits: np.ndarray, targets: np.ndarray, cost: np.ndarray):
    """Cost-sensitive loss: the expected misclassification cost under the softmax.

    L = (1/N) sum_n sum_k p_nk C[y_n, k],   p_n = softmax(z_n)

    Row ``C[y]`` is the cost of each possible prediction for an example of class y (zero for
    the right one), so a per-example cost vector c_n is simply ``cost[y_n]``. With C = 1 - I the
    loss is 1 - mean_n p_{n, y_n}, the expected error rate.

    Args:
        logits: (N, K). targets: (N,) class indices. cost: (K, K), rows true class, columns
            predicted class, non-negative.
    Returns:
        ``(loss, cache)``.
    """
    logits, targets = _check_logits_targets(logits, targets)
    cost = as_array(cost, "cost")
    k = logits.shape[1]
    check_shape(cost, (k, k), "cost")
    if np.any(cost < 0):
        raise ValueError("cost: expected non-negative costs")
    p = np.exp(log_softmax(logits, axis=1))  # (N, K)
    c = cost[targets]                        # (N, K) each example's cost vector
    expected = (p * c).sum(axis=1)           # (N,)
    return float(expected.mean()), (p, c, expected)


def expected_cost_backward(cache, dout: float = 1.0) -> np.ndarray:
    """dL/dz_nk = p_nk (C[y_n, k] - sum_j p_nj C[y_n, j]) / N, times ``dout``.

    (The softmax Jacobian dp_j/dz_k = p_j (delta_jk - p_k) applied to the cost vector.)
    """
    p, c, expected = cache
    return dout * p * (c - expected[:, None]) / p.shape[0]
