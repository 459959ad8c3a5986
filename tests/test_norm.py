"""dlbook.norm against torch's batch normalisation in float64, with random upstream gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TIGHT, torch_forward_backward
from dlbook.norm import (BatchNorm1d, BatchNorm2d, batchnorm_backward, batchnorm_backward_naive,
                         batchnorm_forward)

SHAPES = [(7, 3), (2, 1), (5, 4, 6), (3, 2, 5, 4), (2, 5, 1, 3)]


def _inputs(shape, rng):
    c = shape[1]
    x = 3.0 * rng.standard_normal(shape) + rng.standard_normal((1, c) + (1,) * (len(shape) - 2))
    return x, rng.standard_normal(c) + 1.0, rng.standard_normal(c), rng.standard_normal(shape)


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_backward_match_torch_in_training(shape, rng):
    x, gamma, beta, dout = _inputs(shape, rng)
    out, cache = batchnorm_forward(x, gamma, beta, eps=1e-5)
    out_t, grads = torch_forward_backward(
        lambda x, gamma, beta: F.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-5),
        dict(x=x, gamma=gamma, beta=beta), dout)
    np.testing.assert_allclose(out, out_t, **TIGHT)
    for backward in (batchnorm_backward, batchnorm_backward_naive):
        dx, dgamma, dbeta = backward(dout, cache)
        np.testing.assert_allclose(dx, grads["x"], **TIGHT)
        np.testing.assert_allclose(dgamma, grads["gamma"], **TIGHT)
        np.testing.assert_allclose(dbeta, grads["beta"], **TIGHT)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 2)])
def test_fixed_statistics_match_torch_in_evaluation(shape, rng):
    x, gamma, beta, dout = _inputs(shape, rng)
    c = shape[1]
    mean, var = rng.standard_normal(c), rng.uniform(0.5, 2.0, c)
    out, cache = batchnorm_forward(x, gamma, beta, 1e-3, mean=mean, var=var)
    out_t, grads = torch_forward_backward(
        lambda x, gamma, beta: F.batch_norm(x, torch.from_numpy(mean), torch.from_numpy(var), gamma,
                                            beta, training=False, eps=1e-3),
        dict(x=x, gamma=gamma, beta=beta), dout)
    np.testing.assert_allclose(out, out_t, **TIGHT)
    for backward in (batchnorm_backward, batchnorm_backward_naive):
        dx, dgamma, dbeta = backward(dout, cache)
        np.testing.assert_allclose(dx, grads["x"], **TIGHT)
        np.testing.assert_allclose(dgamma, grads["gamma"], **TIGHT)
        np.testing.assert_allclose(dbeta, grads["beta"], **TIGHT)


def test_normalised_output_and_identity_recovery(rng):
    x = 4.0 * rng.standard_normal((50, 3)) + 2.0
    out, cache = batchnorm_forward(x, np.ones(3), np.zeros(3), eps=1e-5)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-13)
    np.testing.assert_allclose(out.var(axis=0), cache.var / (cache.var + 1e-5), rtol=1e-12)
    # gamma = sqrt(var + eps), beta = mu undo the normalisation (Algorithm 1 of Ioffe & Szegedy).
    back, _ = batchnorm_forward(x, np.sqrt(cache.var + 1e-5), cache.mean, eps=1e-5)
    np.testing.assert_allclose(back, x, **TIGHT)


def test_central_differences_agree(rng):
    x, gamma, beta, dout = _inputs((4, 2, 3), rng)
    _, cache = batchnorm_forward(x, gamma, beta)
    dx, _, _ = batchnorm_backward(dout, cache)
    h, numeric = 1e-6, np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        diff = batchnorm_forward(xp, gamma, beta)[0] - batchnorm_forward(xm, gamma, beta)[0]
        numeric[i] = (diff * dout).sum() / (2 * h)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-8)


def test_a_wrong_gradient_is_caught(rng):
    x, gamma, beta, dout = _inputs((6, 3), rng)
    _, cache = batchnorm_forward(x, gamma, beta)
    _, grads = torch_forward_backward(
        lambda x, gamma, beta: F.batch_norm(x, None, None, gamma, beta, training=True),
        dict(x=x, gamma=gamma, beta=beta), dout)
    dx, _, _ = batchnorm_backward(dout, cache)
    # Dropping the path through the variance (a classic mistake) is told apart ...
    dx_no_var_path = (dout - dout.mean(axis=0)) * gamma / np.sqrt(cache.var + cache.eps)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(dx_no_var_path, grads["x"], **TIGHT)
    # ... and so is a perturbation of one element far below the gradient's size.
    dx[2, 1] += 1e-8
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(dx, grads["x"], **TIGHT)


def test_backward_leaves_its_arguments_alone(rng):
    x, gamma, beta, dout = _inputs((3, 2, 4, 4), rng)
    _, cache = batchnorm_forward(x, gamma, beta)
    copies = [np.copy(a) for a in (dout, *cache[:5])]
    for backward in (batchnorm_backward, batchnorm_backward_naive):
        backward(dout, cache)
        for before, after in zip(copies, (dout, *cache[:5])):
            np.testing.assert_array_equal(before, after)


def test_bad_input_names_the_argument(rng):
    x, gamma, beta, dout = _inputs((4, 3), rng)
    with pytest.raises(ValueError, match=r"gamma: expected shape \(3,\), got \(4,\)"):
        batchnorm_forward(x, np.ones(4), beta)
    with pytest.raises(ValueError, match="beta"):
        batchnorm_forward(x, gamma, np.zeros((3, 1)))
    with pytest.raises(ValueError, match="x: expected a 2-D"):
        batchnorm_forward(np.ones(3), gamma, beta)
    with pytest.raises(ValueError, match="eps"):
        batchnorm_forward(x, gamma, beta, eps=0.0)
    with pytest.raises(ValueError, match="mean, var"):
        batchnorm_forward(x, gamma, beta, mean=np.zeros(3))
    _, cache = batchnorm_forward(x, gamma, beta)
    with pytest.raises(ValueError, match=r"dout: expected shape \(4, 3\), got \(3, 4\)"):
        batchnorm_backward(dout.T, cache)
    with pytest.raises(ValueError, match="dout"):
        batchnorm_backward_naive(dout[:2], cache)


@pytest.mark.parametrize("cls, cls_t, shape, hyper", [
    (BatchNorm1d, torch.nn.BatchNorm1d, (8, 3), dict()),
    (BatchNorm1d, torch.nn.BatchNorm1d, (5, 4, 3), dict(momentum=0.3, eps=1e-3)),
    (BatchNorm1d, torch.nn.BatchNorm1d, (6, 2), dict(momentum=None)),
    (BatchNorm2d, torch.nn.BatchNorm2d, (3, 2, 4, 5), dict()),
    (BatchNorm2d, torch.nn.BatchNorm2d, (2, 3, 3, 3), dict(momentum=0.5)),
])
def test_layer_matches_torch_over_training_steps_then_eval(cls, cls_t, shape, hyper, rng):
    c = shape[1]
    layer, layer_t = cls(c, **hyper), cls_t(c, **hyper).double()
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    layer.params["w"], layer.params["b"] = gamma.copy(), beta.copy()
    with torch.no_grad():
        layer_t.weight.copy_(torch.from_numpy(gamma))
        layer_t.bias.copy_(torch.from_numpy(beta))
    for step in range(4):
        x = 2.0 * rng.standard_normal(shape) + step
        dout = rng.standard_normal(shape)
        layer_t.zero_grad()
        x_t = torch.from_numpy(x).requires_grad_(True)
        out_t = layer_t(x_t)
        (out_t * torch.from_numpy(dout)).sum().backward()
        np.testing.assert_allclose(layer.forward(x), out_t.detach().numpy(), **TIGHT)
        np.testing.assert_allclose(layer.backward(dout), x_t.grad.numpy(), **TIGHT)
        np.testing.assert_allclose(layer.grads["w"], layer_t.weight.grad.numpy(), **TIGHT)
        np.testing.assert_allclose(layer.grads["b"], layer_t.bias.grad.numpy(), **TIGHT)
        np.testing.assert_allclose(layer.running_mean, layer_t.running_mean.numpy(), **TIGHT)
        np.testing.assert_allclose(layer.running_var, layer_t.running_var.numpy(), **TIGHT)
    assert layer.num_batches_tracked == layer_t.num_batches_tracked.item() == 4
    layer.eval()
    layer_t.eval()
    x, dout = rng.standard_normal(shape), rng.standard_normal(shape)
    x_t = torch.from_numpy(x).requires_grad_(True)
    out_t = layer_t(x_t)
    (out_t * torch.from_numpy(dout)).sum().backward()
    np.testing.assert_allclose(layer.forward(x), out_t.detach().numpy(), **TIGHT)
    np.testing.assert_allclose(layer.backward(dout), x_t.grad.numpy(), **TIGHT)
    # Evaluation does not move the running statistics.
    np.testing.assert_allclose(layer.running_var, layer_t.running_var.numpy(), **TIGHT)


def test_running_variance_is_unbiased_and_eval_differs_from_train(rng):
    layer = BatchNorm1d(2)
    x = rng.standard_normal((5, 2))
    layer.forward(x)
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * x.var(axis=0, ddof=1), **TIGHT)
    # The biased variance would be a wrong running estimate, and the check sees it.
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * x.var(axis=0), **TIGHT)
    train_out = layer.forward(x)
    eval_out = layer.eval().forward(x)
    assert not np.allclose(train_out, eval_out)
    assert layer.train().training


def test_layer_bad_input():
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm1d(0)
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm2d(3, momentum=1.5)
    with pytest.raises(ValueError, match=r"x: expected \(N, C, H, W\)"):
        BatchNorm2d(3).forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="x: expected 3 channels"):
        BatchNorm1d(3).forward(np.ones((2, 4)))
    with pytest.raises(ValueError, match="more than one value per channel"):
        BatchNorm1d(3).forward(np.ones((1, 3)))
    with pytest.raises(RuntimeError, match="before forward"):
        BatchNorm1d(3).backward(np.ones((2, 3)))
    BatchNorm1d(3).eval().forward(np.ones((1, 3)))  # one example is fine in evaluation


def test_a_batchnorm_network_trains_like_torch(rng):
    """Linear-BN-ReLU-Linear-BN-Tanh-Linear trained by ``fit`` equals ``fit_torch``.

    The whole path is covered: batch statistics in training, running statistics in the
    per-epoch evaluation, parameters copied by name (w, b = weight, bias) and the optimizer.
    SGD with momentum, not Adam: the bias of a Linear layer just before a BatchNorm has a
    gradient that is exactly zero in exact arithmetic (see the next test), so the two libraries
    compute rounding noise of about 1e-17 for it, and Adam, dividing by sqrt(v), turns that
    noise into steps of size lr in arbitrary directions: the running means then differ at 1e-10.
    """
    from dlbook.activations import ReLU, Tanh
    from dlbook.linear import Linear
    from dlbook.optim import SGD
    from dlbook.reference import copy_params_to_torch, fit_torch
    from dlbook.sequential import Sequential
    from dlbook.train import fit

    X = rng.standard_normal((60, 5)) * np.array([1.0, 5.0, 0.2, 1.0, 3.0]) + 2.0
    y = (X[:, 0] + 0.1 * X[:, 1] > 2.0).astype(np.int64) + (X[:, 4] > 2.0)
    model = Sequential(Linear(5, 8, rng=rng), BatchNorm1d(8), ReLU(), Linear(8, 6, rng=rng),
                       BatchNorm1d(6, momentum=0.2), Tanh(), Linear(6, 3, rng=rng))
    nn = torch.nn
    model_t = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 6),
                            nn.BatchNorm1d(6, momentum=0.2), nn.Tanh(), nn.Linear(6, 3))
    copy_params_to_torch(model, model_t)
    history = fit(model, SGD(model, lr=0.05, momentum=0.9), X, y, epochs=4, batch_size=16,
                  rng=np.random.default_rng(1), progress=False)
    history_t = fit_torch(model_t, torch.optim.SGD(model_t.parameters(), lr=0.05, momentum=0.9), X, y,
                          epochs=4, batch_size=16, rng=np.random.default_rng(1))
    np.testing.assert_allclose(history["train_loss"], history_t["train_loss"], rtol=1e-10)
    assert history["train_loss"][-1] < history["train_loss"][0]
    for ours, theirs in ((model[1], model_t[1]), (model[4], model_t[4])):
        np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), **TIGHT)
        np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), **TIGHT)
        np.testing.assert_allclose(ours.params["w"], theirs.weight.detach().numpy(), **TIGHT)
    # Negative case: a network whose layers normalise with eps = 1e-3 instead is told apart.
    model_t[4].eps = 1e-3
    model_t.eval()
    with torch.no_grad():
        logits_t = model_t(torch.from_numpy(X)).numpy()
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(model.eval().forward(X), logits_t, **TIGHT)


@pytest.mark.parametrize("shape", [(9, 4), (3, 2, 4, 5)])
def test_dx_sums_to_zero_over_each_channel(shape, rng):
    """Shifting a channel by a constant does not change the output: dx sums to 0 per channel.

    So a bias added just before batch normalisation gets a zero gradient, and is redundant.
    """
    x, gamma, beta, dout = _inputs(shape, rng)
    _, cache = batchnorm_forward(x, gamma, beta)
    dx, _, _ = batchnorm_backward(dout, cache)
    axes = (0,) + tuple(range(2, len(shape)))
    np.testing.assert_allclose(dx.sum(axis=axes), 0.0, atol=1e-12)
    # In evaluation (fixed statistics) the shift passes through, and the sum is not zero.
    _, cache = batchnorm_forward(x, gamma, beta, mean=cache.mean, var=cache.var)
    dx, _, _ = batchnorm_backward(dout, cache)
    assert np.abs(dx.sum(axis=axes)).min() > 1e-3
