"""Optimizers that update ``Module.params`` in place from ``Module.grads``, step for step like ``torch.optim``.

``SGD`` (with momentum and Nesterov momentum) and the adaptive methods ``Adagrad``,
``Adadelta``, ``RMSprop``, ``Adam`` and ``AdamW`` take torch's keywords with torch's defaults.
The learning rate is the attribute ``lr``, which a schedule (:mod:`dlbook.schedule`) may change
between steps.

An optimizer is given the model (a :class:`~dlbook.module.Module`, or a list of them); at each
``step()`` it walks every module inside it and updates each parameter array in place. Its
per-parameter state (momentum buffers, moment estimates, step counts) is keyed by the module and the parameter's name.

Per-layer learning rates (torch's parameter groups) are separate optimizers on parts of a
model, e.g. ``SGD(model[0], lr=0.0)`` and ``SGD(model[2:], lr=0.1)``; a rate of 0 freezes a layer.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from dlbook.module import Module

__all__ = ["Optimizer", "SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW"]


class Optimizer:
    """Base class: collects the parameters of ``model`` and keeps per-parameter state."""

    def __init__(self, model: Module | Iterable[Module], lr: float) -> None:
        if not lr >= 0:  # as torch: a rate of 0 is allowed and freezes the parameters
            raise ValueError(f"lr: expected a non-negative learning rate, got {lr!r}")
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


def _check_nonnegative(value: float, name: str) -> None:
    if not value >= 0:
        raise ValueError(f"{name}: expected >= 0, got {value!r}")


def _check_unit_interval(value: float, name: str) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"{name}: expected a value in [0, 1), got {value!r}")


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011): a per-coordinate step that shrinks with the gradients seen.

    With g = grad + weight_decay * p and t the step count, element-wise, as
    ``torch.optim.Adagrad``::

        G <- G + g^2                          (G starts at initial_accumulator_value)
        p <- p - lr_t * g / (sqrt(G) + eps),  lr_t = lr / (1 + (t - 1) * lr_decay)

    Under a constant unit gradient the step is lr / sqrt(t): the learning rate decays by itself.
    """

    def __init__(self, model: Module | Iterable[Module], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10) -> None:
        super().__init__(model, lr)
        for value, name in ((lr_decay, "lr_decay"), (weight_decay, "weight_decay"),
                            (initial_accumulator_value, "initial_accumulator_value"), (eps, "eps")):
            _check_nonnegative(value, name)
        self.lr_decay, self.weight_decay, self.eps = lr_decay, weight_decay, eps
        self.initial_accumulator_value = initial_accumulator_value

    def step(self) -> None:
        """One Adagrad update of every parameter, in place."""
        for state, param, grad in self.parameters():
            if not state:
                state["step"] = 0
                state["sum"] = np.full_like(param, self.initial_accumulator_value)
            state["step"] += 1
            g = grad + self.weight_decay * param if self.weight_decay else grad
            lr_t = self.lr / (1.0 + (state["step"] - 1) * self.lr_decay)
            state["sum"] += g * g
            param -= lr_t * g / (np.sqrt(state["sum"]) + self.eps)


