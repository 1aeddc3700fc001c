"""Chapter 4: normalizing flows.

Lecture notation: a base variable z ~ p_Z (here N(0, I)), an invertible, differentiable flow map
x = f(z) with inverse z = f^{-1}(x) and Jacobian J. The density of x follows from the change of
variables formula,

    1-D:  p_X(x) = p_Z(f^{-1}(x)) |d f^{-1}(x) / dx|                                      (4.1)

    n-D:  p_X(x) = p_Z(f^{-1}(x)) |det J_{f^{-1}}(x)| = p_Z(z) |det J_f(z)|^{-1},  z = f^{-1}(x)   (4.2)

and for a composition x = f_K o ... o f_1 (z_0), z_k = f_k(z_{k-1}), x = z_K, the log-likelihood
is a sum over the layers,

    log p_X(x) = log p_Z(z_0) - sum_{k=1}^K log |det J_{f_k}(z_{k-1})|.                   (4.3)

Every transform here is a bijection with the same interface, in the direction of the lecture:

* ``forward(x) -> (y, log_det)``: y = f(x) and log |det df/dx|, one number per example;
* ``inverse(y) -> (x, log_det)``: x = f^{-1}(y) and log |det df^{-1}/dy| = -(the forward log_det).

``forward`` points from the base towards the data (sampling), ``inverse`` from the data towards the
base (density evaluation, Eq. (4.3)). The transforms:

* :class:`AffineCoupling` - RealNVP's affine coupling layer (Dinh et al., 2017), Eq. (4.4): a
  binary mask b keeps part of the input, the rest is scaled and shifted by functions of the kept
  part; the Jacobian is triangular, log-det = sum of the log-scales.
* :class:`ActNorm` - Glow's per-channel affine map with data-dependent initialisation, Eq. (4.5).
* :class:`Invertible1x1Conv` - Glow's invertible 1x1 convolution (a learned channel mixing),
  LU-parametrised so that log |det W| = sum log |s| costs O(C), Eq. (4.6).
* :class:`Permutation` - a fixed permutation of the features (log-det 0).
* :class:`LogitTransform` - the logit pre-processing of image flows, Eq. (4.9).
* :class:`PiecewiseLinearCDF` - per-pixel histogram marginals, Eq. (4.10): on its own, the
  "independent pixels" model, exactly.

Models: :class:`Flow` composes transforms over a standard normal base with ``log_prob(x)``,
``sample(n)`` and ``trajectory(z)`` (the layer-by-layer picture); :class:`RealNVP` is a ready 2-D
(or D-dimensional) coupling flow; :class:`GlowMLP` stacks ActNorm, mixing (1x1 convolution or
permutation) and coupling steps behind a pre-processing layer, for flattened images. For images:
:func:`dequantize` (uniform dequantization, Eq. (4.7)) and :func:`bits_per_dim` (Eq. (4.8));
:func:`flow_loss` is the negative log-likelihood with the ``loss_fn(model, batch)`` signature of
:func:`dgm.train.fit`, and :func:`fit_flow` trains a flow on it with gradient clipping and a
cosine learning-rate decay (maximum likelihood on sharp data is spiky without them).

Nothing here picks a device: a model lives where you ``.to()`` it, and every function works on the
device of its inputs.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dgm.ae import _batch_x, _check_tensor, _positive_int, _shape_tuple

__all__ = [
    "Transform",
    "AffineCoupling",
    "ActNorm",
    "Invertible1x1Conv",
    "LogitTransform",
    "Permutation",
    "PiecewiseLinearCDF",
    "Flow",
    "RealNVP",
    "GlowMLP",
    "alternating_masks",
    "checkerboard_mask",
    "standard_normal_log_prob",
    "dequantize",
    "bits_per_dim",
    "flow_loss",
    "fit_flow",
]

_LOG_2PI = math.log(2 * math.pi)


# ----------------------------------------------------------------------------- helpers
def _check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return x


_INSIDE_FLOW = threading.local()


@contextlib.contextmanager
def _inside_flow():
    """Layers called by a :class:`Flow` skip their input checks: the flow checked its input once
    (the finiteness check would otherwise synchronise a GPU at every layer)."""
    previous = getattr(_INSIDE_FLOW, "active", False)
    _INSIDE_FLOW.active = True
    try:
        yield
    finally:
        _INSIDE_FLOW.active = previous


def _check_batch(x, name: str, event_shape: tuple[int, ...] | None) -> torch.Tensor:
    """A floating-point, finite batch ``(N, *event_shape)`` (event_shape None: any ``(N, ...)``)."""
    if getattr(_INSIDE_FLOW, "active", False):
        return x
    x = _check_tensor(x, name)
    if event_shape is None:
        if x.dim() < 2:
            raise ValueError(f"{name} must be a batch (N, ...) with at least 2 dims, got shape {tuple(x.shape)}")
    elif x.dim() != len(event_shape) + 1 or tuple(x.shape[1:]) != tuple(event_shape):
        expected = "(N, " + ", ".join(map(str, event_shape)) + ")"
        raise ValueError(f"{name} must have shape {expected}, got {tuple(x.shape)}")
    return _check_finite(x, name)


def _sum_per_example(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).sum(dim=1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log p_Z(z) for the base p_Z = N(0, I), summed over every non-batch dim: shape ``(N,)``.

        log p_Z(z) = -1/2 sum_i (z_i^2 + log 2 pi)
    """
    z = _check_tensor(z, "z")
    if z.dim() < 1:
        raise ValueError("z must be a batch (N, ...), got a scalar")
    return -0.5 * _sum_per_example(z.pow(2) + _LOG_2PI) if z.dim() > 1 else -0.5 * (z.pow(2) + _LOG_2PI)


