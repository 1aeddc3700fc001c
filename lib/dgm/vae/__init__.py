"""Chapter 2: variational autoencoders and the evidence lower bound (ELBO), Eqs. (2.1)-(2.11).

One module per object of the lecture:

* :mod:`dgm.vae.elbo`        - the ELBO's pieces: :func:`gaussian_kl` (2.3), :func:`reparameterize`
  (2.6), the Bernoulli (2.5) and Gaussian (2.4) log-likelihoods, :func:`iwae_bound` (2.9)
* :mod:`dgm.vae.models`      - :class:`VAE` (MLP or conv; trained on the ELBO (2.2)), :class:`MeanCodec`,
  :func:`vae_loss` (the beta-VAE, 2.7)
* :mod:`dgm.vae.conditional` - :class:`ConditionalVAE` and :func:`cvae_loss` (2.10)
* :mod:`dgm.vae.vqvae`       - :class:`VQVAE` and :func:`vqvae_loss` (2.11)
* :mod:`dgm.vae.ppca`        - :class:`PPCA`, where log p(x), the posterior and the ELBO are exact (2.1)
* :mod:`dgm.vae.disentangle` - :func:`mutual_info_gap` (2.8), :func:`discretize`, :class:`MIGResult`

``standard_normal_log_prob`` (the prior's log-density) and ``log_mean_exp`` are those of
:mod:`dgm.distributions`, importable from here too. Every name below imports from ``dgm.vae``.
The losses have the ``loss_fn(model, batch)`` signature of :func:`dgm.train.fit` and accept a
tensor ``x`` or an ``(x, y)`` batch. Nothing here picks a device: a model lives where you
``.to()`` it, and every function works on the device of its inputs.
"""

from dgm.distributions import log_mean_exp, standard_normal_log_prob
from dgm.vae.conditional import ConditionalVAE, cvae_loss
from dgm.vae.disentangle import MIGResult, discretize, mutual_info_gap
from dgm.vae.elbo import (
    bernoulli_log_likelihood,
    gaussian_kl,
    gaussian_log_likelihood,
    iwae_bound,
    reparameterize,
)
from dgm.vae.models import ENCODER_KINDS, LIKELIHOODS, VAE, MeanCodec, vae_loss
from dgm.vae.ppca import PPCA
from dgm.vae.vqvae import VQVAE, vqvae_loss

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
