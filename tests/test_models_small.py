"""dlbook.models.small: the CPU-sized classic networks and the plain/residual stack (Chapter 4)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from dlbook.models import PlainOrResidualBlock, deep_cnn, small_cnn
from dlbook.models.small import SMALL_KINDS, he_init_


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# Hand counts: (weights + biases) per layer, from the module docstring.
HAND = {
    "lenet": (9 * 6 + 6) + (6 * 9 * 16 + 16) + (64 * 32 + 32) + (32 * 10 + 10),
    "vgg": (9 * 16 + 16) + (16 * 9 * 16 + 16) + (16 * 9 * 32 + 32) + (32 * 9 * 32 + 32)
           + (128 * 64 + 64) + (64 * 10 + 10),
    "nin": (9 * 16 + 16) + 2 * (16 * 16 + 16) + (16 * 9 * 32 + 32) + (32 * 32 + 32)
           + (32 * 10 + 10),
    "resnet": (9 * 16 + 16) + 4 * (16 * 9 * 16 + 16) + (16 * 9 * 32 + 32) + (32 * 9 * 32 + 32)
              + (16 * 32 + 32) + (32 * 10 + 10),
}


@pytest.mark.parametrize("kind", SMALL_KINDS)
def test_small_cnns_map_digits_to_logits_with_the_hand_counted_parameters(kind):
    model = small_cnn(kind)
    assert n_params(model) == HAND[kind]
    assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    assert small_cnn(kind, num_classes=4)(torch.zeros(2, 1, 8, 8)).shape == (2, 4)


def test_nin_has_no_fully_connected_layer_and_resnet_a_projection():
    assert not any(isinstance(m, nn.Linear) for m in small_cnn("nin").modules())
    blocks = [m for m in small_cnn("resnet").modules() if isinstance(m, PlainOrResidualBlock)]
    assert [b.shortcut is None for b in blocks] == [True, True, False]


def test_a_residual_block_adds_its_input_and_a_plain_one_does_not(rng):
    x = torch.from_numpy(rng.standard_normal((2, 4, 5, 5)))
    for residual in (True, False):
        block = PlainOrResidualBlock(4, 4, residual=residual).double()
        for p in block.parameters():
            nn.init.zeros_(p)  # F(x) = 0: the block is relu(x) or relu(0)
        expected = torch.relu(x) if residual else torch.zeros_like(x)
        torch.testing.assert_close(block(x), expected, rtol=0, atol=0)
    block = PlainOrResidualBlock(4, 4).double()
    branch = block.conv2(torch.relu(block.conv1(x)))
    torch.testing.assert_close(block(x), torch.relu(branch + x), rtol=1e-12, atol=1e-12)
    assert not torch.allclose(block(x), torch.relu(branch))  # negative case: the shortcut counts


@pytest.mark.parametrize("residual", [True, False])
def test_deep_cnn_depth_and_parameters_do_not_depend_on_the_shortcut(residual):
    model = deep_cnn(3, residual, width=4)
    weights = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weights) == 2 * 3 + 2
    assert n_params(model) == (9 * 4 + 4) + 6 * (4 * 9 * 4 + 4) + (4 * 16 * 10 + 10)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_he_init_draws_with_variance_two_over_fan_in():
    torch.manual_seed(0)
    layer = he_init_(nn.Sequential(nn.Linear(400, 2000)))[0]
    assert torch.all(layer.bias == 0)
    assert abs(layer.weight.var().item() - 2 / 400) < 0.05 * 2 / 400
    default = nn.Linear(400, 2000).weight.var().item()
    assert abs(default - 2 / 400) > 0.5 * 2 / 400  # negative case: torch's default differs


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        small_cnn("alexnet")
    with pytest.raises(ValueError, match="num_blocks"):
        deep_cnn(-1, True)
    with pytest.raises(ValueError, match="width"):
        deep_cnn(2, True, width=0)
    with pytest.raises(ValueError, match="input_size"):
        deep_cnn(2, True, input_size=1)
