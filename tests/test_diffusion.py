"""Tests for dgm.diffusion against independent references: schedules recomputed in NumPy from
their definitions, Monte Carlo simulation of the step-by-step forward chain, Gaussian conditioning
written out from the joint covariance of (x_{t-1}, x_t), and samplers driven by the *exact*
noise predictor / velocity field of Gaussian data (known in closed form), whose output
distribution is then known too."""

import math

import numpy as np
import pytest
import torch

from dgm.diffusion import (
    AffineReverse,
    EpsLoss,
    FMLoss,
    GaussianData1D,
    Guided,
    NoiseSchedule,
    SinusoidalEmbedding,
    TimeMLP,
    UNet,
    cfg_eps,
    cosine_schedule,
    ddim_step,
    ddim_timesteps,
    drop_labels,
    eps_loss,
    fm_interpolate,
    fm_loss,
    fm_target,
    p_mean_variance,
    p_sample_step,
    sample_ddim,
    sample_ddpm,
    sample_flow_euler,
    vlb_monte_carlo,
    vlb_terms,
)
from dgm.distributions import normal_kl

pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- schedules
def test_linear_schedule_matches_numpy():
    s = NoiseSchedule(1000, "linear", beta_start=1e-4, beta_end=0.02)
    betas = np.linspace(1e-4, 0.02, 1000)
    np.testing.assert_allclose(s.betas.numpy(), betas, rtol=1e-12)
    np.testing.assert_allclose(s.alphas.numpy(), 1 - betas, rtol=1e-12)
    np.testing.assert_allclose(s.alpha_bars.numpy(), np.cumprod(1 - betas), rtol=1e-10)
    np.testing.assert_allclose(s.alpha_bars_prev.numpy(), np.concatenate([[1.0], np.cumprod(1 - betas)[:-1]]))
    # x_T is (almost) pure noise: alpha_bar_T = exp(sum log(1 - beta)) ~ exp(-10.05)
    assert s.alpha_bars[-1].item() == pytest.approx(math.exp(np.log1p(-betas).sum()), rel=1e-9)
    assert s.alpha_bars[-1] < 1e-4
    np.testing.assert_allclose(s.snr().numpy(), np.cumprod(1 - betas) / (1 - np.cumprod(1 - betas)), rtol=1e-9)


def test_cosine_schedule_matches_its_definition():
    T, off = 100, 0.008
    s = NoiseSchedule(T, "cosine")
    f = lambda u: np.cos((u + off) / (1 + off) * np.pi / 2) ** 2  # noqa: E731
    u = np.arange(1, T + 1) / T
    ref = f(u) / f(0.0)
    unclipped = np.concatenate([[1.0], ref])[1:] / np.concatenate([[1.0], ref])[:-1] > 1 - 0.999
    np.testing.assert_allclose(s.alpha_bars.numpy()[unclipped], ref[unclipped], rtol=1e-9)
    assert (s.betas <= 0.999).all() and (s.betas > 0).all()
    assert torch.all(s.alpha_bars[1:] < s.alpha_bars[:-1])  # strictly decreasing
    assert s.alpha_bars[-1] < 1e-6


def test_schedule_posterior_variance_formula():
    s = NoiseSchedule(50, "linear", beta_start=1e-3, beta_end=0.2)
    b = s.betas.numpy()
    ab = np.cumprod(1 - b)
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    np.testing.assert_allclose(s.posterior_variance.numpy(), (1 - ab_prev) / (1 - ab) * b, rtol=1e-10)
    assert s.posterior_variance[0] == 0  # q(x_0 | x_1, x_0) is a point mass


def test_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        NoiseSchedule(10, "quadratic")
    with pytest.raises(ValueError, match="T"):
        NoiseSchedule(0)
    with pytest.raises(ValueError, match="beta_end"):
        NoiseSchedule(10, beta_start=0.1, beta_end=0.01)
    with pytest.raises(ValueError, match="beta_start"):
        NoiseSchedule(10, beta_start=0.0)


# ----------------------------------------------------------------------------- forward process
def test_closed_form_matches_the_simulated_chain():
    """Eq. (5.2) against Eq. (5.1) applied step by step to 40 000 copies of a scalar x_0."""
    s = NoiseSchedule(300, "linear", beta_start=1e-4 * 1000 / 300, beta_end=0.02 * 1000 / 300)
    n, x0_val = 40_000, 1.5
    x0 = torch.full((n, 1), x0_val, dtype=torch.float64)
    x = x0.clone()
    g = _gen(0)
    checkpoints = {0, 10, 60, 150, 299}
    ab = np.cumprod(1 - s.betas.numpy())
    for t in range(s.T):
        x = s.q_step(x, t, generator=g)
        if t in checkpoints:
            mean_ref, var_ref = math.sqrt(ab[t]) * x0_val, 1 - ab[t]
            se_mean = math.sqrt(var_ref / n)
            assert abs(x.mean().item() - mean_ref) < 5 * se_mean, t
            assert abs(x.var().item() / var_ref - 1) < 5 * math.sqrt(2 / n), t
            m, v = s.q_mean_variance(x0[:3], t)
            np.testing.assert_allclose(m.numpy(), mean_ref, rtol=1e-10)
            np.testing.assert_allclose(v.numpy(), var_ref, rtol=1e-10)


