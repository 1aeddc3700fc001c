"""Results of a grading run: merged into a staged copy of the gradebook, feedback, report.csv rows.

A run never writes ``grading/`` while it grades: :func:`merge_result` brings one worker's result into
the *stage* (a copy of the gradebook and fresh autograded/ and feedback/ folders), and
:func:`commit` moves the stage into place in one short step that Ctrl-C cannot split.
"""

from __future__ import annotations

import csv
import html
import os
import shutil
import signal
from pathlib import Path


def merge_gradebook(main_db: Path, worker_db: Path, assignment: str, student: str) -> None:
    """Copy one student's scores and comments for one assignment from a worker's gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{worker_db}") as wgb, Gradebook(f"sqlite:///{main_db}") as mgb:
        wsub = wgb.find_submission(assignment, student)
        wstudent = wgb.find_student(student)
        mgb.update_or_create_student(student, first_name=wstudent.first_name, last_name=wstudent.last_name,
                                     email=wstudent.email, lms_user_id=wstudent.lms_user_id)
        mgb.db.commit()
        mgb.update_or_create_submission(assignment, student)
        mgb.db.commit()
        msub = mgb.find_submission(assignment, student)
        msub.timestamp, msub.extension = wsub.timestamp, wsub.extension
        for wnb in wsub.notebooks:
            mnb = mgb.find_submission_notebook(wnb.name, assignment, student)
            mnb.flagged, mnb.late_submission_penalty = wnb.flagged, wnb.late_submission_penalty
            for wgrade in wnb.grades:
                mgrade = mgb.find_grade(wgrade.name, wnb.name, assignment, student)
                for attr in ("auto_score", "manual_score", "extra_credit", "needs_manual_grade"):
                    setattr(mgrade, attr, getattr(wgrade, attr))
            for wcomment in wnb.comments:
                mcomment = mgb.find_comment(wcomment.name, wnb.name, assignment, student)
                mcomment.auto_comment, mcomment.manual_comment = wcomment.auto_comment, wcomment.manual_comment
        mgb.db.commit()


def zero_notebooks(main_db: Path, assignment: str, student: str, notebooks: list[str]) -> None:
    """Notebooks that could not be graded: 0 automatic points, nothing left to grade by hand."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{main_db}") as gb:
        gb.update_or_create_student(student)
    with Gradebook(f"sqlite:///{main_db}") as gb:
        gb.update_or_create_submission(assignment, student)
    with Gradebook(f"sqlite:///{main_db}") as gb:
        for name in notebooks:
            for grade in gb.find_submission_notebook(name, assignment, student).grades:
                grade.auto_score, grade.needs_manual_grade = 0.0, False
        gb.db.commit()


def flag_notebooks(main_db: Path, assignment: str, student: str, notebooks: list[str]) -> None:
    """Mark notebooks for a human look in the gradebook (formgrader shows the flag)."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{main_db}") as gb:
        for name in notebooks:
            gb.find_submission_notebook(name, assignment, student).flagged = True
        gb.db.commit()


def stub_feedback(path: Path, assignment: str, notebook: str, reason: str) -> None:
    """The feedback page of a notebook that could not be graded: the reason, never a blank page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>Feedback: "
        f"{html.escape(assignment)}</title></head><body>\n"
        f"<h1>{html.escape(assignment)} / {html.escape(notebook)}</h1>\n"
        f"<p>This notebook could not be graded: {html.escape(reason or 'no reason was recorded')}.</p>\n"
        "<p>Score: 0 automatic points. Submit the notebook you downloaded, under its original name, "
        "after <em>Kernel &rarr; Restart &amp; Run All</em>.</p>\n</body></html>\n")


def merge_result(stage: Path, release: list[Path], work: Path, student: str, assignment: str,
                 result: dict) -> list[list[str]]:
    """Bring one (student, assignment) result from a worker into the stage; returns report rows.

    A row: student, assignment, notebook, status (graded, missing, unreadable, failed), notes.
    Notebooks that were not graded score 0 and get a feedback page saying why; a notebook with an
    integrity event (a refused or failed guard check) is flagged in the gradebook.
    """
    failed = result.get("failed") or (not result.get("ok", False) and (
        result.get("reason") or "the autograder failed: " + (result.get("log", "").strip()[-300:] or "no log")))
    notebooks = result.get("notebooks", {})
    rows, zero, flagged = [], [], []
    events_by_nb: dict[str, list[str]] = {}
    for event in result.get("events", []):
        events_by_nb.setdefault(Path(event["notebook"]).stem, []).append(f"{event['event']}: {event['detail']}")
    for nb_path in release:
        name = nb_path.stem
        info = notebooks.get(name, {"status": "failed", "reason": failed or "not graded"})
        status, reason = info["status"], info.get("reason", "")
        if status == "graded" and failed:
            status, reason = "failed", str(failed).strip().splitlines()[0]
        if status != "graded":
            zero.append(name)
            stub_feedback(stage / "feedback" / student / assignment / f"{name}.html", assignment, name, reason)
        notes = [reason] if reason and status != "graded" else []
        notes += info.get("notes", []) + result.get("notes", []) + events_by_nb.get(name, [])
        if any(n.startswith("integrity") for n in events_by_nb.get(name, [])):
            flagged.append(name)
        rows.append([student, assignment, name, status, "; ".join(notes)])
    if not failed and any(n.get("status") == "graded" for n in notebooks.values()):
        for sub in ("autograded", "feedback"):
            src = work / sub / student / assignment
            if src.is_dir():
                (stage / sub / student).mkdir(parents=True, exist_ok=True)
                shutil.copytree(src, stage / sub / student / assignment, dirs_exist_ok=True)
        merge_gradebook(stage / "gradebook.db", work / "gradebook.db", assignment, student)
    if zero:
        zero_notebooks(stage / "gradebook.db", assignment, student, zero)
    if flagged:
        flag_notebooks(stage / "gradebook.db", assignment, student, flagged)
    return rows


def write_report(path: Path, rows: list[list[str]], scores: dict) -> None:
    """report.csv: one row per notebook (and per skipped folder) with its status, score and notes."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "assignment", "notebook", "status", "score", "max_score", "notes"])
        for row in rows:
            writer.writerow([*row[:4], *scores.get((row[0], row[1]), ("", "")), row[4]])


def read_scores(grades_csv: Path) -> dict:
    with open(grades_csv, newline="") as f:
        return {(r["student_id"], r["assignment"]): (r["score"], r["max_score"]) for r in csv.DictReader(f)}


def commit(stage: Path, root: Path, graded: list[tuple[str, str]]) -> None:
    """Move the stage into ``root``: gradebook, grades.csv, report.csv, then each graded folder.

    SIGINT and SIGTERM wait until this is done, so the files are the old run's or this run's.
    """
    blocked = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        for name in ("gradebook.db", "grades.csv", "report.csv"):
            os.replace(stage / name, root / name)
        for student, assignment in graded:
            for sub in ("autograded", "feedback"):
                target = root / sub / student / assignment
                shutil.rmtree(target, ignore_errors=True)
                src = stage / sub / student / assignment
                if src.is_dir():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, target)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
