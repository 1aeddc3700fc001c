"""Tests for the chapter-7 widget dgm.widgets.CaptionStudio with stub generators: one that retrieves
real test digits whose caption (dgm.data.captions, true label) is the request, one that ignores the
request. The measured words under each digit and the agreement line are recomputed here from the
labels and dgm.data.captions.measure with explicit loops (a lookup "oracle" judge knows each test
digit's label), and with the course's classifier for the default judge; every press of a control
calls the generator with the caption, scale and seed it should (recorded); the dropdowns fill the
text box; a bad caption shows its parse error and calls nothing; the static twin has one frame
per caption; bad arguments raise naming them."""

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

import dgm.data  # noqa: E402
from dgm.data import captions as cap  # noqa: E402
from dgm.widgets import CaptionStudio, as_html  # noqa: E402
from dgm.widgets.multimodal import AGREE, DISAGREE  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
N = 6


@pytest.fixture(scope="module")
def bank():
    """600 test digits, their labels and their captions (true label, measured attributes)."""
    x, y = dgm.data.mnist("test")
    x, y = x[:600], y[:600]
    return x, y, cap.captions(x, y)


class Oracle(torch.nn.Module):
    """A judge that knows the label of every digit of the bank (exact match), 10 logits."""

    def __init__(self, x, y):
        super().__init__()
        self.register_buffer("keys", x.reshape(len(x), -1))
        self.register_buffer("labels", y)
        self.where = torch.nn.Parameter(torch.zeros(1))     # describe() reads the device off it

    def forward(self, images):
        flat = images.reshape(len(images), -1)
        match = (flat[:, None] == self.keys[None]).all(2)
        assert bool(match.any(1).all()), "the oracle only knows the bank's digits"
        return torch.nn.functional.one_hot(self.labels[match.float().argmax(1)], 10).float() * 10


class Recorder:
    """A generator stub that records its calls and returns ``pick(caption, n, scale, seed)``."""

    def __init__(self, x, pick):
        self.x, self.pick, self.calls = x, pick, []

    def __call__(self, caption, n, scale, seed):
        self.calls.append((caption, n, scale, seed))
        return self.x[self.pick(caption, n, scale, seed)]


def retrieval(bank):
    """Bank digits whose caption is the request, drawn with the seed (and the scale, so that the
    slider changes the picture)."""
    x, _, texts = bank

    def pick(caption, n, scale, seed):
        idx = torch.tensor([i for i, t in enumerate(texts) if t == caption])
        assert len(idx) >= n, caption
        gen = torch.Generator().manual_seed(1000 * seed + int(10 * scale))
        return idx[torch.randperm(len(idx), generator=gen)[:n]]

    return Recorder(x, pick)


def ignoring(bank):
    """Bank digits that depend on the seed and the scale only, never on the caption."""
    def pick(caption, n, scale, seed):
        start = (n * (seed + int(scale))) % 500
        return torch.arange(start, start + n)

    return Recorder(bank[0], pick)


def expected_words(x, digits):
    """(digit, thickness, slant) words of each image from its digit and an explicit loop over
    dgm.data.captions.measure's numbers and thresholds."""
    thickness, slant = cap.measure(x)
    return [(cap.DIGIT_NAMES[int(d)], "thick" if float(t) >= cap.THICK_PIXELS else "thin",
             "slanted" if abs(float(s)) >= cap.SLANTED else "upright")
            for d, t, s in zip(digits, thickness, slant)]


def expected_agreement(words, request):
    want = request.split()[1:]
    want = (want[2], want[0], want[1])          # digit, thickness, slant
    hits = np.array([[w[k] == want[k] for k in range(3)] for w in words], dtype=float)
    return {"digit": hits[:, 0].mean(), "thickness": hits[:, 1].mean(), "slant": hits[:, 2].mean(),
            "all": hits.prod(1).mean()}


def shown_words(studio):
    """What the picture says under each digit: (text, colour) for the three lines."""
    return [[(t.get_text(), to_rgba(t.get_color())) for t in texts]
            for texts in studio._sheet.texts]


