"""dgm.multimodal.latent: caption-conditioned latent diffusion, Eqs. (7.6)-(7.8), against independent
references (tokenize of the shortened caption, explicit two-call guidance, autograd Jacobians,
enumeration of the 40 captions)."""

import pytest
import torch

from dgm.data import captions as cap
from dgm.diffusion import NoiseSchedule, sample_ddim
from dgm.multimodal import (CaptionDenoiser, CaptionEpsLoss, CaptionGuided, ClassifierGuided,
                            NoisyCaptionClassifier, NoisyClassifierLoss, drop_words, word_targets)
from dgm.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")
ALL = [cap.caption(d, t, s) for d in range(10) for t in (0, 1) for s in (0, 1)]
ATTRIBUTE_WORDS = set(cap.DIGIT_NAMES + cap.THICKNESS_WORDS + cap.SLANT_WORDS)


def _perturbed(model, seed=0):
    """A model whose zero-initialised layers are given random weights, so that every input matters."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


# --- word dropout ----------------------------------------------------------------------------------

def test_drop_words_extremes_are_the_tokenized_short_captions():
    tokens = cap.tokenize(ALL)
    assert torch.equal(drop_words(tokens, 0.0, 0.0), tokens)
    assert torch.equal(drop_words(tokens, 1.0, 0.0), cap.tokenize(["a"] * len(ALL)))
    assert torch.equal(drop_words(tokens, 0.0, 1.0), cap.tokenize([""] * len(ALL)))


def test_drop_words_removes_each_attribute_word_independently_with_probability_p():
    tokens = cap.tokenize(["a thick slanted seven"] * 4000)
    out = drop_words(tokens, 0.3, 0.0, generator=torch.Generator().manual_seed(0))
    texts = cap.detokenize(out)
    for text in set(texts):                                   # each row: the caption, words removed
        words = text.split()
        assert words[0] == "a" and all(w in ("thick", "slanted", "seven") for w in words[1:])
        assert words[1:] == [w for w in ("thick", "slanted", "seven") if w in words]
        assert torch.equal(cap.tokenize(text)[0], out[texts.index(text)])
    for word in ("thick", "slanted", "seven"):
        rate = sum(word not in t.split() for t in texts) / len(texts)
        assert abs(rate - 0.3) < 4 * (0.3 * 0.7 / len(texts)) ** 0.5
    both = sum(("thick" not in t) and ("seven" not in t) for t in texts) / len(texts)
    assert abs(both - 0.09) < 0.025                            # independent drops


def test_drop_words_rejects_bad_probabilities():
    with pytest.raises(ValueError, match="p_word"):
        drop_words(cap.tokenize(ALL[:2]), 1.5)
    with pytest.raises(ValueError, match="p_caption"):
        drop_words(cap.tokenize(ALL[:2]), 0.1, -0.1)


def test_word_targets_by_hand():
    got = word_targets(cap.tokenize(["a thick slanted seven", "a seven", "a thin two", ""]))
    assert got.tolist() == [[7, 1, 1], [7, -1, -1], [2, 0, -1], [-1, -1, -1]]


# --- the denoiser and classifier-free guidance (7.6), (7.7) ----------------------------------------

def test_denoiser_starts_at_zero_and_depends_on_the_caption():
    model = CaptionDenoiser(code_dim=4, hidden=16, depth=2, emb_dim=16)
    z, t = torch.randn(3, 4), torch.tensor([0, 5, 9])
    assert torch.equal(model(z, t, ALL[:3]), torch.zeros(3, 4))          # zero-initialised output
    _perturbed(model)
    a, b = model(z, t, [ALL[0]] * 3), model(z, t, [ALL[5]] * 3)
    assert (a - b).abs().max() > 1e-3
    assert torch.allclose(model(z, t, None), model(z, t, [""] * 3), atol=1e-6)
    padded = torch.nn.functional.pad(cap.tokenize([ALL[0]] * 3), (0, 3), value=0)
    assert torch.allclose(model(z, t, padded), a, atol=1e-5)             # padding is ignored


def test_cfg_is_the_explicit_two_call_combination():
    model = _perturbed(CaptionDenoiser(code_dim=4, hidden=16, depth=2, emb_dim=16))
    z, t = torch.randn(5, 4), torch.full((5,), 7)
    with torch.no_grad():
        cond, null = model(z, t, ALL[:5]), model(z, t, None)
        for w in (0.0, 1.0, 2.5):
            got = CaptionGuided(model, cap.tokenize(ALL[:5]), w)(z, t)
            assert torch.allclose(got, null + w * (cond - null), atol=1e-5)
        one_row = CaptionGuided(model, ALL[3], 2.0)(z, 7)
        expected = model(z, t, [ALL[3]] * 5)
        assert torch.allclose(one_row, null + 2.0 * (expected - null), atol=1e-5)


def test_loss_is_the_eps_regression_and_training_lowers_it():
    sched = NoiseSchedule(50)
    torch.manual_seed(0)
    z0 = torch.randn(256, 2) * 0.1 + torch.tensor([[2.0, -1.0]])
    tokens = cap.tokenize(["a thick slanted seven"] * 256)
    model = CaptionDenoiser(code_dim=2, hidden=32, depth=2, emb_dim=16)
    loss = CaptionEpsLoss(sched, 0.0, 0.0)
    torch.manual_seed(1)
    before = loss(model, (z0, tokens))
    torch.manual_seed(1)                                     # same t and eps, by hand
    t = torch.randint(0, 50, (256,))
    eps = torch.randn_like(z0)
    abar = sched.alpha_bars.float()[t][:, None]
    zt = abar.sqrt() * z0 + (1 - abar).sqrt() * eps
    assert torch.allclose(before, (model(zt, t, tokens) - eps).pow(2).mean(), atol=1e-6)
    fit(model, CaptionEpsLoss(sched, 0.1, 0.1), (z0, tokens), steps=150, batch_size=64, lr=3e-3, seed=0,
        progress=False)
    torch.manual_seed(1)
    assert loss(model, (z0, tokens)) < 0.6 * before


def test_bad_input_names_the_argument():
    model = CaptionDenoiser(code_dim=4, hidden=8, depth=1, emb_dim=8)
    with pytest.raises(ValueError, match="z must have shape"):
        model(torch.randn(2, 3), 0, ALL[:2])
    with pytest.raises(ValueError, match="tokens has 1 rows"):
        model(torch.randn(2, 4), 0, ALL[:1])
    with pytest.raises(ValueError, match="words outside VOCAB"):
        model(torch.randn(1, 4), 0, ["a purple seven"])
    with pytest.raises(TypeError, match="model must be a CaptionDenoiser"):
        CaptionGuided(torch.nn.Linear(2, 2), ALL[:1])
    with pytest.raises(ValueError, match="scale"):
        CaptionGuided(model, ALL[:1], float("nan"))


# --- the noisy classifier and classifier guidance (7.5), (7.8) -------------------------------------

def test_classifier_is_a_distribution_over_the_40_captions_and_sums_named_words():
    clf = NoisyCaptionClassifier(code_dim=4, hidden=16, depth=1, emb_dim=8).eval()
    z, t = torch.randn(3, 4), torch.tensor([1, 2, 3])
    with torch.no_grad():
        full = torch.stack([clf.log_prob(z, t, [c] * 3) for c in ALL])        # (40, 3)
        assert torch.allclose(full.exp().sum(0), torch.ones(3), atol=1e-5)
        sevens = torch.stack([clf.log_prob(z, t, [c] * 3) for c in ALL if c.endswith("seven")])
        assert torch.allclose(sevens.logsumexp(0), clf.log_prob(z, t, ["a seven"] * 3), atol=1e-5)
        assert torch.equal(clf.log_prob(z, t, [""] * 3), torch.zeros(3))


def test_classifier_guidance_is_eps_minus_gamma_sigma_grad_log_p():
    sched = NoiseSchedule(100)
    prior = _perturbed(CaptionDenoiser(code_dim=3, hidden=16, depth=2, emb_dim=16))
    clf = _perturbed(NoisyCaptionClassifier(code_dim=3, hidden=16, depth=1, emb_dim=8), seed=1)
    z, t = torch.randn(4, 3), torch.tensor([3, 30, 60, 99])
    text = ["a thin upright eight"] * 4
    with torch.no_grad():
        null = prior(z, t, None)
    jac = torch.autograd.functional.jacobian(lambda v: clf.log_prob(v, t, text), z)   # (4, 4, 3)
    grad = torch.einsum("iik->ik", jac)
    sigma = (1 - sched.alpha_bars[t]).sqrt().float()[:, None]
    for gamma in (0.0, 1.0, 4.0):
        got = ClassifierGuided(prior, clf, cap.tokenize(text), sched, gamma)(z, t)
        assert torch.allclose(got, null - gamma * sigma * grad, atol=1e-5)


def test_classifier_guidance_samples_follow_the_caption_in_a_two_cluster_world():
    """Codes of 'seven' near +2, of 'one' near -2: an unconditional prior plus a trained classifier
    must send guided samples to the requested cluster."""
    sched = NoiseSchedule(100)
    torch.manual_seed(0)
    z0 = torch.cat([torch.randn(300, 2) * 0.2 + 2, torch.randn(300, 2) * 0.2 - 2])
    tokens = cap.tokenize(["a thin upright seven"] * 300 + ["a thin upright one"] * 300)
    prior = CaptionDenoiser(code_dim=2, hidden=64, depth=2, emb_dim=16)
    fit(prior, CaptionEpsLoss(sched, 0.0, 1.0), (z0, tokens), steps=600, batch_size=128, lr=3e-3, seed=0,
        progress=False)
    clf = NoisyCaptionClassifier(code_dim=2, hidden=32, depth=1, emb_dim=16)
    fit(clf, NoisyClassifierLoss(sched), (z0, tokens), steps=400, batch_size=128, lr=3e-3, seed=0,
        progress=False)
    prior.eval(), clf.eval()
    noise = torch.randn(200, 2, generator=torch.Generator().manual_seed(1))
    free = sample_ddim(ClassifierGuided(prior, clf, ["a seven"], sched, 0.0), (200, 2), sched, 20, noise=noise)
    guided = sample_ddim(ClassifierGuided(prior, clf, ["a seven"], sched, 3.0), (200, 2), sched, 20, noise=noise)
    assert 0.25 < (free.mean(1) > 0).float().mean() < 0.75          # the prior: both clusters
    assert (guided.mean(1) > 0).float().mean() > 0.95              # guided: the sevens


def test_classifier_guided_rejects_bad_input():
    sched = NoiseSchedule(10)
    prior, clf = CaptionDenoiser(code_dim=2, hidden=8, depth=1, emb_dim=8), NoisyCaptionClassifier(code_dim=2)
    with pytest.raises(TypeError, match="classifier must be a NoisyCaptionClassifier"):
        ClassifierGuided(prior, prior, ALL[:1], sched)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        ClassifierGuided(prior, clf, ALL[:1], 10)
    with pytest.raises(ValueError, match="z must have shape"):
        clf(torch.randn(2, 3), 0)
