"""Template: nbgrader's exchange on a JupyterHub for this course (nbgrader 0.9.x).

Install it on the hub as the global nbgrader configuration, read by every user (students and the
instructor account) whenever nbgrader runs:

    sudo mkdir -p /etc/jupyter /srv/nbgrader/exchange
    sudo chmod 1777 /srv/nbgrader/exchange           # a shared folder; sticky, so nobody moves another's folder
    sudo cp grading-hub/nbgrader_config_hub.py /etc/jupyter/nbgrader_config.py

The hub itself is grading-hub/jupyterhub_config.py (tests/test_hub.py runs a class through both files).
The instructor account keeps a clone of this repository; the repository's own nbgrader_config.py
(course root grading/, the hardened autograder) is used on top of this file when nbgrader runs
from the clone. The workflow (book/instructors.md, "Running a class on a JupyterHub"):

    instructor, in the clone:  make assignments
                               .venv/bin/nbgrader release_assignment 01_autoencoders
    student (JupyterLab):      Assignments tab -> Fetch, work, Submit
                               (or: nbgrader fetch_assignment / submit 01_autoencoders)
    instructor, in the clone:  .venv/bin/nbgrader collect 01_autoencoders   # -> grading/submitted/
                               make grade JOBS=4
                               .venv/bin/nbgrader release_feedback 01_autoencoders
    student:                   Assignments tab -> Fetch Feedback (or: nbgrader fetch_feedback ...)

Students need only nbgrader in their environment (environment.yml / pyproject.toml install it);
they never run `make grade`, and they never see solutions/ or grading/.
"""

import os

c = get_config()  # noqa: F821  (provided by traitlets when nbgrader loads this file)

# Must match c.CourseDirectory.course_id in the repository's nbgrader_config.py.
c.CourseDirectory.course_id = "dgm-hands-on"

# The shared exchange folder (world-writable, on a file system every user's server can see).
# NBGRADER_EXCHANGE_ROOT overrides it (the tests use a temporary folder).
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE_ROOT", "/srv/nbgrader/exchange")

# One folder per course under the exchange root, so several courses can share a hub.
c.Exchange.path_includes_course = True

# Timestamps of submissions (used for late penalties) in the course's time zone.
c.Exchange.timezone = os.environ.get("NBGRADER_TIMEZONE", "UTC")

# Fetching again restores files a student deleted, without touching the ones they edited.
c.ExchangeFetchAssignment.replace_missing_files = True

# A roster is optional: without one, anyone who submits is added when graded
# (c.Autograde.create_student = True in the repository's nbgrader_config.py). To keep one:
#     .venv/bin/nbgrader db student import roster.csv     # columns: id,first_name,last_name,email
