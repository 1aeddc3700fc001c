"""Text -> image, latent-diffusion style: a denoiser of autoencoder codes conditioned on a caption.

Latent diffusion (Rombach et al., 2022) runs the diffusion model of lecture 5 on the codes
z = enc(x) of an autoencoder (lecture 1) and decodes the sample. Here the condition is a caption:
its encoding e(c) of Eq. (7.1) is learned together with the denoiser, and enters every hidden layer
by FiLM (Perez et al., 2018), a scale and a shift computed from the time and the caption,

    h <- SiLU((1 + gamma(u)) * (W h + b) + beta(u)),    u = SiLU(emb(t) + e(c))              (7.7)

trained with lecture 5's loss E || eps - eps_theta(z_t, t, c) ||^2, Eq. (5.7). Words of the caption
are dropped at random during training (each attribute word with probability ``p_word``, the whole
caption with ``p_caption``) so that one network knows p(z | "a seven") and the unconditional
p(z) = p(z | "") as well: the empty caption is the null condition of classifier-free guidance,
Eq. (7.6), and a partial caption asks only for what it names.

Classifier guidance, Eq. (7.5), needs p(c | z_t) on *noisy* codes: :class:`NoisyCaptionClassifier`
predicts the three words (digit, thickness, slant) from (z_t, t); the log-probability of a caption
is the sum over the words it names. With the score s = -eps / sqrt(1 - alpha_bar_t),

    eps_gamma = eps_theta(z_t, t, "") - gamma sqrt(1 - alpha_bar_t) grad_z log p_phi(c | z_t, t).  (7.8)

* :func:`drop_words` - word and caption dropout on token rows (the remaining words re-packed).
* :class:`CaptionDenoiser` - eps_theta(z_t, t, c), Eq. (7.7).
* :class:`CaptionEpsLoss` - Eq. (5.7) on ``(z0, tokens)`` batches with dropout, for :func:`dgm.train.fit`.
* :class:`CaptionGuided` - classifier-free guidance (7.6) as a ``model(z, t)`` for the samplers.
* :class:`NoisyCaptionClassifier`, :class:`NoisyClassifierLoss` - p_phi(c | z_t, t) and its loss.
* :class:`ClassifierGuided` - classifier guidance (7.8) as a ``model(z, t)`` for the samplers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dgm._checks import finite_number, positive_int
from dgm.data.captions import DIGIT_NAMES, SLANT_WORDS, THICKNESS_WORDS, VOCAB
from dgm.diffusion.nets import SinusoidalEmbedding
from dgm.diffusion.schedule import NoiseSchedule
from dgm.multimodal.guidance import classifier_guided_score, guided_score
from dgm.multimodal.text import BOS, EOS, PAD, CaptionEncoder, check_tokens

__all__ = ["drop_words", "CaptionDenoiser", "CaptionEpsLoss", "CaptionGuided",
           "NoisyCaptionClassifier", "NoisyClassifierLoss", "ClassifierGuided", "word_targets"]

_WORDS = (DIGIT_NAMES, THICKNESS_WORDS, SLANT_WORDS)        # the three slots a caption can fill
_ATTRIBUTE = torch.zeros(len(VOCAB), dtype=torch.bool)
for _group in _WORDS:
    for _w in _group:
        _ATTRIBUTE[VOCAB.index(_w)] = True


def drop_words(tokens, p_word: float = 0.0, p_caption: float = 0.0, generator=None) -> torch.Tensor:
    """Token rows with attribute words removed at random, the rest moved up (as ``tokenize`` would).

    Each digit / thickness / slant word is removed with probability ``p_word``; with probability
    ``p_caption`` every word is, ``"a"`` included, leaving the empty caption ``<bos> <eos>``. The
    result is what :func:`dgm.data.captions.tokenize` gives for the shortened caption, so a partial
    caption typed at sampling time ("a seven") looks exactly like a dropped one in training.
    """
    tokens = check_tokens(tokens)
    for name, p in (("p_word", p_word), ("p_caption", p_caption)):
        p = finite_number(p, name)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    n, length = tokens.shape
    dev = generator.device if generator is not None else torch.device("cpu")
    u_word = torch.rand(n, length, generator=generator, device=dev).to(tokens.device)
    u_cap = torch.rand(n, 1, generator=generator, device=dev).to(tokens.device)
    is_word = (tokens != PAD) & (tokens != BOS) & (tokens != EOS)
    drop = (_ATTRIBUTE.to(tokens.device)[tokens] & (u_word < p_word)) | (is_word & (u_cap < p_caption))
    kept = tokens.masked_fill(drop, PAD)
    order = torch.argsort((kept == PAD).long(), dim=1, stable=True)   # real tokens first, in order
    return kept.gather(1, order)


def _zeroed(layer: nn.Linear) -> nn.Linear:
    """A layer that outputs 0 at the start (FiLM starts as the identity, the output as eps = 0)."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class CaptionDenoiser(nn.Module):
    """eps_theta(z_t, t, c) for codes z of size ``code_dim``, conditioned on a caption, Eq. (7.7).

    Args:
        code_dim: size of the autoencoder's code.
        hidden, depth: width and number of the FiLM-conditioned hidden layers.
        emb_dim: size of the time embedding and of the caption encoding e(c).
        text_layers, heads: the :class:`CaptionEncoder`'s transformer.

    ``forward(z, t, tokens)``: codes ``(N, code_dim)``, integer steps ``(N,)`` (or one int), token
    rows ``(N, L)`` or caption strings; ``tokens=None`` means the empty caption (unconditional).
    """

    def __init__(self, code_dim: int = 16, hidden: int = 256, depth: int = 3, emb_dim: int = 64,
                 text_layers: int = 1, heads: int = 4):
        super().__init__()
        self.code_dim = positive_int(code_dim, "code_dim")
        hidden, depth = positive_int(hidden, "hidden"), positive_int(depth, "depth")
        self.text = CaptionEncoder(dim=emb_dim, layers=text_layers, heads=heads)
        self.time = nn.Sequential(SinusoidalEmbedding(emb_dim), nn.Linear(emb_dim, emb_dim), nn.SiLU(),
                                  nn.Linear(emb_dim, emb_dim))
        self.inp = nn.Linear(code_dim, hidden)
        self.layers = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(depth)])
        self.films = nn.ModuleList([_zeroed(nn.Linear(emb_dim, 2 * hidden)) for _ in range(depth)])
        self.out = _zeroed(nn.Linear(hidden, code_dim))

    def _device(self) -> torch.device:
        return self.inp.weight.device

    def null_tokens(self, n: int) -> torch.Tensor:
        """n empty captions ``<bos> <eos>``: the unconditional branch."""
        row = torch.tensor([BOS, EOS], device=self._device())
        return row.expand(positive_int(n, "n"), 2)

    def forward(self, z, t, tokens=None) -> torch.Tensor:
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.code_dim:
            raise ValueError(f"z must have shape (N, {self.code_dim}), got {getattr(z, 'shape', z)!r}")
        n = len(z)
        tokens = self.null_tokens(n) if tokens is None else check_tokens(tokens).to(z.device)
        if len(tokens) != n:
            raise ValueError(f"tokens has {len(tokens)} rows for {n} codes in z")
        t = _steps(t, n, z.device)
        if t.shape != (n,):
            raise ValueError(f"t must have shape ({n},), got {tuple(t.shape)}")
        u = F.silu(self.time(t) + self.text(tokens))
        h = F.silu(self.inp(z))
        for layer, film in zip(self.layers, self.films):
            gamma, beta = film(u).chunk(2, dim=1)
            h = F.silu((1 + gamma) * layer(h) + beta)
        return self.out(h)


