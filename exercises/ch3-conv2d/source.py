# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 3.1: the convolutional layer, forward and backward
#
# *Chapter 3 (CNN layers).* A convolutional layer slides F filters of size C × KH × KW over an
# input with C channels and adds a bias per filter. As in PyTorch (and every deep-learning
# library) the operation is a cross-correlation, the filter is not flipped:
#
# $$\text{out}[n, f, i, j] = b_f + \sum_{c=0}^{C-1}\sum_{p=0}^{KH-1}\sum_{q=0}^{KW-1}
#   w[f, c, p, q]\; x_{\text{pad}}[n, c, iS + p, jS + q],$$
#
# where $x_{\text{pad}}$ is the input with $P$ rows and columns of zeros added on each side and
# $S$ is the stride. Shapes: `x` (N, C, H, W), `w` (F, C, KH, KW), `b` (F,), `out` (N, F, OH, OW).
#
# **How to work.** Replace every `raise NotImplementedError` with your code, then run the whole
# notebook (Kernel → Restart & Run All). Each *self-check* cell ends by printing
# `... self-checks passed`. The grader runs other, hidden tests (other shapes, strides and
# paddings, compared with PyTorch and with central differences), so passing the self-checks is
# necessary, not sufficient. Use numpy only (loops over output positions are fine); keep the
# names and signatures. `stride` and `padding` are integers.
#
# | question | function | points |
# |---|---|---|
# | 1 | `conv_output_size(size, kernel, stride, padding)` | 1 |
# | 2 | `conv2d_forward(x, w, b, stride, padding)` | 3 |
# | 3 | `conv2d_backward(dout, cache)` | 3 |

# %% tags=["grader"]
# Instructor only: everything in "grader" cells stays out of the student notebook.
EXERCISE = {"title": "The convolutional layer, forward and backward", "chapter": 3}

import numpy as np
import torch
import torch.nn.functional as F

from dlbook.grading.helpers import all_of, case, central_difference, close, equal, tensor, torch_gradients


def torch_conv(x, w, b, stride, padding):
    return F.conv2d(tensor(x), tensor(w), tensor(b), stride=stride, padding=padding)

# %%
import numpy as np

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Question 1 (1 point): the output size
#
# Along one spatial dimension of size $W$, a kernel of size $F$ with padding $P$ and stride $S$
# fits at
#
# $$\left\lfloor \frac{W - F + 2P}{S} \right\rfloor + 1$$
#
# positions. Return that number as an `int` (use integer division `//`).

# %%
def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Number of positions of a kernel along one dimension: (size - kernel + 2 padding) // stride + 1."""
    # BEGIN SOLUTION
    return (size - kernel + 2 * padding) // stride + 1
    # END SOLUTION


