# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 5.2: backpropagation through time, and clipping by norm
#
# *Chapter 5 (Recurrent networks and LSTM).* A small recurrent network reads a sequence `x`
# (T, N, D) from the state `h0` (N, H) and predicts a number at every step:
#
# $$
# h_t = f(x_t W_{ih}^\top + h_{t-1} W_{hh}^\top + b), \qquad
# o_t = h_t w_o + c, \qquad
# L = \frac{1}{2N} \sum_{t=1}^{T} \sum_{n=1}^{N} (o_{t,n} - y_{t,n})^2 ,
# $$
#
# with `weight_ih` (H, D), `weight_hh` (H, H), one bias `bias` (H,), a read-out vector `w_o`
# (H,), a scalar read-out bias `c` and targets `y` (T, N). The non-linearity $f$ is `"tanh"`
# or `"relu"` (ReLU'(0) = 0, as PyTorch). Note the loss: summed over the steps, averaged over
# the batch.
#
# **How to work.** Replace every `raise NotImplementedError` with your code, then run the whole
# notebook (Kernel → Restart & Run All). Each *self-check* cell ends by printing
# `... self-checks passed`. The grader runs other, hidden tests (other shapes, both
# non-linearities, compared with PyTorch in float64 and with central differences), so passing
# the self-checks is necessary, not sufficient. Use numpy only; keep the names and
# signatures; do not modify the arguments.
#
# | question | function | points |
# |---|---|---|
# | 1 | `rnn_loss(params, x, y, nonlinearity)` | 1 |
# | 2 | `rnn_bptt(params, x, y, nonlinearity)` | 4 |
# | 3 | `clip_by_norm(grads, max_norm)` | 2 |

# %% tags=["grader"]
# Instructor only: everything in "grader" cells stays out of the student notebook.
EXERCISE = {"title": "Backpropagation through time, and clipping by norm", "chapter": 5}

import numpy as np
import torch

from dlbook.grading.helpers import all_of, case, central_difference, close, tensor

PARAM_NAMES = ("h0", "weight_ih", "weight_hh", "bias", "w_o", "c")


def random_problem(prefix, rng, T, N, D, H, scale=0.5):
    """Flat hidden inputs of one problem: prefix_x, prefix_y and prefix_<parameter>."""
    values = {"x": rng.normal(size=(T, N, D)), "y": rng.normal(size=(T, N)),
              "h0": rng.normal(size=(N, H)), "weight_ih": scale * rng.normal(size=(H, D)),
              "weight_hh": scale * rng.normal(size=(H, H)), "bias": scale * rng.normal(size=H),
              "w_o": rng.normal(size=H), "c": np.array(0.3)}
    return {f"{prefix}_{k}": v for k, v in values.items()}


def torch_loss(inputs, prefix, nonlinearity, **override):
    """The loss in torch float64; returns (loss, tensors of the parameters) for autograd."""
    params = {k: tensor(override.get(k, inputs[f"{prefix}_{k}"]), requires_grad=True)
              for k in PARAM_NAMES}
    f = torch.tanh if nonlinearity == "tanh" else torch.relu
    h, loss = params["h0"], 0
    x, y = tensor(inputs[f"{prefix}_x"]), tensor(inputs[f"{prefix}_y"])
    for t in range(x.shape[0]):
        h = f(x[t] @ params["weight_ih"].T + h @ params["weight_hh"].T + params["bias"])
        loss = loss + 0.5 * ((h @ params["w_o"] + params["c"] - y[t]) ** 2).sum() / x.shape[1]
    return loss, params


def torch_grads(inputs, prefix, nonlinearity):
    loss, params = torch_loss(inputs, prefix, nonlinearity)
    loss.backward()
    return {k: p.grad.numpy() for k, p in params.items()}


def match(got, want, names=PARAM_NAMES, **tol):
    return all_of(*(close(got[k], want[k], **tol) for k in names))

# %%
import numpy as np

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Question 1 (1 point): the loss
#
# `params` is a dict with the keys `h0`, `weight_ih`, `weight_hh`, `bias`, `w_o`, `c`. Return
# the loss $L$ as a float.

