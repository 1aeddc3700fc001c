"""Data sets made by code: toy 2-D sets, sklearn's 8x8 digits, blob images with known factors.

* :func:`toy2d` - ring of 8 Gaussians, 5x5 grid, two moons, swiss roll, checkerboard (chapters 3-5);
  :data:`TOY2D_MODES` holds the exact mixture centres and standard deviation of the two mixtures.
* :func:`digits` - sklearn's 1 797 8x8 digits (shipped inside scikit-learn), scaled to [0, 1].
* :func:`blobs` - a Gaussian blob whose factors (x, y, size) are known and independent (chapter 2).
"""

from __future__ import annotations

import operator

import numpy as np
import torch


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
