"""Activation functions: plain functions, forward/backward pairs, and thin layer classes.

Every function is element-wise except ``softmax`` and ``log_softmax``, which normalise along
``axis``. All of them are written to be stable for large inputs: no ``exp`` of a large
positive number is ever taken.

Conventions match PyTorch: ReLU'(0) = 0, LeakyReLU'(0) = ``negative_slope``,
ELU'(x) = f(x) + alpha for x <= 0. The two leaky ReLUs whose negative slope is not a fixed
hyper-parameter follow the same rule at 0 (the slope applies for x <= 0): PReLU learns its
slope (He et al., 2015), RReLU draws it at random in training (Xu et al., 2015).
"""

from __future__ import annotations

import numpy as np

from dlbook._validate import as_array, check_ndim, check_positive, check_shape
from dlbook.module import Module

__all__ = [
    "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softmax", "log_softmax",
    "sigmoid_forward", "sigmoid_backward", "tanh_forward", "tanh_backward",
    "relu_forward", "relu_backward", "leaky_relu_forward", "leaky_relu_backward",
    "elu_forward", "elu_backward", "softmax_forward", "softmax_backward",
    "log_softmax_forward", "log_softmax_backward",
    "prelu_forward", "prelu_backward", "rrelu_forward", "rrelu_backward",
    "maxout_forward", "maxout_backward",
    "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "Softmax", "PReLU", "RReLU",
]


# --- plain functions -----------------------------------------------------------------------

def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic sigmoid, sigma(x) = 1 / (1 + exp(-x)), element-wise.

    Computed as exp(-|x|)-based expressions so that neither branch overflows. Matches
    ``torch.sigmoid``.
    """
    x = as_array(x, "x")
    z = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent, tanh(x) = (e^x - e^-x) / (e^x + e^-x) = 2 sigma(2x) - 1."""
    return np.tanh(as_array(x, "x"))


def relu(x: np.ndarray) -> np.ndarray:
    """Rectified linear unit, max(x, 0)."""
    x = as_array(x, "x")
    return np.maximum(x, 0.0).astype(x.dtype, copy=False)


