"""The graded exercises (exercises/<id>/): generated notebooks, and what the grader gives them.

For every exercise: the committed student and solution notebooks are exactly what the source
generates; they need numpy only; the hidden tests call the graded functions on shapes the
self-checks do not use; the solution scores full marks, the untouched student notebook zero, and
a seeded wrong answer in each question loses exactly that question's points.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlbook.grading import grade_batch, list_exercises, load_exercise, write_notebooks
from dlbook.grading.exercise import ExerciseError, SOURCE_NAME
from dlbook.grading.sandbox import Limits

# otter's import pulls in nbconvert, whose traitlets use emits this; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:Traits should be given as instances:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[1] / "exercises"
EXERCISES = sorted(p.name for p in ROOT.iterdir() if (p / SOURCE_NAME).is_file())

# One plausible bug per question, written into the solution: (old text, new text), each old text
# must occur exactly once in the solution notebook. Each bug must cost exactly its question.
SEEDED_BUGS = {
    "ch1-softmax-cross-entropy": {
        "softmax": ("shifted = scaled - np.max(scaled, axis=axis, keepdims=True)", "shifted = x - np.max(x, axis=axis, keepdims=True)"),
        "softmax_jvp": ("np.sum(p * v, axis=-1, keepdims=True)) / temperature", "np.sum(p * v, axis=-1, keepdims=True))"),
        "smoothed_cross_entropy": ("q = np.full_like(log_p, smoothing / k)", "q = np.full_like(log_p, smoothing / (k - 1))"),
    },
    "ch1-perceptron": {
        "margin_step": ("return w + lr * s * x, b + lr * s", "return w + lr * x, b + lr"),
        "pocket_train": ("return pocket_w, pocket_b, pocket_errors", "return w, b, pocket_errors"),
        "margin_experiment": ("if target * (x @ w + b) <= margin:", "if target * (x @ w + b) <= 0:"),
    },
    "ch2-two-layer-backprop": {
        "tied_forward": ("recon = h @ w + c  # (N, D)", "recon = h @ w  # (N, D)"),
        "tied_backward": ("dz = dh * (1.0 - h ** 2)  # (N, H)", "dz = dh * (1.0 - h)  # (N, H)"),
    },
    "ch2-sgd-momentum": {
        "rmsprop": ("square = alpha * square + (1.0 - alpha) * grad ** 2", "square = alpha * square + grad ** 2"),
        "rmsprop_momentum": ("buf = momentum * buf + grad / avg", "buf = momentum * buf + lr * grad / avg"),
        "largest_stable_lr": ("v = momentum * v + A @ x", "v = A @ x"),
    },
    "ch3-conv2d": {
        "conv_output_size": ("return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1",
                             "return (size + 2 * padding - kernel) // stride + 1"),
        "conv2d_forward": ("w[g * fg:(g + 1) * fg], axes", "w[g * fg:(g + 1) * fg, :, ::-1, ::-1], axes"),
        "conv2d_backward": ("dxp[:, chans, rows, cols] += np.tensordot", "dxp[:, chans, rows, cols] = np.tensordot"),
        "influence_count": ("i * stride - padding + dilation * q", "i * stride - padding + q"),
    },
    "ch6-kmeans-share": {
        "kmeans_share": ("codebook[j] = members.mean()", "codebook[j] = np.median(members)"),
        "codebook_gradient": ("weights=np.asarray(dw, dtype=float).ravel()",
                              "weights=np.abs(np.asarray(dw, dtype=float)).ravel()"),
        "shared_storage_bits": ("return num_weights * bits + 32 * 2 ** bits", "return num_weights * bits"),
    },
    "ch6-distill-loss": {
        "soft_targets": ("z = np.asarray(logits, dtype=float) / T", "z = np.asarray(logits, dtype=float)"),
        "ensemble_distill_loss": ("return float(alpha * T**2 * kl + (1 - alpha) * ce)",
                                  "return float(alpha * kl + (1 - alpha) * ce)"),
        "ensemble_distill_grad": ("ds = alpha * T * (softmax(s / T) - q_t) / n", "ds = alpha * (softmax(s / T) - q_t) / n"),
    },
    "ch3-max-pool": {
        "max_pool2d_forward": ("(padding, padding)), constant_values=-np.inf)", "(padding, padding)), constant_values=0.0)"),
        "max_pool2d_backward": ("mask = window == window.max(axis=(2, 3), keepdims=True)", "mask = window == window.max()"),
    },
    "ch4-shapes-params": {
        "output_shapes": ("h = (h + 2 * p - k) // s + 1", "h = (h + p - k) // s + 1"),
        "parameter_counts": ("counts.append(a * (channels * b * b + 1))", "counts.append(a * channels * b * b)"),
        "receptive_field": ("r = r + (k - 1) * jump", "r = r + (k - 1)"),
    },
    "ch4-residual-backward": {
        "residual_forward": ("    y = np.maximum(s, 0.0)\n", "    y = s\n"),
        "residual_backward": ("dp = d  # the projection's", "dp = dout  # the projection's"),
        "identity_shortcut": ("        dx = dx + d\n", "        dx = dx\n"),
    },
    "ch5-gru-cell": {
        "gru_cell_forward": ("h_next = (1 - z) * n + z * h_prev", "h_next = z * n + (1 - z) * h_prev"),
        "gru_cell_backward": ("dgh = np.concatenate([da_r, da_z, da_n * r], axis=1)",
                              "dgh = np.concatenate([da_r, da_z, da_n], axis=1)"),
    },
    "ch5-bptt": {
        "rnn_loss": ("loss += 0.5 * np.sum((o - y[t]) ** 2) / x.shape[1]",
                     "loss += 0.5 * np.sum((o - y[t]) ** 2)"),
        "rnn_bptt": ('dh = np.outer(do, params["w_o"]) + dh_next', 'dh = np.outer(do, params["w_o"])'),
        "clip_by_norm": ("total = float(np.sqrt(squares))", "total = float(squares)"),
    },
    "ch7-adam": {
        "adam_step": ("m_hat = m / (1.0 - beta1 ** t)", "m_hat = m"),
        "adamw_step": ("param = param * (1.0 - lr * weight_decay)", "param = param - lr * weight_decay"),
        "adamax_step": ("u = np.maximum(beta2 * u, np.abs(grad) + eps)", "u = np.maximum(u, np.abs(grad) + eps)"),
    },
    "ch7-prelu": {
        "prelu_forward": ("out = np.where(x > 0, x, alpha * x)", "out = np.maximum(x, 0) + alpha * x"),
        "prelu_backward": ("contrib = np.where(negative, dout * x, 0.0)", "contrib = np.where(negative, dout, 0.0)"),
    },
}


@pytest.fixture(scope="module")
def exercises():
    return {e.id: e for e in list_exercises(ROOT)}


def test_every_chapter_one_to_three_has_two_exercises(exercises):
    for chapter in (1, 2, 3):
        assert sum(e.chapter == chapter for e in exercises.values()) >= 2, f"chapter {chapter}"
    assert set(exercises) == set(EXERCISES) == set(SEEDED_BUGS)


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_committed_notebooks_are_regenerated_byte_for_byte(exercises, exercise_id):
    ex = exercises[exercise_id]
    assert ex.student_path.read_bytes() == ex.notebook(solution=False).encode("utf-8")
    assert ex.solution_path.read_bytes() == ex.notebook(solution=True).encode("utf-8")


def test_regeneration_check_catches_a_stale_notebook(exercises):
    """The negative case: a hand edit to a committed notebook is no longer what the source makes."""
    ex = exercises[EXERCISES[0]]
    edited = ex.student_path.read_text(encoding="utf-8").replace("raise NotImplementedError", "pass", 1)
    assert edited != ex.notebook(solution=False)


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_student_notebook_holds_no_solution_and_no_grader_code(exercises, exercise_id):
    ex = exercises[exercise_id]
    student = json.loads(ex.student_path.read_text(encoding="utf-8"))
    solution = json.loads(ex.solution_path.read_text(encoding="utf-8"))
    text = "\n".join("".join(c["source"]) for c in student["cells"])
    assert "BEGIN SOLUTION" not in text and "QUESTION" not in text and "probe_" not in text
    assert len(student["cells"]) == len(solution["cells"])
    stubs = text.count("raise NotImplementedError")
    assert stubs >= len({q.name for q in ex.questions}) - 1  # sgd: one function serves two questions
    for q in ex.questions:  # every question is announced to the student with its points
        assert f"({q.points:g} point" in text or f"| {q.points:g} |" in text, q.name


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_notebooks_need_only_numpy_and_the_solution_passes_its_self_checks(exercises, exercise_id):
    """Student notebooks must run without otter (or torch, or dlbook) installed."""
    ex = exercises[exercise_id]
    for path in (ex.student_path, ex.solution_path):
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            for node in ast.walk(ast.parse("".join(cell["source"]))):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                    assert all(n.split(".")[0] == "numpy" for n in names), (path.name, names)
    script = (
        "import builtins, json, sys\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name.split('.')[0] in ('otter', 'torch', 'dlbook'):\n"
        "        raise ImportError('not available to students: ' + name)\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "ns = {'__name__': '__main__'}\n"
        "for cell in json.load(open(sys.argv[1]))['cells']:\n"
        "    if cell['cell_type'] == 'code':\n"
        "        exec(''.join(cell['source']), ns)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(ex.solution_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    checks = [line for line in done.stdout.splitlines() if line.endswith("self-checks passed")]
    assert len(checks) >= 2, done.stdout


def _array_shapes(ex) -> dict[str, dict[str, set]]:
    """Shapes of the arrays each graded function receives in the self-checks and in the probes."""
    seen: dict[str, dict[str, set]] = {"public": {}, "hidden": {}}
    phase = ["public"]

    def recording(name, fn):
        def wrapper(*args, **kwargs):
            shapes = tuple(a.shape for a in [*args, *kwargs.values()] if isinstance(a, np.ndarray))
            if any(shapes):  # functions of plain numbers (conv_output_size) have no shapes
                seen[phase[0]].setdefault(name, set()).add(shapes)
            return fn(*args, **kwargs)
        return wrapper

    ns: dict = {"__name__": "__main__"}
    for cell in json.loads(ex.solution_path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "code":
            before = set(ns)
            with contextlib.redirect_stdout(io.StringIO()):
                exec("".join(cell["source"]), ns)
            for name in set(ns) - before:
                if inspect.isfunction(ns[name]) and name != "finite_difference":
                    ns[name] = recording(name, ns[name])
    phase[0] = "hidden"
    for q in ex.questions:
        for probe, source in q.probes.items():
            scope = dict(ns, np=np)
            exec(source, scope)
            scope[f"probe_{probe}"]({k: v.copy() for k, v in q.inputs.items()})
    return seen


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_hidden_tests_use_shapes_the_self_checks_do_not(exercises, exercise_id):
    seen = _array_shapes(exercises[exercise_id])
    assert seen["hidden"], "the probes called no graded function with arrays"
    for name, hidden in seen["hidden"].items():
        public = seen["public"].get(name, set())
        assert public, f"{name} has no self-check"
        assert not hidden & public, f"{name}: hidden tests reuse the self-checks' shapes {hidden & public}"


def test_the_shape_check_sees_a_hidden_input_that_repeats_a_self_check(tmp_path):
    folder = tmp_path / "ch1-perceptron"
    shutil.copytree(ROOT / "ch1-perceptron", folder)
    source = (folder / SOURCE_NAME).read_text(encoding="utf-8")
    source = source.replace('"X_hand": np.array([[1.0], [2.0], [-1.0], [1.5]]),',
                            '"X_hand": np.array([[1.0], [-1.0], [2.0]]),')
    source = source.replace('"s_hand": np.array([1, 1, -1, -1]),', '"s_hand": np.array([1, -1, 1]),')
    (folder / SOURCE_NAME).write_text(source, encoding="utf-8")
    ex = load_exercise(folder)
    write_notebooks(ex)
    seen = _array_shapes(ex)
    assert seen["hidden"]["pocket_train"] & seen["public"]["pocket_train"] == {((3, 1), (3,))}


def _seeded(exercise, question: str, tmp: Path) -> Path:
    old, new = SEEDED_BUGS[exercise.id][question]
    nb = json.loads(exercise.solution_path.read_text(encoding="utf-8"))
    hits = 0
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if old in source:
            hits += source.count(old)
            cell["source"] = source.replace(old, new)
    assert hits == 1, f"{exercise.id}/{question}: the seeded bug's text occurs {hits} times"
    path = tmp / f"wrong_{question}.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_solution_full_marks_student_zero_seeded_bug_loses_exactly_its_question(exercises, exercise_id, tmp_path):
    ex = exercises[exercise_id]
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "solution.ipynb").write_bytes(ex.solution_path.read_bytes())
    (subs / "untouched.ipynb").write_bytes(ex.student_path.read_bytes())
    for q in ex.questions:
        _seeded(ex, q.name, subs)
    rows = {r.submission: r for r in grade_batch(ex, [subs], tmp_path / "out", limits=Limits(timeout=120), jobs=2,
                                                 trusted=True)}
    assert rows["solution"].status == "graded" and rows["solution"].score == ex.max_score
    solution_report = json.loads((tmp_path / "out" / "solution.json").read_text())
    assert solution_report["notes"] == [], solution_report["notes"]  # no cell raised
    assert rows["untouched"].status == "graded" and rows["untouched"].score == 0
    for q in ex.questions:
        row = rows[f"wrong_{q.name}"]
        report = json.loads((tmp_path / "out" / f"wrong_{q.name}.json").read_text())
        scores = {item["name"]: item["score"] for item in report["questions"]}
        assert row.status == "graded", (q.name, report["notes"])
        assert scores[q.name] == 0, (q.name, report["feedback"])
        assert row.score == ex.max_score - q.points, (q.name, report["feedback"])


def test_an_exercise_with_a_probe_that_cannot_run_in_the_sandbox_is_rejected(tmp_path):
    """Probes see only the notebook's names: a grader-only name in a probe is an authoring error."""
    source = (ROOT / "ch1-softmax-cross-entropy" / SOURCE_NAME).read_text(encoding="utf-8")
    broken = source.replace('return softmax(inputs["wide"], temperature=2.0)', 'return softmax(INPUTS["wide"], temperature=2.0)')
    assert broken != source
    folder = tmp_path / "ch1-broken"
    folder.mkdir()
    (folder / SOURCE_NAME).write_text(broken, encoding="utf-8")
    with pytest.raises(ExerciseError, match="probe_wide uses INPUTS"):
        load_exercise(folder)


