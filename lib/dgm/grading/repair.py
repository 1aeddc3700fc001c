"""Notebook repair: give an honest submission back the structure nbgrader needs, and say what was done.

Students paste answers into a fresh notebook, open the assignment in Colab or VS Code (which drop
or ignore nbgrader's cell metadata and ``deletable: false``), delete a read-only cell by accident,
change a cell's type. :func:`repair` matches the submitted cells to the release - by nbgrader
metadata where it is intact, else by cell id, by the source of read-only and test cells, and by the
names an answer cell defines - puts the release's metadata back on every matched cell, and restores
missing read-only and test cells from the release at their place. nbgrader then restores the
original source of locked cells and the hidden tests from the gradebook.
"""

from __future__ import annotations

import copy
import uuid

from dgm.grading.cells import is_test_cell, nbgrader_meta, top_level_names


def _norm(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def _grade_id(cell) -> str | None:
    grade_id = nbgrader_meta(cell).get("grade_id")
    return grade_id if isinstance(grade_id, str) else None


def _match_by_metadata(nb, released: dict) -> tuple[dict, dict]:
    """``({grade_id: submitted index}, {index: why its metadata was dropped})`` from intact metadata.

    Metadata with an unknown or repeated grade_id (or no usable one) is dropped; such a cell may
    still be matched by its content later.
    """
    matched, dropped = {}, {}
    for index, cell in enumerate(nb.cells):
        if "nbgrader" not in cell.get("metadata", {}):
            continue
        raw = nbgrader_meta(cell).get("grade_id")
        grade_id = _grade_id(cell)
        if grade_id not in released or grade_id in matched:
            del cell.metadata["nbgrader"]
            dropped[index] = f"the {'repeated' if grade_id in matched else 'unknown'} grade_id {raw!r}"
            continue
        matched[grade_id] = index
    return matched, dropped


def _match_by_content(nb, release, matched: dict) -> int:
    """Match release cells that have no metadata in the submission; returns how many were matched."""
    taken = set(matched.values())
    free = [i for i, c in enumerate(nb.cells) if i not in taken and "nbgrader" not in c.get("metadata", {})]
    ids = {nb.cells[i].get("id"): i for i in free if nb.cells[i].get("id")}
    count = 0

    def take(grade_id, index):
        nonlocal count
        matched[grade_id] = index
        taken.add(index)
        count += 1

    order = [c for c in release.cells if _grade_id(c)]
    for cell in order:  # 1. cell ids kept by the editor
        grade_id = _grade_id(cell)
        index = ids.get(cell.get("id"))
        if grade_id not in matched and index is not None and index not in taken \
                and nb.cells[index].cell_type == cell.cell_type:
            take(grade_id, index)
    for cell in order:  # 2. read-only and test cells: the same source (visible part), in order
        grade_id = _grade_id(cell)
        meta = nbgrader_meta(cell)
        if grade_id in matched or not meta.get("locked"):
            continue
        for index in free:
            if index not in taken and _norm(nb.cells[index].source) == _norm(cell.source):
                take(grade_id, index)
                break
    positions = {gid: matched[gid] for gid in matched}
    for k, cell in enumerate(order):  # 3. answer cells: between their neighbours, defining the same names
        grade_id = _grade_id(cell)
        if grade_id in matched or not nbgrader_meta(cell).get("solution"):
            continue
        before = max([positions[_grade_id(c)] for c in order[:k] if _grade_id(c) in positions], default=-1)
        after = min([positions[_grade_id(c)] for c in order[k + 1:] if _grade_id(c) in positions],
                    default=len(nb.cells))
        window = [i for i in free if before < i < after and i not in taken
                  and nb.cells[i].cell_type == cell.cell_type]
        if cell.cell_type == "code":
            names = set(top_level_names(cell.source))
            window = [i for i in window if names and names <= set(top_level_names(nb.cells[i].source))]
        else:  # a written answer: the one markdown cell there that is not a prompt of the release
            prompts = {_norm(c.source) for c in release.cells if c.cell_type == "markdown"}
            window = [i for i in window if _norm(nb.cells[i].source) not in prompts]
        if len(window) == 1 or (window and cell.cell_type == "code"):
            take(grade_id, window[-1])
            positions[grade_id] = window[-1]
    return count


def _restore_missing(nb, release, matched: dict) -> list[str]:
    """Insert the release's read-only and test cells that the submission lacks, where they belong."""
    notes, used_ids = [], {c.get("id") for c in nb.cells}
    anchor = {gid: nb.cells[i] for gid, i in matched.items()}  # cells move as others are inserted
    previous = None
    for cell in release.cells:
        grade_id = _grade_id(cell)
        if not grade_id:
            continue
        meta = nbgrader_meta(cell)
        if grade_id not in anchor and (meta.get("locked") or meta.get("grade")) and not (
                meta.get("solution") and cell.cell_type == "code"):
            restored = copy.deepcopy(cell)
            if restored.get("id") in used_ids:
                restored["id"] = uuid.uuid4().hex[:8]
            used_ids.add(restored.get("id"))
            at = 0 if previous is None else next(i for i, c in enumerate(nb.cells) if c is previous) + 1
            nb.cells.insert(at, restored)
            anchor[grade_id] = restored
            what = "test cell" if is_test_cell(cell) else ("written answer" if meta.get("solution")
                                                            else "read-only cell")
            notes.append(f"{what} {grade_id!r} was missing: restored from the assignment")
        if grade_id in anchor:
            previous = anchor[grade_id]
    return notes


def repair(nb, release) -> list[str]:
    """Make a submission's nbgrader structure match the release; returns notes on what was repaired.

    Every matched cell gets the release's nbgrader metadata back (nbgrader then restores locked
    cells' source and type, and the hidden tests); cells with an unknown or repeated grade_id are
    graded as ordinary cells; missing read-only, test and written-answer cells are restored from the
    release at their place (a missing answer code cell is not: the student's code may live elsewhere).
    """
    released = {_grade_id(c): c for c in release.cells if _grade_id(c)}
    matched, dropped = _match_by_metadata(nb, released)
    had_metadata = bool(matched)
    by_content = _match_by_content(nb, release, matched)
    back = {index: grade_id for grade_id, index in matched.items()}
    notes = [f"a cell with {why} was matched to {back[index]!r} by its content" if index in back
             else f"a cell with {why} was graded as an ordinary cell" for index, why in dropped.items()]
    if by_content and not had_metadata:
        notes.append("this notebook had no grading metadata (answers pasted into a new notebook, or an editor that "
                     f"drops it): {by_content} cells were matched to the assignment by their content")
    for grade_id, index in matched.items():
        cell, original = nb.cells[index], released[grade_id]
        if cell.cell_type != original.cell_type:
            notes.append(f"cell {grade_id!r} was changed from {original.cell_type} to {cell.cell_type}: restored")
        elif nbgrader_meta(original).get("locked") and _norm(cell.source) != _norm(original.source):
            notes.append(f"read-only cell {grade_id!r} was edited: the original was used")
        cell.metadata["nbgrader"] = copy.deepcopy(original.metadata["nbgrader"])
    notes += _restore_missing(nb, release, matched)
    return notes
