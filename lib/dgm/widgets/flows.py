"""Chapter 4: a 2-D normalizing flow, layer by layer.

A flow x = f_K o ... o f_1 (z) (Eq. (4.3)) is easiest to understand by watching what each layer
does to a sample of the base N(0, I) and to a grid of lines in z-space:

* :class:`FlowLayerExplorer` (live) - a slider over the layers k = 0..K: base samples z ~ N(0, I)
  (coloured by their angle) and the grid lines, pushed through the first k layers,
  z_k = f_k o ... o f_1 (z), so one sees the grid being warped into the data distribution.
* :func:`flow_layer_panels` - the static twin: chosen layers side by side.
* :func:`flow_layers_animation` - the static twin: one frame per layer.

The temperature slider of an image flow is in :mod:`dgm.widgets.flows_temperature`.
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.animation import FuncAnimation
from matplotlib.figure import Figure

from dgm.widgets.core import _as_points2d, _check_extent, _device_of, _figure_png, _inference, _LiveWidget

__all__ = ["FlowLayerExplorer", "flow_layer_panels", "flow_layers_animation"]


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


class FlowLayerExplorer(_LiveWidget):
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
        self._slider_box(self.layer)

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
