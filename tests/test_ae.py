"""Tests for dgm.ae against independent references: sklearn PCA, hand-written sums, F.mse_loss,
binomial statistics of the corruptions, and the closed-form optimum of a linear denoiser."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.linalg import subspace_angles
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from dgm.ae import (
    CORRUPTIONS,
    MLPAE,
    Autoencoder,
    ConvAE,
    LinearAE,
    ae_loss,
    corrupt,
    denoising_loss,
    reconstruction_error,
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits64():
    return torch.tensor(load_digits().data / 16.0, dtype=torch.float32)  # (1797, 64)


# ----------------------------------------------------------------------------- Baldi & Hornik
def test_linear_ae_learns_the_pca_subspace(digits64):
    torch.manual_seed(0)
    x = digits64
    k = 5
    model = LinearAE(64, code_dim=k)
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=300, history_size=50,
                            tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = ae_loss(model, x)
        loss.backward()
        return loss

    opt.step(closure)

    pca = PCA(k).fit(x.numpy())
    w = model.decoder_weight.detach().double().numpy()  # (64, k)
    assert w.shape == (64, k)
    angles = np.degrees(subspace_angles(w, pca.components_.T))
    assert angles.max() < 2.0, angles
    # and the reconstruction error is the PCA one: the sum of the discarded eigenvalues
    discarded = np.linalg.eigvalsh(np.cov(x.numpy().T, bias=True))[:-k].sum()
    assert ae_loss(model, x).item() == pytest.approx(discarded, rel=1e-3)


def test_a_random_linear_ae_is_not_the_pca_subspace(digits64):
    # guards the test above: the angle check can fail
    torch.manual_seed(0)
    model = LinearAE(64, code_dim=5)
    pca = PCA(5).fit(digits64.numpy())
    angles = np.degrees(subspace_angles(model.decoder_weight.detach().numpy(), pca.components_.T))
    assert angles.max() > 20


# ----------------------------------------------------------------------------- losses
def test_reconstruction_error_matches_hand_sum_and_mse_loss():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(7, 1, 5, 6, generator=g)
    x_hat = torch.rand(7, 1, 5, 6, generator=g)
    err = reconstruction_error(x_hat, x)
    assert err.shape == (7,)
    by_hand = torch.tensor([sum(float(a - b) ** 2 for a, b in zip(x_hat[i].flatten(), x[i].flatten()))
                            for i in range(7)])
    torch.testing.assert_close(err, by_hand, rtol=1e-5, atol=1e-6)
    by_mse = torch.stack([F.mse_loss(x_hat[i], x[i], reduction="sum") for i in range(7)])
    torch.testing.assert_close(err, by_mse)


def test_reconstruction_error_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="x_hat"):
        reconstruction_error(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(TypeError, match="x"):
        reconstruction_error(torch.zeros(3, 4), torch.zeros(3, 4, dtype=torch.long))


def test_ae_loss_is_mean_error_and_accepts_tuples():
    torch.manual_seed(0)
    model = MLPAE((1, 8, 8), code_dim=3, hidden=(16,))
    x = torch.rand(6, 1, 8, 8)
    y = torch.arange(6)
    with torch.no_grad():
        expected = ((model(x) - x) ** 2).sum(dim=(1, 2, 3)).mean()
        torch.testing.assert_close(ae_loss(model, x), expected)
        torch.testing.assert_close(ae_loss(model, (x, y)), expected)


def test_denoising_loss_uses_the_corrupted_input_and_the_clean_target():
    torch.manual_seed(0)
    model = MLPAE((1, 8, 8), code_dim=3, hidden=(16,))
    x = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        got = denoising_loss(model, (x, None), "masking", 0.5, generator=torch.Generator().manual_seed(3))
        x_tilde = corrupt(x, "masking", 0.5, torch.Generator().manual_seed(3))
        expected = ((model(x_tilde) - x) ** 2).sum(dim=(1, 2, 3)).mean()
        torch.testing.assert_close(got, expected)
        assert not torch.allclose(got, ae_loss(model, x))
        # level 0 is the plain loss
        torch.testing.assert_close(denoising_loss(model, x, "gaussian", 0.0), ae_loss(model, x))


# ----------------------------------------------------------------------------- corruptions
N_PIX = 200_000


def _binomial_tol(p, n=N_PIX):
    return 5 * math.sqrt(max(p * (1 - p), 1e-12) / n)


@pytest.mark.parametrize("level", [0.1, 0.5, 0.9])
def test_masking_zeroes_a_level_fraction(level):
    x = torch.rand(N_PIX, generator=torch.Generator().manual_seed(0)) + 0.5  # no zeros to start with
    x_copy = x.clone()
    x_tilde = corrupt(x, "masking", level, torch.Generator().manual_seed(1))
    assert torch.equal(x, x_copy)
    zero = x_tilde == 0
    assert abs(zero.float().mean().item() - level) < _binomial_tol(level)
    assert torch.equal(x_tilde[~zero], x[~zero])


@pytest.mark.parametrize("level", [0.05, 0.3, 1.0])
def test_gaussian_noise_has_std_level(level):
    x = torch.rand(N_PIX, generator=torch.Generator().manual_seed(0))
    x_copy = x.clone()
    noise = corrupt(x, "gaussian", level, torch.Generator().manual_seed(1)) - x
    assert torch.equal(x, x_copy)
    # sample std of n normals has relative sd ~ 1/sqrt(2n); allow 5 sds
    assert noise.std().item() == pytest.approx(level, rel=5 / math.sqrt(2 * N_PIX))
    assert abs(noise.mean().item()) < 5 * level / math.sqrt(N_PIX)


@pytest.mark.parametrize("level", [0.2, 0.6])
def test_saltpepper_replaces_a_level_fraction_by_0_or_1(level):
    x = torch.rand(N_PIX, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25  # in (0.25, 0.75)
    x_copy = x.clone()
    x_tilde = corrupt(x, "saltpepper", level, torch.Generator().manual_seed(1))
    assert torch.equal(x, x_copy)
    changed = x_tilde != x
    assert abs(changed.float().mean().item() - level) < _binomial_tol(level)
    assert set(x_tilde[changed].unique().tolist()) == {0.0, 1.0}
    salt = (x_tilde[changed] == 1).float().mean().item()
    assert abs(salt - 0.5) < _binomial_tol(0.5, changed.sum().item())


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corrupt_is_deterministic_with_a_generator_and_keeps_shape(kind):
    x = torch.rand(4, 1, 8, 8)
    a = corrupt(x, kind, 0.3, torch.Generator().manual_seed(5))
    b = corrupt(x, kind, 0.3, torch.Generator().manual_seed(5))
    c = corrupt(x, kind, 0.3, torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype and a is not x


def test_corrupt_rejects_bad_kind_and_level():
    x = torch.rand(3, 4)
    with pytest.raises(ValueError, match="kind.*gaussian.*masking.*saltpepper"):
        corrupt(x, "dropout", 0.1)
    with pytest.raises(ValueError, match="level"):
        corrupt(x, "masking", 1.5)
    with pytest.raises(ValueError, match="level"):
        corrupt(x, "saltpepper", -0.1)
    with pytest.raises(ValueError, match="level"):
        corrupt(x, "gaussian", -1.0)
    with pytest.raises(ValueError, match="level"):
        corrupt(x, "gaussian", float("nan"))
    with pytest.raises(TypeError, match="x"):
        corrupt(torch.ones(3, dtype=torch.long), "gaussian", 0.1)


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: MLPAE(code_dim=7), (5, 1, 28, 28)),
        (lambda: MLPAE((1, 8, 8), code_dim=7, hidden=(32,)), (5, 1, 8, 8)),
        (lambda: ConvAE(code_dim=7), (5, 1, 28, 28)),
        (lambda: ConvAE(code_dim=7, size=8), (5, 1, 8, 8)),
        (lambda: ConvAE(code_dim=7, in_channels=3, size=16), (5, 3, 16, 16)),
        (lambda: ConvAE(code_dim=7, channels=(8, 16)), (5, 1, 28, 28)),
        (lambda: LinearAE((1, 8, 8), code_dim=7), (5, 1, 8, 8)),
    ],
)
def test_output_shapes(make, shape):
    model = make()
    x = torch.rand(shape)
    z = model.encode(x)
    assert z.shape == (shape[0], 7) and model.code_dim == 7
    x_hat = model(x)
    assert x_hat.shape == x.shape
    assert model.decode(z).shape == x.shape
    if not isinstance(model, LinearAE):
        assert x_hat.min() >= 0 and x_hat.max() <= 1  # sigmoid output


def test_bad_input_shapes_name_the_argument_and_expected_shape():
    with pytest.raises(ValueError, match=r"x must have shape \(N, 1, 28, 28\)"):
        ConvAE()(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"x must have shape \(N, 64\)"):
        LinearAE(64, 3)(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"z must have shape \(N, 3\)"):
        LinearAE(64, 3).decode(torch.rand(2, 4))
    with pytest.raises(ValueError, match="size"):
        ConvAE(size=10)
    with pytest.raises(ValueError, match="channels"):
        ConvAE(channels=(8, 0))
    with pytest.raises(ValueError, match="channels"):
        ConvAE(channels=(8, 16, 32))
    with pytest.raises(ValueError, match="in_shape"):
        LinearAE((1, 0, 8), 3)
    with pytest.raises(ValueError, match="code_dim"):
        MLPAE(code_dim=0)
    with pytest.raises(TypeError, match="x"):
        MLPAE()(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


def test_custom_autoencoder_base_class():
    enc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 2))
    dec = torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.Unflatten(1, (2, 3)))
    model = Autoencoder(enc, dec, code_dim=2, in_shape=(2, 3))
    assert model.encoder is enc and model.decoder is dec
    x = torch.rand(4, 2, 3)
    torch.testing.assert_close(model(x), dec(enc(x)))


# ----------------------------------------------------------------------------- denoising
def test_overcomplete_denoiser_shrinks_where_plain_ae_learns_identity():
    """Over-complete linear AEs (D=6, k=12): plain training reaches f∘g = I, the exact minimiser
    for full-rank data; Gaussian-noise denoising reaches M* = S (S + s^2 I)^-1 instead (closed
    form for the linear denoiser, S the data covariance), which is far from I."""
    torch.manual_seed(0)
    d, n, sigma = 6, 2000, 0.5
    scales = torch.tensor([2.0, 1.5, 1.0, 0.5, 0.3, 0.2])
    x = torch.randn(n, d) * scales @ torch.linalg.qr(torch.randn(d, d))[0]
    x = x - x.mean(0)
    s = (x.T @ x / n).double()
    m_star = s @ torch.linalg.inv(s + sigma**2 * torch.eye(d, dtype=torch.float64))
    eye = torch.eye(d, dtype=torch.float64)

    def train(loss_fn):
        torch.manual_seed(1)
        model = LinearAE(d, code_dim=12)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for step in range(600):
            if step == 400:
                opt.param_groups[0]["lr"] = 2e-3
            opt.zero_grad()
            loss_fn(model, x).backward()
            opt.step()
        with torch.no_grad():  # the affine map's linear part, read off by probing
            return (model(eye.float()) - model(torch.zeros(1, d))).T.double()

    m_plain = train(ae_loss)
    m_denoise = train(lambda m, b: denoising_loss(m, b, "gaussian", sigma))
    assert torch.linalg.norm(m_plain - eye) < 0.05
    assert torch.linalg.norm(m_star - eye) > 1.0
    assert torch.linalg.norm(m_denoise - m_star) < 0.1


def test_conv_channels_set_the_layer_widths():
    model = ConvAE(code_dim=5, channels=(8, 16))
    convs = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 8), (8, 16), (16, 8), (8, 1)]
    assert model.channels == (8, 16)
    default = ConvAE(code_dim=5)
    assert default.channels == (32, 64)
