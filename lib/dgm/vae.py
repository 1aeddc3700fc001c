"""Chapter 2: variational autoencoders and the evidence lower bound (ELBO).

Lecture notation: an observation x, a latent z, the prior p(z) = N(0, I), a decoder (likelihood)
p_theta(x|z) and an encoder (approximate posterior) q_phi(z|x) = N(mu, diag(exp(logvar))), with
mu = mu_phi(x) and logvar = log sigma^2_phi(x) computed by a network.

For *any* distribution q(z) over the latents the log-evidence splits into two parts,

    log p_theta(x) = L(x; theta, phi) + KL(q_phi(z|x) || p_theta(z|x))                 (2.1)

    L(x; theta, phi) = E_{q_phi(z|x)}[log p_theta(x, z) - log q_phi(z|x)]
                     = E_{q_phi(z|x)}[log p_theta(x|z)] - KL(q_phi(z|x) || p(z))        (2.2)

and since a KL divergence is >= 0, the ELBO L is a lower bound on log p_theta(x), tight exactly
when q_phi(z|x) is the true posterior p_theta(z|x). A VAE maximises (2.2) over theta and phi.
The pieces, each a function or a class here:

* :func:`gaussian_kl` - KL(N(mu, diag sigma^2) || N(0, I)) in closed form, Eq. (2.3).
* :func:`reparameterize` - z = mu + sigma * eps, eps ~ N(0, I), Eq. (2.6): a sample of q_phi
  that gradients flow through.
* :func:`bernoulli_log_likelihood`, :func:`gaussian_log_likelihood` - log p_theta(x|z) for the
  two decoders of the chapter, Eq. (2.5) (Bernoulli) and Eq. (2.4) (Gaussian).
* :func:`iwae_bound` - the importance-weighted bound of Burda et al. (2016), Eq. (2.9):
  ELBO = L_1 <= L_k <= L_{k+1} <= log p(x), for any log-joint and any proposal q.
* :class:`VAE` (MLP or convolutional; Bernoulli or Gaussian decoder), :func:`vae_loss`
  (beta-VAE, Eq. (2.7)), :class:`ConditionalVAE` and :func:`cvae_loss` (Eq. (2.10)).
* :class:`VQVAE` and :func:`vqvae_loss` - van den Oord et al. (2017), Eq. (2.11).
* :class:`PPCA` - probabilistic PCA, the linear-Gaussian latent model whose log p(x), true
  posterior and ELBO are all available in closed form (written out in its docstring), so that Eq. (2.1) can
  be checked to machine precision.

The losses have the ``loss_fn(model, batch)`` signature of :func:`dgm.train.fit` and accept a
tensor ``x`` or an ``(x, y)`` batch. Nothing here picks a device: a model lives where you
``.to()`` it, and every function works on the device of its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal

from dgm.ae import _batch_x, _check_tensor, _positive_int, _shape_tuple

__all__ = [
    "ENCODER_KINDS",
    "LIKELIHOODS",
    "gaussian_kl",
    "reparameterize",
    "standard_normal_log_prob",
    "bernoulli_log_likelihood",
    "gaussian_log_likelihood",
    "log_mean_exp",
    "iwae_bound",
    "VAE",
    "MeanCodec",
    "ConditionalVAE",
    "vae_loss",
    "cvae_loss",
    "VQVAE",
    "vqvae_loss",
    "PPCA",
    "MIGResult",
    "discretize",
    "mutual_info_gap",
]

ENCODER_KINDS = ("mlp", "conv")
LIKELIHOODS = ("bernoulli", "gaussian")
_LOG_2PI = math.log(2 * math.pi)


# ----------------------------------------------------------------------------- input checks
def _check_finite_number(value, name: str, minimum: float | None = None) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return float(value)


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {name_a} {tuple(a.shape)} "
            f"and {name_b} {tuple(b.shape)}"
        )


def _per_example_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over every dimension but the first (the batch): one number per example."""
    return t.reshape(t.shape[0], -1).sum(dim=1) if t.dim() > 1 else t


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
    mu = _check_tensor(mu, "mu")
    logvar = _check_tensor(logvar, "logvar")
    _check_same_shape(mu, logvar, "mu", "logvar")
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
    mu = _check_tensor(mu, "mu")
    logvar = _check_tensor(logvar, "logvar")
    _check_same_shape(mu, logvar, "mu", "logvar")
    return mu + torch.exp(0.5 * logvar) * _randn_like(mu, mu.shape, generator)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log p(z) for the prior p(z) = N(0, I): -1/2 sum_j (z_j^2 + log 2 pi), summed over the last dim."""
    z = _check_tensor(z, "z")
    return -0.5 * (z.pow(2) + _LOG_2PI).sum(dim=-1)


def _diag_normal_log_prob(z, mu, logvar) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dim (z may carry extra leading dims)."""
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + _LOG_2PI).sum(dim=-1)


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
    logits = _check_tensor(logits, "logits")
    x = _check_tensor(x, "x")
    _check_same_shape(logits, x, "logits", "x")
    if x.numel() and bool((~((x >= 0) & (x <= 1))).any()):
        raise ValueError("x must lie in [0, 1] (and not be NaN) for a Bernoulli likelihood")
    return _per_example_sum(x * logits - F.softplus(logits))


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
    mean = _check_tensor(mean, "mean")
    x = _check_tensor(x, "x")
    _check_same_shape(mean, x, "mean", "x")
    if isinstance(logvar, torch.Tensor):
        logvar = _check_tensor(logvar, "logvar")
        try:
            torch.broadcast_shapes(logvar.shape, x.shape)
        except RuntimeError:
            raise ValueError(
                f"logvar must be a number or broadcastable to x {tuple(x.shape)}, got shape "
                f"{tuple(logvar.shape)}"
            ) from None
    else:
        logvar = torch.tensor(_check_finite_number(logvar, "logvar"), dtype=x.dtype, device=x.device)
    elementwise = (x - mean).pow(2) * torch.exp(-logvar) + logvar + _LOG_2PI
    return _per_example_sum(-0.5 * elementwise.expand_as(x))


