# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 3.1: dilated and grouped convolution, forward and backward
#
# *Chapter 3 (CNN layers).* Chapter 3 builds the convolutional layer with a stride and a
# padding. Two more options appear in many modern networks. A *dilation* $d$ spreads the
# kernel's taps $d$ pixels apart, so that a 3 × 3 kernel with $d = 2$ covers a 5 × 5 patch with
# the same nine weights. *Groups* split the C input channels and the F filters into G groups
# of C/G and F/G; each filter sees only the channels of its own group (with G = C, every channel
# has its own filters: a *depthwise* convolution). With both, as in PyTorch,
#
# $$\text{out}[n, f, i, j] = b_f + \sum_{c'=0}^{C/G-1}\sum_{p=0}^{KH-1}\sum_{q=0}^{KW-1}
#   w[f, c', p, q]\; x_{\text{pad}}[n,\, g\,C/G + c',\, iS + d\,p,\, jS + d\,q],
#   \qquad g = \lfloor f / (F/G) \rfloor,$$
#
# where $x_{\text{pad}}$ is the input with $P$ rows and columns of zeros added on each side,
# $S$ the stride, $d$ the dilation. Shapes: `x` (N, C, H, W), `w` (F, C/G, KH, KW), `b` (F,),
# `out` (N, F, OH, OW).
#
# **How to work.** Replace every `raise NotImplementedError` with your code, then run the whole
# notebook (Kernel → Restart & Run All). Each *self-check* cell ends by printing
# `... self-checks passed`. The grader runs other, hidden tests (other shapes, strides,
# paddings, dilations and groups, compared with PyTorch and with central differences), so
# passing the self-checks is necessary, not sufficient. Use numpy only (loops over output
# positions and groups are fine); keep the names and signatures. `stride`, `padding`,
# `dilation` and `groups` are integers.
#
# | question | function | points |
# |---|---|---|
# | 1 | `conv_output_size(size, kernel, stride, padding, dilation)` | 1 |
# | 2 | `conv2d_forward(x, w, b, stride, padding, dilation, groups)` | 3 |
# | 3 | `conv2d_backward(dout, cache)` | 3 |
# | 4 | `influence_count(layers, size)` (an experiment) | 2 |

# %% tags=["grader"]
# Instructor only: everything in "grader" cells stays out of the student notebook.
EXERCISE = {"title": "Dilated and grouped convolution, forward and backward", "chapter": 3}

import numpy as np
import torch
import torch.nn.functional as F

from dlbook.grading.helpers import all_of, case, central_difference, close, equal, tensor, torch_gradients


