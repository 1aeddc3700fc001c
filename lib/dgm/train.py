"""The training loop every chapter shares (AE, VAE, GAN, flows, diffusion), and checkpoints.

Every model in the course is trained by minimising an empirical risk

    theta* = argmin_theta  (1/N) sum_i  L(x_i; theta)

with mini-batch stochastic gradient steps ``theta <- theta - lr * g(grad_theta L_batch)``
(``g`` = Adam's update by default). A chapter only writes its loss, ``loss_fn(model, batch)``,
returning the *mean* loss over the batch; :func:`fit` does the rest:

>>> history = fit(model, ae_loss, x_train, steps=2000, val_data=x_test, seed=0)  # doctest: +SKIP
>>> loss_curves(history)                                                       # doctest: +SKIP

Design choices, kept visible because students read this file:

* A non-finite loss stops training at once with :class:`NonFiniteLossError` (which step, which
  value) *before* the bad gradient touches the parameters.
* ``seed`` makes a run reproducible: it seeds torch/NumPy/Python (noise drawn inside
  ``loss_fn``) and the generator that shuffles the data.
* Tensor data are batched by indexing (:mod:`dgm.batches`, a light stand-in for
  ``DataLoader(TensorDataset(...))``); a ``Dataset`` gets a real shuffling ``DataLoader``;
  a ``DataLoader`` is used as it is.
* Checkpoints are written atomically: a crash mid-save never leaves a half-written file.
"""

from __future__ import annotations

import math
import os
import pickle
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from dgm._checks import as_device, positive_int, positive_number
from dgm.batches import batch_len, make_loader, to_device
from dgm.config import get_device, seed_everything

__all__ = [
    "NonFiniteLossError",
    "History",
    "train_step",
    "evaluate",
    "fit",
    "cosine_schedule",
    "save_checkpoint",
    "load_checkpoint",
]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stopped before the bad update.

    Attributes:
        step: index (0-based) of the optimisation step whose loss was not finite, i.e. the
            number of successful steps before it; ``-1`` when unknown (a bare :func:`train_step`).
        loss: the offending value (``nan``, ``inf`` or ``-inf``).
        history: the :class:`History` recorded up to that step when raised by :func:`fit`.
    """

    def __init__(self, step: int, loss: float, history: "History | None" = None):
        where = f"at step {step}" if step >= 0 else "(step unknown)"
        super().__init__(
            f"loss became {loss} {where}; lower the learning rate, check the data for NaNs, "
            "or clamp log/exp/division inside loss_fn"
        )
        self.step = step
        self.loss = loss
        self.history = history


@dataclass(repr=False)
class History:
    """What :func:`fit` recorded.

    Attributes:
        train_loss: mini-batch loss of every optimisation step, in order.
        val_loss: validation loss (mean over all validation examples) at each evaluation.
        val_steps: number of optimisation steps done when each ``val_loss`` was computed.
        seconds: wall-clock duration of the run.
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        """Number of optimisation steps taken (``len(train_loss)``)."""
        return len(self.train_loss)

    def __repr__(self) -> str:  # short: a notebook cell should not print 10 000 floats
        last_train = f"{self.train_loss[-1]:.4g}" if self.train_loss else "-"
        last_val = f"{self.val_loss[-1]:.4g}" if self.val_loss else "-"
        return (
            f"History(steps={self.steps}, last train_loss={last_train}, "
            f"last val_loss={last_val}, seconds={self.seconds:.1f})"
        )


def _model_device(model: nn.Module) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return get_device()


# --------------------------------------------------------------------------- the loop


