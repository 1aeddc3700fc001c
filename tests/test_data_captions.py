"""dgm.data.captions: attributes measured on pixels against closed forms and numpy's least squares."""

import itertools
import math

import numpy as np
import pytest
import torch

import dgm.data
from dgm.data import captions as cap


def _rectangle(h, w, size=28):
    x = torch.zeros(1, 1, size, size)
    x[0, 0, 4:4 + h, 4:4 + w] = 1.0
    return x


@pytest.mark.parametrize("h,w", [(20, 3), (3, 20), (10, 10), (1, 1), (18, 5)])
def test_thickness_of_a_rectangle_is_its_closed_form(h, w):
    # area h w, 2 (h + w) unit edges, perimeter pi/4 of that: 2 area / perimeter = 4/pi h w / (h + w)
    thickness, _ = cap.measure(_rectangle(h, w))
    assert thickness.item() == pytest.approx(4 / math.pi * h * w / (h + w))


def test_thickness_of_a_ring_is_its_width():
    r = torch.arange(28.0)
    d = ((r[:, None] - 13.5) ** 2 + (r[None, :] - 13.5) ** 2).sqrt()
    for width in (2, 3, 4):
        ring = ((d >= 9 - width) & (d < 9)).float()[None, None]
        thickness, _ = cap.measure(ring)
        assert thickness.item() == pytest.approx(width, rel=0.1)


def test_thicker_strokes_measure_thicker_on_real_digits():
    x, _ = dgm.data.mnist("test")
    x = x[:200]
    dilated = torch.nn.functional.max_pool2d(x, 3, stride=1, padding=1)
    t, _ = cap.measure(x)
    t_dilated, _ = cap.measure(dilated)
    assert (t_dilated > t).float().mean() > 0.95


@pytest.mark.parametrize("shear", [-0.4, 0.0, 0.25, 0.6])
def test_slant_of_a_sheared_bar_is_its_shear(shear):
    x = torch.zeros(1, 1, 28, 28)
    for row in range(4, 24):                     # a vertical bar, shifted right as it goes up
        col = 14 + shear * (13.5 - row)
        lo = int(np.floor(col))
        x[0, 0, row, lo] += 1 - (col - lo)       # anti-aliased: the mass sits at col exactly
        x[0, 0, row, lo + 1] += col - lo
    _, slant = cap.measure(x)
    assert slant.item() == pytest.approx(shear, abs=1e-4)


def test_slant_is_the_weighted_least_squares_slope_of_column_on_row():
    x, _ = dgm.data.mnist("test")
    _, slant = cap.measure(x[:20])
    for img, s in zip(x[:20, 0].numpy(), slant):
        rows, cols = np.nonzero(img)
        # least squares col = a + b row, each pixel weighted by its intensity: slant = -b
        b = np.polyfit(rows, cols, 1, w=np.sqrt(img[rows, cols]))[0]
        assert s.item() == pytest.approx(-b, abs=1e-4)


def test_an_empty_image_measures_zero():
    t, s = cap.measure(torch.zeros(2, 28, 28))
    assert t.tolist() == [0.0, 0.0] and s.tolist() == [0.0, 0.0]


def test_every_caption_is_common_in_the_training_split():
    x, y = dgm.data.mnist("train")
    thick, slanted = cap.attributes(x)
    assert 0.35 < thick.float().mean() < 0.65 and 0.35 < slanted.float().mean() < 0.65
    texts = cap.captions(x, y)
    counts = {t: texts.count(t) for t in set(texts)}
    assert len(counts) == 40
    assert min(counts.values()) >= 0.1 * len(texts) / 40


def test_captions_follow_the_grammar_and_round_trip():
    every = [cap.caption(d, t, s) for d, t, s in itertools.product(range(10), (0, 1), (0, 1))]
    assert len(set(every)) == 40 and "a thick slanted seven" in every
    for text in every:
        assert cap.caption(*(cap.parse(text)[i] for i in (0, 1, 2))) == text
    tokens = cap.tokenize(every)
    assert tokens.shape == (40, cap.CAPTION_LENGTH)
    assert (tokens[:, 0] == cap.VOCAB.index("<bos>")).all()
    assert (tokens[:, -1] == cap.VOCAB.index("<eos>")).all()
    assert cap.detokenize(tokens) == every
    assert cap.detokenize(cap.tokenize(["a seven"])) == ["a seven"]


def test_captions_agree_with_the_measured_attributes():
    x, y = dgm.data.mnist("test")
    thickness, slant = cap.measure(x[:300])
    for text, d, t, s in zip(cap.captions(x[:300], y[:300]), y[:300].tolist(), thickness, slant):
        digit, thick, slanted = cap.parse(text)
        assert digit == d
        assert thick == int(t >= cap.THICK_PIXELS) and slanted == int(abs(s) >= cap.SLANTED)


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="x"):
        cap.measure(torch.zeros(2, 28, 28, dtype=torch.long))
    with pytest.raises(ValueError, match="x must have shape"):
        cap.measure(torch.zeros(28, 28))
    with pytest.raises(ValueError, match="labels"):
        cap.captions(torch.zeros(3, 1, 28, 28), torch.zeros(2))
    with pytest.raises(ValueError, match="digit"):
        cap.caption(10, 0, 0)
    with pytest.raises(ValueError, match="'fat'"):
        cap.parse("a fat upright seven")
    with pytest.raises(ValueError, match="outside VOCAB"):
        cap.tokenize(["a <eos> seven"])
    with pytest.raises(ValueError, match="tokens must be in"):
        cap.detokenize(torch.tensor([[1, 99]]))
