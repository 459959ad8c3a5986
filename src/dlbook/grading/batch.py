"""Grade a batch of submissions: one sandboxed run and one otter check each, one gradebook.

``grade_batch`` is what ``dlbook grade`` calls. Every submission gets a row in
``gradebook.csv`` and a ``<name>.json`` whatever it does; rows are sorted by name, so the same
inputs give the same files (the ``seconds`` column is the only one that varies between runs, and
the JSON files hold no timing at all). Each file is written to a temporary name in the same
directory, flushed to disk, then renamed over the old one: a reader sees the old file or the new
one, never a part.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from dlbook.grading.checker import question_feedback, run_checks
from dlbook.grading.exercise import Exercise, exercises_root
from dlbook.grading.sandbox import Limits, SandboxResult, detect_isolation, run_in_sandbox

__all__ = ["STATUSES", "GradeRow", "collect_submissions", "grade_batch", "read_submission",
           "atomic_write", "GRADEBOOK_COLUMNS"]

STATUSES = ("graded", "timeout", "error", "invalid-notebook", "memory")
GRADEBOOK_COLUMNS = ("submission", "score", "max_score", "status", "seconds")
MAX_NOTEBOOK_BYTES = 32 * 1024 * 1024
FLAGGED_IMPORTS = ("dlbook", "torch")
MAX_NOTES = 40
_MEMORY_SIGNS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")


@dataclass
class GradeRow:
    """One gradebook row (and the name of its JSON file)."""

    submission: str
    score: float
    max_score: float
    status: str
    seconds: float
    report: dict[str, Any] = field(repr=False, default_factory=dict)


class InvalidNotebook(ValueError):
    """The file is not a notebook the grader can read."""


def collect_submissions(paths: Iterable[str | Path]) -> list[Path]:
    """Notebook files named directly, plus every ``*.ipynb`` under named folders (sorted, unique).

    Hidden files and folders and ``.ipynb_checkpoints`` are skipped. A path that does not exist
    raises ``FileNotFoundError``.
    """
    found: dict[str, Path] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for nb in sorted(path.rglob("*.ipynb")):
                parts = nb.relative_to(path).parts
                if not any(p.startswith(".") for p in parts) and nb.is_file():
                    found.setdefault(os.path.realpath(nb), nb)
        elif path.exists():
            found.setdefault(os.path.realpath(path), path)
        else:
            raise FileNotFoundError(f"submission: {path} does not exist")
    return sorted(found.values(), key=lambda p: (str(p.parent), p.name))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "submission"


def submission_names(paths: list[Path]) -> list[str]:
    """File stems, made unique with as many parent folder names as needed (deterministic)."""
    names = [_slug(p.stem) for p in paths]
    depth = 0
    while len(set(names)) < len(names) and depth < 8:
        depth += 1
        counts: dict[str, int] = {}
        for n in names:
            counts[n] = counts.get(n, 0) + 1
        names = [(_slug("__".join(p.parts[-depth - 1:-1]) + "__" + p.stem) if counts[n] > 1 else n)
                 for p, n in zip(paths, names)]
    seen: dict[str, int] = {}
    unique = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        unique.append(n if seen[n] == 1 else f"{n}-{seen[n]}")
    return unique


def read_submission(path: Path) -> tuple[list[str], list[int], dict[str, Any]]:
    """The code cells of a notebook file, their 1-based positions among all its cells, and its
    metadata; ``InvalidNotebook`` if the file is not a readable notebook.

    Only the JSON is parsed (nbformat upgrades older versions); nothing is executed.
    """
    import nbformat

    try:
        size = path.stat().st_size
        if size > MAX_NOTEBOOK_BYTES:
            raise InvalidNotebook(f"the file is {size} bytes; notebooks above {MAX_NOTEBOOK_BYTES} are not graded")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidNotebook(f"the file could not be read as UTF-8 text ({exc})") from None
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises several types for JSON and schema problems
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise InvalidNotebook(f"not a valid notebook: {first}") from None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise InvalidNotebook("not a valid notebook: no list of cells")
    code, positions = [], []
    for position, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(str(s) for s in source)
        if not isinstance(source, str):
            raise InvalidNotebook("not a valid notebook: a code cell's source is not text")
        code.append(source)
        positions.append(position)
    metadata = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    return code, positions, metadata


def _number(value: float) -> float | int:
    value = round(float(value), 6)
    return int(value) if value == int(value) else value


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder, fsync, rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _message(event: dict[str, Any]) -> str:
    text = str(event.get("message") or "").strip()
    return f"{event.get('type')}: {text[:300]}" if text else str(event.get("type"))


def _status(result: SandboxResult, positions: list[int]) -> tuple[str, list[str]]:
    """How the run ended, and notes for the student about it."""
    notes = []
    kinds = [e["event"] for e in result.events]
    memory = any(e.get("memory") for e in result.events if e["event"] in ("cell_error", "probe_error"))
    for event in result.events:
        if event["event"] == "exit":
            where = _cell_position(event, positions)
            notes.append(f"{where} called sys.exit({event.get('code')}): the cells after it did not run")
    if result.timed_out:
        return "timeout", notes
    crashed = "finished" not in kinds or (result.returncode or 0) != 0
    if memory or (crashed and any(sign in result.output[-4096:] for sign in _MEMORY_SIGNS)):
        return "memory", notes
    if crashed:
        code = result.returncode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        notes.append(f"the notebook's process ended before grading finished ({how})")
        return "error", notes
    if "exit" in kinds:
        return "error", notes
    return "graded", notes


def _missing_reason(status: str, limits: Limits) -> str:
    return {
        "timeout": f"the notebook did not finish within {limits.timeout:g} s, so this was never computed",
        "memory": "the notebook ran out of memory before this was computed",
        "error": "the notebook stopped before this was computed",
        "invalid-notebook": "the file is not a readable notebook",
    }.get(status, "your code produced no value here")


def _render(report: dict[str, Any]) -> str:
    """The plain-text feedback a student reads (also stored in the JSON)."""
    out = [f"{report['exercise']}: {report['score']:g} / {report['max_score']:g} points ({report['status']})"]
    for q in report["questions"]:
        out.append(f"\n{q['name']}: {q['score']:g} / {q['max_score']:g}")
        for c in q["cases"]:
            mark = "pass" if c["passed"] else "FAIL"
            out.append(f"  [{mark}] {c['name']} ({c['points']:g} pt)")
            if not c["passed"]:
                if c.get("hint"):
                    out.append(f"         hint: {c['hint']}")
                if c.get("detail"):
                    out.append(f"         got:  {c['detail']}")
    if report["notes"]:
        out.append("\nnotes:")
        out += [f"  - {n}" for n in report["notes"]]
    return "\n".join(out) + "\n"


def _cell_position(event: dict[str, Any], positions: list[int]) -> str:
    index = event.get("cell")
    if isinstance(index, int) and 0 <= index < len(positions):
        return f"cell {positions[index]}"
    return "a cell"


def _cell_notes(result: SandboxResult, positions: list[int]) -> tuple[dict, list[str]]:
    errors: dict[str, dict[str, str]] = {}
    notes = []
    for event in result.events:
        if event["event"] == "cell_error":
            notes.append(f"{_cell_position(event, positions)} raised {_message(event)}")
        elif event["event"] == "probe_error":
            message = f"your code raised {_message(event)}"
            errors.setdefault(str(event.get("question")), {})[str(event.get("probe"))] = message
        elif event["event"] == "finished":
            imports = event.get("imports")
            imports = [i for i in imports if isinstance(i, str)] if isinstance(imports, list) else []
            flagged = sorted(set(imports) & set(FLAGGED_IMPORTS))
            if flagged:
                notes.append(f"the notebook imports {', '.join(flagged)} (the exercise asks for numpy only)")
    for question, probes in result.load_errors.items():
        errors.setdefault(question, {}).update(probes)
    if len(notes) > MAX_NOTES:  # events.jsonl comes from the submission: bound what it can add
        notes = notes[:MAX_NOTES] + [f"... and {len(notes) - MAX_NOTES} more notes"]
    if result.output_bytes > len(result.output.encode("utf-8", errors="replace")):
        notes.append(f"the notebook printed {result.output_bytes} bytes; only the beginning and end are kept")
    return errors, notes


def _grade_one(exercise: Exercise, path: Path, name: str, parsed, limits: Limits, isolation: str,
               scratch: Path, hide_dirs: list[str], hide_files: list[str]) -> GradeRow:
    start = time.monotonic()
    notes: list[str] = []
    output = ""
    values: dict = {}
    errors: dict = {}
    if isinstance(parsed, InvalidNotebook):
        status = "invalid-notebook"
        notes.append(str(parsed))
    else:
        cells, positions, metadata = parsed
        tagged = metadata.get("dlbook", {}).get("exercise") if isinstance(metadata.get("dlbook"), dict) else None
        if tagged not in (None, exercise.id):
            notes.append(f"this notebook was made for exercise {tagged!r}, graded as {exercise.id!r}")
        result = run_in_sandbox(cells=cells, probes=exercise.probe_specs(), inputs_npz=exercise.inputs_npz(),
                                limits=limits, isolation=isolation, scratch=scratch,
                                hide_dirs=hide_dirs, hide_files=hide_files)
        status, run_notes = _status(result, positions)
        errors, cell_notes = _cell_notes(result, positions)
        notes += cell_notes + run_notes
        values, output = result.values, result.output
    results = run_checks(exercise, values, errors, reason=_missing_reason(status, limits))
    questions = question_feedback(results)
    report = {"submission": name, "file": path.name, "exercise": exercise.id, "status": status,
              "score": _number(results.total), "max_score": _number(exercise.max_score),
              "questions": questions, "notes": notes, "output": output}
    report["feedback"] = _render(report)
    return GradeRow(submission=name, score=float(report["score"]), max_score=exercise.max_score,
                    status=status, seconds=time.monotonic() - start, report=report)


def _hidden_paths(exercise: Exercise, out_dir: Path, submissions: list[Path]) -> tuple[list[str], list[str]]:
    dirs = {str(exercise.directory), str(out_dir.resolve())}
    root = exercises_root()
    if root is not None:
        dirs.add(str(root.resolve()))
    home = os.path.realpath(os.path.expanduser("~"))
    if home not in ("/", ""):
        dirs.add(home)
    files = sorted({os.path.realpath(p) for p in submissions})
    dirs |= {os.path.dirname(f) for f in files}
    return sorted(d for d in dirs if d != "/"), files


def grade_batch(exercise: Exercise, submissions: Iterable[str | Path], out_dir: str | Path, *,
                limits: Limits = Limits(), jobs: int = 1, isolation: str = "auto",
                progress: Callable[[GradeRow, int, int], None] | None = None) -> list[GradeRow]:
    """Grade every submission; write ``out_dir/gradebook.csv`` and ``out_dir/<name>.json``.

    Args:
        exercise: a loaded exercise.
        submissions: notebook files and/or folders of them.
        out_dir: created if missing; existing files of the same names are replaced atomically.
        limits: per-submission limits (wall clock, memory, output kept, ...).
        jobs: submissions graded at the same time.
        isolation: ``"auto"`` (namespaces when they work here), ``"namespaces"`` or ``"process"``.
        progress: called after each submission with (row, done, total).
    Returns:
        The rows, sorted by submission name (the gradebook's order).
    """
    import otter.test_files  # noqa: F401  (imported once here, not inside the first row's timing)
    import torch

    paths = collect_submissions(submissions)
    names = submission_names(paths)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if isolation == "auto":
        isolation = detect_isolation()
    if isolation not in ("namespaces", "process"):
        raise ValueError(f"isolation: expected 'auto', 'namespaces' or 'process', got {isolation!r}")
    # every notebook is read before any submission runs: none can alter another's file in time
    parsed: list[Any] = []
    for path in paths:
        try:
            parsed.append(read_submission(path))
        except InvalidNotebook as exc:
            parsed.append(exc)
    hide_dirs, hide_files = _hidden_paths(exercise, out_dir, paths)
    scratch = Path(tempfile.mkdtemp(prefix="dlbook-grade-"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the checks are tiny; keep the cores for the sandboxes
    rows: list[GradeRow] = []
    lock = threading.Lock()

    def task(index: int) -> GradeRow:
        path, name = paths[index], names[index]
        try:
            row = _grade_one(exercise, path, name, parsed[index], limits, isolation, scratch,
                             hide_dirs, hide_files)
        except Exception as exc:  # a grader failure must still leave a row
            report = {"submission": name, "file": path.name, "exercise": exercise.id, "status": "error",
                      "score": 0, "max_score": _number(exercise.max_score), "questions": [],
                      "notes": [f"the grader failed on this submission: {type(exc).__name__}: {exc}"],
                      "output": ""}
            report["feedback"] = _render(report)
            row = GradeRow(name, 0.0, exercise.max_score, "error", 0.0, report)
        with lock:
            rows.append(row)
            if progress is not None:
                progress(row, len(rows), len(paths))
        return row

    try:
        with ThreadPoolExecutor(max_workers=max(1, int(jobs))) as pool:
            list(pool.map(task, range(len(paths))))
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(scratch, ignore_errors=True)
    # nothing is written while submissions run: none of them can overwrite a finished result
    rows.sort(key=lambda r: r.submission)
    for row in rows:
        atomic_write(out_dir / f"{row.submission}.json",
                     (json.dumps(row.report, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(GRADEBOOK_COLUMNS)
    for row in rows:
        writer.writerow([row.submission, _number(row.score), _number(row.max_score), row.status,
                         f"{row.seconds:.2f}"])
    atomic_write(out_dir / "gradebook.csv", buffer.getvalue().encode("utf-8"))
    return rows
