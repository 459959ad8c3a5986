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
