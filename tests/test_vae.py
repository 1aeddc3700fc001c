"""Tests for dgm.vae against independent references: torch.distributions (Normal, Bernoulli,
MultivariateNormal, kl_divergence), Monte Carlo estimates, Gaussian conditioning written out from
the joint covariance, sklearn's PCA, brute-force nearest neighbours (torch.cdist) and autograd."""

import math

import pytest
import torch
import torch.nn.functional as F
from scipy.stats import entropy
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from torch.distributions import Bernoulli, Independent, MultivariateNormal, Normal, kl_divergence

from dgm.train import evaluate, fit
from dgm.vae import (
    ENCODER_KINDS,
    LIKELIHOODS,
    PPCA,
    VAE,
    VQVAE,
    ConditionalVAE,
    bernoulli_log_likelihood,
    cvae_loss,
    discretize,
    gaussian_kl,
    gaussian_log_likelihood,
    iwae_bound,
    log_mean_exp,
    mutual_info_gap,
    reparameterize,
    standard_normal_log_prob,
    vae_loss,
    vqvae_loss,
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    return x, torch.tensor(d.target)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- gaussian_kl
def test_gaussian_kl_matches_torch_distributions_with_batch_dims():
    g = _gen(0)
    mu = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    logvar = 2 * torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    ref = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
    out = gaussian_kl(mu, logvar)
    assert out.shape == (3, 4)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


def test_gaussian_kl_matches_a_monte_carlo_estimate():
    g = _gen(1)
    mu = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    logvar = torch.tensor([-1.0, 0.3, 0.8], dtype=torch.float64)
    q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    p = Independent(Normal(torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)), 1)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(200_000, 3, generator=g, dtype=torch.float64)
    terms = q.log_prob(z) - p.log_prob(z)
    se = terms.std() / math.sqrt(len(terms))
    assert abs(float(gaussian_kl(mu, logvar)) - float(terms.mean())) < 4 * float(se)


def test_gaussian_kl_is_zero_at_the_prior_and_positive_elsewhere():
    zeros = torch.zeros(2, 7)
    torch.testing.assert_close(gaussian_kl(zeros, zeros), torch.zeros(2), rtol=0, atol=0)
    assert (gaussian_kl(torch.full((2, 7), 0.1), zeros) > 0).all()
    assert (gaussian_kl(zeros, torch.full((2, 7), 0.1)) > 0).all()


def test_gaussian_kl_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"mu.*logvar"):
        gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(TypeError, match="mu"):
        gaussian_kl(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3))
    with pytest.raises(TypeError, match="logvar"):
        gaussian_kl(torch.zeros(2, 3), [[0.0] * 3] * 2)


# ----------------------------------------------------------------------------- reparameterize
def test_reparameterize_has_the_right_mean_and_variance():
    mu = torch.tensor([1.0, -2.0, 0.0], dtype=torch.float64)
    logvar = torch.tensor([0.0, math.log(4.0), math.log(0.25)], dtype=torch.float64)
    n = 100_000
    z = reparameterize(mu.expand(n, 3), logvar.expand(n, 3), generator=_gen(2))
    var = torch.exp(logvar)
    assert ((z.mean(0) - mu).abs() < 4 * (var / n).sqrt()).all()
    # the sample variance of a normal has standard error var * sqrt(2 / (n - 1))
    assert ((z.var(0) - var).abs() < 4 * var * math.sqrt(2 / (n - 1))).all()


def test_reparameterize_lets_gradients_reach_mu_and_logvar():
    mu = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    logvar = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    z = reparameterize(mu, logvar, generator=_gen(3))
    g_mu, g_logvar = torch.autograd.grad(z.sum(), [mu, logvar])
    torch.testing.assert_close(g_mu, torch.ones_like(mu))
    # dz/dlogvar = sigma * eps / 2 = (z - mu) / 2
    torch.testing.assert_close(g_logvar, (z - mu).detach() / 2)


def test_reparameterize_is_reproducible_with_a_generator():
    mu, logvar = torch.zeros(5, 2), torch.zeros(5, 2)
    a = reparameterize(mu, logvar, generator=_gen(7))
    b = reparameterize(mu, logvar, generator=_gen(7))
    c = reparameterize(mu, logvar, generator=_gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match=r"mu.*logvar"):
        reparameterize(torch.zeros(5, 2), torch.zeros(5, 3))


