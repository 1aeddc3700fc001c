"""dgm.grading.submissions: every entry of submitted/ is graded or skipped with its reason; unreadable notebooks,
bad timestamps and unsafe extra files become reasons, never crashes or copies.
"""

import json
import os

import nbformat
import pytest

from dgm.grading import submissions
from dgm.grading.submissions import Skipped, copy_extra_files, discover, read_notebook, timestamp_problem

KNOWN = {"00_tiny", "01_other"}


def _notebook(**cell_metadata):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# hello"), nbformat.v4.new_code_cell("x = 1")]
    nb.cells[1].metadata.update(cell_metadata)
    return nb


def test_discover_grades_or_skips_every_entry_with_a_reason(tmp_path):
    sub = tmp_path / "submitted"
    for student, assignments in {"alice": ["00_tiny", "01_other"], "-x": ["00_tiny"], ".x": ["00_tiny"],
                                 "a*b": ["00_tiny"], "q?": ["00_tiny"], "tab\tname": ["00_tiny"],
                                 "carol": ["99_unknown"], "erin": ["00_tiny", "zz_notes"], "dave": []}.items():
        (sub / student).mkdir(parents=True)
        for name in assignments:
            (sub / student / name).mkdir()
    (sub / "erin" / ".ipynb_checkpoints").mkdir()  # hidden: ignored without a word
    (sub / "frank").mkdir()
    (sub / "frank" / "00_tiny").write_text("a file, not a folder")
    (sub / "grace").mkdir()
    (sub / "grace" / "00_tiny").symlink_to(sub / "alice" / "00_tiny")
    (sub / "notes.txt").write_text("a file")
    (sub / "link").symlink_to(sub / "alice")
    work, skipped = discover(sub, KNOWN)

    assert work == {"alice": ["00_tiny", "01_other"], "-x": ["00_tiny"], "erin": ["00_tiny"]}
    assert all(isinstance(s, Skipped) for s in skipped)
    reasons = {(s.student, s.assignment): s.reason for s in skipped}
    assert "starts with '.'" in reasons[(".x", "")]
    assert "* ? [ ]" in reasons[("a*b", "")] and "* ? [ ]" in reasons[("q?", "")]
    assert "control character" in reasons[("tab\tname", "")]
    assert "not a student folder" in reasons[("notes.txt", "")] and "not a student folder" in reasons[("link", "")]
    for key in (("carol", "99_unknown"), ("erin", "zz_notes"), ("frank", "00_tiny"), ("grace", "00_tiny")):
        assert reasons[key].startswith("not an assignment of this course") and "00_tiny, 01_other" in reasons[key]
    assert "no assignment" in reasons[("dave", "")]
    assert ("erin", ".ipynb_checkpoints") not in reasons
    # every entry of submitted/ (and of each graded student's folder) is accounted for, exactly once
    for entry in sub.iterdir():
        graded = entry.name in work
        assert graded or any(s.student == entry.name for s in skipped), entry.name
        assert not (graded and any(s.student == entry.name and not s.assignment for s in skipped)), entry.name
    for student in work:
        for entry in (sub / student).iterdir():
            if not entry.name.startswith("."):
                assert (entry.name in work[student]) != ((student, entry.name) in reasons), (student, entry.name)
    assert len(reasons) == len(skipped)


def test_discover_an_empty_folder(tmp_path):
    (tmp_path / "submitted").mkdir()
    assert discover(tmp_path / "submitted", KNOWN) == ({}, [])


def test_read_notebook_reasons(tmp_path, monkeypatch):
    good = tmp_path / "good.ipynb"
    nbformat.write(_notebook(), good)
    nb, why = read_notebook(good)
    assert why is None and [c.source for c in nb.cells] == ["# hello", "x = 1"]
    (tmp_path / "bad.ipynb").write_text("{ not json")
    (tmp_path / "list.ipynb").write_text("[1, 2]")
    (tmp_path / "bytes.ipynb").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "nocells.ipynb").write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}}))
    (tmp_path / "link.ipynb").symlink_to(good)
    (tmp_path / "folder.ipynb").mkdir()
    for name in ("bad", "list", "bytes", "nocells"):
        nb, why = read_notebook(tmp_path / f"{name}.ipynb")
        assert nb is None and why.startswith("not a valid notebook (") and why.endswith(")"), (name, why)
        assert len(why) < 260 and "\n" not in why
    for name in ("link", "folder", "nope"):
        assert read_notebook(tmp_path / f"{name}.ipynb") == (None, "missing"), name


