"""Tests for the chapter-6 widget dgm.widgets.PixelSampler: moving the slider changes the picture;
the bar chart at step i is softmax(logits_i / T) recomputed here from the image prefix alone (the
pixels from i on replaced by random ones - which must not change it, the causality the widget
relies on); the running log-likelihood is Eq. (6.1) summed with torch.distributions; the context
panel is the receptive field found from full autograd Jacobians, never at or after i; the
completion keeps the given upper half; the static twin has one frame per step; bad input raises."""

import base64
import io
import re

import ipywidgets
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from PIL import Image as PILImage  # noqa: E402
from torch.autograd.functional import jacobian  # noqa: E402

from dgm.autoregressive import MADE, GatedPixelCNN, PixelCNN, sample  # noqa: E402
from dgm.widgets import PixelSampler, as_html  # noqa: E402
from dgm.widgets.autoregressive import CONTEXT, UNDRAWN  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

H = W = 8
D = H * W


def _model(levels=2, cls=GatedPixelCNN, **kw):
    torch.manual_seed(levels)
    return cls(levels=levels, channels=8, num_layers=2, **kw)


def _given(levels):
    return torch.randint(0, levels, (1, H, W), generator=torch.Generator().manual_seed(7)).float() / (levels - 1)


def _bars(ps):
    return np.array([bar.get_height() for bar in ps._panels.bars])


