# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 7.1: PReLU with a learned slope, channels last
#
# *Chapter 7 (Training in practice), Section 7.4.* A PReLU unit passes positive inputs
# unchanged and multiplies non-positive ones by a learned slope $\alpha$:
#
# $$f(x) = \begin{cases} x & x > 0 \\ \alpha x & x \le 0 \end{cases}, \qquad
# \frac{\partial f}{\partial x} = \begin{cases} 1 & x > 0 \\ \alpha & x \le 0 \end{cases}, \qquad
# \frac{\partial f}{\partial \alpha} = \begin{cases} 0 & x > 0 \\ x & x \le 0 \end{cases}.$$
#
# The chapter's PReLU uses PyTorch's layout, channels on axis 1, with one slope per channel or
# one for the whole layer. This exercise uses the *channels-last* layout of TensorFlow and Keras,
# `x` of shape (N, H, W, C), and lets the slopes have **any shape that broadcasts over one
# example**: `alpha` has as many axes as one example (here 3), each of size 1 or equal to the
# example's size on that axis. Three common choices:
#
# | `alpha` shape | meaning |
# |---|---|
# | (1, 1, C) | one slope per channel, shared over the batch and all positions |
# | (1, 1, 1) | one slope for the whole layer |
# | (H, W, C) | one slope per element of an example (Keras's default), shared over the batch only |
#
# A slope is shared by every element it is broadcast to, so its gradient is the **sum** of
# `dout * x` over those elements (where `x <= 0`): over the batch axis always, and over every
# axis on which `alpha` has size 1.
#
# **How to work.** Replace every `raise NotImplementedError` with your code, then run the whole
# notebook (Kernel → Restart & Run All). Each *self-check* cell ends by printing
# `... self-checks passed`. The grader runs other, hidden tests (other shapes and slope layouts,
# compared with PyTorch in float64), so passing the self-checks is necessary, not sufficient.
# Use numpy only; keep the names and signatures; do not modify the arguments.
#
# | question | function | points |
# |---|---|---|
# | 1 | `prelu_forward(x, alpha)` | 2 |
# | 2 | `prelu_backward(dout, cache)` | 3 |

# %% tags=["grader"]
# Instructor only: everything in "grader" cells stays out of the student notebook.
EXERCISE = {"title": "PReLU with a learned slope, channels last", "chapter": 7}

import numpy as np
import torch
import torch.nn.functional as F

from dlbook.grading.helpers import all_of, case, close, tensor, torch_gradients


def torch_prelu(x, alpha):
    """PReLU in torch with broadcast slopes: x where x > 0, alpha * x elsewhere."""
    return torch.where(x > 0, x, alpha * x)


# %%
import numpy as np

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Question 1 (2 points): the forward pass
#
# Return `out` (the shape of `x`) and a `cache` with what your backward pass needs.

# %%
def prelu_forward(x, alpha):
    """PReLU of x (N, ...) with slopes alpha broadcast over one example; returns (out, cache)."""
    # BEGIN SOLUTION
    out = np.where(x > 0, x, alpha * x)  # alpha (1 or size, per axis) broadcasts from the right
    return out, (x, alpha)
    # END SOLUTION


