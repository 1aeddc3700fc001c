"""Tests for dgm.batches: every example once per pass, the last batch partial, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from dgm.batches import batch_len, make_loader, to_device


def test_tensor_batches_visit_every_example_once_per_pass():
    x, y = torch.arange(10.0), torch.arange(10) * 2
    loader = make_loader((x, y), 4, shuffle=True, generator=torch.Generator().manual_seed(0))
    batches = list(loader)
    assert len(loader) == 3 and [len(b[0]) for b in batches] == [4, 4, 2]
    seen = torch.cat([b[0] for b in batches])
    assert sorted(seen.tolist()) == x.tolist()
    assert all(torch.equal(bx.long() * 2, by) for bx, by in batches)  # pairs stay together
    single = list(make_loader(x, 5, shuffle=False))
    assert isinstance(single[0], torch.Tensor) and torch.equal(torch.cat(single), x)


def test_datasets_and_loaders():
    ds = TensorDataset(torch.zeros(6, 2))
    assert isinstance(make_loader(ds, 4, shuffle=False), DataLoader)
    dl = DataLoader(ds, batch_size=3)
    assert make_loader(dl, 99, shuffle=True) is dl


def test_bad_data_is_named():
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        make_loader(torch.zeros(3), 0, shuffle=False)
    with pytest.raises(ValueError, match="val_data is empty"):
        make_loader(torch.zeros(0, 2), 2, shuffle=False, name="val_data")
    with pytest.raises(ValueError, match="share their first dimension"):
        make_loader((torch.zeros(3), torch.zeros(4)), 2, shuffle=False)
    with pytest.raises(TypeError, match="data must be a Tensor"):
        make_loader([1, 2, 3], 2, shuffle=False)


def test_batch_len_and_to_device():
    assert batch_len(torch.zeros(5, 2)) == 5 and batch_len((torch.zeros(3), torch.zeros(3))) == 3
    assert batch_len({"x": torch.zeros(4)}) == 4
    moved = to_device({"x": torch.zeros(2), "y": [torch.ones(1)]}, "cpu")
    assert moved["x"].device.type == "cpu" and isinstance(moved["y"], list)
