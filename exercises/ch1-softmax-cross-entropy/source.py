# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 1.1: a stable softmax and the cross-entropy loss
#
# *Chapter 1 (neurons).* A classifier with $K$ classes turns a row of scores (logits)
# $z \in \mathbb{R}^K$ into probabilities with the softmax, and is trained by minimising the
# cross-entropy between those probabilities and the true class. You implement both, and the
# gradient of the loss, in numpy.
#
# **How to work.** Replace every `raise NotImplementedError` with your code, then run the whole
# notebook (Kernel → Restart & Run All). Each *self-check* cell ends by printing
# `... self-checks passed`; if one raises `AssertionError`, its message says what is wrong.
# The self-checks use small worked examples. The grader runs other, hidden tests (other shapes,
# extreme values, comparisons with PyTorch), so passing the self-checks is necessary, not
# sufficient. Use numpy only; keep the function names and signatures.
#
# | question | function | points |
# |---|---|---|
# | 1 | `softmax(x, axis=-1)` | 2 |
# | 2 | `cross_entropy(logits, targets)` | 2 |
# | 3 | `cross_entropy_backward(logits, targets)` | 2 |

# %% tags=["grader"]
# Instructor only: everything in "grader" cells stays out of the student notebook.
EXERCISE = {"title": "A stable softmax and the cross-entropy loss", "chapter": 1}

import numpy as np
import torch
import torch.nn.functional as F

from dlbook.grading.helpers import all_of, case, central_difference, close, tensor

# %%
import numpy as np

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Question 1 (2 points): softmax
#
# $$\operatorname{softmax}(z)_k = \frac{e^{z_k}}{\sum_{j} e^{z_j}}.$$
#
# Written like this, `np.exp(1000.0)` overflows to `inf` and the result becomes `nan`. Since
# the softmax does not change when the same constant is subtracted from every $z_j$, subtract
# the largest one first: then every exponent is $\le 0$ and the largest term is exactly 1.
#
# Implement `softmax(x, axis=-1)` for an array of any number of dimensions, normalising along
# `axis` (like `torch.softmax(x, dim=axis)`).

