"""Sliders over a code z: what :class:`~dgm.widgets.LatentExplorer` (chapters 1-2, z = g(x) of an
autoencoder) and :class:`~dgm.widgets.GANLatentExplorer` (chapter 3, z ~ N(0, I) of a generator)
share.

Both show one FloatSlider per chosen latent dim d (each sets z_d of the current code), a slider
``t`` in [0, 1] that sets z = (1 - t) z_a + t z_b between two end codes, and re-render whenever a
control moves; jumping to a new code resets t and moves the sliders without re-rendering once per
slider. :class:`_CodeExplorer` holds that machinery once; a subclass says what z_a and z_b are
(:meth:`_CodeExplorer._ends`) and what is drawn (:meth:`_CodeExplorer._render`).
"""

from __future__ import annotations

import ipywidgets as widgets
import torch

from dgm.widgets.core import _LiveWidget


def _slider_dims(dims, n_sliders, size: int, ranking) -> list[int]:
    """The latent dims that get sliders: ``dims``, or the first ``n_sliders`` of ``ranking``.

    Raises:
        ValueError: ``n_sliders`` not a positive int (when ``dims`` is None), or ``dims`` not
            distinct indices in [0, size).
    """
    if dims is None:
        if isinstance(n_sliders, bool) or not isinstance(n_sliders, int) or n_sliders < 1:
            raise ValueError(f"n_sliders must be a positive int, got {n_sliders!r}")
        dims = list(ranking)[: min(n_sliders, size)]
    dims = [int(d) for d in dims]
    if not dims or len(set(dims)) != len(dims) or not all(0 <= d < size for d in dims):
        raise ValueError(f"dims must be distinct latent indices in [0, {size}), got {dims}")
    return dims


class _CodeExplorer(_LiveWidget):
    """The current code z, its sliders and the interpolation slider t, kept in step.

    A subclass sets ``self._z`` (a 1-D CPU tensor), then calls :meth:`_code_controls`, and
    implements :meth:`_ends` and :meth:`_render`; it builds ``self.widget`` (the whole box).
    """

    _busy = False  # True while controls are set programmatically (their callbacks do nothing)

    def _code_controls(self, dims: list[int], ranges, layout) -> None:
        """Make ``self.t`` and ``self.sliders`` (one per dim d of ``dims``, described ``z[d]``,
        on ``ranges[i] = (min, max, step)``) and connect them to the handlers."""
        self.dims = dims
        self.t = widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="t", layout=layout)
        self.sliders = [
            widgets.FloatSlider(value=float(self._z[d]), min=lo, max=hi, step=step, description=f"z[{d}]",
                                readout_format=".2f", layout=layout)
            for d, (lo, hi, step) in zip(dims, ranges)
        ]
        self.t.observe(self._on_t, names="value")
        for d, slider in zip(dims, self.sliders):
            slider.observe(lambda change, d=d: self._on_slider(d, change), names="value")

    # -- state
    def code(self) -> torch.Tensor:
        """The current code z, shape ``(code_dim,)`` (a generator's ``(latent_dim,)``), a copy on the CPU."""
        return self._z.clone()

    def _ends(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The codes (z_a, z_b) that t = 0 and t = 1 show."""
        raise NotImplementedError

    def _set_sliders(self) -> None:
        """Show the current z on the sliders (clamped to their ranges), without re-rendering."""
        self._busy = True
        try:
            for d, slider in zip(self.dims, self.sliders):
                slider.value = min(slider.max, max(slider.min, float(self._z[d])))
        finally:
            self._busy = False

    def _jump(self, z: torch.Tensor, t: float) -> None:
        """Make ``z`` the current code, with the t slider at ``t``; move the sliders, render once."""
        self._z = z.clone()
        self._busy = True
        try:
            self.t.value = t
        finally:
            self._busy = False
        self._set_sliders()
        self._render()

    # -- callbacks
    def _on_t(self, change) -> None:
        """t (or an end code) moved: z = (1 - t) z_a + t z_b."""
        if self._busy:
            return
        t = float(self.t.value)
        z_a, z_b = self._ends()
        self._z = (1 - t) * z_a + t * z_b
        self._set_sliders()
        self._render()

    def _on_slider(self, d: int, change) -> None:
        if self._busy:
            return
        self._z[d] = float(change["new"])
        self._render()
