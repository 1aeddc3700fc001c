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

**Time indices.** The lecture's maths counts t = 1, ..., T; the code indexes arrays with
``t = 0, ..., T - 1`` as in Ho et al.'s reference implementation: ``t = 0`` is the *first* noising
step, so ``schedule.alpha_bars[t]`` is alpha_bar_{t+1} of the maths, ``q_sample(x0, t)`` draws
x_{t+1}, and ``alpha_bars_prev[0] = 1`` stands for alpha_bar_0.

**Gaussian data in closed form.** For 1-D data x_0 ~ N(m, s^2) every object above is Gaussian:
:class:`GaussianData1D` gives the marginals q(x_t), the true reverse chain q(x_{t-1} | x_t) (an
:class:`AffineReverse`), the exact noise prediction E[eps | x_t] and the probability-flow map
x_T -> x_0 of (5.11); :func:`vlb_terms` computes every term of the bound (5.4) exactly (with
:func:`gaussian_kl`), and :func:`vlb_monte_carlo` samples the integrand of the bound along
forward paths. The lecture checks (5.4) and the DDIM / probability-flow link on them.

**Training** is ``dgm.train.fit(model, EpsLoss(schedule), data, optimizer=cosine_schedule(...))``
(or ``FMLoss()`` for flow matching); :func:`cosine_schedule` decays the learning rate to 0, which
matters a lot for short trainings of these noisy regressions.

