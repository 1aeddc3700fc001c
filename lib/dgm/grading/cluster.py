"""Grading on Dask: one task per student, on a LocalCluster in this process or on a scheduler you run.

A task carries everything it grades as tar archives - the gradebook, the assignments' source and
release folders, the student's submissions as they are graded (links and oversized files already
left out, with notes saying so) - grades them in a worker process
(:mod:`dgm.grading.worker`) inside a private temporary folder on whichever machine runs it, and
sends back result.json, the worker's gradebook and the student's autograded/ and feedback/ folders
as another archive. A Dask worker therefore needs no shared file system: only the course checkout
at the same commit (compared through :func:`fingerprint`), its ``.venv`` and bubblewrap.

A student whose grading is lost - the Dask worker died, or the grading process crashed - is graded
once more, on any worker; a second loss is reported in report.csv with its reason, never dropped.
book/instructors.md, "Grading on a cluster", says how to start a scheduler and workers.
"""

from __future__ import annotations

import hashlib
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
from contextlib import contextmanager
from pathlib import Path

from dgm.grading import sandbox
from dgm.grading.settings import REPO
from dgm.grading.worker import prepare_submission

RETRIES = 1  # a student whose grading was lost (worker died, grading process crashed) is graded again this often
RESUBMITS = 2  # a task that Dask gave up on (KilledWorker, a refusing worker) is submitted again this often
_RUNNING: set[subprocess.Popen] = set()  # grading processes started by tasks in this process
_LOCK = threading.Lock()
_STOPPED = threading.Event()  # set by kill_local(): tasks in this process start nothing more


class GradingLost(RuntimeError):
    """A student's grading process died without a result (killed, out of memory, crashed)."""


def fingerprint() -> str:
    """What must agree between the grading run and every worker: the course library, nbgrader's
    configuration and the versions of Python and the packages the tests compute with."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    for path in sorted((REPO / "lib" / "dgm").rglob("*.py")) + [REPO / "nbgrader_config.py"]:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    for package in ("nbgrader", "torch", "numpy", "scikit-learn"):
        digest.update(f"{package}=={version(package)}\0".encode())
    digest.update(sys.version.split()[0].encode())
    return digest.hexdigest()[:16]


def pack(root: Path, parts: list[str]) -> bytes:
    """A gzipped tar archive of the files and folders ``parts`` (paths relative to ``root``) that exist."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        for part in parts:
            if (root / part).exists():
                tar.add(root / part, part)
    return buffer.getvalue()


