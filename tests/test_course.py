"""dgm.course: notebooks convert with their metadata intact, execution reports failures clearly, grading holds.

The grading tests use a tiny assignment (two parts, three points) so that whole classes grade in
seconds: the grading settings, test cells wrapped in a function, hidden tests kept out of feedback,
broken submissions read and repaired, the kernel sandbox, cheats that pass plain execution, and one
class taken through nbgrader's exchange (the hub template) and graded with 1 and with 3 jobs.
tests/test_hostile.py grades the real assignments with hostile submissions.
"""

import copy
import csv
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import REPO
from dgm import course

HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""


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


# ---- grading: settings, test-cell wrapping, feedback, submissions, sandbox ---------------------

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


def test_grade_settings_defaults_environment_overrides(monkeypatch):
    for env, _ in course.SETTINGS.values():
        monkeypatch.delenv(env, raising=False)
    settings = course.grade_settings()
    assert (settings["cell_timeout"], settings["notebook_timeout"], settings["memory_mb"]) == (120, 900, 4096)
    assert 1 <= settings["jobs"] <= (os.cpu_count() or 1)
    monkeypatch.setenv("DGM_GRADE_CELL_TIMEOUT", "33")
    monkeypatch.setenv("DGM_GRADE_JOBS", "5")
    assert course.grade_settings()["cell_timeout"] == 33 and course.grade_settings()["jobs"] == 5
    assert course.grade_settings(cell_timeout=7, jobs=2)["cell_timeout"] == 7
    with pytest.raises(ValueError, match="memory_mb"):
        course.grade_settings(memory_mb=0)
    with pytest.raises(ValueError, match="DGM_GRADE_CELL_TIMEOUT"):
        course.grade_settings(cell_timeout="soon")


def test_wrapped_test_cells_ignore_the_students_globals():
    source = ("import math as _math\n_ref = 3.0\nassert abs(_math.sqrt(9.0) - _ref) < 1e-9\n"
              "assert isinstance(_ref, float)\n")
    wrapped = course.wrap_test_source(source)
    compile(wrapped, "<test>", "exec")
    import builtins

    cheater = {"__builtins__": builtins, "abs": lambda x: 0.0, "isinstance": lambda *a: True, "_ref": 0.0}
    exec(wrapped, cheater)  # the real abs/isinstance are used: no error
    assert "__dgm_graded_test" not in cheater and cheater["_ref"] == 0.0
    failing = course.wrap_test_source("assert abs(-2) == 1, 'abs(-2) is 2'\n")
    with pytest.raises(AssertionError, match="abs"):
        exec(failing, {"__builtins__": builtins, "abs": lambda x: 1})
    assert course.wrap_test_source("not python (") == "not python ("


def test_hidden_tests_are_removed_from_feedback(tmp_path):
    nb = course.to_notebook(_write(tmp_path / "tiny_feedback.md", TINY))
    secret = course.hidden_test_lines(nb)
    assert "assert _math.isclose(_got, reference(-2.25, -2.25))  # the secret second hidden check" in secret
    assert all("visible tests passed" not in line for line in secret)
    test_cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_twice")
    test_cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="leak: _got = twice(-2.25)\n"),
        nbformat.v4.new_output("error", ename="AssertionError", evalue="",
                               traceback=["----> 5 assert _math.isclose(_got, reference(-2.25, -2.25))  # the secret",
                                          "AssertionError: "]),
    ]
    demo = nbformat.v4.new_code_cell("print(In)")
    demo.outputs = [nbformat.v4.new_output("display_data", data={
        "text/html": "<pre>assert isinstance(add(1, 2), int)</pre>", "text/plain": "x"})]
    nb.cells.append(demo)
    out, _ = course.HideHiddenTests().preprocess(nb, {})
    text = "\n".join(c.source + "\n" + "\n".join(course._output_text(o) for o in c.get("outputs", []))
                     for c in out.cells)
    for line in secret:
        assert line not in text
    assert "visible tests passed" in text and "hidden tests: not shown" in text
    assert test_cell.outputs[1].traceback == ["AssertionError: "]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_submitted_notebooks_are_read_and_repaired(tmp_path):
    release = course.to_notebook(_write(tmp_path / "t.md", TINY))
    for cell in release.cells:  # as generate_assignment leaves it: no solutions, no hidden tests
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = "raise NotImplementedError()"
    (tmp_path / "bad.ipynb").write_text("{ not json")
    (tmp_path / "list.ipynb").write_text("[1, 2]")
    (tmp_path / "link.ipynb").symlink_to(tmp_path / "bad.ipynb")
    assert course._read_submitted_notebook(tmp_path / "bad.ipynb")[1].startswith("not a valid notebook")
    assert course._read_submitted_notebook(tmp_path / "list.ipynb")[1].startswith("not a valid notebook")
    assert course._read_submitted_notebook(tmp_path / "link.ipynb")[1] == "missing"
    assert course._read_submitted_notebook(tmp_path / "nope.ipynb")[1] == "missing"
    student = copy.deepcopy(release)
    cells = {c.metadata["nbgrader"]["grade_id"]: c for c in student.cells if "nbgrader" in c.metadata}
    cells["test_add"].source = "pass"
    cells["test_add"].metadata["nbgrader"]["points"] = 100
    cells["test_twice"].metadata["nbgrader"]["grade_id"] = "mine"
    cells["add"].metadata["nbgrader"]["schema_version"] = 99
    student.cells.append(copy.deepcopy(cells["add"]))
    notes = course._repair_metadata(student, release)
    assert any("'test_add' was edited" in n for n in notes)
    assert any("unknown grade_id 'mine'" in n for n in notes) and any("repeated grade_id 'add'" in n for n in notes)
    assert any("'test_twice' was missing" in n for n in notes)
    meta = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]
            for c in student.cells if "nbgrader" in c.metadata}
    assert meta["test_add"]["points"] == 2 and meta["add"]["schema_version"] == 3 and "mine" not in meta
    assert sum(1 for c in student.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "add") == 1