def _reference_probs(model, x, i, gen, temperature=1.0):
    """softmax(logits_i / T) of the model run on x_<i followed by random pixels (from i on)."""
    k = model.levels
    flat = x.clone().reshape(-1)
    flat[i:] = torch.randint(0, k, (D - i,), generator=gen).float() / (k - 1)
    with torch.no_grad():
        logits = model(flat.reshape(1, 1, H, W))[0, :, 0, i // W, i % W]
    return torch.softmax(logits.double() / temperature, 0).numpy()


def _jacobian_fields(model, trials=3):
    """(D, H, W) bool: input pixels with a non-zero d logits[:, r, c] / d x, by full Jacobians."""
    gen = torch.Generator().manual_seed(11)
    seen = torch.zeros(D, H, W, dtype=torch.bool)
    model.eval()
    for _ in range(trials):
        x = torch.rand(1, 1, H, W, generator=gen)
        jac = jacobian(lambda inp: model(inp)[0, :, 0], x)  # (K, H, W, 1, 1, H, W)
        seen |= (jac != 0).any(0).reshape(D, H, W)
    return seen


def _png_size(value):
    return PILImage.open(io.BytesIO(bytes(value))).size


def _frames(html: str) -> int:
    return len(re.findall(r'frames\[\d+\] = "data:image/png', html))


# ----------------------------------------------------------------------------- sampling mode
def test_structure_and_seed_contract():
    model = _model()
    model.train()
    ps = PixelSampler(model, (H, W), seed=3)
    assert model.training  # train/eval mode restored
    assert isinstance(ps.widget, ipywidgets.VBox)
    assert isinstance(ps.step, ipywidgets.IntSlider) and ps.step.description == "step i"
    assert (ps.step.min, ps.step.max, ps.step.value) == (0, D, D // 2)
    assert isinstance(ps.mode, ipywidgets.Dropdown) and ps.mode.description == "mode"
    assert ps.mode.options == (("sample", "sample"),) and ps.mode.disabled  # no given: one mode
    assert ps.image.format == "png" and _png_size(ps.image.value)[0] == 560
    assert f"step i = {D // 2} of D = {D}" in ps.caption.value
    # the documented seed: the same image as sample() with a generator seeded alike
    expected = sample(model, 1, (H, W), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(ps.x(), expected)


@pytest.mark.parametrize("levels", [2, 4])
def test_slider_redraws_and_the_bars_are_the_conditionals_of_the_prefix(levels):
    model = _model(levels)
    ps = PixelSampler(model, (H, W), seed=1)
    x, gen = ps.x(), torch.Generator().manual_seed(5)
    assert set((x * (levels - 1)).round().unique().tolist()) <= set(range(levels))
    before = ps.image.value
    ps.step.value = 5
    assert ps.image.value != before
    prefix_matters = False
    for i in (0, 5, 9, 17, 38, D - 1):
        ps.step.value = i
        ref = _reference_probs(model, x, i, gen)
        np.testing.assert_allclose(_bars(ps), ref, atol=1e-5)               # what is drawn
        np.testing.assert_allclose(ps.probs(i).numpy(), ref, atol=1e-5)
        np.testing.assert_allclose(_reference_probs(model, x, i, gen), ref, atol=1e-5)  # new future
        other = x.clone().reshape(-1)
        other[:i] = 1 - other[:i]
        prefix_matters |= not np.allclose(_reference_probs(model, other.reshape(x.shape), i, gen), ref)
        # the drawn level is the one highlighted, and x_<i is shown, the rest "not yet drawn"
        drawn = int(round(float(x.reshape(-1)[i]) * (levels - 1)))
        colours = [bar.get_facecolor() for bar in ps._panels.bars]
        assert [c == to_rgba("C3") for c in colours] == [k == drawn for k in range(levels)]
        shown = ps._panels.im.get_array().reshape(D, 3)
        np.testing.assert_allclose(shown[:i], np.repeat(x.reshape(D, 1)[:i].numpy(), 3, 1), atol=1e-6)
        np.testing.assert_allclose(shown[i:], np.tile(UNDRAWN, (D - i, 1)))
        assert f"step i = {i} of" in ps.caption.value
    assert prefix_matters  # the check above could fail: the conditionals do depend on x_<i
    ps.step.value = D
    np.testing.assert_allclose(ps._panels.im.get_array().reshape(D, 3)[:, 0], x.reshape(-1), atol=1e-6)
    assert np.all(_bars(ps) == 0) and ps.probs(D) is None
    # Eq. (6.1): the running sum of log p(x_i | x_<i) ends at log p(x) computed by one pass
    with torch.no_grad():
        logits = model(x)[0].permute(1, 2, 3, 0)  # (1, H, W, K)
    levels_x = (x[0] * (levels - 1)).round().long()
    log_px = torch.distributions.Categorical(logits=logits.double()).log_prob(levels_x).sum()
    assert ps.log_p(D) == pytest.approx(float(log_px), abs=1e-4)
    assert f"{float(log_px):.2f} nats" in ps.caption.value
    assert ps.log_p(0) == 0.0


def test_temperature_scales_the_logits():
    model = _model(4)
    ps = PixelSampler(model, (H, W), seed=2, temperature=0.5)
    gen = torch.Generator().manual_seed(0)
    for i in (3, 30):
        np.testing.assert_allclose(ps.probs(i).numpy(), _reference_probs(model, ps.x(), i, gen, 0.5), atol=1e-5)
    torch.testing.assert_close(
        ps.x(), sample(model, 1, (H, W), generator=torch.Generator().manual_seed(2), temperature=0.5))


# ----------------------------------------------------------------------------- completion mode
def test_completion_keeps_the_upper_half_and_starts_halfway():
    model, given = _model(2), _given(2)
    ps = PixelSampler(model, (H, W), given=given, seed=4)
    assert [label for label, _ in ps.mode.options] == ["sample", "complete this digit"]
    ps.step.value = 10
    before = ps.image.value
    ps.mode.value = "complete"
    assert ps.image.value != before
    half = (H // 2) * W
    assert (ps.step.min, ps.step.max, ps.step.value) == (half, D, half)
    done = ps.x()
    torch.testing.assert_close(done[0, :, : H // 2], given[:, : H // 2])      # upper half kept
    assert not torch.equal(done, ps.x("sample"))
    shown = ps._panels.im.get_array()
    np.testing.assert_allclose(shown[: H // 2], np.repeat(given[0, : H // 2, :, None].numpy(), 3, 2))
    np.testing.assert_allclose(shown[H // 2:].reshape(-1, 3), np.tile(UNDRAWN, (half, 1)))
    assert ps.log_p(half) == 0.0 and "upper half" in ps._panels.suptitle.get_text()
    gen = torch.Generator().manual_seed(9)
    for i in (half, half + 3, D - 1):
        ps.step.value = i
        np.testing.assert_allclose(_bars(ps), _reference_probs(model, done, i, gen), atol=1e-5)
    known = torch.zeros(H, W, dtype=torch.bool)
    known[: H // 2] = True
    expected = sample(model, 1, (H, W), generator=torch.Generator().manual_seed(4), given=given, known=known)
    torch.testing.assert_close(done, expected)
    ps.mode.value = "sample"  # back: the whole range again, the step kept
    assert (ps.step.min, ps.step.value) == (0, D - 1)
    with pytest.raises(ValueError, match="step i"):
        ps.probs(half - 1, "complete")


# ----------------------------------------------------------------------------- context panel
@pytest.mark.parametrize("cls", [GatedPixelCNN, PixelCNN])
def test_context_is_the_receptive_field_before_i(cls):
    model = _model(2, cls)
    ps = PixelSampler(model, (H, W), seed=0)
    fields = _jacobian_fields(model)
    order = torch.arange(D).reshape(H, W)
    blind = 0
    for i in range(D):
        seen = ps.context(i)
        assert torch.equal(seen, fields[i]), i
        assert not (seen & (order >= i)).any(), f"the context of step {i} looks ahead"
        blind += int((~seen & (order < i)).sum())
    assert fields[1:].any(dim=(1, 2)).all()  # every pixel after the first sees something
    for i in (9, 27, 50):
        ps.step.value = i
        rgb = ps._panels.ctx.get_array()
        tinted = rgb[..., 0] - rgb[..., 2] > 0.3         # mixed with orange CONTEXT
        undrawn = rgb[..., 2] - rgb[..., 0] > 0.1        # pale blue UNDRAWN
        assert torch.equal(torch.from_numpy(tinted), ps.context(i)), i
        assert torch.equal(torch.from_numpy(undrawn), order >= i), i
        assert f"context of $x_i$: {int(ps.context(i).sum())} pixels" in ps._panels.titles[2].get_text()
    assert CONTEXT[0] - CONTEXT[2] > 0.6
    if cls is PixelCNN:
        assert blind > 0  # the plain stack's blind spot: earlier pixels it cannot see
    assert not ps.context(D).any()


# ----------------------------------------------------------------------------- static twin
def test_static_twin_has_one_frame_per_step():
    ps = PixelSampler(_model(2), (H, W), given=_given(2), seed=0)
    anim = ps.animation([0, 8, 20, 40, D])
    assert anim._fig.get_size_inches()[0] * anim._fig.dpi == pytest.approx(560)
    html = as_html(anim).data
    assert "<script" in html and _frames(html) == 5
    # the frames are palette PNGs (small HTML) of the full 560-px figure
    first = re.search(r'frames\[0\] = "data:image/png;base64,([^"]*)"', html).group(1)
    frame = PILImage.open(io.BytesIO(base64.b64decode(first.replace("\\\n", ""))))
    assert frame.mode == "P" and frame.size[0] == 560
    # and it shows what frame(0) renders, up to the palette's rounding, not frame(8)
    rgb = np.asarray(frame.convert("RGB"), dtype=float) / 255
    diff = [np.abs(rgb - ps.frame(i)[: rgb.shape[0], : rgb.shape[1]]).mean() for i in (0, 8)]
    assert diff[0] < 0.01 < diff[1]
    html = as_html(ps.animation([D // 2, 40, D], mode="complete this digit")).data
    assert _frames(html) == 3
    with pytest.raises(ValueError, match="step i"):
        ps.animation([0], mode="complete")
    with pytest.raises(ValueError, match="steps"):
        ps.animation([])


# ----------------------------------------------------------------------------- bad input
def test_class_conditional_model_needs_its_label():
    model = _model(2, num_classes=3)
    ps = PixelSampler(model, (H, W), c=2, seed=0)
    expected = sample(model, 1, (H, W), generator=torch.Generator().manual_seed(0), c=torch.tensor([2]))
    torch.testing.assert_close(ps.x(), expected)
    with pytest.raises(ValueError, match="c must"):
        PixelSampler(model, (H, W))
    with pytest.raises(ValueError, match="c must"):
        PixelSampler(model, (H, W), c=3)
    with pytest.raises(ValueError, match="c must"):
        PixelSampler(_model(2), (H, W), c=0)


def test_bad_arguments_raise_naming_them():
    model = _model(2)
    with pytest.raises(TypeError, match="model"):
        PixelSampler(MADE(D, hidden=(16,)), (H, W))
    with pytest.raises(ValueError, match="model"):
        PixelSampler(GatedPixelCNN(in_channels=3, levels=2, channels=6, num_layers=1), (H, W))
    for shape in ((H,), (2, H, W), (1, W), (0, W)):
        with pytest.raises(ValueError, match="shape"):
            PixelSampler(model, shape)
    with pytest.raises(ValueError, match="given"):
        PixelSampler(model, (H, W), given=torch.zeros(2, 1, H, W))
    with pytest.raises(ValueError, match="given"):
        PixelSampler(model, (H, W), given=torch.zeros(1, H, W + 1))
    with pytest.raises(ValueError, match="given"):
        PixelSampler(model, (H, W), given=torch.full((H, W), 2.0))
    with pytest.raises(TypeError, match="given"):
        PixelSampler(model, (H, W), given=np.zeros((H, W)))
    with pytest.raises(ValueError, match="temperature"):
        PixelSampler(model, (H, W), temperature=0.0)
    with pytest.raises(ValueError, match="seed"):
        PixelSampler(model, (H, W), seed=1.5)
    with pytest.raises(ValueError, match="step i"):
        PixelSampler(model, (H, W), step=D + 1)
    ps = PixelSampler(model, (H, W))
    with pytest.raises(ValueError, match="given"):
        ps.x("complete")
    with pytest.raises(ValueError, match="mode"):
        ps.x("unknown")
    with pytest.raises(ValueError, match="step i"):
        ps.context(-1)
