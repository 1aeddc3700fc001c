"""Maximum-likelihood training of a flow: the loss -mean log p_X(x), Eq. (4.3), for
:func:`dgm.train.fit`, and :func:`fit_flow`, that loop with the two safeguards flows need.

A flow needs no bound and no adversary: its exact log-likelihood is the objective. On sharp data
one training point that the current map sends far into the tails of p_Z gives a huge loss and
gradient, so :func:`fit_flow` clips the gradient norm and decays the learning rate along a cosine.
"""

from __future__ import annotations

import torch

from dgm._checks import batch_x, float_tensor, positive_int, positive_number
from dgm.flows.images import dequantize
from dgm.flows.models import Flow
from dgm.train import cosine_schedule, fit

__all__ = ["fit_flow", "flow_loss"]


def flow_loss(model: Flow, batch, num_levels: int | None = None) -> torch.Tensor:
    """The negative log-likelihood -mean log p_X(x) over a batch (nats), for :func:`dgm.train.fit`.

    ``batch`` is a tensor x or an ``(x, y, ...)`` tuple (labels ignored); images ``(N, C, H, W)``
    are flattened when the flow expects vectors. With ``num_levels`` = K the batch is first
    dequantized with fresh noise, Eq. (4.7).
    """
    if not isinstance(model, Flow):
        raise TypeError(f"model must be a dgm.flows.Flow, got {type(model).__name__}")
    x = batch_x(batch)
    if len(model.event_shape) == 1 and x.dim() > 2:
        x = x.reshape(x.shape[0], -1)
    if num_levels is not None:
        x = dequantize(x, num_levels)
    return -model.log_prob(x).mean()


def fit_flow(
    flow: Flow,
    data: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    num_levels: int | None = None,
    max_grad_norm: float | None = 5.0,
    cosine: bool = True,
    device=None,
    seed: int | None = None,
    progress: bool = False,
):
    """Maximum-likelihood training of a flow: :func:`dgm.train.fit` on :func:`flow_loss`, with two
    safeguards switched on.

    The loop is :func:`dgm.train.fit`'s (same :class:`dgm.train.History`, same
    :class:`dgm.train.NonFiniteLossError`, the data visited in shuffled passes), with what flows on
    sharp data need: the gradient norm is clipped at ``max_grad_norm`` (one training point that the
    current map sends far into the tails of p_Z gives a huge loss and gradient, which would undo
    the training so far) and the learning rate decays to 0 along a cosine over the ``steps``
    (:func:`dgm.train.cosine_schedule`, so the run ends in a quiet minimum rather than on a spike).

    Args:
        flow: the :class:`Flow` to train; moved to ``device``; its train/eval mode is restored.
        data: a tensor ``(N, ...)`` of training examples (images are flattened for vector flows).
        steps: number of optimisation steps; the data are visited in shuffled passes.
        batch_size: examples per step (the last batch of a pass may be smaller).
        lr: peak learning rate of Adam.
        num_levels: K to dequantize every batch with fresh noise, Eq. (4.7), or None.
        max_grad_norm: clip the gradient norm at this value (None: no clipping).
        cosine: decay the learning rate as lr (1 + cos(pi t / steps)) / 2.
        device: default :func:`dgm.config.get_device`.
        seed: seeds everything (shuffling, dequantization noise) for a reproducible run.
        progress: show a tqdm progress bar.

    Returns:
        The :class:`dgm.train.History` (``train_loss``: the NLL of every batch, nats).
    """
    if not isinstance(flow, Flow):
        raise TypeError(f"flow must be a dgm.flows.Flow, got {type(flow).__name__}")
    data = float_tensor(data, "data")
    if data.dim() < 2 or data.shape[0] == 0:
        raise ValueError(f"data must be a non-empty batch (N, ...), got shape {tuple(data.shape)}")
    steps = positive_int(steps, "steps")
    batch_size = positive_int(batch_size, "batch_size")
    lr = positive_number(lr, "lr")
    if max_grad_norm is not None:
        max_grad_norm = positive_number(max_grad_norm, "max_grad_norm")
    return fit(
        flow,
        lambda model, batch: flow_loss(model, batch, num_levels),
        data,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        max_grad_norm=max_grad_norm,
        lr_schedule=cosine_schedule if cosine else None,
        device=device,
        seed=seed,
        progress=progress,
    )
