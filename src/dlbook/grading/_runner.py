"""The program that runs ONE student submission inside the grading sandbox.

It is started by :mod:`dlbook.grading.sandbox` as a plain script (``python -I -S -B _runner.py``)
and imports nothing from dlbook: everything it needs is in this file, the standard library and
numpy. The grader imports it only for the frame format (:class:`FrameReader`, :func:`frame`).

Input (prepared by the grader, never a file the submission can reach):

    stdin   one JSON document: ``config`` (limits, isolation, what to mount), ``cells`` (the
            notebook's code cells), ``probes`` ([{"question", "probe", "source"}]) and
            ``inputs`` (the hidden inputs as base64 npz); read whole, then replaced by /dev/null
    fd N    the results channel to the grader (the write end of a pipe, in no folder;
            ``config["channel_fd"]``)

Two processes. The **supervisor** (this script's first process; root in namespace mode) reads
the input, builds the sandbox (namespace mode: a fresh root from an allowlist, see
:func:`build_root`), then forks the **executor**, which closes that descriptor, drops to an
unprivileged uid, lowers its limits and runs the cells and the probes. The executor sends what
it has to say (cell errors, probe values, "finished") to the supervisor through a pipe of its
own; the supervisor keeps only frames that fit the protocol (a known cell or probe, once each,
bounded sizes) and relays them on the channel, marked ``"source": "submission"``, followed by
its own record of how the executor ended (``child_exit``). The submission's code can write to
its own pipe, so what it relays are claims about itself (its own answers and notes), bounded;
it cannot write the channel.

Frame: 8 bytes (header length, body length; unsigned big-endian 32-bit), a JSON object, the body.
"""

import base64
import ctypes
import io
import json
import linecache
import os
import platform
import random
import select
import struct
import sys
import time
import traceback

MAX_MESSAGE = 2000          # characters of an exception message kept in an event
MAX_TRACEBACK = 6000        # characters of a formatted traceback kept in an event
MAX_HEADER = 64 * 1024      # bytes of one frame's JSON header
MAX_BODY = 16 * 1024 * 1024  # bytes of one frame's body (one probe's npz)
MAX_RELAYED = 256 * 1024 * 1024  # bytes the supervisor accepts from the executor in total
HOME = "/home/student"      # the submission's folder inside the namespace sandbox
STUDENT_UID = 65534         # nobody: the executor's uid when the grader runs as root
RELAYED_KINDS = ("cell_error", "exit", "probe_done", "probe_error", "finished")

# ---------------------------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------------------------


def frame(header, body=b""):
    """One frame: lengths, the JSON header, the body bytes."""
    head = json.dumps(header, sort_keys=True).encode("utf-8")
    return struct.pack(">II", len(head), len(body)) + head + body


class FrameReader:
    """Splits a byte stream into (header dict, body bytes) frames, within fixed bounds.

    A frame over the size bounds, a header that is not a JSON object, more than ``max_frames``
    frames or more than ``max_bytes`` bytes in all mark the stream ``broken``: the rest is
    ignored. With ``keep`` the frames are also collected in ``self.frames``.
    """

    def __init__(self, max_frames, max_bytes, max_body=MAX_BODY, keep=True):
        self.max_frames, self.max_bytes, self.max_body = max_frames, max_bytes, max_body
        self.keep = keep
        self.buffer = bytearray()
        self.frames = []
        self.count = 0
        self.total = 0
        self.broken = False

    def feed(self, data):
        """Add bytes; returns the frames they completed."""
        if self.broken:
            return []
        self.total += len(data)
        if self.total > self.max_bytes:
            self.broken = True
            self.buffer = bytearray()
            return []
        self.buffer += data
        done = []
        start = 0
        while len(self.buffer) - start >= 8:
            size_head, size_body = struct.unpack_from(">II", self.buffer, start)
            if size_head > MAX_HEADER or size_body > self.max_body:
                self.broken = True
                break
            end = start + 8 + size_head + size_body
            if len(self.buffer) < end:
                break
            raw = bytes(self.buffer[start + 8:start + 8 + size_head])
            body = bytes(self.buffer[start + 8 + size_head:end])
            start = end
            try:
                header = json.loads(raw.decode("utf-8"))
            except ValueError:
                header = None
            if not isinstance(header, dict) or self.count >= self.max_frames:
                self.broken = True
                break
            self.count += 1
            done.append((header, body))
        if self.broken:
            self.buffer = bytearray()
        else:
            del self.buffer[:start]
        if self.keep:
            self.frames += done
        return done


