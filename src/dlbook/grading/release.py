"""What students get: the student notebooks and a README, and nothing else.

``dlbook exercises --release DIR`` calls :func:`release`. The folder holds one sub-folder per
exercise with its student notebook (generated from the source, exactly the committed
``<id>.ipynb``) and a ``README.md`` saying how to work and how to hand in. It never holds a
solution, an exercise source, hidden inputs or tests, or a key: those stay with the instructor.
"""

from __future__ import annotations

import os
from pathlib import Path

from dlbook.grading.exercise import Exercise

__all__ = ["release", "RELEASE_README"]

RELEASE_README = """\
# Exercises

One folder per exercise, each with one notebook:

{table}

## How to work

1. Open the notebook in Jupyter (it needs Python, numpy and Jupyter only: not PyTorch, not
   otter, not dlbook). Read each question, then replace every `# YOUR CODE HERE` /
   `raise NotImplementedError` with your code. Keep the function names and signatures: the
   grader calls them.
2. Run the whole notebook from the top (*Kernel -> Restart & Run All*). Each question has a
   self-check cell that ends with `... self-checks passed`; an `AssertionError` says what is
   wrong.
3. The self-checks are a subset. The grader calls your functions on other, hidden inputs (other
   shapes, other values), compares them with PyTorch in float64 at tolerances around 1e-10 and
   with central differences. Compute in float64, handle every shape the docstring allows, and
   make your functions depend on their arguments only (no globals from other cells, no files).
   Use numpy only: the grader's sandbox has no PyTorch.

## How to hand in

Hand in the `.ipynb` file itself, under its own name (for example `{example}.ipynb`), the way
your instructor says (a course site upload, a shared folder). Hand in the notebook as it is
on disk after you saved it: not a link, a zip or a PDF. The grader runs every code cell top to
bottom in a fresh process with a time limit (60 s by default) and a memory limit, so a
notebook that runs from a clean start is what counts; outputs stored in it are ignored.

## Your feedback

You get a score per question and, per hidden test, whether it passed and, when it failed, a
hint and a one-line diagnostic ("max |difference| 3.1e-01 at index (2, 3): got ..., expected
..."), plus notes on cells that raised.
"""


def release(exercises: list[Exercise], folder: str | Path) -> list[Path]:
    """Write the student release of ``exercises`` into ``folder`` (which must be new or empty).

    Returns the files written: ``README.md`` and ``<id>/<id>.ipynb`` per exercise.
    """
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise FileExistsError(f"release: {folder} exists and is not an empty folder")
    for exercise in exercises:
        if folder.resolve() == exercise.directory or exercise.directory in folder.resolve().parents:
            raise ValueError(f"release: {folder} is inside the exercise sources "
                             f"({exercise.directory})")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    rows = ["| exercise | chapter | notebook | points |", "|---|---|---|---|"]
    for exercise in sorted(exercises, key=lambda e: (e.chapter, e.id)):
        target = folder / exercise.id / f"{exercise.id}.ipynb"
        target.parent.mkdir()
        target.write_text(exercise.notebook(solution=False), encoding="utf-8")
        written.append(target)
        notebook = f"`{exercise.id}/{exercise.id}.ipynb`"
        points = f"{exercise.max_score:g}"
        rows.append(f"| {exercise.title} | {exercise.chapter} | {notebook} | {points} |")
    example = exercises[0].id if exercises else "ch1-perceptron"
    readme = folder / "README.md"
    text = RELEASE_README.format(table="\n".join(rows), example=example)
    readme.write_text(text, encoding="utf-8")
    written.append(readme)
    for path in written:
        os.chmod(path, 0o644)
    return sorted(written)
