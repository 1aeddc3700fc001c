"""Sample quality of every chapter's MNIST model, in one table (issue 14).

How to run it (from the repository root)::

    .venv/bin/python benchmarks/quality.py                   # the lectures' default budgets, seeds 0 1 2
                                                             # (~6 min per seed on a busy 2-core CPU)
    .venv/bin/python benchmarks/quality.py --fast            # the lectures' FAST budgets (also DGM_FAST=1;
                                                             # 1-3 min per seed)
    .venv/bin/python benchmarks/quality.py --seeds 0 1       # which seeds (default 0 1 2)
    .venv/bin/python benchmarks/quality.py --models dcgan flow   # a subset (vae-conv vae-mlp dcgan
                                                                 # cdcgan flow diffusion)
    .venv/bin/python benchmarks/quality.py --n 1000 --json /tmp/quality.json   # more samples; raw numbers

It trains each chapter's MNIST model once per seed with its lecture's recipe (below; the budgets
read from the lecture; seed 0 is the lecture's seed, not bit-for-bit its run), draws ``--n``
samples (default 500) and prints one table, every cell the mean +- standard deviation over seeds:

* ch. 2 (``lectures/02_vae_elbo.md``): the convolutional VAE and the MLP VAE (Bernoulli decoders on
  binarized digits, ``CODE_DIM`` latents, Adam ``LR``, batch 128, ``CONV_STEPS`` / ``MLP_STEPS``);
  samples are decoded means of z ~ N(0, I);
* ch. 3 (``lectures/03_gan_game.md``): the DCGAN and the conditional DCGAN (non-saturating loss,
  ``G_CHANNELS`` / ``D_CHANNELS``, ``LATENT``-dimensional z, Adam ``LR_DCGAN`` with betas (0.5,
  0.999), batch 64, ``DCGAN_STEPS`` / ``CGAN_STEPS``); the conditional model is asked for the ten
  digits in turn;
* ch. 4 (``lectures/04_normalizing_flows.md``): the MNIST flow (``GlowMLP``: histogram layer, 8
  steps of ActNorm, a random permutation and an affine coupling with ``MNIST_HIDDEN`` hidden units;
  ``fit_flow`` with 256-level dequantization, batch 64, Adam 2e-3 with cosine decay,
  ``MNIST_STEPS``), sampled at temperature T = 1 and T = 0.7;
* ch. 5 (``lectures/05_diffusion.md``): the class-conditional U-Net (``CHANNELS``) on 14x14 digits,
  ``T_MNIST`` steps of the linear schedule, label dropout 0.2, batch 64, Adam ``LR_MNIST`` with a
  cosine schedule (100 warm-up steps), ``STEPS_MNIST``; unconditional samples (guidance w = 0) with
  DDPM (all ``T_MNIST`` steps) and DDIM (50 steps) from the same starting noise;
* ch. 5, latent diffusion at 28x28: a ``ConvAE`` with 16 code units and ``AE_CHANNELS`` (Adam 2e-3,
  cosine schedule with 200 warm-up steps, batch ``AE_BATCH``, ``AE_STEPS``), then a class-conditional
  ``TimeMLP`` (256 hidden units, depth 3) on the standardized codes (same schedule and loss as the U-Net, label dropout
  0.2, batch 256, Adam 2e-3 with 100 warm-up steps, ``LATENT_STEPS``); samples with balanced labels
  at w = 1 (the model's p(x)) by DDPM and DDIM (50 steps, x0_hat clipped to the codes' range), and
  guided at w = 2 (with label accuracy). **train s** adds the two trainings.

The budgets and hyper-parameters named in capitals above are read from the lectures' code cells
(``NAME = dgm.choose(fast=..., default=...)`` and plain literal assignments), so the table
follows the lectures when their budgets are rebalanced; the architecture arguments written into
the lectures' calls (hidden widths, 8 flow steps, ...) are repeated here.

The columns (``dgm.metrics``, ``dgm.classifier``; all on the course's MNIST classifier):

* **classifier-FID**, **KID** and **precision** / **recall** (k = 3) of the n samples against n
  training digits (:func:`dgm.metrics.sample_quality`, real digits drawn with the run's seed).
  They embed with the course's classifier (64 features), not Inception: comparable within the
  course, not with papers (KID is on the scale of those unnormalised features);
* **confident**: the share of samples the classifier labels with softmax probability > 0.9
  (:func:`dgm.classifier.confidence_report`); for the conditional DCGAN also the share read as the
  requested digit (**label acc**);
* **bits/dim** where the model has a likelihood: the flow's exact test bits/dim on 256-level
  dequantized digits (Eq. (4.8), one fixed noise draw), the VAEs' negative test ELBO in bits per
  *binary* pixel (an upper bound, on binarized digits: not comparable with the flow's figure);
* **train s**: wall time of the training loop; **ms/image**: wall time of drawing the n samples,
  per image.

Reference rows: the real-data floor (:func:`dgm.metrics.real_data_floor`: n real test digits
against n training digits, what a perfect model scores at this n) and, for the 14x14 diffusion
model, real test digits through the same 28 -> 14 -> 28 round trip (the best a 14x14 model can
score after the upsampling). The diffusion samples are upsampled to 28x28 bilinearly for every
metric.

One CPU thread by default (``--threads``), on the CPU: on a busy 2-core machine more threads make
the timings erratic. Every run is seeded (weights, batches and sampling noise from the seed).
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import re
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import dgm.config
import dgm.data
from dgm.classifier import confidence_report, mnist_classifier
from dgm.ae import ConvAE, ae_loss
from dgm.bench.table import cell as table_cell
from dgm.diffusion import (EpsLoss, Guided, NoiseSchedule, TimeMLP, UNet, cosine_schedule, sample_ddim,
                            sample_ddpm)
from dgm.flows import GlowMLP, bits_per_dim, dequantize, fit_flow
from dgm.gan import DCGANDiscriminator, DCGANGenerator, GANTrainer
from dgm.metrics import real_data_floor, sample_quality
from dgm.train import fit
from dgm.vae import VAE, vae_loss

from _bench import load  # benchmarks/_bench.py

ROOT = Path(__file__).resolve().parents[1]
LECTURES = {2: "02_vae_elbo", 3: "03_gan_game", 4: "04_normalizing_flows", 5: "05_diffusion"}
MODELS = ("vae-conv", "vae-mlp", "dcgan", "cdcgan", "flow", "diffusion", "latent-diffusion")
DDIM_STEPS = 50


#: The 14x14 -> 28x28 bilinear upsampling of the chapter 5 benchmark (and lecture).
to_classifier = load("05_diffusion").to_classifier


# ----------------------------------------------------------------------------- the lectures' budgets
_AMBIGUOUS = object()


def lecture_constants(chapter: int, mode: str) -> dict:
    """Literal constants of a lecture's code cells, ``NAME = dgm.choose(...)`` resolved for ``mode``.

    ``mode`` is ``"fast"`` or ``"default"``. Only module-level assignments of literals count; a
    name assigned two different values is marked ambiguous (an error when it is asked for).
    """
    path = ROOT / "lectures" / f"{LECTURES[chapter]}.md"
    text = path.read_text(encoding="utf-8")
    found: dict = {}
    for cell in re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```", text, flags=re.S | re.M):
        cell = re.sub(r"\A---\n.*?\n---\n", "", cell, flags=re.S)  # a cell's own YAML options
        try:
            tree = ast.parse(cell)
        except SyntaxError:  # IPython magics: not ours
            continue
        for node in tree.body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
                continue
            value = node.value
            if isinstance(value, ast.Call) and ast.unparse(value.func) in ("dgm.choose", "choose"):
                value = {k.arg: k.value for k in value.keywords}.get(mode)
                if value is None:
                    continue
            try:
                value = ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError):
                continue
            target = node.targets[0]
            if isinstance(target, ast.Name):
                pairs = [(target.id, value)]
            elif (isinstance(target, ast.Tuple) and all(isinstance(t, ast.Name) for t in target.elts)
                  and isinstance(value, tuple) and len(value) == len(target.elts)):
                pairs = [(t.id, v) for t, v in zip(target.elts, value)]
            else:
                continue
            for name, v in pairs:
                found[name] = v if found.get(name, v) == v else _AMBIGUOUS
    return _Constants(found, path)


class _Constants(dict):
    def __init__(self, values: dict, path: Path):
        super().__init__(values)
        self.path = path

    def __getitem__(self, name):
        if name not in self:
            raise KeyError(f"{self.path.name}: no literal constant {name} in its code cells; "
                           f"benchmarks/quality.py reads the lecture's budgets from there")
        value = super().__getitem__(name)
        if value is _AMBIGUOUS:
            raise KeyError(f"{self.path.name}: {name} is assigned different values in different cells")
        return value


# ----------------------------------------------------------------------------- shared set-up
class Context:
    """Data, the judge and the lectures' constants, loaded once."""

    def __init__(self, mode: str, n: int):
        self.mode, self.n = mode, n
        self.lecture = {ch: lecture_constants(ch, mode) for ch in LECTURES}
        self.x_train, self.y_train = dgm.data.mnist("train")
        self.x_test, self.y_test = dgm.data.mnist("test")
        self.judge = mnist_classifier(device="cpu")


