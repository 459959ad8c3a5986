"""Shared fixtures and helpers: seeded generators and the torch oracle in float64."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_default_dtype(torch.float64)

# Tight float64 tolerances (STYLE.md, rule 7).
TIGHT = dict(rtol=1e-10, atol=1e-12)


@pytest.fixture
def rng() -> np.random.Generator:
    """A freshly seeded generator per test, so tests do not depend on their order."""
    torch.manual_seed(0)
    return np.random.default_rng(0)


def torch_forward_backward(fn, inputs: dict[str, np.ndarray], dout: np.ndarray | None):
    """Run ``fn(**tensors)`` in torch float64 and backpropagate ``dout``.

    Returns ``(out, grads)`` as numpy arrays; ``grads[name]`` is None for integer inputs.
    The upstream gradient is random in the tests: a ones-gradient hides transposes.
    """
    tensors = {}
    for name, value in inputs.items():
        t = torch.from_numpy(np.asarray(value))
        if t.is_floating_point():
            t = t.clone().requires_grad_(True)
        tensors[name] = t
    out = fn(**tensors)
    if dout is None:
        out.backward()
    else:
        (out * torch.from_numpy(np.asarray(dout))).sum().backward()
    grads = {k: (t.grad.numpy() if t.is_floating_point() else None) for k, t in tensors.items()}
    return out.detach().numpy(), grads


EXERCISES = Path(__file__).resolve().parents[1] / "exercises"


def exercise_notebook(exercise: str, kind: str) -> dict:
    """An exercise's notebook as a dict: ``kind`` "solution" or "student"."""
    name = "solution.ipynb" if kind == "solution" else f"{exercise}.ipynb"
    return json.loads((EXERCISES / exercise / name).read_text(encoding="utf-8"))


def with_cell(nb: dict, source: str, *, after: str | None = None) -> dict:
    """A copy of ``nb`` with a code cell at the top, or after the first cell holding ``after``."""
    nb = json.loads(json.dumps(nb))
    index = 0
    if after is not None:
        index = next(i for i, c in enumerate(nb["cells"]) if after in "".join(c["source"])) + 1
    nb["cells"].insert(index, {"cell_type": "code", "execution_count": None, "id": f"added-{index}",
                               "metadata": {}, "outputs": [], "source": source})
    return nb
