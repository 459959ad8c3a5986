# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 7.7: Adam, AdamW and Adamax
#
# *Chapter 7 (training in practice).* Adam keeps, for every parameter, a running average $m$ of
# its gradients and a running average $v$ of their squares, corrects both for starting at zero,
# and steps along $\hat m / (\sqrt{\hat v} + \epsilon)$. You write its step as a function that
# takes the state and returns the new state, then two relatives: AdamW, whose weight decay
# shrinks the parameter directly, and Adamax, the variant of the Adam paper that replaces the
# root of the squared-gradient average by a running maximum. Each is graded against
# `torch.optim` step for step.
#
# **How to work.** Replace every `raise NotImplementedError` with your code, then run the whole
# notebook (Kernel → Restart & Run All). Each *self-check* cell ends by printing
# `... self-checks passed`. The grader runs other, hidden tests (other shapes, settings and
# gradients, compared with `torch.optim.Adam`, `AdamW` and `Adamax` over several steps), so
# passing the self-checks is necessary, not sufficient. Use numpy only; keep the names and
# signatures, compute in float64, and do not modify the arrays you are given (return new ones).
#
# | question | what is graded | points |
# |---|---|---|
# | 1 | `adam_step(param, grad, m, v, t, lr, betas, eps, weight_decay)` | 3 |
# | 2 | `adamw_step(...)`: decoupled weight decay | 2 |
# | 3 | `adamax_step(param, grad, m, u, t, lr, betas, eps)` | 2 |

# %% tags=["grader"]
# Instructor only: everything in "grader" cells stays out of the student notebook.
EXERCISE = {"title": "Adam, AdamW and Adamax", "chapter": 7}

import numpy as np
import torch

from dlbook.grading.helpers import all_of, case, close, equal, tensor


def torch_trajectory(optimizer_class, p0, grads, **hyper):
    """The parameter after each of len(grads) steps of a torch.optim optimizer fed the gradients."""
    p = torch.nn.Parameter(tensor(p0))
    optimizer = optimizer_class([p], **hyper)
    path = []
    for g in grads:
        p.grad = tensor(g)
        optimizer.step()
        path.append(p.detach().clone().numpy())
    return np.stack(path)


def sandbox_run(step, p0, grads, **hyper):
    """Apply a student's step function to a gradient sequence, carrying the state along."""
    p = np.array(p0, dtype=float)
    first, second = np.zeros_like(p), np.zeros_like(p)
    path = []
    for t, g in enumerate(grads, start=1):
        p, first, second = step(p, g, first, second, t, **hyper)
        path.append(np.asarray(p, dtype=float))
    return np.stack(path)


def sandbox_unmodified(step, p0, grads, **hyper):
    """1.0 if one step leaves its array arguments as they were, else 0.0."""
    p, g = np.array(p0, dtype=float), np.array(grads[0], dtype=float)
    first, second = 0.5 * g, g * g
    copies = [a.copy() for a in (p, g, first, second)]
    step(p, g, first, second, 2, **hyper)
    return np.array(float(all(np.array_equal(a, b) for a, b in zip((p, g, first, second), copies))))

# %%
import numpy as np

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Question 1 (3 points): Adam's step
#
# At step $t = 1, 2, \dots$, with gradient $g_t$ of parameter $p$, learning rate $\eta$, decays
# $\beta_1, \beta_2$, a small $\epsilon$ and weight decay $\lambda$ (an L2 penalty, added to the
# gradient as `torch.optim.Adam` does):
#
# $$\begin{aligned}
# g &\leftarrow g_t + \lambda\, p_{t-1}, \qquad
# m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g, \qquad
# v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g^2, \\
# \hat m_t &= \frac{m_t}{1 - \beta_1^t}, \qquad \hat v_t = \frac{v_t}{1 - \beta_2^t}, \qquad
# p_t = p_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon},
# \end{aligned}$$
#
# element-wise, with $m_0 = v_0 = 0$. Return `(new_param, new_m, new_v)`; the caller passes
# `m`, `v` and the next `t` back in.

