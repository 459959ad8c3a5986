"""dlbook.perceptron: the step unit and the Hebb, perceptron and delta rules.

The delta rule and the perceptron rule are stochastic gradient descent on a per-sample loss, so
torch (autograd + torch.optim.SGD, batch size 1, same visiting order) is their oracle in float64.
Hebb's rule has closed forms; the perceptron's convergence is checked against Novikoff's bound.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TIGHT
from dlbook import perceptron as P
from dlbook.data import make_blobs, make_xor


def separable_blobs(rng, n=40):
    X, y = make_blobs(n, [[-2.0, -1.0], [2.0, 1.5]], std=0.6, rng=rng)
    return X, y


def torch_online_sgd(X, targets, lr, epochs, seed, w0, b0, loss_fn):
    """Reference: SGD with batch size 1 in torch, visiting samples in the order rng gives."""
    order_rng = np.random.default_rng(seed)
    w = torch.tensor(w0, requires_grad=True)
    b = torch.tensor(float(b0), requires_grad=True)
    opt = torch.optim.SGD([w, b], lr=lr)
    Xt, tt = torch.from_numpy(X), torch.from_numpy(np.asarray(targets, dtype=np.float64))
    for _ in range(epochs):
        for i in order_rng.permutation(len(X)):
            opt.zero_grad()
            loss_fn(Xt[i] @ w + b, tt[i]).backward()
            opt.step()
    return w.detach().numpy(), float(b.detach())


# --- the step unit ----------------------------------------------------------------------

def test_unit_step_is_not_the_sign_function():
    x = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(P.unit_step(x), [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(np.sign(x), [-1.0, 0.0, 1.0])  # what "sign" would give
    torch_step = torch.heaviside(torch.from_numpy(x), torch.tensor(1.0))
    np.testing.assert_array_equal(P.unit_step(x), torch_step.numpy())


def test_perceptron_predict_matches_torch(rng):
    X = rng.standard_normal((7, 3))
    w, b = rng.standard_normal(3), 0.3
    ref = torch.heaviside(torch.from_numpy(X) @ torch.from_numpy(w) + b, torch.tensor(1.0)).numpy()
    out = P.perceptron_predict(X, w, b)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, ref)


# --- perceptron rule --------------------------------------------------------------------

def test_perceptron_rule_equals_sgd_on_the_perceptron_criterion(rng):
    # A mistake on sample (x, t) is a step of SGD on max(0, -s (w.x + b)), s = 2t - 1. With a
    # random non-zero start no net input is exactly 0, where the two conventions differ.
    X, y = separable_blobs(rng)
    y = y.copy()
    y[:3] = 1 - y[:3]  # some label noise, so updates keep happening over several epochs
    w0, b0 = rng.standard_normal(2), 0.1
    w, b, _ = P.perceptron_rule(X, y, lr=0.3, epochs=4, rng=np.random.default_rng(5), w=w0, b=b0,
                                stop_when_converged=False)
    crit = lambda net, t: torch.relu(-(2 * t - 1) * net)
    w_t, b_t = torch_online_sgd(X, y, 0.3, 4, 5, w0, b0, crit)
    np.testing.assert_allclose(w, w_t, **TIGHT)
    assert b == pytest.approx(b_t, rel=1e-10, abs=1e-12)
    # negative case: a different learning rate is visibly a different run
    w_other, _, _ = P.perceptron_rule(X, y, lr=0.31, epochs=4, rng=np.random.default_rng(5), w=w0, b=b0,
                                      stop_when_converged=False)
    assert not np.allclose(w_other, w_t, **TIGHT)


def test_perceptron_converges_on_separable_data_within_novikoffs_bound(rng):
    X, y = separable_blobs(rng)
    w, b, hist = P.perceptron_rule(X, y, epochs=100, rng=rng)
    assert hist["updates"][-1] == 0 and hist["errors"][-1] == 0
    np.testing.assert_array_equal(P.perceptron_predict(X, w, b), y)
    # Novikoff: mistakes <= (R / gamma)^2 for any unit separator u (bias folded into x).
    Xa = np.column_stack([X, np.ones(len(X))])
    u = np.append(w, b) / np.linalg.norm(np.append(w, b))
    gamma = np.min((2 * y - 1) * (Xa @ u))
    radius = np.max(np.linalg.norm(Xa, axis=1))
    assert gamma > 0
    assert sum(hist["updates"]) <= (radius / gamma) ** 2


def test_perceptron_never_converges_on_xor(rng):
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0, 1, 1, 0])
    _, _, hist = P.perceptron_rule(X, y, epochs=200, rng=rng)
    assert hist.epochs == 200
    assert min(hist["updates"]) >= 1 and min(hist["errors"]) >= 1
    Xn, yn = make_xor(200, noise=0.1, rng=rng)
    _, _, hist = P.perceptron_rule(Xn, yn, epochs=50, rng=rng)
    assert min(hist["errors"]) > 0


def test_perceptron_learns_and_gate_in_data_order():
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0, 0, 0, 1])
    w, b, hist = P.perceptron_rule(X, y)
    np.testing.assert_array_equal(P.perceptron_predict(X, w, b), y)
    assert hist["updates"][-1] == 0
    # the same call is deterministic without rng
    w2, b2, _ = P.perceptron_rule(X, y)
    np.testing.assert_array_equal(w, w2)
    assert b == b2


# --- Hebb's rule ------------------------------------------------------------------------

def test_hebb_supervised_one_epoch_is_the_correlation(rng):
    X = rng.choice([-1.0, 1.0], size=(9, 4))
    t = rng.choice([-1.0, 1.0], size=9)
    w, b, _ = P.hebb_rule(X, t, lr=0.5, rng=rng)
    np.testing.assert_allclose(w, 0.5 * torch.from_numpy(X).T.mv(torch.from_numpy(t)).numpy(), **TIGHT)
    assert b == pytest.approx(0.5 * t.sum(), abs=1e-12)


def test_hebb_learns_bipolar_and_but_not_xor():
    X = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    w, b, hist = P.hebb_rule(X, np.array([1.0, -1.0, -1.0, -1.0]))
    np.testing.assert_allclose(w, [2.0, 2.0])
    assert b == -2.0 and hist["errors"] == [0.0]
    _, _, hist = P.hebb_rule(X, np.array([-1.0, 1.0, 1.0, -1.0]), epochs=5)
    assert min(hist["errors"]) > 0


def test_hebb_unsupervised_matches_the_matrix_product_and_grows(rng):
    X = rng.standard_normal((6, 3))
    w0 = rng.standard_normal(3)
    lr = 0.1
    w, b, hist = P.hebb_rule(X, None, lr=lr, epochs=3, w=w0)
    # each sample multiplies the augmented weights v = (w, b) by (I + lr xa xa^T), xa = (x, 1)
    v = torch.from_numpy(np.append(w0, 0.0))
    for _ in range(3):
        for x in X:
            xa = torch.from_numpy(np.append(x, 1.0))
            v = v + lr * (xa @ v) * xa
    np.testing.assert_allclose(np.append(w, b), v.numpy(), **TIGHT)
    norms = hist["weight_norm"]
    assert norms[0] < norms[1] < norms[2]


# --- delta rule -------------------------------------------------------------------------

@pytest.mark.parametrize("activation", ["linear", "sigmoid"])
def test_delta_rule_is_online_sgd_on_the_squared_error(activation, rng):
    X = rng.standard_normal((15, 3))
    t = rng.choice([-1.0, 1.0], 15) if activation == "linear" else rng.integers(0, 2, 15).astype(float)
    w0, b0 = 0.1 * rng.standard_normal(3), -0.2
    w, b, hist = P.delta_rule(X, t, lr=0.05, epochs=3, rng=np.random.default_rng(11), w=w0, b=b0,
                              activation=activation)
    f = (lambda z: z) if activation == "linear" else torch.sigmoid
    w_t, b_t = torch_online_sgd(X, t, 0.05, 3, 11, w0, b0, lambda net, tt: 0.5 * (tt - f(net)) ** 2)
    np.testing.assert_allclose(w, w_t, **TIGHT)
    assert b == pytest.approx(b_t, rel=1e-10, abs=1e-12)
    assert len(hist["mse"]) == 3
    # negative case: a wrong derivative (the linear slope on a sigmoid unit, or a factor 2) differs
    w_bad, _, _ = P.delta_rule(X, t, lr=0.1, epochs=3, rng=np.random.default_rng(11), w=w0, b=b0,
                               activation=activation)
    assert not np.allclose(w_bad, w_t, **TIGHT)


def test_widrow_hoff_reduces_the_error_towards_least_squares(rng):
    X = rng.standard_normal((200, 2))
    t = X @ np.array([1.5, -2.0]) + 0.5 + 0.1 * rng.standard_normal(200)
    w, b, hist = P.delta_rule(X, t, lr=0.01, epochs=30, rng=rng)
    assert hist["mse"][-1] < hist["mse"][0]
    A = np.column_stack([X, np.ones(len(X))])
    best = np.linalg.lstsq(A, t, rcond=None)[0]
    np.testing.assert_allclose(np.append(w, b), best, atol=0.02)


# --- bad input --------------------------------------------------------------------------

def test_bad_input_raises_clear_errors():
    X = np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"X: expected a 2-D array \(N, D\), got shape \(4,\)"):
        P.perceptron_rule(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match=r"targets: expected shape \(4,\), got \(3,\)"):
        P.perceptron_rule(X, np.zeros(3))
    with pytest.raises(ValueError, match="labels 0 and 1"):
        P.perceptron_rule(X, np.array([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="bipolar"):
        P.hebb_rule(X, np.array([0.0, 1.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match=r"w: expected shape \(2,\), got \(3,\)"):
        P.delta_rule(X, np.zeros(4), w=np.zeros(3))
    with pytest.raises(ValueError, match=r"w: expected shape \(2,\), got \(3,\)"):
        P.perceptron_predict(X, np.zeros(3))
    with pytest.raises(ValueError, match="lr: expected a positive number"):
        P.delta_rule(X, np.zeros(4), lr=0.0)
    with pytest.raises(ValueError, match="epochs: expected an integer >= 1"):
        P.hebb_rule(X, np.ones(4), epochs=0)
    with pytest.raises(ValueError, match="activation: expected 'linear' or 'sigmoid'"):
        P.delta_rule(X, np.zeros(4), activation="tanh")
    with pytest.raises(ValueError, match="empty"):
        P.perceptron_rule(np.zeros((0, 2)), np.zeros(0))
