"""dgm.grading.repair: honest-but-messy submissions get the release's nbgrader structure back, with a note for
every repair: edited locked cells, forged grade_ids, deleted read-only and test cells (restored at their
place), notebooks pasted together without metadata (Colab, VS Code), extra and renamed cells.

The release is made by nbgrader itself from the tiny assignment; each student notebook goes through
the file system and :func:`dgm.grading.submissions.read_notebook`, as in a grading run.
"""

import copy
import uuid

import nbformat
import pytest

from dgm import course
from dgm.grading.repair import repair
from dgm.grading.submissions import read_notebook
from grading_helpers import TINY, write

ORDER = ["intro", "setup", "add", "test_add", "twice", "test_twice"]  # the grade_ids of TINY, in order


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(release as nbgrader generates it, the instructor's source notebook)."""
    tmp = tmp_path_factory.mktemp("tiny")
    solutions = tmp / "solutions"
    write(solutions / "00_tiny" / "00_tiny.md", TINY)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DGM_GRADING_ROOT", str(tmp / "root"))
        course.generate_assignments(release_to=tmp / "release", solutions=solutions)
    release = nbformat.read(tmp / "release" / "00_tiny" / "00_tiny.ipynb", as_version=4)
    assert _gids(release) == ORDER  # the reference order, independent of repair
    source = course.to_notebook(solutions / "00_tiny" / "00_tiny.md")
    return release, source


def _gids(nb):
    return [c.metadata.get("nbgrader", {}).get("grade_id") if isinstance(c.metadata.get("nbgrader"), dict)
            else None for c in nb.cells]


def _solved(release, source):
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells if "nbgrader" in c.metadata}
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        if cell.metadata["nbgrader"].get("solution"):
            cell.source = answers[cell.metadata["nbgrader"]["grade_id"]]
    return nb


def _through_disk(tmp_path, nb):
    """Write the student's notebook and read it back as the grader does."""
    path = tmp_path / f"{uuid.uuid4().hex}.ipynb"
    path.write_text(nbformat.writes(nb, version=4))
    read, why = read_notebook(path)
    assert why is None, why
    return read


