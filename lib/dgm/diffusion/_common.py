"""Private helpers shared by the modules of :mod:`dgm.diffusion`: calling a model and checking what
it returns, drawing the starting noise x_T ~ N(0, I) of a sampler and running a sampler's chain
(DDPM, DDIM, the flow-matching Euler sampler).

A noise-prediction network is called as ``model(x, t)`` (or ``model(x, t, y)`` with class labels)
and must return eps_theta(x_t, t) with the shape of x; a flow-matching network is called the same
way with float times s in [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from dgm._checks import shape_tuple


def _model_device(model, fallback=None) -> torch.device:
    if isinstance(model, nn.Module):
        for p in model.parameters():
            return p.device
        for b in model.buffers():
            return b.device
    return torch.device("cpu") if fallback is None else torch.device(fallback)


def _call(model, x, t, y=None):
    """eps_theta(x, t) or eps_theta(x, t, y)."""
    out = model(x, t) if y is None else model(x, t, y)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model must return a tensor shaped like its input x {tuple(x.shape)}, got {got}")
    return out


def _start(model, shape, noise, generator, device):
    shape = shape_tuple(shape, "shape", batch=True)
    if noise is not None:
        if not isinstance(noise, torch.Tensor) or tuple(noise.shape) != shape:
            raise ValueError(f"noise must be a tensor of shape {shape}, got {getattr(noise, 'shape', noise)!r}")
        return noise.clone()
    if device is None:
        device = generator.device if generator is not None else _model_device(model)
    return torch.randn(shape, generator=generator, device=device)


def _chain(model, x, step, indices, trajectory: bool):
    """Run a sampler's chain: ``x = step(x, i)`` for each i in ``indices``, with the model in eval mode
    (its training mode restored afterwards, even on an error).

    Returns:
        ``(x, states)``: the last state, and with ``trajectory=True`` the list of every state on the
        CPU, the start first (None without).
    """
    was_training = isinstance(model, nn.Module) and model.training
    if isinstance(model, nn.Module):
        model.eval()
    states = [x.cpu()] if trajectory else None
    try:
        for i in indices:
            x = step(x, i)
            if trajectory:
                states.append(x.cpu())
    finally:
        if was_training:
            model.train()
    return x, states
