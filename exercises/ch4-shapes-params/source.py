# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 4.1: output shapes, parameter counts and the receptive field of a network
#
# *Chapter 4 (Classic networks), Sections 4.2–4.5.* Before training a network, or trusting a
# table in a paper, compute what every layer produces and holds. A network here is an integer
# array `layers` of shape (L, 5), one row per layer, first layer first:
#
# | row | layer |
# |---|---|
# | `[0, F, K, S, P]` | convolution: F filters of K × K, stride S, zero padding P on every side, with bias |
# | `[1, K, S, 0, 0]` | max pooling: K × K windows, stride S, no padding |
# | `[2, D, 0, 0, 0]` | fully connected layer with D outputs and bias; it first flattens its input |
#
# The input is one image of shape (C, H, W) (no batch axis). Along one axis a window of size K
# with stride S and padding P turns a size H into $\lfloor (H + 2P - K)/S \rfloor + 1$.
#
# **How to work.** Replace every `raise NotImplementedError` with your code, then run the whole
# notebook (Kernel → Restart & Run All). Each *self-check* cell ends by printing
# `... self-checks passed`. The grader runs hidden tests on other networks (compared with the
# networks built in PyTorch), so passing the self-checks is necessary, not sufficient. Use plain
# Python or numpy; keep the names and signatures.
#
# | question | function | points |
# |---|---|---|
# | 1 | `output_shapes(input_shape, layers)` | 2 |
# | 2 | `parameter_counts(input_shape, layers)` | 2 |
# | 3 | `receptive_field(layers)` | 2 |

# %% tags=["grader"]
# Instructor only: everything in "grader" cells stays out of the student notebook.
EXERCISE = {"title": "Output shapes, parameter counts and the receptive field of a network", "chapter": 4}

import numpy as np
import torch
import torch.nn as nn

from dlbook.grading.helpers import all_of, case, equal


def torch_network(input_shape, layers):
    """The network as torch modules (the reference: shapes and counts come from torch itself)."""
    modules, channels = [], int(input_shape[0])
    for kind, a, b, c, d in (tuple(int(v) for v in row) for row in layers):
        if kind == 0:
            modules.append(nn.Conv2d(channels, a, b, stride=c, padding=d))
            channels = a
        elif kind == 1:
            modules.append(nn.MaxPool2d(a, stride=b))
        else:
            modules.append(nn.Sequential(nn.Flatten(), nn.LazyLinear(a)))
    return nn.Sequential(*modules)


def torch_shapes_and_counts(input_shape, layers):
    net = torch_network(input_shape, layers)
    x = torch.zeros((1,) + tuple(int(v) for v in input_shape))
    shapes, counts = [], []
    with torch.no_grad():
        for module in net:
            x = module(x)
            shape = tuple(x.shape[1:]) + (1,) * (4 - x.dim())  # (D,) -> (D, 1, 1)
            shapes.append(shape)
            counts.append(sum(p.numel() for p in module.parameters()))
    return np.array(shapes), np.array(counts)


