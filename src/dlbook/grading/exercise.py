"""Exercise sources: one instructor file per exercise, from which everything else is generated.

An exercise lives in ``exercises/<id>/``. Its only hand-written file is ``source.py``, a jupytext
percent-format notebook (``# %%`` cells) with three kinds of cells:

* ordinary markdown and code cells, which go to both generated notebooks. In code cells the
  lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` are the reference solution: the
  student notebook gets ``# YOUR CODE HERE`` / ``raise NotImplementedError`` in their place.
  Public self-checks are ordinary code cells with plain ``assert``s (numpy only, no otter).
* grader cells (``# %% tags=["grader"]``), which never leave the instructor's hands. The first
  ones set up the grading namespace (``EXERCISE = {"title": ..., "chapter": ...}``, imports,
  reference helpers). Each later one defines one question:

  - ``QUESTION = {"name": "softmax", "points": 2}``
  - ``INPUTS = {...}``: the hidden inputs (numeric arrays, built from a seeded generator),
  - ``def probe_<name>(inputs): ...``: run *inside the sandbox*, in a copy of the student's
    namespace; calls the student's functions on the hidden inputs and returns an array or a
    dict of arrays. Only their source text crosses into the sandbox, together with the source
    of any ``sandbox_<name>`` helper functions defined in grader cells.
  - ``CASES = [case(...), ...]``: OK-format doctests (otter's test format) run by the grader in
    its own process against ``inputs`` (a copy of INPUTS) and ``outputs`` (what the probes
    returned, as plain arrays), with the grader cells' namespace (torch, helpers) as globals.

The student notebook ``<id>.ipynb`` and the solution notebook ``solution.ipynb`` are generated
from the source deterministically (fixed cell ids, no outputs), so regenerating reproduces the
committed files byte for byte.
"""

from __future__ import annotations

import ast
import builtins
import copy
import hashlib
import hmac
import io
import json
import os
import pprint
import re
import symtable
import textwrap
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlbook._book import book_root

__all__ = ["Exercise", "Question", "ExerciseError", "SOURCE_NAME", "SECRET_ENV", "exercises_root",
           "hidden_seed", "read_secret",
           "find_exercise", "load_exercise", "list_exercises", "write_notebooks"]

SOURCE_NAME = "source.py"
SECRET_ENV = "DLBOOK_GRADING_SECRET"
SOLUTION_NAME = "solution.ipynb"
BEGIN_SOLUTION = "# BEGIN SOLUTION"
END_SOLUTION = "# END SOLUTION"
GRADER_TAG = "grader"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_INPUT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


class ExerciseError(ValueError):
    """An exercise source that cannot be used (names the file and what is wrong)."""


@dataclass
class Question:
    """One graded question: hidden inputs, probes (run in the sandbox), OK-format cases."""

    name: str
    points: float
    inputs: dict[str, np.ndarray]
    probes: dict[str, str]
    cases: list[dict[str, Any]]
    namespace: dict[str, Any] = field(repr=False)

    def ok_test(self) -> dict[str, Any]:
        """The question as an otter OK-format test (the ``test`` dict of a ``tests/<q>.py`` file)."""
        return {"name": self.name, "points": self.points, "all_or_nothing": False,
                "suites": [{"cases": copy.deepcopy(self.cases), "scored": True, "setup": "",
                            "teardown": "", "type": "doctest"}]}

    def ok_test_source(self) -> str:
        """The OK-format test file otter would read (``OK_FORMAT = True`` and ``test = {...}``)."""
        return "OK_FORMAT = True\n\ntest = " + pprint.pformat(self.ok_test(), width=100, sort_dicts=False) + "\n"