def leaky_relu(x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    """Leaky ReLU: x for x > 0, ``negative_slope * x`` otherwise. Matches ``F.leaky_relu``."""
    x = as_array(x, "x")
    return np.where(x > 0, x, negative_slope * x)


def elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Exponential linear unit: x for x > 0, alpha (e^x - 1) otherwise. Matches ``F.elu``."""
    x = as_array(x, "x")
    check_positive(alpha, "alpha")
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis``: softmax(x)_j = e^{x_j} / sum_k e^{x_k}.

    The maximum along ``axis`` is subtracted first (softmax is unchanged by a shift), so
    ``softmax([1000, 1001]) = [0.2689, 0.7311]`` instead of ``nan``. Matches ``F.softmax``.
    """
    x = as_array(x, "x")
    _check_axis(x, axis)
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """log softmax(x)_j = x_j - logsumexp(x), computed with the max-shift. Matches ``F.log_softmax``."""
    x = as_array(x, "x")
    _check_axis(x, axis)
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _check_axis(x: np.ndarray, axis: int) -> None:
    if x.ndim == 0:
        raise ValueError("x: softmax needs at least a 1-D array, got a scalar")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis: {axis} is out of range for x of shape {x.shape}")


# --- forward/backward pairs --------------------------------------------------------------

def _check_dout(dout, out_shape, name="dout") -> np.ndarray:
    dout = as_array(dout, name)
    check_shape(dout, out_shape, name)
    return dout


def sigmoid_forward(x: np.ndarray):
    """Forward pass of the sigmoid. Returns ``(out, cache)``; ``out`` has the shape of ``x``."""
    out = sigmoid(x)
    return out, out


def sigmoid_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx = dout * sigma(x) (1 - sigma(x)); the derivative peaks at 1/4 at x = 0."""
    out = cache
    dout = _check_dout(dout, out.shape)
    return dout * out * (1.0 - out)


def tanh_forward(x: np.ndarray):
    """Forward pass of tanh. Returns ``(out, cache)``."""
    out = tanh(x)
    return out, out


def tanh_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx = dout * (1 - tanh(x)^2)."""
    out = cache
    dout = _check_dout(dout, out.shape)
    return dout * (1.0 - out * out)


def relu_forward(x: np.ndarray):
    """Forward pass of ReLU. Returns ``(out, cache)`` with the cache the input."""
    x = as_array(x, "x")
    return relu(x), x


def relu_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx = dout where x > 0, else 0 (so ReLU'(0) = 0, as in torch)."""
    x = cache
    dout = _check_dout(dout, x.shape)
    return np.where(x > 0, dout, 0.0)


def leaky_relu_forward(x: np.ndarray, negative_slope: float = 0.01):
    """Forward pass of leaky ReLU. Returns ``(out, cache)``."""
    x = as_array(x, "x")
    return leaky_relu(x, negative_slope), (x, negative_slope)


def leaky_relu_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx = dout where x > 0, ``negative_slope * dout`` where x <= 0 (torch's choice at 0)."""
    x, negative_slope = cache
    dout = _check_dout(dout, x.shape)
    return np.where(x > 0, dout, negative_slope * dout)


def elu_forward(x: np.ndarray, alpha: float = 1.0):
    """Forward pass of ELU. Returns ``(out, cache)``."""
    x = as_array(x, "x")
    out = elu(x, alpha)
    return out, (x, out, alpha)


def elu_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx = dout for x > 0; for x <= 0, dout * alpha e^x = dout * (f(x) + alpha)."""
    x, out, alpha = cache
    dout = _check_dout(dout, x.shape)
    return np.where(x > 0, dout, dout * (out + alpha))


def softmax_forward(x: np.ndarray, axis: int = -1):
    """Forward pass of softmax along ``axis``. Returns ``(out, cache)``."""
    out = softmax(x, axis)
    return out, (out, axis)


def softmax_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Jacobian-vector product of softmax: dx = y * (dout - sum(dout * y, axis)).

    The Jacobian is dy_j/dx_i = y_j (delta_ij - y_i); the product is formed without building it.
    """
    out, axis = cache
    dout = _check_dout(dout, out.shape)
    return out * (dout - np.sum(dout * out, axis=axis, keepdims=True))


def log_softmax_forward(x: np.ndarray, axis: int = -1):
    """Forward pass of log-softmax along ``axis``. Returns ``(out, cache)``."""
    out = log_softmax(x, axis)
    return out, (out, axis)


def log_softmax_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx = dout - softmax(x) * sum(dout, axis)."""
    out, axis = cache
    dout = _check_dout(dout, out.shape)
    return dout - np.exp(out) * np.sum(dout, axis=axis, keepdims=True)


def _channel_view(weight: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Reshape (C,) slopes to broadcast along axis 1 of ``x`` (one slope broadcasts anywhere)."""
    if weight.size == 1:
        return weight.reshape(())
    return weight.reshape((1, -1) + (1,) * (x.ndim - 2))  # (1, C, 1, ..., 1)


def prelu_forward(x: np.ndarray, weight: np.ndarray):
    """Parametric ReLU: f(x) = x for x > 0, a_c x otherwise, with a learned slope a per channel.

    Args:
        x: input; the channel axis is axis 1 ((N, C), (N, C, L), (N, C, H, W), ...).
        weight: (C,) slopes, one per channel, or (1,) for one slope shared by every channel.
    Returns:
        ``(out, cache)``; ``out`` has the shape of ``x``. Matches ``F.prelu(x, weight)``.
    """
    x = as_array(x, "x")
    weight = as_array(weight, "weight")
    check_ndim(weight, 1, "weight", "(C,)")
    if weight.size != 1:
        channels = x.shape[1] if x.ndim >= 2 else 1
        if weight.size != channels:
            raise ValueError(f"weight: expected shape (1,) or ({channels},) (x has {channels} "
                             f"channels on axis 1, shape {x.shape}), got {weight.shape}")
    a = _channel_view(weight, x)
    return np.where(x > 0, x, a * x), (x, weight)


def prelu_backward(dout: np.ndarray, cache):
    """Gradients of PReLU: dx = dout for x > 0, a_c dout otherwise;
    da_c = sum of dout * x over the elements of channel c with x <= 0.

    Returns:
        ``(dx, dweight)`` with the shapes of ``x`` and ``weight``.
    """
    x, weight = cache
    dout = _check_dout(dout, x.shape)
    a = _channel_view(weight, x)
    negative = x <= 0
    dx = np.where(negative, a * dout, dout)
    contrib = np.where(negative, dout * x, 0.0)
    if weight.size == 1:
        dweight = np.array([contrib.sum()])
    else:
        axes = (0,) + tuple(range(2, x.ndim))
        dweight = contrib.sum(axis=axes)  # (C,)
    return dx, dweight


def rrelu_forward(x: np.ndarray, lower: float = 1.0 / 8, upper: float = 1.0 / 3,
                  training: bool = False, rng: np.random.Generator | None = None, *,
                  slopes: np.ndarray | None = None):
    """Randomised leaky ReLU: f(x) = x for x > 0, r x otherwise.

    In training r ~ U(lower, upper) is drawn afresh for every element at every call; in
    evaluation r = (lower + upper) / 2 for all elements (the expected slope). This is the
    parametrisation of ``torch.nn.RReLU`` and of the book's source; Xu et al. (2015) write the
    negative part as x / a with a ~ U(3, 8), i.e. lower = 1/8, upper = 1/3 up to that change of
    variable.

    Args:
        x: input, any shape.
        lower, upper: bounds of the slope distribution, 0 <= lower <= upper.
        training: draw random slopes (True) or use the mean slope (False).
        rng: the generator of the slopes; required in training unless ``slopes`` is given.
        slopes: optional slopes with the shape of ``x``, used instead of drawing (only where
            x <= 0; elsewhere the value is ignored): for tests and for replaying a pass.
    Returns:
        ``(out, cache)``. In evaluation matches ``F.rrelu(x, lower, upper, training=False)``;
        in training, ``torch.ops.aten.rrelu_with_noise`` given the same slopes.
    """
    x = as_array(x, "x")
    if not 0 <= lower <= upper:
        raise ValueError(f"lower, upper: expected 0 <= lower <= upper, got {lower} and {upper}")
    if not training:
        slope = np.full(x.shape, (lower + upper) / 2)
    elif slopes is not None:
        slope = as_array(slopes, "slopes")
        check_shape(slope, x.shape, "slopes")
        used = slope[x <= 0]
        if np.any((used < lower) | (used > upper)):
            raise ValueError(f"slopes: expected values in [{lower}, {upper}] where x <= 0")
    else:
        if rng is None:
            raise ValueError("rng: RReLU in training draws random slopes; pass a numpy Generator")
        slope = rng.uniform(lower, upper, x.shape)
    factor = np.where(x > 0, 1.0, slope)  # d out / d x, element-wise
    return x * factor, factor


def rrelu_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx = dout where x > 0, r dout where x <= 0, with the slopes r of the forward pass."""
    factor = cache
    dout = _check_dout(dout, factor.shape)
    return dout * factor


def maxout_forward(x: np.ndarray, pieces: int):
    """Forward pass of maxout (Goodfellow et al., 2013): the largest of ``pieces`` inputs.

    Each output unit j takes the maximum of ``pieces`` consecutive features of its input,
    ``out[n, j] = max_i x[n, j * pieces + i]``. Applied to a linear layer with
    ``D_out * pieces`` outputs, unit j is ``max_i (w_ji . x + b_ji)``, a convex
    piecewise-linear function with ``pieces`` learned pieces. The forward pass equals
    ``x.view(N, D_out, pieces).amax(-1)`` in PyTorch, which has no maxout layer; the backward
    pass equals amax's away from ties (see ``maxout_backward``).

    Args:
        x: (N, D_out * pieces) pre-activations.
        pieces: number of affine pieces per unit, at least 1.
    Returns:
        ``(out, cache)`` with ``out`` of shape (N, D_out).
    """
    x = as_array(x, "x")
    check_ndim(x, 2, "x", "(N, D_out * pieces)")
    if not (isinstance(pieces, (int, np.integer)) and pieces >= 1):
        raise ValueError(f"pieces: expected a positive integer, got {pieces!r}")
    n, features = x.shape
    if features % pieces:
        raise ValueError(f"x: expected a number of features divisible by pieces={pieces}, "
                         f"got shape {x.shape}")
    grouped = x.reshape(n, features // pieces, pieces)  # (N, D_out, pieces)
    winner = np.argmax(grouped, axis=-1)  # (N, D_out): the first largest piece
    out = np.take_along_axis(grouped, winner[..., None], axis=-1)[..., 0]  # (N, D_out)
    return out, (winner, x.shape)


def maxout_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx: each unit's gradient goes to the piece that won the maximum, zero to the others.

    At a tie the whole gradient goes to the first of the tied pieces (NumPy's ``argmax``);
    PyTorch's ``amax`` splits it evenly among them. So with pieces ``(z, 0)`` at ``z = 0`` the
    derivative passed to ``z`` is 1, where ``amax`` gives 0.5 and ``relu_backward`` gives 0.
    """
    winner, x_shape = cache
    dout = _check_dout(dout, winner.shape)
    dx = np.zeros((x_shape[0], winner.shape[1], x_shape[1] // winner.shape[1]), dout.dtype)
    np.put_along_axis(dx, winner[..., None], dout[..., None], axis=-1)
    return dx.reshape(x_shape)


# --- thin layer classes ------------------------------------------------------------------

class _Activation(Module):
    """A parameter-free layer around one forward/backward pair."""

    _forward = staticmethod(sigmoid_forward)
    _backward = staticmethod(sigmoid_backward)

    def _hyper(self) -> dict:
        return {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, self._cache = type(self)._forward(x, **self._hyper())
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return type(self)._backward(dout, self._need_cache())


class Sigmoid(_Activation):
    """Sigmoid layer (``torch.nn.Sigmoid``)."""

    _forward = staticmethod(sigmoid_forward)
    _backward = staticmethod(sigmoid_backward)


class Tanh(_Activation):
    """Tanh layer (``torch.nn.Tanh``)."""

    _forward = staticmethod(tanh_forward)
    _backward = staticmethod(tanh_backward)


class ReLU(_Activation):
    """ReLU layer (``torch.nn.ReLU``)."""

    _forward = staticmethod(relu_forward)
    _backward = staticmethod(relu_backward)


class LeakyReLU(_Activation):
    """Leaky ReLU layer (``torch.nn.LeakyReLU``)."""

    _forward = staticmethod(leaky_relu_forward)
    _backward = staticmethod(leaky_relu_backward)

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def _hyper(self) -> dict:
        return {"negative_slope": self.negative_slope}

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(_Activation):
    """ELU layer (``torch.nn.ELU``)."""

    _forward = staticmethod(elu_forward)
    _backward = staticmethod(elu_backward)

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        check_positive(alpha, "alpha")
        self.alpha = alpha

    def _hyper(self) -> dict:
        return {"alpha": self.alpha}

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Softmax(_Activation):
    """Softmax layer along ``axis`` (``torch.nn.Softmax(dim=axis)``)."""

    _forward = staticmethod(softmax_forward)
    _backward = staticmethod(softmax_backward)

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        self.axis = axis

    def _hyper(self) -> dict:
        return {"axis": self.axis}

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class PReLU(Module):
    """PReLU layer (``torch.nn.PReLU``) holding ``params['weight']`` (num_parameters,).

    ``num_parameters = 1`` shares one slope across channels; ``num_parameters = C`` learns one
    per channel (axis 1 of the input). Every slope starts at ``init`` (0.25, as torch and
    He et al., 2015).
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25) -> None:
        super().__init__()
        if not isinstance(num_parameters, (int, np.integer)) or num_parameters < 1:
            raise ValueError(f"num_parameters: expected a positive int, got {num_parameters!r}")
        # the count is not kept as an attribute: Module.num_parameters() is a method
        self.params["weight"] = np.full(int(num_parameters), float(init))
        self.zero_grad()

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, self._cache = prelu_forward(x, self.params["weight"])
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx, self.grads["weight"] = prelu_backward(dout, self._need_cache())
        return dx

    def extra_repr(self) -> str:
        return f"num_parameters={self.params['weight'].size}"


class RReLU(Module):
    """RReLU layer (``torch.nn.RReLU``): random slopes in ``train()``, the mean slope in ``eval()``.

    The layer owns its generator, so successive training passes draw different slopes.
    """

    def __init__(self, lower: float = 1.0 / 8, upper: float = 1.0 / 3, *,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not 0 <= lower <= upper:
            raise ValueError(f"lower, upper: expected 0 <= lower <= upper, got {lower} and {upper}")
        self.lower, self.upper = lower, upper
        self.rng = np.random.default_rng() if rng is None else rng

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, self._cache = rrelu_forward(x, self.lower, self.upper, self.training, self.rng)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return rrelu_backward(dout, self._need_cache())

    def extra_repr(self) -> str:
        return f"lower={self.lower}, upper={self.upper}"
