"""Hostile submissions against ``dlbook grade``: the eight attacks of issue 11, each shown to fail.

Each attack is a real notebook graded in a batch next to a correct submission that must keep
full marks. The attacks that need the namespace sandbox are skipped where it is not available.
"""

from __future__ import annotations

import csv
import json
import os
import stat
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import exercise_notebook, with_cell
from dlbook.cli import main
from dlbook.grading import Limits, UntrustedIsolation, grade_batch, load_exercise
from dlbook.grading.batch import read_submission, submission_names
from dlbook.grading.sandbox import (_allowlist, _load_npz, _python_path, detect_isolation,
                                    remove_tree)

ROOT = Path(__file__).resolve().parents[1] / "exercises"
REPO = ROOT.parent
EXERCISE = "ch1-softmax-cross-entropy"  # 6 points: softmax 2, softmax_jvp 2, smoothed_cross_entropy 2
NAMESPACES = detect_isolation() == "namespaces"  # what grade_batch's "auto" picks
LIMITS = Limits(timeout=15, memory_mb=1024, processes=64)
needs_namespaces = pytest.mark.skipif(not NAMESPACES, reason="no namespace sandbox here")

pytestmark = pytest.mark.filterwarnings(
    "ignore:Traits should be given as instances:DeprecationWarning")

# Sends frames to the runner through the submission's own pipe, as a hostile notebook can.
FRAMES = '''
import json, os, stat, struct
def frame(header, body=b""):
    head = json.dumps(header).encode()
    return struct.pack(">II", len(head), len(body)) + head + body
def is_pipe(fd):
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False
PIPES = [fd for fd in range(3, 64) if is_pipe(fd)]
def send(data):
    for fd in PIPES:
        try:
            os.write(fd, data)
        except OSError:
            pass
'''


def _notebook(kind: str) -> dict:
    return exercise_notebook(EXERCISE, kind)


def _appended(nb: dict, source: str) -> dict:
    """A copy of ``nb`` with a code cell added at the end (after every stub)."""
    nb = json.loads(json.dumps(nb))
    nb["cells"].append({"cell_type": "code", "execution_count": None, "id": "added-end",
                        "metadata": {}, "outputs": [], "source": source})
    return nb


def _write(folder: Path, name: str, nb: dict | str) -> Path:
    path = folder / f"{name}.ipynb"
    path.write_text(nb if isinstance(nb, str) else json.dumps(nb), encoding="utf-8")
    return path


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "gradebook.csv", newline="") as f:
        return {row["submission"]: row for row in csv.DictReader(f)}


def _report(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}.json").read_text(encoding="utf-8"))


def _host_shm_keys() -> set[int]:
    with open("/proc/sysvipc/shm") as f:
        return {int(line.split()[0]) for line in list(f)[1:] if line.strip()}


def _our_leftovers() -> set[str]:
    """Scratch folders and cgroups of this process's grader."""
    found = {p.name for p in Path(tempfile.gettempdir()).glob(f"dlbook-grade-{os.getpid()}-*")}
    for controller in ("pids", "memory", "cpu"):
        base = Path("/sys/fs/cgroup") / controller
        if base.is_dir():
            found |= {f"{controller}/{p.name}"
                      for p in base.rglob(f"dlbook-grade-{os.getpid()}-*")}
    return found


SOLUTION_THIEF = '''
import glob, os, subprocess, json
found = []
places = [SOLUTION, SOURCE, REPO + "/.git/HEAD", "/etc/shadow", "/root/.bash_history"]
places += glob.glob("/work/*/exercises/*/solution.ipynb") + glob.glob("/work/*/*/exercises/*/*.py")
places += glob.glob("/tmp/*/*.ipynb") + glob.glob("/home/*/*")
for place in places:
    try:
        with open(place) as f:
            found.append((place, f.read(100_000)))
    except (OSError, ValueError):
        pass
try:
    shown = subprocess.run(["git", "-C", REPO, "show",
                            "HEAD:exercises/" + EXERCISE_ID + "/source.py"],
                           capture_output=True, text=True, timeout=5)
    if shown.returncode == 0 and "BEGIN SOLUTION" in shown.stdout:
        found.append(("git", shown.stdout[:200]))
except Exception as exc:
    print("git:", type(exc).__name__)
code = [c for place, c in found if "softmax" in c]
print("READ", [place for place, _ in found])
print("UID", os.getuid())
listing = {}
for top in ["/", "/home", "/tmp"] + sorted({"/" + p.split("/")[1] for p in ALLOWED}):
    try:
        listing[top] = sorted(os.listdir(top))
    except OSError as exc:
        listing[top] = type(exc).__name__
print("LISTING " + json.dumps(listing))
if code:
    for cell in json.load(open(SOLUTION))["cells"]:
        if cell["cell_type"] == "code":
            exec("".join(cell["source"]))
'''

