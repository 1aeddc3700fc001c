"""The grading sandbox: every grading kernel runs under bubblewrap (Debian's ``bubblewrap``).

:func:`kernel_command` wraps a kernel's command line so that the kernel gets

* no network at all (a private network namespace: not even the host's 127.0.0.1);
* a private PID namespace whose init dies with the grader (``--die-with-parent``): nothing the
  notebook starts - a forked, ``setsid`` CPU burner included - outlives its kernel;
* a read-only view of the system and of the Python environment only; the course (``solutions/``,
  the gradebook, release sources, other students) is not mounted at all; the one writable place
  is the notebook's private scratch folder (its own copy of the student's extra files) and a
  private ``/tmp``;
* a new session (no controlling terminal), a scrubbed environment, the address-space limit of
  ``memory_mb``, no core files, a file-size limit; when the grader runs as root, the kernel runs
  as ``nobody`` so that it cannot change a mode or an owner of anything it can see.

The kernel talks to the grader over Unix sockets in the scratch folder (``transport = "ipc"``).

Where bubblewrap cannot run, :func:`support` says why and grading refuses, unless the
instructor passes ``--unsafe-no-sandbox``: then kernels run with the resource limits only.

This file imports the standard library only: inside the sandbox it is run as a script
(``python -I -S sandbox.py launch CONFIG -- kernel command``) to set the limits and exec the kernel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

NOBODY = 65534
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc")


def _under(path: str, folders: list[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def python_dirs(protected: list[str]) -> list[str]:
    """Folders the kernel's Python needs (prefixes, sys.path entries), none of them containing a protected one.

    Below a protected folder only the Python environment and ``lib/`` (the editable ``dgm``) are
    mounted; a folder above one (the repository itself) is left out.
    """
    protected = [os.path.realpath(p) for p in protected]
    package_parent = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))  # lib/ (dgm's home)
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *sys.path]
    out: list[str] = []
    for path in candidates:
        if not path or not os.path.isdir(path):
            continue
        real = os.path.realpath(path)
        if any(p == real or p.startswith(real.rstrip("/") + "/") for p in protected):
            continue
        if _under(real, protected) and real != package_parent and not _under(real, [sys.prefix, sys.base_prefix]):
            continue  # a folder of the course on sys.path (tests/, a PYTHONPATH entry): not the kernel's business
        if _under(real, list(SYSTEM_DIRS)) or _under(real, out):
            continue
        out = [p for p in out if not _under(p, [real])] + [real]
    return sorted(out)


def _probe(bwrap: str) -> str:
    """'' if bubblewrap can build the sandbox here, else why not."""
    cmd = [bwrap, *_namespaces(), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{bwrap} could not run ({err})"
    if result.returncode != 0:
        return f"{bwrap} cannot create namespaces here: {result.stderr.strip()[:300]}"
    return ""


def _namespaces() -> list[str]:
    spaces = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if os.geteuid() != 0:
        spaces.append("--unshare-user")
    return spaces + ["--die-with-parent", "--new-session"]


_SUPPORT: dict | None = None


def support() -> dict:
    """``{"bwrap": path or None, "ok": bool, "why": reason when not ok}`` for this machine (cached)."""
    global _SUPPORT
    if _SUPPORT is None:
        bwrap = shutil.which("bwrap") if sys.platform.startswith("linux") else None
        if bwrap is None:
            why = ("bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap; `make sandbox`)"
                   if sys.platform.startswith("linux") else f"bubblewrap needs Linux; this is {sys.platform}")
        else:
            why = _probe(bwrap)
        _SUPPORT = {"bwrap": bwrap, "ok": not why, "why": why}
    return _SUPPORT


def kernel_command(cmd: list[str], config: dict) -> list[str]:
    """The command that runs kernel ``cmd`` confined as described in the module docstring.

    ``config``: ``sandbox`` (the scratch folder: work/, home/, tmp/, the sockets and the connection
    file), ``memory_mb``, ``protected`` (folders never mounted), ``read`` (extra read-only folders,
    e.g. the data cache), ``bwrap`` (False: unsafe mode, limits only).
    """
    launcher = [sys.executable, "-I", "-S", os.path.realpath(__file__), "launch", json.dumps(config), "--", *cmd]
    if not config.get("bwrap", True):
        return launcher
    bwrap = support()["bwrap"]
    if not support()["ok"]:
        raise RuntimeError(f"the grading sandbox cannot run: {support()['why']}")
    args = [bwrap, *_namespaces(), "--cap-drop", "ALL"] if os.geteuid() != 0 else [bwrap, *_namespaces()]
    for folder in SYSTEM_DIRS:
        args += ["--ro-bind-try", folder, folder]
    protected = [os.path.realpath(p) for p in config.get("protected", [])]
    read = python_dirs(protected)
    for folder in [os.path.dirname(os.path.realpath(__file__)), *config.get("read", [])]:
        real = os.path.realpath(folder)
        if os.path.isdir(real) and not _under(real, read) and not any(_under(p, [real]) for p in protected):
            read.append(real)
    sandbox = os.path.realpath(config["sandbox"])
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    made: list[str] = []
    for folder, how in [(f, "--ro-bind") for f in sorted(read)] + [(sandbox, "--bind")]:
        parts = folder.strip("/").split("/")[:-1]
        for i in range(len(parts)):  # parents world-readable, or the kernel (nobody) cannot reach the folder
            parent = "/" + "/".join(parts[:i + 1])
            if parent not in made and not _under(parent, list(SYSTEM_DIRS) + read):
                made.append(parent)
                args += ["--perms", "0755", "--dir", parent]
        args += [how, folder, folder]
    return args + ["--chdir", os.path.join(sandbox, "work"), "--"] + launcher


def prepare(sandbox: str) -> None:
    """Hand the scratch folder to the user the kernel runs as (``nobody`` when the grader is root)."""
    if os.geteuid() != 0:
        return
    for folder, dirs, files in os.walk(sandbox):
        os.chown(folder, NOBODY, NOBODY)
        for name in files:
            os.chown(os.path.join(folder, name), NOBODY, NOBODY, follow_symlinks=False)


def launch(argv: list[str]) -> int:
    """Inside the sandbox: ``CONFIG_JSON -- cmd ...``: set the limits, drop root, exec the kernel."""
    import resource

    if "--" not in argv:
        print("usage: sandbox.py launch CONFIG_JSON -- command ...", file=sys.stderr)
        return 2
    split = argv.index("--")
    config, cmd = json.loads(argv[split - 1]), argv[split + 1:]
    limit = int(config["memory_mb"]) << 20
    for which, value in ((resource.RLIMIT_AS, limit), (resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, 1 << 30)):
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):  # macOS does not let RLIMIT_AS be set (unsafe mode only)
            pass
    if not config.get("bwrap", True) and sys.platform.startswith("linux"):  # unsafe mode: at least die with the grader
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    elif os.geteuid() == 0:  # no capability, no root: cannot chmod or chown what it sees read-only
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    sandbox = config["sandbox"]
    home, tmp = os.path.join(sandbox, "home"), os.path.join(sandbox, "tmp")
    env = {
        "PATH": os.pathsep.join([os.path.dirname(cmd[0]), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": home, "TMPDIR": tmp, "IPYTHONDIR": os.path.join(home, ".ipython"),
        "MPLCONFIGDIR": os.path.join(home, ".matplotlib"), "XDG_CACHE_HOME": os.path.join(home, ".cache"),
        "XDG_CONFIG_HOME": os.path.join(home, ".config"), "JUPYTER_CONFIG_DIR": os.path.join(home, ".jupyter"),
        "JUPYTER_DATA_DIR": os.path.join(home, ".jupyter"), "JUPYTER_RUNTIME_DIR": tmp,
        "LANG": os.environ.get("LANG", "C.UTF-8"), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1", "PYTHONDONTWRITEBYTECODE": "1",
        "MALLOC_ARENA_MAX": "2",  # each malloc arena reserves 64 MiB of the address-space limit
    }
    for name in ("DGM_DATA_DIR", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    os.chdir(os.path.join(sandbox, "work"))
    os.execve(cmd[0], cmd, env)
    return 1  # not reached


if __name__ == "__main__" and sys.argv[1:2] == ["launch"]:
    sys.exit(launch(sys.argv[2:]))
