"""Tests for the chapter-8 widget dgm.widgets.BenchViewer on a synthetic bench: families of real
test digits picked by label (so that every family's grid is recognisable) with metric rows
chosen by hand, points of the precision/recall plane far apart. The grids are checked against
a tiling written here with explicit loops, the table's cells against strings written by hand,
the plane against the rows given (the artists' data, and the pixels of the rendered picture at
each family's (recall, precision), in the family's colour of matplotlib's cycle); the dropdowns
redraw; the static twin has one frame per pair, each the picture of its pair, every family in
it; bad arguments raise naming them."""

import base64
import io
import math
import re
from itertools import combinations

import ipywidgets
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from PIL import Image as PILImage  # noqa: E402

import dgm.data  # noqa: E402
from dgm.widgets import BenchViewer, as_html  # noqa: E402
from dgm.widgets.bench import KEYS, format_metric  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

# (recall, precision) of each family: far apart, none near the floor's
POINTS = {"vae": (0.85, 0.25), "gan": (0.2, 0.8), "flow": (0.5, 0.45), "pixelcnn": (0.15, 0.15),
          "diffusion": (0.55, 0.9), "latent diffusion": (0.9, 0.6)}
FLOOR_POINT = (0.95, 0.95)


@pytest.fixture(scope="module")
def digits():
    x, y = dgm.data.mnist("test")
    return x, y


def make_rows(names):
    rows = {}
    for i, name in enumerate(names):
        recall, precision = POINTS[name]
        rows[name] = {"bpd": None if name == "gan" else 0.12 + 0.01 * i,
                      "bpd_kind": None if name == "gan" else ("bound" if name == "vae" else "exact"),
                      "fid": 10.0 * (i + 1) + 0.04, "kid": 0.001 * (i + 1), "precision": precision,
                      "recall": recall, "memorisation": 0.9 + 0.01 * i, "sharpness": 0.05 + 0.01 * i,
                      "train_s": 60.0 + i, "steps": 1000 * (i + 1), "ms_per_sample": 0.5 * 10 ** i,
                      "params": 3 * 10 ** (i + 2)}
    return rows


def make_bench(digits, names, n=40, floor=True):
    """Family i shows test digits of label i (plus i / 50, so no two families share a pixel)."""
    x, y = digits
    samples = {name: (x[y == i][:n] * (1 - i / 50) + i / 50) for i, name in enumerate(names)}
    fl = {"fid": 0.5, "kid": -0.0002, "precision": FLOOR_POINT[1], "recall": FLOOR_POINT[0],
          "memorisation": 1.0, "sharpness": 0.07} if floor else None
    return make_rows(names), samples, fl


NAMES4 = ["vae", "gan", "flow", "diffusion"]


@pytest.fixture(scope="module")
def bench4(digits):
    return make_bench(digits, NAMES4)


def expected_grid(x, n_show):
    """The first n_show images tiled 8 per row, 1 white pixel between and around (empty: white)."""
    ncol = min(n_show, 8)
    nrow = math.ceil(n_show / ncol)
    h, w = x.shape[-2:]
    grid = np.ones((1 + nrow * (h + 1), 1 + ncol * (w + 1)))
    for k in range(min(n_show, len(x))):
        r, c = k // ncol, k % ncol
        for i in range(h):
            for j in range(w):
                grid[1 + r * (h + 1) + i, 1 + c * (w + 1) + j] = float(x[k, 0, i, j])
    return grid


def png(viewer):
    return bytes(viewer.image.value)


# ----------------------------------------------------------------------------- the live widget
def test_dropdowns_pick_the_families_and_redraw(bench4):
    rows, samples, floor = bench4
    viewer = BenchViewer(rows, samples, floor, n_show=12)
    assert isinstance(viewer.widget, ipywidgets.VBox)
    assert viewer.first.description == "family A" and viewer.second.description == "family B"
    assert list(viewer.first.options) == NAMES4 == list(viewer.second.options)
    assert (viewer.first.value, viewer.second.value) == ("vae", "gan") == viewer.shown
    for k, name in enumerate(("vae", "gan")):
        np.testing.assert_allclose(viewer._sheet.images[k].get_array(), expected_grid(samples[name], 12),
                                   atol=1e-6)
    before = png(viewer)
    viewer.second.value = "diffusion"
    assert viewer.shown == ("vae", "diffusion") and png(viewer) != before
    np.testing.assert_allclose(viewer._sheet.images[1].get_array(), expected_grid(samples["diffusion"], 12),
                               atol=1e-6)
    assert viewer._sheet.titles[1].get_text() == "B: diffusion"
    before = png(viewer)
    viewer.first.value = "flow"
    assert viewer.shown == ("flow", "diffusion") and png(viewer) != before
    np.testing.assert_allclose(viewer._sheet.images[0].get_array(), expected_grid(samples["flow"], 12),
                               atol=1e-6)
    assert "A: flow" in viewer.caption.value and "B: diffusion" in viewer.caption.value
    # the same family on both sides is allowed
    viewer.second.value = "flow"
    assert viewer.shown == ("flow", "flow")
    a, b = (viewer._sheet.images[k].get_array() for k in (0, 1))
    np.testing.assert_array_equal(a, b)


