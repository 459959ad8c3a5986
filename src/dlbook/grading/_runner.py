"""The program that runs ONE student submission inside the grading sandbox.

It is started by :mod:`dlbook.grading.sandbox` as a plain script (``python -s -B _runner.py W``),
never imported by the grader, and it imports nothing from dlbook: everything it needs is in this
file, the standard library and numpy. It trusts nothing that happens after the first student
line runs, and the grader trusts nothing it writes (see ``exercises/README.md``, threat model).

Work directory ``W`` (prepared by the grader before this process starts):

    sandbox.json   limits and, in namespace mode, what to hide and make read-only
    cells.json     the submission's code cells (list of source strings)
    probes.json    [{"question", "probe", "source"}]: small functions from the exercise's grader
                   cells that call the student's functions on hidden inputs
    inputs.npz     the hidden inputs, keys "<question>/<name>", loaded with allow_pickle=False
    work/          the student's working directory (cwd, HOME, TMPDIR)

Written here, read back by the grader as data only:

    events.jsonl   one JSON object per line: cell errors, probe errors, sys.exit, "finished"
    out/<question>__<probe>.npz   the probe's return value(s) as plain numeric arrays

Order of work: confine (namespace mode: mounts, capabilities) -> resource limits -> execute the
cells top to bottom in one namespace (an exception in a cell is reported and the next cell runs,
as in otter's grading; ``sys.exit`` stops the cells) -> run every probe, each guarded on its own
-> "finished" -> ``os._exit``.
"""

import ctypes
import json
import linecache
import os
import random
import resource
import sys
import traceback

# The runner's own directory must not shadow anything the student imports.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

MAX_MESSAGE = 2000          # characters of an exception message kept in an event
MAX_TRACEBACK = 6000        # characters of a formatted traceback kept in an event

# ---------------------------------------------------------------------------------------------
# Confinement (namespace mode only). We are root inside fresh user/pid/net/mount namespaces
# (or real root inside pid/net/mount namespaces); nothing of the student's has run yet.
# ---------------------------------------------------------------------------------------------
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
O_PATH = getattr(os, "O_PATH", 0o10000000)
DEV_NODES = ("null", "zero", "full", "random", "urandom")

_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)  # the interpreter's own libc: mount, prctl, capset
    return _libc


