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


# Inline SVG icons (16x16, currentColor) for the player's buttons, replacing matplotlib's
# Font Awesome 4 icons, whose stylesheet would be fetched from a CDN by every reader.
_SVG = '<svg width="12" height="12" viewBox="0 0 16 16" fill="currentColor" aria-hidden="true">{}</svg>'
_PLAYER_ICONS = {
    "minus": '<rect x="2" y="7" width="12" height="2"/>',
    "plus": '<rect x="2" y="7" width="12" height="2"/><rect x="7" y="2" width="2" height="12"/>',
    "play": '<path d="M4 2 L14 8 L4 14 Z"/>',
    "play fa-flip-horizontal": '<path d="M12 2 L2 8 L12 14 Z"/>',
    "pause": '<rect x="3" y="2" width="3.5" height="12"/><rect x="9.5" y="2" width="3.5" height="12"/>',
    "step-forward": '<path d="M2 2 L11 8 L2 14 Z"/><rect x="11.5" y="2" width="2.5" height="12"/>',
    "step-backward": '<path d="M14 2 L5 8 L14 14 Z"/><rect x="2" y="2" width="2.5" height="12"/>',
    "fast-forward": '<path d="M1 2 L7 8 L1 14 Z M7 2 L13 8 L7 14 Z"/><rect x="13" y="2" width="2" height="12"/>',
    "fast-backward": '<path d="M15 2 L9 8 L15 14 Z M9 2 L3 8 L9 14 Z"/><rect x="1" y="2" width="2" height="12"/>',
}


def _offline_player(html: str) -> str:
    """``to_jshtml()`` output without its one external resource (Font Awesome from a CDN).

    The ``<link>`` to the stylesheet is dropped and each ``<i class="fa fa-NAME">`` icon becomes
    an inline SVG, so the player works offline and the book loads nothing from another host.
    """
    import re

    html = re.sub(r'<link rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*">\s*', "", html)

    def icon(match):
        name = match.group(1)
        if name not in _PLAYER_ICONS:
            raise ValueError(f"unexpected icon fa-{name} in matplotlib's animation player")
        return _SVG.format(_PLAYER_ICONS[name])

    return re.sub(r'<i class="fa fa-([a-z -]+?)"></i>', icon, html)


def as_html(anim: FuncAnimation) -> HTML:
    """The static twin: ``anim`` as a self-contained JS/HTML player for the book.

    Self-contained means offline too: the player's icons are inline SVG (see
    :func:`_offline_player`), not matplotlib's Font Awesome stylesheet from a CDN.
    Closes the animation's figure so the notebook does not also print a static frame.
    """
    if not isinstance(anim, FuncAnimation):
        raise TypeError(f"anim must be a matplotlib FuncAnimation, got {type(anim).__name__}")
    try:
        html = anim.to_jshtml()
    finally:
        plt.close(anim._fig)
    return HTML(_offline_player(html))


# ---- Chapter 3: the GAN game ----
#
# Live (needs a kernel):
#
# * GANLatentExplorer - G(z_a) | G(z) | G(z_b) for a generator: sliders set the first latent dims
#   of z, t interpolates z = (1 - t) z_a + t z_b, buttons draw new z_a / z_b, and a conditional
#   generator gets a label menu.
# * GANPlayground - a 2-D GAN trained live: choose the game (saturating, non-saturating, WGAN-GP),
#   k, both learning rates; "run N steps" plays N rounds and redraws the samples over the
#   discriminator's decision surface, with both losses.
#
# Static twins: interpolation_animation (above) for the explorer; gan_training_animation (one
# column per game, one frame per snapshot) for the playground. gan_snapshot makes the snapshot_fn
# that dgm.gan.GANTrainer.train records them with.

__all__ += ["GANLatentExplorer", "GANPlayground", "gan_snapshot", "draw_gan_state", "gan_training_animation"]

_GAN_PLAYGROUND_LOSSES = ("saturating", "nonsaturating", "wgan-gp")


def _generate(generator, z: torch.Tensor, y=None) -> torch.Tensor:
    """G(z) (or G(z | y)) on the generator's device, eval mode, no gradients; returned on the CPU."""
    device = _device_of(generator, fallback=z.device)
    with _inference(generator):
        if y is None:
            return generator(z.to(device)).detach().float().cpu()
        return generator(z.to(device), y.to(device)).detach().float().cpu()


