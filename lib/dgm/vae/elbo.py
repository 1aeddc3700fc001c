"""Chapter 2, the ELBO and its pieces: the closed-form KL, the reparameterisation trick, the two
decoder likelihoods and the importance-weighted bound.

Lecture notation: an observation x, a latent z, the prior p(z) = N(0, I), a decoder (likelihood)
p_theta(x|z) and an encoder (approximate posterior) q_phi(z|x) = N(mu, diag(exp(logvar))), with
mu = mu_phi(x) and logvar = log sigma^2_phi(x) computed by a network.

For *any* distribution q(z) over the latents the log-evidence splits into two parts,

    log p_theta(x) = L(x; theta, phi) + KL(q_phi(z|x) || p_theta(z|x))                 (2.1)

    L(x; theta, phi) = E_{q_phi(z|x)}[log p_theta(x, z) - log q_phi(z|x)]
                     = E_{q_phi(z|x)}[log p_theta(x|z)] - KL(q_phi(z|x) || p(z))        (2.2)

and since a KL divergence is >= 0, the ELBO L is a lower bound on log p_theta(x), tight exactly
when q_phi(z|x) is the true posterior p_theta(z|x). A VAE maximises (2.2) over theta and phi.
The pieces:

* :func:`gaussian_kl` - KL(N(mu, diag sigma^2) || N(0, I)) in closed form, Eq. (2.3).
* :func:`reparameterize` - z = mu + sigma * eps, eps ~ N(0, I), Eq. (2.6): a sample of q_phi
  that gradients flow through.
* :func:`bernoulli_log_likelihood`, :func:`gaussian_log_likelihood` - log p_theta(x|z) for the
  two decoders of the chapter, Eq. (2.5) (Bernoulli) and Eq. (2.4) (Gaussian).
* :func:`iwae_bound` - the importance-weighted bound of Burda et al. (2016), Eq. (2.9):
  ELBO = L_1 <= L_k <= L_{k+1} <= log p(x), for any log-joint and any proposal q.

The prior's log-density log p(z) and the log-mean-exp are :func:`dgm.distributions.standard_normal_log_prob`
and :func:`dgm.distributions.log_mean_exp` (also importable from :mod:`dgm.vae`). Nothing here picks a
device: every function works on the device of its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal

from dgm._checks import finite_number, float_tensor, positive_int, same_shape
from dgm.distributions import LOG_2PI, sum_except_batch

__all__ = [
    "gaussian_kl",
    "reparameterize",
    "bernoulli_log_likelihood",
    "gaussian_log_likelihood",
    "iwae_bound",
]


def _randn_like(ref: torch.Tensor, shape, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise of ``shape`` with ref's dtype/device, drawn with ``generator``."""
    device = ref.device if generator is None else generator.device
    eps = torch.randn(tuple(shape), generator=generator, device=device, dtype=ref.dtype)
    return eps.to(ref.device)


