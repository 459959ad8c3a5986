# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 3.2: max pooling, forward and backward
#
# *Chapter 3 (CNN layers).* Max pooling keeps the largest value of every K × K window, window
# by window and channel by channel, stepping the window by the stride S:
#
# $$\text{out}[n, c, i, j] = \max_{0 \le p, q < K} x[n, c, iS + p, jS + q].$$
#
# It has no parameters, and its gradient is a routing rule: each output's gradient goes, whole,
# to the input that was the maximum of its window; every other input gets nothing from that
# window. When windows overlap (S < K), an input that is the maximum of several windows
# collects the sum of their gradients. Shapes: `x` (N, C, H, W), `out` (N, C, OH, OW) with
# OH = (H - K) // S + 1 (no padding here).
#
# **How to work.** Replace every `raise NotImplementedError` with your code, then run the whole
# notebook (Kernel → Restart & Run All). Each *self-check* cell ends by printing
# `... self-checks passed`. The grader runs other, hidden tests (other shapes, overlapping
# windows, compared with PyTorch), so passing the self-checks is necessary, not sufficient. Use
# numpy only (loops over output positions are fine); keep the names and signatures. The tests
# use inputs without ties inside a window.
#
# | question | function | points |
# |---|---|---|
# | 1 | `max_pool2d_forward(x, kernel_size, stride)` | 2 |
# | 2 | `max_pool2d_backward(dout, cache)` | 3 |

# %% tags=["grader"]
# Instructor only: everything in "grader" cells stays out of the student notebook.
EXERCISE = {"title": "Max pooling, forward and backward", "chapter": 3}

import numpy as np
import torch
import torch.nn.functional as F

from dlbook.grading.helpers import case, close, tensor, torch_gradients

# %%
import numpy as np

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Question 1 (2 points): the forward pass
#
# Return `out` and a `cache` for your backward pass. `stride=None` means a stride equal to the
# kernel size (non-overlapping windows), as in `torch.nn.functional.max_pool2d`.

# %%
def max_pool2d_forward(x, kernel_size, stride=None):
    """Max over K x K windows of x (N, C, H, W), stepping by stride; returns (out, cache)."""
    # BEGIN SOLUTION
    stride = kernel_size if stride is None else stride
    n, c, h, w = x.shape
    oh, ow = (h - kernel_size) // stride + 1, (w - kernel_size) // stride + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = x[:, :, i * stride:i * stride + kernel_size, j * stride:j * stride + kernel_size]
            out[:, :, i, j] = window.max(axis=(2, 3))  # (N, C)
    return out, (x, kernel_size, stride)
    # END SOLUTION


# %%
# Self-check for question 1, worked by hand on one 4 x 4 channel.
x_demo = np.array([[[[1.0, 3.0, 2.0, 0.0],
                     [4.0, 2.0, 1.0, 5.0],
                     [0.0, 1.0, 7.0, 2.0],
                     [3.0, 6.0, 2.0, 1.0]]]])
out, cache = max_pool2d_forward(x_demo, 2)
assert out.shape == (1, 1, 2, 2), f"shape {out.shape}, expected (1, 1, 2, 2)"
assert np.allclose(out, [[[[4.0, 5.0], [6.0, 7.0]]]]), out
out, _ = max_pool2d_forward(x_demo, 3, stride=1)
assert np.allclose(out, [[[[7.0, 7.0], [7.0, 7.0]]]]), out
print("max_pool2d_forward: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "max_pool2d_forward", "points": 2}
rng = hidden_rng(3201)  # keyed by the instructor's secret when grading
INPUTS = {"x": rng.normal(size=(2, 3, 8, 6)), "x_overlap": rng.normal(size=(1, 2, 7, 7))}


def probe_pairs(inputs):
    return max_pool2d_forward(inputs["x"], 2)[0]


def probe_overlap(inputs):
    return max_pool2d_forward(inputs["x_overlap"], 3, 2)[0]


CASES = [
    case("(2, 3, 8, 6) input, 2 x 2 windows, default stride: matches torch max_pool2d",
         'close(outputs["pairs"], F.max_pool2d(tensor(inputs["x"]), 2))', points=1,
         hint="stride=None means stride = kernel_size; take the max per sample and per channel"),
    case("(1, 2, 7, 7) input, 3 x 3 windows, stride 2 (overlapping): matches torch max_pool2d",
         'close(outputs["overlap"], F.max_pool2d(tensor(inputs["x_overlap"]), 3, stride=2))', points=1,
         hint="the output is (H - K) // S + 1 wide; step the window by the stride"),
]

# %% [markdown]
# ## Question 2 (3 points): the backward pass
#
# Given `dout` (N, C, OH, OW) and your cache, return `dx` with the shape of `x`. For every
# output position, find where the maximum of each (sample, channel) window is (a boolean mask
# `window == window.max(axis=(2, 3), keepdims=True)` does it when there are no ties) and add
# `dout[:, :, i, j]` there.

# %%
def max_pool2d_backward(dout, cache):
    """Gradient with respect to the input of max pooling, given dL/dout and the forward cache."""
    # BEGIN SOLUTION
    x, kernel_size, stride = cache
    dx = np.zeros_like(x)
    _, _, oh, ow = dout.shape
    for i in range(oh):
        for j in range(ow):
            rows = slice(i * stride, i * stride + kernel_size)
            cols = slice(j * stride, j * stride + kernel_size)
            window = x[:, :, rows, cols]  # (N, C, K, K)
            mask = window == window.max(axis=(2, 3), keepdims=True)
            dx[:, :, rows, cols] += mask * dout[:, :, i, j][:, :, None, None]
    return dx
    # END SOLUTION


# %%
# Self-check for question 2: on the 4 x 4 example the four maxima (4, 5, 6, 7) get the four
# output gradients, everything else gets 0.
_, cache = max_pool2d_forward(x_demo, 2)
dx = max_pool2d_backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), cache)
expected = np.array([[[[0.0, 0.0, 0.0, 0.0],
                       [1.0, 0.0, 0.0, 2.0],
                       [0.0, 0.0, 4.0, 0.0],
                       [0.0, 3.0, 0.0, 0.0]]]])
