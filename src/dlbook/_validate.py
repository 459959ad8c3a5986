"""Argument checks shared by the layers.

Every public function validates its inputs up front so that a wrong shape produces a
``ValueError`` naming the argument, the expected shape and the received one, instead of
a silent broadcast or a numpy traceback from deep inside a computation.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def as_array(x, name: str) -> np.ndarray:
    """Return ``x`` as a floating ndarray; integers and bools are promoted to float64.

    NaN and inf pass through unchecked: a caller that needs finite values checks them itself.

    Raises:
        ValueError: if ``x`` cannot be turned into a numeric array.
    """
    try:
        arr = np.asarray(x)
    except Exception as err:  # ragged lists and the like
        raise ValueError(f"{name}: cannot be converted to an array ({err})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr


def check_ndim(arr: np.ndarray, ndim: int, name: str, layout: str) -> None:
    """Raise ``ValueError`` unless ``arr`` has ``ndim`` dimensions (``layout`` names them, e.g. "(N, D)")."""
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array {layout}, got shape {arr.shape}")


def check_shape(arr: np.ndarray, expected: Sequence[int], name: str) -> None:
    """Raise ``ValueError`` unless ``arr.shape == expected``."""
    if tuple(arr.shape) != tuple(expected):
        raise ValueError(f"{name}: expected shape {tuple(expected)}, got {tuple(arr.shape)}")


def check_positive(value: float, name: str) -> None:
    """Raise ``ValueError`` unless ``value > 0``."""
    if not value > 0:
        raise ValueError(f"{name}: expected a positive number, got {value!r}")


def check_probability(value: float, name: str, *, allow_one: bool = False) -> None:
    """Raise ``ValueError`` unless ``0 <= value < 1`` (or ``<= 1`` with ``allow_one``)."""
    upper_ok = value <= 1 if allow_one else value < 1
    if not (0 <= value and upper_ok):
        bound = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"{name}: expected a value in {bound}, got {value!r}")


def pair(value, name: str) -> tuple[int, int]:
    """Turn an int or a pair of ints into ``(h, w)``, as torch does for ``stride`` etc."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    ):
        return int(value[0]), int(value[1])
    raise ValueError(f"{name}: expected an int or a pair of ints, got {value!r}")
