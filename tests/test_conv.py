"""dlbook.conv: naive loops == im2col fast path == torch.nn.functional.conv2d, forward and backward, in float64."""

from __future__ import annotations

import importlib.util
import io
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import dlbook._parallel as dlbook_parallel
import dlbook._conv_fast as conv_fast
from conftest import TIGHT, torch_forward_backward
from dlbook.conv import (Conv2d, col2im, conv2d_backward, conv2d_backward_im2col, conv2d_backward_naive,
                         conv2d_forward, conv2d_forward_im2col, conv2d_forward_naive, conv_output_size, im2col)
from dlbook.gradcheck import GradientCheckError, check_gradients, check_module_gradients

# The sources' example (the CNN textbook chapter Fig 2-6, the CNN article §2.1.1, the CNN slides): a 5x5 binary image and the
# "101010101" kernel. The same example appears in all three.
X_SOURCES = np.array([[1, 1, 1, 0, 0],
                      [0, 1, 1, 1, 0],
                      [0, 0, 1, 1, 1],
                      [0, 0, 1, 1, 0],
                      [0, 1, 1, 0, 0]], dtype=np.float64)
K_SOURCES = np.array([[1, 0, 1],
                      [0, 1, 0],
                      [1, 0, 1]], dtype=np.float64)

# (x shape, w shape, stride, padding, bias): batch > 1, several channels, non-square inputs and
# kernels, strides and paddings as ints and as pairs, 1x1 kernels, a kernel as large as the padded input.
CASES = [
    ((2, 3, 7, 9), (4, 3, 3, 2), 1, 0, True),
    ((2, 3, 7, 9), (4, 3, 3, 2), (2, 1), (1, 2), True),
    ((3, 2, 8, 6), (5, 2, 2, 3), 2, 1, False),
    ((2, 4, 6, 5), (3, 4, 3, 3), 1, 1, True),
    ((1, 1, 5, 5), (1, 1, 3, 3), 1, 1, True),
    ((2, 3, 6, 7), (2, 3, 1, 1), 1, 0, True),
    ((2, 2, 5, 5), (3, 2, 1, 3), (1, 1), (0, 1), True),
    ((2, 2, 9, 7), (3, 2, 4, 2), (3, 2), (2, 0), True),
    ((2, 2, 4, 3), (2, 2, 6, 5), 1, (1, 1), True),  # kernel = padded input: a 1x1 output
    ((4, 3, 5, 8), (2, 3, 5, 3), (1, 3), 2, False),
]


def torch_conv(stride, padding):
    return lambda x, w, b=None: F.conv2d(x, w, b, stride=stride, padding=padding)


def run_all(x, w, b, stride, padding, dout):
    """out and (dx, dw, db) from the naive pair, the im2col pair, the tuned pair and torch."""
    naive_out, naive_cache = conv2d_forward_naive(x, w, b, stride, padding)
    im2col_out, im2col_cache = conv2d_forward_im2col(x, w, b, stride, padding)
    fast_out, fast_cache = conv2d_forward(x, w, b, stride, padding)
    inputs = {"x": x, "w": w} | ({"b": b} if b is not None else {})
    ref_out, ref = torch_forward_backward(torch_conv(stride, padding), inputs, dout)
    return ((naive_out, conv2d_backward_naive(dout, naive_cache)),
            (im2col_out, conv2d_backward_im2col(dout, im2col_cache)),
            (fast_out, conv2d_backward(dout, fast_cache)),
            (ref_out, (ref["x"], ref["w"], ref.get("b"))))


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, bias", CASES)
def test_naive_equals_im2col_equals_fast_equals_torch(x_shape, w_shape, stride, padding, bias, rng):
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0]) if bias else None
    out_shape = conv2d_forward(x, w, b, stride, padding)[0].shape
    dout = rng.standard_normal(out_shape)  # random: a ones-gradient would hide transposes
    *ours, (t_out, t_grads) = run_all(x, w, b, stride, padding, dout)
    for kind, (out, grads) in zip(("naive", "im2col", "tuned"), ours):
        np.testing.assert_allclose(out, t_out, **TIGHT, err_msg=f"{kind} out")
        for name, grad, ref in zip("x w b".split(), grads, t_grads):
            if ref is None:
                assert grad is None, (kind, name)
                continue
            assert grad.shape == ref.shape, (kind, name)
            np.testing.assert_allclose(grad, ref, **TIGHT, err_msg=f"{kind} d{name}")


