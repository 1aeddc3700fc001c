"""Grading at class scale: a synthetic class graded serially and in parallel, with identical scores.

    .venv/bin/python benchmarks/grade_class.py                    # 100 submissions of chapter 1, 1 vs 2 jobs
    .venv/bin/python benchmarks/grade_class.py --students 20 --jobs 4 --assignment 02_vae_elbo
    .venv/bin/python benchmarks/grade_class.py --students 20 --sandbox-overhead   # also serially without bubblewrap

Creates ``--students`` submissions of one assignment in a temporary course root - a mix of 40 %
solved (the solution), 30 % partial (the answers the grading tests' HALF dict names) and 30 % blank
(the untouched release) - then runs the real grader (``python -m dgm.grading grade``) twice, with
``--jobs 1`` and with ``--jobs N``, in fresh copies of that root (with ``--sandbox-overhead`` a third
time, serially with ``--unsafe-no-sandbox``, to measure what bubblewrap costs per notebook). Prints both wall times and the
speed-up, and exits non-zero unless every student's score is identical in the two runs and equal to
the points the solution metadata says each kind of submission earns. Nothing is timed by the test
suite; tests/test_course.py checks the same serial/parallel agreement on a tiny assignment.
"""

from __future__ import annotations

import argparse
import copy
import csv
import os
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


def run(root: Path, jobs: int, cell_timeout: int, unsafe: bool = False) -> tuple[float, dict[str, float]]:
    """Grade root with ``jobs`` workers; returns (wall seconds, student -> score)."""
    env = {**os.environ, "DGM_GRADING_ROOT": str(root)}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "dgm.grading", "grade", "--jobs", str(jobs),
                             "--cell-timeout", str(cell_timeout)] + (["--unsafe-no-sandbox"] if unsafe else []),
                            cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"grading with {jobs} jobs failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    with open(root / "grades.csv", newline="") as f:
        return seconds, {r["student_id"]: float(r["score"]) for r in csv.DictReader(f)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2, help="parallel jobs of the second run (default 2)")
    parser.add_argument("--assignment", default="01_autoencoders", choices=course.assignment_names())
    parser.add_argument("--cell-timeout", type=int, default=300, help="generous: the machine may be busy")
    parser.add_argument("--sandbox-overhead", action="store_true",
                        help="also grade serially without bubblewrap and print its cost per notebook")
    args = parser.parse_args(argv)
    if args.students < 1 or args.jobs < 1:
        parser.error("--students and --jobs must be positive")
    with tempfile.TemporaryDirectory(prefix="dgm-class-") as tmp:
        base = Path(tmp) / "base"
        expected = build_class(base, args.assignment, args.students)
        kinds = {k: sum(1 for s in expected if s.endswith(k)) for k in ("solved", "partial", "blank")}
        print(f"{args.students} submissions of {args.assignment}: {kinds}; "
              f"{os.cpu_count()} CPU cores; sandbox {sandbox.support()}", flush=True)
        timings, scores = {}, {}
        configs = [(1, False), (args.jobs, False)] + ([(1, True)] if args.sandbox_overhead else [])
        for jobs, unsafe in configs:
            root = Path(tmp) / f"jobs{jobs}{'-unsafe' if unsafe else ''}"
            shutil.copytree(base, root)
            key = "unsafe" if unsafe else jobs
            timings[key], scores[key] = run(root, jobs, args.cell_timeout, unsafe)
            print(f"jobs={jobs}{' without bubblewrap' if unsafe else ''}: {timings[key]:7.1f} s wall "
                  f"({timings[key] / args.students:.2f} s per submission)", flush=True)
    print(f"speed-up with {args.jobs} jobs: {timings[1] / timings[args.jobs]:.2f}x")
    if args.sandbox_overhead:
        print(f"bubblewrap costs {(timings[1] - timings['unsafe']) / args.students:+.2f} s per notebook (serial)")
        assert scores["unsafe"] == scores[1], "grading with and without bubblewrap disagree"
    assert scores[1] == scores[args.jobs], "serial and parallel grading disagree"
    wrong = {s: (scores[1].get(s), p) for s, p in expected.items() if scores[1].get(s) != p}
    assert not wrong, f"scores differ from the expected points (got, expected): {wrong}"
    print(f"scores identical in both runs and equal to the expected points for all {len(expected)} students")
    return 0


if __name__ == "__main__":
    sys.exit(main())
