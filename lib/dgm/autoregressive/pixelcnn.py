"""PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu, 2016): a stack of masked convolutions whose
output at pixel i is a categorical distribution over the ``levels`` values of x_i given x_{<i}.

:class:`ImageAutoregressive` is the interface of every image model of the chapter (this plain
stack and :class:`dgm.autoregressive.GatedPixelCNN`): ``model(x, c=None)`` maps a batch of
images ``(N, C, H, W)`` with values k / (K - 1) in [0, 1] (K = ``levels``; binarised digits:
K = 2, MNIST / 255: K = 256) to logits ``(N, K, C, H, W)``, the logits at (channel, row, column)
depending only on the pixels before it in raster order, Eq. (6.4). ``log_prob`` scores images
with Eq. (6.6).

The first layer reads either the *values* of the pixels (ordinal input, the default: the feature
2x - 1 per data channel, right for intensities, where level 5 is close to level 6) or, with
``categorical=True``, their *levels as categories*: the one-hot vector of the level, K features per
data channel (feature k * C + c is "channel c has level k"), Eq. (6.8). A masked convolution of a
one-hot input is a learned embedding of each level followed by the masked convolution, so no
order of the levels is assumed: the input for codebook indices (chapter 2's VQ-VAE codes) or
characters, where code 5 has nothing to do with code 6. Causality is unchanged: the features of a
pixel stay in its data channel's group of Eq. (6.4).

:class:`PixelCNN` is the paper's plain stack: a type-A masked k x k convolution, residual type-B
3 x 3 layers with ReLUs, then two masked 1 x 1 convolutions. Its receptive field has a *blind
spot*: pixels above and to the right of i that come before i but that no stack of such kernels
reaches (see :func:`dgm.autoregressive.receptive_field`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dgm._checks import positive_int
from dgm.autoregressive.masked_conv import MaskedConv2d

__all__ = ["ImageAutoregressive", "PixelCNN", "output_head"]


def output_head(channels: int, data_channels: int, levels: int) -> nn.Sequential:
    """ReLU, masked 1x1 conv (type B), ReLU, masked 1x1 conv to C * K logits (feature k * C + c is
    level k of data channel c)."""
    return nn.Sequential(
        nn.ReLU(), MaskedConv2d(channels, channels, 1, "B", data_channels),
        nn.ReLU(), MaskedConv2d(channels, data_channels * levels, 1, "B", data_channels),
    )


class ImageAutoregressive(nn.Module):
    """What every image model of chapter 6 shares: the input checks, the levels, Eq. (6.6).

    Subclasses call ``_setup`` (``in_channels`` C, ``levels`` K, ``num_classes``: None for an
    unconditional model, ``categorical``) and implement ``logits_from_features(u, c=None)``;
    ``forward(x, c=None) -> logits (N, K, C, H, W)`` is ``logits_from_features(features(x), c)``.
    """

    in_channels: int
    levels: int
    num_classes: int | None

    def _setup(self, in_channels: int, levels: int, channels: int, num_classes: int | None,
               categorical: bool = False) -> int:
        self.in_channels = positive_int(in_channels, "in_channels")
        if not isinstance(categorical, bool):
            raise TypeError(f"categorical must be a bool, got {type(categorical).__name__}")
        self.categorical = categorical
        self.levels = positive_int(levels, "levels")
        if self.levels < 2:
            raise ValueError(f"levels must be >= 2 (the values a pixel can take), got {levels}")
        channels = positive_int(channels, "channels")
        if channels % self.in_channels:
            raise ValueError(f"channels must be a multiple of in_channels={self.in_channels}, got {channels}")
        self.num_classes = None if num_classes is None else positive_int(num_classes, "num_classes")
        return channels

    @property
    def input_features(self) -> int:
        """Feature maps the first layer reads: C (ordinal input) or K * C (categorical, one-hot)."""
        return self.in_channels * (self.levels if self.categorical else 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The first layer's input ``(N, input_features, H, W)`` for images x ``(N, C, H, W)`` with
        values k / (K - 1): 2x - 1 (ordinal), or the one-hot of the level k (categorical), Eq. (6.8):
        u[n, k * C + c, r, q] = 1[level of x[n, c, r, q] = k]."""
        if not self.categorical:
            return 2 * x - 1
        k = torch.round(x * (self.levels - 1)).long().clamp(0, self.levels - 1)
        n, c, h, w = x.shape
        one_hot = F.one_hot(k, self.levels).to(x.dtype)  # (N, C, H, W, K)
        return one_hot.permute(0, 4, 1, 2, 3).reshape(n, self.levels * c, h, w)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(N, K, C, H, W)`` of p(x_i | x_{<i}) (and of c) for every pixel at once."""
        x, c = self.check_input(x, c)
        return self.logits_from_features(self.features(x), c)

    def logits_from_features(self, u: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The network after :meth:`features`: ``u`` ``(N, input_features, H, W)`` -> logits
        ``(N, K, C, H, W)``. Differentiable in u, so autograd can check causality on it even when
        the input is categorical (:func:`dgm.autoregressive.receptive_field`)."""
        raise NotImplementedError

    def check_input(self, x, c=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` a float batch ``(N, C, H, W)``; ``c`` class labels ``(N,)`` iff the model is conditional."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            kind = type(x).__name__ if not isinstance(x, torch.Tensor) else f"dtype {x.dtype}"
            raise TypeError(f"x must be a floating-point tensor of values k / (levels - 1), got {kind}")
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if self.num_classes is None:
            if c is not None:
                raise ValueError("c must be None: this model is unconditional (num_classes=None)")
            return x, None
        if not isinstance(c, torch.Tensor) or c.dtype.is_floating_point or c.shape != (x.shape[0],):
            raise ValueError(f"c must be an integer tensor of class labels of shape ({x.shape[0]},), got {c!r}")
        if c.numel() and (int(c.min()) < 0 or int(c.max()) >= self.num_classes):
            raise ValueError(f"c must hold labels in [0, {self.num_classes - 1}]")
        return x, c.to(x.device)

    def to_levels(self, x, name: str = "x") -> torch.Tensor:
        """Images as integer levels k in {0..K-1}: integer tensors are taken as levels, floating
        tensors as k / (K - 1) in [0, 1] (the course's data convention) and rounded to the level."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dtype == torch.bool:
            x = x.long()
        if x.is_floating_point():
            if x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
                raise ValueError(f"{name} must lie in [0, 1] (values k / (levels - 1)), or be integer levels")
            return torch.round(x * (self.levels - 1)).long()
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.levels):
            raise ValueError(f"{name} must hold integer levels in [0, {self.levels - 1}]")
        return x.long()

    def log_prob(self, x, c=None) -> torch.Tensor:
        """log P(x) = sum over channels and pixels of log softmax(logits)[x_i], Eq. (6.6), per image (nats)."""
        k = self.to_levels(x)
        if k.dim() != 4 or k.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (N, {self.in_channels}, H, W), got {tuple(k.shape)}")
        param = next(self.parameters())
        k = k.to(param.device)
        logits = self(k.to(param.dtype) / (self.levels - 1), c)
        log_p = F.log_softmax(logits, dim=1).gather(1, k[:, None]).squeeze(1)
        return log_p.flatten(1).sum(dim=1)

    def _cond(self, table: nn.Embedding | None, c: torch.Tensor | None) -> torch.Tensor | float:
        return 0.0 if table is None else table(c)[:, :, None, None]


class PixelCNN(ImageAutoregressive):
    """The plain PixelCNN: masked conv A, ``num_layers`` residual masked convs B, a 1x1 head, Eq. (6.4).

    Args:
        in_channels: C, data channels (1 for digits; C > 1 uses the R -> G -> B channel masks).
        levels: K, the values a pixel takes (2 for binarised digits, 256 for 8-bit images).
        channels: feature maps per layer (a multiple of C).
        num_layers: type-B layers after the type-A one.
        kernel_size: of the type-B layers (odd).
        first_kernel_size: of the type-A layer (odd; the paper uses 7).
        num_classes: if given, ``forward(x, c)`` adds a learned per-class bias to every layer
            (class-conditional model p(x | c)).
        categorical: read the levels as categories (one-hot input, Eq. (6.8)) instead of values.
    """

    def __init__(self, in_channels: int = 1, levels: int = 2, channels: int = 64, num_layers: int = 5,
                 kernel_size: int = 3, first_kernel_size: int = 7, num_classes: int | None = None,
                 categorical: bool = False):
        super().__init__()
        channels = self._setup(in_channels, levels, channels, num_classes, categorical)
        self.num_layers = positive_int(num_layers, "num_layers")
        c = self.in_channels
        self.first = MaskedConv2d(self.input_features, channels, first_kernel_size, "A", c)
        self.layers = nn.ModuleList(MaskedConv2d(channels, channels, kernel_size, "B", c)
                                    for _ in range(self.num_layers))
        self.head = output_head(channels, c, self.levels)
        self.cond = (None if self.num_classes is None else
                     nn.ModuleList(nn.Embedding(self.num_classes, channels) for _ in range(self.num_layers + 1)))

    def logits_from_features(self, u: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(N, K, C, H, W)`` of p(x_i | x_{<i}) (and of c) for every pixel at once."""
        cond = [None] * (self.num_layers + 1) if self.cond is None else list(self.cond)
        z = self.first(u) + self._cond(cond[0], c)
        for layer, table in zip(self.layers, cond[1:]):
            z = z + layer(F.relu(z)) + self._cond(table, c)
        n, _, h, w = u.shape
        return self.head(z).view(n, self.levels, self.in_channels, h, w)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, levels={self.levels}, num_classes={self.num_classes}"
                + (", categorical" if self.categorical else ""))