class CaptionEpsLoss:
    """``loss_fn(model, (z0, tokens))`` for :func:`dgm.train.fit`: Eq. (5.7) with word dropout.

    Args:
        schedule: the :class:`dgm.diffusion.NoiseSchedule`.
        p_word, p_caption: the dropout of :func:`drop_words`.
    """

    def __init__(self, schedule: NoiseSchedule, p_word: float = 0.1, p_caption: float = 0.1):
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
        drop_words(torch.tensor([[BOS, EOS]]), p_word, p_caption)           # checks both probabilities
        self.schedule, self.p_word, self.p_caption = schedule, p_word, p_caption

    def __call__(self, model, batch):
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError("batch must be a pair (z0, tokens)")
        z0, tokens = batch
        t = torch.randint(0, self.schedule.T, (len(z0),), device=z0.device)
        noise = torch.randn_like(z0)
        zt = self.schedule.q_sample(z0, t, noise)
        tokens = drop_words(tokens, self.p_word, self.p_caption)
        return (model(zt, t, tokens) - noise).pow(2).mean()


def _steps(t, n: int, device) -> torch.Tensor:
    """The step index of each of n rows: one int (or 0-d tensor) for all, or a tensor (n,)."""
    t = torch.as_tensor(t, device=device)
    return t.expand(n) if t.dim() == 0 else t


