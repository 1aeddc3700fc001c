"""Likelihoods of images in the units of the literature: uniform dequantization, Eq. (4.7), and bits
per dimension, Eq. (4.8).

A flow is a density on the continuous cube [0, 1]^D, images are discrete (K levels per pixel).
:func:`dequantize` adds uniform noise inside each level so that the density's log-likelihood bounds
the discrete one; :func:`bits_per_dim` turns nats per image into bits per pixel, the number that
can be put next to the VAE's bound of chapter 2.
"""

from __future__ import annotations

import math

import torch

from dgm._checks import float_tensor, positive_int

__all__ = ["bits_per_dim", "dequantize"]


def dequantize(x: torch.Tensor, num_levels: int = 256, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform dequantization, Eq. (4.7): pixels with K levels k / (K - 1) -> (k + u) / K, u ~ U[0, 1).

    A density p on [0, 1]^D trained on the dequantized data bounds the discrete log-likelihood:
    E_u[log p((k + u) / K)] - D log K <= log P(k), by Jensen's inequality, since
    P(k) = integral of p over the cube [k/K, (k+1)/K)^D (volume K^-D). Each pixel value is rounded
    to its level first, so gray levels stored with rounding errors are accepted.

    Args:
        x: data in [0, 1] taking the K values k / (K - 1) (e.g. MNIST / 255 with K = 256,
            sklearn digits / 16 with K = 17).
        num_levels: K >= 2.
        generator: optional ``torch.Generator`` for u.

    Returns:
        y = (k + u) / K, the shape of x, in [0, 1).
    """
    x = float_tensor(x, "x")
    k = positive_int(num_levels, "num_levels")
    if k < 2:
        raise ValueError(f"num_levels must be >= 2, got {num_levels}")
    if x.numel() and bool((~((x >= 0) & (x <= 1))).any()):
        raise ValueError("x must lie in [0, 1] (and not be NaN): pixel levels k / (num_levels - 1)")
    levels = torch.round(x * (k - 1))
    device = x.device if generator is None else generator.device
    u = torch.rand(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
    return (levels + u) / k


def bits_per_dim(log_prob, num_dims: int, num_levels: int | None = None):
    """Bits per dimension, Eq. (4.8): bpd = -(log p(x) - D log K) / (D ln 2).

    Args:
        log_prob: log-likelihoods in nats (a number or a tensor, e.g. one per image). With
            ``num_levels`` = K they are log-*densities* of dequantized data scaled to [0, 1]^D, and
            the D log K turns them into log-probabilities of the K^D discrete images; with
            ``num_levels=None`` they are already discrete log-probabilities (e.g. a Bernoulli ELBO).
        num_dims: D, the number of dimensions (pixels x channels).
        num_levels: K, the number of levels per pixel, or None.

    Returns:
        The same type as ``log_prob``: a uniform density on [0, 1]^D gives log2 K bits/dim.
    """
    d = positive_int(num_dims, "num_dims")
    if num_levels is not None:
        num_levels = positive_int(num_levels, "num_levels")
    if isinstance(log_prob, torch.Tensor):
        float_tensor(log_prob, "log_prob")
    elif isinstance(log_prob, bool) or not isinstance(log_prob, (int, float)):
        raise TypeError(f"log_prob must be a number or a floating-point tensor, got {type(log_prob).__name__}")
    shift = 0.0 if num_levels is None else d * math.log(num_levels)
    return -(log_prob - shift) / (d * math.log(2))