# %%
def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax of ``x`` along ``axis``, stable for large inputs; same shape as ``x``."""
    # BEGIN SOLUTION
    shifted = x - np.max(x, axis=axis, keepdims=True)
    exps = np.exp(shifted)
    return exps / np.sum(exps, axis=axis, keepdims=True)
    # END SOLUTION


# %%
# Self-check for question 1 (worked by hand: e^0, e^1, e^2 over their sum 11.1073).
p = softmax(np.array([[1.0, 2.0, 3.0]]))
assert p.shape == (1, 3), f"shape {p.shape}, expected (1, 3)"
assert np.allclose(p, [[0.09003057, 0.24472847, 0.66524096]]), p
big = softmax(np.array([[1000.0, 1000.0], [-1000.0, 0.0]]))
assert np.all(np.isfinite(big)), "softmax overflows for large logits: subtract the maximum first"
assert np.allclose(big, [[0.5, 0.5], [0.0, 1.0]]), big
columns = softmax(np.array([[1.0, 5.0], [1.0, 3.0]]), axis=0)
assert np.allclose(columns.sum(axis=0), 1.0), "axis=0 should normalise each column"
print("softmax: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "softmax", "points": 2}
rng = hidden_rng(1101)  # keyed by the instructor's secret when grading
INPUTS = {
    "wide": rng.normal(size=(4, 9)) * 300.0,  # logits up to about +-1000: exp overflows unshifted
    "cube": rng.normal(size=(3, 4, 5)) * 3.0,
}


def probe_wide(inputs):
    return softmax(inputs["wide"])


def probe_cube(inputs):
    return {"axis0": softmax(inputs["cube"], axis=0), "axis1": softmax(inputs["cube"], axis=1)}


CASES = [
    case("(4, 9) logits up to about 1000 in size match torch.softmax",
         'close(outputs["wide"], torch.softmax(tensor(inputs["wide"]), dim=-1))', points=1,
         hint="large logits: subtract each row's maximum before exponentiating"),
    case("a (3, 4, 5) array along axis=0 and axis=1 matches torch.softmax",
         ['got, x = outputs["cube"], tensor(inputs["cube"])',
          'all_of(close(got["axis0"], torch.softmax(x, dim=0)), close(got["axis1"], torch.softmax(x, dim=1)))'],
         points=1,
         hint="normalise along the `axis` argument (use keepdims=True so the shapes broadcast)"),
]

# %% [markdown]
# ## Question 2 (2 points): cross-entropy
#
# For a batch of $N$ rows of logits $z_n$ with true classes $y_n \in \{0, \dots, K-1\}$, the
# mean cross-entropy is
#
# $$L = \frac{1}{N} \sum_{n=1}^{N} -\log \operatorname{softmax}(z_n)_{y_n}
#     = \frac{1}{N} \sum_{n=1}^{N} \Big( \log \sum_k e^{z_{n,k}} - z_{n, y_n} \Big).$$
#
# Compute it from the right-hand form with the same max-shift (the "log-sum-exp" trick), not by
# taking `np.log` of a softmax: a probability that underflows to 0 would give `inf`. Return a
# Python `float` (like `torch.nn.functional.cross_entropy(logits, targets).item()`).

# %%
def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean cross-entropy of (N, K) logits against (N,) integer class labels."""
    # BEGIN SOLUTION
    n = logits.shape[0]
    peak = np.max(logits, axis=1, keepdims=True)
    log_sum_exp = peak[:, 0] + np.log(np.sum(np.exp(logits - peak), axis=1))  # (N,)
    return float(np.mean(log_sum_exp - logits[np.arange(n), targets]))
    # END SOLUTION


