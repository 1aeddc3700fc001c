"""Chapter 3: generative adversarial networks, the GAN game.

Lecture notation: noise z ~ p(z) = N(0, I), a generator G_theta_g(z) (``generator``) whose
samples have the density p_g, a discriminator D_theta_d(x) in (0, 1) (``discriminator``; for a
WGAN an unbounded critic f, ``critic``) and the data density p_data. The networks here output
*logits* l(x) with D(x) = sigmoid(l(x)); every loss is computed from logits, because
log D = -softplus(-l) and log(1 - D) = -softplus(l) never produce log(0) = -inf.

The game and its analysis (Goodfellow et al., 2014):

    min_G max_D V(D, G) = E_{x~p_data}[log D(x)] + E_{z~p(z)}[log(1 - D(G(z)))]             (3.1)

    the discriminator minimizes -V, from logits l (D = sigmoid(l)):
                    -V = E_data[softplus(-l(x))] + E_z[softplus(l(G(z)))]                    (3.2)

    D*_G(x) = p_data(x) / (p_data(x) + p_g(x)) = sigmoid(log p_data(x) - log p_g(x))      (3.3)

    C(G) = max_D V(D, G) = V(D*_G, G) = -log 4 + 2 JSD(p_data || p_g)                       (3.4)

    JSD(p || q) = 1/2 KL(p || m) + 1/2 KL(q || m),   m = (p + q) / 2                          (3.5)

What the generator minimizes, from logits l:

    generator:      saturating     E_z[log(1 - D(G(z)))] = -E_z[softplus(l(G(z)))]
                    non-saturating -E_z[log D(G(z))]     =  E_z[softplus(-l(G(z)))]         (3.6)
                    wasserstein    -E_z[f(G(z))]

Wasserstein GANs (Arjovsky et al., 2017; Gulrajani et al., 2017):

    W_1(P, Q) = inf_{gamma in Pi(P, Q)} E_{(x, y)~gamma} ||x - y||
              = sup_{||f||_L <= 1} E_{x~P}[f(x)] - E_{x~Q}[f(x)]                               (3.7)

    critic:     E_z[f(G(z))] - E_data[f(x)],  weights clipped to [-c, c] after each step   (3.8)

    penalty:    lambda E_{x_hat}[(||grad_x f(x_hat)||_2 - 1)^2],
                x_hat = eps x + (1 - eps) G(z),  eps ~ U[0, 1]                                (3.9)

Contents:

* networks: :class:`MLPGenerator`, :class:`MLPDiscriminator` (toy 2-D data, or flat images),
  :class:`DCGANGenerator`, :class:`DCGANDiscriminator` (28x28 images, transposed convolutions;
  Radford et al., 2016). All four take ``num_classes`` for a conditional GAN (Mirza & Osindero,
  2014): the one-hot label is concatenated to z and to x (as constant feature maps for convs).
* losses: :func:`discriminator_loss` (3.2), :func:`generator_loss` (3.6), :func:`critic_loss`
  (3.8), :func:`gradient_penalty` (3.9), :func:`clip_weights` (3.8).
* theory: :func:`optimal_discriminator` (3.3), :func:`kl`, :func:`jsd` (3.5),
  :func:`total_variation`, :func:`w1` (3.7, exact on two equal-size samples).
* evaluation: :func:`mode_coverage` - modes covered and the fraction of high-quality samples
  (within 3 standard deviations of a mode; Srivastava et al., 2017); :func:`decision_surface`.
* training: :class:`GANTrainer` alternates k discriminator steps and one generator step
  (Algorithm 1 of Goodfellow et al.; Algorithm 1 of Gulrajani et al. for ``loss="wgan-gp"``)
  and logs both losses in a :class:`GANHistory`; :func:`train_gan` is the one-call version.

Nothing here picks a device: a model lives where you ``.to()`` it, and every function works on
the device of its inputs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dgm.config import seed_everything
from dgm.train import NonFiniteLossError

__all__ = [
    "GENERATOR_LOSSES",
    "LOSSES",
    "MLPGenerator",
    "MLPDiscriminator",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "discriminator_loss",
    "generator_loss",
    "critic_loss",
    "gradient_penalty",
    "clip_weights",
    "optimal_discriminator",
    "kl",
    "jsd",
    "total_variation",
    "w1",
    "ModeCoverage",
    "mode_coverage",
    "decision_surface",
    "GANHistory",
    "GANTrainer",
    "train_gan",
]

#: Kinds accepted by :func:`generator_loss`, Eq. (3.6).
GENERATOR_LOSSES = ("saturating", "nonsaturating", "wasserstein")
#: Games :class:`GANTrainer` plays: the two GAN generator losses of (3.6) against the
#: discriminator loss (3.2), and the Wasserstein game (3.8) with weight clipping or the
#: gradient penalty (3.9).
LOSSES = ("saturating", "nonsaturating", "wgan", "wgan-gp")


# ----------------------------------------------------------------------------- input checks
def _check_tensor(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def _check_logits(x, name: str) -> torch.Tensor:
    """A non-empty float tensor without NaN (one logit or score per example, any shape)."""
    x = _check_tensor(x, name)
    if x.numel() == 0:
        raise ValueError(f"{name} must hold at least one value (one logit per example), got shape {tuple(x.shape)}")
    if bool(torch.isnan(x).any()):
        raise ValueError(f"{name} contains NaN (did training diverge?)")
    return x


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _positive_number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _widths(hidden, name: str = "hidden") -> tuple[int, ...]:
    if isinstance(hidden, int) and not isinstance(hidden, bool):
        hidden = (hidden,)
    if (
        not isinstance(hidden, Sequence)
        or len(hidden) == 0
        or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden)
    ):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {hidden!r}")
    return tuple(hidden)


def _shape(shape, name: str) -> tuple[int, ...]:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if (
        not isinstance(shape, Sequence)
        or len(shape) == 0
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
    ):
        raise ValueError(f"{name} must be a positive int or a tuple of positive ints such as (1, 28, 28), got {shape!r}")
    return tuple(shape)


def _optional_classes(num_classes) -> int | None:
    if num_classes is None:
        return None
    return _positive_int(num_classes, "num_classes")


def _check_labels(y, n: int, num_classes: int | None, device) -> torch.Tensor | None:
    """Integer labels (n,) in [0, num_classes) for a conditional network; None otherwise."""
    if num_classes is None:
        if y is not None:
            raise ValueError("y was given but this network is unconditional (num_classes=None)")
        return None
    if y is None:
        raise ValueError(f"y (labels, shape ({n},)) is required: this network is conditional (num_classes={num_classes})")
    if not isinstance(y, torch.Tensor):
        y = torch.as_tensor(y)
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.dtype.is_complex:
        raise TypeError(f"y must be an integer tensor of class labels, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},), one label per example, got {tuple(y.shape)}")
    if n and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"y must hold labels in [0, {num_classes}), got values in [{int(y.min())}, {int(y.max())}]")
    return y.to(device)


def _mlp(sizes: Sequence[int], activation: Callable[[], nn.Module]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return layers


# ----------------------------------------------------------------------------- networks
class _Generator(nn.Module):
    """Shared plumbing of the generators: checks, label handling, :meth:`sample`."""

    latent_dim: int
    num_classes: int | None
    out_shape: tuple[int, ...]

    def _check_z(self, z) -> torch.Tensor:
        z = _check_tensor(z, "z")
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"z must have shape (N, {self.latent_dim}) (latent_dim={self.latent_dim}), got {tuple(z.shape)}"
            )
        return z

    def _input(self, z, y) -> torch.Tensor:
        z = self._check_z(z)
        y = _check_labels(y, z.shape[0], self.num_classes, z.device)
        if y is not None:
            z = torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], dim=1)
        return z

    def sample(self, n: int, y=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples G(z), z ~ N(0, I), without gradients, in the network's current mode.

        Args:
            n: number of samples.
            y: labels (n,) for a conditional generator (an int repeats one label).
            generator: a ``torch.Generator`` for z (on the network's device, or on the CPU).

        Returns:
            Tensor ``(n, *out_shape)`` on the network's device.
        """
        n = _positive_int(n, "n")
        param = next(self.parameters())
        gdev = param.device if generator is None else generator.device
        z = torch.randn(n, self.latent_dim, generator=generator, device=gdev).to(param.device, param.dtype)
        if isinstance(y, int) and not isinstance(y, bool):
            y = torch.full((n,), y, dtype=torch.long)
        with torch.no_grad():
            return self(z, y)


