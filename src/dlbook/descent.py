"""Gradient descent on explicit functions of a few parameters: the update rule and its trajectories.

The update (Wei 2017, appendix B, (B.2)) is

    x_{t+1} = x_t - gamma * grad f(x_t),

full-batch when the gradient is that of the whole objective, stochastic (SGD) when it is
estimated from one sample, and mini-batch in between. These functions return the whole
trajectory so that a figure can draw it over the contours of f. The training of real models
uses :class:`dlbook.optim.SGD`, which applies the same rule to a model's parameters.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from dlbook._validate import as_array, check_shape
from dlbook.data import iterate_minibatches

__all__ = ["Quadratic", "gradient_descent", "least_squares_loss", "least_squares_grad", "minibatch_descent"]


class Quadratic:
    """f(p) = 1/2 (p - c)^T H (p - c) + offset for a symmetric positive semi-definite H (D, D).

    Its gradient is H (p - c), Lipschitz with constant L = lambda_max(H), so gradient descent
    with a fixed step gamma converges from every start exactly when 0 < gamma < 2 / L (each
    eigen-direction is multiplied by 1 - gamma * lambda per step). ``f = x^2 + 10 y^2`` is
    ``Quadratic(np.diag([2.0, 20.0]))``: L = 20, so gamma must stay below 0.1.
    """

    def __init__(self, hessian: np.ndarray, center: np.ndarray | None = None, offset: float = 0.0) -> None:
        hessian = as_array(hessian, "hessian")
        if hessian.ndim != 2 or hessian.shape[0] != hessian.shape[1]:
            raise ValueError(f"hessian: expected a square (D, D) matrix, got shape {hessian.shape}")
        if not np.allclose(hessian, hessian.T):
            raise ValueError("hessian: expected a symmetric matrix")
        self.hessian = hessian
        dim = hessian.shape[0]
        self.center = np.zeros(dim) if center is None else as_array(center, "center")
        check_shape(self.center, (dim,), "center")
        self.offset = float(offset)

    @property
    def lipschitz(self) -> float:
        """L = the largest eigenvalue of H (the largest curvature)."""
        return float(np.linalg.eigvalsh(self.hessian).max())

    @property
    def max_stable_lr(self) -> float:
        """2 / L: fixed steps below this converge, above it diverge along the steepest direction."""
        return 2.0 / self.lipschitz

    def _points(self, p: np.ndarray) -> np.ndarray:
        p = as_array(p, "p")
        if p.shape[-1:] != self.center.shape:
            raise ValueError(f"p: expected last dimension D = {self.center.size}, got shape {p.shape}")
        return p - self.center

    def __call__(self, p: np.ndarray) -> np.ndarray | float:
        """f at one point (D,) -> float, or at many points (..., D) -> (...)."""
        q = self._points(p)
        values = 0.5 * np.einsum("...i,ij,...j->...", q, self.hessian, q) + self.offset
        return float(values) if np.ndim(values) == 0 else values

    def grad(self, p: np.ndarray) -> np.ndarray:
        """H (p - c), shaped like ``p``."""
        return self._points(p) @ self.hessian.T


def gradient_descent(grad_fn: Callable[[np.ndarray], np.ndarray], x0: np.ndarray, *, lr: float,
                     steps: int, momentum: float = 0.0, nesterov: bool = False) -> np.ndarray:
    """Run x_{t+1} = x_t - lr * grad_fn(x_t) for ``steps`` steps (B.2), optionally with momentum.

    With ``momentum`` mu > 0 a velocity accumulates the gradients, v_t = mu v_{t-1} + g_t
    (v_0 = g_0), and the step is x_{t+1} = x_t - lr v_t (the heavy ball, in PyTorch's form;
    other texts scale v by lr, the same method with constant lr). With ``nesterov`` the step
    is x_{t+1} = x_t - lr (g_t + mu v_t): the gradient plus the velocity it is about to add, the
    look-ahead of Nesterov's method written at the current point, as ``torch.optim.SGD``.

    Args:
        grad_fn: maps a (D,) point to its (D,) gradient.
        x0: (D,) start.
    Returns:
        (steps + 1, D) trajectory, starting with ``x0``. Matches
        ``torch.optim.SGD(lr=lr, momentum=momentum, nesterov=nesterov)``.
    """
    if not lr > 0:
        raise ValueError(f"lr: expected a positive step size, got {lr!r}")
    if steps < 0:
        raise ValueError(f"steps: expected >= 0, got {steps}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum: expected a value in [0, 1), got {momentum!r}")
    if nesterov and momentum == 0:
        raise ValueError("nesterov: needs a momentum > 0")
    x = as_array(x0, "x0").astype(np.float64, copy=True)
    if x.ndim != 1:
        raise ValueError(f"x0: expected a (D,) vector, got shape {x.shape}")
    path = [x.copy()]
    v = None
    for _ in range(steps):
        g = as_array(grad_fn(x), "grad_fn(x)")
        check_shape(g, x.shape, "grad_fn(x)")
        if momentum:
            v = g.copy() if v is None else momentum * v + g
            g = g + momentum * v if nesterov else v
        x = x - lr * g
        path.append(x.copy())
    return np.array(path)


def _design(theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    theta = as_array(theta, "theta")
    X = as_array(X, "X")
    y = as_array(y, "y")
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"X: expected (m,) or (m, n) inputs, got shape {X.shape}")
    check_shape(theta, (X.shape[1] + 1,), "theta")
    check_shape(y, (X.shape[0],), "y")
    if X.shape[0] == 0:
        raise ValueError("X: expected at least one sample, got 0")
    return theta, X, y


def least_squares_loss(theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    """J(theta) = 1/(2m) sum_i (h_theta(x_i) - y_i)^2 with h_theta(x) = theta_0 + sum_j theta_j x_j.

    This is the deep-learning textbook chapter's (5-28) as it should read (the printed formula
    puts y inside h), with the usual 1/m so that the step size does not depend on how many
    samples a batch holds.

    Args:
        theta: (n + 1,) parameters, intercept first.
        X: (m, n) inputs (or (m,) for one feature); y: (m,) targets.
    """
    theta, X, y = _design(theta, X, y)
    residual = theta[0] + X @ theta[1:] - y  # (m,)
    return 0.5 * float(np.mean(residual ** 2))


def least_squares_grad(theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dJ/dtheta = (1/m) [sum_i r_i, sum_i r_i x_i], with r_i = h_theta(x_i) - y_i. Shape (n + 1,)."""
    theta, X, y = _design(theta, X, y)
    residual = theta[0] + X @ theta[1:] - y  # (m,)
    return np.concatenate([[residual.mean()], X.T @ residual / len(y)])


