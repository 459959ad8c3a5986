# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 4.2: a residual block with a projection shortcut, forward and backward
#
# *Chapter 4 (Classic networks), Section 4.8.* A residual block adds its input back to what its
# layers compute, $y = \mathrm{relu}(\mathcal{F}(x) + s(x))$. This exercise uses a block built
# only from 1 × 1 convolutions (the kind that ResNet's bottleneck blocks and GoogLeNet's
# reductions use), so no window has to slide: a 1 × 1 convolution with weight `w` of shape
# (F, C, 1, 1) and bias `b` (F,) maps the C channels of every pixel to F channels,
#
# $$\text{conv}_{1\times1}(x; w, b)[n, f, h, w'] = b_f + \sum_{c} w[f, c, 0, 0]\, x[n, c, h, w'] .$$
#
# The block, for `x` (N, C, H, W):
#
# $$h = \mathrm{relu}(\text{conv}_{1\times1}(x; w_1, b_1)), \quad
#   \mathcal{F}(x) = \text{conv}_{1\times1}(h; w_2, b_2), \quad
#   y = \mathrm{relu}\big(\mathcal{F}(x) + s(x)\big),$$
#
# with `w1` (M, C, 1, 1), `w2` (F, M, 1, 1), and the shortcut $s(x) = x$ (the identity, when
# `w_proj` is None, which needs F = C) or $s(x) = \text{conv}_{1\times1}(x; w_p, b_p)$ (a
# *projection*, `w_proj` (F, C, 1, 1), `b_proj` (F,)). Use relu'(0) = 0, as PyTorch does.
#
# **How to work.** Replace every `raise NotImplementedError` with your code, then run the whole
# notebook (Kernel → Restart & Run All). Each *self-check* cell ends by printing
# `... self-checks passed`. The grader runs other, hidden tests (other shapes, compared with
# PyTorch's autograd in float64 and with central differences), so passing the self-checks is
# necessary, not sufficient. Use numpy only (`np.einsum` is handy); keep the names and
# signatures; do not modify the arguments.
#
# | question | function | points |
# |---|---|---|
# | 1 | `residual_forward(x, w1, b1, w2, b2, w_proj=None, b_proj=None)` | 2 |
# | 2 | `residual_backward(dout, cache)` | 3 |
# | 3 | the identity shortcut's gradient (same functions, `w_proj=None`) | 1 |

# %% tags=["grader"]
# Instructor only: everything in "grader" cells stays out of the student notebook.
EXERCISE = {"title": "A residual block with a projection shortcut, forward and backward", "chapter": 4}

import numpy as np
import torch
import torch.nn.functional as F

from dlbook.grading.helpers import all_of, case, central_difference, close, tensor, torch_gradients


def torch_block(x, w1, b1, w2, b2, w_proj=None, b_proj=None):
    h = F.relu(F.conv2d(x, w1, b1))
    shortcut = x if w_proj is None else F.conv2d(x, w_proj, b_proj)
    return F.relu(F.conv2d(h, w2, b2) + shortcut)


def matches(got, ref, names, **tol):
    missing = [n for n in names if n not in got]
    if missing:
        return f"no gradient returned for {missing}"
    return all_of(*(close(got[n], ref[n], label="d" + n, **tol) for n in names))


def sandbox_grads(result):
    """The student's gradient tuple as a dict of arrays (None entries left out)."""
    names = ("x", "w1", "b1", "w2", "b2", "w_proj", "b_proj")
    return {name: np.asarray(g, dtype=float) for name, g in zip(names, result) if g is not None}

# %%
import numpy as np

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Question 1 (2 points): the forward pass
#
# Return `y` (N, F, H, W) and a `cache` holding what your backward pass needs.

