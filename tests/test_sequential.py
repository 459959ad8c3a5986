"""dlbook.sequential.Sequential: an MLP against the same torch network in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TIGHT
from dlbook.activations import ReLU, Sigmoid, Tanh
from dlbook.gradcheck import GradientCheckError, check_module_gradients
from dlbook.linear import Linear
from dlbook.module import Module
from dlbook.reference import copy_params_to_torch
from dlbook.sequential import Sequential

TORCH_ACT = {ReLU: torch.nn.ReLU, Sigmoid: torch.nn.Sigmoid, Tanh: torch.nn.Tanh}


def make_pair(widths, activation, rng):
    """A dlbook MLP and a torch.nn.Sequential with the same weights."""
    layers, torch_layers = [], []
    for k, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(Linear(d_in, d_out, rng=rng))
        torch_layers.append(torch.nn.Linear(d_in, d_out))
        if k < len(widths) - 2:
            layers.append(activation())
            torch_layers.append(TORCH_ACT[activation]())
    model, torch_model = Sequential(*layers), torch.nn.Sequential(*torch_layers)
    copy_params_to_torch(model, torch_model)
    return model, torch_model


@pytest.mark.parametrize("activation", [ReLU, Sigmoid, Tanh])
@pytest.mark.parametrize("widths, batch", [([5, 7, 3], 4), ([6, 8, 8, 4, 2], 9), ([3, 2], 1)])
def test_mlp_matches_torch(widths, batch, activation, rng):
    model, model_t = make_pair(widths, activation, rng)
    x = rng.standard_normal((batch, widths[0]))
    out = model.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = model.backward(dout)

    x_t = torch.from_numpy(x.copy()).requires_grad_(True)
    out_t = model_t(x_t)
    (out_t * torch.from_numpy(dout)).sum().backward()
    np.testing.assert_allclose(out, out_t.detach().numpy(), **TIGHT)
    np.testing.assert_allclose(dx, x_t.grad.numpy(), **TIGHT)
    names = dict(model.named_parameters())
    torch_grads = {n.replace("weight", "w").replace("bias", "b"): p.grad.numpy() for n, p in model_t.named_parameters()}
    assert set(names) == set(torch_grads)
    for name, grad_t in torch_grads.items():
        index, key = name.split(".")
        np.testing.assert_allclose(model[int(index)].grads[key], grad_t, **TIGHT, err_msg=name)


def test_central_differences_and_a_broken_layer_is_caught(rng):
    model = Sequential(Linear(4, 6, rng=rng), Tanh(), Linear(6, 3, rng=rng))
    x = rng.standard_normal((5, 4))
    dout = rng.standard_normal((5, 3))
    results = check_module_gradients(model, x, dout)
    assert set(results) == {"x", "0.w", "0.b", "2.w", "2.b"}
    assert max(r.rel_error for r in results.values()) < 1e-7

    class TanhMissingFactor(Tanh):
        def backward(self, dout):  # forgets the (1 - tanh^2) factor
            return dout

    broken = Sequential(model[0], TanhMissingFactor(), model[2])
    with pytest.raises(GradientCheckError, match="'x'"):
        check_module_gradients(broken, x, dout)
    with pytest.raises(GradientCheckError, match="'0.w'"):
        check_module_gradients(broken, x, dout, check_input=False)


def test_container_behaviour(rng):
    lin1, act, lin2 = Linear(3, 4, rng=rng), ReLU(), Linear(4, 2, rng=rng)
    model = Sequential(lin1, act, lin2)
    assert len(model) == 3
    assert list(model) == [lin1, act, lin2]
    assert model[0] is lin1 and model[-1] is lin2
    head = model[:2]
    assert isinstance(head, Sequential) and list(head) == [lin1, act]
    assert Sequential([lin1, act]).layers == [lin1, act]
    assert list(model.modules()) == [model, lin1, act, lin2]
    assert model.num_parameters() == 3 * 4 + 4 + 4 * 2 + 2
    assert [n for n, _ in model.named_parameters()] == ["0.w", "0.b", "2.w", "2.b"]
    nested = Sequential(model, Sigmoid())
    assert [n for n, _ in nested.named_parameters()] == ["0.0.w", "0.0.b", "0.2.w", "0.2.b"]
    text = repr(nested)
    assert text.startswith("Sequential(\n  (0): Sequential(\n    (0): Linear(in_features=3")
    assert "(1): Sigmoid()" in text
    assert repr(Sequential()) == "Sequential()"
    x = rng.standard_normal((2, 3))
    np.testing.assert_array_equal(model(x), lin2(act(lin1(x))))
    # An empty container is the identity, forward and backward.
    np.testing.assert_array_equal(Sequential().forward(x), x)
    np.testing.assert_array_equal(Sequential().backward(x), x)


def test_train_eval_propagates(rng):
    inner = Sequential(Linear(2, 2, rng=rng), ReLU())
    model = Sequential(inner, Linear(2, 1, rng=rng))
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_bad_input(rng):
    with pytest.raises(ValueError, match=r"layers\[1\]: expected a dlbook Module, got ufunc"):
        Sequential(Linear(2, 2, rng=rng), np.tanh)
    model = Sequential(Linear(2, 2, rng=rng))
    with pytest.raises(IndexError, match="out of range"):
        model[1]
    with pytest.raises(ValueError, match="index: expected an int or a slice"):
        model["0"]
    with pytest.raises(ValueError, match="x: expected last dimension D_in = 2"):
        model.forward(np.ones((3, 5)))
    with pytest.raises(RuntimeError, match="before forward"):
        Sequential(Linear(2, 2, rng=rng)).backward(np.ones((1, 2)))
    assert isinstance(model, Module)


def test_mlp_builder(rng):
    from dlbook.sequential import mlp

    model = mlp([4, 6, 5, 2], ReLU, rng=np.random.default_rng(3))
    assert [type(layer).__name__ for layer in model] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert [(layer.in_features, layer.out_features) for layer in model if isinstance(layer, Linear)] == \
        [(4, 6), (6, 5), (5, 2)]
    # Same draws as building the layers by hand from the same seed.
    same = np.random.default_rng(3)
    first = Linear(4, 6, rng=same)
    np.testing.assert_array_equal(model[0].params["w"], first.params["w"])
    assert model[1] is not mlp([4, 6, 5, 2], ReLU, rng=rng)[1]
    with pytest.raises(ValueError, match="sizes: expected at least an input and an output width"):
        mlp([4], ReLU, rng=rng)
    with pytest.raises(ValueError, match="activation: expected a callable returning a Module"):
        mlp([4, 3, 2], lambda: "relu", rng=rng)
