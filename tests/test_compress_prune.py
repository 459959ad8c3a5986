"""dlbook.compress.prune against torch.nn.utils.prune (masks) and dlbook.conv (filter pruning)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils import prune

from conftest import TIGHT
from dlbook.activations import relu
from dlbook.compress import (filter_l1_norms, filters_to_keep, global_magnitude_masks,
                             group_lasso_backward, group_lasso_forward, group_norms, magnitude_mask,
                             magnitude_mask_naive, num_to_prune, prune_filters)
from dlbook.conv import conv2d_forward
from dlbook.linear import linear_forward
from dlbook.pool import max_pool2d_forward


class _Holder(torch.nn.Module):
    """A module with one parameter ``weight`` of any shape, for torch's pruning functions."""

    def __init__(self, w: np.ndarray) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.from_numpy(w.copy()))


def torch_mask(w: np.ndarray, amount) -> np.ndarray:
    holder = _Holder(w)
    prune.l1_unstructured(holder, "weight", amount=amount)
    return holder.weight_mask.numpy()


def torch_global_masks(ws, amount) -> list[np.ndarray]:
    holders = [_Holder(w) for w in ws]
    prune.global_unstructured([(h, "weight") for h in holders],
                              pruning_method=prune.L1Unstructured, amount=amount)
    return [h.weight_mask.numpy() for h in holders]


