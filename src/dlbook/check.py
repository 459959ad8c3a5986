"""The one-line checks that chapter notebooks print: ours against a reference, asserted.

The output policy of the book: a stored output must be reproduced by ``pytest --nbval`` on any
reader's machine, whose CPU picks other BLAS and ATen kernels than ours and so other last bits
of every floating-point sum. A check therefore prints **what it asserts** (the tolerance),
never the error it achieved, nor that error's power of ten: ``max |difference| = 0`` on one
machine is ``< 1e-16`` on another. When the assertion fails, the error message gives the
achieved difference, since then the exact number is what a reader needs.

    >>> assert_close(dw, dw_torch, label="dW vs torch.autograd")
    dW vs torch.autograd: close (rtol 1e-10, atol 1e-12)
    >>> assert_below(residual, 1e-12, label="max |residual|")
    max |residual| < 1e-12
"""

from __future__ import annotations

import numpy as np

__all__ = ["assert_close", "assert_all_close", "assert_below", "tolerance_text"]


def _numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor; no torch import needed here
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def tolerance_text(rtol: float, atol: float) -> str:
    """The tolerance as a check line prints it: ``"rtol 1e-10, atol 1e-12"``."""
    return f"rtol {_number(rtol)}, atol {_number(atol)}"


def _number(x: float) -> str:
    """A tolerance as people write it: 1e-6, not 1e-06."""
    return f"{x:g}".replace("e-0", "e-").replace("e+0", "e+")


def assert_close(ours, reference, *, label: str = "ours vs torch", rtol: float = 1e-10,
                 atol: float = 1e-12, quiet: bool = False) -> None:
    """Raise ``AssertionError`` unless close, then print ``label: close (rtol .., atol ..)``.

    Closeness is ``np.allclose(ours, reference, rtol, atol)``, elementwise
    ``|ours - reference| <= atol + rtol * |reference|``. ``ours`` and ``reference`` may be
    arrays, torch tensors or numbers; they must have the same shape.

    The printed line states the tolerance that was asserted, so it is the same on every
    machine; the achieved difference appears only in the error message of a failure.
    Nothing is returned, so that a notebook cell ending in this call displays only the line.
    """
    a, b = _numpy(ours), _numpy(reference)
    if a.shape != b.shape:
        raise AssertionError(f"{label}: shapes differ, {a.shape} vs {b.shape}")
    if not np.allclose(a, b, rtol=rtol, atol=atol):
        a, b = np.atleast_1d(a), np.atleast_1d(b)
        diff = np.abs(a - b)
        diff[np.isnan(diff)] = np.inf  # a NaN on either side is the worst element
        worst = np.unravel_index(int(np.argmax(diff)), a.shape)
        raise AssertionError(f"{label}: not close ({tolerance_text(rtol, atol)}): max |difference| "
                             f"{diff[worst]:.3e} at index {tuple(int(i) for i in worst)}: "
                             f"{a[worst]!r} vs {b[worst]!r}")
    if not quiet:
        print(f"{label}: close ({tolerance_text(rtol, atol)})")


def assert_all_close(pairs, *, label: str, rtol: float = 1e-10, atol: float = 1e-12) -> None:
    """Check a group of arrays at once and print one line: ``dx, dw, db: label, close (rtol .., atol ..)``.

    ``pairs`` maps a name to ``(ours, reference)``; each pair is checked as by
    :func:`assert_close`, and the first that fails raises with its name.
    """
    if not pairs:
        raise ValueError("pairs: nothing to check")
    for name, (ours, reference) in pairs.items():
        assert_close(ours, reference, label=f"{name}: {label}", rtol=rtol, atol=atol, quiet=True)
    print(f"{', '.join(pairs)}: {label}, close ({tolerance_text(rtol, atol)})")


def assert_below(value, bound: float, *, label: str, quiet: bool = False) -> None:
    """Raise ``AssertionError`` unless every element of ``value`` is below ``bound``; print it.

    For a quantity that should be negligible (a residual, a relative error, a second
    difference): the line printed is ``label < bound``, the claim asserted, never the value.
    """
    v = _numpy(value)
    if v.size == 0 or not np.all(v < bound):
        worst = float(np.max(v)) if v.size else float("nan")
        raise AssertionError(f"{label}: expected < {_number(bound)}, got {worst:.3e}")
    if not quiet:
        print(f"{label} < {_number(bound)}")