# ----------------------------------------------------------------------------- base class
class Transform(nn.Module):
    """A bijection y = f(x) with a tractable log |det J_f|.

    Subclasses implement ``forward(x) -> (y, log_det)`` with log_det = log |det df/dx|, shape
    ``(N,)``, and ``inverse(y) -> (x, log_det)`` with log_det = log |det df^{-1}/dy| (= minus the
    forward log_det at x = f^{-1}(y)).
    """

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError


# ----------------------------------------------------------------------------- masks
def alternating_masks(dim: int, num_layers: int) -> list[torch.Tensor]:
    """``num_layers`` binary masks over ``dim`` features that alternate: b_k[i] = (i + k) % 2 == 0.

    Layer k keeps the features where b_k = 1 and transforms the others; the next layer swaps the
    roles, so after two layers every feature has been transformed. For dim = 2: [1, 0], [0, 1], ...
    """
    dim = _positive_int(dim, "dim")
    num_layers = _positive_int(num_layers, "num_layers")
    if dim < 2:
        raise ValueError(f"dim must be >= 2 for a coupling flow (one part kept, one transformed), got {dim}")
    idx = torch.arange(dim)
    return [((idx + k) % 2 == 0).float() for k in range(num_layers)]


def checkerboard_mask(height: int, width: int, parity: int = 0) -> torch.Tensor:
    """RealNVP's checkerboard mask b[i, j] = (i + j + parity) % 2 == 0, shape ``(height, width)``."""
    height, width = _positive_int(height, "height"), _positive_int(width, "width")
    if parity not in (0, 1):
        raise ValueError(f"parity must be 0 or 1, got {parity!r}")
    i = torch.arange(height)[:, None]
    j = torch.arange(width)[None, :]
    return ((i + j + parity) % 2 == 0).float()


# ----------------------------------------------------------------------------- affine coupling
def _mlp(d_in: int, hidden: Sequence[int], d_out: int, activation) -> nn.Sequential:
    layers: list[nn.Module] = []
    prev = d_in
    for h in hidden:
        layers += [nn.Linear(prev, h), activation()]
        prev = h
    layers.append(nn.Linear(prev, d_out))
    return nn.Sequential(*layers)


def _conv_net(channels: int, hidden: int, activation) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, hidden, 3, padding=1), activation(),
        nn.Conv2d(hidden, hidden, 1), activation(),
        nn.Conv2d(hidden, 2 * channels, 3, padding=1),
    )


def _hidden_tuple(hidden, num_hidden_layers: int) -> tuple[int, ...]:
    if isinstance(hidden, int) and not isinstance(hidden, bool):
        hidden = (_positive_int(hidden, "hidden"),) * _positive_int(num_hidden_layers, "num_hidden_layers")
    try:
        hidden = tuple(hidden)
    except TypeError:
        raise ValueError(f"hidden must be a positive int or a sequence of positive ints, got {hidden!r}") from None
    if not hidden or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden):
        raise ValueError(f"hidden must be a positive int or a sequence of positive ints, got {hidden!r}")
    return hidden


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
            self.net = _mlp(len(kept_idx), self.hidden, 2 * len(free_idx), act)
            self.register_buffer("kept_idx", kept_idx)
            self.register_buffer("free_idx", free_idx)
            self.register_buffer("unperm", torch.argsort(torch.cat([kept_idx, free_idx])))
            scale_shape = (len(free_idx),)
        elif mask.dim() in (2, 3):
            if mask.dim() == 2:
                if in_channels is None:
                    raise ValueError("in_channels must be given for an image mask of shape (H, W)")
                c = _positive_int(in_channels, "in_channels")
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
        return kept + (1.0 - self.mask) * out, sign * _sum_per_example(s)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y = b x + (1 - b)(x exp(s(b x)) + t(b x)) and log |det J| = sum (1 - b) s, Eq. (4.4)."""
        return self._couple(_check_batch(x, "x", self.event_shape), +1)

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = b y + (1 - b)(y - t(b y)) exp(-s(b y)) and log |det J_{f^-1}| = -sum (1 - b) s, Eq. (4.4)."""
        return self._couple(_check_batch(y, "y", self.event_shape), -1)

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}, kept={int(self.mask.sum())}/{self.mask.numel()}"


# ----------------------------------------------------------------------------- ActNorm
def _channel_view(x: torch.Tensor, c: int, name: str) -> int:
    """Check a batch (N, C) or (N, C, H, W) with C = c; return the number of positions H * W."""
    if x.dim() not in (2, 4) or x.shape[1] != c:
        raise ValueError(f"{name} must have shape (N, {c}) or (N, {c}, H, W), got {tuple(x.shape)}")
    return 1 if x.dim() == 2 else x.shape[2] * x.shape[3]


