"""dlbook.reference: copying weights into torch, and fit_torch agreeing with dlbook's fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TIGHT
from dlbook.activations import ReLU
from dlbook.conv import Conv2d
from dlbook.data import make_blobs
from dlbook.linear import Linear
from dlbook.optim import SGD
from dlbook.pool import MaxPool2d
from dlbook.reference import copy_params_to_torch, fit_torch
from dlbook.reshape import Flatten
from dlbook.sequential import Sequential
from dlbook.train import fit


def test_copied_weights_give_the_same_outputs(rng):
    model = Sequential(Conv2d(1, 4, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2), Flatten(),
                       Linear(4 * 3 * 3, 5, rng=rng))
    torch_model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                      torch.nn.Flatten(), torch.nn.Linear(36, 5))
    copy_params_to_torch(model, torch_model)
    x = rng.standard_normal((2, 1, 6, 6))
    np.testing.assert_allclose(model.forward(x), torch_model(torch.from_numpy(x)).detach().numpy(), **TIGHT)
    # a single layer works too
    layer, layer_t = Linear(3, 2, rng=rng), torch.nn.Linear(3, 2)
    copy_params_to_torch(layer, layer_t)
    np.testing.assert_array_equal(layer.params["w"], layer_t.weight.detach().numpy())


def test_mismatched_models_are_rejected(rng):
    model = Sequential(Linear(4, 3, rng=rng), ReLU(), Linear(3, 2, rng=rng))
    with pytest.raises(ValueError, match="expected 2 layers with parameters"):
        copy_params_to_torch(model, torch.nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"'weight' has shape \(2, 4\)"):
        copy_params_to_torch(model, torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(4, 2)))
    with pytest.raises(ValueError, match=r"has \['weight'\]"):
        copy_params_to_torch(model, torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2, bias=False)))


def _run_both(shuffle_seed_torch: int):
    rng = np.random.default_rng(0)
    X, y = make_blobs(40, [[-2, 0], [2, 0], [0, 3]], std=0.8, rng=rng)
    model = Sequential(Linear(2, 8, rng=rng), ReLU(), Linear(8, 3, rng=rng))
    torch_model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    copy_params_to_torch(model, torch_model)
    ours = fit(model, SGD(model, lr=0.1, momentum=0.9), X[:90], y[:90], epochs=4, batch_size=16,
               rng=np.random.default_rng(1), X_val=X[90:], y_val=y[90:], progress=False)
    theirs = fit_torch(torch_model, torch.optim.SGD(torch_model.parameters(), lr=0.1, momentum=0.9), X[:90], y[:90],
                       epochs=4, batch_size=16, rng=np.random.default_rng(shuffle_seed_torch), X_val=X[90:],
                       y_val=y[90:])
    return model, torch_model, ours, theirs


def test_fit_torch_matches_fit_epoch_by_epoch():
    model, torch_model, ours, theirs = _run_both(shuffle_seed_torch=1)
    assert set(theirs.metrics) == set(ours.metrics) and theirs.epochs == 4
    for key in ours.metrics:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model[2].params["w"], torch_model[2].weight.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_fit_torch_on_other_batches_does_not_match():
    # The negative case: a different shuffle gives a different run, and the comparison sees it.
    _, _, ours, theirs = _run_both(shuffle_seed_torch=7)
    assert not np.allclose(ours["train_loss"], theirs["train_loss"], rtol=1e-10, atol=1e-12)


def test_fit_torch_rejects_bad_arguments(rng):
    torch_model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(torch_model.parameters(), lr=0.1)
    X, y = np.zeros((4, 2)), np.zeros(4, dtype=np.int64)
    with pytest.raises(ValueError, match="epochs"):
        fit_torch(torch_model, opt, X, y, epochs=0, batch_size=2, rng=rng)
    with pytest.raises(ValueError, match="X_val, y_val"):
        fit_torch(torch_model, opt, X, y, epochs=1, batch_size=2, rng=rng, y_val=y)
