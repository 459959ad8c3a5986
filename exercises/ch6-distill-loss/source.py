# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 6.2: distilling an ensemble, the loss and its gradient
#
# *Chapter 6 (Compressing networks).* Knowledge distillation trains a student network on the
# softened outputs of a teacher. Here the teacher is an *ensemble* of $E$ networks, as in
# Hinton et al.'s first experiments: its soft target is the average of the members' softened
# distributions. With the student's logits $s$ (N, K), the members' logits $t_e$ (E, N, K), the
# labels $y$ (N,), a temperature $T > 0$ and a weight $\alpha \in [0, 1]$:
#
# $$q_j(z; T) = \frac{\exp(z_j / T)}{\sum_k \exp(z_k / T)}, \qquad
# \bar q^{t}_n = \frac{1}{E} \sum_{e} q(t_{e,n}; T), \qquad q^s_n = q(s_n; T),$$
#
# $$L = \alpha\, T^2\, \frac{1}{N} \sum_n \sum_j \bar q^{t}_{n,j}
# \bigl(\log \bar q^{t}_{n,j} - \log q^s_{n,j}\bigr)
# + (1 - \alpha)\, \frac{1}{N} \sum_n -\log q(s_n; 1)_{y_n} .$$
#
# The first term is the Kullback–Leibler divergence from the averaged soft targets to the
# student's, scaled by $T^2$; the second the ordinary cross-entropy with the labels at $T = 1$.
#
# **How to work.** Replace every `raise NotImplementedError` with your code, then run the whole
# notebook (Kernel → Restart & Run All). Each *self-check* cell ends by printing
# `... self-checks passed`. The grader runs other, hidden tests (other shapes, temperatures and
# weights, large logits, compared with PyTorch in float64 and with central differences), so
# passing the self-checks is necessary, not sufficient. Use numpy only; keep the names and
# signatures.
#
# | question | function | points |
# |---|---|---|
# | 1 | `soft_targets(logits, T)` | 1 |
# | 2 | `ensemble_distill_loss(s, t, y, T, alpha)` | 2 |
# | 3 | `ensemble_distill_grad(s, t, y, T, alpha)` | 3 |

# %% tags=["grader"]
# Instructor only: everything in "grader" cells stays out of the student notebook.
EXERCISE = {"title": "Distilling an ensemble: the loss and its gradient", "chapter": 6}

import numpy as np
import torch
import torch.nn.functional as F

from dlbook.grading.helpers import all_of, case, central_difference, close, tensor


def torch_loss(s, t, y, T, alpha):
    """Reference: the loss in torch float64 (kl_div with "batchmean" and cross_entropy)."""
    q_t = F.softmax(tensor(t) / T, dim=2).mean(dim=0)  # (N, K), averaged over the ensemble
    soft = F.kl_div(F.log_softmax(s / T, dim=1), q_t, reduction="batchmean")
    return alpha * T * T * soft + (1 - alpha) * F.cross_entropy(s, torch.as_tensor(y))


def torch_grad(s, t, y, T, alpha):
    s_t = tensor(s, requires_grad=True)
    torch_loss(s_t, t, y, T, alpha).backward()
    return s_t.grad.numpy()


def loss_value(s, t, y, T, alpha):
    return torch_loss(tensor(s), t, y, T, alpha).item()


# %%
import numpy as np

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Question 1 (1 point): soft targets
#
# Return $q(z; T)$ along the last axis of `logits` (any shape). It must not overflow for large
# logits: subtract each row's maximum before exponentiating.

# %%
def soft_targets(logits, T):
    """softmax(logits / T) along the last axis."""
    # BEGIN SOLUTION
    z = np.asarray(logits, dtype=float) / T
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
    # END SOLUTION