# %%
# Self-check for question 1: LeNet's first layer (32 -> 28), and a "same" padding.
assert conv_output_size(32, 5) == 28
assert conv_output_size(5, 3, stride=1, padding=1) == 5
assert conv_output_size(7, 3, stride=3, padding=0) == 2, "the last partial window does not count"
print("conv_output_size: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "conv_output_size", "points": 1}
INPUTS = {
    # (size, kernel, stride, padding) -> worked by hand
    "exact": np.array([[28, 5, 1, 0], [7, 3, 2, 1], [28, 5, 1, 2], [227, 11, 4, 0]]),  # 24, 4, 28, 55
    "floor": np.array([[6, 3, 2, 0], [8, 3, 2, 2], [10, 4, 3, 1]]),  # 2, 5, 3
}


def probe_exact(inputs):
    return np.array([conv_output_size(*(int(v) for v in row)) for row in inputs["exact"]])


def probe_floor(inputs):
    return np.array([conv_output_size(*(int(v) for v in row)) for row in inputs["floor"]])


CASES = [
    case("sizes that divide exactly, e.g. AlexNet's 227, kernel 11, stride 4 -> 55",
         'equal(outputs["exact"], np.array([24, 4, 28, 55]))', points=0.5,
         hint="(W - F + 2P) // S + 1: both sides are padded"),
    case("sizes where the last window does not fit (rounding down)",
         'equal(outputs["floor"], np.array([2, 5, 3]))', points=0.5,
         hint="use integer division //, which rounds down"),
]

# %% [markdown]
# ## Question 2 (3 points): the forward pass
#
# Return `out` (N, F, OH, OW) and a `cache` for your backward pass. Pad with `np.pad`, then,
# for every output position $(i, j)$, take the window of the padded input the kernel covers
# there, (N, C, KH, KW), and contract it with the weights, (F, C, KH, KW), over the last three
# axes (`np.tensordot` or `np.einsum` do this in one call).

# %%
def conv2d_forward(x, w, b, stride=1, padding=0):
    """Cross-correlation of x (N, C, H, W) with w (F, C, KH, KW), plus b (F,); returns (out, cache)."""
    # BEGIN SOLUTION
    n, c, h, width = x.shape
    f, _, kh, kw = w.shape
    oh = (h - kh + 2 * padding) // stride + 1
    ow = (width - kw + 2 * padding) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))  # (N, C, H+2P, W+2P)
    out = np.zeros((n, f, oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]  # (N, C, KH, KW)
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b  # (N, F)
    return out, (x, w, stride, padding)
    # END SOLUTION


# %%
# Self-check for question 2, worked by hand: one channel, a 2 x 2 kernel [[1, 0], [0, -1]]
# computes x[i, j] - x[i+1, j+1] (+ bias 1), which is 1 - 4 = -3 everywhere on this input.
x_demo = np.arange(9.0).reshape(1, 1, 3, 3)
out, cache = conv2d_forward(x_demo, np.array([[[[1.0, 0.0], [0.0, -1.0]]]]), np.array([1.0]))
assert out.shape == (1, 1, 2, 2), f"shape {out.shape}, expected (1, 1, 2, 2)"
assert np.allclose(out, -3.0), out
# padding 1, stride 2 on a 3 x 3 input with a 3 x 3 kernel of ones: 2 x 2 corner sums
out, _ = conv2d_forward(x_demo, np.ones((1, 1, 3, 3)), np.zeros(1), stride=2, padding=1)
assert out.shape == (1, 1, 2, 2), f"shape {out.shape}, expected (1, 1, 2, 2)"
assert np.allclose(out, [[[[8.0, 12.0], [20.0, 24.0]]]]), out
print("conv2d_forward: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "conv2d_forward", "points": 3}
rng = hidden_rng(3102)  # keyed by the instructor's secret when grading
INPUTS = {
    "x": rng.normal(size=(2, 3, 7, 6)), "w": rng.normal(size=(4, 3, 3, 2)), "b": rng.normal(size=4),
    "x_s": rng.normal(size=(1, 2, 8, 9)), "w_s": rng.normal(size=(3, 2, 3, 3)), "b_s": rng.normal(size=3),
    # worked by hand: kernel [[1, 2], [0, -1]] on [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]],
    # bias 0.5, out[i, j] = x[i, j] + 2 x[i, j+1] - x[i+1, j+1] + 0.5:
    # 1 + 4 - 6, 2 + 6 - 7, 3 + 8 - 8, 5 + 12 - 10, 6 + 14 - 11, 7 + 16 - 12 (+ 0.5)
    "x_hand": np.arange(1.0, 13.0).reshape(1, 1, 3, 4), "w_hand": np.array([[[[1.0, 2.0], [0.0, -1.0]]]]),
}


def probe_plain(inputs):
    return conv2d_forward(inputs["x"], inputs["w"], inputs["b"], 1, 0)[0]


def probe_strided(inputs):
    return conv2d_forward(inputs["x_s"], inputs["w_s"], inputs["b_s"], 2, 1)[0]


def probe_hand(inputs):
    return conv2d_forward(inputs["x_hand"], inputs["w_hand"], np.array([0.5]), 1, 0)[0]


CASES = [
    case("(2, 3, 7, 6) input, (4, 3, 3, 2) kernel, stride 1, no padding: matches torch conv2d",
         'close(outputs["plain"], torch_conv(inputs["x"], inputs["w"], inputs["b"], 1, 0))', points=1,
         hint="sum over channels and kernel positions; one bias per filter; kernels need not be square"),
    case("(1, 2, 8, 9) input, 3 x 3 kernel, stride 2, padding 1: matches torch conv2d",
         'close(outputs["strided"], torch_conv(inputs["x_s"], inputs["w_s"], inputs["b_s"], 2, 1))',
         points=1, hint="pad every side with zeros first, then step the window by the stride"),
    case("the hand-worked example gives [[-0.5, 1.5, 3.5], [7.5, 9.5, 11.5]]",
         'close(outputs["hand"], [[[[-0.5, 1.5, 3.5], [7.5, 9.5, 11.5]]]])', points=1,
         hint="cross-correlation: do not flip the kernel"),
]

# %% [markdown]
# ## Question 3 (3 points): the backward pass
#
# Given `dout` $= \partial L / \partial \text{out}$ (N, F, OH, OW) and your cache, return
# `(dx, dw, db)` with the shapes of `x`, `w` and `b`. Go over the output positions as in the
# forward pass: the window that produced `out[:, :, i, j]` receives
# `dout[:, :, i, j]` contracted with `w`, and `w` receives the window contracted with
# `dout[:, :, i, j]` over the batch. Windows overlap when the stride is smaller than the kernel,
# so *accumulate* (`+=`) into a padded `dx`, and cut the padding off at the end.

# %%
def conv2d_backward(dout, cache):
    """Gradients (dx, dw, db) of the convolution, given dL/dout and the forward cache."""
    # BEGIN SOLUTION
    x, w, stride, padding = cache
    _, _, h, width = x.shape
    _, _, kh, kw = w.shape
    _, _, oh, ow = dout.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))  # (F,)
    for i in range(oh):
        for j in range(ow):
            rows, cols = slice(i * stride, i * stride + kh), slice(j * stride, j * stride + kw)
            g = dout[:, :, i, j]  # (N, F)
            dw += np.tensordot(g, xp[:, :, rows, cols], axes=([0], [0]))  # (F, C, KH, KW)
            dxp[:, :, rows, cols] += np.tensordot(g, w, axes=([1], [0]))  # (N, C, KH, KW)
    dx = dxp[:, :, padding:padding + h, padding:padding + width]
    return dx, dw, db
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
# Self-check for question 3: central differences of L = sum(out * G) through your forward pass.
rng_demo = np.random.default_rng(0)
x0, w0, b0 = rng_demo.normal(size=(2, 1, 4, 4)), rng_demo.normal(size=(2, 1, 3, 3)), rng_demo.normal(size=2)
out0, cache0 = conv2d_forward(x0, w0, b0, stride=1, padding=1)
G = rng_demo.normal(size=out0.shape)
dx, dw, db = conv2d_backward(G, cache0)
num_dx = finite_difference(lambda v: np.sum(conv2d_forward(v, w0, b0, 1, 1)[0] * G), x0)
num_dw = finite_difference(lambda v: np.sum(conv2d_forward(x0, v, b0, 1, 1)[0] * G), w0)
num_db = finite_difference(lambda v: np.sum(conv2d_forward(x0, w0, v, 1, 1)[0] * G), b0)
for name, ours, numeric in (("dx", dx, num_dx), ("dw", dw, num_dw), ("db", db, num_db)):
    assert ours.shape == numeric.shape, f"{name}: shape {ours.shape}, expected {numeric.shape}"
    assert np.allclose(ours, numeric, atol=1e-6), f"{name} differs from central differences"
