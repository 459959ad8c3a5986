"""Time dlbook's LSTM layer (forward + backward) against PyTorch's, in float32 on the CPU.

    .venv/bin/python benchmarks/bench_lstm.py            # the full run (`make bench`)
    .venv/bin/python benchmarks/bench_lstm.py --quick    # a few repetitions: a smoke test

For each shape (T, N, D, H), one layer, unidirectional, both libraries run in this one process
on the same float32 data, interleaved in short blocks exactly as ``bench_conv.py`` does (read
its docstring for why): every round runs dlbook forward, torch forward, dlbook forward +
backward and torch forward + backward, each as a block of a pause, UNTIMED untimed calls and
BLOCK timed calls, alternating which library goes first. The table reports medians over all
timed calls of the timed rounds.

* dlbook: ``dlbook.lstm.LSTM`` (its tuned path ``dlbook._lstm_fast``): ``forward(x)`` then
  ``backward(dout)`` (dx and the four parameter gradients).
* torch: ``torch.nn.LSTM``: ``forward(x)`` then ``out.backward(dout)`` through autograd (dx and
  the four parameter gradients); the forward-only pass runs under ``torch.no_grad()``.

On an x86 CPU torch's float32 LSTM runs on oneDNN's fused RNN kernels, forward and backward
(``torch mkldnn: True`` in the header): a few large matrix products over all four gates and
the whole batch, with the elementwise gate work fused into them. ``--torch-no-mkldnn`` turns
them off, so that torch runs its own ATen path (one product per step and per direction, the
gate arithmetic as separate operations), the same kind of work dlbook's numpy code does.

Both libraries use every core by default: torch its own thread pool; dlbook worker threads, one
per core with numpy's BLAS held to one thread each, for the large products before and after the
time loops, and for the loops themselves when the batch and hidden size are large enough
(``dlbook._lstm_fast``; otherwise the loops run on one thread). ``--threads N`` limits numpy's
BLAS and torch to N threads; at N = 1 dlbook runs on the caller's thread alone.

GFLOP/s counts the nominal work of the matrix products, 2*T*N*4H*(D+H) floating-point operations
for the forward pass and twice that for the backward pass, whatever each library actually does.

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

from dlbook.lstm import LSTM

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness, beside this script
from _harness import add_common_options, environment, interleaved_times, report, setup  # noqa: E402

SHAPES = [  # (T, N, D, H)
    (32, 32, 64, 128),
    (64, 16, 128, 256),
]
TARGET_RATIO = 1.5
UNTIMED = 2  # calls at the start of each block that are not timed
BLOCK = 5  # timed calls per block
PAUSE = 0.3  # seconds of sleep before each block


def make_problem(shape, seed: int = 0):
    """A float32 dlbook LSTM, its torch twin with the same weights, an input and a ``dout``."""
    steps, batch, features, hidden = shape
    rng = np.random.default_rng(seed)
    ours = LSTM(features, hidden, rng=rng, dtype=np.float32)
    twin = torch.nn.LSTM(features, hidden, dtype=torch.float32)
    with torch.no_grad():
        for name, p in twin.named_parameters():
            p.copy_(torch.from_numpy(ours.params[name]))
    x = rng.standard_normal((steps, batch, features), dtype=np.float32)
    dout = rng.standard_normal((steps, batch, hidden), dtype=np.float32)
    return ours, twin, x, dout


def check_agreement(shape) -> float:
    """Largest |dlbook - torch| relative to the torch value's scale, over out, dx and the grads."""
    ours, twin, x, dout = make_problem(shape)
    out, _ = ours(x)
    dx = ours.backward(dout)
    x_t = torch.from_numpy(x).requires_grad_(True)
    out_t, _ = twin(x_t)
    out_t.backward(torch.from_numpy(dout))
    pairs = [(out, out_t.detach()), (dx, x_t.grad)]
    pairs += [(ours.grads[name], p.grad) for name, p in twin.named_parameters()]
    worst = 0.0
    for mine, ref in pairs:
        ref = ref.numpy()
        assert mine.dtype == np.float32, f"dlbook returned {mine.dtype}, expected float32"
        scale = max(float(np.max(np.abs(ref))), 1e-30)  # a gradient can be all zeros (h0 = 0)
        worst = max(worst, float(np.max(np.abs(mine - ref))) / scale)
    if worst > 1e-4:
        raise SystemExit(f"dlbook and torch disagree at {shape}: relative error {worst:.1e}")
    return worst


def time_shape(shape, rounds: int, warmup: int, pause: float = PAUSE, untimed: int = UNTIMED,
               block: int = BLOCK) -> dict[str, list[float]]:
    """Interleaved timings in seconds, keyed 'dlbook fwd', 'torch fwd', 'dlbook fwd+bwd', ....

    Each of ``warmup + rounds`` rounds runs, for each pass and library, ``pause`` seconds of
    sleep, ``untimed`` calls and ``block`` timed calls (the warm-up rounds' timings are dropped).
    """
    ours, twin, x, dout = make_problem(shape)
    x_t = torch.from_numpy(x).requires_grad_(True)
    dout_t = torch.from_numpy(dout)

    def ours_fwd():
        ours(x)

    def ours_fwd_bwd():
        ours(x)
        ours.backward(dout)

    def torch_fwd():
        with torch.no_grad():
            twin(x_t)

    def torch_fwd_bwd():
        x_t.grad = None
        twin.zero_grad(set_to_none=True)
        out, _ = twin(x_t)
        out.backward(dout_t)

    pairs = [("dlbook fwd", ours_fwd, "torch fwd", torch_fwd),
             ("dlbook fwd+bwd", ours_fwd_bwd, "torch fwd+bwd", torch_fwd_bwd)]
    return interleaved_times(pairs, rounds=rounds, warmup=warmup, pause=pause, untimed=untimed,
                             block=block)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(parser, "T,N,D,H")
    parser.add_argument("--torch-no-mkldnn", action="store_true",
                        help="turn off torch's oneDNN (mkldnn) LSTM kernels: time its own ATen path")
    args = parser.parse_args(argv)
    shapes, rounds, warmup, pause = setup(parser, args, SHAPES, "T,N,D,H", PAUSE)
    if any(min(s) < 1 for s in shapes):
        parser.error(f"--shape: expected four positive ints T,N,D,H, got {args.shape}")
    if args.torch_no_mkldnn:
        torch.backends.mkldnn.enabled = False

    print(environment())
    from dlbook import _lstm_fast  # which time loops dlbook's tuned path runs (numba: optional)

    compiled = _lstm_fast._compiled()
    print("dlbook LSTM loops: " + (f"compiled, numba {compiled.numba.__version__} (its BLAS: "
                                   "scipy's OpenBLAS, one thread per part)" if compiled else
                                   "numpy"))
    print(f"float32, one unidirectional layer, {rounds} interleaved rounds after {warmup} warm-up "
          f"round(s); each round, per library and pass: {pause:g} s pause, {UNTIMED} untimed "
          f"calls, {BLOCK} timed calls; medians; ratio = dlbook time / torch time (target: "
          f"fwd+bwd ratio <= {TARGET_RATIO:g})\n")

    def measure(shape):
        check_agreement(shape)
        return time_shape(shape, rounds, warmup, pause)

    def forward_flops(shape):
        steps, batch, features, hidden = shape
        return 2.0 * steps * batch * 4 * hidden * (features + hidden)

    report(shapes, "(T, N, D, H)", measure, forward_flops, TARGET_RATIO)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
