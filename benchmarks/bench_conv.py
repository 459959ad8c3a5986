"""Time dlbook's convolution (forward + backward) against PyTorch's, in float32 on the CPU.

    .venv/bin/python benchmarks/bench_conv.py            # the full run (`make bench`)
    .venv/bin/python benchmarks/bench_conv.py --quick    # a few repetitions: a smoke test

For each shape (N, C, H, W, F, K, pad), stride 1, both libraries run in this one process, on the
same float32 data, interleaved in short blocks: every round runs dlbook forward, torch forward,
dlbook forward + backward and torch forward + backward, each as a block of UNTIMED + BLOCK calls,
alternating which library goes first, so that load from other processes on the machine hits
both alike. The table reports the median over all timed calls.

Each block starts with a pause of PAUSE seconds and UNTIMED untimed calls. Both libraries keep a
pool of worker threads that stay busy-waiting for a while after each call (OpenBLAS's under numpy
for about 0.1 s, OpenMP's under torch); without the pause they compete for the two cores with the
other library's threads, and the first calls after a switch pay for waking threads and refilling
caches (torch needs a few calls to reach its steady speed). Measured here, these effects made one
library or the other several times slower, depending on which ran before (torch's forward pass at
the first shape went from 1 ms to 6 ms right after dlbook's calls). A training loop calls one
library over and over, which is what the timed calls measure.

Memory allocation matters too. Freshly allocated memory costs a page fault per 4 kB page on first
use, and by default glibc returns large freed blocks to the system, so a library that allocates
its outputs and temporaries anew on every call pays those faults every time. dlbook keeps its
scratch buffers between calls and allocates only its results (and the padded input) anew;
torch allocates its temporaries per call too. With ``--malloc-no-trim`` glibc keeps freed memory
for reuse, as a long-running process such as a notebook kernel usually ends up doing: on the
machine this was written on that made torch markedly faster (about 3 ms instead of 5-6 ms for
the first shape, 38 ms instead of 50 ms for the second) and dlbook a little faster, so dlbook's
ratios are larger in that mode. The default run measures both libraries as a fresh Python
process runs them; report both when comparing.

Both libraries use all cores by default: torch its own thread pool; dlbook worker threads, one
per core, each with numpy's OpenBLAS held to one thread (``dlbook._parallel``). ``--threads N``
limits numpy's BLAS and torch to N threads; at N = 1 dlbook runs on the caller's thread alone.

* dlbook: ``conv2d_forward`` then ``conv2d_backward`` (dx, dw, db).
* torch: ``torch.nn.functional.conv2d`` then ``out.backward(dout)`` through autograd (dx, dw, db).

GFLOP/s counts the nominal work, 2*N*F*OH*OW*C*K*K floating-point operations for the forward pass
and twice that for the backward pass (dx and dw), whatever each library actually does.

Before timing, each shape's results are compared with torch's (float32 tolerances), so the
benchmark never times a wrong answer. This is a benchmark, not a test: it prints, it does not
fail on slow timings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dlbook.conv import conv2d_backward, conv2d_forward

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness, beside this script
from _harness import add_common_options, environment, interleaved_times, report, setup  # noqa: E402

SHAPES = [  # (N, C, H, W, F, K, pad), stride 1
    (64, 16, 16, 16, 32, 3, 1),
    (32, 64, 32, 32, 64, 3, 1),
]
TARGET_RATIO = 2.0
UNTIMED = 2  # calls at the start of each block that are not timed
BLOCK = 5  # timed calls per block
PAUSE = 0.3  # seconds of sleep before each block


def malloc_no_trim() -> None:
    """Make glibc's malloc keep freed memory for reuse (mmap and trim thresholds of 1 GiB)."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    if not (libc.mallopt(m_mmap_threshold, 2**30) == 1 and libc.mallopt(m_trim_threshold, 2**30) == 1):
        raise SystemExit("--malloc-no-trim: mallopt failed (glibc only)")


def make_problem(shape, seed: int = 0):
    """float32 inputs for one shape, as numpy arrays and as torch tensors sharing their memory."""
    n, c, h, w, f, k, pad = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    wt = (rng.standard_normal((f, c, k, k), dtype=np.float32) / np.sqrt(c * k * k)).astype(np.float32)
    b = rng.standard_normal(f, dtype=np.float32)
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    dout = rng.standard_normal((n, f, oh, ow), dtype=np.float32)
    return x, wt, b, dout


