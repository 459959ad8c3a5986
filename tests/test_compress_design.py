"""dlbook.compress.design against torch modules' parameter counts and torch's FLOP counter."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dlbook.compress import (conv2d_macs, conv2d_params, depthwise_separable_macs,
                             depthwise_separable_params, fire_macs, fire_params,
                             squeezenet_v1_0_params)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def torch_macs(module: nn.Module, input_shape) -> int:
    """Multiply-adds of one forward pass: torch counts 2 FLOPs per multiply-add of a conv."""
    with FlopCounterMode(display=False) as counter:
        module(torch.zeros(input_shape))
    return counter.get_total_flops() // 2


class Fire(nn.Module):
    """SqueezeNet's fire module, written out in torch as the oracle."""

    def __init__(self, c, s, e1, e3):
        super().__init__()
        self.squeeze = nn.Conv2d(c, s, 1)
        self.expand1x1 = nn.Conv2d(s, e1, 1)
        self.expand3x3 = nn.Conv2d(s, e3, 3, padding=1)

    def forward(self, x):
        x = torch.relu(self.squeeze(x))
        return torch.cat([torch.relu(self.expand1x1(x)), torch.relu(self.expand3x3(x))], 1)


@pytest.mark.parametrize("c, f, k, groups, bias", [(3, 16, 3, 1, True), (16, 32, (3, 5), 1, False),
                                                   (8, 8, 3, 8, True), (12, 6, 1, 3, True)])
def test_conv_counts_match_torch(c, f, k, groups, bias):
    conv = nn.Conv2d(c, f, k, groups=groups, bias=bias)
    assert conv2d_params(c, f, k, bias, groups) == count(conv)
    x_shape = (1, c, 9, 11)
    out_hw = conv(torch.zeros(x_shape)).shape[2:]
    assert conv2d_macs(c, f, k, tuple(out_hw), groups) == torch_macs(conv, x_shape)
    assert conv2d_params(c, f, k, not bias, groups) != count(conv)  # negative case


@pytest.mark.parametrize("c, f, k", [(32, 64, 3), (16, 16, 5), (3, 10, 3)])
def test_depthwise_separable_matches_torch(c, f, k):
    block = nn.Sequential(nn.Conv2d(c, c, k, padding=k // 2, groups=c), nn.Conv2d(c, f, 1))
    assert depthwise_separable_params(c, f, k) == count(block)
    assert depthwise_separable_macs(c, f, k, 14) == torch_macs(block, (1, c, 14, 14))
    # Howard et al.: the cost relative to a standard conv is 1/F + 1/K^2
    ratio = depthwise_separable_macs(c, f, k, 14) / conv2d_macs(c, f, k, 14)
    assert ratio == pytest.approx(1 / f + 1 / k**2, rel=1e-12)


@pytest.mark.parametrize("c, s, e1, e3", [(96, 16, 64, 64), (16, 8, 16, 16), (512, 64, 256, 256)])
def test_fire_matches_torch(c, s, e1, e3):
    fire = Fire(c, s, e1, e3)
    assert fire_params(c, s, e1, e3) == count(fire)
    assert fire_macs(c, s, e1, e3, (6, 5)) == torch_macs(fire, (1, c, 6, 5))
    assert fire_params(c, s, e1, e3) != count(Fire(c, s, e3 + 1, e3))  # negative case


def test_squeezenet_v1_0():
    layers = [nn.Conv2d(3, 96, 7, stride=2)]
    fires = [(96, 16, 64, 64), (128, 16, 64, 64), (128, 32, 128, 128), (256, 32, 128, 128),
             (256, 48, 192, 192), (384, 48, 192, 192), (384, 64, 256, 256), (512, 64, 256, 256)]
    layers += [Fire(*fire) for fire in fires] + [nn.Conv2d(512, 1000, 1)]
    assert squeezenet_v1_0_params() == count(nn.ModuleList(layers)) == 1_248_424  # published
    assert squeezenet_v1_0_params(10) == 1_248_424 - 990 * 513


@pytest.mark.parametrize("call, match", [
    (lambda: conv2d_params(0, 4, 3), "in_channels: expected a positive int"),
    (lambda: conv2d_params(4, 6, 3, groups=4), "groups: expected a divisor"),
    (lambda: conv2d_macs(4, 4, 3, (2, 0.5)), "output_size: expected an int or a pair"),
    (lambda: fire_params(8, 0, 4, 4), "out_channels: expected a positive int"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