# %%
def residual_forward(x, w1, b1, w2, b2, w_proj=None, b_proj=None):
    """y = relu(conv1x1(relu(conv1x1(x; w1, b1)); w2, b2) + s(x)); returns (y, cache)."""
    # BEGIN SOLUTION
    z1 = np.einsum("mc,nchw->nmhw", w1[:, :, 0, 0], x) + b1[None, :, None, None]  # (N, M, H, W)
    h = np.maximum(z1, 0.0)
    branch = np.einsum("fm,nmhw->nfhw", w2[:, :, 0, 0], h) + b2[None, :, None, None]  # (N, F, H, W)
    if w_proj is None:
        shortcut = x
    else:
        shortcut = np.einsum("fc,nchw->nfhw", w_proj[:, :, 0, 0], x) + b_proj[None, :, None, None]
    s = branch + shortcut
    y = np.maximum(s, 0.0)
    return y, (x, w1, w2, w_proj, z1, h, s)
    # END SOLUTION


# %%
# Self-check for question 1, worked by hand: one pixel, C = F = 2, M = 1.
# z1 = 1*1 + 2*(-1) + 0.5 = -0.5 -> h = 0, so F(x) = b2 = (0.25, -3); identity shortcut x = (1, 2):
# y = relu((1.25, -1)) = (1.25, 0).
x_demo = np.array([1.0, 2.0]).reshape(1, 2, 1, 1)
w1_demo, b1_demo = np.array([1.0, -1.0]).reshape(1, 2, 1, 1), np.array([0.5])
w2_demo, b2_demo = np.array([3.0, 4.0]).reshape(2, 1, 1, 1), np.array([0.25, -3.0])
y, _ = residual_forward(x_demo, w1_demo, b1_demo, w2_demo, b2_demo)
assert y.shape == (1, 2, 1, 1), f"shape {y.shape}, expected (1, 2, 1, 1)"
assert np.allclose(y.ravel(), [1.25, 0.0]), y.ravel()
# with a projection to 3 channels that doubles the first channel: s(x) = (2, 0, 0) + b_proj
wp_demo = np.zeros((3, 2, 1, 1))
wp_demo[0, 0] = 2.0
w2_wide = np.zeros((3, 1, 1, 1))
y, _ = residual_forward(x_demo, w1_demo, b1_demo, w2_wide, np.zeros(3), wp_demo, np.array([0.0, 1.0, -1.0]))
assert np.allclose(y.ravel(), [2.0, 1.0, 0.0]), y.ravel()
print("residual_forward: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "residual_forward", "points": 2}
rng = hidden_rng(4201)  # keyed by the instructor's secret when grading
INPUTS = {
    "x": rng.normal(size=(3, 4, 5, 2)), "w1": rng.normal(size=(3, 4, 1, 1)), "b1": rng.normal(size=3),
    "w2": rng.normal(size=(6, 3, 1, 1)), "b2": rng.normal(size=6),
    "w_proj": rng.normal(size=(6, 4, 1, 1)), "b_proj": rng.normal(size=6),
    "xi": rng.normal(size=(2, 5, 3, 4)), "w1i": rng.normal(size=(2, 5, 1, 1)), "b1i": rng.normal(size=2),
    "w2i": rng.normal(size=(5, 2, 1, 1)), "b2i": rng.normal(size=5),
}


def probe_projection(inputs):
    keys = ("x", "w1", "b1", "w2", "b2", "w_proj", "b_proj")
    return residual_forward(*(inputs[k] for k in keys))[0]


def probe_identity(inputs):
    return residual_forward(*(inputs[k] for k in ("xi", "w1i", "b1i", "w2i", "b2i")))[0]


def reference(inputs, keys):
    with torch.no_grad():
        return torch_block(*(tensor(inputs[k]) for k in keys)).numpy()


CASES = [
    case("(3, 4, 5, 2) input, 3 hidden and 6 output channels, projection shortcut: matches torch",
         'close(outputs["projection"], reference(inputs, ("x", "w1", "b1", "w2", "b2", "w_proj", "b_proj")))',
         points=1, hint="the shortcut is a 1x1 convolution of x with w_proj plus b_proj, added before the last ReLU"),
    case("(2, 5, 3, 4) input, identity shortcut: matches torch",
         'close(outputs["identity"], reference(inputs, ("xi", "w1i", "b1i", "w2i", "b2i")))',
         points=1, hint="with w_proj None the shortcut is x itself; one bias per output channel"),
]

# %% [markdown]
# ## Question 2 (3 points): the backward pass
#
# Given `dout` $= \partial L / \partial y$ (N, F, H, W) and your cache, return the tuple
# `(dx, dw1, db1, dw2, db2, dw_proj, db_proj)`, each with the shape of its argument, and
# `dw_proj, db_proj = None, None` for the identity shortcut. With
# $d = \mathrm{relu}'(s) \odot$ `dout` the gradient of the sum $s = \mathcal{F}(x) + s(x)$,
# both paths receive $d$, and their gradients with respect to $x$ **add**. For a 1 × 1
# convolution $z = \text{conv}_{1\times1}(a; w, b)$: $\partial L/\partial a[n, c] =
# \sum_f w[f, c]\, \partial L/\partial z[n, f]$ at every pixel, $\partial L/\partial w[f, c]$
# sums $\partial L/\partial z[n, f]\, a[n, c]$ over the batch and the pixels, and
# $\partial L/\partial b_f$ sums $\partial L/\partial z[n, f]$.

# %%
def residual_backward(dout, cache):
    """Gradients (dx, dw1, db1, dw2, db2, dw_proj, db_proj) of residual_forward."""
    # BEGIN SOLUTION
    x, w1, w2, w_proj, z1, h, s = cache
    d = dout * (s > 0)  # (N, F, H, W): both paths get it
    dw2 = np.einsum("nfhw,nmhw->fm", d, h)[:, :, None, None]
    db2 = d.sum(axis=(0, 2, 3))
    dh = np.einsum("fm,nfhw->nmhw", w2[:, :, 0, 0], d)
    dz1 = dh * (z1 > 0)
    dw1 = np.einsum("nmhw,nchw->mc", dz1, x)[:, :, None, None]
    db1 = dz1.sum(axis=(0, 2, 3))
    dx = np.einsum("mc,nmhw->nchw", w1[:, :, 0, 0], dz1)
    if w_proj is None:
        dx = dx + d
        dw_proj = db_proj = None
    else:
        dp = d  # the projection's upstream gradient: the same d as the branch's
        dx = dx + np.einsum("fc,nfhw->nchw", w_proj[:, :, 0, 0], dp)
        dw_proj = np.einsum("nfhw,nchw->fc", dp, x)[:, :, None, None]
        db_proj = dp.sum(axis=(0, 2, 3))
    return dx, dw1, db1, dw2, db2, dw_proj, db_proj
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
# Self-check for question 2: central differences of L = sum(y * G), projection shortcut.
rng_demo = np.random.default_rng(0)
args = {"x": rng_demo.normal(size=(2, 2, 2, 2)), "w1": rng_demo.normal(size=(3, 2, 1, 1)),
        "b1": rng_demo.normal(size=3), "w2": rng_demo.normal(size=(3, 3, 1, 1)), "b2": rng_demo.normal(size=3),
        "w_proj": rng_demo.normal(size=(3, 2, 1, 1)), "b_proj": rng_demo.normal(size=3)}
y0, cache0 = residual_forward(**args)
G = rng_demo.normal(size=y0.shape)
grads = residual_backward(G, cache0)
for name, ours in zip(("x", "w1", "b1", "w2", "b2", "w_proj", "b_proj"), grads):
    numeric = finite_difference(lambda v, name=name: np.sum(residual_forward(**dict(args, **{name: v}))[0] * G),
                                args[name])
    assert ours is not None and ours.shape == numeric.shape, f"d{name}: wrong shape"
    assert np.allclose(ours, numeric, atol=1e-6), f"d{name} differs from central differences"
print("residual_backward: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "residual_backward", "points": 3}
rng = hidden_rng(4202)  # keyed by the instructor's secret when grading
INPUTS = {
    "x": rng.normal(size=(2, 3, 4, 3)), "w1": rng.normal(size=(5, 3, 1, 1)), "b1": rng.normal(size=5),
    "w2": rng.normal(size=(4, 5, 1, 1)), "b2": rng.normal(size=4),
    "w_proj": rng.normal(size=(4, 3, 1, 1)), "b_proj": rng.normal(size=4),
    "dout": rng.normal(size=(2, 4, 4, 3)),
    "x_n": rng.normal(size=(1, 2, 3, 1)), "w1_n": rng.normal(size=(2, 2, 1, 1)), "b1_n": rng.normal(size=2),
    "w2_n": rng.normal(size=(3, 2, 1, 1)), "b2_n": rng.normal(size=3),
    "w_proj_n": rng.normal(size=(3, 2, 1, 1)), "b_proj_n": rng.normal(size=3),
    "dout_n": rng.normal(size=(1, 3, 3, 1)),
    # fixed, a pre-activation exactly 0 at each ReLU, where relu'(0) = 0 (as torch): at the
    # first pixel x = 0, so z1 = b1 = (0, 1); s = (3, 0) there (branch (2.5, 0) + shortcut (0.5, 0))
    "x_k": np.array([0.0, 1.0, 0.0, 2.0]).reshape(1, 2, 1, 2),
    "w1_k": np.array([[1.0, -1.0], [2.0, 0.5]]).reshape(2, 2, 1, 1), "b1_k": np.array([0.0, 1.0]),
    "w2_k": np.array([[1.0, 2.0], [-1.0, 1.0]]).reshape(2, 2, 1, 1), "b2_k": np.array([0.5, -1.0]),
    "w_proj_k": np.eye(2).reshape(2, 2, 1, 1), "b_proj_k": np.array([0.5, 0.0]),
    "dout_k": np.array([1.0, -2.0, 0.5, 3.0]).reshape(1, 2, 1, 2),
}
NAMES = ("x", "w1", "b1", "w2", "b2", "w_proj", "b_proj")


def probe_autograd(inputs):
    x0 = inputs["x"].copy()
    names = ("x", "w1", "b1", "w2", "b2", "w_proj", "b_proj")
    _, cache = residual_forward(*(inputs[k] for k in names))
    result = sandbox_grads(residual_backward(inputs["dout"], cache))
    result["unchanged"] = np.array(float(np.array_equal(x0, inputs["x"])))
    return result


def probe_kink(inputs):
    names = ("x", "w1", "b1", "w2", "b2", "w_proj", "b_proj")
    _, cache = residual_forward(*(inputs[k + "_k"] for k in names))
    return sandbox_grads(residual_backward(inputs["dout_k"], cache))


def probe_numeric(inputs):
    names = ("x", "w1", "b1", "w2", "b2", "w_proj", "b_proj")
    _, cache = residual_forward(*(inputs[k + "_n"] for k in names))
    return sandbox_grads(residual_backward(inputs["dout_n"], cache))


def autograd(inputs):
    return torch_gradients(torch_block, {k: inputs[k] for k in NAMES}, inputs["dout"])[1]


def kink(inputs):
    return torch_gradients(torch_block, {k: inputs[k + "_k"] for k in NAMES}, inputs["dout_k"])[1]


def numeric(inputs):
    """Central differences of L = sum(block(...) * dout) with the torch forward pass."""
    base = {k: inputs[k + "_n"] for k in NAMES}
    grads = {}
    for name in NAMES:
        def loss(value, name=name):
            args = {k: tensor(v) for k, v in dict(base, **{name: value}).items()}
            return float((torch_block(**args) * tensor(inputs["dout_n"])).sum())
        grads[name] = central_difference(loss, base[name])
    return grads



CASES = [
    case("(2, 3, 4, 3) input, projection to 4 channels: dx, dw1, db1, dw2, db2 match torch.autograd; "
         "and a (1, 2, 1, 2) input with a pre-activation exactly 0 at each ReLU",
         'all_of(matches(outputs["autograd"], autograd(inputs), ("x", "w1", "b1", "w2", "b2")), '
         'matches(outputs["kink"], kink(inputs), NAMES))', points=1,
         hint="dx has two terms, one through the branch and one through the shortcut: add them; "
              "relu'(0) = 0"),
    case("the same block: dw_proj, db_proj match torch.autograd, and x is left unmodified",
         ['assert float(outputs["autograd"]["unchanged"]) == 1.0, "x was modified"',
          'matches(outputs["autograd"], autograd(inputs), ("w_proj", "b_proj"))'], points=1,
         hint="the projection's gradients use d = relu'(s) * dout, the same d as the branch"),
    case("(1, 2, 3, 1) input: every gradient matches central differences of the loss",
         'matches(outputs["numeric"], numeric(inputs), NAMES, rtol=1e-6, atol=1e-8)', points=1,
         hint="sum the weight and bias gradients over the batch and over every pixel"),
]

# %% [markdown]
# ## Question 3 (1 point): the identity shortcut
#
# Nothing new to write: make sure your two functions handle `w_proj=None`, where $s(x) = x$
# and the gradient of the sum reaches $x$ unchanged, $\partial L/\partial x = d + (\text{the
# branch's term})$. Worked by hand: if the branch's weights and biases are all zero, then
# $y = \mathrm{relu}(x)$ and $\partial L/\partial x = $ `dout` $\odot [x > 0]$ exactly.

# %%
# Self-check for question 3: zero branch, identity shortcut: dx = dout * (x > 0).
x_id = np.array([1.0, -2.0, 3.0]).reshape(1, 3, 1, 1)
zero_w1, zero_w2 = np.zeros((2, 3, 1, 1)), np.zeros((3, 2, 1, 1))
y_id, cache_id = residual_forward(x_id, zero_w1, np.zeros(2), zero_w2, np.zeros(3))
dx_id, *rest = residual_backward(np.array([0.5, 0.5, -1.0]).reshape(1, 3, 1, 1), cache_id)
assert np.allclose(y_id.ravel(), [1.0, 0.0, 3.0]) and np.allclose(dx_id.ravel(), [0.5, 0.0, -1.0])
assert rest[-2] is None and rest[-1] is None, "identity shortcut: dw_proj, db_proj should be None"
print("identity shortcut: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "identity_shortcut", "points": 1}
rng = hidden_rng(4203)  # keyed by the instructor's secret when grading
INPUTS = {
    "x": rng.normal(size=(2, 4, 2, 3)), "w1": rng.normal(size=(3, 4, 1, 1)), "b1": rng.normal(size=3),
    "w2": rng.normal(size=(4, 3, 1, 1)), "b2": rng.normal(size=4), "dout": rng.normal(size=(2, 4, 2, 3)),
}
IDENTITY = ("x", "w1", "b1", "w2", "b2")


def probe_identity_grads(inputs):
    _, cache = residual_forward(*(inputs[k] for k in ("x", "w1", "b1", "w2", "b2")))
    result = residual_backward(inputs["dout"], cache)
    grads = sandbox_grads(result)
    grads["projection_is_none"] = np.array(float(result[5] is None and result[6] is None))
    return grads


CASES = [
    case("(2, 4, 2, 3) input, identity shortcut: dx, dw1, db1, dw2, db2 match torch.autograd; no projection gradients",
         ['assert float(outputs["identity_grads"]["projection_is_none"]) == 1.0, "dw_proj, db_proj should be None"',
          'matches(outputs["identity_grads"], torch_gradients(torch_block, {k: inputs[k] for k in IDENTITY}, '
          'inputs["dout"])[1], IDENTITY)'],
         points=1, hint="the identity passes d to x as it is: dx = (branch term) + d"),
]
