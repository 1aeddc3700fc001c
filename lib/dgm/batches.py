"""Mini-batches for :func:`dgm.train.fit` and :func:`dgm.train.evaluate`, from whatever the chapters hold.

Data may be a Tensor ``(N, ...)``, a tuple of Tensors sharing N (e.g. images and labels), a torch
``Dataset`` or a ``DataLoader``. Tensors are batched by indexing, which avoids a Python call per
example (a light stand-in for ``DataLoader(TensorDataset(...))``).
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["TensorBatches", "batch_len", "make_loader", "to_device"]


class TensorBatches:
    """Mini-batches of tensors sharing their first dimension (a light, fast DataLoader).

    Yields a Tensor when built from one bare tensor, else a tuple of tensors.
    """

    def __init__(self, tensors, batch_size, shuffle=False, generator=None, single=False):
        self.tensors = tensors
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.single = single
        self.n = tensors[0].shape[0]

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self):
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else None
        for start in range(0, self.n, self.batch_size):
            if order is None:
                batch = tuple(t[start : start + self.batch_size] for t in self.tensors)
            else:
                idx = order[start : start + self.batch_size]
                batch = tuple(t[idx.to(t.device)] for t in self.tensors)
            yield batch[0] if self.single else batch


def make_loader(data, batch_size: int, shuffle: bool, generator=None, name: str = "data"):
    """Turn a Tensor / tuple of Tensors / Dataset / DataLoader into an iterable of batches."""
    if isinstance(data, (DataLoader, TensorBatches)):
        return data
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(data, torch.Tensor):
        if data.ndim == 0 or data.shape[0] == 0:
            raise ValueError(f"{name} is empty (shape {tuple(data.shape)}); expected (N, ...) with N > 0")
        return TensorBatches((data,), batch_size, shuffle, generator, single=True)
    if isinstance(data, (tuple, list)) and data and all(isinstance(t, torch.Tensor) for t in data):
        sizes = [t.shape[0] if t.ndim else None for t in data]
        if len(set(sizes)) != 1:
            raise ValueError(f"{name}: all tensors must share their first dimension, got sizes {sizes}")
        if sizes[0] in (None, 0):
            raise ValueError(f"{name} is empty; expected tensors of shape (N, ...) with N > 0")
        return TensorBatches(tuple(data), batch_size, shuffle, generator)
    if isinstance(data, Dataset):
        if hasattr(data, "__len__") and len(data) == 0:
            raise ValueError(f"{name} is an empty Dataset")
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator)
    raise TypeError(
        f"{name} must be a Tensor, a tuple of Tensors, a torch Dataset or a DataLoader, "
        f"got {type(data).__name__}"
    )


def to_device(batch, device):
    """Move a batch (Tensor, or tuple/list/dict of them) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def batch_len(batch) -> int:
    """Number of examples in a batch (first dimension of its first tensor)."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0] if batch.ndim else 1
    if isinstance(batch, (tuple, list)) and batch:
        return batch_len(batch[0])
    if isinstance(batch, dict) and batch:
        return batch_len(next(iter(batch.values())))
    raise TypeError(f"cannot tell the batch size of a batch of type {type(batch).__name__}")
