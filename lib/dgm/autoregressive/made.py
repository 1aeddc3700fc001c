"""MADE, the masked autoencoder for distribution estimation (Germain et al., 2015), Eq. (6.3).

An ordinary MLP x -> logits becomes autoregressive when some of its weights are forced to zero.
Every unit gets a *degree*: input i has degree m_0(i) = its position in the order (1..D), every
hidden unit k of layer l a degree m_l(k) drawn uniformly from {min m_{l-1}, ..., D - 1}. A hidden
unit sees only the units of degree <= its own; an output sees only the units of strictly smaller
degree:

    M^l[k, k'] = 1[m_l(k) >= m_{l-1}(k')],        M^out[i, k] = 1[m_0(i) > m_L(k)].          (6.3)

So output i depends only on the inputs of degree < m_0(i), the variables before i in the order:
one forward pass gives all D conditionals p(x_i | x_{<i}) at once.
"""

from __future__ import annotations

import torch
from torch import nn

from dgm._checks import positive_int, widths
from dgm.autoregressive.binary import BinaryAutoregressive, check_order

__all__ = ["MADE", "MaskedLinear", "made_degrees", "made_masks"]


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed binary ``mask`` of shape (out, in):
    y = x (W * M)^T + b. The masked weights get zero gradient, so they stay irrelevant."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor | None = None, bias: bool = True):
        super().__init__(positive_int(in_features, "in_features"), positive_int(out_features, "out_features"), bias)
        self.register_buffer("mask", torch.ones(out_features, in_features))
        if mask is not None:
            self.set_mask(mask)

    def set_mask(self, mask: torch.Tensor) -> None:
        """Replace the mask (a tensor of 0s and 1s shaped like the weight)."""
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a torch.Tensor of 0s and 1s, got {type(mask).__name__}")
        if tuple(mask.shape) != tuple(self.weight.shape):
            raise ValueError(f"mask must have the weight's shape {tuple(self.weight.shape)}, got {tuple(mask.shape)}")
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("mask must contain only 0s and 1s")
        self.mask.copy_(mask.detach().to(self.mask))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


def made_degrees(dim: int, hidden, order=None, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """The degrees m_0 (inputs, 1..D) and m_1..m_L (hidden layers) of Eq. (6.3).

    m_0[i] = 1 + position of i in ``order``; m_l[k] ~ Uniform{min(m_{l-1}), ..., D - 1}, so every
    hidden unit feeds at least one output. Needs D >= 2.
    """
    dim = positive_int(dim, "dim")
    if dim < 2:
        raise ValueError(f"dim must be >= 2 for MADE (hidden degrees lie in [1, dim - 1]), got {dim}")
    order = check_order(order, dim)
    m0 = torch.empty(dim, dtype=torch.long)
    m0[order] = torch.arange(1, dim + 1)
    degrees = [m0]
    for h in widths(hidden, "hidden"):
        low = int(min(degrees[-1].min(), dim - 1))
        degrees.append(torch.randint(low, dim, (h,), generator=generator))
    return degrees


def made_masks(degrees: list[torch.Tensor]) -> list[torch.Tensor]:
    """The masks of Eq. (6.3) from the degrees: hidden ``m_l[:, None] >= m_{l-1}[None, :]``, output
    ``m_0[:, None] > m_L[None, :]`` (strict: x_i never sees itself)."""
    masks = [(d[:, None] >= prev[None, :]).float() for prev, d in zip(degrees[:-1], degrees[1:])]
    masks.append((degrees[0][:, None] > degrees[-1][None, :]).float())
    return masks


class MADE(BinaryAutoregressive):
    """MADE for binary vectors: a masked MLP whose D outputs are the logits of p(x_i = 1 | x_{<i}).

    Args:
        dim: D >= 2.
        hidden: hidden widths (an int or a sequence), e.g. ``(128, 128)``.
        order: None (natural order) or a permutation of 0..D-1 (x_{order[0]} is generated first).
        seed: seed of the hidden degrees (the connectivity) and of the initial weights.
    """

    def __init__(self, dim: int, hidden=(128,), order=None, seed: int = 0):
        super().__init__()
        self.dim = positive_int(dim, "dim")
        self.hidden = widths(hidden, "hidden")
        self.register_buffer("order", check_order(order, self.dim))
        gen = torch.Generator().manual_seed(int(seed))
        self.degrees = made_degrees(self.dim, self.hidden, self.order, gen)
        sizes = (self.dim, *self.hidden, self.dim)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            layers = [MaskedLinear(a, b, m) for a, b, m in zip(sizes[:-1], sizes[1:], made_masks(self.degrees))]
        body: list[nn.Module] = []
        for i, layer in enumerate(layers):
            body.append(layer)
            if i < len(layers) - 1:
                body.append(nn.ReLU())
        self.net = nn.Sequential(*body)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """All D logits in one pass; column i depends only on the inputs before i, Eq. (6.3)."""
        return self.net(x)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, hidden={self.hidden}"