def test_q_sample_with_given_noise_is_the_closed_form():
    s = NoiseSchedule(1000)
    g = _gen(1)
    x0 = torch.randn(6, 1, 4, 4, generator=g)
    noise = torch.randn(6, 1, 4, 4, generator=g)
    t = torch.tensor([0, 1, 10, 500, 998, 999])
    ab = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))[t.numpy()]
    ref = (np.sqrt(ab)[:, None, None, None] * x0.numpy() + np.sqrt(1 - ab)[:, None, None, None] * noise.numpy())
    out = s.q_sample(x0, t, noise)
    assert out.dtype == torch.float32 and out.shape == x0.shape
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)
    # an int t applies to every example; a generator makes it reproducible
    a = s.q_sample(x0, 3, generator=_gen(5))
    b = s.q_sample(x0, torch.full((6,), 3), generator=_gen(5))
    assert torch.equal(a, b)


def test_q_posterior_is_gaussian_conditioning():
    """Eq. (5.5) against conditioning the joint Gaussian of (x_{t-1}, x_t) given x_0."""
    s = NoiseSchedule(200, "cosine")
    ab = s.alpha_bars.numpy()
    alphas = s.alphas.numpy()
    g = _gen(2)
    for t in (1, 5, 80, 199):
        x0 = torch.randn(5, 3, generator=g, dtype=torch.float64)
        xt = torch.randn(5, 3, generator=g, dtype=torch.float64)
        m_prev, v_prev = np.sqrt(ab[t - 1]) * x0.numpy(), 1 - ab[t - 1]
        m_t, v_t = np.sqrt(ab[t]) * x0.numpy(), 1 - ab[t]
        cov = np.sqrt(alphas[t]) * v_prev  # Cov(x_{t-1}, x_t) = sqrt(alpha_t) Var(x_{t-1})
        mean_ref = m_prev + cov / v_t * (xt.numpy() - m_t)
        var_ref = v_prev - cov**2 / v_t
        mean, var = s.q_posterior(x0, xt, t)
        np.testing.assert_allclose(mean.numpy(), mean_ref, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(var.numpy(), np.full((5, 3), var_ref), rtol=1e-9)
    mean, var = s.q_posterior(x0, xt, 0)  # first step: a point mass at x_0
    torch.testing.assert_close(mean, x0)
    assert (var == 0).all()


def test_q_posterior_matches_monte_carlo_regression():
    """Simulate (x_{t-1}, x_t) given x_0 and regress x_{t-1} on x_t: slope, intercept and the
    residual variance are the posterior's mean coefficients and variance."""
    s = NoiseSchedule(100, "linear", beta_start=1e-3, beta_end=0.2)
    t, x0_val, n = 40, 0.7, 200_000
    g = _gen(3)
    x0 = torch.full((n, 1), x0_val, dtype=torch.float64)
    x_prev = s.q_sample(x0, t - 1, generator=g)
    x_t = s.q_step(x_prev, t, generator=g)
    X = torch.cat([x_t, torch.ones_like(x_t)], 1)
    coef = torch.linalg.lstsq(X, x_prev).solution[:, 0]
    resid_var = (x_prev - X @ coef[:, None]).var().item()
    probe = torch.tensor([[-1.0], [0.0], [2.0]], dtype=torch.float64)
    mean, var = s.q_posterior(torch.full_like(probe, x0_val), probe, t)
    mc_mean = coef[0] * probe + coef[1]
    torch.testing.assert_close(mean, mc_mean, atol=0.01, rtol=0)
    assert var[0, 0].item() == pytest.approx(resid_var, rel=0.02)


def test_predict_x0_inverts_q_sample():
    s = NoiseSchedule(100)
    g = _gen(4)
    x0 = torch.randn(8, 2, generator=g, dtype=torch.float64)
    noise = torch.randn(8, 2, generator=g, dtype=torch.float64)
    t = torch.arange(0, 80, 10)
    torch.testing.assert_close(s.predict_x0(s.q_sample(x0, t, noise), t, noise), x0)


def test_forward_process_errors_name_the_argument():
    s = NoiseSchedule(10)
    x0 = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"t must .*\[0, 10\)"):
        s.q_sample(x0, 10)
    with pytest.raises(ValueError, match=r"t must"):
        s.q_sample(x0, torch.tensor([0, 1, -1, 2]))
    with pytest.raises(ValueError, match=r"t must have shape \(4,\)"):
        s.q_sample(x0, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="t must hold integer"):
        s.q_sample(x0, torch.tensor([0.5, 1, 1, 1]))
    with pytest.raises(ValueError, match="noise must have the shape of x0"):
        s.q_sample(x0, 1, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="xt must have the shape of x0"):
        s.q_posterior(x0, torch.zeros(4, 1), 1)
    with pytest.raises(TypeError, match="x0 must be a floating-point"):
        s.q_sample(torch.zeros(4, 2, dtype=torch.long), 1)


