"""Chapter 2, probabilistic PCA (Tipping & Bishop, 1999): the linear-Gaussian latent model whose
log p(x), true posterior p(z|x) and ELBO are all available in closed form (written out in the
class docstring), so that the decomposition of Eq. (2.1), log p(x) = ELBO + KL(q || p(z|x)), and
the importance-weighted bound of Eq. (2.9) can be checked to machine precision.
"""

from __future__ import annotations

import torch
from torch import nn

from dgm._checks import finite_number, float_tensor, positive_int
from dgm.distributions import LOG_2PI, standard_normal_log_prob
from dgm.vae.elbo import _randn_like

__all__ = ["PPCA"]


class PPCA(nn.Module):
    """Probabilistic PCA (Tipping & Bishop, 1999): a linear-Gaussian latent model

        p(z) = N(0, I_k),   p(x|z) = N(x; W z + b, sigma^2 I_D),   W in R^{D x k},

    for which everything a VAE can only bound is exact:

        log p(x)  = log N(x; b, C),   C = W W^T + sigma^2 I
        p(z|x)    = N(M^{-1} W^T (x - b), sigma^2 M^{-1}),   M = W^T W + sigma^2 I

    and for a Gaussian q(z) = N(m, S) the ELBO has the closed form

        L(q) = log N(x; W m + b, sigma^2 I) - tr(W^T W S) / (2 sigma^2)
               - 1/2 [tr S + m^T m - k - log det S]

    (the first two terms are E_q[log p(x|z)], the last KL(q || p(z))), so Eq. (2.1),
    log p(x) = L(q) + KL(q || p(z|x)), can be verified to float64 precision.

    Tensors are kept as buffers in the dtype of ``W`` (use float64 for the precise checks).

    Args:
        W: the loading matrix, ``(D, k)``.
        b: the mean of x, ``(D,)``.
        sigma: the noise standard deviation, > 0.
    """

    def __init__(self, W: torch.Tensor, b: torch.Tensor, sigma):
        super().__init__()
        W = float_tensor(W, "W")
        if W.dim() != 2:
            raise ValueError(f"W must be a (D, k) matrix, got shape {tuple(W.shape)}")
        b = float_tensor(b, "b")
        if b.shape != (W.shape[0],):
            raise ValueError(f"b must have shape (D,) = ({W.shape[0]},), got {tuple(b.shape)}")
        sigma = finite_number(sigma, "sigma")
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.register_buffer("W", W.detach().clone())
        self.register_buffer("b", b.detach().to(W).clone())
        self.register_buffer("sigma", torch.tensor(sigma, dtype=W.dtype, device=W.device))
        self.D, self.k = W.shape

    @classmethod
    def from_data(cls, x: torch.Tensor, k: int) -> "PPCA":
        """The maximum-likelihood PPCA of data x ``(N, D)`` (Tipping & Bishop, 1999):
        b = mean, sigma^2 = the mean of the D - k smallest eigenvalues of the covariance S
        (normalised by N), W = U_k (Lambda_k - sigma^2 I)^{1/2} (its rotation fixed to I)."""
        x = float_tensor(x, "x")
        k = positive_int(k, "k")
        if x.dim() != 2 or x.shape[0] < 2 or not k < x.shape[1]:
            raise ValueError(f"x must be (N, D) with N >= 2 and D > k={k}, got shape {tuple(x.shape)}")
        b = x.mean(0)
        xc = x - b
        cov = xc.T @ xc / x.shape[0]
        evals, evecs = torch.linalg.eigh(cov)  # ascending
        evals, evecs = evals.flip(0), evecs.flip(1)
        sigma2 = evals[k:].mean().clamp_min(torch.finfo(x.dtype).tiny)
        W = evecs[:, :k] * (evals[:k] - sigma2).clamp_min(0).sqrt()
        return cls(W, b, float(sigma2.sqrt()))

    def _check_x(self, x) -> torch.Tensor:
        x = float_tensor(x, "x")
        if x.dim() != 2 or x.shape[1] != self.D:
            raise ValueError(f"x must have shape (N, {self.D}), got {tuple(x.shape)}")
        return x

    def covariance(self) -> torch.Tensor:
        """C = W W^T + sigma^2 I, ``(D, D)``, the covariance of the marginal p(x)."""
        eye = torch.eye(self.D, dtype=self.W.dtype, device=self.W.device)
        return self.W @ self.W.T + self.sigma**2 * eye

    def _M(self) -> torch.Tensor:
        eye = torch.eye(self.k, dtype=self.W.dtype, device=self.W.device)
        return self.W.T @ self.W + self.sigma**2 * eye

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = log N(x; b, W W^T + sigma^2 I), per row, ``(N,)``.

        Computed with a Cholesky factor C = L L^T: -1/2 [D log 2 pi + 2 sum log diag L + ||L^{-1}(x - b)||^2].
        """
        x = self._check_x(x)
        L = torch.linalg.cholesky(self.covariance())
        r = torch.linalg.solve_triangular(L, (x - self.b).T, upper=False)  # (D, N)
        logdet = 2 * torch.log(torch.diagonal(L)).sum()
        return -0.5 * (self.D * LOG_2PI + logdet + r.pow(2).sum(0))

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact posterior p(z|x) = N(M^{-1} W^T (x - b), sigma^2 M^{-1}).

        Returns:
            ``(mean (N, k), cov (k, k))``; the covariance does not depend on x.
        """
        x = self._check_x(x)
        M = self._M()
        mean = torch.linalg.solve(M, self.W.T @ (x - self.b).T).T
        cov = self.sigma**2 * torch.linalg.inv(M)
        return mean, 0.5 * (cov + cov.T)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) = log N(x; W z + b, sigma^2 I); z ``(..., N, k)`` -> ``(..., N)``."""
        x = self._check_x(x)
        z = float_tensor(z, "z")
        if z.dim() < 2 or z.shape[-1] != self.k or z.shape[-2] != x.shape[0]:
            raise ValueError(f"z must have shape (..., {x.shape[0]}, {self.k}), got {tuple(z.shape)}")
        mean = z @ self.W.T + self.b
        s2 = self.sigma**2
        return -0.5 * (((x - mean).pow(2) / s2).sum(-1) + self.D * (LOG_2PI + torch.log(s2)))

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x, z) = log p(x|z) + log p(z); z ``(..., N, k)`` -> ``(..., N)`` (for :func:`iwae_bound`)."""
        return self.log_likelihood(x, z) + standard_normal_log_prob(z)

    def elbo(self, x: torch.Tensor, q_mean: torch.Tensor, q_cov: torch.Tensor) -> torch.Tensor:
        """The ELBO of q(z) = N(q_mean, q_cov) in closed form (see the class docstring), per row, ``(N,)``.

        Args:
            x: data ``(N, D)``.
            q_mean: m, ``(N, k)``.
            q_cov: S, symmetric positive definite, ``(k, k)`` (shared) or ``(N, k, k)``.
        """
        x = self._check_x(x)
        q_mean = float_tensor(q_mean, "q_mean")
        q_cov = float_tensor(q_cov, "q_cov")
        n, k = x.shape[0], self.k
        if q_mean.shape != (n, k):
            raise ValueError(f"q_mean must have shape ({n}, {k}), got {tuple(q_mean.shape)}")
        if q_cov.shape not in ((k, k), (n, k, k)):
            raise ValueError(f"q_cov must have shape ({k}, {k}) or ({n}, {k}, {k}), got {tuple(q_cov.shape)}")
        chol, info = torch.linalg.cholesky_ex(q_cov)
        if bool((info != 0).any()):
            raise ValueError("q_cov must be symmetric positive definite")
        logdet_s = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        tr_s = torch.diagonal(q_cov, dim1=-2, dim2=-1).sum(-1)
        tr_wws = (self.W.T @ self.W * q_cov).sum((-2, -1))  # tr(W^T W S), S symmetric
        s2 = self.sigma**2
        resid = (x - q_mean @ self.W.T - self.b).pow(2).sum(-1)
        expected_loglik = -0.5 * (self.D * (LOG_2PI + torch.log(s2)) + (resid + tr_wws) / s2)
        kl = 0.5 * (tr_s + q_mean.pow(2).sum(-1) - k - logdet_s)
        return expected_loglik - kl

    def sample(self, n: int, generator: torch.Generator | None = None, return_z: bool = False):
        """Ancestral samples z ~ N(0, I), x = W z + b + sigma * eps: ``(n, D)`` (and z if asked)."""
        n = positive_int(n, "n")
        z = _randn_like(self.W, (n, self.k), generator)
        x = z @ self.W.T + self.b + self.sigma * _randn_like(self.W, (n, self.D), generator)
        return (x, z) if return_z else x

    def extra_repr(self) -> str:
        return f"D={self.D}, k={self.k}, sigma={float(self.sigma):.4g}"
