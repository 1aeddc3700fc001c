"""Latent-space explorers: live ipywidgets for JupyterLab and their static twins for the book.

Live (needs a kernel):

* :class:`LatentExplorer` - pick an image x_a, see its code z = g(x_a) on sliders, move any slider
  and see f(z); pick a second image x_b and slide t to decode z = (1 - t) g(x_a) + t g(x_b).
* :class:`LatentPlane` - for a model with a 2-D code: click or drag a point z = (z_1, z_2) in a
  scatter plot of the data's codes (an ipympl canvas) and see the decoded picture f(z) next to it.

Static twins (plain matplotlib, work in the rendered book without a kernel):

* :func:`traversal_grid` - f(z + (v - z_d) e_d) for a grid of dims d (rows) and values v (columns).
* :func:`interpolation_animation` - f((1 - t) z_a + t z_b) for t from 0 to 1, as an animation.
* :func:`traversal_animation` - one latent dimension swept through values, as an animation.
* :func:`manifold_grid` - f(z) tiled over a regular grid of 2-D codes: the "learned data
  manifold" figure of a VAE with a 2-D latent space (the static twin of :class:`LatentPlane`).
* :func:`path_animation` - a point moving along a path in a 2-D code space (left) and the decoded
  picture at each step (right), as an animation (the other static twin of :class:`LatentPlane`).
* :func:`as_html` - an animation as a self-contained JS/HTML player (``anim.to_jshtml()``).

Every function takes the model or a bare decoder callable and decodes with, in this order of
preference, ``model.decode_mean`` (a :class:`dgm.vae.VAE`: the mean E[x|z], not logits),
``model.decode`` (an autoencoder, or ``VAE.as_autoencoder()``) or the callable itself. It runs
under ``torch.no_grad()`` in eval mode on the model's own device, and restores the model's
train/eval mode afterwards. Keep animations short (<= 24 frames) so the HTML stays small.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import HTML, display
from matplotlib.animation import FuncAnimation
from PIL import Image as PILImage

__all__ = [
    "LatentExplorer",
    "LatentPlane",
    "traversal_grid",
    "manifold_grid",
    "path_animation",
    "interpolation_animation",
    "traversal_animation",
    "as_html",
]


# ----------------------------------------------------------------------------- helpers
def _device_of(obj, fallback: torch.device | None = None) -> torch.device:
    """The device of a module's first parameter (or buffer); ``fallback`` (cpu) if it has none."""
    if isinstance(obj, torch.nn.Module):
        for tensor in obj.parameters():
            return tensor.device
        for tensor in obj.buffers():
            return tensor.device
    return fallback if fallback is not None else torch.device("cpu")


@contextlib.contextmanager
def _inference(obj):
    """``torch.no_grad()`` and eval mode for a module, restoring its previous mode on exit."""
    was_training = isinstance(obj, torch.nn.Module) and obj.training
    if isinstance(obj, torch.nn.Module):
        obj.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if was_training:
            obj.train()


def _decode_fn(model_or_decoder, name: str):
    """``model.decode_mean`` (a VAE: pictures, not logits), else ``model.decode``, else the callable."""
    fn = getattr(model_or_decoder, "decode_mean", None)
    if not callable(fn):
        fn = getattr(model_or_decoder, "decode", model_or_decoder)
    if not callable(fn):
        raise TypeError(
            f"{name} must be a model with .decode or a callable decoder, "
            f"got {type(model_or_decoder).__name__}"
        )
    return fn


def _decode(model_or_decoder, z: torch.Tensor, name: str = "decoder") -> torch.Tensor:
    """f(z) for a batch of codes, on the decoder's device, returned on the CPU."""
    fn = _decode_fn(model_or_decoder, name)
    device = _device_of(model_or_decoder, fallback=z.device)
    with _inference(model_or_decoder):
        return fn(z.to(device)).detach().float().cpu()


def _as_code(z, name: str) -> torch.Tensor:
    """A single code as a 1-D float tensor; accepts shape (code_dim,) or (1, code_dim)."""
    if isinstance(z, np.ndarray):
        z = torch.from_numpy(z)
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (code_dim,), got {type(z).__name__}")
    if z.dim() == 2 and z.shape[0] == 1:
        z = z[0]
    if z.dim() != 1:
        raise ValueError(f"{name} must have shape (code_dim,) or (1, code_dim), got {tuple(z.shape)}")
    return z.detach().float().cpu()


