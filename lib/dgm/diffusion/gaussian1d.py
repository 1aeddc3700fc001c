"""The exact checks of lecture 5 on 1-D Gaussian data, x_0 ~ N(m, s^2).

Every object of the lecture is then Gaussian and known in closed form: the marginals q(x_t), the
true reverse conditionals q(x_{t-1} | x_t) (an :class:`AffineReverse`), the exact noise prediction
E[eps | x_t] and the probability-flow map x_T -> x_0 of (5.11). :func:`vlb_terms` computes every
term of the variational bound (5.4),

    L = L_T + sum_{t>1} L_{t-1} + L_0 >= -log p_theta(x_0),

exactly (with :func:`dgm.distributions.normal_kl`), and :func:`vlb_monte_carlo` samples its
integrand along forward paths. The lecture checks the bound (5.4) and the DDIM / probability-flow
link (5.9), (5.11) on them. Times here are the lecture's t = 0, ..., T (0 = the data), not the
0-based step indices of :class:`~dgm.diffusion.NoiseSchedule`.
"""

from __future__ import annotations

import math
from numbers import Integral

import torch

from dgm._checks import nonempty_batch, positive_int
from dgm.distributions import normal_kl, normal_log_prob
from dgm.diffusion.schedule import NoiseSchedule

__all__ = ["AffineReverse", "GaussianData1D", "vlb_monte_carlo", "vlb_terms"]


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
        return normal_log_prob(x0, torch.tensor(mean, dtype=torch.float64), torch.tensor(var, dtype=torch.float64))

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
        return normal_log_prob(x0, torch.tensor(self.mean), torch.tensor(self.std**2, dtype=torch.float64))

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
        x = nonempty_batch(x, "x")
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
    L_T = normal_kl(abar[-1].sqrt() * x0, 1 - abar[-1], reverse.prior_mean, reverse.prior_var)
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
    n_paths = positive_int(n_paths, "n_paths")
    x_prev = x0[:, None].expand(-1, n_paths)
    total = torch.zeros(len(x0), n_paths, dtype=torch.float64)
    for i in range(schedule.T):  # step t = i + 1
        noise = torch.randn(x_prev.shape, generator=generator, dtype=torch.float64)
        x_t = schedule.alphas[i].sqrt() * x_prev + schedule.betas[i].sqrt() * noise
        total -= normal_log_prob(x_t, schedule.alphas[i].sqrt() * x_prev, schedule.betas[i])
        total += normal_log_prob(x_prev, reverse.a[i] * x_t + reverse.b[i], reverse.var[i])
        x_prev = x_t
    prior = normal_log_prob(x_prev, torch.tensor(reverse.prior_mean, dtype=torch.float64),
                             torch.tensor(reverse.prior_var, dtype=torch.float64))
    return total + prior