def check_agreement(shape) -> float:
    """Largest |dlbook - torch| relative to the torch value's scale, over out, dx, dw, db."""
    *_, pad = shape
    x, w, b, dout = make_problem(shape)
    out, cache = conv2d_forward(x, w, b, 1, pad)
    dx, dw, db = conv2d_backward(dout, cache)
    xt, wt, bt = (torch.from_numpy(a).requires_grad_(True) for a in (x, w, b))
    out_t = F.conv2d(xt, wt, bt, padding=pad)
    out_t.backward(torch.from_numpy(dout))
    worst = 0.0
    for ours, ref in ((out, out_t.detach()), (dx, xt.grad), (dw, wt.grad), (db, bt.grad)):
        ref = ref.numpy()
        assert ours.dtype == np.float32, f"dlbook returned {ours.dtype}, expected float32"
        worst = max(worst, float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref))))
    if worst > 1e-4:
        raise SystemExit(f"dlbook and torch disagree at {shape}: relative error {worst:.1e}")
    return worst


def time_shape(shape, rounds: int, warmup: int, pause: float = PAUSE, untimed: int = UNTIMED,
               block: int = BLOCK) -> dict[str, list[float]]:
    """Interleaved timings in seconds: {'dlbook fwd', 'torch fwd', 'dlbook fwd+bwd', 'torch fwd+bwd'}.

    Each of ``warmup + rounds`` rounds runs, for each pass and library, ``pause`` seconds of sleep,
    ``untimed`` calls and ``block`` timed calls (the timings of warm-up rounds are dropped).
    """
    *_, pad = shape
    x, w, b, dout = make_problem(shape)
    xt, wt, bt = (torch.from_numpy(a).requires_grad_(True) for a in (x, w, b))
    dout_t = torch.from_numpy(dout)

    def ours_fwd():
        conv2d_forward(x, w, b, 1, pad)

    def ours_fwd_bwd():
        out, cache = conv2d_forward(x, w, b, 1, pad)
        conv2d_backward(dout, cache)

    def torch_fwd():
        with torch.no_grad():
            F.conv2d(xt, wt, bt, padding=pad)

    def torch_fwd_bwd():
        xt.grad = wt.grad = bt.grad = None
        F.conv2d(xt, wt, bt, padding=pad).backward(dout_t)

    pairs = [("dlbook fwd", ours_fwd, "torch fwd", torch_fwd),
             ("dlbook fwd+bwd", ours_fwd_bwd, "torch fwd+bwd", torch_fwd_bwd)]
    return interleaved_times(pairs, rounds=rounds, warmup=warmup, pause=pause, untimed=untimed,
                             block=block)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(parser, "N,C,H,W,F,K,PAD")
    parser.add_argument("--malloc-no-trim", action="store_true",
                        help="tell glibc never to return freed memory to the system (see the docstring)")
    args = parser.parse_args(argv)
    shapes, rounds, warmup, pause = setup(parser, args, SHAPES, "N,C,H,W,F,K,PAD", PAUSE)
    if args.malloc_no_trim:
        malloc_no_trim()

    print(environment())
    print(f"float32, stride 1, {rounds} interleaved rounds after {warmup} warm-up round(s); each "
          f"round, per library and pass: {pause:g} s pause, {UNTIMED} untimed calls, {BLOCK} timed "
          f"calls; medians; ratio = dlbook time / torch time (target: fwd+bwd ratio <= "
          f"{TARGET_RATIO:g}); memory allocator: "
          f"{'glibc, freed memory kept (--malloc-no-trim)' if args.malloc_no_trim else 'default'}\n")

    def measure(shape):
        check_agreement(shape)
        return time_shape(shape, rounds, warmup, pause)

    def forward_flops(shape):
        n, c, h, w, f, k, pad = shape
        return 2.0 * n * f * (h + 2 * pad - k + 1) * (w + 2 * pad - k + 1) * c * k * k

    report(shapes, "(N, C, H, W, F, K, pad)", measure, forward_flops, TARGET_RATIO)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
