"""Graded exercises: exercise sources, the sandboxed grader and its gradebook.

* :mod:`dlbook.grading.exercise`: one instructor source per exercise (``exercises/<id>/source.py``)
  -> student notebook, solution notebook, hidden inputs, probes and otter OK-format tests.
* :mod:`dlbook.grading.sandbox`: runs a submission in its own confined process and reads back
  only plain numeric arrays (``_runner.py`` is the program that runs inside).
* :mod:`dlbook.grading.checker`: otter's OK-format test runner on those arrays, in the grader's
  own process.
* :mod:`dlbook.grading.batch`: ``grade_batch``, the gradebook CSV and the per-student JSON.
* :mod:`dlbook.grading.helpers`: references and comparisons for writing hidden tests.

The design and the threat model are in ``exercises/README.md``.
"""

from dlbook.grading.batch import (GRADEBOOK_COLUMNS, STATUSES, GradeRow, UntrustedIsolation,
                                  collect_submissions, grade_batch)
from dlbook.grading.exercise import (Exercise, ExerciseError, Question, hidden_seed, list_exercises,
                                     load_exercise, read_secret, write_notebooks)
from dlbook.grading.sandbox import Limits, detect_isolation, isolation_problem

__all__ = ["Exercise", "ExerciseError", "Question", "hidden_seed", "read_secret", "load_exercise",
           "list_exercises", "write_notebooks", "Limits", "detect_isolation", "isolation_problem",
           "grade_batch", "UntrustedIsolation", "collect_submissions", "GradeRow", "STATUSES",
           "GRADEBOOK_COLUMNS"]
