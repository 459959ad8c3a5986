"""dlbook.lstm against torch.nn.LSTM in float64; the tuned path against the readable one."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import TIGHT
from dlbook import _lstm_fast
from dlbook.gradcheck import GradientCheckError, check_gradients
from dlbook.lstm import LSTM, lstm_backward, lstm_forward, lstm_step_backward, lstm_step_forward
from recurrent_oracle import layer_params, random_weights, torch_recurrent

try:
    import numba  # noqa: F401  (optional: it compiles the tuned path's time loops)
    HAVE_NUMBA = True
except ImportError:
    HAVE_NUMBA = False

SHAPES = [(5, 3, 4, 6), (1, 2, 3, 4), (4, 1, 2, 3), (1, 1, 1, 1)]  # (T, N, D, H)


@pytest.fixture(params=["numpy", pytest.param("numba", marks=pytest.mark.skipif(
    not HAVE_NUMBA, reason="numba is not installed"))])
def fast_path(request, monkeypatch):
    """The tuned path's loops in numpy, and compiled by numba when it is installed."""
    monkeypatch.setattr(_lstm_fast, "USE_NUMBA", request.param == "numba")
    return request.param


@pytest.fixture(autouse=True)
def split_regardless_of_load(monkeypatch):
    """The compiled loops split in two parts whenever threads and size allow, however busy the
    machine is (by default they stop splitting for a while after a split call whose parts
    waited long at their barriers)."""
    monkeypatch.setattr(_lstm_fast, "FORCE_PARTS", 2)


def test_parts_split_unless_a_recent_split_waited_long(monkeypatch):
    from dlbook import _parallel

    monkeypatch.setattr(_lstm_fast, "FORCE_PARTS", None)
    monkeypatch.setattr(_parallel, "available_threads", lambda: 2)
    monkeypatch.setattr(_lstm_fast, "_split_state", {"off_until": 0.0, "backoff": 0.5})
    clock = [100.0]
    monkeypatch.setattr(_lstm_fast.time, "monotonic", lambda: clock[0])
    assert _lstm_fast._parts(32, 128).tolist() == [0, 64, 128]
    assert _lstm_fast._parts(1, 2).tolist() == [0, 2]  # too little work per step to split
    _lstm_fast._record_split(0.002, 0.0125)  # brief hiccups: still split
    _lstm_fast._record_split(0.0015, 0.003)  # half a short call, but one hiccup: still split
    assert len(_lstm_fast._parts(32, 128)) == 3
    # Negative case: a split call whose parts waited long (another program had a core).
    _lstm_fast._record_split(0.01, 0.025)
    assert _lstm_fast._parts(32, 128).tolist() == [0, 128]
    clock[0] += 0.6  # the back-off is over: one call tries again, and meets the load again
    assert len(_lstm_fast._parts(32, 128)) == 3
    _lstm_fast._record_split(0.1, 0.2)
    clock[0] += 0.6
    assert len(_lstm_fast._parts(32, 128)) == 2  # twice as long this time (1 s)
    clock[0] += 0.6
    assert len(_lstm_fast._parts(32, 128)) == 3
    _lstm_fast._record_split(0.0, 0.0125)  # a clean split call: the back-off starts from 0.5 s
    assert _lstm_fast._split_state["backoff"] == _lstm_fast._BACKOFF
    monkeypatch.setattr(_lstm_fast, "FORCE_PARTS", 1)
    assert _lstm_fast._parts(32, 128).tolist() == [0, 128]


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed")
def test_compiled_split_calls_report_long_waits(rng, monkeypatch):
    # A split call adds up its parts' waits past the spin at the barrier. One part held up for
    # about a millisecond at every step (as by another program taking its core) is counted;
    # the time goes to the split rule, which then stops splitting.
    import numba

    from dlbook import _lstm_numba, _parallel

    monkeypatch.setattr(_lstm_fast, "USE_NUMBA", True)
    monkeypatch.setattr(_parallel, "available_threads", lambda: 2)
    monkeypatch.setattr(_lstm_fast, "_split_state", {"off_until": 0.0, "backoff": 0.5})
    recorded = []
    monkeypatch.setattr(_lstm_fast, "_record_split", lambda waited, elapsed: recorded.append(
        (waited, elapsed)))

    @numba.njit(nogil=True)
    def slow_part(part, bounds, sync, steps, spins):
        for _ in range(steps):
            if part == 1:  # a late part: spin at least as long as the barrier's own spin
                count = 0
                for _ in range(spins):
                    count += _lstm_numba._atomic_load(sync, 0)
            if _lstm_numba._barrier(sync, 2):
                return

    def call(spins):
        sync = np.zeros(_lstm_numba.SYNC_WORDS, dtype=np.int64)
        _lstm_fast._run_parts(_lstm_numba, slow_part, np.array([0, 1, 2]), sync, sync, 6, spins)
        return recorded[-1]

    call(0)  # the worker thread started and awake
    waited, elapsed = call(100 * _lstm_numba._SPINS)  # about a millisecond late at each step
    # part 0 waited through most of the call (both parts' waits count: up to twice the call)
    assert 0.5 * elapsed < waited <= 2 * elapsed
    assert waited >= max(_lstm_fast._WAIT_SHARE * elapsed, _lstm_fast._WAIT_MIN)
    # Negative case: parts that keep pace wait less than the rule's minimum (the least of a few
    # calls: another program may hold a core now and then).
    assert min(call(0)[0] for _ in range(10)) < _lstm_fast._WAIT_MIN


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("failing", [0, 1])
def test_compiled_part_error_releases_the_other_part(failing, monkeypatch):
    # A part that raises before the barrier: the other part, waiting there, is released (it
    # returns instead of waiting for good), and the caller gets the error.
    import threading

    import numba

    from dlbook import _lstm_numba

    @numba.njit(nogil=True)
    def failing_part(part, bounds, sync, bad, arrived):
        if part == bad:
            raise ValueError("part failed")
        if _lstm_numba._barrier(sync, 2):
            arrived[part] = -1  # released by the abort
            return
        arrived[part] = 1

    sync = np.zeros(_lstm_numba.SYNC_WORDS, dtype=np.int64)
    arrived = np.zeros(2, dtype=np.int64)
    errors = []

    def call():
        try:
            _lstm_fast._run_parts(_lstm_numba, failing_part, np.array([0, 1, 2]), sync, sync,
                                  failing, arrived)
        except ValueError as err:
            errors.append(err)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the call hung at the barrier"
    assert [str(e) for e in errors] == ["part failed"]
    assert arrived[1 - failing] == -1 and sync[3] == 1
    # Negative case: without the abort, the part at the barrier would still be waiting.
    sync[:] = 0
    waiting = threading.Thread(target=failing_part, args=(0, None, sync, 1, arrived), daemon=True)
    waiting.start()
    waiting.join(timeout=0.5)
    assert waiting.is_alive()
    _lstm_numba.abort(sync)
    waiting.join(timeout=60)
    assert not waiting.is_alive()


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed")
def test_compiled_interrupted_caller_frees_the_worker(rng):
    # A Ctrl-C in the caller after the worker was given its part but before the caller's own
    # part began: the worker's part is released from its barrier, the interrupt reaches the
    # caller, and the next split call works (before, the worker waited at the barrier for good
    # and every later split call waited for it).
    import numba

    from dlbook import _lstm_numba

    @numba.njit(nogil=True)
    def two_steps(part, bounds, sync, arrived):
        for _ in range(2):
            if _lstm_numba._barrier(sync, 2):
                arrived[part] = -1
                return
        arrived[part] = 1

    worker = _lstm_fast._part_worker(_lstm_numba)
    bounds = np.array([0, 1, 2])
    for interrupted in (True, False, True, False):
        sync = np.zeros(_lstm_numba.SYNC_WORDS, dtype=np.int64)
        arrived = np.zeros(2, dtype=np.int64)

        def part0():
            if interrupted:
                raise KeyboardInterrupt
            two_steps(0, bounds, sync, arrived)

        with worker.busy:
            if interrupted:
                with pytest.raises(KeyboardInterrupt):
                    worker.run(lambda: two_steps(1, bounds, sync, arrived), part0,
                               lambda: _lstm_numba.abort(sync))
                assert arrived.tolist() == [0, -1]  # released, not finished
            else:
                worker.run(lambda: two_steps(1, bounds, sync, arrived), part0,
                           lambda: _lstm_numba.abort(sync))
                assert arrived.tolist() == [1, 1]  # negative case: no abort, both finished


