"""Chapter 7: conditional and multimodal generation, from a caption to a grid of digits.

Live (needs a kernel):

* :class:`CaptionStudio` - type a caption (or pick its three words from dropdowns), press
  "generate": a grid of n digits from any text -> image generator
  ``generate(caption, n, scale, seed)``, each digit labelled with its *measured* caption
  (:func:`dgm.multimodal.describe`: the judge's digit, thickness and slant measured on the
  pixels), every word marked as agreeing (green ✓) or not (red ✗) with the request, and the
  grid's caption agreement, Eq. (7.3) (:func:`dgm.multimodal.caption_agreement`). A slider
  over the guidance scale w redraws the same noise (the same seed) at another w.

Static twin: ``CaptionStudio.gallery(captions)``, one frame per caption (precomputed grids),
for :func:`~dgm.widgets.as_html`.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dgm._checks import positive_int, positive_number
from dgm.data.captions import DIGIT_NAMES, SLANT_WORDS, THICKNESS_WORDS, parse
from dgm.data.captions import caption as caption_of
from dgm.multimodal import caption_agreement, describe
from dgm.widgets.autoregressive import _PaletteAnimation
from dgm.widgets.core import _figure_png, _LiveWidget, _rgb_of_figure

__all__ = ["CaptionStudio", "AGREE", "DISAGREE"]

#: Colour of a measured word that agrees with the request (green) and of one that does not (red).
AGREE, DISAGREE = "#1a7f37", "#cf222e"
_WORDS = ("digit", "thickness", "slant")   # the order of dgm.multimodal.ATTRIBUTES
_MAX_N = 32


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _check_caption(text, name: str) -> str:
    """A caption of the grammar, normalised to single spaces, or ValueError naming ``name``."""
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a caption string, got {type(text).__name__}")
    try:
        parse(text)
    except ValueError as err:
        raise ValueError(f"{name} is not a caption of the grammar: {err}") from None
    return " ".join(text.split())


def _check_scales(scales) -> tuple[float, ...]:
    try:
        values = [float(w) for w in scales]
    except (TypeError, ValueError):
        raise ValueError(f"scales must be a sequence of guidance scales, got {scales!r}") from None
    if any(isinstance(w, bool) for w in scales):
        raise ValueError(f"scales must be numbers, got {scales!r}")
    if len(values) < 2 or not all(math.isfinite(w) for w in values):
        raise ValueError(f"scales must hold at least two finite guidance scales, got {scales!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"scales must not repeat a value, got {scales!r}")
    return tuple(sorted(values))


def _words(text: str) -> tuple[str, str, str]:
    """(digit name, thickness word, slant word) of a caption of the grammar."""
    d, t, s = parse(text)
    return DIGIT_NAMES[d], THICKNESS_WORDS[t], SLANT_WORDS[s]


class _Sheet:
    """The picture: n digits in rows of at most 8, under each its three measured words (digit,
    thickness, slant) coloured by agreement with the request, and a header line."""

    def __init__(self, n: int, width: float):
        self.n = n
        ncol = min(n, 8)
        nrows = math.ceil(n / ncol)
        cell = width / ncol                    # inches per column
        side = 0.78 * cell                     # the digit's side
        words = 3 * 0.15                       # three lines of 7.5 pt
        header = 0.42
        row = side + words + 0.08
        height = header + nrows * row
        self.fig = Figure(figsize=(width, height), dpi=80)
        FigureCanvasAgg(self.fig)
        self.axes, self.images, self.texts = [], [], []
        for i in range(n):
            r, c = divmod(i, ncol)
            top = height - header - r * row
            left = c * cell + (cell - side) / 2
            box = (left / width, (top - side) / height, side / width, side / height)
            ax = self.fig.add_axes(box)
            ax.set_xticks([]), ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_linewidth(2.0)
            self.images.append(ax.imshow(np.zeros((28, 28)), cmap="gray", vmin=0.0, vmax=1.0,
                                         interpolation="nearest"))
            self.axes.append(ax)
            x = (c * cell + cell / 2) / width
            self.texts.append([
                self.fig.text(x, (top - side - 0.04 - k * 0.15) / height, "", ha="center", va="top",
                              fontsize=7.5)
                for k in range(3)
            ])
        self.header = self.fig.text(0.5, 1 - 0.06 / height, "", ha="center", va="top", fontsize=9)

    def draw(self, s: dict) -> None:
        """Show the state ``s`` of :meth:`CaptionStudio._state`."""
        wanted = _words(s["caption"])
        for i in range(self.n):
            self.images[i].set_data(s["pictures"][i])
            got = _words(s["measured"][i])
            ok = [g == w for g, w in zip(got, wanted)]
            for k, text in enumerate(self.texts[i]):
                text.set_text(f"{got[k]} {'✓' if ok[k] else '✗'}")
                text.set_color(AGREE if ok[k] else DISAGREE)
            for spine in self.axes[i].spines.values():
                spine.set_color(AGREE if all(ok) else DISAGREE)
        a, n = s["agreement"], self.n
        counts = ", ".join(f"{name} {round(a[name] * n)}/{n}" for name in (*_WORDS, "all"))
        self.header.set_text(f"“{s['caption']}”, w = {s['scale']:g}, seed {s['seed']}: "
                             f"agree on {counts}")


class CaptionStudio(_LiveWidget):
    """Caption -> digits: a grid from a text -> image generator, each digit's measured caption
    marked word by word against the request, and the grid's caption agreement, Eq. (7.3).

    ``generate(caption, n, scale, seed)`` is any text -> image generator (the lecture's
    latent-diffusion sampler with classifier-free guidance, Eq. (7.6), the token transformer, or
    a retrieval stub): it gets a caption of the grammar of :mod:`dgm.data.captions`, the number
    n of images, the guidance scale w and an int seed, and must return n images
    ``(n, 1, 28, 28)`` with values in [0, 1]. Results are cached per (caption, w, seed).

    Controls: a text box "caption" (the request; checked with :func:`dgm.data.captions.parse`
    when used: a bad caption shows the parse error in the widget and calls nothing); three
    dropdowns "thickness", "slant", "digit" that write their caption into the text box; a
    slider "guidance w" over ``scales`` that redraws the request with the same seed (so only
    the guidance changes); a button "generate" that draws a new batch (the next seed). An error
    of ``generate`` during a press is shown in the widget too (the picture stays as it was).

    Each digit is labelled with :func:`dgm.multimodal.describe` (its digit by ``classifier``,
    its thickness and slant measured on its pixels), each word green with ✓ when it agrees with
    the request and red with ✗ otherwise (the frame green when all three agree); the header and
    the caption give the agreement counts, ``n`` times the fractions A_a of
    :func:`dgm.multimodal.caption_agreement`.

    Args:
        generate: callable ``(caption: str, n: int, scale: float, seed: int) -> (n, 1, 28, 28)``.
        n: images per grid (1 ... 32; 8 fill one row).
        scales: the guidance scales w of the slider (at least two, distinct; sorted).
        scale: the starting w, one of ``scales`` (default: the middle one).
        seed: the starting seed; each "generate" adds one.
        caption: the starting request.
        classifier: the digit judge, a module (with parameters: they give its device) mapping
            images to 10 logits (default :func:`dgm.classifier.mnist_classifier`).
        width: inches of the picture at 80 dpi (7.0: 560 px).

    Attributes:
        text (Text "caption"), thickness, slant, digit (Dropdowns), scale (SelectionSlider
        "guidance w"), button (Button "generate"), message (HTML), image (PNG), caption (HTML),
        widget (VBox); shown (the (caption, w, seed) on screen); samples / measured /
        agreement / frame (caption, scale, seed); gallery(captions) -> the static twin.
    """

    def __init__(self, generate, *, n: int = 8, scales=(0, 1, 2, 3, 5), scale=None, seed: int = 0,
                 caption: str = "a thick slanted seven", classifier=None, width: float = 7.0):
        if not callable(generate):
            raise TypeError("generate must be a callable (caption, n, scale, seed) -> images, "
                            f"got {type(generate).__name__}")
        n = positive_int(n, "n")
        if n > _MAX_N:
            raise ValueError(f"n must be at most {_MAX_N} (one small grid), got {n}")
        scales = _check_scales(scales)
        if scale is None:
            scale = scales[(len(scales) - 1) // 2]
        if isinstance(scale, bool) or not isinstance(scale, Real) or float(scale) not in scales:
            raise ValueError(f"scale must be one of scales {scales}, got {scale!r}")
        if not _is_int(seed):
            raise ValueError(f"seed must be an int, got {seed!r}")
        if classifier is not None and not (isinstance(classifier, torch.nn.Module)
                                           and any(True for _ in classifier.parameters())):
            raise TypeError("classifier must be a torch.nn.Module with parameters mapping images "
                            f"to 10 logits, got {type(classifier).__name__}")
        text = _check_caption(caption, "caption")
        self.generate, self.n, self.scales, self.classifier = generate, n, scales, classifier
        self.seed = int(seed)
        self._width = positive_number(width, "width")
        self._cache: dict[tuple[str, float, int], dict] = {}
        self._sheet = _Sheet(n, self._width)
        self._quiet = False

        digit, thick, slanted = parse(text)
        self.text = widgets.Text(value=text, description="caption",
                                 layout=widgets.Layout(width="300px"))
        narrow = widgets.Layout(width="190px")
        self.thickness = widgets.Dropdown(options=THICKNESS_WORDS, value=THICKNESS_WORDS[thick],
                                          description="thickness", layout=narrow)
        self.slant = widgets.Dropdown(options=SLANT_WORDS, value=SLANT_WORDS[slanted],
                                      description="slant", layout=narrow)
        self.digit = widgets.Dropdown(options=DIGIT_NAMES, value=DIGIT_NAMES[digit],
                                      description="digit", layout=narrow)
        self.scale = widgets.SelectionSlider(options=[(f"{w:g}", w) for w in scales],
                                             value=float(scale), description="guidance w",
                                             layout=widgets.Layout(width="300px"))
        self.button = widgets.Button(description="generate", button_style="primary",
                                     tooltip="a new batch for the caption (the next seed)")
        self.message = widgets.HTML()
        self.caption = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.text.observe(self._on_text, names="value")
        for dropdown in (self.thickness, self.slant, self.digit):
            dropdown.observe(self._on_dropdown, names="value")
        self.scale.observe(lambda change: self._control(self.seed), names="value")
        self.button.on_click(lambda button: self._control(self.seed + 1))
        self.widget = widgets.VBox([
            widgets.HBox([self.text, self.button, self.scale]),
            widgets.HBox([self.thickness, self.slant, self.digit]),
            self.message, self.caption, self.image,
        ])
        self.shown: tuple[str, float, int] | None = None
        self._show(self.seed)

    # -- one grid: generate, measure, count
    def _key(self, text, scale, seed) -> tuple[str, float, int]:
        text = _check_caption(text, "caption")
        scale = float(self.scale.value if scale is None else scale)
        if not math.isfinite(scale):
            raise ValueError(f"scale must be a finite number, got {scale!r}")
        seed = self.seed if seed is None else seed
        if not _is_int(seed):
            raise ValueError(f"seed must be an int, got {seed!r}")
        return text, scale, int(seed)

    def _state(self, text=None, scale=None, seed=None) -> dict:
        text = self.text.value if text is None else text
        key = self._key(text, scale, seed)
        if key not in self._cache:
            out = self.generate(key[0], self.n, key[1], key[2])
            x = self._check_output(out)
            self._cache[key] = {
                "caption": key[0], "scale": key[1], "seed": key[2], "x": x,
                "pictures": x[:, 0].numpy(),
                "measured": describe(x, self.classifier),
                "agreement": caption_agreement(x, [key[0]] * self.n, self.classifier),
            }
        return self._cache[key]

    def _check_output(self, out) -> torch.Tensor:
        shape = (self.n, 1, 28, 28)
        if not isinstance(out, torch.Tensor) or not out.is_floating_point():
            raise TypeError(f"generate must return a float tensor of shape {shape}, "
                            f"got {getattr(out, 'dtype', type(out).__name__)}")
        if tuple(out.shape) != shape:
            raise ValueError(f"generate must return {self.n} images of shape {shape}, "
                             f"got {tuple(out.shape)}")
        out = out.detach().float().cpu()
        if not bool(torch.isfinite(out).all()):
            raise ValueError("generate returned NaN or infinite pixel values")
        if out.min() < -1e-3 or out.max() > 1 + 1e-3:
            raise ValueError("generate must return pixel values in [0, 1], got values in "
                             f"[{float(out.min()):.3g}, {float(out.max()):.3g}]")
        return out.clamp(0.0, 1.0)

    def samples(self, caption=None, scale=None, seed=None) -> torch.Tensor:
        """The n images ``generate(caption, n, scale, seed)`` (cached); by default the text box's
        caption, the slider's w and the starting seed."""
        return self._state(caption, scale, seed)["x"].clone()

    def measured(self, caption=None, scale=None, seed=None) -> list[str]:
        """:func:`dgm.multimodal.describe` of those images: what each one shows."""
        return list(self._state(caption, scale, seed)["measured"])

    def agreement(self, caption=None, scale=None, seed=None) -> dict[str, float]:
        """Eq. (7.3) of those images with their request
        (:func:`dgm.multimodal.caption_agreement`)."""
        return dict(self._state(caption, scale, seed)["agreement"])

    def frame(self, caption=None, scale=None, seed=None) -> np.ndarray:
        """The picture for a request, an ``(H, W, 3)`` array in [0, 1]."""
        self._sheet.draw(self._state(caption, scale, seed))
        return _rgb_of_figure(self._sheet.fig)

    # -- controls
    def _on_text(self, change) -> None:
        """Typing: a caption of the grammar sets the dropdowns (errors wait for "generate")."""
        try:
            digit, thick, slanted = parse(change["new"])
        except ValueError:
            return
        self.message.value = ""
        self._quiet = True
        try:
            self.thickness.value = THICKNESS_WORDS[thick]
            self.slant.value = SLANT_WORDS[slanted]
            self.digit.value = DIGIT_NAMES[digit]
        finally:
            self._quiet = False

    def _on_dropdown(self, change) -> None:
        """A dropdown writes its caption into the text box (nothing is generated yet)."""
        if self._quiet:
            return
        self.text.value = caption_of(DIGIT_NAMES.index(self.digit.value),
                                     THICKNESS_WORDS.index(self.thickness.value),
                                     SLANT_WORDS.index(self.slant.value))

    def _show(self, seed: int) -> None:
        """Generate (or recall) the text box's request at the slider's w with ``seed`` and show it;
        a caption off the grammar shows the parse error and leaves the picture as it was."""
        try:
            parse(self.text.value)
        except ValueError as err:
            self.message.value = (f'<span style="color:{DISAGREE}">not a caption: '
                                  f"{_escape(str(err))}</span>; nothing generated")
            return
        key = self._key(self.text.value, None, seed)
        self.message.value = ""
        s = self._state(*key)
        self.seed = key[2]
        self._sheet.draw(s)
        self.image.value = _figure_png(self._sheet.fig)
        self.shown = key
        a = s["agreement"]
        fractions = ", ".join(f"{name} {a[name]:.2f}" for name in (*_WORDS, "all"))
        self.caption.value = (f"<b>{_escape(key[0])}</b>, guidance w = {key[1]:g}, seed {key[2]}: "
                              f"caption agreement (7.3) over {self.n} digits: {fractions}")

    def _control(self, seed: int) -> None:
        """:meth:`_show` for a control: an error of the generator is shown in the widget (the
        picture stays), not raised into the kernel's log where a reader would not see it."""
        try:
            self._show(seed)
        except Exception as err:  # noqa: BLE001 - any error of the user's generator
            self.message.value = (f'<span style="color:{DISAGREE}">generate failed: '
                                  f"{type(err).__name__}: {_escape(str(err))}</span>")

    def _render(self) -> None:
        self._show(self.seed)

    # -- static twin
    def gallery(self, captions, scale=None, seed=None, interval: int = 1200,
                width: float | None = None) -> _PaletteAnimation:
        """Static twin: one frame per caption in ``captions`` (keep it <= 12), each the grid the
        widget shows for it at guidance ``scale`` (default: the slider's) with ``seed`` (default:
        the current one), ``width`` inches at 80 dpi (default: the widget's), for
        :func:`~dgm.widgets.as_html`; frames are 64-colour palette PNGs."""
        if isinstance(captions, str) or not hasattr(captions, "__iter__"):
            raise TypeError("captions must be a list of caption strings, "
                            f"got {type(captions).__name__}")
        captions = [_check_caption(c, f"captions[{i}]") for i, c in enumerate(captions)]
        if not captions:
            raise ValueError("captions must hold at least one caption")
        states = [self._state(c, scale, seed) for c in captions]
        sheet = _Sheet(self.n, self._width if width is None else positive_number(width, "width"))
        return _PaletteAnimation.of_states(sheet, states, interval)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
