"""The caption encoder of lecture 7: a caption's tokens -> one fixed-size vector, Eq. (7.1).

A caption of :mod:`dgm.data.captions` is a row of token ids ``<bos> a <thickness> <slant> <digit>
<eos>`` (padded with ``<pad>`` when shorter or when batched with longer rows). The encoder embeds
each token, adds a learned position embedding, runs a small transformer encoder whose attention
never looks at padding, and averages the outputs over the caption's real tokens:

    h_1..h_L = Transformer(E[t_j] + P_j),     e(c) = W (1 / |c|) sum_{j in c} h_j            (7.1)

where ``j in c`` runs over the caption's real tokens: up to and including the first ``<eos>``,
``<pad>`` excluded. Whatever follows the first ``<eos>`` is padding, so appending pads, or
changing what stands after ``<eos>``, leaves e(c) unchanged (exactly, up to float rounding).

The conditional generators of the chapter (latent diffusion, CVAE) take e(c) as their conditioning
signal c; the encoder is trained with them, end to end.
"""

from __future__ import annotations

import torch
from torch import nn

from dgm._checks import positive_int
from dgm.data.captions import VOCAB, tokenize

__all__ = ["CaptionEncoder", "caption_mask", "check_tokens"]

PAD, BOS, EOS = VOCAB.index("<pad>"), VOCAB.index("<bos>"), VOCAB.index("<eos>")


def check_tokens(tokens, name: str = "tokens", max_length: int | None = None) -> torch.Tensor:
    """``tokens`` as a LongTensor ``(N, L)`` of ids in ``0..len(VOCAB) - 1`` (strings are tokenized)."""
    if isinstance(tokens, str) or (isinstance(tokens, (list, tuple)) and tokens and isinstance(tokens[0], str)):
        tokens = tokenize(list(tokens) if not isinstance(tokens, str) else tokens)
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"{name} must be a LongTensor of token ids (N, L) or caption strings, "
                        f"got {type(tokens).__name__}")
    if tokens.is_floating_point() or tokens.dtype == torch.bool or tokens.is_complex():
        raise TypeError(f"{name} must hold integer token ids, got dtype {tokens.dtype}")
    if tokens.dim() != 2 or tokens.shape[0] == 0 or tokens.shape[1] == 0:
        raise ValueError(f"{name} must have shape (N, L) with N, L >= 1, got {tuple(tokens.shape)}")
    if int(tokens.min()) < 0 or int(tokens.max()) >= len(VOCAB):
        raise ValueError(f"{name} must hold token ids in 0..{len(VOCAB) - 1}")
    if max_length is not None and tokens.shape[1] > max_length:
        raise ValueError(f"{name} has length {tokens.shape[1]}, at most {max_length} fit this model")
    return tokens.long()


def caption_mask(tokens: torch.Tensor) -> torch.Tensor:
    """True at the real tokens of each caption: up to and including the first ``<eos>``, not ``<pad>``."""
    is_eos = tokens == EOS
    after_eos = (is_eos.long().cumsum(1) - is_eos.long()) > 0    # strictly after the first <eos>
    return (tokens != PAD) & ~after_eos


class CaptionEncoder(nn.Module):
    """e(c) of Eq. (7.1): token + position embedding, a padding-masked transformer, masked mean, linear.

    Args:
        dim: width of the token embedding and of the transformer.
        out_dim: size of the caption embedding e(c) (default ``dim``).
        layers: number of transformer encoder layers.
        heads: attention heads (must divide ``dim``).
        max_length: the longest token row accepted (the position embedding's size).

    ``forward(tokens)`` takes token ids ``(N, L)`` (or caption strings, tokenized on the way) and
    returns ``(N, out_dim)``.
    """

    def __init__(self, dim: int = 64, out_dim: int | None = None, layers: int = 2, heads: int = 4,
                 max_length: int = 16):
        super().__init__()
        dim, layers, heads = positive_int(dim, "dim"), positive_int(layers, "layers"), positive_int(heads, "heads")
        out_dim = dim if out_dim is None else positive_int(out_dim, "out_dim")
        if dim % heads:
            raise ValueError(f"heads must divide dim, got dim={dim}, heads={heads}")
        self.max_length = positive_int(max_length, "max_length")
        self.dim, self.out_dim = dim, out_dim
        self.token = nn.Embedding(len(VOCAB), dim, padding_idx=PAD)
        self.position = nn.Embedding(self.max_length, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(dim, out_dim)

    def forward(self, tokens) -> torch.Tensor:
        tokens = check_tokens(tokens, max_length=self.max_length).to(self.token.weight.device)
        mask = caption_mask(tokens)
        empty = ~mask.any(1)
        if bool(empty.any()):
            raise ValueError(f"tokens row {int(empty.nonzero()[0])} has no token before <eos> other than <pad>")
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        h = self.token(tokens) + self.position(positions)[None]
        h = self.transformer(h, src_key_padding_mask=~mask)
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1)
        return self.out(pooled)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, out_dim={self.out_dim}, max_length={self.max_length}"
