"""Run one submission in its own confined process and collect what it exported, as data only.

Process model (details and what is *not* guarded: ``exercises/README.md``, "Threat model"):

* The grader (this process) never executes student code. For each submission it prepares a
  fresh work directory, starts ``_runner.py`` in a new session, and reads back only:
  the combined stdout/stderr through a pipe (head and tail kept, the rest counted and dropped),
  ``events.jsonl`` (size-capped JSON lines) and ``out/*.npz`` (size-capped, loaded with
  ``allow_pickle=False``, numeric dtypes only). Reads go through a directory file descriptor
  opened before the submission starts, with ``O_NOFOLLOW``: renaming, replacing or symlinking
  files in the work directory cannot redirect them.
* Limits, set by the runner on itself before the first student line: address space
  (``RLIMIT_AS``, the memory limit), CPU seconds (a backstop for the wall clock), file size,
  open files, no core dumps and a process count: ``RLIMIT_NPROC`` when the grader is not root
  (the kernel does not apply it to root); as root, a cgroup-v1 ``pids.max`` when such a
  hierarchy is writable (the runner joins the group before anything else runs).
* Wall clock: enforced here; on expiry the whole process group is killed (SIGKILL).
* ``namespaces`` isolation (Linux, when ``unshare`` works: as root, or as a user with
  unprivileged user namespaces): the runner is pid 1 of a new pid namespace (it cannot see or
  signal the grader, and every process it starts dies with it), has no network, and in its own
  mount namespace the exercise sources, the output directory, the other submissions and the
  grader's home are hidden, every mount is read-only except its work directory, /dev holds
  only null/zero/full/random/urandom, and all capabilities are dropped (no_new_privs).
* ``process`` isolation (anywhere else): new session, limits, private work directory, clean
  environment. A submission can then read and write whatever the grader's user can, and signal
  the grader: use the namespace mode or a container for untrusted classes.
"""

from __future__ import annotations

import io
import json
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Limits", "SandboxResult", "detect_isolation", "run_in_sandbox"]

RUNNER = Path(__file__).with_name("_runner.py")
MAX_EVENTS_BYTES = 2 * 1024 * 1024
MAX_NPZ_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Per-submission limits. ``output_kb`` is how much of stdout+stderr is kept (half head, half tail)."""

    timeout: float = 60.0
    memory_mb: int = 4096
    output_kb: int = 64
    file_mb: int = 64
    processes: int = 128
    open_files: int = 256
    max_elements: int = 1 << 22


@dataclass
class SandboxResult:
    """What came back from one run: how it ended, its output, its events and exported arrays."""

    seconds: float
    returncode: int | None
    timed_out: bool
    output: str
    output_bytes: int
    events: list[dict[str, Any]] = field(default_factory=list)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    load_errors: dict[str, dict[str, str]] = field(default_factory=dict)


def _unshare_command(as_root: bool) -> list[str]:
    cmd = ["unshare"]
    if not as_root:
        cmd += ["--user", "--map-root-user"]
    return cmd + ["--pid", "--fork", "--kill-child", "--net", "--mount", "--mount-proc", "--"]


@lru_cache(maxsize=None)
def detect_isolation() -> str:
    """``"namespaces"`` if a confined trial run of the runner works here, else ``"process"``.

    ``DLBOOK_GRADE_ISOLATION=process`` (or ``namespaces``) overrides the detection.
    """
    forced = os.environ.get("DLBOOK_GRADE_ISOLATION", "").strip()
    if forced in ("process", "namespaces"):
        return forced
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return "process"
    with tempfile.TemporaryDirectory(prefix="dlbook-grade-probe-") as tmp:
        work = Path(tmp)
        _write_workdir(work, cells=["x = 1"], probes=[], inputs_npz=_empty_npz(),
                       config=_config(Limits(timeout=20), "namespaces", keep=_keep_paths(), hide_dirs=[],
                                      hide_files=[]))
        try:
            done = subprocess.run(_unshare_command(os.geteuid() == 0) + _python_command(work),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=30, env=_environment(work), cwd=work / "work")
        except (OSError, subprocess.TimeoutExpired):
            return "process"
        events = (work / "events.jsonl").read_text() if (work / "events.jsonl").exists() else ""
        ok = done.returncode == 0 and '"event": "finished"' in events and '"warnings": []' in events
        return "namespaces" if ok else "process"


def _empty_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer)
    return buffer.getvalue()


def _python_command(work: Path) -> list[str]:
    # -s: no user site-packages; -B: no .pyc writes. PYTHONHASHSEED comes from the environment.
    return [sys.executable, "-s", "-B", str(RUNNER), str(work)]


def _environment(work: Path) -> dict[str, str]:
    home = str(work / "work")
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONIOENCODING": "utf-8",
            "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


def _keep_paths() -> list[str]:
    """What the sandboxed interpreter needs to stay visible when its surroundings are hidden."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             str(Path(sys.executable).resolve().parent), str(RUNNER.parent)}
    cwd = os.path.realpath(os.getcwd())  # on sys.path under `python -m`, but not needed
    paths |= {p for p in sys.path if p and os.path.isdir(p) and os.path.realpath(p) != cwd}
    return sorted({os.path.realpath(p) for p in paths})


