"""The output policy of the chapter notebooks, checked statically on their stored outputs.

A stored output must be reproduced by nbval on any reader's machine, whose CPU picks other BLAS
and ATen kernels than the machine that executed the notebook. So (see ``dlbook.check``):

- a check prints the tolerance it asserted, never the achieved error, nor its power of ten
  (``max |difference| = 0`` on one machine is ``< 1e-16`` on another);
- outputs that do depend on the kernels (long training runs, timings) sit in cells marked
  ``# NBVAL_IGNORE_OUTPUT``, and such cells stay few (at most a quarter of a notebook's code).

This module finds violations of the first rule that can be recognised in the stored text, and
counts ignored cells. nbval under two kernel choices (``tools/nbval-kernels``) is the real test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "chapters").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)

# An achieved floating-point error printed as its decade or as exactly zero, in the forms the
# book's former check helper printed: "max |difference| < 1e-15", "max |difference| = 0",
# "worst relative error < 1e-9". (A claim asserted by the cell reads differently:
# "... < 1e-12" after a label that names the quantity, printed by dlbook.check.assert_below.)
ACHIEVED_ERROR = re.compile(
    r"(?:\|difference\||relative error)\s*(?:[:=]\s*)?(?:<\s*1e-\d+|=\s*0(?:\.0*)?(?![.\d]))",
    re.IGNORECASE)
IGNORE_MARK = re.compile(r"#\s*NBVAL_(?:IGNORE_OUTPUT|SKIP)")
MAX_IGNORED_SHARE = 0.25


def stored_text(cell: dict) -> str:
    """The text nbval compares for a code cell: its streams and text/plain results."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append("".join(out.get("text", "")))
        elif "text/plain" in out.get("data", {}):
            parts.append("".join(out["data"]["text/plain"]))
    return "\n".join(parts)


def policy_violations(nb: dict) -> list[str]:
    """Lines of checked (not ignored) code cells that print an achieved error or its decade."""
    found = []
    code = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    for index, cell in enumerate(code):
        if IGNORE_MARK.search("".join(cell.get("source", ""))):
            continue
        for line in stored_text(cell).splitlines():
            if ACHIEVED_ERROR.search(line):
                found.append(f"code cell {index}: {line.strip()}")
    return found


def ignored_share(nb: dict) -> float:
    code = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    ignored = sum(bool(IGNORE_MARK.search("".join(c.get("source", "")))) for c in code)
    return ignored / len(code) if code else 0.0


def _notebook(*outputs: str, source: str = "print()") -> dict:
    return {"cells": [{"cell_type": "code", "source": source,
                       "outputs": [{"output_type": "stream", "name": "stdout", "text": text}]}
                      for text in outputs]}


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 20


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT / "chapters")))
def test_no_stored_output_prints_an_achieved_error(path):
    violations = policy_violations(json.loads(path.read_text(encoding="utf-8")))
    assert not violations, "print the asserted tolerance instead (dlbook.check):\n" + "\n".join(violations)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT / "chapters")))
def test_ignored_outputs_stay_rare(path):
    assert ignored_share(json.loads(path.read_text(encoding="utf-8"))) <= MAX_IGNORED_SHARE


def test_the_policy_check_can_fail():
    bad = ["ours vs torch: max |difference| < 1e-15\n", "dx vs autograd: max |difference| = 0\n",
           "central differences: worst relative error < 1e-9\n", "relative error = 0.0\n",
           "a: 1\nweights, dlbook vs torch: max |difference| < 1e-14\nb: 2\n"]
    for text in bad:
        assert policy_violations(_notebook(text)), text
    # The same text in an ignored cell is allowed; ignored cells are counted instead.
    assert not policy_violations(_notebook(bad[0], source="# NBVAL_IGNORE_OUTPUT\nprint()"))
    assert ignored_share(_notebook("a", "b", "c", source="# NBVAL_IGNORE_OUTPUT")) == 1.0
    good = ["dW vs torch.autograd: close (rtol 1e-10, atol 1e-12)\n",
            "x, w, b: agree with central differences (rtol 1e-6, atol 1e-8)\n",
            "max |second difference| of the linear stack < 1e-12\n",  # asserted, stated as a claim
            "degree 11: training error < 1e-20\n", "errors at the end of each epoch: [2, 6, 0, 0]\n",
            "max |difference| 1.2e-03 exceeds the tolerance\n", "relative error 8.35e-01\n"]
    for text in good:
        assert not policy_violations(_notebook(text)), text