# %%
def rnn_loss(params, x, y, nonlinearity="tanh"):
    """L = 1/(2N) sum_t sum_n (o_tn - y_tn)^2 for the network above."""
    # BEGIN SOLUTION
    f = np.tanh if nonlinearity == "tanh" else (lambda a: np.maximum(a, 0.0))
    h, loss = params["h0"], 0.0
    for t in range(x.shape[0]):
        h = f(x[t] @ params["weight_ih"].T + h @ params["weight_hh"].T + params["bias"])
        o = h @ params["w_o"] + params["c"]  # (N,)
        loss += 0.5 * np.sum((o - y[t]) ** 2) / x.shape[1]
    return float(loss)
    # END SOLUTION


# %%
# Self-check for question 1: the deep-learning textbook chapter's two-step example (states
# (0.53704957, 0.46211716), (0.85973818, 0.88366641); outputs 1.56128388, 2.72707101) with
# targets 1.5 and 2.5: L = ((0.06128388)^2 + (0.22707101)^2) / 2 = 0.027658478.
example = {"h0": np.zeros((1, 2)), "weight_ih": np.array([[0.5], [0.6]]),
           "weight_hh": np.array([[0.1, 0.3], [0.2, 0.4]]), "bias": np.array([0.1, -0.1]),
           "w_o": np.array([1.0, 2.0]), "c": 0.1}
x_example, y_example = np.array([1.0, 2.0]).reshape(2, 1, 1), np.array([[1.5], [2.5]])
assert np.isclose(rnn_loss(example, x_example, y_example), 0.027658478, atol=1e-9)
# with ReLU every pre-activation of the example is positive: the states are the
# pre-activations, (0.6, 0.5) and then (1.31, 1.42), outputs 1.7 and 4.25
assert np.isclose(rnn_loss(example, x_example, y_example, "relu"),
                  0.5 * ((1.7 - 1.5) ** 2 + (4.25 - 2.5) ** 2), atol=1e-9)
