"""Every lecture executes top to bottom in FAST mode, and the text notebooks follow the conventions."""

import re

import nbformat
import pytest

from conftest import LECTURES, REPO

TEXT_NOTEBOOKS = LECTURES + sorted(REPO.glob("solutions/*/*.md"))


def test_there_is_a_lecture_an_assignment_and_a_solution_per_chapter():
    chapters = ["01_autoencoders", "02_vae_elbo", "03_gan_game", "04_normalizing_flows", "05_diffusion"]
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
