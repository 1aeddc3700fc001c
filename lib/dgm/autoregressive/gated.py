"""The gated PixelCNN (van den Oord et al., "Conditional image generation with PixelCNN decoders",
2016), Eq. (6.5): two stacks that together see every earlier pixel, so no blind spot.

* The *vertical* stack sees whole rows above the current one (masked k x k convolutions that keep
  the rows above the centre, Eq. (6.4)'s vertical mask); its receptive field grows upward and to
  both sides, and never contains the current row.
* The *horizontal* stack sees the current row to the left (masked 1 x k convolutions) plus, through
  a 1 x 1 convolution, the vertical stack's features at the same position.

Each layer uses the gated activation, with an optional class c (a learned bias per class):

    y = tanh(W_f * x + V_f c) (.) sigmoid(W_g * x + V_g c),                                    (6.5)

and the horizontal stack has a residual connection through a masked 1 x 1 convolution.
"""

from __future__ import annotations

import torch
from torch import nn

from dgm._checks import positive_int
from dgm.autoregressive.masked_conv import MaskedConv2d
from dgm.autoregressive.pixelcnn import ImageAutoregressive, output_head

__all__ = ["GatedLayer", "GatedPixelCNN", "gate"]


def gate(a: torch.Tensor) -> torch.Tensor:
    """Eq. (6.5): split the 2p channels into halves f, g and return tanh(f) * sigmoid(g)."""
    f, g = a.chunk(2, dim=1)
    return torch.tanh(f) * torch.sigmoid(g)


class GatedLayer(nn.Module):
    """One layer of both stacks: (v, h) -> (v', h'), Eq. (6.5).

    Args:
        in_channels, channels: input feature maps and the layer's p (outputs p, gates 2p).
        kernel_size: odd k: k x k vertical and 1 x k horizontal masked convolutions.
        mask_type: ``"A"`` for the first layer (reads the image), ``"B"`` after.
        data_channels: C of the data (channel groups, Eq. (6.4)).
        num_classes: None, or the number of classes of the conditioning label c.
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int, mask_type: str, data_channels: int = 1,
                 num_classes: int | None = None):
        super().__init__()
        p, c = channels, data_channels
        self.vertical = MaskedConv2d(in_channels, 2 * p, kernel_size, mask_type, c, vertical=True)
        self.horizontal = MaskedConv2d(in_channels, 2 * p, (1, kernel_size), mask_type, c)
        self.v_to_h = nn.Conv2d(2 * p, 2 * p, 1)
        self.h_out = MaskedConv2d(p, p, 1, "B", c)
        self.residual = mask_type == "B"
        self.cond = None if num_classes is None else nn.Embedding(num_classes, 4 * p)

    def forward(self, v: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None = None):
        v_pre = self.vertical(v)
        h_pre = self.horizontal(h) + self.v_to_h(v_pre)
        if self.cond is not None:
            cv, ch = self.cond(c)[:, :, None, None].chunk(2, dim=1)
            v_pre, h_pre = v_pre + cv, h_pre + ch
        h_new = self.h_out(gate(h_pre))
        return gate(v_pre), (h + h_new if self.residual else h_new)


class GatedPixelCNN(ImageAutoregressive):
    """The gated PixelCNN: a type-A gated layer, ``num_layers`` type-B gated layers, the 1x1 head
    on the horizontal stack. Same interface as :class:`dgm.autoregressive.PixelCNN`.

    Args:
        in_channels: C (channels a multiple of C).
        levels: K, the values a pixel takes.
        channels: p, feature maps per stack.
        num_layers: type-B layers after the first.
        kernel_size: odd k of every layer.
        num_classes: if given, ``forward(x, c)`` models p(x | c), Eq. (6.5).
        categorical: read the levels as categories (one-hot input, Eq. (6.8)) instead of values:
            for codebook indices or characters. On a 1 x L "image" the model is a causal
            convolutional sequence model (the horizontal stack alone; WaveNet's idea).
    """

    def __init__(self, in_channels: int = 1, levels: int = 2, channels: int = 64, num_layers: int = 5,
                 kernel_size: int = 3, num_classes: int | None = None, categorical: bool = False):
        super().__init__()
        p = self._setup(in_channels, levels, channels, num_classes, categorical)
        self.num_layers = positive_int(num_layers, "num_layers")
        c = self.in_channels
        self.layers = nn.ModuleList(
            [GatedLayer(self.input_features, p, kernel_size, "A", c, self.num_classes)]
            + [GatedLayer(p, p, kernel_size, "B", c, self.num_classes) for _ in range(self.num_layers)]
        )
        self.head = output_head(p, c, self.levels)

    def logits_from_features(self, u: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(N, K, C, H, W)``; at each pixel they depend on every earlier pixel in reach."""
        v = h = u
        for layer in self.layers:
            v, h = layer(v, h, c)
        n, _, height, width = u.shape
        return self.head(h).view(n, self.levels, self.in_channels, height, width)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, levels={self.levels}, num_classes={self.num_classes}"
                + (", categorical" if self.categorical else ""))
