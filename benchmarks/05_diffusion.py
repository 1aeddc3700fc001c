"""Chapter 5 benchmark: sample quality and sampling speed of a small MNIST diffusion model.

Trains the lecture's model, a class-conditional U-Net (``dgm.diffusion.UNet``) on 14x14 MNIST
(2x2-average-pooled digits in [-1, 1]) with T = 200 steps of a linear noise schedule and
classifier-free-guidance label dropout (p = 0.2), then prints the chapter's quality targets:

* the fraction of generated digits that the course's MNIST classifier (``dgm.classifier``, fed the
  samples upscaled to 28x28) labels with confidence > 0.9: unconditional samples (guidance w = 0)
  from DDPM with all T steps and from DDIM with 50 and 20 steps; the same figure for real test
  digits that went through the same 28 -> 14 -> 28 round trip is the reference;
* for the class-conditional model with guidance, the accuracy of the requested label
  (w = 1: plain conditional, w = 3: guided), DDIM with 50 steps;
* the wall time per sample of DDPM (all T steps) and of DDIM with 50 and 20 steps.

Usage::

    python benchmarks/05_diffusion.py            # default CPU run, about 3-4 minutes on 2 cores
    DGM_FAST=1 python benchmarks/05_diffusion.py # smoke test (or --fast)
    python benchmarks/05_diffusion.py --gpu-config   # CUDA only: wider U-Net, 20 000 steps

Why 14x14: on a CPU budget of a few minutes a 28x28 U-Net of the same quality needs several times
the compute (convolutions at 28x28 dominate); the 14x14 model keeps the samples recognisable.

Then, beside these figures, the chapter's MNIST models by ``benchmarks/quality.py`` over ``--seeds`` (the
lecture's recipes and budgets): classifier-FID, KID, precision, recall and confident fraction, mean +- std,
with the real-data floor; the 14x14 U-Net and the latent diffusion model at 28x28.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F

import dgm
import dgm.config
import dgm.data
from dgm.classifier import confidence_report, mnist_classifier
from dgm.diffusion import EpsLoss, Guided, NoiseSchedule, UNet, cosine_schedule, sample_ddim, sample_ddpm
from dgm.train import fit

from _bench import load  # benchmarks/_bench.py

T = 200


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fast", action="store_true", help="smoke-test budgets (also: DGM_FAST=1)")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps (default 3000 on CPU, 300 with --fast, 20000 with --gpu-config)")
    p.add_argument("--n", type=int, default=None, help="generated digits per figure (default 500; 100 with --fast)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="seeds of the quality table (benchmarks/quality.py; default 0 1 2)")
    p.add_argument("--gpu-config", action="store_true",
                   help="CUDA only: channels (32, 64, 128), 20 000 training steps, 2 000 samples")
    args = p.parse_args(argv)
    fast = args.fast or dgm.config.is_fast()
    args.fast = fast
    if args.steps is None:
        args.steps = 20000 if args.gpu_config else (300 if fast else 3000)
    if args.n is None:
        args.n = 2000 if args.gpu_config else (100 if fast else 500)
    for name in ("steps", "n", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if args.n % 10:
        p.error("--n must be a multiple of 10 (balanced labels)")
    return args


def to_classifier(x: torch.Tensor) -> torch.Tensor:
    """14x14 images in [-1, 1] -> 28x28 in [0, 1], bilinear, on the CPU."""
    x = (x.detach().float().cpu() + 1) / 2
    return F.interpolate(x, size=28, mode="bilinear", align_corners=False).clamp(0, 1)


def timed(fn, device):
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    with torch.no_grad():
        out = fn()
    sync()
    return out, time.perf_counter() - start


def main(argv=None) -> int:
    args = parse_args(argv)
    say = lambda *a: print(*a, flush=True)  # noqa: E731
    if args.gpu_config:
        if not torch.cuda.is_available():
            print("error: --gpu-config needs a CUDA GPU, but torch.cuda.is_available() is False here.\n"
                  "Run without --gpu-config for the default CPU benchmark.", file=sys.stderr)
            return 2
        device = torch.device("cuda")
        channels = (32, 64, 128)
    else:
        device = dgm.config.get_device()
        channels = (16, 32, 64)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    mode = "gpu-config" if args.gpu_config else ("FAST" if args.fast else "default")

    dgm.config.seed_everything(args.seed)
    x, y = dgm.data.mnist("train")
    x_test, y_test = dgm.data.mnist("test")
    x14 = F.avg_pool2d(x, 2) * 2 - 1
    x14_test = F.avg_pool2d(x_test, 2) * 2 - 1
    say(f"# Chapter 5 benchmark: MNIST diffusion, sample quality and sampling speed ({mode})")
    say(f"# {dgm.config.describe()}")
    say(f"# data: {dgm.data.mnist_description()}; diffused at 14x14 (2x2 average pooling), values in [-1, 1]")

    judge = mnist_classifier(device="cpu")
    n = args.n
    real = confidence_report(to_classifier(x14_test[:n]), y_test[:n], classifier=judge)
    say(f"# judge: dgm.classifier (test accuracy {judge.test_accuracy:.3f}); real test digits after 28->14->28: "
        f"{real['confident_fraction']:.3f} confident (p > 0.9), accuracy {real['accuracy']:.3f}")

    schedule = NoiseSchedule(T, "linear", beta_start=1e-4 * 1000 / T, beta_end=0.02 * 1000 / T)
    model = UNet(in_channels=1, channels=channels, num_classes=10)
    opt = cosine_schedule(torch.optim.Adam(model.parameters(), lr=2e-3), args.steps, warmup=min(100, args.steps // 10))
    say(f"# training: UNet {channels} ({sum(p.numel() for p in model.parameters()):,} parameters), T = {T} "
        f"(linear beta {schedule.betas[0]:.1e}..{schedule.betas[-1]:.2f}), eps-prediction loss, label dropout 0.2, "
        f"{args.steps} steps of batch 64, Adam 2e-3 with cosine decay, device {device}")
    hist = fit(model, EpsLoss(schedule, p_uncond=0.2), (x14, y), steps=args.steps, batch_size=64, optimizer=opt,
               seed=args.seed, progress=False, device=device)
    say(f"# trained in {hist.seconds:.1f} s, final loss (mean of the last 100 steps) "
        f"{sum(hist.train_loss[-100:]) / len(hist.train_loss[-100:]):.4f}")
    model.eval()

    shape = (n, 1, 14, 14)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(args.seed + 1)).to(device)
    labels = torch.arange(10).repeat(n // 10)
    uncond = Guided(model, torch.zeros(n, dtype=torch.long, device=device), 0.0)
    g = torch.Generator(device=device).manual_seed(args.seed + 2)

    rows = []
    samples, secs = timed(lambda: sample_ddpm(uncond, shape, schedule, noise=noise, generator=g, clip_x0=1.0), device)
    rows.append(("DDPM", T, secs, confidence_report(to_classifier(samples), classifier=judge)))
    for k in (50, 20):
        samples, secs = timed(lambda: sample_ddim(uncond, shape, schedule, k, noise=noise, clip_x0=1.0), device)
        rows.append(("DDIM", k, secs, confidence_report(to_classifier(samples), classifier=judge)))

    guided = {}
    for w in (1.0, 3.0):
        samples, secs = timed(lambda: sample_ddim(Guided(model, labels.to(device), w), shape, schedule, 50,
                                                  noise=noise, clip_x0=1.0), device)
        guided[w] = (secs, confidence_report(to_classifier(samples), labels, classifier=judge))

    say("")
    say(f"unconditional samples (w = 0), {n} digits from the same starting noise:")
    say(f"{'sampler':>8} {'steps':>6} {'ms/sample':>10} {'confident > 0.9':>16}   predicted classes 0-9")
    for name, steps, secs, rep in rows:
        say(f"{name:>8} {steps:>6} {1000 * secs / n:>10.2f} {rep['confident_fraction']:>16.3f}   {rep['class_counts']}")
    say("")
    say(f"class-conditional samples, DDIM 50 steps, labels 0-9 balanced ({n} digits):")
    say(f"{'w':>6} {'ms/sample':>10} {'confident > 0.9':>16} {'requested-label accuracy':>25}")
    for w, (secs, rep) in guided.items():
        say(f"{w:>6.1f} {1000 * secs / n:>10.2f} {rep['confident_fraction']:>16.3f} {rep['accuracy']:>25.3f}")
    say("")
    ddpm_ms = 1000 * rows[0][2] / n
    say(f"HEADLINE confident fraction (unconditional DDPM, {T} steps): {rows[0][3]['confident_fraction']:.3f}"
        f"  (real digits, same round trip: {real['confident_fraction']:.3f})")
    say(f"HEADLINE requested-label accuracy (guided, w = 3, DDIM 50): {guided[3.0][1]['accuracy']:.3f}")
    say(f"HEADLINE time per sample: DDPM {T} steps {ddpm_ms:.2f} ms, DDIM 50 {1000 * rows[1][2] / n:.2f} ms, "
        f"DDIM 20 {1000 * rows[2][2] / n:.2f} ms  (speed-up x{rows[0][2] / rows[1][2]:.1f} and "
        f"x{rows[0][2] / rows[2][2]:.1f})")
    if args.fast:
        say("(FAST smoke run: the model is barely trained; the figures are meaningful for the default budget)")
    if not args.gpu_config:  # the table is the lecture's CPU recipe
        say("")
        say(f"# the lecture's MNIST models over seeds {args.seeds} (benchmarks/quality.py, n = 500):")
        load("quality").main(["--models", "diffusion", "latent-diffusion", "--seeds", *map(str, args.seeds),
                                "--threads", str(args.threads)] + (["--fast"] if args.fast else []))
    return 0


if __name__ == "__main__":
    sys.exit(main())