**Models.** A noise-prediction network is called as ``model(x, t)`` (or ``model(x, t, y)`` with
class labels) where ``t`` is the LongTensor of 0-based indices, one per example; it returns
eps_theta(x_t, t) with the shape of x. A flow-matching network is called as ``model(x, s)`` with a
float tensor s in [0, 1]. :class:`TimeMLP` (2-D data) and :class:`UNet` (images) do both; give a
flow-matching model ``time_scale=1000`` so that its sinusoidal time features see the same range
as the integer steps of a T = 1000 diffusion model.
"""

from __future__ import annotations

import math
from numbers import Integral

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "NoiseSchedule",
    "SCHEDULE_KINDS",
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
    "gaussian_kl",
    "AffineReverse",
    "GaussianData1D",
    "vlb_terms",
    "vlb_monte_carlo",
]

SCHEDULE_KINDS = ("linear", "cosine")
VARIANCES = ("beta", "posterior")


# ----------------------------------------------------------------------------- input checks
def _check_float_tensor(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch (N, ...), got shape {tuple(x.shape)}")
    return x


def _check_same_shape(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    if not isinstance(b, torch.Tensor):
        raise TypeError(f"{b_name} must be a torch.Tensor, got {type(b).__name__}")
    if a.shape != b.shape:
        raise ValueError(
            f"{b_name} must have the shape of {a_name} {tuple(a.shape)}, got {tuple(b.shape)}"
        )


def _as_shape(shape, name: str = "shape") -> tuple[int, ...]:
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if (
        not isinstance(shape, (tuple, list))
        or len(shape) < 2
        or not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in shape)
    ):
        raise ValueError(f"{name} must be a tuple of positive ints (N, ...) with at least 2 entries, got {shape!r}")
    return tuple(int(s) for s in shape)


def _check_steps(steps, name: str, maximum: int | None = None) -> int:
    if isinstance(steps, bool) or not isinstance(steps, Integral) or steps < 1:
        raise ValueError(f"{name} must be a positive int, got {steps!r}")
    if maximum is not None and steps > maximum:
        raise ValueError(f"{name} must be at most T = {maximum}, got {steps}")
    return int(steps)


def _model_device(model, fallback=None) -> torch.device:
    if isinstance(model, nn.Module):
        for p in model.parameters():
            return p.device
        for b in model.buffers():
            return b.device
    return torch.device("cpu") if fallback is None else torch.device(fallback)


def _call(model, x, t, y=None):
    """eps_theta(x, t) or eps_theta(x, t, y)."""
    out = model(x, t) if y is None else model(x, t, y)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model must return a tensor shaped like its input x {tuple(x.shape)}, got {got}")
    return out


# ----------------------------------------------------------------------------- the schedule
class NoiseSchedule:
    """The fixed forward process: beta_t, alpha_t = 1 - beta_t, alpha_bar_t = prod_{s<=t} alpha_s.

    Kinds, Eq. (5.3):

    * ``"linear"`` (Ho et al., 2020): beta_t evenly spaced from ``beta_start`` to ``beta_end``.
      The defaults 1e-4 ... 0.02 are made for T = 1000; for a shorter chain scale both by
      1000 / T (Nichol & Dhariwal, 2021) so that alpha_bar_T stays close to 0.
    * ``"cosine"`` (Nichol & Dhariwal, 2021): alpha_bar(u) = f(u) / f(0) with
      f(u) = cos^2(pi/2 (u + s) / (1 + s)), s = 0.008, at u = (t + 1) / T, and
      beta_t = min(1 - alpha_bar_t / alpha_bar_{t-1}, 0.999). ``beta_start``/``beta_end`` are unused.

    All arrays are float64 CPU tensors of length T indexed by the 0-based step t (see the module
    docstring: index t holds the maths' step t + 1). Methods cast the coefficients to the dtype
    and device of their inputs.

    Attributes:
        T: number of steps.
        kind: ``"linear"`` or ``"cosine"``.
        betas, alphas, alpha_bars: beta_t, alpha_t, alpha_bar_t.
        alpha_bars_prev: alpha_bar_{t-1}, with alpha_bar_0 = 1 at index 0.
        posterior_variance: beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t, Eq. (5.5).
    """

    def __init__(self, T: int = 1000, kind: str = "linear", beta_start: float = 1e-4, beta_end: float = 0.02):
        if isinstance(T, bool) or not isinstance(T, Integral) or T < 1:
            raise ValueError(f"T must be a positive int (number of diffusion steps), got {T!r}")
        if kind not in SCHEDULE_KINDS:
            raise ValueError(f"kind must be one of {SCHEDULE_KINDS}, got {kind!r}")
        self.T, self.kind = int(T), kind
        if kind == "linear":
            for name, value in (("beta_start", beta_start), ("beta_end", beta_end)):
                if not isinstance(value, (int, float)) or not 0 < value < 1:
                    raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
            if beta_end < beta_start:
                raise ValueError(f"beta_end must be >= beta_start, got {beta_end} < {beta_start}")
            betas = torch.linspace(beta_start, beta_end, self.T, dtype=torch.float64)
        else:
            s = 0.008
            u = torch.arange(self.T + 1, dtype=torch.float64) / self.T
            f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
            abar = f / f[0]
            betas = (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)
        self.alpha_bars_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bars[:-1]])
        self.posterior_variance = betas * (1.0 - self.alpha_bars_prev) / (1.0 - self.alpha_bars)

    def __repr__(self) -> str:
        return (f"NoiseSchedule(T={self.T}, kind={self.kind!r}, beta[0]={self.betas[0]:.3g}, "
                f"beta[T-1]={self.betas[-1]:.3g}, alpha_bar[T-1]={self.alpha_bars[-1]:.3g})")

    def __len__(self) -> int:
        return self.T

    def snr(self) -> torch.Tensor:
        """The signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t) of x_t, Eq. (5.3), per step."""
        return self.alpha_bars / (1.0 - self.alpha_bars)

    # -- helpers
    def check_t(self, t, n: int, device=None) -> torch.Tensor:
        """``t`` as a LongTensor of shape (n,) on ``device``, after checking 0 <= t < T.

        Args:
            t: an int (used for every example) or an integer tensor of shape () or (n,).
            n: the batch size.
            device: where the result lives.

        Raises:
            TypeError: t is not an int or an integer tensor.
            ValueError: a value is outside [0, T) or the shape is not (n,).
        """
        if isinstance(t, bool):
            raise TypeError("t must be an int or an integer tensor of step indices, got a bool")
        if isinstance(t, Integral):
            t = torch.full((n,), int(t), dtype=torch.long)
        elif isinstance(t, torch.Tensor):
            if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
                raise TypeError(f"t must hold integer step indices, got dtype {t.dtype}")
            if t.dim() == 0:
                t = t.expand(n)
            if t.shape != (n,):
                raise ValueError(f"t must have shape ({n},) (one step per example) or be a scalar, got {tuple(t.shape)}")
            t = t.long()
        else:
            raise TypeError(f"t must be an int or an integer tensor of step indices, got {type(t).__name__}")
        if len(t) and (int(t.min()) < 0 or int(t.max()) >= self.T):
            raise ValueError(
                f"t must be a 0-based step index in [0, T) = [0, {self.T}), got values in "
                f"[{int(t.min())}, {int(t.max())}]"
            )
        return t if device is None else t.to(device)

    def _coef(self, values: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """values[t] reshaped to (N, 1, ..., 1) to broadcast against x, in x's dtype and device."""
        out = values[t.detach().cpu()].to(x.dtype).to(x.device)  # cast on the CPU: MPS has no float64
        return out.reshape(len(t), *([1] * (x.dim() - 1)))

    # -- the forward process
    def q_step(self, x_prev, t, noise=None, generator=None) -> torch.Tensor:
        """One forward step, Eq. (5.1): x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) eps.

        Args:
            x_prev: the previous state (N, ...), i.e. x_0 when t = 0.
            t: 0-based step index (int or (N,) integer tensor).
            noise: optional eps of the shape of x_prev (else drawn with ``generator``).
            generator: optional torch.Generator for the noise.
        """
        x_prev = _check_float_tensor(x_prev, "x_prev")
        t = self.check_t(t, len(x_prev))
        noise = self._noise(x_prev, "x_prev", noise, generator)
        return self._coef(self.alphas.sqrt(), t, x_prev) * x_prev + self._coef(self.betas.sqrt(), t, x_prev) * noise

    def q_mean_variance(self, x0, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean sqrt(alpha_bar_t) x_0 and variance (1 - alpha_bar_t) of q(x_t | x_0), Eq. (5.2).

        The variance is returned broadcast to the shape of x0 (it is isotropic).
        """
        x0 = _check_float_tensor(x0, "x0")
        t = self.check_t(t, len(x0))
        mean = self._coef(self.alpha_bars.sqrt(), t, x0) * x0
        var = self._coef(1.0 - self.alpha_bars, t, x0).expand_as(x0)
        return mean, var

    def _noise(self, x, x_name, noise, generator):
        if noise is None:
            return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        _check_same_shape(x, x_name, noise, "noise")
        return noise.to(x.dtype)

    def q_sample(self, x0, t, noise=None, generator=None) -> torch.Tensor:
        """Jump straight to step t, Eq. (5.2): x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps.

        Args:
            x0: data (N, ...), float.
            t: 0-based step index: an int or an integer tensor (N,), each in [0, T).
            noise: eps ~ N(0, I) of the shape of x0; drawn with ``generator`` if None.
            generator: optional torch.Generator.

        Returns:
            x_t, the shape of x0 (index t gives the maths' x_{t+1}).
        """
        x0 = _check_float_tensor(x0, "x0")
        t = self.check_t(t, len(x0))
        noise = self._noise(x0, "x0", noise, generator)
        return (self._coef(self.alpha_bars.sqrt(), t, x0) * x0
                + self._coef((1.0 - self.alpha_bars).sqrt(), t, x0) * noise)

    def q_posterior(self, x0, xt, t) -> tuple[torch.Tensor, torch.Tensor]:
        """The forward process's posterior q(x_{t-1} | x_t, x_0) = N(mu_tilde, beta_tilde I), Eq. (5.5):

            mu_tilde = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
                       + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t,
            beta_tilde = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t.

        At index t = 0 (the maths' t = 1, alpha_bar_0 = 1) the posterior is the point mass at x_0:
        mean x_0, variance 0.

        Args:
            x0: data (N, ...).
            xt: the noisy sample at step t, same shape.
            t: 0-based step index (int or (N,) integer tensor).

        Returns:
            ``(mean, variance)``, both of the shape of x0.
        """
        x0 = _check_float_tensor(x0, "x0")
        _check_same_shape(x0, "x0", xt, "xt")
        t = self.check_t(t, len(x0))
        coef0, coeft, _ = self.posterior_coefficients()
        mean = self._coef(coef0, t, x0) * x0 + self._coef(coeft, t, x0) * xt.to(x0.dtype)
        var = self._coef(self.posterior_variance, t, x0).expand_as(x0)
        return mean, var

    def posterior_coefficients(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The posterior (5.5) as arrays over the steps: mu_tilde_t = coef0_t x_0 + coeft_t x_t,
        variance beta_tilde_t; returns ``(coef0, coeft, beta_tilde)``, float64 tensors of length T."""
        coef0 = self.alpha_bars_prev.sqrt() * self.betas / (1.0 - self.alpha_bars)
        coeft = self.alphas.sqrt() * (1.0 - self.alpha_bars_prev) / (1.0 - self.alpha_bars)
        return coef0, coeft, self.posterior_variance

    def predict_x0(self, xt, t, eps) -> torch.Tensor:
        """Invert Eq. (5.2) for x_0: x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
        xt = _check_float_tensor(xt, "xt")
        _check_same_shape(xt, "xt", eps, "eps")
        t = self.check_t(t, len(xt))
        return (xt - self._coef((1.0 - self.alpha_bars).sqrt(), t, xt) * eps) / self._coef(self.alpha_bars.sqrt(), t, xt)


# ----------------------------------------------------------------------------- training loss
def drop_labels(y: torch.Tensor, p: float, null_label: int, generator=None) -> torch.Tensor:
    """Classifier-free guidance training: replace each label by ``null_label`` with probability p."""
    if not isinstance(y, torch.Tensor) or y.is_floating_point():
        raise TypeError(f"y must be an integer tensor of class labels, got {getattr(y, 'dtype', type(y).__name__)}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p_uncond must be a probability in [0, 1], got {p!r}")
    if p == 0:
        return y
    drop = torch.rand(y.shape, generator=generator, device=y.device) < p
    return torch.where(drop, torch.full_like(y, null_label), y)


def eps_loss(model, x0, schedule: NoiseSchedule, *, y=None, p_uncond: float = 0.0, t=None, noise=None,
             generator=None) -> torch.Tensor:
    """The simplified objective of Ho et al., Eq. (5.7), as a batch mean:

        L_simple = E_{t, x_0, eps} || eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t) ||^2

    with t uniform on {0, ..., T - 1} and eps ~ N(0, I). The squared error is averaged over the
    dimensions of x (as in the reference code), then over the batch.

    Args:
        model: eps_theta, called as ``model(x_t, t)`` or ``model(x_t, t, y)``.
        x0: data batch (N, ...).
        schedule: the :class:`NoiseSchedule`.
        y: optional class labels (N,) for a conditional model.
        p_uncond: probability of replacing a label by the model's ``null_label`` (classifier-free
            guidance training, Ho & Salimans, 2022); needs ``y`` and ``model.null_label``.
        t: optional fixed step indices (else uniform); noise: optional fixed eps.
        generator: optional torch.Generator for t, eps and the label dropout.
    """
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    x0 = _check_float_tensor(x0, "x0")
    n = len(x0)
    if t is None:
        t = torch.randint(0, schedule.T, (n,), generator=generator, device=generator.device if generator else "cpu")
    t = schedule.check_t(t, n, device=x0.device)
    noise = schedule._noise(x0, "x0", noise, generator)
    xt = schedule.q_sample(x0, t, noise)
    if y is not None:
        if not isinstance(y, torch.Tensor) or y.shape != (n,):
            raise ValueError(f"y must be a label tensor of shape ({n},), got {getattr(y, 'shape', y)!r}")
        if p_uncond > 0:
            null = getattr(model, "null_label", None)
            if null is None:
                raise ValueError("p_uncond > 0 needs a model with a null_label attribute (num_classes=...)")
            y = drop_labels(y.to(x0.device), p_uncond, null, generator)
    elif p_uncond:
        raise ValueError("p_uncond > 0 needs labels y")
    eps = _call(model, xt, t, y)
    return (eps - noise).pow(2).mean()


class EpsLoss:
    """``loss_fn(model, batch)`` for :func:`dgm.train.fit`: Eq. (5.7) on a batch x or (x, y).

    Args:
        schedule: the :class:`NoiseSchedule`.
        p_uncond: label dropout for classifier-free guidance (only with (x, y) batches).
    """

    def __init__(self, schedule: NoiseSchedule, p_uncond: float = 0.0):
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
        if not 0.0 <= p_uncond <= 1.0:
            raise ValueError(f"p_uncond must be a probability in [0, 1], got {p_uncond!r}")
        self.schedule, self.p_uncond = schedule, p_uncond

    def __call__(self, model, batch):
        if isinstance(batch, (tuple, list)):
            x0 = batch[0]
            y = batch[1] if len(batch) > 1 else None
        else:
            x0, y = batch, None
        return eps_loss(model, x0, self.schedule, y=y, p_uncond=self.p_uncond if y is not None else 0.0)


def cosine_schedule(optimizer: torch.optim.Optimizer, steps: int, warmup: int = 0) -> torch.optim.Optimizer:
    """Give ``optimizer`` a learning-rate schedule that every ``optimizer.step()`` advances: a linear
    warm-up over ``warmup`` steps, then a cosine decay from the base rate to 0 at ``steps``.

    The schedule is attached as a step post-hook, so ``dgm.train.fit(..., optimizer=opt)`` trains
    with it unchanged. Short diffusion trainings gain a lot from the decay: the noise of the
    regression target (5.7) keeps a constant-rate optimiser bouncing around the optimum.

    Returns:
        The same optimizer (for chaining).
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    steps = _check_steps(steps, "steps")
    if isinstance(warmup, bool) or not isinstance(warmup, Integral) or not 0 <= warmup < steps:
        raise ValueError(f"warmup must be an int in [0, steps), got {warmup!r}")
    base = [group["lr"] for group in optimizer.param_groups]
    state = {"done": 0}

    def factor(i: int) -> float:
        warm = min(1.0, (i + 1) / warmup) if warmup else 1.0
        return warm * 0.5 * (1.0 + math.cos(math.pi * min(i, steps) / steps))

    def set_lr(i: int) -> None:
        for group, lr in zip(optimizer.param_groups, base):
            group["lr"] = lr * factor(i)

    def hook(opt, args, kwargs):
        state["done"] += 1
        set_lr(state["done"])

    set_lr(0)
    optimizer.register_step_post_hook(hook)
    return optimizer


# ----------------------------------------------------------------------------- DDPM sampling
def _check_var(var: str) -> None:
    if var not in VARIANCES:
        raise ValueError(f"var must be one of {VARIANCES}, got {var!r}")


def _clip(x0_hat, clip_x0):
    if clip_x0 is None:
        return x0_hat
    if not isinstance(clip_x0, (int, float)) or clip_x0 <= 0:
        raise ValueError(f"clip_x0 must be None or a positive number, got {clip_x0!r}")
    return x0_hat.clamp(-clip_x0, clip_x0)


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
    xt = _check_float_tensor(xt, "xt")
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


def _start(model, shape, noise, generator, device):
    shape = _as_shape(shape)
    if noise is not None:
        if not isinstance(noise, torch.Tensor) or tuple(noise.shape) != shape:
            raise ValueError(f"noise must be a tensor of shape {shape}, got {getattr(noise, 'shape', noise)!r}")
        return noise.clone()
    if device is None:
        device = generator.device if generator is not None else _model_device(model)
    return torch.randn(shape, generator=generator, device=device)


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
    was_training = isinstance(model, nn.Module) and model.training
    if isinstance(model, nn.Module):
        model.eval()
    states = [x.cpu()] if trajectory else None
    try:
        for i in reversed(range(schedule.T)):
            x = p_sample_step(model, x, i, schedule, generator=generator, var=var, clip_x0=clip_x0)
            if trajectory:
                states.append(x.cpu())
    finally:
        if was_training:
            model.train()
    if trajectory:
        return x, torch.stack(states[::-1])
    return x


# ----------------------------------------------------------------------------- DDIM
def ddim_timesteps(T: int, steps: int) -> torch.Tensor:
    """The decreasing sub-sequence tau of {0, ..., T-1} that DDIM visits: ``steps`` indices evenly
    spaced, always ending at 0 and starting at or near T - 1 (``round(linspace(T-1, 0, steps))``)."""
    T = _check_steps(T, "T")
    steps = _check_steps(steps, "steps", maximum=T)
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
    xt = _check_float_tensor(xt, "xt")
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
    was_training = isinstance(model, nn.Module) and model.training
    if isinstance(model, nn.Module):
        model.eval()
    states = [x.cpu()] if trajectory else None
    try:
        for k, t in enumerate(taus):
            t_prev = taus[k + 1] if k + 1 < len(taus) else -1
            x = ddim_step(model, x, t, t_prev, schedule, eta=eta, generator=generator, clip_x0=clip_x0)
            if trajectory:
                states.append(x.cpu())
    finally:
        if was_training:
            model.train()
    if trajectory:
        return x, torch.stack(states)
    return x


# ----------------------------------------------------------------------------- networks
class SinusoidalEmbedding(nn.Module):
    """Transformer-style features of a time value: [sin(tau w_k), cos(tau w_k)], tau = time_scale * t,
    w_k = max_period^(-k / (dim/2)), k = 0 ... dim/2 - 1 (Vaswani et al., 2017; Ho et al., 2020)."""

    def __init__(self, dim: int, time_scale: float = 1.0, max_period: float = 10000.0):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2 or dim % 2:
            raise ValueError(f"dim must be a positive even int, got {dim!r}")
        self.dim, self.time_scale = dim, float(time_scale)
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(max_period) * torch.arange(half) / half), persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"t must be a tensor of times, got {type(t).__name__}")
        if t.dim() == 0:
            t = t[None]
        if t.dim() != 1:
            raise ValueError(f"t must have shape (N,), got {tuple(t.shape)}")
        arg = self.time_scale * t.to(self.freqs.dtype)[:, None] * self.freqs[None]
        return torch.cat([arg.sin(), arg.cos()], dim=1)