def _clip(text, limit):
    text = str(text)
    if len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} characters cut]"


def _text(value, limit):
    return _clip(value, limit) if isinstance(value, str) else ""


def sanitise(header, body, *, cells, probes, seen):
    """The executor's frame as the supervisor relays it, or None when it breaks the protocol.

    Kept: one event per cell (``cell_error`` / ``exit``), one per probe (``probe_done`` with its
    npz body / ``probe_error``), one ``finished``, the first of each. Fields are copied by name
    and type, strings clipped. ``seen`` is the set of keys already used.
    """
    kind = header.get("event")
    if kind not in RELAYED_KINDS:
        return None
    out = {"event": kind, "source": "submission"}
    if kind in ("cell_error", "exit"):
        cell = header.get("cell")
        if not isinstance(cell, int) or isinstance(cell, bool) or not 0 <= cell < cells:
            return None
        key = ("cell", cell)
        out["cell"] = cell
    elif kind in ("probe_done", "probe_error"):
        key = ("probe", header.get("question"), header.get("probe"))
        if key[1:] not in probes:
            return None
        out["question"], out["probe"] = key[1], key[2]
    else:
        key = ("finished",)
        imports = header.get("imports")
        out["imports"] = sorted({i[:100] for i in imports if isinstance(i, str)})[:200] \
            if isinstance(imports, list) else []
    if key in seen:
        return None
    seen.add(key)
    if kind in ("cell_error", "probe_error"):
        out["type"] = _text(header.get("type"), 100)
        out["message"] = _text(header.get("message"), MAX_MESSAGE)
        out["traceback"] = _text(header.get("traceback"), MAX_TRACEBACK)
        out["memory"] = header.get("memory") is True
    elif kind == "exit":
        out["code"] = _text(header.get("code"), 200)
    return out, (body if kind == "probe_done" else b"")


# ---------------------------------------------------------------------------------------------
# Building the sandbox (namespace mode, in the supervisor, before any student code exists)
# ---------------------------------------------------------------------------------------------
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
CLONE_NEWCGROUP = 0x02000000
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
DEV_NODES = ("null", "zero", "full", "random", "urandom")

_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)  # the interpreter's own libc
    return _libc


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(_c().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {target}")


def _bind(source, target, flags=0):
    """Bind ``source`` at ``target`` read-only (``target`` created as a folder or a file)."""
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    _mount(source, target, None, MS_BIND | MS_REC)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | flags)


def hidden_entry(name, hidden):
    """True for a site-packages entry that belongs to a hidden distribution (``hidden``)."""
    low = name.lower()
    base = low.split("-", 1)[0].split(".", 1)[0]
    return base in hidden or "dlbook" in low