class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012): a step whose units come from a running average of past steps.

    With g = grad + weight_decay * p, element-wise, as ``torch.optim.Adadelta``::

        r <- rho * r + (1 - rho) g^2
        d <- sqrt(s + eps) / sqrt(r + eps) * g
        s <- rho * s + (1 - rho) d^2
        p <- p - lr * d

    Zeiler's method has no learning rate; torch multiplies the step by ``lr`` (default 1.0, which
    is Zeiler's form). Zeiler recommends rho = 0.95, eps = 1e-6; torch's default rho is 0.9.
    """

    def __init__(self, model: Module | Iterable[Module], lr: float = 1.0, rho: float = 0.9,
                 eps: float = 1e-6, weight_decay: float = 0.0) -> None:
        super().__init__(model, lr)
        if not 0 <= rho <= 1:
            raise ValueError(f"rho: expected a value in [0, 1], got {rho!r}")
        _check_nonnegative(eps, "eps")
        _check_nonnegative(weight_decay, "weight_decay")
        self.rho, self.eps, self.weight_decay = rho, eps, weight_decay

    def step(self) -> None:
        """One Adadelta update of every parameter, in place."""
        rho, eps = self.rho, self.eps
        for state, param, grad in self.parameters():
            if not state:
                state["step"] = 0
                state["square_avg"] = np.zeros_like(param)
                state["acc_delta"] = np.zeros_like(param)
            state["step"] += 1
            g = grad + self.weight_decay * param if self.weight_decay else grad
            state["square_avg"] = rho * state["square_avg"] + (1.0 - rho) * g * g
            delta = np.sqrt(state["acc_delta"] + eps) / np.sqrt(state["square_avg"] + eps) * g
            state["acc_delta"] = rho * state["acc_delta"] + (1.0 - rho) * delta * delta
            param -= self.lr * delta


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture notes, 2012): divide the gradient by a running RMS of gradients.

    With g = grad + weight_decay * p, element-wise, as ``torch.optim.RMSprop``::

        r <- alpha * r + (1 - alpha) g^2
        a <- sqrt(r) + eps,  or with centered=True:
             gbar <- alpha * gbar + (1 - alpha) g;  a <- sqrt(r - gbar^2) + eps
        p <- p - lr * g / a,  or with momentum > 0:
             b <- momentum * b + g / a;  p <- p - lr * b

    ``alpha`` is the decay rate often written rho; torch's default is 0.99 and lr 0.01.
    """

    def __init__(self, model: Module | Iterable[Module], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False) -> None:
        super().__init__(model, lr)
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha: expected a value in [0, 1], got {alpha!r}")
        for value, name in ((eps, "eps"), (weight_decay, "weight_decay"), (momentum, "momentum")):
            _check_nonnegative(value, name)
        self.alpha, self.eps, self.weight_decay = alpha, eps, weight_decay
        self.momentum, self.centered = momentum, centered

    def step(self) -> None:
        """One RMSprop update of every parameter, in place."""
        alpha = self.alpha
        for state, param, grad in self.parameters():
            if not state:
                state["step"] = 0
                state["square_avg"] = np.zeros_like(param)
                if self.centered:
                    state["grad_avg"] = np.zeros_like(param)
                if self.momentum > 0:
                    state["momentum_buffer"] = np.zeros_like(param)
            state["step"] += 1
            g = grad + self.weight_decay * param if self.weight_decay else grad
            state["square_avg"] = alpha * state["square_avg"] + (1.0 - alpha) * g * g
            if self.centered:
                state["grad_avg"] = alpha * state["grad_avg"] + (1.0 - alpha) * g
                avg = np.sqrt(state["square_avg"] - state["grad_avg"] ** 2) + self.eps
            else:
                avg = np.sqrt(state["square_avg"]) + self.eps
            if self.momentum > 0:
                state["momentum_buffer"] = self.momentum * state["momentum_buffer"] + g / avg
                param -= self.lr * state["momentum_buffer"]
            else:
                param -= self.lr * g / avg


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015): momentum on the gradient and on its square, bias-corrected.

    With g = grad + weight_decay * p (L2 penalty in the gradient) and t the step count,
    element-wise, as ``torch.optim.Adam``::

        m <- beta1 * m + (1 - beta1) g
        v <- beta2 * v + (1 - beta2) g^2
        mhat = m / (1 - beta1^t);  vhat = v / (1 - beta2^t)
        p <- p - lr * mhat / (sqrt(vhat) + eps)

    With ``amsgrad=True`` (Reddi et al., 2018) the denominator uses the running maximum of v
    instead of v. The first step moves every coordinate by about lr (mhat / sqrt(vhat) = sign g).
    """

    _decoupled = False

    def __init__(self, model: Module | Iterable[Module], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False) -> None:
        super().__init__(model, lr)
        if len(betas) != 2:
            raise ValueError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
        _check_unit_interval(betas[0], "betas[0]")
        _check_unit_interval(betas[1], "betas[1]")
        _check_nonnegative(eps, "eps")
        _check_nonnegative(weight_decay, "weight_decay")
        self.betas, self.eps = (float(betas[0]), float(betas[1])), eps
        self.weight_decay, self.amsgrad = weight_decay, amsgrad

    def step(self) -> None:
        """One Adam update of every parameter, in place."""
        beta1, beta2 = self.betas
        for state, param, grad in self.parameters():
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(param)
                state["exp_avg_sq"] = np.zeros_like(param)
                if self.amsgrad:
                    state["max_exp_avg_sq"] = np.zeros_like(param)
            state["step"] += 1
            t = state["step"]
            g = grad
            if self.weight_decay and self._decoupled:
                param *= 1.0 - self.lr * self.weight_decay  # AdamW: shrink p itself
            elif self.weight_decay:
                g = grad + self.weight_decay * param         # Adam: L2 term in the gradient
            state["exp_avg"] = beta1 * state["exp_avg"] + (1.0 - beta1) * g
            state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1.0 - beta2) * g * g
            v = state["exp_avg_sq"]
            if self.amsgrad:
                state["max_exp_avg_sq"] = np.maximum(state["max_exp_avg_sq"], v)
                v = state["max_exp_avg_sq"]
            mhat = state["exp_avg"] / (1.0 - beta1 ** t)
            vhat = v / (1.0 - beta2 ** t)
            param -= self.lr * mhat / (np.sqrt(vhat) + self.eps)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay.

    The decay shrinks the parameter directly, p <- p * (1 - lr * weight_decay), before the Adam
    step on the raw gradient, instead of entering the moment estimates as an L2 gradient term.
    Otherwise as :class:`Adam`; torch's default ``weight_decay`` for AdamW is 1e-2.
    Matches ``torch.optim.AdamW``.
    """

    _decoupled = True

    def __init__(self, model: Module | Iterable[Module], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(model, lr, betas, eps, weight_decay, amsgrad)
