"""Where the book's checkout is: used by the command line and by the grader (no import circle)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["book_root"]


def book_root() -> Path | None:
    """The repository that holds the book (``_toc.yml``), if dlbook runs from a checkout."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "_toc.yml").is_file():
            return parent
    return None
