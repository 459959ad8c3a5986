# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 2.2: RMSprop, and the largest stable step with momentum
#
# *Chapter 2 (backpropagation).* Section 2.2 shows that on a quadratic bowl plain gradient
# descent converges only for steps $\eta < 2 / \lambda_{\max}$, one step size for every
# direction, and that momentum speeds up the shallow directions. This exercise goes two ways
# from there. RMSprop gives every coordinate its own step size, scaled down where recent
# gradients were large; you implement it as `torch.optim.RMSprop` takes it, then with momentum
# and centring. Then you find, by experiment, how large a step the heavy-ball method tolerates.
#
# **How to work.** Replace every `raise NotImplementedError` with your code, then run the whole
# notebook (Kernel → Restart & Run All). Each *self-check* cell ends by printing
# `... self-checks passed`. The grader runs other, hidden tests (other shapes and settings,
# compared with `torch.optim.RMSprop` step by step, and bowls of its own), so passing the
# self-checks is necessary, not sufficient. Use numpy only; keep the names and signatures, and
# do not modify the arrays you are given (return new ones).
#
# | question | what is graded | points |
# |---|---|---|
# | 1 | `rmsprop_step(param, grad, state, lr, alpha, eps)` | 2 |
# | 2 | `rmsprop_momentum_step(...)` with momentum, centred or not | 2 |
# | 3 | `largest_stable_lr(A, momentum)` (an experiment) | 2 |

# %% tags=["grader"]
# Instructor only: everything in "grader" cells stays out of the student notebook.
EXERCISE = {"title": "RMSprop, and the largest stable step with momentum", "chapter": 2}

import numpy as np
import torch

from dlbook.grading.helpers import all_of, case, close, tensor


def torch_trajectory(p0, grads, **hyper):
    """The parameter after each of len(grads) steps of torch.optim.RMSprop fed the given gradients."""
    p = torch.nn.Parameter(tensor(p0))
    optimizer = torch.optim.RMSprop([p], **hyper)
    path = []
    for g in grads:
        p.grad = tensor(g)
        optimizer.step()
        path.append(p.detach().clone().numpy())
    return np.stack(path)


def sandbox_run(step, p0, grads, **hyper):
    """Apply a student's step function to the gradient sequence (shipped into the sandbox)."""
    p, state, path = p0, None, []
    for g in grads:
        p, state = step(p, g, state, **hyper)
        path.append(np.asarray(p, dtype=float))
    return np.stack(path)

# %%
import numpy as np

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Question 1 (2 points): RMSprop
#
# A gradient coordinate that is consistently large forces a small step for *every* coordinate
# under plain gradient descent. RMSprop instead divides each coordinate's gradient by a running
# estimate of its typical size, the root of an exponential moving average of its squares. With
# decay $\alpha$, learning rate $\eta$ and a small $\epsilon$ against division by zero, one step
# from $(p_{t-1}, s_{t-1})$ with gradient $g_t$ is (element by element)
#
# $$s_t = \alpha\, s_{t-1} + (1 - \alpha)\, g_t^2, \qquad
#   p_t = p_{t-1} - \eta\, \frac{g_t}{\sqrt{s_t} + \epsilon}, \qquad s_0 = 0 .$$
#
# Note where $\epsilon$ goes: outside the square root, as in PyTorch. A step is then about
# $\eta$ in size whatever the scale of the gradients (work out the first step: $s_1 =
# (1 - \alpha) g_1^2$). `state` is whatever you need to carry from one step to the next
# (here $s$); it is `None` on the first step. Return `(new_param, new_state)`.

# %%
def rmsprop_step(param, grad, state, lr, alpha=0.99, eps=1e-8):
    """One torch.optim.RMSprop step (no momentum, not centred); returns (new_param, new_state)."""
    # BEGIN SOLUTION
    square = np.zeros_like(param) if state is None else state
    square = alpha * square + (1.0 - alpha) * grad ** 2
    return param - lr * grad / (np.sqrt(square) + eps), square
    # END SOLUTION


# %%
# Self-check for question 1, worked by hand with alpha = 0.5, eps = 0, lr = 0.1, p = 0:
# gradient 4: s = 0.5 * 16 = 8, step 0.1 * 4 / sqrt(8) = 0.1414; gradient 4 again: s = 12,
# step 0.1 * 4 / sqrt(12) = 0.1155. With a gradient 100 times larger, the same steps.
for scale in (1.0, 100.0):
    p, state, path = np.array([0.0]), None, []
    for _ in range(2):
        p, state = rmsprop_step(p, np.array([4.0 * scale]), state, lr=0.1, alpha=0.5, eps=0.0)
        path.append(p[0])
    assert np.allclose(path, [-0.141421, -0.256891], atol=1e-6), f"trajectory {path}"
