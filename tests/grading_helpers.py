"""A tiny assignment (two parts, three points) and a class of honest and cheating students for it.

Whole classes of it grade in seconds; the grading tests share it.
"""

import copy
import sqlite3
from pathlib import Path

import nbformat

from conftest import HEADER
from dgm import course

TINY = HEADER + """
+++ {"nbgrader": {"grade": false, "grade_id": "intro", "locked": true, "schema_version": 3, "solution": false, "task": false}}

# Tiny assignment (3 points)

```{code-cell} ipython3
---
nbgrader:
  grade: false
  grade_id: setup
  locked: true
  schema_version: 3
  solution: false
  task: false
---
def reference(a, b):
    return a + b
```

```{code-cell} ipython3
---
nbgrader:
  grade: false
  grade_id: add
  locked: false
  schema_version: 3
  solution: true
  task: false
---
def add(a, b):
    ### BEGIN SOLUTION
    return a + b
    ### END SOLUTION
```

```{code-cell} ipython3
---
nbgrader:
  grade: true
  grade_id: test_add
  locked: true
  points: 2
  schema_version: 3
  solution: false
  task: false
---
import math as _math
_got = add(0.1, 0.2)
assert _math.isclose(_got, reference(0.1, 0.2)), "add(0.1, 0.2) must be 0.3"
print("visible tests passed")
### BEGIN HIDDEN TESTS
_got = add(-1.5, 4.0)
assert _math.isclose(_got, reference(-1.5, 4.0))  # the secret hidden check number one
assert isinstance(add(1, 2), int)
### END HIDDEN TESTS
```

```{code-cell} ipython3
---
nbgrader:
  grade: false
  grade_id: twice
  locked: false
  schema_version: 3
  solution: true
  task: false
---
def twice(x):
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION
```

```{code-cell} ipython3
---
nbgrader:
  grade: true
  grade_id: test_twice
  locked: true
  points: 1
  schema_version: 3
  solution: false
  task: false
---
import math as _math
_got = twice(1.5)
assert _math.isclose(_got, reference(1.5, 1.5))
### BEGIN HIDDEN TESTS
_got = twice(-2.25)
assert _math.isclose(_got, reference(-2.25, -2.25))  # the secret second hidden check
### END HIDDEN TESTS
```
"""

# Cheats against the tiny assignment: each passes both tests without the grader's guard, and must score 0.
CHEATS = {
    "patch_top": ("import math\nmath.isclose = lambda *a, **k: True\n"
                  "def add(a, b):\n    return 0\ndef twice(x):\n    return 0\n"),
    "patch_runtime": ("def add(a, b):\n    import math\n    math.isclose = lambda *a, **k: True\n    return 0\n"
                      "def twice(x):\n    import math\n    math.isclose = lambda *a, **k: True\n    return 0\n"),
    "rebind_globals": ("def add(a, b):\n    global _math\n"
                       "    _math = type('M', (), {'isclose': staticmethod(lambda *a, **k: True)})()\n"
                       "    return 0\ndef twice(x):\n    return add(0, 0)\nisinstance = lambda *a: True\n"),
    "transformer": "get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])\n"
                   "def add(a, b):\n    return 0\ndef twice(x):\n    return 0\n",
    "redefine_setup": "def reference(a, b):\n    return 0\ndef add(a, b):\n    return 0\ndef twice(x):\n    return 0\n",
}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def tiny_class(tmp_path, monkeypatch):
    """A course root with the tiny assignment released and five students: honest and cheating."""
    solutions = tmp_path / "solutions"
    write(solutions / "00_tiny" / "00_tiny.md", TINY)
    root = tmp_path / "root"
    monkeypatch.setenv("DGM_GRADING_ROOT", str(root))
    course.generate_assignments(release_to=tmp_path / "release", solutions=solutions)
    release = nbformat.read(tmp_path / "release" / "00_tiny" / "00_tiny.ipynb", as_version=4)
    source = course.to_notebook(solutions / "00_tiny" / "00_tiny.md")
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells if "nbgrader" in c.metadata}
    students = {}
    solved = copy.deepcopy(release)
    for cell in solved.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = answers[cell.metadata["nbgrader"]["grade_id"]]
    students["solved"] = (solved, 3.0)
    students["blank"] = (copy.deepcopy(release), 0.0)
    for name, code in CHEATS.items():
        nb = copy.deepcopy(release)
        nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in ("add", "twice")]
        nb.cells.insert(2, nbformat.v4.new_code_cell(code))  # after the setup cell
        students[name] = (nb, 0.0)
    for name, (nb, _) in students.items():
        folder = root / "submitted" / name / "00_tiny"
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / "00_tiny.ipynb")
    return solutions, root, students


def gradebook_rows(root: Path):
    with sqlite3.connect(root / "gradebook.db") as db:
        return sorted(db.execute(
            "SELECT student.id, base_cell.name, grade.auto_score, grade.needs_manual_grade FROM grade "
            "JOIN submitted_notebook ON grade.notebook_id = submitted_notebook.id "
            "JOIN submitted_assignment ON submitted_notebook.assignment_id = submitted_assignment.id "
            "JOIN student ON submitted_assignment.student_id = student.id "
            "JOIN base_cell ON grade.cell_id = base_cell.id").fetchall())
