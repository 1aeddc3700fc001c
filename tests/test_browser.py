"""The widgets and the book in a real browser (Debian's chromium driven by playwright).

* Every registered widget demo (DEMOS of demos/widget_demos.py: one per live widget of
  dgm.widgets) is served by Voila on 127.0.0.1; every slider of the rendered widget is moved,
  alternately with the keyboard and the mouse, the demo's listed dropdown choices are picked and
  buttons clicked, and every listed point of its matplotlib canvas (ipympl) is clicked; after each
  action the test waits for the kernel's redraw and asserts that the rendered picture changed
  (pixels of the element's screenshot, not only the DOM). A screenshot per widget is saved.
* Every page of the built book is opened: each figure loads (naturalWidth > 0), the math is
  typeset by the book's own MathJax with no TeX error, no page shows a traceback or an empty
  (widget) output box, and each static widget twin (a matplotlib JS-HTML player) responds to its
  buttons, its slider with the keyboard and with the mouse, and to Play. At 360, 768 and 1280 px
  no element is cut off by a box that does not scroll and the page never scrolls sideways; at
  1280 px figures are shown at (nearly) their own size and code cells fit. Lecture and assignment
  pages have launch buttons that open files which exist; assignment pages a working download.
* JupyterLab with the course's settings (first launch): a lecture's .md opens as a notebook, a
  student sees none of nbgrader's instructor tools, an instructor does.
* Nothing is fetched from another host: every request is intercepted and any request (or web
  socket) to a host other than 127.0.0.1 fails the test, as does a failed local request or an
  uncaught JavaScript error.

Screenshots go to test-output/browser/. Run only these tests with
``.venv/bin/pytest tests/test_browser.py`` (``-k widget`` for the widgets alone, which needs no
book build; set DGM_BOOK_HTML=book/_build/html to check an already built book instead of
building one). They are skipped when chromium or playwright is missing, except under CI=true,
where that is an error (``make test`` installs both).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from browser_helpers import (
    CHROMIUM,
    free_port,
    new_context,
    serve_directory,
    start_server,
    stop_server,
    wait_for_change,
    wait_until_stable,
)
from conftest import LECTURES, REPO

sys.path.insert(0, str(REPO / "demos"))  # the demo tooling is not part of the dgm package
from widget_demos import DEMOS, voila_command, write_notebooks  # noqa: E402

OUT = REPO / "test-output" / "browser"


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def browser():
    """Debian's chromium via playwright; a skip locally, an error under CI, if either is missing."""
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (Debian package chromium: `make browser`)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("the Python package playwright (pinned in pyproject.toml: `make setup`)")
    if missing:
        message = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail(message + " - under CI=true the browser tests must run", pytrace=False)
        pytest.skip(message)
    from browser_helpers import launch

    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def context(browser):
    """A fresh context whose Guard records every request to another host; closed afterwards."""
    ctx, guard = new_context(browser)
    yield ctx, guard
    ctx.close()


@pytest.fixture(scope="module")
def voila(browser, tmp_path_factory):
    """Voila serving one notebook per registered demo on 127.0.0.1; yields its base URL.

    Its log is copied to test-output/browser/voila.log at the end.
    """
    root = tmp_path_factory.mktemp("voila")
    write_notebooks(root / "demos")
    port = free_port()
    cmd, env = voila_command(root / "demos", port, root / "template")
    base = f"http://127.0.0.1:{port}"
    proc = start_server(cmd, env, base + "/", root / "voila.log")
    yield base
    stop_server(proc)
    shutil.copy(root / "voila.log", OUT / "voila.log")


@pytest.fixture(scope="module")
def book_site(request):
    """The built book (DGM_BOOK_HTML, or the session's strict build) served on 127.0.0.1."""
    if os.environ.get("DGM_BOOK_HTML"):
        html = Path(os.environ["DGM_BOOK_HTML"]).resolve()
        assert (html / "index.html").is_file(), f"DGM_BOOK_HTML={html} holds no built book"
    else:
        html, result = request.getfixturevalue("built_book")
        assert result.returncode == 0, "the book did not build:\n" + (result.stdout + result.stderr)[-3000:]
    base, server = serve_directory(html)
    yield html, base
    server.shutdown()


