# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 5.1: a GRU cell, forward and backward
#
# *Chapter 5 (Recurrent networks and LSTM).* The gated recurrent unit reads an input `x`
# (N, D) and the previous state `h_prev` (N, H) and computes, in PyTorch's form (gate order
# r, z, n, as `torch.nn.GRUCell`):
#
# $$
# \begin{aligned}
# r &= \sigma(x W_{ir}^\top + b_{ir} + h_\text{prev} W_{hr}^\top + b_{hr}) && \text{reset gate}\\
# z &= \sigma(x W_{iz}^\top + b_{iz} + h_\text{prev} W_{hz}^\top + b_{hz}) && \text{update gate}\\
# n &= \tanh\!\big(x W_{in}^\top + b_{in} + r \odot (h_\text{prev} W_{hn}^\top + b_{hn})\big) && \text{candidate}\\
# h_\text{next} &= (1 - z) \odot n + z \odot h_\text{prev}
# \end{aligned}
# $$
#
# `weight_ih` (3H, D) stacks $W_{ir}, W_{iz}, W_{in}$ row-block by row-block, `weight_hh`
# (3H, H) stacks $W_{hr}, W_{hz}, W_{hn}$, and `bias_ih`, `bias_hh` (3H,) likewise. Note where
# the reset gate acts: on the recurrent product *and its bias* $b_{hn}$, not on $b_{in}$.
#
# **How to work.** Replace every `raise NotImplementedError` with your code, then run the whole
# notebook (Kernel → Restart & Run All). Each *self-check* cell ends by printing
# `... self-checks passed`. The grader runs other, hidden tests (other shapes, compared with
# PyTorch in float64 and with central differences), so passing the self-checks is necessary,
# not sufficient. Use numpy only; keep the names and signatures; do not modify the arguments.
#
# | question | function | points |
# |---|---|---|
# | 1 | `gru_cell_forward(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)` | 2 |
# | 2 | `gru_cell_backward(dh_next, cache)` | 4 |

# %% tags=["grader"]
# Instructor only: everything in "grader" cells stays out of the student notebook.
EXERCISE = {"title": "A GRU cell, forward and backward", "chapter": 5}

import numpy as np
import torch

from dlbook.grading.helpers import all_of, case, central_difference, close, tensor, torch_gradients


