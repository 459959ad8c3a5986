"""The single neuron with a threshold, and the three oldest learning rules for it.

A neuron computes a weighted sum of its inputs plus a bias, net = w . x + b, and passes it
through an activation f. With the unit step as f it is the threshold unit of McCulloch and Pitts
(1943); Rosenblatt's perceptron (1958) adds a rule that learns ``w`` and ``b`` from examples.

Each rule here is a function that goes over the data one sample at a time (online learning),
for a number of epochs, and returns ``(w, b, history)``: the trained weights (D,), the bias and a
:class:`~dlbook.train.History` with one value per epoch. Randomness is explicit: with
``rng`` the samples are visited in a new random order every epoch, without it in data order.

Shapes: ``X`` is (N, D), targets are (N,), ``w`` is (D,), ``b`` a float.
"""

from __future__ import annotations

import numpy as np

from dlbook._validate import as_array, check_ndim, check_positive, check_shape
from dlbook.activations import sigmoid
from dlbook.train import History

__all__ = ["unit_step", "perceptron_predict", "perceptron_rule", "hebb_rule", "delta_rule"]


def unit_step(x: np.ndarray) -> np.ndarray:
    """The unit (Heaviside) step: 1 where x >= 0, else 0, as float.

    The deep-learning textbook chapter's (5-23) calls this function the "sign" activation, but
    the sign function takes the values -1, 0, +1 (``np.sign``); a threshold unit with outputs
    {0, 1} uses the step.
    """
    x = as_array(x, "x")
    return (x >= 0).astype(x.dtype)


def _check_data(X, targets, name: str = "targets"):
    X = as_array(X, "X")
    check_ndim(X, 2, "X", "(N, D)")
    if len(X) == 0:
        raise ValueError("X: the data set is empty (N = 0)")
    if targets is None:
        return X, None
    targets = as_array(targets, name)
    check_shape(targets, (X.shape[0],), name)
    return X, targets


def _init_weights(w, b, d: int):
    if w is None:
        w = np.zeros(d)
    else:
        w = as_array(w, "w").astype(np.float64, copy=True)
        check_shape(w, (d,), "w")
    return w, float(b)


def _check_schedule(lr: float, epochs: int) -> None:
    check_positive(lr, "lr")
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs: expected an integer >= 1, got {epochs!r}")


def _order(n: int, rng: np.random.Generator | None) -> np.ndarray:
    return rng.permutation(n) if rng is not None else np.arange(n)


def perceptron_predict(X: np.ndarray, w: np.ndarray, b: float = 0.0) -> np.ndarray:
    """Output of a threshold unit: y = step(X w + b), in {0, 1}.

    Args:
        X: (N, D) inputs.
        w: (D,) weights.
        b: bias.
    Returns:
        (N,) int64 array of 0s and 1s.
    """
    X = as_array(X, "X")
    check_ndim(X, 2, "X", "(N, D)")
    w = as_array(w, "w")
    check_shape(w, (X.shape[1],), "w")
    return unit_step(X @ w + b).astype(np.int64)  # (N,)


def perceptron_rule(X: np.ndarray, targets: np.ndarray, *, lr: float = 1.0, epochs: int = 100,
                    rng: np.random.Generator | None = None, w: np.ndarray | None = None,
                    b: float = 0.0, stop_when_converged: bool = True):
    """Rosenblatt's perceptron learning rule for a step unit with targets in {0, 1}.

    For each sample, with the unit's current output y = step(w . x + b)::

        w <- w + lr (t - y) x,    b <- b + lr (t - y)

    so nothing changes when the output is right, and a mistake moves the boundary towards the
    misclassified point. On linearly separable data the rule makes a finite number of mistakes
    (Novikoff's bound (R / gamma)^2); on data that is not separable it never stops making them.

    Args:
        X: (N, D) inputs.
        targets: (N,) labels, each 0 or 1.
        lr: learning rate (for the perceptron rule with zero initial weights it only scales w).
        epochs: maximum number of passes over the data.
        rng: shuffles the order of every epoch when given.
        w, b: initial weights (D,) and bias; zeros by default.
        stop_when_converged: stop after the first epoch without a mistake.
    Returns:
        ``(w, b, history)``; ``history["updates"]`` counts the mistakes (= updates) made during
        each epoch, ``history["errors"]`` the points misclassified by the weights at its end.
    """
    X, targets = _check_data(X, targets)
    if not np.all((targets == 0) | (targets == 1)):
        raise ValueError("targets: the perceptron rule expects labels 0 and 1")
    _check_schedule(lr, epochs)
    w, b = _init_weights(w, b, X.shape[1])
    history = History()
    for _ in range(epochs):
        updates = 0
        for i in _order(len(X), rng):
            y = 1.0 if X[i] @ w + b >= 0 else 0.0
            if y != targets[i]:
                w += lr * (targets[i] - y) * X[i]
                b += lr * (targets[i] - y)
                updates += 1
        errors = int(np.sum(perceptron_predict(X, w, b) != targets))
        history.record(updates=updates, errors=errors)
        if stop_when_converged and updates == 0:
            break
    return w, float(b), history


