"""Chapters 1-2: an autoencoder's code space, live and static.

Live (needs a kernel):

* :class:`LatentExplorer` - pick an image x_a, see its code z = g(x_a) on sliders, move any slider
  and see f(z); pick a second image x_b and slide t to decode z = (1 - t) g(x_a) + t g(x_b).

Static twins (plain matplotlib, work in the rendered book without a kernel):

* :func:`traversal_grid` - f(z + (v - z_d) e_d) for a grid of dims d (rows) and values v (columns).
* :func:`interpolation_animation` - f((1 - t) z_a + t z_b) for t from 0 to 1, as an animation.
* :func:`traversal_animation` - one latent dimension swept through values, as an animation.

Every function takes the model or a bare decoder callable and decodes it as
:func:`dgm.widgets.core._decode` says (``decode_mean``, else ``decode``, else the callable).
"""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.animation import FuncAnimation

from dgm.widgets.core import _as_code, _decode, _device_of, _grid, _inference, _png, _to_pictures
from dgm.widgets.explorer import _CodeExplorer, _slider_dims
from dgm.widgets.player import _animate

__all__ = ["LatentExplorer", "traversal_grid", "interpolation_animation", "traversal_animation"]


class LatentExplorer(_CodeExplorer):
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
        ranking = torch.argsort(spread, descending=True, stable=True).tolist()
        dims = _slider_dims(dims, n_sliders, code_dim, ranking)

        n = len(self.images)
        self._z = self.codes[0].clone()
        layout = widgets.Layout(width="420px")
        self.index = widgets.IntSlider(0, min=0, max=n - 1, description="image a", layout=layout)
        self.other = widgets.IntSlider(min(1, n - 1), min=0, max=n - 1, description="image b", layout=layout)
        ranges = []
        lo_all, hi_all = self.codes.min(0).values, self.codes.max(0).values
        for d in dims:
            lo, hi = float(lo_all[d]), float(hi_all[d])
            margin = 0.25 * (hi - lo) if hi > lo else 1.0
            ranges.append((lo - margin, hi + margin, (hi - lo + 2 * margin) / 200))
        self._code_controls(dims, ranges, layout)
        self.caption = widgets.HTML()
        self.image = widgets.Image(format="png")

        self.index.observe(self._on_index, names="value")
        self.other.observe(self._on_t, names="value")

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

    def _ends(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.codes[self.index.value], self.codes[self.other.value]

    def _on_index(self, change) -> None:
        if self._busy:
            return
        self._jump(self.codes[self.index.value], 0.0)

    def _render(self) -> None:
        x_hat = _to_pictures(_decode(self.model, self._z[None], "model"))[0]
        a, b = self.index.value, self.other.value
        panels = np.stack([self._pictures[a], x_hat.astype(self._pictures.dtype), self._pictures[b]])
        self.image.value = _png(_grid(panels, nrow=3), self.scale)

        def name(i):
            return f"#{i}" + ("" if self.labels is None else f" (label {self.labels[i]})")

        sep = " &nbsp;|&nbsp; "
        self.caption.value = f"x_a = {name(a)}{sep}f(z){sep}x_b = {name(b)} &nbsp; t = {self.t.value:.2f}"


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
    grid = _grid(pictures, nrow=len(values))

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
