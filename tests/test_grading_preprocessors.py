"""dgm.grading.preprocessors: the feedback students get never shows hidden tests.

GuardedExecute itself is exercised end to end by the grading runs (test_grading_run, test_hostile).
"""

import nbformat

from dgm import course
from dgm.grading import cells
from dgm.grading.preprocessors import HideHiddenTests
from grading_helpers import TINY, write


def test_hidden_tests_are_removed_from_feedback(tmp_path):
    nb = course.to_notebook(write(tmp_path / "tiny_feedback.md", TINY))
    secret = cells.hidden_test_lines(nb)
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
    out, _ = HideHiddenTests().preprocess(nb, {})
    text = "\n".join(c.source + "\n" + "\n".join(cells.output_text(o) for o in c.get("outputs", []))
                     for c in out.cells)
    for line in secret:
        assert line not in text
    assert "visible tests passed" in text and "hidden tests: not shown" in text
    assert test_cell.outputs[1].traceback == ["AssertionError: "]
