"""dlbook.reshape.Flatten against torch.nn.Flatten / torch.flatten in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TIGHT, torch_forward_backward
from dlbook.gradcheck import GradientCheckError, check_gradients, check_module_gradients
from dlbook.linear import Linear
from dlbook.reshape import Flatten, flatten_backward, flatten_forward


@pytest.mark.parametrize("shape, start_dim, end_dim", [((2, 3, 4, 5), 1, -1), ((2, 3, 4, 5), 0, -1),
                                                       ((2, 3, 4, 5), 1, 2), ((2, 3, 4, 5), -2, -1),
                                                       ((4, 7), 1, -1), ((3, 1, 1, 1), 1, 3)])
def test_matches_torch_flatten(shape, start_dim, end_dim, rng):
    x = rng.standard_normal(shape)
    out, cache = flatten_forward(x, start_dim, end_dim)
    dout = rng.standard_normal(out.shape)
    dx = flatten_backward(dout, cache)
    ref_out, ref = torch_forward_backward(lambda x: torch.flatten(x, start_dim, end_dim), {"x": x}, dout)
    assert out.shape == ref_out.shape and dx.shape == x.shape
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(dx, ref["x"])


def test_nchw_to_rows_in_torch_order_so_a_following_linear_layer_agrees(rng):
    # (N, C, H, W) -> (N, C*H*W), row-major over (C, H, W): the order torch.nn.Flatten uses, so a
    # fully connected layer after it needs no reordering of its weights
    x = rng.standard_normal((2, 3, 4, 5))
    layer = Flatten()
    out = layer(x)
    assert out.shape == (2, 60)
    assert out[1, 2 * 20 + 3 * 5 + 4] == x[1, 2, 3, 4]
    fc = Linear(60, 7, rng=rng)
    tfc = torch.nn.Linear(60, 7)
    with torch.no_grad():
        tfc.weight.copy_(torch.from_numpy(fc.params["w"]))
        tfc.bias.copy_(torch.from_numpy(fc.params["b"]))
    ref = tfc(torch.nn.Flatten()(torch.from_numpy(x))).detach().numpy()
    np.testing.assert_allclose(fc(out), ref, **TIGHT)
    dout = rng.standard_normal((2, 60))
    np.testing.assert_array_equal(layer.backward(dout), dout.reshape(2, 3, 4, 5))
    check_module_gradients(layer, x, rng.standard_normal((2, 60)))
    assert layer.num_parameters() == 0 and repr(layer) == "Flatten(start_dim=1, end_dim=-1)"
    assert not np.shares_memory(layer(x), x)  # a copy: perturbing x later cannot change it


def test_a_gradient_in_the_wrong_order_is_caught(rng):
    # Reshaping the gradient back in column-major (Fortran) order scrambles it: the check fails.
    x = rng.standard_normal((2, 3, 2, 2))
    out, cache = flatten_forward(x)
    dout = rng.standard_normal(out.shape)
    f = lambda x: flatten_forward(x)[0]  # noqa: E731
    check_gradients(f, {"x": x}, {"x": flatten_backward(dout, cache)}, dout)
    wrong = np.stack([d.reshape(3, 2, 2, order="F") for d in dout])
    with pytest.raises(GradientCheckError, match="'x'"):
        check_gradients(f, {"x": x}, {"x": wrong}, dout)


def test_bad_input():
    with pytest.raises(ValueError, match=r"start_dim: expected an axis in \[-4, 3\] .*got 4"):
        flatten_forward(np.zeros((2, 3, 4, 5)), 4)
    with pytest.raises(ValueError, match=r"start_dim: expected an axis at or before end_dim = 1 .*got 2"):
        flatten_forward(np.zeros((2, 3, 4, 5)), 2, 1)
    with pytest.raises(ValueError, match=r"end_dim: expected an axis"):
        flatten_forward(np.zeros((2, 3)), 0, 1.5)
    with pytest.raises(ValueError, match="x: expected an array with at least 1 dimension"):
        flatten_forward(np.float64(3.0))
    _, cache = flatten_forward(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match=r"dout: expected shape \(2, 60\), got \(60, 2\)"):
        flatten_backward(np.zeros((60, 2)), cache)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        Flatten().backward(np.zeros((2, 60)))
