"""Learning-rate schedules, as ``torch.optim.lr_scheduler``, and the learning-rate range test.

Each schedule is first a pure function ``xxx_lr(epoch, base_lr, ...) -> lr`` in closed form (what
the book prints and plots), then a thin class that drives an optimizer: it reads the optimizer's
``lr`` as the base rate, sets ``optimizer.lr`` for epoch 0 at once, and each ``step()`` (called
once per epoch, after the epoch's optimizer steps, as in torch) moves to the next epoch::

    opt = SGD(model, lr=0.1, momentum=0.9)
    sched = StepLR(opt, step_size=5, gamma=0.5)
    for epoch in range(20):
        ...train one epoch with opt...
        sched.step()

"Epoch" can equally be an iteration: call ``step()`` once per mini-batch (the snapshot ensemble's
cosine cycles count iterations). Torch computes most schedules recursively (lr_t from lr_{t-1});
ours use the closed form, which is the same number up to rounding. One departure: torch's
``get_last_lr()`` returns a list (one rate per parameter group); ours returns the float.
"""

from __future__ import annotations

import bisect
import math
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "step_lr", "multistep_lr", "exponential_lr", "inverse_time_lr", "polynomial_lr",
    "cosine_annealing_lr", "cosine_warm_restarts_lr",
    "LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "InverseTimeLR", "PolynomialLR",
    "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "lr_range_test",
]


def _check_epoch(epoch: float) -> None:
    if not epoch >= 0:
        raise ValueError(f"epoch: expected >= 0, got {epoch!r}")


def _check_positive_int(value, name: str) -> None:
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0):
        raise ValueError(f"{name}: expected a positive int, got {value!r}")


