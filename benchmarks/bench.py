"""Chapter 8 benchmark: every family of the course on one bench, over seeds (issue 17).

How to run it (from the repository root)::

    make bench                                               # the default below (~10 min per seed
                                                             # on a busy 2-core CPU; ~30 min in all)
    make bench FAST=1                                        # the FAST setting (~2.5 min)
    .venv/bin/python benchmarks/bench.py                     # budget 60 s per family, seeds 0 1 2,
                                                             # n 200, n-curve 50
    .venv/bin/python benchmarks/bench.py --fast              # also DGM_FAST=1: budget 5 s, n 40,
                                                             # n-curve 20, checkpoints 0.5 1, seeds 0 1
    .venv/bin/python benchmarks/bench.py --budget 120 --seeds 0 1 2 3 4
    .venv/bin/python benchmarks/bench.py --families vae gan pixelcnn --out /tmp/bench
    .venv/bin/python benchmarks/bench.py --checkpoints 0.1 0.25 0.5 1   # points of the curves

For every seed, :func:`dgm.bench.run` trains each family of :data:`dgm.bench.FAMILIES` (VAE with
its importance-weighted bound, DCGAN, Glow-MLP flow, gated PixelCNN, pixel diffusion U-Net, latent
diffusion; each from its chapter's library model and recipe) for the same **CPU-time budget**
(``--budget`` seconds of training steps) on the same binarized MNIST training digits, then draws
``--n`` samples and measures them with the same metrics (``dgm.metrics``, the course's MNIST
classifier as the judge):

* **bits/dim**, Eq. (8.6), on the binarized test digits: exact (PixelCNN), an upper bound (VAE's
  importance-weighted bound; the flow's dequantized density), none (GAN, diffusion);
* **FID** (M.1), **KID**, **precision** / **recall** (k = 3) of the n samples against n training
  digits, on the classifier's 64 features (comparable within the course, not with papers);
* **train/held-out**: median nearest-train over median nearest-held-out pixel distance of the
  samples (about 1 for a model that generalises, below 1 for a memoriser);
* **sharpness**, Eq. (8.5); **train s** and **steps** (what the budget bought); **ms/sample**
  (wall time of drawing the n samples, per sample).

The real-data floor row is n real test digits scored like a model (what a perfect model scores
at this n). At each ``--checkpoints`` fraction of the budget the FID of ``--n-curve`` samples is
measured (its time is not charged to the budget): the quality-vs-training-time curves. The decks'
qualitative claims (:func:`dgm.bench.claims`) are decided for every seed and printed with
holds/fails.

Output (``--out``, default ``bench-output/``, gitignored): ``bench.csv`` (one row per seed and
family, the floor included), ``curves.csv`` (one row per seed, family and checkpoint, the floor's
FID at n-curve included), ``claims.csv`` (one row per seed and claim), ``bench.png`` (FID vs
training seconds per family, mean +- sd band over seeds, the floor at n-curve dashed; precision
vs recall beside it) and ``samples.png`` (the first seed's samples). The CSVs are rewritten after
every seed, so an interrupted run keeps the finished seeds.

**The bench runs on the CPU only, by design (there is no ``--gpu``)**: the decks' table is about
what one budget buys each family, and the course's reference machine is a 2-core CPU; on a GPU the
families' step costs change by very different factors (the PixelCNN's 784 sequential passes per
sample least), so a GPU table is a different table. One torch thread by default (``--threads``):
on a busy machine more threads make the timings erratic. The budget counts the process's CPU
seconds (``dgm.bench.train``), so a busy machine buys every family the same steps; what a budget
buys still depends on the machine's speed: the script prints ``uptime``'s load before and after,
and the wall and CPU time of every seed. Every run is seeded (weights, batches,
the floor/held-out split and the sampling noise from the seed).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from pathlib import Path

import torch

import dgm.bench
import dgm.config
import dgm.data
from dgm.bench.runner import ROW_KEYS
from dgm.bench.table import cell
from dgm.classifier import mnist_classifier

ROOT = Path(__file__).resolve().parents[1]
FLOOR = "real digits (floor)"
DEFAULTS = dict(budget=60.0, seeds=[0, 1, 2], n=200, n_curve=50, checkpoints=[0.25, 0.5, 0.75, 1.0])
FAST = dict(budget=5.0, seeds=[0, 1], n=40, n_curve=20, checkpoints=[0.5, 1.0])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fast", action="store_true",
                   help="budget 5 s, n 40, n-curve 20, checkpoints 0.5 1, seeds 0 1 unless given "
                        "(also DGM_FAST=1)")
    p.add_argument("--budget", type=float, default=None, help="CPU seconds of training per family (default 60)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1 2)")
    p.add_argument("--n", type=int, default=None, help="samples per family, and real digits of the floor (default 200)")
    p.add_argument("--n-curve", type=int, default=None, help="samples per point of the curves (default 50)")
    p.add_argument("--checkpoints", type=float, nargs="+", default=None,
                   help="fractions of the budget at which the curves are measured (default 0.25 0.5 0.75 1; "
                        "FAST: 0.5 1)")
    keys = list(dgm.bench.FAMILIES)
    p.add_argument("--families", nargs="+", choices=keys, default=keys, metavar="FAMILY",
                   help=f"a subset of: {' '.join(keys)} (default: all)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--out", type=Path, default=ROOT / "bench-output",
                   help="folder for the CSVs and PNGs (default bench-output/)")
    args = p.parse_args(argv)
    args.fast = args.fast or dgm.config.is_fast()
    for key, value in (FAST if args.fast else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if not (math.isfinite(args.budget) and args.budget > 0):
        p.error("--budget must be a positive number of seconds")
    if args.threads < 1:
        p.error("--threads must be >= 1")
    floor_digits = len(dgm.data.mnist("test")[0]) // 2
    if not 10 <= args.n <= floor_digits:
        p.error(f"--n must lie between 10 and the {floor_digits} floor digits (half the test split)")
    if not 10 <= args.n_curve <= args.n:
        p.error(f"--n-curve must lie between 10 and --n ({args.n})")
    if any(not 0 < c <= 1 for c in args.checkpoints):
        p.error("--checkpoints must be fractions of the budget in (0, 1]")
    if len(set(args.seeds)) != len(args.seeds):
        p.error("--seeds must be distinct")
    args.families = [k for k in keys if k in args.families]  # the bench's order
    args.checkpoints = sorted(set(args.checkpoints))
    return args


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


# ----------------------------------------------------------------------------- output files
def write_csv(path: Path, header: list, rows: list) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    tmp.replace(path)


def write_results(out: Path, runs: dict, claims: dict, args) -> None:
    """bench.csv, curves.csv and claims.csv from every finished seed (``runs``: seed -> BenchResult)."""
    settings = [args.budget, args.n]
    rows = []
    for seed, res in runs.items():
        for name, row in list(res.rows.items()) + [(FLOOR, res.floor)]:
            rows.append([seed, name] + settings + ["" if row[k] is None else row[k] for k in ROW_KEYS])
    write_csv(out / "bench.csv", ["seed", "family", "budget_s", "n"] + list(ROW_KEYS), rows)
    rows = []
    for seed, res in runs.items():
        for name, curve in res.curves.items():
            marks = [f"{c:g}" for c in args.checkpoints[:len(curve) - 1]] + ["end"]
            rows += [[seed, name, mark, s, steps, fid, args.n_curve] for mark, (s, steps, fid) in zip(marks, curve)]
        rows.append([seed, FLOOR, "", "", "", res.floor_curve, args.n_curve])
    write_csv(out / "curves.csv", ["seed", "family", "checkpoint", "train_s", "steps", "fid", "n_curve"], rows)
    rows = [[seed, fam, claim, int(holds)] for seed, found in claims.items() for fam, claim, holds in found]
    write_csv(out / "claims.csv", ["seed", "family", "claim", "holds"], rows)


def _mean_sd(values: list) -> tuple[float, float]:
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, sd


def aligned(curves: list) -> list[tuple[list, list]]:
    """One family's curves over seeds, point by point: ``[(seconds over seeds, fids over seeds)]``.

    A curve is the checkpoints reached before the budget ran out, in order, then the end of
    training; a step that overshoots the budget skips the last checkpoints in that seed, so the
    j-th point is averaged over the seeds that reached it and the end over all of them.
    """
    points = []
    for j in range(max(len(c) for c in curves) - 1):
        have = [c[j] for c in curves if j < len(c) - 1]
        points.append(([p[0] for p in have], [p[2] for p in have]))
    points.append(([c[-1][0] for c in curves], [c[-1][2] for c in curves]))
    return points


def plot(out: Path, runs: dict, args) -> Path:
    """bench.png: FID vs training seconds (mean +- sd over seeds), and precision vs recall."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, (ax, ax_pr) = plt.subplots(1, 2, figsize=(12, 5.2), gridspec_kw=dict(width_ratios=[1.5, 1]))
    names = list(next(iter(runs.values())).rows)
    colors = plt.get_cmap("tab10")
    for i, name in enumerate(names):
        curves = [res.curves[name] for res in runs.values()]
        if not all(curves):  # run without checkpoints
            continue
        points = aligned(curves)
        x = [_mean_sd(secs)[0] for secs, _ in points]
        stats = [_mean_sd(fids) for _, fids in points]
        m = [s[0] for s in stats]
        lo = [max(s[0] - s[1], 1e-3) for s in stats]
        hi = [s[0] + s[1] for s in stats]
        ax.plot(x, m, "o-", color=colors(i), label=name)
        ax.fill_between(x, lo, hi, color=colors(i), alpha=0.2)
    floor_m, floor_sd = _mean_sd([res.floor_curve for res in runs.values()])
    ax.axhline(floor_m, color="k", ls="--", label=f"real digits (floor), n = {args.n_curve}")
    ax.set_xlabel("training seconds (CPU time)")
    ax.set_ylabel(f"classifier-FID of {args.n_curve} samples")
    ax.set_yscale("log")
    ax.set_title(f"FID vs training time, mean +- sd over seeds {args.seeds}")
    for i, name in enumerate(names + [FLOOR]):
        rows = [res.floor if name == FLOOR else res.rows[name] for res in runs.values()]
        (p, p_sd), (r, r_sd) = _mean_sd([x["precision"] for x in rows]), _mean_sd([x["recall"] for x in rows])
        style = dict(color="k", marker="*", ms=12) if name == FLOOR else dict(color=colors(i), marker="o")
        ax_pr.errorbar(r, p, xerr=r_sd, yerr=p_sd, ls="none", **style)
    ax_pr.set_xlim(-0.02, 1.02)
    ax_pr.set_ylim(-0.02, 1.02)
    ax_pr.set_xlabel("recall (k = 3)")
    ax_pr.set_ylabel("precision (k = 3)")
    ax_pr.set_title(f"precision / recall, n = {args.n}")
    handles, labels = ax.get_legend_handles_labels()  # one legend for both panels, below them
    handles.append(Line2D([], [], color="k", marker="*", ms=10, ls="none"))
    labels.append(f"real digits (floor), n = {args.n}")
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(f"every family at {args.budget:g} s of CPU training on binarized MNIST", fontsize=10)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    path = out / "bench.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_samples(out: Path, res, per_row: int = 16) -> Path:
    """samples.png: the first 16 samples of each family and real digits, one row each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(res.samples.items()) + [(FLOOR, res.real)]
    fig, axes = plt.subplots(len(sets), 1, figsize=(per_row * 0.5, len(sets) * 0.75))
    for ax, (name, images) in zip(axes if len(sets) > 1 else [axes], sets):
        images = images[:per_row, 0]
        strip = torch.cat(list(images), dim=1) if len(images) else torch.zeros(28, 28)
        ax.imshow(strip.numpy(), cmap="gray_r", vmin=0, vmax=1)
        ax.set_axis_off()
        ax.set_title(name, fontsize=8, loc="left")
    fig.tight_layout()
    path = out / "samples.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    args.out.mkdir(parents=True, exist_ok=True)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    load_before = load_average()
    print(f"# Every family on one bench ({'FAST' if args.fast else 'default'} setting): budget {args.budget:g} s "
          f"of training per family, n = {args.n} samples, curves at {args.checkpoints} of the budget with "
          f"n = {args.n_curve}, seeds {args.seeds}", flush=True)
    print(f"# families: {' '.join(args.families)}; CPU only, {torch.get_num_threads()} torch thread(s), "
          f"torch {torch.__version__}; load average (1, 5, 15 min) at start: {load_before}")
    print(f"# data: {dgm.data.mnist_description()}; binarized at 0.5")
    judge = mnist_classifier(device="cpu")
    print(f"# judge: dgm.classifier (test accuracy {judge.test_accuracy:.3f}); FID, KID, precision/recall "
          "(k = 3) against n training digits (dgm.metrics.sample_quality)", flush=True)

    runs: dict = {}
    claims: dict = {}
    all_families = set(args.families) == set(dgm.bench.FAMILIES)
    for seed in args.seeds:
        t0, c0 = time.perf_counter(), time.process_time()

        def log(line, seed=seed):
            print(f"#   seed {seed}: {line}", flush=True)

        res = dgm.bench.run(args.families, budget_s=args.budget, n=args.n, seed=seed,
                            checkpoints=args.checkpoints, n_curve=args.n_curve, judge=judge, log=log)
        runs[seed] = res
        if all_families:
            claims[seed] = dgm.bench.claims(res.rows, res.floor)
            for family, claim, holds in claims[seed]:
                print(f"#   seed {seed}: {'holds' if holds else 'FAILS'}  {family}: {claim}")
        write_results(args.out, runs, claims, args)
        if seed == args.seeds[0]:
            plot_samples(args.out, res)
        print(f"#   (seed {seed}: {time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU; "
              f"load average {load_average()})", flush=True)

    names = list(runs[args.seeds[0]].rows)
    rows = {name: {k: [runs[s].rows[name][k] for s in args.seeds] for k in ROW_KEYS} for name in names}
    floor = {k: [runs[s].floor[k] for s in args.seeds] for k in ROW_KEYS}
    print()
    print(dgm.bench.table_text(rows, floor))
    print()
    print(f"mean +- standard deviation over seeds {args.seeds} (one value: a single seed); budget {args.budget:g} s "
          f"of CPU time of training per family, n = {args.n} samples; the floor: n real test digits scored like a "
          "model")
    print("bits/dim on binarized test digits: PixelCNN exact, VAE and flow upper bounds, GAN and diffusion none; "
          "train/held-out: median nearest-train / nearest-held-out pixel distance (about 1: no memorisation)")
    floor_curve = [runs[s].floor_curve for s in args.seeds]
    print(f"curves (FID of {args.n_curve} samples at {args.checkpoints} of the budget; floor at that n: "
          f"{cell(floor_curve, '.1f')}):")
    for name in names:
        curves = [runs[s].curves[name] for s in args.seeds]
        if not all(curves):
            continue
        points = [f"{_mean_sd(secs)[0]:.0f} s: {cell(fids, '.1f')}" + ("" if len(fids) == len(curves) else
                                                                       f" ({len(fids)} seeds)")
                  for secs, fids in aligned(curves)]
        print(f"  {name:<28} " + "; ".join(points))
    if all_families:
        print()
        print("The decks' claims, checked against the measured rows (holds in k of the seeds):")
        first = claims[args.seeds[0]]
        for i, (family, claim, _) in enumerate(first):
            held = [claims[s][i][2] for s in args.seeds]
            marks = " ".join("holds" if h else "FAILS" for h in held)
            print(f"  {sum(held)}/{len(held)}  {family}: {claim}  [{marks}]")
        print("The decks' table, for comparison:")
        for family, words in dgm.bench.DECK.items():
            print(f"  {family:<28} {words}")
    else:
        print("(the claims need every family: run without --families to check them)")
    png = plot(args.out, runs, args)
    print()
    print(f"(total {time.perf_counter() - wall0:.0f} s wall, {time.process_time() - cpu0:.0f} s CPU; load average "
          f"at start {load_before}, at end {load_average()})")
    print(f"(files: {args.out / 'bench.csv'}, {args.out / 'curves.csv'}, {args.out / 'claims.csv'}, {png}, "
          f"{args.out / 'samples.png'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
