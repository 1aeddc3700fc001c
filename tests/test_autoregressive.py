"""Tests for dgm.autoregressive (chapter 6) against independent references: exact enumeration of all
2^d binary patterns (normalisation, conditionals by marginalising the joint table),
torch.autograd.functional.jacobian (causality), torch.distributions (Bernoulli, Categorical),
dgm.flows.bits_per_dim, closed-form masks, and the empirical law of many samples."""

import math
from itertools import product

import pytest
import torch
from torch.autograd.functional import jacobian
from torch.distributions import Bernoulli, Categorical

from dgm import flows
from dgm.autoregressive import (
    FVBN,
    MADE,
    GatedPixelCNN,
    MaskedConv2d,
    MaskedLinear,
    PixelCNN,
    all_binary,
    bits_per_dim,
    conv_mask,
    log_prob,
    made_degrees,
    made_masks,
    nll_loss,
    receptive_field,
    sample,
)
from dgm.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")

ORDERS = [None, [8, 7, 6, 5, 4, 3, 2, 1, 0], [3, 0, 7, 1, 8, 5, 2, 6, 4], [5, 2, 8, 0, 4, 6, 1, 3, 7]]


def _randomize(module, std=0.5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(std * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


def _rank(order, d):
    order = list(range(d)) if order is None else list(order)
    rank = [0] * d
    for k, i in enumerate(order):
        rank[i] = k
    return rank


# ----------------------------------------------------------------------------- the chain rule (6.1)
def test_all_binary_lists_every_pattern_once():
    x = all_binary(4)
    assert x.shape == (16, 4)
    assert len({tuple(r.tolist()) for r in x}) == 16
    assert x[5].tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="^d must be <= 20"):
        all_binary(21)
    with pytest.raises(ValueError, match="^d must be a positive int"):
        all_binary(0)


def _fvbn_by_hand(model, x):
    """log p(x) from Eq. (6.2) with explicit loops over i and the j before i (no mask, no matmul)."""
    w, b = model.weight.detach().double(), model.bias.detach().double()
    rank = _rank(model.order.tolist(), model.dim)
    out = []
    for row in x.double():
        total = 0.0
        for i in range(model.dim):
            a = b[i].item() + sum(w[i, j].item() * row[j].item() for j in range(model.dim) if rank[j] < rank[i])
            p1 = 1.0 / (1.0 + math.exp(-a))
            total += math.log(p1 if row[i] == 1 else 1.0 - p1)
        out.append(total)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("order", [None, [2, 0, 3, 1]])
def test_fvbn_log_prob_is_the_sum_of_its_conditionals_computed_by_hand(order):
    model = _randomize(FVBN(4, order=order)).double()
    x = all_binary(4, torch.float64)
    assert torch.allclose(model.log_prob(x), _fvbn_by_hand(model, x), atol=1e-12)


def _conditionals_from_the_joint(p, x, order):
    """p(x_{o[k]} | x_{o[:k]}) for every pattern and position, by summing the joint table over the
    patterns that share the prefix (no model involved): (n, d), column i = variable i."""
    n, d = x.shape
    order = list(range(d)) if order is None else list(order)
    out = torch.zeros(n, d, dtype=torch.float64)
    marg_prev = torch.ones(n, dtype=torch.float64)
    for k, i in enumerate(order):
        cols = x[:, order[: k + 1]].long()
        code = (cols * (2 ** torch.arange(k, -1, -1))).sum(dim=1)
        table = torch.zeros(2 ** (k + 1), dtype=torch.float64).index_add_(0, code, p)
        marg = table[code]
        out[:, i] = marg / marg_prev
        marg_prev = marg
    return out


@pytest.mark.parametrize("kind, order", [("fvbn", None), ("fvbn", ORDERS[2]), ("made", None), ("made", ORDERS[2]),
                                         ("made", ORDERS[3])])
def test_probabilities_of_all_patterns_sum_to_one_and_match_the_joint_table(kind, order):
    d = 9
    model = FVBN(d, order=order) if kind == "fvbn" else MADE(d, hidden=(32, 32), order=order, seed=1)
    model = _randomize(model, std=0.7).double()
    x = all_binary(d, torch.float64)
    with torch.no_grad():
        lp = model.log_prob(x)
        logits = model.logits(x)
    p = lp.exp()
    assert abs(p.sum().item() - 1.0) < 1e-9
    # log_prob = sum of the Bernoulli conditionals of the logits (torch.distributions)
    assert torch.allclose(lp, Bernoulli(logits=logits).log_prob(x).sum(dim=1), atol=1e-12)
    assert torch.allclose(log_prob(model, x), lp)
    # the conditionals the model claims are those of its joint distribution
    cond = _conditionals_from_the_joint(p, x, order)
    claimed = torch.where(x == 1, torch.sigmoid(logits), 1 - torch.sigmoid(logits))
    assert torch.allclose(cond, claimed, atol=1e-9)


# ----------------------------------------------------------------------------- autoregressive property
def _ar_violations(jac, order, d):
    """Entries d out_i / d x_j != 0 with j not before i in the order."""
    rank = torch.tensor(_rank(order, d))
    forbidden = rank[None, :] >= rank[:, None]
    return int((jac[forbidden] != 0).sum())


@pytest.mark.parametrize("order", ORDERS)
def test_made_jacobian_is_zero_on_and_above_the_diagonal_in_its_order(order):
    model = _randomize(MADE(9, hidden=(40, 40), order=order, seed=3), std=0.5).double()
    x = torch.rand(9, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    jac = jacobian(lambda v: model.logits(v[None])[0], x)
    assert jac.shape == (9, 9)
    assert _ar_violations(jac, order, 9) == 0
    assert int((jac != 0).sum()) > 9, "the model ignores its input"
    # the check can fail: a MADE whose output mask is not strict sees x_i itself
    last = model.net[-1]
    last.mask.fill_(1.0)
    jac = jacobian(lambda v: model.logits(v[None])[0], x)
    assert _ar_violations(jac, order, 9) > 0


def test_made_degrees_follow_the_paper():
    gen = torch.Generator().manual_seed(0)
    degrees = made_degrees(6, (50, 30), order=[2, 0, 1, 5, 4, 3], generator=gen)
    assert degrees[0].tolist() == [2, 3, 1, 6, 5, 4]
    for m in degrees[1:]:
        assert int(m.min()) >= 1 and int(m.max()) <= 5
    masks = made_masks(degrees)
    assert [tuple(m.shape) for m in masks] == [(50, 6), (30, 50), (6, 30)]
    assert masks[-1][2].sum() == 0  # the first variable of the order sees nothing


def test_masked_linear_masked_weights_get_no_gradient():
    layer = MaskedLinear(3, 2, torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]))
    layer(torch.randn(4, 3)).sum().backward()
    assert torch.equal(layer.weight.grad[layer.mask == 0], torch.zeros(3))
    with pytest.raises(ValueError, match="^mask must have the weight's shape"):
        layer.set_mask(torch.ones(3, 2))


