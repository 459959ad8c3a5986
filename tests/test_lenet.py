"""dlbook.lenet: the numpy LeNet-5 equals its torch twin (models.lenet5(modern=True)) in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TIGHT
from dlbook.lenet import lenet5
from dlbook.models import lenet5 as torch_lenet5
from dlbook.reference import copy_params_to_torch


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_forward_and_backward_match_the_torch_twin(pooling, rng):
    model = lenet5(rng=rng, pooling=pooling)
    assert model.num_parameters() == 61_706
    twin = torch_lenet5(modern=True, pooling=pooling)  # float64: conftest's default dtype
    copy_params_to_torch(model, twin)
    x = rng.standard_normal((3, 1, 32, 32))
    out = model.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = model.backward(dout)
    x_t = torch.from_numpy(x).requires_grad_(True)
    out_t = twin(x_t)
    (out_t * torch.from_numpy(dout)).sum().backward()
    np.testing.assert_allclose(out, out_t.detach().numpy(), **TIGHT)
    np.testing.assert_allclose(dx, x_t.grad.numpy(), **TIGHT)
    ours = [(layer, key) for layer in model.modules() for key in layer.params]
    theirs = [p for m in twin.modules() for p in m.parameters(recurse=False)]
    assert len(ours) == len(theirs) == 10
    for (layer, key), p in zip(ours, theirs):
        np.testing.assert_allclose(layer.grads[key], p.grad.numpy(), **TIGHT)


def test_a_changed_weight_breaks_the_match(rng):
    model = lenet5(rng=rng)
    twin = torch_lenet5(modern=True)
    copy_params_to_torch(model, twin)
    model[3].params["w"][0, 0, 0, 0] += 1e-3  # C3, one weight
    x = rng.standard_normal((2, 1, 32, 32))
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    assert not np.allclose(model.forward(x), expected, **TIGHT)


def test_shapes_and_bad_arguments(rng):
    model = lenet5(rng=rng, num_classes=7)
    x = rng.standard_normal((2, 1, 32, 32))
    shapes = []
    for layer in model:
        x = layer.forward(x)
        shapes.append(x.shape)
    assert shapes[2] == (2, 6, 14, 14) and shapes[5] == (2, 16, 5, 5) and shapes[-1] == (2, 7)
    with pytest.raises(ValueError, match="pooling"):
        lenet5(rng=rng, pooling="min")
    with pytest.raises(ValueError, match="x"):
        model.forward(rng.standard_normal((2, 3, 32, 32)))  # three channels into C1
