"""Chapter 7 benchmark: text -> image by latent diffusion and by a token transformer, over seeds.

The lecture's recipes and budgets (its default mode) unless an option says otherwise, on the
course's MNIST split with the captions of ``dgm.data.captions`` ("a <thin|thick> <upright|slanted>
<digit>"). The lecture's four held-out captions are removed from the conditional models' training
data. For every seed, trained once each: chapter 1's ConvAE (every training digit) and the
caption denoiser on its standardized 16-d codes (Eq. (7.7)), the noisy-code classifier of
classifier guidance (Eq. (7.8)), the captioner (Eq. (7.2)), chapter 2's VQ-VAE and the token
transformer over [caption ; 7x7 codes] (Eq. (7.9)); then, for the routes

* **latent diffusion, classifier-free guidance** w = 3 (Eq. (7.6)), DDIM with 50 steps;
* **latent diffusion, classifier guidance** gamma = 4 (Eq. (7.8)), the same sampler;
* **token transformer**, the caption's tokens given, codes sampled at temperature 0.7,

the figures:

* caption agreement (Eq. (7.3): digit by the course's judge, thickness and slant measured, all
  three) on the 36 seen captions x ``N_EACH`` and on the 4 held-out captions x 2 ``N_EACH``
  (compositional generalisation);
* round trip caption -> image -> captioner (greedy), Eq. (7.3) between the captions;
* bias amplification: the route retrained on the lecture's skewed set (80 % thick in every digit
  class, thin digits dropped at random), the thick fraction of its generations for captions that
  do not mention thickness, divided by the thick fraction of its training set. Latent diffusion:
  the partial captions "a <digit>" at w = 3 (and w = 1 beside it). The token transformer was
  trained on full captions only and cannot take a partial one, so it is sampled from ``<bos>``
  (its joint p(c, x), no caption asked for) and the thick fraction of its *images* is measured;
  the thick fraction of the captions it writes is printed beside it;
* training CPU seconds (autoencoder, generator) and sampling CPU milliseconds per digit.

Every figure is mean +- std over ``--seeds``; the ceilings are real test digits against their own
captions (Eq. (7.3)) and the captioner on test digits. The VQ-VAE's codebook usage is printed per
seed: trained as in the lecture, with a 200-step learning-rate warm-up; without it, seeds 2-5 ended
with one code in use (blank decodes) and the token-transformer route failed for them. Everything
runs on the CPU.

Usage::

    python benchmarks/07_multimodal.py              # default run (about 4-5 CPU minutes per seed)
    python benchmarks/07_multimodal.py --fast       # smoke test, 2 seeds (or DGM_FAST=1)
    python benchmarks/07_multimodal.py --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import dgm
import dgm.config
import dgm.data
from dgm.ae import ConvAE, ae_loss
from dgm.classifier import mnist_classifier
from dgm.data.captions import DIGIT_NAMES, attributes, caption, captions, detokenize, parse, tokenize
from dgm.diffusion import NoiseSchedule, sample_ddim
from dgm.multimodal import (CaptionDenoiser, CaptionEpsLoss, CaptionGuided, Captioner, ClassifierGuided,
                            NoisyCaptionClassifier, NoisyClassifierLoss, TokenTransformer, caption_agreement,
                            captioner_loss, text_agreement, token_loss)
from dgm.train import cosine_schedule, fit
from dgm.vae import VQVAE, vqvae_loss

CPU = torch.device("cpu")
HELD_OUT = ["a thin upright eight", "a thick slanted zero", "a thin slanted four", "a thick upright six"]
ALL_CAPTIONS = [caption(d, t, s) for d in range(10) for t in (0, 1) for s in (0, 1)]
SEEN = [c for c in ALL_CAPTIONS if c not in HELD_OUT]
WORDS = ("digit", "thickness", "slant", "all")
# the lecture's budgets: DGM_FAST's and the default (CPU) ones
BUDGETS = {
    "fast": dict(ae_steps=400, ae_channels=(16, 32), latent_steps=600, cls_steps=300, cap_epochs=3,
                 vq_steps=300, dalle_steps=300, dalle_width=64, side_steps=300, n_each=3),
    "default": dict(ae_steps=1200, ae_channels=(32, 64), latent_steps=2500, cls_steps=1000, cap_epochs=3,
                    vq_steps=1000, dalle_steps=1500, dalle_width=64, side_steps=1000, n_each=8),
}
W_CFG, GAMMA, TEMPERATURE, DDIM_STEPS = 3.0, 4.0, 0.7, 50
ROUTES = ("latent diffusion, w = 3", "latent, classifier gamma = 4", "token transformer, T = 0.7")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fast", action="store_true", help="smoke-test budgets and seeds 0 1 (also: DGM_FAST=1)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1 2; 0 1 with --fast)")
    p.add_argument("--side-steps", type=int, default=None,
                   help="steps of both models retrained on the skewed set (default 1000, the lecture's "
                        "SIDE_STEPS; 300 with --fast)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = p.parse_args(argv)
    args.fast = args.fast or dgm.config.is_fast()
    if args.seeds is None:
        args.seeds = [0, 1] if args.fast else [0, 1, 2]
    args.budget = dict(BUDGETS["fast" if args.fast else "default"])
    if args.side_steps is not None:
        if args.side_steps < 1:
            p.error("--side-steps must be >= 1")
        args.budget["side_steps"] = args.side_steps
    if args.threads < 1:
        p.error("--threads must be >= 1")
    return args


def generator(seed: int, k: int) -> torch.Generator:
    """The lecture's generator ``k`` for seed 0, a different one per seed."""
    return torch.Generator().manual_seed(k + 1000 * seed)