# ----------------------------------------------------------------------------- exact models of Gaussian data
MU, SD = 1.5, 0.5  # data distribution N(MU, SD^2) in every coordinate


class GaussianEps(torch.nn.Module):
    """The optimal eps-predictor for data N(MU, SD^2): E[eps | x_t] by Gaussian conditioning,
    eps*(x, t) = sqrt(1 - a) (x - sqrt(a) MU) / (a SD^2 + 1 - a), a = alpha_bar_t."""

    def __init__(self, schedule):
        super().__init__()
        self.ab = torch.tensor(np.cumprod(1 - schedule.betas.numpy()))
        self.calls = 0

    def forward(self, x, t):
        self.calls += 1
        a = self.ab[t].to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        return (1 - a).sqrt() * (x - a.sqrt() * MU) / (a * SD**2 + 1 - a)


def test_eps_loss_equals_the_closed_form_minimum_for_the_optimal_model():
    """For the optimal predictor, E||eps - eps*||^2 per dimension is a SD^2 / (a SD^2 + 1 - a)."""
    s = NoiseSchedule(100)
    model = GaussianEps(s)
    g = _gen(6)
    n = 200_000
    for t in (5, 50, 99):
        x0 = MU + SD * torch.randn(n, 1, generator=g, dtype=torch.float64)
        loss = eps_loss(model, x0, s, t=t, generator=g).item()
        a = np.cumprod(1 - s.betas.numpy())[t]
        ref = a * SD**2 / (a * SD**2 + 1 - a)
        assert loss == pytest.approx(ref, rel=0.02), t


def test_eps_loss_with_fixed_t_and_noise():
    s = NoiseSchedule(30)
    g = _gen(7)
    x0 = torch.randn(5, 2, generator=g)
    noise = torch.randn(5, 2, generator=g)
    t = torch.tensor([0, 3, 7, 20, 29])
    seen = {}

    def model(x, tt):
        seen["x"], seen["t"] = x, tt
        return torch.zeros_like(x)

    loss = eps_loss(model, x0, s, t=t, noise=noise)
    assert loss.item() == pytest.approx(noise.pow(2).mean().item(), rel=1e-6)
    ab = np.cumprod(1 - s.betas.numpy())[t.numpy()][:, None]
    np.testing.assert_allclose(seen["x"].numpy(), np.sqrt(ab) * x0.numpy() + np.sqrt(1 - ab) * noise.numpy(),
                               rtol=1e-5, atol=1e-6)
    assert torch.equal(seen["t"], t)


