"""Tests for dgm.widgets: the live explorer reacts to every control (checked against model.encode
called directly), and the static twins contain the expected number of decoded pictures/frames."""

import re

import ipywidgets
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from IPython.display import HTML  # noqa: E402
from PIL import Image as PILImage  # noqa: E402

from dgm.ae import MLPAE  # noqa: E402
from dgm.widgets import (  # noqa: E402
    LatentExplorer,
    as_html,
    interpolation_animation,
    traversal_animation,
    traversal_grid,
)


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = MLPAE((1, 8, 8), code_dim=6, hidden=(32,))
    images = torch.rand(10, 1, 8, 8)
    return model, images


@pytest.fixture
def explorer(setup):
    model, images = setup
    return LatentExplorer(model, images, labels=list(range(10)), n_sliders=4)


def _encode(model, x):
    with torch.no_grad():
        return model.encode(x)


def test_explorer_structure(explorer):
    assert isinstance(explorer.widget, ipywidgets.VBox)
    assert isinstance(explorer.image, ipywidgets.Image) and explorer.image.format == "png"
    assert len(explorer.sliders) == 4 == len(explorer.dims)
    assert all(isinstance(s, ipywidgets.FloatSlider) for s in explorer.sliders)
    assert isinstance(explorer.index, ipywidgets.IntSlider) and explorer.index.max == 9
    assert isinstance(explorer.t, ipywidgets.FloatSlider) and (explorer.t.min, explorer.t.max) == (0, 1)
    png = PILImage.open(__import__("io").BytesIO(explorer.image.value))
    assert png.format == "PNG" and png.width > png.height  # panels side by side
    assert explorer.code().shape == (6,)


def test_default_dims_are_the_most_varying(setup):
    model, images = setup
    exp = LatentExplorer(model, images, n_sliders=3)
    spread = _encode(model, images).std(0)
    assert sorted(exp.dims) == sorted(torch.topk(spread, 3).indices.tolist())


def test_moving_a_slider_redecodes(explorer, setup):
    model, images = setup
    before = explorer.image.value
    s = explorer.sliders[0]
    new = s.min + 0.9 * (s.max - s.min)
    assert abs(new - s.value) > 1e-3
    s.value = new
    assert explorer.image.value != before
    z = explorer.code()
    assert z[explorer.dims[0]].item() == pytest.approx(new, abs=1e-6)
    # the other coordinates are still image 0's code
    others = [d for d in range(6) if d != explorer.dims[0]]
    torch.testing.assert_close(z[others], _encode(model, images[:1])[0, others])


def test_picking_an_image_resets_the_sliders_to_its_code(explorer, setup):
    model, images = setup
    explorer.sliders[1].value = explorer.sliders[1].max  # move away first
    before = explorer.image.value
    explorer.index.value = 3
    assert explorer.image.value != before
    z3 = _encode(model, images[3:4])[0]
    torch.testing.assert_close(explorer.code(), z3)
    for d, s in zip(explorer.dims, explorer.sliders):
        assert s.value == pytest.approx(z3[d].item(), abs=1e-6)


def test_interpolation_slider(explorer, setup):
    model, images = setup
    explorer.index.value = 2
    explorer.other.value = 7
    z2, z7 = _encode(model, images[[2, 7]])
    before = explorer.image.value
    explorer.t.value = 1.0
    assert explorer.image.value != before
    torch.testing.assert_close(explorer.code(), z7)
    explorer.t.value = 0.25
    torch.testing.assert_close(explorer.code(), 0.75 * z2 + 0.25 * z7)
    for d, s in zip(explorer.dims, explorer.sliders):
        assert s.value == pytest.approx(explorer.code()[d].item(), abs=1e-6)
    explorer.t.value = 0.0
    torch.testing.assert_close(explorer.code(), z2)