def _bcast(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return p.view(1, -1) if x.dim() == 2 else p.view(1, -1, 1, 1)


class ActNorm(Transform):
    """Glow's activation normalisation (Kingma & Dhariwal, 2018), Eq. (4.5): a per-channel affine map

        forward:  y = exp(log_s) * x + b,        inverse:  x = (y - b) * exp(-log_s)
        log |det J_f| = H * W * sum_c log_s_c     (H * W = 1 for vectors (N, C))

    with *data-dependent initialisation*: the first time ``inverse`` sees data (the direction of
    the data, as in ``Flow.log_prob``), b and log_s are set to the per-channel mean and log standard
    deviation of that batch, so that its image x has zero mean and unit variance per channel.
    After that they are ordinary trainable parameters. ``initialized`` is a buffer, saved with
    the model.

    Args:
        num_features: C, the channels of images ``(N, C, H, W)`` or the features of vectors ``(N, C)``.
        eps: added to the standard deviation at initialisation.
    """

    def __init__(self, num_features: int, eps: float = 1e-6):
        super().__init__()
        self.num_features = _positive_int(num_features, "num_features")
        self.eps = float(eps)
        self.log_s = nn.Parameter(torch.zeros(self.num_features))
        self.b = nn.Parameter(torch.zeros(self.num_features))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, y: torch.Tensor) -> None:
        """Data-dependent initialisation from a data-side batch y: b = mean, log_s = log std per channel."""
        y = _check_batch(y, "y", None)
        _channel_view(y, self.num_features, "y")
        if y.shape[0] < 2 and y.dim() == 2:
            raise ValueError("ActNorm's data-dependent initialisation needs a batch of at least 2 examples")
        flat = y.transpose(0, 1).reshape(self.num_features, -1)
        self.b.copy_(flat.mean(1))
        self.log_s.copy_(torch.log(flat.std(1, unbiased=False) + self.eps))
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y = exp(log_s) x + b, log |det| = H W sum log_s, Eq. (4.5)."""
        x = _check_batch(x, "x", None)
        hw = _channel_view(x, self.num_features, "x")
        y = x * _bcast(self.log_s.exp(), x) + _bcast(self.b, x)
        return y, (hw * self.log_s.sum()).expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = (y - b) exp(-log_s), log |det| = -H W sum log_s, Eq. (4.5); initialises on first use."""
        y = _check_batch(y, "y", None)
        hw = _channel_view(y, self.num_features, "y")
        if not bool(self.initialized):
            self.initialize(y)
        x = (y - _bcast(self.b, y)) * _bcast(torch.exp(-self.log_s), y)
        return x, (-hw * self.log_s.sum()).expand(y.shape[0])

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}, initialized={bool(self.initialized)}"