# ----------------------------------------------------------------------------- widgets in Voila
_PICTURES = ".widget-image, .jupyter-matplotlib-canvas-div canvas"

# Every picture of the widget, as the browser holds it: <img> sources (a new blob URL per
# redraw) and the pixels of each ipympl canvas.
_READ_PICTURES = """root => Array.from(root.querySelectorAll('%s')).map(
    el => el.tagName === 'CANVAS' ? el.toDataURL() : el.src)""" % _PICTURES


def _shots(area):
    """PNG screenshots of every picture element in ``area``: what the reader actually sees."""
    pictures = area.locator(_PICTURES)
    return [pictures.nth(i).screenshot() for i in range(pictures.count())]


def _act_and_check(page, area, what, action):
    """Do ``action()``, wait for the kernel's redraw, assert the rendered pictures changed."""
    read = lambda: area.evaluate(_READ_PICTURES)  # noqa: E731
    before, shots_before = read(), _shots(area)
    action()
    try:
        wait_for_change(page, read, before)
    except AssertionError as err:
        raise AssertionError(f"{what}: the widget did not redraw ({err})") from None
    shots_after = _shots(area)
    assert len(shots_after) == len(shots_before), f"{what}: pictures appeared or vanished"
    assert any(a != b for a, b in zip(shots_before, shots_after)), f"{what}: the rendered picture is unchanged"