def test_points_that_do_not_add_up_are_rejected(tmp_path):
    source = (ROOT / "ch3-max-pool" / SOURCE_NAME).read_text(encoding="utf-8")
    broken = source.replace('QUESTION = {"name": "max_pool2d_forward", "points": 2}',
                            'QUESTION = {"name": "max_pool2d_forward", "points": 3}')
    folder = tmp_path / "ch3-broken"
    folder.mkdir()
    (folder / SOURCE_NAME).write_text(broken, encoding="utf-8")
    with pytest.raises(ExerciseError, match=r"add up to 2(\.0)? points, QUESTION says 3"):
        load_exercise(folder)


def test_ok_test_source_is_the_file_otter_reads(exercises, tmp_path):
    """Question.ok_test_source(), the instructor's view of a question, loads in otter unchanged."""
    from otter.test_files.ok_test import OKTestFile

    for exercise in exercises.values():
        for question in exercise.questions:
            path = tmp_path / f"{exercise.id}-{question.name}.py"
            path.write_text(question.ok_test_source(), encoding="utf-8")
            loaded = OKTestFile.from_file(str(path))
            assert loaded.name == question.ok_test()["name"]
            assert sum(case.points for case in loaded.test_cases) == pytest.approx(question.points)


# Answers a mutation pass over the solutions found to keep full marks before the hidden inputs
# were extended (each is a plausible slip; each must now lose points in its question).
MUTATION_SURVIVORS = {
    "ch1-perceptron": {
        "margin_step": [("if s * (x @ w + b) <= margin:", "if s * (x @ w) <= margin:")],
        "pocket_train": [("for _ in range(epochs):", "for _ in range(epochs + 1):"),
                         ("for _ in range(epochs):", "for _ in range(epochs - 1):"),
                         ("if updates == 0:", "if updates == 1:"),
                         ("errors = int(np.sum(s * (X @ w + b) <= 0))",
                          "errors = int(np.sum(s / (X @ w + b) <= 0))")],
    },
    "ch2-sgd-momentum": {  # a fixed bracket [0, 1]: "step sizes are below 1"
        "largest_stable_lr": [("while stable(high):", "while False and stable(high):")],
    },
    "ch3-conv2d": {
        "influence_count": [("reached = {sizes[-1] // 2}", "reached = {(sizes[-1] - 1) // 2}"),
                            ("sizes.append((sizes[-1] + 2 * padding", "sizes.append((sizes[-1] + 1 * padding")],
    },
    "ch3-max-pool": {
        "max_pool2d_forward": [("span = length + 2 * padding - kernel_size",
                                "span = length + 3 * padding - kernel_size")],
    },
    "ch4-shapes-params": {  # the input's channels never read (a network that starts with a pooling)
        "output_shapes": [("    c, h, w = (int(v) for v in input_shape)",
                           "    _, h, w = (int(v) for v in input_shape)")],
    },
    "ch4-residual-backward": {  # relu'(0) taken as 1 at either ReLU: a pre-activation exactly 0
        "residual_backward": [("d = dout * (s > 0)", "d = dout * (s >= 0)"),
                              ("dz1 = dh * (z1 > 0)", "dz1 = dh * (z1 >= 0)")],
    },
    "ch6-distill-loss": {  # shifted by the row's minimum, or by plus its maximum: large logits overflow
        "soft_targets": [("    z = z - z.max(axis=-1, keepdims=True)\n    e = np.exp(z)",
                          "    z = z - z.min(axis=-1, keepdims=True)\n    e = np.exp(z)")],
        "ensemble_distill_loss": [("        z = z - z.max(axis=-1, keepdims=True)\n        return",
                                   "        z = z + z.max(axis=-1, keepdims=True)\n        return"),
                                  ("        z = z - z.max(axis=-1, keepdims=True)\n        return",
                                   "        z = z - z.min(axis=-1, keepdims=True)\n        return")],
        "ensemble_distill_grad": [("e = np.exp(z - z.max(axis=-1, keepdims=True))",
                                   "e = np.exp(z + z.max(axis=-1, keepdims=True))"),
                                  ("e = np.exp(z - z.max(axis=-1, keepdims=True))",
                                   "e = np.exp(z - z.min(axis=-1, keepdims=True))")],
    },
    "ch6-kmeans-share": {
        "kmeans_share": [("if members.size:", "if True:"),  # an empty cluster's centre becomes nan
                         ("if np.array_equal(new_assign, assign):", "if True:"),  # always one update
                         ("if np.array_equal(new_assign, assign):",  # stops when the assignment changes
                          "if not np.array_equal(new_assign, assign):"),
                         ("k = codebook.size", "k = init.size"),  # init given as a list
                         # max_iter = 0: new_assign does not exist yet
                         ("return codebook, assign.reshape(", "return codebook, new_assign.reshape(")],
    },
    "ch7-prelu": {
        "prelu_backward": [("negative = x <= 0", "negative = x < 0"),  # an input exactly 0 takes the slope
                           # a slope of size 1 on an axis of size 2 (or of a batch of one) not summed
                           ("and contrib.shape[k] != 1)", "and contrib.shape[k] != 2)"),
                           ("and contrib.shape[k] != 1)", "and x.shape[k] != 1)")],
    },
}