def check_shown(studio, words, request):
    """The words under each digit and their marks are the expected ones, and so are the counts."""
    want = expected_agreement(words, request)
    req = request.split()[1:]
    req = (req[2], req[0], req[1])
    for k, lines in enumerate(shown_words(studio)):
        for j, (text, colour) in enumerate(lines):
            ok = words[k][j] == req[j]
            assert text == f"{words[k][j]} {'✓' if ok else '✗'}", (k, j, text)
            assert colour == to_rgba(AGREE if ok else DISAGREE)
    header = studio._sheet.header.get_text()
    for name in ("digit", "thickness", "slant", "all"):
        assert f"{name} {round(want[name] * N)}/{N}" in header, (name, header)
        assert f"{name} {want[name]:.2f}" in studio.caption.value
    return want


def png_size(value):
    return PILImage.open(io.BytesIO(bytes(value))).size


# ----------------------------------------------------------------------------- what is measured
def test_retrieval_agrees_everywhere_and_the_words_are_measured(bank):
    x, y, texts = bank
    request = "a thick slanted seven"
    gen = retrieval(bank)
    studio = CaptionStudio(gen, n=N, scale=2, classifier=Oracle(x, y), caption=request)
    assert gen.calls == [(request, N, 2.0, 0)]
    assert isinstance(gen.calls[0][2], float) and isinstance(gen.calls[0][3], int)
    got = studio.samples()
    idx = gen.pick(request, N, 2.0, 0)
    torch.testing.assert_close(got, x[idx])
    assert [texts[i] for i in idx.tolist()] == [request] * N       # the stub did retrieve
    words = expected_words(got, y[idx].tolist())
    want = check_shown(studio, words, request)
    assert want == {"digit": 1.0, "thickness": 1.0, "slant": 1.0, "all": 1.0}
    assert studio.agreement() == pytest.approx(want)
    assert studio.measured() == [f"a {t} {s} {d}" for d, t, s in words]
    assert "all 6/6" in studio._sheet.header.get_text()
    assert png_size(studio.image.value)[0] == 560
    assert len(gen.calls) == 1                  # measuring and showing reuse the cached batch


def test_an_ignoring_generator_agrees_little_and_exactly_as_counted(bank):
    x, y, _ = bank
    gen = ignoring(bank)
    request = "a thin upright one"
    studio = CaptionStudio(gen, n=N, scales=(0, 4), scale=0, seed=3, classifier=Oracle(x, y),
                           caption=request)
    idx = gen.pick(request, N, 0.0, 3)
    words = expected_words(x[idx], y[idx].tolist())
    want = check_shown(studio, words, request)
    assert want["digit"] <= 1 / 3 and want["all"] < 1 / 3
    assert studio.agreement() == pytest.approx(want)
    # the same images asked for as something else: the marks follow the request, not the images
    studio.text.value = "a thick slanted three"
    studio.scale.value = 4.0
    studio.scale.value = 0.0
    assert gen.calls[-1] == ("a thick slanted three", N, 0.0, 3)
    check_shown(studio, words, "a thick slanted three")


def test_the_default_judge_is_the_course_classifier(bank):
    from dgm.classifier import mnist_classifier

    x, y, _ = bank
    gen = retrieval(bank)
    request = "a thin upright zero"
    studio = CaptionStudio(gen, n=N, caption=request)
    with torch.no_grad():
        judged = mnist_classifier()(studio.samples()).argmax(1).tolist()
    words = expected_words(studio.samples(), judged)
    want = check_shown(studio, words, request)
    assert want["thickness"] == want["slant"] == 1.0
    idx = gen.pick(request, N, 2.0, 0)
    assert want["digit"] == pytest.approx(np.mean([d == int(v) for d, v in zip(judged, y[idx])]))