def _gen(lecture_seed: int, seed: int) -> torch.Generator:
    """The lecture's sampling seed for seed 0, shifted by 1000 per seed."""
    return torch.Generator().manual_seed(lecture_seed + 1000 * seed)


def _timed(fn):
    start = time.perf_counter()
    with torch.no_grad():
        out = fn()
    return out, time.perf_counter() - start


def measure(images: torch.Tensor, ctx: Context, seed: int, labels=None) -> dict:
    """The table's quality columns for n images (N, 1, 28, 28) in [0, 1]."""
    q = sample_quality(images, ctx.x_train, classifier=ctx.judge, seed=seed)
    report = confidence_report(images, labels, classifier=ctx.judge)
    return dict(fid=q["fid"], kid=q["kid"], precision=q["precision"], recall=q["recall"],
                confident=report["confident_fraction"], label_acc=report["accuracy"])


# ----------------------------------------------------------------------------- chapter 2
def _vae(kind: str, ctx: Context, seed: int) -> list:
    L = ctx.lecture[2]
    x_train, x_test = (ctx.x_train > 0.5).float(), (ctx.x_test > 0.5).float()  # binarized, as the lecture
    steps = L["CONV_STEPS"] if kind == "conv" else L["MLP_STEPS"]
    dgm.config.seed_everything(seed)
    model = VAE(kind, "bernoulli", code_dim=L["CODE_DIM"], hidden=(32, 64) if kind == "conv" else (256, 128))
    hist = fit(model, vae_loss, x_train, steps=steps, batch_size=128, lr=L["LR"], seed=seed, progress=False,
               device="cpu")
    model.eval()
    with torch.no_grad():
        gen = _gen(0, seed)
        elbo = torch.cat([torch.sub(*model.elbo(xb, generator=gen)) for xb in x_test.split(500)])
    bpd = -elbo.mean().item() / (x_test[0].numel() * math.log(2))
    samples, secs = _timed(lambda: model.sample(ctx.n, generator=_gen(0, seed)))
    name = f"ch2 {'conv' if kind == 'conv' else 'MLP'} VAE"
    return [(name, dict(measure(samples.clamp(0, 1), ctx, seed), bpd=bpd, train_s=hist.seconds,
                        sample_ms=1000 * secs / ctx.n))]