def _move_slider(page, slider, use_mouse: bool) -> None:
    """Move an ipywidgets slider (noUiSlider) far from where it is: End/Home keys, or a drag."""
    handle = slider.locator(".noUi-handle").first
    track = slider.locator(".noUi-base, .noUi-connects").first.bounding_box()
    box = handle.bounding_box()
    x = box["x"] + box["width"] / 2
    to_the_right = x < track["x"] + track["width"] / 2
    if use_mouse:
        target = track["x"] + track["width"] * (0.85 if to_the_right else 0.15)
        page.mouse.move(x, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(target, box["y"] + box["height"] / 2, steps=6)
        page.mouse.up()
    else:
        handle.focus()
        page.keyboard.press("End" if to_the_right else "Home")


@pytest.mark.parametrize("name", list(DEMOS))
def test_widget_demo_reacts_in_voila(name, voila, context):
    demo = DEMOS[name]
    ctx, guard = context
    page = ctx.new_page()
    page.goto(f"{voila}/voila/render/{name}.ipynb", wait_until="load", timeout=120_000)
    # the kernel executes the demo (builds a tiny model), then the widget appears
    page.locator(_PICTURES).first.wait_for(state="visible", timeout=180_000)
    area = page.locator(".jp-OutputArea-output", has=page.locator(".jupyter-widgets")).first
    wait_until_stable(page, lambda: area.evaluate(_READ_PICTURES))  # the first draws have arrived
    text = page.locator("body").inner_text()
    assert "Traceback" not in text and "Error displaying widget" not in text, text[-2000:]
    box = area.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 100, f"{name}: the widget box is empty ({box})"
    area.screenshot(path=str(OUT / f"widget_{name}_before.png"))

    sliders = area.locator(".widget-slider")
    labels = [sliders.nth(i).locator(".widget-label").inner_text().strip() for i in range(sliders.count())]
    moved = [label for label in labels if label not in demo.still]
    assert moved or demo.clicks or demo.buttons or demo.selects, f"{name}: no control to test"
    for i, label in enumerate(labels):
        if label in demo.still:
            continue
        slider = sliders.nth(i)
        readout = slider.locator(".widget-readout")
        value = readout.inner_text()
        how = "mouse" if i % 2 else "keyboard"
        _act_and_check(page, area, f"{name}: slider {label!r} ({how})",
                       lambda: _move_slider(page, slider, use_mouse=how == "mouse"))
        assert readout.inner_text() != value, f"{name}: slider {label!r} did not move ({how})"

    for description, option in demo.selects:
        dropdown = area.locator(".widget-dropdown", has=page.locator(".widget-label", has_text=description))
        _act_and_check(page, area, f"{name}: dropdown {description!r} -> {option!r}",
                       lambda: dropdown.locator("select").select_option(label=option))
    for description in demo.buttons:
        button = area.get_by_role("button", name=description, exact=True)
        _act_and_check(page, area, f"{name}: button {description!r}", lambda: button.click())

    canvases = area.locator(".jupyter-matplotlib-canvas-div")
    assert canvases.count() > 0 or not demo.clicks, f"{name}: clicks listed but no matplotlib canvas"
    for c in range(canvases.count()):
        for fx, fy in demo.clicks:
            b = canvases.nth(c).bounding_box()
            point = (b["x"] + fx * b["width"], b["y"] + fy * b["height"])
            _act_and_check(page, area, f"{name}: click at {fx:.2f}, {fy:.2f} of canvas {c}",
                           lambda: page.mouse.click(*point))

    # sliders that only set parameters for later (e.g. the number of steps to run) move too,
    # last: their readout changes and nothing breaks
    for i, label in enumerate(labels):
        if label in demo.still:
            readout = sliders.nth(i).locator(".widget-readout")
            value = readout.inner_text()
            _move_slider(page, sliders.nth(i), use_mouse=bool(i % 2))
            page.wait_for_function("([el, v]) => el.innerText !== v", arg=[readout.element_handle(), value],
                                   timeout=10_000)
    page.wait_for_timeout(300)
    area.screenshot(path=str(OUT / f"widget_{name}.png"))
    assert "Traceback" not in page.locator("body").inner_text()
    guard.assert_clean()


# ----------------------------------------------------------------------------- the book
_PAGE_REPORT = """() => {
  const outputs = Array.from(document.querySelectorAll('.cell_output > *'));
  const media = 'img, svg, canvas, video, iframe, table, mjx-container';
  return {
    broken_images: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))
        .map(i => (i.id || i.alt || '') + ' ' + i.src.slice(0, 80)),
    images: document.images.length,
    math: document.querySelectorAll('.math').length,
    untypeset: Array.from(document.querySelectorAll('.math'))
        .filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 60)),
    tex_errors: Array.from(document.querySelectorAll('mjx-merror'))
        .map(m => m.getAttribute('data-mjx-error') || m.textContent.slice(0, 60)),
    invisible_math: Array.from(document.querySelectorAll('mjx-container'))  // shown, yet no width
        .filter(m => m.checkVisibility() && m.getBoundingClientRect().width === 0).length,
    mathjax_src: Array.from(document.scripts).map(s => s.src).filter(s => /mathjax|tex-mml/i.test(s)),
    tracebacks: document.querySelectorAll('.traceback, .output.error').length
        + (document.body.innerText.includes('Traceback (most recent call last)') ? 1 : 0),
    widget_boxes: document.querySelectorAll(
        '.jupyter-widgets, .widget-area, script[type="application/vnd.jupyter.widget-view+json"]').length
        + (document.body.innerText.includes('Loading widget') ? 1 : 0),
    empty_outputs: outputs.filter(o => {
        const r = o.getBoundingClientRect();
        return r.height < 2 || (!o.innerText.trim() && !o.querySelector(media) && !o.matches(media));
    }).map(o => o.className || o.tagName),
    animations: document.querySelectorAll('.animation').length,
    clipped: clippedElements(),
    page_overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    // figures shown at less than 87 % of their size: labels drawn for a wider page get unreadable
    shrunk_figures: Array.from(document.querySelectorAll('.cell_output img, .animation img'))
        .filter(i => i.checkVisibility() && i.naturalWidth > 1.15 * i.getBoundingClientRect().width)
        .map(i => `${i.naturalWidth}px shown at ${Math.round(i.getBoundingClientRect().width)}px`),
    code_scrolling: Array.from(document.querySelectorAll('.cell_input pre'))
        .filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.textContent.split('\\n')
        .reduce((a, b) => a.length >= b.length ? a : b).slice(0, 60)),
  };

  // Elements of the article that stick out of the nearest ancestor that clips them (overflow
  // hidden/clip) or out of the window: cut off, and nothing lets the reader scroll to them.
  // Inside a scroll container (overflow auto/scroll) an element may be as wide as it likes.
  function clippedElements() {
    const found = [];
    for (const el of document.querySelectorAll('.bd-article *')) {
      if (el.closest('mjx-assistive-mml') || !el.checkVisibility({visibilityProperty: true})) continue;
      if (found.some(f => f.el.contains(el))) continue;
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      let box = el.parentElement, clip = null;
      for (; box && box !== document.documentElement; box = box.parentElement) {
        if (box.tagName.startsWith('MJX-') && box.tagName !== 'MJX-CONTAINER') continue;  // MathJax's own layout
        const overflow = getComputedStyle(box).overflowX;
        if (overflow === 'auto' || overflow === 'scroll') break;
        if (overflow !== 'visible') { clip = box.getBoundingClientRect(); break; }
      }
      if (box && box !== document.documentElement && !clip) continue;  // in a scroll container
      const [left, right] = clip ? [clip.left, clip.right] : [0, document.documentElement.clientWidth];
      if (r.left < left - 1 || r.right > right + 1)
        found.push({el, what: `<${el.tagName.toLowerCase()}> ${(el.textContent || '').trim()
          .replace(/\\s+/g, ' ').slice(0, 50)} [${Math.round(r.left)}, ${Math.round(r.right)}] `
          + `outside [${Math.round(left)}, ${Math.round(right)}]`});
    }
    return found.map(f => f.what);
  }
}"""


def _open_book_page(page, url):
    page.goto(url, wait_until="load")
    page.evaluate("() => document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')")
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)", timeout=30_000)
    has_mathjax = page.evaluate("() => !!document.querySelector('.math')")
    if has_mathjax:
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000)
        page.evaluate("() => MathJax.startup.promise")
    return page.evaluate(_PAGE_REPORT)


