"""Course tooling behind the Makefile: execute lectures and generate assignments (grading: :mod:`dgm.grading`).

    python -m dgm.course execute --out book/lectures lectures/01_autoencoders.md ...
    python -m dgm.course assignments            # solutions/ -> nbgrader -> assignments/
    python -m dgm.course book-assignments --out book/assignments   # a book page per assignment
    python -m dgm.course lab-settings [--instructor]   # JupyterLab defaults for this environment

Notebooks are kept as jupytext MyST markdown; this module converts them with jupytext and
drives the real nbgrader, so what the tests exercise is what instructors run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from dgm.grading.settings import REPO, grading_root

SOLUTIONS = REPO / "solutions"
ASSIGNMENTS = REPO / "assignments"

__all__ = ["to_notebook", "execute", "assignment_names", "generate_assignments", "nbgrader_cli",
           "book_assignments", "lab_settings"]


def to_notebook(path: Path | str) -> nbformat.NotebookNode:
    """Read a jupytext MyST notebook and return it as an nbformat notebook without outputs.

    The jupytext header is dropped so the generated .ipynb does not pair itself with the text file;
    cell metadata (nbgrader's included) is kept exactly. Cell ids are made deterministic (the
    grade_id where there is one, else the position) so regenerating gives the same bytes.
    """
    import jupytext

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"notebook path {str(path)!r} does not exist")
    nb = jupytext.read(path)
    nb.metadata.pop("jupytext", None)
    for i, cell in enumerate(nb.cells):
        cell.id = cell.metadata.get("nbgrader", {}).get("grade_id", f"cell-{i}")
    return nb


def execute(paths: list[Path | str], out_dir: Path | str, timeout: int = 900) -> list[tuple[str, float]]:
    """Execute each text notebook top to bottom and write the executed .ipynb into ``out_dir``.

    Each notebook runs in a fresh ``python3`` kernel with its own folder as working directory.
    The first failing cell raises ``nbclient.exceptions.CellExecutionError`` naming the notebook.
    Returns ``[(name, seconds), ...]``.
    """
    from nbclient import NotebookClient

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings = []
    for path in map(Path, paths):
        nb = to_notebook(path)
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent.resolve())}},
            # Live widgets need a kernel; the book shows their static twins instead.
            store_widget_state=False,
        )
        # Figures must render inline whatever MPLBACKEND the caller has (a headless Agg would drop them).
        kernel_env = {**os.environ, "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
        start = time.perf_counter()
        try:
            client.execute(env=kernel_env)
        except Exception as err:
            raise RuntimeError(f"executing {path} failed:\n{err}") from err
        seconds = time.perf_counter() - start
        nbformat.write(nb, out_dir / (path.stem + ".ipynb"))
        timings.append((path.stem, seconds))
        print(f"executed {path} in {seconds:.1f} s", flush=True)
    return timings


def assignment_names(solutions: Path | str | None = None) -> list[str]:
    """Assignments are the folders ``solutions/NN_topic/`` holding ``NN_topic.md``."""
    solutions = SOLUTIONS if solutions is None else Path(solutions)
    return sorted(p.name for p in solutions.iterdir() if (p / f"{p.name}.md").is_file())


def nbgrader_cli(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real nbgrader CLI from the repo root, where nbgrader_config.py lives."""
    cmd = [sys.executable, "-m", "nbgrader", *args]
    # nbgrader runs helper programs (alembic) by name: put this environment's bin/ first on PATH.
    env = {**(os.environ if env is None else env)}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"`nbgrader {' '.join(args)}` failed with exit code {result.returncode}:\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def _in_gradebook(root: Path, assignment: str) -> bool:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{root / 'gradebook.db'}?mode=ro", uri=True) as db:
            return db.execute("SELECT 1 FROM assignment WHERE name = ?", (assignment,)).fetchone() is not None
    except sqlite3.Error:
        return False


