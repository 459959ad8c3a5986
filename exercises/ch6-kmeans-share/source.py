# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 6.1: weight sharing by k-means, and the gradient of a codebook
#
# *Chapter 6 (Compressing networks).* Weight sharing replaces the $mn$ weights of a layer by
# $k = 2^b$ shared values $c_1, \dots, c_k$ (the *codebook*) and stores, for each weight $w_i$,
# the index $a(i)$ of its value. k-means chooses the codebook and the indices to minimise
#
# $$\sum_i \bigl(w_i - c_{a(i)}\bigr)^2 ,$$
#
# by Lloyd's iteration from given starting centres: (1) assign every weight to its nearest
# centre (on a tie, the lower index); (2) move every centre to the mean of the weights assigned
# to it (a centre with no weights stays where it is); repeat until the assignment no longer
# changes. After sharing, the layer's weights are $w_i = c_{a(i)}$, so the centres can be
# trained: the gradient of a centre collects the gradients of all the weights that share it.
#
# **How to work.** Replace every `raise NotImplementedError` with your code, then run the whole
# notebook (Kernel → Restart & Run All). Each *self-check* cell ends by printing
# `... self-checks passed`. The grader runs other, hidden tests (other shapes and sizes,
# compared with scikit-learn's k-means and with PyTorch), so passing the self-checks is
# necessary, not sufficient. Use numpy only; keep the names and signatures.
#
# | question | function | points |
# |---|---|---|
# | 1 | `kmeans_share(w, init, max_iter)` | 3 |
# | 2 | `codebook_gradient(dw, indices, k)` | 2 |
# | 3 | `shared_storage_bits(num_weights, bits)` | 1 |

# %% tags=["grader"]
# Instructor only: everything in "grader" cells stays out of the student notebook.
EXERCISE = {"title": "Weight sharing by k-means, and the gradient of a codebook", "chapter": 6}

import numpy as np
import torch
from sklearn.cluster import KMeans

from dlbook.grading.helpers import all_of, case, close, equal, tensor, torch_gradients


def sklearn_kmeans(w, init):
    """Reference: scikit-learn's Lloyd k-means from the given centres, run to convergence."""
    fit = KMeans(len(init), init=np.asarray(init, dtype=float).reshape(-1, 1), n_init=1,
                 max_iter=1000, tol=0.0, algorithm="lloyd").fit(np.asarray(w).reshape(-1, 1))
    return fit.cluster_centers_[:, 0], fit.labels_.reshape(np.shape(w))


def clustered(rng, centres, per_cluster, spread, shape):
    """Weights drawn around well-separated centres (no empty cluster), shuffled into shape."""
    values = np.concatenate([c + spread * rng.standard_normal(per_cluster) for c in centres])
    return rng.permutation(values).reshape(shape)


# %%
import numpy as np

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## Question 1 (3 points): k-means on the weights of a layer
#
# `w` has any shape; `init` holds the $k$ starting centres. Return `(codebook, indices)`:
# `codebook` a float array of shape `(k,)`, `indices` an integer array with the shape of `w`,
# such that `codebook[indices]` is the shared layer. Run at most `max_iter` updates of the
# centres, stopping early when the assignment no longer changes.
#
# Careful: the objective to minimise pairs each weight with *its own* centre. A sum over all
# pairs $(i, j)$, $\sum_i \sum_j (w_i - c_j)^2$, as one textbook prints it, would be
# minimised by putting every centre at the mean weight.

# %%
def kmeans_share(w, init, max_iter=100):
    """Lloyd's k-means of the entries of w from the centres init; returns (codebook, indices)."""
    # BEGIN SOLUTION
    values = np.asarray(w, dtype=float).ravel()
    codebook = np.array(init, dtype=float)
    k = codebook.size
    assign = np.argmin(np.abs(values[:, None] - codebook[None, :]), axis=1)
    for _ in range(max_iter):
        for j in range(k):
            members = values[assign == j]
            if members.size:
                codebook[j] = members.mean()
        new_assign = np.argmin(np.abs(values[:, None] - codebook[None, :]), axis=1)
        if np.array_equal(new_assign, assign):
            break
        assign = new_assign
    return codebook, assign.reshape(np.shape(w))
    # END SOLUTION


