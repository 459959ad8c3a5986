"""Share the parts of a batch between threads, each running numpy's matrix products on one core.

numpy hands a matrix product to its BLAS library (OpenBLAS in numpy's own wheels), which spreads
it over all cores; everything else numpy does (copies, sums, elementwise arithmetic) runs on the
calling thread, on one core. A layer such as the fast convolution in :mod:`dlbook.conv`
alternates the two, so on a two-core machine one core idles through every copy. :func:`run_parts`
gives every core independent work instead: one worker thread per core takes parts of the batch
one after another until none is left, each doing its own copies and its own single-threaded
matrix products (numpy releases the GIL while it copies and multiplies), while the caller waits.
For that time OpenBLAS is held to one thread, so that no product competes with the other
worker's copies for a core.

Two details matter on a small machine, both measured on the two-core machine this was written on:

* OpenBLAS's thread count is a process-wide setting: while a call of :func:`run_parts` runs,
  BLAS calls made by other threads of the program run on one core too. The setting is restored
  when the last running call ends. :func:`one_blas_thread` is that setting for any code (the
  LSTM's tuned path uses it too): calls inside it from several threads at once share one
  setting, so that none restores the threads while another still runs, and none leaves BLAS
  on one thread behind it.
* Each worker is tied to its own CPU. Left free, Linux often woke both workers on the CPU of the
  thread that woke them, and the two then took turns on one core: a third of the calls took
  twice as long.

Without numpy's bundled OpenBLAS (numpy linked against another BLAS library, or a platform where
its file is not found), when BLAS is limited to one thread (for example by ``threadpoolctl`` or
``OPENBLAS_NUM_THREADS=1``), or for small amounts of work, the parts run one after another in the
caller's thread, with BLAS left as it is.
"""

from __future__ import annotations

import ctypes
import glob
import itertools
import os
import queue
import threading
from typing import Callable, TypeVar

import numpy as np

T = TypeVar("T")

# Below this many multiply-adds per call, splitting costs more than it saves (waking the workers
# and collecting their results takes ~0.1 ms here).
MIN_WORK = 2**22

_lock = threading.Lock()
_local = threading.local()
_state: dict = {"blas": None, "blas_path": None, "loaded": False, "workers": [], "active": 0,
                "saved": 0, "others": None, "limiter": None}


def _find_openblas():
    """The (set, get) thread-count functions of numpy's bundled OpenBLAS, or None.

    numpy's wheels ship OpenBLAS next to the package (``numpy.libs/`` on Linux and Windows,
    ``numpy/.dylibs/`` on macOS); loading that file again returns the library numpy already uses.
    """
    here = os.path.dirname(np.__file__)
    for pattern in (os.path.join(here, os.pardir, "numpy.libs", "*openblas*"),
                    os.path.join(here, ".dylibs", "*openblas*")):
        for path in sorted(glob.glob(pattern)):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""),
                                   ("openblas", "64_"), ("openblas", "")):
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    setter.argtypes, setter.restype = [ctypes.c_int], None
                    getter.argtypes, getter.restype = [], ctypes.c_int
                    _state["blas_path"] = os.path.realpath(path)
                    return setter, getter
    return None


def _load() -> None:
    """Look up OpenBLAS once."""
    if not _state["loaded"]:
        _state["blas"] = _find_openblas()
        _state["loaded"] = True


def _cpus() -> list[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def available_threads() -> int:
    """How many threads :func:`run_parts` uses for a large batch (1: the caller's thread only)."""
    _load()
    if _state["blas"] is None:
        return 1
    with _lock:
        count = _state["saved"] if _state["active"] else _state["blas"][1]()
    return max(1, min(count, len(_cpus())))


class _Worker:
    """A daemon thread tied to one CPU that runs the functions put into its queue, one after another."""

    def __init__(self, cpu: int) -> None:
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, args=(cpu,), name="dlbook-worker", daemon=True)
        self.thread.start()

    def _loop(self, cpu: int) -> None:
        _local.worker = True  # a part that itself calls run_parts runs its calls in this thread
        if hasattr(os, "sched_setaffinity"):
            try:
                os.sched_setaffinity(0, {cpu})  # 0: this thread
            except OSError:
                pass
        while True:
            self.jobs.get()()


