"""The networks of lecture 5: eps_theta(x_t, t[, y]) (or a velocity v_theta(x_s, s[, y])).

:class:`SinusoidalEmbedding` turns a time into features; a conditioning block adds a learned label
embedding (with one extra "null" label for classifier-free guidance, Eq. (5.10));
:class:`TimeMLP` serves the 2-D toy data and :class:`UNet` the images. Both start at output 0.
Give a flow-matching model (Eq. (5.12)) ``time_scale=1000`` so that its sinusoidal features see
the same range as the integer steps of a T = 1000 diffusion model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dgm._checks import positive_int

__all__ = ["SinusoidalEmbedding", "TimeMLP", "UNet"]


class SinusoidalEmbedding(nn.Module):
    """Transformer-style features of a time value: [sin(tau w_k), cos(tau w_k)], tau = time_scale * t,
    w_k = max_period^(-k / (dim/2)), k = 0 ... dim/2 - 1 (Vaswani et al., 2017; Ho et al., 2020)."""

    def __init__(self, dim: int, time_scale: float = 1.0, max_period: float = 10000.0):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2 or dim % 2:
            raise ValueError(f"dim must be a positive even int, got {dim!r}")
        self.dim, self.time_scale = dim, float(time_scale)
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(max_period) * torch.arange(half) / half), persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"t must be a tensor of times, got {type(t).__name__}")
        if t.dim() == 0:
            t = t[None]
        if t.dim() != 1:
            raise ValueError(f"t must have shape (N,), got {tuple(t.shape)}")
        arg = self.time_scale * t.to(self.freqs.dtype)[:, None] * self.freqs[None]
        return torch.cat([arg.sin(), arg.cos()], dim=1)


class _Conditioning(nn.Module):
    """Time embedding MLP, plus a label embedding with one extra "null" label when num_classes is set."""

    def __init__(self, emb_dim: int, time_scale: float, num_classes: int | None):
        super().__init__()
        self.time = nn.Sequential(SinusoidalEmbedding(emb_dim, time_scale), nn.Linear(emb_dim, emb_dim), nn.SiLU(),
                                  nn.Linear(emb_dim, emb_dim))
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                        or num_classes < 1):
            raise ValueError(f"num_classes must be None or a positive int, got {num_classes!r}")
        self.num_classes = num_classes
        self.label = None if num_classes is None else nn.Embedding(num_classes + 1, emb_dim)

    def forward(self, t, y, n, device):
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t, device=device)
        if t.dim() == 0:
            t = t.expand(n)
        if t.shape != (n,):
            raise ValueError(f"t must have shape ({n},), one time per example, got {tuple(t.shape)}")
        emb = self.time(t.to(device))
        if self.label is not None:
            if y is None:
                y = torch.full((n,), self.num_classes, dtype=torch.long, device=device)
            if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.shape != (n,):
                raise ValueError(f"y must be an integer label tensor of shape ({n},), got {getattr(y, 'shape', y)!r}")
            if int(y.min()) < 0 or int(y.max()) > self.num_classes:
                raise ValueError(f"y must hold labels in [0, {self.num_classes}] ({self.num_classes} = null label)")
            emb = emb + self.label(y.to(device))
        elif y is not None:
            raise ValueError("y was given but the model was built without num_classes")
        return emb


def _zero(layer: nn.Module) -> nn.Module:
    """The output layer with zero weights and bias, so that the network outputs 0 at the start."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class _ConditionedNet(nn.Module):
    """What :class:`TimeMLP` and :class:`UNet` share: the conditioning block ``cond`` and the label
    ``null_label`` of the unconditional branch (None for an unconditional model)."""

    @property
    def null_label(self):
        return self.cond.num_classes