def test_start_pair_and_frames_of_other_pairs(bench4):
    rows, samples, floor = bench4
    viewer = BenchViewer(rows, samples, floor, first="diffusion", second="vae")
    assert viewer.shown == ("diffusion", "vae")
    assert BenchViewer(rows, samples, first="gan").shown == ("gan", "vae")   # B: the first other
    f1, f2 = viewer.frame("gan", "flow"), viewer.frame("gan", "diffusion")
    assert f1.shape == f2.shape and f1.shape[1] == 720 and f1.shape[2] == 3
    assert 0 <= f1.min() and f1.max() <= 1
    assert np.abs(f1 - f2).mean() > 1e-3
    np.testing.assert_array_equal(viewer.frame("gan", "flow"), f1)     # a picture of its arguments
    # a family with fewer samples than n_show: white cells for the rest
    few = dict(samples, gan=samples["gan"][:5])
    small = BenchViewer(rows, few, n_show=16, first="gan")
    grid = small._sheet.images[0].get_array()
    np.testing.assert_allclose(grid, expected_grid(few["gan"], 16), atol=1e-6)
    assert grid[30:, :].min() == 1.0                                    # the second row is blank


@pytest.mark.parametrize("width", [9.0, 6.0])
def test_nothing_overlaps_and_everything_is_inside_the_picture(digits, width):
    """Table cells, grid titles and the plane's labels lie inside the picture; table cells clear
    of each other, of the grids and of the plane (beside it from 8 inches on, below it before)."""
    rows, samples, floor = make_bench(digits, list(POINTS))
    rows["latent diffusion"]["bpd"], rows["latent diffusion"]["bpd_kind"] = None, None
    viewer = BenchViewer(rows, samples, floor, first="latent diffusion", second="gan", width=width)
    frame = viewer.frame()
    sheet = viewer._sheet
    renderer = sheet.fig.canvas.get_renderer()
    h, w = frame.shape[:2]
    assert w == round(80 * width)

    def box(artist):
        return artist.get_window_extent(renderer)

    texts = [t for line in sheet.cells for t in line if t.get_text()] + list(sheet.titles)
    texts += [t for t in sheet.pr.texts] + [sheet.pr.title, sheet.pr.xaxis.label, sheet.pr.yaxis.label]
    for t in texts:
        b = box(t)
        assert b.x0 >= 0 and b.y0 >= 0 and b.x1 <= w and b.y1 <= h, (t.get_text(), b)
    cells = [t for line in sheet.cells for t in line if t.get_text()]
    for i, a in enumerate(cells):
        for b in cells[i + 1:]:
            assert not box(a).overlaps(box(b)), (a.get_text(), b.get_text())
        for ax in (*sheet.grids, sheet.pr):
            assert not box(a).overlaps(ax.get_tightbbox(renderer)), (a.get_text(), ax)
    pr = sheet.pr.get_window_extent(renderer)
    table = [box(t) for t in cells]
    if width >= 8:
        assert max(b.x1 for b in table) < pr.x0
    else:
        assert min(b.y0 for b in table) > pr.y1


