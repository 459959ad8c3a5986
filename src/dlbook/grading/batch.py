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
import stat
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from dlbook.grading.checker import question_feedback, run_checks
from dlbook.grading.exercise import Exercise
from dlbook.grading.sandbox import (Limits, SandboxResult, detect_isolation, isolation_problem,
                                    remove_tree, run_in_sandbox)

__all__ = ["STATUSES", "GradeRow", "collect_submissions", "grade_batch", "read_submission",
           "submission_names", "atomic_write", "GRADEBOOK_COLUMNS", "UntrustedIsolation"]

STATUSES = ("graded", "timeout", "error", "invalid-notebook", "memory")
GRADEBOOK_COLUMNS = ("submission", "file", "score", "max_score", "status", "seconds")
MAX_NOTEBOOK_BYTES = 16 * 1024 * 1024
MAX_CODE_CELLS = 2000
MAX_CODE_BYTES = 4 * 1024 * 1024
MAX_WALK_DEPTH = 32
FLAGGED_IMPORTS = ("dlbook", "torch")
MAX_NOTES = 40
_EXERCISE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_MEMORY_SIGNS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")


@dataclass
class GradeRow:
    """One gradebook row (and the name of its JSON file)."""

    submission: str
    score: float
    max_score: float
    status: str
    seconds: float
    file: str = ""
    report: dict[str, Any] = field(repr=False, default_factory=dict)
    blob: bytes = field(repr=False, default=b"")  # the JSON file's bytes, made in the row's try


def _serialise(report: dict[str, Any]) -> bytes:
    """The row's JSON file; any string that is still not encodable is escaped, never fatal."""
    text = json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return text.encode("utf-8", "backslashreplace")


class InvalidNotebook(ValueError):
    """The file is not a notebook the grader can read."""


class UntrustedIsolation(RuntimeError):
    """Submissions would run without the namespace sandbox, and nobody said they are trusted."""


def _walk_notebooks(folder: Path) -> list[Path]:
    """``*.ipynb`` entries under ``folder``: no recursion, no link followed, hidden names skipped."""
    found, pending = [], [(folder, 0)]
    while pending:
        current, depth = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                if depth < MAX_WALK_DEPTH:
                    pending.append((Path(entry.path), depth + 1))
            elif entry.name.endswith(".ipynb"):
                found.append(Path(entry.path))  # a link is listed here and refused when read
    return found


def collect_submissions(paths: Iterable[str | Path]) -> list[Path]:
    """Notebook files named directly, plus every ``*.ipynb`` under named folders (sorted, unique).

    Hidden files and folders (``.ipynb_checkpoints`` too) are skipped, folders are searched up to
    32 levels deep, and symbolic links to folders are not followed; a link to a file is listed
    (and graded as ``invalid-notebook``: only regular files are read). A path that does not
    exist raises ``FileNotFoundError``.
    """
    found: dict[str, Path] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir() and not path.is_symlink():
            for nb in _walk_notebooks(path):
                found.setdefault(os.path.abspath(nb), nb)
        elif path.exists() or path.is_symlink():
            found.setdefault(os.path.abspath(path), path)
        else:
            raise FileNotFoundError(f"submission: {path} does not exist")
    return sorted(found.values(), key=lambda p: (str(p.parent), p.name))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "submission"


def submission_names(paths: list[Path]) -> list[str]:
    """Unique row names: the file stem, with parent folder names prefixed while two collide.

    Names are made of letters, digits, ``.``, ``_`` and ``-`` (they name the JSON files) and are
    unique even ignoring case (``Bob`` and ``bob`` would share a file on some systems). Folder
    names are prefixed only where they tell colliding files apart (``a__alice``, ``b__alice``);
    files that still collide keep the name for the one whose stem it is exactly, and the others
    get the first free ``-2``, ``-3``, ... Deterministic in ``paths``.
    """
    names = [_slug(p.stem) for p in paths]
    for depth in range(1, 9):
        groups: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            groups.setdefault(name.lower(), []).append(i)
        changed = False
        for members in groups.values():
            parents = {paths[i].parts[-depth - 1:-1] for i in members}
            if len(members) < 2 or len(parents) < 2:
                continue  # unique, or all in one folder: a prefix would not tell them apart
            for i in members:
                prefix = _slug("__".join(paths[i].parts[-depth - 1:-1]))
                names[i] = f"{prefix}__{_slug(paths[i].stem)}"
            changed = True
        if not changed:
            break
    taken: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        taken.setdefault(name.lower(), []).append(i)
    owners = {min(members, key=lambda i: (paths[i].stem != names[i], i))
              for members in taken.values()}
    unique = list(names)
    used = {names[i].lower() for i in owners}
    for i, name in enumerate(names):
        if i in owners:
            continue
        k = 2
        while f"{name}-{k}".lower() in used or f"{name}-{k}".lower() in taken:
            k += 1
        unique[i] = f"{name}-{k}"
        used.add(unique[i].lower())
    return unique