# %%
# Self-check for question 1, worked by hand. From the centres 0 and 10, the weights 0, 1, 4, 1
# go to the first and 9, 10 to the second; the centres move to 1.5 and 9.5, and the
# assignment stays: done.
w_demo = np.array([[0.0, 1.0, 9.0], [10.0, 4.0, 1.0]])
codebook, indices = kmeans_share(w_demo, [0.0, 10.0])
assert codebook.shape == (2,), f"codebook shape {codebook.shape}, expected (2,)"
assert indices.shape == w_demo.shape, f"indices shape {indices.shape}, expected {w_demo.shape}"
assert np.allclose(codebook, [1.5, 9.5]), codebook
assert np.array_equal(indices, [[0, 0, 1], [1, 0, 0]]), indices
# a centre that attracts no weight stays where it is
codebook, indices = kmeans_share(np.array([1.0, 2.0, 3.0]), [2.0, 100.0])
assert np.allclose(codebook, [2.0, 100.0]) and np.array_equal(indices, [0, 0, 0]), codebook
print("kmeans_share: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "kmeans_share", "points": 3}
rng = hidden_rng(6101)  # keyed by the instructor's secret when grading
INPUTS = {
    "w4": clustered(rng, [-0.9, -0.2, 0.3, 1.1], 15, 0.08, (6, 10)),
    "w8": clustered(rng, np.linspace(-2, 2, 8), 9, 0.05, (3, 4, 6)),
    "init4": np.array([-1.0, -0.5, 0.5, 1.0]) + 0.05 * rng.standard_normal(4),
    "init8": np.linspace(-2.2, 2.2, 8),
    # worked by hand: from 0 and 6, {0, 2} and {5, 7, 6} give centres 1 and 6, then stop;
    # from 0 and 3, {0} and {2, 5, 7, 6}: one update gives 0 and 5; from 0, 3 and 50, the same
    # first update (nothing goes to 50, which stays), then 2 moves to 0's cluster: {0, 2} and
    # {5, 7, 6} give 1, 6 and 50 after two updates, then stop (init given as a list, as the
    # self-checks do); max_iter = 0 leaves the centres 0 and 3 with the first assignment
    "w_hand": np.array([0.0, 2.0, 5.0, 7.0, 6.0]),
}


def probe_four(inputs):
    codebook, indices = kmeans_share(inputs["w4"], inputs["init4"])
    return {"codebook": codebook, "indices": indices}


def probe_eight(inputs):
    codebook, indices = kmeans_share(inputs["w8"], inputs["init8"])
    return {"shared": codebook[indices], "indices": indices}


def probe_hand(inputs):
    codebook, indices = kmeans_share(inputs["w_hand"], np.array([0.0, 6.0]))
    one_step, _ = kmeans_share(inputs["w_hand"], np.array([0.0, 3.0]), max_iter=1)
    two_steps, two_indices = kmeans_share(inputs["w_hand"], [0.0, 3.0, 50.0])  # init as a list
    no_step, no_step_indices = kmeans_share(inputs["w_hand"], np.array([0.0, 3.0]), max_iter=0)
    return {"codebook": codebook, "indices": indices, "one_step": one_step,
            "two_steps": two_steps, "two_indices": two_indices,
            "no_step": no_step, "no_step_indices": no_step_indices}


CASES = [
    case("(6, 10) weights in 4 clusters: codebook and indices equal scikit-learn's k-means from "
         "the same start",
         ['ref_c, ref_i = sklearn_kmeans(inputs["w4"], inputs["init4"])',
          'all_of(close(outputs["four"]["codebook"], ref_c, rtol=1e-9, atol=1e-12), '
          'equal(outputs["four"]["indices"], ref_i))'], points=1,
         hint="assign each weight to the nearest centre, move each centre to its members' mean, "
              "repeat until nothing changes"),
    case("(3, 4, 6) weights in 8 clusters: codebook[indices] equals scikit-learn's shared "
         "weights, indices shaped like w",
         ['ref_c, ref_i = sklearn_kmeans(inputs["w8"], inputs["init8"])',
          'all_of(close(outputs["eight"]["shared"], ref_c[ref_i], rtol=1e-9, atol=1e-12), '
          'equal(outputs["eight"]["indices"], ref_i))'], points=1,
         hint="flatten w to cluster it, and reshape the indices back to w's shape"),
    case("hand-worked: 0, 2, 5, 7, 6 from centres 0 and 6; no update and one update from 0 and 3; "
         "from 0, 3 and 50, a run of more than one update with a centre that attracts no weight",
         'all_of(close(outputs["hand"]["codebook"], [1.0, 6.0]), '
         'equal(outputs["hand"]["indices"], [0, 0, 1, 1, 1]), '
         'close(outputs["hand"]["one_step"], [0.0, 5.0], label="one update"), '
         'close(outputs["hand"]["no_step"], [0.0, 3.0], label="max_iter 0"), '
         'equal(outputs["hand"]["no_step_indices"], [0, 1, 1, 1, 1], label="indices with max_iter 0"), '
         'close(outputs["hand"]["two_steps"], [1.0, 6.0, 50.0], label="from 0, 3 and 50"), '
         'equal(outputs["hand"]["two_indices"], [0, 0, 1, 1, 1], label="indices from 0, 3 and 50"))',
         points=1,
         hint="a centre is the mean of the weights assigned to it, not their sum (one with none "
              "stays where it is); max_iter counts updates of the centres; stop when the "
              "assignment no longer changes"),
]

# %% [markdown]
# ## Question 2 (2 points): the gradient of the codebook
#
# The shared layer's weights are `codebook[indices]`. Given `dw`, the gradient of the loss
# with respect to those weights (shaped like `indices`), return the gradient with respect to
# the codebook, shape `(k,)`: by the chain rule,
# $\partial L / \partial c_j = \sum_{i:\,a(i) = j} \partial L / \partial w_i$. A centre that no
# weight uses gets 0.

# %%
def codebook_gradient(dw, indices, k):
    """dL/dcodebook (k,) from dL/dw, for the shared weights w = codebook[indices]."""
    # BEGIN SOLUTION
    return np.bincount(np.asarray(indices).ravel(), weights=np.asarray(dw, dtype=float).ravel(),
                       minlength=k)
    # END SOLUTION


# %%
# Self-check for question 2: three weights share centre 0, one uses centre 2, none centre 1.
dw_demo = np.array([[1.0, -2.0], [0.5, 4.0]])
g = codebook_gradient(dw_demo, np.array([[0, 0], [2, 0]]), 3)
assert g.shape == (3,), f"shape {g.shape}, expected (3,)"
assert np.allclose(g, [3.0, 0.0, 0.5]), g
print("codebook_gradient: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "codebook_gradient", "points": 2}
rng = hidden_rng(6102)  # keyed by the instructor's secret when grading
INPUTS = {
    "indices": rng.integers(0, 16, (7, 5, 3)), "dw": rng.standard_normal((7, 5, 3)),
    "codebook": rng.standard_normal(16),
    "indices_gap": np.repeat(np.array([0, 3, 3, 5]), 6).reshape(4, 6),
    "dw_gap": rng.standard_normal((4, 6)),
}


def probe_random(inputs):
    return codebook_gradient(inputs["dw"], inputs["indices"], 16)


def probe_gap(inputs):
    return codebook_gradient(inputs["dw_gap"], inputs["indices_gap"], 8)


def autograd(codebook, indices, dw):
    shared = lambda codebook: codebook[torch.as_tensor(indices)]  # noqa: E731
    return torch_gradients(shared, {"codebook": codebook}, dw)[1]["codebook"]


CASES = [
    case("(7, 5, 3) indices into 16 centres: matches torch.autograd of codebook[indices] "
         "(random upstream gradient)",
         'close(outputs["random"], autograd(inputs["codebook"], inputs["indices"], inputs["dw"]))',
         points=1, hint="add up the gradients of all the weights with the same index"),
    case("8 centres of which only 0, 3 and 5 are used: unused centres get 0, the length is k",
         'close(outputs["gap"], autograd(np.zeros(8), inputs["indices_gap"], inputs["dw_gap"]))',
         points=1, hint="return k entries even when some centres are unused (minlength)"),
]

# %% [markdown]
# ## Question 3 (1 point): what the shared layer stores
#
# A layer of `num_weights` weights shared among $k = 2^b$ values stores one $b$-bit index per
# weight and the $k$ centres in float32 (32 bits each). Return the number of bits stored.

# %%
def shared_storage_bits(num_weights, bits):
    """Bits stored by a layer of num_weights weights shared among 2**bits float32 values."""
    # BEGIN SOLUTION
    return num_weights * bits + 32 * 2 ** bits
    # END SOLUTION


# %%
# Self-check for question 3: 10 weights, 1-bit indices: 10 bits of indices, 2 float32 centres.
assert shared_storage_bits(10, 1) == 74, shared_storage_bits(10, 1)
print("shared_storage_bits: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "shared_storage_bits", "points": 1}
rng = hidden_rng(6103)  # keyed by the instructor's secret when grading
INPUTS = {"sizes": rng.integers(1000, 100000, 3)}


def probe_sizes(inputs):
    return np.array([shared_storage_bits(int(n), b) for n, b in zip(inputs["sizes"], (2, 4, 8))])


def probe_fc(inputs):
    return np.array([shared_storage_bits(4096 * 4096, 5)])


CASES = [
    case("three layers at 2, 4 and 8 bits, and a 4096 x 4096 layer at 5 bits (worked by hand: "
         "83,886,080 + 1,024 bits)",
         'all_of(equal(outputs["sizes"], inputs["sizes"] * np.array([2, 4, 8]) '
         '+ 32 * np.array([4, 16, 256])), equal(outputs["fc"], [83887104]))',
         points=1, hint="b bits per weight, plus 2**b centres of 32 bits each"),
]
