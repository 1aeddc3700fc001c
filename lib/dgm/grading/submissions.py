"""What was handed in: students and assignments under ``submitted/``, readable notebooks, extra files.

Nothing here changes ``submitted/``; every problem becomes a reason that ends up in report.csv and,
for a notebook that cannot be graded, in the student's feedback.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat

from dgm.grading.settings import MAX_EXTRA_FILE_MB, MAX_EXTRA_TOTAL_MB, MAX_NOTEBOOK_MB

GLOB_CHARACTERS = set("*?[]")


@dataclass
class Skipped:
    """A folder or file in ``submitted/`` that is not graded, and why."""

    student: str
    assignment: str
    reason: str


def student_id_problem(name: str) -> str:
    """Why a folder name cannot be a student id for nbgrader ('' if it can)."""
    if name.startswith("."):
        return "the folder name starts with '.', which nbgrader cannot see (rename the folder to grade it)"
    if GLOB_CHARACTERS & set(name):
        return "the folder name contains one of * ? [ ], which nbgrader reads as a pattern (rename the folder)"
    if not name.isprintable():
        return "the folder name contains a control character (rename the folder)"
    return ""


def discover(submitted: Path, known: set[str]) -> tuple[dict[str, list[str]], list[Skipped]]:
    """``({student: [assignment, ...]}, [skipped])`` for ``submitted/<student>/<assignment>/``.

    Every entry of ``submitted/`` is either graded or listed as skipped with its reason: files,
    links, folder names nbgrader cannot take, folders without a known assignment.
    """
    work, skipped = {}, []
    for entry in sorted(submitted.iterdir(), key=lambda p: p.name):
        name = entry.name
        if entry.is_symlink() or not entry.is_dir():
            skipped.append(Skipped(name, "", "not a student folder (a file or a link) in submitted/"))
            continue
        problem = student_id_problem(name)
        if problem:
            skipped.append(Skipped(name, "", problem))
            continue
        names = []
        for sub in sorted(entry.iterdir(), key=lambda p: p.name):
            if sub.name in known and sub.is_dir() and not sub.is_symlink():
                names.append(sub.name)
            elif not sub.name.startswith("."):
                skipped.append(Skipped(name, sub.name, f"not an assignment of this course (known: "
                                                       f"{', '.join(sorted(known))})"))
        if names:
            work[name] = names
        elif not any(s.student == name for s in skipped):
            skipped.append(Skipped(name, "", "the folder holds no assignment"))
    return work, skipped


def read_notebook(path: Path):
    """``(notebook, None)`` or ``(None, reason)`` for a submitted notebook file."""
    if path.is_symlink() or not path.is_file():
        return None, "missing"
    if path.stat().st_size > MAX_NOTEBOOK_MB << 20:
        return None, f"larger than {MAX_NOTEBOOK_MB} MB"
    try:
        nb = nbformat.read(path, as_version=4)
        try:
            nbformat.validate(nb)
        except nbformat.ValidationError:
            from nbformat.validator import normalize

            _, fixed = normalize(nb, strip_invalid_metadata=True)
            nb = nbformat.from_dict(fixed)
            nbformat.validate(nb)
    except Exception as err:  # not JSON, not a notebook, unreadable bytes ...
        message = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        return None, f"not a valid notebook ({type(err).__name__}: {message})"
    return nb, None


def timestamp_problem(folder: Path) -> str:
    """Why ``timestamp.txt`` of a submission cannot be used ('' when it is fine or absent)."""
    path = folder / "timestamp.txt"
    if not path.exists():
        return ""
    if path.is_symlink() or not path.is_file() or path.stat().st_size > 200:
        return "timestamp.txt is not a small regular file"
    from nbgrader.utils import parse_utc

    text = path.read_text(errors="replace").strip()
    try:
        parse_utc(text)
    except Exception:
        return f"timestamp.txt does not hold a date ({text[:60]!r})"
    return ""


def copy_extra_files(src: Path, dst: Path, skip_timestamp: bool = False) -> list[str]:
    """Copy a submission's regular files other than notebooks (no links, no hidden folders, size-capped)."""
    notes, total = [], 0
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if path.is_symlink():
            notes.append(f"ignored the link {rel}")
            continue
        if not path.is_file() or path.suffix == ".ipynb" or any(part.startswith(".") for part in rel.parts):
            continue
        if skip_timestamp and str(rel) == "timestamp.txt":
            continue
        size = path.stat().st_size
        if size > MAX_EXTRA_FILE_MB << 20 or total + size > MAX_EXTRA_TOTAL_MB << 20:
            notes.append(f"ignored the large file {rel}")
            continue
        total += size
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dst / rel)
    return notes
