"""Files of the data cache: where it lives, checksums, atomic writes, safe downloads, the IDX parser.

A download never leaves a partial or unverified file at its final path: bytes are streamed to a
temporary file in the same folder, checked, then moved into place with ``os.replace``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import struct
import tempfile
import urllib.request
from pathlib import Path

import numpy as np


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
    return Path(__file__).resolve().parents[3] / "data"


class ChecksumError(RuntimeError):
    """Downloaded bytes do not match their published SHA-256 / npm integrity."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sri_sha512(path: Path) -> str:
    """npm/Subresource-Integrity string ``sha512-<base64 of the SHA-512 digest>`` of a file."""
    h = hashlib.sha512()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha512-" + base64.b64encode(h.digest()).decode("ascii")


def atomic_savez(path: Path, **arrays) -> None:
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


def download(url: str, dest: Path, sha256: str, timeout: float = DOWNLOAD_TIMEOUT) -> Path:
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
