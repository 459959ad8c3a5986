"""dlbook.dropout against torch in float64 (same mask), plus statistical checks of the mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TIGHT, torch_forward_backward
from dlbook.dropout import Dropout, dropout_backward, dropout_forward
from dlbook.gradcheck import GradientCheckError, check_gradients


def torch_keep_mask(shape, p, seed):
    """The keep-mask F.dropout draws after torch.manual_seed(seed), as a boolean array."""
    torch.manual_seed(seed)
    return (F.dropout(torch.ones(shape), p, training=True) != 0).numpy()


@pytest.mark.parametrize("p, shape", [(0.5, (4, 6)), (0.2, (3, 5, 2)), (0.9, (8, 3))])
def test_matches_torch_dropout_with_the_same_mask(p, shape, rng):
    x = rng.standard_normal(shape)
    dout = rng.standard_normal(shape)
    keep = torch_keep_mask(shape, p, seed=7)
    out, cache = dropout_forward(x, p, training=True, mask=keep)
    dx = dropout_backward(dout, cache)

    def torch_dropout(x):
        torch.manual_seed(7)  # F.dropout draws the same mask again
        return F.dropout(x, p, training=True)

    out_t, g = torch_forward_backward(torch_dropout, {"x": x}, dout)
    np.testing.assert_allclose(out, out_t, **TIGHT)
    np.testing.assert_allclose(dx, g["x"], **TIGHT)
    # and the same as torch's formula written out, x * m / (1 - p)
    np.testing.assert_allclose(out, x * keep / (1 - p), **TIGHT)


def test_the_torch_check_fails_for_non_inverted_dropout(rng):
    # negative case: the original (non-inverted) dropout, x * m without the 1 / (1 - p) scaling
    x = rng.standard_normal((4, 6))
    keep = torch_keep_mask(x.shape, 0.5, seed=7)
    torch.manual_seed(7)
    out_t = F.dropout(torch.from_numpy(x), 0.5, training=True).numpy()
    assert not np.allclose(x * keep, out_t, **TIGHT)
    out, _ = dropout_forward(x, 0.5, mask=keep)
    np.testing.assert_allclose(out, out_t, **TIGHT)


def test_eval_mode_and_the_edge_probabilities_match_torch(rng):
    x = rng.standard_normal((3, 4))
    dout = rng.standard_normal((3, 4))
    out, cache = dropout_forward(x, 0.5, training=False)
    np.testing.assert_array_equal(out, F.dropout(torch.from_numpy(x), 0.5, training=False).numpy())
    np.testing.assert_array_equal(dropout_backward(dout, cache), dout)
    for p in (0.0, 1.0):
        out, cache = dropout_forward(x, p, training=True)  # no rng needed: nothing is random
        out_t, g = torch_forward_backward(lambda x: F.dropout(x, p, training=True), {"x": x}, dout)
        np.testing.assert_allclose(out, out_t, **TIGHT)
        np.testing.assert_allclose(dropout_backward(dout, cache), g["x"], **TIGHT)


def test_backward_matches_central_differences_for_a_fixed_mask(rng):
    x = rng.standard_normal((5, 4))
    dout = rng.standard_normal((5, 4))
    keep = rng.random((5, 4)) >= 0.3
    _, cache = dropout_forward(x, 0.3, mask=keep)
    f = lambda x: dropout_forward(x, 0.3, mask=keep)[0]
    check_gradients(f, {"x": x}, {"x": dropout_backward(dout, cache)}, dout)
    # negative case: a backward pass that ignores the mask and the scaling (the deep-learning textbook chapter, Listing 1)
    with pytest.raises(GradientCheckError, match="'x'"):
        check_gradients(f, {"x": x}, {"x": dout}, dout)


def test_mask_rate_and_expectation(rng):
    p, n = 0.3, 200_000
    x = np.full(n, 2.0)
    out, _ = dropout_forward(x, p, training=True, rng=rng)
    dropped = np.mean(out == 0.0)
    sigma = np.sqrt(p * (1 - p) / n)  # binomial standard deviation of the dropped fraction
    assert abs(dropped - p) < 5 * sigma
    kept = out[out != 0.0]
    np.testing.assert_allclose(kept, 2.0 / (1 - p), rtol=1e-15)
    # E[out] = x: the sample mean is within 5 standard errors of 2
    assert abs(out.mean() - 2.0) < 5 * out.std() / np.sqrt(n)
    # negative case: the same test rejects a wrong rate
    assert abs(dropped - 0.31) > 5 * sigma


def test_a_new_mask_each_call_and_per_element(rng):
    layer = Dropout(0.5, rng=np.random.default_rng(1))
    x = np.ones((64, 32))
    first, second = layer(x), layer(x)
    assert not np.array_equal(first == 0, second == 0)
    # per element, not per unit: the rows (examples) do not share one mask
    assert not all(np.array_equal(first[0] == 0, row == 0) for row in first[1:])
    # the layer's backward uses the mask of its last forward
    dout = np.ones_like(x)
    np.testing.assert_array_equal(layer.backward(dout) == 0, second == 0)
    layer.eval()
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer.backward(dout), dout)
    assert repr(layer) == "Dropout(p=0.5)" and layer.num_parameters() == 0


def test_same_seed_same_mask():
    x = np.arange(12.0).reshape(3, 4)
    a, _ = dropout_forward(x, 0.5, rng=np.random.default_rng(3))
    b, _ = dropout_forward(x, 0.5, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)


def test_bad_input_raises_clear_errors(rng):
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"p: expected a value in \[0, 1\]"):
        dropout_forward(x, 1.5, rng=rng)
    with pytest.raises(ValueError, match="rng: dropout in training draws a random mask"):
        dropout_forward(x, 0.5)
    with pytest.raises(ValueError, match=r"mask: expected shape \(2, 3\), got \(3, 2\)"):
        dropout_forward(x, 0.5, mask=np.ones((3, 2), dtype=bool))
    with pytest.raises(ValueError, match="mask: expected a boolean keep-mask"):
        dropout_forward(x, 0.5, mask=np.ones((2, 3)))
    _, cache = dropout_forward(x, 0.5, rng=rng)
    with pytest.raises(ValueError, match=r"dout: expected shape \(2, 3\), got \(3, 2\)"):
        dropout_backward(np.ones((3, 2)), cache)
    with pytest.raises(ValueError, match=r"p: expected a value in \[0, 1\]"):
        Dropout(-0.1)
    with pytest.raises(RuntimeError, match="before forward"):
        Dropout(0.5, rng=rng).backward(x)