def _raster_violations(jac, channels):
    """jac: (K, C, H, W, C, H, W). Entries where the output at (c, r, q) depends on an input that is
    not before it (raster order over pixels, then channel order inside a pixel)."""
    _, c, h, w = jac.shape[:4]
    pos = torch.arange(h * w * c).reshape(h, w, c).permute(2, 0, 1)  # position of (c, r, q)
    forbidden = pos.reshape(c, h, w, 1, 1, 1) <= pos.reshape(1, 1, 1, c, h, w)
    return int((jac.abs().sum(0)[forbidden] != 0).sum())


IMAGE_MODELS = [
    ("plain", dict(in_channels=1, levels=3, channels=8, num_layers=2, first_kernel_size=5)),
    ("plain", dict(in_channels=3, levels=4, channels=9, num_layers=2)),
    ("gated", dict(in_channels=1, levels=2, channels=8, num_layers=2)),
    ("gated", dict(in_channels=3, levels=4, channels=6, num_layers=2)),
    ("gated", dict(in_channels=1, levels=2, channels=8, num_layers=2, num_classes=3)),
]


def _image_model(kind, kw, seed=0):
    model = PixelCNN(**kw) if kind == "plain" else GatedPixelCNN(**kw)
    return _randomize(model, std=0.3, seed=seed).double().eval()


