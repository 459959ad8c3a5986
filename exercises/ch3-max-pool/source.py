# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 3.2: max pooling with padding and ceil mode, forward and backward
#
# *Chapter 3 (CNN layers).* Section 3.4 pools windows that lie inside the input, and rounds the
# output size down: a last row or column that does not fill a window is dropped. Many networks
# (GoogLeNet, and Caffe models in general) instead round *up*, so that every input pixel is
# pooled, and pad the input too. This exercise implements max pooling as
# `torch.nn.functional.max_pool2d(x, kernel_size, stride, padding, ceil_mode=...)` computes it:
#
# * **Padding** $P$ adds $P$ rows and columns on each side that never win: for a maximum they
#   act as $-\infty$, not as 0 (a window of negative numbers must not return 0).
# * **Output size** along a dimension of size $H$, with kernel $K$ and stride $S$:
#   $\lfloor (H + 2P - K)/S \rfloor + 1$, or with `ceil_mode=True`
#   $\lceil (H + 2P - K)/S \rceil + 1$; but in ceil mode a last window that would *start* in
#   the right (or bottom) padding, that is at $(\text{out} - 1) S \ge H + P$, is dropped (the
#   output is one smaller). A window may extend past the padding: it pools what it covers.
# * Window $(i, j)$ covers input rows $iS - P, \dots, iS - P + K - 1$ and the matching
#   columns, of which only those inside the input count.
#
# The gradient routes each output's gradient to the input that was the maximum of its window.
# Shapes: `x` (N, C, H, W), `out` (N, C, OH, OW). `stride=None` means a stride equal to the
# kernel size. The tests use square kernels, `padding <= kernel_size // 2` (as PyTorch
# requires) and inputs without ties inside a window.
#
# **How to work.** Replace every `raise NotImplementedError` with your code, then run the whole
# notebook (Kernel → Restart & Run All). Each *self-check* cell ends by printing
# `... self-checks passed`. The grader runs other, hidden tests (other shapes, paddings,
# strides, compared with PyTorch), so passing the self-checks is necessary, not sufficient. Use
# numpy only (loops over output positions are fine); keep the names and signatures.
#
# | question | function | points |
# |---|---|---|
# | 1 | `max_pool2d_forward(x, kernel_size, stride, padding, ceil_mode)` | 2 |
# | 2 | `max_pool2d_backward(dout, cache)` | 3 |

# %% tags=["grader"]
# Instructor only: everything in "grader" cells stays out of the student notebook.
EXERCISE = {"title": "Max pooling with padding and ceil mode, forward and backward", "chapter": 3}

import numpy as np
import torch
import torch.nn.functional as F

from dlbook.grading.helpers import all_of, case, close, tensor, torch_gradients

# %%
import numpy as np

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Question 1 (2 points): the forward pass
#
# Return `out` and a `cache` for your backward pass.