class MLPGenerator(_Generator):
    """G_theta_g: an MLP from z (``latent_dim``) to a sample of shape ``out_shape``.

    Linear layers of widths ``hidden`` with ReLU between them, then a linear output layer
    (``out_activation=None``, for 2-D points) or a sigmoid (``"sigmoid"``, images in [0, 1]).
    A conditional generator (``num_classes``) takes z concatenated with one-hot(y), Eq. (3.10).

    Args:
        latent_dim: dimension of z.
        out_shape: shape of one sample, e.g. ``2`` or ``(1, 28, 28)``.
        hidden: hidden widths.
        out_activation: None or ``"sigmoid"``.
        num_classes: None (unconditional) or the number of labels.
    """

    def __init__(self, latent_dim: int = 2, out_shape=2, hidden=(128, 128, 128), out_activation=None,
                 num_classes=None):
        super().__init__()
        self.latent_dim = _positive_int(latent_dim, "latent_dim")
        self.out_shape = _shape(out_shape, "out_shape")
        self.hidden = _widths(hidden)
        if out_activation not in (None, "sigmoid"):
            raise ValueError(f"out_activation must be None or 'sigmoid', got {out_activation!r}")
        self.out_activation = out_activation
        self.num_classes = _optional_classes(num_classes)
        nc = self.num_classes or 0
        self.net = nn.Sequential(
            *_mlp([self.latent_dim + nc, *self.hidden, math.prod(self.out_shape)], nn.ReLU)
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """G(z) (or G(z | y)), shape ``(N, *out_shape)``."""
        out = self.net(self._input(z, y))
        if self.out_activation == "sigmoid":
            out = torch.sigmoid(out)
        return out.reshape(-1, *self.out_shape)


class MLPDiscriminator(nn.Module):
    """D_theta_d (or a critic f): an MLP from a sample to one logit l(x), D(x) = sigmoid(l(x)).

    Flattens x, then Linear layers of widths ``hidden`` with LeakyReLU(0.2) between them and a
    linear output. A conditional discriminator (``num_classes``) sees x concatenated with
    one-hot(y), Eq. (3.10).

    Args:
        in_shape: shape of one sample, e.g. ``2`` or ``(1, 28, 28)``.
        hidden: hidden widths.
        num_classes: None (unconditional) or the number of labels.
    """

    def __init__(self, in_shape=2, hidden=(128, 128, 128), num_classes=None):
        super().__init__()
        self.in_shape = _shape(in_shape, "in_shape")
        self.hidden = _widths(hidden)
        self.num_classes = _optional_classes(num_classes)
        nc = self.num_classes or 0
        self.net = nn.Sequential(
            *_mlp([math.prod(self.in_shape) + nc, *self.hidden, 1], lambda: nn.LeakyReLU(0.2))
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The logits l(x) (or l(x | y)), shape ``(N,)``."""
        x = _check_tensor(x, "x")
        if tuple(x.shape[1:]) != self.in_shape:
            expected = "(N, " + ", ".join(map(str, self.in_shape)) + ")"
            raise ValueError(f"x must have shape {expected}, got {tuple(x.shape)}")
        h = x.flatten(1)
        y = _check_labels(y, x.shape[0], self.num_classes, x.device)
        if y is not None:
            h = torch.cat([h, F.one_hot(y, self.num_classes).to(h.dtype)], dim=1)
        return self.net(h).squeeze(1)


class DCGANGenerator(_Generator):
    """A DCGAN generator (Radford et al., 2016) for 28x28 images, in [0, 1].

    z (plus one-hot(y) if conditional) -> Linear -> ``channels[0]`` x 7 x 7 -> BatchNorm, ReLU ->
    ConvTranspose(4, stride 2) -> ``channels[1]`` x 14 x 14 -> BatchNorm, ReLU ->
    ConvTranspose(4, stride 2) -> 1 x 28 x 28 -> sigmoid. Each transposed convolution doubles
    height and width: the learned upsampling of the DCGAN guidelines (no pooling, no
    fully-connected hidden layers, batch normalisation in the generator).

    Args:
        latent_dim: dimension of z.
        channels: the two feature widths (7x7, 14x14).
        num_classes: None (unconditional) or the number of labels.
        batchnorm: use batch normalisation (the DCGAN default).
    """

    def __init__(self, latent_dim: int = 32, channels=(64, 32), num_classes=None, batchnorm: bool = True):
        super().__init__()
        self.latent_dim = _positive_int(latent_dim, "latent_dim")
        self.channels = _widths(channels, "channels")
        if len(self.channels) != 2:
            raise ValueError(f"channels must be two widths (7x7 and 14x14 feature maps), got {channels!r}")
        self.num_classes = _optional_classes(num_classes)
        self.out_shape = (1, 28, 28)
        c0, c1 = self.channels
        nc = self.num_classes or 0
        norm = (lambda c: nn.BatchNorm2d(c)) if batchnorm else (lambda c: nn.Identity())
        self.project = nn.Linear(self.latent_dim + nc, c0 * 7 * 7)
        self.net = nn.Sequential(
            nn.Unflatten(1, (c0, 7, 7)),
            norm(c0),
            nn.ReLU(),
            nn.ConvTranspose2d(c0, c1, 4, stride=2, padding=1),  # 7 -> 14
            norm(c1),
            nn.ReLU(),
            nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1),  # 14 -> 28
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """G(z) (or G(z | y)): images ``(N, 1, 28, 28)`` in [0, 1]."""
        return torch.sigmoid(self.net(self.project(self._input(z, y))))


class DCGANDiscriminator(nn.Module):
    """A DCGAN discriminator for 28x28 images: strided convolutions, LeakyReLU(0.2), one logit.

    x (plus one constant feature map per class if conditional) -> Conv(4, stride 2) ->
    ``channels[0]`` x 14 x 14 -> LeakyReLU -> Conv(4, stride 2) -> ``channels[1]`` x 7 x 7 ->
    [BatchNorm] -> LeakyReLU -> Linear -> logit. Use ``batchnorm=False`` for a WGAN-GP critic:
    the penalty (3.9) is per example, which batch normalisation would mix.

    Args:
        channels: the two feature widths (14x14, 7x7).
        num_classes: None (unconditional) or the number of labels.
        batchnorm: batch normalisation after the second convolution.
    """

    def __init__(self, channels=(32, 64), num_classes=None, batchnorm: bool = True):
        super().__init__()
        self.channels = _widths(channels, "channels")
        if len(self.channels) != 2:
            raise ValueError(f"channels must be two widths (14x14 and 7x7 feature maps), got {channels!r}")
        self.num_classes = _optional_classes(num_classes)
        self.in_shape = (1, 28, 28)
        c0, c1 = self.channels
        nc = self.num_classes or 0
        self.net = nn.Sequential(
            nn.Conv2d(1 + nc, c0, 4, stride=2, padding=1),  # 28 -> 14
            nn.LeakyReLU(0.2),
            nn.Conv2d(c0, c1, 4, stride=2, padding=1),  # 14 -> 7
            nn.BatchNorm2d(c1) if batchnorm else nn.Identity(),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(c1 * 7 * 7, 1),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The logits l(x) (or l(x | y)), shape ``(N,)``."""
        x = _check_tensor(x, "x")
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"x must have shape (N, 1, 28, 28), got {tuple(x.shape)}")
        y = _check_labels(y, x.shape[0], self.num_classes, x.device)
        if y is not None:
            maps = F.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, 28, 28)
            x = torch.cat([x, maps], dim=1)
        return self.net(x).squeeze(1)


