"""The chain rule (6.1) on binary vectors, and the fully visible sigmoid belief net (FVBN), Eq. (6.2).

Every autoregressive model of binary vectors x in {0, 1}^D here shares one interface,
:class:`BinaryAutoregressive`: an ``order`` (a permutation o of 0..D-1: o[0] is generated first)
and ``logits(x)``, whose entry i is the logit a_i of p(x_i = 1 | x_{<i}), where "<i" means "before
i in the order". From it follow, once for all models,

* ``log_prob(x)`` = sum_i [x_i a_i - softplus(a_i)] = sum_i log Bernoulli(x_i; sigmoid(a_i)),
  Eq. (6.1) with the Bernoulli conditionals, one number per example, in nats;
* ``sample(n)``: x_{o[0]}, x_{o[1]}, ... drawn one after the other, Eq. (6.7).

:func:`all_binary` lists the 2^D patterns, so that on a small D the probabilities can be summed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dgm._checks import finite_number, positive_int

__all__ = ["BinaryAutoregressive", "FVBN", "all_binary", "bernoulli_log_prob", "check_order"]

MAX_ENUMERATED_DIM = 20


def all_binary(d: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 2^d binary patterns of length d, shape ``(2^d, d)``, row k = k written in binary (x_0 most
    significant). d <= 20 (2^20 rows of 20 numbers is already 80 MB in float32)."""
    d = positive_int(d, "d")
    if d > MAX_ENUMERATED_DIM:
        raise ValueError(f"d must be <= {MAX_ENUMERATED_DIM} to list all 2^d patterns, got {d}")
    k = torch.arange(2**d)[:, None]
    shifts = torch.arange(d - 1, -1, -1)[None, :]
    return ((k >> shifts) & 1).to(dtype)


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log Bernoulli(x; sigmoid(a)) = x a - softplus(a), elementwise (stable for any logit a)."""
    return x * logits - F.softplus(logits)


def check_order(order, dim: int) -> torch.Tensor:
    """``order`` as a long tensor holding a permutation of 0..dim-1 (None: the natural order)."""
    if order is None:
        return torch.arange(dim)
    try:
        o = torch.as_tensor(order)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"order must be None or a permutation of 0..{dim - 1}, got {order!r}") from err
    if o.dtype.is_floating_point or o.dtype == torch.bool or o.dim() != 1 or o.numel() != dim:
        raise ValueError(f"order must be a permutation of 0..{dim - 1} (a 1-D int sequence), got {order!r}")
    o = o.long()
    if not torch.equal(torch.sort(o).values, torch.arange(dim)):
        raise ValueError(f"order must be a permutation of 0..{dim - 1}, got {o.tolist()}")
    return o


def _check_binary(x, dim: int, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (N, {dim}), got {tuple(x.shape)}")
    if x.numel() and not bool(((x == 0) | (x == 1)).all()):
        raise ValueError(f"{name} must hold only 0s and 1s (binary data)")
    return x


class BinaryAutoregressive(nn.Module):
    """The chain rule (6.1) for x in {0, 1}^D with Bernoulli conditionals given by ``logits(x)``.

    Subclasses set ``self.dim`` and the buffer ``self.order`` and implement ``logits(x)``, shape
    ``(N, D)``, whose column i may depend only on the x_j that come before i in ``order``.
    """

    dim: int
    order: torch.Tensor

    def logits(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits a_i of p(x_i = 1 | x_{<i}), shape ``(N, D)``."""
        return self.logits(x)

    def conditionals(self, x: torch.Tensor) -> torch.Tensor:
        """p(x_i = 1 | x_{<i}) = sigmoid(a_i), shape ``(N, D)``."""
        return torch.sigmoid(self.logits(_check_binary(x, self.dim)))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = sum_i log p(x_i | x_{<i}), Eq. (6.1), one number per example (nats)."""
        x = _check_binary(x, self.dim)
        x = x.to(self.order.device, next(self.parameters()).dtype)
        return bernoulli_log_prob(self.logits(x), x).sum(dim=1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0,
               given: torch.Tensor | None = None, known: torch.Tensor | None = None) -> torch.Tensor:
        """n draws, one variable at a time in ``order``: x_{o[k]} ~ Bernoulli(sigmoid(a_{o[k]} / T)).

        With ``known`` (a boolean ``(D,)`` or ``(n, D)`` mask) and ``given`` (``(D,)`` or ``(n, D)``
        values), the known entries are copied from ``given`` and only the others are drawn, each
        from its conditional given everything before it (a completion). ``generator`` is a
        ``torch.Generator`` on the model's device.
        """
        n = positive_int(n, "n")
        temperature = finite_number(temperature, "temperature")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        device, dtype = self.order.device, next(self.parameters()).dtype
        x = torch.zeros(n, self.dim, device=device, dtype=dtype)
        fixed = torch.zeros(n, self.dim, dtype=torch.bool, device=device)
        if known is not None:
            if given is None:
                raise ValueError("given must be provided with known (the values of the known entries)")
            fixed = _broadcast(known, (n, self.dim), "known").to(device, torch.bool)
            values = _broadcast(given, (n, self.dim), "given").to(device, dtype)
            _check_binary(values[fixed].reshape(1, -1), int(fixed.sum()), "given")
            x = torch.where(fixed, values, x)
        for i in self.order.tolist():
            if bool(fixed[:, i].all()):
                continue
            p = torch.sigmoid(self.logits(x)[:, i] / temperature)
            u = torch.rand(n, generator=generator, device=device, dtype=dtype)
            x[:, i] = torch.where(fixed[:, i], x[:, i], (u < p).to(dtype))
        return x


def _broadcast(t, shape: tuple[int, int], name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if tuple(t.shape) not in (shape[1:], shape):
        raise ValueError(f"{name} must have shape ({shape[1]},) or {shape}, got {tuple(t.shape)}")
    return t.expand(shape)


class FVBN(BinaryAutoregressive):
    """Fully visible sigmoid belief net (logistic autoregression), Eq. (6.2):

        p(x_i = 1 | x_{<i}) = sigmoid(b_i + sum_{j<i} W_ij x_j),

    with W strictly lower-triangular in the order: ``weight * mask`` where mask[i, j] = 1 iff j
    comes before i. D + D(D - 1)/2 effective parameters. ``weight`` starts small and random
    (``seed``), ``bias`` at 0; set them by hand under ``torch.no_grad()`` for a model with known
    conditionals (entries outside the mask are ignored).

    Args:
        dim: D >= 1.
        order: None (x_0 first) or a permutation of 0..D-1.
        seed: seed of the initial weights.
    """

    def __init__(self, dim: int, order=None, seed: int = 0):
        super().__init__()
        self.dim = positive_int(dim, "dim")
        order = check_order(order, self.dim)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(self.dim)
        self.register_buffer("order", order)
        self.register_buffer("mask", (rank[None, :] < rank[:, None]).float())
        gen = torch.Generator().manual_seed(int(seed))
        self.weight = nn.Parameter(0.01 * torch.randn(self.dim, self.dim, generator=gen))
        self.bias = nn.Parameter(torch.zeros(self.dim))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """a_i = b_i + sum_{j<i} W_ij x_j, Eq. (6.2)."""
        return x @ (self.weight * self.mask).T + self.bias

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
