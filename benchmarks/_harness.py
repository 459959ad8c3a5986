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


def add_common_options(parser, shape_fields: str) -> None:
    """The options every ratio benchmark takes: --quick, --rounds, --threads and --shape."""
    parser.add_argument("--quick", action="store_true",
                        help="1 round, no warm-up round, no pauses (a smoke test)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="timed rounds per shape (default 7)")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit both numpy's BLAS and torch to this many threads")
    parser.add_argument("--shape", action="append", default=None, metavar=shape_fields,
                        help="time this shape instead of the default ones (repeatable)")


def setup(parser, args, default_shapes, shape_fields: str, pause: float):
    """Shapes, rounds, warm-up rounds and pause from the common options; apply --threads."""
    shapes = default_shapes
    if args.shape:
        arity = len(shape_fields.split(","))
        try:
            shapes = [tuple(int(v) for v in s.split(",")) for s in args.shape]
        except ValueError:
            parser.error(f"--shape: expected {arity} comma-separated ints, got {args.shape}")
        if any(len(s) != arity or min(s) < 0 for s in shapes):
            parser.error(f"--shape: expected {arity} non-negative ints {shape_fields}, got {args.shape}")
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads: expected a positive int, got {args.threads}")
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
        threadpool_limits(args.threads, user_api="blas")
        torch.set_num_threads(args.threads)
    rounds = args.rounds or (1 if args.quick else 7)
    return shapes, rounds, 0 if args.quick else 2, 0.0 if args.quick else pause


def report(shapes, shape_title: str, time_shape, forward_flops, target: float) -> None:
    """Time every shape and print the table of medians, GFLOP/s, ratios and the verdicts.

    ``time_shape(shape)`` returns :func:`interleaved_times`'s dictionary; ``forward_flops(shape)``
    the nominal operations of one forward pass (the backward pass counts twice that).
    """
    width = max(len(shape_title), *(len(str(s)) for s in shapes)) + 2
    header = (f"{shape_title:<{width}} {'pass':<8} {'dlbook ms':>10} {'torch ms':>10} "
              f"{'dlbook GF/s':>12} {'torch GF/s':>11} {'ratio':>6}  {'spread':>15}")
    print(header)
    print("-" * len(header))
    verdicts = []
    for shape in shapes:
        times = time_shape(shape)
        flops_fwd = forward_flops(shape)
        for kind, flops in (("fwd", flops_fwd), ("fwd+bwd", 3 * flops_fwd)):
            samples = times[f"dlbook {kind}"]
            ours, ref = np.median(samples), np.median(times[f"torch {kind}"])
            q = np.percentile(samples, [25, 75]) if len(samples) >= 4 else None
            spread = f"{q[0] * 1e3:.2f}-{q[1] * 1e3:.2f} ms" if q is not None else "-"
            print(f"{str(shape):<{width}} {kind:<8} {ours * 1e3:>10.2f} {ref * 1e3:>10.2f} "
                  f"{flops / ours / 1e9:>12.1f} {flops / ref / 1e9:>11.1f} {ours / ref:>6.2f}  "
                  f"{spread:>15}")
        verdicts.append((shape, ours / ref))  # the last pass: forward + backward
    print("\nspread: interquartile range of dlbook's times (other load on the machine widens it)")
    for shape, ratio in verdicts:
        verdict = "within" if ratio <= target else "NOT within"
        print(f"{shape}: dlbook fwd+bwd is {ratio:.2f}x torch's time, {verdict} the "
              f"{target:g}x target")
    print("load average at the end: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