def _mount(source, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    if _c().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _is_under(path, parent):
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _mask(directory, keep, warnings):
    """Cover ``directory`` with an empty tmpfs, then bind back the ``keep`` paths under it."""
    if not os.path.isdir(directory) or any(_is_under(directory, path) for path in keep):
        return  # never hide something the sandbox needs, or a part of it
    kept = []
    for path in keep:
        if _is_under(path, directory) and os.path.exists(path):
            kept.append((path, os.open(path, O_PATH), os.path.isdir(path)))
    _mount("tmpfs", directory, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,mode=755")
    for path, fd, is_dir in sorted(kept):
        try:
            if is_dir:
                os.makedirs(path, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "a").close()
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        except OSError as exc:
            warnings.append(str(exc))
        finally:
            os.close(fd)


def confine(config, workdir):
    """Hide what the submission must not read, make every mount read-only except ``workdir``,
    give it a minimal /dev, and drop every capability. Returns a list of warnings."""
    warnings = []
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    keep = sorted(set(config["keep"]) | {workdir})
    for directory in sorted(config["hide_dirs"], key=lambda p: (p.count("/"), p)):
        try:
            _mask(directory, keep, warnings)
        except OSError as exc:
            warnings.append(str(exc))
    null = os.open("/dev/null", O_PATH)
    for path in config["hide_files"]:
        try:
            if os.path.isfile(path):
                _mount(f"/proc/self/fd/{null}", path, None, MS_BIND)
        except OSError as exc:
            warnings.append(str(exc))
    # the work directory becomes its own mount so it stays writable when the rest turns read-only
    if os.path.isdir(workdir):
        _mount(workdir, workdir, None, MS_BIND | MS_REC)
    # a minimal /dev: no disks, no terminals, no shared memory
    dev_fds = {name: os.open(f"/dev/{name}", O_PATH) for name in DEV_NODES if os.path.exists(f"/dev/{name}")}
    _mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755")
    for name, fd in dev_fds.items():
        open(f"/dev/{name}", "w").close()
        _mount(f"/proc/self/fd/{fd}", f"/dev/{name}", None, MS_BIND)
        os.close(fd)
    for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"/dev/{link}")
    # everything read-only, except the work directory and the device nodes just bound
    skip = {workdir} | {f"/dev/{name}" for name in dev_fds}
    with open("/proc/self/mountinfo") as f:
        mounts = [(line.split()[4].replace("\\040", " "), line.split()[5].split(",")) for line in f]
    for point, options in mounts:
        if point in skip or "ro" in options:
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        flags |= MS_NOSUID if "nosuid" in options else 0
        flags |= MS_NODEV if "nodev" in options else 0
        flags |= MS_NOEXEC if "noexec" in options else 0
        try:
            _mount(None, point, None, flags)
        except FileNotFoundError:
            pass  # under a hidden directory or the old /dev: shadowed, out of reach
        except OSError as exc:
            warnings.append(str(exc))
    os.close(null)
    # no capabilities now or after any exec, and no way to gain privileges back
    libc = _c()
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last_cap = int(f.read())
    except OSError:
        last_cap = 63
    for cap in range(last_cap + 1):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)

    class _Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class _Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    header, data = _Header(0x20080522, 0), (_Data * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
    return warnings


def set_limits(config):
    """Lower this process's resource limits (children inherit them)."""
    def lower(which, value):
        if value is None:
            return
        hard = resource.getrlimit(which)[1]
        value = int(value)
        new_hard = value if hard == resource.RLIM_INFINITY else min(hard, value)
        resource.setrlimit(which, (min(value, new_hard), new_hard))

    lower(resource.RLIMIT_AS, config.get("memory_bytes"))
    cpu = config.get("cpu_seconds")
    if cpu is not None:  # SIGXCPU at the soft limit, SIGKILL at the hard one
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        cpu = int(cpu) if hard == resource.RLIM_INFINITY else min(int(cpu), hard - 2)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 2))
    lower(resource.RLIMIT_FSIZE, config.get("file_bytes"))
    lower(resource.RLIMIT_NOFILE, config.get("open_files"))
    lower(resource.RLIMIT_CORE, 0)
    if config.get("processes") is not None and hasattr(resource, "RLIMIT_NPROC"):
        lower(resource.RLIMIT_NPROC, config["processes"])


# ---------------------------------------------------------------------------------------------
# Executing the submission and the probes
# ---------------------------------------------------------------------------------------------
class Reporter:
    """Appends one JSON object per line to events.jsonl (flushed at once: the process may die)."""

    def __init__(self, path):
        self._file = open(path, "a", encoding="utf-8")

    def __call__(self, **event):
        try:
            self._file.write(json.dumps(event, sort_keys=True) + "\n")
            self._file.flush()
        except Exception:  # the student may have closed or filled our file; nothing to do
            pass


def _clip(text, limit):
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} characters cut]"