def _to_pictures(x: torch.Tensor) -> np.ndarray:
    """A batch of decoder outputs as displayable images in [0, 1]: (N, H, W) or (N, H, W, 3).

    Accepts (N, 1, H, W), (N, 3, H, W), (N, H, W) and flat (N, D) with D a perfect square.
    """
    x = x.detach().float().cpu()
    if x.dim() == 2:
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise ValueError(f"cannot show flat outputs of size {x.shape[1]} as square images")
        x = x.reshape(-1, side, side)
    if x.dim() == 4 and x.shape[1] == 1:
        x = x[:, 0]
    elif x.dim() == 4 and x.shape[1] == 3:
        x = x.permute(0, 2, 3, 1)
    elif x.dim() != 3:
        raise ValueError(f"cannot show outputs of shape {tuple(x.shape)} as images")
    return x.clamp(0.0, 1.0).numpy()


def _tile(pictures: np.ndarray, nrow: int, pad: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """Tile N pictures (N, H, W[, 3]) row by row, ``nrow`` per row, with a ``pad``-pixel border."""
    n, h, w = pictures.shape[:3]
    rows = math.ceil(n / nrow)
    out = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, *pictures.shape[3:]), pad_value)
    for i, pic in enumerate(pictures):
        r, c = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        out[top : top + h, left : left + w] = pic
    return out


def _png(picture: np.ndarray, scale: int = 4) -> bytes:
    """PNG bytes of a [0, 1] image, enlarged ``scale`` times with nearest-neighbour pixels."""
    img = PILImage.fromarray(np.round(picture * 255).astype(np.uint8))
    img = img.resize((img.width * scale, img.height * scale), PILImage.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="png")
    return buf.getvalue()


