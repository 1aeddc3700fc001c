"""What every chapter's widgets share: running a model for a picture, and pictures as PNG.

* :func:`_inference` / :func:`_device_of` - run a module under ``torch.no_grad()`` in eval mode on
  its own device, restoring its train/eval mode afterwards.
* :func:`_decode` - f(z) with, in this order of preference, ``model.decode_mean`` (a
  :class:`dgm.vae.VAE`: the mean E[x|z], not logits), ``model.decode`` (an autoencoder, or
  ``VAE.as_autoencoder()``) or the callable itself.
* :func:`_to_pictures` - decoder outputs as displayable [0, 1] images; :func:`_grid` tiles them
  with :func:`dgm.plot.make_grid`; :func:`_png`, :func:`_figure_png`, :func:`_rgb_of_figure`
  turn pictures and matplotlib figures into PNG bytes or arrays.
* :func:`_as_points2d`, :func:`_check_extent`, :func:`_extent_around` - 2-D points (codes, toy
  data) and the window they are drawn in.
* :class:`_LiveWidget` - what every live widget is: an object that shows its ``widget`` box.
"""

from __future__ import annotations

import contextlib
import io
import math

import ipywidgets as widgets
import numpy as np
import torch
from IPython.display import display
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image as PILImage

from dgm.plot import make_grid


# ----------------------------------------------------------------------------- running a model
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


# ----------------------------------------------------------------------------- pictures
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


def _grid(pictures: np.ndarray, nrow: int, padding: int = 1) -> np.ndarray:
    """Pictures of :func:`_to_pictures`, (N, H, W) or (N, H, W, 3), tiled ``nrow`` per row with
    white ``padding``-pixel borders by :func:`dgm.plot.make_grid` (which wants colour first)."""
    if pictures.ndim == 4:
        pictures = pictures.transpose(0, 3, 1, 2)
    return make_grid(pictures, nrow=nrow, padding=padding, pad_value=1.0)


def _png(picture: np.ndarray, scale: int = 4) -> bytes:
    """PNG bytes of a [0, 1] image, enlarged ``scale`` times with nearest-neighbour pixels."""
    img = PILImage.fromarray(np.round(picture * 255).astype(np.uint8))
    img = img.resize((img.width * scale, img.height * scale), PILImage.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="png")
    return buf.getvalue()


def _figure_png(fig) -> bytes:
    """PNG bytes of a matplotlib Figure rendered off-screen (Agg), without pyplot."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    buf = io.BytesIO()
    canvas.print_png(buf)
    return buf.getvalue()


def _rgb_of_figure(fig) -> np.ndarray:
    """An Agg-rendered matplotlib Figure as an (H, W, 3) float array in [0, 1]."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(np.float64) / 255.0


# ----------------------------------------------------------------------------- 2-D points
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


# ----------------------------------------------------------------------------- live widgets
class _LiveWidget:
    """A live widget: it shows its ``widget`` box in a notebook and redraws in ``_render``."""

    def _slider_box(self, slider) -> None:
        """``widget``: a ``caption`` (HTML) over an ``image`` (PNG) over ``slider``, which redraws
        the picture when it moves; draws the first picture."""
        self.caption = widgets.HTML()
        self.image = widgets.Image(format="png")
        slider.observe(lambda change: self._render(), names="value")
        self.widget = widgets.VBox([self.caption, self.image, slider])
        self._render()

    def _render(self) -> None:
        raise NotImplementedError

    def _ipython_display_(self) -> None:
        display(self.widget)