class _Conditioning(nn.Module):
    """Time embedding MLP, plus a label embedding with one extra "null" label when num_classes is set."""

    def __init__(self, emb_dim: int, time_scale: float, num_classes: int | None):
        super().__init__()
        self.time = nn.Sequential(SinusoidalEmbedding(emb_dim, time_scale), nn.Linear(emb_dim, emb_dim), nn.SiLU(),
                                  nn.Linear(emb_dim, emb_dim))
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                        or num_classes < 1):
            raise ValueError(f"num_classes must be None or a positive int, got {num_classes!r}")
        self.num_classes = num_classes
        self.label = None if num_classes is None else nn.Embedding(num_classes + 1, emb_dim)

    def forward(self, t, y, n, device):
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t, device=device)
        if t.dim() == 0:
            t = t.expand(n)
        if t.shape != (n,):
            raise ValueError(f"t must have shape ({n},), one time per example, got {tuple(t.shape)}")
        emb = self.time(t.to(device))
        if self.label is not None:
            if y is None:
                y = torch.full((n,), self.num_classes, dtype=torch.long, device=device)
            if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.shape != (n,):
                raise ValueError(f"y must be an integer label tensor of shape ({n},), got {getattr(y, 'shape', y)!r}")
            if int(y.min()) < 0 or int(y.max()) > self.num_classes:
                raise ValueError(f"y must hold labels in [0, {self.num_classes}] ({self.num_classes} = null label)")
            emb = emb + self.label(y.to(device))
        elif y is not None:
            raise ValueError("y was given but the model was built without num_classes")
        return emb


