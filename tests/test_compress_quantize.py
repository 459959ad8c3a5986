"""dlbook.compress.quantize against torch's fake quantisation, observers and quantized tensors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from dlbook.compress import (dequantize, fake_quantize_backward, fake_quantize_forward,
                             minmax_qparams, quantize, symmetric_qparams)

QPARAMS = [(0.1, 0, -128, 127), (0.0123, 7, 0, 255), (1 / 3, 128, 0, 255), (0.05, -3, -8, 7),
           (0.25, 0, 0, 1), (2.0, 5, 5, 5)]


def torch_fake_quantize(x, dout, scale, zero_point, qmin, qmax):
    xt = torch.from_numpy(x).requires_grad_(True)
    out = torch.fake_quantize_per_tensor_affine(xt, scale, zero_point, qmin, qmax)
    (out * torch.from_numpy(dout)).sum().backward()
    return out.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("qparams", QPARAMS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fake_quantize_matches_torch_bit_for_bit(qparams, dtype, rng):
    scale, zero_point, qmin, qmax = qparams
    x = (rng.standard_normal((5, 7, 3)) * scale * (qmax - qmin + 4) / 3).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    x0, dout0 = x.copy(), dout.copy()
    out, cache = fake_quantize_forward(x, *qparams)
    dx = fake_quantize_backward(dout, cache)
    out_t, dx_t = torch_fake_quantize(x, dout, *qparams)
    assert out.dtype == dtype and dx.dtype == dtype
    np.testing.assert_array_equal(out, out_t)
    np.testing.assert_array_equal(dx, dx_t)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dout, dout0)
    assert 0 < (dx == 0).sum() < dx.size or qmin == qmax  # both regimes are exercised


def test_exact_halves_round_to_even_as_torch(rng):
    scale = 0.25  # a power of two: x / s is exact, so these are true ties
    halves = np.arange(-6, 6) + 0.5
    x = halves * scale
    dout = rng.standard_normal(x.shape)
    out, cache = fake_quantize_forward(x, scale, 0, -128, 127)
    out_t, dx_t = torch_fake_quantize(x, dout, scale, 0, -128, 127)
    np.testing.assert_array_equal(out, out_t)
    np.testing.assert_array_equal(fake_quantize_backward(dout, cache), dx_t)
    np.testing.assert_array_equal(out / scale % 2, 0)  # every tie went to the even neighbour
    # negative case: rounding half away from zero gives other values, and the check sees it
    away = np.sign(halves) * np.floor(np.abs(halves) + 0.5) * scale
    with pytest.raises(AssertionError):
        np.testing.assert_array_equal(away, out_t)


def test_range_edges_and_clamping_match_torch(rng):
    scale, zero_point, qmin, qmax = 0.5, 3, 0, 15
    # codes -1 (just below), 0 and 15 (the edges, still inside), 16 (above); plus far outside
    x = (np.array([-1, 0, 15, 16, -40, 40, 7]) - zero_point) * scale
    dout = rng.standard_normal(x.shape)
    out, cache = fake_quantize_forward(x, scale, zero_point, qmin, qmax)
    dx = fake_quantize_backward(dout, cache)
    out_t, dx_t = torch_fake_quantize(x, dout, scale, zero_point, qmin, qmax)
    np.testing.assert_array_equal(out, out_t)
    np.testing.assert_array_equal(dx, dx_t)
    np.testing.assert_array_equal(dx == 0, [True, False, False, True, True, True, False])


def test_perturbed_gradient_fails_the_comparison(rng):
    x = rng.standard_normal(20)
    dout = rng.standard_normal(20)
    _, cache = fake_quantize_forward(x, 0.1, 0, -8, 7)
    dx = fake_quantize_backward(dout, cache)
    _, dx_t = torch_fake_quantize(x, dout, 0.1, 0, -8, 7)
    with pytest.raises(AssertionError):
        np.testing.assert_array_equal(dout, dx_t)  # forgetting the clamp's zero gradient
    dx_bad = dx.copy()
    dx_bad[np.flatnonzero(dx)[0]] *= 1 + 1e-9
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(dx_bad, dx_t, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("args, match", [
    ((0.0, 0, 0, 255), "scale: expected a positive"),
    ((-0.1, 0, 0, 255), "scale: expected a positive"),
    ((np.inf, 0, 0, 255), "scale: expected a positive"),
    ((0.1, 300, 0, 255), r"zero_point: expected a value in \[quant_min, quant_max\]"),
    ((0.1, 0.5, 0, 255), "zero_point: expected an int"),
    ((0.1, 0, 10, 5), "quant_min, quant_max: expected quant_min <= quant_max"),
    ((0.1, 0, 0.0, 255), "quant_min: expected an int"),
])
def test_fake_quantize_bad_input(args, match, rng):
    with pytest.raises(ValueError, match=match):
        fake_quantize_forward(rng.standard_normal(4), *args)


def test_fake_quantize_backward_checks_dout(rng):
    _, cache = fake_quantize_forward(rng.standard_normal((2, 3)), 0.1, 0, 0, 255)
    with pytest.raises(ValueError, match=r"dout: expected shape \(2, 3\)"):
        fake_quantize_backward(rng.standard_normal((3, 2)), cache)


# --- observers, quantize, dequantize ------------------------------------------------------

def torch_minmax_qparams(x, dtype, symmetric):
    qscheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)  # the observer's buffers, as in ordinary use
    try:
        observer = torch.ao.quantization.MinMaxObserver(dtype=getattr(torch, dtype),
                                                        qscheme=qscheme)
        observer(torch.from_numpy(x))
        scale, zero_point = observer.calculate_qparams()
    finally:
        torch.set_default_dtype(default)
    return float(scale), int(zero_point)


@pytest.mark.parametrize("dtype", ["quint8", "qint8"])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("kind", ["normal", "positive", "negative", "zeros", "float64"])
def test_minmax_qparams_match_observer(dtype, symmetric, kind, rng):
    x = {"normal": rng.standard_normal((8, 5)) * 0.3 + 0.1,
         "positive": rng.random(30) + 0.5,  # min clamps to 0: the range always holds 0
         "negative": -rng.random(30) - 0.2,
         "zeros": np.zeros(6),  # scale falls back to float32's eps
         "float64": rng.standard_normal(50) * 7}[kind]
    if kind != "float64":
        x = x.astype(np.float32)
    scale, zero_point = minmax_qparams(x, dtype, symmetric)
    assert (scale, zero_point) == torch_minmax_qparams(x.astype(np.float32), dtype, symmetric)
    assert isinstance(scale, float) and isinstance(zero_point, int)


def test_minmax_qparams_negative_case(rng):
    x = (rng.standard_normal(40) * 0.3 + 0.1).astype(np.float32)
    assert minmax_qparams(x, "quint8", False) != torch_minmax_qparams(x, "quint8", True)


def _not_ties(x32: np.ndarray, scale: float) -> np.ndarray:
    """Entries whose x / s is not (within float32 rounding) halfway between two integers.

    There torch's x86 kernel, which rounds x / s + z computed in one fused float32 step, may pick
    the other neighbour (see ``quantize``'s docstring); everywhere else the codes agree.
    """
    ratio = x32.astype(np.float64) * np.float64(np.float32(1) / np.float32(scale))
    return np.abs(ratio - np.floor(ratio) - 0.5) > 1e-4


@pytest.mark.parametrize("dtype", ["quint8", "qint8"])
@pytest.mark.parametrize("symmetric", [False, True])
def test_quantize_dequantize_match_torch(dtype, symmetric, rng):
    x = (rng.standard_normal(3000) * 2 + 0.5).astype(np.float32)
    scale, zero_point = minmax_qparams(x, dtype, symmetric)
    x = x[_not_ties(x, scale)]
    q = quantize(x, scale, zero_point, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates quantized tensors; still the oracle
        q_t = torch.quantize_per_tensor(torch.from_numpy(x), scale, zero_point,
                                        getattr(torch, dtype))
        codes_t, deq_t = q_t.int_repr().numpy(), q_t.dequantize().numpy()
    assert q.dtype == codes_t.dtype == {"quint8": np.uint8, "qint8": np.int8}[dtype]
    np.testing.assert_array_equal(q, codes_t)
    deq = dequantize(q, scale, zero_point)
    assert deq.dtype == np.float32
    np.testing.assert_array_equal(deq, deq_t)
    # the stored integers and the fake-quantised floats are the same numbers
    qmin, qmax = {"quint8": (0, 255), "qint8": (-128, 127)}[dtype]
    np.testing.assert_array_equal(deq, fake_quantize_forward(x, scale, zero_point, qmin, qmax)[0])
    assert q.nbytes * 4 == x.nbytes
    with pytest.raises(AssertionError):  # negative case: a code off by one is caught
        q_bad = q.copy()
        q_bad[0] = q_bad[0] + 1 if q_bad[0] < qmax else q_bad[0] - 1
        np.testing.assert_array_equal(q_bad, codes_t)


def test_quantize_agrees_with_fake_quantize_at_ties():
    scale, zero_point = 0.25, 3  # odd zero point: where torch's x86 kernel differs (documented)
    x = (np.arange(-6, 6) + 0.5) * scale
    q = quantize(x, scale, zero_point, "qint8")  # all inside the range: nothing clamped
    np.testing.assert_array_equal(dequantize(q, scale, zero_point),
                                  fake_quantize_forward(x, scale, zero_point, -128, 127)[0])
    np.testing.assert_array_equal((q.astype(int) - zero_point) % 2, 0)  # x/s rounded to even


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_symmetric_grid(bits, rng):
    w = rng.standard_normal(500) * 0.05
    scale, zero_point, qmin, qmax = symmetric_qparams(w, bits)
    assert (zero_point, qmin, qmax) == (0, -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1)
    out, _ = fake_quantize_forward(w, scale, zero_point, qmin, qmax)
    out_t, _ = torch_fake_quantize(w, np.ones_like(w), scale, zero_point, qmin, qmax)
    np.testing.assert_array_equal(out, out_t)
    levels = np.unique(np.rint(out / np.float32(scale)))
    assert levels.min() >= qmin and levels.max() <= qmax and levels.size <= 2**bits - 1
    largest = np.argmax(np.abs(w))
    np.testing.assert_allclose(out[largest], w[largest], rtol=1e-6)  # max|w| is on the grid
    if bits == 2:  # {-s, 0, s} with s = max|w|: most weights of a bell-shaped layer become 0
        np.testing.assert_allclose(np.unique(np.abs(out)), [0.0, np.abs(w).max()], rtol=1e-6)
        assert (out == 0).mean() > 0.5


@pytest.mark.parametrize("call, match", [
    (lambda x: quantize(x, 0.1, 0, "int4"), "dtype: expected one of"),
    (lambda x: quantize(x, 0.1, 200, "qint8"), "zero_point: expected a value"),
    (lambda x: minmax_qparams(x, "uint16"), "dtype: expected one of"),
    (lambda x: minmax_qparams(x[:0]), "x: expected a non-empty array"),
    (lambda x: dequantize(x, 0.1, 0), "q: expected an integer array"),
    (lambda x: dequantize(np.zeros(3, np.uint8), 0.0, 0), "scale: expected a positive"),
    (lambda x: symmetric_qparams(x, 1), r"bits: expected an int in \[2, 16\]"),
])
def test_quantize_bad_input(call, match, rng):
    with pytest.raises(ValueError, match=match):
        call(rng.standard_normal(5))