# ----------------------------------------------------------------------------- chapter 3
def _dcgan(conditional: bool, ctx: Context, seed: int) -> list:
    L = ctx.lecture[3]
    steps = L["CGAN_STEPS"] if conditional else L["DCGAN_STEPS"]
    classes = 10 if conditional else None
    dgm.config.seed_everything(seed)
    gen_net = DCGANGenerator(latent_dim=L["LATENT"], channels=L["G_CHANNELS"], num_classes=classes)
    disc_net = DCGANDiscriminator(channels=L["D_CHANNELS"], num_classes=classes)
    data = (ctx.x_train, ctx.y_train) if conditional else ctx.x_train
    trainer = GANTrainer(gen_net, disc_net, data, loss="nonsaturating", k=1, batch_size=64, lr_g=L["LR_DCGAN"],
                         lr_d=L["LR_DCGAN"], betas=(0.5, 0.999), seed=seed)
    hist = trainer.train(steps)
    labels = torch.arange(ctx.n) % 10 if conditional else None
    samples, secs = _timed(lambda: trainer.sample(ctx.n, y=labels, generator=_gen(3 if conditional else 0, seed)))
    name = f"ch3 {'conditional DCGAN' if conditional else 'DCGAN'}"
    return [(name, dict(measure(samples, ctx, seed, labels), bpd=None, train_s=hist.seconds,
                        sample_ms=1000 * secs / ctx.n))]


