"""Linear (uniform) quantisation: integers q with x ~ (q - zero_point) * scale.

An affine quantiser with step ``scale`` s, integer ``zero_point`` z and integer range
[quant_min, quant_max] maps a real x to

    q = clamp(round(x / s) + z, quant_min, quant_max),      x_hat = (q - z) * s,

where ``round`` is round-half-to-even (``np.rint``, C's ``nearbyint``): 2.5 -> 2, 3.5 -> 4.

* :func:`quantize` / :func:`dequantize` produce and read real ``uint8``/``int8`` arrays, the
  stored model (4x smaller than float32).
* :func:`fake_quantize_forward` / :func:`fake_quantize_backward` compute x_hat in floating point
  for training with quantisation in the loop. Rounding has zero derivative almost everywhere, so
  the backward pass is the straight-through estimator: dx = dout where x lies inside the
  representable range (the clamp is inactive), 0 where it is clamped.
* :func:`minmax_qparams` picks s and z from a tensor's range, as ``torch.ao.quantization``'s
  ``MinMaxObserver``: asymmetric (affine) or symmetric; :func:`symmetric_qparams` gives a
  b-bit symmetric grid {-m s, ..., -s, 0, s, ..., m s} with m = 2^(b-1) - 1.

Precision, to match torch bit for bit: torch keeps the scale in single precision (float32) and
multiplies by its float32 reciprocal instead of dividing; we do the same (see each docstring).
"""

from __future__ import annotations

import numpy as np

from dlbook._validate import as_array, check_shape

__all__ = [
    "QUANT_RANGES", "fake_quantize_forward", "fake_quantize_backward",
    "minmax_qparams", "symmetric_qparams", "quantize", "dequantize",
]

# Integer ranges of torch's 8-bit quantized dtypes.
QUANT_RANGES = {"quint8": (0, 255), "qint8": (-128, 127)}
_NUMPY_DTYPES = {"quint8": np.uint8, "qint8": np.int8}


def _check_qparams(scale, zero_point, quant_min, quant_max) -> None:
    if not np.isfinite(scale) or not scale > 0:
        raise ValueError(f"scale: expected a positive finite number, got {scale!r}")
    for name, value in (("zero_point", zero_point), ("quant_min", quant_min),
                        ("quant_max", quant_max)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name}: expected an int, got {value!r}")
    if not quant_min <= quant_max:
        raise ValueError(f"quant_min, quant_max: expected quant_min <= quant_max, got "
                         f"{quant_min} > {quant_max}")
    if not quant_min <= zero_point <= quant_max:
        raise ValueError(f"zero_point: expected a value in [quant_min, quant_max] = "
                         f"[{quant_min}, {quant_max}], got {zero_point}")


def _codes(x: np.ndarray, scale: float):
    """Unclamped codes round(x / s) as torch computes them: x times the float32 1/s."""
    inv_scale = np.float32(1.0) / np.float32(scale)  # torch: float inv_scale = 1.0f / scale
    return np.rint(x * inv_scale.astype(x.dtype))


def fake_quantize_forward(x: np.ndarray, scale: float, zero_point: int, quant_min: int,
                          quant_max: int):
    """Quantise and dequantise in one step: x_hat = (clamp(round(x/s) + z, qmin, qmax) - z) * s.

    Args:
        x: real array of any shape.
        scale: the step s > 0; zero_point: the integer z in [quant_min, quant_max].
        quant_min, quant_max: the integer range (0, 255 for 8-bit unsigned).
    Returns:
        ``(out, cache)``: ``out`` has x's shape and dtype, each entry on the grid (q - z) * s.
        The cache holds the mask of entries inside the range.

    Matches ``torch.fake_quantize_per_tensor_affine(x, scale, zero_point, quant_min, quant_max)``
    bit for bit: as torch, s is rounded to float32, x is multiplied by the float32 reciprocal
    of s, and the product (q - z) * s is formed in float32.
    """
    x = as_array(x, "x")
    _check_qparams(scale, zero_point, quant_min, quant_max)
    q = _codes(x, scale) + zero_point  # unclamped integer codes (as floats)
    inside = (q >= quant_min) & (q <= quant_max)  # where the clamp is inactive
    q = np.clip(q, quant_min, quant_max)
    out = ((q - zero_point).astype(np.float32) * np.float32(scale)).astype(x.dtype)
    return out, inside


