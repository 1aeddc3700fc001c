"""Chapter 5: denoising diffusion models (DDPM, DDIM), classifier-free guidance and flow matching.

Notation follows the lecture (Ho et al., 2020): x_0 is a data point, q the fixed forward (noising)
process, p_theta the learned reverse (denoising) process, beta_t the noise schedule,
alpha_t = 1 - beta_t and alpha_bar_t = prod_{s <= t} alpha_s. Equation numbers (5.1)-(5.13) are
those of ``lectures/05_diffusion.md``:

* (5.1)  forward step      q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I)
* (5.2)  closed form       q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I),
                           x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps
* (5.3)  schedules         linear beta_t; cosine alpha_bar_t; SNR_t = alpha_bar_t / (1 - alpha_bar_t)
* (5.4)  variational bound L = L_T + sum_{t>1} L_{t-1} + L_0 >= -log p_theta(x_0)
* (5.5)  posterior         q(x_{t-1} | x_t, x_0) = N(mu_tilde_t, beta_tilde_t I)
* (5.6)  reverse mean      mu_theta = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta) / sqrt(alpha_t)
* (5.7)  simple loss       E || eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t) ||^2
* (5.8)  ancestral step    x_{t-1} = mu_theta(x_t, t) + sigma_t z
* (5.9)  DDIM step         x_prev = sqrt(a_prev) x0_hat + sqrt(1 - a_prev - sigma^2) eps_theta + sigma z
* (5.10) guidance          eps_tilde = eps_theta(x_t, t, 0) + w (eps_theta(x_t, t, y) - eps_theta(x_t, t, 0))
* (5.11) probability-flow ODE (lecture only; deterministic DDIM is a discretisation of it)
* (5.12) flow matching     x_s = (1 - s) x_0 + s eps, target velocity v = eps - x_0
* (5.13) Euler sampler     x_{s - h} = x_s - h v_theta(x_s, s), from s = 1 (noise) to s = 0 (data)

One module per object of the lecture; everything public is importable from ``dgm.diffusion``:

* :mod:`~dgm.diffusion.schedule`      - :class:`NoiseSchedule`, the forward process (5.1)-(5.3), (5.5)
* :mod:`~dgm.diffusion.losses`        - :func:`eps_loss`, :class:`EpsLoss`, :func:`drop_labels` (5.7)
* :mod:`~dgm.diffusion.samplers`      - DDPM :func:`sample_ddpm` (5.6), (5.8) and DDIM :func:`sample_ddim` (5.9)
* :mod:`~dgm.diffusion.nets`          - :class:`SinusoidalEmbedding`, :class:`TimeMLP`, :class:`UNet`
* :mod:`~dgm.diffusion.guidance`      - classifier-free guidance, :func:`cfg_eps`, :class:`Guided` (5.10)
* :mod:`~dgm.diffusion.flow_matching` - :func:`fm_loss`, :class:`FMLoss`, :func:`sample_flow_euler` (5.12), (5.13)
* :mod:`~dgm.diffusion.gaussian1d`    - the exact checks on 1-D Gaussian data: :class:`GaussianData1D`,
  :class:`AffineReverse`, the bound (5.4) by :func:`vlb_terms` and :func:`vlb_monte_carlo`

**Time indices.** The lecture's maths counts t = 1, ..., T; the code indexes arrays with
``t = 0, ..., T - 1`` as in Ho et al.'s reference implementation: ``t = 0`` is the *first* noising
step, so ``schedule.alpha_bars[t]`` is alpha_bar_{t+1} of the maths, ``q_sample(x0, t)`` draws
x_{t+1}, and ``alpha_bars_prev[0] = 1`` stands for alpha_bar_0.

**Gaussian data in closed form.** For 1-D data x_0 ~ N(m, s^2) every object above is Gaussian:
:class:`GaussianData1D` gives the marginals q(x_t), the true reverse chain q(x_{t-1} | x_t) (an
:class:`AffineReverse`), the exact noise prediction E[eps | x_t] and the probability-flow map
x_T -> x_0 of (5.11); :func:`vlb_terms` computes every term of the bound (5.4) exactly (with
:func:`dgm.distributions.normal_kl`), and :func:`vlb_monte_carlo` samples the integrand of the
bound along forward paths. The lecture checks (5.4) and the DDIM / probability-flow link on them.

**Training** is ``dgm.train.fit(model, EpsLoss(schedule), data, optimizer=cosine_schedule(...))``
(or ``FMLoss()`` for flow matching); :func:`dgm.train.cosine_schedule` (re-exported here) decays the
learning rate to 0, which matters a lot for short trainings of these noisy regressions.

**Models.** A noise-prediction network is called as ``model(x, t)`` (or ``model(x, t, y)`` with
class labels) where ``t`` is the LongTensor of 0-based indices, one per example; it returns
eps_theta(x_t, t) with the shape of x. A flow-matching network is called as ``model(x, s)`` with a
float tensor s in [0, 1]. :class:`TimeMLP` (2-D data) and :class:`UNet` (images) do both; give a
flow-matching model ``time_scale=1000`` so that its sinusoidal time features see the same range
as the integer steps of a T = 1000 diffusion model.
"""

from dgm.diffusion.flow_matching import FMLoss, fm_interpolate, fm_loss, fm_target, sample_flow_euler
from dgm.diffusion.gaussian1d import AffineReverse, GaussianData1D, vlb_monte_carlo, vlb_terms
from dgm.diffusion.guidance import Guided, cfg_eps
from dgm.diffusion.losses import EpsLoss, drop_labels, eps_loss
from dgm.diffusion.nets import SinusoidalEmbedding, TimeMLP, UNet
from dgm.diffusion.samplers import (
    VARIANCES,
    ddim_step,
    ddim_timesteps,
    p_mean_variance,
    p_sample_step,
    sample_ddim,
    sample_ddpm,
)
from dgm.diffusion.schedule import SCHEDULE_KINDS, NoiseSchedule
from dgm.train import cosine_schedule  # lecture 5 imports it from here

__all__ = [
    "NoiseSchedule",
    "SCHEDULE_KINDS",
    "VARIANCES",
    "eps_loss",
    "EpsLoss",
    "p_mean_variance",
    "p_sample_step",
    "sample_ddpm",
    "ddim_timesteps",
    "ddim_step",
    "sample_ddim",
    "SinusoidalEmbedding",
    "TimeMLP",
    "UNet",
    "cfg_eps",
    "Guided",
    "drop_labels",
    "fm_interpolate",
    "fm_target",
    "fm_loss",
    "FMLoss",
    "sample_flow_euler",
    "cosine_schedule",
    "AffineReverse",
    "GaussianData1D",
    "vlb_terms",
    "vlb_monte_carlo",
]
