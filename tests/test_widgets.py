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


# ----------------------------------------------------------------------------- 2-D code space (VAE)
import io  # noqa: E402

from matplotlib.backend_bases import MouseButton, MouseEvent  # noqa: E402

from dgm.vae import VAE  # noqa: E402
from dgm.widgets import LatentPlane, manifold_grid, path_animation  # noqa: E402


@pytest.fixture
def vae2():
    """A tiny untrained VAE with a 2-D code on 8x8 pictures, and 40 codes with labels."""
    torch.manual_seed(1)
    vae = VAE("mlp", code_dim=2, in_shape=(1, 8, 8), hidden=(16,))
    codes = torch.randn(40, 2)
    labels = torch.arange(40) % 4
    return vae, codes, labels


@pytest.fixture
def plane(vae2):
    vae, codes, labels = vae2
    return LatentPlane(vae, codes, labels, extent=(-3, 3, -2, 2))


def _mean_at(vae, a, b) -> np.ndarray:
    """E[x|z] at z = (a, b) computed here, independently of dgm.widgets: sigmoid of the logits."""
    with torch.no_grad():
        return torch.sigmoid(vae.decode(torch.tensor([[a, b]], dtype=torch.float32)))[0, 0].numpy()


def _png_pixels(value, scale: int) -> np.ndarray:
    """The picture in a PNG image widget, one value per original pixel, in [0, 255]."""
    img = np.asarray(PILImage.open(io.BytesIO(bytes(value))).convert("L"), dtype=float)
    return img[::scale, ::scale]


def _mouse(plane, name, a, b, button=None, buttons=None):
    """Fire a synthetic matplotlib mouse event at data point (a, b) of the plane's axes."""
    x, y = plane.ax.transData.transform((a, b))
    kwargs = {"buttons": buttons} if buttons is not None else {}
    event = MouseEvent(name, plane.figure.canvas, x, y, button=button, **kwargs)
    plane.figure.canvas.callbacks.process(name, event)
    return event


def _press(plane, a, b, button=MouseButton.LEFT):
    return _mouse(plane, "button_press_event", a, b, button=button)


def test_plane_structure(plane, vae2):
    import ipympl.backend_nbagg

    assert isinstance(plane.widget, ipywidgets.VBox)
    assert isinstance(plane.canvas, ipympl.backend_nbagg.Canvas) and plane.figure.canvas is plane.canvas
    assert plane.canvas in plane.widget.children[0].children
    assert isinstance(plane.image, ipywidgets.Image) and plane.image.format == "png"
    assert isinstance(plane.z1, ipywidgets.FloatSlider) and (plane.z1.min, plane.z1.max) == (-3, 3)
    assert isinstance(plane.z2, ipywidgets.FloatSlider) and (plane.z2.min, plane.z2.max) == (-2, 2)
    assert plane.ax.get_xlim() == (-3, 3) and plane.ax.get_ylim() == (-2, 2)
    torch.testing.assert_close(plane.point(), torch.zeros(2))  # starts at the prior mean
    # every code is drawn, in one colour per label
    offsets = np.concatenate([c.get_offsets() for c in plane.ax.collections])
    assert len(offsets) == 40 and len(plane.ax.collections) == 4
    np.testing.assert_allclose(np.sort(offsets[:, 0]), np.sort(vae2[1][:, 0].numpy()), rtol=1e-6)
    # creating the canvas widget did not switch the notebook's pyplot backend to ipympl
    assert "ipympl" not in matplotlib.get_backend() and "widget" not in matplotlib.get_backend()


