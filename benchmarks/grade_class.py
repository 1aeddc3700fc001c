"""Grading at class scale: one synthetic class graded serially, by a local pool and on Dask, same scores.

    .venv/bin/python benchmarks/grade_class.py                    # 100 submissions of chapter 1, 3 runs each
    .venv/bin/python benchmarks/grade_class.py --students 20 --jobs 4 --assignment 02_vae_elbo --repeats 2
    .venv/bin/python benchmarks/grade_class.py --students 20 --sandbox-overhead   # also serially without bubblewrap

Creates ``--students`` submissions of one assignment in a temporary course root - a mix of 40 %
solved (the solution), 30 % partial (the answers the grading tests' HALF dict names) and 30 % blank
(the untouched release) - then runs the real grader (``python -m dgm.grading grade``) in fresh copies
of that root, ``--repeats`` times each way: serially (``--jobs 1``), with a local pool of ``--jobs N``
workers (Dask's LocalCluster in the grading process, the default of ``make grade``), and on a Dask
scheduler with N ``dask worker`` processes of one thread each on 127.0.0.1 (``--scheduler``: how a
cluster is used, with the cost of shipping every submission to a worker and back). With
``--sandbox-overhead`` also serially with ``--unsafe-no-sandbox``, to measure what bubblewrap costs
per notebook. Prints seconds per submission as mean ± sd over the repeats and the speed-ups, and
exits non-zero unless every student's score is identical in every run and equal to the points the
solution metadata says each kind of submission earns. Nothing is timed by the test suite;
tests/test_grading_run.py and tests/test_grading_cluster.py check the same agreement on a tiny
assignment.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import statistics
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "lib"))

from dgm import course  # noqa: E402
from dgm.grading import cells, sandbox  # noqa: E402


def _half():
    from test_grading import HALF  # the grading tests' partial solutions, with the tests they earn

    return HALF


def _cells(nb):
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "grade_id" in c.metadata.get("nbgrader", {})}


def _points(nb, ids=None):
    return sum(c.metadata["nbgrader"].get("points", 0) for gid, c in _cells(nb).items()
               if cells.is_test_cell(c) and (ids is None or gid in ids))


def build_class(root: Path, assignment: str, students: int) -> dict[str, float]:
    """Write the synthetic submissions into root/submitted/; returns student -> expected points."""
    release_dir = root / "_release"
    os.environ["DGM_GRADING_ROOT"] = str(root)
    course.generate_assignments(release_to=release_dir, names=[assignment])
    release = nbformat.read(release_dir / assignment / f"{assignment}.ipynb", as_version=4)
    source = course.to_notebook(REPO / "solutions" / assignment / f"{assignment}.md")
    answers = {gid: c.source for gid, c in _cells(source).items() if c.metadata["nbgrader"].get("solution")}
    solve_half, earned_half = _half()[assignment]
    kinds = {"solved": (set(answers), _points(source)), "partial": (solve_half, _points(source, earned_half)),
             "blank": (set(), 0.0)}
    expected = {}
    for i in range(students):
        kind = {"S": "solved", "P": "partial", "B": "blank"}["SPBSPBSPBS"[i % 10]]  # 40 % / 30 % / 30 %
        solve, points = kinds[kind]
        nb = copy.deepcopy(release)
        for gid, cell in _cells(nb).items():
            if gid in solve:
                cell.source = answers[gid]
        student = f"s{i:03d}_{kind}"
        folder = root / "submitted" / student / assignment
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{assignment}.ipynb")
        expected[student] = float(points)
    shutil.rmtree(release_dir)
    return expected


def run(root: Path, jobs: int, cell_timeout: int, unsafe: bool = False,
        scheduler: str | None = None) -> tuple[float, dict[str, float]]:
    """Grade root with ``jobs`` local workers or on ``scheduler``; returns (wall seconds, student -> score)."""
    env = {**os.environ, "DGM_GRADING_ROOT": str(root)}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "dgm.grading", "grade", "--jobs", str(jobs),
                             "--cell-timeout", str(cell_timeout)] + (["--unsafe-no-sandbox"] if unsafe else [])
                            + (["--scheduler", scheduler] if scheduler else []),
                            cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"grading with {jobs} jobs failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    with open(root / "grades.csv", newline="") as f:
        return seconds, {r["student_id"]: float(r["score"]) for r in csv.DictReader(f)}


class DaskOnThisMachine:
    """``dask scheduler`` and ``workers`` x ``dask worker --nthreads 1`` on 127.0.0.1, as an instructor starts them."""

    def __init__(self, workers: int, folder: Path):
        self.workers, self.folder, self.procs = workers, folder, []

    def __enter__(self) -> str:
        dask = str(Path(sys.executable).parent / "dask")
        file = self.folder / "scheduler.json"
        out = open(self.folder / "dask.log", "w")
        self.procs.append(subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                            "--scheduler-file", str(file)], cwd=self.folder, stdout=out, stderr=out))
        deadline = time.monotonic() + 60
        while not file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.procs += [subprocess.Popen([dask, "worker", "--scheduler-file", str(file), "--nthreads", "1",
                                         "--no-dashboard", "--host", "127.0.0.1"], cwd=REPO, stdout=out, stderr=out)
                       for _ in range(self.workers)]
        from distributed import Client

        address = json.loads(file.read_text())["address"]
        with Client(address, timeout=30) as client:
            client.wait_for_workers(self.workers, timeout=120)
        return address

    def __exit__(self, *exc):
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2, help="local pool workers and Dask workers (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each way of grading (default 3)")
    parser.add_argument("--assignment", default="01_autoencoders", choices=course.assignment_names())
    parser.add_argument("--cell-timeout", type=int, default=300, help="generous: the machine may be busy")
    parser.add_argument("--sandbox-overhead", action="store_true",
                        help="also grade serially without bubblewrap and print its cost per notebook")
    args = parser.parse_args(argv)
    if args.students < 1 or args.jobs < 1 or args.repeats < 1:
        parser.error("--students, --jobs and --repeats must be positive")
    with tempfile.TemporaryDirectory(prefix="dgm-class-") as tmp:
        base = Path(tmp) / "base"
        expected = build_class(base, args.assignment, args.students)
        kinds = {k: sum(1 for s in expected if s.endswith(k)) for k in ("solved", "partial", "blank")}
        print(f"{args.students} submissions of {args.assignment}: {kinds}; {os.cpu_count()} CPU cores; "
              f"sandbox {sandbox.support()}; {args.repeats} runs each", flush=True)
        ways = {"serial": dict(jobs=1), f"local pool, {args.jobs} workers": dict(jobs=args.jobs),
                f"Dask scheduler, {args.jobs} workers": dict(jobs=1, dask=True)}
        if args.sandbox_overhead:
            ways["serial without bubblewrap"] = dict(jobs=1, unsafe=True)
        timings: dict[str, list[float]] = {way: [] for way in ways}
        scores = {}
        (Path(tmp) / "dask").mkdir()
        with DaskOnThisMachine(args.jobs, Path(tmp) / "dask") as address:
            for repeat in range(args.repeats):
                for way, how in ways.items():  # interleaved: a busy moment of the machine hits every way
                    root = Path(tmp) / f"run-{repeat}-{len(timings[way])}-{way.split(',')[0].replace(' ', '_')}"
                    shutil.copytree(base, root)
                    seconds, scores[way, repeat] = run(root, how["jobs"], args.cell_timeout, how.get("unsafe", False),
                                                       address if how.get("dask") else None)
                    timings[way].append(seconds / args.students)
                    shutil.rmtree(root)
                    print(f"run {repeat + 1}: {way:<32} {seconds:7.1f} s wall, {seconds / args.students:.2f} s per "
                          "submission", flush=True)
    print("\nseconds per submission (mean ± sd over the runs)")
    for way, values in timings.items():
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"  {way:<32} {statistics.mean(values):6.2f} ± {sd:.2f}   speed-up "
              f"{statistics.mean(timings['serial']) / statistics.mean(values):.2f}x")
    if args.sandbox_overhead:
        cost = statistics.mean(timings["serial"]) - statistics.mean(timings["serial without bubblewrap"])
        print(f"bubblewrap costs {cost:+.2f} s per notebook (serial)")
    reference = scores["serial", 0]
    differ = [key for key, found in scores.items() if found != reference]
    assert not differ, f"these runs disagree with the first serial run: {differ}"
    wrong = {s: (reference.get(s), p) for s, p in expected.items() if reference.get(s) != p}
    assert not wrong, f"scores differ from the expected points (got, expected): {wrong}"
    print(f"scores identical in all {len(scores)} runs and equal to the expected points for all {len(expected)} students")
    return 0


if __name__ == "__main__":
    sys.exit(main())