SHAPES = [(1,), (7,), (5, 3), (4, 3, 2, 2), (6, 33)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("amount", [0.0, 0.3, 0.5, 0.999, 1.0, 0, 1, "size-1", "size"])
def test_mask_matches_torch(shape, amount, rng):
    w = rng.standard_normal(shape)  # continuous: no ties
    size = int(np.prod(shape))
    amount = {"size-1": size - 1, "size": size}.get(amount, amount)
    w_before = w.copy()
    mask = magnitude_mask(w, amount)
    np.testing.assert_array_equal(mask, torch_mask(w, amount))
    np.testing.assert_array_equal(magnitude_mask_naive(w, amount), mask)
    np.testing.assert_array_equal(w, w_before)
    assert mask.shape == w.shape and mask.dtype == w.dtype


@pytest.mark.parametrize("size, amount, expected", [(5, 0.5, 2), (7, 0.5, 4), (10, 0.25, 2),
                                                    (10, 0.35, 4), (3, 0.5, 2)])
def test_fraction_rounds_half_to_even_as_torch(size, amount, expected, rng):
    w = rng.standard_normal(size)
    assert num_to_prune(amount, size) == expected
    mask = magnitude_mask(w, amount)
    assert int((mask == 0).sum()) == expected
    np.testing.assert_array_equal(mask, torch_mask(w, amount))


def test_ties_away_from_the_threshold_match_torch_exactly():
    # magnitudes 1, 1, 2, 2, 2, 3 (with signs): pruning 2 or 5 cuts between distinct values
    w = np.array([[2.0, -1.0, 3.0], [1.0, -2.0, 2.0]])
    for amount in (2, 5, 0, 6):
        np.testing.assert_array_equal(magnitude_mask(w, amount), torch_mask(w, amount))


@pytest.mark.parametrize("size", [7, 40, 300])
def test_ties_at_the_threshold_prune_the_same_magnitudes_as_torch(size, rng):
    # many equal magnitudes: torch.topk's choice among them is unspecified, ours is by position
    w = rng.integers(-3, 4, size).astype(np.float64)
    for amount in (0.2, 0.5, 0.8, 3):
        mask, mask_t = magnitude_mask(w, amount), torch_mask(w, amount)
        assert (mask == 0).sum() == (mask_t == 0).sum()
        np.testing.assert_array_equal(np.sort(np.abs(w[mask == 0])),
                                      np.sort(np.abs(w[mask_t == 0])))
        np.testing.assert_array_equal(magnitude_mask_naive(w, amount), mask)
        if (mask == 0).any() and (mask == 1).any():
            assert np.abs(w[mask == 0]).max() <= np.abs(w[mask == 1]).min()
        first = np.flatnonzero(mask == 0)  # ours: the earliest of the tied weights go first
        threshold = np.abs(w[mask == 0]).max() if first.size else None
        if threshold is not None:
            tied = np.flatnonzero(np.abs(w) == threshold)
            pruned_tied = np.intersect1d(tied, first)
            np.testing.assert_array_equal(pruned_tied, tied[:pruned_tied.size])


def test_wrong_mask_fails_the_comparison(rng):
    w = rng.standard_normal((6, 5))
    wrong = 1.0 - magnitude_mask(w, 0.6)  # prunes the largest 40 % instead of the smallest 60 %
    assert not np.array_equal(wrong, torch_mask(w, 0.6))
    with pytest.raises(AssertionError):
        np.testing.assert_array_equal(magnitude_mask(w, 0.5), torch_mask(w, 0.6))


@pytest.mark.parametrize("amount", [0.0, 0.25, 0.5, 0.9, 1.0, 0, 7, 77])
def test_global_masks_match_torch(amount, rng):
    ws = [rng.standard_normal((4, 3)), 0.1 * rng.standard_normal((5, 2, 3, 3)),
          rng.standard_normal(11)]
    before = [w.copy() for w in ws]
    masks = global_magnitude_masks(ws, amount)
    for mask, mask_t, w, w0 in zip(masks, torch_global_masks(ws, amount), ws, before):
        np.testing.assert_array_equal(mask, mask_t)
        assert mask.shape == w.shape
        np.testing.assert_array_equal(w, w0)


def test_global_differs_from_per_layer_and_fails_when_compared(rng):
    ws = [rng.standard_normal((4, 3)), 0.1 * rng.standard_normal((5, 2, 3, 3))]
    per_layer = [magnitude_mask(w, 0.5) for w in ws]
    global_t = torch_global_masks(ws, 0.5)
    assert not all(np.array_equal(a, b) for a, b in zip(per_layer, global_t))
    # the layer with small weights loses more than half of them under one global threshold
    assert (global_t[1] == 0).mean() > 0.5


@pytest.mark.parametrize("bad, match", [(1.5, "fraction in"), (-0.1, "fraction in"),
                                        (-1, "count in"),
                                        (13, "count in"), (True, "float in"), ("half", "float in")])
def test_bad_amount_raises(bad, match, rng):
    w = rng.standard_normal((3, 4))
    with pytest.raises(ValueError, match=f"amount: expected a {match}"):
        magnitude_mask(w, bad)
    with pytest.raises(ValueError, match="amount"):
        global_magnitude_masks([w], bad if bad != 13 else 100)


def test_global_needs_arrays():
    with pytest.raises(ValueError, match="weights: expected at least one array"):
        global_magnitude_masks([], 0.5)


# --- filter pruning -------------------------------------------------------------------------

def test_filter_l1_norms_match_torch(rng):
    w = rng.standard_normal((6, 3, 3, 2))
    norms_t = torch.norm(torch.from_numpy(w), p=1, dim=(1, 2, 3))
    np.testing.assert_allclose(filter_l1_norms(w), norms_t, **TIGHT)


@pytest.mark.parametrize("amount", [0.0, 0.5, 0.75, 2, 5])
def test_filters_to_keep_match_torch_ln_structured(amount, rng):
    w = rng.standard_normal((8, 3, 3, 3))
    holder = _Holder(w)
    prune.ln_structured(holder, "weight", amount=amount, n=1, dim=0)
    kept_t = np.flatnonzero(holder.weight_mask.numpy().reshape(8, -1).any(axis=1))
    keep = filters_to_keep(w, amount)
    np.testing.assert_array_equal(keep, kept_t)
    wrong = np.argsort(filter_l1_norms(w))[:keep.size]  # the weakest filters instead
    if 0 < keep.size < 8:
        assert not np.array_equal(np.sort(wrong), kept_t)


def _zeroed(w1, b1, keep):
    """The big layer with every filter outside ``keep`` (and its bias) set to zero."""
    drop = np.setdiff1d(np.arange(w1.shape[0]), keep)
    w1z, b1z = w1.copy(), b1.copy()
    w1z[drop] = 0.0
    b1z[drop] = 0.0
    return w1z, b1z


def conv_conv(x, w1, b1, w2, b2):
    h, _ = conv2d_forward(x, w1, b1, stride=1, padding=1)
    out, _ = conv2d_forward(relu(h), w2, b2, stride=2, padding=1)
    return out


def conv_pool_fc(x, w1, b1, w2, b2):
    h, _ = conv2d_forward(x, w1, b1, stride=1, padding=1)
    p, _ = max_pool2d_forward(relu(h), 2)
    out, _ = linear_forward(p.reshape(p.shape[0], -1), w2, b2)
    return out


@pytest.mark.parametrize("amount", [0.5, 0.75, 1])
def test_pruned_conv_conv_net_equals_zeroed_big_net(amount, rng):
    x = rng.standard_normal((3, 2, 7, 6))
    w1, b1 = rng.standard_normal((8, 2, 3, 3)), rng.standard_normal(8)
    w2, b2 = rng.standard_normal((5, 8, 3, 2)), rng.standard_normal(5)
    keep = filters_to_keep(w1, amount)
    args_before = [a.copy() for a in (w1, b1, w2)]
    w1s, b1s, w2s = prune_filters(w1, b1, w2, keep)
    for a, a0 in zip((w1, b1, w2), args_before):
        np.testing.assert_array_equal(a, a0)
    assert w1s.shape == (keep.size, 2, 3, 3) and b1s.shape == (keep.size,)
    assert w2s.shape == (5, keep.size, 3, 2)
    w1z, b1z = _zeroed(w1, b1, keep)
    big = conv_conv(x, w1z, b1z, w2, b2)
    np.testing.assert_allclose(conv_conv(x, w1s, b1s, w2s, b2), big, **TIGHT)
    # negative case: the next layer's channels taken in the wrong place changes the output
    wrong_w2 = w2[:, np.roll(keep, 1)] if keep.size > 1 else w2[:, (keep + 1) % 8]
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(conv_conv(x, w1s, b1s, wrong_w2, b2), big, **TIGHT)


def test_pruned_conv_fc_net_equals_zeroed_big_net(rng):
    x = rng.standard_normal((4, 3, 6, 4))
    w1, b1 = rng.standard_normal((6, 3, 3, 3)), rng.standard_normal(6)
    w2, b2 = rng.standard_normal((5, 6 * 3 * 2)), rng.standard_normal(5)  # maps pooled to 3x2
    keep = filters_to_keep(w1, 0.5)
    w1s, b1s, w2s = prune_filters(w1, b1, w2, keep)
    assert w2s.shape == (5, keep.size * 6)
    w1z, b1z = _zeroed(w1, b1, keep)
    big = conv_pool_fc(x, w1z, b1z, w2, b2)
    np.testing.assert_allclose(conv_pool_fc(x, w1s, b1s, w2s, b2), big, **TIGHT)
    # negative case: keeping the first columns (not each kept channel's block) is wrong
    with pytest.raises(AssertionError):
        first_columns = w2[:, :keep.size * 6]
        np.testing.assert_allclose(conv_pool_fc(x, w1s, b1s, first_columns, b2), big, **TIGHT)


def test_prune_filters_without_bias(rng):
    w1, w2 = rng.standard_normal((4, 2, 3, 3)), rng.standard_normal((3, 4, 1, 1))
    w1s, b1s, w2s = prune_filters(w1, None, w2, np.array([0, 3]))
    assert b1s is None
    np.testing.assert_array_equal(w1s, w1[[0, 3]])
    np.testing.assert_array_equal(w2s, w2[:, [0, 3]])


@pytest.mark.parametrize("w1_shape, b1_shape, w2_shape, keep, match", [
    ((4, 2, 3, 3), (4,), (3, 5, 3, 3), [0, 1], "w2: expected 4 input channels"),
    ((4, 2, 3, 3), (4,), (3, 10), [0, 1], r"w2: expected \(D_out, F \* S\)"),
    ((4, 2, 3, 3), (3,), (3, 4, 3, 3), [0, 1], r"b1: expected shape \(4,\)"),
    ((4, 2, 3, 3), (4,), (3, 4, 3, 3), [0, 4], "keep: expected distinct indices"),
    ((4, 2, 3, 3), (4,), (3, 4, 3, 3), [1, 1], "keep: expected distinct indices"),
    ((4, 2, 3, 3), (4,), (3, 4, 3, 3), [], "keep: expected a non-empty"),
    ((4, 2, 3), (4,), (3, 4, 3, 3), [0], "w1: expected a 4-D array"),
    ((4, 2, 3, 3), (4,), (3, 4, 3), [0], "w2: expected a conv"),
])
def test_prune_filters_bad_input(w1_shape, b1_shape, w2_shape, keep, match, rng):
    with pytest.raises(ValueError, match=match):
        prune_filters(rng.standard_normal(w1_shape), rng.standard_normal(b1_shape),
                      rng.standard_normal(w2_shape), np.array(keep, dtype=int))


# --- group lasso (structured sparsity) ------------------------------------------------------

@pytest.mark.parametrize("shape, dim", [((6, 3, 3, 3), 0), ((6, 3, 3, 3), 1), ((5, 4), 0),
                                        ((5, 4), 1)])
def test_group_lasso_matches_torch(shape, dim, rng):
    w = rng.standard_normal(shape)
    index = [slice(None)] * len(shape)
    index[dim] = 1
    w[tuple(index)] = 0.0  # one group exactly zero: the subgradient 0
    w0 = w.copy()
    dout = float(rng.standard_normal())
    penalty, cache = group_lasso_forward(w, dim)
    dw = group_lasso_backward(dout, cache)
    w_t = torch.from_numpy(w).requires_grad_(True)
    groups = w_t.movedim(dim, 0).reshape(shape[dim], -1)
    penalty_t = torch.linalg.vector_norm(groups, dim=1).sum()
    (penalty_t * dout).backward()
    np.testing.assert_allclose(penalty, penalty_t.item(), **TIGHT)
    np.testing.assert_allclose(dw, w_t.grad.numpy(), **TIGHT)
    norms_t = torch.linalg.vector_norm(groups, dim=1).detach()
    np.testing.assert_allclose(group_norms(w, dim), norms_t, **TIGHT)
    np.testing.assert_array_equal(w, w0)
    with pytest.raises(AssertionError):  # negative case: the gradient of the squared norm instead
        np.testing.assert_allclose(dout * w, w_t.grad.numpy(), **TIGHT)


def test_group_lasso_bad_input(rng):
    with pytest.raises(ValueError, match="dim: expected 0"):
        group_lasso_forward(rng.standard_normal((3, 4)), 2)
    with pytest.raises(ValueError, match="dim: expected 0"):
        group_norms(rng.standard_normal(4), 0)
    _, cache = group_lasso_forward(rng.standard_normal((3, 4)))
    with pytest.raises(ValueError, match="dout: expected a scalar"):
        group_lasso_backward(np.ones(3), cache)
