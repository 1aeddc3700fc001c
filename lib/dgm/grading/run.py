"""A grading run: every submission under ``grading/submitted/``, ``jobs`` students at once.

Each student is graded by a worker process (:mod:`dgm.grading.worker`) in a private copy of the
course root; this process alone merges the results, one student at a time and in a fixed order,
into a *stage* (:mod:`dgm.grading.report`) that replaces gradebook, grades.csv, report.csv and the
graded folders only when every student is done. Ctrl-C or SIGTERM stops queued work at once, kills
every worker (and with it every sandboxed kernel), removes the run's folder and leaves ``grading/``
as the previous run left it; a rerun grades everything again.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dgm.grading import report, sandbox
from dgm.grading.settings import REPO, grade_settings, grading_root
from dgm.grading.submissions import discover
from dgm.grading.worker import inspect_submission

UNPROTECTED = ("the kernels can read the whole file system (solutions, gradebook, other students), write "
               "wherever this user can, use the network, and leave processes behind")


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived during a grading run."""


class _Workers:
    """The worker processes of a run, killed all at once on an interrupt."""

    def __init__(self):
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.procs: set[subprocess.Popen] = set()

    def kill_all(self):
        self.stop.set()
        with self.lock:
            for proc in self.procs:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def run(self, root: Path, work: Path, student: str, assignments: list[str], settings: dict) -> dict:
        """Grade one student in a worker process; a worker that overruns its time is killed."""
        if self.stop.is_set():
            return {a: {"failed": "the grading run was interrupted"} for a in assignments}
        env = {**os.environ, "DGM_GRADING_ROOT": str(work), "DGM_GRADE_CELL_TIMEOUT": str(settings["cell_timeout"]),
               "DGM_GRADE_NOTEBOOK_TIMEOUT": str(settings["notebook_timeout"]),
               "DGM_GRADE_MEMORY_MB": str(settings["memory_mb"]),
               "DGM_GRADE_UNSAFE_NO_SANDBOX": "1" if settings.get("unsafe_no_sandbox") else "0",
               "DGM_KERNEL_TMP": settings.get("kernels", ""),
               "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
        limit = len(assignments) * (settings["notebook_timeout"] + 300) + 300
        cmd = [sys.executable, "-m", "dgm.grading.worker", "--main-root", str(root), "--work", str(work),
               f"--student={student}", f"--parent={os.getpid()}", "--", *assignments]
        work.mkdir(parents=True, exist_ok=True)
        with open(work / "worker.log", "w") as log:
            with self.lock:
                if self.stop.is_set():
                    return {a: {"failed": "the grading run was interrupted"} for a in assignments}
                proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
                self.procs.add(proc)
            try:
                proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return {a: {"failed": f"grading took longer than {limit} s and was stopped"} for a in assignments}
            finally:
                with self.lock:
                    self.procs.discard(proc)
        result = work / "result.json"
        if proc.returncode != 0 or not result.is_file():
            tail = (work / "worker.log").read_text(errors="replace")[-3000:]
            return {a: {"failed": f"the grader crashed (exit code {proc.returncode}):\n{tail}"} for a in assignments}
        return json.loads(result.read_text())


def _check_sandbox(unsafe: bool) -> str:
    support = sandbox.support()
    if support["ok"]:
        return "bubblewrap (no network, private PID namespace, read-only system, course not mounted)"
    if not unsafe:
        raise SystemExit(f"make grade: the grading sandbox cannot run: {support['why']}.\n"
                         "Grading refuses to run student code unconfined. Install bubblewrap (`make sandbox`), or "
                         "grade anyway with UNSAFE=1 (`--unsafe-no-sandbox`): then " + UNPROTECTED + ".")
    print("=" * 78 + "\nWARNING: grading WITHOUT the sandbox (--unsafe-no-sandbox): " + UNPROTECTED
          + ". Only the memory and time limits and the test guard remain.\n" + "=" * 78, file=sys.stderr, flush=True)
    return "NONE (unsafe mode: " + support["why"] + ")"


def _remove_stale_runs(runs: Path) -> None:
    """Folders of runs that were killed with SIGKILL (their process is gone) hold hidden tests: remove them."""
    for folder in runs.glob("run-*") if runs.is_dir() else []:
        try:
            pid = int(folder.name.split("-")[1])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            kernels = folder / "kernels.txt"
            if kernels.is_file() and Path(kernels.read_text().strip()).name.startswith("dgm-"):
                shutil.rmtree(kernels.read_text().strip(), ignore_errors=True)
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass


def grade(jobs: int | str | None = None, cell_timeout: int | None = None, notebook_timeout: int | None = None,
          memory_mb: int | None = None, solutions: Path | str | None = None, unsafe_no_sandbox: bool = False) -> Path:
    """Autograde every submission under grading/submitted/, write feedback, grades.csv and report.csv.

    Settings: :func:`dgm.grading.settings.grade_settings`. Refuses to run without the sandbox unless
    ``unsafe_no_sandbox``. Raises :class:`Interrupted` (after cleaning up, ``grading/`` unchanged) on
    SIGINT/SIGTERM. Returns the path of grades.csv.
    """
    import warnings

    from dgm.course import assignment_names, generate_assignments, nbgrader_cli

    warnings.filterwarnings("ignore", message=".*not in session.*")  # noise from nbgrader's add_submission
    settings = grade_settings(jobs=jobs, cell_timeout=cell_timeout, notebook_timeout=notebook_timeout,
                              memory_mb=memory_mb)
    settings["unsafe_no_sandbox"] = unsafe_no_sandbox
    described = _check_sandbox(unsafe_no_sandbox)
    root = grading_root()
    submitted = root / "submitted"
    if not submitted.is_dir():
        raise FileNotFoundError(f"no submissions: put them in {submitted}/<student>/<assignment>/")
    runs = root / ".runs"
    runs.mkdir(exist_ok=True)
    lock = open(runs / "lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"make grade: another grading run is using {root}") from None
    _remove_stale_runs(runs)
    work_items, skipped = discover(submitted, set(assignment_names(solutions)))
    names = sorted({a for items in work_items.values() for a in items})
    generate_assignments(release_to=None, names=names, solutions=solutions)
    print(f"grading {sum(map(len, work_items.values()))} submissions of {len(work_items)} students with "
          f"{settings['jobs']} jobs; per cell {settings['cell_timeout']} s, per notebook "
          f"{settings['notebook_timeout']} s, memory {settings['memory_mb']} MiB; sandbox: {described}", flush=True)
    start = time.perf_counter()
    run_dir = runs / f"run-{os.getpid()}"
    stage = run_dir / "stage"
    stage.mkdir(parents=True)
    kernels = Path(tempfile.mkdtemp(prefix="dgm-"))  # the kernels' scratch folders (short: socket paths)
    (run_dir / "kernels.txt").write_text(str(kernels))
    settings["kernels"] = str(kernels)
    workers = _Workers()

    def on_signal(signum, frame):
        workers.kill_all()
        raise Interrupted(signal.Signals(signum).name)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    rows = [[s.student, s.assignment, "", "skipped", s.reason] for s in skipped]
    try:
        if (root / "gradebook.db").is_file():
            shutil.copyfile(root / "gradebook.db", stage / "gradebook.db")

        def task(index, student, assignments):
            inspected = {a: inspect_submission(submitted / student / a, root / "release" / a) for a in assignments}
            if not any(n["status"] == "graded" for nbs in inspected.values() for n in nbs.values()):
                return {a: {"notebooks": nbs, "notes": [], "events": [], "ok": True} for a, nbs in inspected.items()}
            return workers.run(root, run_dir / f"w{index:05d}", student, assignments, settings)

        with ThreadPoolExecutor(max_workers=settings["jobs"]) as pool:
            futures = {s: pool.submit(task, i, s, a) for i, (s, a) in enumerate(work_items.items())}
            for index, (student, future) in enumerate(futures.items()):  # merge in a fixed order, one at a time
                results = future.result()
                for assignment in work_items[student]:
                    release = sorted((root / "release" / assignment).glob("*.ipynb"))
                    rows += report.merge_result(stage, release, run_dir / f"w{index:05d}", student, assignment,
                                                results.get(assignment, {}))
        elapsed = time.perf_counter() - start
        nbgrader_cli("export", "--to", str(stage / "grades.csv"), env={**os.environ, "DGM_GRADING_ROOT": str(stage)})
        scores = report.read_scores(stage / "grades.csv")
        report.write_report(stage / "report.csv", rows, scores)
        report.commit(stage, root, [(s, a) for s, items in work_items.items() for a in items])
    except BaseException:
        workers.kill_all()
        raise
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        shutil.rmtree(kernels, ignore_errors=True)
        shutil.rmtree(run_dir, ignore_errors=True)
        lock.close()
    for (student, assignment), (score, max_score) in sorted(scores.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"{assignment:<24} {student:<20} {score:>6} / {max_score}")
    for student, assignment, notebook, status, notes in rows:
        if status != "graded" or notes:
            where = " / ".join(x for x in (student, assignment, notebook) if x)
            print(f"note: {where}: {status}" + (f" - {notes}" if notes else ""))
    print(f"graded in {elapsed:.1f} s\ngrades: {root / 'grades.csv'}\nreport: {root / 'report.csv'}\n"
          f"feedback: {root / 'feedback'}")
    return root / "grades.csv"
