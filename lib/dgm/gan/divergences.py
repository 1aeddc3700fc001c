"""Chapter 3, the theory of the game: the optimal discriminator and the divergences it reveals.

For a fixed generator the value V(D, G) of Eq. (3.1) (:mod:`dgm.gan.losses`) is maximized by

    D*_G(x) = p_data(x) / (p_data(x) + p_g(x)) = sigmoid(log p_data(x) - log p_g(x))      (3.3)

    C(G) = max_D V(D, G) = V(D*_G, G) = -log 4 + 2 JSD(p_data || p_g)                       (3.4)

    JSD(p || q) = 1/2 KL(p || m) + 1/2 KL(q || m),   m = (p + q) / 2                          (3.5)

and the Wasserstein GAN replaces the JSD by the earth mover's distance (Arjovsky et al., 2017):

    W_1(P, Q) = inf_{gamma in Pi(P, Q)} E_{(x, y)~gamma} ||x - y||
              = sup_{||f||_L <= 1} E_{x~P}[f(x)] - E_{x~Q}[f(x)]                               (3.7)

:func:`optimal_discriminator` (3.3), :func:`kl`, :func:`jsd` (3.5) and :func:`total_variation` on
discrete distributions, :func:`w1` (3.7, exact on two equal-size samples).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dgm._checks import float_tensor

__all__ = ["optimal_discriminator", "kl", "jsd", "total_variation", "w1"]


def optimal_discriminator(log_p_data: torch.Tensor, log_p_g: torch.Tensor) -> torch.Tensor:
    """D*_G(x) = p_data(x) / (p_data(x) + p_g(x)) of Eq. (3.3), from log-densities.

    Computed as sigmoid(log p_data - log p_g), which stays exact where both densities
    underflow to 0 (and is 1 or 0 where only one of them is -inf). Where both are -inf, x is
    outside both supports and D* is undefined: NaN.

    Args:
        log_p_data, log_p_g: log-densities at the same points (broadcastable).

    Returns:
        D*(x) in [0, 1].
    """
    log_p_data = float_tensor(log_p_data, "log_p_data")
    log_p_g = float_tensor(log_p_g, "log_p_g")
    if bool(torch.isnan(log_p_data).any()) or bool(torch.isnan(log_p_g).any()):
        raise ValueError("log_p_data and log_p_g must not contain NaN")
    if bool((log_p_data == math.inf).any()) or bool((log_p_g == math.inf).any()):
        raise ValueError("log_p_data and log_p_g must be < +inf (densities are finite)")
    both_out = torch.isneginf(log_p_data) & torch.isneginf(log_p_g)
    diff = torch.where(both_out, torch.zeros_like(log_p_data - log_p_g), log_p_data - log_p_g)
    d = torch.sigmoid(diff)
    return torch.where(both_out, torch.full_like(d, math.nan), d)


def _check_probs(p, name: str, dim: int) -> torch.Tensor:
    if isinstance(p, np.ndarray):
        p = torch.from_numpy(p)
    p = float_tensor(p, name)
    if p.dim() == 0:
        raise ValueError(f"{name} must be a probability vector (..., K), got a scalar")
    if bool(torch.isnan(p).any()) or bool((p < 0).any()):
        raise ValueError(f"{name} must hold probabilities >= 0 (no NaN)")
    total = p.sum(dim)
    tol = 1e-4 if p.dtype in (torch.float32, torch.float16, torch.bfloat16) else 1e-8
    if not bool(((total - 1).abs() <= tol).all()):
        raise ValueError(f"{name} must sum to 1 along dim={dim} (a probability vector), got sums {total.flatten()[:4].tolist()}")
    return p


def _p_log_ratio(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """p log(p / q) = p log p - p log q, with 0 log(0 / q) = 0 and p log(p / 0) = +inf for p > 0.

    ``xlogy(x, y)`` is x log y with 0 log y = 0 (also for y = 0), which gives both conventions.
    """
    return torch.special.xlogy(p, p) - torch.special.xlogy(p, q)


def kl(p: torch.Tensor, q: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """KL(p || q) = sum_k p_k log(p_k / q_k) of two discrete distributions (nats).

    Terms with p_k = 0 are 0; a p_k > 0 where q_k = 0 makes the divergence +inf. For densities
    on a grid, pass the cell probabilities p(x_k) dx.

    Args:
        p, q: probability vectors along ``dim`` (same shape).
        dim: the dimension to sum over.
    """
    p, q = _check_probs(p, "p", dim), _check_probs(q, "q", dim)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    return _p_log_ratio(p, q).sum(dim)


def jsd(p: torch.Tensor, q: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The Jensen-Shannon divergence of Eq. (3.5), 1/2 KL(p || m) + 1/2 KL(q || m), m = (p + q) / 2.

    Symmetric, 0 iff p = q, at most log 2 (reached when the supports are disjoint); always
    finite. Arguments as for :func:`kl`.
    """
    p, q = _check_probs(p, "p", dim), _check_probs(q, "q", dim)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    m = 0.5 * (p + q)
    return 0.5 * _p_log_ratio(p, m).sum(dim) + 0.5 * _p_log_ratio(q, m).sum(dim)


def total_variation(p: torch.Tensor, q: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The total variation distance sup_A |P(A) - Q(A)| = 1/2 sum_k |p_k - q_k|, in [0, 1]."""
    p, q = _check_probs(p, "p", dim), _check_probs(q, "q", dim)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    return 0.5 * (p - q).abs().sum(dim)


def w1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The Wasserstein-1 distance of Eq. (3.7) between two empirical distributions of equal size.

    With n points each, an optimal coupling is a permutation (Birkhoff), so
    W_1 = min_perm (1/n) sum_i ||x_i - y_perm(i)||_2, solved exactly by the Hungarian algorithm
    (``scipy.optimize.linear_sum_assignment``). The result carries gradients with respect to x
    and y (through the distances of the optimal pairs). O(n^3): keep n below a few thousand.

    Args:
        x, y: samples (n, d) (or (n,) for 1-D).

    Returns:
        A scalar tensor.
    """
    from scipy.optimize import linear_sum_assignment  # imported here: slow, and only w1 needs it

    x, y = float_tensor(x, "x"), float_tensor(y, "y")
    if x.dim() == 1:
        x = x[:, None]
    if y.dim() == 1:
        y = y[:, None]
    if x.dim() != 2 or x.shape != y.shape or x.shape[0] == 0:
        raise ValueError(f"x and y must be samples of the same shape (n, d), got {tuple(x.shape)} and {tuple(y.shape)}")
    cost = torch.cdist(x, y)
    rows, cols = linear_sum_assignment(cost.detach().cpu().double().numpy())
    rows_t = torch.as_tensor(rows, device=x.device)
    cols_t = torch.as_tensor(cols, device=x.device)
    return (x[rows_t] - y[cols_t]).norm(dim=1).mean()