# %%
def max_pool2d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Max over K x K windows of x (N, C, H, W), with padding and ceil mode as in torch; (out, cache)."""
    # BEGIN SOLUTION
    stride = kernel_size if stride is None else stride

    def out_size(length):
        span = length + 2 * padding - kernel_size
        out = (-(-span // stride) if ceil_mode else span // stride) + 1
        if ceil_mode and (out - 1) * stride >= length + padding:
            out -= 1  # the last window would start in the padding
        return out

    n, c, h, w = x.shape
    oh, ow = out_size(h), out_size(w)
    # pad with -inf; a window of ceil mode that runs past the padding is cut short by the slice
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=-np.inf)
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = xp[:, :, i * stride:i * stride + kernel_size, j * stride:j * stride + kernel_size]
            out[:, :, i, j] = window.max(axis=(2, 3))  # (N, C)
    return out, (x, kernel_size, stride, padding, oh, ow)
    # END SOLUTION


# %%
# Self-check for question 1, worked by hand on one 5 x 5 channel, 2 x 2 windows, stride 2.
x_demo = np.array([[[[1.0, 3.0, 2.0, 0.0, 5.0],
                     [4.0, 2.0, 1.0, 5.0, 1.0],
                     [0.0, 1.0, 7.0, 2.0, 0.0],
                     [3.0, 6.0, 2.0, 1.0, 2.0],
                     [1.0, 2.0, 1.0, 3.0, 9.0]]]])
out, cache = max_pool2d_forward(x_demo, 2)  # floor: the last row and column are dropped
assert out.shape == (1, 1, 2, 2), f"shape {out.shape}, expected (1, 1, 2, 2)"
assert np.allclose(out, [[[[4.0, 5.0], [6.0, 7.0]]]]), out
out, _ = max_pool2d_forward(x_demo, 2, ceil_mode=True)  # ceil: partial windows at the edge
assert out.shape == (1, 1, 3, 3), f"shape {out.shape}, expected (1, 1, 3, 3)"
assert np.allclose(out, [[[[4.0, 5.0, 5.0], [6.0, 7.0, 2.0], [2.0, 3.0, 9.0]]]]), out
# padding never wins: every window of this all-negative input holds one real entry
out, _ = max_pool2d_forward(-np.arange(1.0, 5.0).reshape(1, 1, 2, 2), 2, padding=1)
assert np.allclose(out, [[[[-1.0, -2.0], [-3.0, -4.0]]]]), f"{out}: pad with -inf, not with 0"
print("max_pool2d_forward: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "max_pool2d_forward", "points": 2}
rng = hidden_rng(3201)  # keyed by the instructor's secret when grading
INPUTS = {  # mostly negative values, so that padding with zeros would show
    "x": rng.normal(size=(2, 3, 7, 7)) - 2.0,
    "x_overlap": rng.normal(size=(1, 2, 8, 9)) - 2.0,
    "x_drop": rng.normal(size=(1, 1, 6, 10)) - 2.0,
}


def probe_pairs(inputs):
    return {"ceil": max_pool2d_forward(inputs["x"], 2, None, 1, True)[0],
            "floor": max_pool2d_forward(inputs["x"], 3)[0],
            "floor_pad": max_pool2d_forward(inputs["x"], 2, 2, 1, False)[0]}


def probe_overlap(inputs):
    return max_pool2d_forward(inputs["x_overlap"], 3, 2, 1, True)[0]


def probe_drop(inputs):
    return max_pool2d_forward(inputs["x_drop"], 2, 4, 1, True)[0]


CASES = [
    case("(2, 3, 7, 7) input, 2 x 2 windows, padding 1, ceil mode, and 3 x 3 windows with the defaults "
         "(stride 3, no padding, floor), 2 x 2 windows, stride 2, padding 1, floor: match torch max_pool2d",
         ['got, x = outputs["pairs"], tensor(inputs["x"])',
          'all_of(close(got["ceil"], F.max_pool2d(x, 2, padding=1, ceil_mode=True)), '
          'close(got["floor"], F.max_pool2d(x, 3), label="defaults"), '
          'close(got["floor_pad"], F.max_pool2d(x, 2, 2, 1), label="floor mode with padding"))'],
         points=1,
         hint="pad with -inf; in ceil mode drop a last window that would start in the padding"),
    case("(1, 2, 8, 9) input, 3 x 3 windows, stride 2, padding 1, ceil mode: matches torch max_pool2d",
         'close(outputs["overlap"], F.max_pool2d(tensor(inputs["x_overlap"]), 3, 2, 1, ceil_mode=True))',
         points=0.5, hint="ceil((H + 2P - K) / S) + 1 positions; windows overlap when S < K"),
    case("(1, 1, 6, 10) input, 2 x 2 windows, stride 4, padding 1, ceil mode (last windows dropped): "
         "matches torch max_pool2d",
         'close(outputs["drop"], F.max_pool2d(tensor(inputs["x_drop"]), 2, 4, 1, ceil_mode=True))',
         points=0.5, hint="(out - 1) * S >= H + P means the last window starts in the padding: drop it"),
]

# %% [markdown]
# ## Question 2 (3 points): the backward pass
#
# Given `dout` (N, C, OH, OW) and your cache, return `dx` with the shape of `x`. For every
# output position find where the maximum of each (sample, channel) window is (padding is never
# the maximum) and add `dout[:, :, i, j]` there; an input that is the maximum of several
# windows collects the sum of their gradients.

# %%
def max_pool2d_backward(dout, cache):
    """Gradient with respect to the input of max pooling, given dL/dout and the forward cache."""
    # BEGIN SOLUTION
    x, kernel_size, stride, padding, oh, ow = cache
    n, c, h, w = x.shape
    widths = ((0, 0), (0, 0), (padding, padding), (padding, padding))
    padded = np.pad(x, widths, constant_values=-np.inf)
    dxp = np.zeros_like(padded)
    for i in range(oh):
        for j in range(ow):
            rows = slice(i * stride, i * stride + kernel_size)
            cols = slice(j * stride, j * stride + kernel_size)
            window = padded[:, :, rows, cols]  # (N, C, K, K)
            mask = window == window.max(axis=(2, 3), keepdims=True)
            dxp[:, :, rows, cols] += mask * dout[:, :, i, j][:, :, None, None]
    return dxp[:, :, padding:padding + h, padding:padding + w]
    # END SOLUTION


# %%
# Self-check for question 2: on the 5 x 5 example in ceil mode, the maxima of the nine windows
# (four full, five partial) get the nine output gradients 1..9; every other input gets 0.
_, cache = max_pool2d_forward(x_demo, 2, ceil_mode=True)
dx = max_pool2d_backward(np.arange(1.0, 10.0).reshape(1, 1, 3, 3), cache)
expected = np.array([[[[0.0, 0.0, 0.0, 0.0, 3.0],
                       [1.0, 0.0, 0.0, 2.0, 0.0],
                       [0.0, 0.0, 5.0, 0.0, 0.0],
                       [0.0, 4.0, 0.0, 0.0, 6.0],
                       [0.0, 7.0, 0.0, 8.0, 9.0]]]])
assert dx.shape == x_demo.shape, f"shape {dx.shape}, expected {x_demo.shape}"
assert np.allclose(dx, expected), dx
# padding: the gradient goes to the one real entry of each window, never to the padding
_, cache = max_pool2d_forward(-np.arange(1.0, 5.0).reshape(1, 1, 2, 2), 2, padding=1)
dx = max_pool2d_backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), cache)
assert np.allclose(dx, [[[[1.0, 2.0], [3.0, 4.0]]]]), dx
print("max_pool2d_backward: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "max_pool2d_backward", "points": 3}
rng = hidden_rng(3202)  # keyed by the instructor's secret when grading
INPUTS = {
    "x": rng.normal(size=(2, 2, 7, 8)) - 1.0, "dout": rng.normal(size=(2, 2, 4, 5)),
    "dout_floor": rng.normal(size=(2, 2, 3, 3)),
    "x_drop": rng.normal(size=(2, 1, 10, 6)) - 1.0, "dout_drop": rng.normal(size=(2, 1, 3, 2)),
    # worked by hand: 2 x 2 windows, stride 2, ceil mode on 3 x 3: windows rows {0, 1} or {2},
    # columns {0, 1} or {2}. Channel 0 maxima at (1, 0), (0, 2), (2, 1), (2, 2); channel 1 at
    # (0, 0), (1, 2), (2, 0), (2, 2); they receive dout [[1, 2], [3, 4]] and [[10, 20], [30, 40]]
    "x_hand": np.array([[[[1.0, 3.0, 2.0], [4.0, 2.0, 1.0], [0.0, 1.0, 7.0]],
                         [[-1.0, -3.0, 0.0], [-2.0, -4.0, 1.0], [5.0, 0.0, 0.5]]]]),
    "dout_hand": np.array([[[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 40.0]]]]),
}
HAND_DX = np.array([[[[0.0, 0.0, 2.0], [1.0, 0.0, 0.0], [0.0, 3.0, 4.0]],
                     [[10.0, 0.0, 0.0], [0.0, 0.0, 20.0], [30.0, 0.0, 40.0]]]])


def probe_overlap(inputs):
    return {"ceil": max_pool2d_backward(inputs["dout"], max_pool2d_forward(inputs["x"], 3, 2, 1, True)[1]),
            "floor": max_pool2d_backward(inputs["dout_floor"], max_pool2d_forward(inputs["x"], 3, 2)[1]),
            "floor_pad": max_pool2d_backward(inputs["dout"], max_pool2d_forward(inputs["x"], 2, 2, 1, False)[1])}


def probe_drop(inputs):
    return max_pool2d_backward(inputs["dout_drop"], max_pool2d_forward(inputs["x_drop"], 2, 4, 1, True)[1])


def probe_hand(inputs):
    return max_pool2d_backward(inputs["dout_hand"], max_pool2d_forward(inputs["x_hand"], 2, None, 0, True)[1])


def autograd(x, dout, kernel_size, stride, padding, ceil_mode=True):
    pool = lambda x: F.max_pool2d(x, kernel_size, stride, padding, ceil_mode=ceil_mode)  # noqa: E731
    return torch_gradients(pool, {"x": x}, dout)[1]["x"]


CASES = [
    case("(2, 2, 7, 8) input, 3 x 3 windows, stride 2, padding 1, ceil mode, in floor mode without "
         "padding, and 2 x 2 windows, stride 2, padding 1 in floor mode: dx matches torch.autograd",
         ['got = outputs["overlap"]',
          'all_of(close(got["ceil"], autograd(inputs["x"], inputs["dout"], 3, 2, 1)), '
          'close(got["floor"], autograd(inputs["x"], inputs["dout_floor"], 3, 2, 0, False), label="floor mode"), '
          'close(got["floor_pad"], autograd(inputs["x"], inputs["dout"], 2, 2, 1, False), '
          'label="floor mode with padding"))'],
         points=1,
         hint="accumulate with += (an input can win several windows); padding never wins"),
    case("(2, 1, 10, 6) input, 2 x 2 windows, stride 4, padding 1, ceil mode: dx matches torch.autograd",
         'close(outputs["drop"], autograd(inputs["x_drop"], inputs["dout_drop"], 2, 4, 1))', points=1,
         hint="use the same windows as the forward pass, dropped last window included"),
    case("the hand-worked two-channel 3 x 3 example in ceil mode, together with the case above",
         'all_of(close(outputs["hand"], HAND_DX, label="hand-worked dx"), '
         'close(outputs["drop"], autograd(inputs["x_drop"], inputs["dout_drop"], 2, 4, 1), '
         'label="the case above"))', points=1,
         hint="take the maximum per sample and per channel, over the part of the window inside the input"),
]