class GANLatentExplorer:
    """A live explorer of a generator's latent space (ipywidgets 8).

    Controls:

    * ``sliders`` (list of FloatSlider, range [-3, 3]): one per shown latent dim (``dims``); each
      sets z_d of the current code.
    * ``t`` (FloatSlider 0..1): sets the code to z = (1 - t) z_a + t z_b.
    * ``new_a`` / ``new_b`` (Button): draw a new z_a / z_b ~ N(0, I) (the code jumps to z_a / z_b).
    * ``label`` (Dropdown, conditional generators only): the label y of G(z | y).

    Any control that moves regenerates and replaces ``image.value``, a PNG of three panels:
    G(z_a) | G(z) | G(z_b). ``code()`` returns the current z, ``picture()`` the current G(z).

    Args:
        generator: a module mapping z ``(N, latent_dim)`` (and labels, if ``num_classes`` is set)
            to images, e.g. :class:`dgm.gan.DCGANGenerator`.
        dims: which latent dims get sliders (default the first ``n_sliders``).
        n_sliders: how many sliders when ``dims`` is None.
        seed: seed of the z_a, z_b draws (the same seed gives the same start).
        scale: screen pixels per image pixel (default about 128 pixels per panel).
    """

    def __init__(self, generator, dims=None, n_sliders: int = 6, seed: int = 0, scale: int | None = None):
        latent_dim = getattr(generator, "latent_dim", None)
        if not isinstance(generator, torch.nn.Module) or not isinstance(latent_dim, int):
            raise TypeError(
                f"generator must be a torch.nn.Module with an int latent_dim, got {type(generator).__name__}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.generator = generator
        self.num_classes = getattr(generator, "num_classes", None)
        if dims is None:
            if isinstance(n_sliders, bool) or not isinstance(n_sliders, int) or n_sliders < 1:
                raise ValueError(f"n_sliders must be a positive int, got {n_sliders!r}")
            dims = list(range(min(n_sliders, latent_dim)))
        dims = [int(d) for d in dims]
        if not dims or len(set(dims)) != len(dims) or not all(0 <= d < latent_dim for d in dims):
            raise ValueError(f"dims must be distinct latent indices in [0, {latent_dim}), got {dims}")
        self.dims = dims
        self._rng = torch.Generator().manual_seed(seed)
        self.z_a = torch.randn(latent_dim, generator=self._rng)
        self.z_b = torch.randn(latent_dim, generator=self._rng)
        self._z = self.z_a.clone()
        self._busy = False

        layout = widgets.Layout(width="420px")
        self.t = widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="t", layout=layout)
        self.sliders = [
            widgets.FloatSlider(value=float(self._z[d]), min=-3.0, max=3.0, step=0.05, description=f"z[{d}]",
                                readout_format=".2f", layout=layout)
            for d in dims
        ]
        self.new_a = widgets.Button(description="new z_a")
        self.new_b = widgets.Button(description="new z_b")
        self.label = None
        if self.num_classes is not None:
            self.label = widgets.Dropdown(options=list(range(self.num_classes)), value=0, description="label y")
            self.label.observe(lambda change: self._render(), names="value")
        self.caption = widgets.HTML()
        self.image = widgets.Image(format="png")

        self.t.observe(self._on_t, names="value")
        for d, slider in zip(dims, self.sliders):
            slider.observe(lambda change, d=d: self._on_slider(d, change), names="value")
        self.new_a.on_click(lambda _: self.resample("a"))
        self.new_b.on_click(lambda _: self.resample("b"))

        probe = _to_pictures(self._generate(torch.stack([self.z_a])))[0]
        self.scale = max(2, 128 // probe.shape[0]) if scale is None else int(scale)
        if self.scale < 1:
            raise ValueError(f"scale must be a positive int, got {scale!r}")
        buttons = [self.new_a, self.new_b] + ([self.label] if self.label is not None else [])
        self.widget = widgets.VBox(
            [self.caption, self.image, widgets.HBox(buttons), self.t,
             widgets.HTML("<b>code z</b> (sliders for the first latent dims)"), *self.sliders]
        )
        self._render()

    # -- state
    def code(self) -> torch.Tensor:
        """The current code z, shape ``(latent_dim,)`` (a copy, on the CPU)."""
        return self._z.clone()

    def picture(self) -> torch.Tensor:
        """The current generated image G(z) (or G(z | y)), e.g. ``(1, 28, 28)``, on the CPU."""
        return self._picture.clone()

    def resample(self, which: str) -> None:
        """Draw a new z_a (``which="a"``) or z_b (``"b"``) from N(0, I) and jump to it."""
        if which not in ("a", "b"):
            raise ValueError(f"which must be 'a' or 'b', got {which!r}")
        fresh = torch.randn(len(self._z), generator=self._rng)
        if which == "a":
            self.z_a = fresh
        else:
            self.z_b = fresh
        self._z = self.z_a.clone() if which == "a" else self.z_b.clone()
        self._busy = True
        try:
            self.t.value = 0.0 if which == "a" else 1.0
        finally:
            self._busy = False
        self._set_sliders()
        self._render()

    def _labels(self, n: int):
        if self.label is None:
            return None
        return torch.full((n,), int(self.label.value), dtype=torch.long)

    def _generate(self, z: torch.Tensor) -> torch.Tensor:
        return _generate(self.generator, z, self._labels(len(z)))

    def _set_sliders(self) -> None:
        self._busy = True
        try:
            for d, slider in zip(self.dims, self.sliders):
                slider.value = float(min(3.0, max(-3.0, self._z[d])))
        finally:
            self._busy = False

    # -- callbacks
    def _on_t(self, change) -> None:
        if self._busy:
            return
        t = float(self.t.value)
        self._z = (1 - t) * self.z_a + t * self.z_b
        self._set_sliders()
        self._render()

    def _on_slider(self, d: int, change) -> None:
        if self._busy:
            return
        self._z[d] = float(change["new"])
        self._render()

    # -- drawing
    def _render(self) -> None:
        out = self._generate(torch.stack([self.z_a, self._z, self.z_b]))
        self._picture = out[1]
        self.image.value = _png(_tile(_to_pictures(out), nrow=3), self.scale)
        label = "" if self.label is None else f" &nbsp; y = {self.label.value}"
        sep = " &nbsp;|&nbsp; "
        self.caption.value = f"G(z_a){sep}G(z){sep}G(z_b) &nbsp; t = {self.t.value:.2f}{label}"

    def _ipython_display_(self) -> None:
        display(self.widget)


def _gan_surface_kind(loss: str) -> str:
    return "logit" if loss in ("wgan", "wgan-gp") else "prob"


def gan_snapshot(extent=(-3.0, 3.0, -3.0, 3.0), n: int = 500, grid: int = 48, kind: str = "prob", seed: int = 0):
    """A ``snapshot_fn`` for :meth:`dgm.gan.GANTrainer.train` recording what the 2-D pictures show.

    Each call returns ``{"samples": (n, 2) generator samples (the same z every time),
    "surface": (grid, grid) decision surface over extent}`` (see :func:`dgm.gan.decision_surface`;
    ``kind="prob"`` shows D(x), ``"logit"`` a WGAN critic's score).
    """
    from dgm.gan import decision_surface

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    _check_extent(extent)

    def snapshot(trainer):
        gen = torch.Generator().manual_seed(seed)
        return {
            "samples": trainer.sample(n, generator=gen).float().cpu(),
            "surface": decision_surface(trainer.discriminator, extent, n=grid, kind=kind),
        }

    return snapshot


def draw_gan_state(ax, real, fake, surface=None, extent=(-3.0, 3.0, -3.0, 3.0), kind: str = "prob", title=None,
                   levels: int | None = 9):
    """Draw one state of a 2-D GAN: the decision surface (if given), real points (black) and
    generated points (red). Returns ``(image or None, fake scatter)`` for animations.

    ``kind="prob"`` colours D(x) on a fixed [0, 1] scale (0.5 = cannot tell; blue = "real");
    ``"logit"`` colours a critic's score, centred on its median. ``levels`` colours (bands of
    equal width; None = a continuous scale): banded surfaces are easier to read and keep the
    frames of an animation small.
    """
    if kind not in ("prob", "logit"):
        raise ValueError(f"kind must be 'prob' or 'logit', got {kind!r}")
    if levels is not None and (isinstance(levels, bool) or not isinstance(levels, int) or levels < 2):
        raise ValueError(f"levels must be None or an int >= 2, got {levels!r}")
    x0, x1, y0, y1 = _check_extent(extent)
    image = None
    if surface is not None:
        surface = np.asarray(surface, dtype=float)
        if kind == "prob":
            vmin, vmax = 0.0, 1.0
        else:
            mid = float(np.median(surface))
            half = float(np.abs(surface - mid).max()) or 1.0
            vmin, vmax = mid - half, mid + half
        cmap = plt.get_cmap("coolwarm_r", levels) if levels is not None else "coolwarm_r"
        image = ax.imshow(surface, origin="lower", extent=(x0, x1, y0, y1), cmap=cmap, vmin=vmin, vmax=vmax,
                          alpha=0.75, interpolation="nearest" if levels is not None else "bilinear", aspect="equal")
    real = _as_points2d(real, "real").numpy()
    fake = _as_points2d(fake, "fake").numpy()
    ax.scatter(real[:, 0], real[:, 1], s=2, color="black", alpha=0.35, label="data")
    scatter = ax.scatter(fake[:, 0], fake[:, 1], s=3, color="red", alpha=0.8, label="G(z)")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=9)
    return image, scatter