WIDTHS = (1280, 768, 360)  # a laptop, a tablet, a phone


def _check_layout(page, url, where):
    """At each of WIDTHS: nothing cut off, no sideways scrolling of the page; at 1280 px also
    figures shown at (nearly) their own size and code cells that fit without scrolling."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        report = _open_book_page(page, url)
        at = f"{where} at {width} px"
        assert not report["clipped"], f"{at}: cut-off elements:\n" + "\n".join(report["clipped"][:10])
        assert report["page_overflow"] <= 1, f"{at}: the page scrolls sideways by {report['page_overflow']} px"
        if width == 1280:
            assert not report["shrunk_figures"], f"{at}: figures scaled down: {report['shrunk_figures']}"
            assert not report["code_scrolling"], (
                f"{at}: code cells wider than the page: {report['code_scrolling'][:5]}")
        page.screenshot(path=str(OUT / f"{where.replace('/', '_')}_{width}.png"))
    page.set_viewport_size({"width": 1280, "height": 900})


def _check_page(report, base, where):
    assert not report["broken_images"], f"{where}: figures that did not load: {report['broken_images']}"
    assert report["tracebacks"] == 0, f"{where} shows a traceback"
    assert report["widget_boxes"] == 0, f"{where} has a live-widget box (empty without a kernel)"
    assert not report["empty_outputs"], f"{where}: empty output boxes {report['empty_outputs']}"
    if report["math"]:
        assert report["mathjax_src"] and all(s.startswith(base + "/") for s in report["mathjax_src"]), (
            f"{where}: MathJax must come from the book itself (`make mathjax`), got {report['mathjax_src']}")
        assert not report["untypeset"], f"{where}: math left untypeset: {report['untypeset'][:5]}"
        assert not report["tex_errors"], f"{where}: TeX errors: {report['tex_errors'][:5]}"
        assert report["invisible_math"] == 0, f"{where}: typeset math with zero width (fonts missing?)"


def _frame(anim):
    return anim.evaluate("a => [a.querySelector('img').src, a.querySelector('input.anim-slider').value]")


def _check_player(page, anim, where, shot=None):
    """A matplotlib JS-HTML player: Next frame, End/Home keys on its slider, a mouse click on the
    slider, and Play each change the displayed frame (its pixels)."""
    anim.scroll_into_view_if_needed()
    img, slider = anim.locator("img").first, anim.locator("input.anim-slider")
    last = int(slider.get_attribute("max") or slider.evaluate("s => s.max"))
    assert last >= 1, f"{where}: a player with {last + 1} frame(s)"

    def step(what, action, expect_value):
        before, pixels = _frame(anim), img.screenshot()
        action()
        now = wait_for_change(page, lambda: _frame(anim), before, timeout=10, settle=0.1)
        assert now[1] == str(expect_value), f"{where}: {what} shows frame {now[1]}, expected {expect_value}"
        assert img.screenshot() != pixels, f"{where}: {what} did not change the displayed frame"

    anim.locator('button[title="First frame"]').click()
    page.wait_for_timeout(50)
    if _frame(anim)[1] != "0":
        raise AssertionError(f"{where}: First frame shows frame {_frame(anim)[1]}")
    step("Next frame", lambda: anim.locator('button[title="Next frame"]').click(), 1)
    step("End key on the slider", lambda: (slider.focus(), page.keyboard.press("End")), last)
    box = slider.bounding_box()
    step("a click at the slider's left end",
         lambda: page.mouse.click(box["x"] + 3, box["y"] + box["height"] / 2), 0)
    before = _frame(anim)
    anim.locator('button[title="Play"]').click()
    wait_for_change(page, lambda: _frame(anim), before, timeout=10, settle=0)
    anim.locator('button[title="Pause"]').click()
    if shot:
        anim.screenshot(path=str(shot))


@pytest.mark.parametrize("lecture", [p.stem for p in LECTURES])
def test_book_chapter_page_in_browser(lecture, book_site, context):
    html, base = book_site
    assert (html / "lectures" / f"{lecture}.html").is_file(), f"{lecture} is not in the built book"
    ctx, guard = context
    page = ctx.new_page()
    report = _open_book_page(page, f"{base}/lectures/{lecture}.html")
    _check_page(report, base, lecture)
    assert report["images"] >= 3, f"{lecture}: expected figures, found {report['images']} images"
    assert report["math"] > 0, f"{lecture}: no math on a chapter page?"
    assert report["animations"] >= 1, f"{lecture}: no static widget twin (JS-HTML player)"
    _check_launch_buttons(page, html, f"lectures/{lecture}")
    anims = page.locator(".animation")
    for i in range(anims.count()):
        _check_player(page, anims.nth(i), f"{lecture} player {i}", OUT / f"book_{lecture}_player{i}.png")
    _check_layout(page, f"{base}/lectures/{lecture}.html", f"book_{lecture}")
    guard.assert_clean()


def _check_launch_buttons(page, html, pagename):
    """The page's launch buttons open the repository's own file of this page (Binder), and Colab
    an .ipynb that exists: the released assignment, or the published book's executed lecture."""
    from urllib.parse import parse_qs, unquote, urlsplit

    links = page.evaluate("""() => Array.from(document.querySelectorAll('.dropdown-launch-buttons a'))
        .map(a => [a.textContent.trim(), a.href])""")
    texts = {text for text, _ in links}
    assert {"Binder", "Colab"} <= texts, f"{pagename}: launch buttons {links}"
    for text, url in links:
        parts = urlsplit(url)
        if text == "Binder":
            target = unquote(parse_qs(parts.query)["urlpath"][0]).removeprefix("lab/tree/")
            assert (REPO / target).is_file(), f"{pagename}: Binder opens {target}, not a file of the repository"
            assert target.split("/")[-1].split(".")[0] == pagename.split("/")[-1], (pagename, target)
        elif text == "Colab":
            branch, path = parts.path.split("/blob/")[1].split("/", 1)
            where = html if path.startswith("_sources/") else REPO
            assert (where / path).is_file(), f"{pagename}: Colab opens {branch}/{path}, which does not exist"
            assert path.endswith(".ipynb"), f"{pagename}: Colab needs an .ipynb, got {path}"


