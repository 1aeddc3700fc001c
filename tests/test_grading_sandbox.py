"""dgm.grading.sandbox: a kernel under bubblewrap cannot see the course, write outside its folder, reach the network,
change modes, grow past its memory limit, or leave a process behind; unsafe mode keeps the limits only.

Instead of a kernel, a probe script runs in the sandbox and prints what it could do; the test checks
on the host (listeners, files, modes, /proc) that nothing got out.
"""

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import REPO
from dgm.grading import sandbox

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("bwrap") is None,
                                reason="the grading sandbox needs Linux and bubblewrap (`make sandbox`)")

SOLUTION = REPO / "solutions" / "01_autoencoders" / "01_autoencoders.md"
REPO_FILE = REPO / "lib" / "dgm" / "__init__.py"  # visible (read-only) to the kernel: lib/ is on sys.path
PYTHON = Path(os.path.realpath(sys.executable))

ATTEMPT = """
import os, sys, json
RESULTS = {}
def attempt(label, f):
    try:
        value = f()
        RESULTS[label] = "ALLOWED" if value is None else "ALLOWED " + str(value)
    except BaseException as e:
        RESULTS[label] = "DENIED " + type(e).__name__
"""


def _folder(tmp_path, probe: str) -> Path:
    folder = tmp_path / "sandbox"
    for sub in ("work", "home", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "work" / "probe.py").write_text(probe)
    sandbox.prepare(str(folder))
    return folder


def _config(tmp_path, folder, **extra):
    return {"sandbox": str(folder), "memory_mb": 2048, "protected": [str(REPO), str(tmp_path / "course")],
            "read": [], **extra}


def _results(stdout: str) -> dict:
    import json

    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert lines, f"the probe printed no results: {stdout!r}"
    return json.loads(lines[-1])


def _pids_with(token: str) -> list[int]:
    """Host-side: processes whose command line holds ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if token.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _gone(token: str, seconds: float = 3.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while _pids_with(token) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _pids_with(token)


def _kill(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def listeners():
    """A TCP and a UDP socket on the host's 127.0.0.1 that the sandboxed probe will try to reach."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(5)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    yield tcp, udp
    tcp.close()
    udp.close()


def _received(tcp, udp, timeout=0.5) -> list[str]:
    got = []
    tcp.settimeout(timeout)
    try:
        conn, _ = tcp.accept()
        conn.close()
        got.append("tcp")
    except (socket.timeout, BlockingIOError):
        pass
    udp.settimeout(timeout)
    try:
        udp.recvfrom(100)
        got.append("udp")
    except (socket.timeout, BlockingIOError):
        pass
    return got


def test_support_is_ok_here_and_explains_itself_when_bubblewrap_is_missing_or_broken(tmp_path, monkeypatch):
    info = sandbox.support()
    assert info["ok"] is True and info["why"] == ""
    assert os.path.realpath(info["bwrap"]) == os.path.realpath(shutil.which("bwrap"))
    monkeypatch.setattr(sandbox, "_SUPPORT", None)
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    missing = sandbox.support()
    assert missing["ok"] is False and "bubblewrap is not installed" in missing["why"]
    with pytest.raises(RuntimeError, match="sandbox cannot run: bubblewrap is not installed"):
        sandbox.kernel_command([sys.executable, "-c", "pass"], _config(tmp_path, tmp_path))
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sandbox, "_SUPPORT", None)
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: str(fake))
    broken = sandbox.support()
    assert broken["ok"] is False and "cannot create namespaces" in broken["why"]
    assert "No permissions to create new namespace" in broken["why"]


def _contains(folder: str, other: str) -> bool:
    """Independent of the module: ``other`` is ``folder`` or lies below it (whole path components)."""
    a, b = Path(os.path.realpath(folder)).parts, Path(os.path.realpath(other)).parts
    return b[:len(a)] == a


def test_python_dirs_never_include_a_folder_holding_a_protected_one(tmp_path, monkeypatch):
    course_dir, inner = tmp_path / "course", tmp_path / "course" / "pkg"
    inner.mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path)
    monkeypatch.setattr(sys, "path", [*sys.path, str(tmp_path), str(tmp_path / "link"), str(inner)])
    cases = [[str(REPO)], [str(REPO / "lib")], [str(course_dir)], [str(tmp_path / "link" / "course")],
             [sys.base_prefix + "/lib"], [str(REPO), str(course_dir), sys.prefix]]
    for protected in cases:
        dirs = sandbox.python_dirs(protected)
        assert dirs, protected
        for folder in dirs:
            assert os.path.isdir(folder) and folder == os.path.realpath(folder)
            assert not any(_contains(folder, p) for p in protected), (folder, protected)
    # completeness: the interpreter's own folders are there when nothing protects them
    dirs = sandbox.python_dirs([str(course_dir)])
    for needed in (sys.base_prefix, sys.prefix, str(REPO / "lib")):
        assert any(_contains(d, needed) for d in dirs), needed
    assert str(inner.resolve()) not in dirs  # a course folder on sys.path stays out (only lib/ and the venv)
    assert str(tmp_path.resolve()) not in dirs


