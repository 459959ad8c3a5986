"""``dlbook grade`` and ``dlbook exercises``: the argparse side (imports stay lazy: ``dlbook info``
must not pay for torch and otter)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_grading_commands"]


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def cmd_grade(args: argparse.Namespace) -> int:
    """Grade submissions; print one line per submission and where the gradebook is."""
    from dlbook.grading.batch import UntrustedIsolation, collect_submissions, grade_batch
    from dlbook.grading.exercise import ExerciseError, load_exercise, read_secret
    from dlbook.grading.sandbox import Limits, detect_isolation, isolation_problem

    try:
        secret = read_secret(secret=args.secret, secret_file=args.secret_file)
        exercise = load_exercise(args.exercise, secret=secret)
        paths = collect_submissions(args.submissions)
    except (ExerciseError, FileNotFoundError) as exc:
        print(f"dlbook grade: {exc}", file=sys.stderr)
        return 2
    if not paths:
        print("dlbook grade: no .ipynb files among the submissions given", file=sys.stderr)
        return 2
    limits = Limits(timeout=args.timeout, memory_mb=args.memory_mb, output_kb=args.output_kb)
    isolation = detect_isolation() if args.isolation == "auto" else args.isolation
    if isolation == "namespaces" and args.isolation == "namespaces" and isolation_problem():
        print(f"dlbook grade: --isolation namespaces is not available here: {isolation_problem()}",
              file=sys.stderr)
        return 2
    if isolation == "process" and not args.trusted:
        why = isolation_problem() if args.isolation == "auto" else "--isolation process was asked for"
        print("dlbook grade: refusing to grade: submissions would run as a plain process with your "
              f"user's rights ({why}). Grade inside a container, or pass --trusted for code you "
              "trust.", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"grading {len(paths)} submission(s) of {exercise.id} ({exercise.max_score:g} points), "
              f"{args.jobs} at a time, isolation: {isolation}", file=sys.stderr)
        if not exercise.keyed:
            print("hidden inputs: the public defaults (no key: fine for practice; for marks, give "
                  "--secret-file or $DLBOOK_GRADING_SECRET)", file=sys.stderr)

    def progress(row, done, total):
        if not args.quiet:
            print(f"[{done}/{total}] {row.submission}: {row.score:g}/{row.max_score:g} {row.status} "
                  f"({row.seconds:.1f} s)", file=sys.stderr)

    try:
        grade_batch(exercise, paths, args.out, limits=limits, jobs=args.jobs, isolation=isolation,
                    trusted=args.trusted, progress=progress)
    except UntrustedIsolation as exc:
        print(f"dlbook grade: {exc}", file=sys.stderr)
        return 2
    print(Path(args.out) / "gradebook.csv")
    return 0


def cmd_exercises(args: argparse.Namespace) -> int:
    """List exercises with their questions and points; optionally regenerate or check notebooks."""
    from dlbook.grading.exercise import list_exercises, load_exercise, write_notebooks

    exercises = [load_exercise(e) for e in args.ids] if args.ids else list_exercises()
    if not exercises:
        print("no exercises found (run from a checkout of the book, or pass exercise folders)", file=sys.stderr)
        return 1
    if args.release is not None:
        from dlbook.grading.release import release

        try:
            written = release(exercises, args.release)
        except (FileExistsError, ValueError) as exc:
            print(f"dlbook exercises: {exc}", file=sys.stderr)
            return 2
        for path in written:
            print(path)
        return 0
    stale = []
    for ex in exercises:
        questions = ", ".join(f"{q.name} {q.points:g}" for q in ex.questions)
        print(f"{ex.id:<28} ch {ex.chapter}  {ex.max_score:>4g} pts  {ex.title}  [{questions}]")
        if args.write:
            write_notebooks(ex)
        for path, solution in ((ex.student_path, False), (ex.solution_path, True)):
            if not path.is_file() or path.read_text(encoding="utf-8") != ex.notebook(solution=solution):
                stale.append(path)
    print(f"{len(exercises)} exercises, {sum(e.max_score for e in exercises):g} points")
    if args.check and stale:
        for path in stale:
            print(f"out of date: {path} (run `dlbook exercises --write`)", file=sys.stderr)
        return 1
    return 0


def add_grading_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``grade`` and ``exercises`` on the ``dlbook`` parser."""
    grade = sub.add_parser("grade", help="grade exercise submissions into a gradebook",
                           description="Run each submission in a sandbox, check its results with otter, "
                                       "write DIR/gradebook.csv and DIR/<name>.json.")
    grade.add_argument("exercise", help="exercise id (see `dlbook exercises`) or exercise folder")
    grade.add_argument("submissions", nargs="+", metavar="SUBMISSION", help="notebooks or folders of notebooks")
    grade.add_argument("--out", required=True, metavar="DIR", help="where gradebook.csv and the JSON files go")
    grade.add_argument("--timeout", type=_positive_float, default=60.0, metavar="SECONDS",
                       help="wall-clock limit per submission (default 60)")
    grade.add_argument("--memory-mb", type=_positive_int, default=4096, metavar="MB",
                       help="address-space limit per submission (default 4096)")
    grade.add_argument("--jobs", type=_positive_int, default=1, metavar="N", help="submissions graded in parallel")
    grade.add_argument("--output-kb", type=_positive_int, default=64, metavar="KB",
                       help="printed output kept per submission, half from the start, half from the end")
    grade.add_argument("--isolation", choices=("auto", "namespaces", "process"), default="auto",
                       help="sandbox: Linux namespaces when available (auto), or a plain process "
                            "(refused without --trusted)")
    grade.add_argument("--trusted", action="store_true",
                       help="allow a plain process (no namespace sandbox): for code you trust only")
    grade.add_argument("--secret-file", metavar="PATH",
                       help="file (outside the book) whose first line is the key the hidden inputs "
                            "are derived from")
    grade.add_argument("--secret", metavar="KEY",
                       help="the key itself (visible to other users in the process list: prefer "
                            "--secret-file or $DLBOOK_GRADING_SECRET)")
    grade.add_argument("--quiet", action="store_true", help="no progress lines")
    grade.set_defaults(func=cmd_grade)
    exercises = sub.add_parser("exercises", help="list the exercises and their points")
    exercises.add_argument("ids", nargs="*", help="exercise ids or folders (default: all)")
    exercises.add_argument("--write", action="store_true", help="regenerate the student and solution notebooks")
    exercises.add_argument("--check", action="store_true", help="fail if a committed notebook is out of date")
    exercises.add_argument("--release", metavar="DIR",
                           help="write what students get (student notebooks and a README) into the "
                                "new or empty folder DIR, and nothing else")
    exercises.set_defaults(func=cmd_exercises)
