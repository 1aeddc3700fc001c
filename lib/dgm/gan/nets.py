"""Chapter 3, the players: the generator G and the discriminator D (or the WGAN critic f).

Lecture notation: noise z ~ p(z) = N(0, I), a generator G_theta_g(z) whose samples have the
density p_g, and a discriminator D_theta_d(x) in (0, 1) (for a WGAN an unbounded critic f). The
discriminators here output *logits* l(x) with D(x) = sigmoid(l(x)); the losses of
:mod:`dgm.gan.losses` are computed from logits.

* :class:`MLPGenerator`, :class:`MLPDiscriminator`: fully connected, for the toy 2-D data of the
  lecture (or flat images).
* :class:`DCGANGenerator`, :class:`DCGANDiscriminator`: 28x28 images with (transposed) strided
  convolutions, the DCGAN guidelines of Radford et al. (2016).

All four take ``num_classes`` for a conditional GAN, Eq. (3.10) (Mirza & Osindero, 2014): the
one-hot label is concatenated to z and to x (as constant feature maps for convolutions), except
that :class:`DCGANDiscriminator` is by default a projection discriminator (Miyato & Koyama, 2018),
l(x | y) = w . phi(x) + b + e_y . phi(x), the form the lecture writes after Eq. (3.10).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dgm._checks import float_tensor, positive_int, shape_tuple, widths
from dgm.nn import mlp_layers

__all__ = ["MLPGenerator", "MLPDiscriminator", "DCGANGenerator", "DCGANDiscriminator"]


def _optional_classes(num_classes) -> int | None:
    if num_classes is None:
        return None
    return positive_int(num_classes, "num_classes")


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


def _two_widths(channels, maps: str) -> tuple[int, ...]:
    """The two feature widths of a DCGAN network; ``maps`` names their sizes for the message."""
    out = widths(channels, "channels")
    if len(out) != 2:
        raise ValueError(f"channels must be two widths ({maps} feature maps), got {channels!r}")
    return out


class _Generator(nn.Module):
    """Shared plumbing of the generators: checks, label handling, :meth:`sample`."""

    latent_dim: int
    num_classes: int | None
    out_shape: tuple[int, ...]

    def _check_z(self, z) -> torch.Tensor:
        z = float_tensor(z, "z")
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
        n = positive_int(n, "n")
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
        self.latent_dim = positive_int(latent_dim, "latent_dim")
        self.out_shape = shape_tuple(out_shape, "out_shape")
        self.hidden = widths(hidden)
        if out_activation not in (None, "sigmoid"):
            raise ValueError(f"out_activation must be None or 'sigmoid', got {out_activation!r}")
        self.out_activation = out_activation
        self.num_classes = _optional_classes(num_classes)
        nc = self.num_classes or 0
        self.net = nn.Sequential(
            *mlp_layers([self.latent_dim + nc, *self.hidden, math.prod(self.out_shape)], nn.ReLU)
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
        self.in_shape = shape_tuple(in_shape, "in_shape")
        self.hidden = widths(hidden)
        self.num_classes = _optional_classes(num_classes)
        nc = self.num_classes or 0
        self.net = nn.Sequential(
            *mlp_layers([math.prod(self.in_shape) + nc, *self.hidden, 1], lambda: nn.LeakyReLU(0.2))
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The logits l(x) (or l(x | y)), shape ``(N,)``."""
        x = float_tensor(x, "x")
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
        self.latent_dim = positive_int(latent_dim, "latent_dim")
        self.channels = _two_widths(channels, "7x7 and 14x14")
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

    x -> Conv(4, stride 2) -> ``channels[0]`` x 14 x 14 -> LeakyReLU -> Conv(4, stride 2) ->
    ``channels[1]`` x 7 x 7 -> [BatchNorm] -> LeakyReLU -> features phi(x) (flattened) ->
    Linear -> logit. Use ``batchnorm=False`` for a WGAN-GP critic: the penalty (3.9) is per
    example, which batch normalisation would mix.

    A conditional discriminator (``num_classes``) sees the label y in one of two ways:

    * ``conditioning="concat"``: one constant feature map per class concatenated to x, the
      one-hot form of Eq. (3.10) (Mirza & Osindero, 2014);
    * ``conditioning="projection"`` (the default): the projection discriminator of Miyato &
      Koyama (2018), written after Eq. (3.10) in the lecture,

          l(x | y) = w . phi(x) + b + e_y . phi(x),

      with a learned embedding e_y of each label: the label asks "do these features match
      digit y?" directly at the output, instead of being mixed into the pixels.

    Args:
        channels: the two feature widths (14x14, 7x7).
        num_classes: None (unconditional) or the number of labels.
        batchnorm: batch normalisation after the second convolution.
        conditioning: ``"projection"`` or ``"concat"`` (conditional networks only).
    """

    def __init__(self, channels=(32, 64), num_classes=None, batchnorm: bool = True,
                 conditioning: str = "projection"):
        super().__init__()
        self.channels = _two_widths(channels, "14x14 and 7x7")
        self.num_classes = _optional_classes(num_classes)
        if conditioning not in ("projection", "concat"):
            raise ValueError(f"conditioning must be 'projection' or 'concat', got {conditioning!r}")
        self.conditioning = conditioning if self.num_classes is not None else None
        self.in_shape = (1, 28, 28)
        c0, c1 = self.channels
        nc = self.num_classes if self.conditioning == "concat" else 0
        self.features = nn.Sequential(
            nn.Conv2d(1 + nc, c0, 4, stride=2, padding=1),  # 28 -> 14
            nn.LeakyReLU(0.2),
            nn.Conv2d(c0, c1, 4, stride=2, padding=1),  # 14 -> 7
            nn.BatchNorm2d(c1) if batchnorm else nn.Identity(),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        self.out = nn.Linear(c1 * 7 * 7, 1)
        self.embed = None
        if self.conditioning == "projection":
            self.embed = nn.Embedding(self.num_classes, c1 * 7 * 7)
            nn.init.normal_(self.embed.weight, std=0.01)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The logits l(x) (or l(x | y)), shape ``(N,)``."""
        x = float_tensor(x, "x")
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"x must have shape (N, 1, 28, 28), got {tuple(x.shape)}")
        y = _check_labels(y, x.shape[0], self.num_classes, x.device)
        if y is not None and self.conditioning == "concat":  # Eq. (3.10), one-hot maps
            maps = F.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, 28, 28)
            x = torch.cat([x, maps], dim=1)
        phi = self.features(x)
        logit = self.out(phi).squeeze(1)
        if y is not None and self.embed is not None:  # projection: + e_y . phi(x)
            logit = logit + (self.embed(y) * phi).sum(1)
        return logit
