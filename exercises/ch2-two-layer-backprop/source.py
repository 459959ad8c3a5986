# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 2.1: backpropagation through a two-layer network
#
# *Chapter 2 (backpropagation).* The network maps a batch of inputs $x$ (N, D) to scores (N, K)
# through a hidden layer of H rectified units:
#
# $$z = x W_1^\top + b_1, \qquad h = \max(z, 0), \qquad s = h W_2^\top + b_2,$$
#
# with weights stored as PyTorch stores them: $W_1$ is (H, D), $b_1$ (H,), $W_2$ (K, H), $b_2$
# (K,). You implement the forward pass and, given the gradient of some loss with respect to the
# scores, $\partial L / \partial s$ (`dscores`, (N, K)), the backward pass that returns the
# gradients for the input and for every parameter.
#
# **How to work.** Replace every `raise NotImplementedError` with your code, then run the whole
# notebook (Kernel → Restart & Run All). Each *self-check* cell ends by printing
# `... self-checks passed`. The grader runs other, hidden tests (other shapes, comparisons with
# PyTorch's autograd and with central differences), so passing the self-checks is necessary,
# not sufficient. Use numpy only; keep the names and signatures.
#
# | question | function | points |
# |---|---|---|
# | 1 | `two_layer_forward(x, w1, b1, w2, b2)` | 2 |
# | 2 | `two_layer_backward(dscores, cache)` | 4 |

# %% tags=["grader"]
# Instructor only: everything in "grader" cells stays out of the student notebook.
EXERCISE = {"title": "Backpropagation through a two-layer network", "chapter": 2}

import numpy as np
import torch
import torch.nn.functional as F

from dlbook.grading.helpers import all_of, case, central_difference, close, tensor, torch_gradients


def torch_two_layer(x, w1, b1, w2, b2):
    return F.linear(torch.relu(F.linear(x, w1, b1)), w2, b2)

# %%
import numpy as np

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Question 1 (2 points): the forward pass
#
# Return the scores `s` (N, K) and a `cache`: whatever your backward pass will need (a tuple of
# arrays is fine). The grader only looks at the scores; the cache goes back to your own
# `two_layer_backward`.

# %%
def two_layer_forward(x, w1, b1, w2, b2):
    """Scores of the two-layer ReLU network, and the cache for the backward pass."""
    # BEGIN SOLUTION
    z = x @ w1.T + b1  # (N, H)
    h = np.maximum(z, 0.0)  # (N, H)
    scores = h @ w2.T + b2  # (N, K)
    return scores, (x, w1, w2, z, h)
    # END SOLUTION


# %%
# Self-check for question 1, worked by hand: z = [2, -1], h = [2, 0], s = [2 + 0 + 0.5, -2 - 0 + 1].
x_demo = np.array([[1.0, 1.0]])
w1_demo, b1_demo = np.array([[1.0, 1.0], [-1.0, 0.0]]), np.array([0.0, 0.0])
w2_demo, b2_demo = np.array([[1.0, 3.0], [-1.0, 1.0]]), np.array([0.5, 1.0])
scores, cache = two_layer_forward(x_demo, w1_demo, b1_demo, w2_demo, b2_demo)
assert scores.shape == (1, 2), f"shape {scores.shape}, expected (1, 2)"
assert np.allclose(scores, [[2.5, -1.0]]), scores
print("two_layer_forward: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "two_layer_forward", "points": 2}
rng = hidden_rng(2101)  # keyed by the instructor's secret when grading
INPUTS = {
    "x": rng.normal(size=(5, 7)), "w1": rng.normal(size=(6, 7)), "b1": rng.normal(size=6),
    "w2": rng.normal(size=(3, 6)), "b2": rng.normal(size=3),
    # worked by hand: row 1: z = [1, -1, 1], h = [1, 0, 1], s = [1 + 1 + 0.5, 1 + 2 - 1] = [2.5, 2];
    # row 2: z = [0, 2, 3], h = [0, 2, 3], s = [2 + 3 + 0.5, -2 + 6 - 1] = [5.5, 3]
    "x_hand": np.array([[1.0, -1.0], [0.0, 2.0]]),
    "w1_hand": np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), "b1_hand": np.array([0.0, 0.0, 1.0]),
    "w2_hand": np.array([[1.0, 1.0, 1.0], [1.0, -1.0, 2.0]]), "b2_hand": np.array([0.5, -1.0]),
}


def probe_random(inputs):
    return two_layer_forward(inputs["x"], inputs["w1"], inputs["b1"], inputs["w2"], inputs["b2"])[0]


def probe_hand(inputs):
    return two_layer_forward(inputs["x_hand"], inputs["w1_hand"], inputs["b1_hand"],
                             inputs["w2_hand"], inputs["b2_hand"])[0]


CASES = [
    case("(5, 7) inputs, 6 hidden units, 3 classes: scores match torch",
         'close(outputs["random"], torch_two_layer(*(tensor(inputs[k]) for k in ("x", "w1", "b1", "w2", "b2"))))',
         points=1, hint="x @ w1.T + b1, then ReLU, then @ w2.T + b2 (weights are (out, in))"),
    case("the hand-worked example gives scores [[2.5, 2.0], [5.5, 3.0]]",
         'close(outputs["hand"], [[2.5, 2.0], [5.5, 3.0]])', points=1,
         hint="the ReLU zeroes the negative pre-activation; do not forget either bias"),
]