# ----------------------------------------------------------------------------- chapter 4
def _flow(ctx: Context, seed: int) -> list:
    L = ctx.lecture[4]
    levels, steps = 256, L["MNIST_STEPS"]
    x_train, x_test = ctx.x_train.flatten(1), ctx.x_test.flatten(1)
    dgm.config.seed_everything(seed)
    flow = GlowMLP(x_train.shape[1], num_layers=8, hidden=L["MNIST_HIDDEN"], mixing="permutation",
                   preprocess="histogram", num_bins=levels, seed=seed)
    gen = _gen(0, seed)  # the lecture's image_flow: histogram layer and ActNorms from data
    flow.preprocess.initialize(dequantize(x_train, levels, gen))
    with torch.no_grad():
        flow.log_prob(dequantize(x_train[:512], levels, gen))
    hist = fit_flow(flow, x_train, num_levels=levels, steps=steps, batch_size=64, lr=2e-3, seed=seed,
                    device="cpu")
    flow.eval()
    with torch.no_grad():
        gen = _gen(1, seed)  # the lecture's test_bpd: one fixed dequantization draw
        ll = torch.cat([flow.log_prob(dequantize(xb, levels, gen)) for xb in x_test.split(500)])
    bpd = bits_per_dim(ll.mean().item(), x_test.shape[1], levels)
    rows = []
    for temperature in (1.0, 0.7):
        samples, secs = _timed(lambda: flow.sample(ctx.n, temperature=temperature, generator=_gen(0, seed)))
        images = samples.reshape(-1, 1, 28, 28).clamp(0, 1)
        rows.append((f"ch4 flow, T = {temperature:g}",
                     dict(measure(images, ctx, seed), bpd=bpd, train_s=hist.seconds, sample_ms=1000 * secs / ctx.n)))
    return rows


