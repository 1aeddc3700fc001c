"""dgm.grading: the instructor's side of the course - autograding a class you can defend grade by grade.

One job per module:

* :mod:`~dgm.grading.settings`      - limits and settings (flags, ``DGM_GRADE_*``, defaults)
* :mod:`~dgm.grading.submissions`   - what is in ``submitted/``: students, readable notebooks, extra files
* :mod:`~dgm.grading.repair`        - give honest-but-messy notebooks back their nbgrader structure
* :mod:`~dgm.grading.cells`         - test cells and hidden tests
* :mod:`~dgm.grading.sandbox`       - bubblewrap around every grading kernel
* :mod:`~dgm.grading.guard`         - runs inside the kernel: executes test cells and signs their verdicts
* :mod:`~dgm.grading.preprocessors` - nbgrader preprocessors (guarded execution, feedback without hidden tests)
* :mod:`~dgm.grading.worker`        - grades one student in a separate process
* :mod:`~dgm.grading.cluster`       - one Dask task per student: a local cluster or your scheduler, retries
* :mod:`~dgm.grading.run`           - the class: interrupts, merging in a fixed order, one consistent commit
* :mod:`~dgm.grading.report`        - gradebook merge, feedback for ungradable notebooks, report.csv

``python -m dgm.grading grade`` is what ``make grade`` runs. Student-facing modules of ``dgm`` never
import this package. book/instructors.md explains the protections and their limits.
"""

from dgm.grading.settings import SETTINGS, grade_settings, grading_root

__all__ = ["SETTINGS", "grade", "grade_settings", "grading_root"]


def grade(*args, **kwargs):
    """See :func:`dgm.grading.run.grade`."""
    from dgm.grading.run import grade as _grade

    return _grade(*args, **kwargs)
