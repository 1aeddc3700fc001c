"""Shared test set-up: FAST mode, Jupyter folders in a temp dir, executed lectures."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("DGM_FAST", "1")
_jupyter = Path(tempfile.mkdtemp(prefix="dgm-jupyter-"))
atexit.register(shutil.rmtree, _jupyter, ignore_errors=True)
for _name in ("CONFIG", "DATA", "RUNTIME"):
    os.environ[f"JUPYTER_{_name}_DIR"] = str(_jupyter / _name.lower())

REPO = Path(__file__).resolve().parents[1]
LECTURES = sorted(REPO.glob("lectures/[0-9][0-9]_*.md"))
# the jupytext header of a MyST text notebook, for notebooks the tests write
HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models train faster on one torch thread than on two (and a busy machine hurts less)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def executed_lectures(tmp_path_factory):
    """Execute every lecture once (FAST mode) into a copy of book/; shared by notebook and book tests."""
    import shutil

    from dgm.course import book_assignments, execute

    book = tmp_path_factory.mktemp("book") / "book"
    shutil.copytree(REPO / "book", book, ignore=shutil.ignore_patterns("_build", "lectures", "assignments"))
    timings = dict(execute(LECTURES, book / "lectures"))
    book_assignments(book / "assignments")
    return book, timings


@pytest.fixture(scope="session")
def built_book(executed_lectures):
    """Build the book once (strictly: -W -n --keep-going) from the executed lectures.

    Returns ``(html_dir, completed_process)``; shared by the book tests and the browser tests.
    """
    import subprocess
    import sys

    if not (REPO / "book" / "_vendor" / "mathjax" / "tex-mml-chtml.js").is_file():
        pytest.fail("book/_vendor/mathjax/ is missing: run `make mathjax` (part of `make setup`)", pytrace=False)
    book, _ = executed_lectures
    jupyter_book = str(Path(sys.executable).with_name("jupyter-book"))
    result = subprocess.run([jupyter_book, "build", str(book), "--warningiserror", "--nitpick", "--keep-going"],
                            capture_output=True, text=True)
    return book / "_build" / "html", result