assert dx.shape == x_demo.shape, f"shape {dx.shape}, expected {x_demo.shape}"
assert np.allclose(dx, expected), dx
# overlapping 3 x 3 windows with stride 1: the 7 is the maximum of all four windows
_, cache = max_pool2d_forward(x_demo, 3, stride=1)
dx = max_pool2d_backward(np.ones((1, 1, 2, 2)), cache)
assert np.isclose(dx[0, 0, 2, 2], 4.0) and np.isclose(dx.sum(), 4.0), dx
print("max_pool2d_backward: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "max_pool2d_backward", "points": 3}
rng = hidden_rng(3202)  # keyed by the instructor's secret when grading
_x_overlap = rng.normal(size=(2, 2, 7, 7))
_x_overlap[:, :, 2, 2] = 10.0  # the maximum of the four windows that share it
INPUTS = {
    "x": rng.normal(size=(2, 3, 6, 8)), "dout": rng.normal(size=(2, 3, 3, 4)),
    "x_overlap": _x_overlap, "dout_overlap": rng.normal(size=(2, 2, 3, 3)),
    # worked by hand: 2 x 2 windows; maxima at (1,0), (1,3), (3,1), (2,2) in channel 0 and at
    # (0,0), (0,3), (2,0), (2,2) in channel 1; they receive dout [[1, 2], [3, 4]] and
    # [[10, 20], [30, 40]]
    "x_hand": np.array([[[[1.0, 3.0, 2.0, 0.0], [4.0, 2.0, 1.0, 5.0], [0.0, 1.0, 7.0, 2.0], [3.0, 6.0, 2.0, 1.0]],
                         [[-1.0, -3.0, 0.0, 2.0], [-2.0, -4.0, 1.0, 1.5], [5.0, 0.0, 0.5, 0.0],
                          [0.0, 0.0, 0.0, -5.0]]]]),
    "dout_hand": np.array([[[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 40.0]]]]),
}
HAND_DX = np.array([[[[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 4.0, 0.0], [0.0, 3.0, 0.0, 0.0]],
                     [[10.0, 0.0, 0.0, 20.0], [0.0, 0.0, 0.0, 0.0], [30.0, 0.0, 40.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]])


def probe_pairs(inputs):
    return max_pool2d_backward(inputs["dout"], max_pool2d_forward(inputs["x"], 2)[1])


def probe_overlap(inputs):
    return max_pool2d_backward(inputs["dout_overlap"], max_pool2d_forward(inputs["x_overlap"], 3, 2)[1])


def probe_hand(inputs):
    return max_pool2d_backward(inputs["dout_hand"], max_pool2d_forward(inputs["x_hand"], 2)[1])


def autograd(x, dout, kernel_size, stride):
    pool = lambda x: F.max_pool2d(x, kernel_size, stride=stride)  # noqa: E731
    return torch_gradients(pool, {"x": x}, dout)[1]["x"]


CASES = [
    case("(2, 3, 6, 8) input, 2 x 2 windows: dx matches torch.autograd (random upstream gradient)",
         'close(outputs["pairs"], autograd(inputs["x"], inputs["dout"], 2, 2))', points=1,
         hint="route each output's gradient to the position of its window's maximum"),
    case("overlapping 3 x 3 windows, stride 2: a shared maximum collects the sum of the gradients",
         'close(outputs["overlap"], autograd(inputs["x_overlap"], inputs["dout_overlap"], 3, 2))', points=1,
         hint="accumulate with += : an input can be the maximum of several windows"),
    case("the hand-worked two-channel 4 x 4 example",
         'close(outputs["hand"], HAND_DX)', points=1,
         hint="take the maximum per sample and per channel, not over the whole window slice"),
]
