"""dlbook.module: the base class's bookkeeping (modes, gradients, parameter counts)."""

from __future__ import annotations

import numpy as np
import pytest

from dlbook.activations import ReLU
from dlbook.linear import Linear
from dlbook.module import Module
from dlbook.sequential import Sequential


def test_modes_propagate_to_children(rng):
    inner = Sequential(Linear(3, 3, rng=rng), ReLU())
    model = Sequential(inner, Linear(3, 2, rng=rng))
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    assert len(list(model.modules())) == 5  # outer, inner, Linear, ReLU, Linear


def test_zero_grad_and_parameter_count(rng):
    model = Sequential(Linear(3, 4, rng=rng), ReLU(), Linear(4, 2, rng=rng))
    model.forward(rng.standard_normal((5, 3)))
    model.backward(rng.standard_normal((5, 2)))
    assert np.any(model[0].grads["w"] != 0)
    model.zero_grad()
    assert all(np.all(g == 0) for m in model.modules() for g in m.grads.values())
    assert model.num_parameters() == 3 * 4 + 4 + 4 * 2 + 2


def test_base_class_is_abstract_and_guards_backward():
    with pytest.raises(NotImplementedError):
        Module().forward(np.zeros(1))
    with pytest.raises(RuntimeError, match="Linear.backward called before forward"):
        Linear(2, 2, rng=np.random.default_rng(0)).backward(np.zeros((1, 2)))
    assert repr(ReLU()) == "ReLU()"
