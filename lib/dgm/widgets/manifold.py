"""Chapter 2: the static twins of :class:`~dgm.widgets.LatentPlane`, for the book.

* :func:`manifold_grid` - f(z) tiled over a regular grid of 2-D codes: the "learned data
  manifold" figure of a VAE with a 2-D latent space (Kingma & Welling, 2014, Fig. 4).
* :func:`path_animation` - a point moving along a path in a 2-D code space (left) and the decoded
  picture at each step (right), as an animation.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.animation import FuncAnimation

from dgm.widgets.core import _as_points2d, _check_extent, _decode, _decode_fn, _extent_around, _grid, _to_pictures
from dgm.widgets.latent_plane import _check_code_dim, _labels_list, _scatter_codes

__all__ = ["manifold_grid", "path_animation"]


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
    mosaic = _grid(pictures, nrow=n, padding=0)

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