@settings(max_examples=25, deadline=None, derandomize=True)
@given(n=st.integers(1, 3), c=st.integers(1, 4), f=st.integers(1, 4), h=st.integers(1, 9), w=st.integers(1, 9),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       ph=st.integers(0, 2), pw=st.integers(0, 2), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_random_shapes_fast_equals_torch(n, c, f, h, w, kh, kw, sh, sw, ph, pw, bias, seed):
    kh, kw = min(kh, h + 2 * ph), min(kw, w + 2 * pw)  # a kernel that fits the padded input
    rng = np.random.default_rng(seed)
    x, wt = rng.standard_normal((n, c, h, w)), rng.standard_normal((f, c, kh, kw))
    b = rng.standard_normal(f) if bias else None
    out, cache = conv2d_forward(x, wt, b, (sh, sw), (ph, pw))
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv2d_backward(dout, cache)
    inputs = {"x": x, "w": wt} | ({"b": b} if bias else {})
    ref_out, ref = torch_forward_backward(torch_conv((sh, sw), (ph, pw)), inputs, dout)
    # the printed im2col version equals the tuned one on every shape
    im2col_out, im2col_cache = conv2d_forward_im2col(x, wt, b, (sh, sw), (ph, pw))
    for tuned, printed in zip((out, dx, dw, db), (im2col_out, *conv2d_backward_im2col(dout, im2col_cache))):
        if tuned is None:
            assert printed is None
        else:
            np.testing.assert_allclose(printed, tuned, **TIGHT)
    np.testing.assert_allclose(out, ref_out, **TIGHT)
    np.testing.assert_allclose(dx, ref["x"], **TIGHT)
    np.testing.assert_allclose(dw, ref["w"], **TIGHT)
    if bias:
        np.testing.assert_allclose(db, ref["b"], **TIGHT)


def test_groups_of_images_give_the_same_result(rng, monkeypatch):
    # The fast path works through the batch a few images at a time; one group or one image per
    # group must give the same numbers (up to rounding), at stride 1 (wide rows) and stride 2.
    x, w, b = rng.standard_normal((5, 3, 6, 7)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    for stride, padding in ((1, 1), (2, 1)):
        results = []
        for chunk_bytes in (1, 2**30):
            monkeypatch.setattr(conv_fast, "_CHUNK_BYTES", chunk_bytes)
            out, cache = conv2d_forward(x, w, b, stride, padding)
            dout = np.linspace(-1, 1, out.size).reshape(out.shape)
            results.append((out,) + conv2d_backward(dout, cache))
        for one_by_one, whole in zip(*results):
            np.testing.assert_allclose(one_by_one, whole, **TIGHT)


@pytest.mark.skipif(dlbook_parallel._find_openblas() is None, reason="needs numpy's bundled OpenBLAS")
@pytest.mark.parametrize("stride, padding, bias", [(1, 1, True), (1, (0, 2), False), ((2, 1), 1, True)])
def test_threads_give_the_same_result_as_one_thread_and_torch(stride, padding, bias, rng, monkeypatch):
    # The groups of images shared out between worker threads (three here, whatever the machine
    # has, one image per group): the same numbers as one thread, and as torch, in float64.
    x, w = rng.standard_normal((7, 3, 6, 5)), rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(4) if bias else None
    monkeypatch.setattr(conv_fast, "_CHUNK_BYTES", 1)
    monkeypatch.setattr(dlbook_parallel, "MIN_WORK", 0)
    results = {}
    for threads in (1, 3):
        monkeypatch.setattr(dlbook_parallel, "available_threads", lambda threads=threads: threads)
        out, cache = conv2d_forward(x, w, b, stride, padding)
        dout = np.linspace(-1, 1, out.size).reshape(out.shape)
        results[threads] = (out,) + conv2d_backward(dout, cache)
    inputs = {"x": x, "w": w} | ({"b": b} if bias else {})
    ref_out, ref = torch_forward_backward(torch_conv(stride, padding), inputs, dout)
    for name, ours, one, theirs in zip(("out", "dx", "dw", "db"), results[3], results[1],
                                       (ref_out, ref["x"], ref["w"], ref.get("b"))):
        if theirs is None:
            assert ours is None and one is None
            continue
        np.testing.assert_allclose(ours, one, **TIGHT, err_msg=name)
        np.testing.assert_allclose(ours, theirs, **TIGHT, err_msg=name)


# --- the sources' worked numbers -------------------------------------------------------------

@pytest.mark.parametrize("stride, padding, expected", [
    (1, 0, [[4, 3, 4], [2, 4, 3], [2, 3, 4]]),
    (2, 0, [[4, 4], [2, 4]]),
    (1, 1, [[2, 2, 3, 1, 1], [1, 4, 3, 4, 1], [1, 2, 4, 3, 3], [1, 2, 3, 4, 1], [0, 2, 2, 1, 1]]),
    (2, 1, [[2, 3, 1], [1, 4, 3], [0, 2, 1]]),
])
def test_sources_5x5_example(stride, padding, expected):
    x, k = X_SOURCES[None, None], K_SOURCES[None, None]
    naive, _ = conv2d_forward_naive(x, k, np.zeros(1), stride, padding)
    fast, _ = conv2d_forward(x, k, np.zeros(1), stride, padding)
    np.testing.assert_array_equal(naive[0, 0], expected)
    np.testing.assert_array_equal(fast[0, 0], expected)
    if padding == 0:
        assert naive[0, 0, 0, 0] == 4  # a_00 = relu(4) = 4, the value all three sources state


def test_sources_kernel_hides_a_flip_but_an_asymmetric_kernel_does_not(rng):
    # The sources' kernel equals its 180-degree rotation, so correlation and true convolution
    # agree on it and a flipped-kernel bug would pass; an asymmetric kernel tells them apart.
    np.testing.assert_array_equal(K_SOURCES, K_SOURCES[::-1, ::-1])
    x = X_SOURCES[None, None]
    k = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, -1.0], [3.0, 0.0, 0.0]])[None, None]
    ours, _ = conv2d_forward(x, k)
    ref = F.conv2d(torch.from_numpy(x), torch.from_numpy(k)).numpy()
    flipped, _ = conv2d_forward(x, k[:, :, ::-1, ::-1])  # what a convolution-with-flip would compute
    np.testing.assert_allclose(ours, ref, **TIGHT)
    assert not np.allclose(flipped, ref)  # the check can fail: a flip is caught


