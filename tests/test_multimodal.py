"""dgm.multimodal: against independent references (explicit per-step Categorical loops, autograd of
exact torch.distributions log-densities, closed-form counts, dgm.diffusion.cfg_eps)."""

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, MultivariateNormal, Normal

import dgm.data
from dgm.data import captions as cap
from dgm.diffusion import cfg_eps
from dgm.multimodal import (Captioner, CaptionEncoder, caption_agreement, caption_mask, captioner_loss,
                            classifier_guided_score, describe, gaussian_mixture, guided_score, mixture_scores,
                            text_agreement)

pytestmark = pytest.mark.usefixtures("one_thread")
PAD, BOS, EOS = (cap.VOCAB.index(w) for w in ("<pad>", "<bos>", "<eos>"))
TEXTS = ["a thin upright seven", "a thick slanted one", "a seven", "a thick two"]


@pytest.fixture(scope="module")
def digits():
    x, y = dgm.data.mnist("test")
    return x[:600], y[:600]


# --- text: Eq. (7.1) -------------------------------------------------------------------------------

def _encoder(seed=0):
    torch.manual_seed(seed)
    return CaptionEncoder(dim=32, layers=2, heads=4).eval()


def test_caption_mask_keeps_the_tokens_up_to_the_first_eos():
    tokens = torch.tensor([[BOS, 3, 4, EOS, PAD, PAD], [BOS, 3, EOS, 5, EOS, 7], [BOS, 3, PAD, 15, EOS, PAD]])
    expected = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0], [1, 1, 0, 1, 1, 0]], dtype=torch.bool)
    assert torch.equal(caption_mask(tokens), expected)


def test_embedding_ignores_added_and_altered_padding():
    enc = _encoder()
    tokens = cap.tokenize(TEXTS)
    with torch.no_grad():
        ref = enc(tokens)
        more_pads = enc(torch.cat([tokens, torch.full((len(tokens), 5), PAD)], dim=1))
        altered = tokens.clone()
        after_eos = ~caption_mask(tokens)
        altered[after_eos] = torch.randint(3, len(cap.VOCAB), (int(after_eos.sum()),),
                                           generator=torch.Generator().manual_seed(1))
        assert not torch.equal(altered, tokens)
        alt = enc(altered)
        alone = enc(cap.tokenize("a seven")[:, :4])          # <bos> a seven <eos>, no padding at all
    torch.testing.assert_close(more_pads, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alt, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone[0], ref[2], atol=1e-5, rtol=1e-5)


def test_embedding_changes_with_every_real_token():
    enc = _encoder()
    tokens = cap.tokenize(["a thin upright seven"])
    with torch.no_grad():
        ref = enc(tokens)
        for j in range(1, 5):                                # a, thin, upright, seven
            other = tokens.clone()
            other[0, j] = 15 if tokens[0, j] != 15 else 16
            assert (enc(other) - ref).abs().max() > 1e-3, f"token {j} is ignored"


def test_gradient_flows_to_every_parameter_but_none_to_padding():
    enc = _encoder().train()
    tokens = cap.tokenize(["a seven", "a two"])              # both 4 real tokens, 2 pads each
    enc(tokens).pow(2).sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name not in ("token.weight", "position.weight"):
            assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"
    assert enc.position.weight.grad[:4].abs().sum(1).min() > 0
    assert torch.equal(enc.position.weight.grad[4:], torch.zeros_like(enc.position.weight.grad[4:]))
    used = tokens[caption_mask(tokens)].unique()
    assert enc.token.weight.grad[used].abs().sum(1).min() > 0
    unused = torch.tensor([i for i in range(len(cap.VOCAB)) if i not in used.tolist()])
    assert torch.equal(enc.token.weight.grad[unused], torch.zeros_like(enc.token.weight.grad[unused]))


def test_encoder_accepts_strings_and_rejects_bad_tokens():
    enc = _encoder()
    with torch.no_grad():
        torch.testing.assert_close(enc(TEXTS), enc(cap.tokenize(TEXTS)))
    with pytest.raises(TypeError, match="tokens"):
        enc(cap.tokenize(TEXTS).float())
    with pytest.raises(ValueError, match="tokens"):
        enc(torch.tensor([[BOS, 99, EOS]]))
    with pytest.raises(ValueError, match="tokens"):
        enc(torch.zeros(2, 20, dtype=torch.long) + 3)       # longer than max_length
    with pytest.raises(ValueError, match="tokens row 1"):
        enc(torch.tensor([[BOS, 3, EOS], [PAD, PAD, PAD]]))
    with pytest.raises(ValueError, match="heads"):
        CaptionEncoder(dim=30, heads=4)
    with pytest.raises(ValueError, match="dim"):
        CaptionEncoder(dim=0)