@pytest.mark.parametrize("kind, kw", IMAGE_MODELS)
def test_pixelcnn_logits_do_not_depend_on_pixels_at_or_after_their_own(kind, kw):
    model = _image_model(kind, kw)
    c = kw["in_channels"]
    labels = torch.tensor([1]) if kw.get("num_classes") else None
    x = torch.rand(c, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    jac = jacobian(lambda v: model(v[None], labels)[0], x)
    assert jac.shape == (kw["levels"], c, 5, 5, c, 5, 5)
    assert _raster_violations(jac, c) == 0
    assert int((jac != 0).sum()) > 0
    # the check can fail: a type-B first layer lets x_i see itself
    model.layers[0].horizontal.mask.fill_(1.0) if kind == "gated" else model.first.mask.fill_(1.0)
    jac = jacobian(lambda v: model(v[None], labels)[0], x)
    assert _raster_violations(jac, c) > 0


def test_masks_of_type_a_and_b_are_the_papers():
    a = conv_mask(1, 1, 3, "A")[0, 0]
    b = conv_mask(1, 1, 3, "B")[0, 0]
    assert a.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert b.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    centre_a = conv_mask(3, 3, 1, "A", data_channels=3)[:, :, 0, 0]
    centre_b = conv_mask(3, 3, 1, "B", data_channels=3)[:, :, 0, 0]
    assert torch.equal(centre_a, torch.tril(torch.ones(3, 3), -1))  # G sees R, B sees R and G
    assert torch.equal(centre_b, torch.tril(torch.ones(3, 3)))
    assert conv_mask(1, 1, 3, "A", vertical=True)[0, 0].tolist() == [[1, 1, 1], [0, 0, 0], [0, 0, 0]]


# ----------------------------------------------------------------------------- receptive field
def test_receptive_field_matches_the_jacobian_and_shows_the_blind_spot_only_in_the_plain_stack():
    torch.manual_seed(0)
    plain = PixelCNN(levels=2, channels=8, num_layers=6, kernel_size=3, first_kernel_size=3).double()
    gated = GatedPixelCNN(levels=2, channels=8, num_layers=6, kernel_size=3).double()
    r, c = 5, 3
    before = torch.zeros(8, 8, dtype=torch.bool)
    before[:r] = True
    before[r, :c] = True
    for model in (plain, gated):
        seen = receptive_field(model, (8, 8), (r, c))
        x = torch.rand(1, 8, 8, dtype=torch.float64)
        jac = jacobian(lambda v: model(v[None])[0, :, 0, r, c], x)  # (K, 1, 8, 8)
        assert torch.equal(seen, (jac != 0).any(dim=0)[0])
        assert not bool((seen & ~before).any()), "sees the present or the future"
    plain_seen = receptive_field(plain, (8, 8), (r, c))
    gated_seen = receptive_field(gated, (8, 8), (r, c))
    assert bool(gated_seen[before].all()), "the gated PixelCNN has a blind spot"
    blind = before & ~plain_seen
    assert bool(blind.any()) and bool(blind[r - 1, c + 2:].any())  # above and to the right
    assert bool(plain_seen[r - 1, c]) and bool(plain_seen[r, c - 1])


# ----------------------------------------------------------------------------- likelihood (6.6)
@pytest.mark.parametrize("kind, kw", IMAGE_MODELS)
def test_log_prob_agrees_with_categorical_on_the_same_logits(kind, kw):
    model = _image_model(kind, kw, seed=2)
    k, c = kw["levels"], kw["in_channels"]
    levels = torch.randint(0, k, (3, c, 4, 5), generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 2, 1]) if kw.get("num_classes") else None
    with torch.no_grad():
        logits = model(levels.double() / (k - 1), labels)  # (N, K, C, H, W)
        ref = Categorical(logits=logits.permute(0, 2, 3, 4, 1)).log_prob(levels).flatten(1).sum(1)
        assert torch.allclose(log_prob(model, levels, labels), ref, atol=1e-10)
        assert torch.allclose(log_prob(model, levels.double() / (k - 1), labels), ref, atol=1e-10)


