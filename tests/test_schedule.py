"""dlbook.schedule against torch.optim.lr_scheduler over many epochs, and the LR range test."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dlbook.linear import Linear
from dlbook.losses import mse_backward, mse_forward
from dlbook.optim import SGD, Adam
from dlbook.schedule import (CosineAnnealingLR, CosineAnnealingWarmRestarts, ExponentialLR,
                             InverseTimeLR, MultiStepLR, PolynomialLR, StepLR,
                             cosine_warm_restarts_lr, exponential_lr, inverse_time_lr,
                             lr_range_test, step_lr)

CASES = [
    (StepLR, dict(step_size=5, gamma=0.5)),
    (StepLR, dict(step_size=3)),
    (MultiStepLR, dict(milestones=[4, 10, 11, 30], gamma=0.3)),
    (ExponentialLR, dict(gamma=0.9)),
    (PolynomialLR, dict()),
    (PolynomialLR, dict(total_iters=40, power=2.5)),
    (CosineAnnealingLR, dict(T_max=17)),
    (CosineAnnealingLR, dict(T_max=10, eta_min=1e-3)),
    (CosineAnnealingWarmRestarts, dict(T_0=7)),
    (CosineAnnealingWarmRestarts, dict(T_0=3, T_mult=2, eta_min=1e-4)),
]


def _optimizer(rng, lr=0.1):
    return SGD(Linear(2, 2, rng=rng), lr=lr)


def _torch_lrs(cls_name, hyper, base_lr, num_epochs):
    p = torch.zeros(1, requires_grad=True)
    opt_t = torch.optim.SGD([p], lr=base_lr)
    sched_t = getattr(torch.optim.lr_scheduler, cls_name)(opt_t, **hyper)
    lrs = []
    for _ in range(num_epochs):
        lrs.append(opt_t.param_groups[0]["lr"])
        opt_t.step()
        sched_t.step()
    return np.array(lrs)


@pytest.mark.parametrize("cls, hyper", CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_schedule_matches_torch_over_many_epochs(cls, hyper, rng):
    opt = _optimizer(rng, lr=0.1)
    sched = cls(opt, **hyper)
    ours = []
    for _ in range(60):
        ours.append(opt.lr)
        assert sched.get_last_lr() == opt.lr
        sched.step()
    expected = _torch_lrs(cls.__name__, hyper, 0.1, 60)
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(sched.lrs(60), expected, rtol=1e-10, atol=1e-15)
    # Negative case: the same schedule one epoch late is told apart.
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(ours[1:], expected[:-1], rtol=1e-10, atol=1e-15)


def test_schedules_drive_any_optimizer_with_an_lr(rng):
    opt = Adam(Linear(2, 2, rng=rng), lr=3e-3)
    sched = CosineAnnealingLR(opt, T_max=4)
    assert opt.lr == 3e-3
    for _ in range(4):
        sched.step()
    assert opt.lr == pytest.approx(0.0, abs=1e-18)
    with pytest.raises(ValueError, match="optimizer"):
        StepLR(object(), step_size=2)


def test_the_sources_decay_examples():
    # Halve every 5 epochs from 0.01; 1/t decay with k = 0.1; log-spaced from 0.01 to 1e-5 in
    # 20 values (numpy's logspace takes exponents, which is what the source's call got wrong).
    np.testing.assert_allclose([step_lr(e, 0.01, 5, 0.5) for e in (0, 5, 10, 15, 20)],
                               0.01 * 0.5 ** np.arange(5), rtol=1e-15)
    np.testing.assert_allclose([inverse_time_lr(t, 0.01, 0.1) for t in (0, 1, 10)],
                               [0.01, 0.01 / 1.1, 0.005], rtol=1e-15)
    gamma = (1e-5 / 1e-2) ** (1 / 19)
    np.testing.assert_allclose([exponential_lr(e, 0.01, gamma) for e in range(20)],
                               np.logspace(-2, -5, 20), rtol=1e-12)
    assert not np.allclose(np.logspace(1e-2, 1e-5, 20), np.logspace(-2, -5, 20))


def test_inverse_time_against_torch_lambda_lr(rng):
    p = torch.zeros(1, requires_grad=True)
    opt_t = torch.optim.SGD([p], lr=0.05)
    sched_t = torch.optim.lr_scheduler.LambdaLR(opt_t, lambda t: 1.0 / (1.0 + 0.3 * t))
    opt = _optimizer(rng, lr=0.05)
    sched = InverseTimeLR(opt, decay_rate=0.3)
    for _ in range(30):
        assert opt.lr == pytest.approx(opt_t.param_groups[0]["lr"], rel=1e-12)
        opt_t.step()
        sched_t.step()
        sched.step()


def test_warm_restarts_accept_fractional_epochs():
    # A step per mini-batch: epoch + i / iters_per_epoch, as torch's step(epoch) allows.
    p = torch.zeros(1, requires_grad=True)
    opt_t = torch.optim.SGD([p], lr=0.2)
    sched_t = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt_t, T_0=2, T_mult=2)
    for i in range(1, 60):
        t = i / 4
        opt_t.step()
        sched_t.step(t)
        assert cosine_warm_restarts_lr(t, 0.2, 2, 2) == pytest.approx(opt_t.param_groups[0]["lr"],
                                                                      rel=1e-10, abs=1e-15)


def test_bad_arguments(rng):
    opt = _optimizer(rng)
    with pytest.raises(ValueError, match="step_size"):
        StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="milestones"):
        MultiStepLR(opt, milestones=[5, 2])
    with pytest.raises(ValueError, match="T_0"):
        CosineAnnealingWarmRestarts(opt, T_0=2.5)
    with pytest.raises(ValueError, match="T_mult"):
        CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=0)
    with pytest.raises(ValueError, match="gamma"):
        ExponentialLR(opt, gamma=0.0)
    with pytest.raises(ValueError, match="epoch"):
        step_lr(-1, 0.1, 2)


def _quadratic_problem(rng):
    """Least squares with one linear layer; gradient descent diverges for lr > 2 / lambda_max."""
    X = rng.standard_normal((64, 3)) * np.array([3.0, 1.0, 0.3])
    y = X @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.standard_normal((64, 1))
    model = Linear(3, 1, rng=rng)
    # Hessian of mean((Xw + b - y)^2) in (w, b): 2 [X 1]^T [X 1] / N.
    A = np.hstack([X, np.ones((64, 1))])
    lambda_max = np.linalg.eigvalsh(2 * A.T @ A / 64).max()

    def make_step(opt):
        def train_step():
            pred = model.forward(X)
            loss, cache = mse_forward(pred, y)
            model.backward(mse_backward(cache))
            opt.step()
            return loss
        return train_step
    return model, lambda_max, make_step


def test_lr_range_test_finds_the_divergence_of_gradient_descent(rng):
    model, lambda_max, make_step = _quadratic_problem(rng)
    opt = SGD(model, lr=0.123)
    lrs, losses = lr_range_test(make_step(opt), opt, start_lr=1e-4, end_lr=10.0, num_steps=200)
    assert opt.lr == 0.123  # restored
    assert len(lrs) == len(losses) < 200  # stopped early: the loss blew up
    np.testing.assert_allclose(lrs, 1e-4 * (1e5) ** (np.arange(len(lrs)) / 199), rtol=1e-12)
    # The loss recorded at step k is measured before step k's update, so the change from loss k
    # to loss k + 1 is the work of lrs[k]. Below 2 / lambda_max gradient descent on a quadratic
    # never increases the loss ...
    limit = 2.0 / lambda_max
    assert np.all(np.diff(losses)[lrs[:-1] < limit] <= 1e-12)
    # ... so the blow-up (4x the best loss) comes only after a rate beyond the limit was used.
    assert losses[-1] > 4.0 * losses.min()
    assert lrs[-2] > limit
    assert losses.min() < 0.1 * losses[0]  # and the run did train before that


def test_lr_range_test_does_not_stop_below_the_stable_limit(rng):
    # Negative case: with every rate below 1 / lambda_max there is nothing to detect.
    model, lambda_max, make_step = _quadratic_problem(rng)
    opt = SGD(model, lr=0.1)
    lrs, losses = lr_range_test(make_step(opt), opt, start_lr=1e-4, end_lr=1.0 / lambda_max,
                                num_steps=50)
    assert len(lrs) == 50 and math.isclose(lrs[-1], 1.0 / lambda_max)
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="start_lr"):
        lr_range_test(make_step(opt), opt, start_lr=1.0, end_lr=0.1)


@pytest.mark.parametrize("opt_name, hyper", [("AdamW", dict(lr=0.05, weight_decay=0.1)),
                                             ("SGD", dict(lr=0.3, momentum=0.9, nesterov=True))])
def test_a_scheduled_optimizer_matches_torch_step_for_step(opt_name, hyper, rng):
    """The schedule changes lr between steps and the optimizer uses it, as torch does."""
    import dlbook.optim

    layer = Linear(3, 2, rng=rng)
    start = {k: v.copy() for k, v in layer.params.items()}
    p_t = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in layer.params.items()}
    opt = getattr(dlbook.optim, opt_name)(layer, **hyper)
    opt_t = getattr(torch.optim, opt_name)(list(p_t.values()), **hyper)
    sched = CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2)
    sched_t = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt_t, T_0=3, T_mult=2)
    history = []
    for _ in range(20):
        grads = {k: rng.standard_normal(v.shape) for k, v in layer.params.items()}
        history.append(grads)
        layer.grads = {k: g.copy() for k, g in grads.items()}
        for k, t in p_t.items():
            t.grad = torch.from_numpy(grads[k].copy())
        opt.step()
        opt_t.step()
        sched.step()
        sched_t.step()
        for k, t in p_t.items():
            np.testing.assert_allclose(layer.params[k], t.detach().numpy(), rtol=1e-10, atol=1e-12)
    # Negative case: torch's optimizer on the same gradients without the schedule ends elsewhere.
    q_t = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
    unscheduled = getattr(torch.optim, opt_name)(list(q_t.values()), **hyper)
    for grads in history:
        for k, t in q_t.items():
            t.grad = torch.from_numpy(grads[k].copy())
        unscheduled.step()
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(layer.params["w"], q_t["w"].detach().numpy(), rtol=1e-10,
                                   atol=1e-12)
