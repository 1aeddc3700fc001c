"""dgm.grading.cells: test cells run inside a function; hidden-test lines are found for the feedback filter."""

import pytest

from dgm.grading import cells


def test_wrapped_test_cells_ignore_the_students_globals():
    source = ("import math as _math\n_ref = 3.0\nassert abs(_math.sqrt(9.0) - _ref) < 1e-9\n"
              "assert isinstance(_ref, float)\n")
    wrapped = cells.wrap_test_source(source)
    compile(wrapped, "<test>", "exec")
    import builtins

    cheater = {"__builtins__": builtins, "abs": lambda x: 0.0, "isinstance": lambda *a: True, "_ref": 0.0}
    exec(wrapped, cheater)  # the real abs/isinstance are used: no error
    assert "__dgm_graded_test" not in cheater and cheater["_ref"] == 0.0
    failing = cells.wrap_test_source("assert abs(-2) == 1, 'abs(-2) is 2'\n")
    with pytest.raises(AssertionError, match="abs"):
        exec(failing, {"__builtins__": builtins, "abs": lambda x: 1})
    assert cells.wrap_test_source("not python (") == "not python ("
