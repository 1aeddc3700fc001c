"""Tests for dgm.bench.runner and dgm.bench.table: the wall-clock budget and its checkpoints (a
family whose steps take a known time), the rows' units against hand conversions, memorisation of
copies against held-out digits, a whole small bench, and the decks' claims each decided by the
number it reads."""

from __future__ import annotations

import math
import statistics
import time

import pytest
import torch

from dgm.bench import BenchData, Family, binarize, evaluate, measure, run, train
from dgm.bench.runner import ROW_KEYS
from dgm.bench.table import cell, claims, table_html, table_text


class Sleeper(Family):
    """A family whose every step takes 10 ms of CPU time and whose samples are fixed images."""

    name, likelihood = "sleeper", "exact"

    def __init__(self, images=None, nll_value=100.0):
        self.images, self.nll_value, self.progress = images, nll_value, []

    def build(self):
        pass

    def modules(self):
        return [torch.nn.Linear(2, 3)]

    def step(self, progress):
        self.progress.append(progress)
        end = time.process_time() + 0.01
        while time.process_time() < end:  # busy: the budget counts CPU time, not sleep
            pass
        return 0.0

    def sample(self, n, generator=None):
        return self.images[:n]

    def nll(self, x):
        return torch.full((len(x),), self.nll_value)


@pytest.fixture(scope="module")
def data():
    return BenchData.mnist(seed=0)


def test_bench_data_splits_the_binarized_test_digits_in_two(data):
    assert set(data.x_train.unique().tolist()) == {0.0, 1.0}
    assert len(data.x_floor) + len(data.x_heldout) == len(data.x_test)
    assert len(data.x_train_ref) == len(data.x_heldout)
    flat = lambda x: {tuple(v) for v in x.flatten(1).to(torch.uint8).tolist()}  # noqa: E731
    assert len(flat(data.x_floor) & flat(data.x_heldout)) < 5  # only accidental duplicates


def test_train_spends_the_budget_and_stops_at_checkpoints(data):
    family = Sleeper()
    family.setup(data.x_train, 0)
    seen = []
    cost = train(family, 0.2, checkpoints=(0.5, 1.0), on_checkpoint=lambda s, k: seen.append((s, k)))
    assert 0.2 <= cost["train_s"] < 0.2 + 0.05  # stops after the step that crosses the budget
    assert 14 <= cost["steps"] <= 21  # 10 ms of CPU a step (the loop spins at least that)
    assert [k for _, k in seen][-1] == cost["steps"] and len(seen) == 2
    assert 0.1 <= seen[0][0] < 0.2
    assert family.progress[0] == 0.0 and all(0 <= p < 1 for p in family.progress)
    assert family.progress == sorted(family.progress)
    with pytest.raises(ValueError, match="checkpoints must be fractions"):
        train(family, 0.1, checkpoints=(1.5,))
    with pytest.raises(ValueError, match="budget_s"):
        train(family, -1.0)


def test_setup_refuses_grey_or_misshapen_images(data):
    with pytest.raises(ValueError, match="x_train must hold binary pixels"):
        Sleeper().setup(data.x_train * 0.5, 0)
    with pytest.raises(ValueError, match="x_train must be binary images"):
        Sleeper().setup(data.x_train[:, 0], 0)


def test_rows_convert_nats_to_bits_per_dim_and_copies_are_memorised(data):
    family = Sleeper(images=data.x_train_ref[:50], nll_value=784 * math.log(2) / 4)
    family.setup(data.x_train, 0)
    row, samples = evaluate(family, data, 50)
    assert row["bpd"] == pytest.approx(0.25) and row["bpd_kind"] == "exact"
    assert row["memorisation"] < 1e-6  # copies of the memorisation's training digits
    assert set(row) == set(ROW_KEYS) - {"train_s", "steps"}
    held_out = measure(data.x_heldout[:50], data)
    assert held_out["memorisation"] == math.inf  # they are the held-out set itself: distance 0
    fresh = measure(data.x_floor[:200], data)  # real digits neither model saw
    assert 0.8 < fresh["memorisation"] < 1.25
    assert fresh["fid"] < row["fid"] * 10 and fresh["precision"] > 0.5