def test_bits_per_dim_is_chapter_fours_and_a_uniform_model_scores_log2_levels():
    nll = torch.tensor([100.0, 250.0])
    assert torch.allclose(bits_per_dim(nll, 64), flows.bits_per_dim(-nll, 64))
    assert bits_per_dim(64 * math.log(2), 64) == pytest.approx(1.0)
    model = PixelCNN(levels=4, channels=8, num_layers=1)
    with torch.no_grad():
        model.head[-1].weight.zero_()
        model.head[-1].bias.zero_()
    x = torch.randint(0, 4, (2, 1, 6, 6))
    assert torch.allclose(bits_per_dim(-log_prob(model, x), 36), torch.full((2,), 2.0))


# ----------------------------------------------------------------------------- sampling (6.7)
def _hand_fvbn():
    model = FVBN(3).double()
    with torch.no_grad():
        model.bias.copy_(torch.tensor([0.4, -1.0, 0.2], dtype=torch.float64))
        model.weight.copy_(torch.tensor([[0, 0, 0], [2.0, 0, 0], [-1.5, 1.0, 0]], dtype=torch.float64))
    return model


def _hand_probs(x):
    """The law of _hand_fvbn, Eq. (6.2) written out."""
    s = lambda a: 1 / (1 + math.exp(-a))  # noqa: E731
    p0, p1, p2 = s(0.4), s(-1.0 + 2.0 * x[0]), s(0.2 - 1.5 * x[0] + 1.0 * x[1])
    return (p0 if x[0] else 1 - p0) * (p1 if x[1] else 1 - p1) * (p2 if x[2] else 1 - p2)


def _assert_frequencies(draws, patterns, probs, n):
    for pattern, p in zip(patterns, probs):
        freq = (draws == pattern).all(dim=1).double().mean().item()
        se = math.sqrt(p * (1 - p) / n)
        assert abs(freq - p) < 4 * se + 1e-12, (pattern, freq, p)


def test_fvbn_samples_follow_the_known_law():
    model, n = _hand_fvbn(), 20_000
    patterns = all_binary(3, torch.float64)
    probs = [_hand_probs(x.tolist()) for x in patterns]
    assert sum(probs) == pytest.approx(1.0)
    assert torch.allclose(model.log_prob(patterns).exp(), torch.tensor(probs, dtype=torch.float64))
    draws = sample(model, n, generator=torch.Generator().manual_seed(0))
    _assert_frequencies(draws, patterns, probs, n)


def test_fvbn_completion_copies_the_known_entries_and_draws_the_rest_from_the_conditionals():
    model, n = _hand_fvbn(), 20_000
    known = torch.tensor([False, True, False])
    given = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    draws = sample(model, n, generator=torch.Generator().manual_seed(1), known=known, given=given)
    assert bool((draws[:, 1] == 1).all())
    # x_0 ~ p(x_0), then x_2 ~ p(x_2 | x_0, x_1 = 1): the chain's conditionals, not a posterior
    s = lambda a: 1 / (1 + math.exp(-a))  # noqa: E731
    patterns = [torch.tensor([a, 1.0, b], dtype=torch.float64) for a, b in product((0.0, 1.0), repeat=2)]
    probs = [(s(0.4) if a else 1 - s(0.4)) * (s(0.2 - 1.5 * a + 1.0) if b else 1 - s(0.2 - 1.5 * a + 1.0))
             for a, b in product((0, 1), repeat=2)]
    _assert_frequencies(draws, patterns, probs, n)
    # a mask per example: only the rows that know x_1 keep it
    known_rows = torch.zeros(1000, 3, dtype=torch.bool)
    known_rows[::2, 1] = True
    some = sample(model, 1000, generator=torch.Generator().manual_seed(2), known=known_rows,
                  given=torch.zeros(1000, 3, dtype=torch.float64))
    assert bool((some[::2, 1] == 0).all()) and bool((some[1::2, 1] == 1).any())


