"""The training objective of lecture 5: the simplified noise-prediction loss, Eq. (5.7),

    L_simple = E_{t, x_0, eps} || eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t) ||^2,

with the label dropout that trains one network for classifier-free guidance (Eq. (5.10)).
:class:`EpsLoss` is the ``loss_fn(model, batch)`` that :func:`dgm.train.fit` takes.
"""

from __future__ import annotations

import torch

from dgm._checks import nonempty_batch
from dgm.diffusion._common import _call
from dgm.diffusion.schedule import NoiseSchedule

__all__ = ["EpsLoss", "drop_labels", "eps_loss"]


def drop_labels(y: torch.Tensor, p: float, null_label: int, generator=None) -> torch.Tensor:
    """Classifier-free guidance training: replace each label by ``null_label`` with probability p."""
    if not isinstance(y, torch.Tensor) or y.is_floating_point():
        raise TypeError(f"y must be an integer tensor of class labels, got {getattr(y, 'dtype', type(y).__name__)}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p_uncond must be a probability in [0, 1], got {p!r}")
    if p == 0:
        return y
    drop = torch.rand(y.shape, generator=generator, device=y.device) < p
    return torch.where(drop, torch.full_like(y, null_label), y)


def eps_loss(model, x0, schedule: NoiseSchedule, *, y=None, p_uncond: float = 0.0, t=None, noise=None,
             generator=None) -> torch.Tensor:
    """The simplified objective of Ho et al., Eq. (5.7), as a batch mean:

        L_simple = E_{t, x_0, eps} || eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t) ||^2

    with t uniform on {0, ..., T - 1} and eps ~ N(0, I). The squared error is averaged over the
    dimensions of x (as in the reference code), then over the batch.

    Args:
        model: eps_theta, called as ``model(x_t, t)`` or ``model(x_t, t, y)``.
        x0: data batch (N, ...).
        schedule: the :class:`NoiseSchedule`.
        y: optional class labels (N,) for a conditional model.
        p_uncond: probability of replacing a label by the model's ``null_label`` (classifier-free
            guidance training, Ho & Salimans, 2022); needs ``y`` and ``model.null_label``.
        t: optional fixed step indices (else uniform); noise: optional fixed eps.
        generator: optional torch.Generator for t, eps and the label dropout.
    """
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    x0 = nonempty_batch(x0, "x0")
    n = len(x0)
    if t is None:
        t = torch.randint(0, schedule.T, (n,), generator=generator, device=generator.device if generator else "cpu")
    t = schedule.check_t(t, n, device=x0.device)
    noise = schedule._noise(x0, "x0", noise, generator)
    xt = schedule.q_sample(x0, t, noise)
    if y is not None:
        if not isinstance(y, torch.Tensor) or y.shape != (n,):
            raise ValueError(f"y must be a label tensor of shape ({n},), got {getattr(y, 'shape', y)!r}")
        if p_uncond > 0:
            null = getattr(model, "null_label", None)
            if null is None:
                raise ValueError("p_uncond > 0 needs a model with a null_label attribute (num_classes=...)")
            y = drop_labels(y.to(x0.device), p_uncond, null, generator)
    elif p_uncond:
        raise ValueError("p_uncond > 0 needs labels y")
    eps = _call(model, xt, t, y)
    return (eps - noise).pow(2).mean()


class EpsLoss:
    """``loss_fn(model, batch)`` for :func:`dgm.train.fit`: Eq. (5.7) on a batch x or (x, y).

    Args:
        schedule: the :class:`NoiseSchedule`.
        p_uncond: label dropout for classifier-free guidance (only with (x, y) batches).
    """

    def __init__(self, schedule: NoiseSchedule, p_uncond: float = 0.0):
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
        if not 0.0 <= p_uncond <= 1.0:
            raise ValueError(f"p_uncond must be a probability in [0, 1], got {p_uncond!r}")
        self.schedule, self.p_uncond = schedule, p_uncond

    def __call__(self, model, batch):
        if isinstance(batch, (tuple, list)):
            x0 = batch[0]
            y = batch[1] if len(batch) > 1 else None
        else:
            x0, y = batch, None
        return eps_loss(model, x0, self.schedule, y=y, p_uncond=self.p_uncond if y is not None else 0.0)
