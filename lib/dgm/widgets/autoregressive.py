"""Chapter 6: autoregressive models, an image drawn pixel by pixel.

Live (needs a kernel):

* :class:`PixelSampler` - a slider over the generation step i of an image model
  (:class:`dgm.autoregressive.GatedPixelCNN` or :class:`~dgm.autoregressive.PixelCNN`): the image
  so far x_{<i}, the conditional p(x_i | x_{<i}) of the next pixel over its K levels, and the
  context the masks let the model see for it; a "complete this digit" mode starts from a given
  image whose lower half is removed.

Static twin: ``PixelSampler.animation(steps)``, one frame per step, for
:func:`~dgm.widgets.as_html`.

Why every frame is cheap. Sampling, Eq. (6.7), draws x_i ~ softmax(logits_i / T) with one forward
pass per pixel. The network is causal (the masks of Eq. (6.4)): the logits at pixel i do not
depend on the pixels at or after i. So the logits at i of the *finished* image are exactly those
of the pass that drew x_i, and one pass ``model(x)`` of the finished sample gives every step's
conditional; their log-probabilities summed over j < i are Eq. (6.1) building up log p(x).
"""

from __future__ import annotations

import base64
import io
import re
from numbers import Integral

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.animation import FuncAnimation
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image as PILImage

from dgm._checks import positive_number, shape_tuple
from dgm.autoregressive import ImageAutoregressive, receptive_field, sample
from dgm.widgets.core import _device_of, _figure_png, _inference, _LiveWidget

__all__ = ["PixelSampler", "MODES", "UNDRAWN", "CONTEXT"]

#: Dropdown label -> mode name.
MODES = {"sample": "sample", "complete this digit": "complete"}
#: RGB of a pixel not drawn yet (pale blue: distinct from every grey level).
UNDRAWN = (0.80, 0.87, 0.97)
#: RGB mixed into the pixels the model sees for the next pixel (orange).
CONTEXT = (1.0, 0.55, 0.0)
_MIX = 0.55  # weight of CONTEXT in a seen pixel's colour


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _gray_rgb(v: np.ndarray) -> np.ndarray:
    return np.repeat(v[..., None], 3, axis=-1)


class _Panels:
    """The three panels on one Agg figure: image so far | p(x_i | x_<i) | context."""

    def __init__(self, shape, levels: int, width: float):
        h, w = shape
        self.fig = Figure(figsize=(width, 0.42 * width), dpi=80)
        FigureCanvasAgg(self.fig)
        axes = self.fig.subplots(1, 3, gridspec_kw={"width_ratios": (1.0, 0.9, 1.0)})
        self.ax_img, self.ax_bar, self.ax_ctx = axes
        blank = np.ones((h, w, 3))
        self.im = self.ax_img.imshow(blank, vmin=0, vmax=1, interpolation="nearest")
        self.ctx = self.ax_ctx.imshow(blank, vmin=0, vmax=1, interpolation="nearest")
        self.marks = []
        for ax in (self.ax_img, self.ax_ctx):
            ax.set_xticks([]), ax.set_yticks([])
            mark = Rectangle((-0.5, -0.5), 1, 1, fill=False, ec="red", lw=1.5)
            self.marks.append(ax.add_patch(mark))
        self.bars = self.ax_bar.bar(np.arange(levels), np.zeros(levels),
                                    width=0.8 if levels < 32 else 1.0, color="C0")
        self.ax_bar.set_ylim(0, 1.05)
        self.ax_bar.set_xlim(-0.6, levels - 0.4)
        if levels <= 16:
            self.ax_bar.set_xticks(range(levels))
        self.ax_bar.set_xlabel("level k of x_i", fontsize=8)
        self.ax_bar.tick_params(labelsize=7)
        self.titles = [ax.set_title("", fontsize=9) for ax in axes]
        self.suptitle = self.fig.suptitle("", fontsize=9)
        self.fig.subplots_adjust(left=0.02, right=0.98, bottom=0.13, top=0.83, wspace=0.22)

    def draw(self, s: dict) -> None:
        self.im.set_data(s["picture"])
        self.ctx.set_data(s["context_picture"])
        for mark in self.marks:
            mark.set_visible(s["pixel"] is not None)
            if s["pixel"] is not None:
                mark.set_xy((s["pixel"][1] - 0.5, s["pixel"][0] - 0.5))
        probs = s["probs"] if s["probs"] is not None else np.zeros(len(self.bars))
        for k, bar in enumerate(self.bars):
            bar.set_height(float(probs[k]))
            bar.set_color("C3" if k == s["drawn"] else "C0")
        self.titles[0].set_text(f"$x_{{<i}}$, i = {s['i']} of D = {s['D']}")
        if s["pixel"] is None:
            self.titles[1].set_text("done: every pixel drawn")
            self.titles[2].set_text("no next pixel")
        else:
            p = "p_T" if s["temperature"] != 1 else "p"
            self.titles[1].set_text(
                f"${p}(x_i \\mid x_{{<i}})$ at {s['pixel']}, drawn {s['drawn']}")
            self.titles[2].set_text(f"context of $x_i$: {s['seen']} pixels")
        what = r"$\log p(x_{<i})$" if s["start"] == 0 else r"$\log p$(drawn pixels | upper half)"
        self.suptitle.set_text(f"{s['label']}: {what} = {s['log_p']:.2f} nats (red square: $x_i$)")


