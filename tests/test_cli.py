"""dlbook.cli: `dlbook info` and the argument parser."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dlbook
from dlbook.cli import book_root, main


def test_info_prints_versions_and_the_book(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"dlbook {dlbook.__version__} (")
    for dist in ("numpy", "torch", "jupyter-book", "nbval"):
        assert f"\n{dist} " in out
    assert f"book: {book_root()}" in out  # the tests run from a checkout


def test_console_script_runs(tmp_path):
    result = subprocess.run([sys.executable, "-m", "dlbook.cli", "info"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 0 and "torch 2." in result.stdout


def test_unknown_or_missing_command_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["nonsense"])
    assert "invalid choice" in capsys.readouterr().err


def test_versions_line_is_what_chapters_print():
    line = dlbook.versions()
    assert line.startswith(f"dlbook {dlbook.__version__} | python 3.")
    assert "| numpy " in line and line.split("| torch ")[1].count("+") == 0  # no local build tag
