"""Run one submission in its own confined process and collect what it exported, as data only.

Process model (details and what is *not* guarded: ``exercises/README.md``, "Threat model"):

* The grader (this process) never executes student code. For each submission it starts
  ``_runner.py`` in a new session with its input (cells, probes, hidden inputs, limits) on
  stdin, from a file already unlinked, and reads back two pipes: the combined stdout/stderr
  (head and tail kept, the rest counted and dropped) and a results channel, the write end of
  a pipe that the runner's supervisor holds and the submission's process does not. Nothing is
  read from a folder the submission can write.
* Inside the runner a supervisor forks the executor, which runs the cells and the probes; the
  supervisor relays only frames that fit the protocol (one per cell, one per probe, bounded
  sizes) and adds how the executor ended. The grader loads the exported arrays with
  ``allow_pickle=False``, numeric dtypes only, a member count read from the zip directory
  before anything is parsed, and size caps.
* Limits, set by the executor on itself before the first student line: address space
  (``RLIMIT_AS``, the memory limit), CPU seconds (a backstop for the wall clock), file size,
  open files, no core dumps and a process count: ``RLIMIT_NPROC`` when the grader is not root
  (the kernel does not apply it to root); as root, a cgroup-v1 ``pids.max`` when such a
  hierarchy is writable (the runner joins the group before anything else runs).
* Wall clock: enforced here; on expiry the whole process group and pid namespace are killed.
* ``namespaces`` isolation (Linux, when ``unshare`` works: as root, or as a user with
  unprivileged user namespaces): new pid, mount, network, IPC, UTS and cgroup namespaces; the
  submission sees a fresh tmpfs root holding read-only binds of an allowlist (``/usr``, the
  ``/lib`` folders, the interpreter, the site-packages that hold numpy minus
  :data:`HIDDEN_PACKAGES`), a few generated ``/etc`` files, a ``/dev`` with five nodes, its own
  ``/proc`` and its home, a size-capped tmpfs that vanishes with the namespace; it runs as uid
  65534 (root grader) or as the mapped grader uid without capabilities (user namespace), with
  ``no_new_privs``.
* ``process`` isolation (anywhere else): new session, limits, private work directory, clean
  environment. A submission can then read and write whatever the grader's user can, and signal
  the grader: :func:`grade_batch` refuses it unless told the submissions are trusted.
"""

from __future__ import annotations

import base64
import io
import json
import os
import selectors
import shutil
import signal
import stat
import struct
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from dlbook.grading._runner import HOME, STUDENT_UID, FrameReader

__all__ = ["Limits", "SandboxResult", "HIDDEN_PACKAGES", "detect_isolation", "isolation_problem",
           "run_in_sandbox", "remove_tree"]

RUNNER = Path(__file__).with_name("_runner.py")
MAX_NPZ_BYTES = 16 * 1024 * 1024  # one probe's arrays
MAX_NPZ_MEMBERS = 64
MAX_CHANNEL_BYTES = 64 * 1024 * 1024  # all the results of one submission, as the grader reads them
MAX_REMOVE_STEPS = 2_000_000
# site-packages entries the submission never sees (besides anything named *dlbook*): the book's
# own package, the grader's test runner, and torch (the exercises are numpy only; torch would
# compute the references' answers)
HIDDEN_PACKAGES = ("dlbook", "otter", "otter_grader", "torch", "torchgen", "functorch")


@dataclass(frozen=True)
class Limits:
    """Per-submission limits. ``output_kb``: stdout+stderr kept (half head, half tail).

    ``disk_mb`` caps the submission's home folder (namespace mode: a tmpfs of that size).
    """

    timeout: float = 60.0
    memory_mb: int = 4096
    output_kb: int = 64
    file_mb: int = 64
    disk_mb: int = 256
    processes: int = 128
    open_files: int = 256
    max_elements: int = 1 << 20


@dataclass
class SandboxResult:
    """What came back from one run: how it ended, its output, its events and exported arrays.

    ``returncode`` is the executor's (negative: killed by that signal) as its supervisor saw
    it, or None when the supervisor did not say (killed at the deadline, or it failed);
    ``failure`` says why the sandbox itself could not be built.
    """

    seconds: float
    returncode: int | None
    timed_out: bool
    output: str
    output_bytes: int
    events: list[dict[str, Any]] = field(default_factory=list)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    load_errors: dict[str, dict[str, str]] = field(default_factory=dict)
    failure: str | None = None
    memory_exceeded: bool = False  # the memory cgroup's limit was hit
    cgroups: list[str] = field(default_factory=list)  # the controllers that confined this run