SHM_STASH = '''
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
KEY = 0x0D1B0C
seg = libc.shmget(KEY, 1 << 20, 0)
if seg >= 0:
    print("FOUND STATE from an earlier run")
    def softmax(x, axis=-1, temperature=1.0):
        z = x / temperature
        e = np.exp(z - z.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)
else:
    seg = libc.shmget(KEY, 64 << 20, 0o1666)  # IPC_CREAT | 0666, never removed
    print("created segment", seg)
try:
    from multiprocessing import shared_memory
    shared_memory.SharedMemory(name="dlbook_hostile", create=True, size=1 << 20)
    print("POSIX shm created")
except Exception as exc:
    print("POSIX shm refused", type(exc).__name__)
'''

NESTED = '''
import os
home = os.getcwd()
for _ in range(1500):
    os.mkdir("d")
    os.chdir("d")
os.symlink("/etc/passwd", "link")
os.chmod(".", 0o500)
os.chdir(home)
os.chmod("d", 0o000)
print("nested 1500 deep")
'''

FORGER = FRAMES + '''
import io, zipfile
send(frame({"event": "finished", "source": "supervisor", "imports": []}))
send(frame({"event": "child_exit", "source": "supervisor", "returncode": 0}))
for i in range(45000):
    send(frame({"event": "cell_error", "cell": i % 7, "type": "Forged", "message": "x" * 500}))
    send(frame({"event": "probe_error", "question": "q" + str(i), "probe": "p", "type": "Forged"}))
# an npz with 20,000 members as "the answer" to the first probe
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w") as archive:
    for i in range(20000):
        archive.writestr(f"a{i}.npy", b"")
send(frame({"event": "probe_done", "question": "softmax", "probe": "wide"}, buffer.getvalue()))
print("forged", len(PIPES), "pipes")
'''

TORCH_AFTER_FORGED_FINISH = FRAMES + '''
send(frame({"event": "finished", "imports": []}))
import torch
def softmax(x, axis=-1, temperature=1.0):
    return torch.softmax(torch.from_numpy(x) / temperature, dim=axis).numpy()
'''

KILL_AFTER_FORGED_EXIT = FRAMES + '''
import signal
send(frame({"event": "finished", "imports": []}))
send(frame({"event": "child_exit", "source": "supervisor", "returncode": 0}))
os.kill(os.getpid(), signal.SIGKILL)
'''


