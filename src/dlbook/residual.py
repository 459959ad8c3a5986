"""A residual block in numpy: two convolutions and a shortcut that adds the input back.

The basic block of He et al. (2016), without batch normalisation:

    h   = relu(conv(x, w1, b1, stride, padding=KH // 2))      first 3x3 convolution
    F   = conv(h, w2, b2, stride=1, padding=KH // 2)           second, the residual F(x)
    out = relu(F + shortcut(x))

The shortcut is the identity, shortcut(x) = x, when F has the shape of x. Where the block
changes the shape (a stride of 2 or more output channels), it is a 1x1 convolution with the
same stride, shortcut(x) = conv(x, w_proj, b_proj, stride): the paper's projection shortcut.

Backward: with d = relu'(F + shortcut(x)) * dout, the gradient of the sum, the two paths each get
d unchanged (an addition copies its gradient to both inputs), and their input gradients add:

    dx = (gradient of x through the two convolutions) + d             identity shortcut
    dx = (gradient of x through the two convolutions) + conv_backward(d) for the projection

The identity's "+ d" is why gradients reach the early layers of a deep residual network: however
small the branch's gradient, the shortcut passes the upstream gradient through as it is.
Built from :mod:`dlbook.conv` and :mod:`dlbook.activations`; checked against torch.autograd.
"""

from __future__ import annotations

import numpy as np

from dlbook._validate import as_array, check_ndim
from dlbook.activations import relu_backward, relu_forward
from dlbook.conv import Conv2d, conv2d_backward, conv2d_forward
from dlbook.module import Module

__all__ = ["residual_block_forward", "residual_block_backward", "ResidualBlock"]