def test_p_mean_is_eq_5_6_and_ancestral_step_adds_the_right_noise():
    s = NoiseSchedule(60)
    model = GaussianEps(s)
    g = _gen(8)
    xt = torch.randn(4, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([59, 30, 1, 0])
    mean, var, _ = p_mean_variance(model, xt, t, s)
    b = s.betas.numpy()[t.numpy()][:, None]
    a = 1 - b
    ab = np.cumprod(1 - s.betas.numpy())[t.numpy()][:, None]
    eps = model(xt, t).numpy()
    np.testing.assert_allclose(mean.numpy(), (xt.numpy() - b / np.sqrt(1 - ab) * eps) / np.sqrt(a), rtol=1e-9)
    np.testing.assert_allclose(var.numpy(), np.broadcast_to(b, (4, 3)))
    _, var_post, _ = p_mean_variance(model, xt, t, s, var="posterior")
    np.testing.assert_allclose(var_post.numpy(), np.broadcast_to(s.posterior_variance.numpy()[t.numpy()][:, None], (4, 3)))
    z = torch.randn(4, 3, generator=g, dtype=torch.float64)
    x_prev = p_sample_step(model, xt, t, s, noise=z)
    expected = mean.numpy() + np.sqrt(b) * z.numpy()
    expected[3] = mean[3].numpy()  # no noise on the last step (index 0)
    np.testing.assert_allclose(x_prev.numpy(), expected, rtol=1e-9)


def test_ddpm_with_the_exact_model_samples_the_data_distribution():
    s = NoiseSchedule(200, "linear", beta_start=5e-4, beta_end=0.1)
    n = 20_000
    x = sample_ddpm(GaussianEps(s), (n, 2), s, generator=_gen(9))
    assert x.shape == (n, 2)
    assert abs(x.mean().item() - MU) < 0.02
    assert x.std().item() == pytest.approx(SD, rel=0.03)


def test_ddpm_trajectory_runs_from_noise_to_data():
    s = NoiseSchedule(20, "linear", beta_start=5e-3, beta_end=0.5)
    x, traj = sample_ddpm(GaussianEps(s), (3000, 1), s, generator=_gen(10), trajectory=True)
    assert traj.shape == (21, 3000, 1)
    torch.testing.assert_close(traj[0], x)
    assert abs(traj[-1].std().item() - 1) < 0.05 and abs(traj[-1].mean().item()) < 0.06  # x_T ~ N(0, 1)


def test_ddim_timesteps():
    taus = ddim_timesteps(1000, 50)
    assert len(taus) == 50 and taus[0] == 999 and taus[-1] == 0
    assert torch.all(taus[1:] < taus[:-1])
    assert torch.equal(ddim_timesteps(10, 10), torch.arange(9, -1, -1))
    with pytest.raises(ValueError, match="steps"):
        ddim_timesteps(10, 11)
    with pytest.raises(ValueError, match="steps"):
        ddim_timesteps(10, 0)


def test_ddim_with_the_exact_model_samples_the_data_distribution():
    """Deterministic DDIM integrates an ODE: with all T steps it reproduces N(MU, SD^2); with fewer
    steps the discretisation error shrinks the spread, less and less as the steps grow."""
    s = NoiseSchedule(1000)
    stds = {}
    for steps in (10, 50, 1000):
        model = GaussianEps(s)
        x = sample_ddim(model, (20_000, 1), s, steps, generator=_gen(11))
        assert model.calls == steps
        assert abs(x.mean().item() - MU) < 0.02
        stds[steps] = x.std().item()
    assert stds[1000] == pytest.approx(SD, rel=0.02)
    assert stds[10] < stds[50] < stds[1000]
    assert stds[50] == pytest.approx(SD, rel=0.1)


def test_ddim_eta0_is_deterministic_and_eta1_matches_ddpm_steps():
    s = NoiseSchedule(50, "linear", beta_start=2e-3, beta_end=0.4)
    model = GaussianEps(s)
    noise = torch.randn(7, 2, generator=_gen(12))
    a = sample_ddim(model, (7, 2), s, 10, noise=noise, generator=_gen(1))
    b = sample_ddim(model, (7, 2), s, 10, noise=noise, generator=_gen(2))
    torch.testing.assert_close(a, b)
    # eta = 1 on consecutive steps: x_{t-1} = posterior mean at x0_hat + sqrt(beta_tilde_t) z
    xt = torch.randn(7, 2, generator=_gen(13), dtype=torch.float64)
    z = torch.randn(7, 2, generator=_gen(14), dtype=torch.float64)
    out = ddim_step(model, xt, 20, 19, s, eta=1.0, noise=z)
    x0_hat = s.predict_x0(xt, 20, model(xt, torch.full((7,), 20)))
    mean, var = s.q_posterior(x0_hat, xt, 20)
    torch.testing.assert_close(out, mean + var.sqrt() * z)
    with pytest.raises(ValueError, match="t_prev"):
        ddim_step(model, xt, 20, 25, s)
    with pytest.raises(ValueError, match="eta"):
        ddim_step(model, xt, 20, 19, s, eta=-1.0)


def test_sampler_argument_errors():
    s = NoiseSchedule(10)
    model = GaussianEps(s)
    with pytest.raises(ValueError, match="shape"):
        sample_ddpm(model, (5,), s)
    with pytest.raises(ValueError, match="noise"):
        sample_ddim(model, (5, 2), s, 3, noise=torch.zeros(5, 3))
    with pytest.raises(ValueError, match="var"):
        sample_ddpm(model, (5, 2), s, var="large")
    with pytest.raises(ValueError, match="model must return"):
        sample_ddim(lambda x, t: x[:, :1], (5, 2), s, 3)


# ----------------------------------------------------------------------------- classifier-free guidance
class LinearCond(torch.nn.Module):
    """A fake conditional model: eps = x + (y + 1) * 0.1, with the null label 3 giving x."""

    null_label = 3

    def __init__(self):
        super().__init__()
        self.batches = []

    def forward(self, x, t, y):
        self.batches.append(len(x))
        shift = torch.where(y == self.null_label, torch.zeros_like(y), y + 1).to(x.dtype) * 0.1
        return x + shift.reshape(-1, *([1] * (x.dim() - 1)))


def test_cfg_eps_is_eq_5_10():
    model = LinearCond()
    x = torch.randn(4, 2, generator=_gen(15))
    y = torch.tensor([0, 1, 2, 0])
    for w in (0.0, 1.0, 2.5, -0.5):
        out = cfg_eps(model, x, torch.zeros(4, dtype=torch.long), y, w)
        shift = (y + 1).float()[:, None] * 0.1
        torch.testing.assert_close(out, x + w * shift)
    assert model.batches[-1] == 8  # both branches in one batch
    g = Guided(model, y, 2.0)
    torch.testing.assert_close(g(x, torch.zeros(4, dtype=torch.long)), x + 2 * (y + 1).float()[:, None] * 0.1)
    with pytest.raises(ValueError, match="y must hold class labels"):
        cfg_eps(model, x, 0, torch.tensor([0, 1, 3, 0]), 2.0)
    with pytest.raises(ValueError, match="conditional"):
        Guided(TimeMLP(), 0, 1.0)


def test_drop_labels_rate():
    y = torch.zeros(100_000, dtype=torch.long)
    out = drop_labels(y, 0.2, 10, generator=_gen(16))
    frac = (out == 10).float().mean().item()
    assert abs(frac - 0.2) < 5 * math.sqrt(0.2 * 0.8 / len(y))
    assert set(out.unique().tolist()) == {0, 10}
    with pytest.raises(ValueError, match="p_uncond"):
        drop_labels(y, 1.5, 10)


# ----------------------------------------------------------------------------- flow matching
def test_fm_target_is_the_time_derivative_of_the_path():
    g = _gen(17)
    x0 = torch.randn(3, 2, generator=g, dtype=torch.float64)
    noise = torch.randn(3, 2, generator=g, dtype=torch.float64)
    for s0 in (0.1, 0.5, 0.9):
        s = torch.full((3,), s0, dtype=torch.float64)
        jac = torch.autograd.functional.jacobian(lambda ss: fm_interpolate(x0, noise, ss), s)  # (3, 2, 3)
        torch.testing.assert_close(jac.diagonal(dim1=0, dim2=2).T, fm_target(x0, noise))
    torch.testing.assert_close(fm_interpolate(x0, noise, 0.0), x0)
    torch.testing.assert_close(fm_interpolate(x0, noise, 1.0), noise)
    with pytest.raises(ValueError, match="s must lie in"):
        fm_interpolate(x0, noise, 1.5)
    with pytest.raises(ValueError, match="noise must have the shape of x0"):
        fm_target(x0, noise[:, :1])


class GaussianVelocity(torch.nn.Module):
    """The marginal velocity E[eps - x_0 | x_s = x] of the straight path from N(MU, SD^2) data."""

    def forward(self, x, s):
        s = s.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)
        var = (1 - s) ** 2 * SD**2 + s**2
        cov = s - (1 - s) * SD**2
        return -MU + cov / var * (x - (1 - s) * MU)


