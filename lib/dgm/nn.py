"""Network builders shared by the chapters: the fully connected stack and the small conv stack.

Both return plain lists of layers, so a model can wrap them in its own ``nn.Sequential`` (adding
a flatten in front or a sigmoid behind) and its parameter names stay ``encoder.0.weight``, ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

__all__ = ["conv_stack", "mlp", "mlp_layers"]


def mlp_layers(widths: Sequence[int], activation: Callable[[], nn.Module] = nn.ReLU) -> list[nn.Module]:
    """``Linear(w0, w1), act, Linear(w1, w2), act, ..., Linear(w_{k-1}, w_k)``: no activation after the last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(activation())
    return layers


def mlp(widths: Sequence[int], activation: Callable[[], nn.Module] = nn.ReLU) -> nn.Sequential:
    """:func:`mlp_layers` as one ``nn.Sequential``."""
    return nn.Sequential(*mlp_layers(widths, activation))


def conv_stack(in_shape: tuple[int, int, int], channels: Sequence[int], code_in: int, enc_out: int,
               extra_in_channels: int = 0) -> tuple[list[nn.Module], list[nn.Module]]:
    """The chapters' small convolutional encoder and its mirror image, as two lists of layers.

    Encoder: one stride-2 4x4 convolution per entry of ``channels`` (each halves H and W), ReLU after
    each, then a linear layer to ``enc_out``. Decoder: a linear layer from ``code_in``, ReLU, and the
    transposed convolutions back to ``in_shape`` (no activation at the end: the caller adds a
    sigmoid or reads logits). ``extra_in_channels`` widens the first convolution's input (a label
    broadcast as image planes, for a conditional model).
    """
    c, h, w = in_shape
    f = 2 ** len(channels)
    if h % f or w % f:
        raise ValueError(
            f"in_shape {tuple(in_shape)}: a conv encoder with {len(channels)} stride-2 layers needs "
            f"height and width divisible by {f}"
        )
    hs, ws = h // f, w // f
    enc: list[nn.Module] = []
    prev = c + extra_in_channels
    for ch in channels:
        enc += [nn.Conv2d(prev, ch, 4, stride=2, padding=1), nn.ReLU()]
        prev = ch
    enc += [nn.Flatten(), nn.Linear(prev * hs * ws, enc_out)]
    dec: list[nn.Module] = [nn.Linear(code_in, prev * hs * ws), nn.ReLU(), nn.Unflatten(1, (prev, hs, ws))]
    rev = list(channels[::-1]) + [c]
    for i, (a, b) in enumerate(zip(rev[:-1], rev[1:])):
        dec.append(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1))
        if i < len(rev) - 2:
            dec.append(nn.ReLU())
    return enc, dec