# %%
def adam_step(param, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """One Adam step at step number t (1, 2, ...); returns (new_param, new_m, new_v)."""
    # BEGIN SOLUTION
    beta1, beta2 = betas
    g = grad + weight_decay * param
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    m_hat = m / (1.0 - beta1 ** t)
    v_hat = v / (1.0 - beta2 ** t)
    return param - lr * m_hat / (np.sqrt(v_hat) + eps), m, v
    # END SOLUTION


# %%
# Self-check for question 1, worked by hand.
# The first step moves each coordinate by lr against the sign of its gradient (m_hat = g and
# sqrt(v_hat) = |g|), whatever the gradient's size:
p1, m1, v1 = adam_step(np.array([1.0, 1.0]), np.array([4.0, -0.5]), np.zeros(2), np.zeros(2), 1,
                       lr=0.1, eps=0.0)
assert np.allclose(p1, [0.9, 1.1]), f"first step gave {p1}, expected [0.9, 1.1]"
assert np.allclose(m1, [0.4, -0.05]) and np.allclose(v1, [0.016, 0.00025]), (m1, v1)
# A second step with the same gradient 4: m = 0.9 * 0.4 + 0.1 * 4 = 0.76, m_hat = 0.76 / 0.19 = 4,
# v_hat = 4^2 again, so the step is lr once more: 0.9 -> 0.8.
p2, _, _ = adam_step(p1, np.array([4.0, -0.5]), m1, v1, 2, lr=0.1, eps=0.0)
assert np.allclose(p2, [0.8, 1.2]), f"second step gave {p2}, expected [0.8, 1.2]"
# Weight decay 0.5 on p = 2 with gradient 0: the gradient becomes 1, so the step is -lr.
p3, _, _ = adam_step(np.array([2.0]), np.array([0.0]), np.zeros(1), np.zeros(1), 1, lr=0.1,
                     eps=0.0, weight_decay=0.5)
assert np.allclose(p3, [1.9]), f"weight decay step gave {p3}, expected [1.9]"
print("adam_step: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "adam_step", "points": 3}
rng = hidden_rng(7701)  # keyed by the instructor's secret when grading
INPUTS = {
    "p0": rng.normal(size=(3, 4)), "grads": rng.normal(size=(8, 3, 4)),
    "p0_b": rng.normal(size=5), "grads_b": 10.0 * rng.normal(size=(6, 5)),
    # worked by hand, lr 0.01, eps 0: a constant gradient gives m_hat = g and v_hat = g^2 at
    # every step, so each step is -lr * sign(g): p = 1 - 0.01 t, -1 + 0.01 t and 0.5 - 0.01 t
    "p0_hand": np.array([1.0, -1.0, 0.5]), "grads_hand": np.tile([3.0, -0.2, 1e-3], (3, 1)),
}


def probe_random(inputs):
    return sandbox_run(adam_step, inputs["p0"], inputs["grads"], lr=0.05, betas=(0.9, 0.999),
                       eps=1e-8)


def probe_decay(inputs):
    return sandbox_run(adam_step, inputs["p0_b"], inputs["grads_b"], lr=0.01, betas=(0.8, 0.99),
                       eps=1e-6, weight_decay=0.1)


def probe_hand(inputs):
    return sandbox_run(adam_step, inputs["p0_hand"], inputs["grads_hand"], lr=0.01, eps=0.0)


def probe_unmodified(inputs):
    return sandbox_unmodified(adam_step, inputs["p0"], inputs["grads"], lr=0.05)


CASES = [
    case("8 steps on a (3, 4) parameter, lr 0.05, match torch.optim.Adam",
         'close(outputs["random"], torch_trajectory(torch.optim.Adam, inputs["p0"], inputs["grads"], '
         'lr=0.05, betas=(0.9, 0.999), eps=1e-8))',
         points=1, hint="both averages start at 0; divide by 1 - beta ** t, with t counted from 1"),
    case("6 steps, betas (0.8, 0.99), eps 1e-6, weight decay 0.1, match torch.optim.Adam",
         'close(outputs["decay"], torch_trajectory(torch.optim.Adam, inputs["p0_b"], inputs["grads_b"], '
         'lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1))',
         points=1, hint="Adam's weight decay adds weight_decay * p to the gradient before both averages"),
    case("a constant gradient moves each coordinate by exactly lr per step (worked by hand)",
         'all_of(equal(outputs["unmodified"], 1.0, label="arguments left unchanged (1 = yes)"), '
         'close(outputs["hand"], [[0.99, -0.99, 0.49], [0.98, -0.98, 0.48], [0.97, -0.97, 0.47]]))',
         points=1, hint="return new arrays; with a constant gradient, m_hat = g and v_hat = g ** 2"),
]

# %% [markdown]
# ## Question 2 (2 points): AdamW
#
# Adam's weight decay goes through the averages, so a parameter with large past gradients is
# decayed less. AdamW (Loshchilov and Hutter) decouples it: first shrink the parameter,
# $p \leftarrow p\,(1 - \eta \lambda)$, then take Adam's step from the shrunk $p$ with the
# *raw* gradient $g_t$ (no $\lambda p$ term). Same signature and return value as `adam_step`;
# PyTorch's default $\lambda$ for AdamW is 0.01.

# %%
def adamw_step(param, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    """One AdamW step at step number t (1, 2, ...); returns (new_param, new_m, new_v)."""
    # BEGIN SOLUTION
    beta1, beta2 = betas
    param = param * (1.0 - lr * weight_decay)  # decoupled: shrink p, keep g out of the averages
    m = beta1 * m + (1.0 - beta1) * grad
    v = beta2 * v + (1.0 - beta2) * grad ** 2
    step = lr * (m / (1.0 - beta1 ** t)) / (np.sqrt(v / (1.0 - beta2 ** t)) + eps)
    return param - step, m, v
    # END SOLUTION


# %%
# Self-check for question 2, worked by hand: p = 2, gradient 0, lr 0.1, weight decay 0.5.
# The Adam part is 0 (m = 0), the decay multiplies p by 1 - 0.05: p = 1.9. (Adam's L2 decay
# would instead feed a gradient of 1 into the averages and also step by lr: the same 1.9 here,
# but a different path from the second step on.)
p1, m1, v1 = adamw_step(np.array([2.0]), np.array([0.0]), np.zeros(1), np.zeros(1), 1, lr=0.1,
                        weight_decay=0.5)
assert np.allclose(p1, [1.9]) and np.allclose(m1, [0.0]) and np.allclose(v1, [0.0]), (p1, m1, v1)
p2, _, _ = adamw_step(p1, np.array([0.0]), m1, v1, 2, lr=0.1, weight_decay=0.5)
assert np.allclose(p2, [1.805]), f"second step gave {p2}, expected 1.9 * 0.95 = 1.805"
print("adamw_step: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "adamw_step", "points": 2}
rng = hidden_rng(7702)  # keyed by the instructor's secret when grading
INPUTS = {"p0": rng.normal(size=(2, 5)), "grads": rng.normal(size=(7, 2, 5)),
          "p0_b": 3.0 * rng.normal(size=4), "grads_b": rng.normal(size=(5, 4))}


def probe_default(inputs):
    return sandbox_run(adamw_step, inputs["p0"], inputs["grads"], lr=0.02)


def probe_strong(inputs):
    return sandbox_run(adamw_step, inputs["p0_b"], inputs["grads_b"], lr=0.1, betas=(0.5, 0.9),
                       eps=1e-6, weight_decay=0.3)


CASES = [
    case("7 steps on (2, 5), lr 0.02, default weight decay, match torch.optim.AdamW",
         'close(outputs["default"], torch_trajectory(torch.optim.AdamW, inputs["p0"], inputs["grads"], '
         'lr=0.02))', points=1, hint="the default weight_decay of AdamW is 1e-2, not 0"),
    case("5 steps, lr 0.1, betas (0.5, 0.9), weight decay 0.3, match torch.optim.AdamW",
         'close(outputs["strong"], torch_trajectory(torch.optim.AdamW, inputs["p0_b"], inputs["grads_b"], '
         'lr=0.1, betas=(0.5, 0.9), eps=1e-6, weight_decay=0.3))', points=1,
         hint="shrink p by (1 - lr * weight_decay) and keep the raw gradient out of the decay"),
]

# %% [markdown]
# ## Question 3 (2 points): Adamax
#
# Section 7.1 of the Adam paper (Kingma and Ba) generalises $v$, an average of squares, to an
# average of $p$-th powers and lets $p \to \infty$. The result replaces $\sqrt{\hat v_t}$ by a
# running maximum of gradient magnitudes, which needs no bias correction:
#
# $$m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad
# u_t = \max\!\big(\beta_2\, u_{t-1},\ |g_t| + \epsilon\big), \qquad
# p_t = p_{t-1} - \frac{\eta}{1 - \beta_1^t}\, \frac{m_t}{u_t},$$
#
# element-wise, with $m_0 = u_0 = 0$. (PyTorch adds $\epsilon$ inside the maximum, as written
# here.) Return `(new_param, new_m, new_u)`. PyTorch's defaults: $\eta = 0.002$,
# $\beta = (0.9, 0.999)$, $\epsilon = 10^{-8}$.

# %%
def adamax_step(param, grad, m, u, t, lr=2e-3, betas=(0.9, 0.999), eps=1e-8):
    """One Adamax step at step number t (1, 2, ...); returns (new_param, new_m, new_u)."""
    # BEGIN SOLUTION
    beta1, beta2 = betas
    m = beta1 * m + (1.0 - beta1) * grad
    u = np.maximum(beta2 * u, np.abs(grad) + eps)
    return param - lr / (1.0 - beta1 ** t) * m / u, m, u
    # END SOLUTION


# %%
# Self-check for question 3, worked by hand, lr 0.1, betas (0.5, 0.5), eps 0.
# Step 1, g = 2: m = 1, u = max(0, 2) = 2, p = 0 - 0.1 / 0.5 * 1 / 2 = -0.1.
# Step 2, g = 0.5: m = 0.5 + 0.25 = 0.75, u = max(1, 0.5) = 1 (the old maximum, decayed),
# p = -0.1 - 0.1 / 0.75 * 0.75 / 1 = -0.2.
p1, m1, u1 = adamax_step(np.array([0.0]), np.array([2.0]), np.zeros(1), np.zeros(1), 1, lr=0.1,
                         betas=(0.5, 0.5), eps=0.0)
assert np.allclose(p1, [-0.1]) and np.allclose(m1, [1.0]) and np.allclose(u1, [2.0]), (p1, m1, u1)
p2, m2, u2 = adamax_step(p1, np.array([0.5]), m1, u1, 2, lr=0.1, betas=(0.5, 0.5), eps=0.0)
assert np.allclose(u2, [1.0]) and np.allclose(p2, [-0.2]), (p2, m2, u2)
print("adamax_step: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "adamax_step", "points": 2}
rng = hidden_rng(7703)  # keyed by the instructor's secret when grading
INPUTS = {"p0": rng.normal(size=(4, 3)), "grads": rng.normal(size=(9, 4, 3)),
          "p0_b": rng.normal(size=6), "grads_b": rng.normal(size=(6, 6)) * np.array([1, 1, 1, 0, 0, 0])}


def probe_default(inputs):
    return sandbox_run(adamax_step, inputs["p0"], inputs["grads"], lr=0.05)


def probe_zero(inputs):
    return sandbox_run(adamax_step, inputs["p0_b"], inputs["grads_b"], lr=0.01, betas=(0.7, 0.95),
                       eps=1e-3)


CASES = [
    case("9 steps on (4, 3), lr 0.05, match torch.optim.Adamax",
         'close(outputs["default"], torch_trajectory(torch.optim.Adamax, inputs["p0"], inputs["grads"], '
         'lr=0.05))', points=1, hint="u = max(beta2 * u, |g| + eps); only m is bias-corrected"),
    case("6 steps, half the coordinates with zero gradient, eps 1e-3, match torch.optim.Adamax",
         'close(outputs["zero"], torch_trajectory(torch.optim.Adamax, inputs["p0_b"], inputs["grads_b"], '
         'lr=0.01, betas=(0.7, 0.95), eps=1e-3))', points=1,
         hint="eps goes inside the maximum, so u stays positive where the gradient is 0"),
]
