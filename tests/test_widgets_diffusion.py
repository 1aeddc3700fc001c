"""Tests for the chapter-5 widgets in dgm.widgets (TimestepScrubber, GuidanceSlider): moving a
slider changes the picture, and what is drawn is the forward process computed here independently
(sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps with NumPy's cumprod), the given reverse
trajectory, or the given sampler's output; the static twins have one frame per position."""

import io
import re

import ipywidgets
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image as PILImage  # noqa: E402

from dgm.diffusion import NoiseSchedule  # noqa: E402
from dgm.widgets import GuidanceSlider, TimestepScrubber, as_html  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

T = 10


@pytest.fixture
def schedule():
    return NoiseSchedule(T, "linear", beta_start=0.01, beta_end=0.6)


def _forward_reference(schedule, x0, noise, k):
    """x_k of the forward process from the definition, in NumPy."""
    if k == 0:
        return x0.numpy()
    ab = np.cumprod(1 - np.linspace(0.01, 0.6, T))[k - 1]
    return np.sqrt(ab) * x0.numpy() + np.sqrt(1 - ab) * noise.numpy()


def _png_gray(value, scale):
    img = np.asarray(PILImage.open(io.BytesIO(bytes(value))).convert("L"), dtype=float)
    return img[::scale, ::scale] / 255.0


def _frames(html: str) -> int:
    return len(re.findall(r'frames\[\d+\] = "data:image/png', html))


# ----------------------------------------------------------------------------- 2-D points
@pytest.fixture
def points_scrubber(schedule):
    g = torch.Generator().manual_seed(0)
    x0 = 0.5 * torch.randn(40, 2, generator=g) + torch.tensor([1.0, -1.0])
    traj = torch.randn(T + 1, 30, 2, generator=g)
    return TimestepScrubber(schedule, x0, traj, seed=3), x0, traj


def test_points_scrubber_structure(points_scrubber):
    sc, x0, traj = points_scrubber
    assert isinstance(sc.widget, ipywidgets.VBox)
    assert isinstance(sc.t, ipywidgets.IntSlider) and (sc.t.min, sc.t.max, sc.t.value) == (0, T, T)
    assert isinstance(sc.image, ipywidgets.Image) and sc.image.format == "png"
    assert PILImage.open(io.BytesIO(sc.image.value)).format == "PNG"
    assert sc.kind == "points" and f"T = {T}" in sc.caption.value


def test_points_scrubber_slider_changes_picture_and_shows_the_states(points_scrubber):
    sc, x0, traj = points_scrubber
    before = sc.image.value
    sc.t.value = 0
    assert sc.image.value != before
    for k in (0, 1, 4, T):
        np.testing.assert_allclose(sc.forward_state(k).numpy(), _forward_reference(sc.schedule, x0, sc.noise, k),
                                   rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(sc.reverse_state(k), traj[k])
        sc.frame(k)
        np.testing.assert_allclose(sc._scatters[0].get_offsets(), sc.forward_state(k).numpy(), rtol=1e-6)
        np.testing.assert_allclose(sc._scatters[1].get_offsets(), traj[k].numpy(), rtol=1e-6)
    assert "t = 0 " in sc.caption.value or "t = 0&" in sc.caption.value
    # the forward noise is drawn once: the same k gives the same picture
    sc.t.value = 5
    png5 = sc.image.value
    sc.t.value = 6
    sc.t.value = 5
    assert sc.image.value == png5


def test_points_scrubber_animation(points_scrubber):
    sc, _, _ = points_scrubber
    html = as_html(sc.animation([T, 5, 0])).data
    assert "<script" in html and _frames(html) == 3


# ----------------------------------------------------------------------------- images
@pytest.fixture
def image_scrubber(schedule):
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(3, 1, 8, 8, generator=g) * 2 - 1
    traj = torch.randn(T + 1, 2, 1, 8, 8, generator=g).clamp(-1, 1)
    noise = torch.randn(3, 1, 8, 8, generator=g)
    return TimestepScrubber(schedule, x0, traj, noise=noise, scale=3), x0, traj, noise


def test_image_scrubber_shows_forward_row_and_reverse_row(image_scrubber):
    sc, x0, traj, noise = image_scrubber
    assert sc.kind == "images"
    before = sc.image.value
    sc.t.value = 2
    assert sc.image.value != before
    shown = _png_gray(sc.image.value, 3)
    assert shown.shape == (2 * 9 + 1, 3 * 9 + 1)  # 2 rows x 3 columns of 8x8 pictures, 1-px padding
    fwd = np.clip((_forward_reference(sc.schedule, x0, noise, 2) + 1) / 2, 0, 1)
    rev = np.clip((traj[2].numpy() + 1) / 2, 0, 1)
    for c in range(3):
        np.testing.assert_allclose(shown[1:9, 1 + 9 * c: 9 + 9 * c], fwd[c, 0], atol=1 / 255 + 1e-6)
    for c in range(2):
        np.testing.assert_allclose(shown[10:18, 1 + 9 * c: 9 + 9 * c], rev[c, 0], atol=1 / 255 + 1e-6)
    assert np.all(shown[10:18, 19:27] == 1.0)  # no third reverse sample: blank (white) tile
    html = as_html(sc.animation(range(T, -1, -2))).data
    assert _frames(html) == 6


def test_scrubber_validates(schedule):
    x0 = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="trajectory"):
        TimestepScrubber(schedule, x0, torch.zeros(T, 4, 2))
    with pytest.raises(ValueError, match="trajectory"):
        TimestepScrubber(schedule, x0, torch.zeros(T + 1, 4, 3))
    with pytest.raises(ValueError, match="x0"):
        TimestepScrubber(schedule, torch.zeros(4, 3), torch.zeros(T + 1, 4, 3))
    with pytest.raises(ValueError, match="noise"):
        TimestepScrubber(schedule, x0, torch.zeros(T + 1, 4, 2), noise=torch.zeros(3, 2))
    with pytest.raises(TypeError, match="schedule"):
        TimestepScrubber(object(), x0, torch.zeros(T + 1, 4, 2))
    sc = TimestepScrubber(schedule, x0, torch.zeros(T + 1, 4, 2))
    with pytest.raises(ValueError, match="k must"):
        sc.frame(T + 1)
    plt.close("all")