def _rows(model_device, tokens, n: int) -> torch.Tensor:
    tokens = check_tokens(tokens)
    if len(tokens) == 1:
        tokens = tokens.expand(n, tokens.shape[1])
    if len(tokens) != n:
        raise ValueError(f"tokens has {len(tokens)} rows for {n} samples")
    return tokens.to(model_device)


class CaptionGuided(nn.Module):
    """Classifier-free guidance, Eq. (7.6), as an unconditional ``model(z, t)`` for the samplers.

    Args:
        model: a :class:`CaptionDenoiser`.
        tokens: the requested captions, one row (or string) for all samples or one per sample.
        scale: w (0: the empty caption, 1: the caption, > 1: guided).
    """

    def __init__(self, model: CaptionDenoiser, tokens, scale: float = 1.0):
        super().__init__()
        if not isinstance(model, CaptionDenoiser):
            raise TypeError(f"model must be a CaptionDenoiser, got {type(model).__name__}")
        self.model, self.tokens, self.scale = model, check_tokens(tokens), finite_number(scale, "scale")

    def forward(self, z, t):
        n = len(z)
        tokens = _rows(z.device, self.tokens, n)
        t = _steps(t, n, z.device)
        if self.scale == 1:
            return self.model(z, t, tokens)
        null = self.model.null_tokens(n)
        null = F.pad(null, (0, tokens.shape[1] - 2), value=PAD)
        out = self.model(torch.cat([z, z]), torch.cat([t, t]), torch.cat([tokens, null]))
        return guided_score(out[n:], out[:n], self.scale)


def word_targets(tokens) -> torch.Tensor:
    """``(N, 3)`` indices of the digit, thickness and slant words of each caption, -1 where absent."""
    tokens = check_tokens(tokens)
    out = torch.full((len(tokens), 3), -1, dtype=torch.long, device=tokens.device)
    for k, group in enumerate(_WORDS):
        for i, word in enumerate(group):
            hit = (tokens == VOCAB.index(word)).any(1)
            out[hit, k] = i
    return out


