# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 2.2: stochastic gradient descent with momentum
#
# *Chapter 2 (backpropagation).* Once backpropagation has produced a gradient $g$ for a
# parameter $p$, an optimiser turns it into a step. Plain gradient descent steps along $-g$.
# Momentum keeps a velocity $v$, a running sum of past gradients that decays by a factor $\mu$
# per step, and steps along it: consistent gradients add up and the step grows; gradients that
# flip sign cancel. You implement the heavy-ball step first, then one step of SGD exactly as
# `torch.optim.SGD` takes it, so that your optimiser and PyTorch's follow the same trajectory.
#
# **How to work.** Replace every `raise NotImplementedError` with your code, then run the whole
# notebook (Kernel → Restart & Run All). Each *self-check* cell ends by printing
# `... self-checks passed`. The grader runs other, hidden tests (other shapes and settings,
# compared with `torch.optim.SGD` step by step), so passing the self-checks is necessary, not
# sufficient. Use numpy only; keep the names and signatures, and do not modify the arrays you are
# given (return new ones).
#
# | question | what is graded | points |
# |---|---|---|
# | 1 | `momentum_step(param, grad, velocity, lr, momentum)` | 2 |
# | 2 | `sgd_step(...)` with weight decay and dampening | 2 |
# | 3 | `sgd_step(...)` with Nesterov momentum | 1 |

# %% tags=["grader"]
# Instructor only: everything in "grader" cells stays out of the student notebook.
EXERCISE = {"title": "Stochastic gradient descent with momentum", "chapter": 2}

import numpy as np
import torch

from dlbook.grading.helpers import case, close, tensor


def torch_trajectory(p0, grads, **hyper):
    """The parameter after each of len(grads) steps of torch.optim.SGD fed the given gradients."""
    p = torch.nn.Parameter(tensor(p0))
    optimizer = torch.optim.SGD([p], **hyper)
    path = []
    for g in grads:
        p.grad = tensor(g)
        optimizer.step()
        path.append(p.detach().clone().numpy())
    return np.stack(path)


def sandbox_run(step, p0, grads, **hyper):
    """Apply a student's step function to the gradient sequence (shipped into the sandbox)."""
    p, velocity, path = p0, None, []
    for g in grads:
        p, velocity = step(p, g, velocity, **hyper)
        path.append(np.asarray(p, dtype=float))
    return np.stack(path)

# %%
import numpy as np

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Question 1 (2 points): the heavy-ball step
#
# With learning rate $\eta$ and momentum $\mu$, one step from $(p_{t-1}, v_{t-1})$ with
# gradient $g_t$ is
#
# $$v_t = \mu\, v_{t-1} + g_t, \qquad p_t = p_{t-1} - \eta\, v_t,$$
#
# and on the first step, when there is no velocity yet (`velocity is None`), $v_1 = g_1$.
# Return `(new_param, new_velocity)`; the caller passes the velocity back in on the next step.

# %%
def momentum_step(param, grad, velocity, lr, momentum):
    """One heavy-ball step; returns (new_param, new_velocity). velocity is None on the first step."""
    # BEGIN SOLUTION
    v = grad.copy() if velocity is None else momentum * velocity + grad
    return param - lr * v, v
    # END SOLUTION


# %%
# Self-check for question 1, worked by hand: p = 1, gradient 1 at every step, lr = 1,
# momentum 0.5. v = 1, 1.5, 1.75 so p = 0, -1.5, -3.25.
p, v, path = np.array([1.0]), None, []
for _ in range(3):
    p, v = momentum_step(p, np.array([1.0]), v, lr=1.0, momentum=0.5)
    path.append(p[0])