PROBE = ATTEMPT + """
import resource, socket
args = json.loads(sys.argv[1])
attempt("memory", lambda: len(bytearray(3 << 30)))
attempt("raise-limit", lambda: resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY,) * 2))
attempt("own-folder", lambda: open("mine.txt", "w").write("written inside"))
attempt("read-data", lambda: open(args["data"]).read())
attempt("read-secret", lambda: open(args["secret"]).read())
attempt("see-secret", lambda: os.path.exists(args["secret"]) or os.path.exists(os.path.dirname(args["secret"])))
attempt("read-solutions", lambda: open(args["solution"]).read())
attempt("see-solutions", lambda: os.path.exists(args["solution"]))
attempt("list-repo", lambda: ",".join(sorted(os.listdir(args["repo"]))))
attempt("write-venv", lambda: open(args["venv_file"], "w").write("x"))
attempt("write-next-to-sandbox", lambda: open(args["outside"], "w").write("x"))
attempt("write-tmp", lambda: open(args["host_tmp"], "w").write("x"))
attempt("chmod-python", lambda: os.chmod(args["python"], args["python_mode"]))
attempt("chmod-repo", lambda: os.chmod(args["repo_file"], args["repo_mode"]))
attempt("chmod-hidden", lambda: os.chmod(args["makefile"], 0o777))
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"escape", ("127.0.0.1", args["udp"]))
attempt("udp", udp)
attempt("tcp", lambda: socket.create_connection(("127.0.0.1", args["tcp"]), timeout=3).sendall(b"escape"))
attempt("uid", lambda: os.getuid())
attempt("home", lambda: os.environ["HOME"])
attempt("cwd", lambda: os.getcwd())
attempt("limit", lambda: resource.getrlimit(resource.RLIMIT_AS)[0])
attempt("secret-env", lambda: ",".join(k for k in os.environ if "GRADING" in k or "SECRET" in k))
def imports():
    import torch, dgm
    return torch.tensor([1.0, 2.0]).sum().item()
attempt("import", imports)
print(json.dumps(RESULTS), flush=True)
"""


def test_the_sandbox_confines_a_kernel(tmp_path, listeners, monkeypatch):
    import json

    if not SOLUTION.is_file():
        pytest.skip(f"{SOLUTION} is not in this checkout")
    tcp, udp = listeners
    token = uuid.uuid4().hex
    secret = tmp_path / "course" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("hidden tests")
    data = tmp_path / "data"
    data.mkdir()
    (data / "set.txt").write_text("mnist")
    os.chmod(data, 0o755)
    os.chmod(data / "set.txt", 0o644)
    python_mode, repo_mode = stat.S_IMODE(PYTHON.stat().st_mode), stat.S_IMODE(REPO_FILE.stat().st_mode)
    args = {"secret": str(secret), "solution": str(SOLUTION), "repo": str(REPO), "data": str(data / "set.txt"),
            "venv_file": str(Path(sys.executable).parent / f"escaped-{token}.txt"),
            "outside": str(tmp_path / "escaped.txt"), "host_tmp": f"/tmp/dgm-escaped-{token}.txt",
            "python": sys.executable, "python_mode": python_mode ^ 0o020, "repo_file": str(REPO_FILE),
            "repo_mode": repo_mode ^ 0o020, "makefile": str(REPO / "Makefile"), "udp": udp.getsockname()[1],
            "tcp": tcp.getsockname()[1]}
    folder = _folder(tmp_path, PROBE)
    monkeypatch.setenv("DGM_GRADING_SECRET_FOR_TEST", "x")  # the environment is scrubbed
    # the data folder is readable; tmp_path itself holds the protected course/ and must not be mounted
    config = _config(tmp_path, folder, read=[str(data), str(tmp_path)])
    cmd = sandbox.kernel_command([sys.executable, "probe.py", json.dumps(args)], config)
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        got = _received(tcp, udp)
    finally:
        for path, mode in ((PYTHON, python_mode), (REPO_FILE, repo_mode)):
            if stat.S_IMODE(path.stat().st_mode) != mode:
                path.chmod(mode)
        for path in (args["venv_file"], args["host_tmp"], args["outside"]):
            Path(path).unlink(missing_ok=True)
    out = _results(result.stdout)
    assert result.returncode == 0, result.stderr
    assert out["memory"] == "DENIED MemoryError" and out["raise-limit"].startswith("DENIED")
    assert out["limit"] == f"ALLOWED {2048 << 20}"
    assert out["own-folder"] == "ALLOWED 14" and (folder / "work" / "mine.txt").read_text() == "written inside"
    assert out["read-data"] == "ALLOWED mnist"
    assert out["read-secret"] == "DENIED FileNotFoundError" and out["see-secret"] == "ALLOWED False"
    assert out["read-solutions"] == "DENIED FileNotFoundError" and out["see-solutions"] == "ALLOWED False"
    visible = set(out["list-repo"].removeprefix("ALLOWED ").split(","))
    # only the Python folders of the grader (the venv, lib/, and under pytest tests/) are mounted from the repo
    python_folders = {Path(os.path.realpath(p)).relative_to(REPO).parts[0] for p in [sys.prefix, *sys.path]
                      if p and os.path.isdir(p) and _contains(str(REPO), p) and os.path.realpath(p) != str(REPO)}
    assert visible <= python_folders and not visible & {"solutions", "grading", "assignments", "Makefile"}, visible
    assert out["write-venv"].startswith("DENIED") and not Path(args["venv_file"]).exists()
    assert not (tmp_path / "escaped.txt").exists()
    assert not Path(args["host_tmp"]).exists(), "the sandbox's /tmp is the host's"
    assert out["chmod-python"].startswith("DENIED") and out["chmod-repo"].startswith("DENIED")
    assert out["chmod-hidden"] == "DENIED FileNotFoundError"
    assert stat.S_IMODE(PYTHON.stat().st_mode) == python_mode and stat.S_IMODE(REPO_FILE.stat().st_mode) == repo_mode
    assert out["tcp"].startswith("DENIED")
    assert got == [], f"the host's 127.0.0.1 received {got} from the sandbox"
    assert out["uid"] != "ALLOWED 0" and out["uid"].startswith("ALLOWED ")
    assert out["home"] == f"ALLOWED {folder / 'home'}" and out["cwd"] == f"ALLOWED {folder / 'work'}"
    assert out["secret-env"] == "ALLOWED "
    assert out["import"] == "ALLOWED 3.0", result.stderr[-2000:]


