"""PyTorch twins of dlbook runs: the same weights and the same mini-batches, trained by torch.

Each chapter that trains a model from scratch ends by training the same network in PyTorch
and checking that the two runs agree epoch by epoch. This module holds the two pieces that check
needs, so that the chapters and the tests share one copy: :func:`copy_params_to_torch` gives a
torch module dlbook's initial weights, and :func:`fit_torch` is :func:`dlbook.train.fit` written
with ``torch.optim``, ``F.cross_entropy`` and autograd, visiting the batches in the same order.

Unlike the numpy modules, this one imports torch: it is the reference, not the thing checked.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dlbook.data import iterate_minibatches
from dlbook.module import Module
from dlbook.train import History

__all__ = ["copy_params_to_torch", "fit_torch"]

# dlbook's parameter names and torch's for the same array.
_TORCH_NAME = {"w": "weight", "b": "bias"}


def _torch_layers(torch_model: torch.nn.Module) -> list[torch.nn.Module]:
    """The torch modules that own parameters directly, in registration order."""
    return [m for m in torch_model.modules() if any(True for _ in m.parameters(recurse=False))]


def copy_params_to_torch(model: Module, torch_model: torch.nn.Module) -> None:
    """Copy every parameter of a dlbook ``model`` into the matching torch module, in place.

    The layers that hold parameters are paired in order (dlbook's ``Module.modules()`` against
    torch's ``nn.Module.modules()``): a dlbook ``Linear`` or ``Conv2d`` with a ``torch.nn.Linear``
    or ``Conv2d``; ``params["w"]`` goes to ``weight``, ``params["b"]`` to ``bias``. Both libraries
    store weights in the same layout, so nothing is transposed.

    Raises:
        ValueError: if the two models have different numbers of parameter layers, or a pair
            differs in names or shapes.
    """
    ours = [m for m in model.modules() if m.params]
    theirs = _torch_layers(torch_model)
    if len(ours) != len(theirs):
        raise ValueError(f"torch_model: expected {len(ours)} layers with parameters to match the dlbook "
                         f"model, got {len(theirs)}")
    with torch.no_grad():
        for k, (layer, layer_t) in enumerate(zip(ours, theirs)):
            names_t = {name for name, _ in layer_t.named_parameters(recurse=False)}
            wanted = {_TORCH_NAME.get(key, key) for key in layer.params}
            if names_t != wanted:
                raise ValueError(f"torch_model: parameter layer {k} has {sorted(names_t)}, the dlbook layer "
                                 f"{layer!r} has {sorted(wanted)}")
            for key, value in layer.params.items():
                target = getattr(layer_t, _TORCH_NAME.get(key, key))
                if tuple(target.shape) != value.shape:
                    raise ValueError(f"torch_model: parameter layer {k} '{_TORCH_NAME.get(key, key)}' has shape "
                                     f"{tuple(target.shape)}, the dlbook layer's {key!r} {value.shape}")
                target.copy_(torch.from_numpy(np.asarray(value)))


def _evaluate(torch_model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    logits = torch_model(X)
    return F.cross_entropy(logits, y).item(), (logits.argmax(dim=1) == y).double().mean().item()


def fit_torch(torch_model: torch.nn.Module, optimizer: torch.optim.Optimizer, X_train: np.ndarray,
              y_train: np.ndarray, *, epochs: int, batch_size: int, rng: np.random.Generator,
              X_val: np.ndarray | None = None, y_val: np.ndarray | None = None) -> History:
    """Train ``torch_model`` exactly as :func:`dlbook.train.fit` trains a dlbook model.

    Each epoch draws the same shuffle from ``rng`` (give it a generator seeded like the one
    ``fit`` used), takes one ``optimizer`` step per mini-batch on ``F.cross_entropy``, then records
    ``train_loss`` and ``train_acc`` over the whole training set, and ``val_loss`` and ``val_acc``
    when validation data is given, in evaluation mode without gradients.

    Returns:
        A :class:`~dlbook.train.History` with the metric names ``fit`` uses.
    """
    if epochs < 1:
        raise ValueError(f"epochs: expected >= 1, got {epochs}")
    if (X_val is None) != (y_val is None):
        raise ValueError("X_val, y_val: give both or neither")
    parts = {"train": (X_train, y_train)}
    if X_val is not None:
        parts["val"] = (X_val, y_val)
    tensors = {name: (torch.from_numpy(np.asarray(X)), torch.from_numpy(np.asarray(y)))
               for name, (X, y) in parts.items()}
    history = History()
    for _ in range(epochs):
        torch_model.train()
        for xb, yb in iterate_minibatches(X_train, y_train, batch_size, rng=rng):
            optimizer.zero_grad()
            F.cross_entropy(torch_model(torch.from_numpy(xb)), torch.from_numpy(yb)).backward()
            optimizer.step()
        torch_model.eval()
        with torch.no_grad():
            for name, (X_t, y_t) in tensors.items():
                loss, acc = _evaluate(torch_model, X_t, y_t)
                history.record(**{f"{name}_loss": loss, f"{name}_acc": acc})
    return history