def generate_assignments(release_to: Path | str | None = ASSIGNMENTS, names: list[str] | None = None,
                         solutions: Path | str | None = None) -> list[Path]:
    """solutions/NN/NN.md -> grading/source/NN/NN.ipynb -> ``nbgrader generate_assignment`` -> release_to/NN/.

    This also records the assignment, its grade cells and hidden tests in the gradebook, which
    autograding needs. ``release_to=None`` skips the copy into assignments/.
    """
    solutions = SOLUTIONS if solutions is None else Path(solutions)
    names = assignment_names(solutions) if names is None else names
    root = grading_root()
    released = []
    for name in names:
        source = root / "source" / name
        source.mkdir(parents=True, exist_ok=True)
        text = nbformat.writes(to_notebook(solutions / name / f"{name}.md"))
        text += "" if text.endswith("\n") else "\n"  # as nbformat.write would
        target_nb = source / f"{name}.ipynb"
        if (release_to is None and target_nb.is_file() and target_nb.read_text() == text
                and (root / "release" / name / f"{name}.ipynb").is_file() and _in_gradebook(root, name)):
            continue  # grading only: the gradebook already holds exactly this version
        target_nb.write_text(text)
        nbgrader_cli("generate_assignment", name, "--force")
        if release_to is not None:
            target = Path(release_to) / name
            target.mkdir(parents=True, exist_ok=True)
            for nb in sorted((root / "release" / name).glob("*.ipynb")):
                shutil.copyfile(nb, target / nb.name)
                released.append(target / nb.name)
    return released


_ASSIGNMENT_PAGE_INTRO = """\
```{{admonition}} The student notebook
:class: tip
This page is assignment {number} as released to the class: `assignments/{name}/{name}.ipynb` in the
repository. Download {{download}}`{name}.ipynb <files/{name}.ipynb>`, or open it with the launch
button at the top of this page (Binder, Colab), or in your own clone with `make lab`
({{doc}}`../../setup`). Fill in every cell that says `YOUR CODE HERE`, run the visible tests, and
hand the notebook in as your instructor says: it is graded with nbgrader ({{doc}}`../../instructors`).
It goes with the lecture {{doc}}`../../lectures/{name}`.
```
"""


def book_assignments(out_dir: Path | str, assignments: Path | str | None = None) -> list[Path]:
    """A book page per released assignment: ``assignments/NN/NN.ipynb`` -> ``out_dir/NN/NN.ipynb``.

    The page is the student notebook with a markdown cell saying what it is and where to get it;
    the untouched notebook is copied to ``out_dir/NN/files/`` for the page's download link. The
    book's pages sit where the notebooks sit in the repository, so a lecture's link
    ``../assignments/NN/NN.ipynb`` works in JupyterLab and in the book alike. Returns the pages.
    """
    assignments = ASSIGNMENTS if assignments is None else Path(assignments)
    out_dir = Path(out_dir)
    pages = []
    for source in sorted(assignments.glob("[0-9][0-9]_*/[0-9][0-9]_*.ipynb")):
        name = source.stem
        (out_dir / name / "files").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, out_dir / name / "files" / source.name)
        nb = nbformat.read(source, as_version=4)
        intro = _ASSIGNMENT_PAGE_INTRO.format(number=int(name[:2]), name=name)
        nb.cells.insert(1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0,
                        nbformat.v4.new_markdown_cell(intro, id="book-page-intro"))
        nbformat.write(nb, out_dir / name / source.name)
        pages.append(out_dir / name / source.name)
    if not pages:
        raise FileNotFoundError(f"no released assignments (NN_topic/NN_topic.ipynb) under {assignments}")
    return pages


# nbgrader's instructor tools (create and grade assignments, the course list) and its Validate
# button, which would sit on every lecture too: students do not get them in Lab; instructors switch
# them on with `lab_settings(instructor=True)` (`make lab INSTRUCTOR=1`). Students keep nbgrader's
# assignment list (command palette: Assignment List), which fetches and submits through a hub's exchange.
NBGRADER_LAB_PLUGINS = [f"@jupyter/nbgrader:{p}" for p in (
    "create-assignment", "formgrader", "course-list", "validate-assignment")]