# ----------------------------------------------------------------------------- the ELBO's pieces
def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(sigma^2)) || N(0, I)) in closed form, Eq. (2.3).

        KL(q_phi(z|x) || p(z)) = 1/2 sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1)

    with sigma^2 = exp(logvar); the sum runs over the last (latent) dimension.

    Args:
        mu: means, shape ``(..., d)``.
        logvar: log-variances log sigma^2, the same shape as ``mu``.

    Returns:
        One KL per example, shape ``mu.shape[:-1]`` (nats).

    Raises:
        TypeError: ``mu`` or ``logvar`` is not a floating-point tensor.
        ValueError: their shapes differ, or they are 0-dimensional.
    """
    mu = float_tensor(mu, "mu")
    logvar = float_tensor(logvar, "logvar")
    same_shape(mu, logvar, "mu", "logvar")
    if mu.dim() == 0:
        raise ValueError("mu and logvar must have a latent dimension, shape (..., d); got scalars")
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).sum(dim=-1)


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A differentiable sample of q_phi(z|x) = N(mu, diag(exp(logvar))), Eq. (2.6):

        z = mu + exp(logvar / 2) * eps,    eps ~ N(0, I).

    The randomness is in eps only, so dz/dmu = 1 and dz/dlogvar = sigma * eps / 2 exist and
    gradients of a Monte Carlo ELBO reach the encoder.

    Args:
        mu: means, any shape.
        logvar: log-variances, the same shape as ``mu``.
        generator: an optional ``torch.Generator`` for reproducible eps.

    Returns:
        z, the shape of ``mu``.
    """
    mu = float_tensor(mu, "mu")
    logvar = float_tensor(logvar, "logvar")
    same_shape(mu, logvar, "mu", "logvar")
    return mu + torch.exp(0.5 * logvar) * _randn_like(mu, mu.shape, generator)


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p_theta(x|z) for a Bernoulli decoder with logits l = f_theta(z), Eq. (2.5):

        log p_theta(x|z) = sum_i [x_i log sigmoid(l_i) + (1 - x_i) log(1 - sigmoid(l_i))]
                         = sum_i [x_i l_i - softplus(l_i)],

    i.e. minus the summed binary cross-entropy. The second form is computed, which stays finite
    for any logits (no log(0) for l = +-100). Gray levels x_i in [0, 1] are allowed (the usual
    "BCE" objective on MNIST); only for binary x is it a normalised log-probability.

    Args:
        logits: decoder output l, shape ``(N, ...)``.
        x: data in [0, 1], the same shape.

    Returns:
        One log-likelihood per example (summed over all data dims), shape ``(N,)``.
    """
    logits = float_tensor(logits, "logits")
    x = float_tensor(x, "x")
    same_shape(logits, x, "logits", "x")
    if x.numel() and bool((~((x >= 0) & (x <= 1))).any()):
        raise ValueError("x must lie in [0, 1] (and not be NaN) for a Bernoulli likelihood")
    return sum_except_batch(x * logits - F.softplus(logits))


def gaussian_log_likelihood(mean: torch.Tensor, x: torch.Tensor, logvar=0.0) -> torch.Tensor:
    """log p_theta(x|z) for a Gaussian decoder N(x; m, sigma_x^2 I), m = f_theta(z), Eq. (2.4):

        log p_theta(x|z) = -1/2 sum_i [ (x_i - m_i)^2 / sigma_x^2 + log sigma_x^2 + log 2 pi ].

    Args:
        mean: decoder output m, shape ``(N, ...)``.
        x: data, the same shape.
        logvar: log sigma_x^2, a number or a tensor broadcastable to ``x`` (e.g. a learned scalar).

    Returns:
        One log-likelihood per example (summed over all data dims), shape ``(N,)``.
    """
    mean = float_tensor(mean, "mean")
    x = float_tensor(x, "x")
    same_shape(mean, x, "mean", "x")
    if isinstance(logvar, torch.Tensor):
        logvar = float_tensor(logvar, "logvar")
        try:
            torch.broadcast_shapes(logvar.shape, x.shape)
        except RuntimeError:
            raise ValueError(
                f"logvar must be a number or broadcastable to x {tuple(x.shape)}, got shape "
                f"{tuple(logvar.shape)}"
            ) from None
    else:
        logvar = torch.tensor(finite_number(logvar, "logvar"), dtype=x.dtype, device=x.device)
    elementwise = (x - mean).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI
    return sum_except_batch(-0.5 * elementwise.expand_as(x))


# ----------------------------------------------------------------------------- importance weighting
def _rsample(q: Distribution, m: int, generator: torch.Generator | None) -> torch.Tensor:
    """m reparameterised draws of q, shape ``(m, *q.batch_shape, *q.event_shape)``."""
    if generator is None:
        return q.rsample((m,))
    base = q.base_dist if isinstance(q, Independent) else q
    if isinstance(base, Normal):
        return base.loc + base.scale * _randn_like(base.loc, (m, *base.loc.shape), generator)
    if isinstance(q, MultivariateNormal):
        shape = (m, *q.batch_shape, *q.event_shape)
        eps = _randn_like(q.loc, shape, generator)
        return q.loc + (q.scale_tril @ eps.unsqueeze(-1)).squeeze(-1)
    raise TypeError(
        "generator= is supported for q a Normal, Independent(Normal) or MultivariateNormal; "
        f"got q of type {type(q).__name__} (seed torch instead and pass generator=None)"
    )


def iwae_bound(
    log_joint: Callable[[torch.Tensor], torch.Tensor],
    q: Distribution,
    k: int,
    chunk: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The importance-weighted bound L_k of Burda et al. (2016), Eq. (2.9):

        L_k(x) = E_{z_1..z_k ~ q} [ log (1/k) sum_i w_i ],   w_i = p(x, z_i) / q(z_i),

    estimated with one set of k draws. L_1 is the ELBO (2.2), L_k <= L_{k+1} <= log p(x), and
    L_k -> log p(x) as k -> infinity. The log-mean-exp uses ``torch.logsumexp`` (never exp(log w)
    itself) and the k draws are processed ``chunk`` at a time, combining the partial sums with
    logsumexp, so memory does not grow with k. Generic: any model, any proposal.

    Args:
        log_joint: ``z -> log p(x, z)`` for the fixed data x: maps draws of shape
            ``(m, *q.batch_shape, *q.event_shape)`` to ``(m, *q.batch_shape)``.
        q: the proposal, a ``torch.distributions`` object with ``rsample`` (e.g.
            ``Independent(Normal(mu, sigma), 1)`` or ``MultivariateNormal``), one batch entry per x.
        k: number of importance samples (k = 1 gives a one-sample ELBO estimate).
        chunk: draws per chunk; default all k at once.
        generator: optional ``torch.Generator`` (Normal, Independent(Normal), MultivariateNormal q).

    Returns:
        One estimate of L_k per example, shape ``q.batch_shape``. Gradients flow (through
        ``rsample``), so it can also be trained on; wrap evaluation in ``torch.no_grad()``.
    """
    if not callable(log_joint):
        raise TypeError(f"log_joint must be callable z -> log p(x, z), got {type(log_joint).__name__}")
    if not isinstance(q, Distribution):
        raise TypeError(f"q must be a torch.distributions.Distribution, got {type(q).__name__}")
    k = positive_int(k, "k")
    chunk = k if chunk is None else min(positive_int(chunk, "chunk"), k)
    total = None
    for start in range(0, k, chunk):
        m = min(chunk, k - start)
        z = _rsample(q, m, generator)
        lp = log_joint(z)
        expected = (m, *q.batch_shape)
        if not isinstance(lp, torch.Tensor) or tuple(lp.shape) != expected:
            got = tuple(lp.shape) if isinstance(lp, torch.Tensor) else type(lp).__name__
            raise ValueError(f"log_joint must map z {tuple(z.shape)} to shape {expected}, got {got}")
        part = torch.logsumexp(lp - q.log_prob(z), dim=0)
        total = part if total is None else torch.logaddexp(total, part)
    return total - math.log(k)

