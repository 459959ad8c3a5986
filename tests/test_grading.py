"""The grader (dlbook.grading): hostile submissions, integrity, determinism, atomic writes, CLI.

Every hostile notebook is the exercise's solution or untouched student notebook with one cell
added, graded in one batch with a correct submission that must keep full marks. Timeouts are
5 s so the module stays well under a minute on two shared cores.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import exercise_notebook, with_cell
from dlbook.cli import main
from dlbook.grading import Limits, grade_batch, load_exercise
from dlbook.grading.exercise import list_exercises
from dlbook.grading import batch as batch_module
from dlbook.grading.batch import atomic_write, collect_submissions, read_submission, submission_names
from dlbook.grading.sandbox import _load_npz, _OutputCollector, detect_isolation

ROOT = Path(__file__).resolve().parents[1] / "exercises"
EXERCISE = "ch1-softmax-cross-entropy"  # 6 points: softmax 2, softmax_jvp 2, smoothed_cross_entropy 2
NAMESPACES = detect_isolation() == "namespaces"
LIMITS = Limits(timeout=5, memory_mb=1024, processes=64)

# otter's import pulls in nbconvert, whose traitlets use emits this; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:Traits should be given as instances:DeprecationWarning")


def _notebook(kind: str) -> dict:
    return exercise_notebook(EXERCISE, kind)


def _replace(nb: dict, old: str, new: str) -> dict:
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        cell["source"] = "".join(cell["source"]).replace(old, new)
    return nb


def _write(folder: Path, name: str, nb: dict | str) -> Path:
    path = folder / f"{name}.ipynb"
    path.write_text(nb if isinstance(nb, str) else json.dumps(nb), encoding="utf-8")
    return path


TAMPER = '''
import glob, os
import numpy as np
# 1. make every comparison in this process say "equal"
np.allclose = lambda *a, **k: True
np.array_equal = lambda *a, **k: True
np.testing.assert_allclose = lambda *a, **k: None
try:
    import torch
    torch.allclose = lambda *a, **k: True
except ImportError:
    pass
# 2. replace the test helpers and print what a passing run prints
def close(*a, **k):
    return True
equal = all_of = close
print("softmax results: All test cases passed!\\nTotal score: 6.0 / 6.0")
# 3. write fake results where the grader writes, and rewrite the hidden tests
for target in ("gradebook.csv", "tamper.json", "correct.json"):
    try:
        with open(os.path.join(OUT, target), "w") as f:
            f.write("tamper,6,6,graded,0\\n")
        print("WROTE", target)
    except OSError as exc:
        print("refused", target, type(exc).__name__)
try:
    hidden = open(SOURCE).read()
    print("READ hidden tests", len(hidden))
    with open(SOURCE, "a") as f:
        f.write("\\n# tampered\\n")
    print("WROTE hidden tests")
except OSError as exc:
    print("refused hidden tests", type(exc).__name__)
# 4. plant "outputs" where the sandbox's results go
try:
    np.savez("../out/softmax__wide.npz", value=np.zeros((4, 9)))
except OSError:
    pass
'''


@pytest.fixture
def exercise_copy(tmp_path):
    """The exercise in a temporary folder, so a tampering attempt can never reach the repository."""
    folder = tmp_path / "exercises" / EXERCISE
    shutil.copytree(ROOT / EXERCISE, folder)
    return folder


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "gradebook.csv", newline="") as f:
        return {row["submission"]: row for row in csv.DictReader(f)}


def _hostile_batch(folder: Path, exercise_dir: Path, out: Path, *, namespaces: bool) -> dict[str, tuple[str, float]]:
    """Write the hostile submissions; return the expected (status, score) of each."""
    solution, student = _notebook("solution"), _notebook("student")
    after_q1 = "print(\"softmax: self-checks passed\")"
    tamper = f"OUT = {str(out)!r}\nSOURCE = {str(exercise_dir / 'source.py')!r}\n" + TAMPER
    expected = {
        "correct": ("graded", 6),
        "loop": ("timeout", 0),
        "sys_exit": ("error", 2),  # cells after the exit do not run; softmax was defined before it
        "os_exit": ("error", 0),  # the process is gone before anything is checked
        "invalid_json": ("invalid-notebook", 0),
        "memory_cell": ("memory", 6),  # 2 GiB in a cell under a 1 GiB limit; the functions still work
        "memory_function": ("memory", 4),  # softmax itself allocates 2 GiB: only its points are lost
        "tamper": ("graded", 0),
        "huge_print": ("graded", 6),
        "raise_at_import": ("graded", 0),  # numpy never imported: every function fails
    }
    _write(folder, "correct", solution)
    _write(folder, "loop", with_cell(solution, "while True:\n    pass"))
    _write(folder, "sys_exit", with_cell(solution, "import sys\nsys.exit(3)", after=after_q1))
    _write(folder, "os_exit", with_cell(solution, "import os\nos._exit(0)", after=after_q1))
    _write(folder, "invalid_json", '{"cells": [ {"cell_type": "code", "source": "x = 1"')
    _write(folder, "memory_cell", with_cell(solution, "import numpy as np\nhog = np.ones(2**28)"))
    _write(folder, "memory_function", _replace(solution, '    """Softmax of ``x`` along ``axis``, stable for large inputs; same shape as ``x``."""',
                                               '    """Softmax."""\n    hog = np.ones(2**28)'))
    _write(folder, "tamper", with_cell(student, tamper, after="import numpy as np"))
    _write(folder, "huge_print", with_cell(solution, "import sys\nfor _ in range(300):\n    sys.stdout.write('x' * 999_999 + '\\n')"))
    _write(folder, "raise_at_import", _replace(solution, "import numpy as np\n\nnp.set_printoptions",
                                               "raise RuntimeError('broken at import')\nimport numpy as np\n\nnp.set_printoptions"))
    if namespaces:
        expected["kill_parent"] = ("graded", 6)  # pid namespace: the grader is out of reach
        _write(folder, "kill_parent", with_cell(solution, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
                                                           "os.killpg(0, signal.SIGKILL)"))
        expected["fork_bomb"] = ("timeout", 0)  # bounded by the process limit, killed at the deadline
        _write(folder, "fork_bomb", with_cell(solution, "import os, time\nwhile True:\n    try:\n        os.fork()\n"
                                                         "    except OSError:\n        time.sleep(60)"))
        expected["escape"] = ("graded", 6)  # a setsid'd child outliving the notebook dies with its namespace
        _write(folder, "escape", with_cell(solution, "import os\nif os.fork() == 0:\n    os.setsid()\n"
                                                      "    os.execv('/bin/sleep', ['sleep', '31.4159'])"))
    return expected


def _assert_batch(out: Path, expected: dict[str, tuple[str, float]], exercise_dir: Path, source_before: str,
                  namespaces: bool) -> None:
    rows = _rows(out)
    assert set(rows) == set(expected)
    for name, (status, score) in expected.items():
        report = json.loads((out / f"{name}.json").read_text())
        assert (rows[name]["status"], float(rows[name]["score"])) == (status, score), (name, report["feedback"], report["output"][-500:])
        assert (report["status"], report["score"]) == (status, score)
        assert float(rows[name]["max_score"]) == 6
    tamper = json.loads((out / "tamper.json").read_text())
    assert "Total score: 6.0 / 6.0" in tamper["output"]  # it printed fake results; they did not count
    assert "WROTE" not in (out / "correct.json").read_text()
    huge = json.loads((out / "huge_print.json").read_text())
    assert len(huge["output"]) < 80_000 and any("printed 3000001" in n for n in huge["notes"])
    if namespaces:  # hidden tests unreadable and unwritable, grader's folder unreachable
        assert "refused hidden tests" in tamper["output"] and "READ hidden tests" not in tamper["output"]
        assert "WROTE" not in tamper["output"]
        assert (exercise_dir / "source.py").read_text() == source_before
        assert not any(b"31.4159" in Path(f"/proc/{p}/cmdline").read_bytes()
                       for p in os.listdir("/proc") if p.isdigit() and Path(f"/proc/{p}/cmdline").exists())


@pytest.mark.skipif(not NAMESPACES, reason="Linux namespaces are not available here")
def test_sandbox_builds_when_an_allowed_folder_lives_under_tmp(monkeypatch):
    # A virtual environment in a temporary folder (a fresh clone under /tmp, as CI makes) puts
    # an allowed folder under /tmp, where the sandbox's /tmp symlink used to go: building the
    # root failed ("File exists") and grading fell back to process isolation without a word.
    import tempfile

    from dlbook.grading import sandbox

    extra = Path(tempfile.mkdtemp(prefix="dlbook-allowed-", dir="/tmp"))
    try:
        (extra / "marker.txt").write_text("visible, read-only")
        allow = sandbox._allowlist
        monkeypatch.setattr(sandbox, "_allowlist", lambda: allow() + [str(extra)])
        sandbox._trial.cache_clear()  # the trial run's verdict is kept per process
        assert sandbox.isolation_problem() is None
    finally:
        sandbox._trial.cache_clear()
        shutil.rmtree(extra)


@pytest.mark.skipif(not NAMESPACES, reason="Linux namespaces are not available here")
def test_hostile_batch_in_namespaces_and_determinism(tmp_path, exercise_copy):
    subs = tmp_path / "subs"
    subs.mkdir()
    out1, out2 = tmp_path / "out1", tmp_path / "out2"
    expected = _hostile_batch(subs, exercise_copy, out1, namespaces=True)
    source_before = (exercise_copy / "source.py").read_text()
    exercise = load_exercise(exercise_copy)
    start = time.monotonic()
    grade_batch(exercise, [subs], out1, limits=LIMITS, jobs=2, isolation="namespaces")
    assert time.monotonic() - start < 45
    _assert_batch(out1, expected, exercise_copy, source_before, namespaces=True)
    # the same inputs give the same files; only the seconds column varies
    grade_batch(exercise, [subs], out2, limits=LIMITS, jobs=2, isolation="namespaces")
    first, second = _rows(out1), _rows(out2)
    for name in first:
        assert {k: v for k, v in first[name].items() if k != "seconds"} == \
               {k: v for k, v in second[name].items() if k != "seconds"}
        assert (out1 / f"{name}.json").read_bytes() == (out2 / f"{name}.json").read_bytes(), name


def test_hostile_batch_as_a_plain_process(tmp_path, exercise_copy):
    """Without namespaces the limits, the statuses and the value-only checks still hold."""
    subs = tmp_path / "subs"
    subs.mkdir()
    out = tmp_path / "out"
    expected = _hostile_batch(subs, exercise_copy, out, namespaces=False)
    keep = {"correct", "loop", "os_exit", "memory_function", "tamper", "huge_print", "invalid_json"}
    for name in set(expected) - keep:
        (subs / f"{name}.ipynb").unlink()
        del expected[name]
    source_before = (exercise_copy / "source.py").read_text()
    # unconfined, "tamper" really imports torch: several seconds on a loaded machine, so more time
    # than LIMITS' 5 s (it used to time out under a load average of 14 on two cores)
    grade_batch(load_exercise(exercise_copy), [subs], out, limits=dataclasses.replace(LIMITS, timeout=20), jobs=2,
                isolation="process", trusted=True)
    rows = _rows(out)
    for name, (status, score) in expected.items():
        assert (rows[name]["status"], float(rows[name]["score"])) == (status, score), name
    # results are written after every submission has finished: the fake files were replaced
    assert json.loads((out / "correct.json").read_text())["score"] == 6
    assert json.loads((out / "tamper.json").read_text())["score"] == 0
    # (here the submission could rewrite the exercise source: only this batch is protected,
    # because the grader loaded the hidden tests before running anything; see the README)
    assert (exercise_copy / "source.py").read_text() in (source_before, source_before + "\n# tampered\n")


def test_parallel_jobs_are_faster(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    for i in range(4):
        _write(subs, f"sleeper{i}", with_cell(_notebook("solution"), "import time\ntime.sleep(1.0)"))
    exercise = load_exercise(ROOT / EXERCISE)
    seconds = {}
    for jobs in (1, 2):
        start = time.monotonic()
        rows = grade_batch(exercise, [subs], tmp_path / f"out{jobs}", limits=LIMITS, jobs=jobs,
                           trusted=True)  # the book's own notebooks: process mode is fine
        seconds[jobs] = time.monotonic() - start
        assert [r.score for r in rows] == [6] * 4
    assert seconds[2] < 0.75 * seconds[1], seconds


def test_results_are_replaced_atomically(tmp_path, monkeypatch):
    subs = tmp_path / "subs"
    subs.mkdir()
    _write(subs, "alice", _notebook("solution"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "gradebook.csv").write_text("previous gradebook\n")
    exercise = load_exercise(ROOT / EXERCISE)

    def failing_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(batch_module.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        grade_batch(exercise, [subs], out, limits=LIMITS, trusted=True)
    assert (out / "gradebook.csv").read_text() == "previous gradebook\n"  # the old file, whole
    assert sorted(p.name for p in out.iterdir()) == ["gradebook.csv"]  # no partial or temporary files
    monkeypatch.undo()
    grade_batch(exercise, [subs], out, limits=LIMITS, trusted=True)
    assert _rows(out)["alice"]["score"] == "6"
    assert sorted(p.name for p in out.iterdir()) == ["alice.json", "gradebook.csv"]


def test_atomic_write_replaces_whole_files(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_output_collector_keeps_head_and_tail():
    collector = _OutputCollector(10)
    for chunk in (b"abc", b"defgh", b"ijklmnop", b"qrst"):
        collector.feed(chunk)
    assert collector.total == 20
    text = collector.text()
    assert text.startswith("abcde") and text.endswith("pqrst") and "10 bytes of output not kept" in text
    small = _OutputCollector(100)
    small.feed(b"hello")
    assert small.text() == "hello"


def test_results_refuse_pickles():
    buffer = io.BytesIO()
    np.savez(buffer, value=np.array([{"a": 1}], dtype=object))  # an object array is a pickle
    with pytest.raises(ValueError):
        _load_npz(buffer.getvalue(), 1000)
    buffer = io.BytesIO()
    np.savez(buffer, value=np.arange(3.0))
    assert np.array_equal(_load_npz(buffer.getvalue(), 1000)["value"], [0.0, 1.0, 2.0])


def test_collecting_and_naming_submissions(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "alice.ipynb").write_text("{}")
    (tmp_path / "b" / "alice.ipynb").write_text("{}")
    (tmp_path / "b" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "b" / ".ipynb_checkpoints" / "alice-checkpoint.ipynb").write_text("{}")
    paths = collect_submissions([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["a/alice.ipynb", "b/alice.ipynb"]
    assert submission_names(paths) == ["a__alice", "b__alice"]
    with pytest.raises(FileNotFoundError):
        collect_submissions([tmp_path / "nope.ipynb"])


def test_reading_a_submission_never_executes_it(tmp_path):
    path = _write(tmp_path, "s", with_cell(_notebook("student"), "raise SystemExit"))
    cells, positions, metadata = read_submission(path)
    assert cells[0] == "raise SystemExit" and positions[0] == 1
    assert metadata["dlbook"]["exercise"] == EXERCISE


def test_cli_lists_exercises_and_grades(tmp_path, capsys):
    assert main(["exercises", "--check"]) == 0
    listing = capsys.readouterr().out
    folders = sorted(p.parent.name for p in ROOT.glob("*/source.py"))
    points = sum(q.points for e in list_exercises() for q in e.questions)
    assert f"{len(folders)} exercises, {points:g} points" in listing
    assert all(name in listing for name in folders) and len(folders) >= 6
    subs = tmp_path / "subs"
    subs.mkdir()
    _write(subs, "alice", _notebook("solution"))
    _write(subs, "bob", _notebook("student"))
    assert main(["grade", EXERCISE, str(subs), "--out", str(tmp_path / "out"), "--timeout", "10",
                 "--trusted", "--jobs", "2", "--quiet"]) == 0
    rows = _rows(tmp_path / "out")
    assert (rows["alice"]["score"], rows["bob"]["score"]) == ("6", "0")
    assert list(rows["alice"]) == ["submission", "file", "score", "max_score", "status", "seconds"]
    assert (rows["alice"]["file"], rows["bob"]["file"]) == ("alice.ipynb", "bob.ipynb")
    assert main(["grade", "no-such-exercise", str(subs), "--out", str(tmp_path / "x")]) == 2
