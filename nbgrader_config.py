"""nbgrader configuration for the course (nbgrader 0.9.x, local flow without an exchange).

All of nbgrader's working folders and its sqlite gradebook live under the gitignored
``grading/`` folder:

    grading/source/<assignment>/        solutions/ converted to .ipynb by `make assignments`
    grading/release/<assignment>/       what `nbgrader generate_assignment` makes (copied to assignments/)
    grading/submitted/<student>/<assignment>/   where the instructor puts collected notebooks
    grading/autograded/, grading/feedback/      written by `make grade`
    grading/gradebook.db, grading/grades.csv
"""

import os

c = get_config()  # noqa: F821  (provided by traitlets when nbgrader loads this file)

here = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.root = os.environ.get("DGM_GRADING_ROOT", os.path.join(here, "grading"))
c.CourseDirectory.course_id = "dgm-hands-on"

# Student notebooks are graded in a fresh kernel; a cell that runs longer than this is
# stopped, its tests fail, and grading goes on with the next cell.
c.Execute.timeout = int(os.environ.get("DGM_GRADE_CELL_TIMEOUT", "120"))

# Students who are not in the gradebook yet are added when their submission is graded.
c.Autograde.create_student = True

# Keep the generated student notebooks free of outputs and lock the test cells.
c.ClearOutput.enabled = True
c.LockCells.lock_grade_cells = True
c.LockCells.lock_readonly_cells = True
