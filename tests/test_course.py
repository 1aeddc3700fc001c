"""dgm.course: notebooks convert with their metadata intact, execution reports failures clearly.

Grading (dgm.grading) has its own test files: tests/test_grading_*.py, the round trip of every
assignment in tests/test_grading.py and hostile submissions in tests/test_hostile.py.
"""

import json
import re

import nbformat
import pytest
import yaml

from conftest import HEADER, REPO
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


def test_book_assignments_writes_a_page_per_released_assignment(tmp_path):
    from dgm.course import book_assignments

    pages = book_assignments(tmp_path / "pages")
    released = sorted((REPO / "assignments").glob("*/*.ipynb"))
    assert [p.name for p in pages] == [p.name for p in released]
    for page, source in zip(pages, released):
        # the download is the released notebook, byte for byte
        assert page == tmp_path / "pages" / source.stem / source.name  # where it is in the repository
        assert (page.parent / "files" / source.name).read_bytes() == source.read_bytes()
        nb, original = nbformat.read(page, as_version=4), nbformat.read(source, as_version=4)
        assert len(nb.cells) == len(original.cells) + 1
        intro = next(c for c in nb.cells if c.get("id") == "book-page-intro")
        assert f"<files/{source.name}>" in intro.source and f"assignments/{source.stem}" in intro.source
    with pytest.raises(FileNotFoundError, match="no released assignments"):
        book_assignments(tmp_path / "none", assignments=tmp_path / "empty")


def test_lab_settings_for_students_and_instructors(tmp_path):
    """What lab_settings writes is read by Jupyter's own config loaders (tested in a real Lab by
    tests/test_browser.py); here: the files, the keys kept, and the switch in both directions."""
    from jupyter_server.services.config.manager import ConfigManager

    from dgm.course import NBGRADER_LAB_PLUGINS, NBGRADER_SERVER_EXTENSIONS, lab_settings

    etc = tmp_path / "etc" / "jupyter"
    (etc / "labconfig").mkdir(parents=True)
    (etc / "labconfig" / "page_config.json").write_text(json.dumps({"disabledExtensions": {"x:y": True}}))
    assert lab_settings(prefix=tmp_path) == etc
    labconfig = ConfigManager(read_config_path=[str(etc / "labconfig")])
    page = labconfig.get("page_config")["disabledExtensions"]
    assert page["x:y"] is True and all(page[p] is True for p in NBGRADER_LAB_PLUGINS)
    viewers = labconfig.get("default_setting_overrides")["@jupyterlab/docmanager-extension:plugin"]
    assert viewers["defaultViewers"] == {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"}
    server = json.loads((etc / "jupyter_server_config.d" / "zz-dgm-course.json").read_text())
    assert server["ServerApp"]["jpserver_extensions"] == dict.fromkeys(NBGRADER_SERVER_EXTENSIONS, False)
    # nbgrader's own config file sorts before ours, so ours wins
    assert sorted(["nbgrader.json", "zz-dgm-course.json"])[-1] == "zz-dgm-course.json"

    lab_settings(instructor=True, prefix=tmp_path)
    page = ConfigManager(read_config_path=[str(etc / "labconfig")]).get("page_config")["disabledExtensions"]
    assert page["x:y"] is True and not any(page[p] for p in NBGRADER_LAB_PLUGINS)
    server = json.loads((etc / "jupyter_server_config.d" / "zz-dgm-course.json").read_text())
    assert all(server["ServerApp"]["jpserver_extensions"].values())
