"""Chapter 3, judging a trained GAN on the toy 2-D data: mode coverage and the decision surface.

* :func:`mode_coverage` - modes covered and the fraction of high-quality samples (within 3 standard
  deviations of a mode; Srivastava et al., 2017), the standard measure of mode collapse on a
  Gaussian mixture; returns a :class:`ModeCoverage`.
* :func:`decision_surface` - D(x) (or a critic's score) on a grid, the picture of what the
  discriminator has learned.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from dgm._checks import float_tensor, positive_int, positive_number

__all__ = ["ModeCoverage", "mode_coverage", "decision_surface"]


@dataclass
class ModeCoverage:
    """What :func:`mode_coverage` measured.

    Attributes:
        modes_covered: modes that received at least ``min_count`` high-quality samples.
        num_modes: number of modes k.
        high_quality: fraction of samples within 3 std of their nearest mode.
        counts: high-quality samples per mode, shape (k,).
        min_count: the threshold used.
    """

    modes_covered: int
    num_modes: int
    high_quality: float
    counts: torch.Tensor
    min_count: int

    def __str__(self) -> str:
        return f"{self.modes_covered}/{self.num_modes} modes, {self.high_quality:.1%} high-quality samples"


def mode_coverage(samples: torch.Tensor, centers: torch.Tensor, std: float, min_count: int | None = None) -> ModeCoverage:
    """The standard mode-collapse metrics of a sample from a Gaussian-mixture target.

    Each sample is assigned to its nearest centre c_k; it is *high quality* if
    ||x - c_k||_2 <= 3 std (Srivastava et al., 2017). A mode is *covered* if at least
    ``min_count`` high-quality samples are assigned to it. The default ``min_count`` is 20 % of a
    mode's fair share n / k (rounded up): PacGAN's rule of 20 samples out of 2 500 for 25 modes.
    For data drawn from the mixture itself, high_quality = 1 - exp(-9/2) = 98.9 % in 2-D.

    Args:
        samples: generated points (n, d).
        centers: the mixture's centres (k, d), e.g. ``dgm.data.TOY2D_MODES["ring8"][0]``.
        std: the mixture components' standard deviation (> 0).
        min_count: high-quality samples a mode needs to count as covered (>= 1).

    Returns:
        A :class:`ModeCoverage`.
    """
    samples = float_tensor(samples, "samples")
    centers = float_tensor(centers, "centers")
    if samples.dim() != 2 or samples.shape[0] == 0:
        raise ValueError(f"samples must have shape (n, d) with n >= 1, got {tuple(samples.shape)}")
    if centers.dim() != 2 or centers.shape[0] == 0 or centers.shape[1] != samples.shape[1]:
        raise ValueError(
            f"centers must have shape (k, {samples.shape[1]}) to match samples (n, {samples.shape[1]}), "
            f"got {tuple(centers.shape)}"
        )
    if bool(torch.isnan(samples).any()):
        raise ValueError("samples contains NaN (did training diverge?)")
    std = positive_number(std, "std")
    n, k = samples.shape[0], centers.shape[0]
    if min_count is None:
        min_count = max(1, math.ceil(0.2 * n / k))
    min_count = positive_int(min_count, "min_count")
    dist = torch.cdist(samples.detach().double(), centers.detach().to(samples.device).double())
    nearest_dist, nearest = dist.min(dim=1)
    good = nearest_dist <= 3 * std
    counts = torch.bincount(nearest[good], minlength=k).cpu()
    return ModeCoverage(
        modes_covered=int((counts >= min_count).sum()),
        num_modes=k,
        high_quality=float(good.double().mean()),
        counts=counts,
        min_count=min_count,
    )


def decision_surface(discriminator: Callable, extent=(-3.0, 3.0, -3.0, 3.0), n: int = 64,
                     kind: str = "prob") -> torch.Tensor:
    """The discriminator on an n x n grid over a 2-D ``extent``: rows are y (bottom to top).

    Args:
        discriminator: maps (M, 2) points to logits (M,) (or critic scores).
        extent: ``(x_min, x_max, y_min, y_max)``.
        n: grid points per axis (>= 2).
        kind: ``"prob"`` for D(x) = sigmoid(l(x)), ``"logit"`` for l(x) (a critic's score).

    Returns:
        A CPU float tensor (n, n); entry [i, j] is at (x_j, y_i), ``imshow(origin="lower")`` ready.
    """
    if kind not in ("prob", "logit"):
        raise ValueError(f"kind must be 'prob' or 'logit', got {kind!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    try:
        x0, x1, y0, y1 = (float(v) for v in extent)
    except (TypeError, ValueError):
        raise ValueError(f"extent must be (x_min, x_max, y_min, y_max), got {extent!r}") from None
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f"extent must have x_min < x_max and y_min < y_max, got {extent!r}")
    device = torch.device("cpu")
    if isinstance(discriminator, nn.Module):
        for p in discriminator.parameters():
            device = p.device
            break
    ys, xs = torch.linspace(y0, y1, n), torch.linspace(x0, x1, n)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).to(device)
    was_training = isinstance(discriminator, nn.Module) and discriminator.training
    if isinstance(discriminator, nn.Module):
        discriminator.eval()
    try:
        with torch.no_grad():
            out = discriminator(grid).reshape(n, n).float().cpu()
    finally:
        if was_training:
            discriminator.train()
    return torch.sigmoid(out) if kind == "prob" else out
