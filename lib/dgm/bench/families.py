"""Every family of the course behind one interface, so that one loop trains them all at the same
CPU-time budget on the same data: binarized MNIST (a pixel is 1 where its intensity exceeds 0.5,
as in chapters 2 and 6), images ``(N, 1, 28, 28)`` with values in {0, 1}.

A :class:`Family` is built from its chapter's library model and recipe:

* ``setup(x_train, seed)`` builds the networks and optimizers (not timed);
* ``step(progress)`` takes one training step; ``progress`` in [0, 1) is the share of the budget
  already spent (the latent diffusion model uses it to switch from its autoencoder to its prior);
* ``sample(n, generator)`` draws n images ``(n, 1, 28, 28)`` in [0, 1]: what the chapter shows
  (the VAE's decoded means, the flow's samples quantized to the two levels, ...);
* ``nll(x)`` is -log P(x) in nats per image of binary images x, exact (``likelihood = "exact"``)
  or an upper bound (``"bound"``); families without a likelihood (``None``) raise.

The likelihoods are all of the same discrete data, so their bits per dimension, Eq. (8.6),
stand in one column: the PixelCNN's is exact (Eq. 6.6), the VAE's comes from its importance-
weighted bound (Eq. 2.9), the flow's from its density on dequantized pixels (Eq. 4.7: with K = 2
levels, log P(x) >= E_u log p((x + u) / 2) - D log 2).
"""

from __future__ import annotations

import math

import torch

from dgm._checks import positive_int
from dgm.ae import ConvAE, ae_loss
from dgm.autoregressive import GatedPixelCNN, log_prob, nll_loss
from dgm.autoregressive import sample as ar_sample
from dgm.config import seed_everything
from dgm.diffusion import EpsLoss, NoiseSchedule, TimeMLP, UNet, sample_ddim
from dgm.flows import GlowMLP, dequantize, flow_loss
from dgm.gan import DCGANDiscriminator, DCGANGenerator, GANTrainer
from dgm.train import train_step
from dgm.vae import VAE, vae_loss

__all__ = ["FAMILIES", "Family", "VAEFamily", "GANFamily", "FlowFamily", "PixelCNNFamily",
           "DiffusionFamily", "LatentDiffusionFamily", "binarize", "make_family"]

LEVELS = 2  # binary pixels


def binarize(x: torch.Tensor) -> torch.Tensor:
    """Pixels above 0.5 become 1, the others 0 (chapters 2 and 6)."""
    return (x > 0.5).float()


def _warmup(optimizer: torch.optim.Optimizer, steps: int = 100) -> torch.optim.lr_scheduler.LambdaLR:
    """A linear warm-up of the learning rate over ``steps`` steps, then constant: a time
    budget has no known number of steps for a decay to end at."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / steps))


class Family:
    """One generative model of the bench (see the module docstring for the interface).

    Attributes:
        name: the row's name in the table.
        chapter: the lecture it comes from.
        likelihood: ``"exact"``, ``"bound"`` or None.
        batch_size: examples per training step.
    """

    name = "family"
    chapter = 0
    likelihood: str | None = None
    batch_size = 64

    def setup(self, x_train: torch.Tensor, seed: int = 0) -> None:
        if not isinstance(x_train, torch.Tensor) or x_train.dim() != 4 or x_train.shape[1:] != (1, 28, 28):
            shape = getattr(x_train, "shape", x_train)
            raise ValueError(f"x_train must be binary images (N, 1, 28, 28), got {shape!r}")
        if not bool(((x_train == 0) | (x_train == 1)).all()):
            raise ValueError("x_train must hold binary pixels (0 or 1): binarize(x) first")
        self.x_train = x_train
        self.seed = seed
        self.batches = torch.Generator().manual_seed(seed)
        seed_everything(seed)
        self.build()

    def build(self) -> None:  # networks and optimizers
        raise NotImplementedError

    def batch(self) -> torch.Tensor:
        """A random mini-batch of training images (with replacement across steps)."""
        idx = torch.randint(len(self.x_train), (self.batch_size,), generator=self.batches)
        return self.x_train[idx]

    def step(self, progress: float) -> float:
        raise NotImplementedError

    def modules(self) -> list[torch.nn.Module]:
        raise NotImplementedError

    def eval(self) -> "Family":
        for m in self.modules():
            m.eval()
        return self

    def train(self) -> "Family":
        for m in self.modules():
            m.train()
        return self

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError(f"{self.name} has no likelihood (likelihood = None)")

    def parameters(self) -> int:
        return sum(p.numel() for m in self.modules() for p in m.parameters())


class VAEFamily(Family):
    """Chapter 2's convolutional VAE with a Bernoulli decoder, Eq. (2.7); nll from the IWAE bound
    L_k, Eq. (2.9) (an upper bound on -log p(x)); samples: decoded means of z ~ N(0, I)."""

    name, chapter, likelihood, batch_size = "VAE", 2, "bound", 128

    def __init__(self, code_dim: int = 16, hidden=(32, 64), lr: float = 2e-3, iwae_k: int = 16):
        self.code_dim, self.hidden, self.lr, self.iwae_k = code_dim, tuple(hidden), lr, positive_int(iwae_k, "iwae_k")

    def build(self):
        self.model = VAE("conv", "bernoulli", code_dim=self.code_dim, hidden=self.hidden)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.lr)

    def modules(self):
        return [self.model]

    def step(self, progress):
        return train_step(self.model, vae_loss, self.batch(), self.opt)

    @torch.no_grad()
    def sample(self, n, generator=None):
        return self.model.sample(n, generator=generator).clamp(0, 1)

    @torch.no_grad()
    def nll(self, x):
        gen = torch.Generator().manual_seed(1)
        return torch.cat([-self.model.iwae_bound(xb, k=self.iwae_k, generator=gen) for xb in x.split(100)])


class GANFamily(Family):
    """Chapter 3's DCGAN, non-saturating loss, Adam (0.5, 0.999); no likelihood."""

    name, chapter, likelihood, batch_size = "GAN (DCGAN)", 3, None, 64

    def __init__(self, latent_dim: int = 32, g_channels=(64, 32), d_channels=(32, 64), lr: float = 5e-4):
        self.latent_dim, self.g_channels, self.d_channels, self.lr = latent_dim, g_channels, d_channels, lr

    def build(self):
        self.generator = DCGANGenerator(latent_dim=self.latent_dim, channels=self.g_channels)
        self.discriminator = DCGANDiscriminator(channels=self.d_channels)
        self.trainer = GANTrainer(self.generator, self.discriminator, self.x_train, loss="nonsaturating", k=1,
                                  batch_size=self.batch_size, lr_g=self.lr, lr_d=self.lr, betas=(0.5, 0.999),
                                  seed=self.seed)

    def modules(self):
        return [self.generator, self.discriminator]

    def step(self, progress):
        return self.trainer.step()[1]

    @torch.no_grad()
    def sample(self, n, generator=None):
        return self.trainer.sample(n, generator=generator).clamp(0, 1)