@pytest.fixture
def numpy_loops(monkeypatch):
    """The tuned path's numpy loops (tests of their own machinery: chunks, helper thread)."""
    monkeypatch.setattr(_lstm_fast, "USE_NUMBA", False)
NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def problem(rng, steps, batch, features, hidden, dtype=np.float64):
    """Inputs, states, weights and random upstream gradients for one layer."""
    x = rng.standard_normal((steps, batch, features))
    h0, c0 = rng.standard_normal((batch, hidden)), rng.standard_normal((batch, hidden))
    weights = random_weights(rng, 4, features, hidden)
    dout = rng.standard_normal((steps, batch, hidden))
    dh_n, dc_n = rng.standard_normal((batch, hidden)), rng.standard_normal((batch, hidden))
    cast = lambda a: a.astype(dtype)  # noqa: E731
    return (cast(x), cast(h0), cast(c0), [cast(w) for w in weights], cast(dout), cast(dh_n),
            cast(dc_n))


@pytest.mark.parametrize("functions", ["readable", "fast"])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_backward_match_torch(shape, functions, rng, fast_path):
    x, h0, c0, weights, dout, dh_n, dc_n = problem(rng, *shape)
    module = _lstm_fast if functions == "fast" else None
    forward = module.lstm_forward if module else lstm_forward
    backward = module.lstm_backward if module else lstm_backward
    out, (h_n, c_n), cache = forward(x, h0, c0, *weights)
    dx, dh0, dc0, *dweights = backward(dout, cache, dh_n, dc_n)
    out_t, (h_n_t, c_n_t), dx_t, (dh0_t, dc0_t), grads = torch_recurrent(
        "LSTM", layer_params(weights), x, (h0[None], c0[None]), dout, (dh_n[None], dc_n[None]))
    np.testing.assert_allclose(out, out_t, **TIGHT)
    np.testing.assert_allclose(h_n, h_n_t[0], **TIGHT)
    np.testing.assert_allclose(c_n, c_n_t[0], **TIGHT)
    np.testing.assert_allclose(dx, dx_t, **TIGHT)
    np.testing.assert_allclose(dh0, dh0_t[0], **TIGHT)
    np.testing.assert_allclose(dc0, dc0_t[0], **TIGHT)
    for name, grad in zip(NAMES, dweights):
        np.testing.assert_allclose(grad, grads[name], **TIGHT, err_msg=name)