def gan_training_animation(runs, real, extent=(-3.0, 3.0, -3.0, 3.0), kinds=None, interval: int = 250,
                           max_points: int = 500, dpi: int = 72, ncols: int | None = None,
                           panel_size: float = 2.4) -> FuncAnimation:
    """Animate 2-D GAN training: one panel per run, one frame per snapshot.

    Args:
        runs: dict ``name -> snapshots`` where snapshots is ``history.snapshots`` recorded with
            :func:`gan_snapshot`: a list of ``(step, {"samples", "surface"})``. Every run must
            have the same number of snapshots (frame i shows snapshot i of each run).
        real: the data each run was trained on, drawn in black behind its panel: a dict
            ``name -> points (M, 2)`` with one entry per run, or one array (M, 2) when every
            run was trained on the same data.
        extent: the window (and the surfaces' extent).
        kinds: dict ``name -> "prob" | "logit"`` (default "prob").
        interval: milliseconds per frame.
        max_points: at most this many generated (and real) points are drawn per panel.
        dpi: resolution of the frames (the HTML grows with it: about 2-3 kB per panel and frame
            at the default).
        ncols: panels per row (default: all in one row); more runs wrap onto further rows.
        panel_size: width of one panel in inches (the figure is ``ncols * panel_size`` wide).

    Returns:
        A FuncAnimation with one frame per snapshot; show it with :func:`as_html`.
    """
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1:
        raise ValueError(f"max_points must be a positive int, got {max_points!r}")
    if not isinstance(runs, dict) or not runs:
        raise ValueError("runs must be a non-empty dict name -> list of (step, snapshot)")
    lengths = {name: len(snaps) for name, snaps in runs.items()}
    if len(set(lengths.values())) != 1 or 0 in lengths.values():
        raise ValueError(f"every run needs the same non-zero number of snapshots, got {lengths}")
    for name, snaps in runs.items():
        step, snap = snaps[0]
        if not isinstance(snap, dict) or "samples" not in snap:
            raise ValueError(f"runs[{name!r}] must hold (step, {{'samples', 'surface'}}) pairs (see gan_snapshot)")
    kinds = {} if kinds is None else dict(kinds)
    names = list(runs)
    if isinstance(real, dict):
        if set(real) != set(names):
            raise ValueError(f"real must have one entry per run: runs {sorted(names)}, real {sorted(real)}")
        reals = {name: _as_points2d(real[name], f"real[{name!r}]")[:max_points] for name in names}
    else:
        points = _as_points2d(real, "real")[:max_points]
        reals = {name: points for name in names}
    if ncols is None:
        ncols = len(names)
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
    if isinstance(panel_size, bool) or not isinstance(panel_size, (int, float)) or not panel_size > 0:
        raise ValueError(f"panel_size must be a positive number of inches, got {panel_size!r}")
    ncols = min(ncols, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols, (panel_size + 0.2) * nrows), dpi=dpi,
                             squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_axis_off()
    artists = []
    for ax, name in zip(axes.flat, names):
        step, snap = runs[name][0]
        image, scatter = draw_gan_state(ax, reals[name], snap["samples"][:max_points], snap.get("surface"), extent,
                                        kinds.get(name, "prob"))
        artists.append((ax, image, scatter))
    fig.tight_layout()

    def update(i):
        out = []
        for (ax, image, scatter), name in zip(artists, names):
            step, snap = runs[name][i]
            scatter.set_offsets(_as_points2d(snap["samples"], "samples")[:max_points].numpy())
            if image is not None and snap.get("surface") is not None:
                surface = np.asarray(snap["surface"], dtype=float)
                image.set_data(surface)
                if kinds.get(name, "prob") != "prob":
                    mid = float(np.median(surface))
                    half = float(np.abs(surface - mid).max()) or 1.0
                    image.set_clim(mid - half, mid + half)
            ax.set_title(f"{name}, step {step}", fontsize=9)
            out += [scatter] + ([image] if image is not None else [])
        return out

    update(0)
    return FuncAnimation(fig, update, frames=lengths[names[0]], interval=interval, blit=False)