_FRAME = re.compile(r'(frames\[\d+\] = "data:image/png;base64,)([^"]*)"')


def _palette_png(match: re.Match) -> str:
    """One embedded frame of ``to_jshtml`` re-encoded as a 64-colour palette PNG."""
    raw = base64.b64decode(match.group(2).replace("\\\n", ""))
    buf = io.BytesIO()
    picture = PILImage.open(io.BytesIO(raw)).convert("RGB")
    picture.quantize(64).save(buf, format="png", optimize=True)
    return f'{match.group(1)}{base64.b64encode(buf.getvalue()).decode("ascii")}"'


class _PaletteAnimation(FuncAnimation):
    """A FuncAnimation whose JS-HTML player embeds 64-colour palette PNGs: about 3 times
    smaller than matplotlib's RGBA frames for these flat-coloured panels, and looks the same."""

    def to_jshtml(self, *args, **kwargs) -> str:
        return _FRAME.sub(_palette_png, super().to_jshtml(*args, **kwargs))

    @classmethod
    def of_states(cls, painter, states, interval):
        """One frame per state, drawn by ``painter.draw(state)`` on ``painter.fig``."""
        painter.draw(states[0])

        def update(k):
            painter.draw(states[k])
            return ()

        return cls(painter.fig, update, frames=len(states), interval=interval, blit=False)