class NoisyCaptionClassifier(nn.Module):
    """p_phi(c | z_t, t) = prod over the caption's words of p_phi(word | z_t, t), for Eq. (7.8).

    An MLP on [z_t, emb(t)] with three softmax heads: digit (10), thickness (2), slant (2).
    ``log_prob(z, t, tokens)`` sums the log-probabilities of the words the caption names.
    """

    def __init__(self, code_dim: int = 16, hidden: int = 256, depth: int = 2, emb_dim: int = 64):
        super().__init__()
        self.code_dim = positive_int(code_dim, "code_dim")
        hidden, depth = positive_int(hidden, "hidden"), positive_int(depth, "depth")
        self.time = nn.Sequential(SinusoidalEmbedding(emb_dim), nn.Linear(emb_dim, emb_dim), nn.SiLU())
        dims = [code_dim + emb_dim] + [hidden] * depth
        self.body = nn.Sequential(*[m for a, b in zip(dims[:-1], dims[1:]) for m in (nn.Linear(a, b), nn.SiLU())])
        self.heads = nn.ModuleList([nn.Linear(hidden, len(g)) for g in _WORDS])

    def forward(self, z, t) -> list[torch.Tensor]:
        """The three heads' log-probabilities: ``[(N, 10), (N, 2), (N, 2)]``."""
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.code_dim:
            raise ValueError(f"z must have shape (N, {self.code_dim}), got {getattr(z, 'shape', z)!r}")
        t = _steps(t, len(z), z.device)
        h = self.body(torch.cat([z, self.time(t)], dim=1))
        return [F.log_softmax(head(h), dim=1) for head in self.heads]

    def log_prob(self, z, t, tokens) -> torch.Tensor:
        """log p_phi(c | z_t, t) ``(N,)``: the sum over the words the caption names."""
        target = word_targets(_rows(z.device, tokens, len(z)))
        total = torch.zeros(len(z), device=z.device)
        for k, logp in enumerate(self(z, t)):
            named = target[:, k] >= 0
            picked = logp.gather(1, target[:, k].clamp(min=0)[:, None])[:, 0]
            total = total + torch.where(named, picked, torch.zeros_like(picked))
        return total


class NoisyClassifierLoss:
    """``loss_fn(model, (z0, tokens))``: -log p_phi(c | z_t, t) at a uniform t, z_t ~ q(z_t | z0)."""

    def __init__(self, schedule: NoiseSchedule):
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
        self.schedule = schedule

    def __call__(self, model, batch):
        z0, tokens = batch
        t = torch.randint(0, self.schedule.T, (len(z0),), device=z0.device)
        return -model.log_prob(self.schedule.q_sample(z0, t), t, tokens).mean()


class ClassifierGuided(nn.Module):
    """Classifier guidance, Eqs. (7.5) and (7.8), as an unconditional ``model(z, t)`` for the samplers.

    Args:
        prior: a :class:`CaptionDenoiser`, used with the empty caption (the unconditional score).
        classifier: a :class:`NoisyCaptionClassifier` trained on the same schedule's z_t.
        tokens: the requested captions (one row for all, or one per sample).
        schedule: the :class:`dgm.diffusion.NoiseSchedule` of both.
        scale: gamma (0: unconditional).
    """

    def __init__(self, prior: CaptionDenoiser, classifier: NoisyCaptionClassifier, tokens,
                 schedule: NoiseSchedule, scale: float = 1.0):
        super().__init__()
        if not isinstance(prior, CaptionDenoiser):
            raise TypeError(f"prior must be a CaptionDenoiser, got {type(prior).__name__}")
        if not isinstance(classifier, NoisyCaptionClassifier):
            raise TypeError(f"classifier must be a NoisyCaptionClassifier, got {type(classifier).__name__}")
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
        self.prior, self.classifier, self.schedule = prior, classifier, schedule
        self.tokens, self.scale = check_tokens(tokens), finite_number(scale, "scale")

    def forward(self, z, t):
        n = len(z)
        tokens = _rows(z.device, self.tokens, n)
        t = _steps(t, n, z.device)
        sigma = (1 - self.schedule.alpha_bars.to(z.device, torch.float32)[t]).sqrt()[:, None]
        prior_score = -self.prior(z, t) / sigma
        with torch.enable_grad():
            zg = z.detach().requires_grad_(True)
            grad = torch.autograd.grad(self.classifier.log_prob(zg, t, tokens).sum(), zg)[0]
        return -sigma * classifier_guided_score(prior_score, grad, self.scale)