# ----------------------------------------------------------------------------- likelihoods
def test_bernoulli_log_likelihood_matches_torch_distributions():
    g = _gen(4)
    logits = 3 * torch.randn(6, 1, 3, 3, generator=g, dtype=torch.float64)
    x = (torch.rand(6, 1, 3, 3, generator=g) < 0.5).double()
    ref = Bernoulli(logits=logits).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(bernoulli_log_likelihood(logits, x), ref)
    # gray levels: minus the summed binary cross-entropy
    xg = torch.rand(6, 1, 3, 3, generator=g, dtype=torch.float64)
    bce = F.binary_cross_entropy_with_logits(logits, xg, reduction="none").sum((1, 2, 3))
    torch.testing.assert_close(bernoulli_log_likelihood(logits, xg), -bce)


def test_bernoulli_log_likelihood_is_stable_for_huge_logits():
    logits = torch.tensor([[100.0, -100.0, 100.0, -100.0]])
    x = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    out = bernoulli_log_likelihood(logits, x)
    assert torch.isfinite(out).all()
    ref = Bernoulli(logits=logits.double()).log_prob(x.double()).sum(1)
    torch.testing.assert_close(out.double(), ref)  # about -200: two confident mistakes
    assert float(out) == pytest.approx(-200.0, rel=1e-6)


def test_bernoulli_log_likelihood_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"x.*\[0, 1\]"):
        bernoulli_log_likelihood(torch.zeros(2, 3), torch.full((2, 3), 1.5))
    with pytest.raises(ValueError, match=r"x.*\[0, 1\]"):
        bernoulli_log_likelihood(torch.zeros(2, 3), torch.full((2, 3), float("nan")))
    with pytest.raises(ValueError, match=r"logits.*x"):
        bernoulli_log_likelihood(torch.zeros(2, 3), torch.zeros(2, 4))


def test_gaussian_log_likelihood_matches_torch_distributions():
    g = _gen(5)
    mean = torch.randn(4, 2, 5, generator=g, dtype=torch.float64)
    x = torch.randn(4, 2, 5, generator=g, dtype=torch.float64)
    for logvar in (0.0, -1.3):
        ref = Normal(mean, math.exp(0.5 * logvar)).log_prob(x).sum((1, 2))
        torch.testing.assert_close(gaussian_log_likelihood(mean, x, logvar), ref)
    lv = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    out = gaussian_log_likelihood(mean, x, lv)
    torch.testing.assert_close(out, Normal(mean, torch.exp(0.5 * lv)).log_prob(x).sum((1, 2)))
    out.sum().backward()
    assert lv.grad is not None and lv.grad != 0
    far = gaussian_log_likelihood(mean, mean + 1e3, -20.0)  # huge but finite
    assert torch.isfinite(far).all()
    with pytest.raises(ValueError, match=r"mean.*x"):
        gaussian_log_likelihood(mean, x[:, :1], 0.0)


def test_log_mean_exp_is_stable_and_correct():
    a = torch.tensor([[1000.0, 1.0], [1000.0 + math.log(3.0), 2.0]], dtype=torch.float64)
    out = log_mean_exp(a, dim=0)
    assert torch.isfinite(out).all()
    assert float(out[0]) == pytest.approx(1000.0 + math.log(2.0), abs=1e-9)  # (1 + 3) / 2
    assert float(out[1]) == pytest.approx(math.log((math.e + math.e**2) / 2), abs=1e-12)


