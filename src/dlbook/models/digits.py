"""Small networks for the 8x8 digits and the loop that trains them (Chapter 6's baseline).

Chapter 6 compresses one trained network in many ways and compares the results, so every
section trains the same baseline the same way, in a few seconds of CPU:

    digits_cnn()    1x8x8 -> conv 16 -> conv 32 -> pool -> conv 64 -> pool -> FC 128 -> FC 10
                    57,482 parameters, 633,088 multiply-adds per image

(every convolution 3x3 with padding 1 and ReLU, pooling 2x2 max). ``widths`` and ``hidden``
shrink it, which is how the filter-pruned network and the small distillation students are built.
:func:`fit_classifier` trains any such model with Adam on mini-batches drawn from a seeded
generator; ``loss`` and ``after_step`` let a section change the objective (distillation) or act
after every update (re-apply a pruning mask, clip binary shadow weights).
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize, prune

from dlbook.compress.lowrank import low_rank
from dlbook.compress.prune import filters_to_keep, global_magnitude_masks, prune_filters
from dlbook.compress.share import kmeans_share
from dlbook.models.summary import count_macs as _count_macs

__all__ = ["WEIGHTED", "digits_cnn", "Fire", "fire_net", "fit_classifier", "train_digits_cnn",
           "predict_logits", "accuracy", "get_weight", "with_weights", "factorize_layer",
           "count_macs", "count_parameters", "magnitude_pruned", "filter_pruned", "SharedWeights",
           "share_weights", "Binarize", "binarize_layers"]

#: indices of the weighted layers of :func:`digits_cnn`: conv1, conv2, conv3, FC1, FC2
WEIGHTED = (0, 2, 5, 9, 11)


def digits_cnn(widths=(16, 32, 64), hidden: int = 128, num_classes: int = 10) -> nn.Sequential:
    """The chapter's baseline CNN for (N, 1, 8, 8) digits, or a narrower copy of it.

    Args:
        widths: filters of the three 3x3 convolutions (padding 1).
        hidden: units of the hidden fully connected layer.
        num_classes: outputs of the last layer.
    Returns:
        ``nn.Sequential``: conv, ReLU, conv, ReLU, max pool 2 (8 -> 4), conv, ReLU, max pool 2
        (4 -> 2), flatten (C3 * 2 * 2 features), linear, ReLU, linear; torch's default
        initialisation (seed torch first). Indices of the weighted layers: 0, 2, 5, 9, 11.
    """
    if len(widths) != 3 or any(isinstance(w, bool) or not isinstance(w, int) or w < 1
                               for w in widths):
        raise ValueError(f"widths: expected three positive ints, got {widths!r}")
    for name, value in (("hidden", hidden), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    c1, c2, c3 = widths
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(),  # (N, C1, 8, 8)
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, C2, 4, 4)
        nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, C3, 2, 2)
        nn.Flatten(),  # (N, 4 * C3)
        nn.Linear(4 * c3, hidden), nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


class Fire(nn.Module):
    """SqueezeNet's fire module: squeeze with 1x1 convs, expand with 1x1 and 3x3, concatenate.

    (N, C, H, W) -> ReLU(conv1x1 C -> s) -> [ReLU(conv1x1 s -> e1), ReLU(conv3x3 s -> e3, pad 1)]
    concatenated along the channels: (N, e1 + e3, H, W) (Iandola et al., 2016).
    """

    def __init__(self, in_channels: int, squeeze: int, expand1x1: int, expand3x3: int):
        super().__init__()
        self.squeeze = nn.Conv2d(in_channels, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.relu(self.squeeze(x))  # (N, s, H, W)
        return torch.cat([F.relu(self.expand1x1(s)), F.relu(self.expand3x3(s))], dim=1)


def fire_net(num_classes: int = 10) -> nn.Sequential:
    """A mini-SqueezeNet for the digits: 5,146 parameters for 10 classes.

    conv 3x3 1 -> 16 (pad 1), ReLU, Fire(16, 8, 16, 16), max pool 2 (8 -> 4), Fire(32, 8, 32, 32),
    max pool 2 (4 -> 2), conv 1x1 64 -> num_classes, global average pooling: no fully connected
    layer (the Network-in-Network head).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes: expected a positive int, got {num_classes!r}")
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),  # (N, 16, 8, 8)
        Fire(16, 8, 16, 16), nn.MaxPool2d(2),  # (N, 32, 4, 4)
        Fire(32, 8, 32, 32), nn.MaxPool2d(2),  # (N, 64, 2, 2)
        nn.Conv2d(64, num_classes, 1),  # (N, K, 2, 2)
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (N, K)
    )


