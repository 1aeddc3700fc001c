"""nbgrader configuration for the course (nbgrader 0.9.x, local flow; the hub template is grading-hub/).

All of nbgrader's working folders and its sqlite gradebook live under the gitignored
``grading/`` folder (``DGM_GRADING_ROOT`` moves it):

    grading/source/<assignment>/        solutions/ converted to .ipynb by `make assignments`
    grading/release/<assignment>/       what `nbgrader generate_assignment` makes (copied to assignments/)
    grading/submitted/<student>/<assignment>/   where the instructor puts collected notebooks
    grading/autograded/, grading/feedback/      written by `make grade`
    grading/gradebook.db, grading/grades.csv, grading/report.csv

`make grade` (dgm.grading) runs nbgrader's autograder with the hardened pieces configured
below; the limits come from the environment (see book/instructors.md, "Settings"):

    DGM_GRADE_CELL_TIMEOUT      seconds one cell may run (default 120)
    DGM_GRADE_NOTEBOOK_TIMEOUT  seconds one notebook may run (default 900)
    DGM_GRADE_MEMORY_MB         memory (address space) of a grading kernel, MiB (default 4096)
    DGM_GRADE_UNSAFE_NO_SANDBOX=1  kernels without bubblewrap (set by `make grade UNSAFE=1` only)
"""

import os

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    SaveAutoGrades,
)

c = get_config()  # noqa: F821  (provided by traitlets when nbgrader loads this file)

here = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.root = os.environ.get("DGM_GRADING_ROOT", os.path.join(here, "grading"))
c.CourseDirectory.course_id = "dgm-hands-on"

# Students who are not in the gradebook yet are added when their submission is graded.
c.Autograde.create_student = True

# Keep the generated student notebooks free of outputs and lock the test cells.
c.ClearOutput.enabled = True
c.LockCells.lock_grade_cells = True
c.LockCells.lock_readonly_cells = True

# A deleted test cell is put back from the gradebook (and then fails unless the answer is right).
c.OverwriteCells.add_missing_cells = True

# Autograding executes with dgm.grading.preprocessors.GuardedExecute instead of nbgrader's Execute: time
# limits per cell and per notebook, a kernel under bubblewrap with a memory limit, restarts after a dead
# kernel, capped output, and test cells run by the kernel guard. A stopped cell gets this error.
cell_timeout = int(os.environ.get("DGM_GRADE_CELL_TIMEOUT", "120"))
c.Execute.timeout = cell_timeout
c.Execute.error_on_timeout = {
    "ename": "CellTimeoutError",
    "evalue": f"this cell was stopped after {cell_timeout} s, the time limit per cell while grading",
    "traceback": [f"CellTimeoutError: this cell was stopped after {cell_timeout} s (time limit per cell)"],
}
c.GuardedExecute.notebook_timeout = int(os.environ.get("DGM_GRADE_NOTEBOOK_TIMEOUT", "900"))
c.GuardedExecute.memory_limit_mb = int(os.environ.get("DGM_GRADE_MEMORY_MB", "4096"))
c.GuardedExecute.sandbox = os.environ.get("DGM_GRADE_UNSAFE_NO_SANDBOX", "0") != "1"
c.Autograde.autograde_preprocessors = [
    "dgm.grading.preprocessors.GuardedExecute",
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]

# Feedback for students never shows hidden tests (nbgrader 0.9 does by design, jupyter/nbgrader#917).
c.GenerateFeedback.preprocessors = [GetGrades, "dgm.grading.preprocessors.HideHiddenTests", CSSHTMLHeaderPreprocessor]