@pytest.mark.parametrize("assignment", sorted(p.name for p in (REPO / "assignments").glob("[0-9][0-9]_*")))
def test_book_assignment_page_in_browser(assignment, book_site, context):
    """Each assignment has a book page: the student notebook, its download link and launch buttons."""
    html, base = book_site
    assert (html / "assignments" / assignment / f"{assignment}.html").is_file(), f"{assignment} is not in the book"
    ctx, guard = context
    page = ctx.new_page()
    url = f"{base}/assignments/{assignment}/{assignment}.html"
    report = _open_book_page(page, url)
    _check_page(report, base, f"assignment {assignment}")
    assert "YOUR CODE HERE" in page.inner_text(".bd-article"), f"{assignment}: not the student version"
    download = page.locator(f'a.download[href$="{assignment}.ipynb"]')
    assert download.count() == 1, f"{assignment}: no download link for the notebook"
    response = page.request.get(download.first.evaluate("a => a.href"))
    assert response.ok and b'"nbgrader"' in response.body(), f"{assignment}: the download is not the notebook"
    _check_launch_buttons(page, html, f"assignments/{assignment}/{assignment}")
    _check_layout(page, url, f"book_assignment_{assignment}")
    guard.assert_clean()


def test_book_other_pages_in_browser(book_site, context):
    html, base = book_site
    ctx, guard = context
    page = ctx.new_page()
    # index.html only redirects to intro.html; genindex and search are Sphinx's own pages
    pages = sorted(p.name for p in html.glob("*.html") if p.name not in ("index.html", "genindex.html", "search.html"))
    assert "intro.html" in pages and "notation.html" in pages, pages
    for name in pages:
        report = _open_book_page(page, f"{base}/{name}")
        _check_page(report, base, name)
        _check_layout(page, f"{base}/{name}", f"book_{name.removesuffix('.html')}")
    assert _open_book_page(page, f"{base}/notation.html")["math"] > 0, "the notation page shows no math"
    guard.assert_clean()