# --- captioner: Eq. (7.2) --------------------------------------------------------------------------

def _captioner(seed=0):
    torch.manual_seed(seed)
    return Captioner(hidden=32, embed=16, channels=(8, 16)).eval()


def _reference_log_prob(model, x, tokens):
    """sum_j log Categorical(logits_j).log_prob(t_j), each logits_j recomputed from t_{<j} alone."""
    total = torch.zeros(len(x), dtype=torch.float64)
    with torch.no_grad():
        f = model.image_encoder(x)
        for i in range(len(x)):
            for j in range(1, tokens.shape[1]):
                prefix = tokens[i:i + 1, :j]
                inp = torch.cat([model.token(prefix), f[i:i + 1, None].expand(-1, j, -1)], dim=-1)
                out, _ = model.gru(inp, f[i:i + 1][None])
                total[i] += Categorical(logits=model.head(out[0, -1])).log_prob(tokens[i, j]).double()
                if tokens[i, j] == EOS:
                    break
    return total


def test_log_prob_is_the_sum_of_per_step_categorical_log_probs(digits):
    model = _captioner()
    x = digits[0][:4]
    tokens = cap.tokenize(TEXTS)
    tokens[2, 4:] = torch.tensor([7, 9])                     # after <eos>: not part of the caption
    got = model.log_prob(x, tokens)
    assert got.shape == (4,)
    torch.testing.assert_close(got.double(), _reference_log_prob(model, x, tokens), atol=1e-4, rtol=1e-5)


def test_step_j_does_not_see_tokens_from_j_on(digits):
    model = _captioner()
    x = digits[0][:4]
    tokens = cap.tokenize(["a thin upright seven"] * 4)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        ref = model.logits(x, tokens)                        # ref[:, j - 1] parameterises t_j
        for j in range(1, tokens.shape[1]):
            changed = tokens.clone()
            changed[:, j:] = torch.randint(3, len(cap.VOCAB), changed[:, j:].shape, generator=gen)
            out = model.logits(x, changed)
            torch.testing.assert_close(out[:, :j], ref[:, :j])
            if j >= 2:                                       # and it does see token j - 1
                changed = tokens.clone()
                changed[:, j - 1] = 15 if tokens[0, j - 1] != 15 else 16
                assert (model.logits(x, changed)[:, j - 1] - ref[:, j - 1]).abs().max() > 1e-4


def test_greedy_decoding_takes_the_argmax_of_each_conditional(digits):
    model = _captioner()
    x = digits[0][:16]
    tokens = model.sample(x, greedy=True)
    assert tokens.shape == (16, cap.CAPTION_LENGTH) and bool((tokens[:, 0] == BOS).all())
    logits = model.logits(x, tokens)
    for i in range(16):
        for j in range(1, tokens.shape[1]):
            assert tokens[i, j] == logits[i, j - 1].argmax()
            if tokens[i, j] == EOS:
                assert bool((tokens[i, j + 1:] == PAD).all())
                break
    torch.testing.assert_close(model.sample(x, temperature=1e-4, generator=torch.Generator().manual_seed(3)),
                               tokens)