def train(model, loss_fn, data, *, steps=None, epochs=None, batch_size, seed, lr=2e-3, warmup=None):
    """fit() on the CPU (cosine schedule when ``warmup`` is given, as the lecture); returns CPU seconds."""
    dgm.config.seed_everything(seed)
    opt = None
    if warmup is not None:
        opt = cosine_schedule(torch.optim.Adam(model.parameters(), lr=lr), steps, warmup=warmup)
    start = time.process_time()
    fit(model, loss_fn, data, steps=steps, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=opt,
        device=CPU, seed=seed, progress=False)
    model.eval()
    return time.process_time() - start


def timed(fn):
    """(fn(), CPU seconds it took)."""
    start = time.process_time()
    out = fn()
    return out, time.process_time() - start


def thick_fraction(images) -> float:
    return attributes(images)[0].float().mean().item()


def run_seed(args, seed, data, judge):
    """Every model of one seed, trained once; returns {(route, quantity): value}, {context: value}."""
    b = args.budget
    x_train, cap_train, tok_train, x_test, cap_test = data
    n_each = b["n_each"]
    keep = torch.tensor([c not in HELD_OUT for c in cap_train])
    asked = [c for c in SEEN for _ in range(n_each)]
    asked_held = [c for c in HELD_OUT for _ in range(2 * n_each)]
    out, ctx = {}, {}

    def record(route, group, agreement):
        for w in WORDS:
            out[(route, f"{group}: {w}")] = agreement[w]

    # the skewed set of the lecture's bias section: 80 % thick in every class, thin dropped at random
    thick_train = torch.tensor([parse(c)[1] for c in cap_train])
    thin_keep = torch.rand(len(thick_train), generator=generator(seed, 3)) < 0.25
    skewed = keep & ((thick_train == 1) | thin_keep)
    p_train = thick_train[skewed].float().mean().item()
    ctx["skewed training set: thick fraction"] = p_train

    # --- latent diffusion: ConvAE, caption denoiser, noisy-code classifier
    dgm.config.seed_everything(seed)
    autoencoder = ConvAE(code_dim=16, channels=b["ae_channels"])
    ae_cpu = train(autoencoder, ae_loss, x_train, steps=b["ae_steps"], batch_size=128, seed=seed, warmup=200)
    with torch.no_grad():
        codes = torch.cat([autoencoder.encode(xb) for xb in x_train.split(2000)])
    code_mean, code_std = codes.mean(0), codes.std(0)
    z_train = (codes - code_mean) / code_std
    z_clip = z_train.abs().max().item()
    sched = NoiseSchedule(1000)

    def decode(z):
        with torch.no_grad():
            return autoencoder.decode(z * code_std + code_mean).clamp(0, 1)

    dgm.config.seed_everything(seed)
    denoiser = CaptionDenoiser(code_dim=16)
    den_cpu = train(denoiser, CaptionEpsLoss(sched, p_word=0.1, p_caption=0.1), (z_train[keep], tok_train[keep]),
                    steps=b["latent_steps"], batch_size=256, seed=seed, warmup=100)
    dgm.config.seed_everything(seed)
    noisy_clf = NoisyCaptionClassifier(code_dim=16)
    cls_cpu = train(noisy_clf, NoisyClassifierLoss(sched), (z_train[keep], tok_train[keep]),
                    steps=b["cls_steps"], batch_size=256, seed=seed, warmup=100)

    def text_to_image(texts, how, scale, k, net=denoiser):
        tokens = tokenize(texts)
        model = (CaptionGuided(net, tokens, scale) if how == "cfg"
                 else ClassifierGuided(net, noisy_clf, tokens, sched, scale))
        noise = torch.randn(len(texts), 16, generator=generator(seed, k))
        return decode(sample_ddim(model, noise.shape, sched, DDIM_STEPS, noise=noise, clip_x0=z_clip))

    # --- the captioner (all training digits, as the lecture)
    dgm.config.seed_everything(seed)
    captioner = Captioner()
    cap_cpu = train(captioner, captioner_loss, (x_train, tok_train), epochs=b["cap_epochs"], batch_size=64, seed=seed)
    for w, v in text_agreement(captioner.sample(x_test, greedy=True), cap_test).items():
        ctx[f"captioner on test digits: {w}"] = v
    ctx["captioner train CPU s"] = cap_cpu

    # --- the two latent routes: seen, held-out, round trip, cost
    empty = caption_agreement(text_to_image(asked, "cfg", 0.0, 0), asked, classifier=judge)
    ctx["latent, empty caption (w = 0): seen all"] = empty["all"]
    for route, how, scale, gen_cpu in ((ROUTES[0], "cfg", W_CFG, den_cpu),
                                       (ROUTES[1], "classifier", GAMMA, den_cpu + cls_cpu)):
        imgs, cpu = timed(lambda: text_to_image(asked, how, scale, 0))
        record(route, "seen", caption_agreement(imgs, asked, classifier=judge))
        record(route, "held-out", caption_agreement(text_to_image(asked_held, how, scale, 1), asked_held,
                                                    classifier=judge))
        record(route, "round trip", text_agreement(captioner.sample(imgs, greedy=True), asked))
        out[(route, "train CPU s: autoencoder")] = ae_cpu
        out[(route, "train CPU s: generator")] = gen_cpu
        out[(route, "sample CPU ms per digit")] = cpu / len(asked) * 1000

    # bias: the denoiser retrained on the skewed set (word dropout 0.3, as the lecture), partial captions
    dgm.config.seed_everything(seed)
    skewed_net = CaptionDenoiser(code_dim=16)
    train(skewed_net, CaptionEpsLoss(sched, p_word=0.3, p_caption=0.1), (z_train[skewed], tok_train[skewed]),
          steps=b["side_steps"], batch_size=256, seed=seed, warmup=100)
    partial = [f"a {DIGIT_NAMES[d]}" for d in range(10) for _ in range(2 * n_each)]
    for w in (1.0, W_CFG):
        p = thick_fraction(text_to_image(partial, "cfg", w, 4, net=skewed_net))
        if w == W_CFG:
            out[(ROUTES[0], "bias: generated thick fraction")] = p
            out[(ROUTES[0], "bias: amplification factor")] = p / p_train
        else:
            ctx[f"bias, latent 'a <digit>' w = {w:g}: factor"] = p / p_train

    # --- the token transformer: VQ-VAE, transformer on [caption ; codes]
    dgm.config.seed_everything(seed)
    vqvae = VQVAE(num_embeddings=64, embedding_dim=16, hidden=16, downsample=2)
    vq_cpu = train(vqvae, vqvae_loss, x_train, steps=b["vq_steps"], batch_size=128, seed=seed, warmup=200)
    with torch.no_grad():
        grids = torch.cat([vqvae(xb)[2] for xb in x_train.split(500)])
    # a collapsed codebook (one code for everything: blank decodes) sinks the whole route; shown per seed
    ctx["VQ-VAE codes in use on the training digits (of 64)"] = vqvae.codebook_usage(grids)[0] * 64

    def new_transformer():
        dgm.config.seed_everything(seed)
        return TokenTransformer(num_codes=64, grid=tuple(grids.shape[1:]), dim=b["dalle_width"], layers=2)

    dalle = new_transformer()
    dalle_cpu = train(dalle, token_loss, (tok_train[keep], grids[keep]), steps=b["dalle_steps"], batch_size=64,
                      seed=seed, warmup=100)

    def dalle_images(model, texts, k, temperature=TEMPERATURE):
        tokens = None if texts is None else tokenize(texts)
        n = len(texts) if texts is not None else 10 * 2 * n_each
        tok, codes_k = model.sample(n, tokens, temperature=temperature, generator=generator(seed, k))
        with torch.no_grad():
            return tok, vqvae.decode_indices(codes_k).clamp(0, 1)

    route = ROUTES[2]
    (_, imgs), cpu = timed(lambda: dalle_images(dalle, asked, 0))
    record(route, "seen", caption_agreement(imgs, asked, classifier=judge))
    record(route, "held-out", caption_agreement(dalle_images(dalle, asked_held, 1)[1], asked_held,
                                                classifier=judge))
    record(route, "round trip", text_agreement(captioner.sample(imgs, greedy=True), asked))
    out[(route, "train CPU s: autoencoder")] = vq_cpu
    out[(route, "train CPU s: generator")] = dalle_cpu
    out[(route, "sample CPU ms per digit")] = cpu / len(asked) * 1000

    # bias: the transformer retrained on the skewed set, sampled from <bos> (no caption asked for)
    skewed_dalle = new_transformer()
    train(skewed_dalle, token_loss, (tok_train[skewed], grids[skewed]), steps=b["side_steps"],
          batch_size=64, seed=seed, warmup=100)
    for temperature in (TEMPERATURE, 1.0):
        tok, imgs = dalle_images(skewed_dalle, None, 8, temperature)
        p = thick_fraction(imgs)
        words = [parse(t)[1] for t in detokenize(tok) if t in ALL_CAPTIONS]
        p_cap = sum(words) / max(len(words), 1)
        if temperature == TEMPERATURE:
            out[(route, "bias: generated thick fraction")] = p
            out[(route, "bias: amplification factor")] = p / p_train
            ctx[f"bias, transformer from <bos> T = {temperature:g}: its captions' thick / training"] = p_cap / p_train
        else:
            ctx[f"bias, transformer from <bos> T = {temperature:g}: factor (images)"] = p / p_train
            ctx[f"bias, transformer from <bos> T = {temperature:g}: its captions' thick / training"] = p_cap / p_train
    return out, ctx