def fit_classifier(model: nn.Module, X: np.ndarray, y: np.ndarray, *, epochs: int,
                   seed: int, lr: float = 1e-3, batch_size: int = 64,
                   loss: Callable[[torch.Tensor, np.ndarray], torch.Tensor] | None = None,
                   after_step: Callable[[], None] | None = None) -> nn.Module:
    """Train ``model`` in place with Adam on shuffled mini-batches; return it (in eval mode).

    Args:
        model: maps a (B, ...) batch to (B, K) logits; X is cast to its parameters' dtype.
        X, y: training inputs and integer labels (numpy).
        epochs: passes over the data; seed: seeds the shuffle (``np.random.default_rng(seed)``).
        lr: Adam's learning rate; batch_size: examples per update (the last batch may be smaller).
        loss: ``loss(logits, batch_index)`` -> scalar tensor, where ``batch_index`` (B,) are the
            rows of X in the batch; default cross-entropy with ``y[batch_index]``.
        after_step: called after every optimizer step (e.g. to re-apply a mask).
    Only parameters with ``requires_grad`` are handed to the optimizer.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs: expected an int >= 0, got {epochs!r}")
    X = np.asarray(X)
    y = np.asarray(y)
    if len(X) != len(y) or len(X) == 0:
        raise ValueError(f"X, y: expected the same non-zero number of rows, got {len(X)} and "
                         f"{len(y)}")
    X_t = torch.as_tensor(X, dtype=next(model.parameters()).dtype)  # float32 unless .double()
    y_t = torch.as_tensor(y, dtype=torch.long)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch_size):
            index = order[start:start + batch_size]
            logits = model(X_t[index])
            value = F.cross_entropy(logits, y_t[index]) if loss is None else loss(logits, index)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            if after_step is not None:
                after_step()
    model.eval()
    return model


@torch.no_grad()
def predict_logits(model: nn.Module, X: np.ndarray) -> np.ndarray:
    """The model's (N, K) logits on X, in eval mode, as a float64 numpy array."""
    model.eval()
    dtype = next(model.parameters()).dtype
    return model(torch.as_tensor(np.asarray(X), dtype=dtype)).double().numpy()


def accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    """Fraction of the rows of X whose largest logit is at the label y."""
    y = np.asarray(y)
    return float(np.mean(predict_logits(model, X).argmax(axis=1) == y))


def train_digits_cnn(X: np.ndarray, y: np.ndarray, *, seed: int, epochs: int = 20,
                     lr: float = 2e-3, widths=(16, 32, 64), hidden: int = 128) -> nn.Module:
    """The chapter's baseline recipe: ``torch.manual_seed(seed)``, :func:`digits_cnn`, then
    :func:`fit_classifier` with Adam (lr 2e-3), batches of 64, ``epochs`` passes, shuffle ``seed``.
    """
    torch.manual_seed(seed)
    model = digits_cnn(widths, hidden)
    return fit_classifier(model, X, y, epochs=epochs, seed=seed, lr=lr)


def get_weight(model: nn.Module, index: int) -> np.ndarray:
    """A float64 numpy copy of the weight of layer ``model[index]``."""
    return model[index].weight.detach().double().numpy().copy()


def with_weights(model: nn.Module, weights: dict) -> nn.Module:
    """A deep copy of ``model`` whose layers ``model[i]`` get the weights ``weights[i]``.

    The original is left unchanged; each new weight must have the old one's shape.
    """
    new = copy.deepcopy(model)
    for index, value in weights.items():
        layer = new[index]
        value = torch.as_tensor(np.asarray(value), dtype=layer.weight.dtype)
        if value.shape != layer.weight.shape:
            raise ValueError(f"weights[{index}]: expected shape {tuple(layer.weight.shape)}, got "
                             f"{tuple(value.shape)}")
        with torch.no_grad():
            layer.weight.copy_(value)
    return new


