"""Chapter 2: click in a VAE's two-dimensional code space and see the decoded picture.

* :class:`LatentPlane` - for a model with a 2-D code: click or drag a point z = (z_1, z_2) in a
  scatter plot of the data's codes (an ipympl canvas) and see the decoded picture f(z) next to it.

Its static twins, :func:`~dgm.widgets.manifold_grid` and :func:`~dgm.widgets.path_animation`,
are in :mod:`dgm.widgets.manifold` and share the helpers below: a model must have a 2-D code
(:func:`_check_code_dim`), codes are drawn coloured by label (:func:`_scatter_codes`).
"""

from __future__ import annotations

import math
import warnings

import ipywidgets as widgets
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.backend_bases import MouseButton
from matplotlib.figure import Figure

from dgm.widgets.core import (
    _as_points2d,
    _check_extent,
    _decode,
    _decode_fn,
    _extent_around,
    _LiveWidget,
    _png,
    _to_pictures,
)

__all__ = ["LatentPlane"]


def _check_code_dim(model_or_decoder, name: str) -> None:
    """A model that says how many latents it has must have exactly two."""
    code_dim = getattr(model_or_decoder, "code_dim", None)
    if code_dim is not None and code_dim != 2:
        raise ValueError(
            f"{name} must have a 2-D code space (code_dim=2) to match codes of shape (N, 2), "
            f"got code_dim={code_dim}"
        )


def _labels_list(labels, n: int, name: str = "labels") -> list | None:
    if labels is None:
        return None
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().tolist()
    elif isinstance(labels, np.ndarray):
        labels = labels.tolist()
    labels = list(labels)
    if len(labels) != n:
        raise ValueError(f"{name} must have one entry per code ({n}), got {len(labels)}")
    return labels


def _scatter_codes(ax, codes: torch.Tensor, labels: list | None, s: float = 4) -> None:
    """Codes as dots, one colour per label (tab10/tab20) with a small legend outside the axes."""
    pts = codes.numpy()
    if labels is None:
        ax.scatter(pts[:, 0], pts[:, 1], s=s, color="0.6", linewidths=0)
        return
    values = sorted(set(labels), key=lambda v: (str(type(v)), v))
    cmap = plt.get_cmap("tab10" if len(values) <= 10 else "tab20")
    lab = np.array(labels, dtype=object)
    for i, v in enumerate(values):
        keep = lab == v
        ax.scatter(pts[keep, 0], pts[keep, 1], s=s, color=cmap(i % cmap.N), linewidths=0, label=str(v))
    if len(values) <= 20:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, markerscale=2.5,
                  frameon=False, handletextpad=0.1, borderaxespad=0.2)


def _ipympl_classes():
    """ipympl's ``Canvas`` and ``FigureManager``, imported without changing the pyplot backend.

    Importing ipympl runs ``matplotlib.use("module://ipympl.backend_nbagg")`` (ipympl/__init__.py),
    which would turn every later ``plt.figure()`` of the notebook into a widget. We only need
    the classes, to wrap our own Figure in a canvas widget, so the previous backend is restored.
    """
    old_backend = matplotlib.get_backend()  # resolves "auto" first, as the next plt.figure() would
    old_fallback = matplotlib.rcParams["backend_fallback"]
    # imported here, not at the top: importing ipympl switches the backend (see above), and only
    # LatentPlane needs it
    from ipympl.backend_nbagg import Canvas, FigureManager

    if matplotlib.get_backend() != old_backend:
        matplotlib.use(old_backend)
    matplotlib.rcParams["backend_fallback"] = old_fallback
    return Canvas, FigureManager


