"""Argument checks shared by the chapters, each written once.

Every check returns the normalised value or raises a ``TypeError`` (wrong kind of object) or a
``ValueError`` (right kind, wrong value) whose message starts with the argument's name, so a
student reads ``code_dim must be a positive int, got 0`` rather than a stack trace from deep inside
``nn.Linear``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral

import torch

__all__ = [
    "as_device",
    "batch_x",
    "finite",
    "finite_number",
    "float_tensor",
    "nonempty_batch",
    "positive_int",
    "positive_number",
    "same_shape",
    "shape_tuple",
    "widths",
]


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def positive_int(value, name: str) -> int:
    """``value`` as an int >= 1 (Python or NumPy integer; not a bool, not a float)."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def positive_number(value, name: str) -> float:
    """``value`` as a finite float > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def finite_number(value, name: str, minimum: float | None = None) -> float:
    """``value`` (a number or a one-element tensor) as a finite float, optionally >= ``minimum``."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return float(value)


def float_tensor(x, name: str) -> torch.Tensor:
    """``x`` itself, once known to be a floating-point tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def nonempty_batch(x, name: str) -> torch.Tensor:
    """A floating-point batch ``(N, ...)`` with N >= 1."""
    x = float_tensor(x, name)
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch (N, ...), got shape {tuple(x.shape)}")
    return x


def finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` itself, once known to hold no NaN or infinity."""
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return x


def same_shape(a: torch.Tensor, b, name_a: str, name_b: str) -> None:
    """Raise unless ``b`` is a tensor shaped like ``a``."""
    if not isinstance(b, torch.Tensor):
        raise TypeError(f"{name_b} must be a torch.Tensor, got {type(b).__name__}")
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape: {name_b} must have the shape of "
            f"{name_a} {tuple(a.shape)}, got {tuple(b.shape)}"
        )


def shape_tuple(value, name: str, batch: bool = False) -> tuple[int, ...]:
    """A shape as a tuple of positive ints.

    ``batch=False``: the shape of one example, an int or a sequence such as ``(1, 28, 28)``.
    ``batch=True``: the shape of a batch ``(N, ...)``, a sequence of at least two entries.
    """
    if isinstance(value, torch.Size):
        value = tuple(value)
    if not batch and _is_int(value):
        value = (value,)
    least = 2 if batch else 1
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or len(value) < least
        or not all(_is_int(s) and s > 0 for s in value)
    ):
        if batch:
            raise ValueError(f"{name} must be a tuple of positive ints (N, ...) with at least 2 entries, got {value!r}")
        raise ValueError(
            f"{name} must be a positive int or a tuple of positive ints such as (1, 28, 28), got {value!r}"
        )
    return tuple(int(s) for s in value)


def widths(hidden, name: str = "hidden", allow_empty: bool = False) -> tuple[int, ...]:
    """Hidden-layer widths: an int, or a sequence of positive ints (empty only if ``allow_empty``)."""
    if _is_int(hidden):
        hidden = (hidden,)
    if (
        not isinstance(hidden, Sequence)
        or isinstance(hidden, str)
        or (not hidden and not allow_empty)
        or not all(_is_int(h) and h > 0 for h in hidden)
    ):
        kind = "sequence" if allow_empty else "non-empty sequence"
        raise ValueError(f"{name} must be a {kind} of positive ints, got {hidden!r}")
    return tuple(int(h) for h in hidden)


def as_device(device, name: str = "device") -> torch.device:
    """``device`` as a ``torch.device`` ('cpu', 'cuda', 'cuda:1', 'mps' or a device)."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"{name} must be a torch device name like 'cpu' or 'cuda', got {device!r}") from err


def batch_x(batch) -> torch.Tensor:
    """The inputs of a batch: the tensor itself, or the first item of an ``(x, y, ...)`` tuple."""
    if isinstance(batch, (tuple, list)):
        if len(batch) == 0:
            raise ValueError("batch must be a tensor or a non-empty (x, ...) tuple, got an empty one")
        batch = batch[0]
    return batch
