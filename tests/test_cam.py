"""dlbook.cam: class activation maps against torch's 1 x 1 convolution and a GAP network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlbook.cam import class_activation_map
from conftest import TIGHT


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 1, 1, 1), (3, 7, 2, 6)])
def test_cam_matches_a_1x1_convolution(rng, shape):
    features = rng.standard_normal(shape)
    weight = rng.standard_normal((4, shape[1]))  # K = 4 classes
    ref = torch.nn.functional.conv2d(torch.from_numpy(features),
                                     torch.from_numpy(weight)[:, :, None, None]).numpy()
    np.testing.assert_allclose(class_activation_map(features, weight), ref, **TIGHT)
    np.testing.assert_allclose(class_activation_map(features, weight[:, :, None, None]), ref,
                               **TIGHT)
    # negative case: a perturbed weight gives other maps, so the comparison can fail
    perturbed = weight.copy()
    perturbed[0, 0] += 0.1
    assert not np.allclose(class_activation_map(features, perturbed), ref, **TIGHT)


def test_mean_of_the_map_plus_bias_is_the_networks_score(rng):
    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Conv2d(2, 5, 3, padding=1), torch.nn.ReLU())
    head = torch.nn.Linear(5, 3)  # GAP, then a linear layer: Zhou et al.'s network
    x = torch.from_numpy(rng.standard_normal((4, 2, 6, 7)))
    with torch.no_grad():
        features = body(x)
        scores = head(features.mean(dim=(2, 3))).numpy()  # (N, K)
    maps = class_activation_map(features.numpy(), head.weight.detach().numpy())  # (N, K, H, W)
    np.testing.assert_allclose(maps.mean(axis=(2, 3)) + head.bias.detach().numpy(), scores,
                               **TIGHT)
    # negative case: another class's map does not give the score, so the check above can fail
    wrong = maps[:, ::-1].mean(axis=(2, 3)) + head.bias.detach().numpy()
    assert not np.allclose(wrong, scores, **TIGHT)


def test_arguments_unmodified(rng):
    features, weight = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((5, 3))
    f0, w0 = features.copy(), weight.copy()
    class_activation_map(features, weight)
    np.testing.assert_array_equal(features, f0)
    np.testing.assert_array_equal(weight, w0)


def test_bad_input(rng):
    with pytest.raises(ValueError, match=r"features: expected a 4-D array \(N, C, H, W\)"):
        class_activation_map(rng.standard_normal((3, 4, 4)), rng.standard_normal((2, 3)))
    with pytest.raises(ValueError, match=r"weight: expected \(K, C\) or \(K, C, 1, 1\) with C = 3"):
        class_activation_map(rng.standard_normal((1, 3, 4, 4)), rng.standard_normal((2, 4)))
    with pytest.raises(ValueError, match="weight"):
        class_activation_map(rng.standard_normal((1, 3, 4, 4)), rng.standard_normal((2, 3, 3, 3)))