class GANPlayground:
    """A 2-D GAN trained live in the notebook (ipywidgets 8).

    Controls:

    * ``loss`` (Dropdown): ``"saturating"``, ``"nonsaturating"`` or ``"wgan-gp"``; changing it
      restarts the game from the same initial networks.
    * ``k`` (IntSlider): discriminator steps per generator step.
    * ``lr_g``, ``lr_d`` (FloatLogSlider): the two Adam learning rates (applied at once).
    * ``n_steps`` (IntSlider) and ``run`` (Button): play that many rounds (generator steps).
    * ``reset`` (Button): back to the initial networks.

    After every change ``image.value`` holds a PNG: left, generated samples (red) over the data
    (black) on the discriminator's decision surface D(x) (the critic's score for WGAN-GP); right,
    both players' losses so far. :meth:`run_steps` is what the button calls.

    Args:
        data: training points (N, 2), e.g. ``dgm.data.toy2d("ring8", 5000)``.
        loss, k, lr_g, lr_d, n_steps: initial control values.
        hidden: hidden widths of both MLPs; latent_dim: dimension of z.
        batch_size: examples per step.
        extent: the window; default the data's bounding box plus a margin.
        seed: seeds the networks and the game (``reset`` returns to the same start).
    """

    def __init__(self, data, loss: str = "nonsaturating", k: int = 1, lr_g: float = 1e-3, lr_d: float = 1e-3,
                 n_steps: int = 200, hidden=(64, 64, 64), latent_dim: int = 2, batch_size: int = 128,
                 extent=None, seed: int = 0):
        self.data = _as_points2d(data, "data")
        if loss not in _GAN_PLAYGROUND_LOSSES:
            raise ValueError(f"loss must be one of {', '.join(map(repr, _GAN_PLAYGROUND_LOSSES))}; got {loss!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.extent = _extent_around(self.data) if extent is None else _check_extent(extent)
        self.hidden, self.latent_dim, self.batch_size, self.seed = hidden, latent_dim, batch_size, seed

        layout = widgets.Layout(width="420px")
        self.loss = widgets.Dropdown(options=list(_GAN_PLAYGROUND_LOSSES), value=loss, description="game")
        self.k = widgets.IntSlider(value=k, min=1, max=10, description="k (D steps)", layout=layout)
        self.lr_g = widgets.FloatLogSlider(value=lr_g, base=10, min=-5, max=-1.5, description="lr G",
                                           readout_format=".1e", layout=layout)
        self.lr_d = widgets.FloatLogSlider(value=lr_d, base=10, min=-5, max=-1.5, description="lr D",
                                           readout_format=".1e", layout=layout)
        self.n_steps = widgets.IntSlider(value=n_steps, min=10, max=2000, step=10, description="N steps",
                                         layout=layout)
        self.run = widgets.Button(description="run N steps", button_style="primary")
        self.reset = widgets.Button(description="reset")
        self.status = widgets.HTML()
        self.image = widgets.Image(format="png")

        self.loss.observe(lambda change: self._restart(), names="value")
        self.k.observe(self._on_k, names="value")
        self.lr_g.observe(lambda change: self._set_lr(self.trainer.opt_g, change["new"]), names="value")
        self.lr_d.observe(lambda change: self._set_lr(self.trainer.opt_d, change["new"]), names="value")
        self.run.on_click(lambda _: self.run_steps())
        self.reset.on_click(lambda _: self._restart())
        self.widget = widgets.VBox([
            self.status, self.image,
            widgets.HBox([self.loss, self.run, self.reset]),
            self.n_steps, self.k, self.lr_g, self.lr_d,
        ])
        self._restart()

    # -- the game
    def _restart(self) -> None:
        from dgm.gan import GANTrainer, MLPDiscriminator, MLPGenerator

        torch.manual_seed(self.seed)
        generator = MLPGenerator(self.latent_dim, 2, hidden=self.hidden)
        discriminator = MLPDiscriminator(2, hidden=self.hidden)
        wgan = self.loss.value == "wgan-gp"
        self.trainer = GANTrainer(
            generator, discriminator, self.data, loss=self.loss.value, k=int(self.k.value),
            batch_size=self.batch_size, lr_g=float(self.lr_g.value), lr_d=float(self.lr_d.value),
            # WGAN-GP: the 2-D recipe of lecture 3 (lambda = 0.1, betas (0.5, 0.9))
            betas=(0.5, 0.9) if wgan else (0.5, 0.999), gp_weight=0.1 if wgan else 10.0,
            seed=self.seed,
        )
        self._render()

    def _on_k(self, change) -> None:
        self.trainer.k = int(change["new"])
        self._render()

    def _set_lr(self, optimizer, lr) -> None:
        for group in optimizer.param_groups:
            group["lr"] = float(lr)
        self._render()

    def run_steps(self, n: int | None = None) -> None:
        """Play ``n`` rounds (default: the ``n_steps`` slider) and redraw."""
        n = int(self.n_steps.value) if n is None else n
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        self.run.disabled = True
        try:
            self.trainer.train(n)
        finally:
            self.run.disabled = False
        self._render()

    def samples(self, n: int = 500) -> torch.Tensor:
        """n generator samples (the same z every time), CPU, shape (n, 2)."""
        return self.trainer.sample(n, generator=torch.Generator().manual_seed(self.seed))

    def surface(self, grid: int = 64) -> torch.Tensor:
        """The decision surface D(x) (critic score for WGAN-GP) over the extent, (grid, grid)."""
        from dgm.gan import decision_surface

        return decision_surface(self.trainer.discriminator, self.extent, n=grid,
                                kind=_gan_surface_kind(self.loss.value))

    # -- drawing
    def _render(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8.4, 3.8), dpi=72)
        FigureCanvasAgg(fig)
        left, right = fig.subplots(1, 2, width_ratios=(1, 1.15))
        kind = _gan_surface_kind(self.loss.value)
        surface_name = "D(x)" if kind == "prob" else "critic f(x)"
        draw_gan_state(left, self.data[:1500], self.samples(), self.surface(), self.extent, kind,
                       title=f"samples on {surface_name}")
        h = self.trainer.history
        if h.steps:
            steps = np.arange(1, h.steps + 1)
            right.plot(steps, h.d_loss, label="discriminator loss", lw=1)
            right.plot(steps, h.g_loss, label="generator loss", lw=1)
            right.legend(fontsize=8)
            right.set_xlabel("generator step")
        else:
            right.text(0.5, 0.5, "press 'run N steps'", ha="center", va="center", transform=right.transAxes)
        right.set_title("losses", fontsize=9)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        self.image.value = buf.getvalue()
        self.status.value = (f"game <b>{self.loss.value}</b>, k = {self.trainer.k}, "
                             f"step {self.trainer.steps}")

    def _ipython_display_(self) -> None:
        display(self.widget)