def build_root(config):
    """A fresh tmpfs root: read-only binds of the allowlist, a private home, /dev, /proc; pivot.

    Everything the submission can see afterwards: ``config["allow"]`` (/usr, the /lib folders,
    the interpreter), each entry of ``config["site_packages"]`` except those of
    ``config["hidden_packages"]`` and anything named after dlbook, a few
    generated /etc files, /dev with five nodes, a /proc of its own pid namespace, and ``HOME``
    (a tmpfs of ``config["disk_bytes"]``, its only writable place; /tmp points there).
    """
    warnings = []
    root = config["root_dir"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=755")
    for name in sorted(os.listdir("/")):  # /bin -> usr/bin etc. as on the host
        if os.path.islink("/" + name) and (name.startswith("lib") or name in ("bin", "sbin")):
            os.symlink(os.readlink("/" + name), os.path.join(root, name))
    hidden = set(config.get("hidden_packages", ()))
    for path in config["allow"]:
        if not os.path.exists(path):
            continue
        target = root + path
        if os.path.exists(target) or os.path.islink(target):
            continue  # inside something already bound, or a host symlink already made
        _bind(path, target)
    for site in config.get("site_packages", ()):
        # a tmpfs of its own, then a read-only bind per allowed entry: a hidden package is not
        # there at all (an empty folder in its place would import as a namespace package)
        if not os.path.isdir(site):
            continue
        target_site = root + site
        os.makedirs(target_site, exist_ok=True)
        _mount("tmpfs", target_site, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")
        for name in sorted(os.listdir(site)):
            if hidden_entry(name, hidden) or os.path.islink(os.path.join(site, name)):
                continue
            try:
                _bind(os.path.join(site, name), os.path.join(target_site, name))
            except OSError as exc:
                warnings.append(str(exc))
        _mount(None, target_site, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    for folder in config.get("masked", ()):
        # the base interpreter's site-packages when numpy comes from elsewhere (a venv): empty
        target = root + folder
        if os.path.isdir(target):
            _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, "size=4k,mode=755")
            _mount(None, target, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    uid = config["student_uid"]
    etc = os.path.join(root, "etc")
    os.makedirs(etc, exist_ok=True)
    with open(os.path.join(etc, "passwd"), "w") as f:
        f.write(f"root:x:0:0::/:/bin/false\nstudent:x:{uid}:{uid}::{HOME}:/bin/false\n")
    with open(os.path.join(etc, "group"), "w") as f:
        f.write(f"root:x:0:\nstudent:x:{uid}:\n")
    with open(os.path.join(etc, "hosts"), "w") as f:
        f.write("127.0.0.1 localhost\n")
    for name in ("ld.so.cache", "localtime"):
        if os.path.isfile("/etc/" + name):
            _bind(os.path.realpath("/etc/" + name), os.path.join(etc, name))
    home = root + HOME
    os.makedirs(home)
    _mount("tmpfs", home, "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={int(config['disk_bytes'])},mode=700,uid={uid},gid={uid}")
    if not os.path.lexists(os.path.join(root, "tmp")):
        os.symlink(HOME.lstrip("/"), os.path.join(root, "tmp"))
    # else an allowed folder lives under /tmp (say, a virtual environment in a temporary
    # folder): /tmp stays the read-only folder that holds it, and TMPDIR points to HOME
    dev = os.path.join(root, "dev")
    os.makedirs(dev)
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=4k,mode=755")
    for name in DEV_NODES:
        if os.path.exists(f"/dev/{name}"):
            open(os.path.join(dev, name), "w").close()
            _mount(f"/dev/{name}", os.path.join(dev, name), None, MS_BIND)
    for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, os.path.join(dev, link))
    _mount(None, dev, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC)
    os.makedirs(os.path.join(root, "proc"))
    # mounted before the pivot, while the pid namespace's own /proc is still visible (a user
    # namespace may mount proc only then)
    _mount("proc", os.path.join(root, "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"pivot_root: unknown system call number on {platform.machine()}")
    os.chdir(root)
    _check(_c().syscall(ctypes.c_long(number), b".", b"."), "pivot_root")
    _check(_c().umount2(b".", MNT_DETACH), "umount old root")
    os.chdir("/")
    # recursive binds may have brought writable submounts along: make them read-only too
    with open("/proc/self/mountinfo") as f:
        mounts = [(line.split()[4].replace("\\040", " "), line.split()[5].split(",")) for line in f]
    keep = {HOME, "/proc"} | {f"/dev/{name}" for name in DEV_NODES}
    for point, options in mounts:
        if point in keep or point.startswith("/proc/") or "ro" in options:
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        flags |= MS_NOSUID if "nosuid" in options else 0
        flags |= MS_NODEV if "nodev" in options else 0
        flags |= MS_NOEXEC if "noexec" in options else 0
        try:
            _mount(None, point, None, flags)
        except OSError as exc:
            warnings.append(str(exc))
    return warnings


def drop_privileges(uid):
    """No capabilities now or after any exec, no way to regain them; ``uid`` if we are root."""
    libc = _c()
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last_cap = int(f.read())
    except OSError:
        last_cap = 63
    for cap in range(last_cap + 1):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    if os.getuid() == 0 and uid is not None and uid != 0:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # from root to another uid: every capability is cleared
        if os.getuid() != uid or os.geteuid() != uid:
            raise OSError("could not change to the unprivileged uid")
    else:
        class _Header(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

        class _Data(ctypes.Structure):
            _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                        ("inheritable", ctypes.c_uint32)]

        header, data = _Header(0x20080522, 0), (_Data * 2)()
        _check(libc.capset(ctypes.byref(header), data), "capset")
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")


# System calls the submission never needs, refused with EPERM by a seccomp filter: new
# namespaces (a user namespace would let it mount an unbounded tmpfs and reach far more kernel
# code), mounts, the kernel keyrings (shared by every process of the student uid), memory outside
# every file system (memfd), and a few large kernel surfaces. clone() is refused only with a
# namespace flag; clone3() gets ENOSYS (its flags are in memory a filter cannot read), and libc
# then falls back to clone().
_DENIED = ("unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "open_tree",
           "move_mount", "fsopen", "fsconfig", "fsmount", "mount_setattr", "add_key",
           "request_key", "keyctl", "memfd_create", "memfd_secret", "bpf", "userfaultfd",
           "perf_event_open", "io_uring_setup", "io_uring_enter", "io_uring_register")
SYSCALLS = {
    "x86_64": dict(unshare=272, setns=308, mount=165, umount2=166, pivot_root=155, chroot=161,
                   open_tree=428, move_mount=429, fsopen=430, fsconfig=431, fsmount=432,
                   mount_setattr=442, add_key=248, request_key=249, keyctl=250,
                   memfd_create=319, memfd_secret=447, bpf=321, userfaultfd=323,
                   perf_event_open=298, io_uring_setup=425, io_uring_enter=426,
                   io_uring_register=427, clone=56, clone3=435),
    "aarch64": dict(unshare=97, setns=268, mount=40, umount2=39, pivot_root=41, chroot=51,
                    open_tree=428, move_mount=429, fsopen=430, fsconfig=431, fsmount=432,
                    mount_setattr=442, add_key=217, request_key=218, keyctl=219,
                    memfd_create=279, memfd_secret=447, bpf=280, userfaultfd=282,
                    perf_event_open=241, io_uring_setup=425, io_uring_enter=426,
                    io_uring_register=427, clone=220, clone3=435),
}
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
CLONE_NAMESPACES = 0x7E020000  # NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
RET_ALLOW, RET_KILL_PROCESS, RET_ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
EPERM, ENOSYS = 1, 38


def seccomp_program(machine):
    """The filter as a list of classic-BPF ``(code, jt, jf, k)``; None on an unknown machine."""
    numbers, arch = SYSCALLS.get(machine), AUDIT_ARCH.get(machine)
    if numbers is None or arch is None:
        return None
    ld_w, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    # labels at the end: ALLOW, DENY (EPERM), NOSYS, KILL, CLONE (check flags)
    denied = [numbers[name] for name in _DENIED]
    head = [(ld_w, 0, 0, 4), ("arch",), (ld_w, 0, 0, 0)]
    if machine == "x86_64":
        head.append(("x32",))  # the x32 ABI's numbers (bit 30) are refused wholesale
    body = [("deny", n) for n in denied] + [("nosys", numbers["clone3"]),
                                            ("clone", numbers["clone"])]
    tail_start = len(head) + len(body) + 1  # +1: the final "allow" after the checks
    labels = {"ALLOW": tail_start, "DENY": tail_start + 1, "NOSYS": tail_start + 2,
              "KILL": tail_start + 3, "CLONE": tail_start + 4}
    program = []
    for item in head + body:
        i = len(program)
        if item[0] == "arch":
            program.append((jeq, 0, labels["KILL"] - i - 1, arch))
        elif item[0] == "x32":
            program.append((jge, labels["DENY"] - i - 1, 0, 0x40000000))
        elif item[0] == "deny":
            program.append((jeq, labels["DENY"] - i - 1, 0, item[1]))
        elif item[0] == "nosys":
            program.append((jeq, labels["NOSYS"] - i - 1, 0, item[1]))
        elif item[0] == "clone":
            program.append((jeq, labels["CLONE"] - i - 1, 0, item[1]))
        else:
            program.append(item)
    program += [(ret, 0, 0, RET_ALLOW),                       # ALLOW (fall-through: allowed)
                (ret, 0, 0, RET_ALLOW),
                (ret, 0, 0, RET_ERRNO | EPERM),               # DENY
                (ret, 0, 0, RET_ERRNO | ENOSYS),              # NOSYS
                (ret, 0, 0, RET_KILL_PROCESS),                # KILL: another architecture's calls
                (ld_w, 0, 0, 16),                             # CLONE: low word of the flags
                (jset, 0, 1, CLONE_NAMESPACES),
                (ret, 0, 0, RET_ERRNO | EPERM),
                (ret, 0, 0, RET_ALLOW)]
    return program


def install_seccomp(machine=None):
    """Load the filter into this process (and every later child); needs ``no_new_privs``.

    Returns False on a machine whose system call numbers are not known here (nothing loaded).
    """
    program = seccomp_program(machine or platform.machine())
    if program is None:
        return False

    class _Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]

    class _Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Filter))]

    filters = (_Filter * len(program))(*[_Filter(*f) for f in program])
    prog = _Program(len(program), filters)
    libc = _c()
    libc.prctl.argtypes = None
    _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0),
           "PR_SET_SECCOMP")
    return True