class FlowFamily(Family):
    """Chapter 4's Glow-style flow on flattened digits (histogram pre-processing with K = 2 bins, 8
    steps of ActNorm, permutation and affine coupling), trained on dequantized pixels (x + u) / 2,
    Eq. (4.7); nll: the dequantization bound; samples quantized to the two levels (the discrete
    model the density induces)."""

    name, chapter, likelihood, batch_size = "flow (Glow-MLP)", 4, "bound", 64

    def __init__(self, num_layers: int = 8, hidden: int = 128, lr: float = 1e-3, temperature: float = 1.0):
        self.num_layers, self.hidden, self.lr, self.temperature = num_layers, hidden, lr, temperature

    def build(self):
        d = self.x_train[0].numel()
        self.flow = GlowMLP(d, num_layers=self.num_layers, hidden=self.hidden, mixing="permutation",
                            preprocess="histogram", num_bins=LEVELS, seed=self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        flat = self.x_train.flatten(1)
        self.flow.preprocess.initialize(dequantize(flat, LEVELS, gen))
        with torch.no_grad():  # data-dependent ActNorm initialisation, Eq. (4.5)
            self.flow.log_prob(dequantize(flat[:512], LEVELS, gen))
        self.opt = torch.optim.Adam(self.flow.parameters(), lr=self.lr)
        self.sched = _warmup(self.opt)

    def modules(self):
        return [self.flow]

    def step(self, progress):
        value = train_step(self.flow, lambda m, b: flow_loss(m, b, LEVELS), self.batch().flatten(1), self.opt,
                           max_grad_norm=5.0)
        self.sched.step()
        return value

    @torch.no_grad()
    def sample(self, n, generator=None):
        v = self.flow.sample(n, temperature=self.temperature, generator=generator)
        return binarize(v.reshape(n, 1, 28, 28))  # level floor(K v) of the discrete model

    @torch.no_grad()
    def nll(self, x):
        gen = torch.Generator().manual_seed(1)
        d = x[0].numel()
        return torch.cat([-self.flow.log_prob(dequantize(xb.flatten(1), LEVELS, gen)) + d * math.log(LEVELS)
                          for xb in x.split(500)])


class PixelCNNFamily(Family):
    """Chapter 6's gated PixelCNN over the two levels; exact nll, Eq. (6.6); samples drawn pixel by
    pixel, Eq. (6.7): 784 network evaluations per image. Batches of 32 (chapter 6: 64): its step is
    the bench's most expensive, and at a budget of seconds more, smaller steps learn faster."""

    name, chapter, likelihood, batch_size = "autoregressive (PixelCNN)", 6, "exact", 32

    def __init__(self, channels: int = 16, num_layers: int = 5, lr: float = 3e-3):
        self.channels, self.num_layers, self.lr = channels, num_layers, lr

    def build(self):
        self.model = GatedPixelCNN(levels=LEVELS, channels=self.channels, num_layers=self.num_layers)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.lr)

    def modules(self):
        return [self.model]

    def step(self, progress):
        return train_step(self.model, nll_loss, self.batch(), self.opt)

    @torch.no_grad()
    def sample(self, n, generator=None):
        return ar_sample(self.model, n, (1, 28, 28), generator=generator)

    @torch.no_grad()
    def nll(self, x):
        return torch.cat([-log_prob(self.model, xb) for xb in x.split(500)])