# ----------------------------------------------------------------------------- live widget
class LatentExplorer:
    """A live explorer of an autoencoder's code space (ipywidgets 8).

    Controls:

    * ``index`` (IntSlider): which image x_a; its code g(x_a) is loaded into the sliders.
    * ``sliders`` (list of FloatSlider): one per shown latent dim (``dims``); each sets z_d.
    * ``other`` (IntSlider): a second image x_b.
    * ``t`` (FloatSlider 0..1): sets the code to z = (1 - t) g(x_a) + t g(x_b).

    Any control that moves re-decodes and replaces ``image.value``, a PNG of three panels:
    x_a | f(z) | x_b. ``code()`` returns the current z; ``widget`` is the whole VBox.

    Args:
        model: an autoencoder with ``encode`` and ``decode``.
        images: a batch the model accepts, e.g. ``(N, 1, 28, 28)``; encoded once, up front.
        labels: optional labels (length N) shown in the caption.
        dims: which latent dims get sliders; default the ``n_sliders`` dims whose codes vary most
            over ``images``, largest spread first.
        n_sliders: how many sliders when ``dims`` is None.
        scale: screen pixels per image pixel; default about 128 pixels per panel (4x for 28x28,
            16x for 8x8).
    """

    def __init__(self, model, images, labels=None, dims=None, n_sliders: int = 8, scale: int | None = None):
        for attr in ("encode", "decode"):
            if not callable(getattr(model, attr, None)):
                raise TypeError(f"model must have an .{attr} method, got {type(model).__name__}")
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(images)
        if not isinstance(images, torch.Tensor) or images.dim() < 2 or len(images) == 0:
            raise ValueError("images must be a non-empty batch tensor (N, ...) that model.encode accepts")
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"labels must have one entry per image ({len(images)}), got {len(labels)}")
        self.model = model
        self.images = images.detach().float().cpu()
        self.labels = None if labels is None else [int(v) if hasattr(v, "__int__") else v for v in labels]

        device = _device_of(model)
        with _inference(model):
            self.codes = model.encode(self.images.to(device)).detach().float().cpu()
        self._pictures = _to_pictures(self.images)
        self.scale = max(2, 128 // self._pictures.shape[1]) if scale is None else int(scale)
        code_dim = self.codes.shape[1]

        spread = self.codes.std(0) if len(self.codes) > 1 else torch.zeros(code_dim)
        if dims is None:
            if not isinstance(n_sliders, int) or n_sliders < 1:
                raise ValueError(f"n_sliders must be a positive int, got {n_sliders!r}")
            order = torch.argsort(spread, descending=True, stable=True)
            dims = order[: min(n_sliders, code_dim)].tolist()
        dims = [int(d) for d in dims]
        if not dims or len(set(dims)) != len(dims) or not all(0 <= d < code_dim for d in dims):
            raise ValueError(f"dims must be distinct latent indices in [0, {code_dim}), got {dims}")
        self.dims = dims

        n = len(self.images)
        self._z = self.codes[0].clone()
        self._busy = False  # True while we set controls programmatically
        layout = widgets.Layout(width="420px")
        self.index = widgets.IntSlider(0, min=0, max=n - 1, description="image a", layout=layout)
        self.other = widgets.IntSlider(min(1, n - 1), min=0, max=n - 1, description="image b", layout=layout)
        self.t = widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="t", layout=layout)
        self.sliders = []
        lo_all, hi_all = self.codes.min(0).values, self.codes.max(0).values
        for d in dims:
            lo, hi = float(lo_all[d]), float(hi_all[d])
            margin = 0.25 * (hi - lo) if hi > lo else 1.0
            self.sliders.append(
                widgets.FloatSlider(
                    value=float(self._z[d]),
                    min=lo - margin,
                    max=hi + margin,
                    step=(hi - lo + 2 * margin) / 200,
                    description=f"z[{d}]",
                    readout_format=".2f",
                    layout=layout,
                )
            )
        self.caption = widgets.HTML()
        self.image = widgets.Image(format="png")

        self.index.observe(self._on_index, names="value")
        self.other.observe(self._on_interp, names="value")
        self.t.observe(self._on_interp, names="value")
        for d, slider in zip(dims, self.sliders):
            slider.observe(lambda change, d=d: self._on_slider(d, change), names="value")

        self.widget = widgets.VBox(
            [
                self.caption,
                self.image,
                self.index,
                self.other,
                self.t,
                widgets.HTML("<b>code z</b> (sliders for the dims that vary most)"),
                *self.sliders,
            ]
        )
        self._render()

    # -- state
    def code(self) -> torch.Tensor:
        """The current code z, shape ``(code_dim,)`` (a copy, on the CPU)."""
        return self._z.clone()

    def _set_sliders(self) -> None:
        self._busy = True
        try:
            for d, slider in zip(self.dims, self.sliders):
                slider.value = float(self._z[d])
        finally:
            self._busy = False

    # -- callbacks
    def _on_index(self, change) -> None:
        if self._busy:
            return
        self._z = self.codes[self.index.value].clone()
        self._busy = True
        try:
            self.t.value = 0.0
        finally:
            self._busy = False
        self._set_sliders()
        self._render()

    def _on_interp(self, change) -> None:
        if self._busy:
            return
        t = float(self.t.value)
        self._z = (1 - t) * self.codes[self.index.value] + t * self.codes[self.other.value]
        self._set_sliders()
        self._render()

    def _on_slider(self, d: int, change) -> None:
        if self._busy:
            return
        self._z[d] = float(change["new"])
        self._render()

    # -- drawing
    def _render(self) -> None:
        x_hat = _to_pictures(_decode(self.model, self._z[None], "model"))[0]
        a, b = self.index.value, self.other.value
        panels = np.stack([self._pictures[a], x_hat.astype(self._pictures.dtype), self._pictures[b]])
        self.image.value = _png(_tile(panels, nrow=3), self.scale)

        def name(i):
            return f"#{i}" + ("" if self.labels is None else f" (label {self.labels[i]})")

        sep = " &nbsp;|&nbsp; "
        self.caption.value = f"x_a = {name(a)}{sep}f(z){sep}x_b = {name(b)} &nbsp; t = {self.t.value:.2f}"

    def _ipython_display_(self) -> None:
        display(self.widget)