# ----------------------------------------------------------------------------- invertible 1x1 conv
class Invertible1x1Conv(Transform):
    """Glow's invertible 1x1 convolution (Kingma & Dhariwal, 2018), Eq. (4.6).

    At every pixel the C channels are mixed by one learned invertible C x C matrix W. As in Glow's
    table, W acts in the direction data -> base (``inverse``, used by ``log_prob`` at every
    training step, so training needs only a matrix product); sampling applies W^{-1}:

        inverse:  z_{:, i, j} = W y_{:, i, j},      forward:  y_{:, i, j} = W^{-1} z_{:, i, j}
        log |det J_{f^{-1}}| = H * W_pixels * log |det W|   (the forward log-det is its negative)

    (a learned generalisation of RealNVP's fixed channel permutations). With ``lu=True``
    (default) W is kept in LU form, W = P L (U + diag(sign * exp(log_s))), P a fixed permutation,
    L unit lower triangular and U strictly upper triangular (both learned), so
    log |det W| = sum log_s costs O(C) instead of O(C^3), and W^{-1} is two triangular solves.
    With ``lu=False`` W is a plain parameter and log |det W| comes from ``torch.linalg.slogdet``
    (O(C^3)). Vectors ``(N, C)`` are treated as one pixel, so the layer is then a learned
    invertible linear map of the C features.

    Args:
        num_channels: C.
        lu: LU-parametrise W.
        init: ``"rotation"`` (Glow: a random orthogonal matrix, |det W| = 1) or ``"identity"``
            (better conditioned for large C, e.g. C = 784 features of a flattened image).
        generator: optional ``torch.Generator`` for the random rotation.
    """

    def __init__(self, num_channels: int, lu: bool = True, init: str = "rotation",
                 generator: torch.Generator | None = None):
        super().__init__()
        c = self.num_channels = _positive_int(num_channels, "num_channels")
        if init not in ("rotation", "identity"):
            raise ValueError(f"init must be 'rotation' or 'identity', got {init!r}")
        self.lu = bool(lu)
        if init == "rotation":
            w0 = torch.linalg.qr(torch.randn(c, c, generator=generator, dtype=torch.float64))[0]
        else:
            w0 = torch.eye(c, dtype=torch.float64)
        if self.lu:
            p, lower, upper = torch.linalg.lu(w0)
            diag = torch.diagonal(upper)
            self.register_buffer("P", p.float())
            self.register_buffer("sign_s", torch.sign(diag).float())
            self.register_buffer("lower_mask", torch.tril(torch.ones(c, c), -1))
            self.register_buffer("eye", torch.eye(c))
            self.L = nn.Parameter((lower * torch.tril(torch.ones_like(lower), -1)).float())
            self.U = nn.Parameter(torch.triu(upper, 1).float())
            self.log_s = nn.Parameter(torch.log(diag.abs()).float())
        else:
            self.weight = nn.Parameter(w0.float())

    def _lower(self) -> torch.Tensor:
        return self.L * self.lower_mask + self.eye

    def _upper(self) -> torch.Tensor:
        return self.U * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))

    def weight_matrix(self) -> torch.Tensor:
        """W as a dense C x C matrix (P L (U + diag(sign exp(log_s))) with ``lu=True``)."""
        if self.lu:
            return self.P @ self._lower() @ self._upper()
        return self.weight

    def log_abs_det_weight(self) -> torch.Tensor:
        """log |det W|: sum log_s (LU, O(C)) or slogdet (dense, O(C^3))."""
        if self.lu:
            return self.log_s.sum()
        return torch.linalg.slogdet(self.weight)[1]

    def _columns(self, v: torch.Tensor) -> torch.Tensor:
        """(N, C) or (N, C, H, W) -> (C, M): one column per pixel of every example."""
        return v.T if v.dim() == 2 else v.permute(1, 0, 2, 3).reshape(self.num_channels, -1)

    def _uncolumns(self, cols: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if like.dim() == 2:
            return cols.T
        n, _, h, w = like.shape
        return cols.reshape(self.num_channels, n, h, w).permute(1, 0, 2, 3)

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = W y at every pixel, log |det| = H W log |det W|, Eq. (4.6)."""
        y = _check_batch(y, "y", None)
        hw = _channel_view(y, self.num_channels, "y")
        cols = self._columns(y)
        if self.lu:  # P (L (U cols)): three O(C^2) products per column, W itself is never formed
            cols = self.P @ (self._lower() @ (self._upper() @ cols))
        else:
            cols = self.weight @ cols
        return self._uncolumns(cols, y), (hw * self.log_abs_det_weight()).expand(y.shape[0])

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y = W^{-1} z at every pixel (two triangular solves with LU), log |det| = -H W log |det W|."""
        z = _check_batch(z, "z", None)
        hw = _channel_view(z, self.num_channels, "z")
        cols = self._columns(z)
        if self.lu:
            r = self.P.T @ cols
            r = torch.linalg.solve_triangular(self._lower(), r, upper=False, unitriangular=True)
            r = torch.linalg.solve_triangular(self._upper(), r, upper=True)
        else:
            r = torch.linalg.solve(self.weight, cols)
        return self._uncolumns(r, z), (-hw * self.log_abs_det_weight()).expand(z.shape[0])

    def extra_repr(self) -> str:
        return f"num_channels={self.num_channels}, lu={self.lu}"


# ----------------------------------------------------------------------------- permutation
class Permutation(Transform):
    """A fixed permutation of the features (or channels), y = x[:, perm]: RealNVP's way of letting
    every feature be transformed by some coupling. Volume preserving: log |det J| = 0.

    Args:
        perm: a permutation of ``range(C)`` (a sequence or a LongTensor), or an int C for a random
            permutation drawn with ``generator``.
        generator: optional ``torch.Generator`` for the random permutation.
    """

    def __init__(self, perm, generator: torch.Generator | None = None):
        super().__init__()
        if isinstance(perm, int) and not isinstance(perm, bool):
            perm = torch.randperm(_positive_int(perm, "perm"), generator=generator)
        perm = torch.as_tensor(perm)
        if perm.dim() != 1 or perm.is_floating_point() or not torch.equal(
            torch.sort(perm).values, torch.arange(len(perm))
        ):
            raise ValueError("perm must be a permutation of 0, ..., C - 1 (or an int C)")
        self.register_buffer("perm", perm.long())
        self.register_buffer("unperm", torch.argsort(perm).long())

    def _permute(self, v: torch.Tensor, index: torch.Tensor, name: str):
        v = _check_batch(v, name, None)
        if v.shape[1] != len(index):
            raise ValueError(f"{name} must have {len(index)} features/channels in dim 1, got shape {tuple(v.shape)}")
        return v[:, index], v.new_zeros(v.shape[0])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y = x[:, perm], log |det| = 0."""
        return self._permute(x, self.perm, "x")

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = y[:, perm^{-1}], log |det| = 0."""
        return self._permute(y, self.unperm, "y")

    def extra_repr(self) -> str:
        return f"num_features={len(self.perm)}"


# ----------------------------------------------------------------------------- per-pixel marginals
class PiecewiseLinearCDF(Transform):
    """An elementwise layer that gives every feature its own histogram marginal, Eq. (4.10).

    For feature i, a histogram density on [0, 1) with K equal bins of masses p_{i,1..K} (softmax of
    learned logits) has the piecewise-linear CDF C_i; the layer maps data y_i in [0, 1) to

        inverse:  z_i = Phi^{-1}(eps + (1 - 2 eps) C_i(y_i))          (data -> flow input)
        forward:  y_i = C_i^{-1}((Phi(z_i) - eps) / (1 - 2 eps))      (flow output -> data)
        log |det J_{f^{-1}}(y)| = sum_i [log(K p_{i, b_i}) + log(1 - 2 eps) - log phi(z_i)]

    with b_i the bin of y_i and Phi, phi the standard normal CDF and density; eps keeps z finite at
    y = 0. Under a N(0, I) base *this layer alone* is the model "independent pixels, each with its
    own histogram": log p(y) = sum_i log(K p_{i, b_i}), whose bits per dimension (4.8) are exactly
    those of the discrete histogram model, with no dequantization gap (the density is constant on
    each bin). Put at the data side of a flow, it makes every pixel's marginal right from the
    start and leaves the dependencies between pixels to the layers behind it. Initialise it from
    the training histogram with :meth:`initialize`.

    Args:
        num_features: D.
        num_bins: K, e.g. the number of pixel levels (256 for MNIST, 17 for sklearn digits).
        eps: in (0, 0.5).
    """

    def __init__(self, num_features: int, num_bins: int, eps: float = 1e-6):
        super().__init__()
        self.num_features = _positive_int(num_features, "num_features")
        self.num_bins = _positive_int(num_bins, "num_bins")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 < eps < 0.5:
            raise ValueError(f"eps must be a number in (0, 0.5), got {eps!r}")
        self.eps = float(eps)
        self.logits = nn.Parameter(torch.zeros(self.num_features, self.num_bins))

    @torch.no_grad()
    def initialize(self, y: torch.Tensor, smoothing: float = 1.0) -> None:
        """Set the bin masses to the (add-``smoothing``) histogram of data y ``(N, D)`` in [0, 1)."""
        y = self._check_y(y)
        bins = torch.clamp((y * self.num_bins).long(), 0, self.num_bins - 1)
        counts = torch.zeros(self.num_features, self.num_bins, dtype=torch.float64, device=y.device)
        counts.scatter_add_(1, bins.T.contiguous(), torch.ones(bins.T.shape, dtype=torch.float64, device=y.device))
        self.logits.copy_(torch.log(counts + smoothing).to(self.logits))

    def _check_y(self, y):
        y = _check_batch(y, "y", (self.num_features,))
        if bool(((y < 0) | (y > 1)).any()):
            raise ValueError("y must lie in [0, 1] (dequantized data) for PiecewiseLinearCDF")
        return y

    def _tables(self):
        log_p = torch.log_softmax(self.logits, dim=1)  # (D, K)
        p = log_p.exp()
        cdf = torch.cat([p.new_zeros(self.num_features, 1), torch.cumsum(p, dim=1)], dim=1)  # (D, K + 1)
        return log_p, p, cdf

    @staticmethod
    def _log_phi(z):
        return -0.5 * (z * z + _LOG_2PI)

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = Phi^{-1}(eps + (1 - 2 eps) C(y)) per feature and its log |det|, Eq. (4.10)."""
        y = self._check_y(y)
        log_p, p, cdf = self._tables()
        k = self.num_bins
        b = torch.clamp(torch.floor(y * k).long(), 0, k - 1)  # (N, D)
        feat = torch.arange(self.num_features, device=y.device).expand_as(b)
        c = cdf[feat, b] + (y * k - b) * p[feat, b]
        c = self.eps + (1 - 2 * self.eps) * c
        z = math.sqrt(2.0) * torch.erfinv(2 * c - 1)
        log_det = log_p[feat, b] + math.log(k) + math.log(1 - 2 * self.eps) - self._log_phi(z)
        return z, log_det.sum(dim=1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y = C^{-1}((Phi(z) - eps) / (1 - 2 eps)) per feature and its log |det|, Eq. (4.10)."""
        z = _check_batch(z, "z", (self.num_features,))
        log_p, p, cdf = self._tables()
        k = self.num_bins
        c = 0.5 * (1 + torch.erf(z / math.sqrt(2.0)))
        c = ((c - self.eps) / (1 - 2 * self.eps)).clamp(0.0, 1.0)
        b = torch.searchsorted(cdf[:, 1:].detach().contiguous(), c.T.contiguous(), right=True).T  # (N, D)
        b = torch.clamp(b, 0, k - 1)
        feat = torch.arange(self.num_features, device=z.device).expand_as(b)
        y = (b + (c - cdf[feat, b]) / p[feat, b]) / k
        log_det = self._log_phi(z) - log_p[feat, b] - math.log(k) - math.log(1 - 2 * self.eps)
        return y, log_det.sum(dim=1)

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}, num_bins={self.num_bins}, eps={self.eps}"


