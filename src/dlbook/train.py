"""A small training loop for dlbook models, with a progress bar and a history a plot can draw.

``fit`` trains any :class:`~dlbook.module.Module` whose last layer produces class scores
(logits), with softmax cross-entropy and any :mod:`dlbook.optim` optimizer.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from tqdm.std import tqdm

from dlbook.data import iterate_minibatches
from dlbook.losses import cross_entropy_backward, cross_entropy_forward
from dlbook.module import Module

__all__ = ["History", "accuracy", "evaluate", "fit"]


@dataclass
class History:
    """Per-epoch metrics: ``history["train_loss"]`` is a list with one value per epoch."""

    metrics: dict[str, list[float]] = field(default_factory=dict)
    #: with early stopping or ``restore_best``: index (0 = first epoch) of the best monitored epoch
    best_epoch: int | None = None
    #: True when ``fit`` stopped before ``epochs`` because ``patience`` ran out
    stopped_early: bool = False

    def record(self, **values: float) -> None:
        """Append one value to each named metric."""
        for name, value in values.items():
            self.metrics.setdefault(name, []).append(float(value))

    def __getitem__(self, name: str) -> list[float]:
        return self.metrics[name]

    def __contains__(self, name: str) -> bool:
        return name in self.metrics

    @property
    def epochs(self) -> int:
        """Number of epochs recorded."""
        return max((len(v) for v in self.metrics.values()), default=0)

    def last(self) -> dict[str, float]:
        """The latest value of every metric."""
        return {name: values[-1] for name, values in self.metrics.items()}


def accuracy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Fraction of rows whose largest score is at the target class."""
    logits = np.asarray(logits)
    targets = np.asarray(targets)
    if logits.ndim != 2 or targets.shape != (logits.shape[0],):
        raise ValueError(f"logits, targets: expected (N, K) and (N,), got {logits.shape} and {targets.shape}")
    return float(np.mean(np.argmax(logits, axis=1) == targets))


def evaluate(model: Module, X: np.ndarray, y: np.ndarray, batch_size: int = 512) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(X, y)``, in evaluation mode."""
    was_training = model.training
    model.eval()
    try:
        logits = np.concatenate([model.forward(xb) for xb, _ in iterate_minibatches(X, y, batch_size)])
    finally:
        model.train(was_training)
    loss, _ = cross_entropy_forward(logits, y)
    return loss, accuracy(logits, y)


_MONITORS = {"val_loss": -1.0, "val_acc": 1.0}  # +1: larger is better, -1: smaller is better


def _snapshot(model: Module) -> list[tuple[np.ndarray, np.ndarray]]:
    """(parameter array, copy of its values) for every parameter of ``model``."""
    return [(param, param.copy()) for m in model.modules() for param in m.params.values()]


def fit(model: Module, optimizer, X_train: np.ndarray, y_train: np.ndarray, *, epochs: int,
        batch_size: int, rng: np.random.Generator, X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None, progress: bool = True, desc: str = "train",
        patience: int | None = None, restore_best: bool = False, monitor: str = "val_loss",
        min_delta: float = 0.0, after_step: Callable[[], None] | None = None,
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None
        ) -> History:
    """Train ``model`` with mini-batch ``optimizer`` steps on softmax cross-entropy.

    Each epoch shuffles the training set with ``rng``, takes one step per batch, then records
    ``train_loss`` and ``train_acc`` (over the whole training set, in evaluation mode) and, when
    validation data is given, ``val_loss`` and ``val_acc``.

    Early stopping (off by default; then the loop runs all ``epochs``): ``monitor`` names the
    validation metric watched (``'val_loss'``, smaller is better, or ``'val_acc'``, larger is
    better). An epoch improves on the best so far when it beats it by more than ``min_delta``.
    With ``patience`` the loop stops after ``patience`` epochs in a row without improvement;
    with ``restore_best`` the model's parameters are set back, in place, to their values at the
    end of the best epoch (``history.best_epoch``). Both need validation data. Only ``params``
    are restored (not optimizer state or other attributes).

    Args:
        after_step: optional function called after every optimizer step (e.g. a max-norm
            projection, :func:`dlbook.regularization.apply_max_norm`).
        augment: optional data augmentation, called as ``augment(xb, rng)`` on every training
            batch before the forward pass (e.g. a :class:`dlbook.augment.Compose`). It draws
            from the same ``rng`` as the shuffling. The per-epoch metrics are computed on the
            original, unaugmented data.
    Returns:
        The :class:`History` of the run.
    """
    if epochs < 1:
        raise ValueError(f"epochs: expected >= 1, got {epochs}")
    if (X_val is None) != (y_val is None):
        raise ValueError("X_val, y_val: give both or neither")
    watch = patience is not None or restore_best
    if watch:
        if X_val is None:
            raise ValueError("X_val, y_val: early stopping and restore_best watch a validation "
                             "metric; give validation data")
        if monitor not in _MONITORS:
            raise ValueError(f"monitor: expected one of {sorted(_MONITORS)}, got {monitor!r}")
        if patience is not None and (not isinstance(patience, int) or patience < 1):
            raise ValueError(f"patience: expected an int >= 1, got {patience!r}")
        if not min_delta >= 0:
            raise ValueError(f"min_delta: expected >= 0, got {min_delta!r}")
    history = History()
    best, best_params, waited = None, None, 0
    bar = tqdm(range(epochs), desc=desc, disable=not progress, file=sys.stderr, ascii=True,
               mininterval=0.5, dynamic_ncols=False, ncols=120)
    for epoch in bar:
        model.train()
        for xb, yb in iterate_minibatches(X_train, y_train, batch_size, rng=rng):
            if augment is not None:
                xb = augment(xb, rng)
            logits = model.forward(xb)
            _, cache = cross_entropy_forward(logits, yb)
            optimizer.zero_grad()
            model.backward(cross_entropy_backward(cache))
            optimizer.step()
            if after_step is not None:
                after_step()
        train_loss, train_acc = evaluate(model, X_train, y_train)
        history.record(train_loss=train_loss, train_acc=train_acc)
        if X_val is not None:
            val_loss, val_acc = evaluate(model, X_val, y_val)
            history.record(val_loss=val_loss, val_acc=val_acc)
        bar.set_postfix({k: round(v, 4) for k, v in history.last().items()}, refresh=False)
        if watch:
            score = _MONITORS[monitor] * history[monitor][-1]  # larger is better
            if best is None or score > best + min_delta:
                best, waited, history.best_epoch = score, 0, epoch
                if restore_best:
                    best_params = _snapshot(model)
            else:
                waited += 1
                if patience is not None and waited >= patience:
                    history.stopped_early = epoch < epochs - 1
                    break
    bar.close()
    if restore_best and best_params is not None:
        for param, saved in best_params:
            param[...] = saved
    return history
