"""The arithmetic of compact designs: parameters and multiply-adds of a few conv blocks.

Counts for a conv with C input channels, F filters of KH x KW, ``groups`` g and an OH x OW output:

    parameters   = F * (C / g) * KH * KW  (+ F biases)
    multiply-adds = F * OH * OW * (C / g) * KH * KW     (one per weight per output position)

(a FLOP count, as in the VGG-16 figure of 30.9 GFLOPs, is twice the multiply-adds).

* A depthwise-separable conv (MobileNets, Howard et al., 2017) is a depthwise KxK conv (g = C,
  one filter per channel) followed by a 1x1 "pointwise" conv to F channels. Its multiply-adds
  are OH OW C (K^2 + F) instead of OH OW C K^2 F: a fraction 1/F + 1/K^2 of the standard conv's.
* SqueezeNet's fire module (Iandola et al., 2016) squeezes C channels to s with 1x1 filters,
  then expands with e1 1x1 filters and e3 3x3 filters (padding 1), whose outputs are
  concatenated into e1 + e3 channels.
"""

from __future__ import annotations

from dlbook._validate import pair

__all__ = [
    "conv2d_params", "conv2d_macs", "depthwise_separable_params", "depthwise_separable_macs",
    "fire_params", "fire_macs", "squeezenet_v1_0_params",
]


def _positive(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return value


def _channels(in_channels, out_channels, groups) -> tuple[int, int, int]:
    c, f, g = (_positive(in_channels, "in_channels"), _positive(out_channels, "out_channels"),
               _positive(groups, "groups"))
    if c % g or f % g:
        raise ValueError(f"groups: expected a divisor of in_channels ({c}) and out_channels ({f}), "
                         f"got {g}")
    return c, f, g


def conv2d_params(in_channels: int, out_channels: int, kernel_size, bias: bool = True,
                  groups: int = 1) -> int:
    """Parameters of ``torch.nn.Conv2d(in_channels, out_channels, kernel_size, bias=, groups=)``.

    F * (C / g) * KH * KW weights, plus F biases.
    """
    c, f, g = _channels(in_channels, out_channels, groups)
    kh, kw = pair(kernel_size, "kernel_size")
    return f * (c // g) * kh * kw + (f if bias else 0)


def conv2d_macs(in_channels: int, out_channels: int, kernel_size, output_size,
                groups: int = 1) -> int:
    """Multiply-adds of one image through the conv: F * OH * OW * (C / g) * KH * KW.

    ``output_size`` is (OH, OW) or an int. Bias additions are not counted.
    """
    c, f, g = _channels(in_channels, out_channels, groups)
    kh, kw = pair(kernel_size, "kernel_size")
    oh, ow = pair(output_size, "output_size")
    return f * oh * ow * (c // g) * kh * kw


def depthwise_separable_params(in_channels: int, out_channels: int, kernel_size,
                               bias: bool = True) -> int:
    """Parameters of a depthwise KxK conv (groups = C) followed by a 1x1 conv C -> F."""
    return (conv2d_params(in_channels, in_channels, kernel_size, bias, groups=in_channels)
            + conv2d_params(in_channels, out_channels, 1, bias))


def depthwise_separable_macs(in_channels: int, out_channels: int, kernel_size, output_size) -> int:
    """Multiply-adds of the depthwise-separable pair: OH * OW * C * (KH * KW + F)."""
    return (conv2d_macs(in_channels, in_channels, kernel_size, output_size, groups=in_channels)
            + conv2d_macs(in_channels, out_channels, 1, output_size))


def fire_params(in_channels: int, squeeze: int, expand1x1: int, expand3x3: int) -> int:
    """Parameters of a fire module (with biases): squeeze 1x1, then expand 1x1 and 3x3."""
    return (conv2d_params(in_channels, squeeze, 1) + conv2d_params(squeeze, expand1x1, 1)
            + conv2d_params(squeeze, expand3x3, 3))


def fire_macs(in_channels: int, squeeze: int, expand1x1: int, expand3x3: int, output_size) -> int:
    """Multiply-adds of a fire module on an OH x OW map (every conv keeps the size)."""
    return (conv2d_macs(in_channels, squeeze, 1, output_size)
            + conv2d_macs(squeeze, expand1x1, 1, output_size)
            + conv2d_macs(squeeze, expand3x3, 3, output_size))


# SqueezeNet v1.0 (Iandola et al., 2016, Table 1): (in_channels, squeeze, expand1x1, expand3x3)
_SQUEEZENET_V1_0_FIRES = [(96, 16, 64, 64), (128, 16, 64, 64), (128, 32, 128, 128),
                          (256, 32, 128, 128), (256, 48, 192, 192), (384, 48, 192, 192),
                          (384, 64, 256, 256), (512, 64, 256, 256)]


def squeezenet_v1_0_params(num_classes: int = 1000) -> int:
    """Parameters of SqueezeNet v1.0: conv1 (96 filters 7x7 on RGB), fire2-fire9, conv10 (1x1).

    1,248,424 for 1000 classes: 4.99 MB in float32, about 49 times fewer than AlexNet.
    """
    return (conv2d_params(3, 96, 7) + sum(fire_params(*fire) for fire in _SQUEEZENET_V1_0_FIRES)
            + conv2d_params(512, num_classes, 1))
