"""Chapter 1: autoencoders.

Lecture notation: an encoder g maps an observation x to a code z = g(x) (``code_dim`` numbers), a
decoder f maps the code back, x_hat = f(z). Both are trained together on

    min_{f,g} E_x || x - f(g(x)) ||^2                                            (1.1)

and a *denoising* autoencoder replaces the input by a corrupted copy x_tilde ~ C(x_tilde | x):

    min_{f,g} E_x E_{x_tilde ~ C(.|x)} || x - f(g(x_tilde)) ||^2                 (1.2)

Contents:

* :class:`Autoencoder` - the base class: ``encoder`` (g), ``decoder`` (f), ``encode``, ``decode``.
* :class:`LinearAE` - g and f linear. Its optimum spans the PCA subspace (Baldi & Hornik, 1989).
* :class:`MLPAE`, :class:`ConvAE` - nonlinear autoencoders for 28x28 (or 8x8) images.
* :func:`corrupt` - the corruption process C of Eq. (1.2): gaussian, masking, salt-and-pepper.
* :func:`reconstruction_error`, :func:`ae_loss`, :func:`denoising_loss` - Eqs. (1.1) and (1.2);
  the two losses have the ``loss_fn(model, batch)`` signature of :func:`dgm.train.fit`.

Nothing here picks a device: a model lives where you ``.to()`` it, and every function works on the
device of its inputs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dgm._checks import batch_x, finite_number, float_tensor, positive_int, shape_tuple, widths
from dgm.nn import conv_stack, mlp_layers

__all__ = [
    "Autoencoder",
    "LinearAE",
    "MLPAE",
    "ConvAE",
    "CORRUPTIONS",
    "corrupt",
    "reconstruction_error",
    "ae_loss",
    "denoising_loss",
]

CORRUPTIONS = ("gaussian", "masking", "saltpepper")


# ----------------------------------------------------------------------------- models
class Autoencoder(nn.Module):
    """An encoder g and a decoder f trained on ||x - f(g(x))||^2, Eq. (1.1).

    Subclasses only build ``encoder`` and ``decoder``; you can also wrap your own:
    ``Autoencoder(my_encoder, my_decoder, code_dim=8, in_shape=(1, 28, 28))``.

    Args:
        encoder: g, maps a batch ``(N, *in_shape)`` to codes ``(N, code_dim)``.
        decoder: f, maps codes ``(N, code_dim)`` to a batch shaped like the input.
        code_dim: the number of code units (the bottleneck width).
        in_shape: the shape of one input, e.g. ``(1, 28, 28)``; inputs are checked against it.
            ``None`` skips the check.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, code_dim: int, in_shape=None):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.code_dim = positive_int(code_dim, "code_dim")
        self.in_shape = None if in_shape is None else shape_tuple(in_shape, "in_shape")

    def _check_x(self, x) -> torch.Tensor:
        x = float_tensor(x, "x")
        if self.in_shape is not None and tuple(x.shape[1:]) != self.in_shape:
            expected = "(N, " + ", ".join(map(str, self.in_shape)) + ")"
            raise ValueError(
                f"x must have shape {expected}, a batch of inputs of in_shape={self.in_shape}; "
                f"got shape {tuple(x.shape)}"
            )
        return x

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code z = g(x), shape ``(N, code_dim)``."""
        return self.encoder(self._check_x(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The reconstruction x_hat = f(z), shaped like the inputs ``(N, *in_shape)``."""
        z = float_tensor(z, "z")
        if z.dim() != 2 or z.shape[1] != self.code_dim:
            raise ValueError(
                f"z must have shape (N, {self.code_dim}) (code_dim={self.code_dim}), "
                f"got shape {tuple(z.shape)}"
            )
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """f(g(x)), the reconstruction of x."""
        return self.decode(self.encode(x))

    def extra_repr(self) -> str:
        return f"code_dim={self.code_dim}, in_shape={self.in_shape}"


