"""What the ratio benchmarks share: the environment line and the interleaved timing protocol.

Each benchmark script defines its own problem and the four functions it times; this module
runs them the same way for every script (see benchmarks/README.md).
"""

from __future__ import annotations

import os
import platform
import time
from typing import Callable

import numpy as np
import torch

import dlbook


def environment() -> str:
    """Versions, threads and load: what the timings depend on."""
    lines = [f"dlbook {dlbook.__version__} | python {platform.python_version()} | "
             f"numpy {np.__version__} | torch {torch.__version__}"]
    try:
        from threadpoolctl import threadpool_info
        blas = [f"{i['internal_api']} {i.get('version')}, threads: {i['num_threads']}"
                for i in threadpool_info() if i.get("user_api") == "blas"]
        lines.append("numpy BLAS: " + (", ".join(blas) or "unknown"))
    except ImportError:
        lines.append("numpy BLAS: threadpoolctl not installed")
    lines.append(f"torch threads: {torch.get_num_threads()} | torch mkldnn: "
                 f"{torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled} | "
                 f"CPUs: {os.cpu_count()} | load average (1, 5, 15 min): "
                 + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    return "\n".join(lines)


def interleaved_times(pairs: list[tuple[str, Callable[[], None], str, Callable[[], None]]], *,
                      rounds: int, warmup: int, pause: float, untimed: int,
                      block: int) -> dict[str, list[float]]:
    """Time pairs of functions (ours, PyTorch's) in alternating order; seconds per call.

    Each of ``warmup + rounds`` rounds runs, for each pair and each of its two functions (in
    reversed order every other round), ``pause`` seconds of sleep, so that the other library's
    worker threads go idle, ``untimed`` calls, and ``block`` timed calls. The warm-up rounds'
    timings are dropped.
    """
    times: dict[str, list[float]] = {name: [] for p in pairs for name in (p[0], p[2])}
    for r in range(warmup + rounds):
        for name_a, fn_a, name_b, fn_b in pairs:
            order = [(name_a, fn_a), (name_b, fn_b)]
            if r % 2:
                order.reverse()
            for name, fn in order:
                time.sleep(pause)
                for _ in range(untimed):  # the first calls after switching libraries are not timed
                    fn()
                for _ in range(block):
                    start = time.perf_counter()
                    fn()
                    elapsed = time.perf_counter() - start
                    if r >= warmup:
                        times[name].append(elapsed)
    return times