def _unshare_command(as_root: bool) -> list[str]:
    cmd = ["unshare"]
    if not as_root:
        cmd += ["--user", "--map-root-user"]
    return cmd + ["--pid", "--fork", "--kill-child", "--net", "--mount", "--mount-proc", "--ipc",
                  "--uts", "--propagation", "private", "--"]


_PROBE_LOCK = threading.Lock()


@lru_cache(maxsize=None)
def _trial() -> str | None:
    """Why a confined trial run fails here, or None when it works."""
    if not sys.platform.startswith("linux"):
        return f"namespaces need Linux, this is {sys.platform}"
    if shutil.which("unshare") is None:
        return "the unshare program is not installed"
    scratch = Path(tempfile.mkdtemp(prefix="dlbook-grade-probe-"))
    try:
        result = run_in_sandbox(cells=["import numpy\nx = 1"], probes=[], inputs_npz=_empty_npz(),
                                limits=Limits(timeout=30), isolation="namespaces", scratch=scratch)
    except OSError as exc:
        return f"the trial run could not start ({exc})"
    finally:
        remove_tree(scratch)
    if result.failure:
        return f"the sandbox could not be built: {result.failure}"
    kinds = [e.get("event") for e in result.events]
    warnings = [w for e in result.events if e.get("event") == "sandbox"
                for w in e.get("warnings", [])]
    if result.returncode != 0 or "finished" not in kinds or "cell_error" in kinds:
        return f"the trial run failed (exit {result.returncode}): {result.output[-300:].strip()}"
    if warnings:
        return "the sandbox was built with warnings: " + "; ".join(map(str, warnings))[:300]
    return None


def isolation_problem() -> str | None:
    """Why ``namespaces`` isolation cannot be used here (None when it can)."""
    with _PROBE_LOCK:
        return _trial()


def detect_isolation() -> str:
    """``"namespaces"`` if a confined trial run of the runner works here, else ``"process"``.

    ``DLBOOK_GRADE_ISOLATION=process`` (or ``namespaces``) overrides the detection.
    """
    forced = os.environ.get("DLBOOK_GRADE_ISOLATION", "").strip()
    if forced in ("process", "namespaces"):
        return forced
    return "namespaces" if isolation_problem() is None else "process"


def _empty_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer)
    return buffer.getvalue()


def _python_command() -> list[str]:
    # -I: no user site, no PYTHONPATH, no script folder on sys.path; -S: no site-packages and
    # no .pth files (the runner adds numpy's folder itself); -B: no .pyc writes
    return [sys.executable, "-I", "-S", "-B", str(RUNNER)]


def _environment(home: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONIOENCODING": "utf-8",
            "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1", "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": home}


