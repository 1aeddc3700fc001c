"""Exact likelihoods, Eq. (6.6): log P(x) in nats, bits per dimension, and the training loss.

An autoregressive model of discrete images gives the probability of the image itself,

    log P(x) = sum_{i=1}^{D} log softmax(logits_i)[x_i],        bpd = -log2 P(x) / D,          (6.6)

one forward pass for all D conditionals. Chapter 4's flow is a *density* on dequantized data
(k + u) / K, and its bits/dim, :func:`dgm.flows.bits_per_dim` with ``num_levels=K``, is
-(E_u log p - D log K) / (D ln 2): an upper bound on -log2 P(x) / D of the discrete model it
induces (Eq. (4.7)). On the same K-level data both numbers are in the same unit, bits per discrete
pixel, so they stand in one table: the autoregressive model's number is exact, the flow's (and
the VAE's, from its bound) is an upper bound. With ``num_levels=None`` :func:`dgm.flows.bits_per_dim`
is exactly this module's :func:`bits_per_dim` of -log_prob.
"""

from __future__ import annotations

import math

import torch

from dgm._checks import batch_x, float_tensor, positive_int
from dgm.autoregressive.binary import BinaryAutoregressive
from dgm.autoregressive.pixelcnn import ImageAutoregressive

__all__ = ["bits_per_dim", "log_prob", "nll_loss"]


def _check_model(model, name: str = "model"):
    if not isinstance(model, (ImageAutoregressive, BinaryAutoregressive)):
        raise TypeError(f"{name} must be an autoregressive model of dgm.autoregressive (PixelCNN, "
                        f"GatedPixelCNN, MADE, FVBN), got {type(model).__name__}")
    return model


def log_prob(model, x, c=None) -> torch.Tensor:
    """log P(x) per example in nats, Eq. (6.6) (Eq. (6.1) for binary vectors).

    Args:
        model: an image model (:class:`PixelCNN`, :class:`GatedPixelCNN`) or a binary-vector model
            (:class:`MADE`, :class:`FVBN`).
        x: images ``(N, C, H, W)``: integer levels 0..K-1, or floats k / (K - 1) in [0, 1]
            (rounded to the level). For a vector model, binary ``(N, D)`` (images are flattened).
        c: class labels ``(N,)`` for a class-conditional image model.
    """
    _check_model(model)
    if isinstance(model, BinaryAutoregressive):
        if c is not None:
            raise ValueError("c must be None for a binary-vector model (it is unconditional)")
        if isinstance(x, torch.Tensor) and x.dim() > 2:
            x = x.reshape(x.shape[0], -1)
        return model.log_prob(x)
    return model.log_prob(x, c)


def bits_per_dim(nll_nats, dims: int):
    """bpd = nll / (D ln 2) = -log2 P(x) / D, Eq. (6.6), for nll = -log P(x) in nats (a number or a
    tensor, e.g. one per image) and D = ``dims`` (pixels x channels). A model that puts 1/K on
    every value of every pixel scores log2 K."""
    d = positive_int(dims, "dims")
    if isinstance(nll_nats, torch.Tensor):
        float_tensor(nll_nats, "nll_nats")
    elif isinstance(nll_nats, bool) or not isinstance(nll_nats, (int, float)):
        raise TypeError(f"nll_nats must be a number or a floating-point tensor, got {type(nll_nats).__name__}")
    return nll_nats / (d * math.log(2))


def nll_loss(model, batch) -> torch.Tensor:
    """The mean negative log-likelihood -mean log P(x) over a batch (nats per image), for
    :func:`dgm.train.fit`. ``batch`` is x or an ``(x, y, ...)`` tuple; y is used as the class c
    when the model is class-conditional, otherwise ignored."""
    _check_model(model)
    x = batch_x(batch)
    c = None
    if getattr(model, "num_classes", None) is not None:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError("batch must be an (x, c) tuple for a class-conditional model")
        c = batch[1]
    return -log_prob(model, x, c).mean()