def test_explorer_restores_training_mode_and_validates(setup):
    model, images = setup
    model.train()
    LatentExplorer(model, images)
    assert model.training
    with pytest.raises(ValueError, match="labels"):
        LatentExplorer(model, images, labels=[0, 1])
    with pytest.raises(ValueError, match="dims"):
        LatentExplorer(model, images, dims=[0, 6])
    with pytest.raises(TypeError, match="model"):
        LatentExplorer(object(), images)


# ----------------------------------------------------------------------------- static twins
class CountingDecoder:
    """A decoder callable that records how many codes it decoded (and is not a Module)."""

    def __init__(self, model):
        self.model, self.seen = model, []

    def __call__(self, z):
        self.seen.append(z.clone())
        return self.model.decode(z)


def test_traversal_grid_decodes_every_dim_value_pair(setup):
    model, _ = setup
    z = torch.randn(6)
    dims, values = [0, 2, 5], [-1.0, 0.0, 0.5, 2.0]
    dec = CountingDecoder(model)
    ax = traversal_grid(dec, z, dims, values)
    seen = torch.cat(dec.seen)
    assert len(seen) == len(dims) * len(values) == 12
    # row r, column c: z with z[dims[r]] = values[c]
    for r, d in enumerate(dims):
        for c, v in enumerate(values):
            expected = z.clone()
            expected[d] = v
            torch.testing.assert_close(seen[r * len(values) + c], expected)
    img = ax.get_images()[0].get_array()
    assert img.shape[:2] == (len(dims) * 9 + 1, len(values) * 9 + 1)  # 8x8 pictures, 1-px padding
    assert [t.get_text() for t in ax.get_yticklabels()] == ["z[0]", "z[2]", "z[5]"]
    plt.close(ax.figure)


def test_traversal_grid_accepts_the_model_itself(setup):
    model, _ = setup
    ax = traversal_grid(model, torch.zeros(1, 6), [1], [0.0, 1.0])
    assert ax.get_images()[0].get_array().shape[:2] == (10, 19)
    plt.close(ax.figure)


def _frames(html: str) -> int:
    return len(re.findall(r'frames\[\d+\] = "data:image/png', html))


def test_interpolation_animation_html(setup):
    model, images = setup
    z = _encode(model, images[:2])
    n_before = len(plt.get_fignums())
    anim = interpolation_animation(model, z[0], z[1], steps=5)
    assert len(plt.get_fignums()) == n_before + 1
    out = as_html(anim)
    assert isinstance(out, HTML)
    assert "<script" in out.data
    assert _frames(out.data) == 5
    assert len(plt.get_fignums()) == n_before  # the figure was closed


def test_interpolation_frames_are_the_decoded_path(setup):
    model, images = setup
    z = _encode(model, images[:2])
    dec = CountingDecoder(model)
    anim = interpolation_animation(dec, z[0], z[1], steps=4)
    seen = torch.cat(dec.seen)
    ts = torch.tensor([0, 1 / 3, 2 / 3, 1])[:, None]
    torch.testing.assert_close(seen, (1 - ts) * z[0] + ts * z[1])
    # the first frame shows f(z_a)
    shown = np.asarray(anim._fig.axes[0].get_images()[0].get_array())
    np.testing.assert_allclose(shown, model.decode(z[:1]).detach()[0, 0].numpy(), atol=1e-6)
    as_html(anim)
    with pytest.raises(ValueError, match="z_b"):
        interpolation_animation(model, z[0], torch.zeros(5))
    with pytest.raises(ValueError, match="steps"):
        interpolation_animation(model, z[0], z[1], steps=1)


def test_traversal_animation_html(setup):
    model, _ = setup
    values = np.linspace(-2, 2, 7)
    html = as_html(traversal_animation(model, torch.zeros(6), 3, values)).data
    assert "<script" in html and _frames(html) == 7
    with pytest.raises(ValueError, match="dim"):
        traversal_animation(model, torch.zeros(6), 6, values)
