"""A small training loop for dlbook models, with a progress bar and a history a plot can draw.

``fit`` trains any :class:`~dlbook.module.Module` whose last layer produces class scores
(logits), with softmax cross-entropy and any :mod:`dlbook.optim` optimizer.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

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


def fit(model: Module, optimizer, X_train: np.ndarray, y_train: np.ndarray, *, epochs: int,
        batch_size: int, rng: np.random.Generator, X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None, progress: bool = True, desc: str = "train") -> History:
    """Train ``model`` with mini-batch ``optimizer`` steps on softmax cross-entropy.

    Each epoch shuffles the training set with ``rng``, takes one step per batch, then records
    ``train_loss`` and ``train_acc`` (over the whole training set, in evaluation mode) and, when
    validation data is given, ``val_loss`` and ``val_acc``.

    Returns:
        The :class:`History` of the run.
    """
    if epochs < 1:
        raise ValueError(f"epochs: expected >= 1, got {epochs}")
    if (X_val is None) != (y_val is None):
        raise ValueError("X_val, y_val: give both or neither")
    history = History()
    bar = tqdm(range(epochs), desc=desc, disable=not progress, file=sys.stderr, ascii=True,
               mininterval=0.5, dynamic_ncols=False, ncols=120)
    for _ in bar:
        model.train()
        for xb, yb in iterate_minibatches(X_train, y_train, batch_size, rng=rng):
            logits = model.forward(xb)
            _, cache = cross_entropy_forward(logits, yb)
            optimizer.zero_grad()
            model.backward(cross_entropy_backward(cache))
            optimizer.step()
        train_loss, train_acc = evaluate(model, X_train, y_train)
        history.record(train_loss=train_loss, train_acc=train_acc)
        if X_val is not None:
            val_loss, val_acc = evaluate(model, X_val, y_val)
            history.record(val_loss=val_loss, val_acc=val_acc)
        bar.set_postfix({k: round(v, 4) for k, v in history.last().items()}, refresh=False)
    bar.close()
    return history