def set_limits(config):
    """Lower this process's resource limits (children inherit them)."""
    import resource  # POSIX only: imported here so that the grader can import this module anywhere

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
# The executor: the submission's cells, then the probes
# ---------------------------------------------------------------------------------------------
class Reporter:
    """Sends frames to the supervisor (the executor's only way out besides stdout)."""

    def __init__(self, fd):
        self._fd = fd

    def __call__(self, body=b"", **event):
        try:
            data = frame(event, body)
            while data:
                data = data[os.write(self._fd, data):]
        except Exception:  # the student may have closed our pipe; nothing to do
            pass


def _describe(exc):
    """Type, message and a traceback restricted to the student's cells and the probe."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f.filename.startswith("<cell ") or f.filename.startswith("<probe ")]
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
    """Execute the notebook's code cells in order in ``namespace`` ("Run All", errors allowed).

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
        except BaseException as exc:  # noqa: B036 - a cell may raise anything
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
            raise ValueError(f"result has {array.size} elements, more than the {max_elements} "
                             "allowed")
        arrays[str(key)] = np.array(array, order="C")  # (ascontiguousarray makes 0-d arrays 1-d)
    return arrays


def run_probes(probes, namespace, inputs, report, np, max_elements):
    """Call each question's probe on its hidden inputs and send the numeric results as npz.

    Only arrays of numbers leave the sandbox; a probe that raises or exits is reported as a
    ``probe_error`` event instead.
    """
    for spec in probes:
        question, probe = spec["question"], spec["probe"]
        name = f"<probe {question}/{probe}>"
        linecache.cache[name] = (len(spec["source"]), None, spec["source"].splitlines(True), name)
        try:
            scope = dict(namespace)
            scope["np"] = np
            exec(compile(spec["source"], name, "exec"), scope)
            mine = {key.split("/", 1)[1]: np.array(value) for key, value in inputs.items()
                    if key.split("/", 1)[0] == question}
            arrays = _to_arrays(scope[f"probe_{probe}"](mine), np, max_elements)
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
            report(buffer.getvalue(), event="probe_done", question=question, probe=probe)
        except SystemExit as exc:
            report(event="probe_error", question=question, probe=probe, type="SystemExit",
                   message=f"called sys.exit({_clip(repr(exc.code), 200)})", traceback="",
                   memory=False)
        except BaseException as exc:  # noqa: B036
            report(event="probe_error", question=question, probe=probe, **_describe(exc))


