"""Gaussian log-densities and KLs, and the log-mean-exp, each defined once for every chapter.

Chapter 2 scores codes under the prior N(0, I) and the encoder's diagonal Gaussian, chapter 4 scores
a flow's z under its base N(0, I), chapter 5 compares the forward process's Gaussian posteriors with
the reverse model's steps. They all use the functions below.
"""

from __future__ import annotations

import math

import torch

from dgm._checks import float_tensor

__all__ = [
    "diag_normal_log_prob", "log_mean_exp", "normal_kl", "normal_log_prob", "standard_normal_log_prob",
    "sum_except_batch",
]

LOG_2PI = math.log(2 * math.pi)


def sum_except_batch(t: torch.Tensor) -> torch.Tensor:
    """Sum over every dimension but the first (the batch): one number per example, shape ``(N,)``."""
    return t.reshape(t.shape[0], -1).sum(dim=1) if t.dim() > 1 else t


def standard_normal_log_prob(z: torch.Tensor, event_dims: int = 1) -> torch.Tensor:
    """log N(z; 0, I) = -1/2 sum_i (z_i^2 + log 2 pi), summed over the last ``event_dims`` dimensions.

    ``event_dims=1`` scores latent codes ``(..., d)`` (chapter 2's prior p(z)); a flow scores a batch
    ``(N, ...)`` of its base variable with ``event_dims=z.dim() - 1`` (Eq. (4.2)'s log p_Z).
    """
    z = float_tensor(z, "z")
    if isinstance(event_dims, bool) or not isinstance(event_dims, int) or not 0 <= event_dims <= z.dim():
        raise ValueError(f"event_dims must be an int in [0, z.dim() = {z.dim()}], got {event_dims!r}")
    log_p = -0.5 * (z.pow(2) + LOG_2PI)
    return log_p.sum(dim=tuple(range(z.dim() - event_dims, z.dim()))) if event_dims else log_p


def diag_normal_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension (z may carry extra leading dims)."""
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(dim=-1)


def normal_kl(mean1, var1, mean2, var2) -> torch.Tensor:
    """KL(N(mean1, var1) || N(mean2, var2)) of 1-D Gaussians, elementwise, in float64:

        0.5 * [log(var2 / var1) + (var1 + (mean1 - mean2)^2) / var2 - 1].
    """
    mean1, var1, mean2, var2 = (torch.as_tensor(v, dtype=torch.float64) for v in (mean1, var1, mean2, var2))
    return 0.5 * (torch.log(var2 / var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1.0)


def log_mean_exp(a: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log (1/k) sum_i exp(a_i) along ``dim`` (k = a.shape[dim]), without overflow (logsumexp)."""
    a = float_tensor(a, "a")
    return torch.logsumexp(a, dim=dim) - math.log(a.shape[dim])


def normal_log_prob(x, mean, var) -> torch.Tensor:
    """log N(x; mean, var) elementwise: -1/2 [log 2 pi + log var + (x - mean)^2 / var]."""
    return -0.5 * (LOG_2PI + torch.log(var) + (x - mean) ** 2 / var)
