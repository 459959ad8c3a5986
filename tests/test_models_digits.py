"""dlbook.models.digits: the Chapter 6 baseline, its training loop and the torch-side compression
helpers, checked against the numpy library (dlbook.compress), torch.nn.utils.prune and
definitions, in float64 with random upstream gradients."""

import copy

import numpy as np
import pytest
import torch
from torch.nn.utils import prune

from dlbook import compress
from dlbook.models.digits import (WEIGHTED, Binarize, Fire, SharedWeights, accuracy,
                                  binarize_layers, count_macs, count_parameters, digits_cnn,
                                  factorize_layer, filter_pruned, fire_net, fit_classifier,
                                  get_weight, magnitude_pruned, predict_logits, share_weights,
                                  with_weights)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def small_data(rng, n=40):
    return rng.random((n, 1, 8, 8)), rng.integers(0, 10, n)


def test_baseline_counts_match_the_formulas():
    model = digits_cnn()
    convs = [(1, 16, 8), (16, 32, 8), (32, 64, 4)]
    params = sum(compress.conv2d_params(c, f, 3) for c, f, _ in convs) + 256 * 128 + 128 + 1290
    macs = sum(compress.conv2d_macs(c, f, 3, s) for c, f, s in convs) + 256 * 128 + 1280
    assert count_parameters(model) == params == 57_482
    assert count_macs(model) == macs == 633_088
    assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_fire_net_and_fire_module_counts():
    assert count_parameters(fire_net()) == 5_146
    fire = Fire(16, 8, 16, 16)
    assert count_parameters(fire) == compress.fire_params(16, 8, 16, 16)
    assert count_macs(fire, (16, 8, 8)) == compress.fire_macs(16, 8, 16, 16, 8)
    assert fire(torch.zeros(2, 16, 5, 7)).shape == (2, 32, 5, 7)


def test_count_macs_of_a_grouped_conv_and_a_wrong_count_is_caught():
    conv = torch.nn.Conv2d(6, 9, (3, 2), stride=2, padding=1, groups=3)
    out = conv(torch.zeros(1, 6, 7, 5))
    expected = compress.conv2d_macs(6, 9, (3, 2), tuple(out.shape[2:]), groups=3)
    assert count_macs(conv, (6, 7, 5)) == expected
    assert count_macs(conv, (6, 7, 5)) != expected + 1  # the comparison can fail


@pytest.mark.parametrize("kwargs", [{"widths": (16, 32)}, {"widths": (16, 0, 8)},
                                    {"hidden": 0}, {"num_classes": True}])
def test_digits_cnn_rejects_bad_sizes(kwargs):
    with pytest.raises(ValueError):
        digits_cnn(**kwargs)


def test_fit_classifier_is_seeded_calls_after_step_and_uses_the_loss(rng):
    X, y = small_data(rng)
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        steps = []
        model = fit_classifier(digits_cnn((2, 2, 2), 4), X, y, epochs=2, seed=3, batch_size=16,
                               after_step=lambda: steps.append(1))
        runs.append(predict_logits(model, X))
        assert len(steps) == 2 * 3  # 40 rows in batches of 16: 3 steps per epoch
    np.testing.assert_array_equal(runs[0], runs[1])
    seen = []

    def loss(logits, index):
        seen.append(index.copy())
        return logits.sum() * 0.0

    torch.manual_seed(1)
    model = digits_cnn((2, 2, 2), 4)
    before = copy.deepcopy(model.state_dict())
    fit_classifier(model, X, y, epochs=1, seed=3, batch_size=16, loss=loss)
    assert sorted(np.concatenate(seen)) == list(range(40))  # every row once per epoch
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # zero loss
    assert 0.0 <= accuracy(model, X, y) <= 1.0


@pytest.mark.parametrize("kwargs", [{"epochs": -1}, {"epochs": 1.5}])
def test_fit_classifier_rejects_bad_input(rng, kwargs):
    X, y = small_data(rng)
    with pytest.raises(ValueError):
        fit_classifier(digits_cnn(), X, y, seed=0, **kwargs)
    with pytest.raises(ValueError):
        fit_classifier(digits_cnn(), X, y[:-1], epochs=1, seed=0)


def test_with_weights_copies_and_checks_shapes(rng):
    model = digits_cnn()
    old = get_weight(model, 9)
    new_w = rng.standard_normal(old.shape)
    new = with_weights(model, {9: new_w})
    np.testing.assert_allclose(get_weight(new, 9), new_w, rtol=1e-6)
    np.testing.assert_array_equal(get_weight(model, 9), old)  # the original is unchanged
    with pytest.raises(ValueError):
        with_weights(model, {9: new_w.T})


@pytest.mark.parametrize("layer", [torch.nn.Linear(7, 5),
                                   torch.nn.Conv2d(3, 4, (3, 2), stride=2, padding=1)])
def test_factorize_layer_gives_the_rank_k_layer(layer, rng):
    layer = layer.double()
    w = layer.weight.detach().numpy()
    x = torch.from_numpy(rng.standard_normal((2, 7) if w.ndim == 2 else (2, 3, 6, 5)))
    full = factorize_layer(layer, min(w.shape[0], w[0].size))
    torch.testing.assert_close(full(x), layer(x), rtol=1e-10, atol=1e-12)
    first, second = compress.low_rank(w, 2)
    w_k = second.reshape(second.shape[0], -1) @ first.reshape(2, -1)
    twin = copy.deepcopy(layer)
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(w_k.reshape(w.shape)))
    torch.testing.assert_close(factorize_layer(layer, 2)(x), twin(x), rtol=1e-10, atol=1e-12)
    assert not torch.allclose(factorize_layer(layer, 1)(x), twin(x))  # another rank differs


