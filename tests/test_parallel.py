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
