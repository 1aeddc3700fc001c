"""Chapter 5: diffusion models, live and as animations.

Live (needs a kernel):

* :class:`TimestepScrubber` - one slider over the step t = 0 ... T: the forward process
  x_t ~ q(x_t | x_0) of some data (Eq. 5.2, drawn once with fixed noise, so moving the slider is
  continuous) next to the state x_t of a precomputed reverse (sampling) trajectory at the same t;
  2-D points are drawn as scatter plots, images as two rows of pictures.
* :class:`GuidanceSlider` - a slider over the classifier-free guidance scale w of Eq. (5.10); each
  value shows the samples of ``sample_fn(w)`` (same starting noise for every w, so only the
  guidance changes).

Static twins: ``TimestepScrubber.animation(ts)`` and ``GuidanceSlider.animation(scales)``, one
frame per slider position, for :func:`~dgm.widgets.as_html`.
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.animation import FuncAnimation
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dgm.widgets.core import _LiveWidget, _grid, _png, _rgb_of_figure, _to_pictures
from dgm.widgets.player import _frames_animation

__all__ = ["TimestepScrubber", "GuidanceSlider"]


def _as_batch(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    return x.detach().float().cpu()


def _to_unit(x: torch.Tensor, value_range) -> torch.Tensor:
    lo, hi = value_range
    return ((x - lo) / (hi - lo)).clamp(0.0, 1.0)


class TimestepScrubber(_LiveWidget):
    """Scrub through the diffusion steps: forward x_t ~ q(x_t | x_0) | reverse trajectory at t.

    Slider position k = 0 ... T shows, on the left (top row for images), the maths' x_k of the
    forward process started at ``x0``: x_0 itself for k = 0, else
    ``schedule.q_sample(x0, k - 1, noise)`` with one fixed draw of the noise; and on the right
    (bottom row) ``trajectory[k]``, the state x_k of a reverse chain, as returned by
    ``dgm.diffusion.sample_ddpm(..., trajectory=True)`` (``trajectory[T]`` is the starting noise,
    ``trajectory[0]`` the sample). At k = 0 the left shows data, the right samples; at k = T both
    are (nearly) standard Gaussian noise.

    Args:
        schedule: the :class:`dgm.diffusion.NoiseSchedule` (T steps).
        x0: data, ``(N, 2)`` points or ``(N, C, H, W)`` images (keep N <= 10 for images).
        trajectory: ``(T + 1, M, ...)`` states of a reverse chain, same kind of data as x0.
        noise: the forward process's noise (shape of x0); default drawn with ``seed``.
        seed: seed of that draw.
        value_range: ``(lo, hi)`` of image values, mapped to black ... white (default (-1, 1)).
        lim: half-width of the square window of the scatter plots (points).
        scale: screen pixels per image pixel.

    Attributes:
        t (IntSlider), image (ipywidgets.Image, PNG), caption (HTML), widget (VBox);
        frame(k) -> the (H, W[, 3]) picture for slider position k; animation(ts) -> static twin.
    """

    def __init__(self, schedule, x0, trajectory, *, noise=None, seed: int = 0, value_range=(-1.0, 1.0),
                 lim: float = 3.5, scale: int | None = None):
        T = getattr(schedule, "T", None)
        if not isinstance(T, int) or not callable(getattr(schedule, "q_sample", None)):
            raise TypeError(f"schedule must be a dgm.diffusion.NoiseSchedule, got {type(schedule).__name__}")
        x0 = _as_batch(x0, "x0")
        trajectory = _as_batch(trajectory, "trajectory")
        if x0.dim() == 2 and x0.shape[1] == 2:
            self.kind = "points"
        elif x0.dim() == 4:
            self.kind = "images"
        else:
            raise ValueError(f"x0 must be points (N, 2) or images (N, C, H, W), got shape {tuple(x0.shape)}")
        if trajectory.dim() != x0.dim() + 1 or trajectory.shape[0] != T + 1 or trajectory.shape[2:] != x0.shape[1:]:
            raise ValueError(
                f"trajectory must have shape (T + 1, M, {', '.join(map(str, x0.shape[1:]))}) = "
                f"({T + 1}, M, ...) to match schedule and x0, got {tuple(trajectory.shape)}"
            )
        if noise is None:
            noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
        else:
            noise = _as_batch(noise, "noise")
            if noise.shape != x0.shape:
                raise ValueError(f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
        self.schedule, self.x0, self.trajectory, self.noise = schedule, x0, trajectory, noise
        self.T, self.value_range, self.lim = T, tuple(value_range), float(lim)
        if self.kind == "images":
            side = max(x0.shape[2], x0.shape[3])
            self.scale = max(2, 64 // side) if scale is None else int(scale)
        else:
            self.scale = 1
            self._setup_points()
        self.t = widgets.IntSlider(value=T, min=0, max=T, step=1, description="t",
                                   layout=widgets.Layout(width="520px"))
        self._slider_box(self.t)

    # -- the data shown at step k
    def forward_state(self, k: int) -> torch.Tensor:
        """The maths' x_k of the forward process (x_0 for k = 0)."""
        k = self._check_k(k)
        if k == 0:
            return self.x0.clone()
        return self.schedule.q_sample(self.x0, k - 1, self.noise)

    def reverse_state(self, k: int) -> torch.Tensor:
        """The state x_k of the reverse trajectory."""
        return self.trajectory[self._check_k(k)]

    def _check_k(self, k) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= self.T:
            raise ValueError(f"k must be a step in [0, T] = [0, {self.T}], got {k!r}")
        return int(k)

    # -- drawing
    def _setup_points(self) -> None:
        self._fig = Figure(figsize=(7.0, 3.5), dpi=72)
        FigureCanvasAgg(self._fig)
        self._axes = self._fig.subplots(1, 2)
        self._scatters = []
        for ax, color in zip(self._axes, ("C0", "C3")):
            self._scatters.append(ax.scatter([], [], s=3, color=color, alpha=0.6, linewidths=0))
            ax.set_xlim(-self.lim, self.lim)
            ax.set_ylim(-self.lim, self.lim)
            ax.set_aspect("equal")
            ax.tick_params(labelsize=7)
        self._titles = [ax.set_title("", fontsize=10) for ax in self._axes]
        self._fig.tight_layout()

    def frame(self, k: int) -> np.ndarray:
        """The picture for slider position k: (H, W, 3) for points, (H, W) for images, in [0, 1]."""
        fwd, rev = self.forward_state(k), self.reverse_state(k)
        if self.kind == "points":
            self._scatters[0].set_offsets(fwd.numpy())
            self._scatters[1].set_offsets(rev.numpy())
            self._titles[0].set_text(f"forward: $x_{{{k}}} \\sim q(x_{{{k}}} \\mid x_0)$")
            self._titles[1].set_text(f"reverse: $x_{{{k}}}$ of the sampler")
            return _rgb_of_figure(self._fig)
        n = max(len(fwd), len(rev))
        rows = []
        for batch in (fwd, rev):
            pics = _to_pictures(_to_unit(batch, self.value_range))
            if len(pics) < n:
                pad = np.ones((n - len(pics), *pics.shape[1:]))
                pics = np.concatenate([pics, pad])
            rows.append(pics)
        return _grid(np.concatenate(rows), nrow=n)

    def _render(self) -> None:
        k = int(self.t.value)
        picture = self.frame(k)
        self.image.value = _png(picture, self.scale)  # scale 1 for the points' rendered figure
        ab = 1.0 if k == 0 else float(self.schedule.alpha_bars[k - 1])
        where = "top row: forward x_t ~ q(x_t | x_0); bottom row: reverse chain" if self.kind == "images" else \
            "left: forward process; right: reverse chain"
        self.caption.value = (f"t = {k} of T = {self.T} &nbsp; alpha_bar_t = {ab:.4f}, "
                              f"signal sqrt(alpha_bar_t) = {math.sqrt(ab):.3f} &nbsp; ({where})")

    def animation(self, ts, interval: int = 250) -> FuncAnimation:
        """Static twin: one frame per step in ``ts`` (e.g. T, ..., 0; keep it <= 24 frames)."""
        ts = [self._check_k(int(k)) for k in ts]
        if not ts:
            raise ValueError("ts must be a non-empty sequence of steps")
        frames = [self.frame(k) for k in ts]
        titles = [f"t = {k} of {self.T}" + ("  (top: forward, bottom: reverse)" if self.kind == "images" else "")
                  for k in ts]
        return _frames_animation(frames, titles, interval=interval, width=6.5 if self.kind == "points" else 5.0)


