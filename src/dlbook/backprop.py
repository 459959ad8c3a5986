"""Backpropagation by hand for the two-layer sigmoid network of the deep-learning
textbook chapter, section 5.2.4.

The network and its notation follow the source (Fig. 5-7): n inputs x_i, m hidden units h_j,
l outputs o_k, sigmoid f everywhere, a bias b and a threshold theta per unit::

    net0_j = sum_i w0_ji x_i + b0_j,      h_j = f(net0_j - theta0_j)          (5-2)
    net1_k = sum_j w1_kj h_j + b1_k,      o_k = f(net1_k - theta1_k)          (5-3), (5-20) corrected
    E = 1/2 sum_k (d_k - o_k)^2                                                (5-4)

The error signals ("deltas") and the learning rule, with the source's slips corrected::

    delta_o_k = (d_k - o_k) o_k (1 - o_k)                                      (5-16)
    delta_y_j = (sum_k delta_o_k w1_kj) h_j (1 - h_j)                          (5-17) corrected
    dw1_kj = eta delta_o_k h_j,   dw0_ji = eta delta_y_j x_i                   (5-12)
    db1_k  = eta delta_o_k,       db0_j  = eta delta_y_j                       (5-21), (5-19) corrected

Weights use torch's layout, one row per receiving unit: ``w0`` is (m, n) indexed [j, i] and
``w1`` is (l, m) indexed [k, j]. A batch of N samples is a (N, n) array of rows; the loss is
then summed over the samples (each sample's E as in (5-4)), so N = 1 is the source's
per-sample rule. A single sample may also be passed as a (n,) vector.
"""

from __future__ import annotations

import numpy as np

from dlbook._validate import as_array, check_shape
from dlbook.activations import sigmoid

__all__ = ["PARAM_NAMES", "two_layer_sigmoid_forward", "two_layer_sigmoid_deltas",
           "two_layer_sigmoid_backward", "bp_learning_rule", "init_two_layer_sigmoid"]

#: The parameter names of the two-layer network, in the order the forward pass uses them.
PARAM_NAMES = ("w0", "b0", "theta0", "w1", "b1", "theta1")


def init_two_layer_sigmoid(n: int, m: int, l: int, *, rng: np.random.Generator,  # noqa: E741
                           scale: float = 1.0) -> dict[str, np.ndarray]:
    """Random parameters for an n-m-l network: weights, biases and thresholds ~ U(-scale, scale).

    The source leaves the initial values open ("random or empirical values").
    """
    for name, value in (("n", n), ("m", m), ("l", l)):
        if value < 1:
            raise ValueError(f"{name}: expected a positive layer size, got {value}")
    shapes = {"w0": (m, n), "b0": (m,), "theta0": (m,), "w1": (l, m), "b1": (l,), "theta1": (l,)}
    return {name: rng.uniform(-scale, scale, shape) for name, shape in shapes.items()}


