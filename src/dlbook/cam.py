"""Class activation maps (Zhou et al. 2016): where a network ending in average pooling sees a class.

A network whose last feature maps a (N, C, H, W) are averaged over space (global average
pooling) and then mapped to K class scores by a linear layer with weight w (K, C) and bias
b (K,) scores class k as

    h_k = sum_c w_kc * mean_{i, j} a^c_{i,j} + b_k = mean_{i, j} A^k_{i,j} + b_k,

with the *class activation map* A^k_{i,j} = sum_c w_kc a^c_{i,j} (a^c is channel c of the
features): the sum and the mean swap, so the score is the mean of a map that says where in
the image the evidence for class k lies. A 1 x 1 convolution followed by global average
pooling is the same network (its weight is (K, C, 1, 1)), and then A^k is simply that
convolution's output before the pooling.
"""

from __future__ import annotations

import numpy as np

from dlbook._validate import as_array, check_ndim

__all__ = ["class_activation_map"]


def class_activation_map(features: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Class activation maps A^k_{i,j} = sum_c w_kc a^c_{i,j} of every class k.

    Args:
        features: (N, C, H, W) the last feature maps a^c_{i,j}, before global average pooling.
        weight: (K, C) the weight w_kc of the linear layer after the pooling, or (K, C, 1, 1) the
            weight of a 1 x 1 convolution before it.
    Returns:
        (N, K, H, W) one map per class. Its mean over (H, W) plus the bias is the network's
        score of class k. Matches ``torch.nn.functional.conv2d(features, weight (K, C, 1, 1))``
        without the bias (which shifts every position of a map alike, so it says nothing about
        where the class is).
    """
    f = as_array(features, "features")
    check_ndim(f, 4, "features", "(N, C, H, W)")
    w = as_array(weight, "weight")
    if w.ndim == 4 and w.shape[2:] == (1, 1):
        w = w[:, :, 0, 0]  # (K, C, 1, 1) -> (K, C)
    if w.ndim != 2 or w.shape[1] != f.shape[1]:
        raise ValueError(f"weight: expected (K, C) or (K, C, 1, 1) with C = {f.shape[1]}, "
                         f"got shape {np.shape(weight)}")
    return np.einsum("kc,nchw->nkhw", w, f)  # (N, K, H, W)