NBGRADER_SERVER_EXTENSIONS = [f"nbgrader.server_extensions.{e}" for e in (
    "formgrader", "course_list", "validate_assignment")]
_SERVER_CONFIG = "zz-dgm-course.json"  # loaded after nbgrader.json, so it wins


def lab_settings(instructor: bool = False, prefix: Path | str | None = None) -> Path:
    """Write this environment's JupyterLab defaults under ``prefix/etc/jupyter`` (default: sys.prefix).

    * ``.md`` files open as notebooks (jupytext), on the first launch and in every workspace:
      ``labconfig/default_setting_overrides.json`` sets the default viewers of markdown and MyST
      (and turns off Lab's news pop-up and update check, which would ask jupyter.org);
    * students (``instructor=False``) do not see nbgrader's instructor tools and Validate button
      (NBGRADER_LAB_PLUGINS, NBGRADER_SERVER_EXTENSIONS): they are disabled in
      ``labconfig/page_config.json`` and ``jupyter_server_config.d/zz-dgm-course.json``;
      ``instructor=True`` enables them explicitly (which also wins over a student setting of a
      lower-priority config folder). Other keys of those files are kept.

    Returns the folder written to. ``make lab`` runs it before starting Lab; a conda user runs
    ``python -m dgm.course lab-settings`` once after ``pip install -e .``.
    """
    etc = Path(sys.prefix if prefix is None else prefix) / "etc" / "jupyter"

    def update(path: Path, change) -> None:
        data = json.loads(path.read_text()) if path.is_file() else {}
        change(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    def viewers(data: dict) -> None:
        docmanager = data.setdefault("@jupyterlab/docmanager-extension:plugin", {})
        docmanager.setdefault("defaultViewers", {}).update(
            {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"})
        # no pop-up asking to fetch news from jupyter.org, no update check
        data.setdefault("@jupyterlab/apputils-extension:notification", {}).update(
            {"fetchNews": "false", "checkForUpdates": False})

    def plugins(data: dict) -> None:
        disabled = data.setdefault("disabledExtensions", {})
        disabled.update(dict.fromkeys(NBGRADER_LAB_PLUGINS, not instructor))

    update(etc / "labconfig" / "default_setting_overrides.json", viewers)
    update(etc / "labconfig" / "page_config.json", plugins)
    update(etc / "jupyter_server_config.d" / _SERVER_CONFIG,
           lambda data: data.setdefault("ServerApp", {}).setdefault("jpserver_extensions", {})
           .update(dict.fromkeys(NBGRADER_SERVER_EXTENSIONS, instructor)))
    return etc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dgm.course", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("execute", help="execute text notebooks into .ipynb")
    ex.add_argument("notebooks", nargs="+", type=Path)
    ex.add_argument("--out", type=Path, required=True)
    ex.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    sub.add_parser("assignments", help="regenerate assignments/ from solutions/")
    pages = sub.add_parser("book-assignments", help="a book page per released assignment")
    pages.add_argument("--out", type=Path, required=True)
    lab = sub.add_parser("lab-settings", help="JupyterLab defaults: .md opens as a notebook; nbgrader for instructors only")
    lab.add_argument("--instructor", action="store_true", help="enable nbgrader's instructor extensions")
    args = parser.parse_args(argv)
    if args.command == "execute":
        timings = execute(args.notebooks, args.out, args.timeout)
        for name, seconds in timings:
            print(f"{name:<32} {seconds:7.1f} s")
    elif args.command == "lab-settings":
        etc = lab_settings(args.instructor)
        role = "instructor (nbgrader enabled)" if args.instructor else "student (nbgrader hidden)"
        print(f"JupyterLab settings for a {role} written under {etc}")
    elif args.command == "book-assignments":
        for path in book_assignments(args.out):
            print(f"wrote {path}")
    else:
        for path in generate_assignments():
            print(f"released {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
