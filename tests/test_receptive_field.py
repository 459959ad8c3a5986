"""dlbook.receptive_field against backpropagating one output pixel through a torch stack."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlbook.receptive_field import receptive_field

STACKS = {
    "three 3x3": [(3, 1, 1)] * 3,
    "alexnet": [(11, 4, 0), (3, 2), (5, 1, 2), (3, 2), (3, 1, 1), (3, 1, 1), (3, 1, 1), (3, 2)],
    "vgg block": [(3, 1, 1), (3, 1, 1), (2, 2), (3, 1, 1), (3, 1, 1), (2, 2)],
    "even and dilated": [(2, 1), (3, 2, 1, 2), (4, 3, 2), (3, 1, 0, 3)],
    "stride over kernel": [(1, 2), (2, 3), (3, 1, 1)],
}


def field_by_backprop(layers, length: int, unit: int):
    """(first, last) input row and column with a non-zero gradient for output pixel (unit, unit),
    and the output's (H, W)."""
    x = torch.ones(1, 1, length, length, requires_grad=True)
    out = x
    for spec in layers:
        k, s, p, d = tuple(spec) + (0, 1)[len(spec) - 2:]
        ones = torch.ones(1, 1, k, k)  # positive weights: no path cancels another
        out = F.conv2d(out, ones, stride=s, padding=p, dilation=d)
    one_pixel = torch.zeros_like(out)
    one_pixel[0, 0, unit, unit] = 1.0
    out.backward(one_pixel)
    rows, cols = np.nonzero(x.grad[0, 0].numpy())
    return (rows.min(), rows.max()), (cols.min(), cols.max()), tuple(out.shape[2:])


@pytest.mark.parametrize("name", list(STACKS))
def test_field_matches_the_gradient_of_one_output_pixel(name):
    layers = STACKS[name]
    length = 260
    rows = receptive_field(layers, input_size=length)
    last = rows[-1]
    unit = last.output_size // 2  # a unit whose field lies inside the image
    centre = last.start + unit * last.jump
    lo, hi = centre - (last.size - 1) / 2, centre + (last.size - 1) / 2
    assert 0 <= lo and hi <= length - 1
    row_span, col_span, out_shape = field_by_backprop(layers, length, unit)
    assert out_shape == (last.output_size, last.output_size)
    assert row_span == col_span == (lo, hi)
    # negative case: the field of the neighbouring unit is a jump away, so it is not this one
    assert field_by_backprop(layers, length, unit + 1)[0] != (lo, hi)


def test_every_layer_of_a_stack_and_the_sources_numbers():
    rows = receptive_field(STACKS["three 3x3"])
    assert [r.size for r in rows] == [3, 5, 7]  # two layers see 5x5, three see 7x7
    assert [r.jump for r in rows] == [1, 1, 1] and [r.start for r in rows] == [0.0, 0.0, 0.0]
    rows = receptive_field(STACKS["alexnet"], input_size=227)
    assert [r.output_size for r in rows] == [55, 27, 27, 13, 13, 13, 13, 6]  # Table 3.1's sizes
    for i in range(1, len(STACKS["alexnet"]) + 1):  # each prefix agrees with torch too
        sub = receptive_field(STACKS["alexnet"][:i], input_size=260)[-1]
        unit = sub.output_size // 2
        centre = sub.start + unit * sub.jump
        assert field_by_backprop(STACKS["alexnet"][:i], 260, unit)[0] == (
            centre - (sub.size - 1) / 2, centre + (sub.size - 1) / 2)


def test_padding_moves_the_start_and_dilation_widens_the_kernel():
    (row,) = receptive_field([(3, 1, 1)])
    assert row.start == 0.0  # padding 1 centres the first field on pixel 0
    (row,) = receptive_field([(3, 1, 0)])
    assert row.start == 1.0
    (row,) = receptive_field([(3, 1, 0, 2)])
    assert row.size == 5 and row.start == 2.0


@pytest.mark.parametrize("layers, input_size, match", [
    ([(3,)], None, r"layers\[0\]: expected \(kernel_size, stride"),
    ([(3, 1), (0, 1)], None, r"layers\[1\]: expected kernel_size"),
    ([(3, 1, -1)], None, r"layers\[0\]"),
    ([(3, 1.5)], None, r"layers\[0\]: expected ints"),
    ([(5, 1)], 3, r"layers\[0\]: kernel spans 5"),
    ([(3, 1)], 0, "input_size"),
])
def test_bad_layers_name_their_index(layers, input_size, match):
    with pytest.raises(ValueError, match=match):
        receptive_field(layers, input_size)


def test_a_recurrence_that_updates_the_jump_too_early_is_caught():
    # start_out must use the input's jump; using the output's (s * j_in) puts the field elsewhere
    layers = STACKS["alexnet"]
    rows = receptive_field(layers, input_size=260)
    start, jump = 0.0, 1
    for k, s, *rest in layers:
        p = rest[0] if rest else 0
        jump *= s
        start += ((k - 1) / 2 - p) * jump  # the slip
    last = rows[-1]
    unit = last.output_size // 2
    wrong_centre = start + unit * last.jump
    measured = field_by_backprop(layers, 260, unit)[0]
    assert measured != (wrong_centre - (last.size - 1) / 2, wrong_centre + (last.size - 1) / 2)
    assert start != last.start
