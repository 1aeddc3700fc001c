"""Run-time configuration shared by every chapter: device, seeding and the FAST switch.

Environment variables (read here and nowhere else):

* ``DGM_FAST=1`` shrinks every training run so a notebook executes in about a minute on
  two CPU cores (tests and CI set it).
* ``DGM_DEVICE`` forces a device (``cpu``, ``cuda``, ``cuda:1``, ``mps``); otherwise the
  first available of cuda -> mps -> cpu is used.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["is_fast", "get_device", "choose", "seed_everything", "describe"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def is_fast() -> bool:
    """Return True when ``DGM_FAST`` asks for the shrunken (test/CI) configuration."""
    value = os.environ.get("DGM_FAST", "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"DGM_FAST must be one of 0/1/true/false, got {value!r}")


def get_device() -> torch.device:
    """Pick the compute device: ``DGM_DEVICE`` if set, else cuda -> mps -> cpu."""
    forced = os.environ.get("DGM_DEVICE", "").strip()
    if forced:
        try:
            device = torch.device(forced)
        except RuntimeError as err:
            raise ValueError(f"DGM_DEVICE={forced!r} is not a torch device name") from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"DGM_DEVICE={forced!r} but CUDA is not available here")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"DGM_DEVICE={forced!r} but MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def choose(*, fast, default, gpu=None, device: torch.device | None = None):
    """Pick a budget by mode: ``fast`` under DGM_FAST, ``gpu`` on a GPU (if given), else ``default``.

    Example: ``steps = choose(fast=200, default=3000, gpu=20000)``.
    """
    if is_fast():
        return fast
    device = get_device() if device is None else device
    if gpu is not None and device.type in ("cuda", "mps"):
        return gpu
    return default


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (all devices) so a notebook reruns to the same numbers."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def describe() -> str:
    """One line saying where and how this run happens, for the top of every notebook."""
    device = get_device()
    mode = "FAST (DGM_FAST=1)" if is_fast() else "default"
    return f"device={device}, mode={mode}, torch={torch.__version__}, threads={torch.get_num_threads()}"