print("conv2d_backward: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "conv2d_backward", "points": 3}
rng = hidden_rng(3103)  # keyed by the instructor's secret when grading
INPUTS = {
    "x": rng.normal(size=(2, 3, 7, 6)), "w": rng.normal(size=(4, 3, 3, 3)), "b": rng.normal(size=4),
    "x_b": rng.normal(size=(3, 2, 5, 6)), "w_b": rng.normal(size=(2, 2, 2, 3)), "b_b": rng.normal(size=2),
    "x_n": rng.normal(size=(2, 2, 4, 4)), "w_n": rng.normal(size=(2, 2, 2, 2)), "b_n": rng.normal(size=2),
}
INPUTS["dout"] = rng.normal(size=(2, 4, 4, 3))  # stride 2, padding 1 on 7 x 6 with 3 x 3
INPUTS["dout_b"] = rng.normal(size=(3, 2, 4, 4))  # stride 1, padding 0 on 5 x 6 with 2 x 3
INPUTS["dout_n"] = rng.normal(size=(2, 2, 5, 5))  # stride 1, padding 1 on 4 x 4 with 2 x 2


def probe_strided(inputs):
    _, cache = conv2d_forward(inputs["x"], inputs["w"], inputs["b"], 2, 1)
    return dict(zip(("x", "w", "b"), conv2d_backward(inputs["dout"], cache)))


def probe_plain(inputs):
    _, cache = conv2d_forward(inputs["x_b"], inputs["w_b"], inputs["b_b"], 1, 0)
    return dict(zip(("x", "w", "b"), conv2d_backward(inputs["dout_b"], cache)))


def probe_numeric(inputs):
    _, cache = conv2d_forward(inputs["x_n"], inputs["w_n"], inputs["b_n"], 1, 1)
    return dict(zip(("x", "w", "b"), conv2d_backward(inputs["dout_n"], cache)))


def autograd(inputs, suffix, stride, padding):
    names = {"x": inputs["x" + suffix], "w": inputs["w" + suffix], "b": inputs["b" + suffix]}
    conv = lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding)  # noqa: E731
    return torch_gradients(conv, names, inputs["dout" + suffix])[1]


def matches(got, ref, **tol):
    return all_of(*(close(got[k], ref[k], label="d" + k, **tol) for k in ("x", "w", "b")))


def numeric(inputs):
    """Central differences of L = sum(conv2d(x, w, b) * dout) (torch forward), stride 1, padding 1."""
    base = {k: inputs[k + "_n"] for k in ("x", "w", "b")}
    grads = {}
    for name in base:
        def loss(value, name=name):
            args = dict(base, **{name: value})
            return float((torch_conv(args["x"], args["w"], args["b"], 1, 1) * tensor(inputs["dout_n"])).sum())
        grads[name] = central_difference(loss, base[name])
    return grads


CASES = [
    case("stride 2, padding 1, (2, 3, 7, 6) input: dx, dw, db match torch.autograd",
         'matches(outputs["strided"], autograd(inputs, "", 2, 1))', points=1,
         hint="overlapping windows: accumulate into dx with +=; cut the padding off dx at the end"),
    case("stride 1, no padding, non-square (2, 3) kernel: dx, dw, db match torch.autograd",
         'matches(outputs["plain"], autograd(inputs, "_b", 1, 0))', points=1,
         hint="dw sums window * dout over the batch; db sums dout over batch and positions"),
    case("stride 1, padding 1: dx, dw, db match central differences of the loss",
         'matches(outputs["numeric"], numeric(inputs), rtol=1e-6, atol=1e-8)', points=1,
         hint="compare each gradient's shape with its parameter's shape"),
]
