"""The ``dlbook`` command line: ``dlbook info`` (and subcommands added by later modules)."""

from __future__ import annotations

import argparse
import platform
import sys
from importlib import metadata
from pathlib import Path

import dlbook
from dlbook._book import book_root


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def cmd_info(_args: argparse.Namespace) -> int:
    """Print the versions that matter for reproducing the book, and where the book lives."""
    print(f"dlbook {dlbook.__version__} ({Path(dlbook.__file__).parent})")
    print(f"python {platform.python_version()} on {platform.system()} {platform.machine()}")
    for dist in ("numpy", "torch", "matplotlib", "scikit-learn", "jupyter-book", "nbval", "otter-grader"):
        print(f"{dist} {_version(dist)}")
    root = book_root()
    if root is None:
        print("book: not found (dlbook is installed outside a checkout of the book)")
    else:
        html = root / "_build" / "html" / "index.html"
        print(f"book: {root}")
        print(f"html: {html if html.is_file() else 'not built yet (run `make book`)'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="dlbook", description="dlbook: the executable deep-learning textbook")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="versions and where the book is")
    info.set_defaults(func=cmd_info)
    from dlbook.grading.cli import add_grading_commands  # dlbook grade, dlbook exercises

    add_grading_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dlbook`` console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
