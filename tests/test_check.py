"""dlbook.check: the printed line states the asserted tolerance (never the achieved error), and
the assertion can fail."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlbook.check import assert_below, assert_close, tolerance_text


def test_assert_close_prints_the_tolerance_not_the_error(capsys):
    assert_close(np.array([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-14]), label="demo")
    exact = capsys.readouterr().out
    assert exact == "demo: close (rtol 1e-10, atol 1e-12)\n"
    # The same line whatever the achieved difference: exactly equal, or last-bit noise.
    assert_close(np.array([1.0, 2.0]), np.array([1.0, 2.0]), label="demo")
    assert capsys.readouterr().out == exact
    assert_close(3.0, 3.0 + 1e-9, label="scalar", rtol=1e-6, atol=0.0)
    assert capsys.readouterr().out == "scalar: close (rtol 1e-6, atol 0)\n"


def test_assert_close_fails_on_a_real_difference():
    with pytest.raises(AssertionError, match=r"not close \(rtol 1e-10, atol 1e-12\): max \|difference\| "
                                             r"1\.000e-06 at index \(2,\)"):
        assert_close(np.zeros(3), np.array([0, 0, 1e-6]), quiet=True)
    with pytest.raises(AssertionError, match="shapes differ"):
        assert_close(np.zeros(3), np.zeros(4), quiet=True)
    with pytest.raises(AssertionError, match=r"inf at index \(\)|at index \(0,\)"):
        assert_close(np.float64(np.nan), 0.0, quiet=True)  # NaN is never close
    with pytest.raises(AssertionError, match="at index"):
        assert_close(1.0, 2.0, quiet=True)


def test_assert_below(capsys):
    assert_below(np.array([1e-17, 3e-13]), 1e-12, label="max |residual|")
    assert capsys.readouterr().out == "max |residual| < 1e-12\n"
    with pytest.raises(AssertionError, match=r"expected < 1e-12, got 2\.000e-12"):
        assert_below(np.array([1e-17, 2e-12]), 1e-12, label="max |residual|")
    with pytest.raises(AssertionError, match="expected < 1e-12"):
        assert_below(np.nan, 1e-12, label="nan")


def test_tolerance_text():
    assert tolerance_text(1e-7, 1e-10) == "rtol 1e-7, atol 1e-10"


def test_assert_all_close_prints_one_line_and_names_the_failure(capsys):
    from dlbook.check import assert_all_close

    a = np.arange(3.0)
    assert_all_close({"dx": (a, a), "dw": (a, torch.tensor(a))}, label="ours vs torch")
    assert capsys.readouterr().out == "dx, dw: ours vs torch, close (rtol 1e-10, atol 1e-12)\n"
    with pytest.raises(AssertionError, match=r"^dw: ours vs torch: not close"):
        assert_all_close({"dx": (a, a), "dw": (a, a + 1e-3)}, label="ours vs torch")
    assert capsys.readouterr().out == ""  # nothing printed when a check fails
    with pytest.raises(ValueError, match="nothing to check"):
        assert_all_close({}, label="empty")
