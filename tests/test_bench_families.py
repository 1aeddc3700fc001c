"""Tests for dgm.bench.families against independent references: the PixelCNN's exact -log P(x)
recomputed with torch.distributions.Categorical from its logits, the VAE's importance-weighted
bound against its own ELBO (L_k >= L_1 on average), the untrained flow against the independent-
pixel Bernoulli model its histogram layer encodes, and every family's samples."""

from __future__ import annotations

import math

import pytest
import torch

from dgm.bench import FAMILIES, BenchData, make_family


@pytest.fixture(scope="module")
def data():
    return BenchData.mnist(seed=0)


@pytest.fixture(scope="module")
def trained(data, one_thread):
    """Every family after a few steps (progress 0, then past the latent model's switch)."""
    families = {}
    for key in FAMILIES:
        family = make_family(key)
        family.setup(data.x_train, seed=0)
        for progress in (0.0, 0.1, 0.6, 0.7):
            assert math.isfinite(family.step(progress))
        families[key] = family.eval()
    return families


def test_every_family_samples_images_in_the_unit_interval(trained):
    for key, family in trained.items():
        x = family.sample(3, generator=torch.Generator().manual_seed(0))
        assert x.shape == (3, 1, 28, 28), key
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0, key
        again = family.sample(3, generator=torch.Generator().manual_seed(0))
        assert torch.equal(x, again), f"{key}: the same generator must give the same samples"
    for key in ("flow", "pixelcnn"):  # samples of a model of binary pixels are binary
        x = trained[key].sample(3, generator=torch.Generator().manual_seed(1))
        assert set(x.unique().tolist()) <= {0.0, 1.0}, key


def test_pixelcnn_nll_is_the_chain_rule_over_its_logits(trained, data):
    family = trained["pixelcnn"]
    x = data.x_test[:8]
    logits = family.model(x)  # (N, K, C, H, W)
    dist = torch.distributions.Categorical(logits=logits.permute(0, 2, 3, 4, 1))
    reference = -dist.log_prob(x.long()).sum((1, 2, 3))
    torch.testing.assert_close(family.nll(x), reference.detach(), rtol=1e-5, atol=1e-4)
    assert family.likelihood == "exact"


def test_vae_iwae_bound_is_tighter_than_its_elbo(trained, data):
    family = trained["vae"]
    x = data.x_test[:200]
    with torch.no_grad():
        recon, kl = family.model.elbo(x, generator=torch.Generator().manual_seed(0))
    neg_elbo = (kl - recon).mean().item()
    nll = family.nll(x).mean().item()
    assert nll < neg_elbo  # L_64 >= L_1 (Burda et al., 2016)
    assert nll > 0 and family.likelihood == "bound"


def test_untrained_flow_is_the_independent_bernoulli_model_of_its_histograms(data):
    family = make_family("flow")
    family.setup(data.x_train, seed=0)
    family.eval()
    q = data.x_train.flatten(1).mean(0).clamp(1e-6, 1 - 1e-6)  # each pixel's share of ink
    x = data.x_test[:300].flatten(1)
    reference = -(x * q.log() + (1 - x) * (1 - q).log()).sum(1)  # nats, independent Bernoulli pixels
    got = family.nll(data.x_test[:300])
    assert got.mean().item() == pytest.approx(reference.mean().item(), rel=0.05)


def test_a_family_without_likelihood_says_so_and_bad_keys_are_named(trained, data):
    for key in ("gan", "diffusion", "latent-diffusion"):
        assert trained[key].likelihood is None
        with pytest.raises(ValueError, match="has no likelihood"):
            trained[key].nll(data.x_test[:2])
    with pytest.raises(ValueError, match="key must be one of"):
        make_family("pixel-cnn")
    with pytest.raises(ValueError, match="iwae_k"):
        make_family("vae", iwae_k=0)