# ----------------------------------------------------------------------------- chapter 5
def _diffusion(ctx: Context, seed: int) -> list:
    L = ctx.lecture[5]
    T, steps = L["T_MNIST"], L["STEPS_MNIST"]
    x14 = F.avg_pool2d(ctx.x_train, 2) * 2 - 1
    schedule = NoiseSchedule(T, "linear", beta_start=1e-4 * 1000 / T, beta_end=0.02 * 1000 / T)
    dgm.config.seed_everything(seed)
    unet = UNet(in_channels=1, channels=L["CHANNELS"], num_classes=10)
    opt = cosine_schedule(torch.optim.Adam(unet.parameters(), lr=L["LR_MNIST"]), steps, warmup=100)
    hist = fit(unet, EpsLoss(schedule, p_uncond=0.2), (x14, ctx.y_train), steps=steps, batch_size=64,
               optimizer=opt, seed=seed, progress=False, device="cpu")
    unet.eval()
    n = ctx.n
    uncond = Guided(unet, torch.zeros(n, dtype=torch.long), 0.0)  # w = 0: the null label only
    noise = torch.randn(n, 1, 14, 14, generator=_gen(6, seed))
    shape = noise.shape
    samplers = [
        (f"DDPM, {T} steps",
         lambda: sample_ddpm(uncond, shape, schedule, noise=noise, generator=_gen(7, seed), clip_x0=1.0)),
        (f"DDIM, {DDIM_STEPS} steps",
         lambda: sample_ddim(uncond, shape, schedule, DDIM_STEPS, noise=noise, clip_x0=1.0)),
    ]
    rows = []
    for label, fn in samplers:
        samples, secs = _timed(fn)
        rows.append((f"ch5 diffusion*, {label}",
                     dict(measure(to_classifier(samples), ctx, seed), bpd=None, train_s=hist.seconds,
                          sample_ms=1000 * secs / n)))
    return rows


def _latent_diffusion(ctx: Context, seed: int) -> list:
    L = ctx.lecture[5]
    T = L["T_MNIST"]
    schedule = NoiseSchedule(T, "linear", beta_start=1e-4 * 1000 / T, beta_end=0.02 * 1000 / T)
    dgm.config.seed_everything(seed)
    ae = ConvAE(code_dim=16, channels=L["AE_CHANNELS"])
    opt = cosine_schedule(torch.optim.Adam(ae.parameters(), lr=2e-3), L["AE_STEPS"], warmup=200)
    hist_ae = fit(ae, ae_loss, ctx.x_train, steps=L["AE_STEPS"], batch_size=L["AE_BATCH"], optimizer=opt,
                  seed=seed, progress=False, device="cpu")
    ae.eval()
    with torch.no_grad():
        codes = torch.cat([ae.encode(b) for b in ctx.x_train.split(2000)])
    mean, std = codes.mean(0), codes.std(0)
    z = (codes - mean) / std
    dgm.config.seed_everything(seed)
    net = TimeMLP(dim=16, hidden=256, depth=3, num_classes=10)
    opt = cosine_schedule(torch.optim.Adam(net.parameters(), lr=2e-3), L["LATENT_STEPS"], warmup=100)
    hist = fit(net, EpsLoss(schedule, p_uncond=0.2), (z, ctx.y_train), steps=L["LATENT_STEPS"], batch_size=256,
               optimizer=opt, seed=seed, progress=False, device="cpu")
    net.eval()
    n = ctx.n
    labels = torch.arange(n) % 10
    start = torch.randn(n, 16, generator=_gen(10, seed))
    clip = z.abs().max().item()
    runs = [
        ("DDPM w = 1", labels, lambda: sample_ddpm(Guided(net, labels, 1.0), start.shape, schedule, noise=start,
                                                    generator=_gen(11, seed))),
        (f"DDIM {DDIM_STEPS} w = 1", None, lambda: sample_ddim(Guided(net, labels, 1.0), start.shape, schedule,
                                                                DDIM_STEPS, noise=start, clip_x0=clip)),
        ("DDPM w = 2", labels, lambda: sample_ddpm(Guided(net, labels, 2.0), start.shape, schedule, noise=start,
                                                    generator=_gen(11, seed))),
    ]
    rows = []
    for label, requested, fn in runs:
        images, secs = _timed(lambda: ae.decode(fn() * std + mean))
        rows.append((f"ch5 latent diffusion, {label}",
                     dict(measure(images, ctx, seed, requested), bpd=None, train_s=hist_ae.seconds + hist.seconds,
                          sample_ms=1000 * secs / n)))
    return rows