class LinearAE(Autoencoder):
    """A purely linear autoencoder: g(x) = W_g x + b_g, f(z) = W_f z + b_f (no nonlinearity).

    With squared error, Eq. (1.1), every minimum has W_f spanning the same subspace as the top
    ``code_dim`` principal components of the (centred) data (Baldi & Hornik, 1989); the individual
    columns of W_f need not be the principal directions themselves, nor orthogonal.

    Args:
        in_shape: shape of one input, e.g. ``64`` or ``(1, 8, 8)``.
        code_dim: k, the number of code units.
        bias: whether g and f have bias terms (they let the model centre the data itself).
    """

    def __init__(self, in_shape, code_dim: int, bias: bool = True):
        in_shape = shape_tuple(in_shape, "in_shape")
        code_dim = positive_int(code_dim, "code_dim")
        d = math.prod(in_shape)
        encoder = nn.Sequential(nn.Flatten(), nn.Linear(d, code_dim, bias=bias))
        decoder = nn.Sequential(nn.Linear(code_dim, d, bias=bias), nn.Unflatten(1, in_shape))
        super().__init__(encoder, decoder, code_dim, in_shape)

    @property
    def decoder_weight(self) -> torch.Tensor:
        """W_f, shape ``(D, code_dim)``: its column space is the learned subspace."""
        return self.decoder[0].weight


class MLPAE(Autoencoder):
    """A fully connected autoencoder with ReLU hidden layers and a sigmoid output in [0, 1].

    g: D -> hidden[0] -> hidden[1] -> ... -> code_dim, f: the mirror image, then a sigmoid.

    Args:
        in_shape: shape of one input, default ``(1, 28, 28)``.
        code_dim: the number of code units.
        hidden: widths of the encoder's hidden layers (the decoder uses them reversed).
    """

    def __init__(self, in_shape=(1, 28, 28), code_dim: int = 16, hidden=(256, 128)):
        in_shape = shape_tuple(in_shape, "in_shape")
        code_dim = positive_int(code_dim, "code_dim")
        sizes = [math.prod(in_shape), *widths(hidden, allow_empty=True), code_dim]
        encoder = nn.Sequential(nn.Flatten(), *mlp_layers(sizes))
        decoder = nn.Sequential(*mlp_layers(sizes[::-1]), nn.Sigmoid(), nn.Unflatten(1, in_shape))
        super().__init__(encoder, decoder, code_dim, in_shape)


class ConvAE(Autoencoder):
    """A convolutional autoencoder with a sigmoid output in [0, 1].

    g: two stride-2 convolutions (size -> size/2 -> size/4, ``channels`` = (c1, c2) channels,
    32 and 64 by default), then a linear layer to the code; f: a linear layer and two stride-2
    transposed convolutions back to size.

    Args:
        code_dim: the number of code units.
        in_channels: image channels (1 for MNIST/digits).
        size: image height = width; any multiple of 4 works (28 for MNIST, 8 for sklearn digits).
        channels: ``(c1, c2)``, the channels after the first and the second convolution;
            fewer channels train faster (the cost of a step grows with c1 * c2).
    """

    def __init__(self, code_dim: int = 16, in_channels: int = 1, size: int = 28, channels=(32, 64)):
        code_dim = positive_int(code_dim, "code_dim")
        in_channels = positive_int(in_channels, "in_channels")
        if not isinstance(size, int) or isinstance(size, bool) or size < 4 or size % 4:
            raise ValueError(f"size must be a positive multiple of 4 (e.g. 28 or 8), got {size!r}")
        channels = tuple(channels) if isinstance(channels, (tuple, list)) else (channels,)
        if len(channels) != 2:
            raise ValueError(f"channels must be a pair (c1, c2) of positive ints, got {channels!r}")
        c1, c2 = (positive_int(c, "channels") for c in channels)
        # size -> size/2 -> size/4 and back: two stride-2 (transposed) convolutions each way
        enc, dec = conv_stack((in_channels, size, size), (c1, c2), code_in=code_dim, enc_out=code_dim)
        super().__init__(nn.Sequential(*enc), nn.Sequential(*dec, nn.Sigmoid()), code_dim, (in_channels, size, size))
        self.channels = (c1, c2)