def torch_conv(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    return F.conv2d(tensor(x), tensor(w), tensor(b), stride=stride, padding=padding, dilation=dilation,
                    groups=groups)

# %%
import numpy as np

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Question 1 (1 point): the output size
#
# Work out how many positions a kernel of size $K$ with dilation $d$ fits at along a padded
# dimension of size $W + 2P$ with stride $S$ (first: how wide is a dilated kernel?), and return
# that number as an `int`. With $d = 1$ it is chapter 3's $\lfloor (W - K + 2P)/S \rfloor + 1$.

# %%
def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Number of positions of a dilated kernel along one padded dimension."""
    # BEGIN SOLUTION
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    # END SOLUTION


# %%
# Self-check for question 1: LeNet's first layer (32 -> 28), and a 3-tap kernel with dilation 2
# (5 pixels wide) on 9 pixels: 5 positions; with padding 2 it keeps the size.
assert conv_output_size(32, 5) == 28
assert conv_output_size(9, 3, dilation=2) == 5
assert conv_output_size(9, 3, padding=2, dilation=2) == 9
assert conv_output_size(7, 3, stride=3, padding=0) == 2, "the last partial window does not count"
print("conv_output_size: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "conv_output_size", "points": 1}
rng = hidden_rng(3101)  # keyed by the instructor's secret when grading


def _random_sizes(count):
    """(size, kernel, stride, padding, dilation) rows whose dilated kernel fits the padded size."""
    rows = []
    while len(rows) < count:
        size, kernel, stride, padding, dilation = (int(v) for v in (
            rng.integers(5, 65), rng.integers(1, 8), rng.integers(1, 5), rng.integers(0, 4),
            rng.integers(1, 4)))
        if dilation * (kernel - 1) + 1 <= size + 2 * padding:
            rows.append([size, kernel, stride, padding, dilation])
    return np.array(rows)


INPUTS = {
    # (size, kernel, stride, padding, dilation) -> worked by hand:
    # (7 - 4 - 1) + 1 = 3; (28 + 8 - 8 - 1) + 1 = 28; (227 - 10 - 1) // 4 + 1 = 55;
    # (10 + 4 - 6 - 1) // 2 + 1 = 4
    "exact": np.array([[7, 3, 1, 0, 2], [28, 5, 1, 4, 2], [227, 11, 4, 0, 1], [10, 3, 2, 2, 3]]),
    # (8 + 2 - 4 - 1) // 2 + 1 = 3; (9 - 4 - 1) // 3 + 1 = 2; (11 - 6 - 1) // 3 + 1 = 2
    "floor": np.array([[8, 3, 2, 1, 2], [9, 2, 3, 0, 4], [11, 4, 3, 0, 2]]),
    # 30 random settings (the hand-worked cases earn points only together with these)
    "random": _random_sizes(30),
}


def probe_random(inputs):
    return np.array([conv_output_size(*(int(v) for v in row)) for row in inputs["random"]])


def torch_sizes(rows):
    """What torch's conv1d makes of each row (the grader's reference)."""
    return np.array([F.conv1d(torch.zeros(1, 1, int(n)), torch.zeros(1, 1, int(k)), stride=int(s),
                              padding=int(p), dilation=int(d)).shape[-1] for n, k, s, p, d in rows])


def probe_exact(inputs):
    return np.array([conv_output_size(*(int(v) for v in row)) for row in inputs["exact"]])


def probe_floor(inputs):
    return np.array([conv_output_size(*(int(v) for v in row)) for row in inputs["floor"]])


CASES = [
    case("sizes that divide exactly, with and without dilation (worked by hand), and 30 random "
         "settings against torch",
         'all_of(equal(outputs["exact"], np.array([3, 28, 55, 4])), '
         'equal(outputs["random"], torch_sizes(inputs["random"]), label="random settings"))', points=0.5,
         hint="a kernel of K taps with dilation d spans d (K - 1) + 1 pixels"),
    case("sizes where the last window does not fit (rounding down), dilation 2 and 4 (worked by "
         "hand), and 30 random settings against torch",
         'all_of(equal(outputs["floor"], np.array([3, 2, 2])), '
         'equal(outputs["random"], torch_sizes(inputs["random"]), label="random settings"))', points=0.5,
         hint="use integer division //, which rounds down, after subtracting the dilated width"),
]

# %% [markdown]
# ## Question 2 (3 points): the forward pass
#
# Return `out` (N, F, OH, OW) and a `cache` for your backward pass. Pad with `np.pad`; for every
# output position take the dilated window of the padded input (slicing with a step, `a:b:d`,
# picks every d-th pixel), and for every group contract that group's channels of the window
# with that group's filters (`np.tensordot` or `np.einsum`). Check that `C` and `F` are
# divisible by `groups` and that `w.shape[1] == C // groups`; raise `ValueError` otherwise.

# %%
def conv2d_forward(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    """Dilated, grouped cross-correlation of x (N, C, H, W) with w (F, C/G, KH, KW), plus b (F,)."""
    # BEGIN SOLUTION
    n, c, h, width = x.shape
    f, cg, kh, kw = w.shape
    if c % groups or f % groups or cg != c // groups:
        raise ValueError(f"{c} channels and {f} filters in {groups} groups with w of shape {w.shape}")
    fg = f // groups
    oh = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    ow = (width + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.zeros((n, f, oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = xp[:, :, i * stride:i * stride + dilation * (kh - 1) + 1:dilation,
                        j * stride:j * stride + dilation * (kw - 1) + 1:dilation]  # (N, C, KH, KW)
            for g in range(groups):
                out[:, g * fg:(g + 1) * fg, i, j] = np.tensordot(
                    window[:, g * cg:(g + 1) * cg], w[g * fg:(g + 1) * fg], axes=([1, 2, 3], [1, 2, 3]))
            out[:, :, i, j] += b
    return out, (x, w, stride, padding, dilation, groups)
    # END SOLUTION


# %%
# Self-check for question 2, worked by hand. One channel, the 2 x 2 kernel [[1, 0], [0, -1]]
# with dilation 2 computes x[i, j] - x[i+2, j+2], which is -10 everywhere on a 4 x 4 arange.
x_demo = np.arange(16.0).reshape(1, 1, 4, 4)
out, cache = conv2d_forward(x_demo, np.array([[[[1.0, 0.0], [0.0, -1.0]]]]), np.zeros(1), dilation=2)
assert out.shape == (1, 1, 2, 2), f"shape {out.shape}, expected (1, 1, 2, 2)"
assert np.allclose(out, -10.0), out
# Two groups of one channel: filter 0 sees only channel 0 (all ones), filter 1 only channel 1
# (all tens), with 1 x 1 weights 1 and 2 and biases 0.5 and 0.
x_groups = np.stack([np.ones((2, 2)), np.full((2, 2), 10.0)])[None]  # (1, 2, 2, 2)
out, _ = conv2d_forward(x_groups, np.array([1.0, 2.0]).reshape(2, 1, 1, 1), np.array([0.5, 0.0]), groups=2)
assert out.shape == (1, 2, 2, 2), f"shape {out.shape}, expected (1, 2, 2, 2)"
assert np.allclose(out[0, 0], 1.5) and np.allclose(out[0, 1], 20.0), out
try:
    conv2d_forward(x_groups, np.ones((2, 2, 1, 1)), np.zeros(2), groups=2)
except ValueError:
    pass
else:
    raise AssertionError("w of shape (2, 2, 1, 1) with 2 channels in 2 groups should raise ValueError")
print("conv2d_forward: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "conv2d_forward", "points": 3}
rng = hidden_rng(3102)  # keyed by the instructor's secret when grading
INPUTS = {
    "x": rng.normal(size=(2, 3, 9, 8)), "w": rng.normal(size=(4, 3, 3, 2)), "b": rng.normal(size=4),
    "x_g": rng.normal(size=(1, 4, 8, 7)), "w_g": rng.normal(size=(6, 2, 3, 3)), "b_g": rng.normal(size=6),
    "x_dw": rng.normal(size=(2, 3, 7, 9)), "w_dw": rng.normal(size=(6, 1, 2, 3)), "b_dw": rng.normal(size=6),
}


def probe_dilated(inputs):
    return conv2d_forward(inputs["x"], inputs["w"], inputs["b"], 1, 0, 2, 1)[0]


def probe_grouped(inputs):
    try:  # 4 channels in 2 groups need w of shape (F, 2, KH, KW), not (F, 4, KH, KW)
        conv2d_forward(inputs["x_g"], np.ones((6, 4, 3, 3)), inputs["b_g"], 1, 0, 1, 2)
        refused = 0
    except ValueError:
        refused = 1
    return {"out": conv2d_forward(inputs["x_g"], inputs["w_g"], inputs["b_g"], 2, 1, 1, 2)[0],
            "refused": np.array(refused)}


def probe_defaults(inputs):
    return conv2d_forward(inputs["x"], inputs["w"], inputs["b"])[0]


def probe_depthwise(inputs):
    return conv2d_forward(inputs["x_dw"], inputs["w_dw"], inputs["b_dw"], 1, 2, 3, 3)[0]


CASES = [
    case("(2, 3, 9, 8) input, (4, 3, 3, 2) kernel, dilation 2: matches torch conv2d",
         'close(outputs["dilated"], torch_conv(inputs["x"], inputs["w"], inputs["b"], dilation=2))', points=1,
         hint="take every d-th pixel of a window d (K - 1) + 1 wide; kernels need not be square"),
    case("(1, 4, 8, 7) input, 6 filters in 2 groups, stride 2, padding 1: matches torch conv2d; a kernel "
         "with the wrong number of channels per group raises ValueError",
         ['got = outputs["grouped"]',
          'all_of(close(got["out"], torch_conv(inputs["x_g"], inputs["w_g"], inputs["b_g"], 2, 1, groups=2)), '
          'equal(got["refused"], np.array(1), label="ValueError raised (1 = yes)"))'],
         points=1, hint="filters g F/G .. (g+1) F/G - 1 see channels g C/G .. (g+1) C/G - 1 only; check "
                        "w.shape[1] == C // groups"),
    case("depthwise: 3 channels, 2 filters each, (2, 3) kernel, dilation 3, padding 2, and the defaults "
         "(stride 1, no padding, no dilation, one group): match torch conv2d",
         'all_of(close(outputs["depthwise"], torch_conv(inputs["x_dw"], inputs["w_dw"], inputs["b_dw"], 1, 2, 3, 3)), '
         'close(outputs["defaults"], torch_conv(inputs["x"], inputs["w"], inputs["b"]), label="defaults"))',
         points=1, hint="cross-correlation: do not flip the kernel; pad before taking dilated windows"),
]

# %% [markdown]
# ## Question 3 (3 points): the backward pass
#
# Given `dout` $= \partial L / \partial \text{out}$ (N, F, OH, OW) and your cache, return
# `(dx, dw, db)` with the shapes of `x`, `w` and `b`. Go over the output positions (and groups)
# as in the forward pass: the dilated window that produced `out[:, group's filters, i, j]`
# receives `dout` at that position contracted with the group's filters, and the filters
# receive the window contracted with `dout` over the batch. Windows overlap whenever the stride
# is smaller than the dilated kernel, so accumulate (`+=`) into a padded `dx`, and cut the
# padding off at the end.

# %%
def conv2d_backward(dout, cache):
    """Gradients (dx, dw, db) of the dilated, grouped convolution, given dL/dout and the cache."""
    # BEGIN SOLUTION
    x, w, stride, padding, dilation, groups = cache
    _, c, h, width = x.shape
    f, cg, kh, kw = w.shape
    fg = f // groups
    _, _, oh, ow = dout.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))  # (F,)
    for i in range(oh):
        for j in range(ow):
            rows = slice(i * stride, i * stride + dilation * (kh - 1) + 1, dilation)
            cols = slice(j * stride, j * stride + dilation * (kw - 1) + 1, dilation)
            for g in range(groups):
                chans, filters = slice(g * cg, (g + 1) * cg), slice(g * fg, (g + 1) * fg)
                grad = dout[:, filters, i, j]  # (N, F/G)
                dw[filters] += np.tensordot(grad, xp[:, chans, rows, cols], axes=([0], [0]))
                dxp[:, chans, rows, cols] += np.tensordot(grad, w[filters], axes=([1], [0]))
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
# Self-check for question 3: central differences of L = sum(out * G) through your forward pass,
# two groups, dilation 2, padding 1.
rng_demo = np.random.default_rng(0)
x0, w0, b0 = rng_demo.normal(size=(1, 2, 5, 5)), rng_demo.normal(size=(2, 1, 2, 2)), rng_demo.normal(size=2)
settings = dict(stride=1, padding=1, dilation=2, groups=2)
out0, cache0 = conv2d_forward(x0, w0, b0, **settings)
G = rng_demo.normal(size=out0.shape)
dx, dw, db = conv2d_backward(G, cache0)
num_dx = finite_difference(lambda v: np.sum(conv2d_forward(v, w0, b0, **settings)[0] * G), x0)
num_dw = finite_difference(lambda v: np.sum(conv2d_forward(x0, v, b0, **settings)[0] * G), w0)
num_db = finite_difference(lambda v: np.sum(conv2d_forward(x0, w0, v, **settings)[0] * G), b0)
for name, ours, numeric in (("dx", dx, num_dx), ("dw", dw, num_dw), ("db", db, num_db)):
    assert ours.shape == numeric.shape, f"{name}: shape {ours.shape}, expected {numeric.shape}"
    assert np.allclose(ours, numeric, atol=1e-6), f"{name} differs from central differences"
print("conv2d_backward: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "conv2d_backward", "points": 3}
rng = hidden_rng(3103)  # keyed by the instructor's secret when grading
INPUTS = {
    "x": rng.normal(size=(2, 3, 9, 8)), "w": rng.normal(size=(4, 3, 3, 3)), "b": rng.normal(size=4),
    "x_g": rng.normal(size=(2, 4, 6, 7)), "w_g": rng.normal(size=(4, 2, 2, 3)), "b_g": rng.normal(size=4),
    "x_n": rng.normal(size=(1, 3, 5, 5)), "w_n": rng.normal(size=(3, 1, 2, 2)), "b_n": rng.normal(size=3),
}
INPUTS["dout"] = rng.normal(size=(2, 4, 4, 3))  # stride 2, padding 1, dilation 2 on 9 x 8 with 3 x 3
INPUTS["dout_g"] = rng.normal(size=(2, 4, 5, 5))  # stride 1, no padding, 2 groups, 2 x 3 on 6 x 7
INPUTS["dout_n"] = rng.normal(size=(1, 3, 5, 5))  # depthwise, padding 1, dilation 2, 2 x 2 on 5 x 5
_SETTINGS = {"": (2, 1, 2, 1), "_g": (1, 0, 1, 2), "_n": (1, 1, 2, 3)}  # stride, padding, dilation, groups


def probe_dilated(inputs):
    _, cache = conv2d_forward(inputs["x"], inputs["w"], inputs["b"], 2, 1, 2, 1)
    return dict(zip(("x", "w", "b"), conv2d_backward(inputs["dout"], cache)))


def probe_grouped(inputs):
    _, cache = conv2d_forward(inputs["x_g"], inputs["w_g"], inputs["b_g"], 1, 0, 1, 2)
    return dict(zip(("x", "w", "b"), conv2d_backward(inputs["dout_g"], cache)))


def probe_numeric(inputs):
    _, cache = conv2d_forward(inputs["x_n"], inputs["w_n"], inputs["b_n"], 1, 1, 2, 3)
    return dict(zip(("x", "w", "b"), conv2d_backward(inputs["dout_n"], cache)))


def autograd(inputs, suffix):
    stride, padding, dilation, groups = _SETTINGS[suffix]
    names = {"x": inputs["x" + suffix], "w": inputs["w" + suffix], "b": inputs["b" + suffix]}
    conv = lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation,  # noqa: E731
                                    groups=groups)
    return torch_gradients(conv, names, inputs["dout" + suffix])[1]


def matches(got, ref, **tol):
    return all_of(*(close(got[k], ref[k], label="d" + k, **tol) for k in ("x", "w", "b")))


def numeric(inputs):
    """Central differences of L = sum(conv2d(x, w, b) * dout) (torch forward), depthwise, dilated."""
    base = {k: inputs[k + "_n"] for k in ("x", "w", "b")}
    grads = {}
    for name in base:
        def loss(value, name=name):
            args = dict(base, **{name: value})
            out = torch_conv(args["x"], args["w"], args["b"], *_SETTINGS["_n"])
            return float((out * tensor(inputs["dout_n"])).sum())
        grads[name] = central_difference(loss, base[name])
    return grads


CASES = [
    case("stride 2, padding 1, dilation 2, (2, 3, 9, 8) input: dx, dw, db match torch.autograd",
         'matches(outputs["dilated"], autograd(inputs, ""))', points=1,
         hint="the window's pixels are d apart in x: scatter dx back into the same dilated slice"),
    case("2 groups, non-square (2, 3) kernel: dx, dw, db match torch.autograd",
         'matches(outputs["grouped"], autograd(inputs, "_g"))', points=1,
         hint="a group's filters get gradients from its own channels only, and send dx to them only"),
    case("depthwise (3 groups), dilation 2, padding 1: dx, dw, db match central differences of the loss",
         'matches(outputs["numeric"], numeric(inputs), rtol=1e-6, atol=1e-8)', points=1,
         hint="overlapping windows: accumulate into dx with +=; cut the padding off dx at the end"),
]

# %% [markdown]
# ## Question 4 (2 points): an experiment: which input pixels does an output see?
#
# Stack convolutions of one channel, one filter each, described by the rows of the integer
# array `layers`, `(kernel, stride, padding, dilation)` per layer (square kernels, no groups),
# and apply them to a `size` × `size` input. Which input pixels can change the output at the
# centre of the last map, `(OH // 2, OW // 2)`? Write `influence_count(layers, size)`
# returning *how many* they are, an `int`. The answer does not depend on the weights as long as
# none is 0 (take them all 1). Two ways to find it: backpropagate a gradient of 1 at that
# output through the stack with your own functions and count the input pixels whose gradient
# is not 0; or follow the set of rows (and columns) each layer's output position reads, layer
# by layer down to the input. Mind the pixels that only the padding reaches, and the holes a
# dilation leaves: stacking dilated layers does not always cover a full square. The grader
# calls your function on stacks of its own.

# %%
def influence_count(layers: np.ndarray, size: int) -> int:
    """Number of input pixels that affect the centre output of a stack of one-channel convolutions."""
    # BEGIN SOLUTION
    sizes = [size]
    for kernel, stride, padding, dilation in layers:
        sizes.append((sizes[-1] + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1)
    reached = {sizes[-1] // 2}  # rows (and, by symmetry, columns) of the last map
    for (kernel, stride, padding, dilation), below in zip(layers[::-1], sizes[-2::-1]):
        reached = {i * stride - padding + dilation * q for i in reached for q in range(kernel)}
        reached = {r for r in reached if 0 <= r < below}  # the padding's rows are not pixels
    return len(reached) ** 2
    # END SOLUTION


# %%
# Self-check for question 4, worked by hand. One 3 x 3 layer on a 5 x 5 input: the centre output
# (1, 1) reads rows 1..3 and columns 1..3: 9 pixels. Two 3 x 3 layers with dilation 2 on 9 x 9:
# the last map is 1 x 1 and reads rows 2, 4, 6 of the map below, which read rows 0, 2, 4, 6, 8
# of the input: 5 x 5 = 25 pixels of the 9 x 9 patch the two layers span.
assert influence_count(np.array([[3, 1, 0, 1]]), 5) == 9
assert influence_count(np.array([[3, 1, 0, 2], [3, 1, 0, 2]]), 9) == 25
print("influence_count: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "influence_count", "points": 2}
rng = hidden_rng(3104)  # keyed by the instructor's secret when grading


def _count(layers, size, dilate=True, clip=True):
    """Pixels reaching the centre output, following rows layer by layer (optionally a wrong way)."""
    sizes = [size]
    for kernel, stride, padding, dilation in layers.tolist():
        sizes.append((sizes[-1] + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1)
    reached = {sizes[-1] // 2}
    for (kernel, stride, padding, dilation), below in zip(layers.tolist()[::-1], sizes[-2::-1]):
        step = dilation if dilate else 1
        reached = {i * stride - padding + step * q for i in reached for q in range(kernel)}
        reached = {r for r in reached if 0 <= r < below or not clip}
    return len(reached) ** 2, sizes[-1], min(reached, default=-1)


def _stack(size, count, cut):
    """Random valid layers (kernel 2-3, stride 1-2, padding 0-2, dilation 1-3), the first dilated,
    on which the dilation changes the answer (and, with ``cut``, the field reaches row 0 and the
    padding's rows change it too)."""
    while True:
        layers = np.column_stack([rng.integers(2, 4, count), rng.integers(1, 3, count),
                                  rng.integers(0, 3, count), rng.integers(1, 4, count)])
        layers[0, 3] = rng.integers(2, 4)
        pixels, side, first = _count(layers, size)
        if side < 3 or np.any(layers[:, 2] > layers[:, 3] * (layers[:, 0] - 1) // 2 + 1):
            continue
        if pixels != _count(layers, size, dilate=False)[0] and (
                not cut or (pixels != _count(layers, size, clip=False)[0] and first == 0)):
            return layers


INPUTS = {"layers": _stack(31, 4, False), "size": np.array(31), "layers_small": _stack(13, 3, True),
          "size_small": np.array(13),
          # two 1 x 1 layers, then one where the centre is (OH // 2, OW // 2) of a 2 x 2 map, or
          # one whose map (5 x 5) is larger than its input (padding on both sides counts)
          "layers_edge": np.array([[[1, 1, 0, 1], [1, 1, 0, 1], [3, 2, 1, 1]],
                                   [[1, 1, 0, 1], [1, 1, 0, 1], [3, 1, 2, 1]]]),
          "sizes_edge": np.array([4, 3])}


def probe_deep(inputs):
    return np.asarray(influence_count(inputs["layers"], int(inputs["size"])))


def probe_edge(inputs):
    return np.array([influence_count(layers, int(size))
                     for layers, size in zip(inputs["layers_edge"], inputs["sizes_edge"])])


def probe_small(inputs):
    return np.asarray(influence_count(inputs["layers_small"], int(inputs["size_small"])))


def torch_count(layers, size):
    """The reference: autograd through the stack with weights 1; count the non-zero input gradients."""
    x = torch.zeros((1, 1, int(size), int(size)), dtype=torch.float64, requires_grad=True)
    out = x
    for kernel, stride, padding, dilation in layers.tolist():
        out = F.conv2d(out, torch.ones((1, 1, kernel, kernel), dtype=torch.float64), stride=stride,
                       padding=padding, dilation=dilation)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    return np.asarray(int(torch.count_nonzero(x.grad)))


CASES = [
    case("a stack of 4 layers of the grader's (one at least dilated) on 31 x 31: the number of pixels",
         'equal(outputs["deep"], torch_count(inputs["layers"], inputs["size"]))', points=1,
         hint="a dilated layer reads rows i S - P + d q, q = 0 .. K - 1: with holes between them"),
    case("a stack of 3 layers of the grader's on 13 x 13, where the padding cuts the field, and two "
         "small stacks on 4 x 4 and 3 x 3: the numbers",
         'all_of(equal(outputs["small"], torch_count(inputs["layers_small"], inputs["size_small"])), '
         'equal(outputs["edge"], np.array([torch_count(l, s) for l, s in zip(inputs["layers_edge"], '
         'inputs["sizes_edge"])]), label="two small stacks"))', points=1,
         hint="rows outside 0 .. size - 1 of a map are padding, not pixels: drop them at every layer"),
]