def executor(config, payload, write_fd):
    """The child: drop privileges, lower limits, run the cells and the probes, exit."""
    code = 0
    try:
        if config["isolation"] == "namespaces":
            os.setsid()  # kill(0, ...) from the submission reaches its own processes only
            drop_privileges(config.get("student_uid"))
            if config.get("seccomp", True):
                install_seccomp()
            os.chdir(HOME)
        set_limits(config)
    except BaseException as exc:  # noqa: B036 - nothing of the student's has run: report and stop
        os.write(2, f"sandbox: could not confine the submission: {exc}\n".encode())
        os._exit(70)
    report = Reporter(write_fd)
    cells, probes = payload["cells"], payload["probes"]
    import numpy as np  # after the limits: numpy's import counts against them like the student's

    with np.load(io.BytesIO(base64.b64decode(payload["inputs"])), allow_pickle=False) as npz:
        inputs = {key: npz[key] for key in npz.files}
    baseline = set(sys.modules)
    random.seed(0)
    np.random.seed(0)
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    run_cells(cells, namespace, report)
    run_probes(probes, namespace, inputs, report, np, int(config.get("max_elements", 1 << 20)))
    imported = sorted({name.split(".")[0] for name in set(sys.modules) - baseline})
    report(event="finished", imports=imported)
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


