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


def setup(seed: int | None = 0, *, torch_threads: int | None = None) -> str:
    """The first cell of every chapter notebook, in one call; returns :func:`versions`.

    Prints floats with 4 decimals (numpy), makes float64 torch's default dtype (every check
    against PyTorch runs in float64), seeds torch's global generator with ``seed`` (numpy's
    randomness is always an explicit ``np.random.default_rng``), optionally caps torch's
    intra-op threads (tiny tensors gain nothing from threads on a shared CPU), and applies the
    book's plotting style (:func:`dlbook.plot.use_style`).
    """
    import numpy
    import torch

    from dlbook.plot import use_style

    if torch_threads is not None and not (isinstance(torch_threads, int) and torch_threads >= 1):
        raise ValueError(f"torch_threads: expected a positive integer or None, got {torch_threads!r}")
    numpy.set_printoptions(precision=4, suppress=True)
    torch.set_default_dtype(torch.float64)
    if seed is not None:
        torch.manual_seed(seed)
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    use_style()
    return versions()
