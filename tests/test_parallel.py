"""dlbook._parallel: parts of a batch shared out between threads, numpy's OpenBLAS held to one thread."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import dlbook._parallel as parallel

needs_openblas = pytest.mark.skipif(parallel._find_openblas() is None, reason="needs numpy's bundled OpenBLAS")


@pytest.mark.parametrize("n, size, multiple", [(64, 11, 2), (64, 64, 2), (7, 1, 3), (5, 2, 4), (1, 3, 2), (10, 3, 1)])
def test_split_covers_the_batch_in_even_parts(n, size, multiple):
    parts = parallel.split(n, size, multiple)
    assert parts[0][0] == 0 and parts[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))  # consecutive, no gap or overlap
    lengths = [n1 - n0 for n0, n1 in parts]
    assert min(lengths) >= 1 and max(lengths) - min(lengths) <= 1
    assert max(lengths) <= max(size, -(-n // len(parts)))
    assert len(parts) % multiple == 0 or len(parts) == n


def test_split_example():
    # the benchmark's first shape: 64 images, groups of at most 11, two threads -> 6 parts
    assert parallel.split(64, 11, 2) == [(0, 10), (10, 21), (21, 32), (32, 42), (42, 53), (53, 64)]


def test_small_work_runs_in_the_callers_thread():
    seen = []
    results = parallel.run_parts(lambda n0, n1: seen.append(threading.get_ident()) or (n0, n1), 10, 3, work=1)
    assert results == parallel.split(10, 3)
    assert set(seen) == {threading.get_ident()}


@needs_openblas
def test_parts_run_on_worker_threads_with_blas_on_one_thread(monkeypatch):
    setter, getter = parallel._find_openblas()
    before = getter()
    monkeypatch.setattr(parallel, "available_threads", lambda: 2)
    seen = {}

    def part(n0, n1):
        seen[(n0, n1)] = (threading.get_ident(), getter())
        return n1 - n0

    results = parallel.run_parts(part, 9, 2, work=parallel.MIN_WORK)
    parts = parallel.split(9, 2, 2)
    assert results == [n1 - n0 for n0, n1 in parts]
    assert set(seen) == set(parts)
    assert threading.get_ident() not in {tid for tid, _ in seen.values()}  # the caller waited
    assert {blas for _, blas in seen.values()} == {1}
    assert getter() == before  # restored


@needs_openblas
def test_an_error_in_a_part_is_raised_and_blas_restored(monkeypatch):
    _, getter = parallel._find_openblas()
    before = getter()
    monkeypatch.setattr(parallel, "available_threads", lambda: 2)

    def part(n0, n1):
        if n0 == 2:
            raise ValueError(f"bad part {n0}:{n1}")
        return n0

    with pytest.raises(ValueError, match="bad part 2:3"):
        parallel.run_parts(part, 6, 1, work=parallel.MIN_WORK)
    assert getter() == before
    # and the workers are still usable afterwards
    assert parallel.run_parts(lambda n0, n1: n0, 4, 1, work=parallel.MIN_WORK) == [0, 1, 2, 3]


@needs_openblas
def test_a_part_that_splits_again_runs_in_its_own_thread(monkeypatch):
    monkeypatch.setattr(parallel, "available_threads", lambda: 2)

    def part(n0, n1):  # a nested call from a worker must not wait for the (busy) workers
        inner = parallel.run_parts(lambda a, b: threading.get_ident(), 4, 1, work=parallel.MIN_WORK)
        return set(inner) == {threading.get_ident()}

    assert all(parallel.run_parts(part, 4, 1, work=parallel.MIN_WORK))


@needs_openblas
def test_results_do_not_depend_on_which_thread_ran_a_part(monkeypatch):
    # numpy products inside the parts, written into a shared output: the same as a plain loop
    monkeypatch.setattr(parallel, "available_threads", lambda: 3)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((12, 30, 40)), rng.standard_normal((40, 20))
    out = np.empty((12, 30, 20))

    def part(n0, n1):
        out[n0:n1] = a[n0:n1] @ b

    parallel.run_parts(part, 12, 1, work=parallel.MIN_WORK)
    np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-12)
    assert not np.array_equal(out[0], (a @ b)[1])  # the check can fail: parts are not interchangeable


def _blas_threads():
    """The threads of every BLAS library loaded, as threadpoolctl finds them now."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    controller = threadpoolctl.ThreadpoolController().select(user_api="blas")
    if not controller.lib_controllers:
        pytest.skip("no BLAS library that threadpoolctl controls")
    return [lib.num_threads for lib in controller.lib_controllers]


def test_one_blas_thread_shared_by_concurrent_callers():
    # Two contexts open at once, the first leaving first: BLAS stays on one thread until the
    # second leaves, and then has its threads from before again (each context saving and
    # restoring its own setting, the first restored 2 under the second, and the second left 1).
    threadpoolctl = pytest.importorskip("threadpoolctl")
    parallel.forget_blas_libraries()  # every library loaded so far (torch's too)
    before = _blas_threads()
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        first, second = parallel.one_blas_thread(), parallel.one_blas_thread()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert set(_blas_threads()) == {1}
        second.__exit__(None, None, None)
        assert set(_blas_threads()) == {2}
    assert _blas_threads() == before


@needs_openblas
def test_run_parts_and_one_blas_thread_interleaved_restore_blas(monkeypatch):
    # A call of run_parts from another thread that starts and ends while this thread is inside
    # one_blas_thread: BLAS stays on one thread until this thread leaves, then has its threads
    # from before again, and available_threads with them (before, run_parts restored the threads
    # under the context, and the context's own restore then left BLAS on one thread for good).
    threadpoolctl = pytest.importorskip("threadpoolctl")
    parallel.forget_blas_libraries()  # every library loaded so far (torch's too)
    monkeypatch.setattr(parallel, "MIN_WORK", 0)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        threads = parallel.available_threads()
        results = []
        with parallel.one_blas_thread():
            caller = threading.Thread(
                target=lambda: results.append(parallel.run_parts(lambda n0, n1: n0, 4, 1, 1)))
            caller.start()
            caller.join(timeout=30)
            assert results == [[0, 1, 2, 3]]
            assert set(_blas_threads()) == {1}  # still inside this context
        assert set(_blas_threads()) == {2}
        assert parallel.available_threads() == threads


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork here")
def test_a_forked_child_gets_blas_back_and_fresh_locks():
    # Forked inside one_blas_thread: the child, where the context will not end, gets BLAS's
    # threads back and can use the context itself (its lock is a fresh one); leaving the
    # parent's context in the child changes nothing.
    import os

    threadpoolctl = pytest.importorskip("threadpoolctl")
    parallel.forget_blas_libraries()  # every library loaded so far (torch's too)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        with parallel.one_blas_thread():
            assert set(_blas_threads()) == {1}  # negative case: the parent is limited
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: report, then leave at once
                try:
                    ok = set(_blas_threads()) == {2}
                    with parallel.one_blas_thread():
                        ok = ok and set(_blas_threads()) == {1}
                    ok = ok and set(_blas_threads()) == {2}
                    parallel.one_blas_thread().__exit__(None, None, None)  # the parent's
                    ok = ok and set(_blas_threads()) == {2} and parallel._state["active"] == 0
                    os.write(write, b"1" if ok else b"0")
                finally:
                    os._exit(0)
            os.close(write)
            answer = os.read(read, 1)
            os.waitpid(pid, 0)
            assert set(_blas_threads()) == {1}  # the parent is still limited
    assert answer == b"1"
