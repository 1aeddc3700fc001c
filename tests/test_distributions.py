"""Tests for dgm.distributions against torch.distributions and closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from dgm.distributions import (
    diag_normal_log_prob,
    log_mean_exp,
    normal_kl,
    normal_log_prob,
    standard_normal_log_prob,
    sum_except_batch,
)


def test_standard_normal_log_prob_sums_the_last_event_dims():
    z = torch.randn(4, 3, 5, 2, dtype=torch.float64)
    ref = Normal(torch.zeros(()), torch.ones(()))
    for k in range(0, 4):
        expected = Independent(Normal(torch.zeros_like(z), torch.ones_like(z)), k).log_prob(z)
        assert torch.allclose(standard_normal_log_prob(z, event_dims=k), expected)
    assert torch.allclose(standard_normal_log_prob(z[:, 0, 0]), ref.log_prob(z[:, 0, 0]).sum(-1))


def test_standard_normal_log_prob_rejects_bad_event_dims():
    with pytest.raises(ValueError, match="event_dims"):
        standard_normal_log_prob(torch.zeros(2, 3), event_dims=3)
    with pytest.raises(TypeError, match="z must be"):
        standard_normal_log_prob(torch.zeros(2, 3, dtype=torch.long))


def test_diag_normal_log_prob_matches_torch():
    mu, logvar = torch.randn(6, 4), torch.randn(6, 4)
    z = torch.randn(3, 6, 4)  # extra leading sample dimension
    expected = Independent(Normal(mu, (0.5 * logvar).exp()), 1).log_prob(z)
    assert torch.allclose(diag_normal_log_prob(z, mu, logvar), expected, atol=1e-5)


def test_normal_log_prob_is_elementwise():
    x, mean, var = torch.randn(7), torch.randn(7), torch.rand(7) + 0.1
    assert torch.allclose(normal_log_prob(x, mean, var), Normal(mean, var.sqrt()).log_prob(x), atol=1e-6)


def test_normal_kl_matches_torch_and_is_zero_on_equal_gaussians():
    m1, m2 = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    v1, v2 = torch.rand(5, dtype=torch.float64) + 0.2, torch.rand(5, dtype=torch.float64) + 0.2
    expected = kl_divergence(Normal(m1, v1.sqrt()), Normal(m2, v2.sqrt()))
    assert torch.allclose(normal_kl(m1, v1, m2, v2), expected)
    assert normal_kl(0.3, 2.0, 0.3, 2.0).item() == 0.0
    assert normal_kl(1.0, 1.0, 0.0, 1.0).dtype == torch.float64


def test_log_mean_exp_is_stable_and_exact():
    a = torch.tensor([[1000.0, 1000.0], [1000.0, 1000.0 + math.log(3.0)]])
    assert torch.allclose(log_mean_exp(a, dim=1), torch.tensor([1000.0, 1000.0 + math.log(2.0)]))
    b = torch.randn(5, 3, dtype=torch.float64)
    assert torch.allclose(log_mean_exp(b, dim=0), b.exp().mean(0).log())


def test_sum_except_batch():
    t = torch.arange(24.0).reshape(2, 3, 4)
    assert torch.equal(sum_except_batch(t), torch.tensor([66.0, 210.0]))
    assert torch.equal(sum_except_batch(torch.tensor([1.0, 2.0])), torch.tensor([1.0, 2.0]))
