"""Chapter 3: the GAN game on 2-D data, played live and replayed in the book.

Live (needs a kernel):

* :class:`GANPlayground` - a 2-D GAN trained live: choose the game (saturating, non-saturating,
  WGAN-GP), k, both learning rates; "run N steps" plays N rounds and redraws the samples over the
  discriminator's decision surface, with both losses.

Static twins and their pieces:

* :func:`gan_snapshot` - the ``snapshot_fn`` that :meth:`dgm.gan.GANTrainer.train` records the
  pictures with: samples G(z) of fixed z and the decision surface D(x).
* :func:`draw_gan_state` - one state: the surface, the data (black) and G(z) (red).
* :func:`gan_training_animation` - one panel per game, one frame per snapshot.
"""

from __future__ import annotations

import io
import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.animation import FuncAnimation
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dgm.gan import GANTrainer, MLPDiscriminator, MLPGenerator, decision_surface
from dgm.widgets.core import _LiveWidget, _as_points2d, _check_extent, _extent_around

__all__ = ["GANPlayground", "gan_snapshot", "draw_gan_state", "gan_training_animation"]

_GAN_PLAYGROUND_LOSSES = ("saturating", "nonsaturating", "wgan-gp")


def _gan_surface_kind(loss: str) -> str:
    return "logit" if loss in ("wgan", "wgan-gp") else "prob"


def gan_snapshot(extent=(-3.0, 3.0, -3.0, 3.0), n: int = 500, grid: int = 48, kind: str = "prob", seed: int = 0):
    """A ``snapshot_fn`` for :meth:`dgm.gan.GANTrainer.train` recording what the 2-D pictures show.

    Each call returns ``{"samples": (n, 2) generator samples (the same z every time),
    "surface": (grid, grid) decision surface over extent}`` (see :func:`dgm.gan.decision_surface`;
    ``kind="prob"`` shows D(x), ``"logit"`` a WGAN critic's score).
    """
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


class GANPlayground(_LiveWidget):
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
        return decision_surface(self.trainer.discriminator, self.extent, n=grid,
                                kind=_gan_surface_kind(self.loss.value))

    # -- drawing
    def _render(self) -> None:
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