@pytest.mark.parametrize("drop", ["dh_n", "dc_n"])
def test_ignoring_a_final_state_gradient_is_caught(drop, rng):
    # Negative case: leave out dh_n or dc_n and dweight_hh no longer matches torch.
    x, h0, c0, weights, dout, dh_n, dc_n = problem(rng, 4, 2, 3, 5)
    _, _, cache = lstm_forward(x, h0, c0, *weights)
    kept = {"dh_n": None if drop == "dh_n" else dh_n, "dc_n": None if drop == "dc_n" else dc_n}
    grads_ours = lstm_backward(dout, cache, **kept)
    *_, grads = torch_recurrent("LSTM", layer_params(weights), x, (h0[None], c0[None]), dout,
                                (dh_n[None], dc_n[None]))
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(grads_ours[4], grads["weight_hh_l0"], **TIGHT)


def test_swapped_gate_order_is_caught(rng):
    # Negative case: with f and i swapped (a plausible slip), the output no longer matches torch.
    x, h0, c0, weights, dout, dh_n, dc_n = problem(rng, 3, 2, 3, 4)
    hidden = 4
    swap = np.r_[hidden:2 * hidden, 0:hidden, 2 * hidden:4 * hidden]
    swapped = [w[swap] for w in weights]
    out, _, _ = lstm_forward(x, h0, c0, *swapped)
    out_t, *_ = torch_recurrent("LSTM", layer_params(weights), x, (h0[None], c0[None]), dout,
                                (dh_n[None], dc_n[None]))
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(out, out_t, **TIGHT)


def test_step_central_differences(rng):
    x, h_prev, c_prev = (rng.standard_normal(s) for s in ((3, 4), (3, 5), (3, 5)))
    weights = random_weights(rng, 4, 4, 5)
    h_next, c_next, cache = lstm_step_forward(x, h_prev, c_prev, *weights)
    dh_next, dc_next = rng.standard_normal(h_next.shape), rng.standard_normal(c_next.shape)
    grads = lstm_step_backward(dh_next, dc_next, cache)
    names = ("x", "h_prev", "c_prev", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
    inputs = dict(zip(names, (x, h_prev, c_prev, *weights)))

    def both_states(**kw):  # L = sum(h * dh_next) + sum(c * dc_next) as one weighted output
        h, c, _ = lstm_step_forward(**kw)
        return np.stack([h, c])

    dboth = np.stack([dh_next, dc_next])
    check_gradients(both_states, inputs, dict(zip(names, grads)), dboth)
    wrong = dict(zip(names, grads))
    wrong["c_prev"] = grads[2] * 1.001  # a slightly wrong forget-gate path
    with pytest.raises(GradientCheckError, match="c_prev"):
        check_gradients(both_states, inputs, wrong, dboth)


def test_sequence_central_differences(rng):
    x, h0, c0, weights, dout, dh_n, dc_n = problem(rng, 3, 2, 2, 3)
    _, _, cache = lstm_forward(x, h0, c0, *weights)
    grads = lstm_backward(dout, cache)
    names = ("x", "h0", "c0", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
    check_gradients(lambda **kw: lstm_forward(**kw)[0], dict(zip(names, (x, h0, c0, *weights))),
                    dict(zip(names, grads)), dout)


@pytest.mark.parametrize("shape", [(7, 5, 6, 9), (1, 1, 2, 3), (3, 4, 1, 1)])
def test_fast_equals_readable(shape, rng, fast_path):
    x, h0, c0, weights, dout, dh_n, dc_n = problem(rng, *shape)
    weights = [3 * w for w in weights]  # saturated gates too
    out, finals, cache = lstm_forward(x, h0, c0, *weights)
    out_f, finals_f, cache_f = _lstm_fast.lstm_forward(x, h0, c0, *weights)
    np.testing.assert_allclose(out_f, out, **TIGHT)
    for a, b in zip(finals_f, finals):
        np.testing.assert_allclose(a, b, **TIGHT)
    for a, b in zip(_lstm_fast.lstm_backward(dout, cache_f, dh_n, dc_n),
                    lstm_backward(dout, cache, dh_n, dc_n)):
        np.testing.assert_allclose(a, b, **TIGHT)


def test_fast_float32_close_to_float64(rng, fast_path):
    x, h0, c0, weights, dout, dh_n, dc_n = problem(rng, 6, 4, 5, 7)
    single = [a.astype(np.float32) for a in (x, h0, c0, *weights, dout, dh_n, dc_n)]
    x32, h32, c32, *rest = single
    w32, (dout32, dh32, dc32) = rest[:4], rest[4:]
    out32, finals32, cache32 = _lstm_fast.lstm_forward(x32, h32, c32, *w32)
    grads32 = _lstm_fast.lstm_backward(dout32, cache32, dh32, dc32)
    out64, finals64, cache64 = lstm_forward(x, h0, c0, *weights)
    grads64 = lstm_backward(dout, cache64, dh_n, dc_n)
    assert out32.dtype == np.float32 and all(g.dtype == np.float32 for g in grads32)
    for a, b in zip((out32, *finals32, *grads32), (out64, *finals64, *grads64)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())
    # Negative case: float32 rounding is visible at float64's tolerance.
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(grads32[4], grads64[4], **TIGHT)


@pytest.mark.parametrize("module", ["readable", "fast"])
def test_arguments_are_not_modified(module, rng, fast_path):
    x, h0, c0, weights, dout, dh_n, dc_n = problem(rng, 3, 2, 3, 4)
    forward, backward = ((_lstm_fast.lstm_forward, _lstm_fast.lstm_backward) if module == "fast"
                         else (lstm_forward, lstm_backward))
    args = (x, h0, c0, *weights, dout, dh_n, dc_n)
    copies = [a.copy() for a in args]
    out, (h_n, c_n), cache = forward(x, h0, c0, *weights)
    backward(dout, cache, dh_n, dc_n)
    for a, b in zip(args, copies):
        np.testing.assert_array_equal(a, b)
    # The step too: dc_next is the caller's and stays as it was.
    h1, c1, step_cache = lstm_step_forward(x[0], h0, c0, *weights)
    dc_copy = dc_n.copy()
    lstm_step_backward(dh_n, dc_n, step_cache)
    np.testing.assert_array_equal(dc_n, dc_copy)


def test_fast_outputs_are_not_the_cache(rng, fast_path):
    x, h0, c0, weights, dout, dh_n, dc_n = problem(rng, 3, 2, 3, 4)
    out, (h_n, c_n), cache = _lstm_fast.lstm_forward(x, h0, c0, *weights)
    before = _lstm_fast.lstm_backward(dout, cache, dh_n, dc_n)
    out[:] = 0.0
    h_n[:] = 0.0
    after = _lstm_fast.lstm_backward(dout, cache, dh_n, dc_n)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad, match", [
    ({"x": np.zeros((3, 3))}, "x"),
    ({"h0": np.zeros((2, 5))}, "h0"),
    ({"c0": np.zeros((1, 4))}, "c0"),
    ({"weight_ih": np.zeros((4, 3))}, "weight_ih"),
    ({"weight_hh": np.zeros((16, 5))}, "weight_hh"),
    ({"bias_ih": np.zeros(4)}, "bias_ih"),
    ({"bias_hh": np.zeros(17)}, "bias_hh"),
])
@pytest.mark.parametrize("module", ["readable", "fast"])
def test_bad_arguments_raise(bad, match, module, fast_path):
    forward = _lstm_fast.lstm_forward if module == "fast" else lstm_forward
    args = dict(x=np.zeros((3, 2, 3)), h0=np.zeros((2, 4)), c0=np.zeros((2, 4)),
                weight_ih=np.zeros((16, 3)), weight_hh=np.zeros((16, 4)), bias_ih=np.zeros(16),
                bias_hh=np.zeros(16))
    forward(**args)  # the good arguments pass
    with pytest.raises(ValueError, match=match):
        forward(**(args | bad))