# ----------------------------------------------------------------------------- VAE
@pytest.mark.parametrize("kind", ENCODER_KINDS)
@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_vae_shapes(kind, likelihood):
    torch.manual_seed(0)
    model = VAE(kind, likelihood, code_dim=3, in_shape=(1, 8, 8), hidden=(16, 8))
    x = torch.rand(5, 1, 8, 8)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (5, 3)
    assert model.decode(mu).shape == (5, 1, 8, 8)
    assert model(x).shape == (5, 1, 8, 8)
    recon, kl = model.elbo(x, n_samples=3)
    assert recon.shape == kl.shape == (5,)
    assert model.iwae_bound(x, k=4, chunk=3).shape == (5,)
    s = model.sample(7, generator=_gen(0))
    assert s.shape == (7, 1, 8, 8) and not s.requires_grad
    assert torch.equal(s, model.sample(7, generator=_gen(0)))
    if likelihood == "bernoulli":
        assert ((s >= 0) & (s <= 1)).all() and ((model(x) >= 0) & (model(x) <= 1)).all()
    loss = vae_loss(model, (x, torch.zeros(5, dtype=torch.long)))  # an (x, y) batch
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_vae_elbo_pieces_match_torch_distributions():
    """recon and kl against q = Normal(mu, sigma), p(x|z) = Bernoulli / Normal, by Monte Carlo."""
    torch.manual_seed(1)
    x = (torch.rand(3, 1, 4, 4) < 0.4).float()
    for likelihood in LIKELIHOODS:
        model = VAE("mlp", likelihood, code_dim=2, in_shape=(1, 4, 4), hidden=(8,), x_logvar=-0.5)
        with torch.no_grad():
            recon, kl = model.elbo(x, n_samples=4000, generator=_gen(9))
            h = model.encoder(x.flatten(1))  # hand-computed q_phi: first half mu, second logvar
            mu, logvar = h[:, :2], h[:, 2:]
            q = Normal(mu, torch.exp(0.5 * logvar))
            torch.testing.assert_close(kl, kl_divergence(q, Normal(0.0, 1.0)).sum(-1))
            z = q.sample((4000,))  # (S, N, 2)
            out = model.decoder(z.reshape(-1, 2)).reshape(4000, 3, 1, 4, 4)
            if likelihood == "bernoulli":
                terms = Bernoulli(logits=out).log_prob(x.expand_as(out)).sum((2, 3, 4))
            else:
                terms = Normal(out, math.exp(0.5 * -0.5)).log_prob(x.expand_as(out)).sum((2, 3, 4))
            se = terms.std(0) / math.sqrt(4000)
            assert ((recon - terms.mean(0)).abs() < 5 * se + 1e-4).all(), likelihood


def test_vae_elbo_is_exact_when_q_is_a_point_mass():
    """With logvar forced to -30 the sample is mu: recon must equal log p(x | z = mu) exactly."""
    torch.manual_seed(2)
    model = VAE("conv", "gaussian", code_dim=2, in_shape=(1, 8, 8), hidden=(4, 4), x_logvar=0.3)
    last = model.encoder[-1]
    with torch.no_grad():
        last.weight[2:] = 0.0
        last.bias[2:] = -30.0
        x = torch.rand(4, 1, 8, 8)
        recon, kl = model.elbo(x)
        mu = model.encoder(x)[:, :2]
        mean = model.decoder(mu)
        ref = Normal(mean, math.exp(0.15)).log_prob(x).sum((1, 2, 3))
        torch.testing.assert_close(recon, ref, rtol=1e-5, atol=1e-4)
        q = Normal(mu, torch.full_like(mu, math.exp(-15.0)))
        torch.testing.assert_close(kl, kl_divergence(q, Normal(0.0, 1.0)).sum(-1), rtol=1e-5, atol=1e-4)


def test_vae_loss_weights_the_kl_by_beta():
    torch.manual_seed(3)
    model = VAE("mlp", "bernoulli", code_dim=2, in_shape=(1, 4, 4), hidden=(8,))
    x = torch.rand(6, 1, 4, 4)
    torch.manual_seed(10)
    l1 = vae_loss(model, x)
    torch.manual_seed(10)
    l3 = vae_loss(model, x, beta=3.0)
    mu, logvar = model.encode(x)
    kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1).mean()
    torch.testing.assert_close(l3 - l1, 2 * kl)
    with pytest.raises(ValueError, match="beta"):
        vae_loss(model, x, beta=-1.0)


def test_gaussian_decoder_variance_is_learned_or_fixed():
    learned = VAE("mlp", "gaussian", 2, (1, 4, 4), hidden=(8,), x_logvar=0.5)
    fixed = VAE("mlp", "gaussian", 2, (1, 4, 4), hidden=(8,), x_logvar=0.5, learn_x_logvar=False)
    assert any(p is learned.x_logvar for p in learned.parameters())
    assert all(p is not fixed.x_logvar for p in fixed.parameters())
    assert "x_logvar" in dict(fixed.named_buffers())
    x = torch.rand(3, 1, 4, 4)
    vae_loss(learned, x).backward()
    assert learned.x_logvar.grad is not None and learned.x_logvar.grad != 0


