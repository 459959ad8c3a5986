"""Optimizers that update ``Module.params`` in place from ``Module.grads``, step for step like ``torch.optim``.

An optimizer is given the model (a :class:`~dlbook.module.Module`, or a list of them); at each
``step()`` it walks every module inside it and updates each parameter array in place. Its
per-parameter state (momentum buffers) is keyed by the module and the parameter's name.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from dlbook.module import Module

__all__ = ["Optimizer", "SGD"]


class Optimizer:
    """Base class: collects the parameters of ``model`` and keeps per-parameter state."""

    def __init__(self, model: Module | Iterable[Module], lr: float) -> None:
        if not lr > 0:
            raise ValueError(f"lr: expected a positive learning rate, got {lr!r}")
        roots = [model] if isinstance(model, Module) else list(model)
        if not all(isinstance(m, Module) for m in roots):
            raise ValueError("model: expected a dlbook Module or an iterable of Modules")
        # Each module once, in a fixed order, even when a module appears twice.
        seen: dict[int, Module] = {}
        for root in roots:
            for module in root.modules():
                if module.params:
                    seen.setdefault(id(module), module)
        self.modules = list(seen.values())
        self.lr = lr
        self.state: dict[tuple[int, str], dict] = {}

    def parameters(self):
        """Yield ``(state, param, grad)`` for every parameter; ``param`` is updated in place."""
        for module in self.modules:
            for key, param in module.params.items():
                grad = module.grads.get(key)
                if grad is None:
                    continue
                if grad.shape != param.shape:
                    raise ValueError(f"grads[{key!r}] of {module!r}: shape {grad.shape} does not match "
                                     f"the parameter's {param.shape}")
                yield self.state.setdefault((id(module), key), {}), param, grad

    def zero_grad(self) -> None:
        """Set every gradient to zero (our layers overwrite their grads in backward, so this is optional)."""
        for module in self.modules:
            module.zero_grad()

    def step(self) -> None:
        """Apply one update to every parameter."""
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, weight decay and Nesterov momentum.

    With g = grad + weight_decay * p, exactly as ``torch.optim.SGD``::

        v <- g                               (first step)
        v <- momentum * v + (1 - dampening) g (later steps)
        g <- g + momentum * v  if nesterov else  v
        p <- p - lr * g

    With ``momentum=0`` this is plain gradient descent, p <- p - lr * g. Note the buffer holds
    a sum of gradients, not a velocity scaled by lr as in some texts.
    """

    def __init__(self, model: Module | Iterable[Module], lr: float, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(model, lr)
        if momentum < 0:
            raise ValueError(f"momentum: expected >= 0, got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay: expected >= 0, got {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov: requires momentum > 0 and dampening = 0 (as in torch)")
        self.momentum, self.dampening = momentum, dampening
        self.weight_decay, self.nesterov = weight_decay, nesterov

    def step(self) -> None:
        """One SGD update of every parameter, in place."""
        for state, param, grad in self.parameters():
            g = grad + self.weight_decay * param if self.weight_decay else grad
            if self.momentum:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = np.array(g, copy=True)
                else:
                    buf *= self.momentum
                    buf += (1.0 - self.dampening) * g
                state["momentum_buffer"] = buf
                g = g + self.momentum * buf if self.nesterov else buf
            param -= self.lr * g