def minibatch_descent(grad_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], theta0: np.ndarray,
                      X: np.ndarray, y: np.ndarray, *, lr: float, epochs: int, batch_size: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Mini-batch gradient descent: one step per batch of a shuffled pass, ``epochs`` passes.

    ``batch_size = len(X)`` is full-batch descent (the shuffle then changes nothing),
    ``batch_size = 1`` is SGD.

    Args:
        grad_fn: ``grad_fn(theta, X_batch, y_batch)`` -> gradient shaped like ``theta``.
        theta0: (D,) start.
    Returns:
        (updates + 1, D) trajectory, one row per update, starting with ``theta0``.
    """
    if not lr > 0:
        raise ValueError(f"lr: expected a positive step size, got {lr!r}")
    if epochs < 1:
        raise ValueError(f"epochs: expected >= 1, got {epochs}")
    theta = as_array(theta0, "theta0").astype(np.float64, copy=True)
    path = [theta.copy()]
    for _ in range(epochs):
        for xb, yb in iterate_minibatches(X, y, batch_size, rng=rng):
            g = as_array(grad_fn(theta, xb, yb), "grad_fn(theta, X, y)")
            check_shape(g, theta.shape, "grad_fn(theta, X, y)")
            theta = theta - lr * g
            path.append(theta.copy())
    return np.array(path)