@dataclass
class Exercise:
    """An exercise loaded from ``exercises/<id>/source.py``."""

    id: str
    directory: Path
    title: str
    chapter: int
    questions: list[Question]
    cells: list[tuple[str, str]] = field(repr=False)  # (cell_type, source) of non-grader cells
    keyed: bool = False  # hidden inputs derived from an instructor's key (not the public default)
    _secret: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def max_score(self) -> float:
        return float(sum(q.points for q in self.questions))

    @property
    def student_path(self) -> Path:
        return self.directory / f"{self.id}.ipynb"

    @property
    def solution_path(self) -> Path:
        return self.directory / SOLUTION_NAME

    def notebook(self, solution: bool) -> str:
        """The student (``solution=False``) or solution notebook as nbformat JSON text."""
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.metadata = {"kernelspec": dict(_KERNELSPEC), "language_info": {"name": "python"},
                       "dlbook": {"exercise": self.id, "notebook": "solution" if solution else "student"}}
        for index, (kind, source) in enumerate(self.cells):
            cell_id = f"{self.id}-{index:02d}"[-64:]
            if kind == "markdown":
                nb.cells.append(nbformat.v4.new_markdown_cell(source, id=cell_id))
            else:
                code = _solution_lines(source, keep=solution, where=f"{self.id} cell {index}")
                nb.cells.append(nbformat.v4.new_code_cell(code, id=cell_id))
        nbformat.validate(nb)
        return nbformat.writes(nb) + "\n"

    def inputs_npz(self) -> bytes:
        """Every question's hidden inputs in one npz (keys ``"<question>/<name>"``)."""
        buffer = io.BytesIO()
        arrays = {f"{q.name}/{key}": value for q in self.questions for key, value in q.inputs.items()}
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    def probe_specs(self) -> list[dict[str, str]]:
        """The probes, in question order, as the sandbox runner reads them."""
        return [{"question": q.name, "probe": name, "source": source}
                for q in self.questions for name, source in q.probes.items()]

    def for_submission(self, cells: list[str]) -> "Exercise":
        """The exercise with the hidden inputs of one submission (``self`` without a key).

        With a key, the inputs also depend on the submission's code cells: the exercise is
        loaded again with the key HMAC-SHA256(key, "submission/" + SHA-256 of the cells). The
        same notebook gets the same inputs; a notebook that hard-codes answers to inputs it saw
        (printed) in an earlier run is another notebook, with other inputs.
        """
        if self._secret is None:
            return self
        digest = hashlib.sha256(json.dumps(list(cells)).encode("utf-8")).hexdigest()
        salted = hmac.new(self._secret, f"submission/{digest}".encode("ascii"),
                          hashlib.sha256).hexdigest()
        return load_exercise(self.directory, secret=salted)

    def question(self, name: str) -> Question:
        for q in self.questions:
            if q.name == name:
                return q
        raise KeyError(f"exercise {self.id} has no question {name!r}")


