"""The student release: student notebooks and a README, no solution, no hidden test, no key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlbook.cli import main
from dlbook.grading import list_exercises
from dlbook.grading.release import release

ROOT = Path(__file__).resolve().parents[1] / "exercises"
KEY = "a course key used only by this test"


def _leaks(folder: Path, exercises, key: str) -> list[str]:
    """What in a release folder a student must not get (empty list: nothing)."""
    allowed = {"README.md"} | {f"{e.id}/{e.id}.ipynb" for e in exercises}
    problems = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_dir():
            continue
        if relative not in allowed:
            problems.append(f"unexpected file {relative}")
            continue
        text = path.read_text(encoding="utf-8")
        for marker in ("BEGIN SOLUTION", "QUESTION =", "probe_", "CASES", "tags=[\"grader\"]", key):
            if marker in text:
                problems.append(f"{relative} contains {marker!r}")
    return problems


def test_release_holds_student_notebooks_and_a_readme_only(tmp_path, monkeypatch):
    monkeypatch.setenv("DLBOOK_GRADING_SECRET", KEY)  # a key in the environment never leaks
    exercises = list_exercises(ROOT)
    out = tmp_path / "release"
    written = release(exercises, out)
    assert len(written) == len(exercises) + 1
    assert _leaks(out, exercises, KEY) == []
    for exercise in exercises:
        released = out / exercise.id / f"{exercise.id}.ipynb"
        assert released.read_bytes() == exercise.student_path.read_bytes()
        nb = json.loads(released.read_text(encoding="utf-8"))
        assert nb["metadata"]["dlbook"]["notebook"] == "student"
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "How to hand in" in readme and all(f"{e.id}/{e.id}.ipynb" in readme for e in exercises)
    # the negative case: a solution copied in, or the key written down, is caught
    (out / exercises[0].id / "solution.ipynb").write_bytes(exercises[0].solution_path.read_bytes())
    (out / "README.md").write_text(readme + KEY)
    assert _leaks(out, exercises, KEY) == [f"README.md contains {KEY!r}",
                                           f"unexpected file {exercises[0].id}/solution.ipynb"]


def test_release_refuses_a_folder_in_use_and_the_cli_writes_one(tmp_path, capsys):
    exercises = list_exercises(ROOT)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        release(exercises, tmp_path / "used")
    with pytest.raises(ValueError, match="inside the exercise sources"):
        release(exercises[:1], exercises[0].directory / "release")
    assert main(["exercises", "--release", str(tmp_path / "used")]) == 2
    assert main(["exercises", "ch3-conv2d", "--release", str(tmp_path / "one")]) == 0
    listed = capsys.readouterr().out.split()
    assert sorted(Path(p).relative_to(tmp_path / "one").as_posix() for p in listed) == \
        ["README.md", "ch3-conv2d/ch3-conv2d.ipynb"]