def _python_path() -> list[str]:
    """The folders the sandboxed interpreter imports numpy (and other libraries) from."""
    paths = [os.path.dirname(os.path.dirname(os.path.realpath(np.__file__)))]
    for key in ("purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path and os.path.isdir(path):
            paths.append(os.path.realpath(path))
    return list(dict.fromkeys(paths))


def _masked_site_packages() -> list[str]:
    """The base interpreter's site-packages folders that numpy does not come from (a venv's
    base): the sandbox shows them empty, so nothing installed there (torch, say) is importable."""
    kept = set(_python_path())
    found = []
    for key in ("purelib", "platlib"):
        path = sysconfig.get_paths(vars={"base": sys.base_prefix,
                                         "platbase": sys.base_exec_prefix}).get(key)
        if path and os.path.isdir(path):
            path = os.path.realpath(path)
            if path not in kept and not any(k.startswith(path + os.sep) for k in kept):
                found.append(path)
    return list(dict.fromkeys(found))


def _allowlist() -> list[str]:
    """What the sandbox's root holds, read-only: system folders, the interpreter, site-packages."""
    paths = ["/usr"]
    paths += [f"/{name}" for name in os.listdir("/") if name.startswith("lib")
              and os.path.isdir(f"/{name}") and not os.path.islink(f"/{name}")]
    for prefix in (sys.base_prefix, sys.base_exec_prefix):
        paths.append(os.path.realpath(prefix))
    paths.append(os.path.dirname(os.path.realpath(sys.executable)))
    # parents first, so a folder inside one already bound is not bound again
    return sorted({p for p in paths if p != "/"}, key=lambda p: (p.count("/"), p))


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


CGROUP_CONTROLLERS = ("pids", "memory", "cpu")
SUPERVISOR_MB = 64  # the supervisor shares the submission's memory cgroup


@lru_cache(maxsize=None)
def _cgroup_parent(controller: str) -> Path | None:
    """Our own cgroup in a writable cgroup-v1 ``controller`` hierarchy, if we are root."""
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if controller in controllers.split(","):
                    base = Path("/sys/fs/cgroup") / controller / path.lstrip("/")
                    if (base / "cgroup.procs").is_file() and os.access(base, os.W_OK):
                        return base
    except (OSError, ValueError):
        pass
    return None


def _pids_cgroup_parent() -> Path | None:
    return _cgroup_parent("pids")


def _cgroup_settings(controller: str, limits: Limits) -> list[tuple[str, str]]:
    if controller == "pids":
        return [("pids.max", str(limits.processes))]
    if controller == "memory":
        # every page the submission's processes hold (anonymous, tmpfs, memfd, SysV shm, kernel
        # memory on recent kernels), with no swap; the supervisor's own share on top
        limit = str((limits.memory_mb + SUPERVISOR_MB) * 1024 * 1024)
        return [("memory.limit_in_bytes", limit), ("memory.memsw.limit_in_bytes", limit),
                ("memory.swappiness", "0")]
    # cpu: at most one core, and the same weight as any other submission's group whatever
    # number of processes or sessions it makes
    return [("cpu.shares", "1024"), ("cpu.cfs_period_us", "100000"),
            ("cpu.cfs_quota_us", "100000")]


def _make_cgroups(limits: Limits) -> dict[str, Path]:
    """One fresh cgroup per available controller (``pids``, ``memory``, ``cpu``) for one run.

    A controller whose hierarchy is missing or not writable here is left out (the README's
    threat model says what that costs); a setting the kernel does not offer (no swap accounting,
    no CFS quota) is skipped, the others kept.
    """
    groups: dict[str, Path] = {}
    for controller in CGROUP_CONTROLLERS:
        parent = _cgroup_parent(controller)
        if parent is None:
            continue
        try:
            group = Path(tempfile.mkdtemp(prefix=f"dlbook-grade-{os.getpid()}-", dir=parent))
        except OSError:
            continue
        required = {"pids.max", "memory.limit_in_bytes"}
        try:
            for name, value in _cgroup_settings(controller, limits):
                try:
                    (group / name).write_text(value)
                except OSError:
                    if name in required:
                        raise
            groups[controller] = group
        except OSError:
            _remove_cgroup(group)
    return groups


def _make_pids_cgroup(limits: Limits) -> Path | None:
    return _make_cgroups(limits).get("pids")


def _memory_exceeded(group: Path | None) -> bool:
    """True when the kernel had to refuse or reclaim memory at the memory cgroup's limit."""
    if group is None:
        return False
    try:
        if int((group / "memory.failcnt").read_text()) > 0:
            return True
        for line in (group / "memory.oom_control").read_text().splitlines():
            if line.startswith("oom_kill ") and int(line.split()[1]) > 0:
                return True
    except (OSError, ValueError):
        pass
    return False


def _remove_cgroup(group: Path | None) -> None:
    if group is None:
        return
    for _ in range(100):  # the killed processes leave the group within moments
        try:
            os.rmdir(group)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def _config(limits: Limits, isolation: str) -> dict[str, Any]:
    processes = None
    if os.geteuid() != 0 and sys.platform.startswith("linux"):
        # RLIMIT_NPROC counts every task of the user, not just the submission's
        processes = _tasks_of_user(os.getuid()) + limits.processes
    return {"isolation": isolation, "memory_bytes": limits.memory_mb * 1024 * 1024,
            "cpu_seconds": int(limits.timeout) + 2, "file_bytes": limits.file_mb * 1024 * 1024,
            "disk_bytes": limits.disk_mb * 1024 * 1024, "open_files": limits.open_files,
            "processes": processes, "max_elements": limits.max_elements,
            "python_path": _python_path(), "allow": _allowlist(), "site_packages": _python_path(),
            "hidden_packages": list(HIDDEN_PACKAGES), "masked": _masked_site_packages(),
            "student_uid": STUDENT_UID if os.geteuid() == 0 else 0}


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


def _zip_entries(blob: bytes) -> int:
    """The member count an archive's end-of-central-directory record declares (read first)."""
    at = blob.rfind(b"PK\x05\x06", max(0, len(blob) - 22 - 65535))
    if at < 0 or len(blob) < at + 22:
        raise ValueError("not an npz archive")
    return struct.unpack("<H", blob[at + 10:at + 12])[0]


def _load_npz(blob: bytes, max_elements: int,
              max_members: int = MAX_NPZ_MEMBERS) -> dict[str, np.ndarray]:
    """Plain numeric arrays from untrusted npz bytes (no pickles; count and sizes checked first)."""
    if len(blob) > MAX_NPZ_BYTES:
        raise ValueError("exported arrays are too large")
    if _zip_entries(blob) > max_members:
        raise ValueError(f"more than {max_members} exported arrays")
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        members = archive.infolist()
        if len(members) > max_members:
            raise ValueError(f"more than {max_members} exported arrays")
        if sum(info.file_size for info in members) > MAX_NPZ_BYTES:
            raise ValueError("exported arrays are too large")
    arrays = {}
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        for key in npz.files:
            array = npz[key]
            if array.dtype.kind not in "biuf" or array.size > max_elements:
                raise ValueError(f"exported value {key[:40]!r} is not a plain numeric array")
            arrays[key] = array.astype(array.dtype.newbyteorder("="), copy=False)
    return arrays


def _values(frames: list[tuple[dict, bytes]], probes: list[dict], limits: Limits):
    """Split the channel's frames into events, exported values and load errors."""
    known = {(p["question"], p["probe"]) for p in probes}
    events: list[dict[str, Any]] = []
    values: dict[str, dict[str, Any]] = {}
    load_errors: dict[str, dict[str, str]] = {}
    for header, body in frames:
        events.append(header)
        if header.get("event") != "probe_done":
            continue
        question, probe = header.get("question"), header.get("probe")
        if (question, probe) not in known or probe in values.get(question, {}):
            continue
        try:
            arrays = _load_npz(body, limits.max_elements)
        except Exception as exc:  # malformed or hostile bytes: the value is simply missing
            load_errors.setdefault(question, {})[probe] = \
                f"the exported value could not be read ({str(exc)[:200]})"
            continue
        value = arrays["value"] if set(arrays) == {"value"} else arrays
        values.setdefault(question, {})[probe] = value
    return events, values, load_errors


def run_in_sandbox(*, cells: list[str], probes: list[dict], inputs_npz: bytes, limits: Limits,
                   isolation: str, scratch: Path) -> SandboxResult:
    """Execute ``cells`` then ``probes`` in a fresh confined process; return what came back.

    Args:
        cells: the submission's code cells, in order.
        probes: ``Exercise.probe_specs()``.
        inputs_npz: ``Exercise.inputs_npz()``.
        limits: time, memory, output and other limits.
        isolation: ``"namespaces"`` or ``"process"`` (see :func:`detect_isolation`).
        scratch: a directory private to the grader (mode 0700); this run's folder is made inside
            it and removed afterwards, even when the run fails.
    """
    work = Path(tempfile.mkdtemp(prefix="sub-", dir=scratch))
    groups: dict[str, Path] = {}
    read_fd = write_fd = -1
    try:
        config = _config(limits, isolation)
        if isolation == "namespaces":
            (work / "root").mkdir(mode=0o700)  # the mount point of the sandbox's own root
            config["root_dir"] = str(work / "root")
            home = HOME
        else:
            (work / "home").mkdir(mode=0o700)
            home = str(work / "home")
        groups = _make_cgroups(limits)
        config["cgroups"] = [str(g / "cgroup.procs") for g in groups.values()]
        read_fd, write_fd = os.pipe()
        config["channel_fd"] = write_fd
        payload = {"config": config, "cells": cells, "probes": probes,
                   "inputs": base64.b64encode(inputs_npz).decode("ascii")}
        with open(work / "input.json", "w+b") as stdin:  # unlinked before the runner starts
            stdin.write(json.dumps(payload).encode("utf-8"))
            stdin.seek(0)
            os.unlink(work / "input.json")
            command = _python_command()
            if isolation == "namespaces":
                command = _unshare_command(os.geteuid() == 0) + command
            collector = _OutputCollector(limits.output_kb * 1024)
            channel = FrameReader(max_frames=4 * (len(cells) + len(probes)) + 64,
                                  max_bytes=MAX_CHANNEL_BYTES, max_body=MAX_NPZ_BYTES)
            start = time.monotonic()
            proc = subprocess.Popen(command, stdin=stdin, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, env=_environment(home),
                                    cwd=str(work) if isolation == "namespaces" else home,
                                    start_new_session=True, close_fds=True, pass_fds=(write_fd,))
        os.close(write_fd)
        write_fd = -1
        try:
            timed_out = _drain(proc, collector, read_fd, channel, start + limits.timeout)
        finally:
            _kill(proc)
            proc.wait()
            proc.stdout.close()
        seconds = time.monotonic() - start
        events, values, load_errors = _values(channel.frames, probes, limits)
        returncode = next((e.get("returncode") for e in events if e.get("event") == "child_exit"
                           and isinstance(e.get("returncode"), int)), None)
        failure = next((str(e["failed"]) for e in events
                        if e.get("event") == "sandbox" and e.get("failed")), None)
        if channel.broken:
            events.append({"event": "overflow", "source": "grader"})
        return SandboxResult(seconds=seconds, returncode=returncode, timed_out=timed_out,
                             output=collector.text(), output_bytes=collector.total, events=events,
                             values=values, load_errors=load_errors, failure=failure,
                             memory_exceeded=_memory_exceeded(groups.get("memory")),
                             cgroups=sorted(groups))
    finally:
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)
        for group in groups.values():
            _remove_cgroup(group)
        remove_tree(work)


