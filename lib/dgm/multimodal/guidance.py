"""Guidance from Bayes' rule, with every term exact on a Gaussian mixture, Eqs. (7.4)-(7.6).

Bayes' rule p(x | c) = p(x) p(c | x) / p(c), with p(c) free of x, gives for the scores (gradients
in x of the log-densities)

    grad_x log p(x | c) = grad_x log p(x) + grad_x log p(c | x).                               (7.4)

A diffusion model learns the first term (the unconditional score), a classifier on noisy images the
second; *classifier guidance* (Dhariwal & Nichol, 2021) scales the classifier's part,

    s_gamma(x, c) = grad_x log p(x) + gamma grad_x log p(c | x),                                (7.5)

which samples p(x) p(c | x)^gamma up to normalisation, and *classifier-free guidance* (Ho &
Salimans, 2022; Eq. (5.10) of lecture 5) gets the same from one conditional model with a null
condition, grad_x log p(c | x) being the difference of its two scores:

    s_w(x, c) = s(x, null) + w (s(x, c) - s(x, null)).                                          (7.6)

With the exact scores, (7.6) at w = gamma *is* (7.5). On a mixture of Gaussians
p(x) = sum_k pi_k N(x; mu_k, Sigma_k), with the component as the condition c, every term has a
closed form: grad log N(x; mu_k, Sigma_k) = -Sigma_k^{-1} (x - mu_k) =: g_k(x), the posterior
p(k | x) = r_k(x) = softmax_k(log pi_k + log N(x; mu_k, Sigma_k)), and

    grad log p(x) = sum_k r_k(x) g_k(x),   grad log p(x | c) = g_c(x),
    grad log p(c | x) = g_c(x) - sum_k r_k(x) g_k(x).

* :func:`gaussian_mixture` - a ``torch.distributions.MixtureSameFamily`` of full-covariance Gaussians.
* :func:`mixture_scores` - the three scores of Eq. (7.4) in closed form.
* :func:`classifier_guided_score` - Eq. (7.5); :func:`guided_score` - Eq. (7.6), the combination
  that :func:`dgm.diffusion.cfg_eps` applies to a network's two noise predictions.
"""

from __future__ import annotations

from numbers import Integral

import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, MultivariateNormal, Normal

from dgm._checks import finite, finite_number, float_tensor, same_shape

__all__ = ["gaussian_mixture", "mixture_scores", "classifier_guided_score", "guided_score"]


def gaussian_mixture(weights, means, covariances) -> MixtureSameFamily:
    """sum_k pi_k N(mu_k, Sigma_k): ``weights`` (K,) > 0 (normalised here), ``means`` (K, D),
    ``covariances`` (K, D, D) symmetric positive definite."""
    weights, means, covariances = (float_tensor(t, n) for t, n in
                                   ((weights, "weights"), (means, "means"), (covariances, "covariances")))
    if weights.dim() != 1 or bool((weights <= 0).any()) or not bool(torch.isfinite(weights).all()):
        raise ValueError(f"weights must be a 1-D tensor of positive finite numbers, got shape {tuple(weights.shape)}")
    k = len(weights)
    if means.dim() != 2 or means.shape[0] != k:
        raise ValueError(f"means must have shape ({k}, D), got {tuple(means.shape)}")
    d = means.shape[1]
    if covariances.shape != (k, d, d):
        raise ValueError(f"covariances must have shape ({k}, {d}, {d}), got {tuple(covariances.shape)}")
    try:
        components = MultivariateNormal(finite(means, "means"), covariance_matrix=covariances)
    except ValueError as err:
        raise ValueError(f"covariances must be symmetric positive definite: {err}") from None
    return MixtureSameFamily(Categorical(probs=weights / weights.sum()), components)


def _precisions(components) -> torch.Tensor:
    if isinstance(components, MultivariateNormal):
        return components.precision_matrix
    if isinstance(components, Independent) and isinstance(components.base_dist, Normal) \
            and components.reinterpreted_batch_ndims == 1:
        return torch.diag_embed(components.base_dist.scale.pow(-2))
    raise TypeError("mixture's components must be MultivariateNormal or Independent(Normal, 1), "
                    f"got {type(components).__name__}")


