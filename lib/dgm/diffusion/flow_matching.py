"""Flow matching in lecture 5 (Lipman et al., 2023; Liu et al., 2023): straight paths from data to
noise and a learned velocity field, integrated back with Euler steps.

* (5.12) flow matching     x_s = (1 - s) x_0 + s eps, target velocity v = eps - x_0
* (5.13) Euler sampler     x_{s - h} = x_s - h v_theta(x_s, s), from s = 1 (noise) to s = 0 (data)

The model is called as ``model(x, s)`` (or ``model(x, s, y)``) with float times s in [0, 1].
"""

from __future__ import annotations

import torch

from dgm._checks import nonempty_batch, positive_int, same_shape
from dgm.diffusion._common import _call, _chain, _start
from dgm.diffusion.losses import drop_labels

__all__ = ["FMLoss", "fm_interpolate", "fm_loss", "fm_target", "sample_flow_euler"]


def _check_s(s, n, x):
    if isinstance(s, (int, float)) and not isinstance(s, bool):
        s = torch.full((n,), float(s), dtype=x.dtype, device=x.device)
    if not isinstance(s, torch.Tensor) or not s.is_floating_point():
        raise TypeError("s must be a float or a float tensor of times in [0, 1]")
    if s.dim() == 0:
        s = s.expand(n)
    if s.shape != (n,):
        raise ValueError(f"s must have shape ({n},), one time per example, got {tuple(s.shape)}")
    if bool(((s < 0) | (s > 1) | s.isnan()).any()):
        raise ValueError("s must lie in [0, 1] (0 = data, 1 = noise)")
    return s.to(device=x.device, dtype=x.dtype)


def fm_interpolate(x0, noise, s) -> torch.Tensor:
    """The straight-line path of (rectified) flow matching, Eq. (5.12): x_s = (1 - s) x_0 + s eps.

    s = 0 is the data, s = 1 pure noise (the direction of the diffusion chain).

    Args:
        x0: data (N, ...); noise: eps of the same shape; s: float or (N,) tensor in [0, 1].
    """
    x0 = nonempty_batch(x0, "x0")
    same_shape(x0, noise, "x0", "noise")
    s = _check_s(s, len(x0), x0).reshape(len(x0), *([1] * (x0.dim() - 1)))
    return (1 - s) * x0 + s * noise


def fm_target(x0, noise) -> torch.Tensor:
    """The conditional velocity of the straight path, Eq. (5.12): d x_s / d s = eps - x_0."""
    x0 = nonempty_batch(x0, "x0")
    same_shape(x0, noise, "x0", "noise")
    return noise - x0


def fm_loss(model, x0, *, y=None, p_uncond: float = 0.0, s=None, noise=None, generator=None) -> torch.Tensor:
    """Conditional flow matching (Lipman et al., 2023; Liu et al., 2023), Eq. (5.12), batch mean:

        L_FM = E_{s ~ U[0,1], x_0, eps} || v_theta(x_s, s) - (eps - x_0) ||^2,  x_s = (1 - s) x_0 + s eps

    Args:
        model: v_theta, called as ``model(x_s, s)`` (or ``model(x_s, s, y)``) with float s in [0, 1].
        x0: data batch (N, ...).
        y, p_uncond: labels and label dropout, as in :func:`eps_loss`.
        s, noise: optional fixed times and noise; generator: for the random ones.
    """
    x0 = nonempty_batch(x0, "x0")
    n = len(x0)
    if s is None:
        s = torch.rand(n, generator=generator, device=generator.device if generator else "cpu").to(x0.device, x0.dtype)
    s = _check_s(s, n, x0)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device) if noise is None else noise
    xs = fm_interpolate(x0, noise, s)
    if y is not None and p_uncond > 0:
        y = drop_labels(y.to(x0.device), p_uncond, model.null_label, generator)
    v = _call(model, xs, s, y)
    return (v - fm_target(x0, noise)).pow(2).mean()


class FMLoss:
    """``loss_fn(model, batch)`` for :func:`dgm.train.fit`: Eq. (5.12) on a batch x or (x, y)."""

    def __init__(self, p_uncond: float = 0.0):
        self.p_uncond = p_uncond

    def __call__(self, model, batch):
        if isinstance(batch, (tuple, list)):
            return fm_loss(model, batch[0], y=batch[1] if len(batch) > 1 else None, p_uncond=self.p_uncond)
        return fm_loss(model, batch)


@torch.no_grad()
def sample_flow_euler(model, shape, steps: int, *, generator=None, noise=None, device=None, trajectory: bool = False):
    """Integrate dx/ds = v_theta(x, s) from s = 1 (x ~ N(0, I)) to s = 0 with ``steps`` Euler steps
    of size h = 1 / steps, Eq. (5.13): x_{s-h} = x_s - h v_theta(x_s, s).

    Returns:
        x at s = 0, or (x, states) with ``trajectory=True``, states of shape (steps + 1, *shape)
        from s = 1 to s = 0.
    """
    steps = positive_int(steps, "steps")
    x = _start(model, shape, noise, generator, device)
    h = 1.0 / steps

    def step(x, k):
        s = torch.full((len(x),), 1.0 - k * h, dtype=x.dtype, device=x.device)
        return x - h * _call(model, x, s)

    x, states = _chain(model, x, step, range(steps), trajectory)
    if trajectory:
        return x, torch.stack(states)
    return x