def _tasks_of_user(uid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
                if int(fields["Uid"].split()[0]) == uid:
                    count += int(fields.get("Threads", "1"))
            except (OSError, KeyError, ValueError):
                continue
    return count


@lru_cache(maxsize=None)
def _pids_cgroup_parent() -> Path | None:
    """Our own cgroup in a writable cgroup-v1 ``pids`` hierarchy, if we are root and there is one."""
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if "pids" in controllers.split(","):
                    base = Path("/sys/fs/cgroup/pids") / path.lstrip("/")
                    if (base / "cgroup.procs").is_file() and os.access(base, os.W_OK):
                        return base
    except (OSError, ValueError):
        pass
    return None


def _make_pids_cgroup(limits: Limits) -> Path | None:
    parent = _pids_cgroup_parent()
    if parent is None:
        return None
    try:
        group = Path(tempfile.mkdtemp(prefix=f"dlbook-grade-{os.getpid()}-", dir=parent))
        (group / "pids.max").write_text(str(limits.processes))
        return group
    except OSError:
        return None


def _remove_cgroup(group: Path | None) -> None:
    if group is None:
        return
    for _ in range(50):  # the killed processes leave the group within moments
        try:
            os.rmdir(group)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def _config(limits: Limits, isolation: str, *, keep: list[str], hide_dirs: list[str],
            hide_files: list[str]) -> dict[str, Any]:
    processes = None
    if os.geteuid() != 0 and sys.platform.startswith("linux"):
        # RLIMIT_NPROC counts every task of the user, not just the submission's
        processes = _tasks_of_user(os.getuid()) + limits.processes
    return {"isolation": isolation, "keep": keep, "hide_dirs": hide_dirs, "hide_files": hide_files,
            "memory_bytes": limits.memory_mb * 1024 * 1024, "cpu_seconds": int(limits.timeout) + 2,
            "file_bytes": limits.file_mb * 1024 * 1024, "open_files": limits.open_files,
            "processes": processes, "max_elements": limits.max_elements}


def _write_workdir(work: Path, *, cells: list[str], probes: list[dict], inputs_npz: bytes,
                   config: dict[str, Any]) -> None:
    (work / "work").mkdir()
    (work / "out").mkdir()
    (work / "sandbox.json").write_text(json.dumps(config), encoding="utf-8")
    (work / "cells.json").write_text(json.dumps(cells), encoding="utf-8")
    (work / "probes.json").write_text(json.dumps(probes), encoding="utf-8")
    (work / "inputs.npz").write_bytes(inputs_npz)


class _OutputCollector:
    """Keeps the first and the last ``limit/2`` bytes of a stream and counts the rest."""

    def __init__(self, limit: int):
        self.half = max(limit // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self.half:
                del self.tail[: len(self.tail) - self.half]

    def text(self) -> str:
        head = self.head.decode("utf-8", errors="replace")
        if self.total <= len(self.head) + len(self.tail):
            return head + self.tail.decode("utf-8", errors="replace")
        dropped = self.total - len(self.head) - len(self.tail)
        return (head + f"\n... [{dropped} bytes of output not kept] ...\n"
                + self.tail.decode("utf-8", errors="replace"))


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return found


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL the sandbox: its direct children (pid-namespace init), its process group, itself."""
    for child in _children(proc.pid):
        try:
            os.kill(child, signal.SIGKILL)
        except OSError:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        proc.kill()
    except OSError:
        pass


def _read_capped(dir_fd: int, name: str, limit: int) -> bytes | None:
    """A regular file's bytes, read through ``dir_fd`` without following symlinks; None if absent/too big."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks) if size <= limit else None
    finally:
        os.close(fd)


def _load_npz(blob: bytes, max_elements: int) -> dict[str, np.ndarray]:
    """Plain numeric arrays from untrusted npz bytes (no pickles, declared sizes checked first)."""
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        if sum(info.file_size for info in archive.infolist()) > MAX_NPZ_BYTES:
            raise ValueError("exported arrays are too large")
    arrays = {}
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        for key in npz.files:
            array = npz[key]
            if array.dtype.kind not in "biuf" or array.size > max_elements:
                raise ValueError(f"exported value {key!r} is not a plain numeric array")
            arrays[key] = array.astype(array.dtype.newbyteorder("="), copy=False)
    return arrays


def _read_back(dir_fd: int, probes: list[dict], limits: Limits):
    events: list[dict[str, Any]] = []
    blob = _read_capped(dir_fd, "events.jsonl", MAX_EVENTS_BYTES) or b""
    for line in blob.decode("utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and isinstance(event.get("event"), str):
            events.append(event)
    values: dict[str, dict[str, Any]] = {}
    load_errors: dict[str, dict[str, str]] = {}
    try:
        out_fd = os.open("out", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError:
        return events, values, load_errors
    try:
        for spec in probes:
            question, probe = spec["question"], spec["probe"]
            blob = _read_capped(out_fd, f"{question}__{probe}.npz", MAX_NPZ_BYTES)
            if blob is None:
                continue
            try:
                arrays = _load_npz(blob, limits.max_elements)
            except Exception as exc:  # malformed or hostile file: the value is simply missing
                load_errors.setdefault(question, {})[probe] = f"the exported value could not be read ({exc})"
                continue
            values.setdefault(question, {})[probe] = arrays["value"] if set(arrays) == {"value"} else arrays
    finally:
        os.close(out_fd)
    return events, values, load_errors


def run_in_sandbox(*, cells: list[str], probes: list[dict], inputs_npz: bytes, limits: Limits,
                   isolation: str, scratch: Path, hide_dirs: list[str] = (), hide_files: list[str] = ()) -> SandboxResult:
    """Execute ``cells`` then ``probes`` in a fresh confined process; return what came back.

    Args:
        cells: the submission's code cells, in order.
        probes: ``Exercise.probe_specs()``.
        inputs_npz: ``Exercise.inputs_npz()``.
        limits: time, memory, output and other limits.
        isolation: ``"namespaces"`` or ``"process"`` (see :func:`detect_isolation`).
        scratch: a directory private to the grader; the work directory is created inside it and
            removed afterwards.
        hide_dirs, hide_files: hidden from the submission in namespace mode.
    """
    work = Path(tempfile.mkdtemp(prefix="sub-", dir=scratch))
    keep = _keep_paths()
    config = _config(limits, isolation, keep=keep, hide_dirs=list(hide_dirs) + [str(scratch)],
                     hide_files=list(hide_files))
    group = _make_pids_cgroup(limits)
    config["pids_cgroup"] = str(group / "cgroup.procs") if group is not None else None
    _write_workdir(work, cells=cells, probes=probes, inputs_npz=inputs_npz, config=config)
    dir_fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    command = _python_command(work)
    if isolation == "namespaces":
        command = _unshare_command(os.geteuid() == 0) + command
    collector = _OutputCollector(limits.output_kb * 1024)
    start = time.monotonic()
    timed_out = False
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, cwd=work / "work", env=_environment(work),
                                start_new_session=True, close_fds=True)
        try:
            timed_out = _drain(proc, collector, start + limits.timeout)
        finally:
            _kill(proc)
            proc.wait()
            proc.stdout.close()
        seconds = time.monotonic() - start
        events, values, load_errors = _read_back(dir_fd, probes, limits)
        return SandboxResult(seconds=seconds, returncode=proc.returncode, timed_out=timed_out,
                             output=collector.text(), output_bytes=collector.total, events=events,
                             values=values, load_errors=load_errors)
    finally:
        os.close(dir_fd)
        _remove(work)
        _remove_cgroup(group)


def _drain(proc: subprocess.Popen, collector: _OutputCollector, deadline: float) -> bool:
    """Read the pipe until EOF (or the process ended and stayed quiet); True on timeout."""
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        exited_at = None
        eof = False
        while True:
            now = time.monotonic()
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and (eof or now - exited_at > 0.5):
                return False  # done (or something it left behind holds the pipe: it gets killed)
            if now >= deadline:
                return True
            if eof:  # it closed its output but is still running
                time.sleep(min(0.05, deadline - now))
                continue
            for _key, _ in selector.select(timeout=min(0.1, deadline - now)):
                try:
                    data = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not data:
                    eof = True
                    selector.unregister(fd)
                    break
                collector.feed(data)


def _remove(path: Path) -> None:
    """Remove a work directory, even one whose permissions the submission changed."""
    def retry(func, target, _exc):
        try:
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
            func(target)
        except OSError:
            pass

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=retry)