# ----------------------------------------------------------------------------- guidance slider
class FakeSampler:
    """sample_fn(w): images whose brightness grows with w, recording each call."""

    def __init__(self):
        self.calls = []
        self.base = torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(2)) * 0.5 - 0.5

    def __call__(self, w):
        self.calls.append(w)
        return (self.base + 0.2 * w).clamp(-1, 1)


def test_guidance_slider_resamples_and_caches():
    fn = FakeSampler()
    gs = GuidanceSlider(fn, scales=(0.0, 4.0, 0.5), value=1.0, labels=[3, 1, 4, 1], nrow=4, scale=2)
    assert isinstance(gs.w, ipywidgets.FloatSlider) and (gs.w.min, gs.w.max, gs.w.value) == (0.0, 4.0, 1.0)
    assert fn.calls == [1.0]
    before = gs.image.value
    gs.w.value = 3.0
    assert gs.image.value != before
    assert fn.calls == [1.0, 3.0]
    shown = _png_gray(gs.image.value, 2)
    expected = ((fn.base + 0.2 * 3.0).clamp(-1, 1) + 1) / 2
    for c in range(4):
        np.testing.assert_allclose(shown[1:7, 1 + 7 * c: 7 + 7 * c], expected[c, 0].numpy(), atol=1 / 255 + 1e-6)
    assert "w = 3.0" in gs.caption.value and "guided" in gs.caption.value
    gs.w.value = 1.0  # cached: no new call
    assert gs.image.value == before and fn.calls == [1.0, 3.0]
    html = as_html(gs.animation([0.0, 1.0, 3.0])).data
    assert _frames(html) == 3 and fn.calls == [1.0, 3.0, 0.0]


def test_guidance_slider_validates():
    fn = FakeSampler()
    with pytest.raises(TypeError, match="sample_fn"):
        GuidanceSlider(42)
    with pytest.raises(ValueError, match="scales"):
        GuidanceSlider(fn, scales=(2.0, 1.0, 0.5))
    with pytest.raises(ValueError, match="value"):
        GuidanceSlider(fn, scales=(0.0, 2.0, 0.5), value=3.0)
    with pytest.raises(ValueError, match="labels"):
        GuidanceSlider(fn, labels=[1, 2])
    with pytest.raises(ValueError, match="sample_fn must return"):
        GuidanceSlider(lambda w: torch.zeros(3, 6, 6))


def test_guidance_slider_rows_and_book_width():
    """Several rows of samples: the caption lists the labels row by row; the static twin's frames
    are at most 760 px wide (the book's text column), 560 px by default."""
    fn = FakeSampler()
    gs = GuidanceSlider(fn, labels=[3, 1, 4, 1], nrow=2, scale=2)
    assert "row by row: [3, 1, 4, 1]" in gs.caption.value
    assert _png_gray(gs.image.value, 2).shape[1] == 2 * 7 + 1       # two pictures per row
    anim = gs.animation([0.0, 2.0])
    fig = anim._fig
    assert fig.get_size_inches()[0] * fig.dpi == pytest.approx(560)
    assert gs.animation([0.0], width=9.5)._fig.get_size_inches()[0] * fig.dpi <= 760
