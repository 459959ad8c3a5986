"""Benchmark ``dlbook grade``: seconds per submission, and the speed-up of ``--jobs 2``.

Grades the same 20 submissions (solutions, untouched student notebooks and notebooks with a
seeded bug, a realistic mix) with 1 and then 2 jobs, and prints a table:

    .venv/bin/python benchmarks/bench_grader.py [--exercise ch3-conv2d] [--submissions 20] [--repeat 1]

Each setting is timed from the first sandbox to the last gradebook write, after a warm-up batch
(imports of torch and otter happen once per grader process and are not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def make_submissions(exercise, folder: Path, count: int) -> None:
    from test_exercises import SEEDED_BUGS  # the same seeded bugs the tests use

    solution = json.loads(exercise.solution_path.read_text(encoding="utf-8"))
    student = exercise.student_path.read_text(encoding="utf-8")
    bugs = list(SEEDED_BUGS[exercise.id].values())
    for i in range(count):
        path = folder / f"student{i:02d}.ipynb"
        if i % 4 == 3:
            path.write_text(student, encoding="utf-8")
        elif i % 4 == 2:
            old, new = bugs[i % len(bugs)]
            nb = json.loads(json.dumps(solution))
            for cell in nb["cells"]:
                cell["source"] = "".join(cell["source"]).replace(old, new)
            path.write_text(json.dumps(nb), encoding="utf-8")
        else:
            path.write_text(json.dumps(solution), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exercise", default="ch3-conv2d")
    parser.add_argument("--submissions", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=1, help="batches per setting (the median is shown)")
    args = parser.parse_args()

    import otter.test_files  # noqa: F401  warm the grader's own imports
    import torch  # noqa: F401

    from dlbook.grading import Limits, detect_isolation, grade_batch, load_exercise

    exercise = load_exercise(ROOT / "exercises" / args.exercise)
    limits = Limits(timeout=60)
    with tempfile.TemporaryDirectory(prefix="bench-grader-") as tmp:
        subs = Path(tmp) / "subs"
        subs.mkdir()
        make_submissions(exercise, subs, args.submissions)
        warm = Path(tmp) / "warm"
        warm.mkdir()
        (warm / "w.ipynb").write_bytes(exercise.solution_path.read_bytes())
        grade_batch(exercise, [warm], Path(tmp) / "warm-out", limits=limits, trusted=True)
        results = {}
        for jobs in (1, 2):
            walls, per_row = [], []
            for r in range(args.repeat):
                start = time.perf_counter()
                rows = grade_batch(exercise, [subs], Path(tmp) / f"out-{jobs}-{r}", limits=limits,
                                   jobs=jobs, trusted=True)  # the book's own notebooks
                walls.append(time.perf_counter() - start)
                per_row += [row.seconds for row in rows]
            results[jobs] = (statistics.median(walls), statistics.mean(per_row), rows)
    scores = sorted({(row.status, row.score) for row in results[1][2]})
    print(f"exercise {exercise.id} ({exercise.max_score:g} points), {args.submissions} submissions, "
          f"isolation {detect_isolation()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    print(f"(status, score) seen: {scores}")
    print()
    print("| jobs | wall clock (s) | s per submission (wall / n) | mean per-row seconds | speed-up |")
    print("|-----:|---------------:|----------------------------:|---------------------:|---------:|")
    base = results[1][0]
    for jobs, (wall, mean_row, _) in results.items():
        print(f"| {jobs} | {wall:.2f} | {wall / args.submissions:.3f} | {mean_row:.3f} | {base / wall:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
