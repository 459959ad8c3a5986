"""dlbook.setup: the one-line first cell of the chapter notebooks."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dlbook

SCRIPT = """
import numpy as np, torch, matplotlib
import dlbook
threads_before = torch.get_num_threads()
line = dlbook.setup(seed=3, torch_threads={threads})
assert line == dlbook.versions(), line
assert torch.get_default_dtype() == torch.float64
assert np.get_printoptions()["precision"] == 4 and np.get_printoptions()["suppress"]
first = torch.rand(2)
torch.manual_seed(3)
assert torch.equal(first, torch.rand(2)), "setup seeds torch with its seed"
assert torch.get_num_threads() == ({threads} or threads_before)
assert matplotlib.rcParams["savefig.dpi"] == 100  # the house style is applied
print("ok")
"""


@pytest.mark.parametrize("threads", [None, 1])
def test_setup_sets_print_options_dtype_seed_threads_and_style(threads):
    # A fresh process: setup changes global state that other tests must not inherit.
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(threads=threads)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_setup_rejects_a_bad_thread_count():
    with pytest.raises(ValueError, match="torch_threads: expected a positive integer"):
        dlbook.setup(torch_threads=0)
