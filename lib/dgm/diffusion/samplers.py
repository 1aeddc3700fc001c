"""Sampling a trained eps-model in lecture 5: ancestral DDPM sampling and DDIM.

* (5.6)  reverse mean      mu_theta = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta) / sqrt(alpha_t)
* (5.8)  ancestral step    x_{t-1} = mu_theta(x_t, t) + sigma_t z
* (5.9)  DDIM step         x_prev = sqrt(a_prev) x0_hat + sqrt(1 - a_prev - sigma^2) eps_theta + sigma z

Deterministic DDIM (eta = 0) is a discretisation of the probability-flow ODE (5.11). A conditional
model is sampled through :class:`dgm.diffusion.Guided`.
"""

from __future__ import annotations

from numbers import Integral

import torch

from dgm._checks import nonempty_batch, positive_int
from dgm.diffusion._common import _call, _chain, _start
from dgm.diffusion.schedule import NoiseSchedule

__all__ = [
    "VARIANCES", "ddim_step", "ddim_timesteps", "p_mean_variance", "p_sample_step", "sample_ddim", "sample_ddpm",
]

VARIANCES = ("beta", "posterior")


def _check_var(var: str) -> None:
    if var not in VARIANCES:
        raise ValueError(f"var must be one of {VARIANCES}, got {var!r}")


def _clip(x0_hat, clip_x0):
    if clip_x0 is None:
        return x0_hat
    if not isinstance(clip_x0, (int, float)) or clip_x0 <= 0:
        raise ValueError(f"clip_x0 must be None or a positive number, got {clip_x0!r}")
    return x0_hat.clamp(-clip_x0, clip_x0)


# ----------------------------------------------------------------------------- DDPM
@torch.no_grad()
def p_mean_variance(model, xt, t, schedule: NoiseSchedule, *, var: str = "beta", clip_x0=None):
    """The reverse step p_theta(x_{t-1} | x_t) = N(mu_theta, sigma_t^2 I) of an eps-model.

    Without clipping, mu_theta is Eq. (5.6),
    mu_theta = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta) / sqrt(alpha_t), which equals the
    posterior mean (5.5) evaluated at the predicted x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps_theta)
    / sqrt(alpha_bar_t). With ``clip_x0 = c`` the prediction is first clamped to [-c, c] (images in
    [-1, 1]) and the mean is the posterior mean at the clamped x0_hat, as in Ho et al.'s code.

    Args:
        model: eps_theta(x, t).
        xt: current state (N, ...).
        t: 0-based step index (int or (N,) tensor).
        schedule: the :class:`NoiseSchedule`.
        var: sigma_t^2 = beta_t (``"beta"``) or beta_tilde_t (``"posterior"``); Ho et al. found both
            work equally well.
        clip_x0: None or c > 0.

    Returns:
        ``(mean, variance, x0_hat)``, each of the shape of xt.
    """
    _check_var(var)
    xt = nonempty_batch(xt, "xt")
    t = schedule.check_t(t, len(xt), device=xt.device)
    eps = _call(model, xt, t)
    x0_hat = _clip(schedule.predict_x0(xt, t, eps), clip_x0)
    mean, post_var = schedule.q_posterior(x0_hat, xt, t)
    variance = post_var if var == "posterior" else schedule._coef(schedule.betas, t, xt).expand_as(xt)
    return mean, variance, x0_hat


@torch.no_grad()
def p_sample_step(model, xt, t, schedule: NoiseSchedule, *, noise=None, generator=None, var: str = "beta",
                  clip_x0=None) -> torch.Tensor:
    """One ancestral step, Eq. (5.8): x_{t-1} = mu_theta(x_t, t) + sigma_t z, z ~ N(0, I).

    No noise is added at index t = 0 (the last step returns the mean, as in Algorithm 2).
    """
    mean, variance, _ = p_mean_variance(model, xt, t, schedule, var=var, clip_x0=clip_x0)
    t = schedule.check_t(t, len(xt), device=xt.device)
    z = schedule._noise(xt, "xt", noise, generator)
    nonzero = (t > 0).to(xt.dtype).reshape(len(xt), *([1] * (xt.dim() - 1)))
    return mean + nonzero * variance.sqrt() * z


@torch.no_grad()
def sample_ddpm(model, shape, schedule: NoiseSchedule, *, generator=None, noise=None, device=None,
                var: str = "beta", clip_x0=None, trajectory: bool = False):
    """Ancestral sampling (Ho et al., Algorithm 2): x_T ~ N(0, I), then T steps of Eq. (5.8).

    Args:
        model: eps_theta(x, t) (wrap a conditional model in :class:`Guided`).
        shape: (N, ...) of the samples.
        schedule: the :class:`NoiseSchedule` the model was trained with.
        generator: optional torch.Generator (on ``device``) for all the randomness.
        noise: optional starting x_T of the given shape (else drawn).
        device: where to sample (default: the generator's, else the model's).
        var, clip_x0: see :func:`p_mean_variance`.
        trajectory: also return every state.

    Returns:
        x_0 of shape ``shape``; with ``trajectory=True`` the pair (x_0, states) where states has
        shape (T + 1, *shape) and ``states[k]`` is the maths' x_k (``states[T]`` = x_T, the start).
    """
    x = _start(model, shape, noise, generator, device)

    def step(x, i):
        return p_sample_step(model, x, i, schedule, generator=generator, var=var, clip_x0=clip_x0)

    x, states = _chain(model, x, step, reversed(range(schedule.T)), trajectory)
    if trajectory:
        return x, torch.stack(states[::-1])
    return x


