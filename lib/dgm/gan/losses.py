"""Chapter 3, the losses of the game, all computed from logits (or critic scores).

With D(x) = sigmoid(l(x)), log D = -softplus(-l) and log(1 - D) = -softplus(l) never produce
log(0) = -inf, so every loss here is finite for finite logits.

The game (Goodfellow et al., 2014):

    min_G max_D V(D, G) = E_{x~p_data}[log D(x)] + E_{z~p(z)}[log(1 - D(G(z)))]             (3.1)

    the discriminator minimizes -V, from logits l (D = sigmoid(l)):
                    -V = E_data[softplus(-l(x))] + E_z[softplus(l(G(z)))]                    (3.2)

What the generator minimizes, from logits l:

    generator:      saturating     E_z[log(1 - D(G(z)))] = -E_z[softplus(l(G(z)))]
                    non-saturating -E_z[log D(G(z))]     =  E_z[softplus(-l(G(z)))]         (3.6)
                    wasserstein    -E_z[f(G(z))]

Wasserstein GANs (Arjovsky et al., 2017; Gulrajani et al., 2017), with the critic f keeping
(close to) 1-Lipschitz so that -critic_loss estimates W_1 of Eq. (3.7) (:mod:`dgm.gan.divergences`):

    critic:     E_z[f(G(z))] - E_data[f(x)],  weights clipped to [-c, c] after each step   (3.8)

    penalty:    lambda E_{x_hat}[(||grad_x f(x_hat)||_2 - 1)^2],
                x_hat = eps x + (1 - eps) G(z),  eps ~ U[0, 1]                                (3.9)

:func:`discriminator_loss` (3.2), :func:`generator_loss` (3.6), :func:`critic_loss` (3.8),
:func:`gradient_penalty` (3.9), :func:`clip_weights` (3.8).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dgm._checks import float_tensor, positive_number

__all__ = [
    "GENERATOR_LOSSES",
    "LOSSES",
    "discriminator_loss",
    "generator_loss",
    "critic_loss",
    "gradient_penalty",
    "clip_weights",
]

#: Kinds accepted by :func:`generator_loss`, Eq. (3.6).
GENERATOR_LOSSES = ("saturating", "nonsaturating", "wasserstein")
#: Games :class:`GANTrainer` plays: the two GAN generator losses of (3.6) against the
#: discriminator loss (3.2), and the Wasserstein game (3.8) with weight clipping or the
#: gradient penalty (3.9).
LOSSES = ("saturating", "nonsaturating", "wgan", "wgan-gp")


def _check_logits(x, name: str) -> torch.Tensor:
    """A non-empty float tensor without NaN (one logit or score per example, any shape)."""
    x = float_tensor(x, name)
    if x.numel() == 0:
        raise ValueError(f"{name} must hold at least one value (one logit per example), got shape {tuple(x.shape)}")
    if bool(torch.isnan(x).any()):
        raise ValueError(f"{name} contains NaN (did training diverge?)")
    return x


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss -V(D, G) of Eq. (3.1), from logits, Eq. (3.2):

        -E_data[log D(x)] - E_z[log(1 - D(G(z)))] = E[softplus(-l_real)] + E[softplus(l_fake)]

    i.e. binary cross-entropy with label 1 for real and 0 for generated samples. Finite for any
    finite logits (no log(sigmoid) underflow to -inf).

    Args:
        real_logits: l(x) on a batch of data, any shape.
        fake_logits: l(G(z)) on a batch of generated samples, any shape (the two means are
            taken separately, so the batch sizes may differ).

    Returns:
        A scalar tensor (nats); its minimum over D is -C(G) = log 4 - 2 JSD, Eq. (3.4).
    """
    real_logits = _check_logits(real_logits, "real_logits")
    fake_logits = _check_logits(fake_logits, "fake_logits")
    return _d_loss(real_logits, fake_logits)


