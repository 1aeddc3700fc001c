"""Chapter 3 benchmark: WGAN-GP against the non-saturating GAN on the ring of 8 Gaussians, and how
often a DCGAN's MNIST samples are recognised as digits.

How to run it (from the repository root)::

    .venv/bin/python benchmarks/03_gan.py                   # default: CPU, ~5 min on one core
    DGM_FAST=1 .venv/bin/python benchmarks/03_gan.py        # smoke test, ~1 min (targets not expected)
    .venv/bin/python benchmarks/03_gan.py --fast            # the same
    .venv/bin/python benchmarks/03_gan.py --part ring       # only the 2-D part (or --part dcgan)
    .venv/bin/python benchmarks/03_gan.py --gpu-config      # CUDA only: longer runs, larger DCGAN
                                                            # (fails clearly without CUDA)

The quality targets of chapter 3 (checked and printed here, this is not a unit test):

* **ring8** (``dgm.data.toy2d("ring8")``: 8 Gaussians of standard deviation 0.05 on a circle of
  radius 2), fixed seed 0 and a fixed budget of generator steps: WGAN-GP covers **8/8 modes** with
  **>= 80 % high-quality samples** (within 3 standard deviations of a mode,
  :func:`dgm.gan.mode_coverage`; a mode counts as covered with at least 20 % of its fair share of
  the high-quality samples). The non-saturating GAN's figures are printed beside it.
* **DCGAN on MNIST**: the share of 1 000 samples that the course's MNIST classifier
  (:func:`dgm.classifier.mnist_classifier`, trained on the real training digits) labels with a
  softmax probability above 0.9; the target is "most samples" (> 50 %).

The recipes are the lecture's:

* both 2-D GANs: MLPs with three hidden layers of 64 units (ReLU in G, LeakyReLU(0.2) in D), 2-D
  noise, batch 256, 20 000 training points;
* non-saturating GAN: Adam(lr 1e-3, betas (0.5, 0.999)), k = 1;
* WGAN-GP as in Algorithm 1 of Gulrajani et al. (2017): lambda = 10, n_critic = 5,
  Adam(lr 1e-4, betas (0, 0.9)) for both networks. With this small learning rate it needs many
  generator steps; the budget below is what reaches the target on one CPU core;
* DCGAN: :class:`dgm.gan.DCGANGenerator` / :class:`dgm.gan.DCGANDiscriminator`, non-saturating
  loss, Adam(lr 5e-4, betas (0.5, 0.999)), batch 64, 32-dimensional z.

Every run is seeded (``--seed``); on the same device and torch version the numbers repeat.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import dgm.classifier
import dgm.config
import dgm.data
from dgm.gan import DCGANDiscriminator, DCGANGenerator, GANTrainer, MLPDiscriminator, MLPGenerator, mode_coverage

#: Budgets (generator steps) and DCGAN widths per configuration.
CONFIGS = {
    "fast": dict(ns_steps=500, gp_steps=600, dcgan_steps=100, dcgan_channels=((32, 16), (16, 32))),
    "cpu": dict(ns_steps=3000, gp_steps=14000, dcgan_steps=2000, dcgan_channels=((64, 32), (32, 64))),
    "gpu": dict(ns_steps=10000, gp_steps=40000, dcgan_steps=10000, dcgan_channels=((128, 64), (64, 128))),
}
TARGET_MODES, TARGET_HQ, TARGET_CONFIDENT = 8, 0.80, 0.50


def ring_run(loss: str, steps: int, seed: int, device: torch.device) -> dict:
    """Train one 2-D GAN on ring8 and measure it on 2 500 samples."""
    centers, std = dgm.data.TOY2D_MODES["ring8"]
    data = dgm.data.toy2d("ring8", 20000, seed=0)
    torch.manual_seed(seed)
    generator = MLPGenerator(2, 2, hidden=(64, 64, 64)).to(device)
    critic = MLPDiscriminator(2, hidden=(64, 64, 64)).to(device)
    if loss == "wgan-gp":
        recipe = dict(k=5, lr_g=1e-4, lr_d=1e-4, betas=(0.0, 0.9), gp_weight=10.0)
    else:
        recipe = dict(k=1, lr_g=1e-3, lr_d=1e-3, betas=(0.5, 0.999))
    trainer = GANTrainer(generator, critic, data, loss=loss, batch_size=256, seed=seed, **recipe)
    checkpoints = []

    def measure(t):
        mc = mode_coverage(t.sample(2500, generator=torch.Generator().manual_seed(123)), centers, std)
        checkpoints.append((t.steps, mc))
        print(f"    {loss:<14} step {t.steps:>6}: {mc}", flush=True)
        return None

    start = time.perf_counter()
    trainer.train(steps, snapshot_every=max(1, steps // 8), snapshot_fn=measure)
    return dict(loss=loss, steps=steps, seconds=time.perf_counter() - start, result=checkpoints[-1][1])


def dcgan_run(steps: int, channels, seed: int, device: torch.device) -> dict:
    """Train the DCGAN on the MNIST training split; judge 1 000 samples with the MNIST classifier."""
    x_train, _ = dgm.data.mnist("train")
    torch.manual_seed(seed)
    g_channels, d_channels = channels
    generator = DCGANGenerator(latent_dim=32, channels=g_channels).to(device)
    discriminator = DCGANDiscriminator(channels=d_channels).to(device)
    trainer = GANTrainer(generator, discriminator, x_train, loss="nonsaturating", batch_size=64, lr_g=5e-4,
                         lr_d=5e-4, betas=(0.5, 0.999), seed=seed)
    judge = dgm.classifier.mnist_classifier(device=device)

    def measure(t):
        samples = t.sample(1000, generator=torch.Generator().manual_seed(123))
        report = dgm.classifier.confidence_report(samples, classifier=judge)
        print(f"    DCGAN step {t.steps:>6}: {report['confident_fraction']:.1%} confidently labelled", flush=True)
        return report

    start = time.perf_counter()
    trainer.train(steps, snapshot_every=max(1, steps // 4), snapshot_fn=measure)
    report = trainer.history.snapshots[-1][1]
    return dict(steps=steps, seconds=time.perf_counter() - start, report=report, judge_accuracy=judge.test_accuracy)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fast", action="store_true", help="smoke-test budgets (also DGM_FAST=1)")
    parser.add_argument("--gpu-config", action="store_true", help="CUDA only: longer runs and a larger DCGAN")
    parser.add_argument("--part", choices=("all", "ring", "dcgan"), default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)

    if args.gpu_config:
        if not torch.cuda.is_available():
            print("--gpu-config needs CUDA, and torch.cuda.is_available() is False here; "
                  "run without --gpu-config for the CPU benchmark", file=sys.stderr)
            return 2
        name, device = "gpu", torch.device("cuda")
    else:
        name = "fast" if (args.fast or dgm.config.is_fast()) else "cpu"
        device = torch.device("cpu")
    torch.set_num_threads(args.threads)
    cfg = CONFIGS[name]
    print(f"chapter 3 benchmark, config {name!r} on {device}, seed {args.seed}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")
    ok = True

    if args.part in ("all", "ring"):
        print("\nring8: non-saturating GAN vs WGAN-GP")
        runs = [ring_run("nonsaturating", cfg["ns_steps"], args.seed, device),
                ring_run("wgan-gp", cfg["gp_steps"], args.seed, device)]
        print(f"\n  {'game':<16}{'generator steps':>16}{'seconds':>9}   modes covered   high-quality")
        for run in runs:
            mc = run["result"]
            print(f"  {run['loss']:<16}{run['steps']:>16}{run['seconds']:>9.0f}   {mc.modes_covered:>5}/{mc.num_modes:<8}"
                  f"{mc.high_quality:>14.1%}")
        gp = runs[1]["result"]
        met = gp.modes_covered >= TARGET_MODES and gp.high_quality >= TARGET_HQ
        ok &= met or name == "fast"
        print(f"  target: WGAN-GP covers {TARGET_MODES}/8 modes with >= {TARGET_HQ:.0%} high-quality samples -> "
              f"{'MET' if met else 'NOT MET'} ({gp})")

    if args.part in ("all", "dcgan"):
        print(f"\nDCGAN on MNIST ({dgm.data.mnist_description()})")
        run = dcgan_run(cfg["dcgan_steps"], cfg["dcgan_channels"], args.seed, device)
        report = run["report"]
        frac = report["confident_fraction"]
        print(f"\n  DCGAN, {run['steps']} steps in {run['seconds']:.0f} s: {frac:.1%} of 1000 samples labelled with "
              f"p > 0.9 by the MNIST classifier (its test accuracy {run['judge_accuracy']:.3f})")
        print(f"  predicted classes: {report['class_counts']}")
        met = frac > TARGET_CONFIDENT
        ok &= met or name == "fast"
        print(f"  target: most samples (> {TARGET_CONFIDENT:.0%}) confidently labelled -> {'MET' if met else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
