"""dgm.grading.run: a whole (tiny) class graded end to end, serially and in parallel, and interrupted.

The cheats of grading_helpers.CHEATS pass plain execution (the control) and score 0 when graded;
one student goes through nbgrader's exchange as the hub template configures it; Ctrl-C and
``kill -9`` stop a run with nothing left running and ``grading/`` as the last complete run wrote
it; without bubblewrap, grading refuses unless told ``--unsafe-no-sandbox``.
"""

import copy
import csv
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from conftest import REPO
from dgm import course
from dgm.grading import cells
from dgm.grading.run import grade
from grading_helpers import CHEATS, TINY, gradebook_rows, tiny_class, write


def test_cheats_pass_without_the_guard(tmp_path, monkeypatch):
    """Control: each cheat really passes the tiny tests under plain execution (no guard, no wrapping)."""
    from nbclient import NotebookClient

    _, root, students = tiny_class(tmp_path, monkeypatch)
    source = course.to_notebook(write(tmp_path / "s.md", TINY))
    tests = [c.source for c in source.cells if cells.is_test_cell(c)]
    for name in CHEATS:
        nb = copy.deepcopy(students[name][0])
        nb.cells = [c for c in nb.cells if not cells.is_test_cell(c)]
        nb.cells += [nbformat.v4.new_code_cell(t) for t in tests]  # the hidden tests included
        NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True).execute()
        errors = [o for c in nb.cells[-2:] for o in c.outputs if o.output_type == "error"]
        assert not errors, f"{name} does not cheat plain execution: {errors}"


def test_class_through_the_hub_exchange_graded_serially_and_in_parallel(tmp_path, monkeypatch):
    """One tiny class, end to end.

    A student goes through nbgrader's exchange configured by grading-hub's template (release,
    fetch, submit, collect); planted students (honest and cheating) join them in
    grading/submitted/. The class is graded with 1 and with 3 jobs: scores and every gradebook row
    are identical (workers never share the gradebook), each student gets exactly their points and a
    feedback page without hidden tests, submitted/ is untouched. Then the feedback goes back
    through the exchange.
    """
    solutions, root, students = tiny_class(tmp_path, monkeypatch)
    exchange, config_dir, home = tmp_path / "exchange", tmp_path / "cfg", tmp_path / "home"
    for folder in (exchange, config_dir, home):
        folder.mkdir()
    exchange.chmod(0o777)
    shutil.copyfile(REPO / "grading-hub" / "nbgrader_config_hub.py", config_dir / "nbgrader_config.py")
    monkeypatch.setenv("NBGRADER_EXCHANGE_ROOT", str(exchange))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(config_dir))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def nbgrader(*args, cwd):
        result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, f"nbgrader {args}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"

    import getpass

    user = getpass.getuser()  # nbgrader's exchange names a submission after its unix owner
    nbgrader("release_assignment", "00_tiny", cwd=REPO)
    nbgrader("fetch_assignment", "00_tiny", cwd=home)
    fetched = home / "dgm-hands-on" / "00_tiny" / "00_tiny.ipynb"  # the template keeps courses apart
    nb = nbformat.read(fetched, as_version=4)
    assert "secret" not in nbformat.writes(nb)
    nb.cells[2].source = "def add(a, b):\n    return a + b\n"
    nbformat.write(nb, fetched)
    nbgrader("submit", "00_tiny", cwd=home)
    nbgrader("collect", "00_tiny", cwd=REPO)
    collected = root / "submitted" / user / "00_tiny"
    assert (collected / "timestamp.txt").is_file()
    assert nbformat.read(collected / "00_tiny.ipynb", as_version=4).cells[2].source == nb.cells[2].source
    expected = {name: points for name, (_, points) in students.items()} | {user: 2.0}

    submitted = {p: p.read_bytes() for p in sorted((root / "submitted").rglob("*")) if p.is_file()}
    runs = {}
    for jobs in (1, 3):
        for sub in ("autograded", "feedback"):
            shutil.rmtree(root / sub, ignore_errors=True)
        (root / "gradebook.db").unlink()
        grade(jobs=jobs, cell_timeout=30, solutions=solutions)
        with open(root / "grades.csv", newline="") as f:
            scores = {r["student_id"]: float(r["score"]) for r in csv.DictReader(f)}
        runs[jobs] = (scores, gradebook_rows(root))
        assert scores == expected, (jobs, scores)
        for name in expected:
            feedback = root / "feedback" / name / "00_tiny" / "00_tiny.html"
            assert feedback.is_file() and "secret" not in feedback.read_text()
    assert runs[1] == runs[3]
    assert {p: p.read_bytes() for p in sorted((root / "submitted").rglob("*")) if p.is_file()} == submitted
    with open(root / "report.csv", newline="") as f:
        notes = {r["student"]: r["notes"] for r in csv.DictReader(f)}
    assert "integrity" in notes["patch_runtime"] and "restored" in notes["patch_top"]
    assert "there is no verdict from the grader" in notes["transformer"]
    assert "notebook.reference" in notes["redefine_setup"]

    nbgrader("release_feedback", "00_tiny", "--student", user, cwd=REPO)  # the others did not use the exchange
    nbgrader("fetch_feedback", "00_tiny", cwd=home)
    pages = list((home / "dgm-hands-on" / "00_tiny" / "feedback").rglob("00_tiny.html"))
    assert pages and "visible tests passed" in pages[0].read_text() and "secret" not in pages[0].read_text()


# ---- interrupts ----------------------------------------------------------------------------------