@pytest.mark.parametrize("module", ["readable", "fast"])
def test_backward_bad_upstream_shapes_raise(module, fast_path):
    forward, backward = ((_lstm_fast.lstm_forward, _lstm_fast.lstm_backward) if module == "fast"
                         else (lstm_forward, lstm_backward))
    out, _, cache = forward(np.zeros((3, 2, 3)), np.zeros((2, 4)), np.zeros((2, 4)),
                            np.zeros((16, 3)), np.zeros((16, 4)), np.zeros(16), np.zeros(16))
    with pytest.raises(ValueError, match="dout"):
        backward(np.zeros((3, 2, 5)), cache)
    with pytest.raises(ValueError, match="dh_n"):
        backward(np.zeros_like(out), cache, dh_n=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="dc_n"):
        backward(np.zeros_like(out), cache, dc_n=np.zeros((2,)))


@pytest.mark.parametrize("num_layers, bidirectional, with_hx", [
    (1, False, True), (2, False, True), (2, True, True), (1, True, False), (3, True, False),
])
def test_class_matches_torch(num_layers, bidirectional, with_hx, rng, fast_path):
    steps, batch, features, hidden = 4, 3, 5, 6
    model = LSTM(features, hidden, num_layers, bidirectional=bidirectional, rng=rng)
    dirs = 2 if bidirectional else 1
    x = rng.standard_normal((steps, batch, features))
    hx = None
    if with_hx:
        hx = tuple(rng.standard_normal((num_layers * dirs, batch, hidden)) for _ in range(2))
    out, (h_n, c_n) = model(x, hx)
    dout = rng.standard_normal(out.shape)
    dh_n, dc_n = rng.standard_normal(h_n.shape), rng.standard_normal(c_n.shape)
    dx = model.backward(dout, dh_n, dc_n)
    out_t, (h_n_t, c_n_t), dx_t, dhx_t, grads = torch_recurrent(
        "LSTM", model.params, x, hx, dout, (dh_n, dc_n), num_layers=num_layers,
        bidirectional=bidirectional)
    assert out.shape == (steps, batch, dirs * hidden)
    for ours, ref in ((out, out_t), (h_n, h_n_t), (c_n, c_n_t), (dx, dx_t)):
        np.testing.assert_allclose(ours, ref, **TIGHT)
    if with_hx:
        np.testing.assert_allclose(model.dhx[0], dhx_t[0], **TIGHT)
        np.testing.assert_allclose(model.dhx[1], dhx_t[1], **TIGHT)
    assert sorted(model.grads) == sorted(grads)
    for name, grad in grads.items():
        np.testing.assert_allclose(model.grads[name], grad, **TIGHT, err_msg=name)
    if num_layers > 1:  # negative case: layers' gradients are not interchangeable
        with pytest.raises(AssertionError):
            np.testing.assert_allclose(model.grads["bias_hh_l1"], grads["bias_hh_l0"], **TIGHT)


def test_class_float32(rng, fast_path):
    model = LSTM(5, 6, num_layers=2, rng=rng, dtype=np.float32)
    x = rng.standard_normal((4, 3, 5), dtype=np.float32)
    out, (h_n, c_n) = model(x)
    dx = model.backward(rng.standard_normal(out.shape, dtype=np.float32))
    assert out.dtype == h_n.dtype == c_n.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in model.grads.values())
    params64 = {k: v.astype(np.float64) for k, v in model.params.items()}
    out_t, *_ = torch_recurrent("LSTM", params64, x.astype(np.float64), None, np.zeros(out.shape),
                                (np.zeros(h_n.shape), np.zeros(c_n.shape)), num_layers=2)
    np.testing.assert_allclose(out, out_t, rtol=1e-5, atol=1e-6)


