"""Every lecture executes top to bottom in FAST mode, and the text notebooks follow the conventions."""

import base64
import io
import re

import jupytext
import nbformat
import pytest
from PIL import Image

from conftest import LECTURES, REPO

TEXT_NOTEBOOKS = LECTURES + sorted(REPO.glob("solutions/*/*.md"))


def test_there_is_a_lecture_an_assignment_and_a_solution_per_chapter():
    chapters = ["01_autoencoders", "02_vae_elbo", "03_gan_game", "04_normalizing_flows", "05_diffusion",
                "06_autoregressive", "07_multimodal", "08_capstone"]
    assert [p.stem for p in LECTURES] == chapters
    for name in chapters:
        assert (REPO / "solutions" / name / f"{name}.md").is_file()
        assert (REPO / "assignments" / name / f"{name}.ipynb").is_file()


@pytest.mark.parametrize("path", TEXT_NOTEBOOKS, ids=lambda p: p.name)
def test_text_notebook_conventions(path):
    text = path.read_text()
    assert text.startswith("---\njupytext:"), "jupytext MyST header missing"
    assert "format_name: myst" in text and "name: python3" in text
    body = re.sub(r"```\{code-cell\}.*?```", "", text, flags=re.S)
    assert len(re.findall(r"^# ", body, flags=re.M)) == 1, "exactly one H1 title"
    levels = [len(h) for h in re.findall(r"^(#+) ", body, flags=re.M)]
    assert all(b - a <= 1 for a, b in zip(levels, levels[1:])), "heading levels must not skip"


HIDDEN = {"remove-cell", "remove-input"}  # cells the book does not show (tags of Jupyter Book)


def _visible(cell) -> bool:
    return not HIDDEN & set(cell.metadata.get("tags", []))


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_lecture_code_reads_on_the_page(path):
    """Code a reader sees fits the book's column and is not test plumbing: lines of at most 88
    characters, visible cells of at most 30 lines, no widget-wiring checks in visible cells (those
    live in tests/test_widgets*.py or in cells tagged remove-cell)."""
    code = [c for c in jupytext.read(path).cells if c.cell_type == "code"]
    long_lines = [line for c in code for line in c.source.splitlines() if len(line) > 88]
    assert not long_lines, f"{len(long_lines)} code lines over 88 characters, e.g. {long_lines[:3]}"
    long_cells = [c.source.splitlines()[0] for c in code if _visible(c) and len(c.source.splitlines()) > 30]
    assert not long_cells, f"visible code cells over 30 lines, starting: {long_cells}"
    wiring = [c.source.splitlines()[0] for c in code if _visible(c)
              and re.search(r"\.image\.value|picture changed|before_png", c.source)]
    assert not wiring, f"widget-wiring checks shown to readers (tag them remove-cell): {wiring}"


@pytest.mark.parametrize("path", TEXT_NOTEBOOKS, ids=lambda p: p.name)
def test_tagged_display_math_has_no_double_backslash(path):
    """Sphinx wraps a display formula holding a line break \\\\ in a split environment, where MathJax
    refuses \\tag: the formula then shows as a TeX error. Inside aligned/pmatrix use \\cr."""
    blocks = re.findall(r"^\$\$\n(.*?)\n\$\$$", path.read_text(), flags=re.S | re.M)
    bad = [b[:60] for b in blocks if "\\tag" in b and "\\\\" in b]
    assert not bad, f"tagged formulas with \\\\: {bad}"


def _png_width(data: str) -> int:
    return Image.open(io.BytesIO(base64.b64decode(data))).width


@pytest.mark.parametrize("name", [p.stem for p in LECTURES])
def test_lecture_outputs_read_on_the_page(executed_lectures, name):
    """What the book shows under the code: figures drawn for the page's ~690-px column (at most
    760 px wide, so labels stay readable) and no raw tensor printouts."""
    book, _ = executed_lectures
    nb = nbformat.read(book / "lectures" / f"{name}.ipynb", as_version=4)
    shown = [o for c in nb.cells if c.cell_type == "code" and "remove-cell" not in c.metadata.get("tags", [])
             and "remove-output" not in c.metadata.get("tags", []) for o in c.outputs]
    widths = [_png_width(o["data"]["image/png"]) for o in shown if "image/png" in o.get("data", {})]
    assert widths and max(widths) <= 760, f"figures wider than 760 px: {[w for w in widths if w > 760]}"
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in shown)
    assert "tensor(" not in text, "a raw tensor printout: " + text[text.index("tensor("):][:120]


@pytest.mark.parametrize("name", [p.stem for p in LECTURES])
def test_lecture_executes_in_fast_mode(executed_lectures, name):
    book, timings = executed_lectures
    nb = nbformat.read(book / "lectures" / f"{name}.ipynb", as_version=4)
    print(f"{name}: {timings[name]:.1f} s in FAST mode")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "device=" in text, "the lecture must print which device it used"
    assert "MNIST variant" in text or "MNIST" not in (REPO / "lectures" / f"{name}.md").read_text(), \
        "a lecture that uses MNIST must print which variant"
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3, "expected figures"
    assert sum(c.source.count("assert ") for c in nb.cells if c.cell_type == "code") >= 5, \
        "claims are checked by visible asserts"
