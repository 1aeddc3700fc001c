"""Image -> text: an autoregressive captioner over caption tokens, Eq. (7.2).

Chapter 6's chain rule, now over the tokens t = (t_0 = <bos>, t_1, ..., t_L) of a caption and
conditioned on an image x:

    p_theta(t | x) = prod_{j=1}^{L} p_theta(t_j | t_{<j}, x),
    log p_theta(t | x) = sum_{j=1}^{L} log softmax(logits_j)[t_j],                              (7.2)

where ``logits_j`` is computed from the image and the tokens *before* j only. A small conv net
turns the image into a feature vector f(x); a GRU reads the previous tokens, with f(x) as its
initial state and as an extra input at every step, and a linear layer maps its state to the
logits. Training is teacher-forced (one pass gives every logits_j); decoding is sequential,
one token at a time, either greedy (argmax) or sampled from softmax(logits_j / T) with a
temperature T, as in Eq. (6.7). The sum runs up to and including the first ``<eos>``: what
follows it (``<pad>``) is not part of the caption and is not scored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dgm._checks import finite_number, positive_int, widths
from dgm.classifier import check_images
from dgm.data.captions import CAPTION_LENGTH, VOCAB
from dgm.multimodal.text import BOS, EOS, PAD, check_tokens

__all__ = ["Captioner", "captioner_loss"]


class Captioner(nn.Module):
    """p_theta(t | x) of Eq. (7.2): a conv image encoder and a GRU over the caption's tokens.

    Args:
        hidden: size of the image features f(x) and of the GRU state.
        embed: size of the token embedding.
        channels: the two conv layers' channels (each halves the image: 28 -> 14 -> 7).
        max_length: number of tokens :meth:`sample` produces, ``<bos>`` included.
    """

    def __init__(self, hidden: int = 128, embed: int = 32, channels=(16, 32), max_length: int = CAPTION_LENGTH):
        super().__init__()
        hidden, embed = positive_int(hidden, "hidden"), positive_int(embed, "embed")
        channels = widths(channels, "channels")
        if len(channels) != 2:
            raise ValueError(f"channels must be two positive ints, got {channels!r}")
        c1, c2 = channels
        self.max_length = positive_int(max_length, "max_length")
        if self.max_length < 2:
            raise ValueError(f"max_length must be >= 2 (<bos> and one token), got {max_length}")
        self.hidden = hidden
        self.image_encoder = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=2, padding=1), nn.ReLU(),      # c1 x 14 x 14
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),     # c2 x 7 x 7
            nn.Flatten(), nn.Linear(c2 * 7 * 7, hidden), nn.Tanh(),
        )
        self.token = nn.Embedding(len(VOCAB), embed)
        self.gru = nn.GRU(embed + hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, len(VOCAB))

    def _device(self) -> torch.device:
        return self.head.weight.device

    def features(self, x) -> torch.Tensor:
        """f(x), ``(N, hidden)``, for images ``(N, 1, 28, 28)`` in [0, 1]."""
        return self.image_encoder(check_images(x, "x").to(self._device()))

    def _step(self, f: torch.Tensor, prev: torch.Tensor, state: torch.Tensor | None):
        """Logits for the tokens after ``prev`` ``(N, J)``, and the GRU state after reading them."""
        inp = torch.cat([self.token(prev), f[:, None].expand(-1, prev.shape[1], -1)], dim=-1)
        out, state = self.gru(inp, f[None].contiguous() if state is None else state)
        return self.head(out), state

    def logits(self, x, tokens) -> torch.Tensor:
        """Teacher-forced logits ``(N, L, V)``: entry j - 1 parameterises p(t_j | t_{<j}, x), Eq. (7.2).

        ``tokens`` ``(N, L + 1)`` start with ``<bos>``; the last token is never read.
        """
        x = check_images(x, "x")
        tokens = self._tokens(tokens, len(x))
        out, _ = self._step(self.features(x), tokens[:, :-1], None)
        return out

    def _tokens(self, tokens, n: int) -> torch.Tensor:
        tokens = check_tokens(tokens).to(self._device())
        if tokens.shape[0] != n:
            raise ValueError(f"tokens has {tokens.shape[0]} rows for {n} images in x")
        if tokens.shape[1] < 2:
            raise ValueError(f"tokens must have at least 2 columns (<bos> and a token), got {tokens.shape[1]}")
        if bool((tokens[:, 0] != BOS).any()):
            raise ValueError("tokens must start with <bos> in every row (as dgm.data.captions.tokenize writes them)")
        return tokens

    def log_prob_terms(self, x, tokens) -> torch.Tensor:
        """log p(t_j | t_{<j}, x) for j = 1..L, ``(N, L)``; 0 for the tokens after the first ``<eos>``."""
        x = check_images(x, "x")
        tokens = self._tokens(tokens, len(x))
        logp = F.log_softmax(self.logits(x, tokens), dim=-1)
        target = tokens[:, 1:]
        terms = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        is_eos = (target == EOS).long()
        scored = (is_eos.cumsum(1) - is_eos) == 0         # up to and including the first <eos>
        return torch.where(scored, terms, torch.zeros_like(terms))

    def log_prob(self, x, tokens) -> torch.Tensor:
        """log p_theta(t | x) of each caption, Eq. (7.2), in nats, ``(N,)``."""
        return self.log_prob_terms(x, tokens).sum(1)

    @torch.no_grad()
    def sample(self, x, *, greedy: bool = False, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Captions for images ``x``, token by token: ``(N, max_length)`` ids starting with ``<bos>``.

        Each token is the argmax of the logits (``greedy=True``) or a draw from
        softmax(logits / temperature) (``generator``: a ``torch.Generator`` on the model's device,
        for reproducible draws). After a row's ``<eos>`` the rest of it is ``<pad>``.
        ``dgm.data.captions.detokenize`` turns the ids into strings.
        """
        temperature = finite_number(temperature, "temperature")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        was_training = self.training
        self.eval()
        try:
            f = self.features(x)
            n = len(f)
            tokens = torch.full((n, self.max_length), PAD, dtype=torch.long, device=f.device)
            tokens[:, 0] = BOS
            done = torch.zeros(n, dtype=torch.bool, device=f.device)
            state = None
            for j in range(1, self.max_length):
                out, state = self._step(f, tokens[:, j - 1: j], state)
                logits = out[:, 0]
                if greedy:
                    nxt = logits.argmax(-1)
                else:
                    probs = torch.softmax(logits.double() / temperature, dim=-1)
                    nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
                tokens[:, j] = torch.where(done, torch.full_like(nxt, PAD), nxt)
                done = done | (nxt == EOS)
                if bool(done.all()):
                    break
        finally:
            self.train(was_training)
        return tokens

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, max_length={self.max_length}"


def captioner_loss(model: Captioner, batch) -> torch.Tensor:
    """The loss of :func:`dgm.train.fit`: mean -log p_theta(t | x) over a batch ``(x, tokens)``."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ValueError("batch must be a tuple (x, tokens) of images and their caption tokens")
    x, tokens = batch[0], batch[1]
    return -model.log_prob(x, tokens).mean()