def test_image_samples_follow_the_models_law_with_temperature_and_completion():
    torch.manual_seed(0)
    model = _randomize(PixelCNN(levels=3, channels=8, num_layers=1, first_kernel_size=3), std=0.6).double()
    n = 20_000
    images = torch.tensor(list(product(range(3), repeat=2)))  # the 9 images of 2 x 1 pixels (two rows)
    with torch.no_grad():
        probs = log_prob(model, images.reshape(9, 1, 2, 1)).exp()
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-12)
    draws = model.to_levels(sample(model, n, (2, 1), generator=torch.Generator().manual_seed(2))).reshape(n, 2)
    _assert_frequencies(draws, images, probs.tolist(), n)
    # temperature: the first pixel has no context, p_T = softmax(logits / T)
    hot = model.to_levels(sample(model, n, (2, 1), generator=torch.Generator().manual_seed(3), temperature=0.5))
    with torch.no_grad():
        first = torch.softmax(model(torch.zeros(1, 1, 2, 1, dtype=torch.float64))[0, :, 0, 0, 0] / 0.5, dim=0)
    _assert_frequencies(hot.reshape(n, 2)[:, :1], torch.arange(3)[:, None], first.tolist(), n)
    # completion: the first pixel copied from given, the second from p(x_2 | x_1 = 2)
    given = torch.tensor([[1.0], [0.0]], dtype=torch.float64)  # levels (2, 0)
    known = torch.tensor([[True], [False]])
    done = model.to_levels(sample(model, n, (2, 1), generator=torch.Generator().manual_seed(4), given=given,
                                  known=known)).reshape(n, 2)
    assert bool((done[:, 0] == 2).all())
    with torch.no_grad():
        second = torch.softmax(model(given[None, None])[0, :, 0, 1, 0], dim=0)
    _assert_frequencies(done[:, 1:], torch.arange(3)[:, None], second.tolist(), n)


def test_channels_inside_a_pixel_are_drawn_in_order_from_their_conditionals():
    model = _randomize(PixelCNN(in_channels=3, levels=2, channels=6, num_layers=1, first_kernel_size=3),
                       std=0.8, seed=5).double()
    n = 20_000
    images = all_binary(3, torch.float64)  # the 8 images of one RGB pixel with 2 levels
    with torch.no_grad():
        probs = log_prob(model, images.reshape(8, 3, 1, 1)).exp()
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-12)
    draws = sample(model, n, (3, 1, 1), generator=torch.Generator().manual_seed(6)).reshape(n, 3)
    _assert_frequencies(draws, images, probs.tolist(), n)


def test_sample_of_a_gated_model_has_the_data_convention_and_is_reproducible():
    model = GatedPixelCNN(levels=4, channels=8, num_layers=1, num_classes=2)
    labels = torch.tensor([0, 1, 1])
    a = sample(model, 3, (4, 4), generator=torch.Generator().manual_seed(0), c=labels)
    b = sample(model, 3, (4, 4), generator=torch.Generator().manual_seed(0), c=labels)
    assert a.shape == (3, 1, 4, 4) and torch.equal(a, b)
    assert set(torch.unique(a * 3).tolist()) <= {0.0, 1.0, 2.0, 3.0}


