"""The book builds strictly (-W -n --keep-going) with every lecture in it, figures included."""

import re

import yaml
from conftest import LECTURES, REPO


def test_book_builds_strictly_with_every_chapter(built_book):
    html, result = built_book
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    for page in ["intro", "setup", "notation", "instructors", "references"]:
        assert (html / f"{page}.html").is_file(), page
    for lecture in LECTURES:
        page = (html / "lectures" / f"{lecture.stem}.html").read_text()
        images = re.findall(r'<img[^>]+src="([^"]+)"', page)
        assert len(images) >= 3, f"{lecture.stem}: expected figures, found {len(images)}"
        for src in images:
            if not src.startswith("data:"):
                assert (html / "lectures" / src).resolve().is_file(), f"missing figure {src}"
        assert "Traceback (most recent call last)" not in page, f"{lecture.stem} shows a traceback"
        assert "animation" in page.lower(), "the static widget twin (JS-HTML animation) is missing"
        assert "jupyter-widgets" not in page, "a live widget leaked into the book"
    for name in sorted(p.name for p in (REPO / "assignments").glob("[0-9][0-9]_*")):
        page = (html / "assignments" / name / f"{name}.html").read_text()
        assert "YOUR CODE HERE" in page, f"the book's page of assignment {name} is not the student notebook"
    for page in html.rglob("*.html"):
        assert "thebe" not in page.read_text().lower(), f"{page.name} still loads sphinx-thebe"
    # Colab opens a lecture as the published book's executed notebook (book/_ext/dgm_launch.py)
    for lecture in LECTURES:
        assert (html / "_sources" / "lectures" / f"{lecture.stem}.ipynb").is_file()
    refs = (html / "references.html").read_text()
    for author in ["Kingma", "Goodfellow", "Arjovsky", "Rezende", "Dinh", "Ho,", "Lipman"]:
        assert author in refs, f"{author} missing from the references page"


def test_the_repository_url_is_one_setting():
    """The book's repository link and launch buttons, the set-up page and the README clone the same URL."""
    url = yaml.safe_load((REPO / "book" / "_config.yml").read_text())["repository"]["url"]
    assert url.startswith("https://github.com/")
    for doc in ["book/setup.md", "README.md"]:
        clones = re.findall(r"git clone (\S+)", (REPO / doc).read_text())
        assert clones and set(clones) == {url + ".git"}, f"{doc} clones {clones}, _config.yml says {url}"


def test_each_lecture_links_its_assignment_and_installs_the_library_where_missing():
    """The link works in JupyterLab (repository layout) and in the book (pages at the same paths);
    the install cell (Colab, Binder) names the repository of _config.yml."""
    url = yaml.safe_load((REPO / "book" / "_config.yml").read_text())["repository"]["url"]
    for lecture in LECTURES:
        text, name = lecture.read_text(), lecture.stem
        link = f"../assignments/{name}/{name}.ipynb"
        assert f"]({link})" in text, f"{name} does not link its assignment {link}"
        assert (lecture.parent / link).resolve().is_file()
        assert f'%pip install -q --no-deps "dgm @ git+{url}"' in text, f"{name}: no install cell for Colab/Binder"
