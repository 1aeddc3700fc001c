"""dgm.grading.cluster: a class graded on a real Dask scheduler with two workers, one of them killed.

The scheduler and the workers are the ``dask`` command line an instructor would type, on
127.0.0.1. The reference is the serial run (one worker in this process) of the same class.
"""

import copy
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest

from conftest import REPO
from dgm.grading import cluster
from dgm.grading.run import grade
from grading_helpers import gradebook_rows, tiny_class

DASK = str(Path(sys.executable).parent / "dask")


def _archive(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, link
        tar.addfile(info, io.BytesIO(b""))
    return buffer.getvalue()


def test_unpack_keeps_everything_inside_the_folder(tmp_path):
    for data in (_archive("../escape.txt"), _archive("link", tarfile.SYMTYPE, "/etc/passwd"),
                 _archive("link", tarfile.SYMTYPE, "../../x")):
        with pytest.raises(tarfile.FilterError):
            cluster.unpack(data, tmp_path / "dest")
    cluster.unpack(_archive("/abs.txt"), tmp_path / "dest")  # a leading slash is dropped
    assert [p.name for p in tmp_path.rglob("*")] == ["dest", "abs.txt"]


def test_pack_keeps_the_named_parts_byte_for_byte(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.bin").write_bytes(bytes(range(256)) * 10)
    (tmp_path / "c.txt").write_text("c")
    (tmp_path / "secret.txt").write_text("not asked for")
    cluster.unpack(cluster.pack(tmp_path, ["a", "c.txt", "missing"]), tmp_path / "out")
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*")) == \
        ["a", "a/b", "a/b/x.bin", "c.txt"]
    assert (tmp_path / "out" / "a" / "b" / "x.bin").read_bytes() == bytes(range(256)) * 10


def test_a_worker_with_another_checkout_refuses_to_grade():
    with pytest.raises(RuntimeError, match="checkout differs"):
        cluster.grade_task(b"", b"", "s", ["a"], {}, "0" * 16, "run", "tries")


def _proc_stat(pid: int) -> tuple[int, int]:
    """(parent pid, process group) of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[2])


def _grading_processes(where: str, student: str | None = None) -> list[int]:
    """Pids of the grading processes (python -m dgm.grading.worker) with folders in ``where``, of ``student``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if "dgm.grading.worker" in cmdline and where in " ".join(cmdline) \
                    and (student is None or f"--student={student}" in cmdline):
                found.append(int(entry.name))
    return found


class _Killer(threading.Thread):
    """Kills the Dask worker grading ``whole`` once (nanny and all: the machine is gone); of ``twice``,
    kills the grading process the first time and the worker process the second (its nanny starts
    a new one)."""

    def __init__(self, whole: str, twice: str, where: str):
        super().__init__(daemon=True)
        self.whole, self.twice, self.where = whole, twice, where
        self.kills = {whole: 0, twice: 0}
        self.seen: set[int] = set()
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            for student in (self.whole, self.twice):
                for pid in _grading_processes(self.where, student):
                    if pid in self.seen or (student == self.whole and self.kills[student]):
                        continue
                    try:
                        time.sleep(1)  # mid-task: the notebook is running
                        worker = _proc_stat(pid)[0]
                        if student == self.whole:
                            os.killpg(_proc_stat(worker)[1], signal.SIGKILL)  # `dask worker`: nanny and worker
                        elif not self.kills[student]:
                            os.killpg(pid, signal.SIGKILL)  # the grading process and its kernel
                        else:
                            os.kill(worker, signal.SIGKILL)
                    except (OSError, ValueError):
                        continue
                    self.seen.add(pid)
                    self.kills[student] += 1
            time.sleep(0.1)


def test_a_class_on_a_dask_scheduler_with_a_killed_worker_matches_the_serial_run(tmp_path, monkeypatch):
    """Serial reference, then the same class on `dask scheduler` + two `dask worker`: the worker grading
    one student is killed outright (the student is graded again elsewhere, scores and gradebook rows
    identical to serial); another student's grading process is killed, then the worker process
    grading its second attempt (reported as failed with 0 points, the others unaffected). Workers of another checkout are refused
    by name. Nothing is left running."""
    solutions, root, students = tiny_class(tmp_path, monkeypatch)
    for name in ("rebind_globals", "redefine_setup", "transformer", "patch_runtime", "patch_top"):  # graded elsewhere
        shutil.rmtree(root / "submitted" / name)
    solved = students["solved"][0]
    for name in ("aa_killed_once", "aa_killed_twice"):  # graded first: the kills hit them early
        nb = copy.deepcopy(solved)
        nb.cells.insert(2, nbformat.v4.new_code_cell("import time\ntime.sleep(4)\n"))
        (root / "submitted" / name / "00_tiny").mkdir(parents=True)
        nbformat.write(nb, root / "submitted" / name / "00_tiny" / "00_tiny.ipynb")

    grade(jobs=1, cell_timeout=60, solutions=solutions)
    serial = (_scores(root), gradebook_rows(root))
    assert serial[0] == {"solved": 3.0, "blank": 0.0, "aa_killed_once": 3.0, "aa_killed_twice": 3.0}

    short = Path(tempfile.mkdtemp(prefix="dgmc-"))  # the workers' TMPDIR: short, for the kernels' sockets
    env = {**os.environ, "TMPDIR": str(short)}
    file = short / "scheduler.json"
    daemons = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                 "--scheduler-file", str(file)], env=env, cwd=short, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    killer = _Killer("aa_killed_once", "aa_killed_twice", str(short))
    try:
        deadline = time.monotonic() + 60
        while not file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        daemons += [subprocess.Popen([DASK, "worker", "--scheduler-file", str(file), "--nthreads", "1",
                                      "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{i}"],
                                     env=env, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL) for i in range(2)]
        address = json.loads(file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        with monkeypatch.context() as patch, pytest.raises(SystemExit, match=r"(?s)refusing to grade.*"
                                                            r"127\.0\.0\.1.*checkout differs.*127\.0\.0\.1"):
            patch.setattr(cluster, "fingerprint", lambda: "another-checkout")  # this grader's, not the workers'
            grade(cell_timeout=60, solutions=solutions, scheduler=address)
        for sub in ("autograded", "feedback"):
            shutil.rmtree(root / sub)
        (root / "gradebook.db").unlink()
        killer.start()
        monkeypatch.setenv("DGM_GRADE_SCHEDULER", address)
        grade(cell_timeout=60, solutions=solutions)
    finally:
        killer.done.set()
        for proc in daemons:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    assert killer.kills == {"aa_killed_once": 1, "aa_killed_twice": 2}
    scores = _scores(root)
    assert scores == {**serial[0], "aa_killed_twice": 0.0}
    assert [r for r in gradebook_rows(root) if r[0] != "aa_killed_twice"] == \
        [r for r in serial[1] if r[0] != "aa_killed_twice"]
    with open(root / "report.csv", newline="") as f:
        report = {r["student"]: r for r in csv.DictReader(f)}
    assert report["aa_killed_once"]["status"] == "graded"
    assert report["aa_killed_twice"]["status"] == "failed"
    assert "grading was lost 2 times; last: the Dask worker tcp://127.0.0.1:" in report["aa_killed_twice"]["notes"]
    assert "could not be graded" in (root / "feedback" / "aa_killed_twice" / "00_tiny" / "00_tiny.html").read_text()
    deadline = time.monotonic() + 10
    while _grading_processes(str(short)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _grading_processes(str(short)), "a grading process outlived its Dask worker"
    shutil.rmtree(short, ignore_errors=True)


def _scores(root: Path) -> dict[str, float]:
    with open(root / "grades.csv", newline="") as f:
        return {r["student_id"]: float(r["score"]) for r in csv.DictReader(f)}