# ---- Chapter 5: diffusion models ----
#
# Live (needs a kernel):
#
# * TimestepScrubber - one slider over the step t = 0 ... T: the forward process x_t ~ q(x_t | x_0)
#   of some data (drawn once with fixed noise, so moving the slider is continuous) next to the
#   state x_t of a precomputed reverse (sampling) trajectory at the same t; 2-D points are drawn
#   as scatter plots, images as two rows of pictures.
# * GuidanceSlider - a slider over the classifier-free guidance scale w; each value shows the
#   samples of ``sample_fn(w)`` (same starting noise for every w, so only the guidance changes).
#
# Static twins: TimestepScrubber.animation(ts) and GuidanceSlider.animation(scales), one frame
# per slider position, for as_html.

__all__ += ["TimestepScrubber", "GuidanceSlider"]


def _rgb_of_figure(fig) -> np.ndarray:
    """An Agg-rendered matplotlib Figure as an (H, W, 3) float array in [0, 1]."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(np.float64) / 255.0


def _frames_animation(frames: list[np.ndarray], titles: list[str], interval: int = 200,
                      width: float = 6.0) -> FuncAnimation:
    """A FuncAnimation showing pre-rendered RGB/gray frames, one per step, with a title each."""
    h, w = frames[0].shape[:2]
    fig, ax = plt.subplots(figsize=(width, width * h / w + 0.35), dpi=80)
    gray = frames[0].ndim == 2
    artist = ax.imshow(frames[0], cmap="gray" if gray else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    title = ax.set_title(titles[0], fontsize=10)
    fig.tight_layout()

    def update(i):
        artist.set_data(frames[i])
        title.set_text(titles[i])
        return artist, title

    return FuncAnimation(fig, update, frames=len(frames), interval=interval, blit=False)


def _as_batch(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    return x.detach().float().cpu()


def _to_unit(x: torch.Tensor, value_range) -> torch.Tensor:
    lo, hi = value_range
    return ((x - lo) / (hi - lo)).clamp(0.0, 1.0)


class TimestepScrubber:
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
        self.caption = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.t.observe(lambda change: self._render(), names="value")
        self.widget = widgets.VBox([self.caption, self.image, self.t])
        self._render()

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
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

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
        return _tile(np.concatenate(rows), nrow=n)

    def _render(self) -> None:
        k = int(self.t.value)
        picture = self.frame(k)
        if self.kind == "points":
            img = PILImage.fromarray(np.round(picture * 255).astype(np.uint8))
            buf = io.BytesIO()
            img.save(buf, format="png")
            self.image.value = buf.getvalue()
        else:
            self.image.value = _png(picture, self.scale)
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

    def _ipython_display_(self) -> None:
        display(self.widget)


class GuidanceSlider:
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
        self.caption = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.w.observe(lambda change: self._render(), names="value")
        self.widget = widgets.VBox([self.caption, self.image, self.w])
        self._render()

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
        return _tile(pics, nrow=min(self.nrow, len(pics)))

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

    def _ipython_display_(self) -> None:
        display(self.widget)


# ---- Chapter 4: normalizing flows ----
#
# Live (needs a kernel):
#
# * FlowLayerExplorer - a slider over the layers k = 0..K of a 2-D flow: base samples z ~ N(0, I)
#   (coloured by their angle) and a grid of lines in z-space, pushed through the first k layers,
#   z_k = f_k o ... o f_1 (z), so one sees the grid being warped into the data distribution.
# * TemperatureExplorer - a temperature slider for an image flow: x = f(T z) for a fixed set of
#   z ~ N(0, I); T = 0 shows f(0), small T the "typical" core, T = 1 honest samples.
#
# Static twins: flow_layers_animation (one frame per layer) and flow_layer_panels (chosen layers
# side by side) for the explorer; temperature_animation (one frame per temperature) for the slider.

__all__ += ["FlowLayerExplorer", "TemperatureExplorer", "flow_layer_panels", "flow_layers_animation",
            "temperature_animation"]


def _flow_check(flow, name: str = "flow", dim: int | None = None):
    """A flow with ``trajectory``, ``forward`` and ``event_shape`` (e.g. :class:`dgm.flows.Flow`)."""
    if not (isinstance(flow, torch.nn.Module) and callable(getattr(flow, "trajectory", None))
            and hasattr(flow, "event_shape")):
        raise TypeError(f"{name} must be a dgm.flows.Flow (with trajectory and event_shape), got {type(flow).__name__}")
    if dim is not None and tuple(flow.event_shape) != (dim,):
        raise ValueError(f"{name} must model {dim}-D points (event_shape ({dim},)), got event_shape {flow.event_shape}")


def _flow_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _flow_warp(flow, n_points: int, grid_lines: int, lim: float, seed: int) -> dict:
    """Base samples and grid lines in z-space, and their images after every layer k = 0..K."""
    _flow_check(flow, dim=2)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n_points, 2, generator=gen)
    ticks = torch.linspace(-lim, lim, grid_lines)
    along = torch.linspace(-lim, lim, 81)
    vertical = torch.stack([ticks[:, None].expand(-1, 81), along[None, :].expand(grid_lines, -1)], dim=-1)
    lines = torch.cat([vertical, vertical.flip(-1)])  # (2 G, 81, 2): x = c lines, then y = c lines
    device = _device_of(flow)
    with _inference(flow):
        traj = flow.trajectory(torch.cat([z, lines.reshape(-1, 2)]).to(device))
    traj = [t.detach().float().cpu() for t in traj]
    angle = torch.atan2(z[:, 1], z[:, 0])
    return {
        "points": [t[:n_points] for t in traj],
        "lines": [t[n_points:].reshape(lines.shape) for t in traj],
        "colors": plt.get_cmap("hsv")(((angle + math.pi) / (2 * math.pi)).numpy()),
    }


def _flow_extent(warp: dict, data, extent) -> tuple[float, float, float, float]:
    if extent is not None:
        return _check_extent(extent)
    pts = torch.cat(warp["points"] + ([data] if data is not None else []))
    lo = torch.quantile(pts, 0.005, dim=0)
    hi = torch.quantile(pts, 0.995, dim=0)
    pad = torch.clamp(0.08 * (hi - lo), min=0.3)
    return float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]), float(hi[1] + pad[1])


def _draw_flow_layer(ax, warp: dict, k: int, extent, data=None, title=None) -> None:
    ax.clear()
    if data is not None:
        ax.scatter(data[:, 0], data[:, 1], s=2, color="0.75", linewidths=0, zorder=0)
    for line in warp["lines"][k].numpy():
        ax.plot(line[:, 0], line[:, 1], color="0.35", linewidth=0.5, zorder=1)
    pts = warp["points"][k].numpy()
    ax.scatter(pts[:, 0], pts[:, 1], s=3, c=warp["colors"], linewidths=0, zorder=2)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
    ax.set_title(title if title is not None else _flow_layer_title(k, len(warp["points"]) - 1), fontsize=9)


def _flow_layer_title(k: int, num_layers: int) -> str:
    if k == 0:
        return "k = 0: base samples z ~ N(0, I)"
    if k == num_layers:
        return f"k = {k}: x = f(z), all {num_layers} layers"
    return f"after layer k = {k} of {num_layers}"


def _flow_data(data):
    if data is None:
        return None
    return _as_points2d(data, "data")


def flow_layer_panels(flow, layers=None, data=None, axes=None, n_points: int = 1500, grid_lines: int = 11,
                      lim: float = 3.0, extent=None, seed: int = 0):
    """Draw a 2-D flow layer by layer: z_k = f_k o ... o f_1 (z) for the chosen k, one panel each.

    Base samples z ~ N(0, I) are coloured by their angle (the same colour in every panel, so one
    can follow them) and a grid of lines in z-space is warped along; ``data`` (e.g. training
    points) is drawn in light gray behind every panel. The static twin of
    :class:`FlowLayerExplorer`.

    Args:
        flow: a :class:`dgm.flows.Flow` on 2-D points.
        layers: the k to show (0 = the base, K = the data side); default 5 evenly spaced ones.
        data: optional ``(N, 2)`` points drawn behind.
        axes: a sequence of Axes, one per layer (default: a new figure, rows of at most 3 panels,
            7.35 inches wide at most).
        n_points, grid_lines, lim: base samples, grid lines per direction, and the grid's range [-lim, lim].
        extent: ``(x_min, x_max, y_min, y_max)`` shared by the panels; default from the points.
        seed: seed of the base samples.

    Returns:
        The list of Axes.
    """
    n_points = _flow_int(n_points, "n_points", 1)
    grid_lines = _flow_int(grid_lines, "grid_lines", 2)
    warp = _flow_warp(flow, n_points, grid_lines, float(lim), seed)
    num_layers = len(warp["points"]) - 1
    if layers is None:
        layers = sorted(set(np.linspace(0, num_layers, min(5, num_layers + 1)).round().astype(int).tolist()))
    layers = [int(k) for k in layers]
    if not layers or not all(0 <= k <= num_layers for k in layers):
        raise ValueError(f"layers must be a non-empty list of layer indices in [0, {num_layers}], got {layers}")
    data = _flow_data(data)
    box = _flow_extent(warp, data, extent)
    if axes is None:  # rows of at most 3 panels, at most 7.35 in (735 px) wide: readable in the book
        ncols = min(3, len(layers))
        nrows = math.ceil(len(layers) / ncols)
        _, grid = plt.subplots(nrows, ncols, figsize=(2.45 * ncols, 2.5 * nrows), layout="constrained",
                               squeeze=False)
        for ax in grid.flat[len(layers):]:
            ax.set_axis_off()
        axes = grid.flat[: len(layers)]
    axes = list(axes)
    if len(axes) != len(layers):
        raise ValueError(f"axes must have one Axes per layer ({len(layers)}), got {len(axes)}")
    for ax, k in zip(axes, layers):
        _draw_flow_layer(ax, warp, k, box, data)
    return axes


def flow_layers_animation(flow, data=None, n_points: int = 400, grid_lines: int = 9, lim: float = 3.0,
                          extent=None, seed: int = 0, interval: int = 500) -> FuncAnimation:
    """Animate a 2-D flow layer by layer, one frame per k = 0..K (keep K <= 24).

    The static twin of :class:`FlowLayerExplorer`: the same picture for every slider position.
    Show it with :func:`as_html`.
    """
    n_points = _flow_int(n_points, "n_points", 1)
    grid_lines = _flow_int(grid_lines, "grid_lines", 2)
    warp = _flow_warp(flow, n_points, grid_lines, float(lim), seed)
    num_layers = len(warp["points"]) - 1
    if num_layers > 24:
        raise ValueError(f"flow has {num_layers} layers; an animation of more than 25 frames is too heavy for the book")
    data = _flow_data(data)
    if data is not None and len(data) > 500:  # keep the embedded frames small
        data = data[:500]
    box = _flow_extent(warp, data, extent)
    fig, ax = plt.subplots(figsize=(3.8, 3.8), dpi=64)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.08, top=0.92)

    def update(k):
        _draw_flow_layer(ax, warp, k, box, data)
        return ()

    update(0)
    return FuncAnimation(fig, update, frames=num_layers + 1, interval=interval, blit=False)


def _figure_png(fig) -> bytes:
    """PNG bytes of a matplotlib Figure rendered off-screen (Agg), without pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    buf = io.BytesIO()
    canvas.print_png(buf)
    return buf.getvalue()