def step_lr(epoch: int, base_lr: float, step_size: int, gamma: float = 0.1) -> float:
    """Step decay: lr = base_lr * gamma^(epoch // step_size). Matches ``StepLR``."""
    _check_epoch(epoch)
    return base_lr * gamma ** (epoch // step_size)


def multistep_lr(epoch: int, base_lr: float, milestones: Sequence[int],
                 gamma: float = 0.1) -> float:
    """lr = base_lr * gamma^(number of milestones <= epoch). Matches ``MultiStepLR``."""
    _check_epoch(epoch)
    return base_lr * gamma ** bisect.bisect_right(sorted(milestones), epoch)


def exponential_lr(epoch: float, base_lr: float, gamma: float) -> float:
    """Exponential decay: lr = base_lr * gamma^epoch. Matches ``ExponentialLR``.

    Equal to a log-spaced sequence: from lr_0 to lr_T in T steps, gamma = (lr_T / lr_0)^(1/T).
    """
    _check_epoch(epoch)
    return base_lr * gamma ** epoch


def inverse_time_lr(epoch: float, base_lr: float, decay_rate: float) -> float:
    """1/t decay: lr = base_lr / (1 + decay_rate * epoch).

    Torch has no class for it (``LambdaLR(opt, lambda t: 1 / (1 + k * t))`` gives it);
    TensorFlow calls it ``InverseTimeDecay``.
    """
    _check_epoch(epoch)
    return base_lr / (1.0 + decay_rate * epoch)


def polynomial_lr(epoch: float, base_lr: float, total_iters: int = 5, power: float = 1.0) -> float:
    """lr = base_lr * (1 - min(epoch, total_iters) / total_iters)^power, 0 after ``total_iters``.

    Matches ``PolynomialLR``.
    """
    _check_epoch(epoch)
    return base_lr * (1.0 - min(epoch, total_iters) / total_iters) ** power


def cosine_annealing_lr(epoch: float, base_lr: float, T_max: int, eta_min: float = 0.0) -> float:
    """Cosine annealing: lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2.

    Falls from base_lr to eta_min over T_max epochs (and, like torch, climbs back after).
    Matches ``CosineAnnealingLR`` (Loshchilov & Hutter, 2017, without restarts).
    """
    _check_epoch(epoch)
    return eta_min + (base_lr - eta_min) * (1.0 + math.cos(math.pi * epoch / T_max)) / 2.0


def cosine_warm_restarts_lr(epoch: float, base_lr: float, T_0: int, T_mult: int = 1,
                            eta_min: float = 0.0) -> float:
    """Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter, 2017).

    The first cycle lasts T_0 epochs, each next one T_mult times longer. With T_cur the epochs
    since the last restart and T_i the current cycle's length::

        lr = eta_min + (base_lr - eta_min) (1 + cos(pi T_cur / T_i)) / 2

    so the rate jumps back to base_lr at every restart. ``epoch`` may be fractional (a step
    per mini-batch). Matches ``CosineAnnealingWarmRestarts``.
    """
    _check_epoch(epoch)
    t_cur, t_i = epoch, T_0
    while t_cur >= t_i:  # walk through the finished cycles
        t_cur -= t_i
        t_i *= T_mult
    return eta_min + (base_lr - eta_min) * (1.0 + math.cos(math.pi * t_cur / t_i)) / 2.0


class LRScheduler:
    """Base class: sets ``optimizer.lr`` to ``lr_at(epoch)`` now and at every ``step()``.

    ``base_lr`` is the optimizer's ``lr`` when the schedule is made; ``last_epoch`` counts the
    ``step()`` calls. Subclasses define ``lr_at``.
    """

    def __init__(self, optimizer) -> None:
        if not hasattr(optimizer, "lr"):
            raise ValueError(f"optimizer: expected an object with an 'lr' attribute, "
                             f"got {optimizer!r}")
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.last_epoch = 0
        optimizer.lr = self.lr_at(0)

    def lr_at(self, epoch: float) -> float:
        """The learning rate of ``epoch`` (closed form)."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and set the optimizer's learning rate for it."""
        self.last_epoch += 1
        self.optimizer.lr = self.lr_at(self.last_epoch)

    def get_last_lr(self) -> float:
        """The learning rate set by the last ``step()`` (or by the constructor)."""
        return self.lr_at(self.last_epoch)

    def lrs(self, num_epochs: int) -> np.ndarray:
        """The rates of epochs 0 .. num_epochs - 1, for plotting the schedule."""
        return np.array([self.lr_at(e) for e in range(num_epochs)])


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs; see :func:`step_lr`."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1) -> None:
        _check_positive_int(step_size, "step_size")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def lr_at(self, epoch: float) -> float:
        """See :func:`step_lr`."""
        return step_lr(epoch, self.base_lr, self.step_size, self.gamma)


class MultiStepLR(LRScheduler):
    """Multiply the rate by ``gamma`` at each milestone epoch; see :func:`multistep_lr`."""

    def __init__(self, optimizer, milestones: Sequence[int], gamma: float = 0.1) -> None:
        if list(milestones) != sorted(milestones) or any(m < 0 for m in milestones):
            raise ValueError(f"milestones: expected increasing epochs >= 0, got {milestones!r}")
        self.milestones, self.gamma = list(milestones), gamma
        super().__init__(optimizer)

    def lr_at(self, epoch: float) -> float:
        """See :func:`multistep_lr`."""
        return multistep_lr(epoch, self.base_lr, self.milestones, self.gamma)


class ExponentialLR(LRScheduler):
    """Multiply the rate by ``gamma`` every epoch; see :func:`exponential_lr`."""

    def __init__(self, optimizer, gamma: float) -> None:
        if not gamma > 0:
            raise ValueError(f"gamma: expected a positive number, got {gamma!r}")
        self.gamma = gamma
        super().__init__(optimizer)

    def lr_at(self, epoch: float) -> float:
        """See :func:`exponential_lr`."""
        return exponential_lr(epoch, self.base_lr, self.gamma)


class InverseTimeLR(LRScheduler):
    """1/t decay, lr = base_lr / (1 + decay_rate * epoch); see :func:`inverse_time_lr`."""

    def __init__(self, optimizer, decay_rate: float) -> None:
        if not decay_rate >= 0:
            raise ValueError(f"decay_rate: expected >= 0, got {decay_rate!r}")
        self.decay_rate = decay_rate
        super().__init__(optimizer)

    def lr_at(self, epoch: float) -> float:
        """See :func:`inverse_time_lr`."""
        return inverse_time_lr(epoch, self.base_lr, self.decay_rate)


class PolynomialLR(LRScheduler):
    """Polynomial decay to 0 over ``total_iters`` epochs; see :func:`polynomial_lr`."""

    def __init__(self, optimizer, total_iters: int = 5, power: float = 1.0) -> None:
        _check_positive_int(total_iters, "total_iters")
        self.total_iters, self.power = total_iters, power
        super().__init__(optimizer)

    def lr_at(self, epoch: float) -> float:
        """See :func:`polynomial_lr`."""
        return polynomial_lr(epoch, self.base_lr, self.total_iters, self.power)


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from the base rate to ``eta_min`` over ``T_max`` epochs; see
    :func:`cosine_annealing_lr`."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0) -> None:
        _check_positive_int(T_max, "T_max")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def lr_at(self, epoch: float) -> float:
        """See :func:`cosine_annealing_lr`."""
        return cosine_annealing_lr(epoch, self.base_lr, self.T_max, self.eta_min)


class CosineAnnealingWarmRestarts(LRScheduler):
    """SGDR: cosine cycles of T_0, T_0 T_mult, ... epochs, each restarting at the base rate;
    see :func:`cosine_warm_restarts_lr`."""

    def __init__(self, optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0) -> None:
        _check_positive_int(T_0, "T_0")
        _check_positive_int(T_mult, "T_mult")
        self.T_0, self.T_mult, self.eta_min = T_0, T_mult, eta_min
        super().__init__(optimizer)

    def lr_at(self, epoch: float) -> float:
        """See :func:`cosine_warm_restarts_lr`."""
        return cosine_warm_restarts_lr(epoch, self.base_lr, self.T_0, self.T_mult, self.eta_min)


def lr_range_test(train_step: Callable[[], float], optimizer, *, start_lr: float = 1e-6,
                  end_lr: float = 1.0, num_steps: int = 100,
                  diverge_factor: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """The learning-rate range test (Smith, 2017): train briefly while the rate grows exponentially.

    Step k of ``num_steps`` uses lr_k = start_lr * (end_lr / start_lr)^(k / (num_steps - 1)) and
    records the loss that ``train_step()`` returns (one forward, backward and optimizer step on a
    mini-batch). The run stops early once the loss is not finite or exceeds ``diverge_factor``
    times the best loss so far. A good rate lies somewhat below the one where the loss falls
    fastest, well before it blows up. The run changes the model: use a copy, or reload it after.
    The optimizer's ``lr`` is restored at the end.

    Returns:
        ``(lrs, losses)``, two equally long 1-D arrays (shorter than ``num_steps`` if stopped).
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"start_lr, end_lr: expected 0 < start_lr < end_lr, "
                         f"got {start_lr!r}, {end_lr!r}")
    if not (isinstance(num_steps, (int, np.integer)) and num_steps >= 2):
        raise ValueError(f"num_steps: expected an int >= 2, got {num_steps!r}")
    if not diverge_factor > 1:
        raise ValueError(f"diverge_factor: expected a number > 1, got {diverge_factor!r}")
    saved_lr = optimizer.lr
    lrs, losses, best = [], [], math.inf
    try:
        for k in range(num_steps):
            lr = start_lr * (end_lr / start_lr) ** (k / (num_steps - 1))
            optimizer.lr = lr
            loss = float(train_step())
            lrs.append(lr)
            losses.append(loss)
            if not math.isfinite(loss) or loss > diverge_factor * best:
                break
            best = min(best, loss)
    finally:
        optimizer.lr = saved_lr
    return np.array(lrs), np.array(losses)
