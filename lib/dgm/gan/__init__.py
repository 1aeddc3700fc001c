"""Chapter 3: generative adversarial networks, the GAN game.

Lecture notation: noise z ~ p(z) = N(0, I), a generator G_theta_g(z) (``generator``) whose
samples have the density p_g, a discriminator D_theta_d(x) in (0, 1) (``discriminator``; for a
WGAN an unbounded critic f, ``critic``) and the data density p_data. The networks here output
*logits* l(x) with D(x) = sigmoid(l(x)); every loss is computed from logits, because
log D = -softplus(-l) and log(1 - D) = -softplus(l) never produce log(0) = -inf.

The equations (Goodfellow et al., 2014; Arjovsky et al., 2017; Gulrajani et al., 2017), each
written out in the module that implements it; ``lectures/03_gan_game.md`` uses the same numbers:

* (3.1)  the game         min_G max_D V(D, G) = E_data[log D(x)] + E_z[log(1 - D(G(z)))]
* (3.2)  D's loss         -V = E_data[softplus(-l(x))] + E_z[softplus(l(G(z)))]
* (3.3)  optimal D        D*_G(x) = p_data(x) / (p_data(x) + p_g(x))
* (3.4)  its value        C(G) = max_D V(D, G) = -log 4 + 2 JSD(p_data || p_g)
* (3.5)  Jensen-Shannon   JSD(p || q) = 1/2 KL(p || m) + 1/2 KL(q || m), m = (p + q) / 2
* (3.6)  G's losses       saturating, non-saturating, wasserstein
* (3.7)  Wasserstein-1    W_1(P, Q) = sup_{||f||_L <= 1} E_P[f] - E_Q[f]
* (3.8)  critic's loss    E_z[f(G(z))] - E_data[f(x)], weights clipped to [-c, c]
* (3.9)  gradient penalty lambda E[(||grad_x f(x_hat)||_2 - 1)^2]
* (3.10) conditional GAN  one-hot(y) concatenated to z and to x (Mirza & Osindero, 2014); the
         DCGAN discriminator's default is the projection l(x|y) = w.phi(x) + b + e_y.phi(x)
         (Miyato & Koyama, 2018), written after (3.10) in the lecture

One module per object of the lecture; everything public is importable from ``dgm.gan``:

* :mod:`~dgm.gan.nets`        - the players :class:`MLPGenerator`, :class:`MLPDiscriminator` (toy
  2-D data, or flat images), :class:`DCGANGenerator`, :class:`DCGANDiscriminator` (28x28 images;
  Radford et al., 2016), all conditional on ``num_classes`` if given (3.10)
* :mod:`~dgm.gan.losses`      - :func:`discriminator_loss` (3.2), :func:`generator_loss` (3.6),
  :func:`critic_loss` (3.8), :func:`gradient_penalty` (3.9), :func:`clip_weights` (3.8),
  :data:`GENERATOR_LOSSES`, :data:`LOSSES`
* :mod:`~dgm.gan.divergences` - the theory: :func:`optimal_discriminator` (3.3), :func:`kl`,
  :func:`jsd` (3.5), :func:`total_variation`, :func:`w1` (3.7, exact on two equal-size samples)
* :mod:`~dgm.gan.evaluation`  - :func:`mode_coverage` (a :class:`ModeCoverage`: modes covered and
  high-quality samples; Srivastava et al., 2017), :func:`decision_surface`
* :mod:`~dgm.gan.trainer`     - :class:`GANTrainer` alternates k discriminator steps and one
  generator step (Algorithm 1 of Goodfellow et al.; of Gulrajani et al. for ``loss="wgan-gp"``),
  logging both losses in a :class:`GANHistory`; :func:`train_gan` is the one-call version

Nothing here picks a device: a model lives where you ``.to()`` it, and every function works on
the device of its inputs.
"""

from dgm.gan.divergences import jsd, kl, optimal_discriminator, total_variation, w1
from dgm.gan.evaluation import ModeCoverage, decision_surface, mode_coverage
from dgm.gan.losses import (
    GENERATOR_LOSSES,
    LOSSES,
    clip_weights,
    critic_loss,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
)
from dgm.gan.nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from dgm.gan.trainer import GANHistory, GANTrainer, train_gan

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
