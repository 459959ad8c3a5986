"""dlbook.optim.SGD against torch.optim.SGD, step for step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlbook.linear import Linear
from dlbook.optim import SGD


@pytest.mark.parametrize("hyper", [dict(), dict(momentum=0.9), dict(momentum=0.9, weight_decay=1e-2),
                                   dict(momentum=0.9, nesterov=True), dict(momentum=0.5, dampening=0.3)])
def test_sgd_matches_torch_over_several_steps(hyper, rng):
    layer = Linear(4, 3, rng=rng)
    p_t = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in layer.params.items()}
    opt = SGD(layer, lr=0.1, **hyper)
    opt_t = torch.optim.SGD(list(p_t.values()), lr=0.1, **hyper)
    for _ in range(5):
        grads = {k: rng.standard_normal(v.shape) for k, v in layer.params.items()}
        layer.grads = {k: g.copy() for k, g in grads.items()}
        for k, t in p_t.items():
            t.grad = torch.from_numpy(grads[k].copy())
        opt.step()
        opt_t.step()
        for k in p_t:
            np.testing.assert_allclose(layer.params[k], p_t[k].detach().numpy(), rtol=1e-13, atol=1e-14)


def test_sgd_updates_in_place_and_can_be_told_apart(rng):
    layer = Linear(2, 2, rng=rng)
    w = layer.params["w"]
    layer.grads = {k: np.ones_like(v) for k, v in layer.params.items()}
    SGD(layer, lr=0.5).step()
    assert layer.params["w"] is w  # same array object: views held elsewhere see the update
    momentum = SGD(layer, lr=0.1, momentum=0.9)
    plain = SGD(layer, lr=0.1)
    momentum.step(), momentum.step()
    after_momentum = layer.params["w"].copy()
    plain.step(), plain.step()
    # momentum moved 0.1*(1 + 1.9) = 0.29 in two steps, plain GD 0.2
    assert not np.allclose(after_momentum - layer.params["w"], 0)


def test_bad_hyper_parameters():
    layer = Linear(2, 2, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="lr"):
        SGD(layer, lr=-0.1)
    with pytest.raises(ValueError, match="lr"):
        SGD(layer, lr=float("nan"))
    with pytest.raises(ValueError, match="nesterov"):
        SGD(layer, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="model"):
        SGD([object()], lr=0.1)


@pytest.mark.parametrize("hyper", [dict(), dict(momentum=0.9), dict(momentum=0.9, nesterov=True),
                                   dict(momentum=0.8, dampening=0.1, weight_decay=1e-3)])
def test_sgd_trains_a_sequential_model_like_torch(hyper, rng):
    """Six steps of mini-batch SGD through a real backward pass: every parameter matches torch at every step."""
    import torch.nn.functional as F

    from dlbook.activations import ReLU, Tanh
    from dlbook.losses import cross_entropy_backward, cross_entropy_forward
    from dlbook.reference import copy_params_to_torch
    from dlbook.sequential import Sequential

    model = Sequential(Linear(5, 8, rng=rng), ReLU(), Linear(8, 6, rng=rng), Tanh(), Linear(6, 3, rng=rng))
    model_t = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 6), torch.nn.Tanh(),
                                  torch.nn.Linear(6, 3))
    copy_params_to_torch(model, model_t)
    opt = SGD(model, lr=0.2, **hyper)
    opt_t = torch.optim.SGD(model_t.parameters(), lr=0.2, **hyper)
    start = model[0].params["w"].copy()
    X = rng.standard_normal((24, 5))
    y = rng.integers(0, 3, 24)
    for step in range(6):
        xb, yb = X[4 * step:4 * step + 4], y[4 * step:4 * step + 4]
        loss, cache = cross_entropy_forward(model.forward(xb), yb)
        opt.zero_grad()
        model.backward(cross_entropy_backward(cache))
        opt.step()
        opt_t.zero_grad()
        loss_t = F.cross_entropy(model_t(torch.from_numpy(xb)), torch.from_numpy(yb))
        loss_t.backward()
        opt_t.step()
        assert loss == pytest.approx(loss_t.item(), rel=1e-12, abs=1e-13)
        for i in (0, 2, 4):
            np.testing.assert_allclose(model[i].params["w"], model_t[i].weight.detach().numpy(), rtol=1e-11,
                                       atol=1e-13, err_msg=f"step {step}, layer {i}")
            np.testing.assert_allclose(model[i].params["b"], model_t[i].bias.detach().numpy(), rtol=1e-11,
                                       atol=1e-13, err_msg=f"step {step}, layer {i}")
    # The agreement is not vacuous: the parameters really moved, and a torch model trained one
    # step further is told apart by the same comparison.
    assert np.abs(model[0].params["w"] - start).max() > 1e-3
    opt_t.step()
    assert not np.allclose(model[0].params["w"], model_t[0].weight.detach().numpy(), rtol=1e-11, atol=1e-13)


def test_sgd_momentum_buffer_is_a_sum_of_gradients_not_a_velocity(rng):
    # v <- mu v + g, p <- p - lr v (torch), not v <- mu v + lr g: with a constant gradient of 1,
    # the steps are lr * (1, 1 + mu, 1 + mu + mu^2), which only the torch form gives for lr != 1.
    layer = Linear(1, 1, rng=rng)
    start = layer.params["w"].copy()
    opt = SGD(layer, lr=0.5, momentum=0.5)
    moved = []
    for _ in range(3):
        layer.grads = {k: np.ones_like(v) for k, v in layer.params.items()}
        opt.step()
        moved.append(float((start - layer.params["w"])[0, 0]))
    np.testing.assert_allclose(moved, [0.5, 0.5 + 0.75, 0.5 + 0.75 + 0.875], rtol=1e-15)


# ---------------------------------------------------------------------------------------------
# Adaptive methods: Adagrad, Adadelta, RMSprop, Adam, AdamW against torch.optim, step for step.

from conftest import TIGHT  # noqa: E402
from dlbook.optim import Adadelta, Adagrad, Adam, AdamW, RMSprop  # noqa: E402

ADAPTIVE = [
    (Adagrad, dict(lr=0.1)),
    (Adagrad, dict(lr=0.5, lr_decay=0.05, weight_decay=1e-2, initial_accumulator_value=0.3,
                   eps=1e-6)),
    (Adadelta, dict()),
    (Adadelta, dict(lr=0.5, rho=0.95, eps=1e-4, weight_decay=0.05)),
    (RMSprop, dict()),
    (RMSprop, dict(lr=0.003, alpha=0.9, eps=1e-6, weight_decay=1e-2)),
    (RMSprop, dict(lr=0.01, momentum=0.9)),
    (RMSprop, dict(lr=0.01, centered=True)),
    (RMSprop, dict(lr=0.02, alpha=0.8, momentum=0.5, centered=True, weight_decay=0.1)),
    (Adam, dict()),
    (Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (Adam, dict(lr=0.05, amsgrad=True)),
    (Adam, dict(lr=0.05, betas=(0.5, 0.9), amsgrad=True, weight_decay=1e-2)),
    (AdamW, dict()),
    (AdamW, dict(lr=0.05, weight_decay=0.3)),
    (AdamW, dict(lr=0.05, betas=(0.7, 0.95), eps=1e-5, weight_decay=0.1, amsgrad=True)),
]


def _run_pair(cls, hyper, hyper_t, rng, steps=10):
    """Run ours (``hyper``) and torch (``hyper_t``) on the same random gradients; yield both."""
    layers = [Linear(4, 3, rng=rng), Linear(3, 1, rng=rng)]
    p_t = [{k: torch.tensor(v.copy(), requires_grad=True) for k, v in layer.params.items()}
           for layer in layers]
    opt = cls(layers, **hyper)
    opt_t = getattr(torch.optim, cls.__name__)([t for d in p_t for t in d.values()], **hyper_t)
    for _ in range(steps):
        for layer, tensors in zip(layers, p_t):
            # Gradients of varied size so that the adaptive denominators differ per coordinate.
            grads = {k: rng.standard_normal(v.shape) * rng.uniform(0.1, 3.0) for k, v in
                     layer.params.items()}
            layer.grads = {k: g.copy() for k, g in grads.items()}
            for k, t in tensors.items():
                t.grad = torch.from_numpy(grads[k].copy())
        opt.step()
        opt_t.step()
        yield layers, p_t


@pytest.mark.parametrize("cls, hyper", ADAPTIVE, ids=lambda v: getattr(v, "__name__", str(v)))
def test_adaptive_optimizer_matches_torch_step_for_step(cls, hyper, rng):
    for step, (layers, p_t) in enumerate(_run_pair(cls, hyper, hyper, rng)):
        if step == 0:
            start = [layer.params["w"].copy() for layer in layers]
        for layer, tensors in zip(layers, p_t):
            for k, t in tensors.items():
                np.testing.assert_allclose(layer.params[k], t.detach().numpy(), **TIGHT,
                                           err_msg=f"{cls.__name__} step {step} {k}")
    moved = max(np.abs(layer.params["w"] - s).max() for layer, s in zip(layers, start))
    assert moved > 1e-4  # the parameters kept moving after the first step


@pytest.mark.parametrize("cls, hyper, hyper_t", [
    (Adagrad, dict(lr=0.1), dict(lr=0.1, lr_decay=0.01)),
    (Adagrad, dict(lr=0.1), dict(lr=0.1, initial_accumulator_value=0.01)),
    (Adadelta, dict(), dict(rho=0.95)),
    (RMSprop, dict(), dict(centered=True)),
    (RMSprop, dict(momentum=0.9), dict(momentum=0.9, alpha=0.98)),
    (Adam, dict(lr=0.05), dict(lr=0.05, amsgrad=True)),
    (Adam, dict(lr=0.05, weight_decay=0.1), dict(lr=0.05, weight_decay=0.1, eps=1e-7)),
    (AdamW, dict(lr=0.05, weight_decay=0.1), dict(lr=0.05, weight_decay=0.11)),
])
def test_a_different_keyword_is_told_apart(cls, hyper, hyper_t, rng):
    """The step-for-step comparison fails when one keyword differs: the check has teeth."""
    with pytest.raises(AssertionError):
        for layers, p_t in _run_pair(cls, hyper, hyper_t, rng):
            for layer, tensors in zip(layers, p_t):
                for k, t in tensors.items():
                    np.testing.assert_allclose(layer.params[k], t.detach().numpy(), **TIGHT)


def test_adamw_decay_is_decoupled_not_an_l2_gradient_term(rng):
    # Same keywords, different methods: AdamW(weight_decay) is not Adam(weight_decay).
    hyper = dict(lr=0.05, weight_decay=0.2)
    ours_w, ours_a = Linear(3, 2, rng=rng), Linear(3, 2, rng=rng)
    ours_a.params = {k: v.copy() for k, v in ours_w.params.items()}
    opt_w, opt_a = AdamW(ours_w, **hyper), Adam(ours_a, **hyper)
    for _ in range(3):
        g = {k: rng.standard_normal(v.shape) for k, v in ours_w.params.items()}
        ours_w.grads, ours_a.grads = dict(g), dict(g)
        opt_w.step(), opt_a.step()
    assert not np.allclose(ours_w.params["w"], ours_a.params["w"], rtol=1e-6)


def _first_step(opt_cls, grad_value, **hyper):
    layer = Linear(1, 1, rng=np.random.default_rng(0))
    start = layer.params["w"].copy()
    layer.grads = {k: np.full_like(v, grad_value) for k, v in layer.params.items()}
    opt_cls(layer, **hyper).step()
    return float((layer.params["w"] - start)[0, 0])


def test_first_steps_follow_from_the_update_rules():
    # Adam: mhat / sqrt(vhat) = sign(g) at t = 1, so the step is lr (up to eps).
    assert _first_step(Adam, 37.0, lr=1e-3) == pytest.approx(-1e-3, rel=1e-9)
    # RMSprop with lr = 1 and alpha = 0.9 (a source's suggestion): the step is 1 / sqrt(1 - 0.9).
    assert _first_step(RMSprop, 1.0, lr=1.0, alpha=0.9, eps=0.0) == pytest.approx(-1 / np.sqrt(0.1))
    # Adadelta with rho = 0.95, eps = 1e-6, g = 1: sqrt(eps) / sqrt(1 - rho + eps).
    assert _first_step(Adadelta, 1.0, rho=0.95, eps=1e-6) == pytest.approx(
        -np.sqrt(1e-6) / np.sqrt(0.05 + 1e-6), rel=1e-12)


def test_adagrad_step_decays_as_one_over_sqrt_t():
    layer = Linear(1, 1, rng=np.random.default_rng(0))
    opt = Adagrad(layer, lr=1.0, eps=0.0)
    steps = []
    for _ in range(100):
        before = layer.params["w"].copy()
        layer.grads = {k: np.ones_like(v) for k, v in layer.params.items()}
        opt.step()
        steps.append(float((before - layer.params["w"])[0, 0]))
    np.testing.assert_allclose(steps, 1.0 / np.sqrt(np.arange(1, 101)), rtol=1e-12)
    assert not np.allclose(steps, 1.0 / np.arange(1, 101))


@pytest.mark.parametrize("cls, bad, match", [
    (Adagrad, dict(lr_decay=-1.0), "lr_decay"),
    (Adagrad, dict(initial_accumulator_value=-0.1), "initial_accumulator_value"),
    (Adadelta, dict(rho=1.5), "rho"),
    (RMSprop, dict(alpha=-0.1), "alpha"),
    (RMSprop, dict(momentum=-0.5), "momentum"),
    (Adam, dict(betas=(1.0, 0.999)), r"betas\[0\]"),
    (Adam, dict(betas=(0.9, -0.1)), r"betas\[1\]"),
    (AdamW, dict(weight_decay=-1e-2), "weight_decay"),
    (Adam, dict(eps=-1.0), "eps"),
    (Adam, dict(lr=-1e-3), "lr"),
])
def test_adaptive_bad_keywords(cls, bad, match):
    with pytest.raises(ValueError, match=match):
        cls(Linear(2, 2, rng=np.random.default_rng(0)), **bad)


def _quadratic_grad(w):
    """Gradient of f(w) = (w_0^2 + 25 w_1^2) / 2, an ill-conditioned bowl."""
    return np.array([1.0, 25.0]) * w


def _sgd_iterates(lr, steps, **hyper):
    layer = Linear(1, 2, rng=np.random.default_rng(0))
    layer.params = {"w": np.array([[1.0], [1.0]])}
    opt = SGD(layer, lr=lr, **hyper)
    out = []
    for _ in range(steps):
        layer.grads = {"w": _quadratic_grad(layer.params["w"][:, 0])[:, None]}
        opt.step()
        out.append(layer.params["w"][:, 0].copy())
    return np.array(out)


def test_sgd_momentum_equals_the_velocity_form_with_a_constant_lr():
    # v <- mu v - lr g;  w <- w + v  (the textbook form) gives the same iterates as torch's
    # b <- mu b + g;  w <- w - lr b, because v = -lr b when lr does not change.
    lr, mu = 0.03, 0.9
    w, v, book = np.array([1.0, 1.0]), np.zeros(2), []
    for _ in range(30):
        v = mu * v - lr * _quadratic_grad(w)
        w = w + v
        book.append(w.copy())
    np.testing.assert_allclose(_sgd_iterates(lr, 30, momentum=mu), book, rtol=1e-12, atol=1e-15)


def test_sgd_nesterov_iterates_are_the_look_ahead_points_of_the_textbook_form():
    # Textbook Nesterov: w_ahead = w + mu v;  v <- mu v - lr grad(w_ahead);  w <- w + v.
    # torch's reparametrised form (b <- mu b + g; w <- w - lr (g + mu b)) tracks w + mu v.
    lr, mu = 0.03, 0.9
    w, v, ahead, book = np.array([1.0, 1.0]), np.zeros(2), [], []
    for _ in range(30):
        v = mu * v - lr * _quadratic_grad(w + mu * v)
        w = w + v
        book.append(w.copy())
        ahead.append(w + mu * v)
    ours = _sgd_iterates(lr, 30, momentum=mu, nesterov=True)
    np.testing.assert_allclose(ours, ahead, rtol=1e-12, atol=1e-15)
    # Negative case: they are not the textbook's w itself, and the comparison says so.
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(ours, book, rtol=1e-12, atol=1e-15)


def test_per_layer_rates_and_a_rate_of_zero_freeze_like_torch_parameter_groups(rng):
    """Two optimizers on two parts of a model = torch's parameter groups; lr=0 freezes a layer."""
    import torch.nn.functional as F

    from dlbook.activations import ReLU
    from dlbook.losses import cross_entropy_backward, cross_entropy_forward
    from dlbook.reference import copy_params_to_torch
    from dlbook.sequential import Sequential

    model = Sequential(Linear(5, 7, rng=rng), ReLU(), Linear(7, 3, rng=rng))
    model_t = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    copy_params_to_torch(model, model_t)
    frozen, trained = SGD(model[0], lr=0.0, momentum=0.9), SGD(model[2], lr=0.3, momentum=0.9)
    opt_t = torch.optim.SGD([{"params": model_t[0].parameters(), "lr": 0.0},
                             {"params": model_t[2].parameters()}], lr=0.3, momentum=0.9)
    start = {i: {k: v.copy() for k, v in model[i].params.items()} for i in (0, 2)}
    X, y = rng.standard_normal((12, 5)), rng.integers(0, 3, 12)
    for step in range(3):
        xb, yb = X[4 * step:4 * step + 4], y[4 * step:4 * step + 4]
        _, cache = cross_entropy_forward(model.forward(xb), yb)
        model.backward(cross_entropy_backward(cache))
        frozen.step()
        trained.step()
        opt_t.zero_grad()
        F.cross_entropy(model_t(torch.from_numpy(xb)), torch.from_numpy(yb)).backward()
        opt_t.step()
        for i in (0, 2):
            np.testing.assert_allclose(model[i].params["w"], model_t[i].weight.detach().numpy(),
                                       rtol=1e-11, atol=1e-13)
            np.testing.assert_allclose(model[i].params["b"], model_t[i].bias.detach().numpy(),
                                       rtol=1e-11, atol=1e-13)
    for key in ("w", "b"):
        np.testing.assert_array_equal(model[0].params[key], start[0][key])  # frozen: unchanged
        assert np.abs(model[0].grads[key]).max() > 0  # although it had gradients
        # negative case: the layer with a positive rate moved, so the same check fails there
        assert not np.array_equal(model[2].params[key], start[2][key])