# ----------------------------------------------------------------------------- logit pre-processing
class LogitTransform(Transform):
    """The logit pre-processing of image flows (Dinh et al., 2017), Eq. (4.9).

    Data y in [0, 1] (dequantized pixels) are mapped to the real line before the flow proper:

        inverse:  u = logit(alpha + (1 - 2 alpha) y)          (data -> flow input)
        forward:  y = (sigmoid(u) - alpha) / (1 - 2 alpha)      (flow output -> data)
        log |det J_f(u)| = sum_i [log sigmoid(u_i) + log(1 - sigmoid(u_i)) - log(1 - 2 alpha)]

    ``alpha`` keeps the logit away from +-infinity at y = 0 and y = 1. ``forward`` maps R onto the
    interval (-alpha, 1 - alpha) / (1 - 2 alpha), slightly wider than [0, 1], so a model's density
    on [0, 1] integrates to a little less than 1: its likelihoods stay valid lower bounds.

    Args:
        alpha: in [0, 0.5).
    """

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha < 0.5:
            raise ValueError(f"alpha must be a number in [0, 0.5), got {alpha!r}")
        self.alpha = float(alpha)

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y = (sigmoid(u) - alpha) / (1 - 2 alpha) and its log |det|, Eq. (4.9)."""
        u = _check_batch(u, "u", None)
        y = (torch.sigmoid(u) - self.alpha) / (1 - 2 * self.alpha)
        log_det = F.logsigmoid(u) + F.logsigmoid(-u) - math.log(1 - 2 * self.alpha)
        return y, _sum_per_example(log_det)

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """u = logit(alpha + (1 - 2 alpha) y) and its log |det|, Eq. (4.9)."""
        y = _check_batch(y, "y", None)
        lo, hi = -self.alpha / (1 - 2 * self.alpha), (1 - self.alpha) / (1 - 2 * self.alpha)
        if bool(((y <= lo) | (y >= hi)).any()):
            raise ValueError(f"y must lie in ({lo:.4g}, {hi:.4g}) (data in [0, 1]) for LogitTransform(alpha={self.alpha})")
        p = self.alpha + (1 - 2 * self.alpha) * y
        u = torch.log(p) - torch.log1p(-p)
        log_det = math.log(1 - 2 * self.alpha) - torch.log(p) - torch.log1p(-p)
        return u, _sum_per_example(log_det)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


# ----------------------------------------------------------------------------- the flow
class Flow(Transform):
    """A normalizing flow: transforms f_1, ..., f_K over the base p_Z = N(0, I), Eqs. (4.2)-(4.3).

    x = f_K o ... o f_1 (z) with z ~ p_Z. ``transforms[0]`` acts on the base sample z,
    ``transforms[-1]`` produces the data x.

    * ``forward(z) -> (x, log_det)`` and ``inverse(x) -> (z, log_det)``: the whole chain, a
      :class:`Transform` itself (log-dets summed over the layers).
    * ``log_prob(x)`` = log p_Z(f^{-1}(x)) + log |det J_{f^{-1}}(x)|, Eq. (4.3), shape ``(N,)``.
    * ``sample(n, temperature=1.0)``: x = f(T z), z ~ N(0, I) (T < 1 samples the "typical" core).
    * ``trajectory(z)``: [z_0 = z, z_1, ..., z_K = x], every intermediate result, for the
      layer-by-layer pictures.

    Args:
        transforms: the layers, a sequence of :class:`Transform`.
        event_shape: the shape of one z (and one x), e.g. ``(2,)`` or ``(784,)``.
    """

    def __init__(self, transforms: Sequence[Transform], event_shape):
        super().__init__()
        transforms = list(transforms)
        if not transforms:
            raise ValueError("transforms must be a non-empty sequence of Transform")
        for i, t in enumerate(transforms):
            if not isinstance(t, Transform):
                raise TypeError(f"transforms[{i}] must be a dgm.flows.Transform, got {type(t).__name__}")
        self.transforms = nn.ModuleList(transforms)
        self.event_shape = _shape_tuple(event_shape, "event_shape")

    @property
    def num_layers(self) -> int:
        return len(self.transforms)

    def _param(self) -> torch.Tensor | None:
        for p in self.parameters():
            return p
        for b in self.buffers():
            if b.is_floating_point():
                return b
        return None

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = f(z) through every layer, and log |det J_f(z)| = sum_k log |det J_{f_k}(z_{k-1})|."""
        x = _check_batch(z, "z", self.event_shape)
        total = x.new_zeros(x.shape[0])
        with _inside_flow():
            for t in self.transforms:
                x, ld = t(x)
                total = total + ld
        return x, total

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = f^{-1}(x) through every layer in reverse, and log |det J_{f^{-1}}(x)|, Eq. (4.3)."""
        z = _check_batch(x, "x", self.event_shape)
        total = z.new_zeros(z.shape[0])
        with _inside_flow():
            for t in reversed(self.transforms):
                z, ld = t.inverse(z)
                total = total + ld
        return z, total

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p_X(x) = log p_Z(f^{-1}(x)) + log |det J_{f^{-1}}(x)|, Eqs. (4.2)-(4.3); shape ``(N,)``, nats."""
        z, log_det = self.inverse(x)
        return standard_normal_log_prob(z) + log_det

    def base_sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None):
        """z ~ N(0, T^2 I), ``(n, *event_shape)`` on the model's device."""
        n = _positive_int(n, "n")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and temperature >= 0
        ):
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
        ref = self._param()
        device = ref.device if ref is not None else torch.device("cpu")
        dtype = ref.dtype if ref is not None else torch.get_default_dtype()
        gen_device = generator.device if generator is not None else device
        z = torch.randn((n, *self.event_shape), generator=generator, device=gen_device, dtype=dtype)
        return temperature * z.to(device)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """x = f(T z), z ~ N(0, I): ``n`` samples ``(n, *event_shape)`` (no gradients)."""
        return self.forward(self.base_sample(n, temperature, generator))[0]

    @torch.no_grad()
    def trajectory(self, z: torch.Tensor) -> list[torch.Tensor]:
        """[z_0 = z, z_1 = f_1(z_0), ..., z_K = x]: K + 1 tensors (no gradients)."""
        x = _check_batch(z, "z", self.event_shape)
        out = [x]
        with _inside_flow():
            for t in self.transforms:
                x, _ = t(x)
                out.append(x)
        return out

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}, num_layers={self.num_layers}"


