"""dlbook._validate: the argument checks behind every clear ValueError."""

from __future__ import annotations

import numpy as np
import pytest

from dlbook._validate import as_array, check_ndim, check_positive, check_probability, check_shape, pair


def test_as_array_promotes_and_rejects():
    assert as_array([1, 2], "x").dtype == np.float64
    x32 = np.zeros(2, np.float32)
    assert as_array(x32, "x") is x32
    with pytest.raises(ValueError, match="x: expected a numeric array"):
        as_array(["a"], "x")
    with pytest.raises(ValueError, match="x: cannot be converted"):
        as_array([[1, 2], [3]], "x")


def test_shape_checks_name_the_argument():
    with pytest.raises(ValueError, match=r"w: expected a 2-D array \(D_out, D_in\), got shape \(3,\)"):
        check_ndim(np.zeros(3), 2, "w", "(D_out, D_in)")
    with pytest.raises(ValueError, match=r"b: expected shape \(2,\), got \(3,\)"):
        check_shape(np.zeros(3), (2,), "b")
    check_shape(np.zeros((2, 3)), (2, 3), "ok")  # no error for the right shape


@pytest.mark.parametrize("value, expected", [(3, (3, 3)), ((1, 2), (1, 2)), ([2, 1], (2, 1)),
                                             (np.int64(4), (4, 4))])
def test_pair_accepts_ints_and_pairs(value, expected):
    assert pair(value, "stride") == expected


@pytest.mark.parametrize("value", [1.5, (1, 2, 3), True, "2", (1, 2.0)])
def test_pair_rejects_everything_else(value):
    with pytest.raises(ValueError, match="stride: expected an int or a pair of ints"):
        pair(value, "stride")


def test_number_checks():
    check_positive(0.1, "lr")
    with pytest.raises(ValueError, match="lr: expected a positive number"):
        check_positive(0, "lr")
    check_probability(1.0, "p", allow_one=True)
    with pytest.raises(ValueError, match=r"p: expected a value in \[0, 1\)"):
        check_probability(1.0, "p")