def _sandboxed(tmp_path, code, memory_mb=2048):
    sandbox = tmp_path / "sandbox"
    for sub in ("work", "home", "tmp"):
        (sandbox / sub).mkdir(parents=True, exist_ok=True)
    (sandbox / "work" / "probe.py").write_text(code)
    conn = tmp_path / "conn.json"
    conn.write_text('{"shell_port": 50999}')
    config = {"sandbox": str(sandbox), "memory_mb": memory_mb, "connection_file": str(conn),
              "read": course._allowed_read_dirs([str(REPO), str(tmp_path)])}
    cmd = [sys.executable, "-I", "-S", str(Path(course.__file__).resolve()), "sandbox-kernel", json.dumps(config),
           "--", sys.executable, "probe.py"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_sandbox_limits_memory_and_files(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("hidden tests")
    outside = tmp_path / "escaped.txt"
    probe = f"""
import os, resource
def attempt(label, f):
    try:
        f()
        print(label, "ALLOWED")
    except (OSError, MemoryError, ValueError) as e:
        print(label, "DENIED", type(e).__name__)
attempt("memory", lambda: bytearray(3 << 30))
attempt("raise-limit", lambda: resource.setrlimit(resource.RLIMIT_AS, (-1, -1)))
attempt("own-folder", lambda: open("mine.txt", "w").write("ok"))
attempt("read-secret", lambda: open({str(secret)!r}).read())
attempt("read-solutions", lambda: open({str(REPO / 'solutions' / '01_autoencoders' / '01_autoencoders.md')!r}).read())
attempt("write-outside", lambda: open({str(outside)!r}, "w").write("x"))
attempt("signal-parent", lambda: os.kill(os.getppid(), 0))
print("HOME", os.environ["HOME"], "GRADING_ROOT" in str(os.environ))
"""
    result = _sandboxed(tmp_path, probe)
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert result.returncode == 0, result.stderr
    assert lines["memory"].startswith("DENIED MemoryError") and lines["raise-limit"].startswith("DENIED")
    assert lines["own-folder"] == "ALLOWED"
    assert lines["HOME"] == f"{tmp_path / 'sandbox' / 'home'} False"
    if not course.sandbox_support()["files"]:
        pytest.skip("no Landlock on this Linux kernel: only the memory limit is enforced")
    assert lines["read-secret"].startswith("DENIED") and lines["read-solutions"].startswith("DENIED")
    assert lines["write-outside"].startswith("DENIED") and not outside.exists()
    if course.sandbox_support()["signals"]:
        assert lines["signal-parent"].startswith("DENIED")


def _tiny_class(tmp_path, monkeypatch):
    """A course root with the tiny assignment released and five students: honest and cheating."""
    solutions = tmp_path / "solutions"
    _write(solutions / "00_tiny" / "00_tiny.md", TINY)
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


def _gradebook_rows(root: Path):
    with sqlite3.connect(root / "gradebook.db") as db:
        return sorted(db.execute(
            "SELECT student.id, base_cell.name, grade.auto_score, grade.needs_manual_grade FROM grade "
            "JOIN submitted_notebook ON grade.notebook_id = submitted_notebook.id "
            "JOIN submitted_assignment ON submitted_notebook.assignment_id = submitted_assignment.id "
            "JOIN student ON submitted_assignment.student_id = student.id "
            "JOIN base_cell ON grade.cell_id = base_cell.id").fetchall())


def test_cheats_pass_without_the_guard(tmp_path, monkeypatch):
    """Control: each cheat really passes the tiny tests under plain execution (no guard, no wrapping)."""
    from nbclient import NotebookClient

    _, root, students = _tiny_class(tmp_path, monkeypatch)
    source = course.to_notebook(_write(tmp_path / "s.md", TINY))
    tests = [c.source for c in source.cells if course.is_test_cell(c)]
    for name in CHEATS:
        nb = copy.deepcopy(students[name][0])
        nb.cells = [c for c in nb.cells if not course.is_test_cell(c)]
        nb.cells += [nbformat.v4.new_code_cell(t) for t in tests]  # the hidden tests included
        NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True).execute()
        errors = [o for c in nb.cells[-2:] for o in c.outputs if o.output_type == "error"]
        assert not errors, f"{name} does not cheat plain execution: {errors}"


def test_class_through_the_hub_exchange_graded_serially_and_in_parallel(tmp_path, monkeypatch):
    """One tiny class, end to end.

    A student goes through nbgrader's exchange configured by grading-hub's template (release,
    fetch, submit, collect); planted students (honest and cheating) join them in
    grading/submitted/. The class is graded with 1 and with 3 jobs: scores and every gradebook row
    are identical (workers never share the gradebook), each student gets exactly their points and a
    feedback page without hidden tests, submitted/ is untouched. Then the feedback goes back
    through the exchange.
    """
    solutions, root, students = _tiny_class(tmp_path, monkeypatch)
    exchange, config_dir, home = tmp_path / "exchange", tmp_path / "cfg", tmp_path / "home"
    for folder in (exchange, config_dir, home):
        folder.mkdir()
    exchange.chmod(0o777)
    shutil.copyfile(REPO / "grading-hub" / "nbgrader_config_hub.py", config_dir / "nbgrader_config.py")
    monkeypatch.setenv("NBGRADER_EXCHANGE_ROOT", str(exchange))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(config_dir))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def nbgrader(*args, cwd):
        result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, f"nbgrader {args}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"

    import getpass

    user = getpass.getuser()  # nbgrader's exchange names a submission after its unix owner
    nbgrader("release_assignment", "00_tiny", cwd=REPO)
    nbgrader("fetch_assignment", "00_tiny", cwd=home)
    fetched = home / "dgm-hands-on" / "00_tiny" / "00_tiny.ipynb"  # the template keeps courses apart
    nb = nbformat.read(fetched, as_version=4)
    assert "secret" not in nbformat.writes(nb)
    nb.cells[2].source = "def add(a, b):\n    return a + b\n"
    nbformat.write(nb, fetched)
    nbgrader("submit", "00_tiny", cwd=home)
    nbgrader("collect", "00_tiny", cwd=REPO)
    collected = root / "submitted" / user / "00_tiny"
    assert (collected / "timestamp.txt").is_file()
    assert nbformat.read(collected / "00_tiny.ipynb", as_version=4).cells[2].source == nb.cells[2].source
    expected = {name: points for name, (_, points) in students.items()} | {user: 2.0}

    submitted = {p: p.read_bytes() for p in sorted((root / "submitted").rglob("*")) if p.is_file()}
    runs = {}
    for jobs in (1, 3):
        for sub in ("autograded", "feedback"):
            shutil.rmtree(root / sub, ignore_errors=True)
        (root / "gradebook.db").unlink()
        course.grade(jobs=jobs, cell_timeout=30, solutions=solutions)
        with open(root / "grades.csv", newline="") as f:
            scores = {r["student_id"]: float(r["score"]) for r in csv.DictReader(f)}
        runs[jobs] = (scores, _gradebook_rows(root))
        assert scores == expected, (jobs, scores)
        for name in expected:
            feedback = root / "feedback" / name / "00_tiny" / "00_tiny.html"
            assert feedback.is_file() and "secret" not in feedback.read_text()
    assert runs[1] == runs[3]
    assert {p: p.read_bytes() for p in sorted((root / "submitted").rglob("*")) if p.is_file()} == submitted
    with open(root / "report.csv", newline="") as f:
        notes = {r["student"]: r["notes"] for r in csv.DictReader(f)}
    assert "integrity" in notes["patch_runtime"] and "restored" in notes["patch_top"]
    assert "check before test_add did not run" in notes["transformer"]
    assert "notebook.reference" in notes["redefine_setup"]

    nbgrader("release_feedback", "00_tiny", "--student", user, cwd=REPO)  # the others did not use the exchange
    nbgrader("fetch_feedback", "00_tiny", cwd=home)
    pages = list((home / "dgm-hands-on" / "00_tiny" / "feedback").rglob("00_tiny.html"))
    assert pages and "visible tests passed" in pages[0].read_text() and "secret" not in pages[0].read_text()