def _describe(exc):
    """Type, message and a traceback restricted to the student's cells and the probe."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__)
              if frame.filename.startswith("<cell ") or frame.filename.startswith("<probe ")]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc)
    try:
        message = str(exc)
    except Exception:
        message = "<unprintable>"
    return dict(type=type(exc).__name__, message=_clip(message, MAX_MESSAGE),
                traceback=_clip("".join(lines), MAX_TRACEBACK),
                memory=isinstance(exc, MemoryError))


def _neutralise_magics(source):
    """IPython ``%magic`` and ``!shell`` lines are not Python; keep them as comments."""
    out = []
    for line in source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            line = line[: len(line) - len(stripped)] + "pass  # " + stripped
        out.append(line)
    return "\n".join(out) + "\n"


def run_cells(cells, namespace, report):
    """Execute the notebook's code cells in order in ``namespace``, as "Run All" with errors allowed.

    A cell that raises is reported and the next one runs; ``sys.exit`` stops the cells there.
    """
    for index, source in enumerate(cells):
        name = f"<cell {index}>"
        source = _neutralise_magics(source)
        linecache.cache[name] = (len(source), None, source.splitlines(True), name)
        try:
            code = compile(source, name, "exec")
            exec(code, namespace)
        except SystemExit as exc:
            report(event="exit", cell=index, code=_clip(repr(exc.code), 200))
            return
        except BaseException as exc:  # noqa: B036 - a cell may raise anything, even KeyboardInterrupt
            report(event="cell_error", cell=index, **_describe(exc))


def _to_arrays(value, np, max_elements):
    """The probe's return value as {key: numeric ndarray}; a bare value gets the key "value"."""
    items = value.items() if isinstance(value, dict) else [("value", value)]
    arrays = {}
    for key, item in items:
        array = np.asarray(item)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"expected numbers, got {type(item).__name__} (dtype {array.dtype})")
        if array.size > max_elements:
            raise ValueError(f"result has {array.size} elements, more than the {max_elements} allowed")
        arrays[str(key)] = np.array(array, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
    return arrays


def run_probes(probes, namespace, inputs, outdir, report, np, max_elements):
    """Call each question's probe on its hidden inputs and save the numeric results as ``.npz``.

    Only arrays of numbers leave the sandbox (written to a temporary name, then renamed); a probe
    that raises or exits is reported as a ``probe_error`` event instead.
    """
    for spec in probes:
        question, probe = spec["question"], spec["probe"]
        name = f"<probe {question}/{probe}>"
        linecache.cache[name] = (len(spec["source"]), None, spec["source"].splitlines(True), name)
        try:
            scope = dict(namespace)
            scope["np"] = np
            exec(compile(spec["source"], name, "exec"), scope)
            mine = {key.split("/", 1)[1]: np.array(inputs[key]) for key in inputs.files
                    if key.split("/", 1)[0] == question}
            arrays = _to_arrays(scope[f"probe_{probe}"](mine), np, max_elements)
            final = os.path.join(outdir, f"{question}__{probe}.npz")
            partial = final + ".partial.npz"
            np.savez(partial, **arrays)
            os.replace(partial, final)
            report(event="probe_done", question=question, probe=probe)
        except SystemExit as exc:
            report(event="probe_error", question=question, probe=probe, type="SystemExit",
                   message=f"called sys.exit({_clip(repr(exc.code), 200)})", traceback="", memory=False)
        except BaseException as exc:  # noqa: B036
            report(event="probe_error", question=question, probe=probe, **_describe(exc))


def main():
    """Entry point inside the sandbox: read ``sandbox.json`` from the work folder, run cells, then probes."""
    workdir = os.path.abspath(sys.argv[1])
    with open(os.path.join(workdir, "sandbox.json"), encoding="utf-8") as f:
        config = json.load(f)
    warnings = []
    if config.get("isolation") == "namespaces":
        # our own process group inside the pid namespace: kill(0, ...) from the submission must
        # not reach the unshare process outside it, whose death would cut the run short at random
        os.setsid()
    if config.get("pids_cgroup"):  # root only: cap the number of processes (RLIMIT_NPROC spares root)
        try:
            with open(config["pids_cgroup"], "w") as f:
                f.write("0")  # "0" moves the writing process; its descendants follow
        except OSError as exc:
            warnings.append(f"pids cgroup: {exc}")
    if config.get("isolation") == "namespaces":
        warnings += confine(config, workdir)
    set_limits(config)
    report = Reporter(os.path.join(workdir, "events.jsonl"))
    report(event="started", warnings=warnings)
    with open(os.path.join(workdir, "cells.json"), encoding="utf-8") as f:
        cells = json.load(f)
    with open(os.path.join(workdir, "probes.json"), encoding="utf-8") as f:
        probes = json.load(f)
    os.chdir(os.path.join(workdir, "work"))

    import numpy as np  # after the limits: numpy's import counts against them like the student's

    inputs = np.load(os.path.join(workdir, "inputs.npz"), allow_pickle=False)
    baseline = set(sys.modules)
    random.seed(0)
    np.random.seed(0)
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    run_cells(cells, namespace, report)
    run_probes(probes, namespace, inputs, os.path.join(workdir, "out"), report, np,
               int(config.get("max_elements", 1 << 22)))
    imported = sorted({name.split(".")[0] for name in set(sys.modules) - baseline})
    report(event="finished", imports=imported)
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(0)


if __name__ == "__main__":
    main()