# ----------------------------------------------------------------------------- controls
def test_slider_and_button_call_the_generator_and_redraw(bank):
    gen = retrieval(bank)
    studio = CaptionStudio(gen, n=N, scales=(3, 0, 1), seed=5, caption="a thin upright one")
    assert isinstance(studio.widget, ipywidgets.VBox)
    assert isinstance(studio.scale, ipywidgets.SelectionSlider)
    assert studio.scale.description == "guidance w"
    assert [w for _, w in studio.scale.options] == [0.0, 1.0, 3.0]            # sorted
    assert studio.scale.value == 1.0                                           # the middle one
    assert isinstance(studio.button, ipywidgets.Button) and studio.button.description == "generate"
    assert gen.calls == [("a thin upright one", N, 1.0, 5)]
    before = bytes(studio.image.value)
    studio.scale.value = 3.0                     # same noise, another w
    assert gen.calls[-1] == ("a thin upright one", N, 3.0, 5)
    assert studio.shown == ("a thin upright one", 3.0, 5)
    assert bytes(studio.image.value) != before
    before = bytes(studio.image.value)
    studio.button.click()                        # a new batch: the next seed
    assert gen.calls[-1] == ("a thin upright one", N, 3.0, 6)
    assert bytes(studio.image.value) != before
    assert "seed 6" in studio.caption.value and "w = 3" in studio._sheet.header.get_text()
    studio.scale.value = 1.0
    assert gen.calls[-1] == ("a thin upright one", N, 1.0, 6)
    n_calls = len(gen.calls)
    studio.scale.value = 3.0                     # cached: shown again without a call
    assert len(gen.calls) == n_calls and studio.shown == ("a thin upright one", 3.0, 6)
    # a typed caption is generated by the button, with normalised spaces
    studio.text.value = "a  thick slanted   two"
    assert len(gen.calls) == n_calls            # typing alone generates nothing
    studio.button.click()
    assert gen.calls[-1] == ("a thick slanted two", N, 3.0, 7)


def test_dropdowns_fill_the_text_and_the_text_sets_them(bank):
    gen = retrieval(bank)
    studio = CaptionStudio(gen, n=N, caption="a thin upright one")
    words = lambda: (studio.thickness.value, studio.slant.value, studio.digit.value)  # noqa: E731
    assert words() == ("thin", "upright", "one")
    assert studio.thickness.options == ("thin", "thick") and len(studio.digit.options) == 10
    studio.digit.value = "seven"
    assert studio.text.value == "a thin upright seven"
    studio.thickness.value = "thick"
    studio.slant.value = "slanted"
    assert studio.text.value == "a thick slanted seven"
    assert len(gen.calls) == 1                   # filling the text box generates nothing
    studio.button.click()
    assert gen.calls[-1][0] == "a thick slanted seven"
    studio.text.value = "a thin upright four"
    assert words() == ("thin", "upright", "four")
    assert studio.text.value == "a thin upright four"   # setting the dropdowns did not rewrite it


@pytest.mark.parametrize("bad", ["a purple seven", "seven", "a thin upright seven please", ""])
def test_a_bad_caption_shows_the_parse_error_and_calls_nothing(bank, bad):
    gen = retrieval(bank)
    studio = CaptionStudio(gen, n=N, caption="a thin upright one")
    before, calls = bytes(studio.image.value), list(gen.calls)
    studio.text.value = bad
    with pytest.raises(ValueError) as err:
        cap.parse(bad)
    expected = str(err.value).replace("<", "&lt;").replace(">", "&gt;")
    for act in (studio.button.click, lambda: setattr(studio.scale, "value", 5.0)):
        act()
        assert expected in studio.message.value and "Traceback" not in studio.message.value
        assert gen.calls == calls and bytes(studio.image.value) == before
    studio.text.value = "a thin upright two"    # a good caption clears the message
    assert studio.message.value == ""
    studio.button.click()
    assert gen.calls[-1] == ("a thin upright two", N, 5.0, 1)


def test_an_error_of_the_generator_is_shown_not_raised(bank):
    x = bank[0]

    def flaky(caption, n, scale, seed):
        if seed == 1:
            raise RuntimeError("the sampler ran out of steps")
        return x[seed * n:(seed + 1) * n] * (1.0 if seed == 0 else 2.0)

    studio = CaptionStudio(flaky, n=N, caption="a thin upright one")
    before = bytes(studio.image.value)
    studio.button.click()
    assert "generate failed: RuntimeError: the sampler ran out of steps" in studio.message.value
    assert bytes(studio.image.value) == before and studio.seed == 0 and studio.shown[2] == 0
    studio.scale.value = 5.0        # seed 0 again: fine, and the message is gone
    assert studio.message.value == "" and studio.shown == ("a thin upright one", 5.0, 0)
    studio.seed = 1
    studio.button.click()           # seed 2: values in [0, 2] are refused, shown as an error
    assert "generate failed: ValueError: generate must return pixel values in [0, 1]" in (
        studio.message.value)
    with pytest.raises(RuntimeError, match="out of steps"):   # outside a control it raises
        studio.samples(seed=1)


