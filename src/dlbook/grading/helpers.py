"""What an exercise's grader cells use to write hidden tests: references and comparisons.

These run only in the grader's own process, on plain arrays exported from the sandbox; none of
them ever sees a student's function. The references are independent of dlbook's implementations
of the same maths: PyTorch in float64, central differences of a torch-computed loss, and values
worked by hand in the exercise source.

A comparison returns ``True`` when it passes and a one-line diagnostic string when it fails, so
that an OK-format doctest written as ``>>> close(got, want)`` / ``True`` fails with a message
the student can act on ("max |difference| 3.1e-01 at index (2, 3)").
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["case", "close", "equal", "all_of", "tensor", "central_difference", "torch_gradients"]


def case(name: str, test: str | Sequence[str], *, points: float, hint: str | None = None,
         hidden: bool = True, success: str | None = None) -> dict[str, Any]:
    """One OK-format test case (otter's ``suites[0]["cases"]`` entry).

    Args:
        name: what the case checks, as the student will read it in the feedback.
        test: the check as Python source; a list runs its statements in order and the last one
            must be an expression that evaluates to ``True`` (``close``/``equal`` do).
        points: the case's points.
        hint: shown to the student when the case fails (otter's ``failure_message``).
        hidden: hidden cases show only their name, the hint and the diagnostic, not their code.
        success: otter's ``success_message``.
    Returns:
        A dict with the keys otter's ``OKTestFile.from_spec`` reads.
    """
    lines = [test] if isinstance(test, str) else list(test)
    if not lines:
        raise ValueError("test: expected at least one line of Python, got none")
    body = "".join(f">>> {line}\n" for line in lines) + "True\n"
    return {"name": name, "code": body, "hidden": hidden, "locked": False, "points": points,
            "failure_message": hint, "success_message": success}


def _as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _fmt_index(index: tuple) -> str:
    return "(" + ", ".join(str(int(i)) for i in index) + ("," if len(index) == 1 else "") + ")"


def _labelled(check):
    """Let a comparison take ``label=`` and prefix its diagnostic with it ("dw: shape ...")."""
    def wrapper(got: Any, want: Any, *args: Any, label: str | None = None, **kwargs: Any) -> bool | str:
        result = check(got, want, *args, **kwargs)
        return result if result is True or label is None else f"{label}: {result}"

    wrapper.__name__, wrapper.__doc__, wrapper.__wrapped__ = check.__name__, check.__doc__, check
    return wrapper


@_labelled
def close(got: Any, want: Any, *, rtol: float = 1e-10, atol: float = 1e-12) -> bool | str:
    """``True`` if ``got`` has ``want``'s shape and ``np.allclose(got, want, rtol, atol)`` holds.

    Otherwise a diagnostic: the shapes, a non-finite value, or the largest difference and where
    (prefixed by ``label=`` when given). ``got`` is what the student's function returned
    (float64 expected: a float32 result cannot meet float64 tolerances and is reported as such).
    """
    got, want = _as_numpy(got), _as_numpy(want).astype(np.float64)
    if got.shape != want.shape:
        return f"shape {got.shape}, expected {want.shape}"
    if got.dtype.kind == "f" and got.dtype.itemsize < 8:
        return f"dtype {got.dtype}: compute in float64"
    got = got.astype(np.float64)
    bad = ~np.isfinite(got) & np.isfinite(want)
    if bad.any():
        index = np.unravel_index(np.argmax(bad), got.shape) if got.ndim else ()
        return f"non-finite value {got[index]} at index {_fmt_index(index)}, expected {want[index]:.6g}"
    if np.allclose(got, want, rtol=rtol, atol=atol):
        return True
    diff = np.abs(got - want)
    if got.ndim == 0:
        return f"got {float(got):.6g}, expected {float(want):.6g} (difference {float(diff):.2e})"
    index = np.unravel_index(np.argmax(diff), got.shape)
    return (f"max |difference| {float(diff[index]):.2e} at index {_fmt_index(index)}: "
            f"got {float(got[index]):.6g}, expected {float(want[index]):.6g}")


@_labelled
def equal(got: Any, want: Any) -> bool | str:
    """``True`` if ``got`` equals ``want`` exactly (same shape, same values); else a diagnostic."""
    got, want = _as_numpy(got), _as_numpy(want)
    if got.shape != want.shape:
        return f"shape {got.shape}, expected {want.shape}"
    if got.dtype.kind not in "biu" and want.dtype.kind in "biu":
        if not np.all(np.isfinite(got)) or not np.all(got == np.round(got)):
            return f"expected whole numbers, got {got.ravel()[:6].tolist()}"
    if np.array_equal(got, want):
        return True
    if got.ndim == 0:
        return f"got {got.item()!r}, expected {want.item()!r}"
    index = np.unravel_index(np.argmax(got != want), got.shape)
    return (f"first difference at index {_fmt_index(index)}: got {got[index].item()!r}, "
            f"expected {want[index].item()!r}")


def all_of(*results: bool | str) -> bool | str:
    """``True`` if every comparison passed, else the first diagnostic (for multi-part cases)."""
    for result in results:
        if result is not True:
            return result
    return True


def tensor(value: Any, *, requires_grad: bool = False):
    """A float64 torch tensor holding a copy of ``value`` (for the torch references)."""
    import torch

    t = torch.tensor(np.asarray(value, dtype=np.float64), dtype=torch.float64)
    return t.requires_grad_(requires_grad)


def central_difference(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of the scalar function ``f`` at ``x``: (f(x+h e_i) - f(x-h e_i)) / 2h.

    ``x`` is copied, never modified. Error O(h^2) + O(eps/h): about 1e-9 relative in float64,
    so compare with ``rtol=1e-6``-ish tolerances, not the 1e-10 used against torch.
    """
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + h
        plus = float(f(x))
        flat[i] = keep - h
        minus = float(f(x))
        flat[i] = keep
        gflat[i] = (plus - minus) / (2.0 * h)
    return grad


def torch_gradients(fn: Callable[..., Any], inputs: dict[str, Any], dout: Any):
    """Run ``fn(**tensors)`` in torch float64 and backpropagate the upstream gradient ``dout``.

    Returns ``(out, grads)`` as numpy arrays, ``grads[name]`` for every input. The upstream
    gradient is random in the tests (``(out * dout).sum().backward()``): a ones-gradient would
    hide transposes.
    """
    import torch

    tensors = {name: tensor(value, requires_grad=True) for name, value in inputs.items()}
    out = fn(**tensors)
    (out * tensor(dout)).sum().backward()
    return out.detach().numpy(), {name: t.grad.numpy() for name, t in tensors.items()}
