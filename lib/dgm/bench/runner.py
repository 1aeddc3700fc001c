"""The bench: train every family for the same CPU-time budget on the same data, then measure each
on the same held-out digits with the same metrics (``dgm.metrics``).

One row per family (:func:`evaluate`), keys:

* ``bpd``: -log2 P(x) / D on the binarized test digits, Eq. (8.6) (``bpd_kind``: ``"exact"`` or
  ``"bound"``; None for a family without a likelihood);
* ``fid``, ``kid``, ``precision``, ``recall``: classifier-FID (M.1), KID, and k-NN precision /
  recall (k = 3) of n samples against n training digits (:func:`dgm.metrics.sample_quality`);
* ``memorisation``: median distance to the nearest training digit over median distance to the
  nearest held-out digit (:func:`dgm.metrics.memorisation`), with as many training digits as
  held-out ones so that a model that generalises scores about 1 (the real digits do);
* ``sharpness``: mean of Eq. (8.5) over the samples;
* ``train_s``, ``steps``: the training CPU time and the steps it bought; ``ms_per_sample``: wall
  time of drawing the n samples, per sample; ``params``: parameter count.

The test split is cut in two halves (seeded): the *floor* digits, scored like a model (the real-
data row, what a perfect model scores at this n), and the *held-out* digits that the memorisation
ratio compares with.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from dgm._checks import positive_int, positive_number
from dgm.bench.families import Family, binarize, make_family
from dgm.classifier import mnist_classifier
from dgm.metrics import memorisation, sample_quality, sharpness

__all__ = ["BenchData", "BenchResult", "evaluate", "measure", "run", "train"]

ROW_KEYS = ("bpd", "bpd_kind", "fid", "kid", "precision", "recall", "memorisation", "sharpness", "train_s",
            "steps", "ms_per_sample", "params")


@dataclass
class BenchData:
    """The bench's binarized digits: ``x_train`` (what every family trains on), ``x_test`` (the
    likelihood's test digits), ``x_floor`` / ``x_heldout`` (the two halves of the test split, the
    floor's labels ``y_floor``) and ``x_train_ref`` (as many training digits as held-out ones, for
    the memorisation ratio)."""

    x_train: torch.Tensor
    x_test: torch.Tensor
    x_floor: torch.Tensor
    x_heldout: torch.Tensor
    x_train_ref: torch.Tensor
    y_floor: torch.Tensor

    @classmethod
    def mnist(cls, seed: int = 0) -> "BenchData":
        import dgm.data

        x_train = binarize(dgm.data.mnist("train")[0])
        x_test, y_test = dgm.data.mnist("test")
        x_test = binarize(x_test)
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(x_test), generator=gen)
        half = len(x_test) // 2
        floor, heldout = x_test[order[:half]], x_test[order[half:]]
        ref = x_train[torch.randperm(len(x_train), generator=gen)[:len(heldout)]]
        return cls(x_train, x_test, floor, heldout, ref, y_test[order[:half]])


@dataclass
class BenchResult:
    """What :func:`run` returns: a row, the samples and the trained model per family (by name:
    ``rows``, ``samples``, ``models``), the real-data row
    (``floor``) and its n real digits (``real``), the quality curve of each family (``[(train
    seconds, steps, fid), ...]``, the floor's FID at that sample size in ``floor_curve``) and the
    settings."""

    rows: dict = field(default_factory=dict)
    samples: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)
    floor: dict = field(default_factory=dict)
    real: torch.Tensor | None = None
    floor_curve: float | None = None
    curves: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


def train(family: Family, budget_s: float, checkpoints=(), on_checkpoint=None) -> dict:
    """Take ``family.step`` until ``budget_s`` seconds of CPU time (``time.process_time``: this
    process, all its threads) have gone into its steps. CPU time, not wall time, so that a busy
    machine buys every family the same steps; with one thread on an idle machine the two agree.

    ``checkpoints``: fractions of the budget at which ``on_checkpoint(seconds, steps)`` is called
    (its own time is not counted). Returns ``{"train_s": ..., "steps": ...}``.
    """
    budget_s = positive_number(budget_s, "budget_s")
    marks = sorted(float(c) for c in checkpoints)
    if any(not 0 < c <= 1 for c in marks):
        raise ValueError(f"checkpoints must be fractions of the budget in (0, 1], got {checkpoints!r}")
    family.train()
    seconds, steps = 0.0, 0
    while seconds < budget_s:
        start = time.process_time()
        family.step(seconds / budget_s)
        seconds += time.process_time() - start
        steps += 1
        while marks and seconds >= marks[0] * budget_s:
            marks.pop(0)
            if on_checkpoint is not None:
                on_checkpoint(seconds, steps)
                family.train()
    family.eval()
    return {"train_s": seconds, "steps": steps}


def measure(images: torch.Tensor, data: BenchData, judge=None, seed: int = 0) -> dict:
    """The sample columns of a row for n images ``(n, 1, 28, 28)`` in [0, 1]."""
    judge = mnist_classifier(device="cpu") if judge is None else judge
    q = sample_quality(images, data.x_train, classifier=judge, seed=seed)
    mem = memorisation(images, data.x_train_ref, data.x_heldout)
    return dict(fid=q["fid"], kid=q["kid"], precision=q["precision"], recall=q["recall"],
                memorisation=mem["ratio"], sharpness=sharpness(images).mean().item())


def evaluate(family: Family, data: BenchData, n: int, judge=None, seed: int = 0,
             n_test: int | None = None) -> tuple[dict, torch.Tensor]:
    """A trained family's row (without ``train_s``/``steps``) and its n samples; bits/dim on the
    first ``n_test`` test digits (default all)."""
    n = positive_int(n, "n")
    x_test = data.x_test if n_test is None else data.x_test[:positive_int(n_test, "n_test")]
    family.eval()
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    with torch.no_grad():
        samples = family.sample(n, generator=gen).cpu()
    ms = 1000 * (time.perf_counter() - start) / n
    row = dict(measure(samples, data, judge, seed), ms_per_sample=ms, params=family.parameters(),
               bpd_kind=family.likelihood, bpd=None)
    if family.likelihood is not None:
        with torch.no_grad():
            nll = family.nll(x_test)
        row["bpd"] = nll.mean().item() / (x_test[0].numel() * math.log(2))
    return row, samples


def run(families=None, budget_s: float = 20.0, n: int = 100, seed: int = 0, checkpoints=(), n_curve: int | None = None,
        data: BenchData | None = None, judge=None, options: dict | None = None, log=print,
        n_test: int | None = None) -> BenchResult:
    """Train and measure every family in ``families`` (keys of :data:`dgm.bench.FAMILIES`, default
    all) for ``budget_s`` seconds each, with ``n`` samples and bits/dim on ``n_test`` test digits
    (default all); at each of ``checkpoints`` (fractions of the budget) the classifier-FID of
    ``n_curve`` samples (default n) goes into ``result.curves``.
    ``options``: per key, the family's constructor arguments. ``log``: a print-like function or None.
    """
    from dgm.bench.families import FAMILIES

    families = list(FAMILIES) if families is None else list(families)
    n = positive_int(n, "n")
    n_curve = n if n_curve is None else positive_int(n_curve, "n_curve")
    if n_curve > n:
        raise ValueError(f"n_curve must be at most n ({n}), got {n_curve}")
    data = BenchData.mnist(seed) if data is None else data
    if n > len(data.x_floor):
        raise ValueError(f"n must be at most the {len(data.x_floor)} floor digits, got {n}")
    judge = mnist_classifier(device="cpu") if judge is None else judge
    options = options or {}
    result = BenchResult(settings=dict(budget_s=budget_s, n=n, seed=seed, checkpoints=tuple(checkpoints),
                                       n_curve=n_curve, n_test=n_test))
    floor_images = data.x_floor[:n]
    result.floor = dict(measure(floor_images, data, judge, seed), bpd=None, bpd_kind=None, train_s=None,
                        steps=None, ms_per_sample=None, params=None)
    result.real = floor_images
    result.floor_curve = (result.floor["fid"] if n_curve == n
                          else measure(floor_images[:n_curve], data, judge, seed)["fid"])
    for key in families:
        family = make_family(key, **options.get(key, {}))
        family.setup(data.x_train, seed)
        curve = []

        def checkpoint(seconds, steps, family=family, curve=curve):
            if seconds < budget_s:  # the end of training is measured below, on the final samples
                with torch.no_grad():
                    images = family.eval().sample(n_curve, torch.Generator().manual_seed(seed)).cpu()
                curve.append((seconds, steps, measure(images, data, judge, seed)["fid"]))

        cost = train(family, budget_s, checkpoints, checkpoint)
        row, samples = evaluate(family, data, n, judge, seed, n_test)
        row.update(cost)
        if checkpoints:
            final = row["fid"] if n_curve == n else measure(samples[:n_curve], data, judge, seed)["fid"]
            curve.append((cost["train_s"], cost["steps"], final))
        result.rows[family.name] = row
        result.samples[family.name] = samples
        result.models[family.name] = family
        result.curves[family.name] = curve
        if log is not None:
            bpd = "-" if row["bpd"] is None else f"{row['bpd']:.3f}"
            log(f"{family.name}: {cost['steps']} steps in {cost['train_s']:.0f} s; bits/dim {bpd}, "
                f"FID {row['fid']:.0f}, P/R {row['precision']:.2f}/{row['recall']:.2f}")
    return result