def _schedule(T: int) -> NoiseSchedule:
    """Chapter 5's linear schedule for a short chain (both ends scaled by 1000 / T)."""
    return NoiseSchedule(T, "linear", beta_start=1e-4 * 1000 / T, beta_end=0.02 * 1000 / T)


class DiffusionFamily(Family):
    """Chapter 5's U-Net eps_theta on 28x28 pixels scaled to [-1, 1], the eps loss (5.7) on the
    linear schedule with ``T`` steps; samples by DDIM, Eq. (5.9), with ``ddim_steps`` network
    evaluations. Its likelihood bound (the ELBO of Eq. 5.6) is not computed here: no number."""

    name, chapter, likelihood, batch_size = "diffusion (pixel U-Net)", 5, None, 64

    def __init__(self, channels=(16, 32, 64), T: int = 200, ddim_steps: int = 50, lr: float = 2e-3):
        self.channels, self.T, self.ddim_steps, self.lr = tuple(channels), T, ddim_steps, lr

    def build(self):
        self.schedule = _schedule(self.T)
        self.net = UNet(in_channels=1, channels=self.channels)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        self.sched = _warmup(self.opt)
        self.loss = EpsLoss(self.schedule)

    def modules(self):
        return [self.net]

    def step(self, progress):
        value = train_step(self.net, self.loss, self.batch() * 2 - 1, self.opt)
        self.sched.step()
        return value

    @torch.no_grad()
    def sample(self, n, generator=None):
        noise = torch.randn(n, 1, 28, 28, generator=generator)
        x = sample_ddim(self.net, noise.shape, self.schedule, self.ddim_steps, noise=noise, clip_x0=1.0)
        return ((x + 1) / 2).clamp(0, 1)


class LatentDiffusionFamily(Family):
    """Chapter 5's latent diffusion: a convolutional autoencoder (16 code units, Eq. 1.1) for the
    first ``ae_share`` of the budget, then a time-conditioned MLP eps_theta on the standardized
    codes; samples: DDIM in code space, decoded. No likelihood."""

    name, chapter, likelihood, batch_size = "latent diffusion", 5, None, 128

    def __init__(self, code_dim: int = 16, channels=(32, 64), hidden: int = 256, T: int = 200,
                 ddim_steps: int = 50, ae_share: float = 0.5, lr: float = 2e-3):
        self.code_dim, self.channels, self.hidden, self.T = code_dim, tuple(channels), hidden, T
        self.ddim_steps, self.ae_share, self.lr = ddim_steps, ae_share, lr

    def build(self):
        self.ae = ConvAE(code_dim=self.code_dim, channels=self.channels)
        self.ae_opt = torch.optim.Adam(self.ae.parameters(), lr=self.lr)
        self.ae_sched = _warmup(self.ae_opt, 200)
        self.schedule = _schedule(self.T)
        self.net = TimeMLP(dim=self.code_dim, hidden=self.hidden, depth=3)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        self.sched = _warmup(self.opt)
        self.loss = EpsLoss(self.schedule)
        self.codes = None

    def modules(self):
        return [self.ae, self.net]

    def _encode_training_set(self):
        self.ae.eval()
        with torch.no_grad():
            codes = torch.cat([self.ae.encode(b) for b in self.x_train.split(2000)])
        self.ae.train()
        self.mean, self.std = codes.mean(0), codes.std(0).clamp(min=1e-6)
        self.codes = (codes - self.mean) / self.std
        self.clip = self.codes.abs().max().item()

    def step(self, progress):
        if progress < self.ae_share:
            value = train_step(self.ae, ae_loss, self.batch(), self.ae_opt)
            self.ae_sched.step()
            return value
        if self.codes is None:  # the switch: the autoencoder is frozen from here on
            self._encode_training_set()
        idx = torch.randint(len(self.codes), (self.batch_size,), generator=self.batches)
        value = train_step(self.net, self.loss, self.codes[idx], self.opt)
        self.sched.step()
        return value

    @torch.no_grad()
    def sample(self, n, generator=None):
        if self.codes is None:
            self._encode_training_set()
        noise = torch.randn(n, self.code_dim, generator=generator)
        z = sample_ddim(self.net, noise.shape, self.schedule, self.ddim_steps, noise=noise, clip_x0=self.clip)
        return self.ae.decode(z * self.std + self.mean).clamp(0, 1)


FAMILIES = {
    "vae": VAEFamily,
    "gan": GANFamily,
    "flow": FlowFamily,
    "pixelcnn": PixelCNNFamily,
    "diffusion": DiffusionFamily,
    "latent-diffusion": LatentDiffusionFamily,
}


def make_family(key: str, **options) -> Family:
    """A fresh :class:`Family` by key (``FAMILIES``), with its constructor's options."""
    if key not in FAMILIES:
        raise ValueError(f"key must be one of {sorted(FAMILIES)}, got {key!r}")
    return FAMILIES[key](**options)
