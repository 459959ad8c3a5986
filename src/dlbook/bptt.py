"""Truncated backpropagation through time: long sequences in chunks of k steps.

Full BPTT through T steps keeps T steps of caches and multiplies T Jacobians. Truncated BPTT
runs the sequence in chunks of ``k`` steps: each chunk starts from the state the previous
chunk ended in (the forward pass is the same as over the whole sequence), but the gradient
stops at the chunk's start (no gradient is sent into the previous chunk). In torch this is the
``h = h.detach()`` between chunks of a training loop. The gradient of each chunk's loss then
reaches back at most k steps; the parameter gradients are the sum over chunks.

With k >= T there is one chunk and the result is full BPTT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from dlbook._recurrent import StackedRecurrent
from dlbook._validate import as_array, check_ndim

__all__ = ["truncated_bptt", "TBPTTResult"]


@dataclass
class TBPTTResult:
    """What :func:`truncated_bptt` returns."""

    loss: float  # the sum of the chunks' losses
    out: np.ndarray  # (T, N, H) the layer's output over the whole sequence
    state: object  # the final state: h_n, or (h_n, c_n) for an LSTM
    grads: dict[str, np.ndarray]  # name -> gradient summed over the chunks


def truncated_bptt(layer: StackedRecurrent, x: np.ndarray, k: int,
                   loss_fn: Callable[[np.ndarray, int], tuple[float, np.ndarray]],
                   hx=None) -> TBPTTResult:
    """Forward the whole sequence chunk by chunk, and backpropagate each chunk within itself.

    For chunks [s, s + k) (the last one may be shorter):

        out_c, state = layer(x[s:s+k], state)          the state carries over
        loss_c, dout_c = loss_fn(out_c, s)
        layer.backward(dout_c)                          no gradient on the chunk's final state,
                                                        and the one on its initial state is dropped

    Args:
        layer: a unidirectional :class:`~dlbook.rnn.RNN`, :class:`~dlbook.gru.GRU` or
            :class:`~dlbook.lstm.LSTM` (a reverse direction would need the future).
        x: (T, N, D) the whole sequence.
        k: chunk length, k >= 1 (k >= T is full BPTT).
        loss_fn: ``loss_fn(out_chunk, start) -> (loss, dloss/dout_chunk)``; ``start`` is the
            chunk's first time index, to find its targets.
        hx: initial state as ``layer`` takes it (None: zeros).
    Returns:
        :class:`TBPTTResult`; ``layer.grads`` is also set to the summed gradients, ready for an
        optimizer step. Equals torch with ``.detach()`` on the state at every chunk boundary.
    """
    if not isinstance(layer, StackedRecurrent):
        raise ValueError(f"layer: expected a dlbook RNN, GRU or LSTM, got {type(layer).__name__}")
    if layer.bidirectional:
        raise ValueError("layer: truncated BPTT needs a unidirectional layer "
                         "(bidirectional=False); the reverse direction reads the future")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: expected a positive int (chunk length), got {k!r}")
    x = as_array(x, "x")
    check_ndim(x, 3, "x", "(T, N, D)")
    total_loss = 0.0
    grads: dict[str, np.ndarray] = {}
    outs = []
    state = hx
    for start in range(0, x.shape[0], k):
        out, state = layer(x[start:start + k], state)
        loss, dout = loss_fn(out, start)
        layer.backward(dout)  # the cut: nothing flows into the previous chunk
        total_loss += float(loss)
        for name, grad in layer.grads.items():
            grads[name] = grads[name] + grad if name in grads else grad.copy()
        outs.append(out)
    layer.grads = {name: grad.copy() for name, grad in grads.items()}
    return TBPTTResult(total_loss, np.concatenate(outs, axis=0), state, grads)
