"""dlbook: the from-scratch deep-learning library behind the dlbook textbook.

The numpy modules (activations, losses, linear, conv, pool, ...) implement each layer as a
``xxx_forward(x, ...) -> (out, cache)`` / ``xxx_backward(dout, cache)`` pair, with thin classes
on top; every one of them is tested against PyTorch in float64.
"""

__version__ = "0.1.0"


def versions() -> str:
    """One line with the versions a notebook's outputs depend on (printed by each chapter's first cell)."""
    import platform

    import numpy
    import torch

    return (f"dlbook {__version__} | python {platform.python_version()} | numpy {numpy.__version__} | "
            f"torch {torch.__version__.split('+')[0]}")