def mixture_scores(x, c, mixture: MixtureSameFamily) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three scores of Eq. (7.4) on a Gaussian mixture, in closed form (no autograd).

    Args:
        x: points ``(N, D)``.
        c: the condition, a component index: an int or an integer tensor ``(N,)`` in 0..K-1.
        mixture: a ``MixtureSameFamily`` over K Gaussian components (:func:`gaussian_mixture`),
            batch shape ``()``, event shape ``(D,)``.

    Returns:
        ``(prior_score, classifier_score, conditional_score)``, each ``(N, D)``:
        grad_x log p(x), grad_x log p(c | x) and grad_x log p(x | c).
    """
    if not isinstance(mixture, MixtureSameFamily):
        raise TypeError(f"mixture must be a torch.distributions.MixtureSameFamily, got {type(mixture).__name__}")
    if mixture.batch_shape != () or len(mixture.event_shape) != 1:
        raise ValueError("mixture must have batch shape () and event shape (D,), got "
                         f"{tuple(mixture.batch_shape)} and {tuple(mixture.event_shape)}")
    components = mixture.component_distribution
    precisions = _precisions(components)                                     # (K, D, D)
    k, d = precisions.shape[0], mixture.event_shape[0]
    x = finite(float_tensor(x, "x"), "x")
    if x.dim() != 2 or x.shape[1] != d or x.shape[0] == 0:
        raise ValueError(f"x must have shape (N, {d}) with N >= 1, got {tuple(x.shape)}")
    n = len(x)
    if isinstance(c, Integral) and not isinstance(c, bool):
        c = torch.full((n,), int(c), dtype=torch.long)
    if not isinstance(c, torch.Tensor) or c.is_floating_point() or c.dtype == torch.bool or c.shape != (n,):
        raise ValueError(f"c must be an int or an integer tensor of shape ({n},), got {getattr(c, 'shape', c)!r}")
    if int(c.min()) < 0 or int(c.max()) >= k:
        raise ValueError(f"c must hold component indices in 0..{k - 1}")
    c = c.to(x.device).long()
    diff = x[:, None, :] - components.mean[None]                             # (N, K, D)
    g = -torch.einsum("kde,nke->nkd", precisions.to(x.dtype), diff)           # g_k(x) = -P_k (x - mu_k)
    log_joint = mixture.mixture_distribution.logits.log_softmax(-1) + components.log_prob(x[:, None, :])
    r = torch.softmax(log_joint, dim=-1)                                     # p(k | x), (N, K)
    prior = (r[..., None] * g).sum(1)
    conditional = g[torch.arange(n, device=x.device), c]
    classifier = conditional - prior
    return prior, classifier, conditional


def classifier_guided_score(prior_score, classifier_score, scale: float) -> torch.Tensor:
    """Eq. (7.5): ``prior_score + scale * classifier_score`` (scale = gamma; 1 gives grad log p(x | c))."""
    prior_score = float_tensor(prior_score, "prior_score")
    same_shape(prior_score, classifier_score, "prior_score", "classifier_score")
    scale = finite_number(scale, "scale")
    return prior_score + scale * classifier_score


def guided_score(uncond, cond, w: float) -> torch.Tensor:
    """Classifier-free guidance, Eq. (7.6) (= Eq. (5.10)): ``uncond + w * (cond - uncond)``.

    ``uncond`` and ``cond`` are a model's outputs without and with the condition: scores, or noise
    predictions eps_theta (a score times -1 / sqrt(1 - alpha_bar_t); the weights 1 - w and w sum
    to 1, so the combination is the same). w = 0 is unconditional, w = 1 conditional, w > 1 guided.
    """
    uncond = float_tensor(uncond, "uncond")
    same_shape(uncond, cond, "uncond", "cond")
    w = finite_number(w, "w")
    return uncond + w * (cond - uncond)