LIFETIME = """
import os, sys, time
token = sys.argv[1]
pid = os.fork()
if pid == 0:
    os.setsid()
    os.execv("/bin/sh", ["sh", "-c", "while :; do :; done # burner " + token])
time.sleep(0.3)
print("READY", pid, flush=True)
if sys.argv[2] == "wait":
    sys.stdin.readline()
else:
    time.sleep(60)
"""


def _start(tmp_path, how: str):
    token = "dgm" + uuid.uuid4().hex
    folder = _folder(tmp_path, LIFETIME)
    cmd = sandbox.kernel_command([sys.executable, "probe.py", token, how], _config(tmp_path, folder))
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("READY"), (line, proc.stderr.read() if proc.poll() is not None else "")
    burners = [pid for pid in _pids_with(token) if b"burner" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert burners, "the probe's setsid child is not running: the test would prove nothing"
    return proc, token


def _stop(proc, token):
    """Clean up after a failure too: a leftover burner would hold the pipes open."""
    _kill(_pids_with(token))
    proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if not pipe.closed:
            pipe.close()


def test_nothing_a_kernel_starts_outlives_it(tmp_path):
    proc, token = _start(tmp_path, "wait")
    try:
        proc.stdin.write("\n")
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        left = _gone(token)
        assert left == [], f"processes outlived the sandbox: {left}"
    finally:
        _stop(proc, token)


def test_killing_the_sandbox_kills_everything_in_it(tmp_path):
    proc, token = _start(tmp_path, "sleep")
    try:
        assert Path(f"/proc/{proc.pid}/exe").resolve().name == "bwrap"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        left = _gone(token)
        assert left == [], f"processes outlived the killed sandbox: {left}"
    finally:
        _stop(proc, token)


UNSAFE = ATTEMPT + """
import resource, socket
args = json.loads(sys.argv[1])
attempt("memory", lambda: len(bytearray(3 << 30)))
attempt("limit", lambda: resource.getrlimit(resource.RLIMIT_AS)[0])
attempt("see-repo", lambda: os.path.exists(args["repo_file"]))
attempt("tcp", lambda: socket.create_connection(("127.0.0.1", args["tcp"]), timeout=3).sendall(b"x"))
attempt("home", lambda: os.environ["HOME"])
print(json.dumps(RESULTS), flush=True)
"""


def test_unsafe_mode_keeps_the_memory_limit_but_confines_nothing(tmp_path, listeners):
    import json

    tcp, udp = listeners
    folder = _folder(tmp_path, UNSAFE)
    args = {"repo_file": str(REPO / "Makefile"), "tcp": tcp.getsockname()[1]}
    cmd = sandbox.kernel_command([sys.executable, "probe.py", json.dumps(args)],
                                 _config(tmp_path, folder, bwrap=False))
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    out = _results(result.stdout)
    assert result.returncode == 0, result.stderr
    assert out["memory"] == "DENIED MemoryError" and out["limit"] == f"ALLOWED {2048 << 20}"
    assert out["home"] == f"ALLOWED {folder / 'home'}"
    # documented: no confinement at all - the course and the network are there
    assert out["see-repo"] == "ALLOWED True" and out["tcp"] == "ALLOWED"
    assert _received(tcp, udp)[:1] == ["tcp"]
