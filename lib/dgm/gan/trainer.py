"""Chapter 3, playing the game: the alternating two-player training loop.

:class:`GANTrainer` alternates k discriminator steps and one generator step (Algorithm 1 of
Goodfellow et al., 2014; Algorithm 1 of Gulrajani et al., 2017 for ``loss="wgan-gp"``) and logs
both losses in a :class:`GANHistory`; :func:`train_gan` is the one-call version. Two players with
two optimizers do not fit the one-model loop of :func:`dgm.train.fit`, so this is the library's
one other training loop. The losses are those of :mod:`dgm.gan.losses`, Eqs. (3.2), (3.6), (3.8)
and (3.9), written inline where one forward pass of D serves real, generated and interpolated
samples together.

Nothing here picks a device: the trainer works on the generator's device.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dgm._checks import float_tensor, positive_int, positive_number
from dgm.config import seed_everything
from dgm.gan.losses import LOSSES, _d_loss, _g_loss, clip_weights
from dgm.gan.nets import _check_labels
from dgm.train import NonFiniteLossError

__all__ = ["GANHistory", "GANTrainer", "train_gan"]


@dataclass(repr=False)
class GANHistory:
    """What :class:`GANTrainer` logged, one entry per generator step.

    Attributes:
        d_loss: the discriminator's (critic's) loss, mean over its k steps, penalty included.
        g_loss: the generator's loss.
        d_real: mean D(x) on the last real batch (mean critic score f(x) for a WGAN).
        d_fake: mean D(G(z)) on the generator step's batch (mean f(G(z)) for a WGAN).
        grad_norm: the norm of the generator's gradient at each generator step.
        snapshots: ``(step, snapshot_fn(trainer))`` pairs recorded during training.
        seconds: wall-clock time spent training.
    """

    d_loss: list[float] = field(default_factory=list)
    g_loss: list[float] = field(default_factory=list)
    d_real: list[float] = field(default_factory=list)
    d_fake: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    snapshots: list[tuple[int, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        """Generator steps taken."""
        return len(self.g_loss)

    def __repr__(self) -> str:
        last = (lambda v: f"{v[-1]:.4g}" if v else "-")
        return (f"GANHistory(steps={self.steps}, last d_loss={last(self.d_loss)}, "
                f"last g_loss={last(self.g_loss)}, seconds={self.seconds:.1f})")


class GANTrainer:
    """Alternating training of a generator and a discriminator (Algorithm 1 of the lecture).

    Each :meth:`step` does, for the game ``loss``:

    1. k times: draw a data batch x and noise z; update D (or the critic f) on
       :func:`discriminator_loss` (3.2) (``"saturating"``/``"nonsaturating"``) or on
       :func:`critic_loss` (3.8) (``"wgan"``, then :func:`clip_weights`; ``"wgan-gp"``, plus
       ``gp_weight`` * :func:`gradient_penalty` (3.9));
    2. once: draw noise z; update G on :func:`generator_loss` (3.6) of kind ``"saturating"``,
       ``"nonsaturating"`` or ``"wasserstein"`` (both WGAN games).

    WGAN-GP as in Gulrajani et al. (2017): ``k=5, lr_g=lr_d=1e-4, betas=(0.0, 0.9),
    gp_weight=10``. The original WGAN: ``optimizer="rmsprop", lr 5e-5, k=5, clip_value=0.01``.

    Args:
        generator: G; has ``latent_dim`` (and ``num_classes`` if conditional).
        discriminator: D (logits) or critic f; gets labels too if the generator is conditional.
        data: a tensor (N, ...) of training data, or ``(x, y)`` with labels for a conditional GAN;
            moved once to the generator's device.
        loss: one of :data:`LOSSES`.
        k: discriminator steps per generator step (n_critic).
        batch_size: examples per step (real and generated alike).
        lr_g, lr_d: learning rates.
        betas: Adam's (beta1, beta2) (ignored otherwise).
        optimizer: ``"adam"``, ``"rmsprop"`` or ``"sgd"`` (plain gradient steps, no momentum:
            the step is proportional to the gradient, so a vanishing gradient shows).
        gp_weight: lambda of (3.9) (``"wgan-gp"`` only).
        clip_value: c of (3.8) (``"wgan"`` only).
        seed: seeds torch/NumPy/Python and the batch sampler (reproducible on one device).
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, data, *, loss: str = "nonsaturating",
                 k: int = 1, batch_size: int = 128, lr_g: float = 2e-4, lr_d: float = 2e-4,
                 betas=(0.5, 0.999), optimizer: str = "adam", gp_weight: float = 10.0,
                 clip_value: float = 0.01, seed: int | None = None):
        if not isinstance(generator, nn.Module) or not isinstance(discriminator, nn.Module):
            raise TypeError("generator and discriminator must be torch.nn.Module instances")
        if not isinstance(getattr(generator, "latent_dim", None), int):
            raise TypeError("generator must have an int attribute latent_dim (the dimension of z)")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(map(repr, LOSSES))}; got {loss!r}")
        if optimizer not in ("adam", "rmsprop", "sgd"):
            raise ValueError(f"optimizer must be 'adam', 'rmsprop' or 'sgd', got {optimizer!r}")
        self.k = positive_int(k, "k")
        self.batch_size = positive_int(batch_size, "batch_size")
        lr_g, lr_d = positive_number(lr_g, "lr_g"), positive_number(lr_d, "lr_d")
        self.gp_weight = positive_number(gp_weight, "gp_weight")
        self.clip_value = positive_number(clip_value, "clip_value")
        try:
            b1, b2 = (float(b) for b in betas)
        except (TypeError, ValueError):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must lie in [0, 1), got {betas!r}")
        self.generator, self.discriminator, self.loss = generator, discriminator, loss
        self.conditional = getattr(generator, "num_classes", None) is not None
        self.device = next(generator.parameters()).device
        discriminator.to(self.device)

        if isinstance(data, (tuple, list)):
            if len(data) != 2 or not all(isinstance(t, torch.Tensor) for t in data):
                raise ValueError("data must be a tensor (N, ...) or a pair (x, y) of tensors")
            x, y = data
            if len(x) != len(y):
                raise ValueError(f"data: x and y must have the same length, got {len(x)} and {len(y)}")
        else:
            x, y = data, None
        x = float_tensor(x, "data")
        if x.dim() < 2 or len(x) == 0:
            raise ValueError(f"data must be a non-empty batch (N, ...), got shape {tuple(x.shape)}")
        if bool(torch.isnan(x).any()):
            raise ValueError("data contains NaN")
        if self.conditional and y is None:
            raise ValueError("a conditional generator (num_classes set) needs data=(x, y) with labels")
        if not self.conditional and y is not None:
            raise ValueError("labels were given but the generator is unconditional (num_classes=None)")
        self.x = x.to(self.device)
        self.y = None if y is None else _check_labels(y, len(y), generator.num_classes, self.device)

        if seed is not None:
            seed_everything(seed)
        self._batches = torch.Generator().manual_seed(0 if seed is None else seed)
        makers = {
            "adam": lambda params, lr: torch.optim.Adam(params, lr=lr, betas=(b1, b2), foreach=True),
            "rmsprop": lambda params, lr: torch.optim.RMSprop(params, lr=lr, foreach=True),
            "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr, foreach=True),
        }
        make = makers[optimizer]
        # one forward pass of D over real, fake (and x_hat) together, unless batch norm would mix them
        self._joint = not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in discriminator.modules())
        self.opt_g = make(generator.parameters(), lr_g)
        self.opt_d = make(discriminator.parameters(), lr_d)
        self.history = GANHistory()

    @property
    def steps(self) -> int:
        """Generator steps taken so far."""
        return self.history.steps

    def _real_batch(self):
        idx = torch.randint(len(self.x), (self.batch_size,), generator=self._batches).to(self.device)
        return self.x[idx], (None if self.y is None else self.y[idx])

    def _noise(self) -> torch.Tensor:
        return torch.randn(self.batch_size, self.generator.latent_dim, device=self.device)

    def _d(self, x, y):
        return self.discriminator(x) if y is None else self.discriminator(x, y)

    def _g(self, z, y):
        return self.generator(z) if y is None else self.generator(z, y)

    def _finite(self, loss: torch.Tensor) -> float:
        """The loss as a float; NonFiniteLossError at this generator step if it is NaN/inf."""
        value = loss.item()
        if not math.isfinite(value):
            raise NonFiniteLossError(self.steps, value, None)
        return value

    def step(self) -> tuple[float, float]:
        """One round of the game: k discriminator steps, then one generator step.

        Returns:
            ``(d_loss, g_loss)`` of this round (also appended to :attr:`history`).

        Raises:
            NonFiniteLossError: a loss became NaN/inf; ``.step`` is this generator step.
        """
        wasserstein = self.loss in ("wgan", "wgan-gp")
        d_losses = []
        for _ in range(self.k):
            x, y = self._real_batch()
            with torch.no_grad():
                fake = self._g(self._noise(), y)
            n = len(x)
            x_hat = None
            if self.loss == "wgan-gp":  # Eq. (3.9): random points between real and generated samples
                eps = torch.rand(n, device=self.device, dtype=x.dtype).reshape(n, *([1] * (x.dim() - 1)))
                x_hat = (eps * x + (1 - eps) * fake).requires_grad_(True)
            if self._joint:  # one forward pass over [real; fake; x_hat] (no batch norm to mix them)
                parts = [x, fake] + ([x_hat] if x_hat is not None else [])
                yy = None if y is None else torch.cat([y] * len(parts))
                out = self._d(torch.cat(parts), yy)
                real_out, fake_out, hat_out = out[:n], out[n : 2 * n], out[2 * n :]
            else:
                real_out, fake_out = self._d(x, y), self._d(fake, y)
                hat_out = self._d(x_hat, y) if x_hat is not None else None
            if wasserstein:
                loss_d = fake_out.mean() - real_out.mean()  # critic_loss, Eq. (3.8)
                if x_hat is not None:
                    (grad,) = torch.autograd.grad(hat_out.sum(), x_hat, create_graph=True)
                    penalty = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()  # gradient_penalty, Eq. (3.9)
                    loss_d = loss_d + self.gp_weight * penalty
            else:
                loss_d = _d_loss(real_out, fake_out)  # discriminator_loss, Eq. (3.2)
            value = self._finite(loss_d)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            if self.loss == "wgan":
                clip_weights(self.discriminator, self.clip_value)
            d_losses.append(value)
        d_real = (real_out.mean() if wasserstein else torch.sigmoid(real_out).mean()).item()

        if self.y is not None:
            y = self.y[torch.randint(len(self.y), (self.batch_size,), generator=self._batches).to(self.device)]
        else:
            y = None
        d_params = [p for p in self.discriminator.parameters() if p.requires_grad]
        for p in d_params:  # the generator step needs gradients through D, not for D's weights
            p.requires_grad_(False)
        try:
            fake_out = self._d(self._g(self._noise(), y), y)
        finally:
            for p in d_params:
                p.requires_grad_(True)
        kind = "wasserstein" if wasserstein else self.loss
        loss_g = _g_loss(fake_out, kind)  # generator_loss, Eq. (3.6)
        value_g = self._finite(loss_g)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        grads = [p.grad.norm() for p in self.generator.parameters() if p.grad is not None]
        grad_norm = float(torch.stack(grads).norm()) if grads else 0.0
        self.opt_g.step()

        h = self.history
        h.d_loss.append(sum(d_losses) / len(d_losses))
        h.g_loss.append(value_g)
        h.d_real.append(d_real)
        h.d_fake.append((fake_out.mean() if wasserstein else torch.sigmoid(fake_out).mean()).item())
        h.grad_norm.append(grad_norm)
        return h.d_loss[-1], value_g

    def train(self, steps: int, snapshot_every: int | None = None,
              snapshot_fn: Callable[["GANTrainer"], Any] | None = None, progress: bool = False) -> GANHistory:
        """Play ``steps`` rounds (generator steps); may be called again to continue.

        Args:
            steps: generator steps to take now.
            snapshot_every: call ``snapshot_fn(self)`` before the first step (if no snapshot was
                taken yet), whenever the total step count is a multiple of this, and at the end.
            snapshot_fn: what to record, e.g. ``lambda t: t.sample(1000)``; stored in
                ``history.snapshots`` as ``(step, value)``.
            progress: show a tqdm bar.

        Returns:
            The trainer's :class:`GANHistory` (cumulative over calls).
        """
        steps = positive_int(steps, "steps")
        if (snapshot_every is None) != (snapshot_fn is None):
            raise ValueError("give both snapshot_every and snapshot_fn, or neither")
        if snapshot_every is not None:
            snapshot_every = positive_int(snapshot_every, "snapshot_every")
        from tqdm.auto import tqdm  # imported here: it probes for Jupyter at import time

        h = self.history
        g_mode, d_mode = self.generator.training, self.discriminator.training
        self.generator.train()
        self.discriminator.train()
        start = time.perf_counter()

        def snap():
            if not h.snapshots or h.snapshots[-1][0] != self.steps:
                h.snapshots.append((self.steps, snapshot_fn(self)))
                self.generator.train()
                self.discriminator.train()

        try:
            if snapshot_fn is not None and not h.snapshots:
                snap()
            for _ in tqdm(range(steps), disable=not progress, leave=False):
                self.step()
                if snapshot_fn is not None and self.steps % snapshot_every == 0:
                    snap()
            if snapshot_fn is not None:
                snap()
        finally:
            self.generator.train(g_mode)
            self.discriminator.train(d_mode)
            h.seconds += time.perf_counter() - start
        return h

    def sample(self, n: int, y=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """n generator samples in eval mode, on the CPU (see :meth:`MLPGenerator.sample`)."""
        mode = self.generator.training
        self.generator.eval()
        try:
            return self.generator.sample(n, y=y, generator=generator).cpu()
        finally:
            self.generator.train(mode)


def train_gan(generator: nn.Module, discriminator: nn.Module, data, steps: int, *,
              snapshot_every: int | None = None, snapshot_fn=None, progress: bool = False,
              **trainer_kwargs) -> GANHistory:
    """Build a :class:`GANTrainer` (``trainer_kwargs``: loss, k, batch_size, lr_g, lr_d, betas,
    optimizer, gp_weight, clip_value, seed) and play ``steps`` generator steps.

    Returns:
        The :class:`GANHistory`; the trained networks are the ones passed in.
    """
    trainer = GANTrainer(generator, discriminator, data, **trainer_kwargs)
    return trainer.train(steps, snapshot_every=snapshot_every, snapshot_fn=snapshot_fn, progress=progress)