class FlowLayerExplorer:
    """A slider over the layers of a 2-D flow (ipywidgets 8): watch a grid of base samples being
    warped into the data distribution, z_k = f_k o ... o f_1 (z), k = 0..K.

    Controls and outputs:

    * ``layer`` (IntSlider 0..K): how many layers have been applied (0 = the base N(0, I),
      K = the model's samples x = f(z)).
    * ``image`` (ipywidgets.Image, PNG): the points z_k coloured by the angle of z (so each one
      can be followed from frame to frame), the warped grid lines, and ``data`` in light gray.
    * ``caption`` (HTML): which transform layer k is.

    ``points()`` returns the current z_k ``(n_points, 2)`` (``points(0)`` the base samples);
    ``widget`` is the whole VBox.
    The base samples and lines are pushed through the flow once, up front.

    Args:
        flow: a :class:`dgm.flows.Flow` on 2-D points (e.g. :class:`dgm.flows.RealNVP`).
        data: optional ``(N, 2)`` data points drawn behind.
        n_points: number of base samples.
        grid_lines: grid lines per direction, spanning [-lim, lim] in z-space.
        lim: half-width of the grid.
        extent: ``(x_min, x_max, y_min, y_max)`` shared by all layers; default from the points.
        seed: seed of the base samples.
    """

    def __init__(self, flow, data=None, n_points: int = 1500, grid_lines: int = 11, lim: float = 3.0,
                 extent=None, seed: int = 0):
        from matplotlib.figure import Figure

        _flow_check(flow, dim=2)
        n_points = _flow_int(n_points, "n_points", 1)
        grid_lines = _flow_int(grid_lines, "grid_lines", 2)
        self.flow = flow
        self.data = _flow_data(data)
        self._warp = _flow_warp(flow, n_points, grid_lines, float(lim), seed)
        self.num_layers = len(self._warp["points"]) - 1
        self.extent = _flow_extent(self._warp, self.data, extent)
        self._names = ["base N(0, I)"] + [type(t).__name__ for t in getattr(flow, "transforms", [])]
        self._figure = Figure(figsize=(4.2, 4.2), dpi=80)
        self._ax = self._figure.add_axes((0.1, 0.08, 0.86, 0.84))
        self.layer = widgets.IntSlider(value=self.num_layers, min=0, max=self.num_layers, description="layer k",
                                       layout=widgets.Layout(width="420px"))
        self.caption = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.layer.observe(lambda change: self._render(), names="value")
        self.widget = widgets.VBox([self.caption, self.image, self.layer])
        self._render()

    def points(self, k: int | None = None) -> torch.Tensor:
        """z_k after k layers (default: the slider's k), ``(n_points, 2)`` (a copy, on the CPU);
        ``points(0)`` are the base samples z."""
        k = self.layer.value if k is None else k
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= self.num_layers:
            raise ValueError(f"k must be a layer index in [0, {self.num_layers}], got {k!r}")
        return self._warp["points"][k].clone()

    def _render(self) -> None:
        k = int(self.layer.value)
        _draw_flow_layer(self._ax, self._warp, k, self.extent, self.data)
        self.image.value = _figure_png(self._figure)
        name = self._names[k] if k < len(self._names) else f"layer {k}"
        self.caption.value = f"k = {k} of {self.num_layers}: {'after ' if k else ''}{name}"

    def _ipython_display_(self) -> None:
        display(self.widget)