def test_the_table_shows_each_row_formatted(bench4):
    rows, samples, floor = bench4
    rows = dict(rows)
    rows["flow"] = dict(rows["flow"], fid=1234.5, kid=0.0000123, steps=None)
    del rows["flow"]["sharpness"]                                        # a missing key is None
    viewer = BenchViewer(rows, samples, floor, first="vae", second="gan")
    table = [[t.get_text() for t in line] for line in viewer._sheet.cells]
    assert table[0] == ["metric", "A: vae", "B: gan", "real data"]
    want = {  # metric: (vae, gan, real data), written out by hand
        "bits/dim": ("≤ 0.120 (bound)", "– (no likelihood)", "–"),
        "classifier-FID": ("10.0", "20.0", "0.5"),
        "KID": ("0.001", "0.002", "-2.00e-04"),
        "precision": ("0.25", "0.80", "0.95"),
        "recall": ("0.85", "0.20", "0.95"),
        "train / held-out": ("0.90", "0.91", "1.00"),
        "sharpness": ("0.05", "0.06", "0.07"),
        "train s": ("60.0", "61.0", "–"),
        "train steps": ("1,000", "2,000", "–"),
        "ms / sample": ("0.5", "5.00", "–"),
        "parameters": ("300", "3000", "–"),
    }
    assert [line[0] for line in table[1:]] == list(want)
    for line in table[1:]:
        assert tuple(line[1:]) == want[line[0]], line
    assert viewer.caption.value == (
        "<b>A: vae</b>: bits/dim ≤ 0.120 (bound), classifier-FID 10.0, precision 0.25, recall 0.85"
        " &nbsp;·&nbsp; <b>B: gan</b>: bits/dim – (no likelihood), classifier-FID 20.0, "
        "precision 0.80, recall 0.20 &nbsp;·&nbsp; <b>real data</b>: bits/dim –, "
        "classifier-FID 0.5, precision 0.95, recall 0.95")
    viewer.first.value = "flow"
    table = {line[0].get_text(): line[1].get_text() for line in viewer._sheet.cells[1:]}
    assert table["bits/dim"] == "0.140 (exact)" and table["classifier-FID"] == "1234"
    assert table["KID"] == "1.23e-05" and table["train steps"] == "–" and table["sharpness"] == "–"
    assert table["ms / sample"] == "50.0" and table["train s"] == "62.0"
    assert table["parameters"] == "30.0 k"
    viewer.first.value = "diffusion"
    assert viewer._sheet.cells[-1][1].get_text() == "300 k"
    assert format_metric({"params": 1_234_567}, "params") == "1.23 M"
    assert format_metric({"params": 999_999}, "params") == "1.00 M"
    # no floor: an empty column
    viewer = BenchViewer(rows, samples)
    assert [line[3].get_text() for line in viewer._sheet.cells] == [""] * (len(want) + 1)
    assert "real data" not in viewer.caption.value
    with pytest.raises(ValueError, match="key"):
        format_metric(rows["vae"], "bpd_kind")


def test_compare_gives_the_two_rows(bench4):
    rows, samples, floor = bench4
    viewer = BenchViewer(rows, samples, floor)
    got = viewer.compare("gan", "diffusion")
    assert list(got) == ["gan", "diffusion"]
    for name in got:
        assert set(got[name]) == set(KEYS)
        for key in KEYS:
            assert got[name][key] == rows[name].get(key), (name, key)
    assert list(viewer.compare()) == ["vae", "gan"]                 # the dropdowns' pair
    viewer.first.value = "flow"
    assert list(viewer.compare()) == ["flow", "gan"]
    assert list(viewer.compare("flow", "flow")) == ["flow"]
    got["gan"]["fid"] = -1.0                                          # a copy: the viewer is intact
    assert viewer.compare("gan", "vae")["gan"]["fid"] == rows["gan"]["fid"]
    with pytest.raises(ValueError, match="first"):
        viewer.compare("bigan", "vae")
    with pytest.raises(ValueError, match="second"):
        viewer.frame("vae", "bigan")


# ----------------------------------------------------------------------------- the P/R plane
def _pixel(frame, ax, point):
    """The colour of the rendered picture at a data point of ``ax`` (3x3 pixels' median)."""
    x, y = ax.transData.transform(point)
    row, col = int(round(frame.shape[0] - y)), int(round(x))
    return np.median(frame[row - 1:row + 2, col - 1:col + 2].reshape(-1, 3), axis=0)


