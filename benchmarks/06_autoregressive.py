"""Chapter 6 benchmark: exact likelihoods of autoregressive models next to the other families' numbers.

The lecture's recipes and budgets (its default mode) unless an option says otherwise. Two data
sets, each with a fixed train/test split, and for every seed:

* **binarized MNIST** (the course's offline 8 004 / 2 000 split, a pixel is 1 where its intensity
  exceeds 0.5, as in the lecture): exact test -log p(x) in nats per image and bits/dim of
  independent pixels (fitted by counting), MADE, the lecture's gated PixelCNN, and an **anchor**: the
  recipe of a well-known PyTorch PixelCNN (jzbontar/pixelcnn-pytorch: a 7x7 type-A masked convolution
  then seven 7x7 type-B ones, 64 feature maps, batch norm and ReLU, a 1x1 convolution to the logits,
  Adam at lr 1e-3, batch 128) trained for the **same wall time** as the gated PixelCNN; and chapter
  2's VAE, whose -ELBO and -IWAE bound (k = ``--iwae-k``) are upper bounds on its -log p(x). Plus the
  seconds per 28x28 sample of the gated PixelCNN (one forward pass per pixel) against one likelihood
  pass, per image.
* **8x8 digits, 17 levels** (sklearn's 1 797 digits, 1 500 / 297, chapter 4's data): bits/dim of
  independent pixels (17-way counts), a gated PixelCNN with a 17-way softmax (exact), and chapter
  4's flow (``GlowMLP`` with its histogram preprocessing, trained with ``fit_flow`` on dequantized
  data): a bound on its discrete -log2 P(x)/D, in the same unit.

Every figure is printed as mean +- std over ``--seeds``.

Usage::

    python benchmarks/06_autoregressive.py              # default CPU run (several minutes per seed)
    python benchmarks/06_autoregressive.py --fast       # smoke test (or DGM_FAST=1)
    python benchmarks/06_autoregressive.py --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import dgm
import dgm.config
import dgm.data
from dgm.autoregressive import MADE, GatedPixelCNN, bits_per_dim, log_prob, nll_loss, sample
from dgm.autoregressive.masked_conv import MaskedConv2d
from dgm.flows import GlowMLP, dequantize, fit_flow
from dgm.flows import bits_per_dim as flow_bits_per_dim
from dgm.train import fit
from dgm.vae import VAE, vae_loss


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fast", action="store_true", help="smoke-test budgets (also: DGM_FAST=1)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    p.add_argument("--pixel-steps", type=int, default=None,
                   help="gated PixelCNN steps on binarized MNIST (default 260, the lecture's; 40 with --fast)")
    p.add_argument("--width", type=int, default=16, help="its feature maps per stack (default 16, the lecture's)")
    p.add_argument("--iwae-k", type=int, default=None, help="importance samples (default 200; 10 with --fast)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = p.parse_args(argv)
    args.fast = args.fast or dgm.config.is_fast()
    if args.pixel_steps is None:
        args.pixel_steps = 40 if args.fast else 260
    if args.iwae_k is None:
        args.iwae_k = 10 if args.fast else 200
    for name in ("pixel_steps", "width", "iwae_k", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


class AnchorPixelCNN(nn.Module):
    """jzbontar/pixelcnn-pytorch's network: (masked 7x7 conv, batch norm, ReLU) x 8 (type A, then B),
    a 1x1 convolution to K logits per pixel. Causal like ours (the same masks, Eq. (6.4)); batch norm
    mixes the examples of a training batch, but in eval mode it is a per-channel affine map."""

    def __init__(self, levels: int = 2, channels: int = 64, num_layers: int = 8):
        super().__init__()
        self.levels = levels
        layers = []
        for i in range(num_layers):
            layers += [MaskedConv2d(1 if i == 0 else channels, channels, 7, "A" if i == 0 else "B", 1),
                       nn.BatchNorm2d(channels), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Conv2d(channels, levels, 1))

    def logits(self, x):
        return self.net(x).unsqueeze(2)  # (N, K, 1, H, W), the layout of dgm.autoregressive


def anchor_log_prob(model, x):
    """-log p(x) terms of the anchor, Eq. (6.6), from its logits (levels k/(K-1) -> k)."""
    k = (x * (model.levels - 1)).round().long()
    return -F.cross_entropy(model.logits(x), k, reduction="none").flatten(1).sum(1)


def train_for(model, x, seconds, batch_size, lr, seed):
    """Adam on the mean -log p(x) until ``seconds`` of wall time have passed; returns the steps taken."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        batch = x[torch.randint(len(x), (batch_size,), generator=gen)]
        loss = -anchor_log_prob(model, batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    return steps


@torch.no_grad()
def test_nll(model, x, log_prob_fn=log_prob):
    """Mean exact -log p(x) over ``x``, nats per image, Eq. (6.1)."""
    model.eval()
    return -torch.cat([log_prob_fn(model, xb) for xb in x.split(500)]).mean().item()


def mnist_row(args, seed, x_train, x_test):
    """One seed on binarized MNIST: {name: nats per image} and the sampling timings."""
    fast = args.fast
    d = x_train[0].numel()
    out = {}
    p_pix = x_train.flatten(1).mean(0).clamp(1e-3, 1 - 1e-3)
    out["independent pixels"] = -torch.distributions.Bernoulli(p_pix).log_prob(x_test.flatten(1)).sum(1).mean().item()

    dgm.config.seed_everything(seed)
    made = MADE(d, hidden=(256,), seed=seed)
    fit(made, nll_loss, x_train, steps=100 if fast else 1500, batch_size=128, lr=3e-3, seed=seed, progress=False)
    out["MADE"] = test_nll(made, x_test)

    dgm.config.seed_everything(seed)
    px = GatedPixelCNN(levels=2, channels=args.width, num_layers=5, kernel_size=5)
    hist = fit(px, nll_loss, x_train, steps=args.pixel_steps, batch_size=64, lr=3e-3, seed=seed, progress=False)
    out["gated PixelCNN"] = test_nll(px, x_test)
    px_seconds = hist.seconds

    dgm.config.seed_everything(seed)
    anchor = AnchorPixelCNN(levels=2, channels=16 if fast else 64)
    anchor_steps = train_for(anchor, x_train, px_seconds, batch_size=128, lr=1e-3, seed=seed)
    out["anchor PixelCNN, same wall time"] = test_nll(anchor, x_test, anchor_log_prob)

    dgm.config.seed_everything(seed)
    vae = VAE("mlp", "bernoulli", code_dim=16, hidden=(256, 128))
    fit(vae, vae_loss, x_train, steps=200 if fast else 1000, batch_size=128, lr=2e-3, seed=seed, progress=False)
    vae.eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        rec, kl = vae.elbo(x_test, generator=gen)
        out["VAE -ELBO (bound)"] = -(rec - kl).mean().item()
        iwae = torch.cat([vae.iwae_bound(xb, k=args.iwae_k, generator=gen) for xb in x_test.split(250)])
        out[f"VAE -IWAE k={args.iwae_k} (bound)"] = -iwae.mean().item()

    n = 4 if fast else 16
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    sample(px, n, (28, 28), generator=gen)
    per_sample = (time.perf_counter() - start) / n
    start = time.perf_counter()
    with torch.no_grad():
        log_prob(px, x_test[:n])
    per_pass = (time.perf_counter() - start) / n
    timing = {"gated PixelCNN train s": px_seconds, "anchor steps in that time": anchor_steps,
              "s per 28x28 sample": per_sample, "s per likelihood pass": per_pass}
    return out, timing


def digits_row(args, seed, train, test, levels=17):
    """One seed on 8x8 digits with 17 levels: {name: bits/dim}."""
    d = train[0].numel()
    steps = 60 if args.fast else 600
    k_train = (train.flatten(1) * (levels - 1)).round().long()
    k_test = (test.flatten(1) * (levels - 1)).round().long()
    counts = F.one_hot(k_train, levels).sum(0).double() + 1.0                 # Laplace smoothing
    indep = torch.distributions.Categorical(probs=counts / counts.sum(-1, keepdim=True))
    out = {"independent pixels": bits_per_dim(-indep.log_prob(k_test).sum(1).mean().item(), d)}

    dgm.config.seed_everything(seed)
    px = GatedPixelCNN(levels=levels, channels=16, num_layers=4)
    fit(px, nll_loss, train, steps=steps, batch_size=128, lr=5e-3, seed=seed, progress=False)
    out["gated PixelCNN (exact)"] = bits_per_dim(test_nll(px, test), d)

    dgm.config.seed_everything(seed)
    flat_train, flat_test = train.flatten(1), test.flatten(1)
    flow = GlowMLP(d, preprocess="histogram", num_bins=levels, num_layers=6, hidden=64, mixing="lu")
    gen = torch.Generator().manual_seed(seed)
    flow.preprocess.initialize(dequantize(flat_train, levels, gen))
    with torch.no_grad():
        flow.log_prob(dequantize(flat_train[:512], levels, gen))  # ActNorm's data-dependent init
    fit_flow(flow, flat_train, num_levels=levels, steps=steps, batch_size=128, lr=2e-3, seed=seed)
    flow.eval()
    with torch.no_grad():
        ll = flow.log_prob(dequantize(flat_test, levels, torch.Generator().manual_seed(seed + 1)))
    out["chapter 4 flow (a bound)"] = flow_bits_per_dim(ll.mean().item(), d, levels)
    return out


def mean_std(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def print_table(title, rows, unit_fmt):
    say = lambda *a: print(*a, flush=True)  # noqa: E731
    say(f"\n{title}")
    for name, values in rows.items():
        m, s = mean_std(values)
        say(f"  {name:<38} {unit_fmt(m, s)}")


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    say = lambda *a: print(*a, flush=True)  # noqa: E731
    mode = "FAST" if args.fast else "default"
    say(f"# Chapter 6 benchmark: exact likelihoods of autoregressive models ({mode}, seeds {args.seeds})")
    say(f"# {dgm.config.describe()}")
    x_gray, _ = dgm.data.mnist("train")
    x_gray_test, _ = dgm.data.mnist("test")
    x_train, x_test = (x_gray > 0.5).float(), (x_gray_test > 0.5).float()
    if args.fast:
        x_train, x_test = x_train[:1000], x_test[:200]
    x_dig, _ = dgm.data.digits()
    perm = torch.randperm(len(x_dig), generator=torch.Generator().manual_seed(0))
    dig_train, dig_test = x_dig[perm[:1500]], x_dig[perm[1500:]]
    say(f"# binarized MNIST: {len(x_train)} train / {len(x_test)} test; 8x8 digits, 17 levels: "
        f"{len(dig_train)} / {len(dig_test)}")

    mnist, timings, digits = {}, {}, {}
    start = time.perf_counter()
    for seed in args.seeds:
        out, timing = mnist_row(args, seed, x_train, x_test)
        for k, v in out.items():
            mnist.setdefault(k, []).append(v)
        for k, v in timing.items():
            timings.setdefault(k, []).append(v)
        for k, v in digits_row(args, seed, dig_train, dig_test).items():
            digits.setdefault(k, []).append(v)
        say(f"# seed {seed} done, {time.perf_counter() - start:.0f} s so far: gated PixelCNN "
            f"{out['gated PixelCNN']:.2f} nats, anchor {out['anchor PixelCNN, same wall time']:.2f}")

    d = x_train[0].numel()
    print_table(f"binarized MNIST, test -log p(x), mean +- std over {len(args.seeds)} seeds",
                mnist, lambda m, s: f"{m:8.2f} +- {s:5.2f} nats  = {bits_per_dim(m, d):.4f} bits/dim")
    print_table("8x8 digits, 17 levels, test bits/dim", digits, lambda m, s: f"{m:7.3f} +- {s:.3f}")
    print_table("gated PixelCNN on binarized MNIST: cost", timings, lambda m, s: f"{m:10.4f} +- {s:.4f}")
    ratio = [a / b for a, b in zip(timings["s per 28x28 sample"], timings["s per likelihood pass"])]
    m, s = mean_std(ratio)
    say(f"  {'sample / likelihood pass':<38} {m:10.0f} +- {s:.0f} times")
    px, anchor = mnist["gated PixelCNN"], mnist["anchor PixelCNN, same wall time"]
    better = sum(a < b for a, b in zip(px, anchor))
    say(f"\n# gated PixelCNN at least as good as the anchor at the same wall time for {better} of "
        f"{len(px)} seeds; total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