def _flow_samples(flow, z: torch.Tensor, temperature: float, image_shape) -> torch.Tensor:
    device = _device_of(flow)
    with _inference(flow):
        x, _ = flow((temperature * z).to(device))
    return x.detach().float().cpu().reshape(len(z), *image_shape)


def _flow_image_setup(flow, image_shape, n: int, seed: int):
    _flow_check(flow)
    n = _flow_int(n, "n", 1)
    try:
        image_shape = tuple(int(s) for s in image_shape)
    except TypeError:
        raise ValueError(f"image_shape must be a tuple such as (1, 28, 28), got {image_shape!r}") from None
    if math.prod(image_shape) != math.prod(flow.event_shape):
        raise ValueError(f"image_shape {image_shape} must hold the flow's {math.prod(flow.event_shape)} numbers "
                         f"(event_shape {tuple(flow.event_shape)})")
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn((n, *flow.event_shape), generator=gen)
    return image_shape, n, z


def _check_temperature(value, name: str = "temperature") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


class TemperatureExplorer:
    """A temperature slider for the samples of an image flow (ipywidgets 8): x = f(T z).

    ``n`` base draws z ~ N(0, I) are fixed up front; the slider sets T and the grid shows
    f(T z) for all of them, so moving T changes the *same* samples. T = 1 samples the model,
    T < 1 concentrates on the high-density core (smoother, more typical images; Kingma &
    Dhariwal, 2018), T = 0 gives the single image f(0).

    Controls and outputs: ``temperature`` (FloatSlider), ``image`` (ipywidgets.Image, PNG of the
    grid), ``caption``; ``samples()`` returns the current pictures ``(n, *image_shape)`` clamped
    to [0, 1]; ``widget`` is the whole VBox.

    Args:
        flow: a :class:`dgm.flows.Flow` whose samples are images (flattened or not).
        image_shape: the shape of one picture, e.g. ``(1, 28, 28)``.
        n: number of samples in the grid; nrow: pictures per row.
        value: the initial temperature; max_temperature: the slider's upper end.
        seed: seed of the fixed draws z.
        scale: screen pixels per image pixel (default about 64 pixels per picture).
    """

    def __init__(self, flow, image_shape, n: int = 16, nrow: int = 8, value: float = 0.7,
                 max_temperature: float = 1.2, seed: int = 0, scale: int | None = None):
        self.image_shape, self.n, self.z = _flow_image_setup(flow, image_shape, n, seed)
        self.flow = flow
        self.nrow = _flow_int(nrow, "nrow", 1)
        max_temperature = _check_temperature(max_temperature, "max_temperature")
        value = _check_temperature(value, "value")
        if not 0 < max_temperature or value > max_temperature:
            raise ValueError(f"value must lie in [0, max_temperature={max_temperature}], got {value}")
        side = self.image_shape[-1]
        self.scale = max(1, 64 // side) if scale is None else _flow_int(scale, "scale", 1)
        self.temperature = widgets.FloatSlider(value=value, min=0.0, max=max_temperature, step=0.05,
                                               description="T", readout_format=".2f",
                                               layout=widgets.Layout(width="420px"))
        self.caption = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.temperature.observe(lambda change: self._render(), names="value")
        self.widget = widgets.VBox([self.caption, self.image, self.temperature])
        self._render()

    def samples(self) -> torch.Tensor:
        """The current pictures f(T z) ``(n, *image_shape)``, clamped to [0, 1] (a copy, on the CPU)."""
        return self._samples.clone()

    def _render(self) -> None:
        t = float(self.temperature.value)
        self._samples = _flow_samples(self.flow, self.z, t, self.image_shape).clamp(0.0, 1.0)
        self.image.value = _png(_tile(_to_pictures(self._samples), nrow=self.nrow), self.scale)
        self.caption.value = f"x = f(T z) for {self.n} fixed draws z ~ N(0, I), temperature T = {t:.2f}"

    def _ipython_display_(self) -> None:
        display(self.widget)


def temperature_animation(flow, image_shape, temperatures=(0.0, 0.25, 0.5, 0.7, 0.85, 1.0), n: int = 16,
                          nrow: int = 8, seed: int = 0, interval: int = 700) -> FuncAnimation:
    """Animate x = f(T z) for fixed draws z as T steps through ``temperatures`` (<= 24 of them).

    The static twin of :class:`TemperatureExplorer` (same z for the same ``seed`` and ``n``).
    Show it with :func:`as_html`.
    """
    image_shape, n, z = _flow_image_setup(flow, image_shape, n, seed)
    nrow = _flow_int(nrow, "nrow", 1)
    temps = [_check_temperature(t, "temperatures") for t in temperatures]
    if not 1 <= len(temps) <= 24:
        raise ValueError(f"temperatures must hold 1 to 24 values, got {len(temps)}")
    grids = [_tile(_to_pictures(_flow_samples(flow, z, t, image_shape).clamp(0.0, 1.0)), nrow=nrow) for t in temps]
    h, w = grids[0].shape[:2]
    fig, ax = plt.subplots(figsize=(5.5, 5.5 * h / w + 0.4), dpi=80)
    artist = ax.imshow(grids[0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    title = ax.set_title("", fontsize=10)
    fig.tight_layout()

    def update(i):
        artist.set_data(grids[i])
        title.set_text(f"x = f(T z), temperature T = {temps[i]:.2f}")
        return artist, title

    update(0)
    return FuncAnimation(fig, update, frames=len(grids), interval=interval, blit=False)