def random_network(rng, length):
    """A valid random network of `length` conv/pool layers and one or two final FC layers."""
    while True:
        channels, height, width = int(rng.integers(1, 4)), int(rng.integers(24, 41)), int(rng.integers(24, 41))
        rows, h, w, padded = [], height, width, False
        for _ in range(length):
            if rng.random() < 0.65:
                k = int(rng.choice([1, 3, 5, 7]))
                s, p = int(rng.choice([1, 1, 2])), int(rng.integers(0, k // 2 + 1))
                rows.append([0, int(rng.integers(2, 9)), k, s, p])
                padded = padded or p > 0
            else:
                k, p = int(rng.choice([2, 3])), 0
                s = int(rng.choice([1, 2]))
                rows.append([1, k, s, 0, 0])
            h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            if min(h, w) < 2:
                break
        else:
            if padded and any(r[0] == 1 for r in rows) and any(r[3] == 2 for r in rows):
                rows += [[2, int(rng.integers(5, 30)), 0, 0, 0], [2, int(rng.integers(2, 11)), 0, 0, 0]]
                return np.array([channels, height, width]), np.array(rows, dtype=np.int64)


def footprint(layers, size=121):
    """Width of the input region the central unit of the last layer depends on (torch gradient)."""
    stack = nn.Sequential(*[nn.Conv2d(1, 1, int(r[1] if r[0] == 1 else r[2]),
                                      stride=int(r[2] if r[0] == 1 else r[3]),
                                      padding=int(0 if r[0] == 1 else r[4]), bias=False) for r in layers])
    for conv in stack:
        nn.init.ones_(conv.weight)  # every path positive: the gradient is nonzero exactly on the field
    x = torch.ones(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    out = stack.double()(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    return int((x.grad[0, 0] > 0).any(dim=0).sum())

# %%
import numpy as np

# %% [markdown]
# ## Question 1 (2 points): output shapes
#
# Return an integer array of shape (L, 3): row $l$ is the shape (C, H, W) of layer $l$'s output,
# and $(D, 1, 1)$ for a fully connected layer with D outputs.

# %%
def output_shapes(input_shape, layers):
    """Shape (C, H, W) of every layer's output, as an int array (L, 3)."""
    # BEGIN SOLUTION
    c, h, w = (int(v) for v in input_shape)
    shapes = []
    for kind, a, b, s_or_zero, p_or_zero in (tuple(int(v) for v in row) for row in layers):
        if kind == 0:
            k, s, p = b, s_or_zero, p_or_zero
            c = a
            h = (h + 2 * p - k) // s + 1
            w = (w + 2 * p - k) // s + 1
        elif kind == 1:
            k, s = a, b
            h, w = (h - k) // s + 1, (w - k) // s + 1
        else:
            c, h, w = a, 1, 1
        shapes.append((c, h, w))
    return np.array(shapes, dtype=np.int64)
    # END SOLUTION


# %%
# Self-check for question 1: the modern LeNet-5 of Section 4.3 on a 1 x 32 x 32 input.
LENET = np.array([[0, 6, 5, 1, 0], [1, 2, 2, 0, 0], [0, 16, 5, 1, 0], [1, 2, 2, 0, 0],
                  [0, 120, 5, 1, 0], [2, 84, 0, 0, 0], [2, 10, 0, 0, 0]])
shapes = output_shapes((1, 32, 32), LENET)
assert shapes.shape == (7, 3), f"shape {shapes.shape}, expected (7, 3)"
assert shapes.tolist() == [[6, 28, 28], [6, 14, 14], [16, 10, 10], [16, 5, 5], [120, 1, 1],
                           [84, 1, 1], [10, 1, 1]], shapes.tolist()
# padding and stride: 3 x 9 x 9, conv 4 filters of 3 x 3, stride 2, padding 1 -> 4 x 5 x 5
assert output_shapes((3, 9, 9), np.array([[0, 4, 3, 2, 1]])).tolist() == [[4, 5, 5]]
print("output_shapes: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "output_shapes", "points": 2}
rng = hidden_rng(4101)  # keyed by the instructor's secret when grading
SHAPE, LAYERS = random_network(rng, 6)
INPUTS = {
    "shape": SHAPE, "layers": LAYERS,
    # worked by hand, a small VGG-style network on 3 x 32 x 32: conv 32 3x3 p1, conv 32 3x3 p1,
    # pool 2/2, conv 64 3x3 p1, pool 2/2, fc 10 -> 32x32x32, 32x32x32, 32x16x16, 64x16x16, 64x8x8, 10
    "hand": np.array([[0, 32, 3, 1, 1], [0, 32, 3, 1, 1], [1, 2, 2, 0, 0], [0, 64, 3, 1, 1],
                      [1, 2, 2, 0, 0], [2, 10, 0, 0, 0]]),
    # worked by hand, a pooling layer first (the channels come from the input): on 2 x 10 x 10,
    # pool 2/2, conv 4 3x3, fc 7 -> 2x5x5, 4x3x3, 7
    "hand_pool": np.array([[1, 2, 2, 0, 0], [0, 4, 3, 1, 0], [2, 7, 0, 0, 0]]),
}


def probe_random(inputs):
    return np.asarray(output_shapes(tuple(int(v) for v in inputs["shape"]), inputs["layers"]))


def probe_hand(inputs):
    return np.asarray(output_shapes((3, 32, 32), inputs["hand"]))


def probe_hand_pool(inputs):
    return np.asarray(output_shapes((2, 10, 10), inputs["hand_pool"]))


CASES = [
    case("a hidden random network (convolutions with strides and padding, poolings, two FC layers): "
         "every shape matches the network built in torch",
         'equal(outputs["random"], torch_shapes_and_counts(inputs["shape"], inputs["layers"])[0])', points=1,
         hint="(H + 2P - K) // S + 1 for convolutions; pooling has no padding; FC gives (D, 1, 1)"),
    case("a hand-worked VGG-style network on 3 x 32 x 32, and one that starts with a pooling layer",
         'all_of(equal(outputs["hand"], np.array([[32, 32, 32], [32, 32, 32], [32, 16, 16], [64, 16, 16], '
         '[64, 8, 8], [10, 1, 1]])), equal(outputs["hand_pool"], np.array([[2, 5, 5], [4, 3, 3], [7, 1, 1]])))',
         points=1,
         hint="padding 1 keeps a 3 x 3 convolution's size; a convolution sets the channels to F"),
]

# %% [markdown]
# ## Question 2 (2 points): parameter counts
#
# Return an integer array (L,) with the number of trainable parameters of every layer: a
# convolution holds F filters of C × K × K weights and F biases (C: its input channels); max
# pooling holds none; a fully connected layer holds D × (its flattened input's length) weights
# and D biases.

# %%
def parameter_counts(input_shape, layers):
    """Trainable parameters of every layer, as an int array (L,)."""
    # BEGIN SOLUTION
    channels, height, width = (int(v) for v in input_shape)
    counts = []
    for kind, a, b, c, d in (tuple(int(v) for v in row) for row in layers):
        if kind == 0:
            counts.append(a * (channels * b * b + 1))
            height = (height - b + 2 * d) // c + 1
            width = (width - b + 2 * d) // c + 1
            channels = a
        elif kind == 1:
            counts.append(0)
            height, width = (height - a) // b + 1, (width - a) // b + 1
        else:
            counts.append(a * (channels * height * width + 1))
            channels, height, width = a, 1, 1
    return np.array(counts, dtype=np.int64)
    # END SOLUTION


# %%
# Self-check for question 2: the modern LeNet-5 (61,706 parameters in all).
counts = parameter_counts((1, 32, 32), LENET)
assert counts.tolist() == [156, 0, 2416, 0, 48120, 10164, 850], counts.tolist()
assert counts.sum() == 61_706
print("parameter_counts: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "parameter_counts", "points": 2}
rng = hidden_rng(4102)  # keyed by the instructor's secret when grading
SHAPE, LAYERS = random_network(rng, 6)
INPUTS = {
    "shape": SHAPE, "layers": LAYERS,
    # worked by hand, on 3 x 32 x 32: conv 32 3x3 p1: 32 * (27 + 1) = 896; conv 32: 32 * (288 + 1)
    # = 9,248; pool 0; conv 64: 64 * (288 + 1) = 18,496; pool 0; fc 10 on 64 * 8 * 8 = 4,096: 40,970
    "hand": np.array([[0, 32, 3, 1, 1], [0, 32, 3, 1, 1], [1, 2, 2, 0, 0], [0, 64, 3, 1, 1],
                      [1, 2, 2, 0, 0], [2, 10, 0, 0, 0]]),
}


def probe_random(inputs):
    return np.asarray(parameter_counts(tuple(int(v) for v in inputs["shape"]), inputs["layers"]))


def probe_hand(inputs):
    return np.asarray(parameter_counts((3, 32, 32), inputs["hand"]))


CASES = [
    case("a hidden random network: every layer's count matches the network built in torch",
         'equal(outputs["random"], torch_shapes_and_counts(inputs["shape"], inputs["layers"])[1])', points=1,
         hint="a fully connected layer reads C * H * W values of the layer before it"),
    case("a hand-worked VGG-style network on 3 x 32 x 32: 896, 9,248, 0, 18,496, 0, 40,970",
         'equal(outputs["hand"], np.array([896, 9248, 0, 18496, 0, 40970]))', points=1,
         hint="one bias per filter and per output unit"),
]

# %% [markdown]
# ## Question 3 (2 points): the receptive field
#
# For a network of convolutions and poolings only (no fully connected layer), return the size
# $r$ (along one axis, in input pixels) of the receptive field of one unit of the last layer,
# with the recurrence of Section 4.2: start from $r = 1$, $j = 1$; each layer with kernel K and
# stride S sets $r \leftarrow r + (K - 1)\, j$, then $j \leftarrow j S$. Padding does not change
# the field's size.

# %%
def receptive_field(layers):
    """Receptive field size (pixels, one axis) of a unit of the last layer of a conv/pool stack."""
    # BEGIN SOLUTION
    r, jump = 1, 1
    for kind, a, b, c, _ in (tuple(int(v) for v in row) for row in layers):
        k, s = (b, c) if kind == 0 else (a, b)
        r = r + (k - 1) * jump
        jump = jump * s
    return int(r)
    # END SOLUTION


# %%
# Self-check for question 3: three stacked 3 x 3 convolutions see 7 x 7 (Section 4.2), and
# a 2 x 2 pooling in between widens what follows: 3 -> pool 4 -> 3x3 at jump 2: 8.
assert receptive_field(np.array([[0, 8, 3, 1, 1]] * 3)) == 7
assert receptive_field(np.array([[0, 8, 3, 1, 1], [1, 2, 2, 0, 0], [0, 8, 3, 1, 1]])) == 8
print("receptive_field: self-checks passed")

# %% tags=["grader"]
QUESTION = {"name": "receptive_field", "points": 2}
rng = hidden_rng(4103)  # keyed by the instructor's secret when grading
_, LAYERS = random_network(rng, 7)
INPUTS = {
    "layers": LAYERS[:-2],  # the convolutions and poolings only
    # worked by hand, AlexNet's first four layers: conv 11/4 -> 11, pool 3/2 at jump 4 -> 19,
    # conv 5 (p2) at jump 8 -> 51, pool 3/2 at jump 8 -> 67
    "hand": np.array([[0, 96, 11, 4, 0], [1, 3, 2, 0, 0], [0, 256, 5, 1, 2], [1, 3, 2, 0, 0]]),
}


def probe_random(inputs):
    return np.array(receptive_field(inputs["layers"]))


def probe_hand(inputs):
    return np.array(receptive_field(inputs["hand"]))


CASES = [
    case("a hidden random conv/pool stack: the field equals the input region that the central unit's "
         "gradient reaches in torch",
         'equal(outputs["random"], np.array(footprint(inputs["layers"])))', points=1,
         hint="multiply the jump by the stride after the layer has added (K - 1) * jump"),
    case("AlexNet's conv1, pool1, conv2, pool2: 67 pixels", 'equal(outputs["hand"], np.array(67))',
         points=1, hint="a pooling window widens the field like a convolution of the same size"),
]