# ----------------------------------------------------------------------------- importance weighting
def log_mean_exp(a: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log (1/k) sum_i exp(a_i) along ``dim`` (k = a.shape[dim]), without overflow (logsumexp)."""
    a = _check_tensor(a, "a")
    return torch.logsumexp(a, dim=dim) - math.log(a.shape[dim])


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
    k = _positive_int(k, "k")
    chunk = k if chunk is None else min(_positive_int(chunk, "chunk"), k)
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


# ----------------------------------------------------------------------------- networks
def _widths(hidden, name: str = "hidden") -> tuple[int, ...]:
    hidden = (hidden,) if isinstance(hidden, int) and not isinstance(hidden, bool) else hidden
    try:
        hidden = tuple(hidden)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of positive ints, got {hidden!r}") from None
    if not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden):
        raise ValueError(f"{name} must be a sequence of positive ints, got {hidden!r}")
    return hidden


def _mlp(widths) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return layers


def _conv_nets(in_shape, channels, code_in: int, enc_out: int, extra_in_channels: int):
    """Encoder: stride-2 convs (halving H and W each), then a linear layer; decoder: the mirror."""
    c, h, w = in_shape
    f = 2 ** len(channels)
    if h % f or w % f:
        raise ValueError(
            f"in_shape {in_shape}: a conv encoder with {len(channels)} stride-2 layers needs "
            f"height and width divisible by {f}"
        )
    hs, ws = h // f, w // f
    enc: list[nn.Module] = []
    prev = c + extra_in_channels
    for ch in channels:
        enc += [nn.Conv2d(prev, ch, 4, stride=2, padding=1), nn.ReLU()]
        prev = ch
    enc += [nn.Flatten(), nn.Linear(prev * hs * ws, enc_out)]
    dec: list[nn.Module] = [
        nn.Linear(code_in, prev * hs * ws),
        nn.ReLU(),
        nn.Unflatten(1, (prev, hs, ws)),
    ]
    rev = list(channels[::-1]) + [c]
    for i, (a, b) in enumerate(zip(rev[:-1], rev[1:])):
        dec.append(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1))
        if i < len(rev) - 2:
            dec.append(nn.ReLU())
    return nn.Sequential(*enc), nn.Sequential(*dec)


# ----------------------------------------------------------------------------- VAE
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
        self.code_dim = _positive_int(code_dim, "code_dim")
        self.in_shape = _shape_tuple(in_shape)
        nc = self._num_classes
        if encoder_kind == "mlp":
            self.hidden = _widths((256, 128) if hidden is None else hidden)
            d = math.prod(self.in_shape)
            self.encoder = nn.Sequential(
                nn.Flatten(), *_mlp([d + nc, *self.hidden, 2 * self.code_dim])
            )
            self.decoder = nn.Sequential(
                *_mlp([self.code_dim + nc, *self.hidden[::-1], d]), nn.Unflatten(1, self.in_shape)
            )
        else:
            if len(self.in_shape) != 3:
                raise ValueError(
                    f"in_shape must be (C, H, W) for encoder_kind='conv', got {self.in_shape}"
                )
            self.hidden = _widths((32, 64) if hidden is None else hidden)
            self.encoder, self.decoder = _conv_nets(
                self.in_shape, self.hidden, self.code_dim + nc, 2 * self.code_dim, nc
            )
        if likelihood == "gaussian":
            init = torch.tensor(_check_finite_number(x_logvar, "x_logvar"))
            if learn_x_logvar:
                self.x_logvar = nn.Parameter(init)
            else:
                self.register_buffer("x_logvar", init)
        else:
            self.x_logvar = None

    # -- checks and plumbing -------------------------------------------------------------------
    def _check_x(self, x) -> torch.Tensor:
        x = _check_tensor(x, "x")
        if tuple(x.shape[1:]) != self.in_shape or x.dim() != len(self.in_shape) + 1:
            expected = "(N, " + ", ".join(map(str, self.in_shape)) + ")"
            raise ValueError(
                f"x must have shape {expected}, a batch of inputs of in_shape={self.in_shape}; "
                f"got shape {tuple(x.shape)}"
            )
        return x

    def _check_z(self, z) -> torch.Tensor:
        z = _check_tensor(z, "z")
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
        n_samples = _positive_int(n_samples, "n_samples")
        mu, logvar = self._encode(x, c)
        mu_s = mu.unsqueeze(0).expand(n_samples, *mu.shape)
        z = reparameterize(mu_s, logvar.unsqueeze(0).expand_as(mu_s), generator)
        recon = self._log_px_given_z(x, z, c).mean(dim=0)
        return recon, gaussian_kl(mu, logvar)

    def _iwae(self, x, c, k, chunk, generator):
        k = _positive_int(k, "k")
        if chunk is None:  # about 2**22 decoded numbers per chunk
            chunk = max(1, min(k, 2**22 // max(1, x.shape[0] * math.prod(self.in_shape))))
        mu, logvar = self._encode(x, c)
        q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)

        def log_joint(z):
            return self._log_px_given_z(x, z, c) + standard_normal_log_prob(z)

        return iwae_bound(log_joint, q, k, chunk, generator)

    def _sample(self, n, c, generator):
        n = _positive_int(n, "n")
        ref = self._param()
        z = _randn_like(ref, (n, self.code_dim), generator)
        with torch.no_grad():
            return self._mean_of(self._decode(z, c))

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
        mu, _ = self.encode(x)
        return self._mean_of(self._decode(mu, None))

    def q_phi(self, x: torch.Tensor) -> Distribution:
        """q_phi(z|x) as ``Independent(Normal(mu, sigma), 1)``, batch shape ``(N,)``."""
        mu, logvar = self.encode(x)
        return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)

    def p_theta(self, z: torch.Tensor) -> Distribution:
        """p_theta(x|z) as a ``torch.distributions`` object with batch shape ``(N,)``."""
        params = self.decode(z)
        if self.likelihood == "bernoulli":
            return Independent(torch.distributions.Bernoulli(logits=params), len(self.in_shape))
        scale = torch.exp(0.5 * self.x_logvar).expand_as(params)
        return Independent(Normal(params, scale), len(self.in_shape))

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
        beta = _check_finite_number(beta, "beta", minimum=0.0)
        recon, kl = self.elbo(x)
        return (-recon + beta * kl).mean()

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
        if not isinstance(vae, VAE) or isinstance(vae, ConditionalVAE):
            raise TypeError(f"vae must be an unconditional VAE, got {type(vae).__name__}")
        self.vae = vae
        self.code_dim = vae.code_dim

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode_mean(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae(x)


class ConditionalVAE(VAE):
    """A conditional VAE (Sohn et al., 2015): every distribution also sees the label y, Eq. (2.10):

        L(x, y) = E_{q_phi(z|x,y)}[log p_theta(x|z,y)] - KL(q_phi(z|x,y) || p(z)),

    with the prior p(z) = N(0, I) left unconditional. The one-hot label is concatenated to the
    encoder's input (mlp: to the flattened x; conv: as ``num_classes`` constant input channels)
    and to the decoder's input [z, y]. Sampling with a chosen y generates that class.

    Labels ``y`` may be class indices (an int tensor ``(N,)``, values in ``[0, num_classes)``) or
    one-hot rows ``(N, num_classes)``. Arguments are those of :class:`VAE`, plus ``num_classes``.
    """

    def __init__(
        self,
        encoder_kind: str = "mlp",
        likelihood: str = "bernoulli",
        code_dim: int = 16,
        in_shape=(1, 28, 28),
        hidden=None,
        num_classes: int = 10,
        x_logvar: float = 0.0,
        learn_x_logvar: bool = True,
    ):
        self._num_classes = _positive_int(num_classes, "num_classes")
        super().__init__(encoder_kind, likelihood, code_dim, in_shape, hidden, x_logvar, learn_x_logvar)
        self.num_classes = self._num_classes

    def one_hot(self, y, n: int | None = None) -> torch.Tensor:
        """Labels as one-hot rows ``(N, num_classes)`` on the model's device and dtype.

        Args:
            y: an int (one class for all ``n`` rows), class indices ``(N,)`` or one-hot ``(N, num_classes)``.
            n: the expected number of rows N (checked), or the number of rows for an int y.
        """
        ref = self._param()
        k = self.num_classes
        if isinstance(y, int) and not isinstance(y, bool):
            if n is None:
                raise ValueError("y is a single int: give the number of rows n")
            y = torch.full((n,), y, dtype=torch.long, device=ref.device)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y must be an int or a tensor of class labels, got {type(y).__name__}")
        if y.dim() == 2 and y.is_floating_point():
            if y.shape[1] != k:
                raise ValueError(f"one-hot y must have shape (N, {k}), got {tuple(y.shape)}")
            onehot = y.to(device=ref.device, dtype=ref.dtype)
        elif y.dim() == 1 and not y.is_floating_point() and y.dtype != torch.bool:
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):
                raise ValueError(
                    f"y must hold class labels in [0, {k}) (num_classes={k}), got values in "
                    f"[{int(y.min())}, {int(y.max())}]"
                )
            onehot = F.one_hot(y.to(ref.device), k).to(ref.dtype)
        else:
            raise ValueError(
                f"y must be integer class labels of shape (N,) or float one-hot rows (N, {k}), "
                f"got dtype {y.dtype} and shape {tuple(y.shape)}"
            )
        if n is not None and onehot.shape[0] != n:
            raise ValueError(f"y must have one label per example ({n}), got {onehot.shape[0]}")
        return onehot

    def encode(self, x: torch.Tensor, y) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of q_phi(z|x, y), each ``(N, code_dim)``."""
        x = self._check_x(x)
        return self._encode(x, self.one_hot(y, x.shape[0]))

    def decode(self, z: torch.Tensor, y) -> torch.Tensor:
        """Parameters of p_theta(x|z, y) (logits or mean), ``(N, *in_shape)``."""
        z = self._check_z(z)
        return self._decode(z, self.one_hot(y, z.shape[0]))

    def decode_mean(self, z: torch.Tensor, y) -> torch.Tensor:
        """E_{p_theta(x|z,y)}[x]."""
        return self._mean_of(self.decode(z, y))

    def forward(self, x: torch.Tensor, y) -> torch.Tensor:
        """The reconstruction mean at z = mu_phi(x, y)."""
        x = self._check_x(x)
        c = self.one_hot(y, x.shape[0])
        mu, _ = self._encode(x, c)
        return self._mean_of(self._decode(mu, c))

    def q_phi(self, x: torch.Tensor, y) -> Distribution:
        mu, logvar = self.encode(x, y)
        return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)

    def p_theta(self, z: torch.Tensor, y) -> Distribution:
        params = self.decode(z, y)
        if self.likelihood == "bernoulli":
            return Independent(torch.distributions.Bernoulli(logits=params), len(self.in_shape))
        scale = torch.exp(0.5 * self.x_logvar).expand_as(params)
        return Independent(Normal(params, scale), len(self.in_shape))

    def elbo(self, x, y, n_samples: int = 1, generator=None):
        """``(recon, kl)`` of Eq. (2.10), each ``(N,)``; ELBO = recon - kl."""
        x = self._check_x(x)
        return self._elbo(x, self.one_hot(y, x.shape[0]), n_samples, generator)

    def loss(self, x, y, beta: float = 1.0) -> torch.Tensor:
        """mean(-recon + beta * kl) over the batch."""
        beta = _check_finite_number(beta, "beta", minimum=0.0)
        recon, kl = self.elbo(x, y)
        return (-recon + beta * kl).mean()

    def iwae_bound(self, x, y, k: int = 50, chunk: int | None = None, generator=None) -> torch.Tensor:
        """L_k(x | y), Eq. (2.9) with everything conditioned on y, shape ``(N,)``."""
        x = self._check_x(x)
        return self._iwae(x, self.one_hot(y, x.shape[0]), k, chunk, generator)

    def sample(self, n: int, y, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, I), then E[x | z, y]: ``n`` pictures of class(es) ``y`` (an int or ``(n,)`` labels)."""
        n = _positive_int(n, "n")
        return self._sample(n, self.one_hot(y, n), generator)

    def as_autoencoder(self):
        raise TypeError("a ConditionalVAE needs y to encode and decode; it has no plain autoencoder view")

    def extra_repr(self) -> str:
        return super().extra_repr() + f", num_classes={self.num_classes}"


def vae_loss(model: VAE, batch, beta: float = 1.0) -> torch.Tensor:
    """The negative beta-ELBO per image, averaged over the batch, Eq. (2.7):

        loss = (1/N) sum_n [ -log p_theta(x_n|z_n) + beta * KL(q_phi(z|x_n) || p(z)) ],

    one reparameterised z_n per image; with a Bernoulli decoder this is "summed BCE + KL per
    image" (beta = 1 is the plain VAE; beta > 1 the beta-VAE of Higgins et al., 2017).

    Args:
        model: a :class:`VAE` (a :class:`ConditionalVAE` is passed on to :func:`cvae_loss`).
        batch: a tensor x, or a tuple ``(x, y, ...)`` whose labels are ignored.
        beta: weight of the KL term, >= 0.
    """
    if isinstance(model, ConditionalVAE):
        return cvae_loss(model, batch, beta)
    return model.loss(_batch_x(batch), beta)


def cvae_loss(model: ConditionalVAE, batch, beta: float = 1.0) -> torch.Tensor:
    """The negative conditional ELBO, Eq. (2.10), averaged over a batch ``(x, y)``."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ValueError("batch must be an (x, y) tuple: a ConditionalVAE needs the labels y")
    return model.loss(batch[0], batch[1], beta)