def _check_params(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    missing = [k for k in PARAM_NAMES if k not in params]
    if missing:
        raise ValueError(f"params: missing {missing}; expected the keys {list(PARAM_NAMES)}")
    p = {k: as_array(params[k], k) for k in PARAM_NAMES}
    if p["w0"].ndim != 2 or p["w1"].ndim != 2:
        raise ValueError(f"w0, w1: expected 2-D (m, n) and (l, m) arrays, got {p['w0'].shape} and {p['w1'].shape}")
    m, n = p["w0"].shape
    l = p["w1"].shape[0]  # noqa: E741
    check_shape(p["w1"], (l, m), "w1")
    for key, size in (("b0", m), ("theta0", m), ("b1", l), ("theta1", l)):
        check_shape(p[key], (size,), key)
    return p


def two_layer_sigmoid_forward(x: np.ndarray, d: np.ndarray, params: dict[str, np.ndarray],
                              loss: str = "squared"):
    """Forward pass (5-2), (5-3) and the squared error (5-4), or the cross-entropy.

    Args:
        x: (n,) one sample or (N, n) samples as rows.
        d: desired outputs, (l,) or (N, l), matching ``x``.
        params: ``w0`` (m, n), ``b0`` (m,), ``theta0`` (m,), ``w1`` (l, m), ``b1`` (l,), ``theta1`` (l,).
        loss: ``"squared"``, E = 1/2 sum (d_k - o_k)^2, or ``"cross_entropy"``,
            E = -sum [d_k ln o_k + (1 - d_k) ln(1 - o_k)] (targets in [0, 1]), both summed over
            samples and output units.
    Returns:
        ``(E, cache)``: E a float; the cache holds x, d, h, o (as (N, .) arrays), the loss and
        the parameters.
    """
    if loss not in ("squared", "cross_entropy"):
        raise ValueError(f"loss: expected 'squared' or 'cross_entropy', got {loss!r}")
    p = _check_params(params)
    m, n = p["w0"].shape
    l = p["w1"].shape[0]  # noqa: E741
    x = as_array(x, "x")
    d = as_array(d, "d")
    single = x.ndim == 1
    x2 = x[None, :] if single else x
    d2 = d[None, :] if d.ndim == 1 else d
    if x2.ndim != 2 or x2.shape[1] != n:
        raise ValueError(f"x: expected shape (n,) or (N, n) with n = {n}, got {x.shape}")
    check_shape(d2, (x2.shape[0], l), "d")
    net0 = x2 @ p["w0"].T + p["b0"]          # (N, m)
    h = sigmoid(net0 - p["theta0"])          # (N, m)
    net1 = h @ p["w1"].T + p["b1"]           # (N, l)
    o = sigmoid(net1 - p["theta1"])          # (N, l)
    if loss == "squared":
        E = 0.5 * float(np.sum((d2 - o) ** 2))
    else:
        E = -float(np.sum(d2 * np.log(o) + (1.0 - d2) * np.log1p(-o)))
    return E, {"x": x2, "d": d2, "h": h, "o": o, "params": p, "single": single, "loss": loss}


def two_layer_sigmoid_deltas(cache) -> tuple[np.ndarray, np.ndarray]:
    """The error signals delta_o = -dE/dnet1 (5-16) and delta_y = -dE/dnet0 (5-17, corrected).

    With the cross-entropy loss delta_o = d - o: the sigmoid's derivative o (1 - o) cancels
    against the loss's 1 / (o (1 - o)).

    Returns:
        ``(delta_o, delta_y)`` of shapes (N, l) and (N, m) ((l,) and (m,) for a single sample).
    """
    d, h, o, p = cache["d"], cache["h"], cache["o"], cache["params"]
    if cache.get("loss", "squared") == "squared":
        delta_o = (d - o) * o * (1.0 - o)                # (N, l), (5-16)
    else:
        delta_o = d - o                                  # (N, l), cross-entropy
    delta_y = (delta_o @ p["w1"]) * h * (1.0 - h)        # (N, m): sum_k delta_o_k w1_kj, (5-17)
    if cache["single"]:
        return delta_o[0], delta_y[0]
    return delta_o, delta_y


def two_layer_sigmoid_backward(cache) -> dict[str, np.ndarray]:
    """Gradients of E with respect to every parameter and the input, from the deltas.

    dE/dw1 = -delta_o^T h, dE/db1 = -sum delta_o, dE/dtheta1 = +sum delta_o (theta enters
    with a minus sign, so it only ever undoes b), and the same one layer down with delta_y and
    x; dE/dx = -delta_y w0.

    Returns:
        name -> gradient for ``PARAM_NAMES`` and ``"x"``, each shaped like what it differentiates.
    """
    x, h = cache["x"], cache["h"]
    delta_o, delta_y = two_layer_sigmoid_deltas(cache)
    delta_o, delta_y = np.atleast_2d(delta_o), np.atleast_2d(delta_y)
    p = cache["params"]
    grads = {
        "w1": -(delta_o.T @ h),              # (l, m)
        "b1": -delta_o.sum(axis=0),          # (l,)
        "theta1": delta_o.sum(axis=0),       # (l,)
        "w0": -(delta_y.T @ x),              # (m, n)
        "b0": -delta_y.sum(axis=0),          # (m,)
        "theta0": delta_y.sum(axis=0),       # (m,)
    }
    dx = -(delta_y @ p["w0"])                # (N, n)
    grads["x"] = dx[0] if cache["single"] else dx
    return grads


def bp_learning_rule(cache, eta: float) -> dict[str, np.ndarray]:
    """The source's updates Delta = -eta dE/d(param): (5-12) for weights, corrected (5-19)/(5-21) for biases.

    Delta w1_kj = eta delta_o_k h_j, Delta w0_ji = eta delta_y_j x_i, Delta b1_k = eta delta_o_k,
    Delta b0_j = eta delta_y_j, Delta theta = -eta delta (summed over the samples of a batch).

    Returns:
        name -> update for each of ``PARAM_NAMES``; add it to the parameter (``p += Delta``).
    """
    if not eta > 0:
        raise ValueError(f"eta: expected a positive learning rate, got {eta!r}")
    x, h = cache["x"], cache["h"]
    delta_o, delta_y = (np.atleast_2d(a) for a in two_layer_sigmoid_deltas(cache))
    return {
        "w0": eta * (delta_y.T @ x),             # (m, n): Delta w0_ji = eta delta_y_j x_i
        "b0": eta * delta_y.sum(axis=0),         # (m,):   hidden bias uses delta_y (not delta_o)
        "theta0": -eta * delta_y.sum(axis=0),    # (m,)
        "w1": eta * (delta_o.T @ h),             # (l, m): Delta w1_kj = eta delta_o_k h_j
        "b1": eta * delta_o.sum(axis=0),         # (l,):   output bias uses delta_o (not delta_y)
        "theta1": -eta * delta_o.sum(axis=0),    # (l,)
    }