# %% [markdown]
# ## Question 2 (4 points): the backward pass
#
# Given `dscores` $= \partial L / \partial s$ and your cache, return
# `(dx, dw1, db1, dw2, db2)`, each with the shape of the array it is the gradient for. Work
# backwards one step at a time: through the second linear layer (to $W_2$, $b_2$ and $h$),
# through the ReLU (its derivative is 1 where $z > 0$ and 0 elsewhere, *including* $z = 0$, as
# in PyTorch), then through the first linear layer. Biases collect their gradient over the
# batch.
#
# The cell after it gives you `finite_difference`, which the self-check uses to compare your
# gradients with central differences of $L = \sum s \odot \text{dscores}$.

# %%
def two_layer_backward(dscores, cache):
    """Gradients (dx, dw1, db1, dw2, db2) of the loss, given dL/dscores and the forward cache."""
    # BEGIN SOLUTION
    x, w1, w2, z, h = cache
    dw2 = dscores.T @ h  # (K, H)
    db2 = dscores.sum(axis=0)  # (K,)
    dh = dscores @ w2  # (N, H)
    dz = dh * (z > 0)  # (N, H)
    dw1 = dz.T @ x  # (H, D)
    db1 = dz.sum(axis=0)  # (H,)
    dx = dz @ w1  # (N, D)
    return dx, dw1, db1, dw2, db2
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
# Self-check for question 2: every gradient against central differences of L = sum(s * G).
rng_demo = np.random.default_rng(0)
x0, w10, b10 = rng_demo.normal(size=(2, 3)), rng_demo.normal(size=(4, 3)), rng_demo.normal(size=4)
w20, b20, G = rng_demo.normal(size=(2, 4)), rng_demo.normal(size=2), rng_demo.normal(size=(2, 2))
grads = two_layer_backward(G, two_layer_forward(x0, w10, b10, w20, b20)[1])
params = [x0, w10, b10, w20, b20]
for k, (name, grad) in enumerate(zip(["dx", "dw1", "db1", "dw2", "db2"], grads)):
    def loss(value, k=k):
        args = list(params)
        args[k] = value
        return float(np.sum(two_layer_forward(*args)[0] * G))
    assert grad.shape == params[k].shape, f"{name}: shape {grad.shape}, expected {params[k].shape}"
    assert np.allclose(grad, finite_difference(loss, params[k]), atol=1e-6), f"{name} is wrong"
print("two_layer_backward: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "two_layer_backward", "points": 4}
rng = hidden_rng(2102)  # keyed by the instructor's secret when grading
_x = rng.normal(size=(4, 6))
_x[0] = 0.0  # row 0 has pre-activations exactly b1: with b1[1] = 0 the ReLU sees z = 0
_b1 = rng.normal(size=5)
_b1[1] = 0.0
INPUTS = {
    "x": _x, "w1": rng.normal(size=(5, 6)), "b1": _b1, "w2": rng.normal(size=(3, 5)), "b2": rng.normal(size=3),
    "dscores": rng.normal(size=(4, 3)),
    "x_small": rng.normal(size=(3, 2)), "w1_small": rng.normal(size=(4, 2)), "b1_small": rng.normal(size=4),
    "w2_small": rng.normal(size=(3, 4)), "b2_small": rng.normal(size=3), "dscores_small": rng.normal(size=(3, 3)),
}
_NAMES = ("x", "w1", "b1", "w2", "b2")


def probe_random(inputs):
    names = ("x", "w1", "b1", "w2", "b2")
    scores, cache = two_layer_forward(*(inputs[k] for k in names))
    return dict(zip(names, two_layer_backward(inputs["dscores"], cache)))


def probe_small(inputs):
    names = ("x", "w1", "b1", "w2", "b2")
    scores, cache = two_layer_forward(*(inputs[k + "_small"] for k in names))
    return dict(zip(names, two_layer_backward(inputs["dscores_small"], cache)))


def autograd(inputs):
    return torch_gradients(torch_two_layer, {k: inputs[k] for k in _NAMES}, inputs["dscores"])[1]


def numeric(inputs, name):
    """Central differences of L = sum(torch_two_layer(...) * dscores) with respect to one argument."""
    def loss(value):
        args = {k: tensor(inputs[k + "_small"]) for k in _NAMES}
        args[name] = tensor(value)
        return float((torch_two_layer(**args) * tensor(inputs["dscores_small"])).sum())
    return central_difference(loss, inputs[name + "_small"])


CASES = [
    case("dw1, db1, dw2, db2 match torch.autograd (random upstream gradient, a ReLU input at exactly 0)",
         ['got, ref = outputs["random"], autograd(inputs)',
          'all_of(*(close(got[k], ref[k], label="d" + k) for k in ("w1", "b1", "w2", "b2")))'], points=2,
         hint="dw2 = dscores.T @ h, db2 = sum over the batch; mask with (z > 0), then the same for layer 1"),
    case("dx matches torch.autograd",
         'close(outputs["random"]["x"], autograd(inputs)["x"])', points=1,
         hint="dx = dz @ w1, where dz is the masked gradient at the hidden pre-activations"),
    case("every gradient of a (3, 2) -> 4 -> 3 network matches central differences",
         ['got = outputs["small"]',
          'all_of(*(close(got[k], numeric(inputs, k), rtol=1e-6, atol=1e-8, label="d" + k) '
          'for k in ("x", "w1", "b1", "w2", "b2")))'],
         points=1, hint="compare each gradient's shape with its parameter's shape"),
]