class TimeMLP(_ConditionedNet):
    """eps_theta(x, t[, y]) (or a velocity v_theta) for vectors: an MLP on [x, embedding(t, y)].

    Each hidden layer gets the conditioning added: h <- SiLU(W h + b + U e(t, y)).

    Args:
        dim: data dimension (2 for the toy sets).
        hidden: width of the hidden layers.
        depth: number of hidden layers.
        emb_dim: size of the time (and label) embedding.
        num_classes: if set, a conditional model with labels 0..num_classes-1 and ``null_label`` =
            num_classes for the unconditional branch (classifier-free guidance).
        time_scale: multiplies t before the sinusoidal features (1 for integer steps, 1000 for
            flow-matching times in [0, 1]).
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, emb_dim: int = 64,
                 num_classes: int | None = None, time_scale: float = 1.0):
        super().__init__()
        for name, value in (("dim", dim), ("hidden", hidden), ("depth", depth)):
            positive_int(value, name)
        self.dim = dim
        self.cond = _Conditioning(emb_dim, time_scale, num_classes)
        self.inp = nn.Linear(dim, hidden)
        self.layers = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(depth)])
        self.embs = nn.ModuleList([nn.Linear(emb_dim, hidden) for _ in range(depth)])
        self.out = _zero(nn.Linear(hidden, dim))

    def forward(self, x, t, y=None):
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (N, {self.dim}), got {getattr(x, 'shape', x)!r}")
        e = self.cond(t, y, len(x), x.device)
        h = F.silu(self.inp(x))
        for layer, emb in zip(self.layers, self.embs):
            h = F.silu(layer(h) + emb(F.silu(e)))
        return self.out(h)


class _ResBlock(nn.Module):
    def __init__(self, cin, cout, emb_dim, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2 = nn.GroupNorm(min(groups, cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x, e):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(e))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class UNet(_ConditionedNet):
    """A small time-conditioned U-Net for eps_theta(x_t, t[, y]) on images (Ronneberger et al., 2015;
    Ho et al., 2020), without attention, small enough to train on a CPU.

    Layout for ``channels=(c1, c2, c3)`` and a 14x14 input: a 3x3 conv to c1 and a residual block
    at 14x14 (c1); a stride-2 conv to 7x7 and a residual block (c2); a stride-2 conv to 4x4 and a
    residual block (c3), then a middle block; then up again (nearest-neighbour upsampling to the
    size of the skip connection), each level concatenating the skip connection of the same
    resolution before a residual block. Every residual block adds a learned projection of the time
    (and label) embedding to its feature maps. The output conv is initialised to zero, so that
    eps_theta = 0 at the start of training. Any image size works; the cost grows with H x W and
    is dominated by the first level.

    Args:
        in_channels: image channels.
        channels: widths per resolution, at least two levels.
        emb_dim: size of the time/label embedding.
        num_classes: labels for a conditional model (``null_label`` = num_classes).
        time_scale: as in :class:`TimeMLP`.
        groups: GroupNorm groups (at most the channel count).
    """

    def __init__(self, in_channels: int = 1, channels=(16, 32, 64), emb_dim: int = 64,
                 num_classes: int | None = None, time_scale: float = 1.0, groups: int = 8):
        super().__init__()
        channels = tuple(channels)
        if len(channels) < 2 or not all(isinstance(c, int) and c > 0 for c in channels):
            raise ValueError(f"channels must list at least two positive widths, got {channels!r}")
        self.in_channels, self.channels = in_channels, channels
        self.cond = _Conditioning(emb_dim, time_scale, num_classes)
        self.inp = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        for i, c in enumerate(channels):
            cin = channels[0] if i == 0 else channels[i - 1]
            if i > 0:
                self.downsamples.append(nn.Conv2d(cin, cin, 3, stride=2, padding=1))
            self.down_blocks.append(_ResBlock(cin, c, emb_dim, groups))
        self.mid = _ResBlock(channels[-1], channels[-1], emb_dim, groups)
        self.up_blocks = nn.ModuleList()
        for i in reversed(range(len(channels) - 1)):
            self.up_blocks.append(_ResBlock(channels[i + 1] + channels[i], channels[i], emb_dim, groups))
        self.out_norm = nn.GroupNorm(min(groups, channels[0]), channels[0])
        self.out = _zero(nn.Conv2d(channels[0], in_channels, 3, padding=1))

    def forward(self, x, t, y=None):
        levels = len(self.channels)
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (N, {self.in_channels}, H, W), got {getattr(x, 'shape', x)!r}")
        e = self.cond(t, y, len(x), x.device)
        h = self.inp(x)
        skips = []
        for i, block in enumerate(self.down_blocks):
            if i > 0:
                h = self.downsamples[i - 1](h)
            h = block(h, e)
            skips.append(h)
        h = self.mid(h, e)
        for j, block in enumerate(self.up_blocks):
            skip = skips[levels - 2 - j]
            h = F.interpolate(h, size=skip.shape[2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1), e)
        return self.out(F.silu(self.out_norm(h)))