class RealNVP(Flow):
    """A ready RealNVP (Dinh et al., 2017) for D-dimensional vectors (default D = 2):
    ``num_layers`` affine couplings, Eq. (4.4), whose masks alternate (for D = 2: the first layer
    transforms x_2 given x_1, the next x_1 given x_2, ...). Each conditioner is an MLP with
    ``num_hidden_layers`` hidden layers of width ``hidden``.

    Args:
        dim: D.
        num_layers: number of coupling layers K (>= 2 so that every coordinate is transformed).
        hidden: hidden width of the conditioners.
        num_hidden_layers: hidden layers per conditioner.
        activation: ``"relu"``, ``"silu"``, ``"tanh"`` or ``"leaky_relu"``.
    """

    def __init__(self, dim: int = 2, num_layers: int = 8, hidden: int = 64, num_hidden_layers: int = 2,
                 activation: str = "relu"):
        num_layers = _positive_int(num_layers, "num_layers")
        if num_layers < 2:
            raise ValueError(f"num_layers must be >= 2 so that every coordinate is transformed, got {num_layers}")
        masks = alternating_masks(dim, num_layers)
        super().__init__([AffineCoupling(m, hidden, num_hidden_layers, activation) for m in masks], (dim,))
        self.dim = dim


class GlowMLP(Flow):
    """A Glow-style flow for flattened images (or any vectors) of D features:

        data y -> [pre-processing] -> K x (ActNorm -> mixing -> AffineCoupling) -> z

    read from the data side. The pre-processing maps [0, 1]^D to R^D: the logit, Eq. (4.9)
    (``"logit"``), or per-pixel histogram CDFs followed by the normal quantile, Eq. (4.10)
    (``"histogram"``: every pixel's marginal is right from the start; initialise it with
    ``model.preprocess.initialize(y_train)``), or nothing (None: data already on R^D). Then each
    step normalises (ActNorm, Eq. (4.5)), mixes the features and applies an affine coupling with an
    MLP conditioner, Eq. (4.4), whose mask alternates between the even and the odd features. The
    mixing is Glow's invertible 1x1 convolution of one "pixel" with D channels, Eq. (4.6)
    (``mixing="lu"``: O(D^2) per example, fine for D = 64), or a fixed random
    :class:`Permutation` (``"permutation"``: free, the choice for D = 784 on a CPU), or nothing.

    Args:
        dim: D (e.g. 64 for 8x8 digits, 784 for MNIST).
        num_layers: K, the number of steps.
        hidden: hidden width of the coupling MLPs.
        num_hidden_layers: hidden layers per coupling MLP.
        mixing: ``"lu"``, ``"permutation"`` or None.
        preprocess: ``"logit"``, ``"histogram"`` or None.
        logit_alpha: alpha of the logit (default 1e-6, as for MNIST in the MAF paper; 0.05, the
            RealNVP choice, is much worse on MNIST's many exactly-black pixels).
        num_bins: bins of the ``"histogram"`` pre-processing (the number of pixel levels).
        conv_init: initial W of the 1x1 convolutions, ``"identity"`` (default; well conditioned
            for hundreds of features) or ``"rotation"``.
        seed: seed of the random permutations / rotations.

    Attributes:
        preprocess: the pre-processing layer (the last transform), or None.
    """

    def __init__(self, dim: int, num_layers: int = 8, hidden: int = 256, num_hidden_layers: int = 1,
                 mixing: str | None = "lu", preprocess: str | None = "logit", logit_alpha: float = 1e-6,
                 num_bins: int = 256, conv_init: str = "identity", seed: int = 0):
        num_layers = _positive_int(num_layers, "num_layers")
        if mixing not in ("lu", "permutation", None):
            raise ValueError(f"mixing must be 'lu', 'permutation' or None, got {mixing!r}")
        if preprocess not in ("logit", "histogram", None):
            raise ValueError(f"preprocess must be 'logit', 'histogram' or None, got {preprocess!r}")
        masks = alternating_masks(dim, num_layers)
        gen = torch.Generator().manual_seed(seed)
        layers: list[Transform] = []
        for m in masks:  # base side first
            layers.append(AffineCoupling(m, hidden, num_hidden_layers))
            if mixing == "lu":
                layers.append(Invertible1x1Conv(dim, lu=True, init=conv_init, generator=gen))
            elif mixing == "permutation":
                layers.append(Permutation(dim, generator=gen))
            layers.append(ActNorm(dim))
        pre = None
        if preprocess == "logit":
            pre = LogitTransform(logit_alpha)
        elif preprocess == "histogram":
            pre = PiecewiseLinearCDF(dim, num_bins)
        if pre is not None:
            layers.append(pre)
        super().__init__(layers, (dim,))
        self.dim = dim
        self.mixing = mixing
        self.preprocess = pre


