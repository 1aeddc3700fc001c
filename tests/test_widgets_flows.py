"""Tests for the chapter-4 widgets in dgm.widgets: moving the layer slider or the temperature slider
changes the picture, and what is shown equals the flow's layers / f(T z) computed directly, transform
by transform (not through the widget's own code); the static twins have one frame per position."""

import io
import re

import ipywidgets
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from IPython.display import HTML  # noqa: E402
from PIL import Image as PILImage  # noqa: E402

from dgm.flows import GlowMLP, RealNVP  # noqa: E402
from dgm.widgets import (  # noqa: E402
    FlowLayerExplorer,
    TemperatureExplorer,
    as_html,
    flow_layer_panels,
    flow_layers_animation,
    temperature_animation,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _randomize(module, std=0.3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(std * torch.randn(p.shape, generator=gen))
    return module


@pytest.fixture(scope="module")
def flow2d():
    return _randomize(RealNVP(dim=2, num_layers=4, hidden=8))


@pytest.fixture(scope="module")
def image_flow():
    flow = GlowMLP(16, num_layers=2, hidden=8, mixing="permutation")
    flow.inverse(torch.rand(32, 16, generator=torch.Generator().manual_seed(0)))  # ActNorm initialisation
    return _randomize(flow, std=0.2)


def _by_hand(flow, z, k):
    """z_k = f_k o ... o f_1 (z), applying the transforms one by one."""
    with torch.no_grad():
        for t in list(flow.transforms)[:k]:
            z, _ = t(z)
    return z


def test_layer_explorer_structure(flow2d):
    exp = FlowLayerExplorer(flow2d, data=torch.randn(50, 2), n_points=200, grid_lines=5)
    assert isinstance(exp.widget, ipywidgets.VBox)
    assert isinstance(exp.layer, ipywidgets.IntSlider)
    assert (exp.layer.min, exp.layer.max, exp.layer.value) == (0, 4, 4)
    png = PILImage.open(io.BytesIO(exp.image.value))
    assert png.format == "PNG" and png.width > 100
    assert "4 of 4" in exp.caption.value


def test_moving_the_layer_slider_warps_the_points(flow2d):
    exp = FlowLayerExplorer(flow2d, n_points=300, seed=3)
    z = torch.randn(300, 2, generator=torch.Generator().manual_seed(3))  # the explorer's base draws
    seen = set()
    for k in [4, 0, 1, 2, 3]:
        before = exp.image.value
        exp.layer.value = k
        if k != 4:
            assert exp.image.value != before, f"the picture did not change at k = {k}"
        seen.add(exp.image.value)
        torch.testing.assert_close(exp.points(), _by_hand(flow2d, z, k), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(exp.points(k), exp.points())
    assert len(seen) == 5
    exp.layer.value = 0
    assert "base" in exp.caption.value


def test_layer_explorer_validates(flow2d, image_flow):
    with pytest.raises(ValueError, match="2-D points"):
        FlowLayerExplorer(image_flow)
    with pytest.raises(TypeError, match="flow must be a dgm.flows.Flow"):
        FlowLayerExplorer(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="data must have shape"):
        FlowLayerExplorer(flow2d, data=torch.zeros(5, 3))
    with pytest.raises(ValueError, match="n_points"):
        FlowLayerExplorer(flow2d, n_points=0)


def test_temperature_slider_changes_the_samples(image_flow):
    exp = TemperatureExplorer(image_flow, (1, 4, 4), n=6, nrow=3, value=1.0, seed=5)
    z = torch.randn(6, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = image_flow(z)[0].clamp(0, 1).reshape(6, 1, 4, 4)
    torch.testing.assert_close(exp.samples(), expected)
    before = exp.image.value
    exp.temperature.value = 0.5
    assert exp.image.value != before
    with torch.no_grad():
        torch.testing.assert_close(exp.samples(), image_flow(0.5 * z)[0].clamp(0, 1).reshape(6, 1, 4, 4))
    exp.temperature.value = 0.0  # T = 0: every sample is f(0)
    s = exp.samples()
    torch.testing.assert_close(s, s[:1].expand_as(s))
    png = PILImage.open(io.BytesIO(exp.image.value))
    assert png.width > png.height  # 3 per row, 2 rows
    assert "T = 0.00" in exp.caption.value


def test_temperature_explorer_validates(image_flow):
    with pytest.raises(ValueError, match="image_shape"):
        TemperatureExplorer(image_flow, (1, 5, 5))
    with pytest.raises(ValueError, match="value"):
        TemperatureExplorer(image_flow, (1, 4, 4), value=-1.0)
    with pytest.raises(ValueError, match="n must be"):
        TemperatureExplorer(image_flow, (1, 4, 4), n=0)


def test_static_twins(flow2d, image_flow):
    anim = flow_layers_animation(flow2d, data=torch.randn(30, 2), n_points=100)
    html = as_html(anim)
    assert isinstance(html, HTML) and "animation" in html.data.lower()
    assert len(re.findall(r"frames\[\d+\] = ", html.data)) == 5  # one frame per k = 0..4
    anim = temperature_animation(image_flow, (1, 4, 4), temperatures=(0.0, 0.5, 1.0), n=4, nrow=2)
    html = as_html(anim)
    assert len(re.findall(r"frames\[\d+\] = ", html.data)) == 3
    axes = flow_layer_panels(flow2d, layers=[0, 2, 4], n_points=100)
    assert len(axes) == 3
    # panel k shows z_k: the scatter's offsets are the points after k layers
    z = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    offsets = axes[1].collections[-1].get_offsets()
    torch.testing.assert_close(torch.as_tensor(offsets, dtype=torch.float32), _by_hand(flow2d, z, 2),
                               atol=1e-5, rtol=1e-5)
    plt.close("all")
    with pytest.raises(ValueError, match="layers"):
        flow_layer_panels(flow2d, layers=[7])
    with pytest.raises(ValueError, match="temperatures"):
        temperature_animation(image_flow, (1, 4, 4), temperatures=[])


def test_layer_panels_wrap_into_rows_that_fit_the_book(flow2d):
    """Six panels: two rows of three, the figure at most 7.6 inches (760 px at 100 dpi) wide."""
    axes = flow_layer_panels(flow2d, layers=[0, 1, 2, 3, 4, 4], n_points=50)
    fig = axes[0].figure
    assert len(axes) == 6 and fig.get_size_inches()[0] <= 7.6
    rows = {round(ax.get_position().y0, 3) for ax in axes}
    assert len(rows) == 2
    plt.close("all")
