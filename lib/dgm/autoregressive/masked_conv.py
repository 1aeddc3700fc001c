"""PixelCNN's masked convolution (van den Oord, Kalchbrenner & Kavukcuoglu, 2016), Eq. (6.4).

Pixels are generated in raster order (row by row, left to right) and, inside a pixel, channel by
channel (R, then G, then B). A k x k convolution becomes causal when its kernel is zero on the
pixels that come later: with the centre (r0, c0) = (k_h // 2, k_w // 2),

    mask[r, c] = 1 if r < r0, or r == r0 and c < c0;   0 if after the centre;
    at the centre:  type A: out group g sees in groups < g;  type B: in groups <= g.          (6.4)

With one data channel, type A excludes the centre pixel (the first layer: x_i must not see
itself) and type B includes it (later layers: their features at i only summarise x_{<i}). With C
data channels the feature maps are split into C groups, feature f belonging to channel f % C.

The *vertical* mask of the gated PixelCNN keeps whole rows: rows above the centre (type A) or up
to and including the centre row (type B), every column; the features it feeds never see the
current row, Eq. (6.5).
"""

from __future__ import annotations

import torch
from torch import nn

from dgm._checks import positive_int

__all__ = ["MASK_TYPES", "MaskedConv2d", "conv_mask"]

MASK_TYPES = ("A", "B")


def _kernel(kernel_size, name: str = "kernel_size") -> tuple[int, int]:
    if isinstance(kernel_size, int) and not isinstance(kernel_size, bool):
        kernel_size = (kernel_size, kernel_size)
    if (not isinstance(kernel_size, (tuple, list)) or len(kernel_size) != 2
            or not all(isinstance(k, int) and not isinstance(k, bool) and k > 0 and k % 2 == 1 for k in kernel_size)):
        raise ValueError(f"{name} must be an odd positive int or a pair of them, got {kernel_size!r}")
    return int(kernel_size[0]), int(kernel_size[1])


def conv_mask(out_channels: int, in_channels: int, kernel_size, mask_type: str = "B", data_channels: int = 1,
              vertical: bool = False) -> torch.Tensor:
    """The binary mask of Eq. (6.4), shape ``(out_channels, in_channels, k_h, k_w)``.

    Args:
        out_channels, in_channels: the convolution's channels.
        kernel_size: odd k or (k_h, k_w).
        mask_type: ``"A"`` (the centre excluded: first layer) or ``"B"`` (included: later layers).
        data_channels: C, the channels of the data (feature f belongs to channel f % C).
        vertical: the gated PixelCNN's vertical-stack mask (whole rows above the centre; type B
            adds the centre row), Eq. (6.5).
    """
    out_channels, in_channels = positive_int(out_channels, "out_channels"), positive_int(in_channels, "in_channels")
    kh, kw = _kernel(kernel_size)
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    c = positive_int(data_channels, "data_channels")
    r0, c0 = kh // 2, kw // 2
    mask = torch.zeros(out_channels, in_channels, kh, kw)
    if vertical:
        mask[:, :, : r0 + (mask_type == "B")] = 1.0
        return mask
    mask[:, :, :r0] = 1.0
    mask[:, :, r0, :c0] = 1.0
    g_out = (torch.arange(out_channels) % c)[:, None]
    g_in = (torch.arange(in_channels) % c)[None, :]
    centre = g_in < g_out if mask_type == "A" else g_in <= g_out
    mask[:, :, r0, c0] = centre.float()
    return mask


class MaskedConv2d(nn.Conv2d):
    """A convolution whose kernel is multiplied by the mask of Eq. (6.4); output the size of the input
    ("same" zero padding). ``mask_type`` A or B, ``data_channels`` C, ``vertical`` as in
    :func:`conv_mask`. The masked weights get zero gradient, so the model stays causal while it
    trains."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, mask_type: str = "B",
                 data_channels: int = 1, vertical: bool = False, bias: bool = True):
        mask = conv_mask(out_channels, in_channels, kernel_size, mask_type, data_channels, vertical)
        kh, kw = mask.shape[2:]
        super().__init__(in_channels, out_channels, (kh, kw), padding=(kh // 2, kw // 2), bias=bias)
        self.mask_type, self.data_channels, self.vertical = mask_type, int(data_channels), bool(vertical)
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)

    def extra_repr(self) -> str:
        extra = f", data_channels={self.data_channels}" if self.data_channels > 1 else ""
        return super().extra_repr() + f", mask_type={self.mask_type!r}" + (", vertical" if self.vertical else "") + extra
