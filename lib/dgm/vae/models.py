"""Chapter 2, the variational autoencoder: encoder q_phi(z|x), prior p(z) = N(0, I) and decoder
p_theta(x|z), trained on the ELBO, Eq. (2.2).

* :class:`VAE` - MLP or convolutional; Bernoulli (Eq. (2.5)) or Gaussian (Eq. (2.4)) decoder; its
  ``elbo`` (Eq. (2.2), with the reparameterised draws of Eq. (2.6) and the exact KL of Eq. (2.3)),
  ``loss`` (the beta-ELBO, Eq. (2.7)) and ``iwae_bound`` (Eq. (2.9)).
* :class:`MeanCodec` - a VAE seen as a plain autoencoder (encoder mean, decoder mean), for the widgets.
* :func:`vae_loss` - the negative beta-ELBO, Eq. (2.7), with the ``loss_fn(model, batch)`` signature
  of :func:`dgm.train.fit`; it accepts a tensor ``x`` or an ``(x, y)`` batch.

The conditional VAE of Eq. (2.10) is a subclass, :class:`dgm.vae.conditional.ConditionalVAE`; the
plumbing it shares (a one-hot label ``c`` appended to the encoder's and decoder's inputs) lives here,
in the private methods that take ``c`` (``None`` for the unconditional VAE). A model lives where you
``.to()`` it.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Bernoulli, Distribution, Independent, Normal

from dgm._checks import batch_x, finite_number, float_tensor, positive_int, shape_tuple, widths
from dgm.distributions import standard_normal_log_prob
from dgm.nn import conv_stack, mlp_layers
from dgm.vae.elbo import (
    _randn_like,
    bernoulli_log_likelihood,
    gaussian_kl,
    gaussian_log_likelihood,
    iwae_bound,
    reparameterize,
)

__all__ = ["ENCODER_KINDS", "LIKELIHOODS", "VAE", "MeanCodec", "vae_loss"]

ENCODER_KINDS = ("mlp", "conv")
LIKELIHOODS = ("bernoulli", "gaussian")


class VAE(nn.Module):
    """A variational autoencoder trained on the ELBO, Eq. (2.2).

    * encoder q_phi(z|x) = N(mu, diag(exp(logvar))): ``encoder`` maps x to ``2 * code_dim``
      numbers, split into mu and logvar.
    * prior p(z) = N(0, I) on ``code_dim`` latents.
    * decoder p_theta(x|z): ``decoder`` maps z to the decoder's parameters, shaped like x:
      ``"bernoulli"`` - logits l, p_theta(x|z) = prod_i Bernoulli(x_i; sigmoid(l_i)), Eq. (2.5);
      ``"gaussian"`` - the mean m (no output nonlinearity), p_theta(x|z) = N(x; m, sigma_x^2 I),
      Eq. (2.4), with one global log sigma_x^2 (``x_logvar``), a learned scalar parameter by
      default (``learn_x_logvar=False`` keeps it fixed, a buffer).

    Architectures: ``"mlp"`` flattens x, then Linear+ReLU layers of widths ``hidden`` (default
    (256, 128)); the decoder mirrors them. ``"conv"``: stride-2 4x4 convolutions with ``hidden``
    channels (default (32, 64)), each halving height and width (so 28x28 and 8x8 both work with
    two layers), then a linear layer; the decoder mirrors them with transposed convolutions.

    Args:
        encoder_kind: ``"mlp"`` or ``"conv"`` (conv needs ``in_shape = (C, H, W)``).
        likelihood: ``"bernoulli"`` (data in [0, 1]) or ``"gaussian"``.
        code_dim: number of latents d.
        in_shape: shape of one observation, e.g. ``(1, 28, 28)``, ``(1, 8, 8)`` or ``(2,)`` (mlp).
        hidden: layer widths (mlp) or channels (conv); default depends on ``encoder_kind``.
        x_logvar: initial (or fixed) log sigma_x^2 of the Gaussian decoder; ignored for Bernoulli.
        learn_x_logvar: learn ``x_logvar`` (a scalar ``nn.Parameter``) or keep it fixed.
    """

    _num_classes = 0  # width of a one-hot label concatenated to encoder and decoder inputs

    def __init__(
        self,
        encoder_kind: str = "mlp",
        likelihood: str = "bernoulli",
        code_dim: int = 16,
        in_shape=(1, 28, 28),
        hidden=None,
        x_logvar: float = 0.0,
        learn_x_logvar: bool = True,
    ):
        super().__init__()
        if encoder_kind not in ENCODER_KINDS:
            raise ValueError(
                f"encoder_kind must be one of {', '.join(map(repr, ENCODER_KINDS))}; got {encoder_kind!r}"
            )
        if likelihood not in LIKELIHOODS:
            raise ValueError(
                f"likelihood must be one of {', '.join(map(repr, LIKELIHOODS))}; got {likelihood!r}"
            )
        self.encoder_kind = encoder_kind
        self.likelihood = likelihood
        self.code_dim = positive_int(code_dim, "code_dim")
        self.in_shape = shape_tuple(in_shape, "in_shape")
        nc = self._num_classes
        if encoder_kind == "mlp":
            self.hidden = widths((256, 128) if hidden is None else hidden, allow_empty=True)
            d = math.prod(self.in_shape)
            self.encoder = nn.Sequential(
                nn.Flatten(), *mlp_layers([d + nc, *self.hidden, 2 * self.code_dim])
            )
            self.decoder = nn.Sequential(
                *mlp_layers([self.code_dim + nc, *self.hidden[::-1], d]), nn.Unflatten(1, self.in_shape)
            )
        else:
            if len(self.in_shape) != 3:
                raise ValueError(
                    f"in_shape must be (C, H, W) for encoder_kind='conv', got {self.in_shape}"
                )
            self.hidden = widths((32, 64) if hidden is None else hidden, allow_empty=True)
            enc, dec = conv_stack(self.in_shape, self.hidden, self.code_dim + nc, 2 * self.code_dim, nc)
            self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)
        if likelihood == "gaussian":
            init = torch.tensor(finite_number(x_logvar, "x_logvar"))
            if learn_x_logvar:
                self.x_logvar = nn.Parameter(init)
            else:
                self.register_buffer("x_logvar", init)
        else:
            self.x_logvar = None

    # -- checks and plumbing -------------------------------------------------------------------
    def _check_x(self, x) -> torch.Tensor:
        x = float_tensor(x, "x")
        if tuple(x.shape[1:]) != self.in_shape or x.dim() != len(self.in_shape) + 1:
            expected = "(N, " + ", ".join(map(str, self.in_shape)) + ")"
            raise ValueError(
                f"x must have shape {expected}, a batch of inputs of in_shape={self.in_shape}; "
                f"got shape {tuple(x.shape)}"
            )
        return x

    def _check_z(self, z) -> torch.Tensor:
        z = float_tensor(z, "z")
        if z.dim() != 2 or z.shape[1] != self.code_dim:
            raise ValueError(
                f"z must have shape (N, {self.code_dim}) (code_dim={self.code_dim}), "
                f"got shape {tuple(z.shape)}"
            )
        return z

    def _param(self) -> torch.Tensor:
        return next(self.parameters())

    def _encode(self, x, c):
        if c is not None:
            if self.encoder_kind == "mlp":
                x = torch.cat([x.flatten(1), c.to(x.dtype)], dim=1)
            else:  # one constant feature map per class: the label as extra input channels
                maps = c.to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
                x = torch.cat([x, maps], dim=1)
        h = self.encoder(x)
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar

    def _decode(self, z, c):
        if c is not None:
            z = torch.cat([z, c.to(z.dtype)], dim=1)
        return self.decoder(z)

    def _mean_of(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(params) if self.likelihood == "bernoulli" else params

    def _reconstruct(self, x, c):
        mu, _ = self._encode(x, c)
        return self._mean_of(self._decode(mu, c))

    @staticmethod
    def _q(mu, logvar) -> Distribution:
        return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)

    def _p(self, params) -> Distribution:
        if self.likelihood == "bernoulli":
            return Independent(Bernoulli(logits=params), len(self.in_shape))
        scale = torch.exp(0.5 * self.x_logvar).expand_as(params)
        return Independent(Normal(params, scale), len(self.in_shape))

    def _log_lik(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.likelihood == "bernoulli":
            return bernoulli_log_likelihood(params, x)
        return gaussian_log_likelihood(params, x, self.x_logvar)

    def _log_px_given_z(self, x, z, c):
        """log p_theta(x|z) for draws z of shape (S, N, d): returns (S, N)."""
        s, n = z.shape[:2]
        cc = None if c is None else c.repeat(s, 1)
        params = self._decode(z.reshape(s * n, -1), cc)
        xx = x.unsqueeze(0).expand(s, *x.shape).reshape(s * n, *x.shape[1:])
        return self._log_lik(params, xx).reshape(s, n)

    def _elbo(self, x, c, n_samples, generator):
        n_samples = positive_int(n_samples, "n_samples")
        mu, logvar = self._encode(x, c)
        mu_s = mu.unsqueeze(0).expand(n_samples, *mu.shape)
        z = reparameterize(mu_s, logvar.unsqueeze(0).expand_as(mu_s), generator)
        recon = self._log_px_given_z(x, z, c).mean(dim=0)
        return recon, gaussian_kl(mu, logvar)

    def _iwae(self, x, c, k, chunk, generator):
        k = positive_int(k, "k")
        if chunk is None:  # about 2**22 decoded numbers per chunk
            chunk = max(1, min(k, 2**22 // max(1, x.shape[0] * math.prod(self.in_shape))))
        q = self._q(*self._encode(x, c))

        def log_joint(z):
            return self._log_px_given_z(x, z, c) + standard_normal_log_prob(z)

        return iwae_bound(log_joint, q, k, chunk, generator)

    def _sample(self, n, c, generator):
        n = positive_int(n, "n")
        ref = self._param()
        z = _randn_like(ref, (n, self.code_dim), generator)
        with torch.no_grad():
            return self._mean_of(self._decode(z, c))

    def _neg_elbo(self, beta, *data) -> torch.Tensor:
        """mean(-recon + beta * kl) of ``self.elbo(*data)``, Eq. (2.7)."""
        beta = finite_number(beta, "beta", minimum=0.0)
        recon, kl = self.elbo(*data)
        return (-recon + beta * kl).mean()

    def _batch_loss(self, batch, beta) -> torch.Tensor:
        """:func:`vae_loss` of a tensor x or an ``(x, y, ...)`` batch (labels ignored)."""
        return self.loss(batch_x(batch), beta)

    # -- the public API ------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The parameters of q_phi(z|x) = N(mu, diag(exp(logvar))).

        Args:
            x: a batch ``(N, *in_shape)``.

        Returns:
            ``(mu, logvar)``, each ``(N, code_dim)``.
        """
        return self._encode(self._check_x(x), None)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The parameters of p_theta(x|z), shaped ``(N, *in_shape)``: logits (Bernoulli, Eq. (2.5))
        or the mean m (Gaussian, Eq. (2.4)). For pictures use :meth:`decode_mean`."""
        return self._decode(self._check_z(z), None)

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E_{p_theta(x|z)}[x]: sigmoid(logits) (Bernoulli, in [0, 1]) or m (Gaussian)."""
        return self._mean_of(self.decode(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction mean E_{p_theta(x|z)}[x] at z = mu_phi(x) (deterministic), ``(N, *in_shape)``."""
        return self._reconstruct(self._check_x(x), None)

    def q_phi(self, x: torch.Tensor) -> Distribution:
        """q_phi(z|x) as ``Independent(Normal(mu, sigma), 1)``, batch shape ``(N,)``."""
        return self._q(*self.encode(x))

    def p_theta(self, z: torch.Tensor) -> Distribution:
        """p_theta(x|z) as a ``torch.distributions`` object with batch shape ``(N,)``."""
        return self._p(self.decode(z))

    def prior(self) -> Distribution:
        """p(z) = N(0, I) on ``code_dim`` latents, on the model's device."""
        ref = self._param()
        zeros = torch.zeros(self.code_dim, dtype=ref.dtype, device=ref.device)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)

    def elbo(
        self, x: torch.Tensor, n_samples: int = 1, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The two terms of the ELBO, Eq. (2.2), per example: ``ELBO = recon - kl``.

        ``recon`` is the Monte Carlo estimate (1/S) sum_s log p_theta(x|z_s) with S = ``n_samples``
        reparameterised draws z_s ~ q_phi(z|x), Eq. (2.6); ``kl`` = KL(q_phi(z|x) || p(z)) is
        exact, Eq. (2.3).

        Args:
            x: a batch ``(N, *in_shape)``.
            n_samples: S, draws per example for the reconstruction term.
            generator: an optional ``torch.Generator`` for the draws.

        Returns:
            ``(recon, kl)``, each shape ``(N,)``, in nats.
        """
        return self._elbo(self._check_x(x), None, n_samples, generator)

    def loss(self, x: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """The negative (beta-)ELBO averaged over the batch, Eq. (2.7): mean(-recon + beta * kl)."""
        return self._neg_elbo(beta, x)

    def iwae_bound(
        self,
        x: torch.Tensor,
        k: int = 50,
        chunk: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The importance-weighted bound L_k(x), Eq. (2.9), with proposal q_phi(z|x), per example.

        log w_i = log p_theta(x|z_i) + log p(z_i) - log q_phi(z_i|x). ``chunk`` draws are decoded
        at once (default: about 4 million decoded numbers per chunk). Wrap in ``torch.no_grad()``
        for evaluation.

        Returns:
            Shape ``(N,)``, nats; L_1 is a one-sample ELBO estimate, L_k approaches log p_theta(x).
        """
        return self._iwae(self._check_x(x), None, k, chunk, generator)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ancestral samples: z ~ p(z) = N(0, I), then E_{p_theta(x|z)}[x] (decoded means, no noise).

        Returns ``(n, *in_shape)`` on the model's device (no gradients).
        """
        return self._sample(n, None, generator)

    def as_autoencoder(self) -> "MeanCodec":
        """A deterministic view with ``encode(x) -> mu`` and ``decode(z) -> decode_mean(z)``, for
        :class:`dgm.widgets.LatentExplorer` and the other code-space plots."""
        return MeanCodec(self)

    def extra_repr(self) -> str:
        return (
            f"encoder_kind={self.encoder_kind!r}, likelihood={self.likelihood!r}, "
            f"code_dim={self.code_dim}, in_shape={self.in_shape}"
        )


class MeanCodec(nn.Module):
    """A :class:`VAE` seen as a plain autoencoder: g(x) = mu_phi(x), f(z) = E_{p_theta(x|z)}[x].

    Shares the VAE's parameters (nothing is copied). ``encode`` returns a tensor ``(N, code_dim)``
    and ``decode`` a picture-like tensor, the interface :mod:`dgm.widgets` expects.
    """

    def __init__(self, vae: VAE):
        super().__init__()
        if not isinstance(vae, VAE) or vae._num_classes:  # a ConditionalVAE needs labels
            raise TypeError(f"vae must be an unconditional VAE, got {type(vae).__name__}")
        self.vae = vae
        self.code_dim = vae.code_dim

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode_mean(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae(x)


def vae_loss(model: VAE, batch, beta: float = 1.0) -> torch.Tensor:
    """The negative beta-ELBO per image, averaged over the batch, Eq. (2.7):

        loss = (1/N) sum_n [ -log p_theta(x_n|z_n) + beta * KL(q_phi(z|x_n) || p(z)) ],

    one reparameterised z_n per image; with a Bernoulli decoder this is "summed BCE + KL per
    image" (beta = 1 is the plain VAE; beta > 1 the beta-VAE of Higgins et al., 2017).

    Args:
        model: a :class:`VAE` (a :class:`~dgm.vae.conditional.ConditionalVAE` is passed on to
            :func:`~dgm.vae.conditional.cvae_loss`).
        batch: a tensor x, or a tuple ``(x, y, ...)`` whose labels are ignored.
        beta: weight of the KL term, >= 0.
    """
    return model._batch_loss(batch, beta)