# ----------------------------------------------------------------------------- corruption
def _random(kind: str, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal or uniform noise shaped like x, drawn on the generator's device."""
    device = x.device if generator is None else generator.device
    draw = torch.randn if kind == "normal" else torch.rand
    out = draw(x.shape, generator=generator, device=device, dtype=x.dtype)
    return out.to(x.device)


def corrupt(
    x: torch.Tensor,
    kind: str = "gaussian",
    level: float = 0.3,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw x_tilde ~ C(x_tilde | x), the corruption of a denoising autoencoder, Eq. (1.2).

    * ``"gaussian"``: x_tilde = x + level * eps, eps ~ N(0, I) (no clipping); ``level`` >= 0 is
      the noise standard deviation.
    * ``"masking"``: each entry is set to 0 independently with probability ``level`` in [0, 1].
    * ``"saltpepper"``: each entry is replaced independently with probability ``level`` in [0, 1]
      by 0 or 1 (each with probability 1/2).

    Args:
        x: a floating-point tensor of any shape; it is never modified.
        kind: one of :data:`CORRUPTIONS`.
        level: noise standard deviation (gaussian) or corruption probability (the others).
        generator: an optional ``torch.Generator`` for reproducible noise.

    Returns:
        A new tensor x_tilde with the shape, dtype and device of x.
    """
    x = float_tensor(x, "x")
    if kind not in CORRUPTIONS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, CORRUPTIONS))}; got {kind!r}")
    level = finite_number(level, "level")
    if kind == "gaussian":
        if level < 0:
            raise ValueError(f"level (the noise std for kind='gaussian') must be >= 0, got {level}")
        return x + level * _random("normal", x, generator)
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"level (a probability for kind={kind!r}) must be in [0, 1], got {level}")
    hit = _random("uniform", x, generator) < level
    if kind == "masking":
        return x.masked_fill(hit, 0.0)
    salt = _random("uniform", x, generator) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)


# ----------------------------------------------------------------------------- losses
def reconstruction_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-example squared error ||x - x_hat||^2 (summed over all pixels), shape ``(N,)``.

    This is the term inside the expectation of Eq. (1.1); its mean over a batch is :func:`ae_loss`.
    """
    x_hat = float_tensor(x_hat, "x_hat")
    x = float_tensor(x, "x")
    if x.dim() == 0 or x_hat.shape != x.shape:
        raise ValueError(
            f"x_hat must have the shape of x, a batch (N, ...); got x_hat {tuple(x_hat.shape)} "
            f"and x {tuple(x.shape)}"
        )
    return (x - x_hat).pow(2).reshape(x.shape[0], -1).sum(dim=1)


def ae_loss(model: Autoencoder, batch) -> torch.Tensor:
    """Eq. (1.1) on a batch: the mean over examples of ||x - f(g(x))||^2.

    Args:
        model: an :class:`Autoencoder` (anything whose call returns f(g(x))).
        batch: a tensor x, or a tuple ``(x, y, ...)`` whose labels are ignored.
    """
    x = batch_x(batch)
    return reconstruction_error(model(x), x).mean()


def denoising_loss(
    model: Autoencoder,
    batch,
    kind: str = "gaussian",
    level: float = 0.3,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Eq. (1.2) on a batch: the mean of ||x - f(g(x_tilde))||^2 with x_tilde = corrupt(x).

    The target is the *clean* x. Use it with ``fit`` via ``functools.partial`` or a lambda, e.g.
    ``fit(model, lambda m, b: denoising_loss(m, b, "masking", 0.5), data, ...)``.

    Args:
        model: an :class:`Autoencoder`.
        batch: a tensor x, or a tuple ``(x, y, ...)``.
        kind, level, generator: passed to :func:`corrupt`.
    """
    x = batch_x(batch)
    x_tilde = corrupt(x, kind, level, generator)
    return reconstruction_error(model(x_tilde), x).mean()