def test_euler_sampler_with_the_exact_velocity_samples_the_data():
    x, traj = sample_flow_euler(GaussianVelocity(), (20_000, 1), 100, generator=_gen(18), trajectory=True)
    assert traj.shape == (101, 20_000, 1)
    assert abs(x.mean().item() - MU) < 0.02
    assert x.std().item() == pytest.approx(SD, rel=0.03)


def test_fm_loss_of_the_exact_velocity_is_the_conditional_variance():
    """At fixed s the minimum of E||v - (eps - x_0)||^2 is Var(eps - x_0 | x_s) = Var(eps - x_0) - Cov^2 / Var(x_s)."""
    g = _gen(19)
    n, s = 200_000, 0.3
    x0 = MU + SD * torch.randn(n, 1, generator=g, dtype=torch.float64)
    loss = fm_loss(GaussianVelocity(), x0, s=s, generator=g).item()
    var_v = 1 + SD**2
    cov = s - (1 - s) * SD**2
    var_x = (1 - s) ** 2 * SD**2 + s**2
    assert loss == pytest.approx(var_v - cov**2 / var_x, rel=0.02)


# ----------------------------------------------------------------------------- networks
def test_sinusoidal_embedding_formula():
    emb = SinusoidalEmbedding(8, time_scale=2.0)
    t = torch.tensor([0.0, 1.0, 7.5])
    freqs = np.exp(-np.log(10000.0) * np.arange(4) / 4)
    arg = 2.0 * t.numpy()[:, None] * freqs[None]
    np.testing.assert_allclose(emb(t).numpy(), np.concatenate([np.sin(arg), np.cos(arg)], 1), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="dim"):
        SinusoidalEmbedding(7)


