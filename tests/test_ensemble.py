"""dlbook.ensemble against the definitions of each combination rule."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from dlbook.ensemble import (average, majority_vote, plurality_vote, snapshot_ensemble, snapshot_lr,
                             tta_predict, weighted_average)
from dlbook.linear import Linear
from dlbook.losses import mse_backward, mse_forward
from dlbook.optim import SGD


def _scores(rng, m=5, n=7, k=4):
    z = rng.standard_normal((m, n, k))
    return np.exp(z) / np.exp(z).sum(axis=2, keepdims=True)


def test_averages_follow_their_definitions(rng):
    s = _scores(rng)
    np.testing.assert_allclose(average(s), sum(s[i] for i in range(5)) / 5, rtol=1e-15)
    w = rng.uniform(0.1, 1.0, 5)
    expected = sum(w[i] * s[i] for i in range(5)) / w.sum()
    np.testing.assert_allclose(weighted_average(s, w), expected, rtol=1e-14)
    np.testing.assert_allclose(weighted_average(s, np.ones(5)), average(s), rtol=1e-14)
    np.testing.assert_allclose(weighted_average(s, w).sum(axis=1), 1.0, rtol=1e-14)


def test_the_sources_weighted_average_example():
    # Three members' scores for one example, weights 0.5, 0.3, 0.2: the weighted sum, not / M.
    s = np.array([[[0.7, 0.2, 0.1]], [[0.4, 0.5, 0.1]], [[0.45, 0.45, 0.1]]])
    got = weighted_average(s, [0.5, 0.3, 0.2])
    np.testing.assert_allclose(got, [[0.56, 0.34, 0.10]], rtol=1e-14)
    # Negative case: the double normalisation (dividing by M again) is told apart.
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(got / 3, [[0.56, 0.34, 0.10]], rtol=1e-14)


def test_votes_follow_their_definitions(rng):
    labels = rng.integers(0, 3, (5, 200))
    plural, major = plurality_vote(labels, num_classes=3), majority_vote(labels, reject=-1)
    for n in range(200):
        counts = np.bincount(labels[:, n], minlength=3)
        assert plural[n] == np.flatnonzero(counts == counts.max())[0]  # ties: smallest label
        assert major[n] == (counts.argmax() if counts.max() > 2.5 else -1)
    assert np.any(major == -1) and np.any(major >= 0)   # both outcomes occur
    assert np.all((major == plural) | (major == -1))    # a majority is also a plurality
    # The source's example: votes 0, 1, 0 from three members.
    votes = np.array([[0], [1], [0]])
    assert plurality_vote(votes)[0] == 0 and majority_vote(votes)[0] == 0
    # Exactly half is not a majority: 2 of 4 votes is rejected.
    assert majority_vote(np.array([[1], [1], [0], [2]]), reject=99)[0] == 99
    # Negative case: a ">= half" rule would accept it (label 1), and the check tells it apart.
    counts = np.bincount([1, 1, 0, 2])
    at_least_half = counts.argmax() if 2 * counts.max() >= 4 else 99
    assert at_least_half != majority_vote(np.array([[1], [1], [0], [2]]), reject=99)[0]


def test_tta_averages_over_the_views(rng):
    w = rng.standard_normal((6, 3))
    x = rng.standard_normal((4, 6))

    def predict(batch):
        z = batch @ w
        return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    transforms = [lambda b: b, lambda b: b[:, ::-1], lambda b: np.roll(b, 1, axis=1)]
    got = tta_predict(predict, x, transforms)
    expected = (predict(x) + predict(x[:, ::-1]) + predict(np.roll(x, 1, axis=1))) / 3
    np.testing.assert_allclose(got, expected, rtol=1e-15)
    assert not np.allclose(got, predict(x))  # the views really differ
    with pytest.raises(ValueError, match="transforms"):
        tta_predict(predict, x, [])


def test_snapshot_lr_is_torchs_warm_restarts():
    # 300 iterations in 6 cycles from 0.1: the source's worked example.
    p = torch.zeros(1, requires_grad=True)
    opt_t = torch.optim.SGD([p], lr=0.1)
    sched_t = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt_t, T_0=50)
    ours = [snapshot_lr(t, 0.1, 300, 6) for t in range(1, 301)]
    theirs = []
    for _ in range(300):
        theirs.append(opt_t.param_groups[0]["lr"])
        opt_t.step()
        sched_t.step()
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-16)
    assert ours[0] == 0.1 and ours[25] == pytest.approx(0.05) and ours[50] == 0.1  # restart at 51
    with pytest.raises(AssertionError):  # off by one iteration
        np.testing.assert_allclose(ours[1:], theirs[:-1], rtol=1e-10, atol=1e-16)


def test_snapshot_ensemble_collects_one_model_per_cycle(rng):
    X = rng.standard_normal((32, 3))
    y = X @ np.array([[1.0], [-1.0], [2.0]])
    model = Linear(3, 1, rng=rng)
    opt = SGD(model, lr=1.0, momentum=0.9)
    seen = []

    def train_step():
        seen.append(opt.lr)
        loss, cache = mse_forward(model.forward(X), y)
        model.backward(mse_backward(cache))
        opt.step()

    snaps = snapshot_ensemble(train_step, opt, lambda: copy.deepcopy(model), total_iters=40,
                              num_cycles=4, lr0=0.05)
    assert len(snaps) == 4 and len(seen) == 40
    np.testing.assert_allclose(seen, [snapshot_lr(t, 0.05, 40, 4) for t in range(1, 41)],
                               rtol=1e-15)
    # Snapshots are independent copies taken at different times, the last one the final model.
    np.testing.assert_array_equal(snaps[-1].params["w"], model.params["w"])
    assert snaps[0] is not model
    assert not np.allclose(snaps[0].params["w"], snaps[-1].params["w"])
    with pytest.raises(ValueError, match="num_cycles"):
        snapshot_ensemble(train_step, opt, lambda: None, total_iters=3, num_cycles=5, lr0=0.1)


def test_bad_shapes(rng):
    with pytest.raises(ValueError, match=r"scores: expected a 3-D array \(M, N, K\)"):
        average(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"weights: expected shape \(5,\), got \(4,\)"):
        weighted_average(_scores(rng), np.ones(4))
    with pytest.raises(ValueError, match="weights: expected non-negative"):
        weighted_average(_scores(rng), -np.ones(5))
    with pytest.raises(ValueError, match="labels"):
        majority_vote(np.ones(3, dtype=int))
    with pytest.raises(ValueError, match="labels: expected non-negative integer"):
        plurality_vote(np.ones((2, 3)))
    with pytest.raises(ValueError, match="num_classes"):
        plurality_vote(np.array([[0, 3]]), num_classes=3)
