"""dlbook.optim.SGD against torch.optim.SGD, step for step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlbook.linear import Linear
from dlbook.optim import SGD


@pytest.mark.parametrize("hyper", [dict(), dict(momentum=0.9), dict(momentum=0.9, weight_decay=1e-2),
                                   dict(momentum=0.9, nesterov=True), dict(momentum=0.5, dampening=0.3)])
def test_sgd_matches_torch_over_several_steps(hyper, rng):
    layer = Linear(4, 3, rng=rng)
    p_t = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in layer.params.items()}
    opt = SGD(layer, lr=0.1, **hyper)
    opt_t = torch.optim.SGD(list(p_t.values()), lr=0.1, **hyper)
    for _ in range(5):
        grads = {k: rng.standard_normal(v.shape) for k, v in layer.params.items()}
        layer.grads = {k: g.copy() for k, g in grads.items()}
        for k, t in p_t.items():
            t.grad = torch.from_numpy(grads[k].copy())
        opt.step()
        opt_t.step()
        for k in p_t:
            np.testing.assert_allclose(layer.params[k], p_t[k].detach().numpy(), rtol=1e-13, atol=1e-14)


def test_sgd_updates_in_place_and_can_be_told_apart(rng):
    layer = Linear(2, 2, rng=rng)
    w = layer.params["w"]
    layer.grads = {k: np.ones_like(v) for k, v in layer.params.items()}
    SGD(layer, lr=0.5).step()
    assert layer.params["w"] is w  # same array object: views held elsewhere see the update
    momentum = SGD(layer, lr=0.1, momentum=0.9)
    plain = SGD(layer, lr=0.1)
    momentum.step(), momentum.step()
    after_momentum = layer.params["w"].copy()
    plain.step(), plain.step()
    # momentum moved 0.1*(1 + 1.9) = 0.29 in two steps, plain GD 0.2
    assert not np.allclose(after_momentum - layer.params["w"], 0)


def test_bad_hyper_parameters():
    layer = Linear(2, 2, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="lr"):
        SGD(layer, lr=0.0)
    with pytest.raises(ValueError, match="nesterov"):
        SGD(layer, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="model"):
        SGD([object()], lr=0.1)


@pytest.mark.parametrize("hyper", [dict(), dict(momentum=0.9), dict(momentum=0.9, nesterov=True),
                                   dict(momentum=0.8, dampening=0.1, weight_decay=1e-3)])
def test_sgd_trains_a_sequential_model_like_torch(hyper, rng):
    """Six steps of mini-batch SGD through a real backward pass: every parameter matches torch at every step."""
    import torch.nn.functional as F

    from dlbook.activations import ReLU, Tanh
    from dlbook.losses import cross_entropy_backward, cross_entropy_forward
    from dlbook.reference import copy_params_to_torch
    from dlbook.sequential import Sequential

    model = Sequential(Linear(5, 8, rng=rng), ReLU(), Linear(8, 6, rng=rng), Tanh(), Linear(6, 3, rng=rng))
    model_t = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 6), torch.nn.Tanh(),
                                  torch.nn.Linear(6, 3))
    copy_params_to_torch(model, model_t)
    opt = SGD(model, lr=0.2, **hyper)
    opt_t = torch.optim.SGD(model_t.parameters(), lr=0.2, **hyper)
    start = model[0].params["w"].copy()
    X = rng.standard_normal((24, 5))
    y = rng.integers(0, 3, 24)
    for step in range(6):
        xb, yb = X[4 * step:4 * step + 4], y[4 * step:4 * step + 4]
        loss, cache = cross_entropy_forward(model.forward(xb), yb)
        opt.zero_grad()
        model.backward(cross_entropy_backward(cache))
        opt.step()
        opt_t.zero_grad()
        loss_t = F.cross_entropy(model_t(torch.from_numpy(xb)), torch.from_numpy(yb))
        loss_t.backward()
        opt_t.step()
        assert loss == pytest.approx(loss_t.item(), rel=1e-12, abs=1e-13)
        for i in (0, 2, 4):
            np.testing.assert_allclose(model[i].params["w"], model_t[i].weight.detach().numpy(), rtol=1e-11,
                                       atol=1e-13, err_msg=f"step {step}, layer {i}")
            np.testing.assert_allclose(model[i].params["b"], model_t[i].bias.detach().numpy(), rtol=1e-11,
                                       atol=1e-13, err_msg=f"step {step}, layer {i}")
    # The agreement is not vacuous: the parameters really moved, and a torch model trained one
    # step further is told apart by the same comparison.
    assert np.abs(model[0].params["w"] - start).max() > 1e-3
    opt_t.step()
    assert not np.allclose(model[0].params["w"], model_t[0].weight.detach().numpy(), rtol=1e-11, atol=1e-13)


def test_sgd_momentum_buffer_is_a_sum_of_gradients_not_a_velocity(rng):
    # v <- mu v + g, p <- p - lr v (torch), not v <- mu v + lr g: with a constant gradient of 1,
    # the steps are lr * (1, 1 + mu, 1 + mu + mu^2), which only the torch form gives for lr != 1.
    layer = Linear(1, 1, rng=rng)
    start = layer.params["w"].copy()
    opt = SGD(layer, lr=0.5, momentum=0.5)
    moved = []
    for _ in range(3):
        layer.grads = {k: np.ones_like(v) for k, v in layer.params.items()}
        opt.step()
        moved.append(float((start - layer.params["w"])[0, 0]))
    np.testing.assert_allclose(moved, [0.5, 0.5 + 0.75, 0.5 + 0.75 + 0.875], rtol=1e-15)
