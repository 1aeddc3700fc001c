"""Elementwise layers that take image data from [0, 1] to the real line, at the data side of a flow.

* :class:`LogitTransform` - the logit pre-processing of image flows, Eq. (4.9).
* :class:`PiecewiseLinearCDF` - per-pixel histogram marginals, Eq. (4.10): on its own, the
  "independent pixels" model, exactly.

Both are diagonal maps, so their log |det J| is a sum of per-feature log-derivatives.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dgm._checks import positive_int
from dgm.distributions import standard_normal_log_prob, sum_except_batch
from dgm.flows.base import Transform, _check_batch

__all__ = ["LogitTransform", "PiecewiseLinearCDF"]


# ----------------------------------------------------------------------------- per-pixel marginals
class PiecewiseLinearCDF(Transform):
    """An elementwise layer that gives every feature its own histogram marginal, Eq. (4.10).

    For feature i, a histogram density on [0, 1) with K equal bins of masses p_{i,1..K} (softmax of
    learned logits) has the piecewise-linear CDF C_i; the layer maps data y_i in [0, 1) to

        inverse:  z_i = Phi^{-1}(eps + (1 - 2 eps) C_i(y_i))          (data -> flow input)
        forward:  y_i = C_i^{-1}((Phi(z_i) - eps) / (1 - 2 eps))      (flow output -> data)
        log |det J_{f^{-1}}(y)| = sum_i [log(K p_{i, b_i}) + log(1 - 2 eps) - log phi(z_i)]

    with b_i the bin of y_i and Phi, phi the standard normal CDF and density; eps keeps z finite at
    y = 0. Under a N(0, I) base *this layer alone* is the model "independent pixels, each with its
    own histogram": log p(y) = sum_i log(K p_{i, b_i}), whose bits per dimension (4.8) are exactly
    those of the discrete histogram model, with no dequantization gap (the density is constant on
    each bin). Put at the data side of a flow, it makes every pixel's marginal right from the
    start and leaves the dependencies between pixels to the layers behind it. Initialise it from
    the training histogram with :meth:`initialize`.

    Args:
        num_features: D.
        num_bins: K, e.g. the number of pixel levels (256 for MNIST, 17 for sklearn digits).
        eps: in (0, 0.5).
    """

    def __init__(self, num_features: int, num_bins: int, eps: float = 1e-6):
        super().__init__()
        self.num_features = positive_int(num_features, "num_features")
        self.num_bins = positive_int(num_bins, "num_bins")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 < eps < 0.5:
            raise ValueError(f"eps must be a number in (0, 0.5), got {eps!r}")
        self.eps = float(eps)
        self.logits = nn.Parameter(torch.zeros(self.num_features, self.num_bins))

    @torch.no_grad()
    def initialize(self, y: torch.Tensor, smoothing: float = 1.0) -> None:
        """Set the bin masses to the (add-``smoothing``) histogram of data y ``(N, D)`` in [0, 1)."""
        y = self._check_y(y)
        bins = torch.clamp((y * self.num_bins).long(), 0, self.num_bins - 1)
        counts = torch.zeros(self.num_features, self.num_bins, dtype=torch.float64, device=y.device)
        counts.scatter_add_(1, bins.T.contiguous(), torch.ones(bins.T.shape, dtype=torch.float64, device=y.device))
        self.logits.copy_(torch.log(counts + smoothing).to(self.logits))

    def _check_y(self, y):
        y = _check_batch(y, "y", (self.num_features,))
        if bool(((y < 0) | (y > 1)).any()):
            raise ValueError("y must lie in [0, 1] (dequantized data) for PiecewiseLinearCDF")
        return y

    def _tables(self):
        log_p = torch.log_softmax(self.logits, dim=1)  # (D, K)
        p = log_p.exp()
        cdf = torch.cat([p.new_zeros(self.num_features, 1), torch.cumsum(p, dim=1)], dim=1)  # (D, K + 1)
        return log_p, p, cdf

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = Phi^{-1}(eps + (1 - 2 eps) C(y)) per feature and its log |det|, Eq. (4.10)."""
        y = self._check_y(y)
        log_p, p, cdf = self._tables()
        k = self.num_bins
        b = torch.clamp(torch.floor(y * k).long(), 0, k - 1)  # (N, D)
        feat = torch.arange(self.num_features, device=y.device).expand_as(b)
        c = cdf[feat, b] + (y * k - b) * p[feat, b]
        c = self.eps + (1 - 2 * self.eps) * c
        z = math.sqrt(2.0) * torch.erfinv(2 * c - 1)
        log_phi = standard_normal_log_prob(z, event_dims=0)  # log of the N(0, 1) density at each z_i
        log_det = log_p[feat, b] + math.log(k) + math.log(1 - 2 * self.eps) - log_phi
        return z, log_det.sum(dim=1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y = C^{-1}((Phi(z) - eps) / (1 - 2 eps)) per feature and its log |det|, Eq. (4.10)."""
        z = _check_batch(z, "z", (self.num_features,))
        log_p, p, cdf = self._tables()
        k = self.num_bins
        c = 0.5 * (1 + torch.erf(z / math.sqrt(2.0)))
        c = ((c - self.eps) / (1 - 2 * self.eps)).clamp(0.0, 1.0)
        b = torch.searchsorted(cdf[:, 1:].detach().contiguous(), c.T.contiguous(), right=True).T  # (N, D)
        b = torch.clamp(b, 0, k - 1)
        feat = torch.arange(self.num_features, device=z.device).expand_as(b)
        y = (b + (c - cdf[feat, b]) / p[feat, b]) / k
        log_phi = standard_normal_log_prob(z, event_dims=0)
        log_det = log_phi - log_p[feat, b] - math.log(k) - math.log(1 - 2 * self.eps)
        return y, log_det.sum(dim=1)

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}, num_bins={self.num_bins}, eps={self.eps}"


# ----------------------------------------------------------------------------- logit pre-processing
class LogitTransform(Transform):
    """The logit pre-processing of image flows (Dinh et al., 2017), Eq. (4.9).

    Data y in [0, 1] (dequantized pixels) are mapped to the real line before the flow proper:

        inverse:  u = logit(alpha + (1 - 2 alpha) y)          (data -> flow input)
        forward:  y = (sigmoid(u) - alpha) / (1 - 2 alpha)      (flow output -> data)
        log |det J_f(u)| = sum_i [log sigmoid(u_i) + log(1 - sigmoid(u_i)) - log(1 - 2 alpha)]

    ``alpha`` keeps the logit away from +-infinity at y = 0 and y = 1. ``forward`` maps R onto the
    interval (-alpha, 1 - alpha) / (1 - 2 alpha), slightly wider than [0, 1], so a model's density
    on [0, 1] integrates to a little less than 1: its likelihoods stay valid lower bounds.

    Args:
        alpha: in [0, 0.5).
    """

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha < 0.5:
            raise ValueError(f"alpha must be a number in [0, 0.5), got {alpha!r}")
        self.alpha = float(alpha)

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y = (sigmoid(u) - alpha) / (1 - 2 alpha) and its log |det|, Eq. (4.9)."""
        u = _check_batch(u, "u", None)
        y = (torch.sigmoid(u) - self.alpha) / (1 - 2 * self.alpha)
        log_det = F.logsigmoid(u) + F.logsigmoid(-u) - math.log(1 - 2 * self.alpha)
        return y, sum_except_batch(log_det)

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """u = logit(alpha + (1 - 2 alpha) y) and its log |det|, Eq. (4.9)."""
        y = _check_batch(y, "y", None)
        lo, hi = -self.alpha / (1 - 2 * self.alpha), (1 - self.alpha) / (1 - 2 * self.alpha)
        if bool(((y <= lo) | (y >= hi)).any()):
            raise ValueError(f"y must lie in ({lo:.4g}, {hi:.4g}) (data in [0, 1]) for LogitTransform(alpha={self.alpha})")
        p = self.alpha + (1 - 2 * self.alpha) * y
        u = torch.log(p) - torch.log1p(-p)
        log_det = math.log(1 - 2 * self.alpha) - torch.log(p) - torch.log1p(-p)
        return u, sum_except_batch(log_det)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"
