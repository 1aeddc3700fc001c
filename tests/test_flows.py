"""Tests for dgm.flows (chapter 4) against independent references: torch.autograd.functional.jacobian
(through the shared helper tests/flow_checks.py), torch.distributions (Normal, MultivariateNormal,
LogNormal), closed forms, numerical integration over a grid and Monte Carlo."""

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

from dgm.distributions import standard_normal_log_prob
from dgm.flows import (
    ActNorm,
    AffineCoupling,
    Flow,
    GlowMLP,
    Invertible1x1Conv,
    LogitTransform,
    Permutation,
    PiecewiseLinearCDF,
    RealNVP,
    Transform,
    alternating_masks,
    bits_per_dim,
    checkerboard_mask,
    dequantize,
    fit_flow,
    flow_loss,
)
from flow_checks import check_transform

pytestmark = pytest.mark.usefixtures("one_thread")


def _randomize(module, std=0.3, seed=0):
    """Give every parameter random values: untrained couplings are the identity (zero-init),
    which would make the checks below pass for the wrong reasons."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(std * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


def _x(*shape, seed=0, scale=1.0):
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ----------------------------------------------------------------------------- the helper itself
class _WrongLogDet(Transform):
    """y = 2 x with the log-det of y = x (wrong on purpose)."""

    def forward(self, x):
        return 2 * x, torch.zeros(x.shape[0], dtype=x.dtype)

    def inverse(self, y):
        return y / 2, torch.zeros(y.shape[0], dtype=y.dtype)


class _NotInverse(Transform):
    """A correct forward log-det but an inverse that is not the inverse."""

    def forward(self, x):
        return 2 * x, torch.full((x.shape[0],), x.shape[1] * math.log(2), dtype=x.dtype)

    def inverse(self, y):
        return y / 3, torch.full((y.shape[0],), -y.shape[1] * math.log(2), dtype=y.dtype)


def test_the_shared_helper_catches_broken_transforms():
    with pytest.raises(AssertionError, match="log_det|log-dets"):
        check_transform(_WrongLogDet(), _x(3, 4))
    with pytest.raises(AssertionError, match="inverse"):
        check_transform(_NotInverse(), _x(3, 4))


# ----------------------------------------------------------------------------- affine coupling
@pytest.mark.parametrize("dim", [2, 5])
def test_affine_coupling_vectors(dim):
    for mask in alternating_masks(dim, 2):
        layer = _randomize(AffineCoupling(mask, hidden=8))
        y, ld, _ = check_transform(layer, _x(6, dim))
        x = _x(6, dim)
        kept = mask.bool()
        assert torch.equal(y[:, kept], x[:, kept]), "the kept features must pass unchanged"
        assert not torch.allclose(y[:, ~kept], x[:, ~kept]), "the others must change (random parameters)"


def test_affine_coupling_random_mask_and_images():
    mask = torch.tensor([1.0, 0, 0, 1, 0, 1, 1])
    check_transform(_randomize(AffineCoupling(mask, hidden=(6, 5))), _x(4, 7))
    image_mask = checkerboard_mask(4, 4, parity=1)
    check_transform(_randomize(AffineCoupling(image_mask, hidden=4, in_channels=2), seed=1), _x(3, 2, 4, 4),
                    n_jacobian=2)
    channel_mask = torch.zeros(2, 3, 3)
    channel_mask[0] = 1  # channel-wise mask: channel 0 kept, channel 1 transformed
    check_transform(_randomize(AffineCoupling(channel_mask, hidden=4), seed=2), _x(3, 2, 3, 3), n_jacobian=2)


def test_affine_coupling_matches_the_formula_of_the_table():
    """y_1 = x_1, y_2 = x_2 exp(s(x_1)) + t(x_1), log-det = s(x_1): computed by hand from the net."""
    layer = _randomize(AffineCoupling(torch.tensor([1.0, 0.0]), hidden=8)).double()
    x = _x(10, 2, seed=3)
    y, ld = layer(x)
    raw_s, t = layer.net(x[:, :1]).chunk(2, dim=1)
    s = layer.scale * torch.tanh(raw_s / layer.scale)
    torch.testing.assert_close(y[:, 0], x[:, 0])
    torch.testing.assert_close(y[:, 1:], x[:, 1:] * torch.exp(s) + t)
    torch.testing.assert_close(ld, s[:, 0])


def test_untrained_coupling_is_the_identity():
    layer = AffineCoupling(torch.tensor([0.0, 1.0, 0.0]), hidden=8)
    x = torch.randn(5, 3)
    y, ld = layer(x)
    torch.testing.assert_close(y, x)
    torch.testing.assert_close(ld, torch.zeros(5))


def test_alternating_and_checkerboard_masks():
    masks = alternating_masks(2, 4)
    assert [m.tolist() for m in masks] == [[1, 0], [0, 1], [1, 0], [0, 1]]
    m5 = alternating_masks(5, 2)
    assert torch.equal(m5[0] + m5[1], torch.ones(5))
    cb = checkerboard_mask(3, 4)
    assert cb.shape == (3, 4) and cb[0, 0] == 1 and cb[0, 1] == 0 and cb[1, 0] == 0
    assert torch.equal(cb + checkerboard_mask(3, 4, parity=1), torch.ones(3, 4))


# ----------------------------------------------------------------------------- ActNorm
def test_actnorm_data_dependent_init_standardises_the_data_side():
    data = 3.0 + 2.0 * torch.randn(500, 4, generator=torch.Generator().manual_seed(0))
    data[:, 1] *= 0.1
    layer = ActNorm(4)
    assert not bool(layer.initialized)
    z, ld = layer.inverse(data)
    assert bool(layer.initialized)
    torch.testing.assert_close(z.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(0, unbiased=False), torch.ones(4), atol=1e-4, rtol=0)
    expected = -torch.log(data.std(0, unbiased=False)).sum()  # log |det| of x -> (x - mean) / std
    torch.testing.assert_close(ld, expected.expand(500), atol=1e-4, rtol=1e-5)
    # parameters now fixed: a second batch is not re-standardised
    z2, _ = layer.inverse(data[:10] + 100.0)
    assert z2.mean() > 10


def test_actnorm_images_and_transform_checks():
    data = 1.5 + 0.5 * torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    layer = ActNorm(3)
    z, _ = layer.inverse(data)
    per_channel = z.transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(per_channel.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    _, ld, _ = check_transform(ActNorm(3), data.double(), n_jacobian=2)
    std = data.double().transpose(0, 1).reshape(3, -1).std(1, unbiased=False)  # forward = x * std + mean
    torch.testing.assert_close(ld, (16 * std.log().sum()).expand(8), atol=1e-3, rtol=1e-5)  # eps = 1e-6 in std
    check_transform(ActNorm(5), _x(7, 5, scale=4.0))


def test_actnorm_state_is_saved():
    layer = ActNorm(2)
    layer.inverse(torch.randn(20, 2) * 5)
    clone = ActNorm(2)
    clone.load_state_dict(layer.state_dict())
    assert bool(clone.initialized)
    x = torch.randn(3, 2)
    torch.testing.assert_close(clone(x)[0], layer(x)[0])


# ----------------------------------------------------------------------------- 1x1 convolution
@pytest.mark.parametrize("lu", [True, False])
def test_invertible_1x1_conv(lu):
    gen = torch.Generator().manual_seed(0)
    layer = Invertible1x1Conv(3, lu=lu, generator=gen)
    with torch.no_grad():  # move away from the orthogonal start, |det W| != 1
        for p in layer.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
    w = layer.weight_matrix().detach().double()
    ref = torch.linalg.slogdet(w)[1]
    torch.testing.assert_close(layer.log_abs_det_weight().double(), ref, atol=1e-5, rtol=1e-5)
    assert abs(ref.item()) > 1e-3
    x = _x(4, 3, 5, 5)
    _, ld, _ = check_transform(layer, x, n_jacobian=2)
    torch.testing.assert_close(ld, torch.full((4,), -25 * ref.item(), dtype=torch.float64), atol=1e-4, rtol=1e-5)
    # inverse: z = W y at every pixel, against an explicit loop over pixels
    z, ld_inv = layer.double().inverse(x)
    torch.testing.assert_close(z[:, :, 2, 3], x[:, :, 2, 3] @ w.T)
    # Glow's table, data -> latent: y = W x, log-det = H W log |det W| (lecture 4's 1x1-conv row),
    # against autograd's Jacobian of the whole data -> base map of one image
    torch.testing.assert_close(ld_inv, torch.full((4,), 25 * ref.item(), dtype=torch.float64), atol=1e-4,
                               rtol=1e-5)
    jac = torch.autograd.functional.jacobian(lambda v: layer.inverse(v.reshape(1, 3, 5, 5))[0].reshape(-1),
                                             x[0].reshape(-1))
    torch.testing.assert_close(torch.linalg.slogdet(jac)[1], ld_inv[0], atol=1e-9, rtol=1e-9)
    check_transform(layer, _x(6, 3))  # vectors (N, C): one pixel


def test_invertible_1x1_conv_starts_as_a_rotation_or_identity():
    w = Invertible1x1Conv(6, generator=torch.Generator().manual_seed(3)).weight_matrix().detach()
    torch.testing.assert_close(w @ w.T, torch.eye(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(Invertible1x1Conv(6, init="identity").weight_matrix().detach(), torch.eye(6))


# ----------------------------------------------------------------------------- logit, permutation
def test_logit_transform():
    layer = LogitTransform(0.05)
    y = torch.rand(5, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u, ld = layer.inverse(y)
    p = 0.05 + 0.9 * y
    torch.testing.assert_close(u, torch.log(p / (1 - p)))
    check_transform(layer, u)
    with pytest.raises(ValueError, match="y must lie in"):
        layer.inverse(torch.tensor([[1.2, 0.5]]))


def test_piecewise_linear_cdf_is_a_valid_layer():
    layer = _randomize(PiecewiseLinearCDF(5, 7), std=1.0)
    y = torch.rand(6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z, _ = layer.double().inverse(y)
    check_transform(layer, z)
    # the CDF is piecewise linear: inside one bin, z = Phi^-1(C(y)) with C linear in y
    p = torch.softmax(layer.logits.detach()[0], 0)
    c = torch.cat([torch.zeros(1, dtype=torch.float64), p.cumsum(0)])
    yy = torch.tensor([[0.3, 0.5, 0.5, 0.5, 0.5]], dtype=torch.float64)  # bin 2 of 7 for feature 0
    expected_c = c[2] + (0.3 * 7 - 2) * p[2]
    zz, _ = layer.inverse(yy)
    expected_z = Normal(0.0, 1.0).icdf(1e-6 + (1 - 2e-6) * expected_c)
    torch.testing.assert_close(zz[0, 0], expected_z, atol=1e-7, rtol=1e-7)


def test_histogram_layer_alone_is_the_independent_pixel_model():
    """Under N(0, I), the initialised layer's log p(y) = sum_i log(K * P(level of pixel i)), for any noise."""
    gen = torch.Generator().manual_seed(0)
    k_train = torch.randint(0, 4, (300, 6), generator=gen) * torch.tensor([1, 1, 1, 0, 1, 1])  # pixel 3 always 0
    x_train, levels = k_train.double() / 3, 4
    layer = PiecewiseLinearCDF(6, levels).double()
    layer.initialize(dequantize(x_train, levels, gen))
    flow = Flow([layer], event_shape=(6,))
    k_test = torch.randint(0, 4, (50, 6), generator=gen)
    counts = torch.stack([torch.bincount(k_train[:, i], minlength=levels) for i in range(6)]).double() + 1
    log_p_level = (counts / counts.sum(1, keepdim=True)).log()  # add-one smoothed histogram, by counting
    expected = log_p_level.gather(1, k_test.T).sum(0) + 6 * math.log(levels)
    for seed in (1, 2):
        y = dequantize(k_test.double() / 3, levels, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(flow.log_prob(y), expected, atol=1e-4, rtol=1e-6)
    with pytest.raises(ValueError, match="y must lie in"):
        layer.inverse(torch.full((1, 6), 1.5, dtype=torch.float64))
    with pytest.raises(ValueError, match="eps"):
        PiecewiseLinearCDF(3, 4, eps=0.0)


def test_permutation():
    layer = Permutation([2, 0, 1])
    x = _x(3, 3)
    y, ld = layer(x)
    torch.testing.assert_close(y, x[:, [2, 0, 1]])
    assert torch.equal(ld, torch.zeros(3, dtype=torch.float64))
    check_transform(layer, x)
    check_transform(Permutation(7, generator=torch.Generator().manual_seed(0)), _x(2, 7))
    with pytest.raises(ValueError, match="perm"):
        Permutation([0, 0, 1])


# ----------------------------------------------------------------------------- flows
def test_flow_log_prob_of_a_linear_flow_matches_a_gaussian():
    """x = W^{-1} (exp(log_s) z + b) ... built from ActNorm and a dense 1x1 conv: x is Gaussian."""
    gen = torch.Generator().manual_seed(0)
    act = ActNorm(3)
    conv = Invertible1x1Conv(3, lu=False, generator=gen)
    with torch.no_grad():
        act.log_s.copy_(torch.tensor([0.3, -0.5, 0.1]))
        act.b.copy_(torch.tensor([1.0, -2.0, 0.5]))
        act.initialized.fill_(True)
        conv.weight.add_(0.3 * torch.randn(3, 3, generator=gen))
    flow = Flow([act, conv], event_shape=(3,)).double()
    w_inv = torch.linalg.inv(conv.weight.detach().double())
    s = torch.diag(act.log_s.detach().double().exp())
    mean = w_inv @ act.b.detach().double()
    cov = w_inv @ s @ s @ w_inv.T
    x = _x(20, 3, seed=5)
    torch.testing.assert_close(flow.log_prob(x), MultivariateNormal(mean, cov).log_prob(x))
    samples = flow.sample(100_000, generator=torch.Generator().manual_seed(1))
    assert (samples.mean(0) - mean).abs().max() < 0.05
    assert (torch.cov(samples.T) - cov).abs().max() < 0.1


def test_flow_exp_of_a_normal_is_log_normal():
    """A one-layer flow x = exp(z) (written here, 1-D change of variables) vs torch.distributions."""

    class Exp(Transform):
        def forward(self, z):
            return z.exp(), z.sum(1)

        def inverse(self, x):
            return x.log(), -x.log().sum(1)

    flow = Flow([Exp()], event_shape=(1,))
    x = torch.linspace(0.1, 5, 30, dtype=torch.float64)[:, None]
    ref = torch.distributions.LogNormal(0.0, 1.0).log_prob(x[:, 0])
    torch.testing.assert_close(flow.log_prob(x), ref)


def test_realnvp_and_glow_are_valid_transforms():
    flow = _randomize(RealNVP(dim=2, num_layers=4, hidden=8), std=0.4)
    check_transform(flow, _x(5, 2))
    glow = _randomize(GlowMLP(6, num_layers=2, hidden=8, mixing="lu", preprocess=None), std=0.2)
    check_transform(glow, _x(4, 6))
    glow_img = GlowMLP(6, num_layers=2, hidden=8, mixing="permutation")
    data = torch.rand(5, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    check_transform(_randomize(glow_img, std=0.1), data)
    glow_hist = GlowMLP(6, num_layers=2, hidden=8, mixing="permutation", preprocess="histogram", num_bins=5)
    check_transform(_randomize(glow_hist, std=0.3), data)


def test_log_prob_is_base_density_plus_inverse_log_det():
    flow = _randomize(RealNVP(dim=2, num_layers=4, hidden=8), std=0.4).double()
    x = _x(7, 2, seed=9)
    z, ld = flow.inverse(x)
    ref = Normal(0.0, 1.0).log_prob(z).sum(1) + ld
    torch.testing.assert_close(flow.log_prob(x), ref)
    torch.testing.assert_close(standard_normal_log_prob(z, event_dims=z.dim() - 1), Normal(0.0, 1.0).log_prob(z).sum(1))
    traj = flow.trajectory(z)
    assert len(traj) == flow.num_layers + 1 == 5
    torch.testing.assert_close(traj[0], z)
    torch.testing.assert_close(traj[-1], x)


def test_2d_flow_density_integrates_to_one():
    flow = _randomize(RealNVP(dim=2, num_layers=6, hidden=16), std=0.3, seed=4).double()
    n, lim = 600, 9.0
    g = torch.linspace(-lim, lim, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    with torch.no_grad():
        density = flow.log_prob(grid).exp()
    cell = (g[1] - g[0]) ** 2
    inside = flow.sample(20_000, generator=torch.Generator().manual_seed(0))
    frac_inside = ((inside.abs() <= lim).all(1)).double().mean().item()
    mass = (density.sum() * cell).item()
    assert frac_inside > 0.99
    assert abs(mass - frac_inside) < 0.01, (mass, frac_inside)


def test_sample_temperature_and_shapes():
    flow = _randomize(RealNVP(dim=3, num_layers=2, hidden=8))
    x = flow.sample(5)
    assert x.shape == (5, 3) and not x.requires_grad
    x0 = flow.sample(4, temperature=0.0)
    torch.testing.assert_close(x0, x0[:1].expand(4, 3))
    torch.testing.assert_close(x0[:1], flow(torch.zeros(1, 3))[0].detach())
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    torch.testing.assert_close(flow.sample(6, generator=g1), flow.sample(6, generator=g2))


def test_training_reaches_the_entropy_of_a_gaussian():
    """Fit a RealNVP to a correlated Gaussian: the test NLL approaches its entropy (MultivariateNormal)."""
    torch.manual_seed(0)
    target = MultivariateNormal(torch.tensor([1.0, -1.0]), torch.tensor([[1.0, 0.8], [0.8, 1.0]]))
    x_train, x_test = target.sample((4000,)), target.sample((4000,))
    flow = RealNVP(dim=2, num_layers=4, hidden=16)
    hist = fit_flow(flow, x_train, steps=300, batch_size=256, lr=5e-3, seed=0, device="cpu")
    assert len(hist.train_loss) == 300 and hist.seconds > 0
    assert flow.training, "fit_flow restores the train/eval mode"
    with torch.no_grad():
        nll = -flow.log_prob(x_test).mean().item()
    assert abs(nll - target.entropy().item()) < 0.08, (nll, target.entropy().item())


def test_fit_flow_is_reproducible_clips_and_validates():
    x = torch.randn(500, 2) * torch.tensor([2.0, 0.5])
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        flow = RealNVP(dim=2, num_layers=2, hidden=8)
        runs.append(fit_flow(flow, x, steps=20, batch_size=64, lr=1e-2, seed=3, device="cpu").train_loss)
    assert runs[0] == runs[1]
    # with a tiny clipping norm the parameters can barely move: each step changes them by about lr
    torch.manual_seed(0)
    flow = RealNVP(dim=2, num_layers=2, hidden=8)
    before = torch.cat([p.detach().flatten().clone() for p in flow.parameters()])
    fit_flow(flow, x, steps=5, lr=1e-3, max_grad_norm=1e-8, cosine=False, seed=0, device="cpu")
    after = torch.cat([p.detach().flatten() for p in flow.parameters()])
    assert (after - before).abs().max() < 5 * 5e-3  # Adam's step is about lr whatever the gradient scale
    images = torch.randint(0, 17, (64, 1, 2, 2)).float() / 16
    glow = GlowMLP(4, num_layers=2, hidden=8, mixing=None)
    h = fit_flow(glow, images, num_levels=17, steps=5, batch_size=16, seed=0, device="cpu")
    assert all(math.isfinite(v) for v in h.train_loss)
    with pytest.raises(TypeError, match="flow"):
        fit_flow(torch.nn.Linear(2, 2), x, steps=1)
    with pytest.raises(ValueError, match="steps"):
        fit_flow(flow, x, steps=0)
    with pytest.raises(ValueError, match="max_grad_norm"):
        fit_flow(flow, x, steps=1, max_grad_norm=-1.0)
    with pytest.raises(TypeError, match="data"):
        fit_flow(flow, x.long(), steps=1)


def test_every_parameter_gets_a_gradient():
    flow = GlowMLP(6, num_layers=2, hidden=8, mixing="lu")
    x = torch.rand(16, 6)
    loss = flow_loss(flow, x)
    loss.backward()
    missing = [n for n, p in flow.named_parameters() if p.grad is None]
    assert not missing, missing


# ----------------------------------------------------------------------------- units and losses
def test_dequantize():
    k = torch.randint(0, 256, (2000, 5), generator=torch.Generator().manual_seed(0))
    x = k.float() / 255
    y = dequantize(x, 256, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.floor(y * 256).long(), k), "(k + u) / K stays in bin k"
    u = y * 256 - k
    assert abs(u.mean().item() - 0.5) < 0.02 and abs(u.var().item() - 1 / 12) < 0.01  # U[0, 1)
    digits = torch.randint(0, 17, (10, 4)).float() / 16
    yd = dequantize(digits, 17)
    assert torch.equal(torch.floor(yd * 17), torch.round(digits * 16))
    with pytest.raises(ValueError, match="x must lie in"):
        dequantize(torch.tensor([1.5]), 256)
    with pytest.raises(ValueError, match="num_levels"):
        dequantize(x, 1)


def test_bits_per_dim():
    assert bits_per_dim(0.0, 784, 256) == pytest.approx(8.0)  # uniform density on [0, 1]^D
    assert bits_per_dim(0.0, 64, 17) == pytest.approx(math.log2(17))
    assert bits_per_dim(-100.0, 784) == pytest.approx(100 / (784 * math.log(2)))
    lp = torch.tensor([-50.0, 10.0], dtype=torch.float64)
    torch.testing.assert_close(bits_per_dim(lp, 10, 4), (-lp + 10 * math.log(4)) / (10 * math.log(2)))
    with pytest.raises(TypeError, match="log_prob"):
        bits_per_dim("a", 3)
    with pytest.raises(ValueError, match="num_dims"):
        bits_per_dim(1.0, 0)


def test_flow_loss_flattens_images_and_dequantizes():
    flow = GlowMLP(16, num_layers=2, hidden=8, mixing=None)
    images = torch.randint(0, 256, (8, 1, 4, 4)).float() / 255
    y = dequantize(images.flatten(1), 256, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(flow_loss(flow, (y.reshape(8, 1, 4, 4), torch.zeros(8))), -flow.log_prob(y).mean())
    torch.manual_seed(0)
    a = flow_loss(flow, images, num_levels=256)
    assert torch.isfinite(a)
    with pytest.raises(TypeError, match="model"):
        flow_loss(torch.nn.Linear(2, 2), images)


# ----------------------------------------------------------------------------- bad input
def test_errors_name_the_argument():
    flow = RealNVP(dim=2, num_layers=2, hidden=4)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 2\)"):
        flow.log_prob(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="x must be finite"):
        flow.log_prob(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        flow.log_prob(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        flow.log_prob([[0.0, 1.0]])
    with pytest.raises(ValueError, match="temperature"):
        flow.sample(3, temperature=-1.0)
    with pytest.raises(ValueError, match="num_layers"):
        RealNVP(dim=2, num_layers=1)
    with pytest.raises(ValueError, match="mask must contain both"):
        AffineCoupling(torch.ones(3))
    with pytest.raises(ValueError, match="mask must contain only"):
        AffineCoupling(torch.tensor([0.0, 0.5]))
    with pytest.raises(ValueError, match="activation"):
        AffineCoupling(torch.tensor([0.0, 1.0]), activation="gelu?")
    with pytest.raises(ValueError, match="in_channels"):
        AffineCoupling(checkerboard_mask(2, 2))
    with pytest.raises(ValueError, match=r"y must have shape \(N, 3\) or \(N, 3, H, W\)"):
        ActNorm(3).inverse(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="at least 2 examples"):
        ActNorm(3).inverse(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="init"):
        Invertible1x1Conv(3, init="random")
    with pytest.raises(ValueError, match="alpha"):
        LogitTransform(0.7)
    with pytest.raises(TypeError, match=r"transforms\[1\]"):
        Flow([ActNorm(2), torch.nn.Linear(2, 2)], (2,))
    with pytest.raises(ValueError, match="mixing"):
        GlowMLP(4, mixing="shuffle")
    with pytest.raises(ValueError, match="preprocess"):
        GlowMLP(4, preprocess="sigmoid")