def residual_block_forward(x: np.ndarray, w1: np.ndarray, b1: np.ndarray | None, w2: np.ndarray,
                           b2: np.ndarray | None, w_proj: np.ndarray | None = None,
                           b_proj: np.ndarray | None = None, stride: int = 1):
    """out = relu(conv(relu(conv(x, w1, b1, stride)), w2, b2) + shortcut(x)).

    Args:
        x: (N, C, H, W) input.
        w1: (F, C, K, K) and b1: (F,) or None, the first convolution (stride ``stride``,
            padding K // 2 so that a stride of 1 keeps H and W; K odd).
        w2: (F, F, K2, K2) and b2: (F,) or None, the second (stride 1, padding K2 // 2).
        w_proj: (F, C, 1, 1) and b_proj: (F,) or None, the projection shortcut; None for the
            identity, which needs F == C and stride 1.
        stride: the first convolution's (and the projection's) stride.
    Returns:
        ``(out, cache)`` with out (N, F, OH, OW), OH = (H - 1) // stride + 1. Matches torch.autograd
        through ``relu(conv2d(relu(conv2d(x, w1, b1, stride, K//2)), w2, b2, 1, K2//2) + s)``,
        with s = x or ``conv2d(x, w_proj, b_proj, stride)``.
    Raises:
        ValueError: for misshapen arguments, even kernels, or an identity shortcut where the
            block changes the shape (the message asks for ``w_proj``).
    """
    x = as_array(x, "x")
    check_ndim(x, 4, "x", "(N, C, H, W)")
    w1, w2 = as_array(w1, "w1"), as_array(w2, "w2")
    for name, w in (("w1", w1), ("w2", w2)):
        check_ndim(w, 4, name, "(F, C, K, K)")
        if w.shape[2] % 2 == 0 or w.shape[3] % 2 == 0:
            raise ValueError(f"{name}: expected an odd kernel size (padding K // 2 keeps the "
                             f"size), got shape {w.shape}")
    h_pre, conv1_cache = conv2d_forward(x, w1, b1, stride, (w1.shape[2] // 2, w1.shape[3] // 2))
    h, relu1_cache = relu_forward(h_pre)  # (N, F, OH, OW)
    branch, conv2_cache = conv2d_forward(h, w2, b2, 1, (w2.shape[2] // 2, w2.shape[3] // 2))
    if w_proj is None:
        if branch.shape != x.shape:
            raise ValueError(f"w_proj: the block maps x {x.shape} to {branch.shape}, so the "
                             f"identity shortcut cannot be added; give a (F, C, 1, 1) projection")
        shortcut, proj_cache = x, None  # the identity: no parameters
    else:
        w_proj = as_array(w_proj, "w_proj")
        if w_proj.shape != (branch.shape[1], x.shape[1], 1, 1):
            raise ValueError(f"w_proj: expected shape {(branch.shape[1], x.shape[1], 1, 1)}, "
                             f"got {w_proj.shape}")
        shortcut, proj_cache = conv2d_forward(x, w_proj, b_proj, stride, 0)  # (N, F, OH, OW)
    out, relu2_cache = relu_forward(branch + shortcut)  # (N, F, OH, OW)
    return out, (conv1_cache, relu1_cache, conv2_cache, proj_cache, relu2_cache)


def residual_block_backward(dout: np.ndarray, cache):
    """Gradients of :func:`residual_block_forward`: the branch's and the shortcut's dx added.

    Returns:
        ``(dx, dw1, db1, dw2, db2, dw_proj, db_proj)``; a bias gradient is None where the forward
        pass had no bias, and ``dw_proj, db_proj`` are None for the identity shortcut.
    """
    conv1_cache, relu1_cache, conv2_cache, proj_cache, relu2_cache = cache
    dsum = relu_backward(dout, relu2_cache)  # gradient of F(x) + shortcut(x): both paths get it
    dh, dw2, db2 = conv2d_backward(dsum, conv2_cache)
    dh_pre = relu_backward(dh, relu1_cache)
    dx_branch, dw1, db1 = conv2d_backward(dh_pre, conv1_cache)
    if proj_cache is None:
        dx_shortcut, dw_proj, db_proj = dsum, None, None  # the identity passes dsum through as is
    else:
        dx_shortcut, dw_proj, db_proj = conv2d_backward(dsum, proj_cache)
    dx = dx_branch + dx_shortcut
    return dx, dw1, db1, dw2, db2, dw_proj, db_proj


class ResidualBlock(Module):
    """A basic residual block without batch normalisation (see the module docstring).

    Params ``w1, b1`` (out_channels, in_channels, K, K), ``w2, b2`` (out_channels, out_channels,
    K, K), and ``w_proj, b_proj`` (out_channels, in_channels, 1, 1) when the block changes the
    shape (``stride != 1`` or ``in_channels != out_channels``); initialised as
    :class:`~dlbook.conv.Conv2d` (torch's default), drawn from ``rng`` in that order.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, kernel_size: int = 3,
                 *, rng: np.random.Generator | None = None, dtype=np.float64) -> None:
        super().__init__()
        rng = np.random.default_rng() if rng is None else rng
        self.stride = stride
        layers = {"1": Conv2d(in_channels, out_channels, kernel_size, rng=rng, dtype=dtype),
                  "2": Conv2d(out_channels, out_channels, kernel_size, rng=rng, dtype=dtype)}
        if stride != 1 or in_channels != out_channels:
            layers["_proj"] = Conv2d(in_channels, out_channels, 1, rng=rng, dtype=dtype)
        for suffix, conv in layers.items():
            self.params["w" + suffix] = conv.params["w"]
            self.params["b" + suffix] = conv.params["b"]
        self.zero_grad()

    def forward(self, x: np.ndarray) -> np.ndarray:
        p = self.params
        out, self._cache = residual_block_forward(x, p["w1"], p["b1"], p["w2"], p["b2"],
                                                  p.get("w_proj"), p.get("b_proj"), self.stride)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx, *grads = residual_block_backward(dout, self._need_cache())
        for key, grad in zip(("w1", "b1", "w2", "b2", "w_proj", "b_proj"), grads):
            if key in self.params:
                self.grads[key] = grad
        return dx

    def extra_repr(self) -> str:
        w1 = self.params["w1"]
        shortcut = "projection" if "w_proj" in self.params else "identity"
        return f"{w1.shape[1]}, {w1.shape[0]}, stride={self.stride}, shortcut={shortcut}"