def _read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file (not a link) of at most ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        if os.path.islink(path):
            raise InvalidNotebook("the submission is a symbolic link, not a regular file") from None
        raise InvalidNotebook(f"the file could not be opened ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidNotebook("the submission is not a regular file")
        if info.st_size > limit:
            raise InvalidNotebook(f"the file is {info.st_size} bytes; notebooks above {limit} "
                                  "are not graded")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise InvalidNotebook(f"the file grew above {limit} bytes while it was read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_submission(path: Path) -> tuple[list[str], list[int], dict[str, Any]]:
    """The code cells of a notebook file, their 1-based positions among all its cells, and its
    metadata; ``InvalidNotebook`` if the file is not a readable notebook.

    Only a regular file is read (``O_NOFOLLOW``, ``S_ISREG`` on the open descriptor, at most
    ``MAX_NOTEBOOK_BYTES``); the JSON is parsed (a UTF-8 byte-order mark is allowed) and nothing
    is executed. Error messages never quote the file's content.
    """
    blob = _read_regular_file(Path(path), MAX_NOTEBOOK_BYTES)
    try:
        text = blob.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidNotebook(f"the file is not UTF-8 text (byte {exc.start})") from None
    del blob
    try:
        nb = json.loads(text)
    except ValueError as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if hasattr(exc, "lineno") else ""
        raise InvalidNotebook(f"not a valid notebook: the file is not JSON{where}") from None
    del text
    if not isinstance(nb, dict):
        raise InvalidNotebook("not a valid notebook: not a JSON object")
    if nb.get("nbformat") == 3 and isinstance(nb.get("worksheets"), list):  # old notebooks
        cells = [c for w in nb["worksheets"] if isinstance(w, dict)
                 for c in (w.get("cells") if isinstance(w.get("cells"), list) else [])]
        source_key = "input"
    else:
        cells = nb.get("cells")
        source_key = "source"
    if not isinstance(cells, list):
        raise InvalidNotebook("not a valid notebook: no list of cells")
    code, positions, size = [], [], 0
    for position, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get(source_key, "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise InvalidNotebook("not a valid notebook: a code cell's source is not text")
        size += len(source)
        if len(code) >= MAX_CODE_CELLS or size > MAX_CODE_BYTES:
            raise InvalidNotebook(f"the notebook has more than {MAX_CODE_CELLS} code cells or "
                                  f"{MAX_CODE_BYTES} characters of code")
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


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def safe_text(value: Any, limit: int | None = None) -> str:
    """A string from a submission, made safe to store and to show: one line, encodable.

    Lone surrogates (from an exception message or a file name that is not UTF-8) become
    ``\\udcxx`` escapes, and control characters (newlines, ANSI escapes, ...) become ``\\n``,
    ``\\x1b`` and the like, so a message can neither break the JSON/CSV writers nor forge a
    line of the feedback. ``limit`` clips the result (in characters).
    """
    text = value if isinstance(value, str) else str(value)
    if limit is not None:
        text = text[:limit]
    try:  # a file name's undecodable bytes (surrogateescape) are shown as the bytes they were
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _spreadsheet_cell(text: str) -> str:
    """A gradebook cell a spreadsheet never reads as a formula (``'`` before ``= + - @``)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _message(event: dict[str, Any]) -> str:
    text = safe_text(str(event.get("message") or "").strip(), 300)
    kind = safe_text(event.get("type"), 100)
    return f"{kind}: {text}" if text else kind


def _status(result: SandboxResult, positions: list[int]) -> tuple[str, list[str]]:
    """How the run ended, and notes for the student about it.

    The exit code comes from the runner's supervisor (trusted); ``finished``, ``exit`` and the
    errors come from the submission's own process (it can only describe itself with them).
    """
    notes = []
    mine = [e for e in result.events if e.get("source") == "submission"]
    kinds = [e.get("event") for e in mine]
    memory = any(e.get("memory") is True for e in mine
                 if e.get("event") in ("cell_error", "probe_error"))
    for event in mine:
        if event.get("event") == "exit":
            where = _cell_position(event, positions)
            notes.append(f"{where} called sys.exit({safe_text(event.get('code'), 200)}): "
                         "the cells after it did not run")
    if result.failure is not None:
        notes.append("the grading sandbox could not be set up on the grader's machine "
                     "(not your fault: ask your instructor)")
        return "error", notes
    if result.timed_out:
        return "timeout", notes
    crashed = "finished" not in kinds or result.returncode != 0
    if memory or (crashed and (result.memory_exceeded
                               or any(sign in result.output[-4096:] for sign in _MEMORY_SIGNS))):
        return "memory", notes
    if crashed:
        code = result.returncode
        how = (f"killed by signal {-code}" if code is not None and code < 0
               else f"exit code {code}" if code is not None else "it was killed")
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
        if event.get("source") != "submission":
            if event.get("event") == "overflow":
                notes.append("the notebook's process sent more than the grader reads; the rest "
                             "was ignored")
            continue
        if event.get("event") == "cell_error":
            notes.append(f"{_cell_position(event, positions)} raised {_message(event)}")
        elif event.get("event") == "probe_error":
            message = f"your code raised {_message(event)}"
            errors.setdefault(str(event.get("question")), {})[str(event.get("probe"))] = message
        elif event.get("event") == "finished":
            imports = event.get("imports")
            imports = [i for i in imports if isinstance(i, str)] if isinstance(imports, list) else []
            flagged = sorted(set(imports) & set(FLAGGED_IMPORTS))
            if flagged:
                notes.append(f"the notebook imports {', '.join(flagged)} (the exercise asks for numpy only)")
    for question, probes in result.load_errors.items():
        errors.setdefault(question, {}).update(probes)
    if len(notes) > MAX_NOTES:  # one note per cell at most, but a notebook may have many cells
        notes = notes[:MAX_NOTES] + [f"... and {len(notes) - MAX_NOTES} more notes"]
    if result.output_bytes > len(result.output.encode("utf-8", errors="replace")):
        notes.append(f"the notebook printed {result.output_bytes} bytes; only the beginning and end are kept")
    return errors, notes


def _grade_one(exercise: Exercise, path: Path, name: str, file: str, parsed, limits: Limits,
               isolation: str, scratch: Path) -> GradeRow:
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
        if tagged is not None and tagged != exercise.id:
            made_for = (repr(tagged) if isinstance(tagged, str) and _EXERCISE_ID.match(tagged)
                        else "another exercise")
            notes.append(f"this notebook was made for {made_for}, graded as {exercise.id!r}")
        exercise = exercise.for_submission(cells)  # with a key: this notebook's own inputs
        result = run_in_sandbox(cells=cells, probes=exercise.probe_specs(),
                                inputs_npz=exercise.inputs_npz(), limits=limits,
                                isolation=isolation, scratch=scratch)
        status, run_notes = _status(result, positions)
        errors, cell_notes = _cell_notes(result, positions)
        notes += cell_notes + run_notes
        values, output = result.values, result.output
    results = run_checks(exercise, values, errors, reason=_missing_reason(status, limits))
    questions = question_feedback(results)
    report = {"submission": name, "file": file, "exercise": exercise.id, "status": status,
              "score": _number(results.total), "max_score": _number(exercise.max_score),
              "questions": questions, "notes": notes, "output": output}
    report["feedback"] = _render(report)
    return GradeRow(submission=name, score=float(report["score"]), max_score=exercise.max_score,
                    status=status, seconds=time.monotonic() - start, file=file, report=report)


def _display_paths(submissions: list[str | Path], paths: list[Path]) -> list[str]:
    """Each file's path relative to the folder argument it was found under (else its name)."""
    folders = [os.path.abspath(s) for s in submissions
               if Path(s).is_dir() and not Path(s).is_symlink()]
    shown = []
    for path in paths:
        absolute = os.path.abspath(path)
        base = next((f for f in sorted(folders, key=len, reverse=True)
                     if absolute.startswith(f.rstrip(os.sep) + os.sep)), None)
        shown.append(Path(os.path.relpath(absolute, base)).as_posix() if base else Path(path).name)
    return shown


def _failed_row(exercise: Exercise, name: str, file: str, exc: BaseException) -> GradeRow:
    report = {"submission": name, "file": file, "exercise": exercise.id, "status": "error",
              "score": 0, "max_score": _number(exercise.max_score), "questions": [],
              "notes": [f"the grader failed on this submission ({type(exc).__name__}); "
                        "your instructor has the details (the grader's error output)"],
              "output": ""}
    report["feedback"] = _render(report)
    return GradeRow(name, 0.0, exercise.max_score, "error", 0.0, file, report)


def grade_batch(exercise: Exercise, submissions: Iterable[str | Path], out_dir: str | Path, *,
                limits: Limits = Limits(), jobs: int = 1, isolation: str = "auto",
                trusted: bool = False,
                progress: Callable[[GradeRow, int, int], None] | None = None) -> list[GradeRow]:
    """Grade every submission; write ``out_dir/gradebook.csv`` and ``out_dir/<name>.json``.

    Whatever one submission does (to its run, its cleanup or the grader's checks), it gets its
    own row and the others are graded; the gradebook is always written.

    Args:
        exercise: a loaded exercise.
        submissions: notebook files and/or folders of them.
        out_dir: created if missing; existing files of the same names are replaced atomically.
        limits: per-submission limits (wall clock, memory, output kept, ...).
        jobs: submissions graded at the same time.
        isolation: ``"auto"`` (namespaces when they work here), ``"namespaces"`` or ``"process"``.
        trusted: allow ``process`` isolation (submissions then run with the grader's rights);
            without it, a batch that would not run in the namespace sandbox raises
            :class:`UntrustedIsolation` before anything runs.
        progress: called after each submission with (row, done, total).
    Returns:
        The rows, sorted by submission name (the gradebook's order).
    """
    import otter.test_files  # noqa: F401  (imported once here, not inside the first row's timing)
    import torch

    submissions = list(submissions)
    paths = collect_submissions(submissions)
    names = submission_names(paths)
    files = [safe_text(f) for f in _display_paths(submissions, paths)]
    out_dir = Path(out_dir)
    if isolation == "auto":
        isolation = detect_isolation()
    if isolation not in ("namespaces", "process"):
        raise ValueError(f"isolation: expected 'auto', 'namespaces' or 'process', got {isolation!r}")
    if isolation == "process" and not trusted:
        problem = isolation_problem() if sys.platform.startswith("linux") else "not Linux"
        raise UntrustedIsolation(
            "isolation: submissions would run as a plain process, with your user's rights "
            f"(namespaces: {problem or 'not chosen'}); pass trusted=True (--trusted) only for "
            "code you trust, or grade inside a container")
    out_dir.mkdir(parents=True, exist_ok=True)
    # every notebook is read before any submission runs: none can alter another's file in time
    parsed: list[Any] = []
    for path in paths:
        try:
            parsed.append(read_submission(path))
        except InvalidNotebook as exc:
            parsed.append(exc)
        except Exception as exc:  # never let one file stop the batch
            parsed.append(InvalidNotebook(f"the file could not be read ({type(exc).__name__})"))
    scratch = Path(tempfile.mkdtemp(prefix=f"dlbook-grade-{os.getpid()}-"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the checks are tiny; keep the cores for the sandboxes
    rows: list[GradeRow] = []
    lock = threading.Lock()

    def task(index: int) -> GradeRow:
        path, name, file = paths[index], names[index], files[index]
        try:
            row = _grade_one(exercise, path, name, file, parsed[index], limits, isolation, scratch)
            row.blob = _serialise(row.report)  # a row that cannot be written is this row's failure
        except Exception as exc:  # a grader failure must still leave a row
            print(f"dlbook grade: the grader failed on {file}: {type(exc).__name__}: "
                  f"{safe_text(exc, 500)}", file=sys.stderr)
            row = _failed_row(exercise, name, file, exc)
            row.blob = _serialise(row.report)
        with lock:
            rows.append(row)
            if progress is not None:
                try:
                    progress(row, len(rows), len(paths))
                except Exception:
                    pass
        return row

    try:
        with ThreadPoolExecutor(max_workers=max(1, int(jobs))) as pool:
            list(pool.map(task, range(len(paths))))
    finally:
        torch.set_num_threads(threads)
        remove_tree(scratch)
    # nothing is written while submissions run: none of them can overwrite a finished result
    rows.sort(key=lambda r: r.submission)
    for row in rows:
        atomic_write(out_dir / f"{row.submission}.json", row.blob)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(GRADEBOOK_COLUMNS)
    for row in rows:
        writer.writerow([_spreadsheet_cell(row.submission), _spreadsheet_cell(row.file),
                         _number(row.score), _number(row.max_score),
                         row.status, f"{row.seconds:.2f}"])
    atomic_write(out_dir / "gradebook.csv", buffer.getvalue().encode("utf-8"))
    return rows