def hebb_rule(X: np.ndarray, targets: np.ndarray | None = None, *, lr: float = 1.0, epochs: int = 1,
              rng: np.random.Generator | None = None, w: np.ndarray | None = None, b: float = 0.0):
    """Hebb's rule: strengthen a weight when its input and the unit's activity occur together.

    Supervised form (``targets`` given, bipolar labels -1/+1)::

        w <- w + lr t x,    b <- b + lr t

    so after one epoch from zero w = lr sum_n t_n x_n, whatever the order. Unsupervised form
    (``targets=None``): the activity is the unit's own linear output y = w . x + b, and
    w <- w + lr y x, b <- b + lr y. Nothing bounds this growth: |w| increases without limit.

    Args:
        X: (N, D) inputs (bipolar -1/+1 coding is the classic setting).
        targets: (N,) labels in {-1, +1}, or None for the unsupervised form.
        lr, epochs, rng: learning rate, passes over the data, optional shuffling.
        w, b: initial weights (D,) and bias; zeros by default (the unsupervised form needs a
            non-zero start, or nothing ever changes).
    Returns:
        ``(w, b, history)``; ``history["weight_norm"]`` is |w| at the end of each epoch and, in
        the supervised form, ``history["errors"]`` counts the points where sign(w . x + b),
        with sign(0) taken as +1, differs from the target.
    """
    X, targets = _check_data(X, targets)
    if targets is not None and not np.all(np.abs(targets) == 1):
        raise ValueError("targets: Hebb's rule here expects bipolar labels -1 and +1")
    _check_schedule(lr, epochs)
    w, b = _init_weights(w, b, X.shape[1])
    history = History()
    for _ in range(epochs):
        for i in _order(len(X), rng):
            activity = targets[i] if targets is not None else X[i] @ w + b
            w += lr * activity * X[i]
            b += lr * activity
        if targets is not None:
            predicted = np.where(X @ w + b >= 0, 1.0, -1.0)
            history.record(weight_norm=np.linalg.norm(w), errors=int(np.sum(predicted != targets)))
        else:
            history.record(weight_norm=np.linalg.norm(w))
    return w, float(b), history


def delta_rule(X: np.ndarray, targets: np.ndarray, *, lr: float = 0.01, epochs: int = 10,
               rng: np.random.Generator | None = None, w: np.ndarray | None = None, b: float = 0.0,
               activation: str = "linear"):
    """The delta rule: gradient descent, one sample at a time, on the squared error of one unit.

    With net = w . x + b, output o = f(net) and per-sample loss E = (t - o)^2 / 2::

        delta = (t - o) f'(net),    w <- w + lr delta x,    b <- b + lr delta

    For the linear unit (f(net) = net, f' = 1) this is the Widrow-Hoff or least-mean-squares
    (LMS) rule; with ``activation="sigmoid"`` it is the delta rule for a sigmoid unit,
    f' = o (1 - o). Each update is exactly one step of ``torch.optim.SGD`` (batch size 1) on E.

    Args:
        X: (N, D) inputs.
        targets: (N,) real targets (e.g. -1/+1 for a linear unit, 0/1 for a sigmoid unit).
        lr, epochs, rng: learning rate, passes over the data, optional shuffling.
        w, b: initial weights (D,) and bias; zeros by default.
        activation: ``"linear"`` or ``"sigmoid"``.
    Returns:
        ``(w, b, history)``; ``history["mse"]`` is the mean of (t - o)^2 over the data at the end
        of each epoch.
    """
    X, targets = _check_data(X, targets)
    if activation not in ("linear", "sigmoid"):
        raise ValueError(f"activation: expected 'linear' or 'sigmoid', got {activation!r}")
    _check_schedule(lr, epochs)
    w, b = _init_weights(w, b, X.shape[1])
    f = (lambda z: z) if activation == "linear" else sigmoid
    history = History()
    for _ in range(epochs):
        for i in _order(len(X), rng):
            o = f(X[i] @ w + b)
            slope = 1.0 if activation == "linear" else o * (1.0 - o)
            delta = (targets[i] - o) * slope
            w += lr * delta * X[i]
            b += lr * delta
        history.record(mse=np.mean((targets - f(X @ w + b)) ** 2))
    return w, float(b), history
