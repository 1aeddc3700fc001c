"""The fixed forward (noising) process of lecture 5: noise schedules and the Gaussian closed forms.

* (5.1)  forward step      q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I)
* (5.2)  closed form       q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I),
                           x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps
* (5.3)  schedules         linear beta_t; cosine alpha_bar_t; SNR_t = alpha_bar_t / (1 - alpha_bar_t)
* (5.5)  posterior         q(x_{t-1} | x_t, x_0) = N(mu_tilde_t, beta_tilde_t I)

Arrays are indexed by the 0-based step t = 0, ..., T - 1 (index t holds the maths' step t + 1; see
:mod:`dgm.diffusion`).
"""

from __future__ import annotations

import math
from numbers import Integral

import torch

from dgm._checks import nonempty_batch, same_shape

__all__ = ["SCHEDULE_KINDS", "NoiseSchedule"]

SCHEDULE_KINDS = ("linear", "cosine")


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
        x_prev = nonempty_batch(x_prev, "x_prev")
        t = self.check_t(t, len(x_prev))
        noise = self._noise(x_prev, "x_prev", noise, generator)
        return self._coef(self.alphas.sqrt(), t, x_prev) * x_prev + self._coef(self.betas.sqrt(), t, x_prev) * noise

    def q_mean_variance(self, x0, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean sqrt(alpha_bar_t) x_0 and variance (1 - alpha_bar_t) of q(x_t | x_0), Eq. (5.2).

        The variance is returned broadcast to the shape of x0 (it is isotropic).
        """
        x0 = nonempty_batch(x0, "x0")
        t = self.check_t(t, len(x0))
        mean = self._coef(self.alpha_bars.sqrt(), t, x0) * x0
        var = self._coef(1.0 - self.alpha_bars, t, x0).expand_as(x0)
        return mean, var

    def _noise(self, x, x_name, noise, generator):
        if noise is None:
            return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        same_shape(x, noise, x_name, "noise")
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
        x0 = nonempty_batch(x0, "x0")
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
        x0 = nonempty_batch(x0, "x0")
        same_shape(x0, xt, "x0", "xt")
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
        xt = nonempty_batch(xt, "xt")
        same_shape(xt, eps, "xt", "eps")
        t = self.check_t(t, len(xt))
        return (xt - self._coef((1.0 - self.alpha_bars).sqrt(), t, xt) * eps) / self._coef(self.alpha_bars.sqrt(), t, xt)
