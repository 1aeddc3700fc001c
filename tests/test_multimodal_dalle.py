"""dgm.multimodal.dalle: the token transformer of Eq. (7.9), against independent references (enumeration
of every code grid, perturbation of later tokens, empirical frequencies of samples)."""

import itertools

import pytest
import torch

from dgm.data import captions as cap
from dgm.multimodal import TokenTransformer, token_loss
from dgm.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")
V = len(cap.VOCAB)


def _model(seed=0, codes=3, grid=(1, 2)):
    torch.manual_seed(seed)
    return TokenTransformer(num_codes=codes, grid=grid, dim=16, layers=2, heads=2).eval()


def test_image_terms_are_a_distribution_over_all_grids_given_the_caption():
    model = _model()
    text = cap.tokenize(["a thick slanted seven"])
    grids = torch.tensor(list(itertools.product(range(3), repeat=2))).reshape(9, 1, 2)
    with torch.no_grad():
        terms = model.log_prob_terms(text.expand(9, -1), grids)
    image_part = terms[:, cap.CAPTION_LENGTH - 1:].sum(1)          # the M = 2 code terms
    assert torch.allclose(image_part.exp().sum(), torch.tensor(1.0), atol=1e-5)
    assert torch.allclose(model.log_prob(text.expand(9, -1), grids), terms.sum(1))


def test_each_position_emits_only_its_kind_of_token():
    model = _model()
    seq = model.sequence(cap.tokenize(["a thin upright one"]), torch.tensor([[[0, 2]]]))
    with torch.no_grad():
        p = model.logits(seq).exp()[0]                              # (L + M - 1, V + K)
    text_rows, image_rows = p[: cap.CAPTION_LENGTH - 1], p[cap.CAPTION_LENGTH - 1:]
    assert torch.allclose(text_rows[:, :V].sum(1), torch.ones(len(text_rows)), atol=1e-5)
    assert float(text_rows[:, V:].max()) == 0.0 and float(image_rows[:, :V].max()) == 0.0
    assert torch.allclose(image_rows.sum(1), torch.ones(len(image_rows)), atol=1e-5)


def test_a_token_conditional_does_not_see_the_token_or_anything_after_it():
    model = _model(codes=5, grid=(2, 2))
    g = torch.Generator().manual_seed(0)
    text = cap.tokenize(["a thick upright two"])
    grid = torch.randint(0, 5, (1, 2, 2), generator=g)
    with torch.no_grad():
        base = model.log_prob_terms(text, grid)
        seq = model.sequence(text, grid)
        for i in range(1, seq.shape[1]):                    # change token i and every later one
            other_grid = grid.clone().flatten(1)
            start = max(i - cap.CAPTION_LENGTH, 0)
            other_grid[:, start:] = torch.randint(0, 5, (1, other_grid.shape[1] - start), generator=g)
            other_text = text.clone()
            if i < cap.CAPTION_LENGTH:
                other_text[:, i:] = torch.randint(3, V, (1, cap.CAPTION_LENGTH - i), generator=g)
            changed = model.logits(model.sequence(other_text, other_grid.reshape(1, 2, 2)))
            assert torch.allclose(changed[0, : i - 1], model.logits(seq)[0, : i - 1], atol=1e-5), i
        assert base.shape == (1, seq.shape[1] - 1)


def test_samples_follow_the_enumerated_conditional_law():
    model = _model(seed=3)
    text = cap.tokenize(["a thin slanted four"])
    grids = torch.tensor(list(itertools.product(range(3), repeat=2))).reshape(9, 1, 2)
    with torch.no_grad():
        p = model.log_prob_terms(text.expand(9, -1), grids)[:, cap.CAPTION_LENGTH - 1:].sum(1).exp()
    given, drawn = model.sample(6000, text, generator=torch.Generator().manual_seed(0))
    assert torch.equal(given, text.expand(6000, -1))
    freq = torch.bincount(drawn[:, 0, 0] * 3 + drawn[:, 0, 1], minlength=9).float() / 6000
    assert (freq - p).abs().max() < 4 * (p * (1 - p) / 6000).sqrt().max() + 1e-3


def test_creation_draws_the_caption_from_bos_by_its_conditionals():
    model = _model(seed=1)
    tokens, _ = model.sample(4000, generator=torch.Generator().manual_seed(0))
    assert bool((tokens[:, 0] == cap.VOCAB.index("<bos>")).all())
    with torch.no_grad():                                     # p(t_2 | <bos>) from the model
        p = model.logits(torch.tensor([[cap.VOCAB.index("<bos>"), 0]]))[0, 0, :V].exp()
    freq = torch.bincount(tokens[:, 1], minlength=V).float() / 4000
    assert (freq - p).abs().max() < 4 * (p * (1 - p) / 4000).sqrt().max() + 1e-3


def test_training_learns_which_grid_goes_with_which_caption():
    texts = cap.tokenize(["a thin upright one"] * 64 + ["a thick slanted seven"] * 64)
    grids = torch.cat([torch.zeros(64, 1, 2, dtype=torch.long), torch.full((64, 1, 2), 2)])
    torch.manual_seed(0)
    model = TokenTransformer(num_codes=3, grid=(1, 2), dim=32, layers=1, heads=2)
    before = token_loss(model, (texts, grids)).item()
    fit(model, token_loss, (texts, grids), steps=200, batch_size=32, lr=3e-3, seed=0, progress=False)
    model.eval()
    assert token_loss(model, (texts, grids)).item() < 0.5 * before
    _, one = model.sample(50, cap.tokenize(["a thin upright one"]), generator=torch.Generator().manual_seed(1))
    _, seven = model.sample(50, cap.tokenize(["a thick slanted seven"]), generator=torch.Generator().manual_seed(1))
    assert (one == 0).float().mean() > 0.9 and (seven == 2).float().mean() > 0.9


def test_bad_input_names_the_argument():
    model = _model()
    text = cap.tokenize(["a thin upright one"])
    with pytest.raises(ValueError, match="codes must be in"):
        model.log_prob(text, torch.tensor([[[0, 3]]]))
    with pytest.raises(ValueError, match="codes must be integer code grids"):
        model.log_prob(text, torch.zeros(1, 2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="tokens must have 6 columns"):
        model.sample(2, torch.tensor([[1, 3, 2]]))
    with pytest.raises(ValueError, match="temperature"):
        model.sample(2, text, temperature=0.0)
    with pytest.raises(ValueError, match="heads must divide dim"):
        TokenTransformer(num_codes=3, dim=10, heads=4)
