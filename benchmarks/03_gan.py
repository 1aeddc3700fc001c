"""Chapter 3 benchmark: WGAN-GP against the non-saturating GAN on the ring of 8 Gaussians at the
lecture's budgets, over several seeds, and how often a DCGAN's MNIST samples are recognized as
digits.

How to run it (from the repository root)::

    .venv/bin/python benchmarks/03_gan.py                   # default: the lecture's budgets, CPU
    DGM_FAST=1 .venv/bin/python benchmarks/03_gan.py        # the lecture's FAST budgets
    .venv/bin/python benchmarks/03_gan.py --fast            # the same
    .venv/bin/python benchmarks/03_gan.py --part ring       # only the 2-D part (or --part dcgan)
    .venv/bin/python benchmarks/03_gan.py --seeds 0 1 2     # which seeds (default 0-4)
    .venv/bin/python benchmarks/03_gan.py --gpu-config      # CUDA only: longer runs, larger DCGAN
                                                            # (fails clearly without CUDA)

What it measures (printed, and checked where a claim of the lecture is at stake):

* **ring8** (``dgm.data.toy2d("ring8")``: 8 Gaussians of standard deviation 0.05 on a circle of
  radius 2): for each seed, both games are trained with the lecture's recipes and budgets
  (``TOY_STEPS`` and ``WGAN_STEPS`` of ``lectures/03_gan_game.md``) and measured on 2 500
  samples with :func:`dgm.gan.mode_coverage` (a sample is high quality within 3 standard
  deviations of a mode; a mode is covered with at least 20 % of its fair share of the
  high-quality samples). The table gives each seed and the mean +- standard deviation over
  seeds. The lecture's claim, checked for every seed: WGAN-GP covers at least as many modes as
  the non-saturating GAN, with a high-quality fraction at least ``HQ_RATIO`` times the GAN's.
* **DCGAN on MNIST**: the share of 1 000 samples that the course's MNIST classifier
  (:func:`dgm.classifier.mnist_classifier`, trained on the real training digits) labels with a
  softmax probability above 0.9; the target is "most samples" (> 50 %).

The recipes are the lecture's:

* both 2-D GANs: MLPs with three hidden layers of 64 units (ReLU in G, LeakyReLU(0.2) in D), 2-D
  noise, batch 256, 20 000 training points;
* non-saturating GAN: Adam(lr 1e-3, betas (0.5, 0.999)), k = 1;
* WGAN-GP: ``WGAN_GP`` below, tuned for the ring at the lecture's budget: lambda = 0.1 and Adam
  betas (0.5, 0.9) as in the 2-D experiments of Gulrajani et al.'s code, lr 1e-3, n_critic = 2;
* DCGAN: :class:`dgm.gan.DCGANGenerator` / :class:`dgm.gan.DCGANDiscriminator`, non-saturating
  loss, Adam(lr 5e-4, betas (0.5, 0.999)), batch 64, 32-dimensional z.

Every run is seeded; on the same device and torch version the numbers repeat.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

import dgm.classifier
import dgm.config
import dgm.data
from dgm.gan import DCGANDiscriminator, DCGANGenerator, GANTrainer, MLPDiscriminator, MLPGenerator, mode_coverage

#: The lecture's recipes for the ring (``lectures/03_gan_game.md``).
NS_GAN = dict(k=1, lr_g=1e-3, lr_d=1e-3, betas=(0.5, 0.999))
WGAN_GP = dict(k=2, lr_g=1e-3, lr_d=1e-3, betas=(0.5, 0.9), gp_weight=0.1)
#: Budgets (generator steps; ns/gp are the lecture's TOY_STEPS/WGAN_STEPS) and DCGAN widths.
CONFIGS = {
    "fast": dict(ns_steps=1200, gp_steps=1200, dcgan_steps=100, dcgan_channels=((32, 16), (16, 32))),
    "cpu": dict(ns_steps=2400, gp_steps=4000, dcgan_steps=2000, dcgan_channels=((64, 32), (32, 64))),
    "gpu": dict(ns_steps=6000, gp_steps=12000, dcgan_steps=10000, dcgan_channels=((128, 64), (64, 128))),
}
HQ_RATIO, TARGET_CONFIDENT = 0.7, 0.50


def ring_run(loss: str, steps: int, seed: int, device: torch.device) -> dict:
    """Train one 2-D GAN on ring8 with the lecture's recipe; measure it on 2 500 samples."""
    centers, std = dgm.data.TOY2D_MODES["ring8"]
    data = dgm.data.toy2d("ring8", 20000, seed=0)
    torch.manual_seed(seed)
    generator = MLPGenerator(2, 2, hidden=(64, 64, 64)).to(device)
    critic = MLPDiscriminator(2, hidden=(64, 64, 64)).to(device)
    recipe = WGAN_GP if loss == "wgan-gp" else NS_GAN
    trainer = GANTrainer(generator, critic, data, loss=loss, batch_size=256, seed=seed, **recipe)
    start = time.perf_counter()
    trainer.train(steps)
    seconds = time.perf_counter() - start
    mc = mode_coverage(trainer.sample(2500, generator=torch.Generator().manual_seed(123)), centers, std)
    print(f"    seed {seed} {loss:<14} {steps:>6} steps {seconds:>5.0f} s: {mc}", flush=True)
    return dict(loss=loss, steps=steps, seconds=seconds, result=mc)


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
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
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
    print(f"chapter 3 benchmark, config {name!r} on {device}, seeds {args.seeds}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")
    ok = True

    if args.part in ("all", "ring"):
        print(f"\nring8: non-saturating GAN ({cfg['ns_steps']} steps) vs WGAN-GP ({cfg['gp_steps']} steps), "
              f"seeds {args.seeds}")
        rows = []
        for seed in args.seeds:
            rows.append((seed, ring_run("nonsaturating", cfg["ns_steps"], seed, device),
                         ring_run("wgan-gp", cfg["gp_steps"], seed, device)))
        print(f"\n  {'seed':>4}   {'GAN modes':>9} {'GAN HQ':>7} {'s':>4}   {'WGAN-GP modes':>13} {'HQ':>7} {'s':>4}   claim")
        held = []
        for seed, ns_run, gp_run in rows:
            a, b = ns_run["result"], gp_run["result"]
            claim = b.modes_covered >= a.modes_covered and b.high_quality >= HQ_RATIO * a.high_quality
            held.append(claim)
            print(f"  {seed:>4}   {a.modes_covered:>7}/8 {a.high_quality:>7.1%} {ns_run['seconds']:>4.0f}   "
                  f"{b.modes_covered:>11}/8 {b.high_quality:>7.1%} {gp_run['seconds']:>4.0f}   {'holds' if claim else 'FAILS'}")
        for label, idx in (("GAN", 1), ("WGAN-GP", 2)):
            modes = np.array([r[idx]["result"].modes_covered for r in rows], dtype=float)
            hq = np.array([r[idx]["result"].high_quality for r in rows])
            print(f"  {label:<8} over {len(rows)} seeds: modes covered {modes.mean():.1f} +- {modes.std():.1f}, "
                  f"high-quality {hq.mean():.1%} +- {hq.std():.1%}")
        ok &= all(held)
        print(f"  claim (WGAN-GP >= GAN in modes, HQ >= {HQ_RATIO:.0%} of the GAN's) holds for "
              f"{sum(held)}/{len(held)} seeds")

    if args.part in ("all", "dcgan"):
        print(f"\nDCGAN on MNIST ({dgm.data.mnist_description()})")
        run = dcgan_run(cfg["dcgan_steps"], cfg["dcgan_channels"], args.seeds[0], device)
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
