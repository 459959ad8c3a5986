"""Numerical gradients by central differences, and a checker that compares them with analytic ones.

For a function f with array output and an upstream gradient G (``dout``), the gradient of the
scalar L = sum(f(x) * G) with respect to each element x_i is estimated by

    dL/dx_i ~ (L(x + h e_i) - L(x - h e_i)) / (2 h),

whose error is O(h^2). In float64 with h = 1e-5 the truncation error (~h^2) and the rounding
error (~1e-16 / h) balance near 1e-10, which is why every check here runs in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from dlbook._validate import as_array, check_shape

__all__ = ["numerical_gradient", "relative_error", "check_gradients", "GradientCheckError", "GradCheckResult"]


def numerical_gradient(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                       dout: np.ndarray | None = None, h: float = 1e-5) -> np.ndarray:
    """Central-difference estimate of d sum(f(x) * dout) / dx.

    Args:
        f: function of ``x`` returning an array (or a scalar). It is called 2 * x.size times
            with ``x`` perturbed in place, one element at a time; ``x`` is restored afterwards.
            A closure that reads ``x`` through another name (``lambda _: layer(x, w)``) works too.
        x: float64 array to differentiate with respect to (modified temporarily, then restored).
        dout: upstream gradient with the shape of ``f(x)``; None means all ones (f scalar-valued
            or summed).
        h: step size.
    Returns:
        Array with the shape of ``x``.
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        raise ValueError(f"x: expected a float64 ndarray (it is perturbed in place), got "
                         f"{type(x).__name__} of dtype {getattr(x, 'dtype', None)}")
    if h <= 0:
        raise ValueError(f"h: expected a positive step, got {h}")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    weight = None if dout is None else as_array(dout, "dout")
    while not it.finished:
        idx = it.multi_index
        old = x[idx]
        x[idx] = old + h
        plus = np.asarray(f(x), dtype=np.float64)
        x[idx] = old - h
        minus = np.asarray(f(x), dtype=np.float64)
        x[idx] = old
        if weight is None:
            grad[idx] = (np.sum(plus) - np.sum(minus)) / (2 * h)
        else:
            check_shape(weight, plus.shape, "dout")
            grad[idx] = np.sum((plus - minus) * weight) / (2 * h)
        it.iternext()
    return grad


def relative_error(a: np.ndarray, b: np.ndarray, floor: float = 1e-8) -> np.ndarray:
    """Element-wise |a - b| / max(|a| + |b|, floor): 0 means equal, 1 means unrelated."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), floor)


class GradientCheckError(AssertionError):
    """Raised by :func:`check_gradients` when an analytic gradient disagrees with the numeric one."""


@dataclass(frozen=True)
class GradCheckResult:
    """The worst element of one checked gradient."""

    name: str
    index: tuple
    analytic: float
    numeric: float
    rel_error: float
    abs_error: float

    def __str__(self) -> str:
        return (f"d{self.name}{list(self.index)}: analytic {self.analytic:.6e}, numeric {self.numeric:.6e}, "
                f"rel. error {self.rel_error:.1e}")


def check_gradients(f: Callable[..., np.ndarray], inputs: Mapping[str, np.ndarray],
                    analytic: Mapping[str, np.ndarray], dout: np.ndarray | None = None, *,
                    h: float = 1e-5, rtol: float = 1e-6, atol: float = 1e-8) -> dict[str, GradCheckResult]:
    """Compare analytic gradients with central differences and raise on the first disagreement.

    ``f`` is called as ``f(**inputs)`` (on copies: the caller's arrays are never touched); its
    output is weighted by ``dout`` (all ones when None). An element passes when
    |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|), the form of ``np.isclose``.

    Args:
        f: the function whose gradients were derived.
        inputs: name -> float64 array, every argument of ``f``.
        analytic: name -> gradient, for the inputs to check (a subset of ``inputs``).
        dout: upstream gradient with the shape of ``f(**inputs)``.
    Returns:
        name -> :class:`GradCheckResult` describing the worst element of each gradient.
    Raises:
        GradientCheckError: naming the argument, the index, both values and the relative error.
        ValueError: if a name in ``analytic`` is not an input, or shapes differ.
    """
    copies = {k: np.array(v, dtype=np.float64, copy=True) for k, v in inputs.items()}
    results: dict[str, GradCheckResult] = {}
    for name, grad in analytic.items():
        if name not in copies:
            raise ValueError(f"analytic: {name!r} is not one of the inputs {sorted(copies)}")
        grad = as_array(grad, f"analytic[{name!r}]").astype(np.float64)
        check_shape(grad, copies[name].shape, f"analytic[{name!r}]")
        numeric = numerical_gradient(lambda _x: f(**copies), copies[name], dout, h)
        rel = relative_error(grad, numeric)
        diff = np.abs(grad - numeric)
        worst = np.unravel_index(int(np.argmax(rel)), rel.shape) if rel.size else ()
        results[name] = GradCheckResult(
            name, tuple(int(i) for i in worst),
            float(grad[worst]) if rel.size else 0.0, float(numeric[worst]) if rel.size else 0.0,
            float(rel[worst]) if rel.size else 0.0, float(diff.max()) if rel.size else 0.0)
        bad = diff > atol + rtol * np.maximum(np.abs(grad), np.abs(numeric))
        if np.any(bad):
            first = np.unravel_index(int(np.argmax(np.where(bad, rel, -1.0))), rel.shape)
            raise GradientCheckError(
                f"gradient check failed for {name!r} at index {tuple(int(i) for i in first)}: "
                f"analytic {grad[first]:.8e}, numeric {numeric[first]:.8e}, "
                f"relative error {rel[first]:.2e} (rtol={rtol}, atol={atol}); "
                f"{int(bad.sum())} of {bad.size} elements disagree")
    return results