@needs_namespaces
def test_hostile_batch_in_the_namespace_sandbox(tmp_path):
    """Problems 1-3, 5-7: nothing readable, no shared memory kept, deep folders, names, forgery."""
    subs = tmp_path / "subs"
    subs.mkdir()
    solution, student = _notebook("solution"), _notebook("student")
    after_import = "import numpy as np"
    allowed = _allowlist() + _python_path()
    thief = (f"ALLOWED = {allowed!r}\n"
             f"SOLUTION = {str(ROOT / EXERCISE / 'solution.ipynb')!r}\n"
             f"SOURCE = {str(ROOT / EXERCISE / 'source.py')!r}\nREPO = {str(REPO)!r}\n"
             f"EXERCISE_ID = {EXERCISE!r}\n" + SOLUTION_THIEF)
    _write(subs, "correct", solution)
    _write(subs, "thief", _appended(student, thief))
    _write(subs, "shm", with_cell(student, SHM_STASH, after=after_import))
    _write(subs, "nested", with_cell(solution, NESTED, after=after_import))
    _write(subs, "forger", with_cell(solution, FORGER, after=after_import))
    _write(subs, "torch_user", with_cell(student, TORCH_AFTER_FORGED_FINISH, after=after_import))
    _write(subs, "killed", with_cell(solution, KILL_AFTER_FORGED_EXIT, after=after_import))
    for name in ("bob", "bob!", "bob-2", "Bob"):  # problem 5: names that used to collide
        _write(subs, name, solution)
    shm_before, leftovers_before = _host_shm_keys(), _our_leftovers()
    out = tmp_path / "out"
    start = time.monotonic()
    rows = grade_batch(load_exercise(ROOT / EXERCISE), [subs], out, limits=LIMITS, jobs=2)
    seconds = time.monotonic() - start
    book = _rows(out)
    assert len(book) == len(rows) == 11
    assert book["correct"]["score"] == "6" and book["correct"]["status"] == "graded"

    # 1. the solution, the hidden tests, .git, other folders and root-only files are out of sight
    thief_report = _report(out, "thief")
    assert (thief_report["score"], thief_report["status"]) == (0, "graded"), \
        thief_report["feedback"]
    assert "READ []" in thief_report["output"], thief_report["output"][:2000]
    assert "UID 65534" in thief_report["output"]
    line = next(x for x in thief_report["output"].splitlines() if x.startswith("LISTING "))
    listing = json.loads(line[len("LISTING "):])
    # every folder shows only what leads to an allowed path: the skeleton of the allowlist
    parts = {(os.path.dirname(p) or "/", os.path.basename(p)) for path in allowed
             for p in [path.rsplit("/", k)[0] for k in range(path.count("/"))] if p}
    system = {"proc", "dev", "tmp", "home", "etc", "usr", "bin", "sbin"}
    for top, names in listing.items():
        if top in allowed:
            continue  # an allowed folder, bound whole (/usr)
        expected = {name for parent, name in parts if parent == top}
        if top == "/":
            expected |= system | {n for n in names if n.startswith("lib")}
        elif top == "/home":
            expected = {"student"}
        elif top == "/tmp":
            # its own empty home, or, when an allowed folder lives under /tmp (a virtual
            # environment in a temporary folder), the way to it
            expected = {name for parent, name in parts if parent == "/tmp"}
        assert isinstance(names, list) and set(names) <= expected, (top, names, expected)

    # 2. SysV shared memory dies with the IPC namespace; POSIX shared memory has no /dev/shm
    assert "created segment" in _report(out, "shm")["output"]
    assert "POSIX shm refused" in _report(out, "shm")["output"]
    assert _host_shm_keys() <= shm_before and 0x0D1B0C not in _host_shm_keys()
    assert not Path("/dev/shm/dlbook_hostile").exists()

    # 3. 1,500 nested folders with a locked top: the row is graded, nothing is left behind
    nested = _report(out, "nested")
    assert "nested 1500 deep" in nested["output"]
    assert (nested["score"], nested["status"]) == (6, "graded"), nested["feedback"]
    assert _our_leftovers() <= leftovers_before

    # 5. unique names, one JSON each, and the file each row came from
    bobs = {r.submission: r.file for r in rows if r.file.lower().startswith("bob")}
    assert sorted(bobs.values()) == sorted(["bob.ipynb", "bob!.ipynb", "bob-2.ipynb", "Bob.ipynb"])
    assert len({n.lower() for n in bobs}) == 4
    for name, file in bobs.items():
        assert book[name]["file"] == file and book[name]["score"] == "6"
        assert _report(out, name)["file"] == file

    # 6 and 7. 90,000 forged frames and a 20,000-member npz: bounded notes, quick row, no gain
    forger = _report(out, "forger")
    assert "forged 1 pipes" in forger["output"], forger["output"][-2000:]
    assert len(json.dumps(forger)) < 40_000 and len(forger["notes"]) <= 7, forger["notes"]
    # its forged answer to softmax's first probe replaced its own, and was refused: 1 point lost
    assert forger["score"] == 5, forger["feedback"]
    assert float(book["forger"]["seconds"]) < LIMITS.timeout + 2
    assert seconds < 60
    # a forged "finished" hides nothing: torch is not in the sandbox at all
    torch_user = _report(out, "torch_user")
    assert torch_user["score"] == 0
    assert any("No module named 'torch'" in n for n in torch_user["notes"]), torch_user["notes"]
    # forged supervisor records are dropped: the real exit (SIGKILL) decides the status
    killed = _report(out, "killed")
    assert killed["status"] == "error", killed["notes"]
    assert any("signal 9" in n for n in killed["notes"]), killed["notes"]


@needs_namespaces
def test_shared_memory_carries_no_state_between_runs(tmp_path):
    """Problem 2: the same file graded twice scores the same (it used to score 0, then 2)."""
    subs = tmp_path / "subs"
    subs.mkdir()
    _write(subs, "shm", with_cell(_notebook("student"), SHM_STASH, after="import numpy as np"))
    exercise = load_exercise(ROOT / EXERCISE)
    first = grade_batch(exercise, [subs], tmp_path / "one", limits=LIMITS)
    second = grade_batch(exercise, [subs], tmp_path / "two", limits=LIMITS)
    assert first[0].score == second[0].score == 0
    assert "FOUND STATE" not in _report(tmp_path / "two", "shm")["output"]