def test_class_parameters_as_torch(rng):
    import torch

    model = LSTM(3, 5, num_layers=2, bidirectional=True, rng=rng)
    twin = torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True)
    shapes = {name: tuple(p.shape) for name, p in twin.named_parameters()}
    assert {name: p.shape for name, p in model.params.items()} == shapes
    assert model.num_parameters() == sum(p.numel() for p in twin.parameters())
    assert all(np.abs(p).max() <= 1 / np.sqrt(5) for p in model.params.values())


def test_class_bad_arguments_raise(rng, fast_path):
    model = LSTM(3, 4, rng=rng)
    with pytest.raises(ValueError, match="hx"):
        model(np.zeros((2, 5, 3)), np.zeros((1, 5, 4)))
    with pytest.raises(ValueError, match="c0"):
        model(np.zeros((2, 5, 3)), (np.zeros((1, 5, 4)), np.zeros((1, 4, 4))))
    model(np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match="dc_n"):
        model.backward(np.zeros((2, 5, 4)), None, np.zeros((2, 5, 4)))


def _fast_and_readable(x, h0, c0, weights, dout, dh_n, dc_n):
    out, finals, cache = _lstm_fast.lstm_forward(x, h0, c0, *weights)
    fast = (out, *finals, *_lstm_fast.lstm_backward(dout, cache, dh_n, dc_n))
    out, finals, cache = lstm_forward(x, h0, c0, *weights)
    return fast, (out, *finals, *lstm_backward(dout, cache, dh_n, dc_n))


@pytest.mark.parametrize("threads, beside", [(1, False), (2, False), (3, False), (2, True),
                                             (3, True)])
@pytest.mark.parametrize("shape", [(16, 5, 8, 12), (1, 3, 2, 4), (9, 1, 3, 2), (1, 1, 1, 1)])
def test_fast_threads_equal_readable(shape, threads, beside, rng, monkeypatch, fast_path):
    # Beside: the time loop runs on one worker thread while a second computes the input
    # projections ahead of it and each chunk's gradient products behind it (the weight gradients
    # a sum over chunks). Otherwise the projections and products are shared out by steps between
    # the threads before and after the loop. All equal the readable functions in float64, at odd
    # batch sizes and a single step too.
    from dlbook import _parallel

    monkeypatch.setattr(_parallel, "available_threads", lambda: threads)
    monkeypatch.setattr(_lstm_fast, "_MIN_OVERLAP_STEP_WORK", 0 if beside else float("inf"))
    x, h0, c0, weights, dout, dh_n, dc_n = problem(rng, *shape)
    fast, readable = _fast_and_readable(x, h0, c0, [2 * w for w in weights], dout, dh_n, dc_n)
    for a, b in zip(fast, readable):
        np.testing.assert_allclose(a, b, **TIGHT)


def test_fast_blocked_products_equal_readable(rng, monkeypatch, numpy_loops):
    # The per-step products in blocks of 16 weight rows (3 blocks forward, 3 backward here).
    monkeypatch.setattr(_lstm_fast, "_BLOCK_WORK", 1)
    assert len(_lstm_fast._row_blocks(np.zeros((160, 40)), np.zeros((160, 3)), 3)) == 10
    x, h0, c0, weights, dout, dh_n, dc_n = problem(rng, 5, 3, 4, 40)
    fast, readable = _fast_and_readable(x, h0, c0, weights, dout, dh_n, dc_n)
    for a, b in zip(fast, readable):
        np.testing.assert_allclose(a, b, **TIGHT)


@pytest.mark.parametrize("threads, beside", [(1, False), (2, False), (2, True)])
def test_fast_threads_float32(threads, beside, rng, monkeypatch, fast_path):
    # float32 through the threaded paths: close to the readable float64 result at float32's
    # tolerance (the weight gradients are sums of per-chunk float32 products).
    from dlbook import _parallel

    monkeypatch.setattr(_parallel, "available_threads", lambda: threads)
    monkeypatch.setattr(_lstm_fast, "_MIN_OVERLAP_STEP_WORK", 0 if beside else float("inf"))
    x, h0, c0, weights, dout, dh_n, dc_n = problem(rng, 32, 7, 16, 24)
    single = [a.astype(np.float32) for a in (x, h0, c0, *weights, dout, dh_n, dc_n)]
    fast, _ = _fast_and_readable(*single[:3], single[3:7], *single[7:])
    _, readable = _fast_and_readable(x, h0, c0, weights, dout, dh_n, dc_n)
    for a, b in zip(fast, readable):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())


@pytest.mark.parametrize("threads, beside", [(2, False), (2, True)])
def test_fast_threads_a_lost_chunk_is_caught(threads, beside, rng, monkeypatch, numpy_loops):
    # Negative case: if the products skipped the first chunk of steps, dx and the weight
    # gradients would miss those steps' terms, and the comparison above would fail.
    from dlbook import _parallel

    monkeypatch.setattr(_parallel, "available_threads", lambda: threads)
    monkeypatch.setattr(_lstm_fast, "_MIN_OVERLAP_STEP_WORK", 0 if beside else float("inf"))
    x, h0, c0, weights, dout, dh_n, dc_n = problem(rng, 16, 3, 4, 5)
    _, _, cache = _lstm_fast.lstm_forward(x, h0, c0, *weights)
    _, _, ref_cache = lstm_forward(x, h0, c0, *weights)
    ref = lstm_backward(dout, ref_cache, dh_n, dc_n)
    np.testing.assert_allclose(_lstm_fast.lstm_backward(dout, cache, dh_n, dc_n)[3], ref[3],
                               **TIGHT)
    chunks = _lstm_fast._step_chunks
    monkeypatch.setattr(_lstm_fast, "_step_chunks",
                        lambda steps, overlap: chunks(steps, overlap)[1:])
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(_lstm_fast.lstm_backward(dout, cache, dh_n, dc_n)[3], ref[3],
                                   **TIGHT)