RUNS = {
    "vae-conv": lambda ctx, seed: _vae("conv", ctx, seed),
    "vae-mlp": lambda ctx, seed: _vae("mlp", ctx, seed),
    "dcgan": lambda ctx, seed: _dcgan(False, ctx, seed),
    "cdcgan": lambda ctx, seed: _dcgan(True, ctx, seed),
    "flow": _flow,
    "diffusion": _diffusion,
    "latent-diffusion": _latent_diffusion,
}


# ----------------------------------------------------------------------------- reference rows
def references(ctx: Context, seed: int, with_round_trip: bool) -> list:
    """The real-data floor at n, and real digits through 28 -> 14 -> 28 (for the 14x14 model)."""
    floor = real_data_floor(ctx.n, classifier=ctx.judge, seed=seed)
    pick = torch.randperm(len(ctx.x_test), generator=torch.Generator().manual_seed(seed))[:ctx.n]
    real = ctx.x_test[pick]  # the floor's test digits
    conf = confidence_report(real, classifier=ctx.judge)["confident_fraction"]
    rows = [("real-data floor (test digits)", dict(fid=floor["fid"], kid=floor["kid"], precision=floor["precision"],
                                               recall=floor["recall"], confident=conf, label_acc=None, bpd=None,
                                               train_s=None, sample_ms=None))]
    if with_round_trip:
        trip = to_classifier(F.avg_pool2d(real, 2) * 2 - 1)
        rows.append(("real test digits 28->14->28*", dict(measure(trip, ctx, seed), bpd=None, train_s=None,
                                                            sample_ms=None)))
    return rows


# ----------------------------------------------------------------------------- the table
COLUMNS = (  # key, header, format of one number
    ("fid", "classifier-FID", ".2f"),
    ("kid", "KID", ".1f"),
    ("precision", "precision", ".3f"),
    ("recall", "recall", ".3f"),
    ("confident", "confident", ".1%"),
    ("label_acc", "label acc", ".1%"),
    ("bpd", "bits/dim", ".4f"),
    ("train_s", "train s", ".0f"),
    ("sample_ms", "ms/image", ".3f"),
)


