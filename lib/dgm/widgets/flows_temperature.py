"""Chapter 4: the temperature of an image flow's samples, x = f(T z).

Sampling a flow at temperature T draws z ~ N(0, T^2 I) instead of N(0, I): T = 1 samples the
model, T < 1 concentrates on the high-density core (smoother, more typical images; Kingma &
Dhariwal, 2018), T = 0 gives the single image f(0).

* :class:`TemperatureExplorer` (live) - a temperature slider over a fixed set of draws z.
* :func:`temperature_animation` - its static twin, one frame per temperature.
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from matplotlib.animation import FuncAnimation

from dgm.widgets.core import _LiveWidget, _device_of, _grid, _inference, _png, _to_pictures
from dgm.widgets.flows import _flow_check, _flow_int

__all__ = ["TemperatureExplorer", "temperature_animation"]


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


class TemperatureExplorer(_LiveWidget):
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
        self._slider_box(self.temperature)

    def samples(self) -> torch.Tensor:
        """The current pictures f(T z) ``(n, *image_shape)``, clamped to [0, 1] (a copy, on the CPU)."""
        return self._samples.clone()

    def _render(self) -> None:
        t = float(self.temperature.value)
        self._samples = _flow_samples(self.flow, self.z, t, self.image_shape).clamp(0.0, 1.0)
        self.image.value = _png(_grid(_to_pictures(self._samples), nrow=self.nrow), self.scale)
        self.caption.value = f"x = f(T z) for {self.n} fixed draws z ~ N(0, I), temperature T = {t:.2f}"


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
    grids = [_grid(_to_pictures(_flow_samples(flow, z, t, image_shape).clamp(0.0, 1.0)), nrow=nrow) for t in temps]
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