SLOW = "import time\ntime.sleep(8)\n"


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain ``text`` (this test's folders)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def _state(root: Path) -> dict:
    """What a grading run leaves for the instructor: the files and the graded folders, byte for byte."""
    out = {}
    for name in ("grades.csv", "report.csv", "gradebook.db"):
        out[name] = hashlib.sha256((root / name).read_bytes()).hexdigest() if (root / name).exists() else None
    for sub in ("autograded", "feedback"):
        for path in sorted((root / sub).rglob("*")) if (root / sub).is_dir() else []:
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


def _start(root: Path, solutions: Path, tmp: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "DGM_GRADING_ROOT": str(root), "TMPDIR": str(tmp)}
    code = ("import sys; from dgm.grading.run import grade; "
            f"grade(jobs=2, cell_timeout=60, solutions={str(solutions)!r})")
    return subprocess.Popen([sys.executable, "-c", code, *extra], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _wait_until_grading(proc: subprocess.Popen, tmp: Path, seconds: float = 90) -> None:
    """Until a sandboxed kernel of this run is up (its folder lies in ``tmp``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        if any(tmp.glob("dgm-*/k-*/kernel.json")) and _processes_mentioning(str(tmp)):
            time.sleep(2)
            return
        time.sleep(0.2)
    pytest.fail("no grading kernel started")


def test_interrupt_and_kill_leave_nothing_running_and_files_consistent(tmp_path, monkeypatch):
    solutions, root, students = tiny_class(tmp_path, monkeypatch)
    source = course.to_notebook(solutions / "00_tiny" / "00_tiny.md")
    solved = copy.deepcopy(students["solved"][0])
    grade(jobs=2, cell_timeout=60, solutions=solutions)  # the last complete run
    before = _state(root)
    assert before["grades.csv"] and before["gradebook.db"]
    for i in range(4):  # slow students, graded first (sorted by name): the interrupts hit them
        nb = copy.deepcopy(solved)
        nb.cells.insert(2, nbformat.v4.new_code_cell(SLOW))
        folder = root / "submitted" / f"aa_slow{i}" / "00_tiny"
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / "00_tiny.ipynb")
    tmp = Path(tempfile.mkdtemp(prefix="dgmt-"))  # short: the kernels' socket paths live in it

    proc = _start(root, solutions, tmp)  # Ctrl-C: SIGINT to the whole foreground process group
    _wait_until_grading(proc, tmp)
    os.killpg(proc.pid, signal.SIGINT)
    start = time.monotonic()
    try:
        output, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("grading did not stop within 10 s of Ctrl-C")
    assert time.monotonic() - start < 10 and proc.returncode != 0, output[-2000:]
    assert "Interrupted" in output
    time.sleep(1)
    assert not _processes_mentioning(str(tmp)) and not _processes_mentioning(str(root)), \
        _processes_mentioning(str(tmp)) + _processes_mentioning(str(root))
    assert _state(root) == before, "an interrupted run changed grading/"
    assert not list((root / ".runs").glob("run-*")), "the interrupted run left its folder (hidden tests) behind"
    assert not list(tmp.iterdir()), "a kernel's scratch folder was left behind"

    proc = _start(root, solutions, tmp)  # kill -9 of the grader alone: its workers and kernels follow it
    _wait_until_grading(proc, tmp)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while (_processes_mentioning(str(tmp)) or _processes_mentioning(str(root))) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_mentioning(str(tmp)) and not _processes_mentioning(str(root)), \
        _processes_mentioning(str(tmp)) + _processes_mentioning(str(root))
    assert _state(root) == before
    assert list((root / ".runs").glob("run-*")), "kill -9 leaves the run's folder: the next run must remove it"

    grade(jobs=2, cell_timeout=60, solutions=solutions)  # the rerun grades the whole class
    assert not list((root / ".runs").glob("run-*")) and not list(tmp.iterdir())
    shutil.rmtree(tmp)
    with open(root / "grades.csv", newline="") as f:
        scores = {r["student_id"]: float(r["score"]) for r in csv.DictReader(f)}
    expected = {name: points for name, (_, points) in students.items()} | {f"aa_slow{i}": 3.0 for i in range(4)}
    assert scores == expected
    assert _points(source) == 3


def _points(nb):
    return sum(c.metadata["nbgrader"].get("points", 0) for c in nb.cells if cells.is_test_cell(c))


def test_grading_refuses_without_the_sandbox_unless_told(tmp_path, monkeypatch):
    solutions, root, students = tiny_class(tmp_path, monkeypatch)
    for name in list(students)[2:]:
        shutil.rmtree(root / "submitted" / name)
    env = {**os.environ, "DGM_GRADING_ROOT": str(root), "PATH": str(Path(sys.executable).parent)}  # no bwrap
    code = f"from dgm.grading.run import grade; grade(jobs=1, solutions={str(solutions)!r}, unsafe_no_sandbox=%s)"
    refused = subprocess.run([sys.executable, "-c", code % "False"], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=300)
    assert refused.returncode != 0 and "bubblewrap" in refused.stderr and "--unsafe-no-sandbox" in refused.stderr
    assert not (root / "grades.csv").exists()
    unsafe = subprocess.run([sys.executable, "-c", code % "True"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert unsafe.returncode == 0, unsafe.stdout[-3000:] + unsafe.stderr[-3000:]
    assert "WARNING: grading WITHOUT the sandbox" in unsafe.stderr
    with open(root / "grades.csv", newline="") as f:
        assert {r["student_id"]: float(r["score"]) for r in csv.DictReader(f)} == {"solved": 3.0, "blank": 0.0}
