"""Glow's layers (Kingma & Dhariwal, 2018) and RealNVP's fixed permutation, which mix and normalise
the features between coupling layers.

* :class:`ActNorm` - a per-channel affine map with data-dependent initialisation, Eq. (4.5).
* :class:`Invertible1x1Conv` - a learned invertible channel mixing, LU-parametrised so that
  log |det W| = sum log |s| costs O(C), Eq. (4.6).
* :class:`Permutation` - a fixed permutation of the features (log-det 0).

Each acts on vectors ``(N, C)`` or images ``(N, C, H, W)`` (a vector is one pixel).
"""

from __future__ import annotations

import torch
from torch import nn

from dgm._checks import positive_int
from dgm.flows.base import Transform, _check_batch

__all__ = ["ActNorm", "Invertible1x1Conv", "Permutation"]


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
        self.num_features = positive_int(num_features, "num_features")
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
        c = self.num_channels = positive_int(num_channels, "num_channels")
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
            perm = torch.randperm(positive_int(perm, "perm"), generator=generator)
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