class GuidanceSlider(_LiveWidget):
    """A slider over the classifier-free guidance scale w and the samples it gives.

    ``sample_fn(w)`` must return a batch of images (N, C, H, W) for guidance scale w, for example
    ``lambda w: sample_ddim(Guided(model, labels, w), shape, schedule, 20, noise=fixed_noise)``:
    with the same starting noise for every w, the pictures differ only by the guidance. Results
    are cached, so going back to a value is instant.

    Args:
        sample_fn: callable w -> images.
        scales: ``(min, max, step)`` of the slider.
        value: the starting w.
        labels: optional requested labels (length N), shown in the caption.
        nrow: pictures per row.
        value_range: ``(lo, hi)`` of image values, mapped to black ... white.
        scale: screen pixels per image pixel.

    Attributes:
        w (FloatSlider), image (ipywidgets.Image, PNG), caption (HTML), widget (VBox);
        samples(w) -> the images for w; animation(scales) -> static twin.
    """

    def __init__(self, sample_fn, scales=(0.0, 6.0, 0.5), value: float = 1.0, labels=None, nrow: int = 10,
                 value_range=(-1.0, 1.0), scale: int | None = None):
        if not callable(sample_fn):
            raise TypeError(f"sample_fn must be a callable w -> images, got {type(sample_fn).__name__}")
        lo, hi, step = (float(v) for v in scales)
        if not (hi > lo and step > 0):
            raise ValueError(f"scales must be (min, max, step) with max > min and step > 0, got {scales!r}")
        if not lo <= value <= hi:
            raise ValueError(f"value must lie in [{lo}, {hi}], got {value!r}")
        if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
            raise ValueError(f"nrow must be a positive int, got {nrow!r}")
        self.sample_fn, self.nrow, self.value_range = sample_fn, nrow, tuple(value_range)
        self.labels = None if labels is None else [int(v) for v in labels]
        self._cache: dict[float, torch.Tensor] = {}
        self._scale = scale
        self.w = widgets.FloatSlider(value=float(value), min=lo, max=hi, step=step, description="w",
                                     readout_format=".1f", layout=widgets.Layout(width="420px"))
        self._slider_box(self.w)

    def samples(self, w: float) -> torch.Tensor:
        """``sample_fn(w)`` on the CPU (cached)."""
        key = round(float(w), 6)
        if key not in self._cache:
            out = self.sample_fn(key)
            if not isinstance(out, torch.Tensor) or out.dim() != 4:
                raise ValueError(f"sample_fn must return images (N, C, H, W), got {getattr(out, 'shape', out)!r}")
            if self.labels is not None and len(out) != len(self.labels):
                raise ValueError(f"labels must have one entry per sample ({len(out)}), got {len(self.labels)}")
            self._cache[key] = out.detach().float().cpu()
        return self._cache[key]

    def frame(self, w: float) -> np.ndarray:
        """The tiled pictures for scale w, (H, W) or (H, W, 3) in [0, 1]."""
        pics = _to_pictures(_to_unit(self.samples(w), self.value_range))
        return _grid(pics, nrow=min(self.nrow, len(pics)))

    def _render(self) -> None:
        w = float(self.w.value)
        picture = self.frame(w)
        scale = self._scale or max(2, 48 // max(picture.shape[0] // max(1, math.ceil(len(self.samples(w)) / self.nrow)), 1))
        self.image.value = _png(picture, scale)
        what = "unconditional" if w == 0 else ("conditional, no guidance" if w == 1 else "guided")
        if self.labels is None:
            req = ""
        elif len(self.labels) <= self.nrow:
            req = f"; requested labels per column: {self.labels}"
        else:
            req = f"; requested labels, row by row: {self.labels}"
        self.caption.value = f"guidance scale w = {w:.1f} ({what}){req}"

    def animation(self, scales, interval: int = 500, width: float = 7.0) -> FuncAnimation:
        """Static twin: one frame per guidance scale in ``scales`` (keep it <= 12), ``width``
        inches wide at 80 dpi (7.0: 560 px, as wide as the book's text column allows)."""
        scales = [float(w) for w in scales]
        if not scales:
            raise ValueError("scales must be a non-empty sequence of guidance scales")
        frames = [self.frame(w) for w in scales]
        return _frames_animation(frames, [f"guidance scale w = {w:g}" for w in scales], interval=interval,
                                 width=width)