# ----------------------------------------------------------------------------- VQ-VAE
class VQVAE(nn.Module):
    """The vector-quantised VAE of van den Oord, Vinyals & Kavukcuoglu (2017), Eq. (2.11):

        z_e = encoder(x) in R^{D x h x w},   k_j = argmin_k ||z_e,j - e_k||  (nearest codebook vector),
        z_q,j = e_{k_j},                      x_hat = decoder(z_q),
        loss = ||x - x_hat||^2 + ||sg[z_e] - e||^2 + beta * ||z_e - sg[e]||^2,

    sg = stop-gradient (``.detach()``). The argmin has no gradient, so the decoder's input is
    the *straight-through* z_e + sg[z_q - z_e]: its value is z_q and its gradient is copied to
    z_e. The codebook e (``codebook``, an ``nn.Embedding(K, D)``) is therefore trained only by
    the codebook term, the encoder by the reconstruction and the commitment term (beta = 0.25).
    Norms are summed over the whole grid (all h x w positions and D); the reconstruction term is
    the summed squared error per image (a Gaussian decoder with fixed variance, up to constants).

    Encoder: ``downsample`` stride-2 4x4 convolutions (``hidden`` channels), a 3x3 convolution
    and a 1x1 convolution to D channels; decoder: the mirror image, with a sigmoid output (data in
    [0, 1]). The latent grid is ``(H / 2**downsample, W / 2**downsample)``.

    Args:
        in_shape: ``(C, H, W)``, H and W divisible by ``2 ** downsample``.
        num_embeddings: K, the codebook size.
        embedding_dim: D, the dimension of each code vector.
        hidden: channels of the convolutional layers.
        downsample: number of stride-2 layers.
        beta: commitment weight.
    """

    def __init__(
        self,
        in_shape=(1, 28, 28),
        num_embeddings: int = 64,
        embedding_dim: int = 16,
        hidden: int = 64,
        downsample: int = 2,
        beta: float = 0.25,
    ):
        super().__init__()
        self.in_shape = _shape_tuple(in_shape)
        if len(self.in_shape) != 3:
            raise ValueError(f"in_shape must be (C, H, W), got {self.in_shape}")
        self.num_embeddings = _positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = _positive_int(embedding_dim, "embedding_dim")
        hidden = _positive_int(hidden, "hidden")
        self.downsample = _positive_int(downsample, "downsample")
        self.beta = _check_finite_number(beta, "beta", minimum=0.0)
        c, h, w = self.in_shape
        f = 2**self.downsample
        if h % f or w % f:
            raise ValueError(f"in_shape {self.in_shape}: H and W must be divisible by 2**downsample = {f}")
        self.grid = (h // f, w // f)

        enc: list[nn.Module] = []
        prev = c
        for _ in range(self.downsample):
            enc += [nn.Conv2d(prev, hidden, 4, stride=2, padding=1), nn.ReLU()]
            prev = hidden
        enc += [nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, self.embedding_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(self.embedding_dim, hidden, 3, padding=1), nn.ReLU()]
        for i in range(self.downsample):
            last = i == self.downsample - 1
            dec.append(nn.ConvTranspose2d(hidden, c if last else hidden, 4, stride=2, padding=1))
            dec.append(nn.Sigmoid() if last else nn.ReLU())
        self.decoder = nn.Sequential(*dec)
        self.codebook = nn.Embedding(self.num_embeddings, self.embedding_dim)
        nn.init.uniform_(self.codebook.weight, -1.0 / self.num_embeddings, 1.0 / self.num_embeddings)

    def _check_x(self, x) -> torch.Tensor:
        x = _check_tensor(x, "x")
        if x.dim() != 4 or tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(
                f"x must have shape (N, {', '.join(map(str, self.in_shape))}), got {tuple(x.shape)}"
            )
        return x

    def _check_indices(self, idx, name: str = "indices") -> torch.Tensor:
        if not isinstance(idx, torch.Tensor) or idx.is_floating_point() or idx.dtype == torch.bool:
            raise TypeError(f"{name} must be an integer tensor of codebook indices")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.num_embeddings):
            raise ValueError(f"{name} must lie in [0, {self.num_embeddings}) (num_embeddings)")
        return idx

    def encode_continuous(self, x: torch.Tensor) -> torch.Tensor:
        """z_e(x), the encoder's output before quantisation, ``(N, D, h, w)``."""
        return self.encoder(self._check_x(x))

    def nearest(self, z_e: torch.Tensor) -> torch.Tensor:
        """k_j = argmin_k ||z_e,j - e_k||^2 for every grid position: ``(N, h, w)`` long."""
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, self.embedding_dim)
        e = self.codebook.weight
        d2 = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None, :]
        n, _, h, w = z_e.shape
        return d2.argmin(dim=1).reshape(n, h, w)

    def quantize(self, z_e: torch.Tensor):
        """Quantise z_e and return the pieces of Eq. (2.11).

        Returns:
            ``(z_q_st, indices, codebook_loss, commitment_loss)``: z_q_st = z_e + sg[z_q - z_e]
            ``(N, D, h, w)`` (value z_q, gradient to z_e), indices ``(N, h, w)``, and per example
            ``||sg[z_e] - e||^2`` and ``||z_e - sg[e]||^2`` (summed over the grid), each ``(N,)``.
        """
        z_e = _check_tensor(z_e, "z_e")
        if z_e.dim() != 4 or z_e.shape[1] != self.embedding_dim:
            raise ValueError(f"z_e must have shape (N, {self.embedding_dim}, h, w), got {tuple(z_e.shape)}")
        with torch.no_grad():
            idx = self.nearest(z_e)
        z_q = self.codebook(idx).permute(0, 3, 1, 2)  # (N, D, h, w), differentiable w.r.t. e
        codebook_loss = _per_example_sum((z_e.detach() - z_q).pow(2))
        commitment_loss = _per_example_sum((z_e - z_q.detach()).pow(2))
        z_q_st = z_e + (z_q - z_e).detach()
        return z_q_st, idx, codebook_loss, commitment_loss

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The discrete code of x: nearest-codebook indices, ``(N, h, w)`` long."""
        return self.nearest(self.encode_continuous(x))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """x_hat = decoder(e_{indices}) for indices ``(N, h, w)``; returns ``(N, *in_shape)``."""
        idx = self._check_indices(indices)
        if idx.dim() != 3:
            raise ValueError(f"indices must have shape (N, h, w), got {tuple(idx.shape)}")
        return self.decoder(self.codebook(idx).permute(0, 3, 1, 2))

    def forward(self, x: torch.Tensor):
        """Returns ``(x_hat, vq_loss, indices)``; vq_loss = mean over the batch of
        ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2 (a scalar)."""
        z_e = self.encode_continuous(x)
        z_q_st, idx, codebook_loss, commitment_loss = self.quantize(z_e)
        x_hat = self.decoder(z_q_st)
        vq_loss = (codebook_loss + self.beta * commitment_loss).mean()
        return x_hat, vq_loss, idx

    def codebook_usage(self, indices: torch.Tensor) -> tuple[float, float]:
        """How much of the codebook ``indices`` use: ``(fraction, perplexity)``.

        fraction = (#distinct codes used) / K; perplexity = exp(H(p)) with p the empirical code
        frequencies, between 1 (one code) and K (all codes equally often).
        """
        idx = self._check_indices(indices)
        if idx.numel() == 0:
            raise ValueError("indices must not be empty")
        counts = torch.bincount(idx.reshape(-1), minlength=self.num_embeddings).double()
        p = counts / counts.sum()
        entropy = -(p[p > 0] * p[p > 0].log()).sum()
        return float((counts > 0).double().mean()), float(entropy.exp())

    def extra_repr(self) -> str:
        return (
            f"in_shape={self.in_shape}, num_embeddings={self.num_embeddings}, "
            f"embedding_dim={self.embedding_dim}, grid={self.grid}, beta={self.beta}"
        )


def vqvae_loss(model: VQVAE, batch) -> torch.Tensor:
    """Eq. (2.11) averaged over a batch: mean ||x - x_hat||^2 (summed per image) + vq_loss.

    ``batch`` is a tensor x or an ``(x, y, ...)`` tuple (labels ignored).
    """
    x = _batch_x(batch)
    x_hat, vq_loss, _ = model(x)
    return (x - x_hat).pow(2).reshape(x.shape[0], -1).sum(1).mean() + vq_loss


# ----------------------------------------------------------------------------- PPCA
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
        W = _check_tensor(W, "W")
        if W.dim() != 2:
            raise ValueError(f"W must be a (D, k) matrix, got shape {tuple(W.shape)}")
        b = _check_tensor(b, "b")
        if b.shape != (W.shape[0],):
            raise ValueError(f"b must have shape (D,) = ({W.shape[0]},), got {tuple(b.shape)}")
        sigma = _check_finite_number(sigma, "sigma")
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
        x = _check_tensor(x, "x")
        k = _positive_int(k, "k")
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
        x = _check_tensor(x, "x")
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
        return -0.5 * (self.D * _LOG_2PI + logdet + r.pow(2).sum(0))

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
        z = _check_tensor(z, "z")
        if z.dim() < 2 or z.shape[-1] != self.k or z.shape[-2] != x.shape[0]:
            raise ValueError(f"z must have shape (..., {x.shape[0]}, {self.k}), got {tuple(z.shape)}")
        mean = z @ self.W.T + self.b
        s2 = self.sigma**2
        return -0.5 * (((x - mean).pow(2) / s2).sum(-1) + self.D * (_LOG_2PI + torch.log(s2)))

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
        q_mean = _check_tensor(q_mean, "q_mean")
        q_cov = _check_tensor(q_cov, "q_cov")
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
        expected_loglik = -0.5 * (self.D * (_LOG_2PI + torch.log(s2)) + (resid + tr_wws) / s2)
        kl = 0.5 * (tr_s + q_mean.pow(2).sum(-1) - k - logdet_s)
        return expected_loglik - kl

    def sample(self, n: int, generator: torch.Generator | None = None, return_z: bool = False):
        """Ancestral samples z ~ N(0, I), x = W z + b + sigma * eps: ``(n, D)`` (and z if asked)."""
        n = _positive_int(n, "n")
        z = _randn_like(self.W, (n, self.k), generator)
        x = z @ self.W.T + self.b + self.sigma * _randn_like(self.W, (n, self.D), generator)
        return (x, z) if return_z else x

    def extra_repr(self) -> str:
        return f"D={self.D}, k={self.k}, sigma={float(self.sigma):.4g}"


# ----------------------------------------------------------------------------- disentanglement
class MIGResult(NamedTuple):
    """What :func:`mutual_info_gap` returns.

    Attributes:
        score: the MIG, Eq. (2.8), a float in [0, 1].
        gaps: ``(K,)`` the normalised gap of each factor, whose mean is ``score``.
        mi: ``(K, d)`` the normalised mutual information I(z_j; v_k) / H(v_k) of every
            factor k (row) and latent j (column), each in [0, 1].
        entropy: ``(K,)`` the entropy H(v_k) of each factor, nats.
    """

    score: float
    gaps: torch.Tensor
    mi: torch.Tensor
    entropy: torch.Tensor


def _labels_2d(a, name: str, n: int | None = None) -> torch.Tensor:
    a = torch.as_tensor(a)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or len(a) < 2:
        raise ValueError(f"{name} must have shape (N, columns) with N >= 2, got {tuple(a.shape)}")
    if n is not None and len(a) != n:
        raise ValueError(f"{name} must have one row per example ({n}), got {len(a)}")
    if a.is_floating_point() and not torch.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a.detach().cpu()


def discretize(codes, bins: int = 20) -> torch.Tensor:
    """Bin every column of ``codes`` ``(N, d)`` into ``bins`` equal-width bins over its range.

    Returns int64 ``(N, d)`` bin indices in ``0 .. bins - 1`` (a constant column is all 0s).
    """
    codes = _labels_2d(codes, "codes").double()
    bins = _positive_int(bins, "bins")
    lo, hi = codes.min(0).values, codes.max(0).values
    width = torch.where(hi > lo, (hi - lo) / bins, torch.ones_like(hi))
    return ((codes - lo) / width).floor().clamp(0, bins - 1).long()


def mutual_info_gap(codes, factors, bins: int = 20) -> MIGResult:
    """The mutual information gap (MIG) of Chen et al. (2018), Eq. (2.8):

        MIG = (1/K) sum_k [ I(z_{j_k}; v_k) - max_{j != j_k} I(z_j; v_k) ] / H(v_k),
        j_k = argmax_j I(z_j; v_k),

    for K known generating factors v_k and d latents z_j: for each factor, how much more the
    most informative latent knows about it than the runner-up, as a fraction of all there is
    to know. 1 means every factor lives in its own latent alone; 0 that the two best latents
    share it equally. The mutual informations are histogram (plug-in) estimates: each latent is
    cut into ``bins`` equal-width bins over its range (:func:`discretize`), each factor is
    already discrete (its distinct values are the categories).

    Args:
        codes: ``(N, d)`` latent codes, e.g. the encoder means mu_phi(x), d >= 2.
        factors: ``(N, K)`` the factor values of the same N examples (discrete).
        bins: number of bins per latent.

    Returns:
        a :class:`MIGResult` (``score``, per-factor ``gaps``, normalised ``mi`` matrix, ``entropy``).
    """
    codes = _labels_2d(codes, "codes")
    if codes.shape[1] < 2:
        raise ValueError(f"codes needs at least 2 latents (columns) for a gap, got {codes.shape[1]}")
    factors = _labels_2d(factors, "factors", len(codes))
    from sklearn.metrics import mutual_info_score  # plug-in I(A; B) in nats; I(A; A) = H(A)

    z, factors_np = discretize(codes, bins).numpy(), factors.numpy()
    entropy = torch.tensor([mutual_info_score(v, v) for v in factors_np.T], dtype=torch.float64)
    if not torch.all(entropy > 0):
        raise ValueError("every factor must take at least two values (a constant has no information)")
    mi = torch.tensor([[mutual_info_score(v, zj) for zj in z.T] for v in factors_np.T],
                      dtype=torch.float64) / entropy[:, None]
    top2 = torch.topk(mi, 2, dim=1).values
    gaps = top2[:, 0] - top2[:, 1]
    return MIGResult(float(gaps.mean()), gaps, mi, entropy)