# ----------------------------------------------------------------------------- 2-D code space
def _as_points2d(points, name: str) -> torch.Tensor:
    """``points`` as a float (N, 2) CPU tensor with finite entries, N >= 1."""
    if isinstance(points, np.ndarray):
        points = torch.from_numpy(points)
    if not isinstance(points, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, 2), got {type(points).__name__}")
    if points.dim() != 2 or points.shape[1] != 2 or points.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, 2) with N >= 1 (2-D codes), got {tuple(points.shape)}")
    points = points.detach().float().cpu()
    if not bool(torch.isfinite(points).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return points


def _check_code_dim(model_or_decoder, name: str) -> None:
    """A model that says how many latents it has must have exactly two."""
    code_dim = getattr(model_or_decoder, "code_dim", None)
    if code_dim is not None and code_dim != 2:
        raise ValueError(
            f"{name} must have a 2-D code space (code_dim=2) to match codes of shape (N, 2), "
            f"got code_dim={code_dim}"
        )


def _check_extent(extent, name: str = "extent") -> tuple[float, float, float, float]:
    """``(z1_min, z1_max, z2_min, z2_max)`` as floats, finite, with min < max on both axes."""
    try:
        values = tuple(float(v) for v in extent)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (z1_min, z1_max, z2_min, z2_max), got {extent!r}") from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be four finite numbers (z1_min, z1_max, z2_min, z2_max), got {extent!r}")
    x0, x1, y0, y1 = values
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f"{name} must have z1_min < z1_max and z2_min < z2_max, got {extent!r}")
    return values


def _extent_around(points: torch.Tensor, margin: float = 0.1) -> tuple[float, float, float, float]:
    """The bounding box of ``points`` (N, 2), widened by ``margin`` of its size (at least 0.5) per side."""
    lo, hi = points.min(0).values, points.max(0).values
    pad = torch.clamp(margin * (hi - lo), min=0.5)
    lo, hi = lo - pad, hi + pad
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


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
    import matplotlib

    old_backend = matplotlib.get_backend()  # resolves "auto" first, as the next plt.figure() would
    old_fallback = matplotlib.rcParams["backend_fallback"]
    from ipympl.backend_nbagg import Canvas, FigureManager

    if matplotlib.get_backend() != old_backend:
        matplotlib.use(old_backend)
    matplotlib.rcParams["backend_fallback"] = old_fallback
    return Canvas, FigureManager


class LatentPlane:
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
        from matplotlib.backend_bases import MouseButton
        from matplotlib.figure import Figure

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

    def _ipython_display_(self) -> None:
        display(self.widget)


