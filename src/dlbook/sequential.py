"""A container that chains layers: the forward pass runs them in order, the backward pass in reverse.

This is the layered form of backpropagation (Algorithm 1 of Wei 2017): the
forward pass stores what each layer needs; the backward pass hands each layer the gradient of
the loss with respect to its output, ``dL/dx^{i+1}``, and receives ``dL/dx^i`` for the layer
before it, while the layer fills its own ``grads`` with ``dL/dw^i`` on the way.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np

from dlbook.linear import Linear
from dlbook.module import Module

__all__ = ["Sequential", "mlp"]


class Sequential(Module):
    """Layers applied one after another, like ``torch.nn.Sequential``.

    ``forward(x)`` computes x^{i+1} = layer_i(x^i) for i = 1..L and returns x^{L+1};
    ``backward(dout)`` runs the layers' ``backward`` from last to first and returns dL/dx^1.

    The container has no parameters of its own: an optimizer finds the layers' parameters
    through :meth:`children` (``Module.modules`` walks them recursively). Indexing with an int
    returns a layer, with a slice a new ``Sequential`` sharing the same layer objects.
    """

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise ValueError(f"layers[{i}]: expected a dlbook Module, got {type(layer).__name__}")
        self.layers: list[Module] = list(layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Run every layer in order; each keeps the cache its ``backward`` needs."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Backpropagate ``dout`` = dL/d(output) through the layers in reverse; return dL/d(input).

        Each layer's ``backward`` turns dL/dx^{i+1} into dL/dx^i and stores dL/dw^i in its
        ``grads`` (the two derivatives every layer owes, (1.7) and (1.8) of Wei 2017).
        """
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def children(self) -> list[Module]:
        """The layers, in order."""
        return list(self.layers)

    def named_parameters(self) -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``("<index>.<key>", array)`` for every parameter, e.g. ``"0.w"``, like torch's names."""
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Sequential):
                for name, param in layer.named_parameters():
                    yield f"{i}.{name}", param
            else:
                for key, param in layer.params.items():
                    yield f"{i}.{key}", param

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            if not -len(self.layers) <= index < len(self.layers):
                raise IndexError(f"index {index} is out of range for a Sequential of {len(self.layers)} layers")
            return self.layers[index]
        raise ValueError(f"index: expected an int or a slice, got {type(index).__name__}")

    def __repr__(self) -> str:
        if not self.layers:
            return "Sequential()"
        lines = [f"  ({i}): " + repr(layer).replace("\n", "\n  ") for i, layer in enumerate(self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)"


def mlp(sizes: Sequence[int], activation: Callable[[], Module], *, rng: np.random.Generator) -> Sequential:
    """A multilayer perceptron: ``Linear`` layers of the given sizes with ``activation()`` between them.

    ``mlp([64, 128, 10], ReLU, rng=rng)`` is ``Sequential(Linear(64, 128), ReLU(), Linear(128, 10))``;
    there is no activation after the last layer (it produces logits). The weights are drawn
    in order from ``rng`` with ``Linear``'s torch-like initialisation.

    Args:
        sizes: (L + 1) layer widths, input first; at least two.
        activation: a zero-argument callable returning a fresh layer, e.g. the class ``ReLU``.
    """
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"sizes: expected at least an input and an output width, got {sizes}")
    layers: list[Module] = []
    for k, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Linear(d_in, d_out, rng=rng))
        if k < len(sizes) - 2:
            layer = activation()
            if not isinstance(layer, Module):
                raise ValueError(f"activation: expected a callable returning a Module, got {type(layer).__name__}")
            layers.append(layer)
    return Sequential(*layers)