@pytest.mark.parametrize("model,x", [
    (TimeMLP(2, 32, 2, num_classes=4), torch.randn(5, 2)),
    (UNet(1, (8, 16), emb_dim=16, num_classes=4), torch.randn(5, 1, 14, 14)),
    (UNet(1, (8, 16, 16), emb_dim=16, num_classes=4), torch.randn(5, 1, 12, 10)),
])
def test_networks_shapes_and_conditioning(model, x):
    t = torch.tensor([0, 3, 10, 50, 99])
    y = torch.tensor([0, 1, 2, 3, 4])  # 4 = the null label
    out = model(x, t, y)
    assert out.shape == x.shape
    assert torch.count_nonzero(out) == 0  # zero-initialised output layer
    torch.nn.init.normal_(model.out.weight)
    with torch.no_grad():
        a = model(x[:1].repeat(2, *([1] * (x.dim() - 1))), torch.tensor([0, 60]), torch.tensor([1, 1]))
        b = model(x[:1].repeat(2, *([1] * (x.dim() - 1))), torch.tensor([5, 5]), torch.tensor([1, 2]))
    assert not torch.allclose(a[0], a[1])  # depends on t
    assert not torch.allclose(b[0], b[1])  # depends on y
    assert model.null_label == 4
    with pytest.raises(ValueError, match="y must"):
        model(x, t, torch.tensor([0, 1, 2, 3, 5]))
    with pytest.raises(ValueError, match="x must have shape"):
        model(x[:, :1] if x.dim() == 2 else x[:, :, :5, :5].repeat(1, 2, 1, 1), t, y)


def test_unconditional_model_rejects_labels():
    with pytest.raises(ValueError, match="num_classes"):
        TimeMLP()(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long))


def test_cosine_schedule_sets_the_learning_rate_before_each_step():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = cosine_schedule(torch.optim.SGD([p], lr=0.5), 10, warmup=2)
    seen = []
    for _ in range(12):
        seen.append(opt.param_groups[0]["lr"])
        p.grad = torch.ones(1)
        opt.step()
    expected = [0.5 * min(1.0, (i + 1) / 2) * 0.5 * (1 + math.cos(math.pi * min(i, 10) / 10)) for i in range(12)]
    np.testing.assert_allclose(seen, expected, rtol=1e-12, atol=1e-15)
    assert seen[-1] == 0.0 and seen[0] == pytest.approx(0.25)
    # the steps really used those rates: p = -sum(lr_i) after 12 SGD steps with gradient 1
    assert p.item() == pytest.approx(-sum(expected))
    with pytest.raises(ValueError, match="warmup"):
        cosine_schedule(torch.optim.SGD([p], lr=0.1), 10, warmup=10)
    with pytest.raises(TypeError, match="optimizer"):
        cosine_schedule(object(), 10)


def test_training_an_mlp_learns_a_gaussian():
    """End to end: eps-loss training, then DDPM and flow-matching samples have the data's moments."""
    from dgm.train import fit

    s = NoiseSchedule(100, "linear", beta_start=1e-3, beta_end=0.2)
    data = torch.tensor([2.0, -1.0]) + 0.3 * torch.randn(4000, 2, generator=_gen(20))
    torch.manual_seed(0)
    eps_model = TimeMLP(2, 64, 2)
    opt = cosine_schedule(torch.optim.Adam(eps_model.parameters(), lr=3e-3), 400, warmup=20)
    fit(eps_model, EpsLoss(s), data, steps=400, batch_size=256, optimizer=opt, seed=0, progress=False, device="cpu")
    x = sample_ddpm(eps_model, (2000, 2), s, generator=_gen(21))
    torch.testing.assert_close(x.mean(0), torch.tensor([2.0, -1.0]), atol=0.1, rtol=0)
    assert (x.std(0) - 0.3).abs().max() < 0.1
    v_model = TimeMLP(2, 64, 2, time_scale=100.0)
    opt = cosine_schedule(torch.optim.Adam(v_model.parameters(), lr=3e-3), 400, warmup=20)
    fit(v_model, FMLoss(), data, steps=400, batch_size=256, optimizer=opt, seed=0, progress=False, device="cpu")
    x = sample_flow_euler(v_model, (2000, 2), 20, generator=_gen(22))
    torch.testing.assert_close(x.mean(0), torch.tensor([2.0, -1.0]), atol=0.1, rtol=0)
    assert (x.std(0) - 0.3).abs().max() < 0.1


# ----------------------------------------------------------------------------- the bound (5.4) on 1-D Gaussian data
def _toy(T=200):
    s = NoiseSchedule(T, "linear", beta_start=1e-4 * 1000 / T, beta_end=0.02 * 1000 / T)
    return s, GaussianData1D(s, MU, SD)


def test_normal_kl_against_torch_distributions():
    m1, v1 = torch.tensor([0.3, -1.0], dtype=torch.float64), torch.tensor([0.5, 2.0], dtype=torch.float64)
    m2, v2 = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([1.5, 0.1], dtype=torch.float64)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(m1, v1.sqrt()),
                                            torch.distributions.Normal(m2, v2.sqrt()))
    torch.testing.assert_close(normal_kl(m1, v1, m2, v2), ref)


