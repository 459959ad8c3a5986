"""The base class of dlbook's thin layer classes.

A layer class holds its parameters in ``params`` and, after ``backward``, their gradients in
``grads`` (same keys, same shapes). It keeps the cache of its last forward pass and adds no
maths of its own: ``forward`` and ``backward`` call the functional pair of its module.
"""

from __future__ import annotations

import numpy as np


class Module:
    """A layer with ``params``/``grads`` dicts and a train/eval switch.

    Subclasses implement ``forward(x) -> out`` (storing what ``backward`` needs in
    ``self._cache``) and ``backward(dout) -> dx`` (filling ``self.grads``).
    """

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.training: bool = True
        self._cache = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Compute the layer's output for ``x`` and remember what ``backward`` needs."""
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Return ``dL/dx`` for the upstream gradient ``dout`` and fill ``self.grads``."""
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def _need_cache(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._cache

    def children(self) -> list["Module"]:
        """The layers this one is built from (none for a plain layer; containers override)."""
        return []

    def modules(self):
        """Yield this module and, recursively, every module inside it."""
        yield self
        for child in self.children():
            yield from child.modules()

    def train(self, mode: bool = True) -> "Module":
        """Switch this module and its children to training mode (``mode=True``) or evaluation mode."""
        for module in self.modules():
            module.training = mode
        return self

    def eval(self) -> "Module":
        """Switch to evaluation mode; returns ``self``."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Reset every gradient in ``grads`` (of this module and its children) to zero."""
        for module in self.modules():
            for key, value in module.params.items():
                module.grads[key] = np.zeros_like(value)

    def num_parameters(self) -> int:
        """Total number of scalar parameters, children included."""
        return int(sum(p.size for m in self.modules() for p in m.params.values()))

    def extra_repr(self) -> str:
        """The text between the parentheses of ``repr``."""
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"
