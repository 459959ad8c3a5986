# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 1.1: softmax with a temperature, its Jacobian, and a smoothed cross-entropy
#
# *Chapter 1 (neurons).* Section 1.4 turns a row of scores (logits) $z \in \mathbb{R}^K$ into
# probabilities with the softmax and trains with the cross-entropy. This exercise takes both one
# step further, in three directions the chapter does not go: a *temperature* $T > 0$ that
# sharpens ($T < 1$) or flattens ($T > 1$) the distribution, the softmax's *Jacobian* applied to a
# vector (what automatic differentiation computes without ever forming the matrix), and
# *label smoothing*, a cross-entropy against a target that is not one-hot.
#
# **How to work.** Replace every `raise NotImplementedError` with your code, then run the whole
# notebook (Kernel → Restart & Run All). Each *self-check* cell ends by printing
# `... self-checks passed`; if one raises `AssertionError`, its message says what is wrong.
# The self-checks use small worked examples. The grader runs other, hidden tests (other shapes,
# temperatures, extreme values, comparisons with PyTorch and with central differences), so passing
# the self-checks is necessary, not sufficient. Use numpy only; keep the function names and
# signatures; compute in float64.
#
# | question | function | points |
# |---|---|---|
# | 1 | `softmax(x, axis=-1, temperature=1.0)` | 2 |
# | 2 | `softmax_jvp(x, v, temperature=1.0)` | 2 |
# | 3 | `smoothed_cross_entropy(logits, targets, smoothing)` | 2 |

# %% tags=["grader"]
# Instructor only: everything in "grader" cells stays out of the student notebook.
EXERCISE = {"title": "Softmax with a temperature, its Jacobian, and a smoothed cross-entropy", "chapter": 1}

import numpy as np
import torch
import torch.nn.functional as F

from dlbook.grading.helpers import all_of, case, close, tensor

# %%
import numpy as np

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Question 1 (2 points): softmax with a temperature
#
# $$\operatorname{softmax}_T(z)_k = \frac{e^{z_k / T}}{\sum_{j} e^{z_j / T}}.$$
#
# As $T \to 0$ the distribution tends to a one-hot vector on the largest logit; as
# $T \to \infty$ it tends to the uniform distribution. A small temperature makes the exponents
# huge: `np.exp(1000.0 / 0.01)` is `inf`. Make your function stable for any $T > 0$ and logits
# of any size, for an array of any number of dimensions, normalising along `axis` (like
# `torch.softmax(x / T, dim=axis)`).

# %%
def softmax(x: np.ndarray, axis: int = -1, temperature: float = 1.0) -> np.ndarray:
    """Softmax of ``x`` along ``axis``, stable for large inputs; same shape as ``x``."""
    # BEGIN SOLUTION
    scaled = x / temperature
    shifted = scaled - np.max(scaled, axis=axis, keepdims=True)
    exps = np.exp(shifted)
    return exps / np.sum(exps, axis=axis, keepdims=True)
    # END SOLUTION