def _reset_after_fork() -> None:
    """A forked child has none of the parent's threads: forget the workers and the running calls,
    and give BLAS back the threads it had before them (the calls will not end in the child)."""
    global _lock
    _lock = threading.Lock()
    if _state["active"]:
        try:
            _restore()
        except Exception:  # noqa: BLE001 - a child that cannot restore keeps one thread
            pass
    _state.update(workers=[], active=0, saved=0, limiter=None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _other_blas():
    """threadpoolctl's controller of the BLAS libraries loaded in the process other than numpy's
    OpenBLAS (which :func:`_limit` sets itself), for example scipy's; None without threadpoolctl
    or without other libraries. Looked up once, again after :func:`forget_blas_libraries`.
    (Through threadpoolctl, numpy's library too, each call took 12 microseconds longer.)"""
    if _state["others"] is None:
        _state["others"] = False
        try:
            from threadpoolctl import ThreadpoolController  # installed with scikit-learn
        except ImportError:
            return None
        controller = ThreadpoolController()
        paths = [lib.filepath for lib in controller.select(user_api="blas").lib_controllers
                 if _state["blas"] is None
                 or os.path.realpath(lib.filepath) != _state["blas_path"]]
        if paths:
            _state["others"] = controller.select(filepath=paths)
    return _state["others"] or None


def forget_blas_libraries() -> None:
    """Look the BLAS libraries up again at the next :func:`one_blas_thread` (call it after
    loading another one, such as scipy's)."""
    with _lock:
        _state["others"] = None


def _limit() -> None:
    """BLAS on one thread (hold ``_lock``; the first of the running calls)."""
    _load()
    if _state["blas"] is not None:
        setter, getter = _state["blas"]
        _state["saved"] = getter()
        setter(1)
    others = _other_blas()
    _state["limiter"] = None if others is None else others.limit(limits=1)


def _restore() -> None:
    """BLAS back to its threads (hold ``_lock``; the last of the running calls)."""
    limiter, _state["limiter"] = _state["limiter"], None
    if limiter is not None:
        limiter.restore_original_limits()
    if _state["blas"] is not None:
        _state["blas"][0](_state["saved"])


class one_blas_thread:  # noqa: N801 - used like a function: ``with one_blas_thread():``
    """A context in which every BLAS library of the process runs on one thread.

    The setting is process-wide: contexts entered by several threads at once (and the calls of
    :func:`run_parts`) share it; the first to enter sets it, the last to leave restores the
    threads from before.
    """

    def __enter__(self) -> "one_blas_thread":
        with _lock:
            if _state["active"] == 0:
                _limit()
            _state["active"] += 1
        return self

    def __exit__(self, *exc) -> None:
        with _lock:
            if _state["active"] == 0:  # entered before a fork, left in the child: done there
                return
            _state["active"] -= 1
            if _state["active"] == 0:
                _restore()


def split(n: int, size: int, multiple: int = 1) -> list[tuple[int, int]]:
    """Consecutive parts ``(n0, n1)`` of ``range(n)``, at most ``size`` long and as even as possible.

    The number of parts is the smallest multiple of ``multiple`` that keeps them within ``size``
    (but at most ``n``), so that that many threads get the same number of parts.
    """
    count = -(-n // max(1, size))
    count = min(n, -(-count // multiple) * multiple)
    return [(n * k // count, n * (k + 1) // count) for k in range(count)]


def run_parts(fn: Callable[[int, int], T], n: int, size: int, work: float) -> list[T]:
    """``[fn(n0, n1) for (n0, n1) in split(n, size, threads)]``, the calls shared out between threads.

    Each worker takes the next part as soon as it is free, so a core slowed down by other work
    on the machine does less of it (see the module docstring for the rest).

    Args:
        fn: computes one part; it must only write its own part of any shared output.
        n: batch size (>= 1).
        size: largest part (>= 1), e.g. what fits the processor's cache.
        work: the call's multiply-adds; below :data:`MIN_WORK` everything runs in the caller's thread.
    Returns:
        The results of the calls, in the order of the parts.
    Raises:
        Whatever ``fn`` raised (the first such error), after every worker has stopped.
    """
    _load()
    threads = 1
    if work >= MIN_WORK and _state["blas"] is not None and not getattr(_local, "worker", False):
        threads = min(n, available_threads())
    parts = split(n, size, threads)
    if threads < 2:
        return [fn(n0, n1) for n0, n1 in parts]
    with _lock:
        try:
            cpus = _cpus()
            while len(_state["workers"]) < threads:
                _state["workers"].append(_Worker(cpus[len(_state["workers"]) % len(cpus)]))
        except RuntimeError:  # no more threads allowed (a process limit): use the caller's thread
            threads = len(_state["workers"])
        workers = _state["workers"][:threads]
    if threads < 2:
        return [fn(n0, n1) for n0, n1 in split(n, size)]
    with one_blas_thread():
        results: list = [None] * len(parts)
        errors: list[BaseException] = []
        counter = itertools.count()  # next() is atomic: each part is taken exactly once

        def take_parts() -> None:
            try:
                while (i := next(counter)) < len(parts):
                    results[i] = fn(*parts[i])
            except BaseException as err:  # re-raised in the caller's thread
                errors.append(err)

        done = [threading.Event() for _ in workers]
        for worker, event in zip(workers, done):
            worker.jobs.put(lambda event=event: (take_parts(), event.set()))
        for event in done:
            event.wait()
        if errors:
            raise errors[0]
        return results
