"""dlbook.compress.distill against torch: F.kl_div of log-softmax and softmax at temperature T,
times T^2, plus the weighted hard cross-entropy; backward with a random upstream gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TIGHT
from dlbook.compress import distillation_loss_backward, distillation_loss_forward, soft_targets


def torch_distillation(s, t, y, temperature, alpha, dout, t_squared=True):
    s_t = torch.from_numpy(s).requires_grad_(True)
    t_t = torch.from_numpy(t).requires_grad_(True)
    soft = F.kl_div(F.log_softmax(s_t / temperature, dim=1), F.softmax(t_t / temperature, dim=1),
                    reduction="batchmean")
    loss = alpha * soft * (temperature**2 if t_squared else 1.0)
    if alpha < 1:
        loss = loss + (1 - alpha) * F.cross_entropy(s_t, torch.from_numpy(y))
    (loss * dout).backward()
    return loss.item(), s_t.grad.numpy()


CASES = [((5, 10), 4.0, 0.9), ((5, 10), 1.0, 0.5), ((3, 4), 20.0, 1.0), ((7, 3), 2.5, 0.0),
         ((1, 2), 8.0, 0.3), ((6, 10), 0.5, 0.7)]


@pytest.mark.parametrize("shape, temperature, alpha", CASES)
def test_matches_torch(shape, temperature, alpha, rng):
    s = rng.standard_normal(shape) * 3
    t = rng.standard_normal(shape) * 3
    y = rng.integers(0, shape[1], shape[0])
    dout = float(rng.standard_normal())  # the loss is a scalar: a random scalar upstream gradient
    targets = None if alpha == 1.0 else y
    s0, t0 = s.copy(), t.copy()
    loss, cache = distillation_loss_forward(s, t, targets, temperature, alpha)
    ds = distillation_loss_backward(dout, cache)
    loss_t, ds_t = torch_distillation(s, t, y, temperature, alpha, dout)
    np.testing.assert_allclose(loss, loss_t, **TIGHT)
    np.testing.assert_allclose(ds, ds_t, **TIGHT)
    np.testing.assert_array_equal(s, s0)
    np.testing.assert_array_equal(t, t0)
    if alpha > 0 and temperature != 1.0:  # negative case: without T^2 the check fails
        _, ds_no_t2 = torch_distillation(s, t, y, temperature, alpha, dout, t_squared=False)
        with pytest.raises(AssertionError):
            np.testing.assert_allclose(ds, ds_no_t2, **TIGHT)


def test_large_logits_are_stable(rng):
    s = rng.standard_normal((4, 6)) * 300
    t = rng.standard_normal((4, 6)) * 300
    y = rng.integers(0, 6, 4)
    loss, cache = distillation_loss_forward(s, t, y, 2.0, 0.5)
    ds = distillation_loss_backward(1.7, cache)
    loss_t, ds_t = torch_distillation(s, t, y, 2.0, 0.5, 1.7)
    assert np.isfinite(loss) and np.all(np.isfinite(ds))
    np.testing.assert_allclose(loss, loss_t, rtol=1e-10)
    np.testing.assert_allclose(ds, ds_t, **TIGHT)


def test_student_equal_to_teacher_has_zero_soft_loss(rng):
    z = rng.standard_normal((4, 5))
    loss, cache = distillation_loss_forward(z, z, None, 3.0, 1.0)
    assert abs(loss) < 1e-12
    np.testing.assert_allclose(distillation_loss_backward(1.0, cache), 0.0, atol=1e-15)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0, 20.0])
def test_soft_targets_match_torch_and_soften(temperature, rng):
    z = rng.standard_normal((3, 6)) * 2
    q = soft_targets(z, temperature)
    q_t = F.softmax(torch.from_numpy(z) / temperature, dim=-1).numpy()
    np.testing.assert_allclose(q, q_t, **TIGHT)
    hotter = soft_targets(z, temperature * 2)
    assert np.all(hotter.max(axis=1) < q.max(axis=1))  # a higher T flattens the distribution


@pytest.mark.parametrize("kwargs, match", [
    (dict(teacher_logits=np.zeros((3, 5))), r"teacher_logits: expected shape \(4, 5\)"),
    (dict(targets=None), "targets: labels are needed unless alpha == 1"),
    (dict(targets=np.zeros(3, int)), r"targets: expected \(4,\) integer labels"),
    (dict(targets=np.array([0, 1, 2, 5])), r"targets: labels must lie in \[0, 5\)"),
    (dict(temperature=0.0), "temperature: expected a positive number"),
    (dict(alpha=1.5), r"alpha: expected a weight in \[0, 1\]"),
    (dict(student_logits=np.zeros(5)), "student_logits: expected a 2-D array"),
])
def test_bad_input(kwargs, match):
    args = dict(student_logits=np.zeros((4, 5)), teacher_logits=np.zeros((4, 5)),
                targets=np.zeros(4, int), temperature=2.0, alpha=0.5) | kwargs
    with pytest.raises(ValueError, match=match):
        distillation_loss_forward(**args)


def test_backward_needs_a_scalar(rng):
    _, cache = distillation_loss_forward(rng.standard_normal((2, 3)), rng.standard_normal((2, 3)),
                                         np.array([0, 2]))
    with pytest.raises(ValueError, match="dout: expected a scalar"):
        distillation_loss_backward(np.ones(2), cache)