def test_vae_rejects_bad_arguments():
    with pytest.raises(ValueError, match="encoder_kind"):
        VAE("rnn")
    with pytest.raises(ValueError, match="likelihood"):
        VAE("mlp", "poisson")
    with pytest.raises(ValueError, match="in_shape"):
        VAE("conv", in_shape=(1, 6, 6))
    model = VAE("mlp", code_dim=2, in_shape=(1, 8, 8), hidden=(8,))
    with pytest.raises(ValueError, match="x must have shape"):
        model.encode(torch.rand(3, 1, 28, 28))
    with pytest.raises(ValueError, match="z must have shape"):
        model.decode(torch.rand(3, 5))
    with pytest.raises(ValueError, match=r"x.*\[0, 1\]"):
        model.elbo(torch.full((2, 1, 8, 8), 2.0))


def test_vae_training_with_fit_lowers_the_loss(digits):
    x, y = digits
    x_tr, x_te = x[:1500], x[1500:]
    model = VAE("mlp", "bernoulli", code_dim=4, in_shape=(1, 8, 8), hidden=(64,))
    torch.manual_seed(0)
    before = evaluate(model, vae_loss, x_te)
    fit(model, vae_loss, (x_tr, y[:1500]), steps=300, batch_size=64, lr=3e-3, device="cpu",
        seed=0, progress=False)
    torch.manual_seed(0)
    after = evaluate(model, vae_loss, x_te)
    assert after < 0.8 * before, (before, after)
    # the KL term is not collapsed to zero: the latents are used
    with torch.no_grad():
        _, kl = model.elbo(x_te)
    assert float(kl.mean()) > 1.0
    codec = model.as_autoencoder()
    assert codec.encode(x_te[:3]).shape == (3, 4)
    assert codec.decode(torch.zeros(2, 4)).shape == (2, 1, 8, 8)


# ----------------------------------------------------------------------------- IWAE
def test_iwae_bound_combines_chunks_as_a_log_mean_exp():
    """Record every z the bound draws and redo log (1/k) sum exp(log w) naively in float64."""
    g = _gen(11)
    loc = torch.randn(3, 2, generator=g)
    q = Independent(Normal(loc, torch.ones(3, 2)), 1)
    seen = []

    def log_joint(z):  # log w = 40 * z_0: weights far too large for a naive exp in float32
        seen.append(z.detach().double())
        return q.log_prob(z) + 40 * z[..., 0]

    out = iwae_bound(log_joint, q, k=10, chunk=3, generator=g)
    assert [len(z) for z in seen] == [3, 3, 3, 1]
    z = torch.cat(seen)  # (10, 3, 2)
    ref = torch.log(torch.exp(40 * z[..., 0]).mean(0))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match="log_joint"):
        iwae_bound(lambda z: z.sum(-1)[0], q, k=4)


def test_iwae_with_k1_is_an_unbiased_elbo_estimate_and_grows_with_k():
    torch.manual_seed(4)
    model = VAE("mlp", "bernoulli", code_dim=2, in_shape=(1, 4, 4), hidden=(16,))
    x = (torch.rand(2, 1, 4, 4) < 0.5).float()
    reps = 1500
    xr = x.repeat(reps, 1, 1, 1)  # example i sits at rows i, i + 2, i + 4, ...
    with torch.no_grad():
        recon, kl = model.elbo(x, n_samples=20_000, generator=_gen(12))
        elbo = recon - kl
        bounds = {}
        for k in (1, 5, 50):
            b = model.iwae_bound(xr, k=k, generator=_gen(13 + k)).reshape(reps, 2)
            bounds[k] = (b.mean(0), b.std(0) / math.sqrt(reps))
    mean1, se1 = bounds[1]
    assert ((mean1 - elbo).abs() < 5 * se1 + 0.02).all()
    for small, large in ((1, 5), (5, 50)):
        gap = bounds[large][0] - bounds[small][0]
        noise = (bounds[large][1] ** 2 + bounds[small][1] ** 2).sqrt()
        assert (gap > 3 * noise).all(), (small, large, gap, noise)