def test_a_small_bench_has_every_column_and_curve(data):
    lines = []
    result = run(["vae", "gan"], budget_s=1.0, n=20, checkpoints=(0.5, 1.0), n_curve=10, data=data,
                 log=lines.append)
    assert list(result.rows) == ["VAE", "GAN (DCGAN)"] and len(lines) == 2
    for name, row in result.rows.items():
        assert set(row) == set(ROW_KEYS)
        assert row["steps"] > 0 and row["train_s"] >= 1.0
        assert result.samples[name].shape == (20, 1, 28, 28)
        assert [steps for _, steps, _ in result.curves[name]][-1] == row["steps"]
        # one point per checkpoint crossed before the end (a slow first step may cross 0.5 and 1 at once)
        assert 1 <= len(result.curves[name]) <= 2
        assert all(s < 1.0 for s, _, _ in result.curves[name][:-1])
    assert result.rows["GAN (DCGAN)"]["bpd"] is None and result.rows["VAE"]["bpd"] > 0
    assert result.floor["bpd"] is None and result.real.shape == (20, 1, 28, 28)
    assert result.floor_curve > result.floor["fid"]  # FID is biased upwards at the smaller n
    with pytest.raises(ValueError, match="n_curve must be at most n"):
        run(["vae"], budget_s=0.1, n=5, n_curve=6, data=data)
    with pytest.raises(ValueError, match="key must be one of"):
        run(["vea"], budget_s=0.1, n=5, data=data)
    assert binarize(torch.tensor([0.5, 0.51])).tolist() == [0.0, 1.0]


def _rows(changes=None):
    """Rows shaped like the decks' table: every claim of dgm.bench.claims holds."""
    base = dict(bpd=None, bpd_kind=None, fid=50.0, kid=1.0, precision=0.8, recall=0.6, memorisation=1.0,
                sharpness=0.6, train_s=20.0, steps=100, ms_per_sample=0.5, params=1000)
    rows = {
        "VAE": dict(base, bpd=0.20, bpd_kind="bound", sharpness=0.2, ms_per_sample=0.3),
        "GAN (DCGAN)": dict(base, sharpness=1.2, ms_per_sample=0.5),
        "flow (Glow-MLP)": dict(base, bpd=0.25, bpd_kind="bound"),
        "autoregressive (PixelCNN)": dict(base, bpd=0.15, bpd_kind="exact", ms_per_sample=400.0),
        "diffusion (pixel U-Net)": dict(base, ms_per_sample=30.0),
        "latent diffusion": dict(base, ms_per_sample=1.0),
    }
    for (name, key), value in (changes or {}).items():
        rows[name][key] = value
    return rows


def test_each_deck_claim_is_decided_by_its_own_numbers():
    floor = dict(sharpness=0.8)
    assert all(holds for _, _, holds in claims(_rows(), floor))
    flips = {  # one number changed -> exactly the claim that reads it fails
        ("VAE", "ms_per_sample"): "fast sampling",
        ("VAE", "sharpness"): "blurry",
        ("GAN (DCGAN)", "sharpness"): "sharp:",
        ("autoregressive (PixelCNN)", "bpd"): "exact likelihood, the best",
        ("autoregressive (PixelCNN)", "ms_per_sample"): "the slowest",
        ("diffusion (pixel U-Net)", "ms_per_sample"): "10x slower per sample than the GAN",
    }
    values = {("VAE", "ms_per_sample"): 10.0, ("VAE", "sharpness"): 0.5, ("GAN (DCGAN)", "sharpness"): 0.3,
              ("autoregressive (PixelCNN)", "bpd"): 0.3, ("autoregressive (PixelCNN)", "ms_per_sample"): 20.0,
              ("diffusion (pixel U-Net)", "ms_per_sample"): 4.0}
    for where, text in flips.items():
        failed = [claim for _, claim, holds in claims(_rows({where: values[where]}), floor) if not holds]
        assert len(failed) == 1 and text in failed[0], (where, failed)
    gan_bpd = _rows({("GAN (DCGAN)", "bpd"): 0.1})
    assert [c for _, c, h in claims(gan_bpd, floor) if not h] == ["no likelihood"]


def test_table_cells_are_mean_and_sample_sd_over_seeds():
    assert cell([1.0, 2.0, 4.0], ".2f") == f"2.33 +- {statistics.stdev([1.0, 2.0, 4.0]):.2f}"
    assert cell(0.5, ".3f") == "0.500" and cell([None, None], ".1f") == "-" and cell(7, "d") == "7"
    rows = _rows()
    text = table_text(rows, dict(rows["VAE"], bpd=None))
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["family", "bits/dim", "FID"] and len(lines) == 2 + len(rows) + 1
    assert lines[-1].startswith("real digits (floor)") and " - " in lines[-1]
    html = table_html(rows)
    assert html.count("<tr>") == 1 + len(rows) and "&lt;" not in html