def _d_loss(real_logits, fake_logits):
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor, kind: str = "nonsaturating") -> torch.Tensor:
    """The generator's loss on l(G(z)), Eq. (3.6), computed stably from logits.

    * ``"saturating"``: E[log(1 - D(G(z)))] = -E[softplus(l)] - the minimax loss of (3.1).
      Its gradient dloss/dl = -D(G(z)) vanishes where D confidently rejects the samples.
    * ``"nonsaturating"``: -E[log D(G(z))] = E[softplus(-l)]; dloss/dl = -(1 - D(G(z))), large
      exactly where the samples are rejected (the heuristic of Goodfellow et al., 2014).
    * ``"wasserstein"``: -E[f(G(z))] for a WGAN critic f (``fake_logits`` are critic scores).

    Args:
        fake_logits: logits (or critic scores) of generated samples, any shape.
        kind: one of :data:`GENERATOR_LOSSES`.

    Returns:
        A scalar tensor.
    """
    if kind not in GENERATOR_LOSSES:
        raise ValueError(f"kind must be one of {', '.join(map(repr, GENERATOR_LOSSES))}; got {kind!r}")
    fake_logits = _check_logits(fake_logits, "fake_logits")
    return _g_loss(fake_logits, kind)


def _g_loss(fake_logits, kind):
    if kind == "saturating":
        return -F.softplus(fake_logits).mean()
    if kind == "nonsaturating":
        return F.softplus(-fake_logits).mean()
    return -fake_logits.mean()


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """The WGAN critic's loss E_z[f(G(z))] - E_data[f(x)], Eq. (3.8).

    Its negative estimates W_1(p_data, p_g) of (3.7) when f is (close to) the best 1-Lipschitz
    function; keep f Lipschitz with :func:`clip_weights` or :func:`gradient_penalty`.
    """
    real_scores = _check_logits(real_scores, "real_scores")
    fake_scores = _check_logits(fake_scores, "fake_scores")
    return fake_scores.mean() - real_scores.mean()


def gradient_penalty(critic: Callable, real: torch.Tensor, fake: torch.Tensor, y=None,
                     eps: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """The WGAN-GP penalty E[(||grad_x f(x_hat)||_2 - 1)^2] of Eq. (3.9), without the lambda.

    x_hat = eps x + (1 - eps) G(z) with one eps ~ U[0, 1] per example, on the straight line
    between a real and a generated sample. The gradient is taken with ``create_graph=True`` so
    the penalty can itself be differentiated with respect to the critic's parameters.

    Args:
        critic: f, maps a batch like ``real`` to one score per example (``critic(x, y)`` if
            labels ``y`` are given).
        real: a batch of data (N, ...).
        fake: generated samples of the same shape (detached or not: only x_hat is differentiated).
        y: optional labels for a conditional critic.
        eps: optional mixing weights, shape ``(N,)`` in [0, 1] (default: drawn uniformly).
        generator: optional ``torch.Generator`` for eps.

    Returns:
        A scalar tensor.
    """
    real = float_tensor(real, "real")
    fake = float_tensor(fake, "fake")
    if real.shape != fake.shape or real.dim() < 2:
        raise ValueError(
            f"real and fake must be batches (N, ...) of the same shape, got real {tuple(real.shape)} "
            f"and fake {tuple(fake.shape)}"
        )
    if not callable(critic):
        raise TypeError(f"critic must be callable, got {type(critic).__name__}")
    n = real.shape[0]
    if eps is None:
        gdev = real.device if generator is None else generator.device
        eps = torch.rand(n, generator=generator, device=gdev, dtype=real.dtype).to(real.device)
    else:
        eps = float_tensor(eps, "eps")
        if eps.shape != (n,):
            raise ValueError(f"eps must have shape ({n},), one weight per example, got {tuple(eps.shape)}")
        if bool(((eps < 0) | (eps > 1) | torch.isnan(eps)).any()):
            raise ValueError("eps must lie in [0, 1]")
    eps = eps.reshape(n, *([1] * (real.dim() - 1)))
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat) if y is None else critic(x_hat, y)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def clip_weights(module: nn.Module, c: float = 0.01) -> nn.Module:
    """Clip every parameter of ``module`` to [-c, c] in place, Eq. (3.8) (the original WGAN).

    A crude way to keep the critic K-Lipschitz for some K: the weights stay bounded, and the
    functions the critic can represent with them are too. Returns the module.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    c = positive_number(c, "c")
    with torch.no_grad():
        for p in module.parameters():
            p.clamp_(-c, c)
    return module
