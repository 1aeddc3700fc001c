"""Tests for dgm._checks: each check accepts what it should and names the argument when it refuses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dgm import _checks as c


def test_positive_int():
    assert c.positive_int(3, "k") == 3
    assert c.positive_int(np.int64(2), "k") == 2 and type(c.positive_int(np.int64(2), "k")) is int
    for bad in (0, -1, 2.0, True, "3", None):
        with pytest.raises(ValueError, match="k must be a positive int"):
            c.positive_int(bad, "k")


def test_numbers():
    assert c.positive_number(2, "lr") == 2.0
    assert c.finite_number(torch.tensor(0.5), "level") == 0.5
    assert c.finite_number(-1, "beta") == -1.0
    for bad in (0, -1e-3, float("inf"), float("nan"), True, "1"):
        with pytest.raises(ValueError, match="lr must be a positive finite number"):
            c.positive_number(bad, "lr")
    with pytest.raises(ValueError, match="beta must be >= 0"):
        c.finite_number(-1, "beta", minimum=0)
    with pytest.raises(ValueError, match="level must be a finite number"):
        c.finite_number(float("nan"), "level")


def test_tensors():
    x = torch.zeros(2, 3)
    assert c.float_tensor(x, "x") is x and c.nonempty_batch(x, "x") is x and c.finite(x, "x") is x
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        c.float_tensor([1.0], "x")
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        c.float_tensor(torch.zeros(2, dtype=torch.long), "x")
    with pytest.raises(ValueError, match="x0 must be a non-empty batch"):
        c.nonempty_batch(torch.zeros(0, 3), "x0")
    with pytest.raises(ValueError, match="x must be finite"):
        c.finite(torch.tensor([1.0, float("nan")]), "x")


def test_same_shape_names_both_arguments():
    c.same_shape(torch.zeros(2, 3), torch.ones(2, 3), "mu", "logvar")
    with pytest.raises(ValueError, match=r"mu and logvar must have the same shape.*logvar must have the shape of mu"):
        c.same_shape(torch.zeros(2, 3), torch.ones(3, 2), "mu", "logvar")
    with pytest.raises(TypeError, match="noise must be a torch.Tensor"):
        c.same_shape(torch.zeros(2), [0.0, 0.0], "x0", "noise")


def test_shape_tuple():
    assert c.shape_tuple(64, "in_shape") == (64,)
    assert c.shape_tuple(torch.Size([1, 28, 28]), "in_shape") == (1, 28, 28)
    assert c.shape_tuple([8, 2], "shape", batch=True) == (8, 2)
    for bad in ((), (1, 0), "28", (1.0, 2), None):
        with pytest.raises(ValueError, match="in_shape must be"):
            c.shape_tuple(bad, "in_shape")
    with pytest.raises(ValueError, match=r"shape must be a tuple of positive ints \(N, ...\)"):
        c.shape_tuple(5, "shape", batch=True)


def test_widths():
    assert c.widths(32) == (32,) and c.widths([64, 32]) == (64, 32)
    assert c.widths((), allow_empty=True) == ()
    with pytest.raises(ValueError, match="hidden must be a non-empty sequence"):
        c.widths(())
    with pytest.raises(ValueError, match="layers must be"):
        c.widths((8, 0), "layers")


def test_device_and_batch():
    assert c.as_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be a torch device name"):
        c.as_device("gpu please")
    x = torch.zeros(3)
    assert c.batch_x(x) is x and c.batch_x((x, torch.ones(3))) is x
    with pytest.raises(ValueError, match="batch must be"):
        c.batch_x(())
