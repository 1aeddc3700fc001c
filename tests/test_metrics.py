"""Tests for dgm.metrics against independent references: scipy's sqrtm, the closed form of the
Fréchet distance of two diagonal Gaussians, simulation for KID's unbiasedness, point clouds whose
precision and recall are known, and copies of training images for memorisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from dgm import data
from dgm.classifier import DigitClassifier
from dgm.metrics import (
    features,
    fid,
    frechet_distance,
    kid,
    memorisation,
    precision_recall,
    real_data_floor,
    sample_quality,
    sharpness,
)


def _random_cov(d: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.standard_normal((d, d + 3))
    return a @ a.T / d


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    for d in (2, 5, 16):
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        c1, c2 = _random_cov(d, rng), _random_cov(d, rng)
        covmean = scipy.linalg.sqrtm(c1 @ c2).real
        expected = ((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean)
        got = frechet_distance(*(torch.from_numpy(a) for a in (mu1, c1, mu2, c2)))
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-8)


def test_frechet_distance_closed_form_for_diagonal_gaussians_and_zero_for_equal_ones():
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 1.0, 0.0])
    s1, s2 = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([3.0, 2.0, 0.1])
    expected = ((mu1 - mu2) ** 2).sum() + ((s1 - s2) ** 2).sum()  # W2^2 of commuting Gaussians
    assert frechet_distance(mu1, torch.diag(s1**2), mu2, torch.diag(s2**2)) == pytest.approx(expected.item())
    cov = torch.from_numpy(_random_cov(4, np.random.default_rng(1)))
    assert frechet_distance(torch.zeros(4), cov, torch.zeros(4), cov) == pytest.approx(0.0, abs=1e-9)


def test_fid_of_large_samples_approaches_the_population_value():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 3, generator=g, dtype=torch.float64)
    y = torch.randn(20000, 3, generator=g, dtype=torch.float64) * 2.0 + 1.0
    expected = 3 * 1.0**2 + 3 * (2.0 - 1.0) ** 2  # mean shift 1 in 3 dims, std 1 vs 2
    assert fid(x, y) == pytest.approx(expected, rel=0.03)
    assert fid(x[:10000], x[10000:]) < 0.01


def test_kid_is_unbiased():
    # Over many independent small samples the mean of the estimate is the population MMD^2:
    # 0 for one distribution, and for two distributions the value a very large sample gives.
    g = torch.Generator().manual_seed(0)

    def draw(n, shift):
        return torch.randn(n, 4, generator=g, dtype=torch.float64) + shift

    same = torch.tensor([kid(draw(10, 0.0), draw(10, 0.0), subsets=1, subset_size=10)[0] for _ in range(400)])
    assert abs(same.mean().item()) < 4 * same.std().item() / math.sqrt(len(same))
    biased = torch.tensor([(((a := draw(10, 0.0)) @ a.T / 4 + 1) ** 3).mean().item()
                           + (((b := draw(10, 0.0)) @ b.T / 4 + 1) ** 3).mean().item()
                           - 2 * ((a @ b.T / 4 + 1) ** 3).mean().item() for _ in range(400)])
    assert biased.mean().item() > 10 * biased.std().item() / math.sqrt(len(biased))  # the V-statistic is not

    population, _ = kid(draw(4000, 0.0), draw(4000, 0.5), subsets=1, subset_size=4000)
    small = torch.tensor([kid(draw(12, 0.0), draw(12, 0.5), subsets=1, subset_size=12)[0] for _ in range(600)])
    se = small.std().item() / math.sqrt(len(small))
    assert abs(small.mean().item() - population) < 4 * se + 0.02 * population


def test_kid_reports_a_standard_error_over_subsets():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(300, 3, generator=g), torch.randn(300, 3, generator=g) + 1.0
    mean, se = kid(x, y, subsets=20, subset_size=100)
    assert mean > 10 * se > 0
    assert kid(x, y, subsets=20)[1] > 0  # default subsets: half the set, so they differ


def _clusters(centres, n_per, g):
    return torch.cat([c + 0.05 * torch.randn(n_per, 2, generator=g) for c in centres])


def test_precision_and_recall_on_clouds_with_known_answers():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0]])
    real = _clusters(centres, 100, g)
    assert precision_recall(real, real[::2]) == (1.0, pytest.approx(1.0, abs=0.05))  # a subset: realistic, covering
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)                      # a far shifted copy
    half = _clusters(centres[:2], 200, g)                                            # two of four modes dropped
    precision, recall = precision_recall(real, half)
    assert precision > 0.95 and recall == pytest.approx(0.5, abs=0.05)


def test_memorisation_tells_copies_from_new_digits():
    g = torch.Generator().manual_seed(0)
    train, test = torch.rand(50, 1, 4, 4, generator=g), torch.rand(40, 1, 4, 4, generator=g)
    copies = memorisation(train[:10], train, test)
    assert copies["train"].max() < 1e-6 and copies["ratio"] < 1e-5
    assert bool((copies["test"] > 0).all())
    fresh = memorisation(test[:10], train, test)
    assert fresh["test"].max() < 1e-6 and fresh["ratio"] > 1e5


def test_sharpness_of_a_sharp_and_of_a_blurred_edge_in_closed_form():
    """A vertical edge from 0 to 1 on an 8x8 image: energy 8 (one unit jump per row) over the ink
    of the 4 lit columns (32). The same edge as a ramp over 4 columns: per row 4 jumps of 1/4,
    energy 8 x 4 / 16 = 2, over the ink 8 x (0.25 + 0.5 + 0.75 + 1 + 3) = 44."""
    sharp = torch.zeros(1, 1, 8, 8)
    sharp[..., 4:] = 1.0
    ramp = torch.zeros(1, 1, 8, 8)
    ramp[..., 1:5] = torch.tensor([0.25, 0.5, 0.75, 1.0])
    ramp[..., 5:] = 1.0
    got = sharpness(torch.cat([sharp, ramp, torch.zeros(1, 1, 8, 8)]))
    assert got.dtype == torch.float64
    assert got[0].item() == pytest.approx(8 / 32)
    assert got[1].item() == pytest.approx(8 * 4 * (1 / 16) / (8 * (2.5 + 3)))
    assert got[2].item() == 0.0  # no ink
    with pytest.raises(ValueError, match="non-negative"):
        sharpness(-sharp)
    with pytest.raises(ValueError, match="images must be a non-empty batch"):
        sharpness(torch.zeros(8, 8))


def test_bad_arguments_are_named():
    ok = torch.randn(10, 3)
    with pytest.raises(ValueError, match="fake_features contains NaN"):
        fid(ok, torch.full((10, 3), float("nan")))
    with pytest.raises(ValueError, match="real_features must be a matrix"):
        fid(torch.randn(10), ok)
    with pytest.raises(ValueError, match="fake_features must hold at least 2"):
        kid(ok, ok[:1])
    with pytest.raises(ValueError, match="same feature dimension"):
        precision_recall(ok, torch.randn(10, 4))
    with pytest.raises(ValueError, match="fake_features must hold at least 4"):
        precision_recall(ok, ok[:3], k=3)
    with pytest.raises(TypeError, match="real_features must be a floating-point"):
        fid(torch.ones(10, 3, dtype=torch.long), ok)
    with pytest.raises(ValueError, match="cov2 must be a \\(2, 2\\)"):
        frechet_distance(torch.zeros(2), torch.eye(2), torch.zeros(2), torch.eye(3))
    with pytest.raises(ValueError, match="test images must have the samples' size"):
        memorisation(torch.rand(2, 1, 4, 4), torch.rand(3, 1, 4, 4), torch.rand(3, 1, 5, 5))
    with pytest.raises(ValueError, match="images must have shape"):
        features(torch.rand(3, 1, 8, 8), DigitClassifier())


def test_features_are_the_input_of_the_classifiers_last_layer():
    torch.manual_seed(0)
    net = DigitClassifier().eval()
    x = torch.rand(5, 1, 28, 28)
    f = features(x, net, batch_size=2)
    assert f.shape == (5, 64)
    torch.testing.assert_close(net.head[-1](f), net(x))


def test_the_real_data_floor_is_far_below_noise():
    floor = real_data_floor(200)
    noise = sample_quality(torch.rand(200, 1, 28, 28), data.mnist("train")[0])
    assert floor["n"] == noise["n"] == 200
    assert floor["precision"] > 0.6 and floor["recall"] > 0.6
    assert noise["fid"] > 10 * floor["fid"] and noise["precision"] < 0.05
    assert noise["kid"] > 10 * floor["kid"] + 3 * noise["kid_se"]