def test_gaussian_data_marginals_against_the_simulated_chain():
    s, toy = _toy(50)
    g = _gen(30)
    x = MU + SD * torch.randn(200_000, 1, generator=g, dtype=torch.float64)
    for i in range(s.T):
        x = s.q_step(x, i, generator=g)
        if i + 1 in (1, 10, 50):
            mean, var = toy.marginal(i + 1)
            assert abs(x.mean().item() - mean) < 5 * math.sqrt(var / len(x))
            assert x.var().item() == pytest.approx(var, rel=0.02)
    assert toy.marginal(0) == pytest.approx((MU, SD**2))
    with pytest.raises(ValueError, match="lecture time"):
        toy.marginal(s.T + 1)


def test_exact_reverse_is_bayes_rule_on_a_grid():
    """q(x_{t-1} | x_t) proportional to q(x_t | x_{t-1}) q(x_{t-1}), by quadrature on a fine grid."""
    s, toy = _toy(50)
    rev = toy.exact_reverse()
    normal = torch.distributions.Normal
    for t in (1, 2, 25, 50):
        mean_prev, var_prev = toy.marginal(t - 1)
        grid = torch.linspace(mean_prev - 12 * var_prev**0.5, mean_prev + 12 * var_prev**0.5, 200_001,
                              dtype=torch.float64)
        for x_t in (-0.7, 0.4, 2.0):
            log_w = (normal(s.alphas[t - 1].sqrt() * grid, s.betas[t - 1].sqrt()).log_prob(torch.tensor(x_t))
                     + normal(mean_prev, var_prev**0.5).log_prob(grid))
            w = torch.softmax(log_w, 0)
            m = (w * grid).sum()
            v = (w * (grid - m) ** 2).sum()
            assert m.item() == pytest.approx((rev.a[t - 1] * x_t + rev.b[t - 1]).item(), abs=1e-7)
            assert v.item() == pytest.approx(rev.var[t - 1].item(), rel=1e-5)
    assert (rev.prior_mean, rev.prior_var) == pytest.approx(toy.marginal(s.T))
    assert rev.marginal_x0() == pytest.approx((MU, SD**2))


def test_exact_eps_is_the_scaled_score():
    """E[eps | x_t] = -sqrt(1 - alpha_bar_t) d/dx log q(x_t), the score by autograd on torch.distributions."""
    s, toy = _toy(50)
    x = torch.linspace(-2, 4, 7, dtype=torch.float64).reshape(-1, 1)
    for i in (0, 20, 49):
        mean, var = toy.marginal(i + 1)
        xr = x.clone().requires_grad_(True)
        torch.distributions.Normal(mean, var**0.5).log_prob(xr).sum().backward()
        ref = -(1 - s.alpha_bars[i]).sqrt() * xr.grad
        torch.testing.assert_close(toy.eps(x, i), ref)
    torch.testing.assert_close(toy.eps(x, 10), GaussianEps(s)(x, torch.full((7,), 10)))


