"""DALL-E in miniature: one autoregressive transformer over [caption tokens ; image tokens].

DALL-E (Ramesh et al., 2021) turns an image into a grid of discrete codes with a discrete VAE and
models the concatenation of the caption's tokens and the image's codes with one transformer, by
lecture 6's chain rule over the whole sequence s = (t_1..t_L, k_1..k_M):

    log p_theta(c, x) = sum_{j=1}^{L} log p_theta(t_j | t_<j) + sum_{m=1}^{M} log p_theta(k_m | t, k_<m)   (7.9)

Here the image tokens are the 7x7 code grid of lecture 2's VQ-VAE, read in raster order, and the
caption tokens are :func:`dgm.data.captions.tokenize`'s. Text and image share one embedding table
(ids ``0..len(VOCAB)-1`` are words, ``len(VOCAB) + k`` is code k), and each position's softmax runs
only over the kind of token that stands there, so (7.9) is a proper distribution. Sampling with the
caption given is text -> image (translation); sampling from ``<bos>`` alone draws a caption and then
an image for it (creation: both modalities from one model).

* :class:`TokenTransformer` - the causal transformer; ``log_prob`` (7.9), ``sample``.
* :func:`token_loss` - the mean negative log-likelihood per token, for :func:`dgm.train.fit`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dgm._checks import finite_number, positive_int, shape_tuple
from dgm.data.captions import CAPTION_LENGTH, VOCAB
from dgm.multimodal.text import BOS, check_tokens

__all__ = ["TokenTransformer", "token_loss"]

_TEXT = len(VOCAB)


class TokenTransformer(nn.Module):
    """p_theta(caption, code grid) of Eq. (7.9): a decoder-only transformer over both token kinds.

    Args:
        num_codes: size K of the VQ-VAE's codebook.
        grid: shape (H, W) of the code grid (raster order).
        dim, layers, heads: the transformer (pre-norm, causal attention).
        text_length: caption tokens before the image (``CAPTION_LENGTH``: ``<bos>`` .. ``<eos>``).
    """

    def __init__(self, num_codes: int, grid=(7, 7), dim: int = 128, layers: int = 3, heads: int = 4,
                 text_length: int = CAPTION_LENGTH):
        super().__init__()
        self.num_codes = positive_int(num_codes, "num_codes")
        self.grid = shape_tuple(grid, "grid")
        if len(self.grid) != 2:
            raise ValueError(f"grid must be (H, W), got {grid!r}")
        dim, layers, heads = positive_int(dim, "dim"), positive_int(layers, "layers"), positive_int(heads, "heads")
        if dim % heads:
            raise ValueError(f"heads must divide dim, got dim={dim}, heads={heads}")
        self.text_length = positive_int(text_length, "text_length")
        self.length = self.text_length + self.grid[0] * self.grid[1]
        self.token = nn.Embedding(_TEXT + self.num_codes, dim)
        self.position = nn.Embedding(self.length, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, _TEXT + self.num_codes)
        # which kind of token each position *predicts* (position i predicts sequence token i + 1)
        is_image = torch.arange(1, self.length) >= self.text_length
        kind_mask = torch.zeros(self.length - 1, _TEXT + self.num_codes, dtype=torch.bool)
        kind_mask[~is_image, _TEXT:] = True         # a text position cannot emit a code
        kind_mask[is_image, :_TEXT] = True          # an image position cannot emit a word
        self.register_buffer("kind_mask", kind_mask, persistent=False)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(self.length),
                             persistent=False)

    def _device(self) -> torch.device:
        return self.head.weight.device

    def sequence(self, tokens, codes) -> torch.Tensor:
        """The joint sequence ``(N, L + H*W)``: caption ids, then ``len(VOCAB) + code`` in raster order."""
        tokens = check_tokens(tokens).to(self._device())
        if tokens.shape[1] != self.text_length:
            raise ValueError(f"tokens must have {self.text_length} columns, got {tokens.shape[1]}")
        if not isinstance(codes, torch.Tensor) or codes.is_floating_point() or tuple(codes.shape[1:]) != self.grid:
            raise ValueError(f"codes must be integer code grids (N, {self.grid[0]}, {self.grid[1]}), "
                             f"got {getattr(codes, 'shape', codes)!r}")
        if len(codes) != len(tokens):
            raise ValueError(f"codes has {len(codes)} grids for {len(tokens)} captions in tokens")
        if int(codes.min()) < 0 or int(codes.max()) >= self.num_codes:
            raise ValueError(f"codes must be in 0..{self.num_codes - 1}")
        return torch.cat([tokens, _TEXT + codes.to(self._device()).flatten(1).long()], dim=1)

    def logits(self, seq: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``(N, n - 1, V)`` of tokens 2..n of ``seq`` given the ones before."""
        n = seq.shape[1]
        positions = torch.arange(n, device=seq.device)
        h = self.token(seq) + self.position(positions)[None]
        h = self.transformer(h, mask=self.causal[:n, :n], is_causal=True)
        out = self.head(self.norm(h[:, :-1] if n > 1 else h[:, :0]))
        out = out.masked_fill(self.kind_mask[: n - 1], float("-inf"))
        return F.log_softmax(out, dim=-1)

    def log_prob_terms(self, tokens, codes) -> torch.Tensor:
        """``(N, L + H*W - 1)``: log p(s_i | s_<i) for every token after ``<bos>``, Eq. (7.9)."""
        seq = self.sequence(tokens, codes)
        return self.logits(seq).gather(2, seq[:, 1:, None])[..., 0]

    def log_prob(self, tokens, codes) -> torch.Tensor:
        """log p_theta(caption, grid), Eq. (7.9), ``(N,)`` in nats."""
        return self.log_prob_terms(tokens, codes).sum(1)

    @torch.no_grad()
    def sample(self, n: int, tokens=None, *, temperature: float = 1.0, generator=None):
        """Draw ``(caption tokens (n, L), code grids (n, H, W))``.

        With ``tokens`` (one row for all, or n rows; a full caption, ``<bos>`` .. ``<eos>``) the
        caption is given and only the image is drawn (text -> image); without, the caption is drawn
        first, from ``<bos>`` (creation).
        """
        n = positive_int(n, "n")
        temperature = finite_number(temperature, "temperature")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        dev = self._device()
        if tokens is None:
            seq = torch.full((n, 1), BOS, dtype=torch.long, device=dev)
        else:
            tokens = check_tokens(tokens).to(dev)
            if tokens.shape[1] != self.text_length:
                raise ValueError(f"tokens must have {self.text_length} columns, got {tokens.shape[1]}")
            if len(tokens) == 1:
                tokens = tokens.expand(n, -1)
            if len(tokens) != n:
                raise ValueError(f"tokens has {len(tokens)} rows for n={n} samples")
            seq = tokens
        while seq.shape[1] < self.length:
            logp = self.logits(torch.cat([seq, seq[:, :1]], dim=1))[:, -1] / temperature
            nxt = torch.multinomial(F.softmax(logp, dim=-1), 1, generator=generator)
            seq = torch.cat([seq, nxt], dim=1)
        return seq[:, : self.text_length], (seq[:, self.text_length:] - _TEXT).reshape(n, *self.grid)

    def extra_repr(self) -> str:
        return f"num_codes={self.num_codes}, grid={self.grid}, text_length={self.text_length}"


def token_loss(model: TokenTransformer, batch) -> torch.Tensor:
    """``loss_fn(model, (tokens, codes))``: mean -log p(s_i | s_<i) per token, Eq. (7.9)."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError("batch must be a pair (tokens, codes)")
    return -model.log_prob_terms(*batch).mean()