class LatentPlane(_LiveWidget):
    """Click or drag in a 2-D code space and see the decoded picture (ipympl + ipywidgets 8).

    For a model with a two-dimensional latent z = (z_1, z_2), e.g. a VAE with ``code_dim=2``:

    * left, ``canvas``: an interactive matplotlib figure (an ipympl ``Canvas`` widget, made
      directly, so ``%matplotlib widget`` is *not* needed) showing ``codes`` (say mu_phi(x) of
      test images) as a scatter coloured by ``labels``, and a red cross at the current z.
      A left click moves the cross there; holding the button and dragging moves it along.
    * right, ``image``: an ``ipywidgets.Image`` (PNG) of the decoded picture f(z), i.e.
      E_{p_theta(x|z)}[x] for a VAE (``decode_mean``).
    * below, ``z1`` and ``z2``: FloatSliders, kept in sync with the cross, for the keyboard.

    The mouse handlers :meth:`on_press`, :meth:`on_motion` and :meth:`on_release` are connected
    with ``mpl_connect``, so synthetic ``MouseEvent`` objects processed by
    ``figure.canvas.callbacks`` drive the widget exactly like a real mouse.

    Args:
        model_or_decoder: a model with ``decode_mean`` or ``decode`` taking z of shape (N, 2), or
            a callable decoder. A model with a ``code_dim`` other than 2 is refused.
        codes: (N, 2) codes to draw (tensor or array), e.g. the encoder means of test images.
        labels: optional labels, one per code, for the colours.
        extent: ``(z1_min, z1_max, z2_min, z2_max)``, the region shown and the slider ranges;
            default the codes' bounding box widened by 10% (at least 0.5) on every side.
        scale: screen pixels per image pixel of the decoded picture; default about 160 pixels.

    Attributes:
        figure, ax, canvas, marker, image, z1, z2, caption, widget (the whole VBox).

    Raises:
        ValueError: codes not (N, 2), labels of the wrong length, a bad extent, or a model
            whose ``code_dim`` is not 2.
    """

    def __init__(self, model_or_decoder, codes, labels=None, extent=None, scale: int | None = None):
        Canvas, FigureManager = _ipympl_classes()
        _decode_fn(model_or_decoder, "model_or_decoder")
        _check_code_dim(model_or_decoder, "model_or_decoder")
        self.model = model_or_decoder
        self.codes = _as_points2d(codes, "codes")
        self.labels = _labels_list(labels, len(self.codes))
        self.extent = _extent_around(self.codes) if extent is None else _check_extent(extent)
        x0, x1, y0, y1 = self.extent
        self._left = MouseButton.LEFT

        # starting point: the prior's mean z = 0 if it is in view, else the middle of the view
        start = [0.0 if x0 <= 0.0 <= x1 else (x0 + x1) / 2, 0.0 if y0 <= 0.0 <= y1 else (y0 + y1) / 2]
        self._z = torch.tensor(start)
        self._dragging = False
        self._busy = False
        self._decoded = None

        # left: the figure, rendered by an ipympl canvas widget
        self.figure = Figure(figsize=(4.2, 3.6), dpi=80)
        self.ax = self.figure.add_axes((0.13, 0.12, 0.68, 0.8))
        _scatter_codes(self.ax, self.codes, self.labels)
        (self.marker,) = self.ax.plot(
            [start[0]], [start[1]], marker="x", color="red", markersize=12, markeredgewidth=2.5, zorder=5
        )
        self.ax.set_xlim(x0, x1)
        self.ax.set_ylim(y0, y1)
        self.ax.set_xlabel("$z_1$")
        self.ax.set_ylabel("$z_2$")
        self.ax.set_title("click or drag", fontsize=9)
        self.ax.set_navigate(False)  # no pan/zoom: the mouse is for moving the point
        self.canvas = Canvas(self.figure)
        with warnings.catch_warnings():  # ipympl 0.10's Toolbar trips a traitlets deprecation
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="traitlets")
            self.manager = FigureManager(self.canvas, 0)  # relays the browser's mouse messages
        self.canvas.toolbar_visible = False
        self.canvas.header_visible = False
        self.canvas.footer_visible = False
        self.canvas.resizable = False
        self._cids = [
            self.canvas.mpl_connect("button_press_event", self.on_press),
            self.canvas.mpl_connect("motion_notify_event", self.on_motion),
            self.canvas.mpl_connect("button_release_event", self.on_release),
            self.canvas.mpl_connect("figure_leave_event", self.on_release),
        ]

        # right: the decoded picture; below: sliders
        probe = _to_pictures(_decode(self.model, self._z[None], "model_or_decoder"))[0]
        self.scale = max(2, 160 // probe.shape[0]) if scale is None else int(scale)
        if self.scale < 1:
            raise ValueError(f"scale must be a positive int, got {scale!r}")
        self.image = widgets.Image(format="png")
        self.caption = widgets.HTML()
        layout = widgets.Layout(width="420px")
        self.z1 = widgets.FloatSlider(
            value=start[0], min=x0, max=x1, step=(x1 - x0) / 200, description="z_1",
            readout_format=".2f", layout=layout,
        )
        self.z2 = widgets.FloatSlider(
            value=start[1], min=y0, max=y1, step=(y1 - y0) / 200, description="z_2",
            readout_format=".2f", layout=layout,
        )
        self.z1.observe(lambda change: self._on_slider(0, change), names="value")
        self.z2.observe(lambda change: self._on_slider(1, change), names="value")
        right = widgets.VBox([self.caption, self.image], layout=widgets.Layout(justify_content="center"))
        self.widget = widgets.VBox([widgets.HBox([self.canvas, right]), self.z1, self.z2])
        self._render()

    # -- state
    def point(self) -> torch.Tensor:
        """The current code z = (z_1, z_2), shape ``(2,)`` (a copy, on the CPU)."""
        return self._z.clone()

    def decoded(self) -> torch.Tensor:
        """The decoder's output f(z) at the current point, one picture (e.g. ``(1, 28, 28)``), CPU."""
        return self._decoded.clone()

    def set_point(self, z1, z2) -> None:
        """Move the point to (z1, z2), which must lie inside ``extent``; re-decodes and redraws."""
        x0, x1, y0, y1 = self.extent
        for name, value, lo, hi in (("z1", z1, x0, x1), ("z2", z2, y0, y1)):
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.item()
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}")
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ValueError(f"{name} must be a finite number in [{lo:.3g}, {hi:.3g}] (extent), got {value!r}")
        self._move(float(z1), float(z2))

    def _move(self, z1: float, z2: float) -> None:
        self._z = torch.tensor([z1, z2], dtype=torch.float32)
        self._busy = True
        try:
            self.z1.value, self.z2.value = z1, z2
        finally:
            self._busy = False
        self._render()

    # -- mouse (matplotlib events) and sliders (ipywidgets events)
    def _in_plane(self, event) -> bool:
        return event.inaxes is self.ax and event.xdata is not None and event.ydata is not None

    def on_press(self, event) -> None:
        """Left button pressed inside the axes: move the point there and start dragging."""
        if event.button != self._left or not self._in_plane(event):
            return
        self._dragging = True
        self._move(float(event.xdata), float(event.ydata))

    def on_motion(self, event) -> None:
        """Mouse moved: follow it while dragging (button held), inside the axes only."""
        if not self._dragging:
            return
        if event.buttons and self._left not in event.buttons:  # released where we could not see it
            self._dragging = False
            return
        if self._in_plane(event):
            self._move(float(event.xdata), float(event.ydata))

    def on_release(self, event) -> None:
        """Button released (or the mouse left the figure): stop dragging."""
        self._dragging = False

    def _on_slider(self, i: int, change) -> None:
        if self._busy:
            return
        self._z[i] = float(change["new"])
        self._render()

    # -- drawing
    def _render(self) -> None:
        x_hat = _decode(self.model, self._z[None], "model_or_decoder")
        self._decoded = x_hat[0]
        self.image.value = _png(_to_pictures(x_hat)[0], self.scale)
        z1, z2 = self._z.tolist()
        self.marker.set_data([z1], [z2])
        self.caption.value = f"f(z) at z = ({z1:.2f}, {z2:.2f})"
        self.canvas.draw_idle()