def _solution_lines(source: str, *, keep: bool, where: str) -> str:
    """Drop the solution markers; without ``keep`` replace what they enclose by a stub."""
    out: list[str] = []
    inside = False
    for line in source.split("\n"):
        stripped = line.strip()
        if stripped == BEGIN_SOLUTION:
            if inside:
                raise ExerciseError(f"{where}: nested {BEGIN_SOLUTION}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            if not keep:
                out += [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError"]
            continue
        if stripped == END_SOLUTION:
            if not inside:
                raise ExerciseError(f"{where}: {END_SOLUTION} without {BEGIN_SOLUTION}")
            inside = False
            continue
        if inside and not keep:
            continue
        out.append(line)
    if inside:
        raise ExerciseError(f"{where}: {BEGIN_SOLUTION} without {END_SOLUTION}")
    return "\n".join(out)


def exercises_root() -> Path | None:
    """``<book>/exercises`` when dlbook runs from a checkout of the book, else None."""
    root = book_root()
    return root / "exercises" if root is not None and (root / "exercises").is_dir() else None


def find_exercise(name: str | Path, root: Path | None = None) -> Path:
    """The directory of an exercise given its id (looked up in ``root``) or its folder."""
    path = Path(name)
    if (path / SOURCE_NAME).is_file():
        return path.resolve()
    root = root if root is not None else exercises_root()
    if root is not None and _ID.match(str(name)) and (root / str(name) / SOURCE_NAME).is_file():
        return (root / str(name)).resolve()
    known = ", ".join(sorted(p.name for p in root.iterdir() if (p / SOURCE_NAME).is_file())) if root else "none found"
    raise ExerciseError(f"exercise: no {SOURCE_NAME} for {str(name)!r} (known exercises: {known})")


def _sandbox_helpers(cell: str) -> str:
    """Source of the ``sandbox_*`` functions of a grader cell (shipped with every probe)."""
    return "".join(textwrap.dedent(ast.get_source_segment(cell, node, padded=True)) + "\n\n"
                   for node in ast.parse(cell).body
                   if isinstance(node, ast.FunctionDef) and node.name.startswith("sandbox_"))


def _defined_names(sources: list[str]) -> set[str]:
    """Top-level names bound by the given code (functions, classes, assignments, imports)."""
    names: set[str] = set()
    for source in sources:
        for node in ast.parse(source).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names |= {(a.asname or a.name).split(".")[0] for a in node.names}
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def _global_names(source: str) -> set[str]:
    """Global names a piece of code reads, including from nested functions and comprehensions."""
    found: set[str] = set()
    pending = [symtable.symtable(source, "<probe>", "exec")]
    while pending:
        table = pending.pop()
        if table.get_type() != "module":
            found |= {name for name in table.get_identifiers() if table.lookup(name).is_global()}
        pending += table.get_children()
    return found


def _check_probe(name: str, source: str, allowed: set[str], where: str) -> None:
    """A probe runs in the sandbox with only the student's names, np and sandbox_* helpers."""
    missing = sorted(_global_names(source) - allowed - set(dir(builtins)))
    if missing:
        raise ExerciseError(f"{where}: probe_{name} uses {', '.join(missing)}, which will not exist in the "
                            "sandbox (probes see the notebook's names, np and sandbox_* helpers only)")


def _probe_sources(cell: str, where: str) -> dict[str, str]:
    tree = ast.parse(cell)
    probes = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("probe_"):
            name = node.name[len("probe_"):]
            if not _NAME.match(name):
                raise ExerciseError(f"{where}: probe name {node.name!r} must be probe_<lowercase name>")
            if len(node.args.args) != 1:
                raise ExerciseError(f"{where}: {node.name} must take exactly one argument (inputs)")
            probes[name] = textwrap.dedent(ast.get_source_segment(cell, node, padded=True)) + "\n"
    return probes


def hidden_seed(secret: str | bytes | None, exercise_id: str, label: int | str) -> int:
    """The seed of the hidden inputs labelled ``label`` (``hidden_rng(label)`` in a grader cell).

    Without a key it is ``label`` itself (the public default for local practice: anyone with the
    source can compute those inputs). With a key it is the first 128 bits of
    HMAC-SHA256(key, "dlbook-hidden-inputs/<exercise id>/<label>"): without the key, nothing in
    the repository determines the inputs.
    """
    if secret is None or secret == "" or secret == b"":
        if isinstance(label, int) and not isinstance(label, bool) and label >= 0:
            return label
        raise ExerciseError(f"hidden_rng: expected a non-negative integer label, got {label!r}")
    key = _key_bytes(secret)
    message = f"dlbook-hidden-inputs/{exercise_id}/{label}".encode("utf-8")
    return int.from_bytes(hmac.new(key, message, hashlib.sha256).digest()[:16], "big")


def _key_bytes(secret: str | bytes | None) -> bytes | None:
    if secret is None or secret == "" or secret == b"":
        return None
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def read_secret(*, secret: str | None = None, secret_file: str | Path | None = None,
                environ: dict[str, str] | None = None) -> str | None:
    """The instructor's key: ``secret``, else the file ``secret_file``, else the environment's.

    The environment variable is ``$DLBOOK_GRADING_SECRET``. A key file (its first line, stripped) must not lie inside the book's checkout: a key
    committed next to the exercises would be a key every student has. Returns None when no key
    is given (hidden inputs then take the public default, see :func:`hidden_seed`).
    """
    environ = os.environ if environ is None else environ
    if secret:
        return secret
    if secret_file is not None:
        path = Path(secret_file).resolve()
        root = book_root()
        if root is not None and (path == root or root in path.parents):
            raise ExerciseError(f"secret file: {path} is inside the book's checkout {root}; "
                                "keep the key outside it")
        try:
            key = path.read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError, UnicodeDecodeError) as exc:
            raise ExerciseError(f"secret file: {path} could not be read "
                                f"({type(exc).__name__})") from None
        if not key:
            raise ExerciseError(f"secret file: {path} holds no key on its first line")
        return key
    return environ.get(SECRET_ENV) or None


# CPython 3.11 before 3.11.8 can fail with "SystemError: AST constructor recursion depth
# mismatch" when two threads compile or parse at once (python/cpython#106905); `dlbook grade
# --jobs 2` reloads an exercise under a key in each worker thread, so loading is serialised.
_LOAD_LOCK = threading.RLock()


def load_exercise(name: str | Path, root: Path | None = None, *,
                  secret: str | bytes | None = None) -> Exercise:
    """Read and validate an exercise source; executes its grader cells (trusted instructor code).

    ``secret``: the instructor's key; grader cells draw hidden inputs from ``hidden_rng(label)``,
    seeded by :func:`hidden_seed` (the public default without a key). Thread-safe: one load
    at a time in a process.
    """
    with _LOAD_LOCK:
        return _load_exercise(name, root, secret=secret)


def _load_exercise(name: str | Path, root: Path | None, *,
                   secret: str | bytes | None) -> Exercise:
    import jupytext

    directory = find_exercise(name, root)
    source_path = directory / SOURCE_NAME
    exercise_id = directory.name
    if not _ID.match(exercise_id):
        raise ExerciseError(f"{directory}: exercise folder names are lowercase letters, digits and '-'")
    nb = jupytext.reads(source_path.read_text(encoding="utf-8"), fmt="py:percent")
    cells: list[tuple[str, str]] = []
    base: dict[str, Any] = {"__name__": f"dlbook_exercise_{exercise_id.replace('-', '_')}",
                            "hidden_rng": lambda label: np.random.default_rng(
                                hidden_seed(secret, exercise_id, label))}
    questions: list[Question] = []
    helpers = "".join(_sandbox_helpers(cell.source) for cell in nb.cells
                      if GRADER_TAG in cell.metadata.get("tags", []))
    for index, cell in enumerate(nb.cells):
        where = f"{source_path} cell {index}"
        if GRADER_TAG not in cell.metadata.get("tags", []):
            if cell.cell_type not in ("markdown", "code"):
                raise ExerciseError(f"{where}: only markdown and code cells are supported")
            cells.append((cell.cell_type, cell.source))
            continue
        code = compile(cell.source, f"<{exercise_id} grader cell {index}>", "exec")
        if "QUESTION" not in cell.source:
            exec(code, base)  # setup: EXERCISE, imports, helpers
            continue
        namespace = dict(base)
        exec(code, namespace)
        probes = {name: helpers + source for name, source in _probe_sources(cell.source, where).items()}
        allowed = _defined_names([c.source for c in nb.cells if c.cell_type == "code"
                                  and GRADER_TAG not in c.metadata.get("tags", [])]
                                 + [_sandbox_helpers(cell.source)]) | {"np"}
        for name, source in probes.items():
            _check_probe(name, source, allowed | _defined_names([source]), where)
        questions.append(_question(namespace, probes, where))
    if "EXERCISE" not in base:
        raise ExerciseError(f"{source_path}: a grader cell must define EXERCISE = {{'title': ..., 'chapter': ...}}")
    names = [q.name for q in questions]
    if not questions or len(set(names)) != len(names):
        raise ExerciseError(f"{source_path}: expected questions with distinct names, got {names}")
    meta = base["EXERCISE"]
    return Exercise(id=exercise_id, directory=directory, title=str(meta["title"]),
                    chapter=int(meta["chapter"]), questions=questions, cells=cells,
                    keyed=bool(secret), _secret=_key_bytes(secret))


def _question(namespace: dict[str, Any], probes: dict[str, str], where: str) -> Question:
    spec = namespace["QUESTION"]
    name, points = spec.get("name"), spec.get("points")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ExerciseError(f"{where}: QUESTION name must be a lowercase identifier, got {name!r}")
    if not isinstance(points, (int, float)) or points <= 0:
        raise ExerciseError(f"{where}: QUESTION points must be a positive number, got {points!r}")
    if not probes:
        raise ExerciseError(f"{where}: question {name!r} defines no probe_<name>(inputs) function")
    inputs = {}
    for key, value in namespace.get("INPUTS", {}).items():
        array = np.asarray(value)
        if not _INPUT_NAME.match(key) or array.dtype.kind not in "biuf":
            raise ExerciseError(f"{where}: INPUTS[{key!r}] must be a numeric array under an identifier")
        inputs[key] = array
    cases = list(namespace.get("CASES", []))
    if not cases:
        raise ExerciseError(f"{where}: question {name!r} has no CASES")
    total = sum(c["points"] for c in cases)
    if abs(total - points) > 1e-9:
        raise ExerciseError(f"{where}: the cases of {name!r} add up to {total} points, QUESTION says {points}")
    return Question(name=name, points=float(points), inputs=inputs, probes=probes, cases=cases,
                    namespace=namespace)


def list_exercises(root: Path | None = None, *,
                   secret: str | bytes | None = None) -> list[Exercise]:
    """Every exercise under ``root`` (default: the book's ``exercises/``), sorted by chapter then id."""
    root = root if root is not None else exercises_root()
    if root is None:
        return []
    found = [load_exercise(p, root, secret=secret) for p in sorted(root.iterdir())
             if (p / SOURCE_NAME).is_file()]
    return sorted(found, key=lambda e: (e.chapter, e.id))


def write_notebooks(exercise: Exercise) -> list[Path]:
    """(Re)generate the student and solution notebooks next to the source; returns their paths."""
    written = []
    for path, solution in ((exercise.student_path, False), (exercise.solution_path, True)):
        path.write_text(exercise.notebook(solution=solution), encoding="utf-8")
        written.append(path)
    return written