def test_sampling_is_reproducible_and_follows_the_tempered_conditionals(digits):
    model = _captioner()
    x = digits[0][:1].expand(4000, -1, -1, -1)
    a = model.sample(x, temperature=2.0, generator=torch.Generator().manual_seed(5))
    b = model.sample(x, temperature=2.0, generator=torch.Generator().manual_seed(5))
    c = model.sample(x, temperature=2.0, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    probs = torch.softmax(model.logits(x[:1], cap.tokenize("a"))[0, 0].double() / 2.0, -1)
    freq = torch.bincount(a[:, 1], minlength=len(cap.VOCAB)).double() / len(a)
    assert (freq - probs).abs().max() < 4 * math.sqrt(0.25 / len(a))
    ended = (a == EOS).long().cumsum(1) - (a == EOS).long() > 0
    assert bool((a[ended] == PAD).all())


def test_captioner_learns_captions_with_fit(digits):
    from dgm.train import fit

    x, y = digits[0][:256], digits[1][:256]
    tokens = cap.tokenize(cap.captions(x, y))
    model = _captioner()
    before = captioner_loss(model, (x, tokens)).item()
    fit(model, captioner_loss, (x, tokens), steps=150, batch_size=64, lr=3e-3, seed=0, progress=False, device="cpu")
    after = captioner_loss(model.eval(), (x, tokens)).item()
    assert before > 4 * math.log(2) and after < before / 3, (before, after)
    assert text_agreement(model.sample(x, greedy=True), tokens)["valid"] >= 0.95    # it learned the grammar


def test_captioner_rejects_bad_input(digits):
    model = _captioner()
    x = digits[0][:2]
    tokens = cap.tokenize(TEXTS[:2])
    with pytest.raises(ValueError, match="<bos>"):
        model.log_prob(x, tokens[:, 1:])
    with pytest.raises(ValueError, match="tokens has 4 rows"):
        model.log_prob(x, cap.tokenize(TEXTS))
    with pytest.raises(ValueError, match="x must have shape"):
        model.log_prob(x[:, :, :14], tokens)
    with pytest.raises(TypeError, match="x must be"):
        model.sample(x.long())
    with pytest.raises(ValueError, match="temperature"):
        model.sample(x, temperature=0)


# --- agreement: Eq. (7.3) --------------------------------------------------------------------------

def test_real_digits_agree_with_their_own_captions(digits):
    x, y = digits
    texts = cap.captions(x, y)
    got = caption_agreement(x, texts)
    assert got["thickness"] == 1.0 and got["slant"] == 1.0
    assert got["digit"] >= 0.9
    assert got["all"] == pytest.approx(got["digit"])
    assert caption_agreement(x, cap.tokenize(texts)) == got


def test_shuffled_captions_disagree(digits):
    x, y = digits
    texts = cap.captions(x, y)
    perm = torch.randperm(len(texts), generator=torch.Generator().manual_seed(0)).tolist()
    got = caption_agreement(x, [texts[i] for i in perm])
    assert got["digit"] < 0.2 and got["all"] < 0.1
    assert 0.3 < got["thickness"] < 0.7 and 0.3 < got["slant"] < 0.7      # both words about half the digits


def test_agreement_counts_flipped_words_exactly(digits):
    x, y = digits
    x, y = x[:100], y[:100]
    words = [t.split() for t in cap.captions(x, y)]
    for w in words[:13]:
        w[1] = "thick" if w[1] == "thin" else "thin"
    for w in words[50:57]:
        w[2] = "slanted" if w[2] == "upright" else "upright"
    const = torch.nn.Linear(1, 10)                           # a judge that always says "three"
    with torch.no_grad():
        const.weight.zero_()
        const.bias.copy_(torch.arange(10.0) == 3)
    judge = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(1), const)
    judge(x[:1])
    got = caption_agreement(x, [" ".join(w) for w in words], classifier=judge)
    assert got["thickness"] == pytest.approx(0.87) and got["slant"] == pytest.approx(0.93)
    assert got["digit"] == pytest.approx((y == 3).double().mean().item())
    expected_all = sum(int(d == 3) for d in y[:100].tolist()[13:50] + y[:100].tolist()[57:]) / 100
    assert got["all"] == pytest.approx(expected_all)
    assert all(t.split()[3] == "three" for t in describe(x[:5], classifier=judge))


def test_text_agreement_by_hand():
    predicted = ["a thin upright seven", "a thick upright one", "seven thin a", "a thick slanted two"]
    target = ["a thin upright seven", "a thick slanted one", "a thin upright seven", "a thin slanted three"]
    got = text_agreement(predicted, target)
    assert got == pytest.approx({"digit": 2 / 4, "thickness": 2 / 4, "slant": 2 / 4, "all": 1 / 4, "valid": 3 / 4})
    assert text_agreement(cap.tokenize(predicted[:2]), target[:2])["all"] == 0.5


def test_agreement_rejects_bad_captions(digits):
    x = digits[0][:3]
    with pytest.raises(ValueError, match=r"captions\[1\]"):
        caption_agreement(x, ["a thin upright seven", "a fat seven", "a thin upright one"])
    with pytest.raises(ValueError, match="captions has 2"):
        caption_agreement(x, ["a thin upright seven"] * 2)
    with pytest.raises(ValueError, match=r"target\[0\]"):
        text_agreement(["a thin upright seven"], ["seven"])
    with pytest.raises(TypeError, match="captions"):
        caption_agreement(x, torch.zeros(3, 6))


# --- guidance: Eqs. (7.4)-(7.6) --------------------------------------------------------------------

def _mixtures():
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    means = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]], dtype=torch.float64)
    a = torch.tensor([[[1.0, 0.0], [0.6, 0.5]], [[0.7, 0.0], [-0.3, 1.2]], [[0.4, 0.0], [0.1, 0.9]]],
                     dtype=torch.float64)
    full = gaussian_mixture(weights, means, a @ a.transpose(1, 2))
    scales = torch.tensor([[1.0, 0.5], [0.7, 1.3], [0.4, 0.9]], dtype=torch.float64)
    diag = MixtureSameFamily(Categorical(probs=weights), Independent(Normal(means, scales), 1))
    return full, diag


