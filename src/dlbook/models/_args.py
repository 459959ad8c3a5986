"""Argument checks shared by the model factories."""

from __future__ import annotations


def check_num_classes(num_classes) -> int:
    """Return ``num_classes`` if it is an int >= 1, else raise ``ValueError`` naming it."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes: expected an int >= 1, got {num_classes!r}")
    return num_classes
