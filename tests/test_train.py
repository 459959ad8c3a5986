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


# --- early stopping -----------------------------------------------------------------------------

def _reference_fit(model, optimizer, X, y, epochs, batch_size, rng, X_val, y_val):
    """The loop fit ran before early stopping was added, written out as the regression oracle."""
    from dlbook.data import iterate_minibatches
    from dlbook.losses import cross_entropy_backward
    history = History()
    for _ in range(epochs):
        model.train()
        for xb, yb in iterate_minibatches(X, y, batch_size, rng=rng):
            _, cache = cross_entropy_forward(model.forward(xb), yb)
            optimizer.zero_grad()
            model.backward(cross_entropy_backward(cache))
            optimizer.step()
        history.record(**dict(zip(("train_loss", "train_acc"), evaluate(model, X, y))))
        history.record(**dict(zip(("val_loss", "val_acc"), evaluate(model, X_val, y_val))))
    return history


def _problem(seed):
    rng = np.random.default_rng(seed)
    X, y = make_blobs(40, [[-1, 0], [1, 0], [0, 1.5]], std=0.9, rng=rng)
    model = Sequential(Linear(2, 32, rng=rng), ReLU(), Dropout(0.2, rng=rng),
                       Linear(32, 3, rng=rng))
    return rng, X[:60], y[:60], X[60:], y[60:], model


def _params(model):
    return [p.copy() for m in model.modules() for p in m.params.values()]


def test_default_fit_is_unchanged_by_the_early_stopping_options():
    rng, X, y, Xv, yv, model = _problem(1)
    history = fit(model, SGD(model, lr=0.2, momentum=0.9), X, y, epochs=12, batch_size=8, rng=rng,
                  X_val=Xv, y_val=yv, progress=False)
    rng2, X2, y2, Xv2, yv2, model2 = _problem(1)
    ref = _reference_fit(model2, SGD(model2, lr=0.2, momentum=0.9), X2, y2, 12, 8, rng2, Xv2, yv2)
    assert history.metrics == ref.metrics
    for a, b in zip(_params(model), _params(model2)):
        np.testing.assert_array_equal(a, b)
    assert history.best_epoch is None and not history.stopped_early
    assert rng.random() == rng2.random()  # the same number of draws from the generator
    # a patience longer than the run changes no number either
    rng3, X3, y3, Xv3, yv3, model3 = _problem(1)
    long = fit(model3, SGD(model3, lr=0.2, momentum=0.9), X3, y3, epochs=12, batch_size=8, rng=rng3,
               X_val=Xv3, y_val=yv3, progress=False, patience=100)
    assert long.metrics == history.metrics and long.epochs == 12
    # the negative case: another seed gives other numbers, so the comparison above can fail
    rng4, X4, y4, Xv4, yv4, model4 = _problem(2)
    other = fit(model4, SGD(model4, lr=0.2, momentum=0.9), X4, y4, epochs=12, batch_size=8,
                rng=rng4, X_val=Xv4, y_val=yv4, progress=False)
    assert other.metrics != history.metrics


class _ScriptedOptimizer:
    """Sets the weight to the next planned value at each step (one step per epoch)."""

    def __init__(self, layer, plan):
        self.layer, self.plan, self.calls = layer, plan, 0

    def zero_grad(self):
        pass

    def step(self):
        self.layer.params["w"][...] = self.plan[self.calls]
        self.calls += 1


def _scripted(scales):
    X = np.array([[1.0, 0.2], [-1.0, 0.1], [0.9, -0.3], [-1.2, 0.0]])
    y = np.array([0, 1, 0, 1])
    layer = Linear(2, 2, bias=False, rng=np.random.default_rng(0))
    w_good = np.array([[1.0, 0.0], [-1.0, 0.0]])  # separates X: a larger scale, a smaller loss
    return layer, _ScriptedOptimizer(layer, [s * w_good for s in scales]), X, y


def test_patience_stops_after_that_many_epochs_without_improvement():
    scales = [0.1, 0.5, 1.0, 2.0, 3.0, 2.5, 1.5, 1.0, 0.5, 0.2]  # val loss: down to epoch 4, up
    layer, opt, X, y = _scripted(scales)
    history = fit(layer, opt, X, y, epochs=10, batch_size=4, rng=np.random.default_rng(0),
                  X_val=X, y_val=y, progress=False, patience=3)
    assert history.best_epoch == int(np.argmin(history["val_loss"])) == 4
    assert history.epochs == 4 + 1 + 3 and history.stopped_early
    np.testing.assert_array_equal(layer.params["w"], opt.plan[7])  # not restored
    layer, opt, X, y = _scripted(scales)
    history = fit(layer, opt, X, y, epochs=10, batch_size=4, rng=np.random.default_rng(0),
                  X_val=X, y_val=y, progress=False, patience=3, restore_best=True)
    np.testing.assert_array_equal(layer.params["w"], opt.plan[4])
    assert not np.array_equal(layer.params["w"], opt.plan[7])