# %%
# Self-check for question 1 (worked by hand: e^0, e^1, e^2 over their sum 11.1073).
p = softmax(np.array([[1.0, 2.0, 3.0]]))
assert p.shape == (1, 3), f"shape {p.shape}, expected (1, 3)"
assert np.allclose(p, [[0.09003057, 0.24472847, 0.66524096]]), p
# temperature 2 on [2, 4, 6] is temperature 1 on [1, 2, 3]
assert np.allclose(softmax(np.array([[2.0, 4.0, 6.0]]), temperature=2.0), p), "divide the logits by T"
# a tiny temperature: the largest logit takes (almost) everything, and nothing overflows
cold = softmax(np.array([[1.0, 1.1], [-1000.0, 0.0]]), temperature=0.001)
assert np.all(np.isfinite(cold)), "overflow: shift by the maximum after dividing by T"
assert np.allclose(cold, [[0.0, 1.0], [0.0, 1.0]]), cold
columns = softmax(np.array([[1.0, 5.0], [1.0, 3.0]]), axis=0, temperature=10.0)
assert np.allclose(columns.sum(axis=0), 1.0), "axis=0 should normalise each column"
print("softmax: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "softmax", "points": 2}
rng = hidden_rng(1101)  # keyed by the instructor's secret when grading
INPUTS = {
    # logits around +-2000, and a row spread over about +-1000: exp(x / T) overflows (or
    # underflows to 0 / 0) unless each row is shifted by its maximum first (min-shifting overflows)
    "wide": rng.normal(size=(4, 9)) * np.array([[3.0], [3.0], [3.0], [1500.0]])
    + np.array([[2000.0], [-2000.0], [1500.0], [0.0]]),
    "cube": rng.normal(size=(3, 4, 5)) * 3.0,
}


def probe_wide(inputs):
    return softmax(inputs["wide"], temperature=2.0)


def probe_cube(inputs):
    return {"axis0": softmax(inputs["cube"], axis=0, temperature=4.0),
            "axis1": softmax(inputs["cube"], axis=1, temperature=0.5), "default": softmax(inputs["cube"])}


CASES = [
    case("(4, 9) logits around +-2000 or spread over thousands, temperature 2, match torch.softmax(x / T)",
         'close(outputs["wide"], torch.softmax(tensor(inputs["wide"]) / 2.0, dim=-1))', points=1,
         hint="divide by T first, then subtract each row's maximum before exponentiating"),
    case("a (3, 4, 5) array along axis=0 (T = 4), axis=1 (T = 0.5) and by default (last axis, T = 1) "
         "matches torch.softmax",
         ['got, x = outputs["cube"], tensor(inputs["cube"])',
          'all_of(close(got["axis0"], torch.softmax(x / 4.0, dim=0)), '
          'close(got["axis1"], torch.softmax(x / 0.5, dim=1)), '
          'close(got["default"], torch.softmax(x, dim=-1), label="defaults"))'],
         points=1,
         hint="normalise along the `axis` argument (keepdims=True), and divide by the temperature"),
]

# %% [markdown]
# ## Question 2 (2 points): the Jacobian of the softmax, applied to a vector
#
# For one row $z$ with $p = \operatorname{softmax}_T(z)$, derive the Jacobian
# $J_{kj} = \partial p_k / \partial z_j$ (start from $\log p_k = z_k / T - \log \sum_i e^{z_i / T}$).
# Then implement `softmax_jvp(x, v, temperature)`: for every row of `x` (softmax along the last
# axis) return $J v$ for the matching row of `v`, the *directional derivative*
#
# $$J v = \lim_{h \to 0} \frac{\operatorname{softmax}_T(z + h v) - \operatorname{softmax}_T(z)}{h},$$
#
# without building the $K \times K$ matrix: one line of array operations does it, and it works
# for `x` and `v` of any (equal) shape `(..., K)`. You may call your `softmax`.
#
# The cell after it gives you `finite_difference_along`, a central-difference estimate of
# $J v$, which the self-check uses.

# %%
def softmax_jvp(x: np.ndarray, v: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Jacobian-vector product of softmax(x / T) along the last axis with v; same shape as x."""
    # BEGIN SOLUTION
    scaled = x / temperature
    exps = np.exp(scaled - np.max(scaled, axis=-1, keepdims=True))
    p = exps / np.sum(exps, axis=-1, keepdims=True)  # softmax(x / T) along the last axis
    return p * (v - np.sum(p * v, axis=-1, keepdims=True)) / temperature
    # END SOLUTION


# %%
def finite_difference_along(f, x, v, h=1e-6):
    """Central differences of f at x in the direction v: (f(x + h v) - f(x - h v)) / 2h."""
    return (f(x + h * v) - f(x - h * v)) / (2 * h)


# %%
# Self-check for question 2.
z, v = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]]), np.array([[1.0, 0.0, -1.0], [0.3, 0.2, 0.1]])
for T in (1.0, 0.7):
    got = softmax_jvp(z, v, temperature=T)
    assert got.shape == z.shape, f"shape {got.shape}, expected {z.shape}"
    numeric = finite_difference_along(lambda a: softmax(a, temperature=T), z, v)
    assert np.allclose(got, numeric, atol=1e-7), f"T = {T}: analytic\n{got}\nnumeric\n{numeric}"
# adding the same constant to every logit changes nothing: J applied to a constant row is 0
assert np.allclose(softmax_jvp(z, np.full_like(z, 3.0)), 0.0), "J times a constant row must vanish"
print("softmax_jvp: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "softmax_jvp", "points": 2}
rng = hidden_rng(1102)  # keyed by the instructor's secret when grading
INPUTS = {
    # rows offset by up to 1000 (the Jacobian does not change, exp does) or spread over +-1000
    "x": rng.normal(size=(5, 6)) * np.array([[3.0], [3.0], [3.0], [3.0], [400.0]])
    + np.array([[1000.0], [-1000.0], [0.0], [500.0], [0.0]]),
    "v": rng.normal(size=(5, 6)),
    "x3": rng.normal(size=(2, 3, 4)), "v3": rng.normal(size=(2, 3, 4)),
    # worked by hand: z = (0, 0), p = (1/2, 1/2), v = (1, -1): p . v = 0, so
    # J v = p * v / T = (0.25, -0.25) at T = 2
    "x_hand": np.zeros((1, 2)), "v_hand": np.array([[1.0, -1.0]]),
}


def probe_torch(inputs):
    return {"cold": softmax_jvp(inputs["x"], inputs["v"], temperature=0.5),
            "default": softmax_jvp(inputs["x"], inputs["v"])}


def probe_numeric(inputs):
    return softmax_jvp(inputs["x3"], inputs["v3"], temperature=3.0)


def probe_hand(inputs):
    return softmax_jvp(inputs["x_hand"], inputs["v_hand"], temperature=2.0)


def torch_jvp(x, v, temperature):
    """The reference: torch's Jacobian-vector product of torch.softmax(x / T), in float64."""
    return torch.autograd.functional.jvp(lambda z: torch.softmax(z / temperature, dim=-1), tensor(x), tensor(v))[1]


def numeric_jvp(x, v, temperature, h=1e-6):
    f = lambda z: torch.softmax(tensor(z) / temperature, dim=-1).numpy()  # noqa: E731
    return (f(x + h * v) - f(x - h * v)) / (2 * h)


CASES = [
    case("(5, 6) logits, some rows offset by up to 1000, T = 0.5 and the default T = 1: J v matches "
         "torch.autograd.functional.jvp",
         ['got = outputs["torch"]',
          'all_of(close(got["cold"], torch_jvp(inputs["x"], inputs["v"], 0.5)), '
          'close(got["default"], torch_jvp(inputs["x"], inputs["v"], 1.0), label="T = 1"))'], points=1,
         hint="J = (diag(p) - p p^T) / T, so J v = p * (v - sum(p * v)) / T, row by row, with a stable p"),
    case("(2, 3, 4) logits, T = 3: J v matches central differences of torch.softmax",
         'close(outputs["numeric"], numeric_jvp(inputs["x3"], inputs["v3"], 3.0), rtol=1e-6, atol=1e-9)',
         points=0.5, hint="sum over the last axis only (keepdims=True), for any number of leading axes"),
    case("the hand-worked example (z = (0, 0), v = (1, -1), T = 2), together with the central "
         "differences above",
         'all_of(close(outputs["hand"], [[0.25, -0.25]], label="hand-worked J v"), '
         'close(outputs["numeric"], numeric_jvp(inputs["x3"], inputs["v3"], 3.0), rtol=1e-6, atol=1e-9, '
         'label="central differences"))', points=0.5,
         hint="the temperature divides the Jacobian too (chain rule through z / T)"),
]

# %% [markdown]
# ## Question 3 (2 points): cross-entropy with label smoothing
#
# Label smoothing trains against a target that keeps a little probability for every class: with
# smoothing $\varepsilon \in [0, 1)$ and $K$ classes, the target of a sample of class $y$ is
# $q = (1 - \varepsilon)\, e_y + \varepsilon / K$ (every entry gets $\varepsilon / K$; the true
# class gets $1 - \varepsilon$ on top). The loss is the mean over the batch of
# $-\sum_k q_k \log \operatorname{softmax}(z)_k$, as
# `torch.nn.functional.cross_entropy(logits, targets, label_smoothing=eps)` computes it.
#
# Return `(loss, grad)`: the loss as a Python `float` and its gradient with respect to the
# (N, K) logits. Derive the gradient yourself (it is as short as the one-hot case), and compute
# $\log \operatorname{softmax}$ stably: a probability that underflows to 0 must not give `inf`
# or `nan`, since with smoothing *every* class contributes.

# %%
def smoothed_cross_entropy(logits: np.ndarray, targets: np.ndarray, smoothing: float):
    """Mean label-smoothed cross-entropy of (N, K) logits and (N,) labels; returns (loss, dlogits)."""
    # BEGIN SOLUTION
    n, k = logits.shape
    shifted = logits - np.max(logits, axis=1, keepdims=True)
    log_p = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))  # (N, K)
    q = np.full_like(log_p, smoothing / k)
    q[np.arange(n), targets] += 1.0 - smoothing
    loss = float(-np.sum(q * log_p) / n)
    return loss, (np.exp(log_p) - q) / n
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
# Self-check for question 3.
# Without smoothing it is the ordinary cross-entropy: -log softmax([2, 1, 0.1])[0] = 0.4170.
loss0, _ = smoothed_cross_entropy(np.array([[2.0, 1.0, 0.1]]), np.array([0]), 0.0)
assert np.isclose(loss0, 0.41702, atol=1e-5), loss0
# Equal logits: every class has probability 1/3 and q sums to 1, so the loss is log 3 for any eps.
loss_u, grad_u = smoothed_cross_entropy(np.zeros((2, 3)), np.array([0, 2]), 0.3)
assert np.isclose(loss_u, np.log(3.0)), loss_u
assert grad_u.shape == (2, 3) and np.allclose(grad_u.sum(axis=1), 0.0), "each row of p - q sums to 0"
# the gradient against central differences of your loss
z, y = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]]), np.array([2, 0])
_, g = smoothed_cross_entropy(z, y, 0.2)
numeric = finite_difference(lambda a: smoothed_cross_entropy(a, y, 0.2)[0], z)
assert np.allclose(g, numeric, atol=1e-7), f"analytic\n{g}\nnumeric\n{numeric}"
big, _ = smoothed_cross_entropy(np.array([[1000.0, 0.0, 0.0]]), np.array([0]), 0.3)
assert np.isfinite(big), "log softmax overflowed or took log(0): shift by the row maximum"
print("smoothed_cross_entropy: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "smoothed_cross_entropy", "points": 2}
rng = hidden_rng(1103)  # keyed by the instructor's secret when grading
INPUTS = {
    "logits": rng.normal(size=(7, 5)) * 3.0,
    "targets": rng.integers(0, 5, size=7),
    # worked by hand, eps = 0.1, K = 4: row 0 is certain of its (true) class 0, 1000 above the
    # rest: -log p_0 = 0 and -log p_k = 1000 for the others, each with weight eps / K = 0.025:
    # 3 * 0.025 * 1000 = 75. Row 1 is uniform: log 4. Mean: (75 + log 4) / 2.
    "hand_logits": np.array([[1000.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]),
    "hand_targets": np.array([0, 2]),
}


def probe_random(inputs):
    loss, grad = smoothed_cross_entropy(inputs["logits"], inputs["targets"], 0.2)
    return {"loss": np.asarray(loss), "grad": grad}


def probe_hand(inputs):
    loss, grad = smoothed_cross_entropy(inputs["hand_logits"], inputs["hand_targets"], 0.1)
    return {"loss": np.asarray(loss), "grad": grad}


def torch_smoothed(logits, targets, smoothing):
    z = tensor(logits, requires_grad=True)
    loss = F.cross_entropy(z, torch.from_numpy(targets), label_smoothing=smoothing)
    loss.backward()
    return loss.item(), z.grad


# worked by hand on the same inputs: p = (1, 0, 0, 0) and (1/4, ...); q = (0.925, 0.025, ...) and
# (0.025, 0.025, 0.925, 0.025); grad = (p - q) / 2
HAND_GRAD = np.array([[0.0375, -0.0125, -0.0125, -0.0125], [0.1125, 0.1125, -0.3375, 0.1125]])

CASES = [
    case("(7, 5) logits, smoothing 0.2: loss and gradient match F.cross_entropy(label_smoothing=0.2)",
         ['got = outputs["random"]', 'loss, grad = torch_smoothed(inputs["logits"], inputs["targets"], 0.2)',
          'all_of(close(got["loss"], loss, label="loss"), close(got["grad"], grad, label="grad"))'],
         points=1,
         hint="q = (1 - eps) onehot + eps / K; the gradient is (softmax(z) - q) / N"),
    case("extreme logits, smoothing 0.1: the hand-worked loss, together with the random case above",
         ['loss, grad = torch_smoothed(inputs["logits"], inputs["targets"], 0.2)',
          'all_of(close(outputs["hand"]["loss"], (75.0 + np.log(4.0)) / 2.0, label="hand-worked loss"), '
          'close(outputs["random"]["loss"], loss, label="random loss"))'], points=0.5,
         hint="log softmax = z - max - log(sum(exp(z - max))): never take np.log of a softmax"),
    case("extreme logits, smoothing 0.1: the hand-worked gradient, together with the random case above",
         ['loss, grad = torch_smoothed(inputs["logits"], inputs["targets"], 0.2)',
          'all_of(close(outputs["hand"]["grad"], HAND_GRAD, label="hand-worked gradient"), '
          'close(outputs["random"]["grad"], grad, label="random gradient"))'], points=0.5,
         hint="every class gets eps / K, the true class 1 - eps more; divide by the batch size"),
]
