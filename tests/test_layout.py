"""The library's layout: modules small enough to read, one test file per module or package, and no
chapter reaching into another part's private names (shared helpers live in dgm._checks, dgm.nn,
dgm.distributions, dgm.train)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib" / "dgm"
TESTS = Path(__file__).resolve().parent
# The kernel guard is one closure on purpose (its source is sent to the grading kernel as text and
# nothing of it may be reachable from student code), so it is the one module allowed past 500 lines.
LONG_ON_PURPOSE = {"grading/guard.py"}
MODULES = sorted(p for p in LIB.rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(LIB).as_posix()


def _part(path: Path) -> str:
    """The top-level module or package a file belongs to: 'vae' for vae/elbo.py, 'ae' for ae.py."""
    first = path.relative_to(LIB).parts[0]
    return first[:-3] if first.endswith(".py") else first


def test_no_module_is_longer_than_500_lines_and_the_median_is_at_most_200():
    sizes = {_rel(p): len(p.read_text().splitlines()) for p in MODULES}
    too_long = {name: n for name, n in sizes.items() if n > 500 and name not in LONG_ON_PURPOSE}
    assert not too_long, f"split these modules along the lecture's objects: {too_long}"
    ordered = sorted(sizes.values())
    median = (ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2]) / 2
    assert median <= 200, f"median module size {median} lines"


def test_every_module_or_package_has_its_test_file():
    parts = {_part(p) for p in MODULES} - {"__init__"}
    missing = sorted(part for part in parts if not (TESTS / f"test_{part.lstrip('_')}.py").exists())
    assert not missing, f"no tests/test_<name>.py for: {missing}"


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_no_private_name_is_imported_from_another_part(path):
    part = _part(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dgm."):
            other = node.module.split(".")[1]
            if other == part:
                continue
            private = [a.name for a in node.names if a.name.startswith("_")]
            assert not private, f"{_rel(path)} imports private {private} from {node.module}"
