"""Receptive fields: which input pixels a unit of a stack of convolutions and poolings can see.

Along one axis, a layer with kernel size k, stride s, padding p and dilation d (its kernel
spans k_eff = d (k - 1) + 1 positions) turns the description of its input's units into that of
its output's units. Three numbers describe the units of a layer, in input pixels:

* ``size`` r: how many input pixels one unit's field spans;
* ``jump`` j: how far apart (in input pixels) the fields of two neighbouring units are;
* ``start``: the centre of the first unit's field (pixel i has its centre at i; a half-integer
  for even fields, negative when the field starts in the padding).

For the input itself r = 1, j = 1, start = 0, and each layer applies the recurrence

    j_out     = j_in * s
    r_out     = r_in + (k_eff - 1) * j_in
    start_out = start_in + ((k_eff - 1) / 2 - p) * j_in

so unit u of a layer sees the input pixels start + u j - (r - 1)/2 ... start + u j + (r - 1)/2
(clipped to the image). Stacking three 3x3 stride-1 convolutions gives r = 1 + 3 * 2 = 7: the
field of one 7x7 convolution with 27 C^2 instead of 49 C^2 weights (C channels in and out).
Araujo, Norris and Sim (2019) derive these and their closed forms. A pooling layer counts as a
layer with its window as kernel. The recurrence is the same for both axes; this module follows
one (square kernels and equal strides give the same numbers for the other).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

__all__ = ["ReceptiveFieldRow", "receptive_field"]


class ReceptiveFieldRow(NamedTuple):
    """A layer and the receptive field of its output units, in input pixels (one axis)."""

    kernel_size: int
    stride: int
    padding: int
    dilation: int
    size: int  # r: pixels spanned by one unit's field
    jump: int  # j: distance between neighbouring units' fields
    start: float  # centre of the first unit's field
    output_size: int | None  # units along the axis, if the input size was given


def _layer(spec, index: int) -> tuple[int, int, int, int]:
    """(kernel_size, stride, padding, dilation) from a tuple of 2 to 4 ints, checked."""
    name = f"layers[{index}]"
    if not isinstance(spec, (tuple, list)) or not 2 <= len(spec) <= 4:
        raise ValueError(f"{name}: expected (kernel_size, stride[, padding[, dilation]]), "
                         f"got {spec!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in spec):
        raise ValueError(f"{name}: expected ints, got {spec!r}")
    k, s, p, d = tuple(spec) + (0, 1)[len(spec) - 2:]  # default padding 0, dilation 1
    if k < 1 or s < 1 or d < 1 or p < 0:
        raise ValueError(f"{name}: expected kernel_size, stride, dilation >= 1 and padding >= 0, "
                         f"got {spec!r}")
    return k, s, p, d


def receptive_field(layers: Sequence, input_size: int | None = None) -> list[ReceptiveFieldRow]:
    """Receptive field size, jump and start of every layer of a stack (the recurrence above).

    Args:
        layers: one entry per layer, ``(kernel_size, stride)``, ``(kernel_size, stride,
            padding)`` or ``(kernel_size, stride, padding, dilation)`` (padding 0 and dilation 1
            by default), first layer first.
        input_size: the input's length along the axis, to also get each layer's output size
            (H + 2p - k_eff) // s + 1, as torch computes it.
    Returns:
        One :class:`ReceptiveFieldRow` per layer.
    Raises:
        ValueError: for a malformed layer (named by its index), or a kernel larger than the
            padded input when ``input_size`` is given.
    """
    size, jump, start = 1, 1, 0.0  # the input: each unit is one pixel
    length = input_size
    if length is not None and (isinstance(length, bool) or not isinstance(length, int)
                               or length < 1):
        raise ValueError(f"input_size: expected an int >= 1 or None, got {input_size!r}")
    rows = []
    for i, spec in enumerate(layers):
        k, s, p, d = _layer(spec, i)
        span = d * (k - 1) + 1  # k_eff: positions the dilated kernel covers
        start = start + ((span - 1) / 2 - p) * jump  # uses j_in: before jump is updated
        size = size + (span - 1) * jump
        jump = jump * s
        if length is not None:
            if span > length + 2 * p:
                raise ValueError(f"layers[{i}]: kernel spans {span} positions, more than the "
                                 f"padded input {length} + 2*{p}")
            length = (length + 2 * p - span) // s + 1
        rows.append(ReceptiveFieldRow(k, s, p, d, size, jump, start, length))
    return rows
