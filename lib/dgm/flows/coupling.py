"""RealNVP's affine coupling layer, Eq. (4.4), and the binary masks that say which part it keeps.

A coupling layer keeps the features where the mask b is 1 and scales and shifts the others by
functions of the kept part; its Jacobian is triangular, so log |det J| is a sum of log-scales.
:func:`alternating_masks` (vectors) and :func:`checkerboard_mask` (images) build the masks of
successive layers so that every feature gets transformed.
"""

from __future__ import annotations

import torch
from torch import nn

from dgm._checks import positive_int, widths
from dgm.distributions import sum_except_batch
from dgm.flows.base import Transform, _check_batch
from dgm.nn import mlp

__all__ = ["AffineCoupling", "alternating_masks", "checkerboard_mask"]


# ----------------------------------------------------------------------------- masks
def alternating_masks(dim: int, num_layers: int) -> list[torch.Tensor]:
    """``num_layers`` binary masks over ``dim`` features that alternate: b_k[i] = (i + k) % 2 == 0.

    Layer k keeps the features where b_k = 1 and transforms the others; the next layer swaps the
    roles, so after two layers every feature has been transformed. For dim = 2: [1, 0], [0, 1], ...
    """
    dim = positive_int(dim, "dim")
    num_layers = positive_int(num_layers, "num_layers")
    if dim < 2:
        raise ValueError(f"dim must be >= 2 for a coupling flow (one part kept, one transformed), got {dim}")
    idx = torch.arange(dim)
    return [((idx + k) % 2 == 0).float() for k in range(num_layers)]


def checkerboard_mask(height: int, width: int, parity: int = 0) -> torch.Tensor:
    """RealNVP's checkerboard mask b[i, j] = (i + j + parity) % 2 == 0, shape ``(height, width)``."""
    height, width = positive_int(height, "height"), positive_int(width, "width")
    if parity not in (0, 1):
        raise ValueError(f"parity must be 0 or 1, got {parity!r}")
    i = torch.arange(height)[:, None]
    j = torch.arange(width)[None, :]
    return ((i + j + parity) % 2 == 0).float()


# ----------------------------------------------------------------------------- affine coupling
def _conv_net(channels: int, hidden: int, activation) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, hidden, 3, padding=1), activation(),
        nn.Conv2d(hidden, hidden, 1), activation(),
        nn.Conv2d(hidden, 2 * channels, 3, padding=1),
    )


def _hidden_tuple(hidden, num_hidden_layers: int) -> tuple[int, ...]:
    if isinstance(hidden, int) and not isinstance(hidden, bool):
        return (positive_int(hidden, "hidden"),) * positive_int(num_hidden_layers, "num_hidden_layers")
    return widths(hidden, "hidden")


_ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}


