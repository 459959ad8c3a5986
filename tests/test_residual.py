"""dlbook.residual: the basic residual block, identity or projection shortcut, against autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as F

from conftest import TIGHT, torch_forward_backward
from dlbook.gradcheck import GradientCheckError, check_gradients, check_module_gradients
from dlbook.residual import ResidualBlock, residual_block_backward, residual_block_forward


def torch_block(x, w1, w2, b1=None, b2=None, w_proj=None, b_proj=None, stride=1):
    h = F.relu(F.conv2d(x, w1, b1, stride, w1.shape[2] // 2))
    branch = F.conv2d(h, w2, b2, 1, w2.shape[2] // 2)
    shortcut = x if w_proj is None else F.conv2d(x, w_proj, b_proj, stride)
    return F.relu(branch + shortcut)


# (x shape, out channels, kernel, stride, projection, biases): identity blocks, a projection for
# more channels, for a stride of 2 on even and odd sizes, a 5x5 kernel, no biases.
CASES = [
    ((2, 4, 6, 5), 4, 3, 1, False, True),
    ((1, 3, 5, 5), 3, 5, 1, False, False),
    ((2, 3, 6, 6), 5, 3, 1, True, True),
    ((2, 4, 7, 6), 6, 3, 2, True, True),
    ((1, 2, 5, 7), 2, 3, 2, True, False),
]


def make_args(rng, shape, f, k, projection, bias):
    c = shape[1]
    args = {"x": rng.standard_normal(shape), "w1": 0.5 * rng.standard_normal((f, c, k, k)),
            "b1": rng.standard_normal(f) if bias else None,
            "w2": 0.5 * rng.standard_normal((f, f, k, k)),
            "b2": rng.standard_normal(f) if bias else None}
    if projection:
        args["w_proj"] = rng.standard_normal((f, c, 1, 1))
        args["b_proj"] = rng.standard_normal(f) if bias else None
    return args


@pytest.mark.parametrize("shape, f, k, stride, projection, bias", CASES)
def test_block_matches_torch_autograd(shape, f, k, stride, projection, bias, rng):
    args = make_args(rng, shape, f, k, projection, bias)
    before = {name: None if a is None else a.copy() for name, a in args.items()}
    out, cache = residual_block_forward(**args, stride=stride)
    dout = rng.standard_normal(out.shape)
    dout_before = dout.copy()
    names = ["x", "w1", "b1", "w2", "b2", "w_proj", "b_proj"]
    grads = dict(zip(names, residual_block_backward(dout, cache)))
    inputs = {name: a for name, a in args.items() if a is not None}
    ref_out, ref = torch_forward_backward(lambda **t: torch_block(**t, stride=stride), inputs, dout)
    np.testing.assert_allclose(out, ref_out, **TIGHT)
    for name, grad in grads.items():
        if name in inputs:
            np.testing.assert_allclose(grad, ref[name], **TIGHT)
        else:
            assert grad is None
    for name, a in args.items():  # arguments unmodified
        if a is not None:
            np.testing.assert_array_equal(a, before[name])
    np.testing.assert_array_equal(dout, dout_before)


def test_identity_path_carries_the_gradient_when_the_branch_is_silent(rng):
    # With a zero second convolution F(x) = 0, out = relu(x) and dx = relu'(x) * dout: the whole
    # gradient arrives through the shortcut, however the first convolution looks.
    x = rng.standard_normal((2, 3, 4, 4))
    w1, b1 = rng.standard_normal((3, 3, 3, 3)), rng.standard_normal(3)
    w2, b2 = np.zeros((3, 3, 3, 3)), np.zeros(3)
    out, cache = residual_block_forward(x, w1, b1, w2, b2)
    dout = rng.standard_normal(out.shape)
    dx, dw1, *_ = residual_block_backward(dout, cache)
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    np.testing.assert_array_equal(dx, np.where(x > 0, dout, 0.0))
    assert not dw1.any()  # nothing reaches w1 through a zero w2


def test_central_differences_and_a_missing_shortcut_gradient_fails(rng):
    args = make_args(rng, (2, 3, 5, 5), 3, 3, False, True)
    out, cache = residual_block_forward(**args)
    dout = rng.standard_normal(out.shape)
    dx, dw1, db1, dw2, db2, _, _ = residual_block_backward(dout, cache)
    f = lambda **a: residual_block_forward(**a)[0]  # noqa: E731
    check_gradients(f, args, {"x": dx, "w1": dw1, "b1": db1, "w2": dw2, "b2": db2}, dout)
    # negative case: dropping the identity's "+ dsum" (a plain network's dx) fails the check
    x_only_branch = dx - np.where(out > 0, dout, 0.0)
    with pytest.raises(GradientCheckError, match="'x'"):
        check_gradients(f, args, {"x": x_only_branch}, dout)


@pytest.mark.parametrize("in_channels, out_channels, stride, shortcut", [(3, 3, 1, "identity"),
                                                                         (3, 4, 1, "projection"),
                                                                         (3, 3, 2, "projection")])
def test_layer_wraps_the_functions_and_passes_central_differences(in_channels, out_channels, stride,
                                                                  shortcut, rng):
    block = ResidualBlock(in_channels, out_channels, stride, rng=rng)
    assert repr(block) == (f"ResidualBlock({in_channels}, {out_channels}, stride={stride}, "
                           f"shortcut={shortcut})")
    expected = 2 * out_channels + in_channels * out_channels * 9 + out_channels**2 * 9
    if shortcut == "projection":
        expected += in_channels * out_channels + out_channels
    assert block.num_parameters() == expected
    x = rng.standard_normal((2, in_channels, 5, 6))
    out = block(x)
    dout = rng.standard_normal(out.shape)
    keys = ("w1", "b1", "w2", "b2", "w_proj", "b_proj")
    ref_out, _ = residual_block_forward(x, *(block.params.get(k) for k in keys), stride=stride)
    np.testing.assert_array_equal(out, ref_out)
    check_module_gradients(block, x, dout)


def test_bad_input_names_the_argument(rng):
    x = rng.standard_normal((1, 3, 4, 4))
    w = rng.standard_normal((3, 3, 3, 3))
    with pytest.raises(ValueError, match="w_proj: the block maps x"):
        residual_block_forward(x, rng.standard_normal((4, 3, 3, 3)), None,
                               rng.standard_normal((4, 4, 3, 3)), None)
    with pytest.raises(ValueError, match="w_proj: the block maps x"):
        residual_block_forward(x, w, None, w, None, stride=2)
    with pytest.raises(ValueError, match=r"w_proj: expected shape \(3, 3, 1, 1\)"):
        residual_block_forward(x, w, None, w, None, w_proj=np.zeros((3, 3, 3, 3)), stride=2)
    with pytest.raises(ValueError, match="w1: expected an odd kernel"):
        residual_block_forward(x, rng.standard_normal((3, 3, 2, 2)), None, w, None)
    with pytest.raises(ValueError, match="x: expected a 4-D array"):
        residual_block_forward(x[0], w, None, w, None)
    _, cache = residual_block_forward(x, w, None, w, None)
    with pytest.raises(ValueError, match="dout"):
        residual_block_backward(np.zeros((1, 3, 4, 5)), cache)
