# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 2.1: backpropagation through a two-layer network with tied weights
#
# *Chapter 2 (backpropagation).* Section 2.3 backpropagates through layers that each own their
# weights. Here one weight matrix serves two layers. A small autoencoder encodes a batch of
# inputs $x$ (N, D) into H hidden units with a tanh and decodes them back to D numbers with the
# *transpose of the same matrix* (tied weights, a common way to halve an autoencoder's
# parameters):
#
# $$z = x W^\top + b, \qquad h = \tanh(z), \qquad r = h W + c,$$
#
# with $W$ (H, D), $b$ (H,), $c$ (D,) and the reconstruction $r$ (N, D). You implement the
# forward pass and, given $\partial L / \partial r$ (`drecon`, (N, D)) for some loss $L$, the
# backward pass to the input and to every parameter.
#
# **How to work.** Replace every `raise NotImplementedError` with your code, then run the whole
# notebook (Kernel → Restart & Run All). Each *self-check* cell ends by printing
# `... self-checks passed`. The grader runs other, hidden tests (other shapes, comparisons with
# PyTorch's autograd and with central differences), so passing the self-checks is necessary,
# not sufficient. Use numpy only; keep the names and signatures.
#
# | question | function | points |
# |---|---|---|
# | 1 | `tied_forward(x, w, b, c)` | 2 |
# | 2 | `tied_backward(drecon, cache)` | 4 |

# %% tags=["grader"]
# Instructor only: everything in "grader" cells stays out of the student notebook.
EXERCISE = {"title": "Backpropagation through a two-layer network with tied weights", "chapter": 2}

import numpy as np
import torch
import torch.nn.functional as F

from dlbook.grading.helpers import all_of, case, central_difference, close, tensor, torch_gradients


def torch_tied(x, w, b, c):
    return F.linear(torch.tanh(F.linear(x, w, b)), w.T, c)

# %%
import numpy as np

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Question 1 (2 points): the forward pass
#
# Return the reconstruction `r` (N, D) and a `cache`: whatever your backward pass will need (a
# tuple of arrays is fine). The grader only looks at `r`; the cache goes back to your own
# `tied_backward`.

# %%
def tied_forward(x, w, b, c):
    """Reconstruction of the tied-weight tanh autoencoder, and the cache for the backward pass."""
    # BEGIN SOLUTION
    z = x @ w.T + b  # (N, H)
    h = np.tanh(z)  # (N, H)
    recon = h @ w + c  # (N, D)
    return recon, (x, w, h)
    # END SOLUTION