# ----------------------------------------------------------------------------- losses
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
    real = _check_tensor(real, "real")
    fake = _check_tensor(fake, "fake")
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
        eps = _check_tensor(eps, "eps")
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
    c = _positive_number(c, "c")
    with torch.no_grad():
        for p in module.parameters():
            p.clamp_(-c, c)
    return module


# ----------------------------------------------------------------------------- theory
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
    log_p_data = _check_tensor(log_p_data, "log_p_data")
    log_p_g = _check_tensor(log_p_g, "log_p_g")
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
    p = _check_tensor(p, name)
    if p.dim() == 0:
        raise ValueError(f"{name} must be a probability vector (..., K), got a scalar")
    if bool(torch.isnan(p).any()) or bool((p < 0).any()):
        raise ValueError(f"{name} must hold probabilities >= 0 (no NaN)")
    total = p.sum(dim)
    tol = 1e-4 if p.dtype in (torch.float32, torch.float16, torch.bfloat16) else 1e-8
    if not bool(((total - 1).abs() <= tol).all()):
        raise ValueError(f"{name} must sum to 1 along dim={dim} (a probability vector), got sums {total.flatten()[:4].tolist()}")
    return p


def _xlogy_ratio(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """p log(p / q) with 0 log(0 / q) = 0 and p log(p / 0) = +inf for p > 0."""
    ratio = torch.where(p > 0, p / q, torch.ones_like(p))
    return torch.where(p > 0, p * torch.log(ratio), torch.zeros_like(p))


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
    return _xlogy_ratio(p, q).sum(dim)


def jsd(p: torch.Tensor, q: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The Jensen-Shannon divergence of Eq. (3.5), 1/2 KL(p || m) + 1/2 KL(q || m), m = (p + q) / 2.

    Symmetric, 0 iff p = q, at most log 2 (reached when the supports are disjoint); always
    finite. Arguments as for :func:`kl`.
    """
    p, q = _check_probs(p, "p", dim), _check_probs(q, "q", dim)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    m = 0.5 * (p + q)
    return 0.5 * _xlogy_ratio(p, m).sum(dim) + 0.5 * _xlogy_ratio(q, m).sum(dim)


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
    from scipy.optimize import linear_sum_assignment

    x, y = _check_tensor(x, "x"), _check_tensor(y, "y")
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


# ----------------------------------------------------------------------------- evaluation
@dataclass
class ModeCoverage:
    """What :func:`mode_coverage` measured.

    Attributes:
        modes_covered: modes that received at least ``min_count`` high-quality samples.
        num_modes: number of modes k.
        high_quality: fraction of samples within 3 std of their nearest mode.
        counts: high-quality samples per mode, shape (k,).
        min_count: the threshold used.
    """

    modes_covered: int
    num_modes: int
    high_quality: float
    counts: torch.Tensor
    min_count: int

    def __str__(self) -> str:
        return f"{self.modes_covered}/{self.num_modes} modes, {self.high_quality:.1%} high-quality samples"


def mode_coverage(samples: torch.Tensor, centers: torch.Tensor, std: float, min_count: int | None = None) -> ModeCoverage:
    """The standard mode-collapse metrics of a sample from a Gaussian-mixture target.

    Each sample is assigned to its nearest centre c_k; it is *high quality* if
    ||x - c_k||_2 <= 3 std (Srivastava et al., 2017). A mode is *covered* if at least
    ``min_count`` high-quality samples are assigned to it. The default ``min_count`` is 20 % of a
    mode's fair share n / k (rounded up): PacGAN's rule of 20 samples out of 2 500 for 25 modes.
    For data drawn from the mixture itself, high_quality = 1 - exp(-9/2) = 98.9 % in 2-D.

    Args:
        samples: generated points (n, d).
        centers: the mixture's centres (k, d), e.g. ``dgm.data.TOY2D_MODES["ring8"][0]``.
        std: the mixture components' standard deviation (> 0).
        min_count: high-quality samples a mode needs to count as covered (>= 1).

    Returns:
        A :class:`ModeCoverage`.
    """
    samples = _check_tensor(samples, "samples")
    centers = _check_tensor(centers, "centers")
    if samples.dim() != 2 or samples.shape[0] == 0:
        raise ValueError(f"samples must have shape (n, d) with n >= 1, got {tuple(samples.shape)}")
    if centers.dim() != 2 or centers.shape[0] == 0 or centers.shape[1] != samples.shape[1]:
        raise ValueError(
            f"centers must have shape (k, {samples.shape[1]}) to match samples (n, {samples.shape[1]}), "
            f"got {tuple(centers.shape)}"
        )
    if bool(torch.isnan(samples).any()):
        raise ValueError("samples contains NaN (did training diverge?)")
    std = _positive_number(std, "std")
    n, k = samples.shape[0], centers.shape[0]
    if min_count is None:
        min_count = max(1, math.ceil(0.2 * n / k))
    min_count = _positive_int(min_count, "min_count")
    dist = torch.cdist(samples.detach().double(), centers.detach().to(samples.device).double())
    nearest_dist, nearest = dist.min(dim=1)
    good = nearest_dist <= 3 * std
    counts = torch.bincount(nearest[good], minlength=k).cpu()
    return ModeCoverage(
        modes_covered=int((counts >= min_count).sum()),
        num_modes=k,
        high_quality=float(good.double().mean()),
        counts=counts,
        min_count=min_count,
    )


def decision_surface(discriminator: Callable, extent=(-3.0, 3.0, -3.0, 3.0), n: int = 64,
                     kind: str = "prob") -> torch.Tensor:
    """The discriminator on an n x n grid over a 2-D ``extent``: rows are y (bottom to top).

    Args:
        discriminator: maps (M, 2) points to logits (M,) (or critic scores).
        extent: ``(x_min, x_max, y_min, y_max)``.
        n: grid points per axis (>= 2).
        kind: ``"prob"`` for D(x) = sigmoid(l(x)), ``"logit"`` for l(x) (a critic's score).

    Returns:
        A CPU float tensor (n, n); entry [i, j] is at (x_j, y_i), ``imshow(origin="lower")`` ready.
    """
    if kind not in ("prob", "logit"):
        raise ValueError(f"kind must be 'prob' or 'logit', got {kind!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    try:
        x0, x1, y0, y1 = (float(v) for v in extent)
    except (TypeError, ValueError):
        raise ValueError(f"extent must be (x_min, x_max, y_min, y_max), got {extent!r}") from None
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f"extent must have x_min < x_max and y_min < y_max, got {extent!r}")
    device = torch.device("cpu")
    if isinstance(discriminator, nn.Module):
        for p in discriminator.parameters():
            device = p.device
            break
    ys, xs = torch.linspace(y0, y1, n), torch.linspace(x0, x1, n)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).to(device)
    was_training = isinstance(discriminator, nn.Module) and discriminator.training
    if isinstance(discriminator, nn.Module):
        discriminator.eval()
    try:
        with torch.no_grad():
            out = discriminator(grid).reshape(n, n).float().cpu()
    finally:
        if was_training:
            discriminator.train()
    return torch.sigmoid(out) if kind == "prob" else out


# ----------------------------------------------------------------------------- training
@dataclass(repr=False)
class GANHistory:
    """What :class:`GANTrainer` logged, one entry per generator step.

    Attributes:
        d_loss: the discriminator's (critic's) loss, mean over its k steps, penalty included.
        g_loss: the generator's loss.
        d_real: mean D(x) on the last real batch (mean critic score f(x) for a WGAN).
        d_fake: mean D(G(z)) on the generator step's batch (mean f(G(z)) for a WGAN).
        grad_norm: the norm of the generator's gradient at each generator step.
        snapshots: ``(step, snapshot_fn(trainer))`` pairs recorded during training.
        seconds: wall-clock time spent training.
    """

    d_loss: list[float] = field(default_factory=list)
    g_loss: list[float] = field(default_factory=list)
    d_real: list[float] = field(default_factory=list)
    d_fake: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    snapshots: list[tuple[int, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        """Generator steps taken."""
        return len(self.g_loss)

    def __repr__(self) -> str:
        last = (lambda v: f"{v[-1]:.4g}" if v else "-")
        return (f"GANHistory(steps={self.steps}, last d_loss={last(self.d_loss)}, "
                f"last g_loss={last(self.g_loss)}, seconds={self.seconds:.1f})")


class GANTrainer:
    """Alternating training of a generator and a discriminator (Algorithm 1 of the lecture).

    Each :meth:`step` does, for the game ``loss``:

    1. k times: draw a data batch x and noise z; update D (or the critic f) on
       :func:`discriminator_loss` (3.2) (``"saturating"``/``"nonsaturating"``) or on
       :func:`critic_loss` (3.8) (``"wgan"``, then :func:`clip_weights`; ``"wgan-gp"``, plus
       ``gp_weight`` * :func:`gradient_penalty` (3.9));
    2. once: draw noise z; update G on :func:`generator_loss` (3.6) of kind ``"saturating"``,
       ``"nonsaturating"`` or ``"wasserstein"`` (both WGAN games).

    WGAN-GP as in Gulrajani et al. (2017): ``k=5, lr_g=lr_d=1e-4, betas=(0.0, 0.9),
    gp_weight=10``. The original WGAN: ``optimizer="rmsprop", lr 5e-5, k=5, clip_value=0.01``.

    Args:
        generator: G; has ``latent_dim`` (and ``num_classes`` if conditional).
        discriminator: D (logits) or critic f; gets labels too if the generator is conditional.
        data: a tensor (N, ...) of training data, or ``(x, y)`` with labels for a conditional GAN;
            moved once to the generator's device.
        loss: one of :data:`LOSSES`.
        k: discriminator steps per generator step (n_critic).
        batch_size: examples per step (real and generated alike).
        lr_g, lr_d: learning rates.
        betas: Adam's (beta1, beta2) (ignored otherwise).
        optimizer: ``"adam"``, ``"rmsprop"`` or ``"sgd"`` (plain gradient steps, no momentum:
            the step is proportional to the gradient, so a vanishing gradient shows).
        gp_weight: lambda of (3.9) (``"wgan-gp"`` only).
        clip_value: c of (3.8) (``"wgan"`` only).
        seed: seeds torch/NumPy/Python and the batch sampler (reproducible on one device).
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, data, *, loss: str = "nonsaturating",
                 k: int = 1, batch_size: int = 128, lr_g: float = 2e-4, lr_d: float = 2e-4,
                 betas=(0.5, 0.999), optimizer: str = "adam", gp_weight: float = 10.0,
                 clip_value: float = 0.01, seed: int | None = None):
        if not isinstance(generator, nn.Module) or not isinstance(discriminator, nn.Module):
            raise TypeError("generator and discriminator must be torch.nn.Module instances")
        if not isinstance(getattr(generator, "latent_dim", None), int):
            raise TypeError("generator must have an int attribute latent_dim (the dimension of z)")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(map(repr, LOSSES))}; got {loss!r}")
        if optimizer not in ("adam", "rmsprop", "sgd"):
            raise ValueError(f"optimizer must be 'adam', 'rmsprop' or 'sgd', got {optimizer!r}")
        self.k = _positive_int(k, "k")
        self.batch_size = _positive_int(batch_size, "batch_size")
        lr_g, lr_d = _positive_number(lr_g, "lr_g"), _positive_number(lr_d, "lr_d")
        self.gp_weight = _positive_number(gp_weight, "gp_weight")
        self.clip_value = _positive_number(clip_value, "clip_value")
        try:
            b1, b2 = (float(b) for b in betas)
        except (TypeError, ValueError):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must lie in [0, 1), got {betas!r}")
        self.generator, self.discriminator, self.loss = generator, discriminator, loss
        self.conditional = getattr(generator, "num_classes", None) is not None
        self.device = next(generator.parameters()).device
        discriminator.to(self.device)

        if isinstance(data, (tuple, list)):
            if len(data) != 2 or not all(isinstance(t, torch.Tensor) for t in data):
                raise ValueError("data must be a tensor (N, ...) or a pair (x, y) of tensors")
            x, y = data
            if len(x) != len(y):
                raise ValueError(f"data: x and y must have the same length, got {len(x)} and {len(y)}")
        else:
            x, y = data, None
        x = _check_tensor(x, "data")
        if x.dim() < 2 or len(x) == 0:
            raise ValueError(f"data must be a non-empty batch (N, ...), got shape {tuple(x.shape)}")
        if bool(torch.isnan(x).any()):
            raise ValueError("data contains NaN")
        if self.conditional and y is None:
            raise ValueError("a conditional generator (num_classes set) needs data=(x, y) with labels")
        if not self.conditional and y is not None:
            raise ValueError("labels were given but the generator is unconditional (num_classes=None)")
        self.x = x.to(self.device)
        self.y = None if y is None else _check_labels(y, len(y), generator.num_classes, self.device)

        if seed is not None:
            seed_everything(seed)
        self._batches = torch.Generator().manual_seed(0 if seed is None else seed)
        makers = {
            "adam": lambda params, lr: torch.optim.Adam(params, lr=lr, betas=(b1, b2), foreach=True),
            "rmsprop": lambda params, lr: torch.optim.RMSprop(params, lr=lr, foreach=True),
            "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr, foreach=True),
        }
        make = makers[optimizer]
        # one forward pass of D over real, fake (and x_hat) together, unless batch norm would mix them
        self._joint = not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in discriminator.modules())
        self.opt_g = make(generator.parameters(), lr_g)
        self.opt_d = make(discriminator.parameters(), lr_d)
        self.history = GANHistory()

    @property
    def steps(self) -> int:
        """Generator steps taken so far."""
        return self.history.steps

    def _real_batch(self):
        idx = torch.randint(len(self.x), (self.batch_size,), generator=self._batches).to(self.device)
        return self.x[idx], (None if self.y is None else self.y[idx])

    def _noise(self) -> torch.Tensor:
        return torch.randn(self.batch_size, self.generator.latent_dim, device=self.device)

    def _d(self, x, y):
        return self.discriminator(x) if y is None else self.discriminator(x, y)

    def _g(self, z, y):
        return self.generator(z) if y is None else self.generator(z, y)

    def step(self) -> tuple[float, float]:
        """One round of the game: k discriminator steps, then one generator step.

        Returns:
            ``(d_loss, g_loss)`` of this round (also appended to :attr:`history`).

        Raises:
            NonFiniteLossError: a loss became NaN/inf; ``.step`` is this generator step.
        """
        wasserstein = self.loss in ("wgan", "wgan-gp")
        d_losses = []
        for _ in range(self.k):
            x, y = self._real_batch()
            with torch.no_grad():
                fake = self._g(self._noise(), y)
            n = len(x)
            x_hat = None
            if self.loss == "wgan-gp":  # Eq. (3.9): random points between real and generated samples
                eps = torch.rand(n, device=self.device, dtype=x.dtype).reshape(n, *([1] * (x.dim() - 1)))
                x_hat = (eps * x + (1 - eps) * fake).requires_grad_(True)
            if self._joint:  # one forward pass over [real; fake; x_hat] (no batch norm to mix them)
                parts = [x, fake] + ([x_hat] if x_hat is not None else [])
                yy = None if y is None else torch.cat([y] * len(parts))
                out = self._d(torch.cat(parts), yy)
                real_out, fake_out, hat_out = out[:n], out[n : 2 * n], out[2 * n :]
            else:
                real_out, fake_out = self._d(x, y), self._d(fake, y)
                hat_out = self._d(x_hat, y) if x_hat is not None else None
            if wasserstein:
                loss_d = fake_out.mean() - real_out.mean()  # critic_loss, Eq. (3.8)
                if x_hat is not None:
                    (grad,) = torch.autograd.grad(hat_out.sum(), x_hat, create_graph=True)
                    penalty = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()  # gradient_penalty, Eq. (3.9)
                    loss_d = loss_d + self.gp_weight * penalty
            else:
                loss_d = _d_loss(real_out, fake_out)  # discriminator_loss, Eq. (3.2)
            value = loss_d.item()
            if not math.isfinite(value):
                raise NonFiniteLossError(self.steps, value, None)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            if self.loss == "wgan":
                clip_weights(self.discriminator, self.clip_value)
            d_losses.append(value)
        d_real = (real_out.mean() if wasserstein else torch.sigmoid(real_out).mean()).item()

        if self.y is not None:
            y = self.y[torch.randint(len(self.y), (self.batch_size,), generator=self._batches).to(self.device)]
        else:
            y = None
        d_params = [p for p in self.discriminator.parameters() if p.requires_grad]
        for p in d_params:  # the generator step needs gradients through D, not for D's weights
            p.requires_grad_(False)
        try:
            fake_out = self._d(self._g(self._noise(), y), y)
        finally:
            for p in d_params:
                p.requires_grad_(True)
        kind = "wasserstein" if wasserstein else self.loss
        loss_g = _g_loss(fake_out, kind)  # generator_loss, Eq. (3.6)
        value_g = loss_g.item()
        if not math.isfinite(value_g):
            raise NonFiniteLossError(self.steps, value_g, None)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        grads = [p.grad.norm() for p in self.generator.parameters() if p.grad is not None]
        grad_norm = float(torch.stack(grads).norm()) if grads else 0.0
        self.opt_g.step()

        h = self.history
        h.d_loss.append(sum(d_losses) / len(d_losses))
        h.g_loss.append(value_g)
        h.d_real.append(d_real)
        h.d_fake.append((fake_out.mean() if wasserstein else torch.sigmoid(fake_out).mean()).item())
        h.grad_norm.append(grad_norm)
        return h.d_loss[-1], value_g

    def train(self, steps: int, snapshot_every: int | None = None,
              snapshot_fn: Callable[["GANTrainer"], Any] | None = None, progress: bool = False) -> GANHistory:
        """Play ``steps`` rounds (generator steps); may be called again to continue.

        Args:
            steps: generator steps to take now.
            snapshot_every: call ``snapshot_fn(self)`` before the first step (if no snapshot was
                taken yet), whenever the total step count is a multiple of this, and at the end.
            snapshot_fn: what to record, e.g. ``lambda t: t.sample(1000)``; stored in
                ``history.snapshots`` as ``(step, value)``.
            progress: show a tqdm bar.

        Returns:
            The trainer's :class:`GANHistory` (cumulative over calls).
        """
        steps = _positive_int(steps, "steps")
        if (snapshot_every is None) != (snapshot_fn is None):
            raise ValueError("give both snapshot_every and snapshot_fn, or neither")
        if snapshot_every is not None:
            snapshot_every = _positive_int(snapshot_every, "snapshot_every")
        from tqdm.auto import tqdm

        h = self.history
        g_mode, d_mode = self.generator.training, self.discriminator.training
        self.generator.train()
        self.discriminator.train()
        start = time.perf_counter()

        def snap():
            if not h.snapshots or h.snapshots[-1][0] != self.steps:
                h.snapshots.append((self.steps, snapshot_fn(self)))
                self.generator.train()
                self.discriminator.train()

        try:
            if snapshot_fn is not None and not h.snapshots:
                snap()
            for _ in tqdm(range(steps), disable=not progress, leave=False):
                self.step()
                if snapshot_fn is not None and self.steps % snapshot_every == 0:
                    snap()
            if snapshot_fn is not None:
                snap()
        finally:
            self.generator.train(g_mode)
            self.discriminator.train(d_mode)
            h.seconds += time.perf_counter() - start
        return h

    def sample(self, n: int, y=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """n generator samples in eval mode, on the CPU (see :meth:`MLPGenerator.sample`)."""
        mode = self.generator.training
        self.generator.eval()
        try:
            return self.generator.sample(n, y=y, generator=generator).cpu()
        finally:
            self.generator.train(mode)


def train_gan(generator: nn.Module, discriminator: nn.Module, data, steps: int, *,
              snapshot_every: int | None = None, snapshot_fn=None, progress: bool = False,
              **trainer_kwargs) -> GANHistory:
    """Build a :class:`GANTrainer` (``trainer_kwargs``: loss, k, batch_size, lr_g, lr_d, betas,
    optimizer, gp_weight, clip_value, seed) and play ``steps`` generator steps.

    Returns:
        The :class:`GANHistory`; the trained networks are the ones passed in.
    """
    trainer = GANTrainer(generator, discriminator, data, **trainer_kwargs)
    return trainer.train(steps, snapshot_every=snapshot_every, snapshot_fn=snapshot_fn, progress=progress)