# ----------------------------------------------------------------------------- the course in JupyterLab
@pytest.mark.parametrize("instructor", [False, True], ids=["student", "instructor"])
def test_lab_opens_a_lecture_as_a_notebook(instructor, browser, tmp_path):
    """`make lab`'s settings (dgm.course.lab_settings) in a real JupyterLab on its first launch
    (fresh user folders, no saved workspace): a lecture's .md opens as a notebook; a student sees
    none of nbgrader's tools, an instructor (INSTRUCTOR=1) sees the Validate button and the
    Create Assignment panel."""
    from dgm.course import lab_settings

    etc = lab_settings(instructor, prefix=tmp_path / "env")
    port, token = free_port(), "course-test"
    env = {"JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_PATH": str(etc)}
    cmd = [str(Path(sys.executable).with_name("jupyter")), "lab", "--ip=127.0.0.1", f"--port={port}",
           "--no-browser", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={REPO}"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    base = f"http://127.0.0.1:{port}"
    role = "instructor" if instructor else "student"
    proc = start_server(cmd, env, f"{base}/api/status?token={token}", tmp_path / "lab.log")
    ctx, guard = new_context(browser)
    try:
        page = ctx.new_page()
        page.goto(f"{base}/lab/tree/lectures/01_autoencoders.md?token={token}")
        page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=90_000)
        wait_until_stable(page, lambda: page.locator(".jp-Notebook .jp-Cell").count(), settle=2.0, timeout=60)
        assert page.locator(".jp-Notebook .jp-Cell").count() >= 10, "the lecture did not open as a notebook"
        assert page.locator(".jp-Notebook .jp-MarkdownCell").count() >= 3
        tabs = page.evaluate("() => Array.from(document.querySelectorAll('.lm-TabBar-tab')).map(t => t.title)")
        validate = page.locator(".validate-button").count()
        create = any("Create Assignment" in t for t in tabs)
        assert "Jupyter news" not in page.inner_text("body"), "Lab asks to fetch news from jupyter.org"
        page.screenshot(path=str(OUT / f"lab_{role}.png"))
        if instructor:
            assert validate == 1 and create, f"instructor: Validate {validate}, tabs {tabs}"
        else:
            assert validate == 0 and not create, f"student: Validate {validate}, tabs {tabs}"
        guard.assert_clean()
    finally:
        ctx.close()
        stop_server(proc)
        shutil.copy(tmp_path / "lab.log", OUT / f"lab_{role}.log")
