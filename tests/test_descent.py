"""dlbook.descent: gradient-descent trajectories against torch.optim.SGD, and the step-size bound."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TIGHT
from dlbook.data import iterate_minibatches
from dlbook.descent import Quadratic, gradient_descent, least_squares_grad, least_squares_loss, minibatch_descent
from dlbook.gradcheck import GradientCheckError, check_gradients


def test_step_size_bound_on_x2_plus_10y2():
    f = Quadratic(np.diag([2.0, 20.0]))
    assert f(np.array([1.0, 1.0])) == pytest.approx(11.0)
    assert f.max_stable_lr == pytest.approx(0.1)
    slow = gradient_descent(f.grad, [1.0, 1.0], lr=0.05, steps=30)
    values = f(slow)
    assert np.all(np.diff(values) < 0)  # monotone decrease
    fast = gradient_descent(f.grad, [1.0, 1.0], lr=0.11, steps=30)
    assert round(f(fast[1]), 2) == 15.01  # 0.78^2 + 10 * 1.2^2 = 15.0084
    assert f(fast[-1]) > 1e3  # diverges: |1 - 20 * 0.11| = 1.2 > 1


def test_gradient_descent_matches_torch_sgd(rng):
    hessian = np.array([[3.0, 1.0], [1.0, 2.0]])
    f = Quadratic(hessian, center=np.array([0.5, -1.0]), offset=2.0)
    path = gradient_descent(f.grad, [2.0, 1.0], lr=0.2, steps=8)
    p = torch.tensor([2.0, 1.0], requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.2)
    H, c = torch.from_numpy(hessian), torch.tensor([0.5, -1.0])
    for t in range(8):
        opt.zero_grad()
        loss = 0.5 * (p - c) @ H @ (p - c) + 2.0
        assert f(path[t]) == pytest.approx(loss.item(), rel=1e-13)
        loss.backward()
        opt.step()
        np.testing.assert_allclose(path[t + 1], p.detach().numpy(), **TIGHT)


def test_quadratic_gradient_and_vectorised_values(rng):
    hessian = np.array([[2.0, 0.5], [0.5, 1.0]])
    f = Quadratic(hessian, center=np.array([1.0, 2.0]))
    p = rng.standard_normal(2)
    check_gradients(lambda p: f(p), {"p": p}, {"p": f.grad(p)})
    with pytest.raises(GradientCheckError):
        check_gradients(lambda p: f(p), {"p": p}, {"p": hessian @ p})  # forgot the centre
    grid = rng.standard_normal((3, 4, 2))
    np.testing.assert_allclose(f(grid), [[f(q) for q in row] for row in grid], **TIGHT)


def test_least_squares_against_torch_and_the_quadratic_it_is(rng):
    X = rng.uniform(-1, 1, 20)
    y = 0.5 + 2.0 * X + 0.1 * rng.standard_normal(20)
    theta = rng.standard_normal(2)
    t = torch.from_numpy(theta.copy()).requires_grad_(True)
    J_t = 0.5 * ((t[0] + t[1] * torch.from_numpy(X) - torch.from_numpy(y)) ** 2).mean()
    J_t.backward()
    assert least_squares_loss(theta, X, y) == pytest.approx(J_t.item(), rel=1e-13)
    np.testing.assert_allclose(least_squares_grad(theta, X, y), t.grad.numpy(), **TIGHT)
    # J is the quadratic with H = A^T A / m around the least-squares solution.
    A = np.column_stack([np.ones_like(X), X])
    theta_star = np.linalg.lstsq(A, y, rcond=None)[0]
    f = Quadratic(A.T @ A / len(X), center=theta_star, offset=least_squares_loss(theta_star, X, y))
    assert f(theta) == pytest.approx(least_squares_loss(theta, X, y), rel=1e-12)
    X2 = rng.standard_normal((6, 3))
    th = rng.standard_normal(4)
    check_gradients(lambda theta: least_squares_loss(theta, X2, y[:6]), {"theta": th},
                    {"theta": least_squares_grad(th, X2, y[:6])})
    with pytest.raises(GradientCheckError):  # the printed (5-28)'s sum, without 1/m, is 6x too large
        check_gradients(lambda theta: least_squares_loss(theta, X2, y[:6]), {"theta": th},
                        {"theta": 6 * least_squares_grad(th, X2, y[:6])})


def test_minibatch_descent(rng):
    X = rng.uniform(-1, 1, 12)
    y = 1.0 - X
    full = minibatch_descent(least_squares_grad, [0.0, 0.0], X, y, lr=0.5, epochs=3, batch_size=12,
                             rng=np.random.default_rng(1))
    np.testing.assert_allclose(full, gradient_descent(lambda th: least_squares_grad(th, X, y), [0.0, 0.0],
                                                      lr=0.5, steps=3), **TIGHT)
    sgd = minibatch_descent(least_squares_grad, [0.0, 0.0], X, y, lr=0.1, epochs=2, batch_size=1,
                            rng=np.random.default_rng(2))
    assert sgd.shape == (25, 2)
    # Replaying the same shuffles by hand gives the same path.
    replay, theta = [np.zeros(2)], np.zeros(2)
    rng2 = np.random.default_rng(2)
    for _ in range(2):
        for xb, yb in iterate_minibatches(X, y, 1, rng=rng2):
            theta = theta - 0.1 * least_squares_grad(theta, xb, yb)
            replay.append(theta)
    np.testing.assert_allclose(sgd, np.array(replay), **TIGHT)
    mini = minibatch_descent(least_squares_grad, [0.0, 0.0], X, y, lr=0.1, epochs=2, batch_size=5,
                             rng=np.random.default_rng(2))
    assert mini.shape == (1 + 2 * 3, 2)


def test_bad_input(rng):
    f = Quadratic(np.eye(2))
    with pytest.raises(ValueError, match=r"hessian: expected a square \(D, D\) matrix, got shape \(2, 3\)"):
        Quadratic(np.ones((2, 3)))
    with pytest.raises(ValueError, match="symmetric"):
        Quadratic(np.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"center: expected shape \(2,\), got \(3,\)"):
        Quadratic(np.eye(2), center=np.zeros(3))
    with pytest.raises(ValueError, match=r"p: expected last dimension D = 2, got shape \(3,\)"):
        f(np.ones(3))
    with pytest.raises(ValueError, match="lr"):
        gradient_descent(f.grad, [1.0, 1.0], lr=-0.1, steps=3)
    with pytest.raises(ValueError, match=r"x0: expected a \(D,\) vector"):
        gradient_descent(f.grad, np.ones((2, 2)), lr=0.1, steps=3)
    with pytest.raises(ValueError, match=r"grad_fn\(x\): expected shape \(2,\), got \(3,\)"):
        gradient_descent(lambda x: np.ones(3), [1.0, 1.0], lr=0.1, steps=1)
    with pytest.raises(ValueError, match=r"theta: expected shape \(2,\), got \(3,\)"):
        least_squares_loss(np.ones(3), np.ones(4), np.ones(4))
    with pytest.raises(ValueError, match=r"y: expected shape \(4,\), got \(5,\)"):
        least_squares_grad(np.ones(2), np.ones(4), np.ones(5))
    with pytest.raises(ValueError, match="epochs"):
        minibatch_descent(least_squares_grad, [0.0, 0.0], np.ones(4), np.ones(4), lr=0.1, epochs=0, batch_size=2,
                          rng=rng)


@pytest.mark.parametrize("momentum, nesterov", [(0.5, False), (0.9, False), (0.5, True), (0.9, True)])
def test_momentum_descent_matches_torch_sgd(momentum, nesterov):
    f = Quadratic(np.array([[3.0, 1.0], [1.0, 20.0]]), center=np.array([0.5, -1.0]))
    path = gradient_descent(f.grad, [2.0, 1.0], lr=0.05, steps=12, momentum=momentum, nesterov=nesterov)
    point = torch.tensor([2.0, 1.0], requires_grad=True)
    opt = torch.optim.SGD([point], lr=0.05, momentum=momentum, nesterov=nesterov)
    hessian, center = torch.from_numpy(f.hessian), torch.tensor([0.5, -1.0])
    expected = [point.detach().clone()]
    for _ in range(12):
        opt.zero_grad()
        (0.5 * (point - center) @ hessian @ (point - center)).backward()
        opt.step()
        expected.append(point.detach().clone())
    np.testing.assert_allclose(path, torch.stack(expected).numpy(), rtol=1e-12, atol=1e-12)
    # The other variant differs: the comparison can fail.
    other = gradient_descent(f.grad, [2.0, 1.0], lr=0.05, steps=12, momentum=momentum, nesterov=not nesterov)
    assert not np.allclose(other, path)


def test_momentum_arguments():
    f = Quadratic(np.diag([2.0, 20.0]))
    with pytest.raises(ValueError, match="momentum"):
        gradient_descent(f.grad, [1.0, 1.0], lr=0.1, steps=3, momentum=1.0)
    with pytest.raises(ValueError, match="nesterov"):
        gradient_descent(f.grad, [1.0, 1.0], lr=0.1, steps=3, nesterov=True)
