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
from dlbook.check import tolerance_text

__all__ = ["numerical_gradient", "numerical_jacobian", "relative_error", "check_gradients",
           "check_module_gradients", "GradientCheckError", "GradCheckResult", "passed_line"]


def _check_perturbable(x, h: float) -> None:
    """Central differences perturb ``x`` in place, in float64, by a positive step ``h``."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        raise ValueError(f"x: expected a float64 ndarray (it is perturbed in place), got "
                         f"{type(x).__name__} of dtype {getattr(x, 'dtype', None)}")
    if h <= 0:
        raise ValueError(f"h: expected a positive step, got {h}")


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
    _check_perturbable(x, h)
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
    rtol: float = 1e-6
    atol: float = 1e-8

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
        results[name] = _compare(name, grad, numeric, rtol, atol)
    return results


def _compare(name: str, grad: np.ndarray, numeric: np.ndarray, rtol: float, atol: float) -> GradCheckResult:
    """The worst element of ``grad`` vs ``numeric``; raise :class:`GradientCheckError` if any is off."""
    rel = relative_error(grad, numeric)
    diff = np.abs(grad - numeric)
    if rel.size == 0:
        return GradCheckResult(name, (), 0.0, 0.0, 0.0, 0.0, rtol, atol)
    worst = np.unravel_index(int(np.argmax(rel)), rel.shape)
    result = GradCheckResult(name, tuple(int(i) for i in worst), float(grad[worst]), float(numeric[worst]),
                             float(rel[worst]), float(diff.max()), rtol, atol)
    bad = diff > atol + rtol * np.maximum(np.abs(grad), np.abs(numeric))
    if np.any(bad):
        first = np.unravel_index(int(np.argmax(np.where(bad, rel, -1.0))), rel.shape)
        raise GradientCheckError(
            f"gradient check failed for {name!r} at index {tuple(int(i) for i in first)}: "
            f"analytic {grad[first]:.8e}, numeric {numeric[first]:.8e}, "
            f"relative error {rel[first]:.2e} (rtol={rtol}, atol={atol}); "
            f"{int(bad.sum())} of {bad.size} elements disagree")
    return result


def passed_line(results: Mapping[str, GradCheckResult]) -> str:
    """The line a notebook prints after a gradient check passed: what was checked and at what tolerance.

    ``"x, w, b: agree with central differences (rtol 1e-6, atol 1e-8)"``. It states the asserted
    tolerance, not the achieved error, whose last digits depend on the machine (see
    :mod:`dlbook.check`). ``results`` is what :func:`check_gradients` or
    :func:`check_module_gradients` returned (they raise when a check fails).
    """
    if not results:
        raise ValueError("results: nothing was checked")
    tolerances = {(r.rtol, r.atol) for r in results.values()}
    if len(tolerances) != 1:
        raise ValueError(f"results: checked at different tolerances {sorted(tolerances)}")
    (rtol, atol), = tolerances
    return f"{', '.join(results)}: agree with central differences ({tolerance_text(rtol, atol)})"


def numerical_jacobian(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, h: float = 1e-5,
                       order: str = "C") -> np.ndarray:
    """Central-difference Jacobian d vec(f(x)) / d vec(x)^T.

    Row r, column c holds d vec(f(x))_r / d vec(x)_c, where ``vec`` flattens in ``order``:
    ``"C"`` (row-major, numpy's and torch's ``reshape(-1)``) or ``"F"`` (column-major, the
    ``vec()`` of matrix calculus texts, Wei 2017, appendix A).

    Args:
        f: function of ``x`` returning an array; called 2 * x.size times.
        x: float64 array (perturbed in place one element at a time, then restored).
    Returns:
        (f(x).size, x.size) array. With ``order="C"`` this matches
        ``torch.autograd.functional.jacobian(f, x).reshape(out.numel(), x.numel())``.
    """
    if order not in ("C", "F"):
        raise ValueError(f"order: expected 'C' or 'F', got {order!r}")
    _check_perturbable(x, h)
    out_size = np.asarray(f(x)).size
    jac = np.zeros((out_size, x.size))
    # Column c of the Jacobian perturbs the c-th element of vec(x).
    for c, idx in enumerate(np.ndindex(*x.shape) if order == "C" else
                            (tuple(reversed(t)) for t in np.ndindex(*reversed(x.shape)))):
        old = x[idx]
        x[idx] = old + h
        plus = np.asarray(f(x), dtype=np.float64).ravel(order=order)
        x[idx] = old - h
        minus = np.asarray(f(x), dtype=np.float64).ravel(order=order)
        x[idx] = old
        jac[:, c] = (plus - minus) / (2 * h)
    return jac


def _named_modules(module, prefix: str = ""):
    """Yield ``(prefix, module)`` for a module and its children, children named by their index."""
    yield prefix, module
    for i, child in enumerate(module.children()):
        yield from _named_modules(child, f"{prefix}{i}.")


def check_module_gradients(module, x: np.ndarray, dout: np.ndarray | None = None, *,
                           h: float = 1e-5, rtol: float = 1e-6, atol: float = 1e-8,
                           check_input: bool = True) -> dict[str, GradCheckResult]:
    """Check a layer's (or a container's) ``backward`` against central differences.

    Runs ``out = module.forward(x)`` and ``dx = module.backward(dout)``, then perturbs every
    parameter array ``m.params[key]`` of every module ``m`` inside ``module`` (in place, one
    element at a time, restored afterwards) and compares d sum(out * dout) / d param with
    ``m.grads[key]``; with ``check_input`` also ``dx`` with the numerical input gradient.

    The forward pass must be deterministic: put layers such as dropout in evaluation mode
    first. Parameters are named ``"<child index>.<key>"`` recursively (``"w"`` for a plain
    layer, ``"0.w"``, ``"2.b"`` for layers of a :class:`~dlbook.sequential.Sequential`); the
    input is named ``"x"``.

    Args:
        module: a :class:`~dlbook.module.Module` with float64 parameters.
        x: its input; dout: upstream gradient with the output's shape (all ones when None).
    Returns:
        name -> :class:`GradCheckResult` (the worst element of each gradient).
    Raises:
        GradientCheckError: naming the parameter and the index of the first bad element.
        ValueError: if ``dout`` has the wrong shape, or a gradient is missing or misshapen.
    """
    x = as_array(x, "x").astype(np.float64, copy=True)
    out = np.asarray(module.forward(x))
    if dout is None:
        dout = np.ones_like(out)
    dout = as_array(dout, "dout")
    check_shape(dout, out.shape, "dout")
    dx = module.backward(dout)
    analytic: dict[str, np.ndarray] = {}
    targets: dict[str, np.ndarray] = {}
    for prefix, m in _named_modules(module):
        for key, param in m.params.items():
            name = f"{prefix}{key}"
            if not isinstance(param, np.ndarray) or param.dtype != np.float64:
                raise ValueError(f"params[{name!r}]: expected a float64 ndarray, got dtype "
                                 f"{getattr(param, 'dtype', None)}")
            grad = m.grads.get(key)
            if grad is None:
                raise ValueError(f"grads[{name!r}]: missing after backward")
            grad = as_array(grad, f"grads[{name!r}]").astype(np.float64)
            check_shape(grad, param.shape, f"grads[{name!r}]")
            analytic[name] = grad.copy()
            targets[name] = param
    results: dict[str, GradCheckResult] = {}
    if check_input:
        dx = as_array(dx, "dx (returned by backward)")
        check_shape(dx, x.shape, "dx (returned by backward)")
        numeric = numerical_gradient(lambda _x: module.forward(x), x, dout, h)
        results["x"] = _compare("x", dx, numeric, rtol, atol)
    for name, param in targets.items():
        numeric = numerical_gradient(lambda _p: module.forward(x), param, dout, h)
        results[name] = _compare(name, analytic[name], numeric, rtol, atol)
    module.forward(x)  # leave the caches as the unperturbed forward pass made them
    return results