def unpack(data: bytes, dest: Path) -> None:
    """Extract an archive of :func:`pack` or of a task's result into ``dest`` (plain files and folders only)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        tar.extractall(dest, filter="data")


def _remove_stale_task_folders() -> None:
    """Task folders of a process that was killed (kill -9, a lost machine) hold hidden tests: remove them."""
    for folder in Path(tempfile.gettempdir()).glob("dgm-task-*"):
        try:
            os.kill(int(folder.name.split("-")[2]), 0)
        except (ValueError, IndexError, ProcessLookupError):
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass


def _run_worker(main_root: Path, work: Path, kernels: Path, student: str, assignments: list[str],
                settings: dict, stop) -> dict:
    """Grade one student in a ``python -m dgm.grading.worker`` process, killed when it overruns its time
    or when ``stop()`` says the grading run was interrupted; returns its results."""
    interrupted = {a: {"failed": "the grading run was interrupted"} for a in assignments}
    env = {**os.environ, "DGM_GRADING_ROOT": str(work), "DGM_GRADE_CELL_TIMEOUT": str(settings["cell_timeout"]),
           "DGM_GRADE_NOTEBOOK_TIMEOUT": str(settings["notebook_timeout"]),
           "DGM_GRADE_MEMORY_MB": str(settings["memory_mb"]),
           "DGM_GRADE_UNSAFE_NO_SANDBOX": "1" if settings.get("unsafe_no_sandbox") else "0",
           "DGM_KERNEL_TMP": str(kernels),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    limit = len(assignments) * (settings["notebook_timeout"] + 300) + 300
    cmd = [sys.executable, "-m", "dgm.grading.worker", "--main-root", str(main_root), "--work", str(work),
           f"--student={student}", f"--parent={os.getpid()}", "--", *assignments]
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "worker.log", "w") as log:
        with _LOCK:
            if _STOPPED.is_set():
                return interrupted
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            _RUNNING.add(proc)
        deadline, outcome = time.monotonic() + limit, None
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    outcome = {a: {"failed": f"grading took longer than {limit} s and was stopped"} for a in assignments}
                elif stop():
                    outcome = interrupted
                if outcome:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return outcome
                time.sleep(0.2)
        finally:
            with _LOCK:
                _RUNNING.discard(proc)
    if _STOPPED.is_set():
        return interrupted
    result = work / "result.json"
    if proc.returncode != 0 or not result.is_file():
        tail = (work / "worker.log").read_text(errors="replace")[-3000:]
        raise GradingLost(f"the grading process of {student} died (exit code {proc.returncode}):\n{tail}")
    return json.loads(result.read_text())


def grade_task(common: bytes, submitted: bytes, student: str, assignments: list[str], settings: dict,
               expected: str, run: str, tries: str) -> bytes:
    """A Dask task: grade one student; returns the archive of the results.

    ``common`` is the archive of the gradebook and the assignments' source and release folders (sent
    to each worker once), ``submitted`` that of the student's submissions as
    :func:`~dgm.grading.worker.prepare_submission` left them. The Dask variable
    ``tries`` counts the attempts that started grading this student, wherever they ran: an attempt
    that died with its worker (Dask runs the task again) or whose grading process crashed is followed
    by one more; after :data:`RETRIES` more the results say ``failed`` with the last reason.

    Refuses (raises) on a worker whose checkout differs from the grading run's (``expected``
    :func:`fingerprint`) or that cannot run the sandbox unless the run is ``unsafe_no_sandbox``.
    Stops early when the run's Dask event ``run`` is set (the instructor pressed Ctrl-C).
    """
    from distributed import Variable, get_worker

    if fingerprint() != expected:
        raise RuntimeError(f"this worker's course checkout differs from the grading run's ({fingerprint()} "
                           f"!= {expected}): check out the same commit and `make setup` on every worker")
    if not settings.get("unsafe_no_sandbox") and not sandbox.support()["ok"]:
        raise RuntimeError(f"this worker cannot run the grading sandbox: {sandbox.support()['why']}")
    _remove_stale_task_folders()
    stop, tries = _stop_checker(run), Variable(tries)
    while True:
        try:
            record = tries.get(timeout=60)
        except Exception:  # the run ended (its variables are gone): nobody waits for this student
            return pack_results(None, student, {a: {"failed": "the grading run was interrupted"} for a in assignments})
        if record["started"] > RETRIES:
            failed = f"grading was lost {record['started']} times; last: {record['last']}"
            return pack_results(None, student, {a: {"failed": failed} for a in assignments})
        tries.set({"started": record["started"] + 1,
                   "last": f"the Dask worker {get_worker().address} grading it died"})
        with tempfile.TemporaryDirectory(prefix=f"dgm-task-{os.getpid()}-") as tmp:  # short: the kernels' sockets
            tmp = Path(tmp)
            unpack(common, tmp / "in")
            unpack(submitted, tmp / "in")
            try:
                results = _run_worker(tmp / "in", tmp / "out", tmp, student, assignments, settings, stop)
            except GradingLost as err:
                tries.set({"started": record["started"] + 1, "last": str(err)})
                continue
            return pack_results(tmp / "out", student, results)


def pack_results(out: Path | None, student: str, results: dict) -> bytes:
    """The archive a task sends back: result.json and what the grading process wrote in ``out``."""
    with tempfile.TemporaryDirectory(prefix="dgm-") as empty:
        out = out or Path(empty)
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps(results))
        return pack(out, ["result.json", "worker.log", "gradebook.db", f"autograded/{student}", f"feedback/{student}"])


def _stop_checker(run: str):
    """A function telling whether the grading run ``run`` was interrupted (asked at most once a second)."""
    from distributed import Event

    event, last = Event(run), [0.0, False]

    def stop() -> bool:
        if _STOPPED.is_set():
            return True
        if time.monotonic() - last[0] > 1:
            try:
                last[1] = event.is_set()
            except Exception:  # the scheduler is gone: nobody waits for this result
                last[1] = True
            last[0] = time.monotonic()
        return last[1]

    return stop


def kill_local() -> None:
    """Kill every grading process started in this process (Ctrl-C of a run on the in-process cluster)."""
    _STOPPED.set()
    with _LOCK:
        for proc in _RUNNING:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _probe() -> dict:
    """Run on every worker before grading: its checkout and whether it can sandbox."""
    return {"fingerprint": fingerprint(), "sandbox": sandbox.support()}


def _check_workers(client, expected: str, unsafe: bool) -> int:
    """Refuse to grade on workers whose checkout differs or that cannot sandbox; returns their number."""
    problems = []
    for address, found in sorted(client.run(_probe).items()):
        if found["fingerprint"] != expected:
            problems.append(f"{address}: its course checkout differs from this one (run `git checkout` of the "
                            "same commit and `make setup` there)")
        if not unsafe and not found["sandbox"]["ok"]:
            problems.append(f"{address}: the grading sandbox cannot run there: {found['sandbox']['why']}")
    if problems:
        raise SystemExit("make grade: refusing to grade on these Dask workers:\n  " + "\n  ".join(problems))
    return len(client.scheduler_info(n_workers=-1)["workers"])


@contextmanager
def connect(scheduler: str | None, jobs: int, expected: str, unsafe: bool, scratch: Path):
    """A Dask client: on the scheduler at ``scheduler`` (``tcp://host:port``), else on a LocalCluster of
    ``jobs`` single-threaded workers inside this process, which keeps its files in ``scratch``.
    Yields (client, description)."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # not a line per connection in `make grade`

    _STOPPED.clear()
    if scheduler:
        try:
            client = Client(scheduler, timeout=30)
        except (OSError, TimeoutError) as err:
            raise SystemExit(f"make grade: cannot reach the Dask scheduler {scheduler} (--scheduler / "
                             f"DGM_GRADE_SCHEDULER): {err}") from None
        try:
            try:
                client.wait_for_workers(1, timeout=60)
            except TimeoutError:
                raise SystemExit(f"make grade: no Dask worker joined {scheduler} within 60 s") from None
            workers = _check_workers(client, expected, unsafe)
            yield client, f"Dask scheduler {scheduler} ({workers} workers now)"
        finally:
            client.close(timeout=10)
        return
    with dask.config.set({"temporary-directory": str(scratch)}):  # the scheduler's files too
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=False, dashboard_address=None,
                               memory_limit=0)
    client = Client(cluster)
    try:
        yield client, f"a LocalCluster of {jobs} workers in this process"
    finally:
        client.close(timeout=10)
        cluster.close(timeout=10)


