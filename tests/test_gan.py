"""Tests for dgm.gan against independent references: F.binary_cross_entropy_with_logits, the
closed-form derivatives of the losses, torch.autograd.functional.jacobian (per-example critic
gradients), torch.distributions densities (analytic D*), scipy (KL, JS, 1-D Wasserstein), brute-force
loops over samples, and short training runs whose outcome is known in advance."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy, wasserstein_distance
from torch.distributions import MixtureSameFamily, Categorical, Normal

import dgm.data
from dgm.gan import (
    GENERATOR_LOSSES,
    LOSSES,
    DCGANDiscriminator,
    DCGANGenerator,
    GANTrainer,
    MLPDiscriminator,
    MLPGenerator,
    clip_weights,
    critic_loss,
    decision_surface,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    jsd,
    kl,
    mode_coverage,
    optimal_discriminator,
    total_variation,
    train_gan,
    w1,
)
from dgm.train import NonFiniteLossError

pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- losses from logits
def test_discriminator_loss_is_binary_cross_entropy_with_logits():
    g = _gen(0)
    real, fake = 3 * torch.randn(50, generator=g, dtype=torch.float64), 3 * torch.randn(70, generator=g, dtype=torch.float64)
    ref = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
           + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    torch.testing.assert_close(discriminator_loss(real, fake), ref, rtol=1e-12, atol=1e-12)
    # and -V(D, G) of Eq. (3.1) written with probabilities, where that is still accurate
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    minus_v = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())
    torch.testing.assert_close(discriminator_loss(real, fake), minus_v, rtol=1e-10, atol=1e-10)


def test_generator_losses_match_bce_with_logits_and_their_definitions():
    g = _gen(1)
    fake = 2 * torch.randn(40, generator=g, dtype=torch.float64)
    d = torch.sigmoid(fake)
    ns = generator_loss(fake, "nonsaturating")
    torch.testing.assert_close(ns, F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake)))
    torch.testing.assert_close(ns, -torch.log(d).mean())
    sat = generator_loss(fake, "saturating")
    torch.testing.assert_close(sat, -F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    torch.testing.assert_close(sat, torch.log(1 - d).mean())
    torch.testing.assert_close(generator_loss(fake, "wasserstein"), -fake.mean())
    assert set(GENERATOR_LOSSES) == {"saturating", "nonsaturating", "wasserstein"}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_losses_are_finite_and_accurate_for_extreme_logits(dtype):
    logits = torch.tensor([-1e4, -200.0, -50.0, 0.0, 50.0, 200.0, 1e4], dtype=dtype)
    ones, zeros = torch.ones_like(logits), torch.zeros_like(logits)
    for kind in GENERATOR_LOSSES:
        assert torch.isfinite(generator_loss(logits, kind))
    assert torch.isfinite(discriminator_loss(logits, logits))
    # per-example references: softplus(-l) = -log sigmoid(l) and softplus(l) = -log(1 - sigmoid(l))
    for l in logits:
        ref_ns = F.binary_cross_entropy_with_logits(l[None], ones[:1])
        torch.testing.assert_close(generator_loss(l[None], "nonsaturating"), ref_ns)
        torch.testing.assert_close(generator_loss(l[None], "saturating"),
                                   -F.binary_cross_entropy_with_logits(l[None], zeros[:1]))
    # the naive formula would give inf/nan here
    assert not torch.isfinite(-torch.log(torch.sigmoid(torch.tensor(-1e4, dtype=dtype))))


def test_generator_loss_gradients_with_respect_to_logits():
    """d/dl E[log(1 - sigmoid(l))] = -sigmoid(l) / N and d/dl E[-log sigmoid(l)] = -(1 - sigmoid(l)) / N."""
    logits = torch.linspace(-12, 12, 25, dtype=torch.float64).requires_grad_(True)
    n = logits.numel()
    (g_sat,) = torch.autograd.grad(generator_loss(logits, "saturating"), logits)
    (g_ns,) = torch.autograd.grad(generator_loss(logits, "nonsaturating"), logits)
    (g_w,) = torch.autograd.grad(generator_loss(logits, "wasserstein"), logits)
    d = torch.sigmoid(logits.detach())
    torch.testing.assert_close(g_sat, -d / n)
    torch.testing.assert_close(g_ns, -(1 - d) / n)
    torch.testing.assert_close(g_w, torch.full_like(d, -1 / n))
    # where D rejects the sample (D(G(z)) ~ 0) the saturating gradient vanishes, the other does not
    assert g_sat[0].abs() < 1e-5 / n and g_ns[0].abs() > 0.99 / n


def test_critic_loss_is_difference_of_means():
    g = _gen(2)
    r, f = torch.randn(30, generator=g), torch.randn(20, generator=g)
    torch.testing.assert_close(critic_loss(r, f), f.mean() - r.mean())


@pytest.mark.parametrize(
    "call",
    [
        lambda: discriminator_loss(torch.tensor([1.0, float("nan")]), torch.zeros(2)),
        lambda: discriminator_loss(torch.zeros(0), torch.zeros(2)),
        lambda: generator_loss(torch.zeros(3), "minimax"),
        lambda: generator_loss(torch.tensor([float("nan")]), "saturating"),
        lambda: critic_loss(torch.zeros(2), torch.tensor([float("nan")])),
    ],
)
def test_losses_reject_bad_values(call):
    with pytest.raises(ValueError):
        call()


def test_loss_errors_name_the_argument():
    with pytest.raises(ValueError, match="kind"):
        generator_loss(torch.zeros(3), "wgan")
    with pytest.raises(TypeError, match="fake_logits"):
        generator_loss(torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="real_logits"):
        discriminator_loss([0.0], torch.zeros(1))
    with pytest.raises(ValueError, match="fake_logits"):
        discriminator_loss(torch.zeros(2), torch.tensor([float("nan")]))


# ----------------------------------------------------------------------------- gradient penalty
def test_gradient_penalty_of_a_linear_critic_is_closed_form():
    """f(x) = w.x + b has grad_x f = w everywhere: penalty (||w|| - 1)^2, and its gradient in w is
    2 (||w|| - 1) w / ||w||."""
    critic = torch.nn.Linear(3, 1).double()
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[2.0, -1.0, 0.5]]))
    real, fake = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 3, dtype=torch.float64)
    gp = gradient_penalty(lambda x: critic(x).squeeze(1), real, fake)
    w = critic.weight.detach()[0]
    norm = w.norm()
    torch.testing.assert_close(gp, (norm - 1) ** 2)
    gp.backward()  # create_graph=True: the penalty is differentiable in the critic's weights
    torch.testing.assert_close(critic.weight.grad[0], 2 * (norm - 1) * w / norm)


def test_gradient_penalty_matches_per_example_jacobians_of_an_mlp_critic():
    torch.manual_seed(0)
    critic = MLPDiscriminator(2, hidden=(16, 16)).double()
    real, fake = torch.randn(8, 2, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    eps = torch.rand(8, dtype=torch.float64)
    gp = gradient_penalty(critic, real, fake, eps=eps)
    x_hat = eps[:, None] * real + (1 - eps[:, None]) * fake
    norms = torch.stack([
        torch.autograd.functional.jacobian(lambda v: critic(v[None])[0], x_hat[i]).norm() for i in range(8)
    ])
    torch.testing.assert_close(gp, ((norms - 1) ** 2).mean())


def test_gradient_penalty_for_images_and_a_conditional_critic():
    torch.manual_seed(0)
    critic = DCGANDiscriminator(channels=(4, 8), num_classes=10, batchnorm=False).double()
    real, fake = torch.rand(3, 1, 28, 28, dtype=torch.float64), torch.rand(3, 1, 28, 28, dtype=torch.float64)
    y = torch.tensor([1, 5, 9])
    eps = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    gp = gradient_penalty(critic, real, fake, y=y, eps=eps)
    x_hat = eps[:, None, None, None] * real + (1 - eps[:, None, None, None]) * fake
    norms = torch.stack([
        torch.autograd.functional.jacobian(lambda v: critic(v[None], y[i : i + 1])[0], x_hat[i]).norm()
        for i in range(3)
    ])
    torch.testing.assert_close(gp, ((norms - 1) ** 2).mean())


def test_gradient_penalty_rejects_bad_inputs():
    critic = MLPDiscriminator(2, hidden=(4,))
    with pytest.raises(ValueError, match="real and fake"):
        gradient_penalty(critic, torch.zeros(4, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="eps"):
        gradient_penalty(critic, torch.zeros(4, 2), torch.zeros(4, 2), eps=torch.full((4,), 1.5))
    with pytest.raises(TypeError, match="critic"):
        gradient_penalty("f", torch.zeros(4, 2), torch.zeros(4, 2))


def test_clip_weights_clamps_every_parameter():
    torch.manual_seed(0)
    net = MLPDiscriminator(2, hidden=(8, 8))
    before = [p.detach().clone() for p in net.parameters()]
    clip_weights(net, 0.05)
    for p, b in zip(net.parameters(), before):
        assert p.abs().max() <= 0.05 + 1e-7
        torch.testing.assert_close(p.detach(), b.clamp(-0.05, 0.05), rtol=0, atol=0)
    with pytest.raises(ValueError, match="c must"):
        clip_weights(net, -1.0)


# ----------------------------------------------------------------------------- theory
def test_optimal_discriminator_matches_densities_and_survives_underflow():
    x = torch.linspace(-60, 60, 241, dtype=torch.float64)
    p, q = Normal(0.0, 1.0), Normal(1.0, 2.0)
    d = optimal_discriminator(p.log_prob(x), q.log_prob(x))
    dens_p, dens_q = p.log_prob(x).exp(), q.log_prob(x).exp()
    ok = (dens_p + dens_q) > 1e-300
    torch.testing.assert_close(d[ok], (dens_p / (dens_p + dens_q))[ok])
    assert torch.isfinite(d).all() and d[0] < 1e-100  # far tail: exp underflows, the log-ratio does not
    out = optimal_discriminator(torch.tensor([0.0, -math.inf, -math.inf]), torch.tensor([-math.inf, 0.0, -math.inf]))
    assert out[0] == 1 and out[1] == 0 and math.isnan(out[2])
    with pytest.raises(ValueError, match="NaN"):
        optimal_discriminator(torch.tensor([math.nan]), torch.tensor([0.0]))


def test_a_trained_discriminator_approaches_the_analytic_optimum():
    """Maximising V(D, G) for fixed p_data and p_g gives D* = p_data / (p_data + p_g), Eq. (3.3)."""
    torch.manual_seed(0)
    p_data = MixtureSameFamily(Categorical(torch.tensor([0.5, 0.5])), Normal(torch.tensor([-1.5, 1.0]), torch.tensor([0.4, 0.6])))
    p_g = Normal(torch.tensor(0.0), torch.tensor(1.5))
    disc = MLPDiscriminator(1, hidden=(32, 32))
    opt = torch.optim.Adam(disc.parameters(), lr=3e-3)
    for _ in range(1500):
        real, fake = p_data.sample((512, 1)), p_g.sample((512, 1))
        loss = discriminator_loss(disc(real), disc(fake))
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = torch.linspace(-2.5, 2.5, 101)
    with torch.no_grad():
        learned = torch.sigmoid(disc(x[:, None]))
    analytic = optimal_discriminator(p_data.log_prob(x), p_g.log_prob(x))
    assert (learned - analytic).abs().max() < 0.08, (learned - analytic).abs().max()


def test_kl_jsd_tv_against_scipy_and_closed_forms():
    g = _gen(3)
    p = torch.rand(4, 10, generator=g, dtype=torch.float64)
    q = torch.rand(4, 10, generator=g, dtype=torch.float64)
    p, q = p / p.sum(-1, keepdim=True), q / q.sum(-1, keepdim=True)
    for i in range(4):
        assert math.isclose(kl(p[i], q[i]).item(), entropy(p[i].numpy(), q[i].numpy()), rel_tol=1e-10)
        assert math.isclose(jsd(p[i], q[i]).item(), jensenshannon(p[i].numpy(), q[i].numpy()) ** 2, rel_tol=1e-8)
        assert math.isclose(total_variation(p[i], q[i]).item(), 0.5 * np.abs(p[i].numpy() - q[i].numpy()).sum())
    torch.testing.assert_close(jsd(p, q), jsd(q, p))  # symmetric
    torch.testing.assert_close(jsd(p, p), torch.zeros(4, dtype=torch.float64))  # zero at equality
    assert (jsd(p, q) > 0).all() and (jsd(p, q) <= math.log(2)).all()
    a, b = torch.tensor([0.5, 0.5, 0.0, 0.0]), torch.tensor([0.0, 0.0, 0.25, 0.75])  # disjoint supports
    assert kl(a, b).item() == math.inf
    assert math.isclose(jsd(a, b).item(), math.log(2), rel_tol=1e-6)
    assert math.isclose(total_variation(a, b).item(), 1.0)
    torch.testing.assert_close(kl(a, a), torch.tensor(0.0))


def test_value_at_the_optimal_discriminator_is_2_jsd_minus_log4():
    """C(G) = V(D*, G) = -log 4 + 2 JSD, Eq. (3.4), on discrete distributions (V summed directly)."""
    g = _gen(4)
    p, q = torch.rand(30, generator=g, dtype=torch.float64), torch.rand(30, generator=g, dtype=torch.float64)
    p, q = p / p.sum(), q / q.sum()
    d_star = optimal_discriminator(p.log(), q.log())
    v = (p * torch.log(d_star)).sum() + (q * torch.log(1 - d_star)).sum()
    torch.testing.assert_close(v, -math.log(4) + 2 * jsd(p, q))


def test_divergences_reject_non_distributions():
    with pytest.raises(ValueError, match="p must"):
        kl(torch.tensor([0.5, 0.6]), torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="q must"):
        jsd(torch.tensor([0.5, 0.5]), torch.tensor([-0.5, 1.5]))
    with pytest.raises(ValueError, match="same shape"):
        total_variation(torch.tensor([1.0]), torch.tensor([0.5, 0.5]))


def test_w1_matches_scipy_in_1d_and_the_parallel_lines_in_2d():
    g = _gen(5)
    a, b = torch.randn(200, generator=g, dtype=torch.float64), 1 + 2 * torch.randn(200, generator=g, dtype=torch.float64)
    assert math.isclose(w1(a, b).item(), wasserstein_distance(a.numpy(), b.numpy()), rel_tol=1e-9)
    u = torch.rand(300, generator=g, dtype=torch.float64)
    theta = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    p = torch.stack([torch.zeros_like(u), u], 1)
    q = torch.stack([theta.expand(300), u[torch.randperm(300, generator=g)]], 1)
    d = w1(p, q)
    torch.testing.assert_close(d, theta.detach())  # W1((0, U), (theta, U)) = |theta|
    d.backward()
    torch.testing.assert_close(theta.grad, torch.tensor(1.0, dtype=torch.float64))
    with pytest.raises(ValueError, match="same shape"):
        w1(torch.zeros(3, 2), torch.zeros(4, 2))


# ----------------------------------------------------------------------------- evaluation
def test_mode_coverage_on_the_mixture_itself_and_on_collapsed_samples():
    centers, std = dgm.data.TOY2D_MODES["ring8"]
    x = dgm.data.toy2d("ring8", 20000, seed=1)
    mc = mode_coverage(x, centers, std)
    # P(||x - c|| <= 3 s) for a 2-D isotropic Gaussian: the chi distribution with 2 dof, 1 - exp(-9/2)
    expected = 1 - math.exp(-4.5)
    se = math.sqrt(expected * (1 - expected) / len(x))
    assert mc.modes_covered == 8 == mc.num_modes
    assert abs(mc.high_quality - expected) < 4 * se
    assert mc.min_count == math.ceil(0.2 * 20000 / 8)
    # brute force: nearest centre by a Python loop
    ref = torch.zeros(8, dtype=torch.long)
    for point in x[:500]:
        dists = [float((point - c).norm()) for c in centers]
        k = int(np.argmin(dists))
        if dists[k] <= 3 * std:
            ref[k] += 1
    torch.testing.assert_close(mode_coverage(x[:500], centers, std).counts, ref)
    # all mass on one mode -> 1 mode covered, every sample high quality
    collapsed = centers[3] + 0.01 * torch.randn(1000, 2, generator=_gen(0))
    mc = mode_coverage(collapsed, centers, std)
    assert (mc.modes_covered, mc.high_quality, int(mc.counts[3])) == (1, 1.0, 1000)
    # samples spread between the modes -> no high-quality sample
    between = torch.zeros(1000, 2)  # the centre of the ring, 2 away from every mode
    mc = mode_coverage(between, centers, std)
    assert mc.modes_covered == 0 and mc.high_quality == 0.0
    assert "0/8 modes" in str(mc)


def test_mode_coverage_min_count_and_errors():
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    samples = torch.cat([torch.zeros(10, 2), torch.tensor([[10.0, 0.0]] * 2)])
    assert mode_coverage(samples, centers, 0.1, min_count=3).modes_covered == 1
    assert mode_coverage(samples, centers, 0.1, min_count=2).modes_covered == 2
    with pytest.raises(ValueError, match="centers"):
        mode_coverage(samples, torch.zeros(2, 3), 0.1)
    with pytest.raises(ValueError, match="std"):
        mode_coverage(samples, centers, 0.0)
    with pytest.raises(ValueError, match="samples"):
        mode_coverage(torch.full((2, 2), math.nan), centers, 0.1)


def test_decision_surface_orientation():
    surf = decision_surface(lambda pts: pts[:, 0], extent=(-2, 2, -1, 1), n=5, kind="logit")
    torch.testing.assert_close(surf[0], torch.linspace(-2, 2, 5))  # columns are x
    surf = decision_surface(lambda pts: pts[:, 1], extent=(-2, 2, -1, 1), n=5)
    torch.testing.assert_close(surf[:, 0], torch.sigmoid(torch.linspace(-1, 1, 5)))  # rows are y, bottom up
    with pytest.raises(ValueError, match="kind"):
        decision_surface(lambda pts: pts[:, 0], kind="score")


# ----------------------------------------------------------------------------- networks
def test_network_shapes_and_conditioning():
    torch.manual_seed(0)
    g = MLPGenerator(3, 2, hidden=(8,))
    assert g(torch.randn(5, 3)).shape == (5, 2) and g.sample(4).shape == (4, 2)
    gi = MLPGenerator(8, (1, 28, 28), hidden=(16,), out_activation="sigmoid", num_classes=10)
    img = gi(torch.randn(6, 8), torch.arange(6))
    assert img.shape == (6, 1, 28, 28) and img.min() >= 0 and img.max() <= 1
    assert gi.sample(3, y=7).shape == (3, 1, 28, 28)
    d = MLPDiscriminator((1, 28, 28), hidden=(16,), num_classes=10)
    assert d(img, torch.arange(6)).shape == (6,)
    dg = DCGANGenerator(latent_dim=8, channels=(8, 4))
    out = dg(torch.randn(2, 8))
    assert out.shape == (2, 1, 28, 28) and out.min() >= 0 and out.max() <= 1
    dd = DCGANDiscriminator(channels=(4, 8), num_classes=10)
    assert dd(out, torch.tensor([0, 9])).shape == (2,)
    # the label changes the conditional generator's output for the same z
    z = torch.randn(1, 8)
    assert not torch.allclose(gi(z, torch.tensor([0])), gi(z, torch.tensor([1])))


def test_projection_discriminator_adds_the_label_embedding_dot_features():
    """l(x | y) = w . phi(x) + b + e_y . phi(x): checked against all ten labels at once."""
    torch.manual_seed(0)
    d = DCGANDiscriminator(channels=(4, 8), num_classes=10, batchnorm=False).double()
    assert d.conditioning == "projection" and d.features[0].in_channels == 1  # label not in pixels
    with torch.no_grad():
        d.embed.weight.normal_()  # make the label's part large enough to see
    x = torch.rand(5, 1, 28, 28, dtype=torch.float64)
    y = torch.tensor([0, 3, 3, 9, 7])
    with torch.no_grad():
        phi = d.features(x)
        every_label = d.out(phi) + phi @ d.embed.weight.T  # (5, 10) logits, one per label
        torch.testing.assert_close(d(x, y), every_label[torch.arange(5), y])
        # the label changes the logit, and only through e_y . phi(x)
        diff = d(x, torch.full((5,), 2)) - d(x, torch.full((5,), 6))
        torch.testing.assert_close(diff, phi @ (d.embed.weight[2] - d.embed.weight[6]))
    assert d(x, y).shape == (5,)


def test_concat_discriminator_sees_one_map_per_class_and_the_unconditional_one_none():
    dc = DCGANDiscriminator(channels=(4, 8), num_classes=10, conditioning="concat")
    assert dc.conditioning == "concat" and dc.features[0].in_channels == 11 and dc.embed is None
    du = DCGANDiscriminator(channels=(4, 8))
    assert du.conditioning is None and du.features[0].in_channels == 1 and du.embed is None
    x = torch.rand(2, 1, 28, 28)
    dc.eval()
    with torch.no_grad():
        assert not torch.allclose(dc(x, torch.tensor([0, 0])), dc(x, torch.tensor([5, 5])))
    with pytest.raises(ValueError, match="conditioning"):
        DCGANDiscriminator(channels=(4, 8), num_classes=10, conditioning="film")


def test_network_errors_name_the_argument():
    g = MLPGenerator(3, 2, hidden=(8,))
    with pytest.raises(ValueError, match="z must have shape"):
        g(torch.randn(5, 4))
    with pytest.raises(ValueError, match="y was given"):
        g(torch.randn(5, 3), torch.zeros(5, dtype=torch.long))
    gc = DCGANGenerator(latent_dim=4, channels=(4, 4), num_classes=10)
    with pytest.raises(ValueError, match="y \\(labels"):
        gc(torch.randn(2, 4))
    with pytest.raises(ValueError, match="labels in \\[0, 10\\)"):
        gc(torch.randn(2, 4), torch.tensor([0, 10]))
    with pytest.raises(TypeError, match="y must be an integer"):
        gc(torch.randn(2, 4), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="x must have shape"):
        DCGANDiscriminator(channels=(4, 4))(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="hidden"):
        MLPGenerator(2, 2, hidden=())
    with pytest.raises(ValueError, match="channels"):
        DCGANGenerator(channels=(4, 4, 4))


# ----------------------------------------------------------------------------- training
def _blob(n=2000, seed=0):
    return torch.tensor([1.5, -1.0]) + 0.2 * torch.randn(n, 2, generator=_gen(seed))


def test_trainer_logs_both_losses_and_takes_k_discriminator_steps():
    torch.manual_seed(0)
    g, d = MLPGenerator(2, 2, hidden=(16,)), MLPDiscriminator(2, hidden=(16,))
    trainer = GANTrainer(g, d, _blob(), loss="nonsaturating", k=3, batch_size=32, seed=0)
    hist = trainer.train(7, snapshot_every=5, snapshot_fn=lambda t: t.steps)
    assert hist.steps == 7 == len(hist.d_loss) == len(hist.d_real) == len(hist.d_fake) == len(hist.grad_norm)
    assert [s for s, _ in hist.snapshots] == [0, 5, 7] and [v for _, v in hist.snapshots] == [0, 5, 7]
    assert trainer.opt_d.state[next(iter(d.parameters()))]["step"] == 21  # k = 3 per generator step
    assert trainer.opt_g.state[next(iter(g.parameters()))]["step"] == 7
    assert all(0 < v < 1 for v in hist.d_real + hist.d_fake)
    assert "steps=7" in repr(hist)


@pytest.mark.parametrize("loss", ["nonsaturating", "saturating", "wgan-gp"])
def test_trainer_losses_equal_the_public_loss_functions(loss):
    """Replay one round with the same random numbers and the networks as they were: the logged losses
    are discriminator_loss / critic_loss + 10 gradient_penalty and generator_loss of the public API."""
    import copy

    torch.manual_seed(0)
    g, d = MLPGenerator(2, 2, hidden=(16,)), MLPDiscriminator(2, hidden=(16,))
    data = _blob()
    trainer = GANTrainer(g, d, data, loss=loss, k=1, batch_size=32, seed=3)
    g0, d0 = copy.deepcopy(g), copy.deepcopy(d)
    rng, batches = torch.get_rng_state(), trainer._batches.get_state()
    d_logged, g_logged = trainer.step()

    torch.set_rng_state(rng)
    idx = torch.randint(len(data), (32,), generator=torch.Generator().set_state(batches))
    x = data[idx]
    fake = g0(torch.randn(32, 2)).detach()
    if loss == "wgan-gp":
        eps = torch.rand(32)
        d_ref = critic_loss(d0(x), d0(fake)) + 10 * gradient_penalty(d0, x, fake, eps=eps)
    else:
        d_ref = discriminator_loss(d0(x), d0(fake))
    assert d_logged == pytest.approx(d_ref.item(), rel=1e-5, abs=1e-6)
    z2 = torch.randn(32, 2)
    kind = "wasserstein" if loss == "wgan-gp" else loss
    with torch.no_grad():
        g_ref = generator_loss(d(g0(z2)), kind)  # D after its update, G before its own
    assert g_logged == pytest.approx(g_ref.item(), rel=1e-5, abs=1e-6)


def test_trainer_is_reproducible_and_continues():
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        g, d = MLPGenerator(2, 2, hidden=(16,)), MLPDiscriminator(2, hidden=(16,))
        runs.append(train_gan(g, d, _blob(), 10, loss="wgan-gp", k=2, batch_size=16, seed=7).g_loss)
    assert runs[0] == runs[1]
    g, d = MLPGenerator(2, 2, hidden=(16,)), MLPDiscriminator(2, hidden=(16,))
    t = GANTrainer(g, d, _blob(), seed=0)
    t.train(3)
    t.train(4)
    assert t.steps == 7


def test_nonsaturating_gan_moves_the_generator_to_the_data():
    torch.manual_seed(0)
    g, d = MLPGenerator(2, 2, hidden=(32, 32)), MLPDiscriminator(2, hidden=(32, 32))
    data = _blob()
    before = (g.sample(1000).mean(0) - data.mean(0)).norm()
    train_gan(g, d, data, 400, loss="nonsaturating", batch_size=64, lr_g=2e-3, lr_d=2e-3, seed=0)
    after = (g.sample(1000).mean(0) - data.mean(0)).norm()
    assert before > 1.0 and after < 0.3, (before, after)


def test_wgan_clipping_keeps_the_critic_weights_bounded():
    torch.manual_seed(0)
    g, d = MLPGenerator(2, 2, hidden=(16,)), MLPDiscriminator(2, hidden=(16,))
    hist = train_gan(g, d, _blob(), 5, loss="wgan", k=5, optimizer="rmsprop", lr_g=1e-2, lr_d=1e-2,
                     clip_value=0.02, batch_size=32, seed=0)
    assert max(p.abs().max().item() for p in d.parameters()) <= 0.02 + 1e-7
    assert hist.steps == 5


def test_conditional_trainer_uses_labels():
    torch.manual_seed(0)
    x = torch.cat([_blob(500, 0), -_blob(500, 1)])
    y = torch.cat([torch.zeros(500, dtype=torch.long), torch.ones(500, dtype=torch.long)])
    g = MLPGenerator(2, 2, hidden=(32, 32), num_classes=2)
    d = MLPDiscriminator(2, hidden=(32, 32), num_classes=2)
    train_gan(g, d, (x, y), 400, batch_size=64, lr_g=2e-3, lr_d=2e-3, seed=0)
    m0, m1 = g.sample(500, y=0).mean(0), g.sample(500, y=1).mean(0)
    assert (m0 - x[:500].mean(0)).norm() < 0.5 and (m1 - x[500:].mean(0)).norm() < 0.5, (m0, m1)


def test_trainer_rejects_bad_arguments_and_reports_divergence():
    g, d = MLPGenerator(2, 2, hidden=(4,)), MLPDiscriminator(2, hidden=(4,))
    with pytest.raises(ValueError, match="loss must be one of"):
        GANTrainer(g, d, _blob(), loss="minimax")
    with pytest.raises(ValueError, match="k must"):
        GANTrainer(g, d, _blob(), k=0)
    with pytest.raises(ValueError, match="conditional"):
        GANTrainer(MLPGenerator(2, 2, hidden=(4,), num_classes=3), d, _blob())
    with pytest.raises(ValueError, match="data contains NaN"):
        GANTrainer(g, d, torch.full((4, 2), math.nan))
    with pytest.raises(ValueError, match="betas"):
        GANTrainer(g, d, _blob(), betas=(1.5, 0.9))
    assert set(LOSSES) == {"saturating", "nonsaturating", "wgan", "wgan-gp"}

    class Exploding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x):
            return self.w * torch.full((x.shape[0],), math.inf)

    with pytest.raises(NonFiniteLossError):
        GANTrainer(g, Exploding(), _blob()).train(1)