assert np.allclose(path, [0.0, -1.5, -3.25]), f"trajectory {path}, expected [0, -1.5, -3.25]"
print("momentum_step: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "momentum_step", "points": 2}
rng = hidden_rng(2201)  # keyed by the instructor's secret when grading
INPUTS = {
    "p0": rng.normal(size=(3, 4)), "grads": rng.normal(size=(5, 3, 4)),
    # worked by hand, lr 0.5, momentum 0.5, per coordinate:
    # p0 = 2, gradients 1, -1, 2: v = 1, -0.5, 1.75 -> p = 1.5, 1.75, 0.875
    # p0 = -1, gradients 0, 2, 2: v = 0, 2, 3 -> p = -1, -2, -3.5
    "p0_hand": np.array([2.0, -1.0]), "grads_hand": np.array([[1.0, 0.0], [-1.0, 2.0], [2.0, 2.0]]),
}


def probe_random(inputs):
    return sandbox_run(momentum_step, inputs["p0"], inputs["grads"], lr=0.1, momentum=0.9)


def probe_hand(inputs):
    return sandbox_run(momentum_step, inputs["p0_hand"], inputs["grads_hand"], lr=0.5, momentum=0.5)


CASES = [
    case("5 steps on a (3, 4) parameter, lr 0.1, momentum 0.9, match torch.optim.SGD(momentum=0.9)",
         'close(outputs["random"], torch_trajectory(inputs["p0"], inputs["grads"], lr=0.1, momentum=0.9))',
         points=1, hint="v = momentum * v + g (v = g on the first step); p = p - lr * v"),
    case("the hand-worked run gives p = (1.5, -1), (1.75, -2), (0.875, -3.5)",
         'close(outputs["hand"], [[1.5, -1.0], [1.75, -2.0], [0.875, -3.5]])', points=1,
         hint="carry the velocity from one call to the next"),
]

# %% [markdown]
# ## Questions 2 and 3 (3 points): `torch.optim.SGD`'s step
#
# PyTorch's SGD adds three options to the heavy-ball step. With weight decay $\lambda$,
# dampening $\tau$ and the Nesterov flag:
#
# $$\begin{aligned}
# g_t &\leftarrow g_t + \lambda\, p_{t-1} && \text{(weight decay, an L2 penalty's gradient)}\\
# v_t &= \begin{cases} g_t & \text{first step (no dampening)}\\
#        \mu\, v_{t-1} + (1 - \tau)\, g_t & \text{afterwards} \end{cases}\\
# d_t &= \begin{cases} g_t + \mu\, v_t & \text{Nesterov}\\ v_t & \text{otherwise} \end{cases}\\
# p_t &= p_{t-1} - \eta\, d_t .
# \end{aligned}$$
#
# With $\mu = 0$ there is no velocity: $p_t = p_{t-1} - \eta\, g_t$, and the returned velocity
# is `None`. Question 2 grades runs with weight decay and dampening, question 3 runs with
# `nesterov=True`.

# %%
def sgd_step(param, grad, velocity, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """One torch.optim.SGD step; returns (new_param, new_velocity)."""
    # BEGIN SOLUTION
    g = grad + weight_decay * param if weight_decay != 0 else grad
    if momentum == 0:
        return param - lr * g, None
    v = g.copy() if velocity is None else momentum * velocity + (1.0 - dampening) * g
    direction = g + momentum * v if nesterov else v
    return param - lr * direction, v
    # END SOLUTION


# %%
# Self-checks for questions 2 and 3, worked by hand.
# weight decay alone: p = 2, g = 0, lambda = 0.5, lr = 0.1 -> p = 2 - 0.1 * 0.5 * 2 = 1.9
p1, v1 = sgd_step(np.array([2.0]), np.array([0.0]), None, lr=0.1, weight_decay=0.5)
assert np.allclose(p1, [1.9]) and v1 is None, (p1, v1)
# the first step takes the gradient as velocity, undamped; the second is damped:
# v = 2, then 0.9 * 2 + 0.5 * 2 = 2.8; p = -0.2, then -0.2 - 0.28 = -0.48
p2, v2 = sgd_step(np.array([0.0]), np.array([2.0]), None, lr=0.1, momentum=0.9, dampening=0.5)
assert np.allclose(v2, [2.0]) and np.allclose(p2, [-0.2]), (p2, v2)
p3, v3 = sgd_step(p2, np.array([2.0]), v2, lr=0.1, momentum=0.9, dampening=0.5)
assert np.allclose(v3, [2.8]) and np.allclose(p3, [-0.48]), (p3, v3)
# Nesterov, first step: v = g = 1, direction g + 0.9 v = 1.9, p = 0 - 0.1 * 1.9
p4, v4 = sgd_step(np.array([0.0]), np.array([1.0]), None, lr=0.1, momentum=0.9, nesterov=True)
assert np.allclose(p4, [-0.19]) and np.allclose(v4, [1.0]), (p4, v4)
print("sgd_step: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "weight_decay_dampening", "points": 2}
rng = hidden_rng(2202)  # keyed by the instructor's secret when grading
INPUTS = {
    "p0": rng.normal(size=5), "grads": rng.normal(size=(6, 5)),
    "p0_b": rng.normal(size=(2, 3)), "grads_b": rng.normal(size=(4, 2, 3)),
}
_A = dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)
_B = dict(lr=0.05, momentum=0.8, dampening=0.5, weight_decay=0.1)


def probe_a(inputs):
    return sandbox_run(sgd_step, inputs["p0"], inputs["grads"], lr=0.1, momentum=0.9, dampening=0.1,
                       weight_decay=0.01)


def probe_b(inputs):
    return sandbox_run(sgd_step, inputs["p0_b"], inputs["grads_b"], lr=0.05, momentum=0.8, dampening=0.5,
               weight_decay=0.1)


CASES = [
    case("6 steps, momentum 0.9, dampening 0.1, weight decay 0.01, match torch.optim.SGD",
         'close(outputs["a"], torch_trajectory(inputs["p0"], inputs["grads"], **_A))', points=1,
         hint="weight decay adds lambda * p to the gradient first; the first step is not dampened"),
    case("4 steps on (2, 3), momentum 0.8, dampening 0.5, weight decay 0.1, match torch.optim.SGD",
         'close(outputs["b"], torch_trajectory(inputs["p0_b"], inputs["grads_b"], **_B))', points=1,
         hint="v = momentum * v + (1 - dampening) * g after the first step"),
]

# %% tags=["grader"]
QUESTION = {"name": "nesterov", "points": 1}
rng = hidden_rng(2203)  # keyed by the instructor's secret when grading
INPUTS = {"p0": rng.normal(size=4), "grads": rng.normal(size=(5, 4))}


def probe_nesterov(inputs):
    return sandbox_run(sgd_step, inputs["p0"], inputs["grads"], lr=0.1, momentum=0.9, nesterov=True)


CASES = [
    case("5 Nesterov steps, lr 0.1, momentum 0.9, match torch.optim.SGD(nesterov=True)",
         'close(outputs["nesterov"], torch_trajectory(inputs["p0"], inputs["grads"], lr=0.1, momentum=0.9, '
         'nesterov=True))', points=1, hint="Nesterov steps along g + momentum * v, not v"),
]