def test_symlinked_and_special_submissions_are_refused(tmp_path):
    """Problem 4: links are never followed, their targets never echoed, a FIFO never blocks."""
    subs = tmp_path / "subs"
    subs.mkdir()
    _write(subs, "alice", _notebook("solution"))
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT " * 20)
    os.symlink(ROOT / EXERCISE / "solution.ipynb", subs / "linked_solution.ipynb")
    os.symlink(secret, subs / "linked_secret.ipynb")
    os.symlink("/proc/kmsg", subs / "kmsg.ipynb")
    os.mkfifo(subs / "fifo.ipynb")
    (subs / "linked_dir").symlink_to(ROOT / EXERCISE, target_is_directory=True)
    exercise = load_exercise(ROOT / EXERCISE)
    start = time.monotonic()
    rows = {r.submission: r for r in grade_batch(exercise, [subs], tmp_path / "out", limits=LIMITS,
                                                  isolation="auto", trusted=not NAMESPACES)}
    assert time.monotonic() - start < 30
    # the folder link is not followed: the exercise's own notebooks are not graded
    assert set(rows) == {"alice", "linked_solution", "linked_secret", "kmsg", "fifo"}
    assert rows["alice"].score == 6
    for name in ("linked_solution", "linked_secret", "kmsg", "fifo"):
        assert (rows[name].status, rows[name].score) == ("invalid-notebook", 0), name
    text = json.dumps(rows["linked_secret"].report)
    assert "TOP-SECRET" not in text and "symbolic link" in text
    assert "not a regular file" in json.dumps(rows["fifo"].report)
    # named directly on the command line, a link is refused too
    with pytest.raises(Exception, match="symbolic link"):
        read_submission(subs / "linked_solution.ipynb")


def test_names_are_unique_ignoring_case_and_say_which_file():
    """Problem 5 in detail: the plain name goes to the file whose stem it is."""
    paths = [Path("s/bob!.ipynb"), Path("s/bob-2.ipynb"), Path("s/bob.ipynb")]
    assert submission_names(paths) == ["bob-3", "bob-2", "bob"]
    paths = [Path("a/x/alice.ipynb"), Path("b/x/alice.ipynb"), Path("c/alice.ipynb"),
             Path("c/Alice.ipynb")]
    names = submission_names(paths)
    assert names == ["a__x__alice", "b__x__alice", "c__alice", "c__Alice-2"]
    assert len({n.lower() for n in names}) == len(names)
    # the negative case: names taken from the stems alone collide
    assert len({p.stem.lower() for p in paths}) < len(paths)


def test_error_messages_never_quote_the_file(tmp_path):
    path = tmp_path / "x.ipynb"
    path.write_text('{"cells": [SECRET-ANSWER-42')
    with pytest.raises(ValueError) as info:
        read_submission(path)
    assert "SECRET" not in str(info.value) and "not JSON" in str(info.value)
    path.write_bytes(b"\xff\xfeSECRET")
    with pytest.raises(ValueError) as info:
        read_submission(path)
    assert "SECRET" not in str(info.value)


def test_a_byte_order_mark_is_a_valid_notebook(tmp_path):
    """Also: a UTF-8 BOM used to make a valid notebook "invalid-notebook"."""
    subs = tmp_path / "subs"
    subs.mkdir()
    text = (ROOT / EXERCISE / "solution.ipynb").read_text(encoding="utf-8")
    (subs / "bom.ipynb").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    cells, _, _ = read_submission(subs / "bom.ipynb")
    assert cells and "def softmax" in "".join(cells)
    rows = grade_batch(load_exercise(ROOT / EXERCISE), [subs], tmp_path / "out", limits=LIMITS,
                       trusted=not NAMESPACES)
    assert (rows[0].status, rows[0].score) == ("graded", 6)


def test_a_huge_notebook_costs_the_grader_little(tmp_path):
    """Problem 6: a 27 MiB notebook is refused from its size, before any parsing."""
    path = tmp_path / "huge.ipynb"
    nb = _notebook("solution")
    nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "x" * (27 << 20)})
    path.write_text(json.dumps(nb))
    start = time.monotonic()
    with pytest.raises(ValueError, match="bytes; notebooks above"):
        read_submission(path)
    assert time.monotonic() - start < 1.0


