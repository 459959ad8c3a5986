"""Weight initialisation: Xavier (Glorot) and Kaiming (He) draws, and the gains they use.

A layer with ``fan_in`` inputs computes s = sum_i w_i x_i. With w and x independent and of
mean zero, Var(s) = fan_in Var(w) Var(x), so the scale of the signal is kept from layer to layer
when Var(w) = 1 / fan_in (times a gain that undoes the activation's shrinking):

* Xavier (Glorot & Bengio, 2010) balances the forward and the backward pass with the average
  fan, Var(w) = gain^2 * 2 / (fan_in + fan_out).
* Kaiming (He et al., 2015) accounts for ReLU halving the second moment, Var(w) = gain^2 / fan
  with gain^2 = 2 for ReLU and 2 / (1 + a^2) for a leaky ReLU of negative slope a.

A uniform draw U(-bound, bound) has variance bound^2 / 3, so the uniform versions use
bound = sqrt(3) * std. Fans follow torch: for a weight of shape (F, C, KH, KW) (or (D_out, D_in)),
fan_in = C * KH * KW and fan_out = F * KH * KW.

Every function returns a new float64 array of ``shape``, drawn from the explicit ``rng``; the
bounds, standard deviations and gains are computed exactly as in ``torch.nn.init`` (the draws
themselves come from numpy, so they differ from torch's numbers).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = [
    "calculate_fan_in_and_fan_out", "calculate_gain", "uniform", "normal", "zeros",
    "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal",
]

_LINEAR_FNS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
               "conv_transpose3d", "sigmoid")


def _check_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"shape: expected a tuple of ints, got {shape!r}") from None
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0
               for d in dims):
        raise ValueError(f"shape: expected non-negative ints, got {shape!r}")
    return tuple(int(d) for d in dims)


def _check_rng(rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy Generator (np.random.default_rng(seed)), "
                         f"got {type(rng).__name__}")


def calculate_fan_in_and_fan_out(shape: Sequence[int]) -> tuple[int, int]:
    """Fan-in and fan-out of a weight of ``shape``, as torch's ``_calculate_fan_in_and_fan_out``.

    For ``shape = (F, C, *kernel)``: receptive field r = prod(kernel) (1 for a (D_out, D_in)
    matrix), fan_in = C * r, fan_out = F * r.

    Raises:
        ValueError: for a shape with fewer than 2 dimensions (a bias has no fan-in) or a zero
            dimension (nothing to scale by).
    """
    dims = _check_shape(shape)
    if len(dims) < 2:
        raise ValueError(f"shape: fan-in and fan-out need at least 2 dimensions "
                         f"(D_out, D_in, ...), got {dims}")
    if 0 in dims:
        raise ValueError(f"shape: every dimension must be positive to compute fans, got {dims}")
    receptive_field = math.prod(dims[2:])
    return dims[1] * receptive_field, dims[0] * receptive_field


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for ``nonlinearity``, as ``torch.nn.init.calculate_gain``.

    linear, conv*, sigmoid: 1;  tanh: 5/3;  relu: sqrt(2);  selu: 3/4;
    leaky_relu: sqrt(2 / (1 + a^2)) with a = ``param`` (default 0.01).
    """
    if nonlinearity in _LINEAR_FNS:
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            negative_slope = param
        else:
            raise ValueError(f"param: expected a number (the negative slope), got {param!r}")
        return math.sqrt(2.0 / (1 + negative_slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"nonlinearity: unsupported {nonlinearity!r}; expected one of "
                     f"{', '.join(_LINEAR_FNS)}, tanh, relu, leaky_relu, selu")


def uniform(shape: Sequence[int], rng: np.random.Generator, a: float = 0.0,
            b: float = 1.0) -> np.ndarray:
    """Draw from U(a, b) (``torch.nn.init.uniform_``). Returns a float64 array of ``shape``."""
    dims = _check_shape(shape)
    _check_rng(rng)
    if not a <= b:
        raise ValueError(f"a, b: expected a <= b, got {a} and {b}")
    return rng.uniform(a, b, dims)


def normal(shape: Sequence[int], rng: np.random.Generator, mean: float = 0.0,
           std: float = 1.0) -> np.ndarray:
    """Draw from N(mean, std^2) (``torch.nn.init.normal_``): a float64 array of ``shape``."""
    dims = _check_shape(shape)
    _check_rng(rng)
    if not std >= 0:
        raise ValueError(f"std: expected >= 0, got {std!r}")
    return rng.normal(mean, std, dims)


def zeros(shape: Sequence[int]) -> np.ndarray:
    """All zeros (``torch.nn.init.zeros_``): the initialisation that never breaks symmetry."""
    return np.zeros(_check_shape(shape))


def xavier_uniform(shape: Sequence[int], rng: np.random.Generator,
                   gain: float = 1.0) -> np.ndarray:
    """Glorot/Xavier uniform: U(-bound, bound), bound = gain * sqrt(6 / (fan_in + fan_out)).

    Computed as torch does: std = gain * sqrt(2 / (fan_in + fan_out)), bound = sqrt(3) * std.
    Matches ``torch.nn.init.xavier_uniform_`` in distribution.
    """
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    _check_rng(rng)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return rng.uniform(-bound, bound, _check_shape(shape))


def xavier_normal(shape: Sequence[int], rng: np.random.Generator,
                  gain: float = 1.0) -> np.ndarray:
    """Glorot/Xavier normal: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)).

    Matches ``torch.nn.init.xavier_normal_`` in distribution.
    """
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    _check_rng(rng)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return rng.normal(0.0, std, _check_shape(shape))


def _kaiming_std(shape, a: float, mode: str, nonlinearity: str) -> float:
    if not isinstance(mode, str) or mode.lower() not in ("fan_in", "fan_out"):
        raise ValueError(f"mode: expected 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    fan = fan_in if mode.lower() == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform(shape: Sequence[int], rng: np.random.Generator, a: float = 0.0,
                    mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> np.ndarray:
    """He/Kaiming uniform: U(-bound, bound), bound = sqrt(3) * gain / sqrt(fan).

    gain = ``calculate_gain(nonlinearity, a)`` (a is the leaky-ReLU slope; a = 0 gives the
    ReLU gain sqrt(2), so bound = sqrt(6 / fan)); fan = fan_in (keeps the forward variance) or
    fan_out (keeps the backward variance), chosen by ``mode``.
    Matches ``torch.nn.init.kaiming_uniform_`` in distribution.
    """
    std = _kaiming_std(shape, a, mode, nonlinearity)
    _check_rng(rng)
    bound = math.sqrt(3.0) * std
    return rng.uniform(-bound, bound, _check_shape(shape))


def kaiming_normal(shape: Sequence[int], rng: np.random.Generator, a: float = 0.0,
                   mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> np.ndarray:
    """He/Kaiming normal: N(0, std^2), std = gain / sqrt(fan) (sqrt(2 / fan_in) for ReLU).

    Keywords as :func:`kaiming_uniform`. Matches ``torch.nn.init.kaiming_normal_`` in
    distribution.
    """
    std = _kaiming_std(shape, a, mode, nonlinearity)
    _check_rng(rng)
    return rng.normal(0.0, std, _check_shape(shape))