def test_plane_click_moves_point_and_redecodes(plane, vae2):
    vae = vae2[0]
    before = plane.image.value
    a, b = 1.25, -0.75
    _press(plane, a, b)
    torch.testing.assert_close(plane.point(), torch.tensor([a, b]), atol=1e-5, rtol=0)
    assert plane.z1.value == pytest.approx(a, abs=1e-5) and plane.z2.value == pytest.approx(b, abs=1e-5)
    np.testing.assert_allclose(np.asarray(plane.marker.get_data()).ravel(), [a, b], atol=1e-5)
    assert plane.image.value != before
    expected = _mean_at(vae, a, b)
    np.testing.assert_allclose(plane.decoded()[0].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(_png_pixels(plane.image.value, plane.scale), np.round(expected * 255), atol=1)
    # the picture really depends on z: the one shown at the start (z = 0) differs
    assert np.abs(_png_pixels(before, plane.scale) - np.round(expected * 255)).max() > 1


def test_plane_drag_follows_the_mouse_only_while_the_button_is_held(plane):
    _press(plane, -1.0, 1.0)
    for a, b in [(-0.5, 0.5), (0.0, 0.0), (2.0, -1.5)]:
        _mouse(plane, "motion_notify_event", a, b, buttons=[MouseButton.LEFT])
        torch.testing.assert_close(plane.point(), torch.tensor([a, b]), atol=1e-5, rtol=0)
    shown = plane.image.value
    _mouse(plane, "button_release_event", 2.0, -1.5, button=MouseButton.LEFT)
    _mouse(plane, "motion_notify_event", -2.5, 1.5)
    torch.testing.assert_close(plane.point(), torch.tensor([2.0, -1.5]), atol=1e-5, rtol=0)
    assert plane.image.value == shown
    assert (plane.z1.value, plane.z2.value) == pytest.approx((2.0, -1.5), abs=1e-5)


def test_plane_motion_without_press_and_stray_clicks_are_ignored(plane):
    plane.set_point(0.5, 0.5)
    shown = plane.image.value
    _mouse(plane, "motion_notify_event", -2.0, -1.0)  # hovering, no button
    _press(plane, -2.0, -1.0, button=MouseButton.RIGHT)  # not the left button
    # a left click outside the axes (the figure's bottom-left corner, on the tick labels)
    outside = MouseEvent("button_press_event", plane.figure.canvas, 2, 2, button=MouseButton.LEFT)
    assert outside.inaxes is None
    plane.figure.canvas.callbacks.process("button_press_event", outside)
    _mouse(plane, "motion_notify_event", -2.0, -1.0, buttons=[MouseButton.LEFT])
    torch.testing.assert_close(plane.point(), torch.tensor([0.5, 0.5]))
    assert plane.image.value == shown


def test_plane_sliders_redraw(plane, vae2):
    vae = vae2[0]
    before = plane.image.value
    plane.z1.value = -2.0
    plane.z2.value = 1.5
    torch.testing.assert_close(plane.point(), torch.tensor([-2.0, 1.5]))
    np.testing.assert_allclose(np.asarray(plane.marker.get_data()).ravel(), [-2.0, 1.5])
    assert plane.image.value != before
    np.testing.assert_allclose(
        _png_pixels(plane.image.value, plane.scale), np.round(_mean_at(vae, -2.0, 1.5) * 255), atol=1
    )


def test_plane_browser_click_reaches_the_handlers(plane):
    """The path a real click takes: ipympl's front-end message -> FigureManager -> on_press."""
    x, y = plane.ax.transData.transform((-1.5, 0.25))
    height = plane.canvas.get_renderer().height  # the browser counts y from the top
    msg = {"type": "button_press", "x": x, "y": height - y, "button": 0, "buttons": 1, "modifiers": []}
    plane.canvas._handle_message(plane.canvas, msg, [])
    torch.testing.assert_close(plane.point(), torch.tensor([-1.5, 0.25]), atol=1e-4, rtol=0)


def test_plane_accepts_callables_and_validates(vae2):
    vae, codes, labels = vae2
    calls = []

    def decoder(z):
        calls.append(z.clone())
        return torch.sigmoid(vae.decode(z))

    p = LatentPlane(decoder, codes.numpy())  # default extent: the codes' box, widened
    lo, hi = codes.min(0).values, codes.max(0).values
    assert p.extent[0] < lo[0] and p.extent[1] > hi[0] and p.extent[2] < lo[1] and p.extent[3] > hi[1]
    p.set_point(0.1, -0.2)
    torch.testing.assert_close(calls[-1], torch.tensor([[0.1, -0.2]]))
    with pytest.raises(ValueError, match="z1"):
        p.set_point(100.0, 0.0)
    with pytest.raises(ValueError, match="code_dim"):
        LatentPlane(VAE("mlp", code_dim=3, in_shape=(1, 8, 8), hidden=(8,)), codes)
    with pytest.raises(ValueError, match="codes"):
        LatentPlane(vae, torch.randn(5, 3))
    with pytest.raises(ValueError, match="labels"):
        LatentPlane(vae, codes, labels[:3])
    with pytest.raises(ValueError, match="extent"):
        LatentPlane(vae, codes, extent=(1, -1, 0, 1))


def test_manifold_grid_tiles_are_decoded_grid_points(vae2):
    vae = vae2[0]
    n, (x0, x1, y0, y1) = 4, (-2.0, 1.0, -1.0, 3.0)
    ax = manifold_grid(vae, extent=(x0, x1, y0, y1), n=n)
    mosaic = np.asarray(ax.get_images()[0].get_array())
    assert mosaic.shape == (n * 8, n * 8)
    # tile (row r from the top, column c) shows z = (x0 + c dx, y1 - r dy)
    dx, dy = (x1 - x0) / (n - 1), (y1 - y0) / (n - 1)
    for r, c in [(0, 0), (1, 3), (3, 2)]:
        tile = mosaic[r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8]
        np.testing.assert_allclose(tile, _mean_at(vae, x0 + c * dx, y1 - r * dy), atol=1e-5)
    # placed in code coordinates: tile centres sit on the grid points
    left, right, bottom, top = ax.get_images()[0].get_extent()
    assert (left, right, bottom, top) == pytest.approx((x0 - dx / 2, x1 + dx / 2, y0 - dy / 2, y1 + dy / 2))
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="code_dim"):
        manifold_grid(VAE("mlp", code_dim=3, in_shape=(1, 8, 8), hidden=(8,)))
    with pytest.raises(ValueError, match="n must"):
        manifold_grid(vae, n=1)