# %%
# Self-check for question 1: equal logits give a uniform distribution at any T; at T = 2 the
# logits (2 ln 3, 0) become (ln 3, 0), so q = (3/4, 1/4).
assert np.allclose(soft_targets(np.zeros((2, 4)), 5.0), 0.25)
assert np.allclose(soft_targets(np.array([2 * np.log(3.0), 0.0]), 2.0), [0.75, 0.25])
print("soft_targets: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "soft_targets", "points": 1}
rng = hidden_rng(6201)  # keyed by the instructor's secret when grading
# "big": logits about 800 whose rows spread over more than a thousand (a shift by the row's
# minimum instead of its maximum overflows)
INPUTS = {"z": 3 * rng.standard_normal((3, 5, 7)),
          "big": 800 + 50 * rng.standard_normal((4, 6))
          + rng.permuted(np.tile(np.linspace(-600, 600, 6), (4, 1)), axis=1)}


def probe_soft(inputs):
    return {"t3": soft_targets(inputs["z"], 3.0), "big": soft_targets(inputs["big"], 0.5)}


CASES = [
    case("(3, 5, 7) logits at T = 3 and large logits (about 800, each row spread over more than "
         "a thousand) at T = 0.5: match torch softmax(z / T), no overflow",
         'all_of(close(outputs["soft"]["t3"], F.softmax(tensor(inputs["z"]) / 3.0, dim=-1)), '
         'close(outputs["soft"]["big"], F.softmax(tensor(inputs["big"]) / 0.5, dim=-1)))',
         points=1, hint="divide by T, subtract the row maximum, normalise along the last axis"),
]

# %% [markdown]
# ## Question 2 (2 points): the loss
#
# `s` (N, K) student logits, `t` (E, N, K) the ensemble's logits, `y` (N,) integer labels.
# Return $L$ as a float. (With $\alpha = 1$ the labels are not used.)

# %%
def ensemble_distill_loss(s, t, y, T, alpha):
    """alpha T^2 KL(mean soft targets || soft student) + (1 - alpha) CE(s, y), batch-averaged."""
    # BEGIN SOLUTION
    def log_softmax(z):  # stable, along the last axis
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    n = s.shape[0]
    q_t = np.exp(log_softmax(np.asarray(t, dtype=float) / T)).mean(axis=0)  # (N, K)
    kl = np.sum(q_t * (np.log(q_t) - log_softmax(s / T))) / n
    ce = -np.mean(log_softmax(s)[np.arange(n), y])
    return float(alpha * T**2 * kl + (1 - alpha) * ce)
    # END SOLUTION


# %%
# Self-check for question 2: when every member and the student have the same logits, the KL
# term is 0 and only (1 - alpha) times the cross-entropy remains; with alpha = 1 the loss is 0.
s_demo = np.array([[0.0, np.log(3.0)], [0.0, 0.0]])  # rows: q(s; 1) = (1/4, 3/4) and (1/2, 1/2)
t_demo = np.stack([s_demo, s_demo])
y_demo = np.array([1, 0])
expected = 0.25 * (-np.log(0.75) - np.log(0.5)) / 2
assert np.isclose(ensemble_distill_loss(s_demo, t_demo, y_demo, 3.0, 0.75), expected)
assert np.isclose(ensemble_distill_loss(s_demo, t_demo, y_demo, 3.0, 1.0), 0.0)
print("ensemble_distill_loss: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "ensemble_distill_loss", "points": 2}
rng = hidden_rng(6202)  # keyed by the instructor's secret when grading
INPUTS = {"s": rng.standard_normal((6, 10)), "t": 3 * rng.standard_normal((3, 6, 10)),
          "y": rng.integers(0, 10, 6),
          # student logits about 1000, each row spread over 1600: a log-softmax shifted by the
          # row's minimum (or by plus the maximum) overflows
          "s_big": 1000 + rng.standard_normal((6, 10))
          + rng.permuted(np.tile(np.linspace(-800, 800, 10), (6, 1)), axis=1)}


def probe_loss(inputs):
    return np.array([ensemble_distill_loss(inputs["s"], inputs["t"], inputs["y"], 4.0, 0.9),
                     ensemble_distill_loss(inputs["s"], inputs["t"], inputs["y"], 1.5, 0.3),
                     ensemble_distill_loss(inputs["s_big"], inputs["t"], inputs["y"], 1.5, 0.3)])


CASES = [
    case("6 examples, 10 classes, 3 teachers, T = 4 and alpha = 0.9: matches torch kl_div "
         "(batchmean) and cross_entropy",
         'close(outputs["loss"][0], loss_value(inputs["s"], inputs["t"], inputs["y"], 4.0, 0.9))',
         points=1, hint="average the members' softened probabilities (not their logits), and "
                        "multiply the KL term by T**2"),
    case("the same at T = 1.5 and alpha = 0.3, also with large student logits (about 1000, "
         "rows spread over 1600)",
         'all_of(close(outputs["loss"][1], loss_value(inputs["s"], inputs["t"], inputs["y"], 1.5, 0.3)), '
         'close(outputs["loss"][2], loss_value(inputs["s_big"], inputs["t"], inputs["y"], 1.5, 0.3), '
         'label="large logits"))',
         points=1, hint="the hard term uses the student's logits at T = 1; shift each row by its "
                        "maximum before exponentiating"),
]

# %% [markdown]
# ## Question 3 (3 points): the gradient
#
# Return $\partial L / \partial s$, shape (N, K). Work it out first: the derivative of the KL
# term with respect to $s$ involves the student's softened probabilities, the averaged soft
# targets and one factor of $T$ (the other factor of $T$ in $T^2$ cancels the $1/T$ of
# $s / T$); the hard term gives the familiar softmax-minus-one-hot. Both are batch averages.

# %%
def ensemble_distill_grad(s, t, y, T, alpha):
    """dL/ds (N, K) of ensemble_distill_loss."""
    # BEGIN SOLUTION
    def softmax(z):  # stable, along the last axis
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    n, k = s.shape
    q_t = softmax(np.asarray(t, dtype=float) / T).mean(axis=0)  # (N, K)
    ds = alpha * T * (softmax(s / T) - q_t) / n
    onehot = np.eye(k)[y]
    return ds + (1 - alpha) * (softmax(s) - onehot) / n
    # END SOLUTION


# %%
# Self-check for question 3: with alpha = 1 and the teachers equal to the student, the
# gradient is 0; with alpha = 0 it is (softmax(s) - onehot(y)) / N.
assert np.allclose(ensemble_distill_grad(s_demo, t_demo, y_demo, 3.0, 1.0), 0.0)
g = ensemble_distill_grad(s_demo, t_demo, y_demo, 3.0, 0.0)
assert g.shape == (2, 2), f"shape {g.shape}, expected (2, 2)"
assert np.allclose(g, [[0.125, -0.125], [-0.25, 0.25]]), g
print("ensemble_distill_grad: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "ensemble_distill_grad", "points": 3}
rng = hidden_rng(6203)  # keyed by the instructor's secret when grading
INPUTS = {"s": rng.standard_normal((5, 8)), "t": 2 * rng.standard_normal((4, 5, 8)),
          "y": rng.integers(0, 8, 5), "s_small": rng.standard_normal((3, 4)),
          "t_small": rng.standard_normal((2, 3, 4)), "y_small": rng.integers(0, 4, 3),
          # student logits about 1000, each row spread over 1600 (no overflow allowed)
          "s_big": 1000 + rng.standard_normal((5, 8))
          + rng.permuted(np.tile(np.linspace(-800, 800, 8), (5, 1)), axis=1)}


def probe_grad(inputs):
    return {"a": ensemble_distill_grad(inputs["s"], inputs["t"], inputs["y"], 4.0, 0.9),
            "b": ensemble_distill_grad(inputs["s"], inputs["t"], inputs["y"], 8.0, 1.0),
            "small": ensemble_distill_grad(inputs["s_small"], inputs["t_small"],
                                           inputs["y_small"], 2.0, 0.5),
            "big": ensemble_distill_grad(inputs["s_big"], inputs["t"], inputs["y"], 2.0, 0.5)}


CASES = [
    case("5 examples, 8 classes, 4 teachers, T = 4, alpha = 0.9, and large student logits (about "
         "1000, rows spread over 1600) at T = 2, alpha = 0.5: matches torch.autograd",
         'all_of(close(outputs["grad"]["a"], torch_grad(inputs["s"], inputs["t"], inputs["y"], 4.0, 0.9)), '
         'close(outputs["grad"]["big"], torch_grad(inputs["s_big"], inputs["t"], inputs["y"], 2.0, 0.5), '
         'label="large logits"))',
         points=1, hint="soft part alpha * T * (q_s - mean q_t) / N; hard part as in CE; shift "
                        "each row by its maximum before exponentiating"),
    case("T = 8, soft term only (alpha = 1): matches torch.autograd",
         'close(outputs["grad"]["b"], torch_grad(inputs["s"], inputs["t"], inputs["y"], 8.0, 1.0))',
         points=1, hint="the soft term's gradient carries one factor of T, not T**2 and not none"),
    case("(3, 4) logits, 2 teachers, T = 2, alpha = 0.5: matches central differences of the "
         "torch loss",
         ['num = central_difference(lambda s: loss_value(s, inputs["t_small"], inputs["y_small"], '
          '2.0, 0.5), inputs["s_small"])',
          'close(outputs["grad"]["small"], num, rtol=1e-6, atol=1e-9)'],
         points=1, hint="differentiate both terms; each is an average over the batch"),
]
