"""Model ensembles: combining scores and votes, test-time augmentation, snapshot ensembles.

Scores are stacked as (M, N, K): M members (models, snapshots or augmented views), N examples,
K classes, e.g. softmax probabilities. Votes are predicted labels stacked as (M, N).

- :func:`average` and :func:`weighted_average` combine scores;
- :func:`plurality_vote` (the most votes wins) and :func:`majority_vote` (more than half the
  votes wins, otherwise the example is rejected) combine labels;
- :func:`tta_predict` averages one model's scores over transformed copies of the input;
- :func:`snapshot_lr` and :func:`snapshot_ensemble` collect a model at the end of each cycle of a
  cyclic cosine learning rate (Huang et al., 2017), M models for the training cost of one.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from dlbook._validate import as_array, check_shape

__all__ = ["average", "weighted_average", "plurality_vote", "majority_vote", "tta_predict",
           "snapshot_lr", "snapshot_ensemble"]


def _check_scores(scores) -> np.ndarray:
    scores = as_array(scores, "scores")
    if scores.ndim != 3 or scores.shape[0] == 0:
        raise ValueError(f"scores: expected a 3-D array (M, N, K) of M members' scores, got shape "
                         f"{scores.shape}")
    return scores


def _check_votes(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[0] == 0:
        raise ValueError(f"labels: expected a 2-D array (M, N) of M members' predicted labels, got "
                         f"shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError("labels: expected non-negative integer class labels")
    return labels


def average(scores) -> np.ndarray:
    """Simple averaging: s = (1/M) sum_i s_i.

    Args:
        scores: (M, N, K) member scores.
    Returns:
        (N, K) averaged scores (probabilities stay probabilities).
    """
    return _check_scores(scores).mean(axis=0)


def weighted_average(scores, weights) -> np.ndarray:
    """Weighted averaging: s = sum_i w_i s_i with w_i >= 0 and sum_i w_i = 1.

    ``weights`` are normalised to sum to one first, so validation accuracies can be passed as
    they are. (The weights already sum to one: dividing by M again, as one source writes it,
    would shrink the scores by 1/M.)

    Args:
        scores: (M, N, K). weights: (M,) non-negative, not all zero.
    Returns:
        (N, K).
    """
    scores = _check_scores(scores)
    weights = as_array(weights, "weights")
    check_shape(weights, (scores.shape[0],), "weights")
    if np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(f"weights: expected non-negative weights, not all zero, got {weights}")
    w = weights / weights.sum()
    return np.tensordot(w, scores, axes=1)  # (N, K): sum_i w_i s_i


def _vote_counts(labels: np.ndarray, num_classes: int | None) -> np.ndarray:
    k = int(labels.max()) + 1 if num_classes is None else num_classes
    if labels.max() >= k:
        raise ValueError(f"labels: a label {labels.max()} is not below num_classes = {k}")
    counts = np.zeros((labels.shape[1], k), dtype=np.intp)  # (N, K)
    for member in labels:                                   # one row of votes per member
        counts[np.arange(labels.shape[1]), member] += 1
    return counts


def plurality_vote(labels, num_classes: int | None = None) -> np.ndarray:
    """Plurality voting: each example gets the label with the most votes.

    Ties go to the smallest label (as ``np.argmax``).

    Args:
        labels: (M, N) predicted labels of M members.
        num_classes: K; by default the largest label + 1.
    Returns:
        (N,) labels.
    """
    labels = _check_votes(labels)
    return _vote_counts(labels, num_classes).argmax(axis=1)


def majority_vote(labels, reject: int = -1) -> np.ndarray:
    """Majority voting with a rejection option: a label needs more than half of the M votes.

    Examples where no label has more than M/2 votes get ``reject`` instead (no prediction).

    Args:
        labels: (M, N) predicted labels. reject: the value for a rejected example.
    Returns:
        (N,) labels or ``reject``.
    """
    labels = _check_votes(labels)
    counts = _vote_counts(labels, None)  # (N, K)
    best = counts.argmax(axis=1)
    return np.where(2 * counts.max(axis=1) > labels.shape[0], best, reject)


def tta_predict(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                transforms: Sequence[Callable[[np.ndarray], np.ndarray]]) -> np.ndarray:
    """Test-time augmentation: average a model's scores over transformed copies of the input.

    s(x) = (1/T) sum_t predict(transform_t(x))

    Include the identity (``lambda x: x``) among the transforms to keep the original view.

    Args:
        predict: maps a batch to (N, K) scores (e.g. softmax of a model's logits).
        x: the input batch. transforms: T functions from a batch to a batch of the same size.
    Returns:
        (N, K) averaged scores.
    """
    if len(transforms) == 0:
        raise ValueError("transforms: expected at least one transform")
    views = [as_array(predict(transform(x)), "predict(transform(x))") for transform in transforms]
    if len({v.shape for v in views}) != 1:
        raise ValueError(f"predict: the views gave scores of different shapes "
                         f"{sorted({v.shape for v in views})}")
    return average(np.stack(views))


def snapshot_lr(t: int, lr0: float, total_iters: int, num_cycles: int) -> float:
    """The cyclic cosine rate of snapshot ensembles (Huang et al., 2017, Eq. 2).

    lr(t) = lr0 / 2 * (cos(pi * ((t - 1) mod L) / L) + 1),   L = ceil(total_iters / num_cycles)

    for iterations t = 1, 2, ...: each cycle of L iterations falls from lr0 to nearly 0, then
    restarts. Equal to ``CosineAnnealingWarmRestarts(T_0=L)`` at step t - 1.
    """
    if not (isinstance(t, (int, np.integer)) and t >= 1):
        raise ValueError(f"t: expected an iteration number >= 1, got {t!r}")
    cycle = math.ceil(total_iters / num_cycles)
    return lr0 / 2.0 * (math.cos(math.pi * ((t - 1) % cycle) / cycle) + 1.0)


def snapshot_ensemble(train_step: Callable[[], object], optimizer, snapshot: Callable[[], object],
                      *, total_iters: int, num_cycles: int, lr0: float) -> list:
    """Train with the cyclic cosine rate and take a snapshot at the end of every cycle.

    Before iteration t (1 .. total_iters) the optimizer's ``lr`` is set to
    :func:`snapshot_lr`; ``train_step()`` then does one mini-batch update. After the last
    iteration of each cycle (t a multiple of L = ceil(total_iters / num_cycles), and at the very
    end), ``snapshot()`` is called and its result kept: pass e.g. ``lambda: copy.deepcopy(model)``.
    Average the snapshots' scores (the last m of them) with :func:`average`.

    Returns:
        The snapshots, oldest first (``num_cycles`` of them when L divides total_iters).
    """
    for value, name in ((total_iters, "total_iters"), (num_cycles, "num_cycles")):
        if not (isinstance(value, (int, np.integer)) and value >= 1):
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    if num_cycles > total_iters:
        raise ValueError(f"num_cycles: expected at most total_iters = {total_iters}, "
                         f"got {num_cycles}")
    cycle = math.ceil(total_iters / num_cycles)
    snapshots = []
    for t in range(1, total_iters + 1):
        optimizer.lr = snapshot_lr(t, lr0, total_iters, num_cycles)
        train_step()
        if t % cycle == 0 or t == total_iters:
            snapshots.append(snapshot())
    return snapshots