print("rmsprop_step: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "rmsprop", "points": 2}
rng = hidden_rng(2201)  # keyed by the instructor's secret when grading
INPUTS = {
    "p0": rng.normal(size=(3, 4)), "grads": rng.normal(size=(6, 3, 4)),
    # worked by hand, lr 1, alpha 0.75, eps 0, per coordinate:
    # p0 = 0, gradients 2, -1: s = 1, then 0.75 + 0.25 = 1: p = -2, then -2 + 1 = -1
    # p0 = 1, gradients -4, -2: s = 4, then 3 + 1 = 4: p = 1 + 2 = 3, then 3 + 1 = 4
    "p0_hand": np.array([0.0, 1.0]), "grads_hand": np.array([[2.0, -4.0], [-1.0, -2.0]]),
}


def probe_random(inputs):
    return {"set": sandbox_run(rmsprop_step, inputs["p0"], inputs["grads"], lr=0.01, alpha=0.9, eps=0.1),
            "default": sandbox_run(rmsprop_step, inputs["p0"], inputs["grads"], lr=0.01)}


def probe_hand(inputs):
    return sandbox_run(rmsprop_step, inputs["p0_hand"], inputs["grads_hand"], lr=1.0, alpha=0.75, eps=0.0)


CASES = [
    case("6 steps on a (3, 4) parameter, lr 0.01, alpha 0.9, eps 0.1, and with the defaults, match "
         "torch.optim.RMSprop",
         ['got = outputs["random"]',
          'all_of(close(got["set"], torch_trajectory(inputs["p0"], inputs["grads"], lr=0.01, alpha=0.9, eps=0.1)), '
          'close(got["default"], torch_trajectory(inputs["p0"], inputs["grads"], lr=0.01), label="defaults"))'],
         points=1, hint="s = alpha * s + (1 - alpha) * g**2 from s = 0; divide by sqrt(s) + eps (eps outside)"),
    case("the hand-worked run, together with the 6 random steps above",
         'all_of(close(outputs["hand"], [[-2.0, 3.0], [-1.0, 4.0]], label="hand-worked run"), '
         'close(outputs["random"]["set"], torch_trajectory(inputs["p0"], inputs["grads"], lr=0.01, '
         'alpha=0.9, eps=0.1), label="random steps"))', points=1,
         hint="carry s from one call to the next; the first step starts from s = 0"),
]

# %% [markdown]
# ## Question 2 (2 points): RMSprop with momentum, centred
#
# `torch.optim.RMSprop` has two more options. *Momentum* $\mu$ keeps a buffer of the scaled
# steps, $b_t = \mu\, b_{t-1} + g_t / (\sqrt{s_t} + \epsilon)$ from $b_0 = 0$, and steps along
# it: $p_t = p_{t-1} - \eta\, b_t$. *Centring* divides by an estimate of the gradient's
# standard deviation instead of its root mean square: it also keeps a moving average of the
# gradients, $m_t = \alpha\, m_{t-1} + (1 - \alpha)\, g_t$ from $m_0 = 0$, and uses
# $\sqrt{s_t - m_t^2} + \epsilon$ as the denominator. Implement both (with `momentum=0` and
# `centered=False` the step is question 1's).

# %%
def rmsprop_momentum_step(param, grad, state, lr, alpha=0.99, eps=1e-8, momentum=0.0, centered=False):
    """One torch.optim.RMSprop step with momentum and centring; returns (new_param, new_state)."""
    # BEGIN SOLUTION
    if state is None:
        state = (np.zeros_like(param), np.zeros_like(param), np.zeros_like(param))
    sq, mean, buf = state
    sq = alpha * sq + (1 - alpha) * grad * grad
    if centered:
        mean = alpha * mean + (1 - alpha) * grad
        avg = np.sqrt(sq - mean ** 2) + eps
    else:
        avg = np.sqrt(sq) + eps
    if momentum > 0:
        buf = momentum * buf + grad / avg
        new = param - lr * buf
    else:
        new = param - lr * grad / avg
    return new, (sq, mean, buf)
    # END SOLUTION


# %%
# Self-checks for question 2, worked by hand with alpha = 0.5, eps = 0, lr = 0.1.
# Momentum 0.5, gradient 2 twice: s = 2, then 3; b = 2 / sqrt(2) = 1.4142, then
# 0.7071 + 2 / sqrt(3) = 1.8618; p = -0.14142, then -0.32760.
p, state, path = np.array([0.0]), None, []
for _ in range(2):
    p, state = rmsprop_momentum_step(p, np.array([2.0]), state, lr=0.1, alpha=0.5, eps=0.0, momentum=0.5)
    path.append(p[0])
assert np.allclose(path, [-0.141421, -0.327603], atol=1e-6), f"trajectory {path}"
# Centred, gradient 2 then -2: s = 2, m = 1, step 2 / sqrt(2 - 1) = 2; then s = 3, m = -0.5,
# step -2 / sqrt(3 - 0.25) = -1.20605; p = -0.2, then -0.2 + 0.120605 = -0.079395.
p, state, path = np.array([0.0]), None, []
for g in (2.0, -2.0):
    p, state = rmsprop_momentum_step(p, np.array([g]), state, lr=0.1, alpha=0.5, eps=0.0, centered=True)
    path.append(p[0])
assert np.allclose(path, [-0.2, -0.079395], atol=1e-6), f"trajectory {path}"
print("rmsprop_momentum_step: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "rmsprop_momentum", "points": 2}
rng = hidden_rng(2202)  # keyed by the instructor's secret when grading
INPUTS = {
    "p0": rng.normal(size=5), "grads": rng.normal(size=(7, 5)),
    "p0_c": rng.normal(size=(2, 3)), "grads_c": rng.normal(size=(5, 2, 3)) + 0.5,
}
_A = dict(lr=0.05, alpha=0.9, eps=1e-3, momentum=0.9)
_B = dict(lr=0.02, alpha=0.8, eps=0.01, momentum=0.5, centered=True)


def probe_momentum(inputs):
    return sandbox_run(rmsprop_momentum_step, inputs["p0"], inputs["grads"], lr=0.05, alpha=0.9, eps=1e-3,
                       momentum=0.9)


def probe_centered(inputs):
    return {"momentum": sandbox_run(rmsprop_momentum_step, inputs["p0_c"], inputs["grads_c"], lr=0.02, alpha=0.8,
                                    eps=0.01, momentum=0.5, centered=True),
            "plain": sandbox_run(rmsprop_momentum_step, inputs["p0_c"], inputs["grads_c"], lr=0.02, alpha=0.8,
                                 eps=0.01, centered=True),
            "default": sandbox_run(rmsprop_momentum_step, inputs["p0_c"], inputs["grads_c"], lr=0.02)}


CASES = [
    case("7 steps, lr 0.05, alpha 0.9, eps 1e-3, momentum 0.9, match torch.optim.RMSprop",
         'close(outputs["momentum"], torch_trajectory(inputs["p0"], inputs["grads"], **_A))', points=1,
         hint="b = momentum * b + g / (sqrt(s) + eps), then p = p - lr * b (lr outside the buffer)"),
    case("5 steps on (2, 3), centred with momentum 0.5 and without, and with the defaults, match "
         "torch.optim.RMSprop",
         ['got = outputs["centered"]',
          'all_of(close(got["momentum"], torch_trajectory(inputs["p0_c"], inputs["grads_c"], **_B)), '
          'close(got["plain"], torch_trajectory(inputs["p0_c"], inputs["grads_c"], lr=0.02, alpha=0.8, eps=0.01, '
          'centered=True), label="centred, no momentum"), '
          'close(got["default"], torch_trajectory(inputs["p0_c"], inputs["grads_c"], lr=0.02), label="defaults"))'],
         points=1,
         hint="centred: m = alpha * m + (1 - alpha) * g, denominator sqrt(s - m**2) + eps"),
]

# %% [markdown]
# ## Question 3 (2 points): an experiment: the largest stable step with momentum
#
# Take the quadratic $f(x) = \tfrac12 x^\top A x$ with a symmetric positive definite $A$, so
# $\nabla f(x) = A x$, and the heavy-ball method of section 2.2 from any start $x_0$:
#
# $$v_t = \mu\, v_{t-1} + A x_t, \qquad x_{t+1} = x_t - \eta\, v_t, \qquad v_{-1} = 0 .$$
#
# Without momentum it converges exactly for $\eta < 2 / \lambda_{\max}(A)$. How large may
# $\eta$ be with momentum $\mu$? Write `largest_stable_lr(A, momentum)` returning that limit
# for the given `A` and $\mu \in [0, 1)$, to within 0.5 %. Find it by experiment: run the
# method for many steps at a trial $\eta$, decide whether it blew up, and narrow the interval
# by bisection (mind runs close to the limit, which grow or shrink slowly, and starting points
# with almost no component along the steepest direction). If you derive a formula, check it
# against your experiment. The grader calls your function on bowls of its own.

# %%
def largest_stable_lr(A: np.ndarray, momentum: float) -> float:
    """The largest step size for which heavy-ball descent on 0.5 x^T A x converges (within 0.5 %)."""
    # BEGIN SOLUTION
    start = np.random.default_rng(0).normal(size=len(A))

    def stable(lr, steps=3000):
        x, v = start.copy(), np.zeros(len(A))
        for _ in range(steps):
            v = momentum * v + A @ x
            x = x - lr * v
            if np.abs(x).max() > 1e12:  # blown up (stop before it overflows)
                return False
        return np.linalg.norm(x) < np.linalg.norm(start)

    low, high = 0.0, 1.0
    while stable(high):
        low, high = high, 2.0 * high
    while high - low > 1e-4 * high:
        middle = 0.5 * (low + high)
        low, high = (middle, high) if stable(middle) else (low, middle)
    return 0.5 * (low + high)
    # END SOLUTION


# %%
# Self-check for question 3 without momentum, where section 2.2 gives the answer 2 / lambda_max:
# the bowl x^2 + 10 y^2 (A = diag(2, 20)) allows steps up to 0.1, and A = [[4]] up to 0.5.
for A_demo, expected in ((np.diag([2.0, 20.0]), 0.1), (np.array([[4.0]]), 0.5)):
    got = largest_stable_lr(A_demo, 0.0)
    assert abs(got - expected) <= 0.005 * expected, f"{got}, expected {expected} (within 0.5 %)"
print("largest_stable_lr: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "largest_stable_lr", "points": 2}
rng = hidden_rng(2203)  # keyed by the instructor's secret when grading


def _bowl(size):
    """A symmetric positive definite matrix with eigenvalues between 0.5 and 10."""
    q, _ = np.linalg.qr(rng.normal(size=(size, size)))
    return (q * rng.uniform(0.5, 10.0, size=size)) @ q.T


_A3 = _bowl(3)
_A4 = _bowl(4)
_q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
_AF = (_q * rng.uniform(0.2, 1.0, size=3)) @ _q.T  # a flat bowl: its limit is above 2
INPUTS = {"A3": 0.5 * (_A3 + _A3.T), "A4": 0.5 * (_A4 + _A4.T), "AF": 0.5 * (_AF + _AF.T)}


def probe_half(inputs):
    return largest_stable_lr(inputs["A3"], 0.5)


def probe_flat(inputs):
    return largest_stable_lr(inputs["AF"], 0.5)


def probe_heavy(inputs):
    return largest_stable_lr(inputs["A4"], 0.8)


def stability_limit(A, momentum):
    """The reference: the iteration x_{t+1} = x_t - lr A x_t + mu (x_t - x_{t-1}) has, along an
    eigenvector of A with eigenvalue lam, the characteristic roots of z^2 - (1 + mu - lr lam) z + mu;
    both lie inside the unit circle exactly when 0 < lr lam < 2 (1 + mu). Eigenvalues by torch."""
    lam_max = torch.linalg.eigvalsh(tensor(A)).max().item()
    return 2.0 * (1.0 + momentum) / lam_max


CASES = [
    case("two 3 x 3 bowls of the grader's (one flat, whose limit is above 2), momentum 0.5: the "
         "limits within 0.5 %",
         'all_of(close(outputs["half"], stability_limit(inputs["A3"], 0.5), rtol=5e-3), '
         'close(outputs["flat"], stability_limit(inputs["AF"], 0.5), rtol=5e-3, label="flat bowl"))',
         points=1,
         hint="with momentum the limit is larger than 2 / lambda_max; run many steps near the limit"),
    case("a 4 x 4 bowl of the grader's, momentum 0.8: the limit within 0.5 %",
         'close(outputs["heavy"], stability_limit(inputs["A4"], 0.8), rtol=5e-3)', points=1,
         hint="start from a random point, so that the steepest direction is present; bisect until "
              "the interval is well below 0.5 % of the step"),
]
