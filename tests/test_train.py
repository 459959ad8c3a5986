"""dlbook.train: History, accuracy, evaluate, and the fit loop."""

from __future__ import annotations

import numpy as np
import pytest

from dlbook.activations import ReLU
from dlbook.data import make_blobs
from dlbook.dropout import Dropout
from dlbook.linear import Linear
from dlbook.losses import cross_entropy_forward
from dlbook.optim import SGD
from dlbook.sequential import Sequential
from dlbook.train import History, accuracy, evaluate, fit


def test_history_records_per_epoch():
    h = History()
    h.record(train_loss=1.0, train_acc=0.5)
    h.record(train_loss=0.5, train_acc=0.75)
    assert h["train_loss"] == [1.0, 0.5] and h.epochs == 2
    assert h.last() == {"train_loss": 0.5, "train_acc": 0.75}
    assert "val_loss" not in h


def test_accuracy():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert accuracy(logits, np.array([0, 1, 1])) == pytest.approx(2 / 3)
    assert accuracy(logits, np.array([1, 0, 1])) == 0.0
    with pytest.raises(ValueError, match="logits, targets"):
        accuracy(logits, np.array([0, 1]))


def test_evaluate_uses_eval_mode_and_restores_it(rng):
    model = Sequential(Linear(2, 8, rng=rng), Dropout(0.5, rng=rng), Linear(8, 2, rng=rng))
    X = rng.standard_normal((20, 2))
    y = rng.integers(0, 2, 20)
    loss, acc = evaluate(model, X, y)
    model.eval()
    ref_logits = model.forward(X)
    model.train()
    assert loss == pytest.approx(cross_entropy_forward(ref_logits, y)[0], rel=1e-12)  # dropout was off
    assert acc == accuracy(ref_logits, y)
    assert model.training and model[1].training


def test_fit_learns_separable_blobs_and_is_reproducible():
    def run():
        rng = np.random.default_rng(0)
        X, y = make_blobs(50, [[-2, 0], [2, 0], [0, 3]], std=0.5, rng=rng)
        model = Sequential(Linear(2, 16, rng=rng), ReLU(), Linear(16, 3, rng=rng))
        history = fit(model, SGD(model, lr=0.1, momentum=0.9), X[:120], y[:120], epochs=15, batch_size=16,
                      rng=rng, X_val=X[120:], y_val=y[120:], progress=False)
        return history

    history = run()
    assert history.epochs == 15 and set(history.metrics) == {"train_loss", "train_acc", "val_loss", "val_acc"}
    assert history["train_loss"][-1] < 0.2 * history["train_loss"][0]
    assert history["val_acc"][-1] >= 0.95
    assert run().metrics == history.metrics  # same seed, same numbers


def test_fit_without_steps_does_not_learn(rng):
    # The negative case: with a learning rate too small to move, the loss stays where it was.
    X, y = make_blobs(30, [[-2, 0], [2, 0]], rng=rng)
    model = Sequential(Linear(2, 2, rng=rng))
    history = fit(model, SGD(model, lr=1e-12), X, y, epochs=3, batch_size=10, rng=rng, progress=False)
    assert history["train_loss"][-1] == pytest.approx(history["train_loss"][0], rel=1e-9)


def test_fit_rejects_bad_arguments(rng):
    model = Sequential(Linear(2, 2, rng=rng))
    X, y = np.zeros((4, 2)), np.zeros(4, dtype=int)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, SGD(model, lr=0.1), X, y, epochs=0, batch_size=2, rng=rng)
    with pytest.raises(ValueError, match="X_val, y_val"):
        fit(model, SGD(model, lr=0.1), X, y, epochs=1, batch_size=2, rng=rng, X_val=X)