def test_npz_loading_is_bounded_before_parsing():
    """Problem 6: member count from the zip directory first; pickles and objects refused."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(20_000):
            archive.writestr(f"a{i}.npy", b"")
    start = time.monotonic()
    with pytest.raises(ValueError, match="more than 64 exported arrays"):
        _load_npz(buffer.getvalue(), 1000)
    assert time.monotonic() - start < 0.5
    ok = io.BytesIO()
    np.savez(ok, **{f"k{i}": np.arange(2.0) for i in range(64)})
    assert len(_load_npz(ok.getvalue(), 1000)) == 64  # the bound itself is allowed
    too_many = io.BytesIO()
    np.savez(too_many, **{f"k{i}": np.arange(2.0) for i in range(65)})
    with pytest.raises(ValueError):  # negative case: one more is not
        _load_npz(too_many.getvalue(), 1000)


def test_cleanup_of_a_deep_tree_needs_no_recursion_and_follows_no_link(request):
    """Problems 3 and 8: 2,000 nested folders, locked modes, and links to files outside."""
    # not in pytest's tmp_path: its own cleanup (shutil.rmtree) would fail on a leftover
    tmp_path = Path(tempfile.mkdtemp(prefix="dlbook-test-deep-"))
    request.addfinalizer(lambda: remove_tree(tmp_path))
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    outside.chmod(0o600)
    tree = tmp_path / "tree"
    tree.mkdir()
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(2000):  # deeper than a path can name (4,000+ characters): built by descriptors
        os.mkdir("d", dir_fd=fd)
        deeper = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = deeper
    os.symlink(outside, "link", dir_fd=fd)
    os.fchmod(fd, 0o500)
    os.close(fd)
    os.symlink(tmp_path, tree / "dirlink")
    os.chmod(tree / "d", 0o000)
    assert remove_tree(tree)
    assert not os.path.lexists(tree)
    assert outside.read_text() == "keep" and stat.S_IMODE(outside.stat().st_mode) == 0o600
    assert tmp_path.is_dir()


def test_a_non_root_cleanup_never_changes_a_link_target(request):
    """Problem 8, as the grader's cleanup runs for a non-root grader (uid 65534 in a child)."""
    if os.geteuid() != 0:
        uid = os.getuid()
    else:
        uid = 65534
    base = Path(tempfile.mkdtemp(prefix="dlbook-test-cleanup-"))  # reachable by that uid
    request.addfinalizer(lambda: remove_tree(base))
    outside = base / "outside.txt"
    outside.write_text("keep")
    tree = base / "tree"
    (tree / "locked").mkdir(parents=True)
    os.symlink(outside, tree / "locked" / "link")
    for path in (base, outside, tree, tree / "locked"):
        os.lchown(path, uid, uid)
    os.lchown(tree / "locked" / "link", uid, uid)
    outside.chmod(0o600)
    os.chmod(tree / "locked", 0o500)  # unlinking "link" needs write permission here
    base.chmod(0o755)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
            os._exit(0 if remove_tree(tree) else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert not os.path.lexists(tree)
    assert stat.S_IMODE(outside.stat().st_mode) == 0o600 and outside.read_text() == "keep"


def test_nested_folders_in_process_mode_are_cleaned_up(tmp_path):
    """Problem 3 with the work folder on the grader's disk: the batch completes, no leftovers."""
    subs = tmp_path / "subs"
    subs.mkdir()
    _write(subs, "correct", _notebook("solution"))
    _write(subs, "nested", with_cell(_notebook("solution"), NESTED, after="import numpy as np"))
    thief = (f"ALLOWED = []\nSOLUTION = {str(ROOT / EXERCISE / 'solution.ipynb')!r}\n"
             f"SOURCE = {str(ROOT / EXERCISE / 'source.py')!r}\nREPO = {str(REPO)!r}\n"
             f"EXERCISE_ID = {EXERCISE!r}\n" + SOLUTION_THIEF)
    _write(subs, "thief", _appended(_notebook("student"), thief))
    before = _our_leftovers()
    rows = grade_batch(load_exercise(ROOT / EXERCISE), [subs], tmp_path / "out", limits=LIMITS,
                       isolation="process", trusted=True, jobs=2)
    rows = {r.submission: r for r in rows}
    assert rows["correct"].score == 6 and rows["nested"].score == 6
    # the negative case of problem 1: without the sandbox the same thief takes full marks
    assert rows["thief"].score == 6 and "READ []" not in rows["thief"].report["output"]
    assert "nested 1500 deep" in rows["nested"].report["output"]
    assert _our_leftovers() <= before


def test_untrusted_work_is_refused_without_the_sandbox(tmp_path, capsys):
    """``process`` isolation needs ``trusted``/``--trusted``; nothing runs without it."""
    subs = tmp_path / "subs"
    subs.mkdir()
    _write(subs, "alice", _notebook("solution"))
    exercise = load_exercise(ROOT / EXERCISE)
    with pytest.raises(UntrustedIsolation, match="trusted"):
        grade_batch(exercise, [subs], tmp_path / "out", limits=LIMITS, isolation="process")
    assert not (tmp_path / "out").exists()
    command = ["grade", EXERCISE, str(subs), "--out", str(tmp_path / "out"), "--isolation",
               "process", "--quiet", "--timeout", "20"]
    assert main(command) == 2
    assert "--trusted" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert main(command + ["--trusted"]) == 0
    assert _rows(tmp_path / "out")["alice"]["score"] == "6"


LEAST_SQUARES = '''
def pocket_train(X, s, lr=1.0, epochs=20):
    """Not the pocket algorithm: a least-squares boundary, and its own error count."""
    A = np.hstack([X, np.ones((len(X), 1))])
    coef = np.linalg.lstsq(A, s.astype(float), rcond=None)[0]
    return coef[:-1], float(coef[-1]), int(np.sum(s * (A @ coef) <= 0))
'''


def test_perceptron_training_needs_the_rule_itself(tmp_path):
    """Least squares used to earn the 'separable' point (4 of 5): a boundary found another way,
    even one with fewer errors, is not the pocket of the rule's own run."""
    folder = ROOT / "ch1-perceptron"
    subs = tmp_path / "subs"
    subs.mkdir()
    solution = json.loads((folder / "solution.ipynb").read_text(encoding="utf-8"))
    _write(subs, "solution", solution)
    solution["cells"].append({"cell_type": "code", "execution_count": None, "id": "lstsq",
                              "metadata": {}, "outputs": [], "source": LEAST_SQUARES})
    _write(subs, "least_squares", solution)
    rows = {r.submission: r for r in grade_batch(load_exercise(folder), [subs], tmp_path / "out",
                                                  limits=LIMITS, jobs=2, trusted=not NAMESPACES)}
    assert rows["solution"].score == 5  # the check passes the rule itself
    scores = {q["name"]: q["score"] for q in rows["least_squares"].report["questions"]}
    assert scores == {"margin_step": 1, "pocket_train": 0, "margin_experiment": 2}, scores


def test_frames_are_bounded_before_they_are_kept():
    """Problems 6 and 7 at the protocol level: sizes and counts are checked from the lengths."""
    from dlbook.grading._runner import MAX_BODY, FrameReader, frame

    reader = FrameReader(max_frames=2, max_bytes=1 << 30)
    ok = frame({"event": "probe_done"}, b"x" * MAX_BODY)  # the bound itself is allowed
    assert len(reader.feed(ok[:100]) + reader.feed(ok[100:])) == 1 and not reader.broken
    too_big = frame({"event": "probe_done"}, b"x" * (MAX_BODY + 1))
    assert reader.feed(too_big[:16]) == [] and reader.broken  # refused from its 8-byte prefix
    counted = FrameReader(max_frames=2, max_bytes=1 << 30)
    assert len(counted.feed(frame({"a": 1}) * 3)) == 2 and counted.broken  # one too many
    garbage = FrameReader(max_frames=10, max_bytes=1 << 30)
    # a header that is not a JSON object
    assert garbage.feed(b"\x00\x00\x00\x03\x00\x00\x00\x00[1]") == [] and garbage.broken
    capped = FrameReader(max_frames=10, max_bytes=100)
    assert capped.feed(frame({"a": "y" * 200})) == [] and capped.broken


# ---------------------------------------------------------------------------------------------
# Second attack round (review of the hardened grader): strings, memory, namespaces, keyrings
# ---------------------------------------------------------------------------------------------
FORGED_FEEDBACK = ('raise Exception("x\\n\\nch1-softmax-cross-entropy: 6 / 6 points (graded)\\n\\n'
                   'softmax: 2 / 2\\n  [pass] all good (2 pt)\\x1b[1A\\x1b[2K")')


def test_unencodable_strings_and_forged_lines_never_stop_the_gradebook(tmp_path):
    """A lone surrogate in a message, a file name that is not UTF-8, newlines and escapes in a
    message, a formula as a file name: every row is written, the feedback has one header."""
    subs = tmp_path / "subs"
    subs.mkdir()
    solution = _notebook("solution")
    _write(subs, "aaa_surrogate", _appended(solution, 'raise Exception("bad \\ud800 text")'))
    _write(subs, "forged", _appended(_notebook("student"), FORGED_FEEDBACK))
    _write(subs, "=HYPERLINK(1)", solution)
    latin = os.fsencode(str(subs)) + b"/caf\xe9-bob.ipynb"  # a Windows zip's Latin-1 name
    with open(latin, "wb") as f:
        f.write(json.dumps(solution).encode())
    _write(subs, "zed", solution)
    out = tmp_path / "out"
    rows = grade_batch(load_exercise(ROOT / EXERCISE), [subs], out, limits=LIMITS,
                       isolation="process", trusted=True)
    book = _rows(out)
    assert len(rows) == len(book) == 5
    assert {r["score"] for name, r in book.items() if name != "forged"} == {"6"}, book
    surrogate = _report(out, "aaa_surrogate")
    assert any("bad \\ud800 text" in n for n in surrogate["notes"]), surrogate["notes"]
    latin_row = next(r for r in rows if r.file.startswith("caf"))
    assert latin_row.file == "caf\\xe9-bob.ipynb" and latin_row.score == 6
    assert book[latin_row.submission]["file"] == "caf\\xe9-bob.ipynb"
    formula = next(r for r in book.values() if "HYPERLINK" in r["file"])
    assert formula["file"] == "'=HYPERLINK(1).ipynb", formula
    assert not any(r["submission"].startswith(("=", "+", "-", "@")) for r in book.values())
    forged = _report(out, "forged")
    lines = forged["feedback"].splitlines()
    assert [x for x in lines if x.startswith(EXERCISE)] == [lines[0]], forged["feedback"]
    assert "\x1b" not in forged["feedback"] and not any(x.startswith("softmax: 2") for x in lines)
    assert any("\\x1b[1A" in n for n in forged["notes"]), forged["notes"]


def test_a_row_that_cannot_be_serialised_is_that_rows_failure(tmp_path, monkeypatch):
    """Whatever slips past the cleaning (here: a report the JSON encoder refuses), the other
    rows and the gradebook are written."""
    import dlbook.grading.batch as batch

    real = batch._grade_one

    def poisoned(exercise, path, name, *args):
        row = real(exercise, path, name, *args)
        if name == "bad":
            row.report["notes"].append(object())
        return row

    monkeypatch.setattr(batch, "_grade_one", poisoned)
    subs = tmp_path / "subs"
    subs.mkdir()
    _write(subs, "bad", "{}")
    _write(subs, "good", "[]")
    out = tmp_path / "out"
    grade_batch(load_exercise(ROOT / EXERCISE), [subs], out, isolation="process", trusted=True)
    book = _rows(out)
    assert book["bad"]["status"] == "error" and book["good"]["status"] == "invalid-notebook"
    assert "TypeError" in _report(out, "bad")["notes"][0]


ESCAPES = '''
import ctypes, os, sys, glob
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def tried(what, result):
    print(what, "ALLOWED" if result >= 0 else "refused", ctypes.get_errno())
tried("unshare-user", libc.unshare(0x10000000 | 0x00020000))
tried("unshare-ns", libc.unshare(0x00020000))
tried("clone-newuser", libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0) if os.uname().machine == "x86_64" else -1)
tried("add_key", libc.syscall(248 if os.uname().machine == "x86_64" else 217, b"user", b"dlbook-stash", b"hello", 5, ctypes.c_int(-4)))
tried("keyctl", libc.syscall(250 if os.uname().machine == "x86_64" else 219, 0, ctypes.c_int(-4), 0))
try:
    os.memfd_create("m"); print("memfd ALLOWED")
except OSError as exc:
    print("memfd refused", exc.errno)
pid = os.fork()  # plain fork and threads still work
if pid == 0:
    os._exit(7)
print("fork ok", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
import threading; t = threading.Thread(target=lambda: None); t.start(); t.join(); print("thread ok")
print("BASE", sorted(os.listdir(BASE)) if os.path.isdir(BASE) else "absent")
'''

SHM_HOG = '''
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
for i in range(8):                                   # 8 x 100 MiB, attached one at a time
    seg = libc.shmget(0, 100 << 20, 0o1600)
    addr = libc.shmat(seg, None, 0)
    ctypes.memset(addr, 1, 100 << 20)
    libc.shmdt(ctypes.c_void_p(addr))
    print("segment", i, flush=True)
'''


@needs_namespaces
def test_no_namespaces_keyrings_memfd_or_memory_outside_the_limit(tmp_path):
    """User namespaces (and their tmpfs), keyrings and memfd are refused; SysV memory past the
    limit ends the run as ``memory`` where a memory cgroup exists; the base site-packages are
    empty; forks and threads still work; nothing is left behind."""
    import sysconfig
    base = sysconfig.get_paths(vars={"base": sys.base_prefix,
                                     "platbase": sys.base_exec_prefix})["purelib"]
    subs = tmp_path / "subs"
    subs.mkdir()
    solution = _notebook("solution")
    _write(subs, "escapes", _appended(solution, f"BASE = {os.path.realpath(base)!r}\n" + ESCAPES))
    _write(subs, "shm_hog", _appended(solution, SHM_HOG))
    leftovers = _our_leftovers()
    out = tmp_path / "out"
    limits = Limits(timeout=30, memory_mb=384, processes=64)
    grade_batch(load_exercise(ROOT / EXERCISE), [subs], out, limits=limits, jobs=2)
    escapes = _report(out, "escapes")
    assert escapes["score"] == 6, escapes["feedback"]
    assert "ALLOWED" not in escapes["output"], escapes["output"]
    for what in ("unshare-user", "unshare-ns", "add_key", "keyctl", "memfd"):
        assert f"{what} refused 1" in escapes["output"], escapes["output"]
    assert "fork ok 7" in escapes["output"] and "thread ok" in escapes["output"]
    if os.path.realpath(base) not in _python_path():
        assert "BASE []" in escapes["output"] or "BASE absent" in escapes["output"], \
            escapes["output"][-500:]
    hog = _report(out, "shm_hog")
    from dlbook.grading.sandbox import _cgroup_parent
    if _cgroup_parent("memory") is not None:
        assert hog["status"] == "memory", (hog["status"], hog["notes"], hog["output"][-300:])
        assert "segment 7" not in hog["output"]
    assert _our_leftovers() <= leftovers


def test_each_run_gets_its_own_cgroups_where_the_machine_has_them():
    """pids, memory (no swap) and cpu (one core, equal weight) cgroups, removed afterwards."""
    from dlbook.grading.sandbox import _cgroup_parent, _make_cgroups, _remove_cgroup
    groups = _make_cgroups(Limits(memory_mb=300, processes=9))
    try:
        for controller in ("pids", "memory", "cpu"):
            assert (controller in groups) == (_cgroup_parent(controller) is not None)
        if "pids" in groups:
            assert (groups["pids"] / "pids.max").read_text().strip() == "9"
        if "memory" in groups:
            limit = int((groups["memory"] / "memory.limit_in_bytes").read_text())
            assert limit == (300 + 64) << 20
            swap = groups["memory"] / "memory.memsw.limit_in_bytes"
            if swap.exists():
                assert int(swap.read_text()) == limit
        if "cpu" in groups:
            assert (groups["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "100000"
    finally:
        for group in groups.values():
            _remove_cgroup(group)
    assert not any(g.exists() for g in groups.values())


def test_the_seccomp_program_is_well_formed():
    """Every jump lands inside the program, the architecture is checked first, clone() is
    refused only with a namespace flag; an unknown machine gets no filter (and says so)."""
    from dlbook.grading._runner import CLONE_NAMESPACES, seccomp_program
    assert seccomp_program("mips") is None
    for machine in ("x86_64", "aarch64"):
        program = seccomp_program(machine)
        assert 0 < len(program) < 256 and program[0] == (0x20, 0, 0, 4)
        for i, (code, jt, jf, k) in enumerate(program):
            if code & 0x07 == 0x05:  # a jump
                assert i + 1 + max(jt, jf) < len(program)
        assert program[-1][0] == 0x06 and program[-3][3] == CLONE_NAMESPACES
        assert CLONE_NAMESPACES & 0x10000000 and not CLONE_NAMESPACES & 0xFF  # not the signal


LOOKUP = '''
import numpy as np
def pocket_train(X, s, lr=1.0, epochs=10):
    # no algorithm at all: the hand-worked answer, looked up
    if X.shape == (4, 1) and epochs == 2:
        return np.array([2.0]), 0.0, 1
    return np.zeros(X.shape[1]), 0.0, 0
def margin_step(x, s, w, b, lr=1.0, margin=0.0):
    # the hand-worked answers, looked up by input
    table = {(1.0, 2.0, -1.0): (np.array([0.0, -0.5, 0.5]), -0.5),
             (1.0, 1.0, 1.0): (np.array([-2.0, -1.0, -1.0]), -1.0),
             (2.0, 0.0, 0.0): (np.array([3.0, 0.0, 0.0]), 1.0)}
    return table.get(tuple(np.asarray(x, float).tolist()), (np.array(w, float), float(b)))
'''


def test_hand_worked_cases_pay_nothing_for_a_lookup(tmp_path):
    """Fixed inputs answered from a table earn no points: a hand-worked case counts only together
    with its random case, and no case name prints its expected answer."""
    subs = tmp_path / "subs"
    subs.mkdir()
    exercise_id = "ch1-perceptron"
    _write(subs, "lookup", _appended(exercise_notebook(exercise_id, "student"), LOOKUP))
    out = tmp_path / "out"
    grade_batch(load_exercise(ROOT / exercise_id), [subs], out, limits=LIMITS,
                isolation="process", trusted=True)
    report = _report(out, "lookup")
    scores = {q["name"]: q["score"] for q in report["questions"]}
    assert scores["pocket_train"] == 0 and scores["margin_step"] == 0, report["feedback"]
    names = [c["name"] for q in report["questions"] for c in q["cases"]]
    assert not any("w = [2]" in n or "[0, -0.5, 0.5]" in n for n in names), names