def torch_cell(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    """The function torch.nn.GRUCell computes (torch.gru_cell), differentiable in every input."""
    return torch.gru_cell(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)


NAMES = ("x", "h_prev", "weight_ih", "weight_hh", "bias_ih", "bias_hh")


def cell_inputs(prefix, rng, n, d, h, scale=0.6):
    """Hidden inputs of one GRU cell, flat: {prefix + "_x": ..., prefix + "_h_prev": ..., ...}."""
    values = (rng.normal(size=(n, d)), rng.normal(size=(n, h)),
              scale * rng.normal(size=(3 * h, d)), scale * rng.normal(size=(3 * h, h)),
              scale * rng.normal(size=3 * h), scale * rng.normal(size=3 * h))
    return {f"{prefix}_{name}": value for name, value in zip(NAMES, values)}


def cell(inputs, prefix):
    """The six arguments of one cell from the flat inputs, in order."""
    return [inputs[f"{prefix}_{name}"] for name in NAMES]


def sandbox_cell(inputs, prefix):
    """The same, inside the sandbox (probes see only np, inputs and sandbox_ helpers)."""
    return [inputs[f"{prefix}_{name}"]
            for name in ("x", "h_prev", "weight_ih", "weight_hh", "bias_ih", "bias_hh")]

# %%
import numpy as np

np.set_printoptions(precision=4, suppress=True)


def sigmoid(a):
    """The logistic function, computed without overflow for large |a|."""
    return np.exp(-np.logaddexp(0.0, -a))

# %% [markdown]
# ## Question 1 (2 points): the forward pass
#
# Return `h_next` (N, H) and a `cache` holding what your backward pass needs.

# %%
def gru_cell_forward(x, h_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    """One GRU step; returns (h_next, cache). Matches torch.nn.GRUCell."""
    # BEGIN SOLUTION
    gi = x @ weight_ih.T + bias_ih  # (N, 3H)
    gh = h_prev @ weight_hh.T + bias_hh  # (N, 3H)
    i_r, i_z, i_n = np.split(gi, 3, axis=1)
    h_r, h_z, h_n = np.split(gh, 3, axis=1)
    r = sigmoid(i_r + h_r)
    z = sigmoid(i_z + h_z)
    n = np.tanh(i_n + r * h_n)
    h_next = (1 - z) * n + z * h_prev
    return h_next, (x, h_prev, weight_ih, weight_hh, r, z, n, h_n)
    # END SOLUTION


# %%
# Self-check for question 1, worked by hand: with all weights and biases zero, r = z = 1/2 and
# n = tanh(0) = 0, so h_next = h_prev / 2.
h_demo = np.array([[1.0, -2.0]])
zeros = {"weight_ih": np.zeros((6, 3)), "weight_hh": np.zeros((6, 2)),
         "bias_ih": np.zeros(6), "bias_hh": np.zeros(6)}
h_next, _ = gru_cell_forward(np.ones((1, 3)), h_demo, **zeros)
assert h_next.shape == (1, 2), f"shape {h_next.shape}, expected (1, 2)"
assert np.allclose(h_next, [[0.5, -1.0]]), h_next
# a large update-gate bias (rows H..2H of bias_ih) keeps the state: z = 1, h_next = h_prev
keep = dict(zeros, bias_ih=np.array([0.0, 0.0, 50.0, 50.0, 0.0, 0.0]))
h_next, _ = gru_cell_forward(np.ones((1, 3)), h_demo, **keep)
assert np.allclose(h_next, h_demo), h_next
# a large negative one writes the candidate: z = 0, h_next = n = tanh(b_in)
write = dict(zeros, bias_ih=np.array([0.0, 0.0, -50.0, -50.0, 0.3, -0.2]))
h_next, _ = gru_cell_forward(np.ones((1, 3)), h_demo, **write)
assert np.allclose(h_next, np.tanh([[0.3, -0.2]])), h_next
print("gru_cell_forward: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "gru_cell_forward", "points": 2}
rng = hidden_rng(5101)  # keyed by the instructor's secret when grading
INPUTS = {**cell_inputs("small", rng, 3, 4, 5), **cell_inputs("wide", rng, 2, 7, 9, scale=1.5)}
# worked by hand: weights zero, bias_hh's candidate block b_hn = 1 is multiplied by r = 1/2,
# so n = tanh(b_in + 0.5); with b_in = 0.5, n = tanh(1) and h_next = (tanh(1) + h_prev) / 2
INPUTS.update({"hand_x": np.ones((1, 2)), "hand_h_prev": np.array([[0.4, -0.6, 0.1]]),
               "hand_weight_ih": np.zeros((9, 2)), "hand_weight_hh": np.zeros((9, 3)),
               "hand_bias_ih": np.array([0.0] * 6 + [0.5] * 3),
               "hand_bias_hh": np.array([0.0] * 6 + [1.0] * 3)})
HAND_H = (np.tanh(1.0) + np.array([[0.4, -0.6, 0.1]])) / 2


def probe_small(inputs):
    return gru_cell_forward(*sandbox_cell(inputs, "small"))[0]


def probe_wide(inputs):
    return gru_cell_forward(*sandbox_cell(inputs, "wide"))[0]


def probe_hand(inputs):
    return gru_cell_forward(*sandbox_cell(inputs, "hand"))[0]


def torch_forward(inputs, prefix):
    return torch_cell(*(tensor(v) for v in cell(inputs, prefix)))


CASES = [
    case("N = 3, D = 4, H = 5: h_next matches torch.nn.GRUCell",
         'close(outputs["small"], torch_forward(inputs, "small"))', points=1,
         hint="split the (N, 3H) products into r, z, n blocks in that order"),
    case("N = 2, D = 7, H = 9, large weights; and the hand-worked reset of b_hn",
         ['first = close(outputs["wide"], torch_forward(inputs, "wide"))',
          'all_of(first, close(outputs["hand"], HAND_H))'], points=1,
         hint="the reset gate multiplies (h_prev W_hn^T + b_hn), bias included; "
              "compute the sigmoid without overflow"),
]

# %% [markdown]
# ## Question 2 (4 points): the backward pass
#
# Given `dh_next` = ∂L/∂h_next (N, H) and your cache, return the gradients
# `(dx, dh_prev, dweight_ih, dweight_hh, dbias_ih, dbias_hh)`, each with the shape of its
# argument. Work backwards through the four equations one at a time: first the gradients on
# z, n and (directly) h_prev from the last line, then through tanh to the candidate's
# pre-activation, through r, and through the two sigmoids. Remember that h_prev reaches
# h_next along four paths (directly, and through r, z and n). Do not modify `dh_next`.

# %%
def gru_cell_backward(dh_next, cache):
    """Gradients of one GRU step: (dx, dh_prev, dweight_ih, dweight_hh, dbias_ih, dbias_hh)."""
    # BEGIN SOLUTION
    x, h_prev, weight_ih, weight_hh, r, z, n, h_n = cache
    dn = dh_next * (1 - z)
    dz = dh_next * (h_prev - n)
    da_n = dn * (1 - n ** 2)  # pre-activation of the candidate
    dr = da_n * h_n
    da_r = dr * r * (1 - r)
    da_z = dz * z * (1 - z)
    dgi = np.concatenate([da_r, da_z, da_n], axis=1)  # (N, 3H): gradient on x W_ih^T + b_ih
    dgh = np.concatenate([da_r, da_z, da_n * r], axis=1)  # gradient on h_prev W_hh^T + b_hh
    dx = dgi @ weight_ih
    dh_prev = dh_next * z + dgh @ weight_hh
    return dx, dh_prev, dgi.T @ x, dgh.T @ h_prev, dgi.sum(axis=0), dgh.sum(axis=0)
    # END SOLUTION


# %%
# Self-check for question 2. With all weights and biases zero, h_next = h_prev / 2 and the
# gradient reaching h_prev is dh_next / 2 (through z = 1/2; the other paths carry W = 0).
x_demo = np.ones((1, 3))
h_next, cache = gru_cell_forward(x_demo, h_demo, **zeros)
grads = gru_cell_backward(np.ones((1, 2)), cache)
assert len(grads) == 6, "return six gradients"
shapes = [(1, 3), (1, 2), (6, 3), (6, 2), (6,), (6,)]
for name, g, shape in zip(["dx", "dh_prev", "dweight_ih", "dweight_hh", "dbias_ih", "dbias_hh"],
                          grads, shapes):
    assert np.shape(g) == shape, f"{name}: shape {np.shape(g)}, expected {shape}"
assert np.allclose(grads[1], [[0.5, 0.5]]), grads[1]
# central differences on the update-gate bias, for a random cell and L = sum(h_next * g)
rng_demo = np.random.default_rng(0)
args = [rng_demo.normal(size=s) for s in [(2, 3), (2, 2), (6, 3), (6, 2), (6,), (6,)]]
g_up = rng_demo.normal(size=(2, 2))
_, cache = gru_cell_forward(*args)
dbias_ih = gru_cell_backward(g_up, cache)[4]
for k in range(6):
    plus, minus = [a.copy() for a in args], [a.copy() for a in args]
    plus[4][k] += 1e-6
    minus[4][k] -= 1e-6
    numeric = (np.sum(gru_cell_forward(*plus)[0] * g_up)
               - np.sum(gru_cell_forward(*minus)[0] * g_up)) / 2e-6
    assert np.isclose(dbias_ih[k], numeric, rtol=1e-5, atol=1e-8), (k, dbias_ih[k], numeric)
print("gru_cell_backward: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "gru_cell_backward", "points": 4}
rng = hidden_rng(5102)  # keyed by the instructor's secret when grading
INPUTS = {**cell_inputs("small", rng, 3, 4, 5), "dh_small": rng.normal(size=(3, 5)),
          **cell_inputs("odd", rng, 1, 6, 3, scale=1.2), "dh_odd": rng.normal(size=(1, 3)),
          **cell_inputs("numeric", rng, 2, 3, 3), "dh_numeric": rng.normal(size=(2, 3))}
GRAD_NAMES = ("dx", "dh_prev", "dweight_ih", "dweight_hh", "dbias_ih", "dbias_hh")


def sandbox_grads(values, dh):
    """The student's six gradients, as a dict of arrays (also checks dh is left unmodified)."""
    dh_copy = dh.copy()
    _, cache = gru_cell_forward(*values)
    grads = gru_cell_backward(dh, cache)
    result = {name: np.asarray(g, dtype=np.float64) for name, g in zip(
        ("dx", "dh_prev", "dweight_ih", "dweight_hh", "dbias_ih", "dbias_hh"), grads)}
    result["dh_unchanged"] = np.array(float(np.array_equal(dh, dh_copy)))
    return result


def probe_small(inputs):
    return sandbox_grads(sandbox_cell(inputs, "small"), inputs["dh_small"])


def probe_odd(inputs):
    return sandbox_grads(sandbox_cell(inputs, "odd"), inputs["dh_odd"])


def probe_numeric(inputs):
    return sandbox_grads(sandbox_cell(inputs, "numeric"), inputs["dh_numeric"])


def autograd(inputs, prefix):
    values = dict(zip(NAMES, cell(inputs, prefix)))
    grads = torch_gradients(torch_cell, values, inputs[f"dh_{prefix}"])[1]
    return dict(zip(GRAD_NAMES, (grads[k] for k in NAMES)))


def match(got, want, names):
    return all_of(*(close(got[name], want[name]) for name in names))


def numeric_gradients(inputs, prefix):
    values, dh = dict(zip(NAMES, cell(inputs, prefix))), inputs[f"dh_{prefix}"]

    def loss(name):
        def f(v):
            args = {k: tensor(values[k]) for k in NAMES}
            args[name] = tensor(v)
            return float((torch_cell(*(args[k] for k in NAMES)) * tensor(dh)).sum())
        return f
    return {g: central_difference(loss(k), values[k]) for g, k in zip(GRAD_NAMES, NAMES)}


def match_numeric(got, inputs, prefix):
    want = numeric_gradients(inputs, prefix)
    return all_of(*(close(got[g], want[g], rtol=1e-6, atol=1e-8) for g in GRAD_NAMES))


CASES = [
    case("N = 3, D = 4, H = 5: dx and dh_prev match torch.autograd (random upstream gradient)",
         'match(outputs["small"], autograd(inputs, "small"), ("dx", "dh_prev"))',
         points=1, hint="h_prev reaches h_next four ways: directly (times z) and through r, z, n"),
    case("N = 3, D = 4, H = 5: the weight and bias gradients match torch.autograd",
         'match(outputs["small"], autograd(inputs, "small"), '
         '("dweight_ih", "dweight_hh", "dbias_ih", "dbias_hh"))',
         points=1, hint="the candidate block of dbias_hh carries the factor r; of dbias_ih it does not"),
    case("N = 1, D = 6, H = 3, large weights: all six gradients match torch.autograd, dh_next unmodified",
         ['first = match(outputs["odd"], autograd(inputs, "odd"), GRAD_NAMES)',
          'all_of(first, close(outputs["odd"]["dh_unchanged"], 1.0))'],
         points=1, hint="keep the gate order r, z, n in the stacked gradients; never write into dh_next"),
    case("N = 2, D = 3, H = 3: all six gradients match central differences of sum(h_next * g)",
         'match_numeric(outputs["numeric"], inputs, "numeric")',
         points=1, hint="differentiate the sigmoid as s(1 - s) and tanh as 1 - t^2"),
]
