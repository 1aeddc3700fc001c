"""Tests for dgm.plot: grids by manual NumPy slicing, densities against torch.distributions.

Headless: the Agg backend is selected before pyplot is imported.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy.signal import lfilter  # noqa: E402

from dgm.plot import density2d, image_grid, loss_curves, make_grid, scatter2d  # noqa: E402
from dgm.train import History  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures(monkeypatch):
    def no_show(*args, **kwargs):
        raise AssertionError("plt.show() must never be called by dgm.plot")

    monkeypatch.setattr(plt, "show", no_show)
    yield
    plt.close("all")


# --------------------------------------------------------------------------- make_grid


def test_make_grid_places_each_grey_image_in_its_block():
    rng = np.random.default_rng(0)
    images = rng.random((5, 1, 4, 3)).astype(np.float32)
    pad = 2
    grid = make_grid(images, nrow=3, padding=pad, pad_value=0.5)
    # 2 rows x 3 columns of 4x3 images with 2-pixel borders
    assert grid.shape == (pad + 2 * (4 + pad), pad + 3 * (3 + pad))
    covered = np.zeros(grid.shape, dtype=bool)
    for k in range(5):
        r, c = divmod(k, 3)
        top, left = pad + r * (4 + pad), pad + c * (3 + pad)
        np.testing.assert_array_equal(grid[top : top + 4, left : left + 3], images[k, 0])
        covered[top : top + 4, left : left + 3] = True
    assert np.all(grid[~covered] == 0.5)  # borders and the empty 6th cell


def test_make_grid_colour_and_three_d_and_tensor_inputs():
    rng = np.random.default_rng(1)
    rgb = rng.random((4, 3, 2, 5)).astype(np.float32)
    grid = make_grid(torch.from_numpy(rgb).requires_grad_(), nrow=2, padding=1, pad_value=0.0)
    assert grid.shape == (1 + 2 * 3, 1 + 2 * 6, 3)
    for k in range(4):
        r, c = divmod(k, 2)
        top, left = 1 + r * 3, 1 + c * 6
        np.testing.assert_array_equal(grid[top : top + 2, left : left + 5], rgb[k].transpose(1, 2, 0))

    grey = rng.random((4, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(make_grid(grey), make_grid(grey[:, None]))
    default = make_grid(grey, padding=0)  # default nrow = ceil(sqrt(4)) = 2
    np.testing.assert_array_equal(default[6:12, 0:6], grey[2])

    as_uint8 = make_grid(np.full((1, 1, 2, 2), 255, dtype=np.uint8), padding=0)
    np.testing.assert_allclose(as_uint8, 1.0)


@pytest.mark.parametrize("shape", [(2, 5, 4, 4), (2, 2, 4, 4), (4, 4), (2, 1, 1, 4, 4), (0, 1, 4, 4)])
def test_make_grid_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="images"):
        make_grid(np.zeros(shape))


def test_make_grid_rejects_bad_nrow_and_nan():
    with pytest.raises(ValueError, match="nrow"):
        make_grid(np.zeros((2, 3, 3)), nrow=0)
    with pytest.raises(ValueError, match="images"):
        make_grid(np.full((2, 3, 3), np.nan))


# --------------------------------------------------------------------------- image_grid


@pytest.mark.parametrize("shape", [(6, 1, 8, 8), (6, 8, 8), (6, 3, 8, 8)])
def test_image_grid_accepts_the_three_shapes(shape):
    images = torch.rand(shape)
    ax = image_grid(images, nrow=3, title="samples")
    assert isinstance(ax, matplotlib.axes.Axes)
    shown = np.asarray(ax.images[0].get_array())
    expected_hw = (1 + 2 * 9, 1 + 3 * 9)
    assert shown.shape[:2] == expected_hw
    assert (shown.ndim == 3) == (shape[1] == 3 and len(shape) == 4)
    assert ax.get_title() == "samples"


def test_image_grid_rejects_five_channels():
    with pytest.raises(ValueError, match="images"):
        image_grid(torch.rand(4, 5, 8, 8))


def test_image_grid_rescales_out_of_range_values_and_uses_given_axes():
    fig, ax = plt.subplots()
    images = torch.linspace(-1, 1, 2 * 4 * 4).reshape(2, 1, 4, 4)
    out = image_grid(images, ax=ax)
    assert out is ax
    shown = np.asarray(ax.images[0].get_array())
    inner = shown[1:5, 1:5]  # first image, after the 1-pixel border
    np.testing.assert_allclose(inner, (images[0, 0].numpy() + 1) / 2, atol=1e-6)
    assert "rescaled" in ax.get_title()


# --------------------------------------------------------------------------- loss_curves


def test_loss_curves_one_line_per_curve():
    curves = {"a": [3.0, 2.0, 1.0], "b": np.array([1.0, 0.5]), "c": torch.tensor([4.0, 3.0, 2.0, 1.0])}
    ax = loss_curves(curves, logy=True)
    lines = ax.get_lines()
    assert len(lines) == 3
    assert [line.get_label() for line in lines] == ["a", "b", "c"]
    np.testing.assert_array_equal(lines[2].get_xdata(), [1, 2, 3, 4])
    np.testing.assert_array_equal(lines[2].get_ydata(), [4, 3, 2, 1])
    assert ax.get_yscale() == "log"


def test_loss_curves_from_history_and_smoothing():
    rng = np.random.default_rng(0)
    train = list(np.exp(-np.arange(50) / 10) + 0.1 * rng.random(50))
    hist = History(train_loss=train, val_loss=[0.5, 0.2], val_steps=[25, 50], seconds=1.0)
    ax = loss_curves(hist, smooth=0.9)
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["train", "val"]
    # independent reference: an IIR filter s_t = 0.9 s_{t-1} + 0.1 y_t started at s_0 = y_0
    y = np.asarray(train)
    expected, _ = lfilter([0.1], [1.0, -0.9], y, zi=[0.9 * y[0]])
    np.testing.assert_allclose(lines[0].get_ydata(), expected, rtol=1e-10)
    np.testing.assert_array_equal(lines[1].get_xdata(), [25, 50])
    np.testing.assert_array_equal(lines[1].get_ydata(), [0.5, 0.2])


def test_loss_curves_bad_arguments():
    with pytest.raises(ValueError, match="smooth"):
        loss_curves({"a": [1, 2]}, smooth=1.0)
    with pytest.raises(ValueError, match="curves"):
        loss_curves({})
    with pytest.raises(ValueError, match="curves"):
        loss_curves({"a": np.zeros((2, 2))})
    with pytest.raises(TypeError, match="curves"):
        loss_curves([1, 2, 3])


# --------------------------------------------------------------------------- scatter2d


def test_scatter2d_points_labels_and_colorbar():
    pts = torch.randn(30, 2)
    ax = scatter2d(pts, title="data")
    np.testing.assert_allclose(ax.collections[0].get_offsets(), pts.numpy())
    assert ax.get_title() == "data"

    labels = torch.arange(30) % 3
    ax = scatter2d(pts, labels=labels)
    assert len(ax.collections) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0", "1", "2"]
    np.testing.assert_allclose(ax.collections[1].get_offsets(), pts.numpy()[1::3])

    ax = scatter2d(pts.numpy(), labels=np.linspace(0, 1, 30))
    assert len(ax.figure.axes) == 2  # the plot and its colour bar


def test_scatter2d_bad_shapes():
    with pytest.raises(ValueError, match="points"):
        scatter2d(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="labels"):
        scatter2d(np.zeros((5, 2)), labels=np.zeros(4))


# --------------------------------------------------------------------------- density2d


def test_density2d_standard_normal_peak_and_mass():
    normal = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    n = 101
    ax = density2d(normal.log_prob, xlim=(-4, 4), ylim=(-4, 4), n=n, title="N(0, I)")
    img = np.asarray(ax.images[0].get_array())
    assert img.shape == (n, n)
    grid = np.linspace(-4, 4, n)
    i0 = j0 = int(np.argmin(np.abs(grid)))
    assert np.unravel_index(np.argmax(img), img.shape) == (i0, j0)
    assert img.max() == pytest.approx(1 / (2 * np.pi), rel=1e-4)
    cell = (8 / (n - 1)) ** 2
    assert img.sum() * cell == pytest.approx(1.0, abs=2e-3)  # mass outside [-4,4]^2 is ~1e-4
    assert ax.get_title() == "N(0, I)"


def test_density2d_orientation_with_shifted_gaussian():
    mean = torch.tensor([1.0, -2.0])
    dist = torch.distributions.MultivariateNormal(mean, 0.25 * torch.eye(2))
    n = 81
    xlim, ylim = (-4, 4), (-5, 3)
    ax = density2d(dist.log_prob, xlim=xlim, ylim=ylim, n=n)
    img = np.asarray(ax.images[0].get_array())
    xs, ys = np.linspace(*xlim, n), np.linspace(*ylim, n)
    row, col = np.unravel_index(np.argmax(img), img.shape)
    assert ys[row] == pytest.approx(-2.0, abs=0.06) and xs[col] == pytest.approx(1.0, abs=0.06)
    # every pixel equals the reference density at its grid point (rows = y, columns = x)
    gx, gy = np.meshgrid(xs, ys)
    ref = dist.log_prob(torch.tensor(np.stack([gx, gy], -1), dtype=torch.float32)).exp().numpy()
    np.testing.assert_allclose(img, ref, rtol=1e-4, atol=1e-7)
    # pixel centres sit on the grid points; origin at the lower left
    dx = 8 / (n - 1)
    np.testing.assert_allclose(ax.images[0].get_extent(), [-4 - dx / 2, 4 + dx / 2, -5 - dx / 2, 3 + dx / 2])
    assert ax.images[0].origin == "lower"


def test_density2d_module_method_and_errors():
    class Gauss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.loc = torch.nn.Parameter(torch.zeros(2))

        def log_prob(self, x):
            return torch.distributions.Normal(self.loc, 1.0).log_prob(x).sum(-1)

    ax = density2d(Gauss().log_prob, n=11)
    assert np.asarray(ax.images[0].get_array()).shape == (11, 11)

    with pytest.raises(ValueError, match="log_prob_fn"):
        density2d(lambda x: torch.zeros(3), n=10)
    with pytest.raises(ValueError, match="xlim"):
        density2d(lambda x: x[:, 0], xlim=(1, -1))
    with pytest.raises(ValueError, match="n "):
        density2d(lambda x: x[:, 0], n=1)
    with pytest.raises(ValueError, match="NaN"):
        density2d(lambda x: torch.full((x.shape[0],), float("nan")), n=5)
