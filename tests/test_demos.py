"""Tests for demos/widget_demos.py without a browser: every live widget class of dgm.widgets has a
demo, every demo builds and redraws when any of its (non-still) sliders moves, the notebooks and
the Voila command are what tests/test_browser.py relies on, and bad registrations are refused."""

import inspect
import json
import sys

import ipywidgets
import nbformat
import pytest
from conftest import REPO

import dgm.widgets

sys.path.insert(0, str(REPO / "demos"))  # the demo tooling is not part of the dgm package
import widget_demos as demos  # noqa: E402
from widget_demos import DEMOS, build, demo, notebook, voila_command, write_notebooks  # noqa: E402


def _live_widget_classes():
    """Classes of dgm.widgets' public API: the live widgets (the static twins are functions)."""
    return {name for name in dgm.widgets.__all__ if inspect.isclass(getattr(dgm.widgets, name))}


def test_every_live_widget_has_a_demo():
    shown = {d.widget for d in DEMOS.values()}
    assert {"LatentExplorer", "LatentPlane"} <= _live_widget_classes()
    missing = _live_widget_classes() - shown
    assert not missing, f"add a @demo entry to demos/widget_demos.py for {sorted(missing)}"
    for d in DEMOS.values():
        assert inspect.isclass(getattr(dgm.widgets, d.widget, None)), f"{d.name}: no class dgm.widgets.{d.widget}"


def _pictures(box):
    """The PNG bytes of every ipywidgets.Image inside ``box`` (depth-first)."""
    if isinstance(box, ipywidgets.Image):
        return [box.value]
    return [png for child in getattr(box, "children", ()) for png in _pictures(child)]


def _find(box, kind):
    """Every widget of type ``kind`` inside ``box``, depth-first (the order the browser shows)."""
    if isinstance(box, kind):
        return [box]
    return [w for child in getattr(box, "children", ()) for w in _find(child, kind)]


def _sliders(box):
    return _find(box, (ipywidgets.FloatSlider, ipywidgets.IntSlider, ipywidgets.FloatLogSlider))


def _by_description(box, kind, description):
    found = [w for w in _find(box, kind) if w.description == description]
    assert len(found) == 1, f"expected one {kind.__name__} {description!r}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("name", list(DEMOS))
def test_demo_builds_and_every_slider_redraws(name, one_thread):
    d = DEMOS[name]
    obj = build(name)
    assert isinstance(obj, getattr(dgm.widgets, d.widget))
    box = getattr(obj, "widget", obj)
    assert isinstance(box, ipywidgets.Widget)
    sliders = _sliders(box)
    assert [s for s in sliders if s.description not in d.still] or d.clicks or d.buttons or d.selects
    for i, s in enumerate(sliders):  # as tests/test_browser.py moves them: End/Home, then a drag
        if s.description in d.still:
            continue
        before = [bytes(png) for png in _pictures(box)]
        up = s.value < (s.min + s.max) / 2
        if i % 2 == 0:
            s.value = s.max if up else s.min
        else:
            target = s.min + (0.85 if up else 0.15) * (s.max - s.min)
            s.value = type(s.value)(round(target) if isinstance(s, ipywidgets.IntSlider) else target)
        assert [bytes(png) for png in _pictures(box)] != before, f"{name}: slider {s.description!r} did not redraw"
    for description, option in d.selects:
        dropdown = _by_description(box, ipywidgets.Dropdown, description)
        before = [bytes(png) for png in _pictures(box)]
        dropdown.label = option
        assert [bytes(png) for png in _pictures(box)] != before, f"{name}: dropdown {description!r} did not redraw"
    for description in d.buttons:
        button = _by_description(box, ipywidgets.Button, description)
        before = [bytes(png) for png in _pictures(box)]
        button.click()
        assert [bytes(png) for png in _pictures(box)] != before, f"{name}: button {description!r} did not redraw"


def test_latent_plane_demo_click_points_lie_in_the_axes(one_thread):
    """The browser clicks these fractions of the canvas: they must fall inside the axes."""
    d = DEMOS["latent_plane"]
    plane = build("latent_plane")
    (x0, y0), (x1, y1) = plane.ax.get_position().get_points()  # figure fractions, y upwards
    for fx, fy in d.clicks:
        assert x0 < fx < x1 and y0 < 1 - fy < y1, (fx, fy)


def test_notebooks_show_one_demo_each(tmp_path):
    paths = write_notebooks(tmp_path)
    assert [p.stem for p in paths] == list(DEMOS)
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        assert code == [f"from widget_demos import build\n\nbuild({path.stem!r})"]
    assert notebook("latent_plane").cells[0].source.startswith("# Chapter 2: LatentPlane")


def test_voila_command_serves_on_loopback_offline(tmp_path):
    cmd, env = voila_command(tmp_path / "nb", 8899, tmp_path / "tpl")
    assert "--Voila.ip=127.0.0.1" in cmd and "--port=8899" in cmd and "--template=dgm" in cmd
    allow = [a.split("=", 1)[1] for a in cmd if a.startswith("--VoilaConfiguration.extension_allowlist=")]
    assert allow == list(demos.VOILA_EXTENSIONS)
    assert env["JUPYTER_PATH"].split(":")[0] == str((tmp_path / "tpl").resolve())
    assert env["PYTHONPATH"].split(":")[0] == str(REPO / "demos")  # the kernels import widget_demos
    folder = tmp_path / "tpl" / "voila" / "templates" / "dgm"
    assert json.loads((folder / "conf.json").read_text()) == {"base_template": "lab"}
    # the CDN stylesheets of the lab template are exactly what the template strips
    lab = (demos._voila_lab_template()).read_text()
    for line in lab.splitlines():
        if "https://" in line and "<link" in line:
            assert line.strip() in (folder / "index.html.j2").read_text(), line


def test_bad_registrations_and_names_are_refused():
    with pytest.raises(ValueError, match="name"):
        build("no_such_demo")
    with pytest.raises(ValueError, match="already registered"):
        demo("latent_plane", chapter=2, widget="LatentPlane")
    with pytest.raises(ValueError, match="chapter"):
        demo("x_demo", chapter=0, widget="LatentPlane")
    with pytest.raises(ValueError, match="clicks"):
        demo("x_demo", chapter=1, widget="LatentPlane", clicks=((0.5, 1.5),))
    with pytest.raises(ValueError, match="name"):
        demo("bad name.ipynb", chapter=1, widget="LatentPlane")
    assert "x_demo" not in DEMOS