# ---------------------------------------------------------------------------------------------
# The supervisor
# ---------------------------------------------------------------------------------------------
def _send(channel, header, body=b""):
    data = frame(header, body)
    while data:
        data = data[os.write(channel, data):]


def relay(read_fd, channel, pid, payload):
    """Relay the executor's valid frames until it has exited and its pipe is drained.

    Returns the executor's wait status. Processes the executor left behind may hold the pipe
    open; they do not keep the supervisor waiting (the grader kills them all afterwards).
    """
    probes = {(p["question"], p["probe"]) for p in payload["probes"]}
    cells = len(payload["cells"])
    # what is relayed is bounded by the protocol (one frame per cell and per probe); what is
    # read, by bytes (frames the protocol rejects cost the sandbox's own time only)
    reader = FrameReader(max_frames=1 << 30, max_bytes=MAX_RELAYED, keep=False)
    seen = set()
    status, exited_at = None, None
    os.set_blocking(read_fd, False)
    while True:
        ready, _, _ = select.select([read_fd], [], [], 0.05)
        eof = False
        if ready:
            try:
                data = os.read(read_fd, 1 << 20)
            except BlockingIOError:
                data = None
            if data == b"":
                eof = True
            elif data:
                for header, body in reader.feed(data):
                    kept = sanitise(header, body, cells=cells, probes=probes, seen=seen)
                    if kept is not None:
                        _send(channel, *kept)
        if status is None:
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                status, exited_at = wait_status, time.monotonic()
        # after the executor's exit: what it wrote is in the pipe; a leftover process that keeps
        # writing gets half a second, then the supervisor stops listening
        if status is not None and (eof or not ready or time.monotonic() - exited_at > 0.5):
            break
    if reader.broken:
        _send(channel, {"event": "overflow", "source": "supervisor"})
    return status


def main():
    """Entry point: read the input, build the sandbox, fork the executor, relay, report."""
    payload = json.loads(sys.stdin.buffer.read())
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    config = payload["config"]
    channel = int(config["channel_fd"])
    sys.path += config.get("python_path", [])  # numpy's site-packages (-S: no .pth files)
    warnings = []
    for procs in config.get("cgroups") or []:  # root only: pids, memory and cpu cgroups
        try:
            with open(procs, "w") as f:
                f.write("0")  # "0" moves the writing process; its descendants follow
        except OSError as exc:
            warnings.append(f"cgroup: {exc}")
    if config["isolation"] == "namespaces":
        try:
            _check(_c().unshare(CLONE_NEWCGROUP), "unshare cgroup namespace")
            warnings += build_root(config)
        except Exception as exc:
            _send(channel, {"event": "sandbox", "source": "supervisor", "failed": _clip(exc, 500),
                               "warnings": warnings})
            os._exit(71)
    _send(channel, {"event": "sandbox", "source": "supervisor", "warnings": warnings})
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        os.close(channel)
        executor(config, payload, write_fd)
    os.close(write_fd)
    status = relay(read_fd, channel, pid, payload)
    if os.WIFSIGNALED(status):
        returncode = -os.WTERMSIG(status)
    else:
        returncode = os.WEXITSTATUS(status)
    _send(channel, {"event": "child_exit", "source": "supervisor", "returncode": returncode})
    os._exit(0)


if __name__ == "__main__":
    main()