def grade_class(client, root: Path, run_dir: Path, students: dict[str, list[str]], settings: dict, expected: str):
    """Submit one task per student, those with the most assignments first, and yield
    ``(student, results, folder)`` in the order of ``students``, the folder holding what the task sent
    back (gradebook, autograded/, feedback/). The caller merges as they come. A task that Dask gives
    up on (``KilledWorker``: its workers kept dying before it could run, or a worker refused it) is
    submitted again, at most :data:`RESUBMITS` times, then reported as failed with the reason."""
    from distributed import Event, Variable, as_completed

    run = f"dgm-{run_dir.name}-{os.getpid()}"
    Event(run, client=client).clear()
    assignments = sorted({a for items in students.values() for a in items})
    common = client.submit(bytes, pack(root, ["gradebook.db", *(f"{sub}/{a}" for a in assignments
                                                               for sub in ("source", "release"))]),
                           key=f"common-{run}")  # a task, not scattered data: Dask recomputes it when a worker dies
    names, submits, student_of, variables = list(students), {}, {}, {}
    index_of = {student: index for index, student in enumerate(names)}

    def submit(student):
        index = index_of[student]
        submits[student] = submits.get(student, 0) + 1
        if student not in variables:
            variables[student] = Variable(f"{run}-tries-{index}", client=client)
            variables[student].set({"started": 0, "last": ""})
        with tempfile.TemporaryDirectory(prefix="dgm-") as tmp:  # as it is graded: no links, size limits
            for a in students[student]:
                found = prepare_submission(root / "submitted" / student / a, root / "release" / a,
                                           Path(tmp) / "submitted" / student / a)
                (Path(tmp) / "prepared" / student).mkdir(parents=True, exist_ok=True)
                (Path(tmp) / "prepared" / student / f"{a}.json").write_text(json.dumps(found))
            mine = pack(Path(tmp), [f"submitted/{student}", f"prepared/{student}"])
        future = client.submit(grade_task, common, mine, student, students[student], settings, expected, run,
                               variables[student].name, key=f"grade-{run}-{index}-{submits[student]}", pure=False)
        student_of[future.key] = student
        return future

    done: dict[str, dict] = {}
    # the students with the most to grade first: a long one started last would leave the other workers idle
    queue = as_completed([submit(s) for s in sorted(names, key=lambda s: -len(students[s]))])
    position = 0
    try:
        for future in queue:
            student = student_of[future.key]
            work = run_dir / f"w{index_of[student]:05d}"
            try:
                unpack(future.result(), work)
            except Exception as err:
                reason = f"{type(err).__name__}: {err}".strip()
                if submits[student] <= RESUBMITS:
                    print(f"grading {student} failed on Dask ({reason.splitlines()[0][:200]}); submitting it again",
                          file=sys.stderr, flush=True)
                    queue.add(submit(student))
                    continue
                done[student] = {a: {"failed": f"Dask could not grade it: {reason}"} for a in students[student]}
            else:
                done[student] = json.loads((work / "result.json").read_text())
            future.release()
            while position < len(names) and names[position] in done:
                yield names[position], done.pop(names[position]), run_dir / f"w{position:05d}"
                position += 1
    finally:
        try:
            Event(run, client=client).set()  # tasks still running stop their grading processes
            for variable in variables.values():
                variable.delete()
        except Exception:
            pass
        client.cancel(list(queue.futures), force=True)