def test_output_sizes_from_the_sources(rng):
    assert conv_output_size(28, 5) == 24  # 28x28 with a 5x5 receptive field -> 24x24 hidden units
    assert conv_output_size(5, 3, stride=2) == 2  # the stride-2 example
    assert conv_output_size(5, 3, padding=1) == 5  # same-padding keeps 5x5
    assert conv_output_size(96, 8) == 89  # 400 filters of 8x8 on 96x96: 89^2 = 7921 features each
    # 32x32x3 with six 5x5x3 filters -> 28x28x6
    out, _ = conv2d_forward(rng.standard_normal((1, 3, 32, 32)), rng.standard_normal((6, 3, 5, 5)))
    assert out.shape == (1, 6, 28, 28)
    # the CS231n demo: the drawn 7x7x3 volume already includes padding 1 around a 5x5x3 input;
    # two 3x3x3 filters at stride 2 give 3x3x2 either way, with 2 * (27 + 1) = 56 parameters
    out, _ = conv2d_forward(rng.standard_normal((1, 3, 7, 7)), rng.standard_normal((2, 3, 3, 3)), stride=2)
    assert out.shape == (1, 2, 3, 3)
    out, _ = conv2d_forward(rng.standard_normal((1, 3, 5, 5)), rng.standard_normal((2, 3, 3, 3)), stride=2, padding=1)
    assert out.shape == (1, 2, 3, 3)
    assert Conv2d(3, 2, 3, stride=2, padding=1, rng=rng).num_parameters() == 56
    # ... whereas padding a genuine 7x7 input by 1 gives 4x4: the ambiguity recorded in the errata
    assert conv_output_size(7, 3, stride=2, padding=1) == 4


def test_output_is_per_channel_correlations_summed_plus_bias(rng):
    # the CNN slides' multi-channel example adds one correlation per input channel and the bias
    x, w, b = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((2, 3, 3, 3)), rng.standard_normal(2)
    out, _ = conv2d_forward(x, w, b, 2, 1)
    per_channel = sum(conv2d_forward(x[:, c:c + 1], w[:, c:c + 1], None, 2, 1)[0] for c in range(3))
    np.testing.assert_allclose(out, per_channel + b[None, :, None, None], **TIGHT)


# --- central differences and checks that can fail ----------------------------------------------