print("rnn_loss: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "rnn_loss", "points": 1}
rng = hidden_rng(5201)  # keyed by the instructor's secret when grading
INPUTS = {**random_problem("a", rng, 5, 3, 4, 6), **random_problem("b", rng, 3, 4, 2, 5)}


def sandbox_params(inputs, prefix):
    return {k: inputs[f"{prefix}_{k}"] for k in ("h0", "weight_ih", "weight_hh", "bias", "w_o")} | {
        "c": float(inputs[f"{prefix}_c"])}


def probe_tanh(inputs):
    return np.array(rnn_loss(sandbox_params(inputs, "a"), inputs["a_x"], inputs["a_y"], "tanh"))


def probe_relu(inputs):
    return np.array(rnn_loss(sandbox_params(inputs, "b"), inputs["b_x"], inputs["b_y"], "relu"))


CASES = [
    case("T = 5, N = 3, tanh and T = 3, N = 4, relu: L matches torch",
         ['first = close(outputs["tanh"], torch_loss(inputs, "a", "tanh")[0].item())',
          'all_of(first, close(outputs["relu"], torch_loss(inputs, "b", "relu")[0].item()))'],
         points=1, hint="sum the squared errors over the steps, average over the batch (divide by N)"),
]

# %% [markdown]
# ## Question 2 (4 points): backpropagation through time
#
# Return a dict with the gradient of $L$ with respect to each of the six parameters, under
# the same keys (`"c"` as a float or a 0-d array), each with its parameter's shape. Run the
# forward pass keeping every state, then walk backwards from $t = T$: the gradient on $h_t$
# is what its own output sends, $(o_t - y_t)\, w_o^\top / N$, plus what step $t + 1$ sends
# back through $W_{hh}$. The shared weights collect one term per step.

# %%
def rnn_bptt(params, x, y, nonlinearity="tanh"):
    """The gradients of rnn_loss with respect to h0, weight_ih, weight_hh, bias, w_o and c."""
    # BEGIN SOLUTION
    f = np.tanh if nonlinearity == "tanh" else (lambda a: np.maximum(a, 0.0))
    steps, n = x.shape[0], x.shape[1]
    hs = [params["h0"]]
    for t in range(steps):
        a = x[t] @ params["weight_ih"].T + hs[-1] @ params["weight_hh"].T + params["bias"]
        hs.append(f(a))
    grads = {k: np.zeros_like(np.asarray(params[k], dtype=np.float64)) for k in params}
    dh_next = np.zeros_like(params["h0"])
    for t in reversed(range(steps)):
        h = hs[t + 1]
        do = (h @ params["w_o"] + params["c"] - y[t]) / n  # (N,)
        grads["w_o"] += h.T @ do
        grads["c"] += do.sum()
        dh = np.outer(do, params["w_o"]) + dh_next  # (N, H)
        da = dh * (1 - h ** 2) if nonlinearity == "tanh" else dh * (h > 0)
        grads["weight_ih"] += da.T @ x[t]
        grads["weight_hh"] += da.T @ hs[t]
        grads["bias"] += da.sum(axis=0)
        dh_next = da @ params["weight_hh"]
    grads["h0"] = dh_next
    return grads
    # END SOLUTION


# %%
# Self-check for question 2, on the worked example: dL/dbias = (0.12121749, 0.24119192),
# dL/dc = 0.28835490 (checked against central differences when this exercise was written),
# and central differences of your rnn_loss on weight_hh.
grads = rnn_bptt(example, x_example, y_example)
for key in ("h0", "weight_ih", "weight_hh", "bias", "w_o"):
    assert np.shape(grads[key]) == np.shape(example[key]), f"{key}: shape {np.shape(grads[key])}"
assert np.allclose(grads["bias"], [0.12121749, 0.24119192], atol=1e-8), grads["bias"]
assert np.isclose(float(grads["c"]), 0.28835490, atol=1e-8), grads["c"]
for i in range(2):
    for j in range(2):
        plus = {k: np.array(v, dtype=float) for k, v in example.items()}
        minus = {k: np.array(v, dtype=float) for k, v in example.items()}
        plus["weight_hh"][i, j] += 1e-6
        minus["weight_hh"][i, j] -= 1e-6
        numeric = (rnn_loss(plus, x_example, y_example)
                   - rnn_loss(minus, x_example, y_example)) / 2e-6
        assert np.isclose(grads["weight_hh"][i, j], numeric, rtol=1e-5, atol=1e-9), (i, j)
print("rnn_bptt: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "rnn_bptt", "points": 4}
rng = hidden_rng(5202)  # keyed by the instructor's secret when grading
INPUTS = {**random_problem("a", rng, 6, 3, 4, 5), **random_problem("b", rng, 4, 2, 3, 4),
          **random_problem("n", rng, 3, 2, 2, 3)}


def sandbox_grad_arrays(grads):
    return {k: np.asarray(grads[k], dtype=np.float64)
            for k in ("h0", "weight_ih", "weight_hh", "bias", "w_o", "c")}


def probe_tanh(inputs):
    return sandbox_grad_arrays(rnn_bptt(sandbox_params(inputs, "a"), inputs["a_x"], inputs["a_y"], "tanh"))


def probe_relu(inputs):
    return sandbox_grad_arrays(rnn_bptt(sandbox_params(inputs, "b"), inputs["b_x"], inputs["b_y"], "relu"))


def probe_numeric(inputs):
    return sandbox_grad_arrays(rnn_bptt(sandbox_params(inputs, "n"), inputs["n_x"], inputs["n_y"], "tanh"))


def numeric(inputs, prefix, nonlinearity):
    def loss(name):
        return lambda v: torch_loss(inputs, prefix, nonlinearity, **{name: v})[0].item()
    return {k: central_difference(loss(k), inputs[f"{prefix}_{k}"]) for k in PARAM_NAMES}


CASES = [
    case("T = 6, N = 3, D = 4, H = 5, tanh: dweight_hh, dbias, dh0 match torch.autograd",
         'match(outputs["tanh"], torch_grads(inputs, "a", "tanh"), ("weight_hh", "bias", "h0"))',
         points=1, hint="the gradient on h_t adds what step t + 1 sends back: da_{t+1} W_hh"),
    case("T = 6, N = 3, D = 4, H = 5, tanh: dweight_ih, dw_o, dc match torch.autograd",
         'match(outputs["tanh"], torch_grads(inputs, "a", "tanh"), ("weight_ih", "w_o", "c"))',
         points=1, hint="the read-out's gradients are sums over steps and examples, divided by N"),
    case("T = 4, N = 2, D = 3, H = 4, relu: all six gradients match torch.autograd",
         'match(outputs["relu"], torch_grads(inputs, "b", "relu"))',
         points=1, hint="relu'(a) is 1 where the state is positive and 0 elsewhere"),
    case("T = 3, N = 2, D = 2, H = 3, tanh: all six gradients match central differences",
         'match(outputs["numeric"], numeric(inputs, "n", "tanh"), rtol=1e-6, atol=1e-8)',
         points=1, hint="every parameter needs its own gradient, with its own shape"),
]

# %% [markdown]
# ## Question 3 (2 points): clipping by the global norm
#
# Return `(clipped, total_norm)`: `total_norm` is the 2-norm of all the gradients together, as
# one long vector; `clipped` is a new dict (do not modify `grads`) in which every gradient is
# multiplied by `min(1, max_norm / (total_norm + 1e-6))`, the rule of
# `torch.nn.utils.clip_grad_norm_`.

# %%
def clip_by_norm(grads, max_norm):
    """Scale all gradients by one factor so that their joint 2-norm is at most max_norm."""
    # BEGIN SOLUTION
    squares = sum(np.sum(np.asarray(g, dtype=np.float64) ** 2) for g in grads.values())
    total = float(np.sqrt(squares))
    coef = min(1.0, max_norm / (total + 1e-6))
    return {k: np.asarray(g, dtype=np.float64) * coef for k, g in grads.items()}, total
    # END SOLUTION


# %%
# Self-check for question 3: gradients (3, 4) and (12,) have total norm 13.
demo = {"a": np.array([3.0, 4.0]), "b": np.array([12.0])}
clipped, total = clip_by_norm(demo, 6.5)
assert np.isclose(total, 13.0), total
assert np.allclose(clipped["a"], [1.5, 2.0], atol=1e-6)
assert np.allclose(clipped["b"], [6.0], atol=1e-6)
assert np.allclose(demo["a"], [3.0, 4.0]), "clip_by_norm must not modify its argument"
clipped, _ = clip_by_norm(demo, 100.0)
assert np.allclose(clipped["a"], [3.0, 4.0]) and np.allclose(clipped["b"], [12.0])
print("clip_by_norm: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "clip_by_norm", "points": 2}
rng = hidden_rng(5203)  # keyed by the instructor's secret when grading
INPUTS = {"g1": 3 * rng.normal(size=(4, 5)), "g2": 3 * rng.normal(size=7), "g3": rng.normal(size=(2, 3, 2))}


def probe_big(inputs):
    grads = {k: inputs[k] for k in ("g1", "g2", "g3")}
    copies = {k: v.copy() for k, v in grads.items()}
    clipped, total = clip_by_norm(grads, 2.0)
    unchanged = all(np.array_equal(grads[k], copies[k]) for k in grads)
    return {"g1": np.asarray(clipped["g1"], dtype=np.float64), "g2": np.asarray(clipped["g2"], dtype=np.float64),
            "g3": np.asarray(clipped["g3"], dtype=np.float64), "total": np.array(float(total)),
            "unchanged": np.array(float(unchanged))}


def probe_small(inputs):
    grads = {"g3": inputs["g3"] * 1e-3}
    clipped, total = clip_by_norm(grads, 2.0)
    return {"g3": np.asarray(clipped["g3"], dtype=np.float64), "total": np.array(float(total))}


def torch_clip(arrays, max_norm):
    params = [torch.nn.Parameter(tensor(a)) for a in arrays]
    for p, a in zip(params, arrays):
        p.grad = tensor(a)
    total = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return [p.grad.numpy() for p in params], total.item()


def check_big(out, inputs):
    clipped, total = torch_clip([inputs["g1"], inputs["g2"], inputs["g3"]], 2.0)
    return all_of(close(out["total"], total), close(out["g1"], clipped[0]),
                  close(out["g2"], clipped[1]), close(out["g3"], clipped[2]),
                  close(out["unchanged"], 1.0))


def check_small(out, inputs):
    clipped, total = torch_clip([inputs["g3"] * 1e-3], 2.0)
    return all_of(close(out["total"], total), close(out["g3"], clipped[0]))


CASES = [
    case("three gradients of total norm above 2, max_norm 2: equals torch's clip_grad_norm_, input unmodified",
         'check_big(outputs["big"], inputs)', points=1,
         hint="one norm over all arrays together; the factor max_norm / (total + 1e-6); return new arrays"),
    case("a gradient already shorter than max_norm is returned unchanged, with its norm",
         'check_small(outputs["small"], inputs)', points=1,
         hint="the factor is clamped at 1"),
]
