"""Shared test set-up: FAST mode, Jupyter folders in a temp dir, executed lectures."""

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("DGM_FAST", "1")
_jupyter = Path(tempfile.mkdtemp(prefix="dgm-jupyter-"))
for _name in ("CONFIG", "DATA", "RUNTIME"):
    os.environ[f"JUPYTER_{_name}_DIR"] = str(_jupyter / _name.lower())

REPO = Path(__file__).resolve().parents[1]
LECTURES = sorted(REPO.glob("lectures/[0-9][0-9]_*.md"))


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

    from dgm.course import execute

    book = tmp_path_factory.mktemp("book") / "book"
    shutil.copytree(REPO / "book", book, ignore=shutil.ignore_patterns("_build", "lectures"))
    timings = dict(execute(LECTURES, book / "lectures"))
    return book, timings