def test_pr_plane_puts_each_family_at_its_recall_and_precision(digits):
    names = list(POINTS)
    rows, samples, floor = make_bench(digits, names)
    viewer = BenchViewer(rows, samples, floor, first="gan", second="diffusion")
    frame = viewer.frame()
    ax = viewer._sheet.pr
    lines = {line.get_label(): line for line in ax.lines}
    assert set(lines) == set(names) | {"real data"}
    for i, name in enumerate(names):
        np.testing.assert_allclose(lines[name].get_xydata(), [POINTS[name]])
        # the pixels: the family's colour (matplotlib's cycle, in the order of rows) at its point
        np.testing.assert_allclose(_pixel(frame, ax, POINTS[name]), to_rgb(f"C{i}"), atol=0.02)
    np.testing.assert_allclose(lines["real data"].get_xydata(), [FLOOR_POINT])
    np.testing.assert_allclose(_pixel(frame, ax, FLOOR_POINT), (0, 0, 0), atol=0.02)
    assert lines["real data"].get_marker() == "*"
    sizes = {name: lines[name].get_markersize() for name in names}
    assert min(sizes["gan"], sizes["diffusion"]) > max(s for n, s in sizes.items()
                                                      if n not in ("gan", "diffusion"))
    # an empty spot of the plane is white, and a pick moves the highlight, not the points
    np.testing.assert_allclose(_pixel(frame, ax, (0.35, 0.62)), (1, 1, 1), atol=0.02)
    viewer.first.value = "vae"
    lines = {line.get_label(): line for line in ax.lines}
    assert lines["vae"].get_markersize() > lines["gan"].get_markersize()
    for name in names:
        np.testing.assert_allclose(lines[name].get_xydata(), [POINTS[name]])


def test_a_family_without_precision_recall_is_listed_not_drawn(bench4):
    rows, samples, _ = bench4
    rows = dict(rows, flow=dict(rows["flow"], precision=None, recall=None))
    viewer = BenchViewer(rows, samples)
    labels = [line.get_label() for line in viewer._sheet.pr.lines]
    assert labels == ["vae", "gan", "diffusion"]                      # no floor, no flow
    assert "flow" in viewer._sheet.notes.get_text()


# ----------------------------------------------------------------------------- static twin
def _frames(html):
    return [PILImage.open(io.BytesIO(base64.b64decode(f.replace("\\\n", ""))))
            for f in re.findall(r'frames\[\d+\] = "data:image/png;base64,([^"]*)"', html)]


def test_static_twin_has_a_frame_per_pair_and_every_family(digits):
    names = list(POINTS)
    rows, samples, floor = make_bench(digits, names)
    viewer = BenchViewer(rows, samples, floor)
    anim = viewer.gallery()
    html = as_html(anim).data
    pairs = list(combinations(names, 2))
    frames = _frames(html)
    assert "<script" in html and len(frames) == len(pairs) == 15
    assert {name for pair in pairs for name in pair} == set(names)
    assert len(html) < 300_000, len(html)
    small = BenchViewer(rows, samples, floor, n_show=16)              # the twin's 16 digits a grid
    pictures = {pair: small.frame(*pair) for pair in pairs}
    for k, frame in enumerate(frames):
        assert frame.mode == "P" and frame.size[0] == 720
        rgb = np.asarray(frame.convert("RGB"), dtype=float) / 255
        diffs = {pair: np.abs(rgb - pictures[pair]).mean() for pair in pairs}
        best = min(diffs, key=diffs.get)
        assert best == pairs[k], (k, best)
        assert diffs[pairs[k]] < 0.01
        # the grids are the pair's own digits: the top-left cell of grid A is family A's first
        a = pairs[k][0]
        assert np.abs(rgb - small.frame(pairs[k][1], a)).mean() > diffs[pairs[k]] + 0.002
    # given pairs, in their order, and a narrower picture
    anim = viewer.gallery([("gan", "vae"), ("flow", "flow")], n_show=8, width=6.0)
    frames = _frames(as_html(anim).data)
    assert len(frames) == 2 and frames[0].size[0] == 480 and frames[0].size[1] > 480


