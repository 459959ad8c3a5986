"""dlbook.regularization against torch in float64, and the CNN textbook chapter's worked update."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TIGHT, torch_forward_backward
from dlbook import regularization as R
from dlbook.gradcheck import GradientCheckError, check_gradients


def test_penalties_and_gradients_match_torch(rng):
    w = rng.standard_normal((4, 3))
    w[0, 0] = 0.0  # sgn(0) = 0, torch's subgradient of abs at 0
    dout = np.array(rng.standard_normal())  # a random upstream gradient of the scalar penalty
    for penalty, grad, torch_fn in [
        (R.l1_penalty, R.l1_penalty_grad, lambda w: 0.03 * w.abs().sum()),
        (R.l2_penalty, R.l2_penalty_grad, lambda w: 0.03 / 2 * (w ** 2).sum()),
    ]:
        out_t, g = torch_forward_backward(torch_fn, {"w": w}, dout)
        assert penalty(w, 0.03) == pytest.approx(float(out_t), rel=1e-12)
        np.testing.assert_allclose(dout * grad(w, 0.03), g["w"], **TIGHT)


def test_gradients_match_central_differences(rng):
    w = rng.standard_normal((3, 4))
    w[np.abs(w) < 1e-3] = 0.5  # |w| has a kink at 0
    for penalty, grad in [(R.l1_penalty, R.l1_penalty_grad), (R.l2_penalty, R.l2_penalty_grad)]:
        check_gradients(lambda w: penalty(w, 0.2), {"w": w}, {"w": grad(w, 0.2)})
    # negative case: the L2 gradient without the 1/2 of the penalty, i.e. 2 lam w
    with pytest.raises(GradientCheckError, match="'w'"):
        check_gradients(lambda w: R.l2_penalty(w, 0.2), {"w": w}, {"w": 2 * R.l2_penalty_grad(w, 0.2)})


@pytest.mark.parametrize("l1, l2", [(0.0, 0.0), (0.0, 0.1), (0.05, 0.0), (0.05, 0.1)])
def test_step_matches_torch_sgd_on_the_penalised_loss(l1, l2, rng):
    w = rng.standard_normal((3, 5))
    x = rng.standard_normal((6, 3))
    # data cost C0 = mean((x @ w)^2) / 2; its gradient from torch, then one penalised step
    w_t = torch.tensor(w, requires_grad=True)
    opt = torch.optim.SGD([w_t], lr=0.2)
    loss = 0.5 * ((torch.from_numpy(x) @ w_t) ** 2).mean()
    (loss + l1 * w_t.abs().sum() + l2 / 2 * (w_t ** 2).sum()).backward()
    grad_c0 = torch.autograd.grad(0.5 * ((torch.from_numpy(x) @ w_t) ** 2).mean(), w_t)[0].numpy()
    opt.step()
    ours = R.regularized_sgd_step(w, grad_c0, lr=0.2, l1=l1, l2=l2)
    np.testing.assert_allclose(ours, w_t.detach().numpy(), **TIGHT)


def test_l2_step_equals_torch_weight_decay(rng):
    w = rng.standard_normal(6)
    grad = rng.standard_normal(6)
    w_t = torch.tensor(w, requires_grad=True)
    w_t.grad = torch.from_numpy(grad.copy())
    torch.optim.SGD([w_t], lr=0.1, weight_decay=0.3).step()
    np.testing.assert_allclose(R.regularized_sgd_step(w, grad, lr=0.1, l2=0.3), w_t.detach().numpy(), **TIGHT)


def test_seed_000_worked_update_and_the_printed_signs():
    w = np.array([0.5, -0.5])
    zero = np.zeros(2)
    # eta * lambda / n = 0.01 with eta = 1: both penalties shrink the weights
    np.testing.assert_allclose(R.regularized_sgd_step(w, zero, lr=1.0, l1=0.01), [0.49, -0.49], rtol=1e-15)
    np.testing.assert_allclose(R.regularized_sgd_step(w, zero, lr=1.0, l2=0.01), [0.495, -0.495], rtol=1e-15)
    # the printed (2-15) moves with the gradient: w + 0.01 sgn(w) grows. Our step must differ.
    printed = w + 0.01 * np.sign(w)
    np.testing.assert_allclose(printed, [0.51, -0.51], rtol=1e-15)
    assert not np.allclose(R.regularized_sgd_step(w, zero, lr=1.0, l1=0.01), printed)


def test_input_is_not_modified_and_bad_input(rng):
    w = rng.standard_normal(3)
    before = w.copy()
    R.regularized_sgd_step(w, np.ones(3), lr=0.1, l1=0.1, l2=0.1)
    np.testing.assert_array_equal(w, before)
    with pytest.raises(ValueError, match=r"grad: expected shape \(3,\), got \(2,\)"):
        R.regularized_sgd_step(w, np.ones(2), lr=0.1)
    with pytest.raises(ValueError, match="lr: expected a positive number"):
        R.regularized_sgd_step(w, np.ones(3), lr=0.0)
    with pytest.raises(ValueError, match="l1: expected a finite coefficient >= 0"):
        R.regularized_sgd_step(w, np.ones(3), lr=0.1, l1=-1.0)
    with pytest.raises(ValueError, match="lam: expected a finite coefficient >= 0"):
        R.l2_penalty(w, float("nan"))
    with pytest.raises(ValueError, match="w: expected a numeric array"):
        R.l1_penalty(np.array(["a"]), 0.1)


# --- elastic net and max-norm --------------------------------------------------------------------

def test_elastic_net_matches_torch_and_central_differences(rng):
    w = rng.standard_normal((4, 3))
    w[1, 2] = 0.0
    dout = np.array(rng.standard_normal())
    out_t, g = torch_forward_backward(lambda w: 0.03 * w.abs().sum() + 0.2 / 2 * (w ** 2).sum(),
                                      {"w": w}, dout)
    assert R.elastic_net_penalty(w, 0.03, 0.2) == pytest.approx(float(out_t), rel=1e-12)
    np.testing.assert_allclose(dout * R.elastic_net_penalty_grad(w, 0.03, 0.2), g["w"], **TIGHT)
    w[np.abs(w) < 1e-3] = 0.5
    fn = lambda w: R.elastic_net_penalty(w, 0.03, 0.2)  # noqa: E731
    check_gradients(fn, {"w": w}, {"w": R.elastic_net_penalty_grad(w, 0.03, 0.2)})
    with pytest.raises(GradientCheckError):  # the L1 part alone is not the gradient
        check_gradients(fn, {"w": w}, {"w": R.l1_penalty_grad(w, 0.03)})
    # the step of regularized_sgd_step is the elastic-net gradient step
    grad = rng.standard_normal(w.shape)
    np.testing.assert_allclose(R.regularized_sgd_step(w, grad, lr=0.1, l1=0.03, l2=0.2),
                               w - 0.1 * (grad + R.elastic_net_penalty_grad(w, 0.03, 0.2)), **TIGHT)


@pytest.mark.parametrize("shape", [(5, 4), (6, 2, 3, 3), (1, 7)])
def test_max_norm_matches_torch_renorm(shape, rng):
    w = 2.0 * rng.standard_normal(shape)
    w0 = w.copy()
    c = 3.0
    ours = R.max_norm(w, c, eps=1e-7)
    theirs = torch.renorm(torch.from_numpy(w), p=2, dim=0, maxnorm=c).numpy()
    np.testing.assert_allclose(ours, theirs, **TIGHT)
    np.testing.assert_array_equal(w, w0)
    exact = R.max_norm(w, c)
    norms = np.linalg.norm(exact.reshape(shape[0], -1), axis=1)
    before = np.linalg.norm(w.reshape(shape[0], -1), axis=1)
    np.testing.assert_allclose(norms, np.minimum(before, c), rtol=1e-14)
    big = before > c
    assert big.any() or shape == (1, 7)
    # units inside the ball are untouched; the others keep their direction
    np.testing.assert_array_equal(exact[~big], w[~big])
    if big.any():
        assert not np.allclose(R.max_norm(w, c), w)


def test_apply_max_norm_constrains_weights_in_place_not_biases(rng):
    from dlbook.linear import Linear
    from dlbook.sequential import Sequential
    model = Sequential(Linear(4, 6, rng=rng), Linear(6, 3, rng=rng))
    for layer in model:
        layer.params["w"] *= 20
        layer.params["b"] *= 20
    w_ref = model[0].params["w"]
    b_before = model[0].params["b"].copy()
    expected = R.max_norm(w_ref, 1.5)
    R.apply_max_norm(model, 1.5)
    assert model[0].params["w"] is w_ref  # updated in place: optimizers keep their references
    np.testing.assert_array_equal(w_ref, expected)
    np.testing.assert_array_equal(model[0].params["b"], b_before)
    assert np.linalg.norm(model[1].params["w"], axis=1).max() <= 1.5 * (1 + 1e-14)


def test_max_norm_bad_input():
    with pytest.raises(ValueError, match="w: expected a weight with at least 2"):
        R.max_norm(np.ones(3), 1.0)
    with pytest.raises(ValueError, match="c: expected a positive"):
        R.max_norm(np.ones((2, 3)), 0.0)
    with pytest.raises(ValueError, match="eps"):
        R.max_norm(np.ones((2, 3)), 1.0, eps=-1.0)
    with pytest.raises(ValueError, match="l2"):
        R.elastic_net_penalty(np.ones(3), 0.1, -1.0)
