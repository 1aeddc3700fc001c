"""Grading one student: a separate process with a private copy of the course root.

    python -m dgm.grading.worker --main-root ROOT --work DIR --student=NAME -- ASSIGNMENT ...

``ROOT`` holds the gradebook, the assignments' source and release folders and the student's
submissions as :func:`prepare_submission` left them (readable notebooks, repaired by
:func:`dgm.grading.repair.repair`; extra files within the limits) with what it found in
``ROOT/prepared/<student>/<assignment>.json``. The worker copies them into ``DIR``, runs nbgrader's
autograder and feedback there, and writes ``DIR/result.json``. It dies with the process that
started it (a Dask worker of the grading run), and so do its sandboxed kernels.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat

from dgm.grading.repair import repair
from dgm.grading.settings import REPO
from dgm.grading.submissions import copy_extra_files, read_notebook, timestamp_problem


def inspect_submission(src: Path, release_dir: Path, write_to: Path | None = None) -> dict:
    """Status of each notebook of an assignment in a submitted folder: graded, missing or unreadable.

    With ``write_to``, every readable notebook is written there, repaired; the notes say what was done.
    """
    notebooks = {}
    for release_nb in sorted(release_dir.glob("*.ipynb")):
        nb, problem = read_notebook(src / release_nb.name)
        if nb is None:
            if problem == "missing":
                found = sorted(p.name for p in src.iterdir()) if src.is_dir() else []
                problem = f"missing (the folder holds: {', '.join(found) if found else 'nothing'})"
            notebooks[release_nb.stem] = {"status": "missing" if problem.startswith("missing") else "unreadable",
                                          "reason": problem}
            continue
        notes = []
        if write_to is not None:
            notes = repair(nb, nbformat.read(release_nb, as_version=4))
            nbformat.write(nb, write_to / release_nb.name)
        notebooks[release_nb.stem] = {"status": "graded", "reason": "", "notes": notes}
    return notebooks


def nbgrader_api(root: Path):
    """nbgrader's API on the course configuration, with ``root`` as the course root."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    config.CourseDirectory.root = str(root)
    return NbGraderAPI(config=config)


_TRACEBACK_END = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)): ?(.*)$")


def failure_reason(log: str) -> str:
    """The most specific line of an nbgrader log that explains a failure (never empty)."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for line in reversed(lines):
        match = _TRACEBACK_END.match(line)
        if match and "NbGraderException" not in match.group(1):  # nbgrader's own says "see above"
            return f"{match.group(1)}: {match.group(3)}"[:300]
    errors = [line for line in lines if "ERROR" in line or "error" in line.lower()]
    return (errors[-1] if errors else lines[-1] if lines else "nbgrader gave no reason")[:300]


def prepare_submission(src: Path, release_dir: Path, dst: Path) -> dict:
    """A submitted assignment as it is graded: in ``dst`` its readable notebooks (repaired) and its
    extra files within the limits (no links, nothing hidden); returns the notebooks' status and notes
    on what was left out. The grading run does this before a submission travels to a worker."""
    dst.mkdir(parents=True, exist_ok=True)
    stamp = timestamp_problem(src)
    notes = copy_extra_files(src, dst, skip_timestamp=bool(stamp))
    if stamp:
        notes.append(f"warning: {stamp}; graded without a submission time (no late penalty)")
    return {"notebooks": inspect_submission(src, release_dir, write_to=dst), "notes": notes}


def grade_student(main_root: Path | str, work: Path | str, student: str, assignments: list[str]) -> dict:
    """Grade one student's prepared submissions in the private course root ``work``; returns (and writes)
    the results.

    Per assignment: per-notebook status and notes, notes on the submission's files, the grading
    events of :class:`~dgm.grading.preprocessors.GuardedExecute`, whether nbgrader succeeded and
    its log tail (a failure carries a specific ``reason``).
    """
    main_root, work = Path(main_root), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(main_root / "gradebook.db", work / "gradebook.db")
    results, api = {}, None
    for assignment in assignments:
        for sub in ("source", "release"):
            if (main_root / sub / assignment).is_dir() and not (work / sub / assignment).exists():
                shutil.copytree(main_root / sub / assignment, work / sub / assignment)
        prepared = json.loads((main_root / "prepared" / student / f"{assignment}.json").read_text())
        shutil.copytree(main_root / "submitted" / student / assignment, work / "submitted" / student / assignment)
        notebooks, notes = prepared["notebooks"], prepared["notes"]
        entry = {"notebooks": notebooks, "notes": notes, "events": [], "ok": True, "log": "", "reason": ""}
        if any(n["status"] == "graded" for n in notebooks.values()):
            events = work / "events" / f"{assignment}.jsonl"
            events.parent.mkdir(parents=True, exist_ok=True)
            os.environ["DGM_GRADING_EVENTS"] = str(events)
            api = api or nbgrader_api(work)
            result = api.autograde(assignment, student, force=True, create=True)
            entry["ok"] = bool(result.get("success"))
            entry["log"] = (result.get("log", "") + result.get("error", ""))[-6000:]
            if entry["ok"]:
                feedback = api.generate_feedback(assignment, student, force=True)
                if not feedback.get("success"):
                    tail = (feedback.get("log", "") + feedback.get("error", ""))[-3000:]
                    entry["log"] += "\nfeedback failed:\n" + tail
            else:
                entry["reason"] = "the autograder failed: " + failure_reason(entry["log"])
            if events.is_file():
                entry["events"] = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
        results[assignment] = entry
    (work / "result.json").write_text(json.dumps(results, indent=1))
    return results


def _die_with_parent(parent: int) -> None:
    """SIGKILL this worker when the grading run that started it dies (kill -9 included)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dgm.grading.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--main-root", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--student", required=True, help="the student id (write --student=NAME)")
    parser.add_argument("--parent", type=int, help="pid of the grading run; the worker dies with it")
    parser.add_argument("assignments", nargs="+")
    args = parser.parse_args(argv)
    if args.parent:
        _die_with_parent(args.parent)
    grade_student(args.main_root, args.work, args.student, args.assignments)
    return 0


if __name__ == "__main__":
    sys.exit(main())
