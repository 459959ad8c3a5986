"""Batch normalisation (Ioffe & Szegedy, 2015), as ``torch.nn.BatchNorm1d`` / ``BatchNorm2d``.

Each channel (axis 1) is normalised with statistics taken over every other axis: over the batch
for (N, C) input, over the batch and the positions for (N, C, L) and (N, C, H, W). With M the
number of values per channel::

    mu      = (1/M) sum x                    (per channel)
    var     = (1/M) sum (x - mu)^2           (biased: divides by M)
    xhat    = (x - mu) / sqrt(var + eps)
    out     = gamma * xhat + beta

In training the layer uses the batch's ``mu`` and ``var`` and updates running estimates,
``running = (1 - momentum) * running + momentum * batch_statistic``, where the running variance
takes the *unbiased* batch variance (divides by M - 1). In evaluation it normalises with the
running estimates instead, so one example's output no longer depends on the rest of its batch.
Both conventions are torch's.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dlbook._validate import as_array, check_positive, check_probability, check_shape
from dlbook.module import Module

__all__ = ["batchnorm_forward", "batchnorm_backward", "batchnorm_backward_naive",
           "BatchNormCache", "BatchNorm1d", "BatchNorm2d"]


class BatchNormCache(NamedTuple):
    """What ``batchnorm_backward`` needs: the input, the normalised input and the statistics."""

    x: np.ndarray          # input, (N, C, ...)
    xhat: np.ndarray       # normalised input, same shape
    mean: np.ndarray       # (C,) statistic used to normalise
    var: np.ndarray        # (C,) biased variance used to normalise
    gamma: np.ndarray      # (C,)
    eps: float
    batch_stats: bool      # True: mean and var came from x (training); False: fixed (evaluation)


def _channel_axes(x: np.ndarray) -> tuple[int, ...]:
    """Every axis but 1: the axes a channel's statistics are taken over."""
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    """Reshape a (C,) vector so that it broadcasts along axis 1 of an ndim-D array."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _check_input(x, gamma, beta, eps):
    x = as_array(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x: expected a 2-D (N, C), 3-D (N, C, L) or 4-D (N, C, H, W) array, "
                         f"got shape {x.shape}")
    c = x.shape[1]
    gamma = as_array(gamma, "gamma")
    beta = as_array(beta, "beta")
    check_shape(gamma, (c,), "gamma")
    check_shape(beta, (c,), "beta")
    check_positive(eps, "eps")
    return x, gamma, beta


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5,
                      *, mean: np.ndarray | None = None, var: np.ndarray | None = None):
    """Batch normalisation with the batch's own statistics (or, given, fixed ones).

    out = gamma * (x - mu) / sqrt(var + eps) + beta, per channel (axis 1), where mu and the
    biased var are taken over every axis but 1 (the batch, and the positions of a feature map).

    Args:
        x: (N, C), (N, C, L) or (N, C, H, W) input.
        gamma: (C,) scale; beta: (C,) shift.
        eps: added to the variance before the square root.
        mean, var: optional (C,) statistics to normalise with instead of the batch's, as a
            layer in evaluation mode does with its running estimates. Give both or neither.
    Returns:
        ``(out, cache)``; ``out`` has the shape of ``x``. ``cache.mean`` and ``cache.var`` are
        the (C,) statistics used (in training: the batch mean and biased batch variance).
        Matches ``torch.nn.functional.batch_norm(x, None, None, gamma, beta, training=True)``
        (and, with ``mean``/``var``, ``training=False`` with those running statistics).
    """
    x, gamma, beta = _check_input(x, gamma, beta, eps)
    if (mean is None) != (var is None):
        raise ValueError("mean, var: give both (evaluation statistics) or neither")
    axes = _channel_axes(x)
    batch_stats = mean is None
    if batch_stats:
        mean = x.mean(axis=axes)                                      # (C,)
        var = ((x - _per_channel(mean, x.ndim)) ** 2).mean(axis=axes)  # (C,) biased
    else:
        mean, var = as_array(mean, "mean"), as_array(var, "var")
        check_shape(mean, gamma.shape, "mean")
        check_shape(var, gamma.shape, "var")
    xhat = (x - _per_channel(mean, x.ndim)) / np.sqrt(_per_channel(var, x.ndim) + eps)
    out = _per_channel(gamma, x.ndim) * xhat + _per_channel(beta, x.ndim)
    return out, BatchNormCache(x, xhat, mean, var, gamma, eps, batch_stats)


def batchnorm_backward(dout: np.ndarray, cache: BatchNormCache):
    """Gradients of batch normalisation in closed form.

    With M values per channel and every sum over the axes but 1::

        dbeta  = sum dout
        dgamma = sum dout * xhat
        dx     = gamma / sqrt(var + eps) * (dout - mean(dout) - xhat * mean(dout * xhat))

    The two subtracted means are the paths through mu and var; with fixed (evaluation)
    statistics they vanish and dx = gamma * dout / sqrt(var + eps).

    Returns:
        ``(dx, dgamma, dbeta)`` with the shapes of ``x``, ``gamma`` and ``beta``.
    """
    dout = as_array(dout, "dout")
    check_shape(dout, cache.x.shape, "dout")
    axes, nd = _channel_axes(dout), dout.ndim
    dbeta = dout.sum(axis=axes)                  # (C,)
    dgamma = (dout * cache.xhat).sum(axis=axes)  # (C,)
    scale = _per_channel(cache.gamma / np.sqrt(cache.var + cache.eps), nd)
    if not cache.batch_stats:
        return scale * dout, dgamma, dbeta
    mean_dout = _per_channel(dout.mean(axis=axes), nd)
    mean_dout_xhat = _per_channel(dgamma / (dout.size // dout.shape[1]), nd)  # mean(dout * xhat)
    dx = scale * (dout - mean_dout - cache.xhat * mean_dout_xhat)
    return dx, dgamma, dbeta


def batchnorm_backward_naive(dout: np.ndarray, cache: BatchNormCache):
    """Gradients of batch normalisation, one node of the computational graph at a time.

    The forward pass as a chain of small steps (per channel, sums over every axis but 1)::

        mu = sum(x) / M;  xc = x - mu;  sq = xc^2;  var = sum(sq) / M
        std = sqrt(var + eps);  inv = 1 / std;  xhat = xc * inv;  out = gamma * xhat + beta

    and the backward pass walks it in reverse, adding the gradients of a node used twice
    (``xc`` feeds both ``sq`` and ``xhat``; ``x`` feeds both ``xc`` and ``mu``). Slower and
    longer than :func:`batchnorm_backward`, and tested equal to it.

    Returns:
        ``(dx, dgamma, dbeta)``.
    """
    dout = as_array(dout, "dout")
    check_shape(dout, cache.x.shape, "dout")
    axes, nd = _channel_axes(dout), dout.ndim
    m = dout.size // dout.shape[1]  # values per channel
    # Forward again, keeping every intermediate node.
    mu = _per_channel(cache.mean, nd)
    xc = cache.x - mu
    std = np.sqrt(_per_channel(cache.var, nd) + cache.eps)
    inv = 1.0 / std
    xhat = xc * inv
    # out = gamma * xhat + beta
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * xhat).sum(axis=axes)
    dxhat = dout * _per_channel(cache.gamma, nd)
    # xhat = xc * inv
    dxc = dxhat * inv
    if not cache.batch_stats:  # fixed statistics: x reaches out only through xc
        return dxc, dgamma, dbeta
    dinv = _per_channel((dxhat * xc).sum(axis=axes), nd)
    # inv = 1 / std;  std = sqrt(var + eps)
    dstd = -dinv / std ** 2
    dvar = dstd * 0.5 / std
    # var = sum(sq) / M;  sq = xc^2  (xc's second path)
    dsq = np.broadcast_to(dvar / m, dout.shape)
    dxc = dxc + 2.0 * xc * dsq
    # xc = x - mu;  mu = sum(x) / M  (x's second path)
    dmu = -_per_channel(dxc.sum(axis=axes), nd)
    dx = dxc + dmu / m
    return dx, dgamma, dbeta


class _BatchNorm(Module):
    """Shared body of ``BatchNorm1d`` and ``BatchNorm2d``; subclasses fix the accepted ndim."""

    _ndims: tuple[int, ...] = ()
    _layout: str = ""

    def __init__(self, num_features: int, *, momentum: float | None = 0.1,
                 eps: float = 1e-5) -> None:
        super().__init__()
        if not (isinstance(num_features, (int, np.integer)) and num_features > 0):
            raise ValueError(f"num_features: expected a positive int, got {num_features!r}")
        if momentum is not None:
            check_probability(momentum, "momentum", allow_one=True)
        check_positive(eps, "eps")
        self.num_features, self.momentum, self.eps = int(num_features), momentum, eps
        self.params["w"] = np.ones(num_features)   # gamma, torch's weight
        self.params["b"] = np.zeros(num_features)  # beta, torch's bias
        self.running_mean = np.zeros(num_features)
        self.running_var = np.ones(num_features)
        self.num_batches_tracked = 0
        self.zero_grad()

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Normalise ``x``: batch statistics in training (updating the running ones), else the
        running statistics."""
        x = as_array(x, "x")
        if x.ndim not in self._ndims:
            raise ValueError(f"x: expected {self._layout} input, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"x: expected {self.num_features} channels on axis 1, "
                             f"got shape {x.shape}")
        gamma, beta = self.params["w"], self.params["b"]
        if not self.training:
            out, self._cache = batchnorm_forward(x, gamma, beta, self.eps,
                                                 mean=self.running_mean, var=self.running_var)
            return out
        m = x.size // x.shape[1]  # values per channel
        if m < 2:
            raise ValueError(f"x: training needs more than one value per channel, "
                             f"got shape {x.shape}")
        out, self._cache = batchnorm_forward(x, gamma, beta, self.eps)
        self.num_batches_tracked += 1
        # momentum=None: cumulative average over the batches seen, as torch.
        factor = 1.0 / self.num_batches_tracked if self.momentum is None else self.momentum
        unbiased_var = self._cache.var * m / (m - 1)
        self.running_mean = (1.0 - factor) * self.running_mean + factor * self._cache.mean
        self.running_var = (1.0 - factor) * self.running_var + factor * unbiased_var
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Return dL/dx and store dL/dgamma, dL/dbeta in ``grads['w']``, ``grads['b']``."""
        dx, dgamma, dbeta = batchnorm_backward(dout, self._need_cache())
        self.grads["w"], self.grads["b"] = dgamma, dbeta
        return dx

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) input, as ``torch.nn.BatchNorm1d``.

    Holds ``params['w']`` (gamma, initialised to 1) and ``params['b']`` (beta, 0), both (C,),
    and the buffers ``running_mean`` (0) and ``running_var`` (1). ``momentum`` weights the new
    batch statistic (``None``: a cumulative average); the running variance is unbiased.
    ``eps`` and ``momentum`` are keyword-only, so the two orders (ours, torch's) cannot be mixed.
    """

    _ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) feature maps, per channel, as ``torch.nn.BatchNorm2d``.

    Statistics are taken over N, H and W; otherwise the same as :class:`BatchNorm1d`.
    """

    _ndims = (4,)
    _layout = "(N, C, H, W)"