# ----------------------------------------------------------------------------- DDIM
def ddim_timesteps(T: int, steps: int) -> torch.Tensor:
    """The decreasing sub-sequence tau of {0, ..., T-1} that DDIM visits: ``steps`` indices evenly
    spaced, always ending at 0 and starting at or near T - 1 (``round(linspace(T-1, 0, steps))``)."""
    T = positive_int(T, "T")
    steps = positive_int(steps, "steps")
    if steps > T:
        raise ValueError(f"steps must be at most T = {T}, got {steps}")
    return torch.linspace(T - 1, 0, steps, dtype=torch.float64).round().long()


@torch.no_grad()
def ddim_step(model, xt, t, t_prev, schedule: NoiseSchedule, *, eta: float = 0.0, noise=None, generator=None,
              clip_x0=None) -> torch.Tensor:
    """One DDIM update (Song et al., 2021), Eq. (5.9), from index t to an earlier index t_prev
    (t_prev = -1 means "to x_0", alpha_bar = 1):

        x0_hat = (x_t - sqrt(1 - a_t) eps_theta) / sqrt(a_t)
        sigma  = eta * sqrt((1 - a_prev) / (1 - a_t)) * sqrt(1 - a_t / a_prev)
        x_prev = sqrt(a_prev) x0_hat + sqrt(1 - a_prev - sigma^2) eps_theta + sigma z

    with a = alpha_bar. eta = 0 is deterministic; eta = 1 is ancestral (DDPM) sampling on the
    sub-sequence of steps.
    """
    xt = nonempty_batch(xt, "xt")
    n = len(xt)
    t = schedule.check_t(t, n, device=xt.device)
    if isinstance(t_prev, Integral) and not isinstance(t_prev, bool) and t_prev == -1:
        t_prev = torch.full((n,), -1, dtype=torch.long, device=xt.device)
    elif isinstance(t_prev, torch.Tensor) and not t_prev.is_floating_point() and bool((t_prev == -1).all()):
        t_prev = torch.full((n,), -1, dtype=torch.long, device=xt.device)
    else:
        t_prev = schedule.check_t(t_prev, n, device=xt.device)
    if bool((t_prev >= t).any()):
        raise ValueError("t_prev must be smaller than t (DDIM moves towards x_0)")
    if not isinstance(eta, (int, float)) or eta < 0:
        raise ValueError(f"eta must be a number >= 0, got {eta!r}")
    eps = _call(model, xt, t)
    a_t = schedule._coef(schedule.alpha_bars, t, xt)
    abar_ext = torch.cat([torch.ones(1, dtype=torch.float64), schedule.alpha_bars])  # index + 1
    a_prev = schedule._coef(abar_ext, t_prev + 1, xt)
    x0_hat = (xt - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    if clip_x0 is not None:
        x0_hat = _clip(x0_hat, clip_x0)
        eps = (xt - a_t.sqrt() * x0_hat) / (1 - a_t).sqrt()
    sigma = eta * ((1 - a_prev) / (1 - a_t)).sqrt() * (1 - a_t / a_prev).clamp(min=0).sqrt()
    out = a_prev.sqrt() * x0_hat + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
    if eta > 0:
        out = out + sigma * schedule._noise(xt, "xt", noise, generator)
    return out


@torch.no_grad()
def sample_ddim(model, shape, schedule: NoiseSchedule, steps: int, eta: float = 0.0, *, generator=None,
                noise=None, device=None, clip_x0=None, trajectory: bool = False):
    """DDIM sampling with ``steps`` network evaluations (``steps`` <= T), Eq. (5.9).

    Visits the indices :func:`ddim_timesteps` ``(T, steps)`` and finally jumps to x_0.

    Args:
        model: eps_theta(x, t) (wrap a conditional model in :class:`Guided`).
        shape: (N, ...) of the samples.
        schedule: the :class:`NoiseSchedule` the model was trained with.
        steps: number of denoising steps.
        eta: 0 = deterministic DDIM, 1 = DDPM-like ancestral sampling on the sub-sequence.
        generator, noise, device, clip_x0: as in :func:`sample_ddpm`.
        trajectory: also return the states, shape (steps + 1, *shape), from x_T to x_0.

    Returns:
        x_0, or (x_0, states) with ``trajectory=True``.
    """
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    taus = ddim_timesteps(schedule.T, steps).tolist()
    x = _start(model, shape, noise, generator, device)

    def step(x, k):
        t_prev = taus[k + 1] if k + 1 < len(taus) else -1
        return ddim_step(model, x, taus[k], t_prev, schedule, eta=eta, generator=generator, clip_x0=clip_x0)

    x, states = _chain(model, x, step, range(len(taus)), trajectory)
    if trajectory:
        return x, torch.stack(states)
    return x