def test_bound_is_tight_for_the_exact_reverse_chain():
    s, toy = _toy(200)
    x0 = torch.tensor([-1.0, 0.2, 1.5, 2.9, 4.0], dtype=torch.float64)
    terms = vlb_terms(s, x0, toy.exact_reverse())
    ref = torch.distributions.Normal(torch.tensor(MU, dtype=torch.float64), SD).log_prob(x0)
    torch.testing.assert_close(-terms["total"], ref, atol=1e-9, rtol=0)
    assert terms["L_mid"].shape == (5, s.T - 1)
    assert bool((terms["L_mid"] >= 0).all()) and bool((terms["L_T"] >= 0).all())
    # the Jensen integrand is constant along every path when q(x_{1:T} | x_0) is the true posterior
    mc = vlb_monte_carlo(s, x0[:2], toy.exact_reverse(), 50, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(mc, ref[:2, None].expand(-1, 50), atol=1e-9, rtol=0)


def test_one_denoising_term_against_torch_distributions_by_monte_carlo():
    """L_{t-1} = E_{q(x_t|x_0)} KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)), the KL by torch.distributions
    at sampled x_t, the posterior by NoiseSchedule.q_posterior."""
    s, toy = _toy(200)
    rev = toy.exact_reverse().with_mean_shift(0.05)
    x0 = torch.tensor([0.7], dtype=torch.float64)
    terms = vlb_terms(s, x0, rev)
    g = torch.Generator().manual_seed(1)
    n = 400_000
    for t in (2, 60, 200):
        x_t = s.q_sample(x0.expand(n).reshape(n, 1), t - 1, generator=g)[:, 0]
        post_mean, post_var = s.q_posterior(x0.expand(n).reshape(n, 1), x_t.reshape(n, 1), t - 1)
        kl = torch.distributions.kl_divergence(
            torch.distributions.Normal(post_mean[:, 0], post_var[:, 0].sqrt()),
            torch.distributions.Normal(rev.a[t - 1] * x_t + rev.b[t - 1], rev.var[t - 1].sqrt()))
        se = kl.std().item() / math.sqrt(n)
        assert abs(kl.mean().item() - terms["L_mid"][0, t - 2].item()) < 5 * se + 1e-12, t


def test_bound_is_strictly_below_the_log_likelihood_of_a_wrong_model_and_matches_monte_carlo():
    s, toy = _toy(200)
    rev = toy.exact_reverse().with_mean_shift(0.002)
    x0 = torch.tensor([0.5, 1.5, 2.5], dtype=torch.float64)
    bound = -vlb_terms(s, x0, rev)["total"]
    mean, var = rev.marginal_x0()
    assert mean != pytest.approx(MU)
    log_p = torch.distributions.Normal(torch.tensor(mean, dtype=torch.float64), var**0.5).log_prob(x0)
    torch.testing.assert_close(rev.log_prob_x0(x0), log_p)
    assert bool((bound < log_p - 1e-3).all())
    mc = vlb_monte_carlo(s, x0, rev, 4000, generator=torch.Generator().manual_seed(2))
    se = mc.std(1) / math.sqrt(mc.shape[1])
    assert bool(((mc.mean(1) - bound).abs() < 4 * se).all())


def test_vlb_input_checks():
    s, toy = _toy(50)
    with pytest.raises(ValueError, match="x0 must be a 1-D"):
        vlb_terms(s, torch.zeros(3, 1), toy.exact_reverse())
    with pytest.raises(ValueError, match="steps"):
        vlb_terms(NoiseSchedule(10), torch.zeros(3), toy.exact_reverse())
    with pytest.raises(TypeError, match="AffineReverse"):
        vlb_terms(s, torch.zeros(3), None)
    with pytest.raises(ValueError, match="positive"):
        AffineReverse(torch.ones(3), torch.zeros(3), torch.zeros(3), 0.0, 1.0)
    with pytest.raises(ValueError, match="std"):
        GaussianData1D(s, 0.0, -1.0)


# ----------------------------------------------------------------------------- probability-flow ODE (5.11)
def test_flow_map_solves_the_probability_flow_ode():
    """The closed-form map against scipy's ODE solver on (5.11) in continuous time, with
    alpha_bar(u) = exp(-int_0^u beta), beta(u) linear (the continuous version of the linear schedule)."""
    from scipy.integrate import solve_ivp

    b0, b1 = 0.1, 20.0

    def beta(u):
        return b0 + u * (b1 - b0)

    def abar(u):
        return math.exp(-(b0 * u + 0.5 * (b1 - b0) * u**2))

    def rhs(u, x):
        mu, v = math.sqrt(abar(u)) * MU, abar(u) * SD**2 + 1 - abar(u)
        return -0.5 * beta(u) * (x - (x - mu) / v)   # x + score, score = -(x - mu) / v

    x_T = np.array([-2.0, -0.3, 0.0, 1.1, 2.5])
    sol = solve_ivp(rhs, (1.0, 0.0), x_T, rtol=1e-11, atol=1e-12)
    a1 = abar(1.0)
    closed = MU + SD * (x_T - math.sqrt(a1) * MU) / math.sqrt(a1 * SD**2 + 1 - a1)
    np.testing.assert_allclose(sol.y[:, -1], closed, atol=1e-7)
    # the library's map is the same formula at alpha_bar_T of the discrete schedule
    s, toy = _toy(200)
    mu_T, v_T = toy.marginal(s.T)
    torch.testing.assert_close(toy.flow_map(torch.tensor(x_T)), MU + SD * (torch.tensor(x_T) - mu_T) / v_T**0.5)


def test_ddim_eta0_with_the_exact_eps_converges_to_the_flow_map():
    s, toy = _toy(1000)
    x_T = torch.randn(2000, 1, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    target = toy.flow_map(x_T)
    errors = [(sample_ddim(toy.eps, x_T.shape, s, k, eta=0.0, noise=x_T) - target).abs().max().item()
              for k in (10, 100, 1000)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.02 * SD      # first order: about 10x smaller for 10x more steps
    assert errors[1] < 0.2 * errors[0] and errors[2] < 0.2 * errors[1]
    # the map pushes q(x_T) to the data distribution exactly
    mu_T, v_T = toy.marginal(s.T)
    assert toy.flow_map(torch.tensor(mu_T)).item() == pytest.approx(MU)
    assert (toy.flow_map(torch.tensor(mu_T + v_T**0.5)) - toy.flow_map(torch.tensor(mu_T))).item() == \
        pytest.approx(SD)