def print_table(results: dict) -> None:
    names = list(results)
    cells = [[table_cell([r[key] for r in results[name]], fmt) for key, _, fmt in COLUMNS] for name in names]
    name_w = max(len("model"), *map(len, names)) + 1
    widths = [max(len(h), *(len(row[i]) for row in cells)) + 2 for i, (_, h, _) in enumerate(COLUMNS)]
    header = f"{'model':<{name_w}}" + "".join(f"{h:>{w}}" for (_, h, _), w in zip(COLUMNS, widths))
    print(header)
    print("-" * len(header))
    for name, row in zip(names, cells):
        print(f"{name:<{name_w}}" + "".join(f"{c:>{w}}" for c, w in zip(row, widths)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fast", action="store_true", help="the lectures' FAST budgets (also DGM_FAST=1)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    p.add_argument("--n", type=int, default=500, help="samples per model, and real digits of the floor (default 500)")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), metavar="MODEL",
                   help=f"a subset of: {' '.join(MODELS)} (default: all)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--json", type=Path, default=None, help="also write every seed's numbers to this JSON file")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply every training budget (the lectures' *_STEPS) by this factor: run it for "
                        "several factors to measure quality against training minutes (default 1)")
    args = p.parse_args(argv)
    args.fast = args.fast or dgm.config.is_fast()
    if args.threads < 1:
        p.error("--threads must be >= 1")
    if not 10 <= args.n <= len(dgm.data.mnist("test")[0]):
        p.error(f"--n must lie between 10 and the {len(dgm.data.mnist('test')[0])} test digits")
    if len(set(args.seeds)) != len(args.seeds):
        p.error("--seeds must be distinct")
    if not (math.isfinite(args.scale) and args.scale > 0):
        p.error("--scale must be a positive number")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    mode = "fast" if args.fast else "default"
    t_start = time.perf_counter()
    ctx = Context(mode, args.n)
    for constants in ctx.lecture.values():  # --scale: every training budget
        for name, value in dict(constants).items():
            if name.endswith("_STEPS") and isinstance(value, int):
                constants[name] = max(1, round(args.scale * value))
    models = [m for m in MODELS if m in args.models]
    print(f"# Sample quality of the chapters' MNIST models ({'FAST' if args.fast else 'default'} budgets of the "
          f"lectures{'' if args.scale == 1 else f', training budgets x {args.scale:g}'}), n = {args.n} samples per "
          f"model, seeds {args.seeds}", flush=True)
    print(f"# {dgm.config.describe()}; CPU, {torch.get_num_threads()} thread(s)")
    print(f"# data: {dgm.data.mnist_description()}")
    print(f"# judge: dgm.classifier (test accuracy {ctx.judge.test_accuracy:.3f}); classifier-FID, KID, "
          "precision/recall (k = 3) against n training digits (dgm.metrics.sample_quality)")
    budget_names = {2: ("MLP_STEPS", "CONV_STEPS", "CODE_DIM", "LR"),
                    3: ("DCGAN_STEPS", "CGAN_STEPS", "G_CHANNELS", "D_CHANNELS", "LATENT", "LR_DCGAN"),
                    4: ("MNIST_STEPS", "MNIST_HIDDEN"),
                    5: ("STEPS_MNIST", "LR_MNIST", "CHANNELS", "T_MNIST", "AE_STEPS", "AE_CHANNELS",
                        "AE_BATCH", "LATENT_STEPS")}
    for ch, names in budget_names.items():
        print(f"# lectures/{LECTURES[ch]}.md ({mode}): "
              + ", ".join(f"{k}={ctx.lecture[ch][k]}" for k in names))

    results: dict = {}
    for model in models:
        for seed in args.seeds:
            t0 = time.perf_counter()
            for name, row in RUNS[model](ctx, seed):
                results.setdefault(name, []).append(dict(row, seed=seed))
                print(f"#   {name}, seed {seed}: FID {row['fid']:.2f}, KID {row['kid']:.1f}, "
                      f"precision {row['precision']:.3f}, recall {row['recall']:.3f}, "
                      f"confident {row['confident']:.1%}, train {row['train_s']:.0f} s", flush=True)
            print(f"#   ({model}, seed {seed}: {time.perf_counter() - t0:.0f} s in all)", flush=True)
    for seed in args.seeds:
        for name, row in references(ctx, seed, "diffusion" in models):
            results.setdefault(name, []).append(dict(row, seed=seed))

    print()
    print_table(results)
    print()
    print(f"mean +- standard deviation over seeds {args.seeds} (one value: a single seed); n = {args.n} samples "
          f"per model; the floor: n real test digits scored like a model")
    print("KID: the unbiased squared MMD of the classifier features (cubic kernel, dgm.metrics.kid's subsets); "
          "confident: classifier softmax > 0.9; label acc: requested digit read by the classifier")
    print("bits/dim: flow exact, 256-level dequantized test digits; VAEs: -ELBO per binary pixel of the "
          "binarized test digits (an upper bound; not comparable with the flow's)")
    if "diffusion" in models:
        print("* the chapter 5 model is trained at 14x14; its samples (and the reference row's real digits, "
              "average-pooled to 14x14) are upsampled to 28x28 bilinearly for every metric")
    print(f"(total {time.perf_counter() - t_start:.0f} s)")
    if args.json is not None:
        args.json.write_text(json.dumps(dict(mode=mode, n=args.n, seeds=args.seeds, results=results), indent=1))
        print(f"(every seed's numbers: {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