def fake_quantize_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Straight-through gradient: dx = dout inside [quant_min, quant_max], 0 where clamped.

    round() is treated as the identity (its true derivative is 0 almost everywhere, which
    would stop all learning); the clamp keeps its true derivative. Matches torch's autograd
    of ``torch.fake_quantize_per_tensor_affine``.
    """
    inside = cache
    dout = as_array(dout, "dout")
    check_shape(dout, inside.shape, "dout")
    return np.where(inside, dout, 0.0).astype(dout.dtype)


def minmax_qparams(x: np.ndarray, dtype: str = "quint8", symmetric: bool = False):
    """Scale and zero point from the range of ``x``, as torch's ``MinMaxObserver``.

    With m = min(min x, 0) and M = max(max x, 0) (the range always contains 0, so that 0 is
    represented exactly, which zero padding and ReLU outputs need) and [qmin, qmax] the range
    of ``dtype``:

    * affine (asymmetric): s = (M - m) / (qmax - qmin), z = clamp(qmin - round(m / s), qmin, qmax);
    * symmetric: s = max(-m, M) / ((qmax - qmin) / 2), z = 0 for qint8 and 128 for quint8.

    s is at least float32's machine epsilon (a constant tensor gets a tiny step, not 0).

    Args:
        x: the real array to be quantised (a weight tensor or a batch of activations).
        dtype: "quint8" (0..255) or "qint8" (-128..127).
        symmetric: False for ``torch.per_tensor_affine``, True for ``torch.per_tensor_symmetric``.
    Returns:
        ``(scale, zero_point)``, a Python float and int. Matches ``MinMaxObserver(dtype=...,
        qscheme=...)`` after observing x, ``calculate_qparams()``: like torch, the range and the
        scale are computed in float32.
    """
    x = as_array(x, "x")
    if x.size == 0:
        raise ValueError("x: expected a non-empty array, got size 0")
    if dtype not in QUANT_RANGES:
        raise ValueError(f"dtype: expected one of {sorted(QUANT_RANGES)}, got {dtype!r}")
    qmin, qmax = QUANT_RANGES[dtype]
    x32 = x.astype(np.float32)
    zero = np.float32(0.0)
    low, high = min(x32.min(), zero), max(x32.max(), zero)  # float32 scalars
    eps = np.finfo(np.float32).eps
    if symmetric:
        scale = max(max(-low, high) / np.float32((qmax - qmin) / 2), eps)
        zero_point = 0 if dtype == "qint8" else 128
    else:
        scale = max((high - low) / np.float32(qmax - qmin), eps)
        zero_point = int(np.clip(qmin - int(np.rint(low / scale)), qmin, qmax))
    return float(scale), zero_point


def symmetric_qparams(x: np.ndarray, bits: int):
    """A b-bit symmetric grid for ``x``: ``(scale, zero_point, quant_min, quant_max)``.

    quant_max = 2^(b-1) - 1 = -quant_min (the "restricted" range: one code, -2^(b-1), is left
    unused so that the grid is symmetric), zero_point = 0 and scale = max|x| / quant_max, so
    the largest weight is represented exactly. At b = 2 the grid is {-s, 0, s} with s = max|x|:
    most weights of a trained layer round to 0. Feed the result to
    :func:`fake_quantize_forward`.
    """
    x = as_array(x, "x")
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 16:
        raise ValueError(f"bits: expected an int in [2, 16], got {bits!r}")
    quant_max = 2 ** (int(bits) - 1) - 1
    largest = float(np.max(np.abs(x))) if x.size else 0.0
    scale = largest / quant_max if largest > 0 else 1.0
    return scale, 0, -quant_max, quant_max


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: str = "quint8") -> np.ndarray:
    """Integer codes q = clamp(round(x / s) + z, qmin, qmax) as a real ``uint8``/``int8`` array.

    The same codes as :func:`fake_quantize_forward` (so ``dequantize(quantize(x, ...))`` equals
    the fake-quantised x). Compared with ``torch.quantize_per_tensor(x, scale, zero_point,
    torch.quint8).int_repr()`` (float32 x): equal except where x / s is halfway between two
    integers (exactly, or within float32 rounding). There torch's x86 kernel (FBGEMM) rounds
    x / s + z, formed in one fused float32 step, while we (like torch's fake quantisation and its
    reference kernel) round x / s and then add z; with an odd z the two can differ by one.
    """
    x = as_array(x, "x")
    if dtype not in QUANT_RANGES:
        raise ValueError(f"dtype: expected one of {sorted(QUANT_RANGES)}, got {dtype!r}")
    qmin, qmax = QUANT_RANGES[dtype]
    _check_qparams(scale, zero_point, qmin, qmax)
    q = np.clip(_codes(x, scale) + zero_point, qmin, qmax)
    return q.astype(_NUMPY_DTYPES[dtype])


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Real values (q - z) * s from integer codes, in float32 (what an int8 runtime computes).

    Matches ``torch.Tensor.dequantize()`` of a per-tensor quantised tensor.
    """
    q = np.asarray(q)
    if not np.issubdtype(q.dtype, np.integer):
        raise ValueError(f"q: expected an integer array (the codes), got dtype {q.dtype}")
    if not np.isfinite(scale) or not scale > 0:
        raise ValueError(f"scale: expected a positive finite number, got {scale!r}")
    return (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
