"""dlbook.losses against torch in float64, and the sources' worked values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TIGHT, torch_forward_backward
from dlbook import losses as L
from dlbook.gradcheck import GradientCheckError, check_gradients


def test_mse_matches_torch(rng):
    pred, target = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    loss, cache = L.mse_forward(pred, target)
    dpred = L.mse_backward(cache, dout=0.7)
    out_t, g = torch_forward_backward(lambda p, t: F.mse_loss(p, t), {"p": pred, "t": target}, np.array(0.7))
    assert loss == pytest.approx(float(out_t), rel=1e-12)
    np.testing.assert_allclose(dpred, g["p"], **TIGHT)


def test_binary_cross_entropy_matches_torch(rng):
    prob = rng.uniform(0.02, 0.98, (5, 2))
    target = rng.uniform(0, 1, (5, 2))
    target[0] = [0.0, 1.0]
    loss, cache = L.binary_cross_entropy_forward(prob, target)
    out_t, g = torch_forward_backward(lambda p, t: F.binary_cross_entropy(p, t), {"p": prob, "t": target},
                                      np.array(1.3))
    assert loss == pytest.approx(float(out_t), rel=1e-12)
    np.testing.assert_allclose(L.binary_cross_entropy_backward(cache, 1.3), g["p"], **TIGHT)


def test_binary_cross_entropy_sources_values():
    # (target, prob) = (1, 0.9), (0, 0.9), (1, 0.5): the deep-learning textbook chapter, cross-entropy listing
    for t, p, expected in [(1, 0.9, 0.1053605), (0, 0.9, 2.3025851), (1, 0.5, 0.6931472)]:
        assert L.binary_cross_entropy_forward(np.array([p]), np.array([t]))[0] == pytest.approx(expected, abs=1e-7)
    # y = [1, 0, 1], y_hat = [0.9, 0.2, 0.6]: J = 0.27978 (the CNN textbook chapter (2-12), recomputed)
    loss, _ = L.binary_cross_entropy_forward(np.array([0.9, 0.2, 0.6]), np.array([1.0, 0.0, 1.0]))
    assert loss == pytest.approx(0.27978, abs=1e-5)
    # certain and wrong: torch clamps the log at -100 instead of returning inf
    assert L.binary_cross_entropy_forward(np.array([0.0]), np.array([1.0]))[0] == 100.0


@pytest.mark.parametrize("n, k", [(1, 2), (6, 5), (32, 10)])
def test_cross_entropy_matches_torch(n, k, rng):
    logits = 4 * rng.standard_normal((n, k))
    targets = rng.integers(0, k, n)
    loss, cache = L.cross_entropy_forward(logits, targets)
    out_t, g = torch_forward_backward(lambda z, y: F.cross_entropy(z, y), {"z": logits, "y": targets},
                                      np.array(0.5))
    assert loss == pytest.approx(float(out_t), rel=1e-12)
    np.testing.assert_allclose(L.cross_entropy_backward(cache, 0.5), g["z"], **TIGHT)


def test_cross_entropy_stable_and_central_differences(rng):
    logits = rng.standard_normal((3, 4))
    targets = np.array([0, 3, 1])
    _, cache = L.cross_entropy_forward(logits, targets)
    check_gradients(lambda z: L.cross_entropy_forward(z, targets)[0], {"z": logits},
                    {"z": L.cross_entropy_backward(cache)})
    with pytest.raises(GradientCheckError):  # the check can fail: drop the 1/N
        check_gradients(lambda z: L.cross_entropy_forward(z, targets)[0], {"z": logits},
                        {"z": 3 * L.cross_entropy_backward(cache)})
    big, _ = L.cross_entropy_forward(np.array([[1000.0, 1001.0]]), np.array([1]))
    assert big == pytest.approx(-np.log(0.7310585786300049), rel=1e-12)


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match=r"targets: expected shape \(2,\), got \(3,\)"):
        L.cross_entropy_forward(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"class indices must lie in \[0, 3\)"):
        L.cross_entropy_forward(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="integer class indices"):
        L.cross_entropy_forward(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"logits: expected a 2-D array \(N, K\)"):
        L.cross_entropy_forward(np.zeros(3), np.array([0]))
    with pytest.raises(ValueError, match="prob: expected probabilities"):
        L.binary_cross_entropy_forward(np.array([1.5]), np.array([1.0]))
    with pytest.raises(ValueError, match=r"target: expected shape \(2,\)"):
        L.mse_forward(np.zeros(2), np.zeros(3))


# --- regression losses -------------------------------------------------------------------------

def _pair(rng, shape=(5, 3)):
    pred, target = 2 * rng.standard_normal(shape), 2 * rng.standard_normal(shape)
    return pred, target


@pytest.mark.parametrize("name, fwd, bwd, torch_fn, hyper", [
    ("l1", L.l1_forward, L.l1_backward, F.l1_loss, {}),
    ("smooth_l1", L.smooth_l1_forward, L.smooth_l1_backward, F.smooth_l1_loss, {}),
    ("smooth_l1_beta", L.smooth_l1_forward, L.smooth_l1_backward, F.smooth_l1_loss, {"beta": 2.5}),
    ("smooth_l1_beta0", L.smooth_l1_forward, L.smooth_l1_backward, F.smooth_l1_loss, {"beta": 0.0}),
])
@pytest.mark.parametrize("shape", [(5, 3), (7,), (2, 3, 4)])
def test_regression_losses_match_torch(name, fwd, bwd, torch_fn, hyper, shape, rng):
    pred, target = _pair(rng, shape)
    pred.flat[0] = target.flat[0]  # a zero residual: sgn(0) = 0 as in torch
    p0 = pred.copy()
    loss, cache = fwd(pred, target, **hyper)
    out_t, g = torch_forward_backward(lambda p, t: torch_fn(p, t, **hyper),
                                      {"p": pred, "t": target}, np.array(0.7))
    assert loss == pytest.approx(float(out_t), rel=1e-12)
    np.testing.assert_allclose(bwd(cache, 0.7), g["p"], **TIGHT)
    np.testing.assert_array_equal(pred, p0)


def _tukey_torch(p, t, c=L.TUKEY_C):
    r = p - t
    inner = c ** 2 / 6 * (1 - (1 - (r / c) ** 2) ** 3)
    return torch.where(r.abs() <= c, inner, torch.full_like(r, c ** 2 / 6)).mean()


@pytest.mark.parametrize("c", [L.TUKEY_C, 1.5])
def test_tukey_matches_torch_autograd_of_the_formula_and_central_differences(c, rng):
    pred, target = 3 * rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    loss, cache = L.tukey_biweight_forward(pred, target, c)
    out_t, g = torch_forward_backward(lambda p, t: _tukey_torch(p, t, c), {"p": pred, "t": target},
                                      np.array(1.7))
    assert loss == pytest.approx(float(out_t), rel=1e-12)
    np.testing.assert_allclose(L.tukey_biweight_backward(cache, 1.7), g["p"], **TIGHT)
    fn = lambda p: L.tukey_biweight_forward(p, target, c)[0]  # noqa: E731
    check_gradients(fn, {"p": pred}, {"p": L.tukey_biweight_backward(cache)})
    with pytest.raises(GradientCheckError):  # the gradient of the L2 loss is not Tukey's
        check_gradients(fn, {"p": pred}, {"p": (pred - target) / pred.size})


def test_tukey_sources_properties():
    c = L.TUKEY_C
    assert L.tukey_biweight(np.array([c]))[0] == pytest.approx(c * c / 6, rel=1e-15)
    far = L.tukey_biweight(np.array([c, 10.0, -1e6]))
    np.testing.assert_allclose(far, c * c / 6, rtol=1e-15)  # flat beyond c
    small = np.array([1e-4])
    assert L.tukey_biweight(small)[0] == pytest.approx(small[0] ** 2 / 2, rel=1e-6)


def test_kl_div_matches_torch_and_equals_soft_cross_entropy_minus_entropy(rng):
    logits = rng.standard_normal((4, 5))
    target = rng.dirichlet(np.ones(5), 4)
    target[0] = [0.0, 0.5, 0.5, 0.0, 0.0]  # zeros contribute 0 log 0 = 0
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    loss, cache = L.kl_div_forward(log_probs, target)
    out_t, g = torch_forward_backward(lambda lp, t: F.kl_div(lp, t, reduction="batchmean"),
                                      {"lp": log_probs, "t": target}, np.array(0.3))
    assert loss == pytest.approx(float(out_t), rel=1e-12)
    np.testing.assert_allclose(L.kl_div_backward(cache, 0.3), g["lp"], **TIGHT)
    soft_ce = -np.sum(target * log_probs) / 4
    ent = -np.sum(np.where(target > 0, target * np.log(np.where(target > 0, target, 1)), 0)) / 4
    assert loss == pytest.approx(soft_ce - ent, rel=1e-12)
    assert loss != pytest.approx(soft_ce, rel=1e-6)  # equal only up to the entropy


# --- multi-class hinge and ramp ----------------------------------------------------------------

@pytest.mark.parametrize("p, margin, weighted", [(1, 1.0, False), (2, 1.0, False), (1, 0.5, True),
                                                 (2, 2.0, True)])
@pytest.mark.parametrize("n, k", [(1, 2), (7, 4), (12, 10)])
def test_multi_margin_matches_torch(p, margin, weighted, n, k, rng):
    scores = rng.standard_normal((n, k))
    targets = rng.integers(0, k, n)
    weight = rng.uniform(0.2, 2.0, k) if weighted else None
    loss, cache = L.multi_margin_forward(scores, targets, p=p, margin=margin, weight=weight)
    w_t = None if weight is None else torch.from_numpy(weight)  # torch has no weight gradient
    fn = (lambda s, y: F.multi_margin_loss(s, y, p=p, margin=margin, weight=w_t))
    out_t, g = torch_forward_backward(fn, {"s": scores, "y": targets}, np.array(1.3))
    assert loss == pytest.approx(float(out_t), rel=1e-12)
    np.testing.assert_allclose(L.multi_margin_backward(cache, 1.3), g["s"], **TIGHT)


def test_multi_margin_central_differences_and_a_wrong_gradient_fails(rng):
    scores = rng.standard_normal((5, 4))
    targets = np.array([0, 3, 1, 1, 2])
    _, cache = L.multi_margin_forward(scores, targets, p=2)
    fn = lambda s: L.multi_margin_forward(s, targets, p=2)[0]  # noqa: E731
    good = L.multi_margin_backward(cache)
    check_gradients(fn, {"s": scores}, {"s": good})
    wrong = good.copy()
    wrong[np.arange(5), targets] = 0.0  # forgot the true class's share
    with pytest.raises(GradientCheckError):
        check_gradients(fn, {"s": scores}, {"s": wrong})


def test_ramp_of_a_margin_is_the_truncated_hinge():
    z = np.array([-3.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    np.testing.assert_array_equal(L.ramp(z, s=-0.5), np.minimum(L.hinge(z), 1.5))
    np.testing.assert_array_equal(L.hinge(z), np.maximum(0, 1 - z))
    assert L.ramp(np.array([-100.0]), s=-0.5)[0] == 1.5  # capped at 1 - s


@pytest.mark.parametrize("k, s", [(2, None), (3, None), (5, -0.3), (4, 0.5)])
def test_ramp_loss_central_differences(k, s, rng):
    scores = 1.5 * rng.standard_normal((8, k))
    targets = rng.integers(0, k, 8)
    loss, cache = L.ramp_forward(scores, targets, s)
    fn = lambda sc: L.ramp_forward(sc, targets, s)[0]  # noqa: E731
    grad = L.ramp_backward(cache, 0.6)
    check_gradients(fn, {"sc": scores}, {"sc": grad}, np.array(0.6))
    with pytest.raises(GradientCheckError):
        check_gradients(fn, {"sc": scores}, {"sc": -grad}, np.array(0.6))


def test_ramp_loss_definitions(rng):
    scores = rng.standard_normal((6, 3))
    targets = rng.integers(0, 3, 6)
    loss, _ = L.ramp_forward(scores, targets)  # s = -1 / (K - 1) = -0.5
    z = scores[np.arange(6), targets][:, None] - scores
    terms = np.minimum(np.maximum(0, 1 - z), 1.5)
    terms[np.arange(6), targets] = 0
    assert loss == pytest.approx(terms.sum() / 6, rel=1e-14)
    # two classes: the binary ramp of f = s_1 - s_0 with y = +-1, s = -1
    two = rng.standard_normal((9, 2))
    y = rng.integers(0, 2, 9)
    margin = np.where(y == 1, 1, -1) * (two[:, 1] - two[:, 0])
    assert L.ramp_forward(two, y)[0] == pytest.approx(L.ramp(margin, -1.0).mean(), rel=1e-14)
    # far outliers: the hinge grows without bound, the ramp does not
    far = np.array([[0.0, 50.0, 0.0]])
    assert L.ramp_forward(far, np.array([0]))[0] == pytest.approx(1.5 + 1.0)
    assert L.multi_margin_forward(far, np.array([0]))[0] * 3 == pytest.approx(51.0 + 1.0)


# --- L-Softmax -----------------------------------------------------------------------------------

def test_lsoftmax_psi_properties():
    theta = np.linspace(0, np.pi, 2001)
    for m in (1, 2, 3, 4):
        psi = L.lsoftmax_psi(theta, m)
        assert np.all(np.diff(psi) < 0)  # strictly decreasing
        assert np.all(psi <= np.cos(theta) + 1e-12)
        np.testing.assert_allclose(psi[theta <= np.pi / m], np.cos(m * theta[theta <= np.pi / m]),
                                   rtol=0, atol=1e-15)
        assert psi[0] == 1.0 and psi[-1] == pytest.approx(1 - 2 * m, abs=1e-12)
        assert L.lsoftmax_psi(np.array([np.pi / m]), m)[0] == pytest.approx(-1.0, abs=1e-12)
    np.testing.assert_allclose(L.lsoftmax_psi(np.array([0.0, np.pi / 4, np.pi]), 4), [1, -1, -7],
                               atol=1e-12)
    np.testing.assert_allclose(L.lsoftmax_psi(theta, 1), np.cos(theta), atol=1e-15)


def test_lsoftmax_with_m1_is_softmax_cross_entropy(rng):
    x, weight = rng.standard_normal((6, 4)), rng.standard_normal((3, 4))
    y = rng.integers(0, 3, 6)
    loss, cache = L.large_margin_softmax_forward(x, weight, y, m=1)
    out_t, g = torch_forward_backward(lambda x, w, y: F.cross_entropy(x @ w.T, y),
                                      {"x": x, "w": weight, "y": y}, np.array(0.9))
    assert loss == pytest.approx(float(out_t), rel=1e-12)
    dx, dw = L.large_margin_softmax_backward(cache, 0.9)
    np.testing.assert_allclose(dx, g["x"], **TIGHT)
    np.testing.assert_allclose(dw, g["w"], **TIGHT)
    loss2, _ = L.large_margin_softmax_forward(x, weight, y, m=2)
    assert loss2 > loss  # the margin makes the true class harder to win


@pytest.mark.parametrize("m, lam", [(2, 0.0), (3, 0.0), (4, 0.0), (2, 5.0), (4, 1.5)])
def test_lsoftmax_central_differences(m, lam, rng):
    x, weight = rng.standard_normal((7, 3)), rng.standard_normal((4, 3))
    y = rng.integers(0, 4, 7)
    x0, w0 = x.copy(), weight.copy()
    _, cache = L.large_margin_softmax_forward(x, weight, y, m=m, lam=lam)
    dx, dw = L.large_margin_softmax_backward(cache, 1.3)
    fn = lambda x, w: L.large_margin_softmax_forward(x, w, y, m=m, lam=lam)[0]  # noqa: E731
    check_gradients(fn, {"x": x, "w": weight}, {"x": dx, "w": dw}, np.array(1.3),
                    rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(weight, w0)
    wrong = dw.copy()
    wrong[y[0]] *= 1.01
    with pytest.raises(GradientCheckError, match="'w'"):
        check_gradients(fn, {"x": x, "w": weight}, {"w": wrong}, np.array(1.3))


def test_lsoftmax_target_logit_follows_the_definition(rng):
    x, weight = rng.standard_normal((5, 3)), rng.standard_normal((4, 3))
    y = rng.integers(0, 4, 5)
    _, cache = L.large_margin_softmax_forward(x, weight, y, m=3)
    logp = cache[3]
    theta = np.arccos(np.sum(x * weight[y], 1) / np.linalg.norm(x, axis=1)
                      / np.linalg.norm(weight[y], axis=1))
    logits = x @ weight.T
    logits[np.arange(5), y] = (np.linalg.norm(x, axis=1) * np.linalg.norm(weight[y], axis=1)
                               * L.lsoftmax_psi(theta, 3))
    expected = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(logp, expected, rtol=1e-12, atol=1e-12)


# --- center loss -------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_center_loss_matches_torch(reduction, rng):
    x, centers = rng.standard_normal((8, 2)), rng.standard_normal((3, 2))
    y = rng.integers(0, 3, 8)

    def torch_center(x, c, y):
        out = 0.5 * ((x - c[y]) ** 2).sum()
        return out if reduction == "sum" else out / x.shape[0]

    loss, cache = L.center_loss_forward(x, centers, y, reduction)
    out_t, g = torch_forward_backward(torch_center, {"x": x, "c": centers, "y": y}, np.array(0.4))
    assert loss == pytest.approx(float(out_t), rel=1e-12)
    np.testing.assert_allclose(L.center_loss_backward(cache, 0.4), g["x"], **TIGHT)


def test_center_update_follows_wen_et_al(rng):
    centers, x = rng.standard_normal((4, 3)), rng.standard_normal((9, 3))
    y = np.array([0, 0, 1, 2, 2, 2, 0, 1, 2])  # class 3 absent
    c0 = centers.copy()
    new = L.center_update(centers, x, y, alpha=0.3)
    for j in range(4):  # the paper's formula, one class at a time
        members = x[y == j]
        delta = np.sum(centers[j] - members, axis=0) / (1 + len(members))
        np.testing.assert_allclose(new[j], centers[j] - 0.3 * delta, rtol=1e-14)
    np.testing.assert_array_equal(new[3], centers[3])
    np.testing.assert_array_equal(centers, c0)
    full = L.center_update(centers, x, y, alpha=1.0)
    np.testing.assert_allclose(full[0], (centers[0] + x[y == 0].sum(0)) / 4, rtol=1e-14)
    assert not np.allclose(full[0], x[y == 0].mean(0))  # not the plain batch mean


def test_new_losses_bad_input(rng):
    with pytest.raises(ValueError, match=r"target: expected shape \(3,\)"):
        L.l1_forward(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="beta"):
        L.smooth_l1_forward(np.zeros(3), np.zeros(3), beta=-1.0)
    with pytest.raises(ValueError, match="c: expected a positive"):
        L.tukey_biweight_forward(np.zeros(3), np.zeros(3), c=0.0)
    with pytest.raises(ValueError, match="target: expected non-negative"):
        L.kl_div_forward(np.zeros((1, 2)), np.array([[-0.5, 1.5]]))
    with pytest.raises(ValueError, match="p: expected 1 or 2"):
        L.multi_margin_forward(np.zeros((2, 3)), np.array([0, 1]), p=3)
    with pytest.raises(ValueError, match=r"weight: expected shape \(3,\)"):
        L.multi_margin_forward(np.zeros((2, 3)), np.array([0, 1]), weight=np.ones(2))
    with pytest.raises(ValueError, match="s: expected s < 1"):
        L.ramp_forward(np.zeros((2, 3)), np.array([0, 1]), s=1.0)
    with pytest.raises(ValueError, match="m: expected a positive int"):
        L.large_margin_softmax_forward(np.ones((2, 3)), np.ones((4, 3)), np.array([0, 1]), m=1.5)
    with pytest.raises(ValueError, match=r"weight: expected shape \(4, 3\)"):
        L.large_margin_softmax_forward(np.ones((2, 3)), np.ones((4, 2)), np.array([0, 1]))
    with pytest.raises(ValueError, match="non-zero norm"):
        L.large_margin_softmax_forward(np.zeros((2, 3)), np.ones((4, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"class indices must lie in \[0, 3\)"):
        L.center_loss_forward(np.zeros((2, 2)), np.zeros((3, 2)), np.array([0, 3]))
    with pytest.raises(ValueError, match="reduction"):
        L.center_loss_forward(np.zeros((2, 2)), np.zeros((3, 2)), np.array([0, 1]), "max")
    with pytest.raises(ValueError, match="alpha"):
        L.center_update(np.zeros((3, 2)), np.zeros((2, 2)), np.array([0, 1]), alpha=2.0)


def test_classification_losses_leave_their_arguments_alone(rng):
    scores, x = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
    weight, centers = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    y = rng.integers(0, 4, 6)
    copies = [a.copy() for a in (scores, x, weight, centers, y)]
    for fwd, bwd, args in [(L.multi_margin_forward, L.multi_margin_backward, (scores, y)),
                           (L.ramp_forward, L.ramp_backward, (scores, y)),
                           (L.large_margin_softmax_forward, L.large_margin_softmax_backward,
                            (x, weight, y)),
                           (L.center_loss_forward, L.center_loss_backward, (x, centers, y))]:
        _, cache = fwd(*args)
        first, second = bwd(cache, 0.5), bwd(cache, 0.5)  # a backward leaves the cache intact
        first, second = (g if isinstance(g, tuple) else (g,) for g in (first, second))
        for a, b in zip(first, second):
            np.testing.assert_array_equal(a, b)
    for before, after in zip(copies, (scores, x, weight, centers, y)):
        np.testing.assert_array_equal(before, after)
