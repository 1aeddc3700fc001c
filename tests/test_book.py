"""The book builds strictly (-W -n --keep-going) with every lecture in it, figures included."""

import re

from conftest import LECTURES


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
    refs = (html / "references.html").read_text()
    for author in ["Kingma", "Goodfellow", "Arjovsky", "Rezende", "Dinh", "Ho,", "Lipman"]:
        assert author in refs, f"{author} missing from the references page"