def test_path_animation_has_one_frame_per_point(vae2):
    vae, codes, labels = vae2
    t = torch.linspace(0, 1, 6)[:, None]
    path = (1 - t) * torch.tensor([-2.0, -1.0]) + t * torch.tensor([2.0, 1.5])
    anim = path_animation(vae, path, codes, labels)
    left, right = anim._fig.axes
    np.testing.assert_allclose(np.asarray(right.get_images()[0].get_array()), _mean_at(vae, -2.0, -1.0), atol=1e-5)
    html = as_html(anim).data
    assert _frames(html) == 6
    with pytest.raises(ValueError, match="path"):
        path_animation(vae, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="labels"):
        path_animation(vae, path, labels=labels)


def test_vae_in_the_code_space_tools():
    """A VAE through as_autoencoder() in LatentExplorer, and directly (decode_mean) in traversal_grid."""
    torch.manual_seed(2)
    vae = VAE("mlp", code_dim=3, in_shape=(1, 8, 8), hidden=(16,))
    images = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        mu = vae.encode(images)[0]
    exp = LatentExplorer(vae.as_autoencoder(), images, n_sliders=3)
    torch.testing.assert_close(exp.code(), mu[0])
    exp.sliders[0].value = exp.sliders[0].max
    z = mu[0].clone()
    z[exp.dims[0]] = exp.sliders[0].max
    with torch.no_grad():
        expected = torch.sigmoid(vae.decode(z[None]))[0, 0].numpy()
    shown = _png_pixels(exp.image.value, exp.scale)  # panels x_a | f(z) | x_b, 1-px borders
    np.testing.assert_allclose(shown[1:9, 10:18], np.round(expected * 255), atol=1)
    ax = traversal_grid(vae, mu[0], [0], [0.0, 1.0])  # a VAE shows pictures E[x|z], not logits
    tile = np.asarray(ax.get_images()[0].get_array())[1:9, 1:9]
    z0 = mu[0].clone()
    z0[0] = 0.0
    with torch.no_grad():
        np.testing.assert_allclose(tile, torch.sigmoid(vae.decode(z0[None]))[0, 0].numpy(), atol=1e-5)
    plt.close(ax.figure)


def test_as_html_player_loads_nothing_from_another_host(setup):
    """matplotlib's player links Font Awesome from a CDN; as_html swaps in inline SVG icons."""
    model, _ = setup
    html = as_html(traversal_animation(model, torch.zeros(6), 3, [-1.0, 0.0, 1.0])).data
    assert not re.findall(r"""(?:src|href)=["']?(?:https?:)?//""", html)
    assert "font-awesome" not in html and 'class="fa ' not in html
    assert html.count("<svg") == 9 == html.count("<button")  # one icon per player button
    assert len(re.findall(r"data:image/png;base64", html)) == 3  # the frames are still inline