def test_static_twin_refuses_bad_pairs(bench4):
    rows, samples, floor = bench4
    viewer = BenchViewer(rows, samples, floor)
    with pytest.raises(ValueError, match=r"pairs\[1\]"):
        viewer.gallery([("vae", "gan"), ("vae",)])
    with pytest.raises(ValueError, match=r"pairs\[0\]\[1\]"):
        viewer.gallery([("vae", "bigan")])
    with pytest.raises(ValueError, match="pairs"):
        viewer.gallery([])
    with pytest.raises(TypeError, match="pairs"):
        viewer.gallery("vae")
    with pytest.raises(ValueError, match=r"pairs\[0\]"):
        viewer.gallery(["vg"])
    for n in (0, 65, 2.0):
        with pytest.raises(ValueError, match="n_show"):
            viewer.gallery(n_show=n)
    with pytest.raises(ValueError, match="width"):
        viewer.gallery(width=-1)


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_naming_them(bench4):
    rows, samples, floor = bench4
    with pytest.raises(TypeError, match="rows"):
        BenchViewer([("vae", rows["vae"])], samples)
    with pytest.raises(TypeError, match="samples"):
        BenchViewer(rows, list(samples.values()))
    with pytest.raises(ValueError, match="'diffusion'"):
        BenchViewer(rows, {k: v for k, v in samples.items() if k != "diffusion"})
    with pytest.raises(ValueError, match="'made'"):
        BenchViewer(rows, dict(samples, made=samples["vae"]))
    with pytest.raises(ValueError, match="at least 2"):
        BenchViewer({"vae": rows["vae"]}, {"vae": samples["vae"]})
    with pytest.raises(ValueError, match="real data"):
        BenchViewer(dict(rows, **{"real data": rows["vae"]}), dict(samples, **{"real data": samples["vae"]}))
    with pytest.raises(ValueError, match="names"):
        BenchViewer(dict(rows, **{"": rows["vae"]}), dict(samples, **{"": samples["vae"]}))

    def bad_row(name="vae", **change):
        return dict(rows, **{name: dict(rows[name], **change)})

    cases = [  # (rows, what the message names)
        (bad_row(fid_score=3.0), r"unknown keys \['fid_score'\]"),
        (bad_row(bpd_kind="approx"), r"rows\['vae'\]\['bpd_kind'\]"),
        (bad_row(bpd_kind=None), "bpd_kind"),                       # a number without its kind
        (bad_row("gan", bpd_kind="exact"), "bpd_kind"),              # a kind without a number
        (bad_row(precision=1.5), r"rows\['vae'\]\['precision'\] must lie in \[0, 1\]"),
        (bad_row(recall=-0.1), r"\['recall'\]"),
        (bad_row(fid=float("nan")), r"\['fid'\] must be a finite number"),
        (bad_row(fid=-1.0), r"\['fid'\] must be >= 0"),
        (bad_row(kid="small"), r"\['kid'\]"),
        (bad_row(train_s=True), r"\['train_s'\]"),
        (bad_row(steps=1.5), r"\['steps'\] must be an int"),
        (bad_row(steps=-3), r"\['steps'\]"),
        (bad_row(params=2.5e6), r"\['params'\] must be an int"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            BenchViewer(bad, samples)
    with pytest.raises(TypeError, match=r"rows\['vae'\]"):
        BenchViewer(dict(rows, vae=[0.1, 0.2]), samples)
    with pytest.raises(ValueError, match=r"floor\['precision'\]"):
        BenchViewer(rows, samples, dict(floor, precision=2.0))
    with pytest.raises(TypeError, match="floor"):
        BenchViewer(rows, samples, [0.5])
    x = samples["vae"]
    image_cases = [
        (TypeError, x.numpy(), "torch.Tensor"),
        (TypeError, (x * 255).to(torch.uint8), "floating-point"),
        (ValueError, x[:, 0], r"\(N, 1, H, W\)"),
        (ValueError, x[:0], "N >= 1"),
        (ValueError, x * float("nan"), "NaN"),
        (ValueError, x * 2 - 0.5, r"\[0, 1\]"),
    ]
    for error, bad, message in image_cases:
        with pytest.raises(error, match=r"samples\['vae'\].*" + message):
            BenchViewer(rows, dict(samples, vae=bad))
    with pytest.raises(ValueError, match="one image size"):
        BenchViewer(rows, dict(samples, vae=torch.rand(4, 1, 8, 8)))
    for n in (0, 65, 1.5, True):
        with pytest.raises(ValueError, match="n_show"):
            BenchViewer(rows, samples, n_show=n)
    with pytest.raises(ValueError, match="first"):
        BenchViewer(rows, samples, first="bigan")
    with pytest.raises(ValueError, match="second"):
        BenchViewer(rows, samples, second=3)
    with pytest.raises(ValueError, match="width"):
        BenchViewer(rows, samples, width=0)


def test_numbers_of_other_kinds_are_accepted(bench4):
    rows, samples, _ = bench4
    row = dict(rows["vae"], fid=np.float32(12.5), kid=torch.tensor(0.25), steps=np.int64(7),
               precision=np.array(0.5))
    viewer = BenchViewer(dict(rows, vae=row), samples)
    got = viewer.compare("vae", "gan")["vae"]
    assert got["fid"] == 12.5 and got["kid"] == 0.25 and got["steps"] == 7 and got["precision"] == 0.5
    assert type(got["fid"]) is float and type(got["steps"]) is int