# ----------------------------------------------------------------------------- static twin
def _frames(html):
    return re.findall(r'frames\[\d+\] = "data:image/png;base64,([^"]*)"', html)


def test_static_twin_has_one_frame_per_caption(bank):
    x, y, _ = bank
    gen = retrieval(bank)
    studio = CaptionStudio(gen, n=N, classifier=Oracle(x, y), caption="a thin upright one")
    requests = ["a thin upright one", "a thick slanted seven", "a thin slanted two"]
    anim = studio.gallery(requests, scale=3)
    assert [c for c in gen.calls if c[2] == 3.0] == [(c, N, 3.0, 0) for c in requests]
    assert anim._fig.get_size_inches()[0] * anim._fig.dpi == pytest.approx(560)
    html = as_html(anim).data
    frames = _frames(html)
    assert "<script" in html and len(frames) == len(requests)
    for k, request in enumerate(requests):
        frame = PILImage.open(io.BytesIO(base64.b64decode(frames[k].replace("\\\n", ""))))
        assert frame.mode == "P" and frame.size[0] == 560
        rgb = np.asarray(frame.convert("RGB"), dtype=float) / 255
        diff = [np.abs(rgb - studio.frame(r, 3)[: rgb.shape[0], : rgb.shape[1]]).mean()
                for r in requests]
        assert diff[k] < 0.01 and min(d for j, d in enumerate(diff) if j != k) > 2 * diff[k] + 0.005
    assert len(html) < 150_000
    with pytest.raises(ValueError, match=r"captions\[1\]"):
        studio.gallery(["a thin upright one", "a thin one"])
    with pytest.raises(ValueError, match="captions"):
        studio.gallery([])
    with pytest.raises(TypeError, match="captions"):
        studio.gallery("a thin upright one")


# ----------------------------------------------------------------------------- bad input
def test_bad_arguments_raise_naming_them(bank):
    gen = retrieval(bank)
    with pytest.raises(TypeError, match="generate"):
        CaptionStudio("not a function")
    for n in (0, 33, 1.5, True):
        with pytest.raises(ValueError, match="n must"):
            CaptionStudio(gen, n=n)
    for scales in ((1,), (1, 1), (0, float("nan")), "ab", 3, (0, True)):
        with pytest.raises(ValueError, match="scales"):
            CaptionStudio(gen, scales=scales)
    for scale in (4, "2", True):
        with pytest.raises(ValueError, match="scale must"):
            CaptionStudio(gen, scale=scale)
    with pytest.raises(ValueError, match="seed"):
        CaptionStudio(gen, seed=0.5)
    with pytest.raises(ValueError, match="caption"):
        CaptionStudio(gen, caption="a green seven")
    with pytest.raises(TypeError, match="caption"):
        CaptionStudio(gen, caption=7)
    for judge in ("mnist", lambda x: torch.zeros(len(x), 10), torch.nn.Flatten()):
        with pytest.raises(TypeError, match="classifier"):
            CaptionStudio(gen, classifier=judge)
    with pytest.raises(ValueError, match="width"):
        CaptionStudio(gen, width=0)
    assert not gen.calls                         # nothing was generated for a refused widget
    x = bank[0]
    outputs = {"shape": x[:N - 1], "range": x[:N] * 2 - 1, "finite": x[:N] * float("nan")}
    for what, out in outputs.items():
        with pytest.raises(ValueError, match="generate") as err:
            CaptionStudio(lambda c, n, w, s, out=out: out, n=N)
        assert what in str(err.value) or what == "range", str(err.value)
    with pytest.raises(TypeError, match="generate"):
        CaptionStudio(lambda c, n, w, s: (x[:N] * 255).long(), n=N)
    studio = CaptionStudio(gen, n=N)
    with pytest.raises(ValueError, match="caption"):
        studio.samples("a seven")
    with pytest.raises(ValueError, match="seed"):
        studio.samples(seed=1.5)