@pytest.mark.parametrize("stride, padding", [(1, 0), ((2, 1), (1, 2))])
def test_central_differences(stride, padding, rng):
    x, w, b = rng.standard_normal((2, 2, 5, 6)), rng.standard_normal((3, 2, 3, 2)), rng.standard_normal(3)
    out, cache = conv2d_forward(x, w, b, stride, padding)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv2d_backward(dout, cache)
    f = lambda x, w, b: conv2d_forward(x, w, b, stride, padding)[0]  # noqa: E731
    results = check_gradients(f, {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}, dout,
                              rtol=1e-7, atol=1e-9)
    assert set(results) == {"x", "w", "b"}


def test_gradient_checks_catch_a_flipped_kernel_and_a_transposed_dw(rng):
    x, w, b = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((3, 3, 3, 2)), rng.standard_normal(3)
    out, cache = conv2d_forward_naive(x, w, b, 1, 1)
    dout = rng.standard_normal(out.shape)
    f = lambda x, w, b: conv2d_forward(x, w, b, 1, 1)[0]  # noqa: E731
    # dx by a full convolution that forgets to rotate the kernel: give the naive backward a kernel
    # that is already rotated, so its own rotation undoes it
    dx_unrotated = conv2d_backward_naive(dout, (x, w[:, :, ::-1, ::-1], b, (1, 1), (1, 1)))[0]
    with pytest.raises(GradientCheckError, match="'x'"):
        check_gradients(f, {"x": x, "w": w, "b": b}, {"x": dx_unrotated}, dout)
    # dw with the filter and channel axes swapped (same shape here since F = C)
    dw = conv2d_backward_naive(dout, cache)[1]
    with pytest.raises(GradientCheckError, match="'w'"):
        check_gradients(f, {"x": x, "w": w, "b": b}, {"w": dw.transpose(1, 0, 2, 3)}, dout)
    # and torch sees both too
    _, ref = torch_forward_backward(torch_conv(1, 1), {"x": x, "w": w, "b": b}, dout)
    assert not np.allclose(dx_unrotated, ref["x"]) and not np.allclose(dw.transpose(1, 0, 2, 3), ref["w"])
    np.testing.assert_allclose(dw, ref["w"], **TIGHT)


# --- im2col / col2im -----------------------------------------------------------------------------

@pytest.mark.parametrize("kernel, stride, padding", [(3, 1, 1), ((2, 3), (2, 1), (0, 2))])
def test_im2col_and_col2im_match_torch_unfold_and_fold(kernel, stride, padding, rng):
    x = rng.standard_normal((2, 3, 6, 7))
    cols = im2col(x, kernel, stride, padding)
    ref = F.unfold(torch.from_numpy(x), kernel, stride=stride, padding=padding).numpy()  # (N, C*KH*KW, L)
    assert cols.shape == (ref.shape[1], ref.shape[0] * ref.shape[2])
    np.testing.assert_array_equal(cols, ref.transpose(1, 0, 2).reshape(cols.shape))
    g = rng.standard_normal(cols.shape)
    back = col2im(g, x.shape, kernel, stride, padding)
    g_torch = torch.from_numpy(g.reshape(ref.shape[1], ref.shape[0], ref.shape[2]).transpose(1, 0, 2).copy())
    ref_back = F.fold(g_torch, x.shape[2:], kernel, stride=stride, padding=padding).numpy()
    np.testing.assert_allclose(back, ref_back, **TIGHT)
    # col2im is the adjoint of im2col: <im2col(x), g> = <x, col2im(g)>
    np.testing.assert_allclose(np.sum(cols * g), np.sum(x * back), **TIGHT)


def test_convolution_is_one_matrix_product_over_im2col(rng):
    x, w = rng.standard_normal((3, 2, 6, 5)), rng.standard_normal((4, 2, 3, 3))
    cols = im2col(x, 3, 1, 1)  # (C*KH*KW, N*OH*OW) = (18, 3*6*5)
    assert cols.shape == (18, 90)
    out = (w.reshape(4, -1) @ cols).reshape(4, 3, 6, 5).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(out, conv2d_forward(x, w, None, 1, 1)[0], **TIGHT)


