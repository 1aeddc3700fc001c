"""A grading run: every submission under ``grading/submitted/``, one Dask task per student.

The tasks run on a LocalCluster of ``jobs`` workers inside this process, or on the Dask scheduler
given by ``--scheduler`` / ``DGM_GRADE_SCHEDULER`` (:mod:`dgm.grading.cluster`); each grades its
student in a worker process (:mod:`dgm.grading.worker`) in a private copy of the course root. This
process alone merges the results, one student at a time and in a fixed order, into a *stage*
(:mod:`dgm.grading.report`) that replaces gradebook, grades.csv, report.csv and the graded folders
only when every student is done. Ctrl-C or SIGTERM stops queued work at once, kills every grading
process (and with it every sandboxed kernel), removes the run's folder and leaves ``grading/`` as
the previous run left it; a rerun grades everything again.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from dgm.grading import cluster, report, sandbox
from dgm.grading.settings import grade_settings, grading_root
from dgm.grading.submissions import discover
from dgm.grading.worker import inspect_submission

UNPROTECTED = ("the kernels can read the whole file system (solutions, gradebook, other students), write "
               "wherever this user can, use the network, and leave processes behind")


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived during a grading run."""


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
            tasks = folder / "tmp.txt"  # where this run's tasks kept their folders (:mod:`dgm.grading.cluster`)
            if tasks.is_file():
                for task in Path(tasks.read_text().strip()).glob(f"dgm-task-{folder.name.split('-')[1]}-*"):
                    shutil.rmtree(task, ignore_errors=True)
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass


def grade(jobs: int | str | None = None, cell_timeout: int | None = None, notebook_timeout: int | None = None,
          memory_mb: int | None = None, solutions: Path | str | None = None, unsafe_no_sandbox: bool = False,
          scheduler: str | None = None) -> Path:
    """Autograde every submission under grading/submitted/, write feedback, grades.csv and report.csv.

    Settings: :func:`dgm.grading.settings.grade_settings`. ``scheduler`` (else ``DGM_GRADE_SCHEDULER``):
    the address of a Dask scheduler to grade on, ``tcp://host:port``; without one, ``jobs`` workers
    in this process. Refuses to run without the sandbox unless ``unsafe_no_sandbox``. Raises
    :class:`Interrupted` (after cleaning up, ``grading/`` unchanged) on SIGINT/SIGTERM. Returns the
    path of grades.csv.
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
    scheduler = scheduler or os.environ.get("DGM_GRADE_SCHEDULER") or None
    start = time.perf_counter()
    run_dir = runs / f"run-{os.getpid()}"
    stage = run_dir / "stage"
    stage.mkdir(parents=True)
    (run_dir / "tmp.txt").write_text(tempfile.gettempdir())

    def on_signal(signum, frame):
        cluster.kill_local()
        raise Interrupted(signal.Signals(signum).name)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    rows = [[s.student, s.assignment, "", "skipped", s.reason] for s in skipped]
    try:
        if (root / "gradebook.db").is_file():
            shutil.copyfile(root / "gradebook.db", stage / "gradebook.db")

        student_rows: dict[str, list] = {}

        def merge(student, results, work):
            for assignment in work_items[student]:
                release = sorted((root / "release" / assignment).glob("*.ipynb"))
                student_rows.setdefault(student, []).extend(
                    report.merge_result(stage, release, work, student, assignment, results.get(assignment, {})))

        to_grade = {}
        for student, assignments in work_items.items():
            inspected = {a: inspect_submission(submitted / student / a, root / "release" / a) for a in assignments}
            if not any(n["status"] == "graded" for nbs in inspected.values() for n in nbs.values()):
                merge(student, {a: {"notebooks": nbs, "notes": [], "events": [], "ok": True}
                                for a, nbs in inspected.items()}, run_dir)  # nothing to run
            else:
                to_grade[student] = assignments
        expected = cluster.fingerprint()
        if to_grade:
            with cluster.connect(scheduler, settings["jobs"], expected, unsafe_no_sandbox,
                                 run_dir / "dask") as (client, where):
                print(f"grading {sum(map(len, to_grade.values()))} submissions of {len(to_grade)} students on "
                      f"{where}; per cell {settings['cell_timeout']} s, per notebook {settings['notebook_timeout']} "
                      f"s, memory {settings['memory_mb']} MiB; sandbox: {described}", flush=True)
                for student, results, work in cluster.grade_class(client, root, run_dir, to_grade, settings,
                                                                  expected):
                    merge(student, results, work)
        rows += [row for student in work_items for row in student_rows[student]]
        elapsed = time.perf_counter() - start
        nbgrader_cli("export", "--to", str(stage / "grades.csv"), env={**os.environ, "DGM_GRADING_ROOT": str(stage)})
        scores = report.read_scores(stage / "grades.csv")
        report.write_report(stage / "report.csv", rows, scores)
        report.commit(stage, root, [(s, a) for s, items in work_items.items() for a in items])
    except BaseException:
        cluster.kill_local()
        raise
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
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