# ----------------------------------------------------------------------------- training
def _bars(n, seed=0):
    """3 x 3 images of one horizontal or vertical bar, 5% pixel noise."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 3, (n,), generator=gen)
    vertical = torch.rand(n, generator=gen) < 0.5
    x = torch.zeros(n, 3, 3)
    x[torch.arange(n), idx, :] = 1.0
    x[vertical] = x[vertical].transpose(1, 2)
    flip = torch.rand(n, 3, 3, generator=gen) < 0.05
    return torch.where(flip, 1 - x, x).reshape(n, 1, 3, 3)


def _independent_nll(train, test):
    p = train.flatten(1).mean(0).clamp(1e-3, 1 - 1e-3)
    return -Bernoulli(probs=p).log_prob(test.flatten(1)).sum(1).mean().item()


@pytest.mark.parametrize("kind", ["made", "pixelcnn"])
def test_a_short_training_beats_the_independent_pixel_baseline(kind):
    train, test = _bars(2000, seed=0), _bars(1000, seed=1)
    if kind == "made":
        model = MADE(9, hidden=(64,), seed=0)
    else:
        model = PixelCNN(levels=2, channels=16, num_layers=2, first_kernel_size=3)
    fit(model, nll_loss, train, steps=100 if kind == "made" else 80, batch_size=100, lr=1e-2, device="cpu", seed=0, progress=False)
    with torch.no_grad():
        nll = -log_prob(model, test).mean().item()
    baseline = _independent_nll(train, test)
    assert nll < baseline - 1.0, (nll, baseline)


def test_nll_loss_uses_the_labels_of_a_conditional_model():
    model = GatedPixelCNN(levels=2, channels=4, num_layers=1, num_classes=2)
    x = _bars(4)
    y = torch.tensor([0, 1, 0, 1])
    assert torch.allclose(nll_loss(model, (x, y)), -log_prob(model, x, y).mean())
    with pytest.raises(ValueError, match="^batch must be an \\(x, c\\) tuple"):
        nll_loss(model, x)


# ----------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("make, error, name", [
    (lambda: MADE(1), ValueError, "dim"),
    (lambda: MADE(3, order=[0, 0, 1]), ValueError, "order"),
    (lambda: MADE(3, hidden=(8, 0)), ValueError, "hidden"),
    (lambda: FVBN(3, order=[0.0, 1.0, 2.0]), ValueError, "order"),
    (lambda: MaskedConv2d(1, 4, 3, mask_type="C"), ValueError, "mask_type"),
    (lambda: MaskedConv2d(1, 4, 4), ValueError, "kernel_size"),
    (lambda: PixelCNN(levels=1), ValueError, "levels"),
    (lambda: PixelCNN(in_channels=3, channels=8), ValueError, "channels"),
    (lambda: GatedPixelCNN(num_layers=0), ValueError, "num_layers"),
    (lambda: log_prob(torch.nn.Linear(2, 2), torch.zeros(1, 2)), TypeError, "model"),
    (lambda: log_prob(PixelCNN(levels=2, channels=4, num_layers=1), torch.full((1, 1, 2, 2), 2)), ValueError, "x"),
    (lambda: log_prob(PixelCNN(levels=2, channels=4, num_layers=1), torch.zeros(1, 3, 2, 2)), ValueError, "x"),
    (lambda: log_prob(FVBN(3), torch.full((2, 3), 0.5)), ValueError, "x"),
    (lambda: PixelCNN(levels=2, channels=4, num_layers=1)(torch.zeros(1, 1, 2, 2, dtype=torch.long)), TypeError, "x"),
    (lambda: GatedPixelCNN(channels=4, num_layers=1, num_classes=2)(torch.zeros(1, 1, 2, 2)), ValueError, "c"),
    (lambda: sample(FVBN(3), 2, temperature=0.0), ValueError, "temperature"),
    (lambda: sample(PixelCNN(channels=4, num_layers=1), 2), ValueError, "shape"),
    (lambda: sample(PixelCNN(channels=4, num_layers=1), 2, (2, 2), known=torch.ones(2, 2, dtype=torch.bool)),
     ValueError, "given"),
    (lambda: receptive_field(PixelCNN(channels=4, num_layers=1), (4, 4), (4, 0)), ValueError, "pixel"),
    (lambda: bits_per_dim(1.0, 0), ValueError, "dims"),
    (lambda: bits_per_dim("1", 3), TypeError, "nll_nats"),
    (lambda: GatedPixelCNN(levels=4, categorical="yes"), TypeError, "categorical"),
    (lambda: PixelCNN(levels=4, categorical=1), TypeError, "categorical"),
])
def test_bad_arguments_raise_errors_naming_them(make, error, name):
    with pytest.raises(error, match=f"^{name} "):
        make()


def test_cropping_the_rows_below_changes_no_logit_above():
    """sample() runs each step on rows 0..r only; that is exact because no mask reaches below."""
    for kind, kw in IMAGE_MODELS[:4] + CATEGORICAL_MODELS[:3]:
        model = _image_model(kind, kw, seed=7)
        x = torch.rand(2, kw["in_channels"], 6, 5, dtype=torch.float64)
        with torch.no_grad():
            full = model(x)
            for r in (0, 2, 5):
                assert torch.allclose(model(x[:, :, : r + 1])[:, :, :, r], full[:, :, :, r], atol=1e-12)


# ----------------------------------------------------------------------------- categorical input (6.8)
CATEGORICAL_MODELS = [
    ("plain", dict(in_channels=1, levels=5, channels=8, num_layers=2, first_kernel_size=5, categorical=True)),
    ("gated", dict(in_channels=1, levels=5, channels=8, num_layers=2, categorical=True)),
    ("gated", dict(in_channels=3, levels=4, channels=6, num_layers=2, categorical=True)),
    ("gated", dict(in_channels=1, levels=3, channels=8, num_layers=2, num_classes=3, categorical=True)),
]


def test_categorical_features_are_the_one_hot_of_each_level_in_its_channel_group():
    model = GatedPixelCNN(in_channels=3, levels=4, channels=6, num_layers=1, categorical=True)
    levels = torch.randint(0, 4, (2, 3, 3, 2), generator=torch.Generator().manual_seed(0))
    u = model.features(levels.float() / 3)
    assert u.shape == (2, 12, 3, 2) and model.input_features == 12
    for n, c, r, q in product(range(2), range(3), range(3), range(2)):
        for k in range(4):  # feature k * C + c is "channel c has level k"; its group is (k * C + c) % C = c
            assert u[n, k * 3 + c, r, q].item() == float(levels[n, c, r, q].item() == k)
    ordinal = GatedPixelCNN(in_channels=3, levels=4, channels=6, num_layers=1)
    assert ordinal.input_features == 3
    assert torch.equal(ordinal.features(levels.float() / 3), 2 * levels.float() / 3 - 1)


def _raster_violations_of_features(jac, data_channels):
    """jac: (K, C, H, W, F, H, W) w.r.t. the first layer's input; feature f belongs to channel f % C."""
    k, c, h, w, f = jac.shape[:5]
    group = torch.zeros(f, c)
    group[torch.arange(f), torch.arange(f) % c] = 1.0
    per_channel = torch.einsum("kcrqfab,fd->kcrqdab", jac.abs(), group.to(jac))
    return _raster_violations(per_channel, data_channels)