# ----------------------------------------------------------------------------- images: units
def dequantize(x: torch.Tensor, num_levels: int = 256, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform dequantization, Eq. (4.7): pixels with K levels k / (K - 1) -> (k + u) / K, u ~ U[0, 1).

    A density p on [0, 1]^D trained on the dequantized data bounds the discrete log-likelihood:
    E_u[log p((k + u) / K)] - D log K <= log P(k), by Jensen's inequality, since
    P(k) = integral of p over the cube [k/K, (k+1)/K)^D (volume K^-D). Each pixel value is rounded
    to its level first, so gray levels stored with rounding errors are accepted.

    Args:
        x: data in [0, 1] taking the K values k / (K - 1) (e.g. MNIST / 255 with K = 256,
            sklearn digits / 16 with K = 17).
        num_levels: K >= 2.
        generator: optional ``torch.Generator`` for u.

    Returns:
        y = (k + u) / K, the shape of x, in [0, 1).
    """
    x = _check_tensor(x, "x")
    k = _positive_int(num_levels, "num_levels")
    if k < 2:
        raise ValueError(f"num_levels must be >= 2, got {num_levels}")
    if x.numel() and bool((~((x >= 0) & (x <= 1))).any()):
        raise ValueError("x must lie in [0, 1] (and not be NaN): pixel levels k / (num_levels - 1)")
    levels = torch.round(x * (k - 1))
    device = x.device if generator is None else generator.device
    u = torch.rand(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
    return (levels + u) / k


def bits_per_dim(log_prob, num_dims: int, num_levels: int | None = None):
    """Bits per dimension, Eq. (4.8): bpd = -(log p(x) - D log K) / (D ln 2).

    Args:
        log_prob: log-likelihoods in nats (a number or a tensor, e.g. one per image). With
            ``num_levels`` = K they are log-*densities* of dequantized data scaled to [0, 1]^D, and
            the D log K turns them into log-probabilities of the K^D discrete images; with
            ``num_levels=None`` they are already discrete log-probabilities (e.g. a Bernoulli ELBO).
        num_dims: D, the number of dimensions (pixels x channels).
        num_levels: K, the number of levels per pixel, or None.

    Returns:
        The same type as ``log_prob``: a uniform density on [0, 1]^D gives log2 K bits/dim.
    """
    d = _positive_int(num_dims, "num_dims")
    if num_levels is not None:
        num_levels = _positive_int(num_levels, "num_levels")
    if isinstance(log_prob, torch.Tensor):
        _check_tensor(log_prob, "log_prob")
    elif isinstance(log_prob, bool) or not isinstance(log_prob, (int, float)):
        raise TypeError(f"log_prob must be a number or a floating-point tensor, got {type(log_prob).__name__}")
    shift = 0.0 if num_levels is None else d * math.log(num_levels)
    return -(log_prob - shift) / (d * math.log(2))


def flow_loss(model: Flow, batch, num_levels: int | None = None) -> torch.Tensor:
    """The negative log-likelihood -mean log p_X(x) over a batch (nats), for :func:`dgm.train.fit`.

    ``batch`` is a tensor x or an ``(x, y, ...)`` tuple (labels ignored); images ``(N, C, H, W)``
    are flattened when the flow expects vectors. With ``num_levels`` = K the batch is first
    dequantized with fresh noise, Eq. (4.7).
    """
    if not isinstance(model, Flow):
        raise TypeError(f"model must be a dgm.flows.Flow, got {type(model).__name__}")
    x = _batch_x(batch)
    if len(model.event_shape) == 1 and x.dim() > 2:
        x = x.reshape(x.shape[0], -1)
    if num_levels is not None:
        x = dequantize(x, num_levels)
    return -model.log_prob(x).mean()


def fit_flow(
    flow: Flow,
    data: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    num_levels: int | None = None,
    max_grad_norm: float | None = 5.0,
    cosine: bool = True,
    device=None,
    seed: int | None = None,
    progress: bool = False,
):
    """Maximum-likelihood training of a flow: Adam on :func:`flow_loss`, with two safeguards.

    Like :func:`dgm.train.fit` (same :class:`dgm.train.History`, same
    :class:`dgm.train.NonFiniteLossError`), plus what flows on sharp data need: the gradient norm
    is clipped at ``max_grad_norm`` (one training point that the current map sends far into the
    tails of p_Z gives a huge loss and gradient, which would undo the training so far) and the
    learning rate decays to 0 along a cosine over the ``steps`` (so the run ends in a quiet
    minimum rather than on a spike).

    Args:
        flow: the :class:`Flow` to train; moved to ``device``; its train/eval mode is restored.
        data: a tensor ``(N, ...)`` of training examples (images are flattened for vector flows).
        steps: number of optimisation steps; the data are visited in shuffled passes.
        batch_size: examples per step.
        lr: peak learning rate of Adam.
        num_levels: K to dequantize every batch with fresh noise, Eq. (4.7), or None.
        max_grad_norm: clip the gradient norm at this value (None: no clipping).
        cosine: decay the learning rate as lr (1 + cos(pi t / steps)) / 2.
        device: default :func:`dgm.config.get_device`.
        seed: seeds everything (shuffling, dequantization noise) for a reproducible run.
        progress: show a tqdm progress bar.

    Returns:
        The :class:`dgm.train.History` (``train_loss``: the NLL of every batch, nats).
    """
    import time

    from dgm.config import get_device, seed_everything
    from dgm.train import History, NonFiniteLossError, _as_device

    if not isinstance(flow, Flow):
        raise TypeError(f"flow must be a dgm.flows.Flow, got {type(flow).__name__}")
    data = _check_tensor(data, "data")
    if data.dim() < 2 or data.shape[0] == 0:
        raise ValueError(f"data must be a non-empty batch (N, ...), got shape {tuple(data.shape)}")
    steps = _positive_int(steps, "steps")
    batch_size = _positive_int(batch_size, "batch_size")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if max_grad_norm is not None and (isinstance(max_grad_norm, bool) or not isinstance(max_grad_norm, (int, float))
                                      or not max_grad_norm > 0):
        raise ValueError(f"max_grad_norm must be a positive number or None, got {max_grad_norm!r}")
    device = get_device() if device is None else _as_device(device)
    if seed is not None:
        seed_everything(seed)
    gen = torch.Generator().manual_seed(seed if seed is not None else int(torch.randint(0, 2**31, ()).item()))
    flow.to(device)
    data = data.to(device)
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
    history = History()
    was_training = flow.training
    flow.train()
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, disable=not progress, leave=True)
    start = time.perf_counter()
    order, pos = None, 0
    try:
        for step in range(steps):
            if cosine:
                for group in optimizer.param_groups:
                    group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))
            if order is None or pos + batch_size > len(order):
                order, pos = torch.randperm(len(data), generator=gen), 0
            batch = data[order[pos : pos + batch_size].to(device)]
            pos += batch_size
            loss = flow_loss(flow, batch, num_levels)
            value = loss.item()
            if not math.isfinite(value):
                raise NonFiniteLossError(step, value, history)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(flow.parameters(), max_grad_norm)
            optimizer.step()
            history.train_loss.append(value)
            bar.update(1)
    finally:
        bar.close()
        flow.train(was_training)
        history.seconds = time.perf_counter() - start
    return history