def train_step(model: nn.Module, loss_fn, batch, optimizer: torch.optim.Optimizer,
               max_grad_norm: float | None = None) -> float:
    """One stochastic gradient step: ``theta <- update(theta, grad_theta loss_fn(model, batch))``.

    Args:
        model: the module being trained (its mode is left as it is).
        loss_fn: ``loss_fn(model, batch) -> scalar Tensor``, the mean loss over the batch.
        batch: whatever ``loss_fn`` expects, already on the model's device.
        optimizer: a torch optimizer over ``model``'s parameters.
        max_grad_norm: clip the norm of the whole gradient at this value before the update
            (``torch.nn.utils.clip_grad_norm_``); None: no clipping.

    Returns:
        The loss value as a Python float.

    Raises:
        NonFiniteLossError: the loss is NaN/inf (``.step == -1``); parameters are untouched.
    """
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model, batch)
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f"loss_fn must return a torch.Tensor, got {type(loss).__name__}")
    if loss.numel() != 1:
        raise ValueError(f"loss_fn must return a scalar (mean over the batch), got shape {tuple(loss.shape)}")
    value = loss.item()
    if not math.isfinite(value):
        raise NonFiniteLossError(-1, value)
    loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return value


@torch.no_grad()
def evaluate(model: nn.Module, loss_fn, data, batch_size: int = 512, device=None) -> float:
    """Mean loss over all examples of ``data``, without gradients, in eval mode.

    Computes ``(1/N) sum_b n_b * loss_fn(model, batch_b)``, which is the exact mean over the
    N examples when ``loss_fn`` returns the mean over its batch (the last batch may be smaller).

    Args:
        model: the module to evaluate; put in ``eval()`` mode meanwhile, its mode restored after.
        loss_fn: ``loss_fn(model, batch) -> scalar Tensor`` (mean over the batch).
        data: Tensor, tuple of Tensors, Dataset or DataLoader (not shuffled).
        batch_size: examples per forward pass (ignored for a DataLoader).
        device: where to run; default the device of the model's parameters. When given, the
            model is moved there.

    Returns:
        The mean loss as a Python float.
    """
    loader = make_loader(data, batch_size, shuffle=False)
    if device is None:
        device = _model_device(model)
    else:
        device = as_device(device)
        model.to(device)
    was_training = model.training
    model.eval()
    try:
        total, count = 0.0, 0
        for batch in loader:
            n = batch_len(batch)
            loss = loss_fn(model, to_device(batch, device))
            total += float(loss) * n
            count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("data yielded no examples to evaluate")
    return total / count


