"""Classifier-free guidance in lecture 5 (Ho & Salimans, 2022), Eq. (5.10):

    eps_tilde = eps_theta(x_t, t, null) + w (eps_theta(x_t, t, y) - eps_theta(x_t, t, null)).

One conditional network trained with label dropout (:func:`dgm.diffusion.drop_labels`) gives both
branches; :class:`Guided` wraps it as a ``model(x, t)`` for the samplers.
"""

from __future__ import annotations

import math
from numbers import Integral

import torch
from torch import nn

from dgm.diffusion._common import _call

__all__ = ["Guided", "cfg_eps"]


@torch.no_grad()
def cfg_eps(model, x, t, y, scale: float) -> torch.Tensor:
    """Classifier-free guidance, Eq. (5.10) (Ho & Salimans, 2022):

        eps_tilde = eps_theta(x_t, t, null) + w (eps_theta(x_t, t, y) - eps_theta(x_t, t, null))

    w = 0 is the unconditional model, w = 1 the conditional one, w > 1 pushes samples towards what
    makes the label likely. (Ho & Salimans write the same thing as (1 + w') eps_y - w' eps_null
    with w' = w - 1.) Both branches are evaluated in one batch.
    """
    null = getattr(model, "null_label", None)
    if null is None:
        raise ValueError("model must be conditional (built with num_classes, has a null_label)")
    if not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite number, got {scale!r}")
    n = len(x)
    y = _labels(y, n, null, x.device)
    t = t if isinstance(t, torch.Tensor) else torch.full((n,), int(t), dtype=torch.long, device=x.device)
    if t.dim() == 0:
        t = t.expand(n)
    if scale == 1:
        return _call(model, x, t, y)
    if scale == 0:
        return _call(model, x, t, torch.full_like(y, null))
    out = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, null)]))
    eps_y, eps_null = out[:n], out[n:]
    return eps_null + scale * (eps_y - eps_null)


def _labels(y, n, null, device):
    if isinstance(y, Integral) and not isinstance(y, bool):
        y = torch.full((n,), int(y), dtype=torch.long)
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.shape != (n,):
        raise ValueError(f"y must be an int or an integer label tensor of shape ({n},), got {getattr(y, 'shape', y)!r}")
    if int(y.min()) < 0 or int(y.max()) >= null:
        raise ValueError(f"y must hold class labels in [0, {null})")
    return y.to(device)


class Guided(nn.Module):
    """A conditional eps-model with fixed labels and guidance scale, as an unconditional ``model(x, t)``
    that :func:`sample_ddpm` and :func:`sample_ddim` accept, Eq. (5.10).

    Args:
        model: a conditional model (``model(x, t, y)``, with ``null_label``).
        y: the requested labels, (N,) for N samples, or one int for all.
        scale: the guidance scale w (0 unconditional, 1 conditional, > 1 guided).
    """

    def __init__(self, model: nn.Module, y, scale: float = 1.0):
        super().__init__()
        if getattr(model, "null_label", None) is None:
            raise ValueError("model must be conditional (built with num_classes, has a null_label)")
        self.model, self.y, self.scale = model, y, float(scale)

    def forward(self, x, t):
        return cfg_eps(self.model, x, t, self.y, self.scale)
