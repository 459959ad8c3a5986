"""The one-line checks that chapter notebooks print: ours against a reference, asserted.

The printed line must be identical on every run (nbval compares it), so the difference is
reported as a power-of-ten bound ("< 1e-15") rather than as its last digits, which may move with
the BLAS library's summation order.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["decade_bound", "assert_close"]


def decade_bound(value: float) -> str:
    """The smallest power of ten above ``value``: ``2.2e-16 -> "< 1e-15"``; 0 -> ``"= 0"``."""
    value = float(value)
    if value == 0.0:
        return "= 0"
    if not math.isfinite(value):
        return f"= {value}"
    exponent = math.floor(math.log10(value)) + 1
    return f"< 1e{exponent}"


def assert_close(ours, reference, *, label: str = "ours vs torch", rtol: float = 1e-10,
                 atol: float = 1e-12, quiet: bool = False) -> None:
    """Print ``label: max |difference| < 1e-NN`` and raise ``AssertionError`` unless close.

    ``ours`` and ``reference`` may be arrays, torch tensors or numbers; they must have the same
    shape. Closeness is ``np.allclose(ours, reference, rtol, atol)``.

    Nothing is returned, so that a notebook cell ending in this call displays only the line.
    """
    if hasattr(reference, "detach"):
        reference = reference.detach().cpu().numpy()
    if hasattr(ours, "detach"):
        ours = ours.detach().cpu().numpy()
    a = np.asarray(ours, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"{label}: shapes differ, {a.shape} vs {b.shape}")
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    if not quiet:
        print(f"{label}: max |difference| {decade_bound(diff)}")
    if not np.allclose(a, b, rtol=rtol, atol=atol):
        raise AssertionError(f"{label}: max |difference| = {diff:.3e} exceeds rtol={rtol}, atol={atol}")
