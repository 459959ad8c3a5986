"""Secret hidden inputs: an instructor's key derives them; without it, the public defaults."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from dlbook.cli import main
from dlbook.grading import ExerciseError, Limits, grade_batch, list_exercises, load_exercise
from dlbook.grading.exercise import SECRET_ENV, hidden_seed, read_secret

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_exercises import EXERCISES, ROOT, SEEDED_BUGS, _seeded  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:Traits should be given as instances:DeprecationWarning")
KEY = "a course key used only by this test"


def test_the_seed_is_the_label_without_a_key_and_a_keyed_hash_with_one():
    assert hidden_seed(None, "ch3-conv2d", 3102) == 3102 == hidden_seed("", "ch3-conv2d", 3102)
    keyed = hidden_seed(KEY, "ch3-conv2d", 3102)
    assert keyed == hidden_seed(KEY.encode(), "ch3-conv2d", 3102)  # deterministic, str or bytes
    assert keyed != 3102 and 0 <= keyed < 2 ** 128
    others = {hidden_seed("another key", "ch3-conv2d", 3102),
              hidden_seed(KEY, "ch3-max-pool", 3102), hidden_seed(KEY, "ch3-conv2d", 3103)}
    assert keyed not in others and len(others) == 3
    with pytest.raises(ExerciseError, match="non-negative integer"):
        hidden_seed(None, "ch3-conv2d", "a label")


def test_every_exercise_draws_its_random_inputs_from_the_key():
    public = {e.id: e for e in list_exercises(ROOT)}
    again = {e.id: e for e in list_exercises(ROOT)}
    keyed = {e.id: e for e in list_exercises(ROOT, secret=KEY)}
    for exercise_id, exercise in public.items():
        assert not exercise.keyed and keyed[exercise_id].keyed
        changed = 0
        for q in exercise.questions:
            for name, value in q.inputs.items():
                assert np.array_equal(value, again[exercise_id].question(q.name).inputs[name])
                other = keyed[exercise_id].question(q.name).inputs[name]
                changed += not np.array_equal(value, other)
        assert changed, f"{exercise_id}: no hidden input depends on the key (use hidden_rng)"


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_under_a_key_solution_full_student_zero_seeded_bug_loses_it(exercise_id, tmp_path):
    exercise = load_exercise(ROOT / exercise_id, secret=KEY)
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "solution.ipynb").write_bytes(exercise.solution_path.read_bytes())
    (subs / "untouched.ipynb").write_bytes(exercise.student_path.read_bytes())
    for q in exercise.questions:
        _seeded(exercise, q.name, subs)
    rows = {r.submission: r for r in grade_batch(exercise, [subs], tmp_path / "out",
                                                  limits=Limits(timeout=120), jobs=2, trusted=True)}
    assert rows["solution"].score == exercise.max_score, rows["solution"].report["feedback"]
    assert rows["untouched"].score == 0
    for q in exercise.questions:
        assert rows[f"wrong_{q.name}"].score == exercise.max_score - q.points, q.name
    assert set(SEEDED_BUGS[exercise_id]) == {q.name for q in exercise.questions}


def test_the_key_comes_from_the_option_the_file_or_the_environment(tmp_path, monkeypatch):
    key_file = tmp_path / "course.key"
    key_file.write_text("from-the-file\nsecond line ignored\n")
    environ = {SECRET_ENV: "from-the-environment"}
    assert read_secret(secret="given", secret_file=key_file, environ=environ) == "given"
    assert read_secret(secret_file=key_file, environ=environ) == "from-the-file"
    assert read_secret(environ=environ) == "from-the-environment"
    assert read_secret(environ={}) is None
    (tmp_path / "empty.key").write_text("\n")
    with pytest.raises(ExerciseError, match="no key"):
        read_secret(secret_file=tmp_path / "empty.key", environ={})
    inside = ROOT / EXERCISES[0] / "source.py"  # any file in the checkout: refused as a key file
    with pytest.raises(ExerciseError, match="inside the book's checkout"):
        read_secret(secret_file=inside, environ={})


def test_cli_grades_with_a_key_file_and_refuses_one_inside_the_book(tmp_path, capsys):
    subs = tmp_path / "subs"
    subs.mkdir()
    exercise = load_exercise(ROOT / "ch3-max-pool")
    (subs / "alice.ipynb").write_bytes(exercise.solution_path.read_bytes())
    key_file = tmp_path / "course.key"
    key_file.write_text(KEY + "\n")
    out = tmp_path / "out"
    assert main(["grade", "ch3-max-pool", str(subs), "--out", str(out), "--secret-file",
                 str(key_file), "--quiet", "--timeout", "120", "--trusted"]) == 0
    report = json.loads((out / "alice.json").read_text())
    assert report["score"] == exercise.max_score and KEY not in json.dumps(report)
    assert main(["grade", "ch3-max-pool", str(subs), "--out", str(tmp_path / "x"), "--secret-file",
                 str(ROOT / "README.md"), "--quiet"]) == 2
    assert "inside the book's checkout" in capsys.readouterr().err


def test_with_a_key_each_notebook_gets_its_own_inputs():
    exercise = load_exercise(ROOT / "ch1-softmax-cross-entropy", secret=KEY)
    cells = ["import numpy as np", "def softmax(x, axis=-1):\n    return x"]
    same = exercise.for_submission(list(cells)).inputs_npz()
    assert exercise.for_submission(cells).inputs_npz() == same  # deterministic per notebook
    assert exercise.for_submission(cells + ["# one comment more"]).inputs_npz() != same
    assert exercise.for_submission(cells).inputs_npz() != exercise.inputs_npz()
    public = load_exercise(ROOT / "ch1-softmax-cross-entropy")
    assert public.for_submission(cells) is public  # no key: the public defaults for everyone


HARD_CODED = '''
import numpy as np
ANSWERS = {KEYS}
def softmax(x, axis=-1, temperature=1.0):
    """No softmax at all: the answers to the inputs an earlier run printed."""
    return np.array(ANSWERS[(x.shape, axis, temperature)])
'''


def test_answers_hard_coded_from_printed_inputs_fail(tmp_path, monkeypatch):
    """A student prints the hidden inputs, computes the answers elsewhere, hard-codes them."""
    import torch

    from dlbook.grading.exercise import Exercise

    folder = ROOT / "ch1-softmax-cross-entropy"
    exercise = load_exercise(folder, secret=KEY)
    student = json.loads((folder / f"{folder.name}.ipynb").read_text(encoding="utf-8"))
    printer_cells = ["".join(c["source"]) for c in student["cells"] if c["cell_type"] == "code"]
    seen = exercise.for_submission(printer_cells).question("softmax").inputs  # what it printed
    answers = {}
    for name, axis, temperature in (("wide", -1, 2.0), ("cube", 0, 4.0), ("cube", 1, 0.5), ("cube", -1, 1.0)):
        got = torch.softmax(torch.from_numpy(seen[name]) / temperature, dim=axis).numpy()
        answers[(seen[name].shape, axis, temperature)] = got.tolist()
    cheat = json.loads(json.dumps(student))
    cheat["cells"].append({"cell_type": "code", "execution_count": None, "id": "cheat",
                           "metadata": {}, "outputs": [],
                           "source": HARD_CODED.replace("{KEYS}", repr(answers))})
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "cheat.ipynb").write_text(json.dumps(cheat), encoding="utf-8")

    def softmax_score(out):
        rows = grade_batch(exercise, [subs], out, limits=Limits(timeout=120), trusted=True)
        return {q["name"]: q["score"] for q in rows[0].report["questions"]}["softmax"]

    assert softmax_score(tmp_path / "out") == 0  # its own inputs are not the ones it printed
    # the negative case: with one set of inputs for every notebook the cheat takes the points
    fixed = exercise.for_submission(printer_cells)
    monkeypatch.setattr(Exercise, "for_submission", lambda self, cells: fixed)
    assert softmax_score(tmp_path / "fixed") == 2
