"""Chapter 3: a generator's latent space, live.

* :class:`GANLatentExplorer` - G(z_a) | G(z) | G(z_b) for a generator: sliders set the first latent
  dims of z, t interpolates z = (1 - t) z_a + t z_b, buttons draw new z_a / z_b ~ N(0, I), and a
  conditional generator G(z | y) gets a label menu.

Its static twin is :func:`~dgm.widgets.interpolation_animation` with the generator as decoder.
The 2-D GAN game (:class:`~dgm.widgets.GANPlayground` and its pictures) is in
:mod:`dgm.widgets.gan_game`.
"""

from __future__ import annotations

import ipywidgets as widgets
import torch

from dgm.widgets.core import _device_of, _grid, _inference, _png, _to_pictures
from dgm.widgets.explorer import _CodeExplorer, _slider_dims

__all__ = ["GANLatentExplorer"]


def _generate(generator, z: torch.Tensor, y=None) -> torch.Tensor:
    """G(z) (or G(z | y)) on the generator's device, eval mode, no gradients; returned on the CPU."""
    device = _device_of(generator, fallback=z.device)
    with _inference(generator):
        if y is None:
            return generator(z.to(device)).detach().float().cpu()
        return generator(z.to(device), y.to(device)).detach().float().cpu()


class GANLatentExplorer(_CodeExplorer):
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
        dims = _slider_dims(dims, n_sliders, latent_dim, range(latent_dim))
        self._rng = torch.Generator().manual_seed(seed)
        self.z_a = torch.randn(latent_dim, generator=self._rng)
        self.z_b = torch.randn(latent_dim, generator=self._rng)
        self._z = self.z_a.clone()

        layout = widgets.Layout(width="420px")
        self._code_controls(dims, [(-3.0, 3.0, 0.05)] * len(dims), layout)
        self.new_a = widgets.Button(description="new z_a")
        self.new_b = widgets.Button(description="new z_b")
        self.label = None
        if self.num_classes is not None:
            self.label = widgets.Dropdown(options=list(range(self.num_classes)), value=0, description="label y")
            self.label.observe(lambda change: self._render(), names="value")
        self.caption = widgets.HTML()
        self.image = widgets.Image(format="png")
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
        self._jump(self.z_a if which == "a" else self.z_b, 0.0 if which == "a" else 1.0)

    def _ends(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.z_a, self.z_b

    def _labels(self, n: int):
        if self.label is None:
            return None
        return torch.full((n,), int(self.label.value), dtype=torch.long)

    def _generate(self, z: torch.Tensor) -> torch.Tensor:
        return _generate(self.generator, z, self._labels(len(z)))

    # -- drawing
    def _render(self) -> None:
        out = self._generate(torch.stack([self.z_a, self._z, self.z_b]))
        self._picture = out[1]
        self.image.value = _png(_grid(_to_pictures(out), nrow=3), self.scale)
        label = "" if self.label is None else f" &nbsp; y = {self.label.value}"
        sep = " &nbsp;|&nbsp; "
        self.caption.value = f"G(z_a){sep}G(z){sep}G(z_b) &nbsp; t = {self.t.value:.2f}{label}"