def test_fast_pool_reuses_only_what_nobody_holds(rng, monkeypatch, fast_path):
    # Results and caches come from pooled buffers: a buffer is handed out again once every array
    # carved out of it is gone, never while the caller still holds one.
    monkeypatch.setattr(_lstm_fast, "_pool", [])
    first = _lstm_fast._pooled([(1000,), (7, 3)], np.float64)
    address = first[0].ctypes.data
    view = first[1][2:]  # a view keeps the buffer in use too
    del first
    second = _lstm_fast._pooled([(1000,), (7, 3)], np.float64)
    assert second[0].ctypes.data != address
    del view, second
    third = _lstm_fast._pooled([(900,)], np.float64)
    assert third[0].ctypes.data == address  # the first buffer, free now, again
    # Whole calls: a held result keeps its numbers while later calls run.
    x, h0, c0, weights, dout, dh_n, dc_n = problem(rng, 4, 3, 2, 5)
    out1, (h1, c1), cache1 = _lstm_fast.lstm_forward(x, h0, c0, *weights)
    kept = [a.copy() for a in (out1, h1, c1)]
    grads1 = _lstm_fast.lstm_backward(dout, cache1, dh_n, dc_n)
    kept_grads = [g.copy() for g in grads1]
    for _ in range(3):
        _, _, cache = _lstm_fast.lstm_forward(2 * x, h0, c0, *weights)
        _lstm_fast.lstm_backward(2 * dout, cache, dh_n, dc_n)
    for a, b in zip((out1, h1, c1, *grads1), (*kept, *kept_grads)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(_lstm_fast.lstm_backward(dout, cache1, dh_n, dc_n)[0], grads1[0])


def test_fast_pool_evicts_a_free_buffer_behind_a_held_one(monkeypatch):
    # Making room drops free buffers by identity: list.remove would compare the held buffer
    # before it with == (an element-wise comparison of arrays of other sizes, a ValueError).
    monkeypatch.setattr(_lstm_fast, "_pool", [])
    monkeypatch.setattr(_lstm_fast, "_POOL_MAX_BYTES", 20_000)
    held = _lstm_fast._pooled([(1000,)], np.float64)  # 8 kB, stays in use
    freed = _lstm_fast._pooled([(500,)], np.float64)  # 4 kB, then free
    freed_address = freed[0].ctypes.data
    del freed
    assert len(_lstm_fast._pool) == 2
    large = _lstm_fast._pooled([(1200,)], np.float64)  # 9.6 kB: the free 4 kB must go
    pool_addresses = [buf.ctypes.data for buf in _lstm_fast._pool]
    assert len(_lstm_fast._pool) == 2
    assert all(abs(a - freed_address) > 64 for a in pool_addresses)
    assert large[0].shape == (1200,) and held[0].shape == (1000,)
    # Negative case: the old removal by equality fails on exactly this pool.
    pool = [np.empty(8064, dtype=np.uint8), np.empty(4064, dtype=np.uint8)]
    with pytest.raises(ValueError):
        pool.remove(pool[1])


def test_benchmark_script_runs_in_quick_mode():
    import importlib.util
    import io
    from contextlib import redirect_stdout
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_lstm.py"
    spec = importlib.util.spec_from_file_location("bench_lstm", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert bench.main(["--quick", "--shape", "3,2,4,5", "--shape", "1,1,2,3"]) == 0
    text = buffer.getvalue()
    assert "torch threads:" in text and "numpy" in text
    for shape in ((3, 2, 4, 5), (1, 1, 2, 3)):
        assert f"{shape}: dlbook fwd+bwd is" in text


def test_fast_helper_thread_errors_are_raised(numpy_loops):
    # The helper thread's error reaches the caller, after the loop has finished; both run.
    seen = []
    with pytest.raises(ZeroDivisionError):
        _lstm_fast._run(True, lambda: seen.append("loop"), lambda: 1 / 0)
    assert seen == ["loop"]
    _lstm_fast._run(True, lambda: seen.append("loop"), lambda: seen.append("helper"))
    assert sorted(seen) == ["helper", "loop", "loop"]


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype, ulps", [(np.float32, 4), (np.float64, 8)])
def test_compiled_gates_match_numpy(dtype, ulps):
    # The compiled loops' own sigmoid and tanh (exp as a polynomial, so that they vectorise):
    # within a few units in the last place of float64 references, saturated and tiny inputs too
    # (exp stays a normal number: sigmoid(-100) in float32 is 1.2e-38, not 3.7e-44).
    from dlbook import _lstm_numba

    a = np.concatenate([np.linspace(-100, 100, 20001), np.linspace(-0.1, 0.1, 2001),
                        [0.0, -0.0, 1e-30, -1e-30, 700.0, -700.0]]).astype(dtype)
    sig, tanh = np.empty_like(a), np.empty_like(a)
    _lstm_numba._vector_gates(a, sig, tanh)
    wide = a.astype(np.float64)
    eps, tiny = np.finfo(dtype).eps, np.finfo(dtype).tiny
    np.testing.assert_allclose(sig, 1 / (1 + np.exp(-wide)), rtol=ulps * eps, atol=2 * tiny)
    np.testing.assert_allclose(tanh, np.tanh(wide), rtol=ulps * eps, atol=2 * tiny)
    # Negative case: without the series near 0, (1 - e)/(1 + e) loses the leading digits there.
    small = np.array([1e-6], dtype=dtype)
    e = np.exp(-2 * small)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose((1 - e) / (1 + e), np.tanh(small.astype(np.float64)),
                                   rtol=ulps * eps)


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("shape", [(6, 3, 1, 7), (5, 2, 3, 2), (2, 4, 5, 9)])
def test_compiled_uneven_parts_equal_readable(shape, rng, monkeypatch):
    # Two parts split the hidden units (unevenly for odd H) and the input features (none for
    # part 0 when D = 1); the results equal the readable functions in float64.
    from dlbook import _parallel

    monkeypatch.setattr(_lstm_fast, "USE_NUMBA", True)
    monkeypatch.setattr(_parallel, "available_threads", lambda: 2)
    monkeypatch.setattr(_lstm_fast, "_MIN_OVERLAP_STEP_WORK", 0)
    assert len(_lstm_fast._parts(shape[1], shape[3])) == 3
    x, h0, c0, weights, dout, dh_n, dc_n = problem(rng, *shape)
    fast, readable = _fast_and_readable(x, h0, c0, weights, dout, dh_n, dc_n)
    for a, b in zip(fast, readable):
        np.testing.assert_allclose(a, b, **TIGHT)
    # Negative case: a backward pass that reads the cache with one part's order (the gates of
    # all units i, f, o, g) instead of the two parts' the forward pass wrote gets wrong results.
    _, _, cache = _lstm_fast.lstm_forward(x, h0, c0, *weights)
    bounds = cache[5]
    wrong = _lstm_fast._CompiledCache((*cache[:5], bounds[[0, -1]], *cache[6:]))
    np.testing.assert_allclose(_lstm_fast.lstm_backward(dout, cache, dh_n, dc_n)[4], readable[7],
                               **TIGHT)  # dweight_hh, with the cache as it was written
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(_lstm_fast.lstm_backward(dout, wrong, dh_n, dc_n)[4],
                                   readable[7], **TIGHT)


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed")
def test_compiled_concurrent_callers_equal_readable(rng, monkeypatch):
    # Two callers at once: one runs its second part on the shared worker thread, the other on a
    # thread of its own; both results equal the readable functions.
    import threading

    from dlbook import _parallel

    monkeypatch.setattr(_lstm_fast, "USE_NUMBA", True)
    monkeypatch.setattr(_parallel, "available_threads", lambda: 2)
    monkeypatch.setattr(_lstm_fast, "_MIN_OVERLAP_STEP_WORK", 0)
    problems = [problem(rng, 12, 3, 4, 10) for _ in range(2)]
    results = [None, None]

    def run(k):
        x, h0, c0, weights, dout, dh_n, dc_n = problems[k]
        results[k] = [_fast_and_readable(x, h0, c0, weights, dout, dh_n, dc_n) for _ in range(20)]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for runs in results:
        for fast, readable in runs:
            for a, b in zip(fast, readable):
                np.testing.assert_allclose(a, b, **TIGHT)


@pytest.mark.parametrize("dtype", [np.float16, np.longdouble])
def test_fast_other_float_types_equal_readable(dtype, rng, fast_path):
    # The compiled loops exist for float32 and float64; other float types take the numpy loops.
    def cast(a):
        if isinstance(a, (tuple, list)):
            return tuple(np.asarray(w, dtype=dtype) for w in a)
        return np.asarray(a, dtype=dtype)

    x, h0, c0, weights, dout, dh_n, dc_n = (cast(a) for a in problem(rng, 3, 2, 4, 5))
    fast, readable = _fast_and_readable(x, h0, c0, weights, dout, dh_n, dc_n)
    for a, b in zip(fast, readable):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), rtol=2e-2, atol=2e-2)