# ----------------------------------------------------------------------------- static twins
def traversal_grid(model_or_decoder, z, dims, values, ax=None):
    """Decode a latent traversal: row i changes z[dims[i]] to each of ``values`` (columns).

    All ``len(dims) * len(values)`` codes are decoded in one batch.

    Args:
        model_or_decoder: an autoencoder (its ``decode`` is used) or a callable f.
        z: the base code, shape ``(code_dim,)`` or ``(1, code_dim)``.
        dims: latent indices, one row each.
        values: the values given to z[d], one column each.
        ax: matplotlib Axes to draw on (a new figure if None).

    Returns:
        The Axes, with the tiled image, column ticks labelled by value and rows by ``z[d]``.
    """
    z = _as_code(z, "z")
    dims = [int(d) for d in dims]
    values = [float(v) for v in values]
    if not dims or not all(0 <= d < len(z) for d in dims):
        raise ValueError(f"dims must be a non-empty list of indices in [0, {len(z)}), got {dims}")
    if not values:
        raise ValueError("values must be a non-empty sequence of numbers")
    codes = z.repeat(len(dims) * len(values), 1)
    for i, d in enumerate(dims):
        codes[i * len(values) : (i + 1) * len(values), d] = torch.tensor(values)
    pictures = _to_pictures(_decode(model_or_decoder, codes, "model_or_decoder"))
    grid = _tile(pictures, nrow=len(values))

    if ax is None:
        _, ax = plt.subplots(figsize=(0.6 * len(values) + 0.8, 0.6 * len(dims) + 0.6))
    h, w = pictures.shape[1:3]
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([1 + c * (w + 1) + (w - 1) / 2 for c in range(len(values))])
    ax.set_xticklabels([f"{v:.3g}" for v in values], fontsize=7)
    ax.set_yticks([1 + r * (h + 1) + (h - 1) / 2 for r in range(len(dims))])
    ax.set_yticklabels([f"z[{d}]" for d in dims], fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    return ax


def _animate(pictures: np.ndarray, titles: list[str], interval: int = 150) -> FuncAnimation:
    """A FuncAnimation showing one picture per frame with its title (Agg-safe)."""
    fig, ax = plt.subplots(figsize=(2.2, 2.4), dpi=80)
    artist = ax.imshow(pictures[0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    title = ax.set_title(titles[0], fontsize=9)

    def update(i):
        artist.set_data(pictures[i])
        title.set_text(titles[i])
        return artist, title

    return FuncAnimation(fig, update, frames=len(pictures), interval=interval, blit=False)


def interpolation_animation(decoder, z_a, z_b, steps: int = 16) -> FuncAnimation:
    """Animate f((1 - t) z_a + t z_b) for ``steps`` values of t evenly spaced in [0, 1].

    Args:
        decoder: an autoencoder (its ``decode`` is used) or a callable f.
        z_a, z_b: the two end codes, shape ``(code_dim,)`` or ``(1, code_dim)``.
        steps: number of frames (>= 2; keep it <= 24 so the HTML stays small).

    Returns:
        A matplotlib FuncAnimation with exactly ``steps`` frames; show it with :func:`as_html`.
    """
    z_a, z_b = _as_code(z_a, "z_a"), _as_code(z_b, "z_b")
    if z_a.shape != z_b.shape:
        raise ValueError(f"z_b must have the shape of z_a {tuple(z_a.shape)}, got {tuple(z_b.shape)}")
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an int >= 2, got {steps!r}")
    ts = torch.linspace(0.0, 1.0, steps)
    codes = (1 - ts)[:, None] * z_a + ts[:, None] * z_b
    pictures = _to_pictures(_decode(decoder, codes, "decoder"))
    return _animate(pictures, [f"t = {t:.2f}" for t in ts.tolist()])


def traversal_animation(decoder, z, dim: int, values) -> FuncAnimation:
    """Animate f(z) while z[dim] sweeps through ``values`` (one frame per value).

    Args:
        decoder: an autoencoder (its ``decode`` is used) or a callable f.
        z: the base code, shape ``(code_dim,)`` or ``(1, code_dim)``.
        dim: the latent index to change.
        values: the values given to z[dim] (keep it <= 24 of them).

    Returns:
        A matplotlib FuncAnimation with ``len(values)`` frames; show it with :func:`as_html`.
    """
    z = _as_code(z, "z")
    if not isinstance(dim, int) or not 0 <= dim < len(z):
        raise ValueError(f"dim must be an index in [0, {len(z)}), got {dim!r}")
    values = [float(v) for v in values]
    if not values:
        raise ValueError("values must be a non-empty sequence of numbers")
    codes = z.repeat(len(values), 1)
    codes[:, dim] = torch.tensor(values)
    pictures = _to_pictures(_decode(decoder, codes, "decoder"))
    return _animate(pictures, [f"z[{dim}] = {v:.2f}" for v in values])


def manifold_grid(decoder, extent=(-3.0, 3.0, -3.0, 3.0), n: int = 15, ax=None):
    """The decoded "data manifold" of a 2-D code space: f(z) on a regular n x n grid of z.

    Column c shows z_1 = z1_min + c (z1_max - z1_min) / (n - 1) and row r (from the top) shows
    z_2 = z2_max - r (z2_max - z2_min) / (n - 1), so the picture is oriented like a scatter plot
    of the codes. The tiles touch (no padding) and the image is placed in code coordinates
    (each tile centred on its grid point), so codes can be drawn on top of it. For a VAE the
    mean E_{p_theta(x|z)}[x] is shown (``decode_mean``). All n^2 codes are decoded in one batch.
    The static twin of :class:`LatentPlane` (Kingma & Welling, 2014, Fig. 4).

    Args:
        decoder: a model (``decode_mean``/``decode``) with a 2-D code, or a callable f.
        extent: ``(z1_min, z1_max, z2_min, z2_max)``, the outermost grid points.
        n: grid points per axis (>= 2).
        ax: matplotlib Axes to draw on (a new figure if None).

    Returns:
        The Axes; ``ax.get_images()[0]`` holds the ``(n H, n W)`` (or ``(n H, n W, 3)``) mosaic.
    """
    _decode_fn(decoder, "decoder")
    _check_code_dim(decoder, "decoder")
    x0, x1, y0, y1 = _check_extent(extent)
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2 (grid points per axis), got {n!r}")
    z1 = torch.linspace(x0, x1, n)
    z2 = torch.linspace(y1, y0, n)  # top row first
    rows, cols = torch.meshgrid(z2, z1, indexing="ij")
    codes = torch.stack([cols.reshape(-1), rows.reshape(-1)], dim=1)  # codes[r * n + c] = (z1[c], z2[r])
    pictures = _to_pictures(_decode(decoder, codes, "decoder"))
    mosaic = _tile(pictures, nrow=n, pad=0)

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    dx, dy = (x1 - x0) / (n - 1), (y1 - y0) / (n - 1)
    ax.imshow(
        mosaic, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest",
        extent=(x0 - dx / 2, x1 + dx / 2, y0 - dy / 2, y1 + dy / 2),
    )
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    return ax


def path_animation(decoder, path, codes=None, labels=None, interval: int = 150) -> FuncAnimation:
    """Animate a walk z_1, ..., z_T through a 2-D code space: a marker moving over the codes
    (left) and the decoded picture f(z_t) (right), one frame per point of ``path``.

    The static twin of :class:`LatentPlane` for the book: precompute the points a reader would
    click, e.g. a straight line between two class centres or a circle around the origin.

    Args:
        decoder: a model (``decode_mean``/``decode``) with a 2-D code, or a callable f.
        path: the points z_t, shape ``(T, 2)`` (keep T <= 24 so the HTML stays small).
        codes: optional ``(N, 2)`` codes drawn as a scatter behind the path.
        labels: optional labels of ``codes`` (one colour each).
        interval: milliseconds per frame.

    Returns:
        A matplotlib FuncAnimation with exactly T frames; show it with :func:`as_html`.
    """
    _decode_fn(decoder, "decoder")
    _check_code_dim(decoder, "decoder")
    path = _as_points2d(path, "path")
    if codes is not None:
        codes = _as_points2d(codes, "codes")
        labels = _labels_list(labels, len(codes))
    elif labels is not None:
        raise ValueError("labels were given without codes; pass codes=(N, 2) to colour them")
    pictures = _to_pictures(_decode(decoder, path, "decoder"))
    extent = _extent_around(path if codes is None else torch.cat([codes, path]))

    fig, (left, right) = plt.subplots(1, 2, figsize=(5.2, 2.5), dpi=80, width_ratios=(1.25, 1))
    if codes is not None:
        _scatter_codes(left, codes, None if labels is None else labels, s=2)
        if left.get_legend() is not None:
            left.get_legend().remove()  # no room; the colours match LatentPlane's legend
    pts = path.numpy()
    left.plot(pts[:, 0], pts[:, 1], color="0.3", linewidth=0.8, linestyle="--")
    (marker,) = left.plot([pts[0, 0]], [pts[0, 1]], marker="x", color="red", markersize=10, markeredgewidth=2.5)
    left.set_xlim(extent[0], extent[1])
    left.set_ylim(extent[2], extent[3])
    left.set_xlabel("$z_1$", fontsize=8)
    left.set_ylabel("$z_2$", fontsize=8)
    left.tick_params(labelsize=7)
    artist = right.imshow(pictures[0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    right.set_axis_off()
    title = right.set_title("", fontsize=9)
    fig.tight_layout()

    def update(i):
        marker.set_data([pts[i, 0]], [pts[i, 1]])
        artist.set_data(pictures[i])
        title.set_text(f"z = ({pts[i, 0]:.2f}, {pts[i, 1]:.2f})")
        return marker, artist, title

    update(0)
    return FuncAnimation(fig, update, frames=len(pts), interval=interval, blit=False)


def as_html(anim: FuncAnimation) -> HTML:
    """The static twin: ``anim`` as a self-contained JS/HTML player for the book.

    Closes the animation's figure so the notebook does not also print a static frame.
    """
    if not isinstance(anim, FuncAnimation):
        raise TypeError(f"anim must be a matplotlib FuncAnimation, got {type(anim).__name__}")
    try:
        html = anim.to_jshtml()
    finally:
        plt.close(anim._fig)
    return HTML(html)
