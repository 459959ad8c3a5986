# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 1.2: the margin perceptron and the pocket algorithm
#
# *Chapter 1 (neurons).* Section 1.2 trains a threshold unit with Rosenblatt's rule, which stops
# at the first boundary that separates the training points, however close to them it passes,
# and never stops at all when no boundary separates them. Two variants address these: the
# *margin perceptron* also updates on points that are classified correctly but lie too close to
# the boundary, and the *pocket algorithm* keeps, "in its pocket", the best weights seen so far,
# which makes the rule useful on data that is not separable. You implement both and run an
# experiment.
#
# Here the labels are $s \in \{-1, +1\}$ (not 0 and 1), so that a point is on the right side
# of the boundary exactly when $s\,(w \cdot x + b) > 0$.
#
# **How to work.** Replace every `raise NotImplementedError` with your code, then run the whole
# notebook (Kernel → Restart & Run All). Each *self-check* cell ends by printing
# `... self-checks passed`. The grader runs other, hidden tests (other data, other shapes), so
# passing the self-checks is necessary, not sufficient. Use numpy only; keep the names and
# signatures. Shapes: `X` is (N, D), `s` is (N,) with entries -1 and +1, `w` is (D,), `b` a float.
#
# | question | function | points |
# |---|---|---|
# | 1 | `margin_step(x, s, w, b, lr, margin)` | 1 |
# | 2 | `pocket_train(X, s, lr, epochs)` | 2 |
# | 3 | `margin_experiment(X, s, margins)` (an experiment) | 2 |

# %% tags=["grader"]
# Instructor only: everything in "grader" cells stays out of the student notebook.
EXERCISE = {"title": "The margin perceptron and the pocket algorithm", "chapter": 1}

import numpy as np
import torch

from dlbook.grading.helpers import all_of, case, close, equal, tensor

# %%
import numpy as np

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Question 1 (1 point): one step of the margin perceptron
#
# With labels $\pm 1$ the perceptron rule reads: if $s\,(w \cdot x + b) \le 0$ (a mistake, or a
# point on the boundary), then $w \leftarrow w + \eta\, s\, x$ and $b \leftarrow b + \eta\, s$;
# otherwise nothing changes. The margin perceptron with margin $\kappa \ge 0$ makes the same
# update whenever $s\,(w \cdot x + b) \le \kappa$: a correct point closer to the boundary than
# $\kappa$ (in units of $w \cdot x + b$) counts as a mistake too. Return the new `(w, b)`
# without modifying the `w` you are given.

# %%
def margin_step(x: np.ndarray, s: int, w: np.ndarray, b: float, lr: float, margin: float):
    """One margin-perceptron update on the sample (x, s), s in {-1, +1}; returns the new (w, b)."""
    # BEGIN SOLUTION
    if s * (x @ w + b) <= margin:
        return w + lr * s * x, b + lr * s
    return w.copy(), b
    # END SOLUTION