@pytest.mark.parametrize("kind, kw", CATEGORICAL_MODELS)
def test_categorical_models_are_causal_by_the_jacobian_of_their_one_hot_input(kind, kw):
    model = _image_model(kind, kw)
    c = kw["in_channels"]
    labels = torch.tensor([2]) if kw.get("num_classes") else None
    u = torch.rand(model.input_features, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    jac = jacobian(lambda v: model.logits_from_features(v[None], labels)[0], u)
    assert jac.shape == (kw["levels"], c, 5, 5, model.input_features, 5, 5)
    assert _raster_violations_of_features(jac, c) == 0
    assert int((jac != 0).sum()) > 0
    # every level of an earlier pixel reaches the output: each of the K * C features of pixel (0, 0)
    assert bool((jac[..., 0, 0] != 0).flatten(0, 3).any(dim=0).all())
    # the check can fail: a type-B first layer lets x_i see its own one-hot
    model.layers[0].horizontal.mask.fill_(1.0) if kind == "gated" else model.first.mask.fill_(1.0)
    jac = jacobian(lambda v: model.logits_from_features(v[None], labels)[0], u)
    assert _raster_violations_of_features(jac, c) > 0


@pytest.mark.parametrize("kind, kw", CATEGORICAL_MODELS)
def test_categorical_log_prob_agrees_with_categorical_and_sums_to_one(kind, kw):
    model = _image_model(kind, kw, seed=4)
    k, c = kw["levels"], kw["in_channels"]
    labels3 = torch.tensor([0, 2, 1]) if kw.get("num_classes") else None
    levels = torch.randint(0, k, (3, c, 3, 4), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(levels.double() / (k - 1), labels3)
        ref = Categorical(logits=logits.permute(0, 2, 3, 4, 1)).log_prob(levels).flatten(1).sum(1)
        assert torch.allclose(log_prob(model, levels, labels3), ref, atol=1e-10)
        # all K^(C*2) images of two pixels (a 1 x 2 sequence): probabilities sum to 1
        every = torch.tensor(list(product(range(k), repeat=2 * c))).reshape(-1, 1, 2, c).permute(0, 3, 1, 2)
        labels = torch.full((len(every),), 1) if kw.get("num_classes") else None
        total = log_prob(model, every, labels).exp().sum().item()
    assert total == pytest.approx(1.0, abs=1e-10)


def test_categorical_receptive_field_has_no_blind_spot_and_matches_the_jacobian():
    torch.manual_seed(0)
    model = GatedPixelCNN(levels=6, channels=8, num_layers=5, categorical=True).double()
    r, c = 4, 2
    before = torch.zeros(7, 7, dtype=torch.bool)
    before[:r] = True
    before[r, :c] = True
    seen = receptive_field(model, (7, 7), (r, c))
    u = torch.rand(6, 7, 7, dtype=torch.float64)
    jac = jacobian(lambda v: model.logits_from_features(v[None])[0, :, 0, r, c], u)  # (K, F, 7, 7)
    assert torch.equal(seen, (jac != 0).flatten(0, 1).any(dim=0))
    assert torch.equal(seen, before)


def test_categorical_samples_follow_the_models_law():
    model = _randomize(GatedPixelCNN(levels=3, channels=8, num_layers=1, categorical=True), std=0.7, seed=3).double()
    n = 20_000
    images = torch.tensor(list(product(range(3), repeat=2)))  # the 9 sequences of length 2 (a 1 x 2 image)
    with torch.no_grad():
        probs = log_prob(model, images.reshape(9, 1, 1, 2)).exp()
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-12)
    draws = model.to_levels(sample(model, n, (1, 2), generator=torch.Generator().manual_seed(5))).reshape(n, 2)
    _assert_frequencies(draws, images, probs.tolist(), n)


def test_categorical_input_learns_a_relabelling_that_the_ordinal_input_does_not():
    """x_2 = pi(x_1) for a random permutation pi of K = 64 levels (codebook indices have no order):
    with one-hot input the first layer holds a free embedding of each level and the gated layer
    learns the table; with the value 2x - 1 as input the same network must bend a line into a
    scrambled table and stays far from it in the same budget."""
    k, n = 64, 2048
    gen = torch.Generator().manual_seed(0)
    pi = torch.randperm(k, generator=gen)
    first = torch.randint(0, k, (n,), generator=gen)
    seqs = torch.stack([first, pi[first]], 1).reshape(n, 1, 1, 2).float() / (k - 1)
    nll = {}
    for categorical in (True, False):
        torch.manual_seed(0)
        model = GatedPixelCNN(levels=k, channels=16, num_layers=1, categorical=categorical)
        fit(model, nll_loss, seqs, steps=200, batch_size=128, lr=1e-2, device="cpu", seed=0, progress=False)
        with torch.no_grad():  # -log p(x_2 | x_1), by torch.distributions on the logits of position 2
            logits = model(seqs)[:, :, 0, 0, 1]
            nll[categorical] = -Categorical(logits=logits).log_prob(pi[first]).mean().item()
    assert nll[True] < 0.1 and nll[False] > 1.0, nll
