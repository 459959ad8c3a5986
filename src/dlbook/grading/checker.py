"""Run an exercise's OK-format tests with otter, on values exported from the sandbox.

This is the only place where scores are decided, and it runs in the grader's own process, which
never executes student code: the doctests see ``inputs`` (the grader's own copy of the hidden
inputs), ``outputs`` (plain numeric arrays the sandbox exported, loaded with
``allow_pickle=False``) and the grader cells' namespace (torch, the reference helpers). Nothing a
submission does to numpy, torch or test helpers inside its sandbox can reach these objects.

otter's ``OKTestFile`` parses each question's test and runs its cases with ``doctest``;
``GradingResults`` adds them up, exactly as ``otter run`` would after executing a notebook.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any, Iterator

import numpy as np

from dlbook.grading.exercise import Exercise

__all__ = ["MissingOutput", "Outputs", "run_checks", "question_feedback"]

# otter's doctest runner swaps sys.stdout/sys.stderr for the duration of a test: one at a time.
_OTTER_LOCK = threading.Lock()


class MissingOutput(LookupError):
    """A check asked for a value the submission did not produce (its probe raised or never ran)."""


class Outputs(Mapping):
    """``outputs[probe]`` -> what ``probe_<probe>`` returned (array, or dict of arrays).

    A missing probe raises :class:`MissingOutput` with the student's own error, so the failing
    doctest tells them what went wrong in their code.
    """

    def __init__(self, values: dict[str, Any], errors: dict[str, str], reason: str):
        self._values, self._errors, self._reason = values, errors, reason

    def __getitem__(self, key: str) -> Any:
        if key in self._values:
            value = self._values[key]
            return {k: v.copy() for k, v in value.items()} if isinstance(value, dict) else value.copy()
        raise MissingOutput(self._errors.get(key) or self._reason)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def run_checks(exercise: Exercise, values: dict[str, dict[str, Any]], errors: dict[str, dict[str, str]],
               reason: str = "your code produced no value here"):
    """Grade exported values with otter: one ``OKTestFile`` per question.

    Args:
        exercise: the loaded exercise (its questions' OK tests and grader namespaces).
        values: ``values[question][probe]``: array or dict of arrays (from the sandbox).
        errors: ``errors[question][probe]``: the student's error message for probes that failed.
        reason: the message for probes that left neither a value nor an error (e.g. the
            submission timed out before reaching them).
    Returns:
        ``otter.test_files.GradingResults``.
    """
    from otter.test_files import GradingResults
    from otter.test_files.ok_test import OKTestFile

    test_files = []
    for q in exercise.questions:
        test_file = OKTestFile.from_spec(q.ok_test(), path=f"{exercise.id}/{q.name}")
        env = dict(q.namespace)
        env["inputs"] = {key: np.array(value) for key, value in q.inputs.items()}
        env["outputs"] = Outputs(values.get(q.name, {}), errors.get(q.name, {}), reason)
        with _OTTER_LOCK:
            test_file.run(env)
        test_files.append(test_file)
    return GradingResults(test_files)


def _diagnostic(message: str | None) -> str:
    """The one line of a failed doctest report that says why: the value it got, or the error."""
    text = message or ""
    # doctest separates failed examples with a line of asterisks; the first failure is the cause
    # (otter runs doctest verbosely: each block also logs the next example, from "Trying:" on)
    blocks = [b for b in re.split(r"\n\*{20,}\n", text) if "Failed example:" in b]
    if blocks:
        text = blocks[0][blocks[0].index("Failed example:"):].split("\nTrying:", 1)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "Got:" in lines:
        after = lines[lines.index("Got:") + 1:]
        return after[0].strip("'\"") if after else ""
    if lines:
        last = lines[-1]
        head, sep, tail = last.partition(": ")
        if sep and "." in head and " " not in head:  # "dlbook.grading.checker.MissingOutput: ..."
            head = head.rsplit(".", 1)[-1]
        return tail if head == "MissingOutput" else (f"{head}: {tail}" if sep else last)
    return ""


def question_feedback(results) -> list[dict[str, Any]]:
    """Per question: score, max score and, per case, what the student may see.

    Hidden cases show their name, whether they passed and, on failure, the hint and the one-line
    diagnostic; never their code. Public cases also show otter's doctest report.
    """
    questions = []
    for name, test_file in results.results.items():
        cases = []
        for result in test_file.test_case_results:
            tc = result.test_case
            entry: dict[str, Any] = {"name": tc.name, "points": float(tc.points), "passed": bool(result.passed)}
            if not result.passed:
                entry["hint"] = tc.failure_message
                entry["detail"] = _diagnostic(result.message)
                if not tc.hidden:
                    entry["report"] = result.message
            cases.append(entry)
        questions.append({"name": name, "score": float(test_file.score),
                          "max_score": float(test_file.possible), "cases": cases})
    return questions
