"""dlbook.clip.clip_grad_norm against torch.nn.utils.clip_grad_norm_ in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TIGHT
from dlbook.clip import clip_grad_norm
from dlbook.rnn import RNN


def torch_clip(arrays, max_norm, norm_type):
    """Torch's total norm and clipped gradients for copies of ``arrays``."""
    params = [torch.zeros(a.shape, dtype=torch.float64, requires_grad=True) for a in arrays]
    for p, a in zip(params, arrays):
        p.grad = torch.from_numpy(a.copy())
    total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)
    return float(total), [p.grad.numpy() for p in params]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_list_matches_torch(norm_type, max_norm, rng):
    arrays = [rng.standard_normal((3, 4)), rng.standard_normal(5), rng.standard_normal((2, 1, 3))]
    total_t, clipped_t = torch_clip(arrays, max_norm, norm_type)
    ours = [a.copy() for a in arrays]
    total = clip_grad_norm(ours, max_norm, norm_type)
    assert isinstance(total, float)
    np.testing.assert_allclose(total, total_t, **TIGHT)
    for a, b in zip(ours, clipped_t):
        np.testing.assert_allclose(a, b, **TIGHT)
    if max_norm == 1e6:  # nothing to clip: the factor is exactly 1
        for a, b in zip(ours, arrays):
            np.testing.assert_array_equal(a, b)
    else:  # negative case: the unclipped gradients are not torch's clipped ones
        with pytest.raises(AssertionError):
            np.testing.assert_allclose(arrays[0], clipped_t[0], **TIGHT)


def test_total_norm_is_the_norm_of_all_entries(rng):
    arrays = [rng.standard_normal((3, 4)), rng.standard_normal(7)]
    total = clip_grad_norm([a.copy() for a in arrays], 1.0)
    np.testing.assert_allclose(total, np.linalg.norm(np.concatenate([a.ravel() for a in arrays])),
                               **TIGHT)
    clipped = [a.copy() for a in arrays]
    clip_grad_norm(clipped, 1.0)
    after = np.linalg.norm(np.concatenate([a.ravel() for a in clipped]))
    assert after <= 1.0 and after > 1.0 - 1e-5  # clipped to max_norm, minus the 1e-6 guard


def test_dict_and_module(rng):
    grads = {"w": rng.standard_normal((3, 3)), "b": rng.standard_normal(3)}
    total_t, clipped_t = torch_clip(list(grads.values()), 0.3, 2.0)
    total = clip_grad_norm(grads, 0.3)
    np.testing.assert_allclose(total, total_t, **TIGHT)
    for a, b in zip(grads.values(), clipped_t):
        np.testing.assert_allclose(a, b, **TIGHT)

    model = RNN(3, 4, num_layers=2, rng=rng)
    out, _ = model(rng.standard_normal((5, 2, 3)))
    model.backward(rng.standard_normal(out.shape))
    before = [g.copy() for g in model.grads.values()]
    total_t, clipped_t = torch_clip(before, 0.1, 2.0)
    total = clip_grad_norm(model, 0.1)
    np.testing.assert_allclose(total, total_t, **TIGHT)
    for a, b in zip(model.grads.values(), clipped_t):
        np.testing.assert_allclose(a, b, **TIGHT)


def test_float32_gradients_stay_float32(rng):
    arrays = [rng.standard_normal((4, 4)).astype(np.float32)]
    total = clip_grad_norm(arrays, 0.1)
    assert arrays[0].dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(arrays[0]), 0.1, rtol=1e-5)
    assert total > 0.1


def test_empty_and_nonfinite():
    assert clip_grad_norm([], 1.0) == 0.0
    bad = [np.array([1.0, np.inf])]
    with pytest.raises(RuntimeError, match="total norm"):
        clip_grad_norm(bad, 1.0, error_if_nonfinite=True)
    total = clip_grad_norm(bad, 1.0)  # as torch: no error, inf * 0 gives nan
    assert total == float("inf")
    total_t, clipped_t = torch_clip([np.array([1.0, np.inf])], 1.0, 2.0)
    assert total_t == total
    np.testing.assert_array_equal(bad[0], clipped_t[0])  # nan where torch has nan


@pytest.mark.parametrize("kwargs, match", [
    ({"max_norm": 0.0}, "max_norm"),
    ({"norm_type": 0.0}, "norm_type"),
    ({"grads": [np.arange(3)]}, "grads"),
    ({"grads": [[1.0, 2.0]]}, "grads"),
])
def test_bad_arguments_raise(kwargs, match):
    args = {"grads": [np.ones(3)], "max_norm": 1.0} | kwargs
    with pytest.raises(ValueError, match=match):
        clip_grad_norm(**args)