def fit(
    model: nn.Module,
    loss_fn,
    data,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    val_data=None,
    val_every: int | None = None,
    device=None,
    seed: int | None = None,
    progress: bool = True,
    desc: str | None = None,
    checkpoint=None,
    max_grad_norm: float | None = None,
    lr_schedule=None,
) -> History:
    """Train ``model`` by minimising ``loss_fn`` with mini-batch gradient steps.

    Args:
        model: the module to train; moved to ``device``; its train/eval mode is restored at the end.
        loss_fn: ``loss_fn(model, batch) -> scalar Tensor``, the mean loss over the batch. It
            gets a Tensor when ``data`` is a Tensor, else the tuple/list the loader yields,
            already on ``device``.
        data: a Tensor (N, ...), a tuple of Tensors sharing N, a torch Dataset or a DataLoader
            (used as is: its own batch size and shuffling).
        steps: number of optimisation steps (cycling through the data as needed), or
        epochs: number of passes over the data. Give exactly one of the two.
        batch_size: examples per step (ignored when ``data`` is a DataLoader).
        lr: learning rate of the default optimizer ``Adam(model.parameters(), lr)``.
        optimizer: use this optimizer instead (then ``lr`` is ignored).
        val_data: optional validation data (same kinds as ``data``), scored with :func:`evaluate`.
        val_every: evaluate every this many steps; default at every epoch end (``epochs``) or
            only at the end (``steps``). The end of training is always evaluated.
        device: default :func:`dgm.config.get_device`.
        seed: seeds torch/NumPy/Python and the shuffling generator, so that the same seed
            gives the same run (on the same device).
        progress: show a tqdm progress bar with the running (smoothed) loss.
        desc: label of the progress bar.
        checkpoint: path; if given, :func:`save_checkpoint` writes model, optimizer and the
            history there at the end.
        max_grad_norm: clip the gradient norm at this value at every step (None: no clipping).
            One example that the model scores very badly gives a huge gradient that can undo
            the training so far; clipping bounds the damage (flows on sharp data need it).
        lr_schedule: ``lr_schedule(optimizer, total_steps)`` is called once before training to
            give the optimizer a learning-rate schedule that its ``step()`` advances, e.g.
            :func:`cosine_schedule`. Needs a known number of steps.

    Returns:
        The :class:`History` of the run.

    Raises:
        NonFiniteLossError: a loss became NaN/inf; ``.step`` says which step (0-based).
        ValueError: bad arguments (named in the message).
    """
    if (steps is None) == (epochs is None):
        raise ValueError(f"give exactly one of steps= or epochs=, got steps={steps!r}, epochs={epochs!r}")
    for name, value in (("steps", steps), ("epochs", epochs), ("val_every", val_every)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if optimizer is None and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable as loss_fn(model, batch), got {type(loss_fn).__name__}")
    if max_grad_norm is not None:
        max_grad_norm = positive_number(max_grad_norm, "max_grad_norm")
    if lr_schedule is not None and not callable(lr_schedule):
        raise TypeError(f"lr_schedule must be callable as lr_schedule(optimizer, steps), got {type(lr_schedule).__name__}")
    device = get_device() if device is None else as_device(device)

    generator = None
    if seed is not None:
        seed_everything(seed)
        generator = torch.Generator().manual_seed(seed)
    loader = make_loader(data, batch_size, shuffle=True, generator=generator)
    if val_data is not None:
        val_loader = make_loader(val_data, batch_size, shuffle=False, name="val_data")

    model.to(device)
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    try:
        total = steps if steps is not None else epochs * len(loader)
    except TypeError:  # an iterable-style DataLoader has no length
        total = None
    if lr_schedule is not None:
        if total is None:
            raise ValueError("lr_schedule needs a known number of steps: give steps= or a data set with a length")
        lr_schedule(optimizer, total)

    history = History()
    start = time.perf_counter()

    def validate():
        history.val_loss.append(evaluate(model, loss_fn, val_loader, device=device))
        history.val_steps.append(history.steps)

    from tqdm.auto import tqdm  # imported here: it probes for Jupyter at import time

    bar = tqdm(total=total, desc=desc, disable=not progress, leave=True)
    was_training = model.training
    model.train()
    step, epoch, running = 0, 0, None
    try:
        while (step < steps) if steps is not None else (epoch < epochs):
            batches_this_epoch = 0
            for batch in loader:
                batches_this_epoch += 1
                try:
                    value = train_step(model, loss_fn, to_device(batch, device), optimizer, max_grad_norm)
                except NonFiniteLossError as err:
                    raise NonFiniteLossError(step, err.loss, history) from None
                history.train_loss.append(value)
                step += 1
                running = value if running is None else 0.98 * running + 0.02 * value
                bar.set_postfix(loss=f"{running:.4g}", refresh=False)
                bar.update(1)
                if val_data is not None and val_every is not None and step % val_every == 0:
                    validate()
                    model.train()
                if steps is not None and step >= steps:
                    break
            if batches_this_epoch == 0:
                raise ValueError("data yielded no batches")
            epoch += 1
            if val_data is not None and val_every is None and epochs is not None:
                validate()
                model.train()
        if val_data is not None and (not history.val_steps or history.val_steps[-1] != step):
            validate()
    finally:
        bar.close()
        model.train(was_training)
        history.seconds = time.perf_counter() - start

    if checkpoint is not None:
        save_checkpoint(checkpoint, model, optimizer, history=asdict(history), step=step)
    return history


def cosine_schedule(optimizer: torch.optim.Optimizer, steps: int, warmup: int = 0) -> torch.optim.Optimizer:
    """Give ``optimizer`` a learning-rate schedule that every ``optimizer.step()`` advances: a linear
    warm-up over ``warmup`` steps, then a cosine decay from the base rate to 0 at ``steps``:

        lr_i = lr * min(1, (i + 1) / warmup) * (1 + cos(pi * i / steps)) / 2.

    The schedule is attached as a step post-hook, so ``fit(..., optimizer=opt)`` trains with it
    unchanged, and ``fit(..., lr_schedule=cosine_schedule)`` attaches it to fit's own optimizer.
    Short trainings gain a lot from the decay: the run ends in a quiet minimum rather than
    bouncing around it (diffusion's noisy regression target (5.7), a flow's occasional spike).

    Returns:
        The same optimizer (for chaining).
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    steps = positive_int(steps, "steps")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or not 0 <= warmup < steps:
        raise ValueError(f"warmup must be an int in [0, steps), got {warmup!r}")
    base = [group["lr"] for group in optimizer.param_groups]
    state = {"done": 0}

    def factor(i: int) -> float:
        warm = min(1.0, (i + 1) / warmup) if warmup else 1.0
        return warm * 0.5 * (1.0 + math.cos(math.pi * min(i, steps) / steps))

    def set_lr(i: int) -> None:
        for group, lr in zip(optimizer.param_groups, base):
            group["lr"] = lr * factor(i)

    def hook(opt, args, kwargs):
        state["done"] += 1
        set_lr(state["done"])

    set_lr(0)
    optimizer.register_step_post_hook(hook)
    return optimizer


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, **extra) -> Path:
    """Save ``{"model": state_dict, "optimizer": state_dict or None, "extra": extra}`` atomically.

    The file is written to a temporary name in the same folder and then renamed over ``path``
    (``os.replace``), so ``path`` holds either the previous complete checkpoint or the new one,
    never a partial file. Keep ``extra`` to plain Python values and tensors so that
    :func:`load_checkpoint` can use the safe ``weights_only=True`` loader.

    Returns:
        The path written, as a ``pathlib.Path``.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"path must be a file name, got the folder {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "extra": extra,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def load_checkpoint(path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, map_location=None) -> dict:
    """Restore ``model`` (and ``optimizer``) from a :func:`save_checkpoint` file.

    Args:
        path: the checkpoint file.
        model: a module with the same architecture as the saved one (strict key/shape match).
        optimizer: if given, its state (e.g. Adam's moment estimates) is restored too.
        map_location: passed to ``torch.load``; default the device of ``model``'s parameters,
            so a checkpoint saved on a GPU loads on a CPU-only laptop.

    Returns:
        The ``extra`` dict that was saved.

    Raises:
        ValueError: the file is not a checkpoint, or does not match ``model``/``optimizer``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if map_location is None:
        map_location = _model_device(model)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        warnings.warn(
            f"{path} holds objects the safe loader refuses (in extra); loading it with "
            "weights_only=False - only do this for checkpoints you made yourself",
            stacklevel=2,
        )
        payload = torch.load(path, map_location=map_location, weights_only=False)
    if not isinstance(payload, dict) or "model" not in payload:
        raise ValueError(f"{path} is not a dgm checkpoint (expected a dict with a 'model' entry)")
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise ValueError(
            f"checkpoint {path} does not match model {type(model).__name__} "
            f"(different architecture or sizes):\n{err}"
        ) from None
    if optimizer is not None:
        if payload.get("optimizer") is None:
            raise ValueError(f"checkpoint {path} holds no optimizer state, but optimizer= was given")
        try:
            optimizer.load_state_dict(payload["optimizer"])
        except (ValueError, KeyError, RuntimeError) as err:
            raise ValueError(f"checkpoint {path}: optimizer state does not match optimizer: {err}") from None
    return dict(payload.get("extra") or {})
