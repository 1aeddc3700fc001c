"""dgm.config: device choice, the FAST switch, budgets and seeding."""

import pytest
import torch

from dgm import config


def test_device_override_and_default(monkeypatch):
    monkeypatch.setenv("DGM_DEVICE", "cpu")
    assert config.get_device() == torch.device("cpu")
    monkeypatch.delenv("DGM_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert config.get_device().type == expected


@pytest.mark.parametrize("bad", ["gpu0", "tpu"])
def test_bad_device_names_the_variable(monkeypatch, bad):
    monkeypatch.setenv("DGM_DEVICE", bad)
    with pytest.raises(ValueError, match="DGM_DEVICE"):
        config.get_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("DGM_DEVICE", "cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        config.get_device()


@pytest.mark.parametrize("value,fast", [("1", True), ("true", True), ("0", False), ("", False)])
def test_fast_switch(monkeypatch, value, fast):
    monkeypatch.setenv("DGM_FAST", value)
    assert config.is_fast() is fast
    monkeypatch.setenv("DGM_DEVICE", "cpu")
    assert config.choose(fast="f", default="d", gpu="g") == ("f" if fast else "d")


def test_fast_rejects_garbage(monkeypatch):
    monkeypatch.setenv("DGM_FAST", "maybe")
    with pytest.raises(ValueError, match="DGM_FAST"):
        config.is_fast()


def test_choose_gpu_budget_only_on_gpu(monkeypatch):
    monkeypatch.setenv("DGM_FAST", "0")
    assert config.choose(fast=1, default=2, gpu=3, device=torch.device("cuda")) == 3
    assert config.choose(fast=1, default=2, gpu=3, device=torch.device("cpu")) == 2
    assert config.choose(fast=1, default=2, device=torch.device("cuda")) == 2


def test_seed_everything_reproduces_and_differs():
    import random

    import numpy as np

    def draw():
        return random.random(), np.random.rand(), torch.rand(3).tolist()

    config.seed_everything(7)
    a = draw()
    config.seed_everything(7)
    assert draw() == a
    config.seed_everything(8)
    assert draw() != a
    with pytest.raises(TypeError, match="seed"):
        config.seed_everything(1.5)


def test_describe_names_device_and_mode(monkeypatch):
    monkeypatch.setenv("DGM_DEVICE", "cpu")
    monkeypatch.setenv("DGM_FAST", "1")
    line = config.describe()
    assert "device=cpu" in line and "FAST" in line