class PixelSampler(_LiveWidget):
    """A slider over the steps of sampling an image pixel by pixel in raster order, Eq. (6.7).

    On construction one image is drawn with :func:`dgm.autoregressive.sample` (seeded, so
    ``sample(model, 1, shape, generator=torch.Generator(device).manual_seed(seed))`` gives the
    same image); in "complete this digit" mode (when ``given`` is passed; drawn the first time
    it is shown) the upper half ``given[:H // 2]`` is kept and the lower half drawn, as in
    ``sample(..., given=given, known=upper half)``, with the same seed. Step i = 0 ... D
    (D = H W; from (H // 2) W in completion mode) shows:

    * left: the image so far, x_{<i} (pixels not drawn yet in pale blue :data:`UNDRAWN`), the next
      pixel x_i outlined in red;
    * middle: its conditional p(x_i | x_{<i}) = softmax(logits_i / T) over the K levels, the level
      that was drawn in red;
    * right: its context, the pixels its logits depend on (``receptive_field``, by autograd; tinted
      orange :data:`CONTEXT`); the rest of x_{<i} faded: too far, or the plain PixelCNN's blind
      spot.

    All conditionals come from one forward pass of the finished image (the model is causal, see
    the module docstring); the title's log p(x_<i) is the running sum of Eq. (6.1).

    Args:
        model: a :class:`~dgm.autoregressive.GatedPixelCNN` or
            :class:`~dgm.autoregressive.PixelCNN` with one data channel.
        shape: ``(H, W)`` or ``(1, H, W)`` of the image.
        given: one image to complete, ``(H, W)``, ``(1, H, W)`` or ``(1, 1, H, W)``, floats
            k / (K - 1) or integer levels (e.g. a binarized test digit ``x_test[0]``).
        c: the class label, for (and only for) a class-conditional model.
        seed: seed of the draws (same seed for both modes).
        temperature: T > 0 of Eq. (6.7).
        step: the starting step (default: halfway).
        width: inches of the picture at 80 dpi (7.0: 560 px).

    Attributes:
        step (IntSlider "step i"), mode (Dropdown "mode"), image (PNG), caption (HTML), widget;
        x(mode), probs(i), context(i), picture(i), context_picture(i), log_p(i), frame(i);
        animation(steps) -> the static twin.
    """

    def __init__(self, model, shape=(28, 28), *, given=None, c=None, seed: int = 0,
                 temperature: float = 1.0, step: int | None = None, width: float = 7.0):
        if not isinstance(model, ImageAutoregressive):
            raise TypeError("model must be a dgm.autoregressive PixelCNN or GatedPixelCNN, "
                            f"got {type(model).__name__}")
        if model.in_channels != 1:
            raise ValueError("model must have one data channel (in_channels=1), "
                             f"got {model.in_channels}")
        shape = shape_tuple(shape, "shape")
        shape = shape[1:] if len(shape) == 3 and shape[0] == 1 else shape
        if len(shape) != 2 or min(shape) < 2:
            raise ValueError(f"shape must be (H, W) or (1, H, W) with H, W >= 2, got {shape!r}")
        if (model.num_classes is None) != (c is None):
            raise ValueError("c must be a class label for a class-conditional model and None "
                             f"otherwise, got c={c!r} for num_classes={model.num_classes}")
        if c is not None and not (_is_int(c) and 0 <= c < model.num_classes):
            raise ValueError(f"c must be an int label in [0, {model.num_classes - 1}], got {c!r}")
        if not _is_int(seed):
            raise ValueError(f"seed must be an int, got {seed!r}")
        self.model, self.shape, self.seed = model, shape, int(seed)
        self.c = None if c is None else int(c)
        self.temperature = positive_number(temperature, "temperature")
        self.levels, self.D = model.levels, shape[0] * shape[1]
        self.given = None if given is None else self._check_given(given)
        self._runs: dict[str, dict] = {}
        self._fields: dict[tuple[int, int], torch.Tensor] = {}
        self._panels = _Panels(shape, self.levels, positive_number(width, "width"))
        options = [(label, m) for label, m in MODES.items()
                   if m == "sample" or self.given is not None]
        self.mode = widgets.Dropdown(options=options, value="sample", description="mode",
                                     disabled=len(options) == 1)
        start = self.start("sample")
        value = (start + self.D) // 2 if step is None else self._check_step(step, "sample")
        self.step = widgets.IntSlider(value=value, min=start, max=self.D, description="step i",
                                      layout=widgets.Layout(width="520px"))
        self._quiet = False
        self.caption = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.step.observe(lambda change: None if self._quiet else self._render(), names="value")
        self.mode.observe(self._on_mode, names="value")
        self.widget = widgets.VBox([self.caption, self.image, widgets.HBox([self.step, self.mode])])
        self._render()

    # -- arguments
    def _check_given(self, given) -> torch.Tensor:
        if not isinstance(given, torch.Tensor):
            raise TypeError(f"given must be a torch.Tensor (one image), got {type(given).__name__}")
        h, w = self.shape
        if given.shape not in ((h, w), (1, h, w), (1, 1, h, w)):
            raise ValueError(f"given must be one image of shape ({h}, {w}), (1, {h}, {w}) or "
                             f"(1, 1, {h}, {w}), got {tuple(given.shape)}")
        return self.model.to_levels(given.detach().cpu(), "given").reshape(h, w)

    def _check_mode(self, mode) -> str:
        mode = MODES.get(mode, mode)
        if mode not in ("sample", "complete"):
            raise ValueError(f"mode must be 'sample' or 'complete', got {mode!r}")
        if mode == "complete" and self.given is None:
            raise ValueError("mode 'complete' needs given (the image to complete)")
        return mode

    def start(self, mode: str = "sample") -> int:
        """The first step of a mode: 0, or (H // 2) W when the upper half is given."""
        return (self.shape[0] // 2) * self.shape[1] if self._check_mode(mode) == "complete" else 0

    def _check_step(self, i, mode) -> int:
        lo = self.start(mode)
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not lo <= i <= self.D:
            raise ValueError(f"step i must be an int in [{lo}, D = {self.D}] for mode {mode!r}, "
                             f"got {i!r}")
        return int(i)

    # -- the precomputed run of a mode: the image and all its conditionals (one pass)
    def _run(self, mode: str) -> dict:
        mode = self._check_mode(mode)
        if mode not in self._runs:
            model, (h, w) = self.model, self.shape
            device = _device_of(model)
            gen = torch.Generator(device=device).manual_seed(self.seed)
            c = None if self.c is None else torch.tensor([self.c], device=device)
            kw = {}
            if mode == "complete":
                known = torch.zeros(h, w, dtype=torch.bool)
                known[: h // 2] = True
                kw = {"given": self.given, "known": known}
            x = sample(model, 1, (1, h, w), generator=gen, temperature=self.temperature, c=c, **kw)
            with _inference(model):
                logits = model(x, c)[0, :, 0]  # (K, H, W): logits_i for every i, Eq. (6.7)
            probs = torch.softmax(logits.double() / self.temperature, dim=0)
            probs = probs.reshape(self.levels, -1).T.cpu()  # (D, K)
            levels = model.to_levels(x)[0, 0].cpu()
            log_p = torch.log(probs.gather(1, levels.reshape(-1, 1))[:, 0])
            log_p[: self.start(mode)] = 0.0  # given pixels are not drawn
            cum = torch.cat([torch.zeros(1, dtype=log_p.dtype), log_p.cumsum(0)])
            self._runs[mode] = {"x": x.detach().float().cpu(), "levels": levels, "probs": probs,
                                "cum": cum}
        return self._runs[mode]

    def _mode(self, mode) -> str:
        return self._check_mode(self.mode.value if mode is None else mode)

    def x(self, mode=None) -> torch.Tensor:
        """The finished image of a mode, ``(1, 1, H, W)`` floats k / (K - 1)."""
        return self._run(self._mode(mode))["x"].clone()

    def probs(self, i: int, mode=None) -> torch.Tensor | None:
        """p_T(x_i | x_{<i}) over the K levels (float64), None at i = D."""
        mode = self._mode(mode)
        i = self._check_step(i, mode)
        return None if i == self.D else self._run(mode)["probs"][i].clone()

    def log_p(self, i: int, mode=None) -> float:
        """sum over the drawn j < i of log p_T(x_j | x_{<j}), Eq. (6.1) so far (nats)."""
        mode = self._mode(mode)
        return float(self._run(mode)["cum"][self._check_step(i, mode)])

    def context(self, i: int, mode=None) -> torch.Tensor:
        """Boolean ``(H, W)`` map of the pixels the logits at step i depend on (empty at i = D)."""
        i = self._check_step(i, self._mode(mode))
        if i == self.D:
            return torch.zeros(self.shape, dtype=torch.bool)
        pixel = divmod(i, self.shape[1])
        if pixel not in self._fields:
            self._fields[pixel] = receptive_field(self.model, self.shape, pixel, c=self.c)
        return self._fields[pixel].clone()

    def picture(self, i: int, mode=None) -> np.ndarray:
        """``(H, W, 3)`` RGB of x_{<i}: grey levels before step i, :data:`UNDRAWN` from i on."""
        mode = self._mode(mode)
        i = self._check_step(i, mode)
        rgb = _gray_rgb(self._run(mode)["levels"].numpy() / (self.levels - 1))
        rgb[np.arange(self.D).reshape(self.shape) >= i] = UNDRAWN
        return rgb

    def context_picture(self, i: int, mode=None) -> np.ndarray:
        """``(H, W, 3)`` RGB: x_{<i} with its context tinted :data:`CONTEXT`, the rest faded."""
        mode = self._mode(mode)
        rgb = self.picture(i, mode)
        seen = self.context(i, mode).numpy()
        drawn = np.arange(self.D).reshape(self.shape) < i
        rgb[drawn & ~seen] = 0.55 + 0.45 * rgb[drawn & ~seen]
        rgb[seen] = _MIX * np.asarray(CONTEXT) + (1 - _MIX) * rgb[seen]
        return rgb

    def _state(self, i: int, mode: str) -> dict:
        i = self._check_step(i, mode)
        done = i == self.D
        probs = self.probs(i, mode)
        return {"i": i, "D": self.D, "start": self.start(mode), "temperature": self.temperature,
                "log_p": self.log_p(i, mode),
                "label": next(label for label, m in MODES.items() if m == mode),
                "picture": self.picture(i, mode), "context_picture": self.context_picture(i, mode),
                "pixel": None if done else divmod(i, self.shape[1]),
                "probs": None if done else probs.numpy(),
                "drawn": None if done else int(self._run(mode)["levels"].reshape(-1)[i]),
                "seen": int(self.context(i, mode).sum())}

    def frame(self, i: int, mode=None) -> np.ndarray:
        """The three panels at step i as an ``(H, W, 3)`` RGB array in [0, 1]."""
        self._panels.draw(self._state(i, self._mode(mode)))
        self._panels.fig.canvas.draw()
        return np.asarray(self._panels.fig.canvas.buffer_rgba())[..., :3] / 255.0

    # -- live widget
    def _on_mode(self, change) -> None:
        start = self.start(change["new"])
        self._quiet = True
        try:
            self.step.min = start
            self.step.value = max(self.step.value, start)
        finally:
            self._quiet = False
        self._render()

    def _render(self) -> None:
        mode, i = self._mode(None), int(self.step.value)
        s = self._state(i, mode)
        self._panels.draw(s)
        self.image.value = _figure_png(self._panels.fig)
        head = f"<b>{s['label']}</b>: step i = {i} of D = {self.D}"
        if s["pixel"] is None:
            total = "log p(x)" if s["start"] == 0 else "log p(lower half | upper half)"
            self.caption.value = f"{head}, finished: {total} = {s['log_p']:.2f} nats"
        else:  # one short line: the caption box of ipywidgets does not wrap
            self.caption.value = (f"{head}; x_i at {s['pixel']} drawn {s['drawn']}, "
                                  f"p = {s['probs'][s['drawn']]:.3f} &nbsp; "
                                  "(pale blue: not drawn yet; orange: its context)")

    # -- static twin
    def animation(self, steps, mode=None, interval: int = 400, width: float = 7.0) -> FuncAnimation:
        """Static twin: one frame per step in ``steps`` (keep it <= 16) of ``mode`` (default: the
        dropdown's), ``width`` inches at 80 dpi (7.0: 560 px), for :func:`~dgm.widgets.as_html`."""
        mode = self._mode(mode)
        steps = [self._check_step(i, mode) for i in steps]
        if not steps:
            raise ValueError("steps must be a non-empty sequence of steps i")
        states = [self._state(i, mode) for i in steps]
        panels = _Panels(self.shape, self.levels, positive_number(width, "width"))
        return _PaletteAnimation.of_states(panels, states, interval)