def test_fast_float32_forward_float64_upstream(rng, fast_path):
    # A float64 dout for a float32 forward pass: the backward works in float64, as the
    # readable functions do (the compiled path used to raise a numba TypingError).
    x, h0, c0, weights, dout, dh_n, dc_n = problem(rng, 4, 3, 2, 5)
    f32 = [a.astype(np.float32) for a in (x, h0, c0)]
    w32 = [w.astype(np.float32) for w in weights]
    out, finals, cache = _lstm_fast.lstm_forward(*f32, *w32)
    fast = _lstm_fast.lstm_backward(dout, cache, dh_n, dc_n)
    out_r, finals_r, cache_r = lstm_forward(*f32, *w32)
    readable = lstm_backward(dout, cache_r, dh_n, dc_n)
    for a, b in zip(fast, readable):
        assert a.dtype == b.dtype == np.float64
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed")
def test_compiled_kernels_compiled_before_the_worker_gets_its_part(rng, monkeypatch):
    # A caller interrupted while numba compiles must not leave the worker's part at a barrier:
    # the kernel is compiled for the call's argument types before the worker is given its part.
    from dlbook import _parallel

    monkeypatch.setattr(_lstm_fast, "USE_NUMBA", True)
    monkeypatch.setattr(_parallel, "available_threads", lambda: 2)
    monkeypatch.setattr(_lstm_fast, "_MIN_OVERLAP_STEP_WORK", 0)
    seen = []
    original = _lstm_fast._PartWorker.run

    def run(self, part1, part0, abort):
        # the kernel and arguments that part1 (a closure made by _run_parts) calls
        names = dict(zip(part1.__code__.co_freevars,
                         (cell.cell_contents for cell in part1.__closure__)))
        kernel, arguments = names["kernel"], (1, names["bounds"], *names["args"])
        signature = tuple(numba.typeof(a) for a in arguments)
        seen.append(any(tuple(s.args) == signature for s in kernel.nopython_signatures))
        return original(self, part1, part0, abort)

    monkeypatch.setattr(_lstm_fast._PartWorker, "run", run)
    x, h0, c0, weights, dout, dh_n, dc_n = problem(rng, 3, 2, 4, 6, dtype=np.float32)
    x, h0, c0 = (a.astype(np.float32) for a in (x, h0, c0))
    weights = [w.astype(np.float32) for w in weights]
    _, _, cache = _lstm_fast.lstm_forward(x, h0, c0, *weights)
    _lstm_fast.lstm_backward(dout.astype(np.float32), cache, dh_n.astype(np.float32),
                             dc_n.astype(np.float32))
    assert seen and all(seen)
    # Negative case: a kernel never compiled for these types is reported as such.
    fresh = numba.njit(lambda a: a + 1)
    assert not any(tuple(s.args) == (numba.typeof(1.5),) for s in fresh.nopython_signatures)


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transpose_a, transpose_b", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_compiled_gemm_equals_numpy(dtype, transpose_a, transpose_b, rng):
    # The compiled loops' direct BLAS call: row-major C = op(A) op(B) + beta C on matrices inside
    # larger ones (leading dimensions longer than the rows), in blocks as the loops use it.
    from dlbook import _lstm_numba

    m, n, k = 7, 5, 9
    a_big = rng.standard_normal((20, 30)).astype(dtype)
    b_big = rng.standard_normal((20, 30)).astype(dtype)
    a = a_big[2:2 + k, 3:3 + m] if transpose_a else a_big[2:2 + m, 3:3 + k]
    b = b_big[1:1 + n, 4:4 + k] if transpose_b else b_big[1:1 + k, 4:4 + n]
    op_a, op_b = (a.T if transpose_a else a), (b.T if transpose_b else b)
    c_big = rng.standard_normal((12, 16)).astype(dtype)
    c_before = c_big.copy()
    scratch = _lstm_numba.gemm_scratch(np.dtype(dtype))
    fn = _lstm_numba.GEMM[np.dtype(dtype)]
    _lstm_numba._gemm(fn, scratch, transpose_a, transpose_b, m, n, k, a, 30, b, 30, 0.5,
                      c_big[1:], 16)
    expected = c_before.copy()
    expected[1:1 + m, :n] = op_a @ op_b + 0.5 * c_before[1:1 + m, :n]
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else TIGHT
    np.testing.assert_allclose(c_big, expected, **tol)  # nothing outside C changed either
    if not transpose_a and not transpose_b:
        out = np.zeros((m, n), dtype=dtype)
        _lstm_numba._blocked_gemm(fn, scratch, m, n, k, a, 30, b, 30, out, n, 2, 4)
        np.testing.assert_allclose(out, op_a @ op_b, **tol)
    # Negative case: the rows' distance in memory, not their length, is what gemm must be told.
    wrong = np.zeros((m, n), dtype=dtype)
    _lstm_numba._gemm(fn, scratch, transpose_a, transpose_b, m, n, k, a, a.shape[1], b, 30, 0.0,
                      wrong, n)
    assert not np.allclose(wrong, op_a @ op_b, **tol)


