# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 1.2: the perceptron learning rule
#
# *Chapter 1 (neurons).* A threshold unit computes $\text{net} = w \cdot x + b$ and outputs
# $y = 1$ when $\text{net} \ge 0$, else $y = 0$ (the unit step). Rosenblatt's rule learns $w$
# and $b$ one example at a time: after showing the unit an input $x$ with target $t \in \{0, 1\}$,
#
# $$w \leftarrow w + \eta\,(t - y)\,x, \qquad b \leftarrow b + \eta\,(t - y).$$
#
# When the output is right, $t - y = 0$ and nothing changes; a mistake moves the boundary towards
# the misclassified point. You implement the unit, one step of the rule, and the training loop.
#
# **How to work.** Replace every `raise NotImplementedError` with your code, then run the whole
# notebook (Kernel → Restart & Run All). Each *self-check* cell ends by printing
# `... self-checks passed`. The grader runs other, hidden tests (other data, other shapes), so
# passing the self-checks is necessary, not sufficient. Use numpy only; keep the names and
# signatures. Shapes: `X` is (N, D), `t` is (N,), `w` is (D,), `b` a float.
#
# | question | function | points |
# |---|---|---|
# | 1 | `predict(X, w, b)` | 1 |
# | 2 | `perceptron_step(x, t, w, b, lr)` | 2 |
# | 3 | `perceptron_train(X, t, lr, epochs)` | 2 |

# %% tags=["grader"]
# Instructor only: everything in "grader" cells stays out of the student notebook.
EXERCISE = {"title": "The perceptron learning rule", "chapter": 1}

import numpy as np
import torch

from dlbook.grading.helpers import all_of, case, close, equal, tensor

# %%
import numpy as np

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Question 1 (1 point): the threshold unit
#
# Return the unit's outputs for every row of `X`: an integer array of 0s and 1s, with 1 where
# $X w + b \ge 0$ (a point exactly on the boundary counts as class 1).