def test_monitor_val_acc_and_min_delta():
    scales = [1.0] * 8  # accuracy never improves after the first epoch
    layer, opt, X, y = _scripted(scales)
    history = fit(layer, opt, X, y, epochs=8, batch_size=4, rng=np.random.default_rng(0),
                  X_val=X, y_val=y, progress=False, patience=2, monitor="val_acc")
    assert history.best_epoch == 0 and history.epochs == 3
    layer, opt, X, y = _scripted([1.0, 1.01, 1.02, 1.03, 5.0, 5.0])  # tiny gains, then a big one
    history = fit(layer, opt, X, y, epochs=6, batch_size=4, rng=np.random.default_rng(0),
                  X_val=X, y_val=y, progress=False, patience=10, min_delta=0.05)
    assert history.best_epoch == 4 and history.epochs == 6


def test_restore_best_on_a_real_run_gives_back_the_best_validation_loss():
    rng, X, y, Xv, yv, model = _problem(3)
    history = fit(model, SGD(model, lr=0.3, momentum=0.9), X, y, epochs=25, batch_size=4, rng=rng,
                  X_val=Xv, y_val=yv, progress=False, restore_best=True)
    best = history.best_epoch
    assert best == int(np.argmin(history["val_loss"]))
    assert evaluate(model, Xv, yv)[0] == history["val_loss"][best]
    if best != history.epochs - 1:
        assert history["val_loss"][-1] != history["val_loss"][best]


def test_after_step_is_called_once_per_step(rng):
    X, y = make_blobs(10, [[-2, 0], [2, 0]], rng=rng)
    model = Sequential(Linear(2, 2, rng=rng))
    calls = []
    fit(model, SGD(model, lr=0.1), X, y, epochs=3, batch_size=6, rng=rng, progress=False,
        after_step=lambda: calls.append(1))
    assert len(calls) == 3 * 4  # 20 samples in batches of 6: 4 steps an epoch


def test_early_stopping_bad_arguments(rng):
    model = Sequential(Linear(2, 2, rng=rng))
    X, y = np.zeros((4, 2)), np.zeros(4, dtype=int)
    opt = SGD(model, lr=0.1)
    with pytest.raises(ValueError, match="validation"):
        fit(model, opt, X, y, epochs=1, batch_size=2, rng=rng, patience=2)
    with pytest.raises(ValueError, match="monitor"):
        fit(model, opt, X, y, epochs=1, batch_size=2, rng=rng, X_val=X, y_val=y, patience=2,
            monitor="train_loss")
    with pytest.raises(ValueError, match="patience"):
        fit(model, opt, X, y, epochs=1, batch_size=2, rng=rng, X_val=X, y_val=y, patience=0)


def test_augment_sees_every_training_batch_and_only_those(rng):
    X, y = make_blobs(10, [[-2, 0], [2, 0]], rng=rng)
    Xv, yv = X[:5].copy(), y[:5].copy()
    model = Sequential(Linear(2, 2, rng=rng))
    seen = []

    def augment(xb, gen):
        seen.append(len(xb))
        return xb + gen.normal(0, 0.01, xb.shape)

    history = fit(model, SGD(model, lr=0.1), X, y, epochs=2, batch_size=8, rng=rng,
                  X_val=Xv, y_val=yv, progress=False, augment=augment)
    assert seen == [8, 8, 4] * 2  # training batches only, not the evaluation passes
    assert history.epochs == 2
    # the negative case: an augmentation that destroys the inputs stops the learning
    model = Sequential(Linear(2, 2, rng=np.random.default_rng(0)))
    blind = fit(model, SGD(model, lr=0.5), X, y, epochs=5, batch_size=8,
                rng=np.random.default_rng(1), progress=False,
                augment=lambda xb, gen: np.zeros_like(xb))
    model = Sequential(Linear(2, 2, rng=np.random.default_rng(0)))
    plain = fit(model, SGD(model, lr=0.5), X, y, epochs=5, batch_size=8,
                rng=np.random.default_rng(1), progress=False)
    assert plain["train_acc"][-1] > blind["train_acc"][-1]