# %%
# Self-check for question 1, worked by hand.
w1, b1 = margin_step(np.array([2.0, 1.0]), -1, np.zeros(2), 0.0, 1.0, 0.0)  # s * net = 0 <= 0
assert np.allclose(w1, [-2.0, -1.0]) and np.isclose(b1, -1.0), (w1, b1)
w2, b2 = margin_step(np.array([1.0, 1.0]), -1, w1, b1, 1.0, 0.0)  # s * net = 4 > 0: no change
assert np.allclose(w2, w1) and np.isclose(b2, b1), (w2, b2)
w3, b3 = margin_step(np.array([1.0, 1.0]), -1, w1, b1, 1.0, 5.0)  # 4 <= 5: inside the margin
assert np.allclose(w3, [-3.0, -2.0]) and np.isclose(b3, -2.0), (w3, b3)
print("margin_step: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "margin_step", "points": 1}
rng = hidden_rng(1201)  # keyed by the instructor's secret when grading
INPUTS = {
    # a mistake, worked by hand: net = 0.5 + 1.0 + 0 = 1.5, s = -1: s * net = -1.5 <= 0, lr = 0.5:
    # w = [0.5, 0.5, 0] - 0.5 * [1, 2, -1] = [0, -0.5, 0.5], b = 0 - 0.5 = -0.5
    "x_fp": np.array([1.0, 2.0, -1.0]),
    "w_fp": np.array([0.5, 0.5, 0.0]),
    # the bias decides: w = [1, 0, 0], b = -1.5, x = [1, 0, 0], s = +1: s * (w . x) = 1 > 0 but
    # s * net = -0.5 <= 0, lr 1: w = [2, 0, 0], b = -0.5 (without the bias: no update)
    "x_b": np.array([1.0, 0.0, 0.0]),
    # margin 2, lr 1. A correct point inside the margin: w = [-1, 0, 0], x = [1, 1, 1], s = -1:
    # s * net = 1 <= 2: w = [-2, -1, -1], b = -1; the same point again: s * net = 5 > 2, no change.
    # A point exactly on the margin: w = [1, 0, 0], x = [2, 0, 0], s = +1: 2 <= 2: w = [3, 0, 0], b = 1
    "x_in": np.array([1.0, 1.0, 1.0]),
    "x_on": np.array([2.0, 0.0, 0.0]),
    # 40 random steps (the hand-worked cases earn points only together with these)
    "x_r": rng.normal(size=(40, 4)),
    "w_r": rng.normal(size=(40, 4)),
    "b_r": rng.normal(size=40),
    "s_r": rng.choice([-1, 1], size=40),
    "margin_r": rng.choice([0.0, 0.5, 2.0], size=40),
}


def probe_random(inputs):
    ws, bs = [], []
    for x, w, b, t, m in zip(inputs["x_r"], inputs["w_r"], inputs["b_r"], inputs["s_r"],
                             inputs["margin_r"]):
        w_new, b_new = margin_step(x, int(t), w, float(b), 0.5, float(m))
        ws.append(w_new)
        bs.append(b_new)
    return {"w": np.array(ws), "b": np.array(bs)}


def steps_by_hand(inputs):
    """The rule as the question states it, one step per row (the grader's reference)."""
    ws, bs = [], []
    for x, w, b, t, m in zip(inputs["x_r"], inputs["w_r"], inputs["b_r"], inputs["s_r"],
                             inputs["margin_r"]):
        update = t * (float(x @ w) + b) <= m
        ws.append(w + 0.5 * t * x if update else w)
        bs.append(b + 0.5 * t if update else b)
    return {"w": np.array(ws), "b": np.array(bs)}


def random_steps(got, inputs):
    want = steps_by_hand(inputs)
    return all_of(close(got["w"], want["w"], label="w of the random steps"),
                  close(got["b"], want["b"], label="b of the random steps"))


def probe_mistake(inputs):
    w, b = margin_step(inputs["x_fp"], -1, inputs["w_fp"], 0.0, 0.5, 0.0)
    w_b, b_b = margin_step(inputs["x_b"], 1, np.array([1.0, 0.0, 0.0]), -1.5, 1.0, 0.0)
    return {"w": w, "b": b, "w_given": inputs["w_fp"], "w_b": w_b, "b_b": b_b}


def probe_margin(inputs):
    w, b = margin_step(inputs["x_in"], -1, np.array([-1.0, 0.0, 0.0]), 0.0, 1.0, 2.0)
    w_again, b_again = margin_step(inputs["x_in"], -1, w, b, 1.0, 2.0)
    w_on, b_on = margin_step(inputs["x_on"], 1, np.array([1.0, 0.0, 0.0]), 0.0, 1.0, 2.0)
    return {"w": w, "b": b, "w_again": w_again, "b_again": b_again, "w_on": w_on, "b_on": b_on}


CASES = [
    case("a mistake with lr = 0.5 and margin 0, leaving the given w as it was; one where only the "
         "bias makes the mistake (worked by hand); and 40 random steps",
         ['got = outputs["mistake"]',
          'all_of(close(got["w"], [0.0, -0.5, 0.5]), close(got["b"], -0.5), '
          'close(got["w_given"], [0.5, 0.5, 0.0], label="the w you were given"), '
          'close(got["w_b"], [2.0, 0.0, 0.0], label="w"), close(got["b_b"], -0.5, label="b"), '
          'random_steps(outputs["random"], inputs))'], points=0.5,
         hint="s = -1: subtract lr * x from w and lr from b; return a new array"),
    case("margin 2: a correct point inside the margin updates, then no longer does; a point exactly "
         "on the margin updates (worked by hand); and 40 random steps",
         ['got = outputs["margin"]',
          'all_of(close(got["w"], [-2.0, -1.0, -1.0]), close(got["b"], -1.0), '
          'close(got["w_again"], [-2.0, -1.0, -1.0]), close(got["b_again"], -1.0), '
          'close(got["w_on"], [3.0, 0.0, 0.0]), close(got["b_on"], 1.0), '
          'random_steps(outputs["random"], inputs))'], points=0.5,
         hint="update when s * (w . x + b) <= margin, with lr * s * x and lr * s"),
]

# %% [markdown]
# ## Question 2 (2 points): the pocket algorithm
#
# On data that no line separates, the perceptron rule never settles: every epoch makes mistakes
# and the weights keep moving. The pocket algorithm runs the ordinary rule (margin 0) and keeps
# the best weights it has seen. Precisely, for this question:
#
# 1. start from $w = 0$, $b = 0$; the pocket holds these weights and their number of training
#    errors (an error is a point with $s\,(w \cdot x + b) \le 0$; at the start, every point);
# 2. go through the rows of `X` in order, `epochs` times at most; on every update of the rule,
#    count the training errors of the *new* weights on the whole of `X`, and if there are
#    *strictly* fewer than the pocket's, put a copy of the new weights (and their count) in the
#    pocket;
# 3. stop early after an epoch without any update (the data was separable).
#
# Return `(w_pocket, b_pocket, errors_pocket)`.

# %%
def pocket_train(X: np.ndarray, s: np.ndarray, lr: float = 1.0, epochs: int = 20):
    """The pocket algorithm on (X, s); returns the pocket's (w, b, number of training errors)."""
    # BEGIN SOLUTION
    w, b = np.zeros(X.shape[1]), 0.0
    pocket_w, pocket_b, pocket_errors = w.copy(), b, len(X)
    for _ in range(epochs):
        updates = 0
        for x, target in zip(X, s):
            if target * (x @ w + b) <= 0:
                w, b = w + lr * target * x, b + lr * target
                updates += 1
                errors = int(np.sum(s * (X @ w + b) <= 0))
                if errors < pocket_errors:
                    pocket_w, pocket_b, pocket_errors = w.copy(), b, errors
        if updates == 0:
            break
    return pocket_w, pocket_b, pocket_errors
    # END SOLUTION


# %%
# Self-check for question 2. Separable data: the pocket ends with the rule's own separating
# weights and no errors. Points 1, -1, 2 with labels +1, -1, +1: the first point is on the
# boundary (net 0), so w = 1, b = 1, with 1 error (x = -1 has net 0); the second point is then
# on the boundary too: w = 2, b = 0, no errors; the next epoch makes no update.
w, b, errors = pocket_train(np.array([[1.0], [-1.0], [2.0]]), np.array([1, -1, 1]), 1.0, 20)
assert errors == 0, f"{errors} errors in the pocket, expected 0"
assert np.allclose(w, [2.0]) and np.isclose(b, 0.0), (w, b)
# XOR is not separable: the rule cycles for all 20 epochs; the pocket's count is its weights' own.
X_xor = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
s_xor = np.array([-1, 1, 1, -1])
w, b, errors = pocket_train(X_xor, s_xor, 1.0, 20)
assert errors == int(np.sum(s_xor * (X_xor @ w + b) <= 0)), "return the pocket's own error count"
assert 1 <= errors < 4, f"{errors} errors in the pocket: a line makes 1 at best, and 4 is where it starts"
print("pocket_train: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "pocket_train", "points": 2}
rng = hidden_rng(1202)  # keyed by the instructor's secret when grading
_s = np.concatenate([np.ones(20, dtype=np.int64), -np.ones(20, dtype=np.int64)])


def _last_is_pocket(X, s, lr, epochs):
    """Whether the rule's last weights make no more errors than any it had before (then a wrong
    answer that returns the last weights would pass: such data is drawn again)."""
    w, b, errors = np.zeros(X.shape[1]), 0.0, []
    for _ in range(epochs):
        for x, t in zip(X, s):
            if t * (x @ w + b) <= 0:
                w, b = w + lr * t * x, b + lr * t
                errors.append(int(np.sum(s * (X @ w + b) <= 0)))
    return not errors or errors[-1] <= min(errors)


while True:  # two overlapping clouds
    _X = np.vstack([rng.normal(size=(20, 3)) + 0.7, rng.normal(size=(20, 3)) - 0.7])
    if not _last_is_pocket(_X, _s, 0.5, 15):
        break
INPUTS = {
    # worked by hand, lr 1, 2 epochs: points 1, 2, -1, 1.5 with labels +1, +1, -1, -1 (not
    # separable: 1.5 lies between two points of the other class). Epoch 1: x = 1 (net 0) -> w = 1,
    # b = 1, 2 errors, pocketed; x = 2 right; x = -1 (net 0) -> w = 2, b = 0, 1 error, pocketed;
    # x = 1.5 (net 3, s = -1) -> w = 0.5, b = -1, 2 errors. Epoch 2: x = 1 (net -0.5) -> w = 1.5,
    # b = 0, 1 error (not fewer: the pocket keeps w = 2, b = 0); x = 2, x = -1 right; x = 1.5 ->
    # w = 0, b = -1, 2 errors. Pocket: w = [2], b = 0, 1 error; the rule's own last weights, 0 and
    # -1, make 2.
    "X_hand": np.array([[1.0], [2.0], [-1.0], [1.5]]),
    "s_hand": np.array([1, 1, -1, -1]),
    # small runs that tell the epoch count, the early stop and a point on the boundary apart:
    # 2 epochs (1 or 3 give another pocket); 5 epochs with an epoch of exactly one update before
    # a better pocket; 5 epochs with a point at net = 0 of label +1
    "X_small": np.array([[[-1.0], [-1.0], [3.0], [-2.0]], [[2.0], [-2.0], [-1.0], [3.0]],
                         [[-1.0], [2.0], [3.0], [-2.0]]]),
    "s_small": np.array([[1, 1, 1, -1], [-1, 1, -1, -1], [-1, -1, 1, 1]]),
    "X": _X,
    "s": _s,
}


def probe_hand(inputs):
    w, b, errors = pocket_train(inputs["X_hand"], inputs["s_hand"], 1.0, 2)
    return {"w": w, "b": b, "errors": errors}


def probe_small(inputs):
    out = {}
    for k, (X, s, epochs) in enumerate(zip(inputs["X_small"], inputs["s_small"], (2, 5, 5))):
        w, b, errors = pocket_train(X, s, 1.0, epochs)
        out.update({f"w{k}": w, f"b{k}": b, f"errors{k}": errors})
    return out


def small_runs(got, inputs):
    checks = []
    for k, (X, s, epochs) in enumerate(zip(inputs["X_small"], inputs["s_small"], (2, 5, 5))):
        want = pocket_by_hand(X, s, 1.0, epochs)
        checks.append(same_run({"w": got[f"w{k}"], "b": got[f"b{k}"], "errors": got[f"errors{k}"]},
                               want))
    return all_of(*checks)


def probe_clouds(inputs):
    w, b, errors = pocket_train(inputs["X"], inputs["s"], 0.5, 15)
    return {"w": w, "b": b, "errors": errors}


def pocket_by_hand(X, s, lr, epochs):
    """The algorithm as the question states it, in plain Python floats (the grader's reference)."""
    X, s = X.tolist(), s.tolist()

    def errors_of(w, b):
        return sum(1 for x, t in zip(X, s) if t * (sum(wi * xi for wi, xi in zip(w, x)) + b) <= 0)

    w, b = [0.0] * len(X[0]), 0.0
    pocket = (list(w), b, len(X))
    for _ in range(epochs):
        updates = 0
        for x, t in zip(X, s):
            if t * (sum(wi * xi for wi, xi in zip(w, x)) + b) <= 0:
                w, b = [wi + lr * t * xi for wi, xi in zip(w, x)], b + lr * t
                updates += 1
                errors = errors_of(w, b)
                if errors < pocket[2]:
                    pocket = (list(w), b, errors)
        if updates == 0:
            break
    return {"w": np.array(pocket[0]), "b": pocket[1], "errors": pocket[2]}


def same_run(got, want):
    return all_of(close(got["w"], want["w"], label="w"), close(got["b"], want["b"], label="b"),
                  equal(got["errors"], np.array(want["errors"]), label="errors"))


CASES = [
    case("four points on a line, 2 epochs (worked by hand), three more small runs, and the "
         "two clouds below",
         'all_of(same_run(outputs["hand"], {"w": [2.0], "b": 0.0, "errors": 1}), '
         'small_runs(outputs["small"], inputs), '
         'same_run(outputs["clouds"], pocket_by_hand(inputs["X"], inputs["s"], 0.5, 15)))', points=1,
         hint="return the pocket, not the rule's last weights; replace it only on strictly fewer errors"),
    case("two overlapping clouds of 20 points in 3-D, lr 0.5, 15 epochs: the pocket of the rule's "
         "own run (its w, b and error count)",
         'same_run(outputs["clouds"], pocket_by_hand(inputs["X"], inputs["s"], 0.5, 15))', points=1,
         hint="count the errors of the new weights after every update, on all of X; errors are "
              "s * (w . x + b) <= 0"),
]

# %% [markdown]
# ## Question 3 (2 points): an experiment with the margin
#
# How does the margin $\kappa$ change what the rule learns, and what it costs? Write
# `margin_experiment(X, s, margins)` which, for every $\kappa$ in `margins`, trains the margin
# perceptron on `(X, s)` (learning rate 1, from $w = 0$, $b = 0$, rows in order, until an epoch
# without updates, at most 1000 epochs) and records
#
# * the total number of updates, over all epochs, and
# * the geometric margin of the boundary it ends with, the distance from the boundary to the
#   closest training point: $\gamma = \min_n s_n (w \cdot x_n + b) / \lVert w \rVert$.
#
# Return the two as float arrays of `len(margins)` entries, `(updates, gamma)`. The grader runs
# your function on a separable data set of its own, which you do not see. (Before you hand in:
# run it on separable data of your own, for margins 0, 1, 5, 25, and look at both arrays. Which
# grows, and why must the rule still stop on separable data?)

# %%
def margin_experiment(X: np.ndarray, s: np.ndarray, margins: np.ndarray):
    """Updates and geometric margin of the margin perceptron, one entry per margin in ``margins``."""
    # BEGIN SOLUTION
    updates, gamma = [], []
    for margin in margins:
        w, b, count = np.zeros(X.shape[1]), 0.0, 0
        for _ in range(1000):
            changed = False
            for x, target in zip(X, s):
                if target * (x @ w + b) <= margin:
                    w, b = w + target * x, b + target
                    count += 1
                    changed = True
            if not changed:
                break
        updates.append(count)
        gamma.append(np.min(s * (X @ w + b)) / np.linalg.norm(w))
    return np.array(updates, dtype=float), np.array(gamma)
    # END SOLUTION


# %%
# Self-check for question 3, worked by hand on two points of a line, x = 1 (s = +1) and
# x = -1 (s = -1). Margin 0: one update on x = 1 (w = 1, b = 1), then x = -1 has s * net = 0:
# a second update, w = 2, b = 0; the next epoch makes none. gamma = 2 / 2 = 1.
# Margin 3: w, b go (1, 1), (2, 0), then epoch 2: x = 1 has s * net = 2 <= 3: (3, 1), x = -1
# has s * net = 2 <= 3: (4, 0); epoch 3: 4 > 3 twice, stop. 4 updates, gamma = 4 / 4 = 1.
updates, gamma = margin_experiment(np.array([[1.0], [-1.0]]), np.array([1, -1]), np.array([0.0, 3.0]))
assert np.allclose(updates, [2, 4]), f"updates {updates}, expected [2, 4]"
assert np.allclose(gamma, [1.0, 1.0]), f"gamma {gamma}, expected [1, 1]"
print("margin_experiment: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "margin_experiment", "points": 2}
rng = hidden_rng(1203)  # keyed by the instructor's secret when grading
_w_true = rng.normal(size=2)
_b_true = float(rng.normal())
_X = rng.uniform(-3.0, 3.0, size=(400, 2))
_net = (_X @ _w_true + _b_true) / np.linalg.norm(_w_true)
_X = _X[np.abs(_net) > 0.25][:30]  # 30 points at least 0.25 from a line of the grader's choosing
INPUTS = {
    "X": _X,
    "s": np.where(_X @ _w_true + _b_true > 0, 1, -1),
    "margins": np.array([0.0, 1.0, 5.0]),
}


def probe_experiment(inputs):
    updates, gamma = margin_experiment(inputs["X"], inputs["s"], inputs["margins"])
    return {"updates": updates, "gamma": gamma}


def margin_runs(X, s, margins):
    """The experiment as the question states it, in plain Python floats (the grader's reference)."""
    X, s = X.tolist(), s.tolist()
    updates, gamma = [], []
    for margin in margins.tolist():
        w, b, count = [0.0] * len(X[0]), 0.0, 0
        for _ in range(1000):
            changed = False
            for x, t in zip(X, s):
                if t * (sum(wi * xi for wi, xi in zip(w, x)) + b) <= margin:
                    w, b = [wi + t * xi for wi, xi in zip(w, x)], b + t
                    count += 1
                    changed = True
            if not changed:
                break
        updates.append(count)
        norm = sum(wi * wi for wi in w) ** 0.5
        gamma.append(min(t * (sum(wi * xi for wi, xi in zip(w, x)) + b) for x, t in zip(X, s)) / norm)
    return {"updates": np.array(updates, dtype=float), "gamma": np.array(gamma)}


CASES = [
    case("30 separable points, margins 0, 1 and 5: the number of updates of each run",
         'equal(np.asarray(outputs["experiment"]["updates"]), margin_runs(inputs["X"], inputs["s"], '
         'inputs["margins"])["updates"])', points=1,
         hint="count every update of every epoch; update when s * (w . x + b) <= margin; start each "
              "margin's run from zero weights"),
    case("30 separable points, margins 0, 1 and 5: the geometric margin of each run's boundary",
         'close(outputs["experiment"]["gamma"], margin_runs(inputs["X"], inputs["s"], '
         'inputs["margins"])["gamma"], rtol=1e-9)', points=1,
         hint="gamma = min over the points of s * (w . x + b), divided by the length of w (not of (w, b))"),
]