# %%
def predict(X: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    """Step-unit outputs (N,) in {0, 1}: 1 where X @ w + b >= 0."""
    # BEGIN SOLUTION
    return (X @ w + b >= 0).astype(np.int64)
    # END SOLUTION


# %%
# Self-check for question 1: the boundary x1 + x2 = 1.5 (w = [1, 1], b = -1.5).
X_demo = np.array([[0.0, 0.0], [1.0, 1.0], [1.5, 0.0], [0.0, 1.0]])
out = predict(X_demo, np.array([1.0, 1.0]), -1.5)
assert out.shape == (4,), f"shape {out.shape}, expected (4,)"
assert np.array_equal(out, [0, 1, 1, 0]), f"{out}: (1.5, 0) lies on the boundary, so it is class 1"
print("predict: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "predict", "points": 1}
rng = hidden_rng(1201)  # keyed by the instructor's secret when grading
INPUTS = {
    "X": rng.normal(size=(40, 3)),
    "w": rng.normal(size=3),
    "b": np.array(0.3),
    # worked by hand with w = [1, 1], b = 0: nets 0, 2, 0, -1, 0 -> outputs 1, 1, 1, 0, 1
    "X_hand": np.array([[1.0, -1.0], [2.0, 0.0], [0.0, 0.0], [-1.0, 0.0], [0.5, -0.5]]),
}


def probe_random(inputs):
    return predict(inputs["X"], inputs["w"], float(inputs["b"]))


def probe_hand(inputs):
    return predict(inputs["X_hand"], np.array([1.0, 1.0]), 0.0)


def heaviside(X, w, b):
    """torch's step function; heaviside(0, 1) = 1, as in the exercise."""
    net = tensor(X) @ tensor(w) + float(b)
    return torch.heaviside(net, torch.tensor(1.0, dtype=torch.float64))


CASES = [
    case("(40, 3) inputs match torch.heaviside(X w + b, 1)",
         'equal(outputs["random"], heaviside(inputs["X"], inputs["w"], inputs["b"]).numpy().astype(int))',
         points=0.5, hint="1 where X @ w + b >= 0, else 0, as integers"),
    case("points on the boundary (net = 0) are class 1 (worked by hand)",
         'equal(outputs["hand"], np.array([1, 1, 1, 0, 1]))', points=0.5,
         hint="use >= 0, not > 0"),
]

# %% [markdown]
# ## Question 2 (2 points): one step of the rule
#
# Given one input `x` (D,), its target `t` (0 or 1), the current `w`, `b` and the learning rate
# `lr`, return the updated `(w, b)` after the rule above. Do not modify the `w` you are given:
# return a new array.

# %%
def perceptron_step(x: np.ndarray, t: int, w: np.ndarray, b: float, lr: float) -> tuple[np.ndarray, float]:
    """One perceptron update on the sample (x, t); returns the new (w, b)."""
    # BEGIN SOLUTION
    y = 1 if x @ w + b >= 0 else 0
    return w + lr * (t - y) * x, b + lr * (t - y)
    # END SOLUTION


# %%
# Self-check for question 2, worked by hand with w = [0, 0], b = 0, lr = 1.
w1, b1 = perceptron_step(np.array([2.0, 1.0]), 0, np.zeros(2), 0.0, 1.0)  # net 0 -> y = 1, t = 0
assert np.allclose(w1, [-2.0, -1.0]) and np.isclose(b1, -1.0), (w1, b1)
w2, b2 = perceptron_step(np.array([1.0, 1.0]), 0, w1, b1, 1.0)  # net -4 -> y = 0 = t: no change
assert np.allclose(w2, w1) and np.isclose(b2, b1), (w2, b2)
print("perceptron_step: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "perceptron_step", "points": 2}
INPUTS = {
    # a false positive, worked by hand: net = 0.5 + 1.0 + 0 = 1.5 >= 0 -> y = 1, t = 0, lr = 0.5:
    # w = [0.5, 0.5, 0] - 0.5 * [1, 2, -1] = [0, -0.5, 0.5], b = 0 - 0.5 = -0.5
    "x_fp": np.array([1.0, 2.0, -1.0]),
    "w_fp": np.array([0.5, 0.5, 0.0]),
    # a false negative: net = -1 -> y = 0, t = 1, lr = 2: w = [1, 0, 0] + 2 [-1, 3, 2] = [-1, 6, 4],
    # b = 2; then a right answer on the new weights (net = -1 + 6 + 4 + 2 = 11, t = 1): no change
    "x_fn": np.array([-1.0, 3.0, 2.0]),
    "x_ok": np.array([1.0, 1.0, 1.0]),
}


def probe_false_positive(inputs):
    w, b = perceptron_step(inputs["x_fp"], 0, inputs["w_fp"], 0.0, 0.5)
    return {"w": w, "b": b}


def probe_false_negative(inputs):
    w, b = perceptron_step(inputs["x_fn"], 1, np.array([1.0, 0.0, 0.0]), 0.0, 2.0)
    w_ok, b_ok = perceptron_step(inputs["x_ok"], 1, w, b, 2.0)
    return {"w": w, "b": b, "w_ok": w_ok, "b_ok": b_ok}


CASES = [
    case("a false positive with lr = 0.5 moves (w, b) to ([0, -0.5, 0.5], -0.5) (worked by hand)",
         ['got = outputs["false_positive"]',
          'all_of(close(got["w"], [0.0, -0.5, 0.5]), close(got["b"], -0.5))'], points=1,
         hint="y = 1 but t = 0: subtract lr * x from w and lr from b"),
    case("a false negative with lr = 2, then a correct sample (worked by hand)",
         ['got = outputs["false_negative"]',
          'all_of(close(got["w"], [-1.0, 6.0, 4.0]), close(got["b"], 2.0), '
          'close(got["w_ok"], [-1.0, 6.0, 4.0]), close(got["b_ok"], 2.0))'], points=1,
         hint="y = 0 but t = 1: add lr * x and lr; a correct output changes nothing"),
]

# %% [markdown]
# ## Question 3 (2 points): training
#
# Start from $w = 0$, $b = 0$ and go through the rows of `X` in order, applying the rule to each;
# one pass is an *epoch*. Count the updates (mistakes) in each epoch and stop after the first
# epoch with none, or after `epochs` epochs. Return `(w, b, updates)` where `updates` is the list
# of per-epoch counts. On linearly separable data the perceptron convergence theorem guarantees
# that the loop stops.

# %%
def perceptron_train(X: np.ndarray, t: np.ndarray, lr: float = 1.0, epochs: int = 100):
    """Train a step unit with the perceptron rule; returns (w, b, updates per epoch)."""
    # BEGIN SOLUTION
    w, b = np.zeros(X.shape[1]), 0.0
    updates = []
    for _ in range(epochs):
        mistakes = 0
        for x, target in zip(X, t):
            y = 1 if x @ w + b >= 0 else 0
            if y != target:
                w = w + lr * (target - y) * x
                b = b + lr * (target - y)
                mistakes += 1
        updates.append(mistakes)
        if mistakes == 0:
            break
    return w, b, updates
    # END SOLUTION


# %%
# Self-check for question 3, worked by hand: a threshold on a line, points 1, -1, 2 with
# targets 1, 0, 1. Epoch 1: x = 1 is right (net 0 -> 1); x = -1 is wrong (net 0 -> 1, t = 0):
# w = 0 - (-1) = 1, b = -1; x = 2 is right. Epoch 2: no mistakes. So w = [1], b = -1.
w, b, updates = perceptron_train(np.array([[1.0], [-1.0], [2.0]]), np.array([1, 0, 1]))
assert list(updates) == [1, 0], f"updates per epoch {updates}, expected [1, 0]"
assert np.allclose(w, [1.0]) and np.isclose(b, -1.0), (w, b)
print("perceptron_train: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "perceptron_train", "points": 2}
rng = hidden_rng(1203)  # keyed by the instructor's secret when grading
_w_true, _b_true = np.array([1.0, -2.0, 0.5]), 1.0
_X = rng.uniform(-2.0, 2.0, size=(200, 3))
# separable with a small margin, so that the rule needs several epochs (5 here)
_X = _X[np.abs(_X @ _w_true + _b_true) > 0.1][:38]
# two points on one ray from the origin, on opposite sides of the boundary (nets 0.7 and -2):
# no plane through the origin separates them, so the bias must be learned too
_X = np.vstack([_X, [[0.1, 0.2, 0.0], [1.0, 2.0, 0.0]]])
INPUTS = {
    # the AND gate, worked by hand: w = (2, 1), b = -3 after 6 epochs with 2, 3, 3, 2, 1, 0 updates
    "X_and": np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]),
    "t_and": np.array([0, 0, 0, 1]),
    "X_sep": _X,
    "t_sep": (_X @ _w_true + _b_true >= 0).astype(np.int64),
}


def probe_and_gate(inputs):
    w, b, updates = perceptron_train(inputs["X_and"], inputs["t_and"], 1.0, 100)
    return {"w": w, "b": b, "updates": np.asarray(updates)}


def probe_separable(inputs):
    w, b, updates = perceptron_train(inputs["X_sep"], inputs["t_sep"], 0.5, 500)
    return {"w": w, "b": b, "updates": np.asarray(updates)}


def rule_by_hand(X, t, lr, epochs):
    """The rule as the question states it, in plain Python floats (the grader's reference)."""
    w, b, updates = [0.0] * len(X[0]), 0.0, []
    for _ in range(epochs):
        mistakes = 0
        for x, target in zip(X.tolist(), t.tolist()):
            y = 1 if sum(wi * xi for wi, xi in zip(w, x)) + b >= 0 else 0
            if y != target:
                w = [wi + lr * (target - y) * xi for wi, xi in zip(w, x)]
                b += lr * (target - y)
                mistakes += 1
        updates.append(mistakes)
        if mistakes == 0:
            break
    return np.array(w), b, np.array(updates)


# computed once when the exercise is loaded: the run every correct answer must reproduce
_W_SEP, _B_SEP, _UPDATES_SEP = rule_by_hand(INPUTS["X_sep"], INPUTS["t_sep"], 0.5, 500)
assert _UPDATES_SEP[-1] == 0  # it converges (after 5 epochs on the public default inputs)


def separates(got, X, t):
    """The learned boundary classifies every point, and it is the perceptron's own run.

    A boundary found another way (least squares, say) classifies the points too, so the
    per-epoch update counts and the final (w, b) must be those of the rule itself.
    """
    outputs = (tensor(X) @ tensor(got["w"]) + float(got["b"]) >= 0).numpy().astype(int)
    return all_of(equal(outputs, t), equal(got["updates"], _UPDATES_SEP, label="updates"),
                  close(got["w"], _W_SEP, label="w"), close(got["b"], _B_SEP, label="b"))


CASES = [
    case("AND gate: w = (2, 1), b = -3, updates per epoch [2, 3, 3, 2, 1, 0] (worked by hand)",
         ['got = outputs["and_gate"]',
          'all_of(equal(got["updates"], np.array([2, 3, 3, 2, 1, 0])), close(got["w"], [2.0, 1.0]), '
          'close(got["b"], -3.0))'], points=1,
         hint="start from zeros, visit the rows in order, stop after the first epoch without updates"),
    case("40 separable points in 3-D (not through the origin): the trained unit classifies all of "
         "them, with the rule's own updates per epoch and final (w, b)",
         'separates(outputs["separable"], inputs["X_sep"], inputs["t_sep"])', points=1,
         hint="update the bias too (this data is not separable through the origin); visit the "
              "rows in order and stop after the first epoch without updates"),
]