def test_padded_rows_avoid_multiples_of_4_kb():
    assert _lstm_fast._padded(1024, np.float32) == 1040  # 4096 bytes: one cache line more
    assert _lstm_fast._padded(1040, np.float32) == 1040
    assert _lstm_fast._padded(1, np.float64) == 8  # whole cache lines
    assert _lstm_fast._padded(512, np.float64) == 520


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed")
def test_compiled_blocked_products_equal_readable(rng, monkeypatch):
    # The compiled loops' per-step products in blocks of 16 rows and 16 columns of the weights
    # (forward 10 x 3 blocks per part, backward 5 x 10 here), in two parts; float64.
    from dlbook import _parallel

    monkeypatch.setattr(_lstm_fast, "USE_NUMBA", True)
    monkeypatch.setattr(_parallel, "available_threads", lambda: 2)
    monkeypatch.setattr(_lstm_fast, "_MIN_OVERLAP_STEP_WORK", 0)
    monkeypatch.setattr(_lstm_fast, "_BLOCK_FORWARD", (1, 16))
    monkeypatch.setattr(_lstm_fast, "_BLOCK_BACKWARD", (1, 16))
    assert _lstm_fast._blocks(_lstm_fast._BLOCK_FORWARD, 44, 3) == (16, 16)
    x, h0, c0, weights, dout, dh_n, dc_n = problem(rng, 5, 3, 4, 40)
    fast, readable = _fast_and_readable(x, h0, c0, weights, dout, dh_n, dc_n)
    for a, b in zip(fast, readable):
        np.testing.assert_allclose(a, b, **TIGHT)


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed")
def test_compiled_path_only_for_sizes_blas_ints_hold(rng, monkeypatch):
    # A layer whose sizes would overflow BLAS's 32-bit ints takes the numpy loops (shown here
    # with the bound lowered), with the same results.
    monkeypatch.setattr(_lstm_fast, "USE_NUMBA", True)
    x, h0, c0, weights, dout, dh_n, dc_n = problem(rng, 5, 3, 4, 6)
    _, _, cache = _lstm_fast.lstm_forward(x, h0, c0, *weights)
    assert isinstance(cache, _lstm_fast._CompiledCache)  # negative case: within the bound
    monkeypatch.setattr(_lstm_fast, "_BLAS_INT_MAX", 5 * 3)
    fast, readable = _fast_and_readable(x, h0, c0, weights, dout, dh_n, dc_n)
    _, _, cache = _lstm_fast.lstm_forward(x, h0, c0, *weights)
    assert not isinstance(cache, _lstm_fast._CompiledCache)
    for a, b in zip(fast, readable):
        np.testing.assert_allclose(a, b, **TIGHT)