def test_read_notebook_refuses_an_oversized_file(tmp_path, monkeypatch):
    monkeypatch.setattr(submissions, "MAX_NOTEBOOK_MB", 1)
    big, small = _notebook(), _notebook()
    big.cells[0].source = "x" * (1 << 20)
    small.cells[0].source = "x" * ((1 << 20) - 10_000)
    nbformat.write(big, tmp_path / "big.ipynb")
    nbformat.write(small, tmp_path / "small.ipynb")
    assert (tmp_path / "big.ipynb").stat().st_size > 1 << 20 > (tmp_path / "small.ipynb").stat().st_size
    assert read_notebook(tmp_path / "big.ipynb") == (None, "larger than 1 MB")
    nb, why = read_notebook(tmp_path / "small.ipynb")
    assert why is None and len(nb.cells[0].source) == (1 << 20) - 10_000


def test_read_notebook_normalizes_invalid_metadata_and_keeps_nbgrader(tmp_path):
    nbgrader = {"grade": False, "grade_id": "add", "locked": False, "schema_version": 3, "solution": True,
                "task": False}
    nb = _notebook(collapsed="not a boolean", nbgrader=nbgrader)
    with pytest.raises(nbformat.ValidationError):
        nbformat.validate(nb)
    (tmp_path / "nb.ipynb").write_text(json.dumps(nb))
    read, why = read_notebook(tmp_path / "nb.ipynb")
    assert why is None
    nbformat.validate(read)
    cell = read.cells[1]
    assert cell.source == "x = 1" and "collapsed" not in cell.metadata and cell.metadata["nbgrader"] == nbgrader


@pytest.mark.parametrize("content, problem", [
    ("2026-12-01 10:00:00.000000 UTC", ""),
    ("2026-12-01 10:00:00.000000 UTC\n", ""),
    (None, ""),
    ("garbage", "timestamp.txt does not hold a date ('garbage')"),
    ("", "timestamp.txt does not hold a date ('')"),
    ("2026" + " " * 300, "timestamp.txt is not a small regular file"),
    ("x" * 100_000, "timestamp.txt is not a small regular file"),
])
def test_timestamp_problem(tmp_path, content, problem):
    if content is not None:
        (tmp_path / "timestamp.txt").write_text(content)
    assert timestamp_problem(tmp_path) == problem


def test_timestamp_that_is_a_link_or_a_folder(tmp_path):
    (tmp_path / "real.txt").write_text("2026-12-01 10:00:00.000000 UTC")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "timestamp.txt").symlink_to(tmp_path / "real.txt")
    (tmp_path / "b" / "timestamp.txt").mkdir(parents=True)
    for folder in ("a", "b"):
        assert timestamp_problem(tmp_path / folder) == "timestamp.txt is not a small regular file"


def test_copy_extra_files(tmp_path, monkeypatch):
    monkeypatch.setattr(submissions, "MAX_EXTRA_FILE_MB", 1)
    monkeypatch.setattr(submissions, "MAX_EXTRA_TOTAL_MB", 2)
    src, dst = tmp_path / "src", tmp_path / "dst"
    files = {"data.csv": b"a,b\n1,2\n", "sub/helper.py": b"def f(): pass\n", "timestamp.txt": b"2026-12-01",
             "sub/timestamp.txt": b"not the submission's", "w1.bin": os.urandom(700_000),
             "w2.bin": os.urandom(700_000)}
    skipped = {"00_tiny.ipynb": b"{}", "sub/other.ipynb": b"{}", ".hidden/secret.txt": b"s",
               "sub/.cache/x": b"c", ".env": b"KEY=1", "big.bin": b"0" * ((1 << 20) + 1),
               "w3.bin": os.urandom(700_000)}  # w1 + w2 + w3 > 2 MB: the last one in sorted order is left out
    for rel, data in {**files, **skipped}.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    (src / "link.csv").symlink_to(src / "data.csv")
    (src / "passwd").symlink_to("/etc/passwd")
    (src / "linkdir").symlink_to(src / "sub")

    notes = copy_extra_files(src, dst)
    copied = {str(p.relative_to(dst)): p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    assert copied == files
    assert not any(p.is_symlink() for p in dst.rglob("*"))
    assert sorted(notes) == sorted(["ignored the link link.csv", "ignored the link passwd", "ignored the link linkdir",
                                    "ignored the large file big.bin", "ignored the large file w3.bin"])

    dst2 = tmp_path / "dst2"
    copy_extra_files(src, dst2, skip_timestamp=True)
    copied2 = {str(p.relative_to(dst2)) for p in dst2.rglob("*") if p.is_file()}
    assert copied2 == set(files) - {"timestamp.txt"}  # only the submission's own timestamp.txt is left out