def factorize_layer(layer: nn.Module, rank: int) -> nn.Sequential:
    """Two thinner layers that compute the rank-``rank`` SVD approximation of ``layer``.

    A ``Linear(D_in, D_out)`` becomes ``Linear(D_in, k, bias=False)`` then ``Linear(k, D_out)``;
    a ``Conv2d(C, F, KH x KW)`` becomes a k-filter KH x KW conv (same stride and padding, no
    bias) then a 1x1 conv k -> F. The factors come from :func:`dlbook.compress.low_rank`; the
    bias stays on the second layer.
    """
    w = layer.weight.detach().double().numpy()
    w_first, w_second = low_rank(w, rank)
    k = int(rank)
    dtype = layer.weight.dtype
    if isinstance(layer, nn.Linear):
        first = nn.Linear(layer.in_features, k, bias=False, dtype=dtype)
        second = nn.Linear(k, layer.out_features, dtype=dtype)
    elif isinstance(layer, nn.Conv2d) and layer.groups == 1:
        first = nn.Conv2d(layer.in_channels, k, layer.kernel_size, layer.stride, layer.padding,
                          bias=False, dtype=dtype)
        second = nn.Conv2d(k, layer.out_channels, 1, dtype=dtype)
    else:
        raise ValueError(f"layer: expected an nn.Linear or an ungrouped nn.Conv2d, got {layer!r}")
    with torch.no_grad():
        first.weight.copy_(torch.from_numpy(w_first).to(dtype))
        second.weight.copy_(torch.from_numpy(w_second).to(dtype))
        if layer.bias is not None:
            second.bias.copy_(layer.bias)
        else:
            second.bias.zero_()
    return nn.Sequential(first, second)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (every entry of every parameter tensor)."""
    return int(sum(p.numel() for p in model.parameters()))


@torch.no_grad()
def count_macs(model: nn.Module, input_shape=(1, 8, 8)) -> int:
    """Multiply-adds of one image of ``input_shape`` (no batch axis) through every ``Conv2d``
    and ``Linear`` of ``model``: :func:`dlbook.models.count_macs` on a batch of one."""
    return _count_macs(model, (1, *input_shape))


def magnitude_pruned(model: nn.Module, amount, layers: Sequence[int] = WEIGHTED) -> nn.Module:
    """A copy of ``model`` with ``amount`` of the weights of ``model[i]``, i in ``layers``, pruned.

    One threshold for all the layers (:func:`dlbook.compress.global_magnitude_masks`); each
    layer gets ``torch.nn.utils.prune.custom_from_mask``, so it computes with
    ``weight_orig * weight_mask`` and fine-tuning keeps the pruned weights at 0.
    """
    model = copy.deepcopy(model)
    masks = global_magnitude_masks([get_weight(model, i) for i in layers], amount)
    for i, mask in zip(layers, masks):
        prune.custom_from_mask(model[i], "weight", torch.from_numpy(mask).to(model[i].weight.dtype))
    return model


def filter_pruned(model: nn.Module, keep_fraction: float):
    """The smaller dense :func:`digits_cnn` that keeps ``keep_fraction`` of conv2's and conv3's
    filters, chosen by l1 norm (Li et al., 2017).

    conv2's removed filters take conv3's matching input channels with them, conv3's take FC1's
    matching columns (:func:`dlbook.compress.prune_filters`). Returns ``(small, keep2, keep3)``:
    the new network (same dtype as ``model``) and the indices of the filters kept.
    """
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction: expected a fraction in (0, 1], got {keep_fraction!r}")
    w = {i: get_weight(model, i) for i in WEIGHTED}
    b = {i: model[i].bias.detach().double().numpy() for i in WEIGHTED}
    keep2 = filters_to_keep(w[2], 1.0 - keep_fraction)
    w[2], b[2], w[5] = prune_filters(w[2], b[2], w[5], keep2)
    keep3 = filters_to_keep(w[5], 1.0 - keep_fraction)
    w[5], b[5], w[9] = prune_filters(w[5], b[5], w[9], keep3)
    dtype = model[0].weight.dtype
    small = digits_cnn((model[0].out_channels, len(keep2), len(keep3)),
                       model[9].out_features, model[11].out_features).to(dtype)
    with torch.no_grad():
        for i in WEIGHTED:
            small[i].weight.copy_(torch.from_numpy(w[i]))
            small[i].bias.copy_(torch.from_numpy(b[i]))
    return small, keep2, keep3


class SharedWeights(nn.Module):
    """Parametrisation weight = codebook[indices]: the (k,) codebook is what gets trained.

    Registered with ``torch.nn.utils.parametrize.register_parametrization(layer, "weight",
    SharedWeights(indices, k), unsafe=True)``; autograd then sums the gradients of the weights
    that share a centre (:func:`dlbook.compress.shared_weights_backward`).
    """

    def __init__(self, indices: np.ndarray, k: int):
        super().__init__()
        self.register_buffer("indices", torch.from_numpy(np.asarray(indices).astype(np.int64)))
        self.k = int(k)

    def forward(self, codebook: torch.Tensor) -> torch.Tensor:
        return codebook[self.indices]

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        """From (shared) weights to the codebook: the mean weight of each cluster."""
        flat = self.indices.flatten()
        sums = torch.zeros(self.k, dtype=weight.dtype).index_add_(0, flat, weight.flatten())
        return sums / torch.bincount(flat, minlength=self.k).clamp(min=1).to(weight.dtype)


def share_weights(model: nn.Module, bits: int, layers: Sequence[int] = WEIGHTED,
                  trainable: bool = False):
    """A copy of ``model`` whose layers ``layers`` share 2^bits k-means values each.

    Each layer's weights are clustered by :func:`dlbook.compress.kmeans_share` (linear start)
    and replaced by their centres; with ``trainable`` the codebook becomes the layer's trained
    parameter (:class:`SharedWeights`). Returns ``(model, codes)`` with ``codes[i] =
    (codebook, indices)`` per layer.
    """
    model, codes = copy.deepcopy(model), {}
    for i in layers:
        codebook, indices = kmeans_share(get_weight(model, i), bits)
        codes[i] = (codebook, indices)
        with torch.no_grad():
            model[i].weight.copy_(torch.from_numpy(codebook[indices]))
        if trainable:
            parametrize.register_parametrization(model[i], "weight",
                                                 SharedWeights(indices, 2 ** bits), unsafe=True)
    return model, codes


class Binarize(nn.Module):
    """Parametrisation w -> sign(w) in +-1 (sign(0) = +1), or alpha_f sign(w) per output unit.

    The straight-through estimator: the forward value is the sign, the gradient that of
    clamp(w, -1, 1) (BinaryConnect); with ``scaled``, alpha_f = mean |w[f]| (XNOR-Net's
    binary-weight networks), differentiated too, as :func:`dlbook.compress.xnor_binarize_backward`.
    """

    def __init__(self, scaled: bool = False):
        super().__init__()
        self.scaled = bool(scaled)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        clamped = w.clamp(-1, 1)
        signs = torch.where(w >= 0, 1.0, -1.0).to(w.dtype)
        w_b = clamped + (signs - clamped).detach()  # value sign(w), gradient of the clamp
        if self.scaled:
            w_b = w.abs().mean(dim=tuple(range(1, w.ndim)), keepdim=True) * w_b
        return w_b


def binarize_layers(model: nn.Module, layers: Sequence[int], scaled: bool = False):
    """Make ``model[i]`` (in place) binary for i in ``layers``; return the shadow-weight clipper.

    Registers :class:`Binarize` on each layer's weight; the returned function clips the real
    shadow weights to [-1, 1] and is meant as :func:`fit_classifier`'s ``after_step``.
    """
    for i in layers:
        parametrize.register_parametrization(model[i], "weight", Binarize(scaled))
    shadows = [model[i].parametrizations.weight.original for i in layers]

    def clip_shadow_weights() -> None:
        with torch.no_grad():
            for w in shadows:
                w.clamp_(-1, 1)

    return clip_shadow_weights
