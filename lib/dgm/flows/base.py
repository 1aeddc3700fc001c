"""The interface every layer of chapter 4 shares: :class:`Transform`, a bijection with its log-det.

Every transform is used in the direction of the lecture:

* ``forward(x) -> (y, log_det)``: y = f(x) and log |det df/dx|, one number per example;
* ``inverse(y) -> (x, log_det)``: x = f^{-1}(y) and log |det df^{-1}/dy| = -(the forward log_det).

``forward`` points from the base towards the data (sampling), ``inverse`` from the data towards the
base (density evaluation, Eq. (4.3)). This module also holds the input check every layer runs,
which a :class:`dgm.flows.Flow` switches off for the layers it calls (it checked its input once).
"""

from __future__ import annotations

import contextlib
import threading

import torch
from torch import nn

from dgm._checks import finite, float_tensor

__all__ = ["Transform"]

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
    x = float_tensor(x, name)
    if event_shape is None:
        if x.dim() < 2:
            raise ValueError(f"{name} must be a batch (N, ...) with at least 2 dims, got shape {tuple(x.shape)}")
    elif x.dim() != len(event_shape) + 1 or tuple(x.shape[1:]) != tuple(event_shape):
        expected = "(N, " + ", ".join(map(str, event_shape)) + ")"
        raise ValueError(f"{name} must have shape {expected}, got {tuple(x.shape)}")
    return finite(x, name)


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
