"""Test cells and hidden tests: what the grader needs to know about the cells of an nbgrader notebook.

A *test cell* is a graded code cell that is not an answer cell; its hidden tests sit between
``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``. The grader runs each test cell inside a
function (:func:`wrap_test_source`) and keeps hidden tests out of what students see
(:func:`hidden_test_lines`, :func:`hidden_regions`).
"""

from __future__ import annotations

import ast
import json
import re

HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def is_test_cell(cell) -> bool:
    """An autograder test cell: a graded code cell that is not an answer cell."""
    meta = nbgrader_meta(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _free_names(table) -> set[str]:
    names = {s.get_name() for s in table.get_symbols() if s.is_global() and s.is_referenced()}
    for child in table.get_children():
        names |= _free_names(child)
    return names


def wrap_test_source(source: str) -> str:
    """Run a test cell's code inside a function, so the code under test cannot rebind the test's names.

    The cell's statements become the body of ``__dgm_graded_test()``, which is called and deleted:
    the test's variables and imports (``_torch``, ``_ref``) are locals, and every builtin it uses
    (``abs``, ``isinstance``, ``ValueError``) is bound from the real builtins module when the
    function is defined, so a global of the same name in the student's namespace is ignored.
    Comments are dropped (the code is unparsed from its syntax tree, string literals intact).
    Source that does not parse as Python is returned unchanged.
    """
    import builtins
    import symtable

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    if not tree.body or any(isinstance(node, ast.ImportFrom) and node.module == "__future__" for node in tree.body):
        return source
    wrapper = ast.parse("def __dgm_graded_test():\n    pass\n"
                        "try:\n    __dgm_graded_test()\nfinally:\n    del __dgm_graded_test\n")
    function = wrapper.body[0]
    function.body = tree.body
    plain = ast.unparse(ast.fix_missing_locations(wrapper))
    table = next(t for t in symtable.symtable(plain, "<test>", "exec").get_children()
                 if t.get_name() == "__dgm_graded_test")
    used = sorted(name for name in _free_names(table) & set(dir(builtins)) if name.isidentifier()
                  and not name.startswith("__"))
    function.args.kwonlyargs = [ast.arg(arg=name) for name in used]
    function.args.kw_defaults = [ast.parse(f"__builtins__.{name}", mode="eval").body for name in used]
    return ast.unparse(ast.fix_missing_locations(wrapper)) + "\n"


def test_cell_imports(nb) -> list[str]:
    """Modules the test cells import (``import a.b``, ``from a.b import c`` -> a.b, a.b.c), sorted."""
    names = set()
    for cell in nb.cells:
        if not is_test_cell(cell):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*")
    return sorted(names)


def top_level_names(source: str) -> list[str]:
    """Names a cell binds at top level (assignments, imports, functions, classes), sorted."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return sorted(names)


def hidden_regions(source: str) -> tuple[str, list[str]]:
    """(source without its hidden-test regions, [lines inside them])."""
    kept, hidden, inside = [], [], False
    for line in source.splitlines():
        if HIDDEN_BEGIN in line:
            inside = True
            kept.append("# ... hidden tests: not shown ...")
        elif HIDDEN_END in line:
            inside = False
        elif inside:
            hidden.append(line)
        else:
            kept.append(line)
    return "\n".join(kept), hidden


def hidden_test_lines(nb, min_length: int = 8) -> set[str]:
    """Stripped lines of the hidden tests that appear nowhere else in the instructor's cells.

    Those are what the feedback must not show; lines shorter than ``min_length`` (``else:``,
    ``pass``) or repeated in a visible locked cell are not secret.
    """
    hidden, visible = set(), set()
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        kept, lines = hidden_regions(cell.get("source", ""))
        hidden.update(line.strip() for line in lines)
        if meta.get("locked") or (meta.get("grade") and not meta.get("solution")):
            visible.update(line.strip() for line in kept.splitlines())
    return {line for line in hidden - visible if len(line) >= min_length}


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def output_text(output) -> str:
    parts = [output.get("text", ""), output.get("ename", ""), output.get("evalue", "")]
    parts += output.get("traceback", []) or []
    for value in (output.get("data") or {}).values():
        parts.append(value if isinstance(value, str) else json.dumps(value) if not isinstance(value, list)
                     else "".join(map(str, value)))
    return _ANSI.sub("", "\n".join(map(str, parts)))
