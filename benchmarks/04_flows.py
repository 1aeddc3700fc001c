"""Chapter 4 benchmark: test log-likelihoods of the chapter's flows.

How to run it (from the repository root)::

    .venv/bin/python benchmarks/04_flows.py                 # default: CPU, ~5 min (30 s per 2-D flow, 180 s MNIST)
    DGM_FAST=1 .venv/bin/python benchmarks/04_flows.py      # smoke test (or --fast): ~40 s
    .venv/bin/python benchmarks/04_flows.py --gpu-config    # CUDA only: full MNIST, a bigger flow, 20 min
                                                            # (refuses cleanly without CUDA)

The quality targets of chapter 4 (printed here; this is not a unit test):

* 2-D moons and checkerboard (``dgm.data.toy2d``): the test negative log-likelihood in nats of a
  :class:`dgm.flows.RealNVP` (12 affine couplings, hidden width 64), on 20 000 held-out samples,
  with its standard error. References printed next to it: the best single Gaussian (fitted mean
  and covariance) and, for the checkerboard, the entropy of the data distribution, log 8 = 2.079
  nats, which no model can beat in expectation.
* Images: the test bits/dim, Eq. (4.8), on the offline MNIST split (``dgm.data.mnist``) in the
  default CPU mode, of a :class:`dgm.flows.GlowMLP` (per-pixel histogram layer, Eq. (4.10), then 8
  steps of ActNorm, random permutation and affine coupling with MLP networks), trained on
  uniformly dequantized images (Eq. (4.7)). Reference: the exact bits/dim of the best
  independent-pixel model (one add-one-smoothed histogram of levels per pixel), which the flow
  starts from and must beat. ``--gpu-config`` trains a bigger flow of the same kind on the full
  MNIST for 20 minutes; the literature's numbers for much larger convolutional multi-scale flows
  are printed for comparison (RealNVP about 1.06 bits/dim, Glow 1.05), not as a target this MLP
  flow is expected to reach.

Every model is trained for a fixed wall-clock budget (``--seconds-2d``, ``--seconds-mnist``) with
Adam and a cosine learning-rate decay over that budget; one CPU thread by default (``--threads``),
which is the robust choice on a busy 2-core machine. Test log-likelihoods use one fixed draw of
the dequantization noise (seeded).

Then, beside these figures, the lecture's MNIST flow by ``benchmarks/quality.py`` over ``--seeds`` (the
lecture's recipe and budget): classifier-FID, KID, precision, recall, confident fraction and bits/dim at
T = 1 and 0.7, mean +- std, with the real-data floor.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch
from torch.distributions import MultivariateNormal

import dgm.config
import dgm.data
from dgm.flows import GlowMLP, RealNVP, bits_per_dim, dequantize, flow_loss

from _bench import load  # benchmarks/_bench.py

#: Model and recipe per configuration.
RECIPES = {
    "cpu": dict(toy=dict(num_layers=12, hidden=64), toy_lr=3e-3, toy_batch=512,
                mnist=dict(num_layers=8, hidden=128, num_hidden_layers=1), mnist_lr=2e-3, mnist_batch=64),
    "gpu": dict(toy=dict(num_layers=16, hidden=128), toy_lr=2e-3, toy_batch=2048,
                mnist=dict(num_layers=16, hidden=1024, num_hidden_layers=2), mnist_lr=1e-3, mnist_batch=256),
}
LITERATURE = "RealNVP (multi-scale, conv) 1.06, Glow 1.05 bits/dim on MNIST (full 60 000 training images)"


def train_for(model, loss_fn, x_train, seconds: float, lr: float, batch_size: int, seed: int, device) -> tuple[int, float]:
    """Adam with a cosine decay over a wall-clock budget; returns (steps, seconds)."""
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    steps, start = 0, time.perf_counter()
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * min(1.0, elapsed / seconds)))
        idx = torch.randint(0, len(x_train), (batch_size,), generator=gen).to(x_train.device)
        loss = loss_fn(model, x_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
        opt.step()
        steps += 1
        if steps % 100 == 0:
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss {loss.item()} at step {steps}")
            sync()
    sync()
    return steps, time.perf_counter() - start


@torch.no_grad()
def toy_benchmark(name: str, recipe: dict, seconds: float, seed: int, device, say) -> dict:
    x_train = dgm.data.toy2d(name, 50_000, seed=seed)
    x_test = dgm.data.toy2d(name, 20_000, seed=seed + 1)
    dgm.config.seed_everything(seed)
    flow = RealNVP(dim=2, **recipe["toy"])
    with torch.enable_grad():
        steps, secs = train_for(flow, flow_loss, x_train.to(device), seconds, recipe["toy_lr"], recipe["toy_batch"],
                                seed, device)
    flow.eval()
    ll = torch.cat([flow.log_prob(xb.to(device)).cpu() for xb in x_test.split(5000)])
    gauss = MultivariateNormal(x_train.mean(0), torch.cov(x_train.T))
    out = dict(nll=-ll.mean().item(), se=ll.std().item() / math.sqrt(len(ll)), steps=steps, seconds=secs,
               gauss=-gauss.log_prob(x_test).mean().item())
    say(f"  {name:<13} {steps:6d} steps in {secs:5.1f} s: test NLL {out['nll']:.3f} +- {out['se']:.3f} nats "
        f"(best Gaussian {out['gauss']:.3f})")
    return out


def independent_pixels_bpd(x_train, x_test, levels: int) -> float:
    """Exact test bits/dim of independent pixels (add-one-smoothed per-pixel histograms of the levels)."""
    k_train = torch.round(x_train.flatten(1) * (levels - 1)).long()
    k_test = torch.round(x_test.flatten(1) * (levels - 1)).long()
    counts = torch.stack([torch.bincount(col, minlength=levels) for col in k_train.T]).double() + 1.0
    log_probs = (counts / counts.sum(1, keepdim=True)).log()
    return bits_per_dim(log_probs.gather(1, k_test.T).sum(0).mean().item(), k_test.shape[1])


@torch.no_grad()
def mnist_benchmark(recipe: dict, seconds: float, seed: int, device, say) -> dict:
    x_train, _ = dgm.data.mnist("train")
    x_test, _ = dgm.data.mnist("test")
    x_train, x_test = x_train.flatten(1), x_test.flatten(1)
    levels, d = 256, x_train.shape[1]
    dgm.config.seed_everything(seed)
    flow = GlowMLP(d, mixing="permutation", preprocess="histogram", num_bins=levels, **recipe["mnist"])
    gen = torch.Generator().manual_seed(seed)
    flow.preprocess.initialize(dequantize(x_train, levels, gen))
    flow.log_prob(dequantize(x_train[:1024], levels, gen))  # ActNorm: data-dependent initialisation
    params = sum(p.numel() for p in flow.parameters())
    say(f"  GlowMLP {recipe['mnist']}, histogram pre-processing: {params:,} parameters; "
        f"{len(x_train)} training images")
    with torch.enable_grad():
        steps, secs = train_for(flow, lambda m, x: flow_loss(m, x, num_levels=levels), x_train.to(device), seconds,
                                recipe["mnist_lr"], recipe["mnist_batch"], seed, device)
    flow.eval()
    test_gen = torch.Generator().manual_seed(seed + 1)
    ll = torch.cat([flow.log_prob(dequantize(xb, levels, test_gen).to(device)).cpu() for xb in x_test.split(1000)])
    bpd = bits_per_dim(ll.mean().item(), d, levels)
    se = (ll / (d * math.log(2))).std().item() / math.sqrt(len(ll))
    train_ll = torch.cat([flow.log_prob(dequantize(xb, levels, test_gen).to(device)).cpu()
                          for xb in x_train[: len(x_test)].split(1000)])
    out = dict(bpd=bpd, se=se, train_bpd=bits_per_dim(train_ll.mean().item(), d, levels),
               indep=independent_pixels_bpd(x_train, x_test, levels), steps=steps, seconds=secs, params=params,
               n_test=len(x_test))
    say(f"  {steps} steps in {secs:.1f} s: test {bpd:.4f} +- {se:.4f} bits/dim (train subset {out['train_bpd']:.4f}); "
        f"independent pixels {out['indep']:.4f}")
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fast", action="store_true", help="smoke test (the same as DGM_FAST=1)")
    p.add_argument("--seconds-2d", type=float, default=None,
                   help="training seconds per 2-D flow (default 30; 5 fast; 120 with --gpu-config)")
    p.add_argument("--seconds-mnist", type=float, default=None,
                   help="training seconds of the MNIST flow (default 180; 20 fast; 1200 with --gpu-config)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1; ignored on CUDA)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="seeds of the quality table (benchmarks/quality.py; default 0 1 2)")
    p.add_argument("--gpu-config", action="store_true",
                   help="CUDA only: full MNIST, bigger flows, 20 minutes for MNIST")
    args = p.parse_args(argv)
    fast = args.fast or dgm.config.is_fast()
    if args.seconds_2d is None:
        args.seconds_2d = 120.0 if args.gpu_config else (5.0 if fast else 30.0)
    if args.seconds_mnist is None:
        args.seconds_mnist = 1200.0 if args.gpu_config else (20.0 if fast else 180.0)
    for name in ("seconds_2d", "seconds_mnist"):
        if not getattr(args, name) > 0:
            p.error(f"--{name.replace('_', '-')} must be > 0")
    if args.threads < 1:
        p.error("--threads must be >= 1")
    args.fast = fast
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    say = lambda *a: print(*a, flush=True)  # noqa: E731
    if args.gpu_config:
        if not torch.cuda.is_available():
            print("error: --gpu-config needs a CUDA GPU, but torch.cuda.is_available() is False here.\n"
                  "Run without --gpu-config for the default CPU benchmark.", file=sys.stderr)
            return 2
        device, recipe = torch.device("cuda"), RECIPES["gpu"]
    else:
        device, recipe = dgm.config.get_device(), RECIPES["cpu"]
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    mode = "gpu-config" if args.gpu_config else ("FAST" if args.fast else "default")
    t0 = time.perf_counter()
    say(f"# Chapter 4 benchmark: normalizing flows ({mode})")
    say(f"# {dgm.config.describe()}")
    say(f"# data: {dgm.data.mnist_description()}")
    if args.gpu_config and dgm.data.mnist_variant() != "full":
        say("# WARNING: --gpu-config expects the full 70 000 MNIST (run `python -m dgm.data` online); using the "
            "smaller variant above, so the numbers are not comparable with the literature.")

    say(f"# 2-D densities: RealNVP {recipe['toy']}, {args.seconds_2d:g} s each")
    toys = {name: toy_benchmark(name, recipe, args.seconds_2d, args.seed, device, say) for name in ("moons", "checkerboard")}
    say(f"# MNIST: {args.seconds_mnist:g} s of training")
    mn = mnist_benchmark(recipe, args.seconds_mnist, args.seed, device, say)

    say("")
    say(f"{'target':<44}{'value':>22}   reference")
    for name, r in toys.items():
        ref = f"best Gaussian {r['gauss']:.3f}" + (f"; entropy log 8 = {math.log(8):.3f}" if name == "checkerboard" else "")
        say(f"{name + ': test NLL (nats)':<44}{r['nll']:>14.3f} +- {r['se']:.3f}   {ref}")
    say(f"{'MNIST (' + dgm.data.mnist_variant() + ', ' + str(mn['n_test']) + ' test): bits/dim':<44}"
        f"{mn['bpd']:>14.4f} +- {mn['se']:.4f}   independent pixels {mn['indep']:.4f}; literature: {LITERATURE}")
    beat = all(r["nll"] < r["gauss"] for r in toys.values()) and mn["bpd"] < mn["indep"]
    verdict = "MET" if beat else "NOT MET"
    if args.fast and not args.gpu_config:
        verdict += " (FAST smoke run: the targets are stated for the default budget)"
    say(f"flows beat their references (2-D: best Gaussian; MNIST: independent pixels): {verdict}")
    say(f"(total {time.perf_counter() - t0:.0f} s)")
    if not args.gpu_config:  # the table is the lecture's CPU recipe
        say("")
        say(f"# the lecture's MNIST models over seeds {args.seeds} (benchmarks/quality.py, n = 500):")
        load("quality").main(["--models", "flow", "--seeds", *map(str, args.seeds),
                                "--threads", str(args.threads)] + (["--fast"] if args.fast else []))
    return 0


if __name__ == "__main__":
    sys.exit(main())
