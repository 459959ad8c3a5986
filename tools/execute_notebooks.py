#!/usr/bin/env python3
"""Execute chapter notebooks in place so their stored outputs are current.

Usage: python tools/execute_notebooks.py [PATH ...]   (files or folders; default: chapters)

Each notebook runs in its own folder with the python3 kernel of the running interpreter, with
timing metadata off, so that re-executing an unchanged notebook leaves the file unchanged
except for genuinely variable outputs (the ones nbval is told to ignore).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def notebooks(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths or ["chapters"]):
        if p.is_dir():
            found += sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
        elif p.suffix == ".ipynb":
            found.append(p)
        else:
            raise SystemExit(f"not a notebook or folder: {p}")
    return found


def merge_streams(outputs: list) -> list:
    """Join consecutive stdout (or stderr) chunks, which the kernel splits differently on every run.

    Without this, re-executing an unchanged notebook changes the file even though its text does not.
    """
    merged: list = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if (out.get("output_type") == "stream" and prev is not None
                and prev.get("output_type") == "stream" and prev.get("name") == out.get("name")):
            prev["text"] = "".join(prev["text"]) + "".join(out["text"])
        else:
            merged.append(out)
    return merged


IGNORE_MARK = "NBVAL_IGNORE_OUTPUT"


def _as_terminal_shows(text: str) -> str:
    """Resolve carriage returns as a terminal would: each line keeps its last redrawn state."""
    lines = []
    for line in text.split("\n"):
        segments = [seg for seg in line.split("\r") if seg]
        lines.append(segments[-1] if segments else "")
    return "\n".join(lines)


def tidy_variable_output(outputs: list) -> list:
    """In cells whose output nbval ignores: show a progress bar's final state, drop blank streams.

    A text progress bar stores every redraw separated by carriage returns, and closing it writes
    a lone newline; the HTML page would show the redraws as separate lines and an empty box.
    Only cells marked NBVAL_IGNORE_OUTPUT are touched, so nbval's comparison is unaffected.
    """
    tidy = []
    for out in outputs:
        if out.get("output_type") == "stream":
            text = _as_terminal_shows("".join(out["text"]))
            if not text.strip():
                continue
            out["text"] = text
        tidy.append(out)
    return tidy


def execute(path: Path, timeout: int = 600) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    nb.metadata.pop("widgets", None)
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = KERNELSPEC
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = merge_streams(cell.outputs)
            if IGNORE_MARK in cell.source:
                cell.outputs = tidy_variable_output(cell.outputs)
    nbformat.write(nb, path)
    return seconds


def main(argv: list[str]) -> int:
    paths = notebooks(argv)
    for path in paths:
        print(f"{path}: ", end="", flush=True)
        print(f"{execute(path):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
