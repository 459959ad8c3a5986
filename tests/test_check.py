"""dlbook.check: the printed comparison line is stable and the assertion can fail."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlbook.check import assert_close, decade_bound


@pytest.mark.parametrize("value, text", [(0.0, "= 0"), (2.2e-16, "< 1e-15"), (1e-16, "< 1e-15"),
                                         (9.99e-13, "< 1e-12"), (3.0, "< 1e1"), (float("nan"), "= nan")])
def test_decade_bound(value, text):
    assert decade_bound(value) == text


def test_assert_close_prints_and_returns(capsys):
    assert_close(np.array([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-14]), label="demo")
    assert capsys.readouterr().out == "demo: max |difference| < 1e-13\n"


def test_assert_close_fails_on_a_real_difference():
    with pytest.raises(AssertionError, match="exceeds"):
        assert_close(np.zeros(3), np.array([0, 0, 1e-6]), quiet=True)
    with pytest.raises(AssertionError, match="shapes differ"):
        assert_close(np.zeros(3), np.zeros(4), quiet=True)