def _strip(nb, new_ids: bool):
    """What pasting into a new notebook (new ids) or VS Code/Colab (ids kept) leaves: no nbgrader metadata."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        for key in ("nbgrader", "deletable", "editable"):
            cell.metadata.pop(key, None)
        if new_ids:
            cell.id = uuid.uuid4().hex[:8]
    return nb


def _released_meta(release):
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"] for c in release.cells}


def _check_metadata_is_the_releases(nb, release):
    meta = _released_meta(release)
    for cell in nb.cells:
        if "nbgrader" in cell.metadata:
            assert cell.metadata["nbgrader"] == meta[cell.metadata["nbgrader"]["grade_id"]]


def test_edited_forged_repeated_and_missing_cells(tmp_path, tiny):
    release, _ = tiny
    student = copy.deepcopy(release)
    cells = {c.metadata["nbgrader"]["grade_id"]: c for c in student.cells}
    cells["test_add"].source = "pass"
    cells["test_add"].metadata["nbgrader"]["points"] = 100
    cells["test_twice"].metadata["nbgrader"]["grade_id"] = "mine"  # a forged test cell of the student's own
    cells["test_twice"].id = "mine"
    cells["test_twice"].source = "print('my own test')"
    cells["add"].metadata["nbgrader"]["schema_version"] = 99
    extra = copy.deepcopy(cells["add"])
    extra.id = "add-again"
    student.cells.append(extra)
    student = _through_disk(tmp_path, student)

    notes = repair(student, release)
    assert any("'test_add' was edited" in n for n in notes)
    assert any("unknown grade_id 'mine'" in n for n in notes) and any("repeated grade_id 'add'" in n for n in notes)
    assert any("test cell 'test_twice' was missing" in n for n in notes)
    _check_metadata_is_the_releases(student, release)
    gids = _gids(student)
    assert gids == ["intro", "setup", "add", "test_add", "twice", "test_twice", None, None]
    assert student.cells[5].source == release.cells[5].source  # restored right after 'twice', its predecessor
    assert student.cells[6].source == "print('my own test')"  # the forged cell: ordinary now
    assert len({c.id for c in student.cells}) == len(student.cells)
    nbformat.validate(student)


def test_a_deleted_test_cell_is_restored_right_after_its_predecessor(tmp_path, tiny):
    release, source = tiny
    student = _solved(release, source)
    del student.cells[3]  # test_add
    helper = nbformat.v4.new_code_cell("def helper(x):\n    return x\n")
    student.cells.insert(3, helper)  # between 'add' and 'twice'
    student = _through_disk(tmp_path, student)
    notes = repair(student, release)
    assert notes == ["test cell 'test_add' was missing: restored from the assignment"]
    assert _gids(student) == ["intro", "setup", "add", "test_add", None, "twice", "test_twice"]
    assert student.cells[3].source == release.cells[3].source
    _check_metadata_is_the_releases(student, release)


@pytest.mark.parametrize("new_ids", [True, False], ids=["pasted-into-new-notebook", "vscode-ids-kept"])
def test_a_notebook_without_any_grading_metadata_gets_it_back(tmp_path, tiny, new_ids):
    release, source = tiny
    solved = _solved(release, source)
    student = _through_disk(tmp_path, _strip(solved, new_ids=new_ids))
    assert all("nbgrader" not in c.metadata for c in student.cells)
    notes = repair(student, release)
    assert _gids(student) == ORDER
    _check_metadata_is_the_releases(student, release)
    assert [c.source for c in student.cells] == [c.source for c in solved.cells]  # answers kept
    assert len(notes) == 1 and "no grading metadata" in notes[0] and "6 cells" in notes[0]


def test_pasted_notebook_with_helper_cells_and_a_renamed_answer(tmp_path, tiny):
    release, source = tiny
    student = _strip(_solved(release, source), new_ids=True)
    student.cells.insert(2, nbformat.v4.new_code_cell("import math\nSCALE = 2\n"))  # before 'add'
    student.cells.insert(4, nbformat.v4.new_code_cell("def helper(a):\n    return add(a, a)\n"))  # after 'add'
    student.cells.insert(4, nbformat.v4.new_markdown_cell("My notes on add."))
    twice = student.cells[7]
    assert twice.source.startswith("def twice")
    twice.source = twice.source.replace("def twice", "def double")  # renamed: not the answer any more
    student = _through_disk(tmp_path, student)
    notes = repair(student, release)
    assert _gids(student) == ["intro", "setup", None, "add", None, None, "test_add", None, "test_twice"]
    assert student.cells[3].source.startswith("def add") and student.cells[7].source.startswith("def double")
    _check_metadata_is_the_releases(student, release)
    assert any("no grading metadata" in n and "5 cells" in n for n in notes), notes
    assert not any("'twice'" in n for n in notes)  # a missing answer code cell is not restored (nor invented)


def test_helper_cells_in_an_intact_notebook_stay_ordinary(tmp_path, tiny):
    release, source = tiny
    student = _solved(release, source)
    student.cells.insert(3, nbformat.v4.new_code_cell("def add_twice(a):\n    return add(a, a)\n"))
    student.cells.insert(2, nbformat.v4.new_markdown_cell("Some thoughts."))
    student = _through_disk(tmp_path, student)
    assert repair(student, release) == []
    assert _gids(student) == ["intro", "setup", None, "add", None, "test_add", "twice", "test_twice"]


def test_a_deleted_read_only_cell_is_restored_at_the_top(tmp_path, tiny):
    release, source = tiny
    student = _solved(release, source)
    del student.cells[1]  # setup
    student = _through_disk(tmp_path, student)
    notes = repair(student, release)
    assert notes == ["read-only cell 'setup' was missing: restored from the assignment"]
    assert _gids(student) == ORDER and student.cells[1].source == release.cells[1].source

    student = _solved(release, source)
    del student.cells[:2]  # intro and setup
    student.cells.insert(0, nbformat.v4.new_markdown_cell("My own title"))
    student = _through_disk(tmp_path, student)
    notes = repair(student, release)
    assert sorted(notes) == ["read-only cell 'intro' was missing: restored from the assignment",
                             "read-only cell 'setup' was missing: restored from the assignment"]
    assert _gids(student) == ["intro", "setup", None, *ORDER[2:]]


def test_a_cell_type_change_and_a_deleted_intro_in_a_pasted_notebook(tmp_path, tiny):
    release, source = tiny
    student = _strip(_solved(release, source), new_ids=True)
    student.cells[1] = nbformat.v4.new_markdown_cell(student.cells[1].source)  # setup pasted as markdown
    del student.cells[0]
    student = _through_disk(tmp_path, student)
    notes = repair(student, release)
    assert _gids(student) == ORDER
    assert any("'setup' was changed from code to markdown: restored" in n for n in notes)
    assert any("'intro' was missing" in n for n in notes)


@pytest.mark.parametrize("bad", [["add"], {"id": "add"}, 3, None], ids=["list", "dict", "int", "none"])
def test_a_non_string_grade_id_is_an_ordinary_cell_not_a_crash(tmp_path, tiny, bad):
    release, source = tiny
    student = _solved(release, source)
    student.cells.append(nbformat.v4.new_code_cell("print('extra')"))
    student.cells[-1].metadata["nbgrader"] = {**release.cells[2].metadata["nbgrader"], "grade_id": bad}
    student = _through_disk(tmp_path, student)
    notes = repair(student, release)
    assert any("unknown grade_id" in n for n in notes)
    assert _gids(student) == [*ORDER, None]


def test_notes_never_contradict_the_repair(tmp_path, tiny):
    """A note saying a cell 'was graded as an ordinary cell' must be true: that cell carries no grading metadata."""
    release, source = tiny
    student = _solved(release, source)
    student.cells[5].metadata["nbgrader"]["grade_id"] = "mine"  # test_twice renamed, its id and source kept
    student = _through_disk(tmp_path, student)
    notes = repair(student, release)
    forged = [n for n in notes if "unknown grade_id 'mine'" in n]
    assert forged
    if "graded as an ordinary cell" in forged[0]:
        assert "nbgrader" not in student.cells[5].metadata, (notes, _gids(student))
    assert _gids(student).count("test_twice") == 1