def test_factorize_layer_rejects_a_grouped_conv():
    with pytest.raises(ValueError):
        factorize_layer(torch.nn.Conv2d(4, 4, 3, groups=2), 2)


def test_magnitude_pruned_matches_global_unstructured_and_stays_pruned(rng):
    torch.manual_seed(0)
    model = digits_cnn()
    pruned = magnitude_pruned(model, 0.8)
    reference = copy.deepcopy(model)
    prune.global_unstructured([(reference[i], "weight") for i in WEIGHTED],
                              prune.L1Unstructured, amount=0.8)
    for i in WEIGHTED:
        assert torch.equal(pruned[i].weight_mask, reference[i].weight_mask)
    assert not hasattr(model[0], "weight_mask")  # the original is untouched
    X, y = small_data(rng)
    fit_classifier(pruned, X, y, epochs=1, seed=0, batch_size=16)
    for i in WEIGHTED:
        assert torch.all(pruned[i].weight[pruned[i].weight_mask == 0] == 0)


def test_filter_pruned_equals_the_network_with_zeroed_filters(rng):
    torch.manual_seed(0)
    model = digits_cnn().double()
    small, keep2, keep3 = filter_pruned(model, 0.5)
    assert list(keep2) == sorted(keep2) and len(keep2) == 16 and len(keep3) == 32
    assert count_parameters(small) == 24_922
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        for i, keep in ((2, keep2), (5, keep3)):
            gone = np.setdiff1d(np.arange(zeroed[i].out_channels), keep)
            zeroed[i].weight[gone] = 0.0
            zeroed[i].bias[gone] = 0.0
    x = torch.from_numpy(rng.random((5, 1, 8, 8)))
    torch.testing.assert_close(small(x), zeroed(x), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError):
        filter_pruned(model, 0.0)


def test_shared_weights_gradient_is_the_per_cluster_sum(rng):
    indices = rng.integers(0, 4, (5, 3))
    codebook = rng.standard_normal(4)
    shared = SharedWeights(indices, 4)
    codebook_t = torch.from_numpy(codebook).requires_grad_(True)
    dw = rng.standard_normal((5, 3))
    (shared(codebook_t) * torch.from_numpy(dw)).sum().backward()
    _, cache = compress.shared_weights_forward(codebook, indices)
    np.testing.assert_allclose(codebook_t.grad.numpy(), compress.shared_weights_backward(dw, cache),
                               rtol=1e-10, atol=1e-12)
    back = shared.right_inverse(torch.from_numpy(codebook[indices]))
    used = np.unique(indices)
    np.testing.assert_allclose(back.numpy()[used], codebook[used], rtol=1e-12)


def test_share_weights_uses_kmeans_and_trains_the_codebook(rng):
    torch.manual_seed(0)
    model = digits_cnn().double()
    shared, codes = share_weights(model, 2, layers=(9,), trainable=True)
    codebook, indices = codes[9]
    expected = compress.kmeans_share(get_weight(model, 9), 2)
    np.testing.assert_array_equal(codebook, expected[0])
    np.testing.assert_array_equal(indices, expected[1])
    torch.testing.assert_close(shared[9].weight, torch.from_numpy(codebook[indices]),
                               rtol=1e-10, atol=1e-12)
    assert shared[9].parametrizations.weight.original.shape == (4,)
    X, y = small_data(rng)
    fit_classifier(shared, X, y, epochs=1, seed=0, batch_size=16)
    assert len(np.unique(get_weight(shared, 9))) <= 4  # still four shared values


@pytest.mark.parametrize("scaled", [False, True])
def test_binarize_matches_the_numpy_estimators(scaled, rng):
    w = rng.standard_normal((4, 3, 3, 3)) * 0.9
    w[0, 0, 0, 0] = 0.0  # sign(0) = +1
    w_t = torch.from_numpy(w).requires_grad_(True)
    out = Binarize(scaled)(w_t)
    dout = rng.standard_normal(w.shape)
    (out * torch.from_numpy(dout)).sum().backward()
    if scaled:
        expected, cache = compress.xnor_binarize_forward(w)
        grad = compress.xnor_binarize_backward(dout, cache)
    else:
        expected, cache = compress.binarize_forward(w)
        grad = compress.binarize_backward(dout, cache)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w_t.grad.numpy(), grad, rtol=1e-10, atol=1e-12)
    with pytest.raises(AssertionError):  # a perturbed gradient is caught
        np.testing.assert_allclose(w_t.grad.numpy(), grad + 1e-6, rtol=1e-10, atol=1e-12)


def test_binarize_layers_clips_the_shadow_weights():
    torch.manual_seed(0)
    model = digits_cnn()
    clip = binarize_layers(model, (2, 9))
    with torch.no_grad():
        model[9].parametrizations.weight.original.mul_(100.0)
    clip()
    assert model[9].parametrizations.weight.original.abs().max() <= 1.0
    assert set(torch.unique(model[2].weight).tolist()) <= {-1.0, 1.0}