# ----------------------------------------------------------------------------- PPCA
@pytest.fixture(scope="module")
def ppca():
    g = _gen(20)
    D, k = 5, 2
    W = torch.randn(D, k, generator=g, dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    model = PPCA(W, b, 0.7)
    x = model.sample(12, generator=g)
    return model, W, b, 0.7, x


def _random_spd(n, k, g):
    a = torch.randn(n, k, k, generator=g, dtype=torch.float64)
    return a @ a.transpose(-1, -2) + 0.1 * torch.eye(k, dtype=torch.float64)


def test_ppca_log_marginal_matches_multivariate_normal(ppca):
    model, W, b, sigma, x = ppca
    ref = MultivariateNormal(b, W @ W.T + sigma**2 * torch.eye(5, dtype=torch.float64)).log_prob(x)
    torch.testing.assert_close(model.log_marginal(x), ref, rtol=1e-12, atol=1e-12)


def test_ppca_posterior_matches_gaussian_conditioning(ppca):
    """p(z|x) from the joint N((0, b), [[I, W^T], [W, W W^T + s^2 I]]) by the conditioning formula."""
    model, W, b, sigma, x = ppca
    k = W.shape[1]
    s_zz = torch.eye(k, dtype=torch.float64)
    s_zx = W.T
    s_xx = W @ W.T + sigma**2 * torch.eye(5, dtype=torch.float64)
    gain = s_zx @ torch.linalg.inv(s_xx)
    ref_mean = (x - b) @ gain.T
    ref_cov = s_zz - gain @ s_zx.T
    mean, cov = model.posterior(x)
    assert mean.shape == (12, k) and cov.shape == (k, k)
    torch.testing.assert_close(mean, ref_mean, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(cov, ref_cov, rtol=1e-10, atol=1e-12)


def test_ppca_elbo_plus_kl_to_the_posterior_is_log_p_x(ppca):
    """Eq. (2.1) to float64 precision for random full-covariance Gaussians q."""
    model, W, b, sigma, x = ppca
    g = _gen(21)
    post_mean, post_cov = model.posterior(x)
    posterior = MultivariateNormal(post_mean, post_cov.expand(12, 2, 2))
    log_px = MultivariateNormal(b, W @ W.T + sigma**2 * torch.eye(5, dtype=torch.float64)).log_prob(x)
    q_mean = torch.randn(12, 2, generator=g, dtype=torch.float64)
    q_cov = _random_spd(12, 2, g)
    elbo = model.elbo(x, q_mean, q_cov)
    kl = kl_divergence(MultivariateNormal(q_mean, q_cov), posterior)
    assert (kl > 1e-3).all()
    torch.testing.assert_close(elbo + kl, log_px, rtol=0, atol=1e-9)
    assert (elbo < log_px).all()
    # equality at q = the exact posterior, with a shared (k, k) or a per-example covariance
    torch.testing.assert_close(model.elbo(x, post_mean, post_cov), log_px, rtol=0, atol=1e-9)
    torch.testing.assert_close(model.elbo(x, post_mean, post_cov.expand(12, 2, 2)), log_px, rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="q_cov"):
        model.elbo(x, q_mean, -q_cov)
    with pytest.raises(ValueError, match="q_mean"):
        model.elbo(x, q_mean[:, :1], q_cov)


def test_ppca_elbo_matches_a_monte_carlo_elbo(ppca):
    model, W, b, sigma, x = ppca
    g = _gen(22)
    q_mean = torch.randn(12, 2, generator=g, dtype=torch.float64)
    q = MultivariateNormal(q_mean, _random_spd(12, 2, g))
    z = q.sample((20_000,))  # (S, N, k)
    log_joint = Normal(z @ W.T + b, sigma).log_prob(x).sum(-1) + Normal(0.0, 1.0).log_prob(z).sum(-1)
    terms = log_joint - q.log_prob(z)
    se = terms.std(0) / math.sqrt(len(terms))
    assert ((model.elbo(x, q.loc, q.covariance_matrix) - terms.mean(0)).abs() < 5 * se).all()
    torch.testing.assert_close(model.log_joint(x, z), log_joint)


def test_iwae_on_ppca_is_sandwiched_and_tends_to_log_p_x(ppca):
    model, W, b, sigma, x = ppca
    x = x[:4]
    log_px = MultivariateNormal(b, W @ W.T + sigma**2 * torch.eye(5, dtype=torch.float64)).log_prob(x)
    post_mean, post_cov = model.posterior(x)
    # at the exact posterior every weight equals p(x): L_k = log p(x) for any k and any chunking
    exact = MultivariateNormal(post_mean, post_cov)
    torch.testing.assert_close(
        iwae_bound(lambda z: model.log_joint(x, z), exact, k=7, chunk=2), log_px, rtol=0, atol=1e-9
    )
    # a poor proposal: shifted and too wide
    reps = 400
    q_mean, q_cov = (post_mean + 0.8).repeat(reps, 1), 3.0 * post_cov
    elbo = model.elbo(x, post_mean + 0.8, q_cov)
    q = MultivariateNormal(q_mean, q_cov)
    xr = x.repeat(reps, 1)
    means = {}
    for k in (1, 5, 50, 1000):
        lk = iwae_bound(lambda z: model.log_joint(xr, z), q, k=k, chunk=256, generator=_gen(30 + k))
        lk = lk.reshape(reps, 4)
        means[k] = lk.mean(0)
        se = lk.std(0) / math.sqrt(reps)
        assert (means[k] < log_px + 4 * se).all(), k
        assert (means[k] > elbo - 4 * se).all(), k
        if k == 1:
            assert ((means[k] - elbo).abs() < 4 * se).all()
    assert (means[1] < means[5]).all() and (means[5] < means[50]).all() and (means[50] < means[1000]).all()
    assert ((log_px - means[1000]) < 0.1 * (log_px - elbo)).all()


def test_ppca_from_data_is_sklearns_probabilistic_pca(digits):
    x = digits[0][:400].reshape(400, -1).double()
    x = x[:, x.std(0) > 0]
    model = PPCA.from_data(x, 5)
    pca = PCA(5).fit(x.numpy())
    n = x.shape[0]
    ref = torch.from_numpy(pca.get_covariance()) * (n - 1) / n  # sklearn uses 1 / (n - 1)
    torch.testing.assert_close(model.covariance(), ref, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(model.b, x.mean(0))


def test_ppca_samples_have_the_model_covariance(ppca):
    model, W, b, sigma, _ = ppca
    xs = model.sample(40_000, generator=_gen(23))
    cov = torch.cov(xs.T)
    C = W @ W.T + sigma**2 * torch.eye(5, dtype=torch.float64)
    assert (cov - C).abs().max() < 0.05 * C.abs().max()
    assert (xs.mean(0) - b).abs().max() < 0.05


def test_ppca_rejects_bad_arguments():
    W = torch.randn(4, 2)
    with pytest.raises(ValueError, match="sigma"):
        PPCA(W, torch.zeros(4), 0.0)
    with pytest.raises(ValueError, match="b must"):
        PPCA(W, torch.zeros(3), 1.0)
    with pytest.raises(ValueError, match="x must"):
        PPCA(W, torch.zeros(4), 1.0).log_marginal(torch.zeros(2, 5))


# ----------------------------------------------------------------------------- ConditionalVAE
def test_conditional_vae_samples_the_asked_classes_and_checks_y():
    torch.manual_seed(5)
    for kind in ENCODER_KINDS:
        model = ConditionalVAE(kind, "bernoulli", code_dim=2, in_shape=(1, 8, 8), hidden=(8, 8))
        assert model.sample(4, 3).shape == (4, 1, 8, 8)
        assert model.sample(3, torch.tensor([0, 5, 9])).shape == (3, 1, 8, 8)
        z = torch.randn(2, 2)
        assert not torch.allclose(model.decode(z, 1), model.decode(z, 7))  # y reaches the decoder
        x = torch.rand(2, 1, 8, 8)
        mu1, _ = model.encode(x, torch.tensor([1, 1]))
        mu7, _ = model.encode(x, torch.tensor([7, 7]))
        assert not torch.allclose(mu1, mu7)  # y reaches the encoder
        # class indices and one-hot rows are the same conditioning
        y = torch.tensor([2, 6])
        a = model.elbo(x, y, generator=_gen(0))
        b = model.elbo(x, F.one_hot(y, 10).float(), generator=_gen(0))
        torch.testing.assert_close(a, b)
        recon, kl = a
        assert recon.shape == kl.shape == (2,)
        assert torch.isfinite(cvae_loss(model, (x, y)))
        with pytest.raises(ValueError, match="y"):
            model.sample(2, 10)
        with pytest.raises(ValueError, match="y"):
            model.sample(2, torch.tensor([-1, 0]))
        with pytest.raises(ValueError, match="y"):
            model.elbo(x, torch.tensor([0, 1, 2]))
        with pytest.raises(ValueError, match="y"):
            cvae_loss(model, x)


def test_conditional_vae_kl_matches_torch_distributions():
    torch.manual_seed(6)
    model = ConditionalVAE("mlp", "gaussian", code_dim=3, in_shape=(1, 4, 4), hidden=(8,))
    x, y = torch.rand(5, 1, 4, 4), torch.tensor([0, 1, 2, 3, 9])
    _, kl = model.elbo(x, y)
    h = model.encoder(torch.cat([x.flatten(1), F.one_hot(y, 10).float()], 1))
    q = Normal(h[:, :3], torch.exp(0.5 * h[:, 3:]))
    torch.testing.assert_close(kl, kl_divergence(q, Normal(0.0, 1.0)).sum(-1))


# ----------------------------------------------------------------------------- VQ-VAE
def test_vqvae_nearest_neighbours_match_cdist():
    torch.manual_seed(7)
    model = VQVAE((1, 8, 8), num_embeddings=12, embedding_dim=3, hidden=8, downsample=1)
    with torch.no_grad():
        model.codebook.weight.normal_()
    z_e = torch.randn(4, 3, 4, 4)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 3)
    ref = torch.cdist(flat, model.codebook.weight).argmin(1).reshape(4, 4, 4)
    assert torch.equal(model.nearest(z_e), ref)
    x = torch.rand(2, 1, 8, 8)
    idx = model.encode(x)
    assert idx.shape == (2, 4, 4) and idx.dtype == torch.long
    x_hat, vq_loss, idx2 = model(x)
    assert torch.equal(idx, idx2) and x_hat.shape == x.shape
    assert torch.allclose(model.decode_indices(idx), x_hat)
    # both VQ terms have the value ||z_e - e_k||^2 summed over the grid
    e = model.codebook.weight[idx].permute(0, 3, 1, 2)
    dist = (model.encoder(x) - e).pow(2).sum((1, 2, 3))
    torch.testing.assert_close(vq_loss, ((1 + 0.25) * dist).mean())


def test_vqvae_gradients_follow_the_stop_gradients():
    torch.manual_seed(8)
    model = VQVAE((1, 8, 8), num_embeddings=6, embedding_dim=2, hidden=8, downsample=1)
    x = torch.rand(3, 1, 8, 8)
    enc = list(model.encoder.parameters())
    dec = list(model.decoder.parameters())
    book = model.codebook.weight

    def grads(term):
        gs = torch.autograd.grad(term, [*enc, book, *dec], retain_graph=True, allow_unused=True)
        norm = lambda ts: sum(0.0 if t is None else float(t.abs().sum()) for t in ts)  # noqa: E731
        return norm(gs[: len(enc)]), norm([gs[len(enc)]]), norm(gs[len(enc) + 1 :]), gs[len(enc)]

    z_e = model.encoder(x)
    z_q_st, idx, codebook_loss, commitment_loss = model.quantize(z_e)
    recon = (x - model.decoder(z_q_st)).pow(2).sum()
    g_enc, g_book, g_dec, _ = grads(recon)
    assert g_enc > 0 and g_dec > 0 and g_book == 0  # straight-through to the encoder only
    g_enc, g_book, g_dec, g = grads(codebook_loss.sum())
    assert g_enc == 0 and g_dec == 0 and g_book > 0
    # d/de_k ||sg[z_e] - e||^2 = 2 * sum over positions assigned to k of (e_k - z_e,j)
    flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, 2)
    ref = torch.zeros_like(book)
    ref.index_add_(0, idx.reshape(-1), 2 * (book.detach()[idx.reshape(-1)] - flat))
    torch.testing.assert_close(g, ref)
    g_enc, g_book, g_dec, _ = grads(commitment_loss.sum())
    assert g_enc > 0 and g_dec == 0 and g_book == 0
    # the straight-through value is z_q, and its Jacobian w.r.t. z_e is the identity
    torch.testing.assert_close(z_q_st, book[idx].permute(0, 3, 1, 2))
    probe = torch.randn_like(z_e)
    (g_ze,) = torch.autograd.grad((z_q_st * probe).sum(), z_e)
    torch.testing.assert_close(g_ze, probe)


def test_vqvae_codebook_usage():
    model = VQVAE((1, 8, 8), num_embeddings=8, embedding_dim=2, hidden=4)
    uniform = torch.arange(8).repeat(5).reshape(5, 2, 4)
    frac, perp = model.codebook_usage(uniform)
    assert frac == 1.0 and perp == pytest.approx(8.0, rel=1e-12)
    frac, perp = model.codebook_usage(torch.full((3, 2, 2), 5))
    assert frac == 1 / 8 and perp == pytest.approx(1.0)
    idx = torch.tensor([0, 0, 0, 1, 2, 2, 7]).reshape(1, 7, 1)
    counts = torch.bincount(idx.flatten(), minlength=8).numpy()
    frac, perp = model.codebook_usage(idx)
    assert frac == 4 / 8 and perp == pytest.approx(math.exp(entropy(counts)), rel=1e-12)
    with pytest.raises(ValueError, match="indices"):
        model.codebook_usage(torch.tensor([8]))


def test_vqvae_training_lowers_the_loss(digits):
    x = digits[0][:512]
    torch.manual_seed(0)
    model = VQVAE((1, 8, 8), num_embeddings=16, embedding_dim=4, hidden=16, downsample=1)
    before = evaluate(model, vqvae_loss, x)
    fit(model, vqvae_loss, x, steps=150, batch_size=64, lr=3e-3, device="cpu", seed=0, progress=False)
    after = evaluate(model, vqvae_loss, x)
    assert after < 0.5 * before, (before, after)


def test_standard_normal_log_prob_matches_torch_distributions():
    z = torch.randn(3, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(standard_normal_log_prob(z), Normal(0.0, 1.0).log_prob(z).sum(-1))


# ----------------------------------------------------------------------------- disentanglement
def _grid_factors(n=(6, 5, 4)):
    """A full factorial grid: every combination once, so the factors are exactly independent."""
    g = torch.meshgrid(*[torch.arange(k) for k in n], indexing="ij")
    return torch.stack([t.flatten() for t in g], 1)


def test_discretize_uses_equal_width_bins_over_the_range():
    codes = torch.tensor([[0.0, 5.0], [0.49, 5.0], [0.5, 5.0], [1.0, 5.0]])
    z = discretize(codes, bins=2)
    assert z[:, 0].tolist() == [0, 0, 1, 1] and z[:, 1].tolist() == [0, 0, 0, 0]
    assert discretize(torch.randn(100, 3, generator=_gen(1)), bins=7).max() == 6


def test_mig_known_answers():
    f = _grid_factors()
    unused = torch.full((len(f), 2), 0.3)
    # each factor in its own latent (permuted, rescaled, flipped), plus two unused latents: 1
    codes = torch.cat([3.0 * f[:, [2]], -f[:, [0]] + 0.5, 0.1 * f[:, [1]], unused], 1).double()
    res = mutual_info_gap(codes, f, bins=20)
    assert abs(res.score - 1.0) < 1e-12
    assert res.mi.shape == (3, 5) and torch.allclose(res.mi[[0, 1, 2], [1, 2, 0]], torch.ones(3).double())
    assert torch.allclose(res.entropy, torch.tensor([6.0, 5.0, 4.0]).log().double())
    # factor 0 copied into two latents: its gap is 0, the others 1 -> MIG = 2/3
    dup = torch.cat([f[:, [0]], f[:, [0]], f[:, [1]], f[:, [2]]], 1).double()
    res = mutual_info_gap(dup, f)
    assert abs(res.score - 2 / 3) < 1e-12 and torch.allclose(res.gaps, torch.tensor([0.0, 1, 1]).double())
    # two factors rotated by 45 degrees: both latents know the same about each -> gaps 0
    sq = _grid_factors((6, 6))
    rot = torch.stack([sq[:, 0] + sq[:, 1], sq[:, 0] - sq[:, 1]], 1).double()
    res = mutual_info_gap(rot, sq, bins=11)
    assert res.score < 1e-12
    # with pure-noise latents the plug-in estimate is biased upwards (few examples per bin)
    noisy = torch.cat([codes[:, :3], torch.randn(len(f), 2, generator=_gen(2)).double()], 1)
    assert 0.5 < mutual_info_gap(noisy, f).score < 1.0
    # the MI matrix against sklearn on the same bins
    from sklearn.metrics import mutual_info_score

    z = discretize(codes, 20)
    for k in range(3):
        for j in range(5):
            ref = mutual_info_score(f[:, k].numpy(), z[:, j].numpy()) / _entropy_of(f[:, k])
            assert abs(mutual_info_gap(codes, f).mi[k, j].item() - ref) < 1e-12


def _entropy_of(v):
    return entropy(torch.bincount(v).double().numpy())


def test_mig_rejects_bad_inputs():
    f = _grid_factors()
    with pytest.raises(ValueError, match="rows|one row"):
        mutual_info_gap(torch.randn(10, 3), f)
    with pytest.raises(ValueError, match="at least 2 latents"):
        mutual_info_gap(torch.randn(len(f), 1), f)
    with pytest.raises(ValueError, match="NaN"):
        mutual_info_gap(torch.full((len(f), 3), float("nan")), f)
    with pytest.raises(ValueError, match="two values"):
        mutual_info_gap(torch.randn(len(f), 3), torch.zeros(len(f), 1, dtype=torch.long))
    with pytest.raises(ValueError, match="bins"):
        discretize(torch.randn(5, 2), bins=0)