# --- dtypes ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride", [1, 2])
def test_dtype_is_kept(dtype, stride, rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(dtype)
    w, b = rng.standard_normal((4, 3, 3, 3)).astype(dtype), rng.standard_normal(4).astype(dtype)
    out, cache = conv2d_forward(x, w, b, stride, 1)
    grads = conv2d_backward(rng.standard_normal(out.shape).astype(dtype), cache)
    assert out.dtype == dtype and all(g.dtype == dtype for g in grads)
    if dtype == np.float32:  # and agrees with torch's float32 result to float32 precision
        ref = F.conv2d(*(torch.from_numpy(a) for a in (x, w, b)), stride=stride, padding=1).numpy()
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


# --- bad input ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("x_shape, w_shape, b_shape, stride, padding, match", [
    ((3, 5, 5), (2, 3, 3, 3), None, 1, 0, r"x: expected a 4-D array \(N, C, H, W\), got shape \(3, 5, 5\)"),
    ((1, 3, 5, 5), (2, 3, 3), None, 1, 0, r"w: expected a 4-D array \(F, C, KH, KW\), got shape \(2, 3, 3\)"),
    ((1, 3, 5, 5), (2, 4, 3, 3), None, 1, 0, r"w: expected \(F, C, KH, KW\) with C = 3 .*got shape \(2, 4, 3, 3\)"),
    ((1, 3, 5, 5), (2, 3, 3, 3), (3,), 1, 0, r"b: expected shape \(2,\), got \(3,\)"),
    ((1, 3, 5, 5), (2, 3, 6, 3), None, 1, 0, r"w: expected a kernel \(KH, KW\) at most .*\(5, 5\).*got \(6, 3\)"),
    ((1, 3, 5, 5), (2, 3, 6, 3), None, 1, (0, 1), r"w: .*\(5, 7\).*got \(6, 3\)"),
    ((1, 3, 5, 5), (2, 3, 3, 3), None, 0, 0, r"stride: expected positive ints, got 0"),
    ((1, 3, 5, 5), (2, 3, 3, 3), None, (1, -2), 0, r"stride: expected positive ints"),
    ((1, 3, 5, 5), (2, 3, 3, 3), None, 1.5, 0, r"stride: expected an int or a pair of ints, got 1.5"),
    ((1, 3, 5, 5), (2, 3, 3, 3), None, (1, 1, 1), 0, r"stride: expected an int or a pair"),
    ((1, 3, 5, 5), (2, 3, 3, 3), None, 1, -1, r"padding: expected non-negative ints, got -1"),
    ((1, 3, 5, 5), (2, 3, 3, 3), None, 1, "same", r"padding: expected an int or a pair"),
])
def test_bad_input_is_a_value_error_naming_the_argument(x_shape, w_shape, b_shape, stride, padding, match):
    x, w = np.zeros(x_shape), np.zeros(w_shape)
    b = np.zeros(b_shape) if b_shape else None
    for forward in (conv2d_forward, conv2d_forward_naive):
        with pytest.raises(ValueError, match=match):
            forward(x, w, b, stride, padding)


def test_bad_dout_and_bad_sizes(rng):
    out, cache = conv2d_forward(rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"dout: expected shape \(2, 4, 3, 3\), got \(2, 3, 3, 3\)"):
        conv2d_backward(np.zeros((2, 3, 3, 3)), cache)
    with pytest.raises(ValueError, match=r"dout: expected shape \(2, 4, 3, 3\)"):
        naive_cache = conv2d_forward_naive(np.zeros((2, 3, 5, 5)), np.zeros((4, 3, 3, 3)))[1]
        conv2d_backward_naive(np.zeros((4, 3, 3)), naive_cache)
    with pytest.raises(ValueError, match=r"kernel_size: expected at most the padded size 5 \+ 2\*0 = 5, got 6"):
        conv_output_size(5, 6)
    for args, name in (((0, 3), "size"), ((5, 3, 0), "stride"), ((5, 3, 1, -1), "padding"), ((5.0, 3), "size")):
        with pytest.raises(ValueError, match=f"{name}: expected an int"):
            conv_output_size(*args)
    with pytest.raises(ValueError, match=r"cols: expected shape \(27, 18\)"):
        col2im(np.zeros((27, 17)), (2, 3, 5, 5), 3)
    with pytest.raises(ValueError, match="kernel_size: expected a kernel"):
        im2col(np.zeros((1, 1, 3, 3)), 4)


# --- the layer class ---------------------------------------------------------------------------------