@pytest.mark.parametrize("exercise_id", sorted(MUTATION_SURVIVORS))
def test_former_mutation_survivors_lose_points_in_their_question(exercises, exercise_id, tmp_path):
    ex = exercises[exercise_id]
    subs = tmp_path / "subs"
    subs.mkdir()
    expected = {}
    for question, mutants in MUTATION_SURVIVORS[exercise_id].items():
        for k, (old, new) in enumerate(mutants):
            nb = json.loads(ex.solution_path.read_text(encoding="utf-8"))
            hits = 0
            for cell in nb["cells"]:
                source = "".join(cell["source"])
                hits += source.count(old)
                cell["source"] = source.replace(old, new)
            assert hits == 1, (exercise_id, old, hits)
            name = f"{question}_{k}"
            (subs / f"{name}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
            expected[name] = question
    rows = grade_batch(ex, [subs], tmp_path / "out", limits=Limits(timeout=120), jobs=2,
                       trusted=True, isolation="process")
    assert len(rows) == len(expected)
    for row in rows:
        report = json.loads((tmp_path / "out" / f"{row.submission}.json").read_text())
        scores = {q["name"]: (q["score"], q["max_score"]) for q in report["questions"]}
        question = expected[row.submission]
        assert scores[question][0] < scores[question][1], (row.submission, report["feedback"])
        # (a forward-pass slip may also cost the backward question, which calls the forward)
        assert row.score <= ex.max_score - (scores[question][1] - scores[question][0])