def mean_std(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def cell(values, digits):
    if not values:
        return "-"
    m, s = mean_std(values)
    return f"{m:.{digits}f} +- {s:.{digits}f}"


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    say = lambda *a: print(*a, flush=True)  # noqa: E731
    mode = "FAST" if args.fast else "default"
    wall0, cpu0 = time.perf_counter(), time.process_time()
    say(f"# Chapter 7 benchmark: text -> image, latent diffusion vs token transformer ({mode}, seeds {args.seeds})")
    say(f"# {dgm.config.describe()}; everything on the CPU")
    say("# budgets: " + ", ".join(f"{k}={v}" for k, v in args.budget.items())
        + " (side_steps: both models retrained on the skewed set)")
    x_train, y_train = dgm.data.mnist("train")
    x_test, y_test = dgm.data.mnist("test")
    cap_train, cap_test = captions(x_train, y_train), captions(x_test, y_test)
    data = (x_train, cap_train, tokenize(cap_train), x_test, cap_test)
    n_each = args.budget["n_each"]
    say(f"# data: {dgm.data.mnist_description()}; {sum(c in HELD_OUT for c in cap_train)} training digits "
        f"with the held-out captions {HELD_OUT} removed from the conditional models' data")
    say(f"# seen: {len(SEEN)} captions x {n_each}; held-out: {len(HELD_OUT)} x {2 * n_each}; "
        f"DDIM {DDIM_STEPS} steps; bias: 10 digits x {2 * n_each} generations")
    judge = mnist_classifier(device=CPU)

    table, context = {}, {}
    for seed in args.seeds:
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        out, ctx = run_seed(args, seed, data, judge)
        for k, v in out.items():
            table.setdefault(k, []).append(v)
        for k, v in ctx.items():
            context.setdefault(k, []).append(v)
        say(f"# seed {seed}: {time.perf_counter() - start_wall:.0f} s wall, {time.process_time() - start_cpu:.0f} "
            "CPU s; seen 'all' (w = 3 / gamma = 4 / transformer) "
            + " / ".join(f"{out[(r, 'seen: all')]:.2f}" for r in ROUTES)
            + "; bias factor (w = 3 / transformer) "
            + " / ".join(f"{out[(r, 'bias: amplification factor')]:.2f}" for r in (ROUTES[0], ROUTES[2]))
            + f"; VQ-VAE codes in use {ctx['VQ-VAE codes in use on the training digits (of 64)']:.0f}/64")

    order = lambda q: 2 if "CPU" in q else (1 if q.startswith("bias") else 0)  # noqa: E731
    quantities = sorted(dict.fromkeys(q for _, q in table), key=order)   # stable: agreement, bias, cost
    width = 31
    say(f"\nmean +- std over {len(args.seeds)} seeds (fractions; times in CPU s / ms)")
    say(f"  {'':<34}" + "".join(f"{r:>{width}}" for r in ROUTES))
    for q in quantities:
        digits = 1 if ("CPU" in q) else (2 if "factor" in q else 3)
        say(f"  {q:<34}" + "".join(f"{cell(table.get((r, q), []), digits):>{width}}" for r in ROUTES))

    ceiling = caption_agreement(x_test, cap_test, classifier=judge)
    say("\nceilings and context")
    say(f"  {'real test digits vs their captions':<70}"
        + ", ".join(f"{w} {ceiling[w]:.3f}" for w in WORDS))
    for k, values in context.items():
        digits = 1 if ("CPU" in k or "codes" in k) else 3
        say(f"  {k:<70}{cell(values, digits)}")
    say(f"\n# total {time.perf_counter() - wall0:.0f} s wall, {time.process_time() - cpu0:.0f} CPU s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