def _autograd_scores(mixture, x, c):
    x = x.clone().requires_grad_(True)
    comps = mixture.component_distribution
    log_px = mixture.log_prob(x)
    log_px_c = comps.log_prob(x[:, None, :])[torch.arange(len(x)), c]
    log_pc = mixture.mixture_distribution.probs.log()[c]
    log_pc_x = log_pc + log_px_c - log_px                    # Bayes' rule, densities exact
    return tuple(torch.autograd.grad(f.sum(), x, retain_graph=True)[0] for f in (log_px, log_pc_x, log_px_c))


@pytest.mark.parametrize("kind", [0, 1], ids=["full-covariance", "diagonal"])
def test_mixture_scores_are_the_gradients_of_the_exact_log_densities(kind):
    mixture = _mixtures()[kind]
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2.5
    for c in (0, 2, torch.arange(64) % 3):
        c_vec = c if isinstance(c, torch.Tensor) else torch.full((64,), c)
        got = mixture_scores(x, c, mixture)
        want = _autograd_scores(mixture, x, c_vec)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, atol=1e-9, rtol=1e-7)
        prior, classifier, conditional = want                 # Eq. (7.4) on the autograd scores
        torch.testing.assert_close(prior + classifier, conditional, atol=1e-9, rtol=1e-7)
        assert classifier.abs().max() > 0.1                  # the identity is not 0 = 0


def test_classifier_guidance_is_the_gradient_of_the_tilted_density_and_equals_cfg():
    mixture = _mixtures()[0]
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    c = torch.arange(32) % 3
    prior, classifier, conditional = mixture_scores(x, c, mixture)
    for gamma in (0.0, 1.0, 3.0):
        xr = x.clone().requires_grad_(True)                  # log p(x) + gamma log p(c | x), by autograd
        log_px = mixture.log_prob(xr)
        log_pc_x = mixture.mixture_distribution.probs.log()[c] + \
            mixture.component_distribution.log_prob(xr[:, None])[torch.arange(32), c] - log_px
        want = torch.autograd.grad((log_px + gamma * log_pc_x).sum(), xr)[0]
        torch.testing.assert_close(classifier_guided_score(prior, classifier, gamma), want)
        torch.testing.assert_close(guided_score(prior, conditional, gamma), want)    # (7.6) at w = gamma
    assert torch.equal(guided_score(prior, conditional, 0), prior)
    torch.testing.assert_close(guided_score(prior, conditional, 1), conditional)


class _ToyConditional(torch.nn.Module):
    """A conditional eps-model with a null label, nonlinear in x, t and y."""
    null_label = 4

    def forward(self, x, t, y):
        return torch.sin(x * (y[:, None].float() + 1)) + 0.1 * t[:, None].float() * x


def test_guided_score_matches_the_chapter_5_guidance():
    model = _ToyConditional()
    x = torch.randn(10, 3, generator=torch.Generator().manual_seed(2))
    t = torch.full((10,), 7)
    y = torch.arange(10) % 4
    for w in (0.0, 1.0, 2.5, -0.5):
        want = cfg_eps(model, x, t, y, w)
        got = guided_score(model(x, t, torch.full_like(y, 4)), model(x, t, y), w)
        torch.testing.assert_close(got, want)


def test_guidance_rejects_bad_input():
    mixture = _mixtures()[0]
    x = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="c must hold"):
        mixture_scores(x, 3, mixture)
    with pytest.raises(ValueError, match="c must be"):
        mixture_scores(x, torch.zeros(3, dtype=torch.long), mixture)
    with pytest.raises(ValueError, match="x must have shape"):
        mixture_scores(torch.zeros(4, 3, dtype=torch.float64), 0, mixture)
    with pytest.raises(ValueError, match="x must be finite"):
        mixture_scores(torch.full((4, 2), float("nan"), dtype=torch.float64), 0, mixture)
    with pytest.raises(TypeError, match="mixture"):
        mixture_scores(x, 0, MultivariateNormal(torch.zeros(2), torch.eye(2)))
    with pytest.raises(ValueError, match="weights"):
        gaussian_mixture(torch.tensor([1.0, -1.0]), torch.zeros(2, 2), torch.eye(2).repeat(2, 1, 1))
    with pytest.raises(ValueError, match="covariances"):
        gaussian_mixture(torch.ones(2), torch.zeros(2, 2), -torch.eye(2).repeat(2, 1, 1))
    with pytest.raises(ValueError, match="cond"):
        guided_score(torch.zeros(3), torch.zeros(4), 1.0)
    with pytest.raises(ValueError, match="w must be"):
        guided_score(torch.zeros(3), torch.zeros(3), float("nan"))
    with pytest.raises(ValueError, match="scale must be"):
        classifier_guided_score(torch.zeros(3), torch.zeros(3), float("inf"))