class AffineCoupling(Transform):
    """RealNVP's affine coupling layer (Dinh, Sohl-Dickstein & Bengio, 2017), Eq. (4.4).

    With a fixed binary mask b (1 = kept, 0 = transformed) and two functions s, t of the kept part,

        forward:  y = b * x + (1 - b) * (x * exp(s(b * x)) + t(b * x))
        inverse:  x = b * y + (1 - b) * (y - t(b * y)) * exp(-s(b * y))
        log |det J_f(x)| = sum_i (1 - b_i) s_i(b * x)

    For the mask "first d of D features" this is the table of the lecture: y_{1:d} = x_{1:d},
    y_{d+1:D} = x_{d+1:D} * exp(s(x_{1:d})) + t(x_{1:d}). The Jacobian is triangular (after
    reordering), with diagonal 1 on the kept and exp(s) on the transformed features, so the
    log-determinant costs O(D) and s, t can be any networks: they are never inverted.

    s and t come from one network, the *conditioner*. For vectors ``(N, D)`` it is an MLP that
    reads the kept features and outputs s and t for the transformed ones only (the same map as
    the masked formula, at half the cost). For images ``(N, C, H, W)`` it is a small CNN (3x3,
    1x1, 3x3 convolutions) that reads b * x and outputs 2C maps, used where b = 0. The log-scale
    is bounded, s = ``scale`` * tanh(raw / ``scale``) with a learned per-feature ``scale``
    (initially 2), and the conditioner's last layer starts at zero, so an untrained coupling is
    the identity (as in Glow).

    Args:
        mask: the binary mask b, shape ``(D,)`` for vectors, ``(H, W)`` (checkerboard, shared by
            the channels) or ``(C, H, W)`` for images. Must contain both 0s and 1s.
        hidden: hidden widths of the MLP (an int repeated ``num_hidden_layers`` times, or a
            sequence), or the CNN's channels (an int).
        num_hidden_layers: MLP depth when ``hidden`` is an int.
        activation: ``"relu"``, ``"silu"``, ``"tanh"`` or ``"leaky_relu"``.
        in_channels: C, required for image masks of shape ``(H, W)``.
    """

    def __init__(self, mask: torch.Tensor, hidden=64, num_hidden_layers: int = 2, activation: str = "relu",
                 in_channels: int | None = None):
        super().__init__()
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a torch.Tensor of 0s and 1s, got {type(mask).__name__}")
        mask = mask.detach().float()
        if mask.numel() == 0 or not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("mask must contain only 0s and 1s")
        if bool((mask == 0).all()) or bool((mask == 1).all()):
            raise ValueError("mask must contain both 0s (transformed) and 1s (kept)")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(map(repr, _ACTIVATIONS))}; got {activation!r}")
        act = _ACTIVATIONS[activation]
        if mask.dim() == 1:
            self.event_shape = (mask.shape[0],)
            self.hidden = _hidden_tuple(hidden, num_hidden_layers)
            kept_idx = torch.nonzero(mask == 1).flatten()
            free_idx = torch.nonzero(mask == 0).flatten()
            # vectors: the conditioner sees only the kept features and outputs s, t for the others
            self.net = mlp((len(kept_idx), *self.hidden, 2 * len(free_idx)), act)
            self.register_buffer("kept_idx", kept_idx)
            self.register_buffer("free_idx", free_idx)
            self.register_buffer("unperm", torch.argsort(torch.cat([kept_idx, free_idx])))
            scale_shape = (len(free_idx),)
        elif mask.dim() in (2, 3):
            if mask.dim() == 2:
                if in_channels is None:
                    raise ValueError("in_channels must be given for an image mask of shape (H, W)")
                c = positive_int(in_channels, "in_channels")
                mask = mask.expand(c, *mask.shape).clone()
            c = mask.shape[0]
            if in_channels is not None and in_channels != c:
                raise ValueError(f"in_channels={in_channels} does not match the mask's {c} channels")
            if not (isinstance(hidden, int) and not isinstance(hidden, bool) and hidden > 0):
                raise ValueError(f"hidden must be a positive int (CNN channels) for image masks, got {hidden!r}")
            self.event_shape = tuple(mask.shape)
            self.hidden = (hidden,)
            self.net = _conv_net(c, hidden, act)
            scale_shape = self.event_shape
        else:
            raise ValueError(f"mask must have shape (D,), (H, W) or (C, H, W), got {tuple(mask.shape)}")
        last = self.net[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.register_buffer("mask", mask)
        self.scale = nn.Parameter(torch.full(scale_shape, 2.0))

    def _s_t(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """s and t of Eq. (4.4) from the kept part (vectors: only the transformed features'
        values; images: full maps, zero on the kept pixels)."""
        raw_s, t = self.net(kept).chunk(2, dim=1)
        s = self.scale * torch.tanh(raw_s / self.scale)
        if self.mask.dim() == 1:
            return s, t
        free = 1.0 - self.mask
        return s * free, t * free

    def _couple(self, v: torch.Tensor, sign: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mask.dim() == 1:  # gather the kept / transformed features (the same map as the masks)
            kept = v[:, self.kept_idx]
            s, t = self._s_t(kept)
            free = v[:, self.free_idx]
            out = free * torch.exp(s) + t if sign > 0 else (free - t) * torch.exp(-s)
            return torch.cat([kept, out], dim=1)[:, self.unperm], sign * s.sum(dim=1)
        kept = v * self.mask
        s, t = self._s_t(kept)
        out = v * torch.exp(s) + t if sign > 0 else (v - t) * torch.exp(-s)
        return kept + (1.0 - self.mask) * out, sign * sum_except_batch(s)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y = b x + (1 - b)(x exp(s(b x)) + t(b x)) and log |det J| = sum (1 - b) s, Eq. (4.4)."""
        return self._couple(_check_batch(x, "x", self.event_shape), +1)

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = b y + (1 - b)(y - t(b y)) exp(-s(b y)) and log |det J_{f^-1}| = -sum (1 - b) s, Eq. (4.4)."""
        return self._couple(_check_batch(y, "y", self.event_shape), -1)

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}, kept={int(self.mask.sum())}/{self.mask.numel()}"