def test_layer_initialises_like_torch_and_wraps_the_functions(rng):
    layer = Conv2d(3, 6, (5, 3), stride=(2, 1), padding=1, rng=rng)
    bound = 1 / np.sqrt(3 * 5 * 3)
    w, b = layer.params["w"], layer.params["b"]
    assert w.shape == (6, 3, 5, 3) and b.shape == (6,) and w.dtype == np.float64
    assert bound * 0.9 < np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert layer.num_parameters() == 6 * 3 * 5 * 3 + 6
    x = rng.standard_normal((2, 3, 9, 8))
    out = layer(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    ref_out, cache = conv2d_forward(x, w, b, (2, 1), 1)
    ref = conv2d_backward(dout, cache)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(dx, ref[0])
    np.testing.assert_array_equal(layer.grads["w"], ref[1])
    np.testing.assert_array_equal(layer.grads["b"], ref[2])
    # torch's layer with the same weights computes the same thing
    tl = torch.nn.Conv2d(3, 6, (5, 3), stride=(2, 1), padding=1)
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(w))
        tl.bias.copy_(torch.from_numpy(b))
    np.testing.assert_allclose(out, tl(torch.from_numpy(x)).detach().numpy(), **TIGHT)
    assert "b" not in Conv2d(3, 2, 3, bias=False, rng=rng).params
    assert Conv2d(2, 2, 3, dtype=np.float32, rng=rng).params["w"].dtype == np.float32
    assert repr(layer) == "Conv2d(3, 6, kernel_size=(5, 3), stride=(2, 1), padding=(1, 1), bias=True)"


def test_layer_gradients_by_central_differences(rng):
    layer = Conv2d(2, 3, (3, 2), stride=(1, 2), padding=(1, 0), rng=rng)
    x = rng.standard_normal((2, 2, 5, 6))
    dout = rng.standard_normal(layer(x).shape)
    results = check_module_gradients(layer, x, dout, rtol=1e-7, atol=1e-9)
    assert set(results) == {"x", "w", "b"}


def test_layer_rejects_bad_arguments(rng):
    with pytest.raises(ValueError, match="in_channels: expected an int >= 1, got 0"):
        Conv2d(0, 2, 3)
    with pytest.raises(ValueError, match="kernel_size: expected positive ints"):
        Conv2d(1, 2, (0, 3))
    with pytest.raises(ValueError, match="stride: expected positive ints"):
        Conv2d(1, 2, 3, stride=0)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        Conv2d(1, 2, 3, rng=rng).backward(np.zeros((1, 2, 3, 3)))


# --- the benchmark script runs ------------------------------------------------------------------------

def test_benchmark_script_runs_in_quick_mode():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_conv.py"
    spec = importlib.util.spec_from_file_location("bench_conv", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert bench.main(["--quick", "--shape", "2,3,8,8,4,3,1", "--shape", "1,2,5,6,3,2,0"]) == 0
    text = buffer.getvalue()
    assert "torch threads:" in text and "numpy" in text
    for shape in ((2, 3, 8, 8, 4, 3, 1), (1, 2, 5, 6, 3, 2, 0)):
        assert f"{shape}: dlbook fwd+bwd is" in text


# --- 1x1 convolution ------------------------------------------------------------------------------

def test_a_1x1_convolution_is_a_linear_layer_applied_to_every_pixel(rng):
    # out[n, :, h, w] = W x[n, :, h, w] + b with W = w[:, :, 0, 0]: the channel vector of each
    # pixel goes through the same fully connected layer (NIN's mlpconv, GoogLeNet's reductions).
    from dlbook.linear import linear_backward, linear_forward
    x = rng.standard_normal((2, 5, 3, 4))
    w, b = rng.standard_normal((7, 5, 1, 1)), rng.standard_normal(7)
    out, cache = conv2d_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv2d_backward(dout, cache)
    pixels = x.transpose(0, 2, 3, 1)  # (N, H, W, C): channels on the last axis
    out_lin, cache_lin = linear_forward(pixels, w[:, :, 0, 0], b)  # (N, H, W, F)
    dx_lin, dw_lin, db_lin = linear_backward(dout.transpose(0, 2, 3, 1), cache_lin)
    np.testing.assert_allclose(out, out_lin.transpose(0, 3, 1, 2), **TIGHT)
    np.testing.assert_allclose(dx, dx_lin.transpose(0, 3, 1, 2), **TIGHT)
    np.testing.assert_allclose(dw[:, :, 0, 0], dw_lin, **TIGHT)
    np.testing.assert_allclose(db, db_lin, **TIGHT)
    assert Conv2d(5, 7, 1).num_parameters() == 5 * 7 + 7  # the parameters of Linear(5, 7)
    # negative case: reshaping (N, C, H, W) to (N, H, W, C) instead of transposing mixes pixels
    # and channels; the shapes fit, the numbers do not
    wrong, _ = linear_forward(x.reshape(2, 3, 4, 5), w[:, :, 0, 0], b)
    assert not np.allclose(out, wrong.transpose(0, 3, 1, 2))