def _drain(proc: subprocess.Popen, collector: _OutputCollector, channel_fd: int,
           channel: FrameReader, deadline: float) -> bool:
    """Read output and channel until both are closed (or the process ended and stayed quiet).

    Returns True on timeout.
    """
    out_fd = proc.stdout.fileno()
    os.set_blocking(out_fd, False)
    os.set_blocking(channel_fd, False)
    sinks = {out_fd: collector.feed, channel_fd: channel.feed}
    with selectors.DefaultSelector() as selector:
        for fd in sinks:
            selector.register(fd, selectors.EVENT_READ)
        open_fds = set(sinks)
        exited_at = None
        while True:
            now = time.monotonic()
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and (not open_fds or now - exited_at > 0.5):
                return False  # done (or something it left behind holds a pipe: it gets killed)
            if now >= deadline:
                return True
            if not open_fds:  # it closed its pipes but is still running
                time.sleep(min(0.05, deadline - now))
                continue
            for key, _ in selector.select(timeout=min(0.1, deadline - now)):
                try:
                    data = os.read(key.fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not data:
                    open_fds.discard(key.fd)
                    selector.unregister(key.fd)
                    continue
                sinks[key.fd](data)


def remove_tree(path: Path | str, max_steps: int = MAX_REMOVE_STEPS) -> bool:
    """Remove a folder tree a submission may have shaped: any depth, links never followed.

    No recursion: each sub-folder's entries are moved up into the top folder, then the empty
    sub-folder is removed, so the depth costs no stack and no long paths. Permissions are
    restored through descriptors of the folders themselves (never by path, never through a
    link). Gives up after ``max_steps`` operations; returns True when the tree is gone.
    """
    try:
        top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return True
    except OSError:
        try:  # a symlink or a plain file in place of the folder: remove the entry itself
            os.unlink(path)
            return True
        except OSError:
            return False
    steps = 0
    counter = 0
    try:
        _open_dir_fd_chmod(top)
        while steps < max_steps:
            names = os.listdir(top)
            if not names:
                break
            for name in names:
                steps += 1
                if steps >= max_steps:
                    break
                try:
                    info = os.stat(name, dir_fd=top, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not stat.S_ISDIR(info.st_mode):
                    os.unlink(name, dir_fd=top)
                    continue
                sub = _open_subdir(top, name)
                try:
                    for child in os.listdir(sub):
                        steps += 1
                        counter += 1
                        os.rename(child, f".up{counter}.{child[:100]}", src_dir_fd=sub,
                                  dst_dir_fd=top)
                finally:
                    os.close(sub)
                os.rmdir(name, dir_fd=top)
    except OSError:
        pass
    finally:
        os.close(top)
    try:
        os.rmdir(path)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _open_dir_fd_chmod(fd: int) -> None:
    try:
        mode = os.fstat(fd).st_mode
        if mode & 0o700 != 0o700:
            os.fchmod(fd, 0o700)
    except OSError:
        pass


def _open_subdir(top: int, name: str) -> int:
    """A descriptor of folder ``name`` in ``top`` (not a link), made readable and writable."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        fd = os.open(name, flags, dir_fd=top)
    except PermissionError:  # not ours to read: fix the mode without following a link
        if hasattr(os, "O_PATH"):  # Linux: through an O_PATH descriptor of the folder itself
            path_fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=top)
            try:
                os.chmod(f"/proc/self/fd/{path_fd}", 0o700)
            finally:
                os.close(path_fd)
        else:  # BSD, macOS: lchmod
            os.chmod(name, 0o700, dir_fd=top, follow_symlinks=False)
        fd = os.open(name, flags, dir_fd=top)
    _open_dir_fd_chmod(fd)
    return fd
