"""dgm.course: notebooks convert with their metadata intact, execution reports failures clearly.

Grading (dgm.grading) has its own test files: tests/test_grading_*.py, the round trip of every
assignment in tests/test_grading.py and hostile submissions in tests/test_hostile.py.
"""

import json
import re

import nbformat
import pytest
import yaml

from conftest import HEADER
from dgm import course


def _metadata_in_text(text: str) -> list[dict]:
    """Independent reading of MyST cell metadata: the YAML block of each code cell and `+++ {json}` lines."""
    found = []
    for match in re.finditer(r"```\{code-cell\}[^\n]*\n---\n(.*?)\n---\n", text, flags=re.S):
        found.append(yaml.safe_load(match.group(1)))
    for match in re.finditer(r"^\+\+\+ (\{.*\})\s*$", text, flags=re.M):
        found.append(json.loads(match.group(1)))
    return [m for m in found if "nbgrader" in m]


def _nbgrader_cells(nb) -> list[dict]:
    return [dict(cell.metadata) for cell in nb.cells if "nbgrader" in cell.metadata]


def _key(meta):
    return meta["nbgrader"]["grade_id"]


@pytest.mark.parametrize("path", sorted(course.SOLUTIONS.glob("*/*.md")), ids=lambda p: p.name)
def test_solutions_keep_nbgrader_metadata_exactly(path):
    text = path.read_text()
    expected = sorted(_metadata_in_text(text), key=_key)
    got = sorted(_nbgrader_cells(course.to_notebook(path)), key=_key)
    assert expected, f"{path} has no nbgrader cells"
    assert [m["nbgrader"] for m in got] == [m["nbgrader"] for m in expected]
    ids = [_key(m) for m in got]
    assert len(ids) == len(set(ids)), "grade_ids must be unique"


def test_metadata_round_trip_on_a_small_notebook(tmp_path):
    src = tmp_path / "nb.md"
    src.write_text(HEADER + """
+++ {"nbgrader": {"grade": true, "grade_id": "essay", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}}

An answer.

```{code-cell} ipython3
---
nbgrader:
  grade: true
  grade_id: test_x
  locked: true
  points: 2
  schema_version: 3
  solution: false
  task: false
---
assert 1 + 1 == 2
```
""")
    nb = course.to_notebook(src)
    assert "jupytext" not in nb.metadata
    assert nb.metadata["kernelspec"]["name"] == "python3"
    metas = {_key(m): m["nbgrader"] for m in _nbgrader_cells(nb)}
    assert metas["essay"]["points"] == 3 and nb.cells[0].cell_type == "markdown"
    assert metas["test_x"] == {"grade": True, "grade_id": "test_x", "locked": True, "points": 2,
                               "schema_version": 3, "solution": False, "task": False}


def test_execute_writes_outputs_and_times(tmp_path):
    src = tmp_path / "ok.md"
    src.write_text(HEADER + "# T\n\n```{code-cell} ipython3\nprint(6 * 7)\n```\n")
    timings = course.execute([src], tmp_path / "out")
    assert [name for name, _ in timings] == ["ok"] and timings[0][1] > 0
    nb = nbformat.read(tmp_path / "out" / "ok.ipynb", as_version=4)
    assert nb.cells[1].outputs[0]["text"].strip() == "42"


def test_execute_failure_names_the_notebook(tmp_path):
    src = tmp_path / "broken.md"
    src.write_text(HEADER + "# T\n\n```{code-cell} ipython3\nraise ValueError('boom')\n```\n")
    with pytest.raises(RuntimeError, match=r"(?s)broken\.md.*boom"):
        course.execute([src], tmp_path / "out")
    assert not (tmp_path / "out" / "broken.ipynb").exists()


def test_missing_notebook_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        course.to_notebook(tmp_path / "nope.md")


def test_figures_render_even_under_a_headless_backend(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    src = tmp_path / "fig.md"
    src.write_text(HEADER + "# T\n\n```{code-cell} ipython3\nimport matplotlib.pyplot as plt\n"
                   "plt.plot([0, 1], [1, 0])\nplt.show()\n```\n")
    course.execute([src], tmp_path / "out")
    nb = nbformat.read(tmp_path / "out" / "fig.ipynb", as_version=4)
    assert any("image/png" in o.get("data", {}) for o in nb.cells[1].outputs)