class TimeMLP(nn.Module):
    """eps_theta(x, t[, y]) (or a velocity v_theta) for vectors: an MLP on [x, embedding(t, y)].

    Each hidden layer gets the conditioning added: h <- SiLU(W h + b + U e(t, y)).

    Args:
        dim: data dimension (2 for the toy sets).
        hidden: width of the hidden layers.
        depth: number of hidden layers.
        emb_dim: size of the time (and label) embedding.
        num_classes: if set, a conditional model with labels 0..num_classes-1 and ``null_label`` =
            num_classes for the unconditional branch (classifier-free guidance).
        time_scale: multiplies t before the sinusoidal features (1 for integer steps, 1000 for
            flow-matching times in [0, 1]).
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, emb_dim: int = 64,
                 num_classes: int | None = None, time_scale: float = 1.0):
        super().__init__()
        for name, value in (("dim", dim), ("hidden", hidden), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.dim = dim
        self.cond = _Conditioning(emb_dim, time_scale, num_classes)
        self.inp = nn.Linear(dim, hidden)
        self.layers = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(depth)])
        self.embs = nn.ModuleList([nn.Linear(emb_dim, hidden) for _ in range(depth)])
        self.out = nn.Linear(hidden, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def null_label(self):
        return self.cond.num_classes

    def forward(self, x, t, y=None):
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (N, {self.dim}), got {getattr(x, 'shape', x)!r}")
        e = self.cond(t, y, len(x), x.device)
        h = F.silu(self.inp(x))
        for layer, emb in zip(self.layers, self.embs):
            h = F.silu(layer(h) + emb(F.silu(e)))
        return self.out(h)


class _ResBlock(nn.Module):
    def __init__(self, cin, cout, emb_dim, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2 = nn.GroupNorm(min(groups, cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x, e):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(e))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """A small time-conditioned U-Net for eps_theta(x_t, t[, y]) on images (Ronneberger et al., 2015;
    Ho et al., 2020), without attention, small enough to train on a CPU.

    Layout for ``channels=(c1, c2, c3)`` and a 14x14 input: a 3x3 conv to c1 and a residual block
    at 14x14 (c1); a stride-2 conv to 7x7 and a residual block (c2); a stride-2 conv to 4x4 and a
    residual block (c3), then a middle block; then up again (nearest-neighbour upsampling to the
    size of the skip connection), each level concatenating the skip connection of the same
    resolution before a residual block. Every residual block adds a learned projection of the time
    (and label) embedding to its feature maps. The output conv is initialised to zero, so that
    eps_theta = 0 at the start of training. Any image size works; the cost grows with H x W and
    is dominated by the first level.

    Args:
        in_channels: image channels.
        channels: widths per resolution, at least two levels.
        emb_dim: size of the time/label embedding.
        num_classes: labels for a conditional model (``null_label`` = num_classes).
        time_scale: as in :class:`TimeMLP`.
        groups: GroupNorm groups (at most the channel count).
    """

    def __init__(self, in_channels: int = 1, channels=(16, 32, 64), emb_dim: int = 64,
                 num_classes: int | None = None, time_scale: float = 1.0, groups: int = 8):
        super().__init__()
        channels = tuple(channels)
        if len(channels) < 2 or not all(isinstance(c, int) and c > 0 for c in channels):
            raise ValueError(f"channels must list at least two positive widths, got {channels!r}")
        self.in_channels, self.channels = in_channels, channels
        self.cond = _Conditioning(emb_dim, time_scale, num_classes)
        self.inp = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        for i, c in enumerate(channels):
            cin = channels[0] if i == 0 else channels[i - 1]
            if i > 0:
                self.downsamples.append(nn.Conv2d(cin, cin, 3, stride=2, padding=1))
            self.down_blocks.append(_ResBlock(cin, c, emb_dim, groups))
        self.mid = _ResBlock(channels[-1], channels[-1], emb_dim, groups)
        self.up_blocks = nn.ModuleList()
        for i in reversed(range(len(channels) - 1)):
            self.up_blocks.append(_ResBlock(channels[i + 1] + channels[i], channels[i], emb_dim, groups))
        self.out_norm = nn.GroupNorm(min(groups, channels[0]), channels[0])
        self.out = nn.Conv2d(channels[0], in_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def null_label(self):
        return self.cond.num_classes

    def forward(self, x, t, y=None):
        levels = len(self.channels)
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (N, {self.in_channels}, H, W), got {getattr(x, 'shape', x)!r}")
        e = self.cond(t, y, len(x), x.device)
        h = self.inp(x)
        skips = []
        for i, block in enumerate(self.down_blocks):
            if i > 0:
                h = self.downsamples[i - 1](h)
            h = block(h, e)
            skips.append(h)
        h = self.mid(h, e)
        for j, block in enumerate(self.up_blocks):
            skip = skips[levels - 2 - j]
            h = F.interpolate(h, size=skip.shape[2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1), e)
        return self.out(F.silu(self.out_norm(h)))


# ----------------------------------------------------------------------------- guidance
@torch.no_grad()
def cfg_eps(model, x, t, y, scale: float) -> torch.Tensor:
    """Classifier-free guidance, Eq. (5.10) (Ho & Salimans, 2022):

        eps_tilde = eps_theta(x_t, t, null) + w (eps_theta(x_t, t, y) - eps_theta(x_t, t, null))

    w = 0 is the unconditional model, w = 1 the conditional one, w > 1 pushes samples towards what
    makes the label likely. (Ho & Salimans write the same thing as (1 + w') eps_y - w' eps_null
    with w' = w - 1.) Both branches are evaluated in one batch.
    """
    null = getattr(model, "null_label", None)
    if null is None:
        raise ValueError("model must be conditional (built with num_classes, has a null_label)")
    if not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite number, got {scale!r}")
    n = len(x)
    y = _labels(y, n, null, x.device)
    t = t if isinstance(t, torch.Tensor) else torch.full((n,), int(t), dtype=torch.long, device=x.device)
    if t.dim() == 0:
        t = t.expand(n)
    if scale == 1:
        return _call(model, x, t, y)
    if scale == 0:
        return _call(model, x, t, torch.full_like(y, null))
    out = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, null)]))
    eps_y, eps_null = out[:n], out[n:]
    return eps_null + scale * (eps_y - eps_null)


def _labels(y, n, null, device):
    if isinstance(y, Integral) and not isinstance(y, bool):
        y = torch.full((n,), int(y), dtype=torch.long)
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.shape != (n,):
        raise ValueError(f"y must be an int or an integer label tensor of shape ({n},), got {getattr(y, 'shape', y)!r}")
    if int(y.min()) < 0 or int(y.max()) >= null:
        raise ValueError(f"y must hold class labels in [0, {null})")
    return y.to(device)


class Guided(nn.Module):
    """A conditional eps-model with fixed labels and guidance scale, as an unconditional ``model(x, t)``
    that :func:`sample_ddpm` and :func:`sample_ddim` accept, Eq. (5.10).

    Args:
        model: a conditional model (``model(x, t, y)``, with ``null_label``).
        y: the requested labels, (N,) for N samples, or one int for all.
        scale: the guidance scale w (0 unconditional, 1 conditional, > 1 guided).
    """

    def __init__(self, model: nn.Module, y, scale: float = 1.0):
        super().__init__()
        if getattr(model, "null_label", None) is None:
            raise ValueError("model must be conditional (built with num_classes, has a null_label)")
        self.model, self.y, self.scale = model, y, float(scale)

    def forward(self, x, t):
        return cfg_eps(self.model, x, t, self.y, self.scale)


# ----------------------------------------------------------------------------- flow matching
def _check_s(s, n, x):
    if isinstance(s, (int, float)) and not isinstance(s, bool):
        s = torch.full((n,), float(s), dtype=x.dtype, device=x.device)
    if not isinstance(s, torch.Tensor) or not s.is_floating_point():
        raise TypeError("s must be a float or a float tensor of times in [0, 1]")
    if s.dim() == 0:
        s = s.expand(n)
    if s.shape != (n,):
        raise ValueError(f"s must have shape ({n},), one time per example, got {tuple(s.shape)}")
    if bool(((s < 0) | (s > 1) | s.isnan()).any()):
        raise ValueError("s must lie in [0, 1] (0 = data, 1 = noise)")
    return s.to(device=x.device, dtype=x.dtype)


def fm_interpolate(x0, noise, s) -> torch.Tensor:
    """The straight-line path of (rectified) flow matching, Eq. (5.12): x_s = (1 - s) x_0 + s eps.

    s = 0 is the data, s = 1 pure noise (the direction of the diffusion chain).

    Args:
        x0: data (N, ...); noise: eps of the same shape; s: float or (N,) tensor in [0, 1].
    """
    x0 = _check_float_tensor(x0, "x0")
    _check_same_shape(x0, "x0", noise, "noise")
    s = _check_s(s, len(x0), x0).reshape(len(x0), *([1] * (x0.dim() - 1)))
    return (1 - s) * x0 + s * noise


def fm_target(x0, noise) -> torch.Tensor:
    """The conditional velocity of the straight path, Eq. (5.12): d x_s / d s = eps - x_0."""
    x0 = _check_float_tensor(x0, "x0")
    _check_same_shape(x0, "x0", noise, "noise")
    return noise - x0


def fm_loss(model, x0, *, y=None, p_uncond: float = 0.0, s=None, noise=None, generator=None) -> torch.Tensor:
    """Conditional flow matching (Lipman et al., 2023; Liu et al., 2023), Eq. (5.12), batch mean:

        L_FM = E_{s ~ U[0,1], x_0, eps} || v_theta(x_s, s) - (eps - x_0) ||^2,  x_s = (1 - s) x_0 + s eps

    Args:
        model: v_theta, called as ``model(x_s, s)`` (or ``model(x_s, s, y)``) with float s in [0, 1].
        x0: data batch (N, ...).
        y, p_uncond: labels and label dropout, as in :func:`eps_loss`.
        s, noise: optional fixed times and noise; generator: for the random ones.
    """
    x0 = _check_float_tensor(x0, "x0")
    n = len(x0)
    if s is None:
        s = torch.rand(n, generator=generator, device=generator.device if generator else "cpu").to(x0.device, x0.dtype)
    s = _check_s(s, n, x0)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device) if noise is None else noise
    xs = fm_interpolate(x0, noise, s)
    if y is not None and p_uncond > 0:
        y = drop_labels(y.to(x0.device), p_uncond, model.null_label, generator)
    v = _call(model, xs, s, y)
    return (v - fm_target(x0, noise)).pow(2).mean()


class FMLoss:
    """``loss_fn(model, batch)`` for :func:`dgm.train.fit`: Eq. (5.12) on a batch x or (x, y)."""

    def __init__(self, p_uncond: float = 0.0):
        self.p_uncond = p_uncond

    def __call__(self, model, batch):
        if isinstance(batch, (tuple, list)):
            return fm_loss(model, batch[0], y=batch[1] if len(batch) > 1 else None, p_uncond=self.p_uncond)
        return fm_loss(model, batch)


@torch.no_grad()
def sample_flow_euler(model, shape, steps: int, *, generator=None, noise=None, device=None, trajectory: bool = False):
    """Integrate dx/ds = v_theta(x, s) from s = 1 (x ~ N(0, I)) to s = 0 with ``steps`` Euler steps
    of size h = 1 / steps, Eq. (5.13): x_{s-h} = x_s - h v_theta(x_s, s).

    Returns:
        x at s = 0, or (x, states) with ``trajectory=True``, states of shape (steps + 1, *shape)
        from s = 1 to s = 0.
    """
    steps = _check_steps(steps, "steps")
    x = _start(model, shape, noise, generator, device)
    was_training = isinstance(model, nn.Module) and model.training
    if isinstance(model, nn.Module):
        model.eval()
    states = [x.cpu()] if trajectory else None
    h = 1.0 / steps
    try:
        for k in range(steps):
            s = torch.full((len(x),), 1.0 - k * h, dtype=x.dtype, device=x.device)
            x = x - h * _call(model, x, s)
            if trajectory:
                states.append(x.cpu())
    finally:
        if was_training:
            model.train()
    if trajectory:
        return x, torch.stack(states)
    return x


# ----------------------------------------------------------------------------- 1-D Gaussian data
# With data x_0 ~ N(m, s^2) in one dimension every object of the lecture is Gaussian and known in
# closed form: the marginals q(x_t), the true reverse conditionals q(x_{t-1} | x_t), the exact
# noise prediction E[eps | x_t] and the probability-flow map. The lecture checks the bound (5.4)
# and the DDIM / probability-flow link (5.9), (5.11) on it. Times here are the lecture's
# t = 0, ..., T (0 = the data), not the 0-based step indices of NoiseSchedule.


def gaussian_kl(mean1, var1, mean2, var2) -> torch.Tensor:
    """KL(N(mean1, var1) || N(mean2, var2)) of 1-D Gaussians, elementwise (the KLs of Eq. (5.4)):

        0.5 * [log(var2 / var1) + (var1 + (mean1 - mean2)^2) / var2 - 1].
    """
    mean1, var1, mean2, var2 = (torch.as_tensor(v, dtype=torch.float64) for v in (mean1, var1, mean2, var2))
    return 0.5 * (torch.log(var2 / var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1.0)


def _normal_log_prob(x, mean, var) -> torch.Tensor:
    return -0.5 * (math.log(2 * math.pi) + torch.log(var) + (x - mean) ** 2 / var)


class AffineReverse:
    """A reverse chain with affine-Gaussian steps on 1-D data, the model of Eq. (5.4):

        p(x_T) = N(prior_mean, prior_var),    p(x_{t-1} | x_t) = N(a_t x_t + b_t, var_t),  t = 1..T.

    ``a``, ``b``, ``var`` are float64 tensors of length T; entry ``t - 1`` belongs to lecture step t.
    """

    def __init__(self, a, b, var, prior_mean: float, prior_var: float):
        a, b, var = (torch.as_tensor(v, dtype=torch.float64) for v in (a, b, var))
        if not (a.dim() == 1 and a.shape == b.shape == var.shape):
            raise ValueError(f"a, b, var must be 1-D tensors of length T, got shapes "
                             f"{tuple(a.shape)}, {tuple(b.shape)}, {tuple(var.shape)}")
        if bool((var <= 0).any()) or not prior_var > 0:
            raise ValueError("var and prior_var must be positive")
        self.a, self.b, self.var = a, b, var
        self.prior_mean, self.prior_var = float(prior_mean), float(prior_var)

    @property
    def T(self) -> int:
        return len(self.a)

    def marginal_x0(self) -> tuple[float, float]:
        """(mean, variance) of the model's own p(x_0): the chain run from p(x_T), step by step,
        mean <- a_t mean + b_t and variance <- a_t^2 variance + var_t (all Gaussian)."""
        mean, var = self.prior_mean, self.prior_var
        for a, b, v in zip(self.a.flip(0).tolist(), self.b.flip(0).tolist(), self.var.flip(0).tolist()):
            mean, var = a * mean + b, a * a * var + v
        return mean, var

    def log_prob_x0(self, x0) -> torch.Tensor:
        """log p(x_0) of the model (what the bound (5.4) bounds), from :meth:`marginal_x0`."""
        mean, var = self.marginal_x0()
        x0 = torch.as_tensor(x0, dtype=torch.float64)
        return _normal_log_prob(x0, torch.tensor(mean, dtype=torch.float64), torch.tensor(var, dtype=torch.float64))

    def with_mean_shift(self, delta: float) -> "AffineReverse":
        """The same chain with every reverse mean shifted by ``delta`` (a deliberately wrong model)."""
        return AffineReverse(self.a, self.b + delta, self.var, self.prior_mean, self.prior_var)


class GaussianData1D:
    """Data x_0 ~ N(mean, std^2) in 1-D under the forward process (5.1) of ``schedule``.

    Everything is Gaussian: the marginal q(x_t) = N(mu_t, v_t) with mu_t = sqrt(alpha_bar_t) m and
    v_t = alpha_bar_t s^2 + 1 - alpha_bar_t (Eq. (5.2) averaged over x_0), and the true reverse
    conditional q(x_{t-1} | x_t) by Bayes' rule on the joint of (x_{t-1}, x_t).

    Args:
        schedule: the :class:`NoiseSchedule` of the forward process.
        mean, std: m and s of the data.
    """

    def __init__(self, schedule: NoiseSchedule, mean: float, std: float):
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
        if not (isinstance(std, (int, float)) and std > 0) or not isinstance(mean, (int, float)):
            raise ValueError(f"mean must be a number and std a positive number, got {mean!r}, {std!r}")
        self.schedule, self.mean, self.std = schedule, float(mean), float(std)
        abar = torch.cat([torch.ones(1, dtype=torch.float64), schedule.alpha_bars])  # index = lecture t
        self._mu = abar.sqrt() * self.mean
        self._v = abar * self.std**2 + 1.0 - abar

    def marginal(self, t: int) -> tuple[float, float]:
        """(mu_t, v_t) of q(x_t) for lecture time t = 0..T (t = 0: the data, (m, s^2))."""
        if isinstance(t, bool) or not isinstance(t, Integral) or not 0 <= t <= self.schedule.T:
            raise ValueError(f"t must be an int in [0, T] = [0, {self.schedule.T}] (lecture time), got {t!r}")
        return self._mu[t].item(), self._v[t].item()

    def log_prob(self, x0) -> torch.Tensor:
        """log p(x_0) = log N(x_0; m, s^2), the value the bound (5.4) is a bound on."""
        x0 = torch.as_tensor(x0, dtype=torch.float64)
        return _normal_log_prob(x0, torch.tensor(self.mean), torch.tensor(self.std**2, dtype=torch.float64))

    def exact_reverse(self) -> AffineReverse:
        """The true reverse chain q(x_{t-1} | x_t) = N(a_t x_t + b_t, var_t) with p(x_T) = q(x_T):

            a_t = sqrt(alpha_t) v_{t-1} / v_t,   b_t = mu_{t-1} - a_t mu_t,   var_t = beta_t v_{t-1} / v_t.

        With it, p(x_{0:T}) equals the forward joint q(x_{0:T}), so the bound (5.4) is tight.
        """
        s = self.schedule
        v_prev, v_t, mu_prev, mu_t = self._v[:-1], self._v[1:], self._mu[:-1], self._mu[1:]
        a = s.alphas.sqrt() * v_prev / v_t
        return AffineReverse(a, mu_prev - a * mu_t, s.betas * v_prev / v_t, self._mu[-1].item(), self._v[-1].item())

    def eps(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The exact noise prediction E[eps | x_t] = sqrt(1 - alpha_bar_t) (x_t - mu_t) / v_t, i.e.
        -sqrt(1 - alpha_bar_t) times the score of q(x_t), with the ``model(x, t)`` interface of the
        samplers (``t`` the 0-based step index, so index i is lecture step i + 1)."""
        x = _check_float_tensor(x, "x")
        t = self.schedule.check_t(t, len(x)).cpu() + 1
        shape = (len(x),) + (1,) * (x.dim() - 1)
        mu, v = self._mu[t].reshape(shape), self._v[t].reshape(shape)
        abar = self.schedule.alpha_bars[t - 1].reshape(shape)
        return ((1 - abar).sqrt() * (x.double().cpu() - mu) / v).to(x.dtype).to(x.device)

    def flow_map(self, x_T) -> torch.Tensor:
        """The exact probability-flow ODE map (5.11) from x_T to x_0: x_0 = m + s (x_T - mu_T) / sqrt(v_T).

        The ODE is affine in x for Gaussian marginals, and in 1-D its flow preserves order, so it is
        the increasing affine map that carries q(x_T) = N(mu_T, v_T) to N(m, s^2).
        """
        x_T = torch.as_tensor(x_T, dtype=torch.float64)
        mu_T, v_T = self.marginal(self.schedule.T)
        return self.mean + self.std * (x_T - mu_T) / math.sqrt(v_T)


def _check_x0_1d(x0) -> torch.Tensor:
    x0 = torch.as_tensor(x0, dtype=torch.float64)
    if x0.dim() != 1:
        raise ValueError(f"x0 must be a 1-D tensor of scalar data points (N,), got shape {tuple(x0.shape)}")
    return x0


def _check_reverse(schedule: NoiseSchedule, reverse) -> None:
    if not isinstance(reverse, AffineReverse):
        raise TypeError(f"reverse must be an AffineReverse, got {type(reverse).__name__}")
    if reverse.T != schedule.T:
        raise ValueError(f"reverse has {reverse.T} steps but the schedule has T = {schedule.T}")


def vlb_terms(schedule: NoiseSchedule, x0, reverse: AffineReverse) -> dict:
    """The terms of the bound (5.4) for 1-D data points x0 and an affine-Gaussian reverse chain, in
    closed form (every expectation over q(x_t | x_0) of a quadratic is exact):

        L_T     = KL(q(x_T | x_0) || p(x_T)),
        L_{t-1} = E_{q(x_t | x_0)} KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)),   t = 2..T,
        L_0     = -E_{q(x_1 | x_0)} log p(x_0 | x_1),

    with the posterior (5.5). Returns a dict of float64 tensors: ``"L_T"`` (N,), ``"L_mid"``
    (N, T - 1) whose column j is L_{j+1} (the term of step t = j + 2), ``"L_0"`` (N,) and ``"total"``
    (N,) = L_T + sum L_{t-1} + L_0, so that log p(x_0) >= -total.
    """
    x0 = _check_x0_1d(x0)
    _check_reverse(schedule, reverse)
    abar = schedule.alpha_bars
    L_T = gaussian_kl(abar[-1].sqrt() * x0, 1 - abar[-1], reverse.prior_mean, reverse.prior_var)
    # t = 2..T: posterior mean A x0 + B x_t, model mean a x_t + b, x_t ~ N(sqrt(abar_t) x0, 1 - abar_t)
    coef0, coeft, post_var = (c[1:] for c in schedule.posterior_coefficients())
    a, b, var = reverse.a[1:], reverse.b[1:], reverse.var[1:]
    x = x0[:, None]
    mean_diff = (coef0 + (coeft - a) * abar[1:].sqrt()) * x - b
    sq_diff = mean_diff**2 + (coeft - a) ** 2 * (1 - abar[1:])
    L_mid = 0.5 * (torch.log(var / post_var) + (post_var + sq_diff) / var - 1.0)
    # t = 1: x_1 ~ N(sqrt(abar_1) x0, 1 - abar_1)
    sq0 = (x0 - reverse.a[0] * abar[0].sqrt() * x0 - reverse.b[0]) ** 2 + reverse.a[0] ** 2 * (1 - abar[0])
    L_0 = 0.5 * torch.log(2 * math.pi * reverse.var[0]) + sq0 / (2 * reverse.var[0])
    return {"L_T": L_T, "L_mid": L_mid, "L_0": L_0, "total": L_T + L_mid.sum(1) + L_0}


def vlb_monte_carlo(schedule: NoiseSchedule, x0, reverse: AffineReverse, n_paths: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Monte-Carlo samples of the integrand of the bound before Jensen's inequality is split into
    terms: log p(x_{0:T}) - log q(x_{1:T} | x_0) along paths x_{1:T} ~ q(x_{1:T} | x_0) of (5.1).

    Their mean estimates the ELBO -L of (5.4). Returns a float64 tensor (N, n_paths).
    """
    x0 = _check_x0_1d(x0)
    _check_reverse(schedule, reverse)
    n_paths = _check_steps(n_paths, "n_paths")
    x_prev = x0[:, None].expand(-1, n_paths)
    total = torch.zeros(len(x0), n_paths, dtype=torch.float64)
    for i in range(schedule.T):  # step t = i + 1
        noise = torch.randn(x_prev.shape, generator=generator, dtype=torch.float64)
        x_t = schedule.alphas[i].sqrt() * x_prev + schedule.betas[i].sqrt() * noise
        total -= _normal_log_prob(x_t, schedule.alphas[i].sqrt() * x_prev, schedule.betas[i])
        total += _normal_log_prob(x_prev, reverse.a[i] * x_t + reverse.b[i], reverse.var[i])
        x_prev = x_t
    prior = _normal_log_prob(x_prev, torch.tensor(reverse.prior_mean, dtype=torch.float64),
                             torch.tensor(reverse.prior_var, dtype=torch.float64))
    return total + prior