# %%
# Self-check for question 1, worked by hand: N = 2 examples of H = W = 1 and C = 2 channels.
x_demo = np.array([[[[-2.0, 3.0]]], [[[4.0, -1.0]]]])  # (2, 1, 1, 2)
alpha_demo = np.array([[[0.5, 0.1]]])  # (1, 1, 2): slope 0.5 for channel 0, 0.1 for channel 1
out, cache = prelu_forward(x_demo, alpha_demo)
assert out.shape == x_demo.shape, f"shape {out.shape}, expected {x_demo.shape}"
assert np.allclose(out, [[[[-1.0, 3.0]]], [[[4.0, -0.1]]]]), out
out, _ = prelu_forward(x_demo, np.array([[[0.25]]]))  # one shared slope
assert np.allclose(out, [[[[-0.5, 3.0]]], [[[4.0, -0.25]]]]), out
print("prelu_forward: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "prelu_forward", "points": 2}
rng = hidden_rng(7101)  # keyed by the instructor's secret when grading
INPUTS = {
    "x": rng.normal(size=(3, 4, 5, 2)), "alpha_channel": rng.uniform(0.0, 0.5, size=(1, 1, 2)),
    "alpha_element": rng.uniform(-0.3, 0.5, size=(4, 5, 2)),
}


def probe_channel(inputs):
    return prelu_forward(inputs["x"], inputs["alpha_channel"])[0]


def probe_element(inputs):
    return prelu_forward(inputs["x"], inputs["alpha_element"])[0]


def nchw_prelu(x, alpha):
    """torch's own PReLU on the channels-first copy, moved back to channels last."""
    return F.prelu(tensor(x).permute(0, 3, 1, 2), tensor(alpha).reshape(-1)).permute(0, 2, 3, 1)


CASES = [
    case("(3, 4, 5, 2) input, one slope per channel (1, 1, 2): matches torch.nn.functional.prelu",
         'close(outputs["channel"], nchw_prelu(inputs["x"], inputs["alpha_channel"]))', points=1,
         hint="keep x where x > 0 and use alpha * x elsewhere; let numpy broadcast alpha"),
    case("(3, 4, 5, 2) input, one slope per element (4, 5, 2), some negative: matches torch",
         'close(outputs["element"], '
         'torch_prelu(tensor(inputs["x"]), tensor(inputs["alpha_element"])))',
         points=1, hint="x > 0 decides, not alpha * x > x: a negative slope must still apply"),
]

# %% [markdown]
# ## Question 2 (3 points): the backward pass
#
# Given `dout` (the shape of `out`) and your cache, return `(dx, dalpha)`: `dx` with the shape of
# `x`, `dalpha` with the shape of `alpha`. For `dalpha`, first form `dout * x` where `x <= 0` (0
# elsewhere), then sum it over the batch axis and over every axis on which `alpha` has size 1
# (with `keepdims=True`, so that the result has `alpha`'s shape).

# %%
def prelu_backward(dout, cache):
    """Gradients of PReLU with respect to x and to the slopes alpha; returns (dx, dalpha)."""
    # BEGIN SOLUTION
    x, alpha = cache
    negative = x <= 0
    dx = np.where(negative, alpha * dout, dout)
    contrib = np.where(negative, dout * x, 0.0).sum(axis=0)  # one example's shape
    shared = tuple(k for k, size in enumerate(alpha.shape) if size == 1 and contrib.shape[k] != 1)
    dalpha = contrib.sum(axis=shared, keepdims=True)
    return dx, dalpha
    # END SOLUTION


# %%
# Self-check for question 2 on the example of question 1 with dout = 1 everywhere:
# dx is 1 for positive inputs and the channel's slope for the others; dalpha sums x over the
# non-positive inputs of each channel: channel 0 has only -2, channel 1 only -1.
_, cache = prelu_forward(x_demo, alpha_demo)
dx, dalpha = prelu_backward(np.ones_like(x_demo), cache)
assert dx.shape == x_demo.shape and dalpha.shape == alpha_demo.shape, (dx.shape, dalpha.shape)
assert np.allclose(dx, [[[[0.5, 1.0]]], [[[1.0, 0.1]]]]), dx
assert np.allclose(dalpha, [[[-2.0, -1.0]]]), dalpha
# one shared slope: its gradient is the sum over both channels, -3
_, cache = prelu_forward(x_demo, np.array([[[0.25]]]))
_, dalpha = prelu_backward(np.ones_like(x_demo), cache)
assert dalpha.shape == (1, 1, 1) and np.allclose(dalpha, -3.0), dalpha
print("prelu_backward: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "prelu_backward", "points": 3}
rng = hidden_rng(7102)  # keyed by the instructor's secret when grading
INPUTS = {
    # H = 2: a slope of size 1 on an axis of size 2 must be summed too; about one input in five
    # is exactly 0, where the slope applies (dx = alpha * dout, as torch's derivative of the
    # alpha * x branch)
    "x": np.where(rng.uniform(size=(4, 2, 5, 3)) < 0.2, 0.0, rng.normal(size=(4, 2, 5, 3))),
    "dout": rng.normal(size=(4, 2, 5, 3)),
    "alpha_channel": rng.uniform(0.0, 0.5, size=(1, 1, 3)),
    "alpha_shared": rng.uniform(0.0, 0.5, size=(1, 1, 1)),
    "alpha_element": rng.uniform(-0.3, 0.5, size=(2, 5, 3)),
    "alpha_rows": rng.uniform(0.0, 0.5, size=(2, 1, 1)),
    # a batch of one example of width 1 under one shared slope: every axis of the slope is
    # summed, including those on which x has size 1
    "x_single": rng.normal(size=(1, 3, 1, 2)), "dout_single": rng.normal(size=(1, 3, 1, 2)),
    "alpha_single": rng.uniform(0.0, 0.5, size=(1, 1, 1)),
    # worked by hand: two examples of H = 1, W = 2, C = 1 with x = (0, 2) and (-3, -4), dout =
    # (1, 1) and (2, 0.5), one slope per width position (1, 2, 1) = (0.1, 0.2). dx = (0.1, 1)
    # and (0.2, 0.1) (x = 0 takes the slope); dalpha: position 0 collects 1*0 + 2*(-3) = -6,
    # position 1 0.5*(-4) = -2
    "x_hand": np.array([[[[0.0], [2.0]]], [[[-3.0], [-4.0]]]]),
    "dout_hand": np.array([[[[1.0], [1.0]]], [[[2.0], [0.5]]]]),
    "alpha_hand": np.array([[[0.1], [0.2]]]),
}
HAND_DX = np.array([[[[0.1], [1.0]]], [[[0.2], [0.1]]]])
HAND_DALPHA = np.array([[[-6.0], [-2.0]]])


def probe_channel(inputs):
    return dict(zip(("dx", "dalpha"), prelu_backward(
        inputs["dout"], prelu_forward(inputs["x"], inputs["alpha_channel"])[1])))


def probe_others(inputs):
    result = {}
    for name in ("shared", "element", "rows", "single"):
        _, cache = prelu_forward(inputs.get("x_" + name, inputs["x"]), inputs["alpha_" + name])
        dx, dalpha = prelu_backward(inputs.get("dout_" + name, inputs["dout"]), cache)
        result["dx_" + name], result["dalpha_" + name] = dx, dalpha
    return result


def probe_hand(inputs):
    return dict(zip(("dx", "dalpha"), prelu_backward(
        inputs["dout_hand"], prelu_forward(inputs["x_hand"], inputs["alpha_hand"])[1])))


def autograd(x, dout, alpha):
    return torch_gradients(torch_prelu, {"x": x, "alpha": alpha}, dout)[1]


def matches_autograd(outputs, inputs, names):
    results = []
    for name in names:
        suffix = "" if name == "channel" else "_" + name
        grads = autograd(inputs.get("x_" + name, inputs["x"]), inputs.get("dout_" + name, inputs["dout"]),
                         inputs["alpha_" + name])
        results += [close(outputs["dx" + suffix], grads["x"], label=f"dx ({name})"),
                    close(outputs["dalpha" + suffix], grads["alpha"], label=f"dalpha ({name})")]
    return all_of(*results)


CASES = [
    case("(4, 2, 5, 3) input, some entries exactly 0, one slope per channel: dx and dalpha match "
         "torch.autograd (random upstream gradient)",
         'matches_autograd(outputs["channel"], inputs, ["channel"])', points=1,
         hint="dalpha sums dout * x over the non-positive inputs of its channel, across the batch"),
    case("shared (1, 1, 1), per-element (2, 5, 3) and per-row (2, 1, 1) slopes, and a (1, 3, 1, 2) "
         "input (one example) with a shared slope: dx and dalpha match torch.autograd",
         'matches_autograd(outputs["others"], inputs, ["shared", "element", "rows", "single"])', points=1,
         hint="sum over the batch axis and over exactly the axes on which alpha has size 1"),
    case("the hand-worked (2, 1, 2, 1) example with one slope per width position and an input at 0",
         'all_of(close(outputs["hand"]["dx"], HAND_DX, label="dx"), '
         'close(outputs["hand"]["dalpha"], HAND_DALPHA, label="dalpha"))', points=1,
         hint="dx is dout where x > 0 and alpha * dout where x <= 0"),
]