# %%
# Self-check for question 2. Equal logits over 3 classes: every class has probability 1/3.
assert np.isclose(cross_entropy(np.zeros((2, 3)), np.array([0, 2])), np.log(3.0))
# Worked by hand: softmax([2, 1, 0.1])[0] = 0.6590, so the loss is -log(0.6590) = 0.4170.
assert np.isclose(cross_entropy(np.array([[2.0, 1.0, 0.1]]), np.array([0])), 0.41702, atol=1e-5)
# A confident right answer costs nothing, a confident wrong one costs the logit gap (1000).
extreme = cross_entropy(np.array([[1000.0, 0.0], [0.0, 1000.0]]), np.array([0, 0]))
assert np.isfinite(extreme), "log-sum-exp overflow: shift by the row maximum"
assert np.isclose(extreme, 500.0), extreme
print("cross_entropy: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "cross_entropy", "points": 2}
rng = hidden_rng(1102)  # keyed by the instructor's secret when grading
INPUTS = {
    "logits": rng.normal(size=(7, 5)) * 4.0,
    "targets": rng.integers(0, 5, size=7),
    # worked by hand: row 0 uniform over 4 classes -> log 4; row 1 a certain right answer -> 0;
    # row 2 a certain wrong one, 1000 below the winner -> 1000. Mean: (log 4 + 0 + 1000) / 3.
    "hand_logits": np.array([[0.0, 0.0, 0.0, 0.0], [1000.0, 0.0, 0.0, -1000.0], [0.0, 1000.0, 0.0, 0.0]]),
    "hand_targets": np.array([2, 0, 0]),
}


def probe_random(inputs):
    return cross_entropy(inputs["logits"], inputs["targets"])


def probe_hand(inputs):
    return cross_entropy(inputs["hand_logits"], inputs["hand_targets"])


CASES = [
    case("(7, 5) logits match torch.nn.functional.cross_entropy",
         'close(outputs["random"], F.cross_entropy(tensor(inputs["logits"]), '
         'torch.from_numpy(inputs["targets"])).item())', points=1,
         hint="the mean over the batch of log-sum-exp(z_n) - z_n[y_n]"),
    case("extreme logits give the hand-worked value (log 4 + 0 + 1000) / 3",
         'close(outputs["hand"], (np.log(4.0) + 0.0 + 1000.0) / 3.0)', points=1,
         hint="shift each row by its maximum inside the log-sum-exp; average over the batch"),
]

# %% [markdown]
# ## Question 3 (2 points): the gradient of the loss
#
# Differentiating $L$ with respect to the logits gives a famously simple result: with
# $p_n = \operatorname{softmax}(z_n)$ and $e_{y_n}$ the one-hot row of the true class,
#
# $$\frac{\partial L}{\partial z_n} = \frac{1}{N} \big(p_n - e_{y_n}\big).$$
#
# Implement `cross_entropy_backward(logits, targets)` returning the (N, K) array
# $\partial L / \partial z$. You may call your `softmax`.
#
# The cell after it gives you `finite_difference`, a central-difference estimate of a gradient,
# which the self-check uses to test your formula numerically.

# %%
def cross_entropy_backward(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Gradient of the mean cross-entropy with respect to the (N, K) logits."""
    # BEGIN SOLUTION
    n = logits.shape[0]
    exps = np.exp(logits - np.max(logits, axis=1, keepdims=True))
    grad = exps / np.sum(exps, axis=1, keepdims=True)  # the softmax, (N, K)
    grad[np.arange(n), targets] -= 1.0
    return grad / n
    # END SOLUTION


# %%
def finite_difference(f, x, h=1e-6):
    """Central differences: d f / d x[i] ~ (f(x + h e_i) - f(x - h e_i)) / 2h, for every i."""
    x = np.array(x, dtype=float)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = f(x)
        x[i] = old - h
        minus = f(x)
        x[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


# %%
# Self-check for question 3: the formula against central differences of your cross_entropy.
z = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]])
y = np.array([2, 0])
g = cross_entropy_backward(z, y)
assert g.shape == z.shape, f"shape {g.shape}, expected {z.shape}"
assert np.allclose(g.sum(axis=1), 0.0), "each row of p - onehot sums to 0"
numeric = finite_difference(lambda logits: cross_entropy(logits, y), z)
assert np.allclose(g, numeric, atol=1e-7), f"analytic\n{g}\nnumeric\n{numeric}"
print("cross_entropy_backward: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "cross_entropy_backward", "points": 2}
rng = hidden_rng(1103)  # keyed by the instructor's secret when grading
INPUTS = {
    "logits": rng.normal(size=(6, 4)) * 3.0,
    "targets": rng.integers(0, 4, size=6),
    "small_logits": rng.normal(size=(3, 5)),
    "small_targets": np.array([4, 0, 2]),
}


def probe_torch(inputs):
    return cross_entropy_backward(inputs["logits"], inputs["targets"])


def probe_numeric(inputs):
    return cross_entropy_backward(inputs["small_logits"], inputs["small_targets"])


def torch_gradient(logits, targets):
    z = tensor(logits, requires_grad=True)
    F.cross_entropy(z, torch.from_numpy(targets)).backward()
    return z.grad


def reference_loss(targets):
    return lambda z: F.cross_entropy(tensor(z), torch.from_numpy(targets)).item()


CASES = [
    case("(6, 4) gradient matches torch.autograd",
         'close(outputs["torch"], torch_gradient(inputs["logits"], inputs["targets"]))', points=1,
         hint="(softmax(z) - onehot(y)) / N, with N the batch size"),
    case("(3, 5) gradient matches central differences of the loss",
         'close(outputs["numeric"], central_difference(reference_loss(inputs["small_targets"]), '
         'inputs["small_logits"]), rtol=1e-6, atol=1e-8)', points=1,
         hint="check the one-hot subtraction and the division by N"),
]