# %%
# Self-check for question 1, worked by hand: z = [0, 0] (tanh 0 = 0), so r = c.
x_demo = np.array([[1.0, 1.0]])
w_demo = np.array([[1.0, -1.0], [2.0, -2.0]])  # (H, D) = (2, 2)
r, cache = tied_forward(x_demo, w_demo, np.zeros(2), np.array([0.5, -0.5]))
assert r.shape == (1, 2), f"shape {r.shape}, expected (1, 2)"
assert np.allclose(r, [[0.5, -0.5]]), r
# one hidden unit, D = 3: z = 0.5, h = tanh(0.5), r = h * w + c
r, _ = tied_forward(np.array([[0.5, 0.0, 0.0]]), np.array([[1.0, 2.0, 3.0]]), np.zeros(1), np.zeros(3))
assert r.shape == (1, 3), f"shape {r.shape}, expected (1, 3)"
assert np.allclose(r, np.tanh(0.5) * np.array([[1.0, 2.0, 3.0]])), r
print("tied_forward: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "tied_forward", "points": 2}
rng = hidden_rng(2101)  # keyed by the instructor's secret when grading
INPUTS = {
    "x": rng.normal(size=(5, 7)), "w": rng.normal(size=(4, 7)) * 0.7, "b": rng.normal(size=4),
    "c": rng.normal(size=7),
    # worked by hand: row 1, x = (1, -1): z = (0, 20, 20), h = (0, 1, 1) (tanh 20 = 1 in float64),
    # r = 0 * (0, 0) + (20, 0) + (0, -20) + c = (20.5, -21); row 2, x = 0: z = h = 0, r = c
    "x_hand": np.array([[1.0, -1.0], [0.0, 0.0]]),
    "w_hand": np.array([[0.0, 0.0], [20.0, 0.0], [0.0, -20.0]]),
    "c_hand": np.array([0.5, -1.0]),
}


def probe_random(inputs):
    return tied_forward(inputs["x"], inputs["w"], inputs["b"], inputs["c"])[0]


def probe_hand(inputs):
    return tied_forward(inputs["x_hand"], inputs["w_hand"], np.zeros(3), inputs["c_hand"])[0]


CASES = [
    case("(5, 7) inputs, 4 hidden units: the reconstruction matches torch",
         'close(outputs["random"], torch_tied(*(tensor(inputs[k]) for k in ("x", "w", "b", "c"))))',
         points=1, hint="tanh(x @ w.T + b), then @ w (not w.T) + c: the decoder uses the transpose"),
    case("the hand-worked example, together with the random case above",
         'all_of(close(outputs["hand"], [[20.5, -21.0], [0.5, -1.0]], label="hand-worked example"), '
         'close(outputs["random"], torch_tied(*(tensor(inputs[k]) for k in ("x", "w", "b", "c"))), '
         'label="random case"))', points=1,
         hint="do not forget the decoder's bias c"),
]

# %% [markdown]
# ## Question 2 (4 points): the backward pass
#
# Given `drecon` $= \partial L / \partial r$ and your cache, return `(dx, dw, db, dc)`, each
# with the shape of the array it is the gradient for. Work backwards one step at a time, and
# mind that $W$ is used twice: once by the encoder, once (transposed) by the decoder. By the
# multivariate chain rule, a parameter used in several places receives the *sum* of the
# gradients from every use. The derivative of $\tanh$ is $1 - \tanh^2$.
#
# The cell after it gives you `finite_difference`, which the self-check uses to compare your
# gradients with central differences of $L = \sum r \odot \text{drecon}$.

# %%
def tied_backward(drecon, cache):
    """Gradients (dx, dw, db, dc) of the loss, given dL/drecon and the forward cache."""
    # BEGIN SOLUTION
    x, w, h = cache
    dc = drecon.sum(axis=0)  # (D,)
    dh = drecon @ w.T  # (N, H)
    dz = dh * (1.0 - h ** 2)  # (N, H)
    db = dz.sum(axis=0)  # (H,)
    dw = dz.T @ x + h.T @ drecon  # encoder's use + decoder's use, (H, D)
    dx = dz @ w  # (N, D)
    return dx, dw, db, dc
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
# Self-check for question 2: every gradient against central differences of L = sum(r * G).
rng_demo = np.random.default_rng(0)
x0, w0 = rng_demo.normal(size=(2, 3)), rng_demo.normal(size=(4, 3))
b0, c0, G = rng_demo.normal(size=4), rng_demo.normal(size=3), rng_demo.normal(size=(2, 3))
grads = tied_backward(G, tied_forward(x0, w0, b0, c0)[1])
params = [x0, w0, b0, c0]
for k, (name, grad) in enumerate(zip(["dx", "dw", "db", "dc"], grads)):
    def loss(value, k=k):
        args = list(params)
        args[k] = value
        return float(np.sum(tied_forward(*args)[0] * G))
    assert grad.shape == params[k].shape, f"{name}: shape {grad.shape}, expected {params[k].shape}"
    assert np.allclose(grad, finite_difference(loss, params[k]), atol=1e-6), f"{name} is wrong"
print("tied_backward: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "tied_backward", "points": 4}
rng = hidden_rng(2102)  # keyed by the instructor's secret when grading
_NAMES = ("x", "w", "b", "c")
INPUTS = {
    "x": rng.normal(size=(6, 5)), "w": rng.normal(size=(3, 5)) * 0.6, "b": rng.normal(size=3),
    "c": rng.normal(size=5), "drecon": rng.normal(size=(6, 5)),
    "x_small": rng.normal(size=(3, 2)), "w_small": rng.normal(size=(5, 2)), "b_small": rng.normal(size=5),
    "c_small": rng.normal(size=2), "drecon_small": rng.normal(size=(3, 2)),
}


def probe_random(inputs):
    names = ("x", "w", "b", "c")
    recon, cache = tied_forward(*(inputs[k] for k in names))
    return dict(zip(names, tied_backward(inputs["drecon"], cache)))


def probe_small(inputs):
    names = ("x", "w", "b", "c")
    recon, cache = tied_forward(*(inputs[k + "_small"] for k in names))
    return dict(zip(names, tied_backward(inputs["drecon_small"], cache)))


def autograd(inputs):
    return torch_gradients(torch_tied, {k: inputs[k] for k in _NAMES}, inputs["drecon"])[1]


def numeric(inputs, name):
    """Central differences of L = sum(torch_tied(...) * drecon) with respect to one argument."""
    def loss(value):
        args = {k: tensor(inputs[k + "_small"]) for k in _NAMES}
        args[name] = tensor(value)
        return float((torch_tied(**args) * tensor(inputs["drecon_small"])).sum())
    return central_difference(loss, inputs[name + "_small"])


CASES = [
    case("dw (used by the encoder and the decoder) matches torch.autograd, random upstream gradient",
         'close(outputs["random"]["w"], autograd(inputs)["w"], label="dw")', points=2,
         hint="dw is the sum of two terms: dz.T @ x from the encoder and h.T @ drecon from the decoder"),
    case("dx, db and dc match torch.autograd",
         ['got, ref = outputs["random"], autograd(inputs)',
          'all_of(*(close(got[k], ref[k], label="d" + k) for k in ("x", "b", "c")))'], points=1,
         hint="dz = (drecon @ w.T) * (1 - h**2); dx = dz @ w; biases sum over the batch"),
    case("every gradient of a (3, 2) -> 5 -> 2 autoencoder matches central differences",
         ['got = outputs["small"]',
          'all_of(*(close(got[k], numeric(inputs, k), rtol=1e-6, atol=1e-8, label="d" + k) '
          'for k in ("x", "w", "b", "c")))'],
         points=1, hint="compare each gradient's shape with its parameter's shape"),
]
