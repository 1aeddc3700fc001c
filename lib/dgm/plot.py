"""Plotting helpers shared by the chapters: image grids, loss curves, 2-D scatter and density.

Every function accepts torch tensors (on any device; they are detached and copied to the CPU)
or NumPy arrays, draws into ``ax`` (a new figure when ``ax`` is None) and returns the Axes.
None of them calls ``plt.show()``: in Jupyter the figure shows itself, in scripts and tests
nothing pops up.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["make_grid", "image_grid", "loss_curves", "scatter2d", "density2d"]


def _numpy(x, name: str) -> np.ndarray:
    """Detach, move to CPU and convert a tensor (or array-like) to a NumPy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as err:  # ragged lists and the like
        raise TypeError(f"{name} must be a torch.Tensor or a NumPy array, got {type(x).__name__}") from err


def _axes(ax, figsize=(5, 5)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


# --------------------------------------------------------------------------- images


def _images_nhwc(images) -> np.ndarray:
    """Validate ``images`` and return float32 (N, H, W, C) with C in {1, 3}."""
    arr = _numpy(images, "images")
    shape = tuple(arr.shape)
    expected = "(N, 1, H, W), (N, 3, H, W) or (N, H, W)"
    if arr.ndim == 3:
        arr = arr[:, :, :, None]
    elif arr.ndim == 4 and arr.shape[1] in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)
    else:
        raise ValueError(f"images must have shape {expected}, got {shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"images must be non-empty {expected}, got {shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"images must hold numbers, got dtype {arr.dtype}")
    if arr.dtype == np.uint8:
        arr = arr / 255.0
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise ValueError("images contains NaN or inf values (did training diverge?)")
    return arr


def make_grid(images, nrow=None, padding: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """Tile images into one array, row by row (like ``torchvision.utils.make_grid``).

    Image ``k`` lands in grid row ``k // nrow``, column ``k % nrow``; its top-left pixel is at
    ``(padding + r * (H + padding), padding + c * (W + padding))``. Empty cells and the
    borders are filled with ``pad_value``. uint8 images are scaled to [0, 1].

    Args:
        images: (N, 1, H, W), (N, 3, H, W) or (N, H, W); tensor or array.
        nrow: images per grid row; default ``ceil(sqrt(N))`` (a square-ish grid).
        padding: pixels between (and around) images.
        pad_value: value of the padding pixels.

    Returns:
        float32 array (H', W') for grey images, (H', W', 3) for colour images.
    """
    arr = _images_nhwc(images)
    n, h, w, c = arr.shape
    if nrow is None:
        nrow = math.ceil(math.sqrt(n))
    if isinstance(nrow, bool) or not isinstance(nrow, (int, np.integer)) or nrow <= 0:
        raise ValueError(f"nrow must be a positive int, got {nrow!r}")
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"padding must be a non-negative int, got {padding!r}")
    ncol = min(int(nrow), n)
    nrows = math.ceil(n / ncol)
    grid = np.full(
        (padding + nrows * (h + padding), padding + ncol * (w + padding), c), pad_value, dtype=np.float32
    )
    for k in range(n):
        top = padding + (k // ncol) * (h + padding)
        left = padding + (k % ncol) * (w + padding)
        grid[top : top + h, left : left + w] = arr[k]
    return grid[:, :, 0] if c == 1 else grid


def image_grid(images, nrow=None, ax=None, title=None, cmap="gray"):
    """Show a batch of images as one grid (see :func:`make_grid`).

    Values in [0, 1] are shown as they are (0 black, 1 white); any other range (e.g. a GAN's
    [-1, 1] output) is min-max rescaled to [0, 1] first, and the title says so.

    Args:
        images: (N, 1, H, W), (N, 3, H, W) or (N, H, W); tensor or array.
        nrow: images per grid row (default square-ish).
        ax: Axes to draw into; default a new figure.
        title: optional title.
        cmap: colour map for grey images.

    Returns:
        The matplotlib Axes.
    """
    arr = _images_nhwc(images)
    lo, hi = float(arr.min()), float(arr.max())
    rescaled = lo < 0.0 or hi > 1.0
    if rescaled:
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    grid = make_grid(arr.transpose(0, 3, 1, 2), nrow=nrow)
    ax = _axes(ax)
    ax.imshow(grid, cmap=cmap if grid.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    if title is not None or rescaled:
        note = f" (rescaled from [{lo:.3g}, {hi:.3g}])" if rescaled else ""
        ax.set_title(f"{title or ''}{note}".strip())
    return ax


# --------------------------------------------------------------------------- curves


def _ema(values: np.ndarray, smooth: float) -> np.ndarray:
    """Exponential moving average s_t = smooth * s_{t-1} + (1 - smooth) * y_t, s_0 = y_0."""
    out = np.empty_like(values, dtype=float)
    acc = values[0]
    for i, v in enumerate(values):
        acc = smooth * acc + (1.0 - smooth) * v
        out[i] = acc
    return out


def loss_curves(curves, ax=None, logy: bool = False, smooth: float = 0):
    """Plot loss curves against the optimisation step.

    Args:
        curves: a :class:`dgm.train.History` (draws ``train`` against steps 1..n and, if any,
            ``val`` at ``val_steps``) or a dict ``name -> sequence`` (each drawn against 1..len).
        ax: Axes to draw into; default a new figure.
        logy: logarithmic y axis.
        smooth: exponential-moving-average weight in [0, 1) applied to each curve
            (0 = raw; 0.9 = strong smoothing, TensorBoard style). Validation points of a
            History are never smoothed.

    Returns:
        The matplotlib Axes, with one line per curve and a legend.
    """
    if not (isinstance(smooth, (int, float)) and 0 <= smooth < 1):
        raise ValueError(f"smooth must be a number in [0, 1), got {smooth!r}")
    series = []  # (label, x, y, smoothable)
    if hasattr(curves, "train_loss") and hasattr(curves, "val_loss"):  # a History
        y = np.asarray(curves.train_loss, dtype=float)
        series.append(("train", np.arange(1, len(y) + 1), y, True))
        if len(curves.val_loss):
            series.append(("val", np.asarray(curves.val_steps), np.asarray(curves.val_loss, dtype=float), False))
    elif isinstance(curves, dict):
        for name, values in curves.items():
            y = _numpy(values, f"curves[{name!r}]").astype(float)
            if y.ndim != 1:
                raise ValueError(f"curves[{name!r}] must be a 1-D sequence, got shape {y.shape}")
            series.append((str(name), np.arange(1, len(y) + 1), y, True))
    else:
        raise TypeError(f"curves must be a History or a dict name -> sequence, got {type(curves).__name__}")
    series = [s for s in series if len(s[2])]
    if not series:
        raise ValueError("curves holds no values to plot")
    ax = _axes(ax, figsize=(6, 4))
    for label, x, y, smoothable in series:
        if smoothable and smooth > 0:
            y = _ema(y, smooth)
        ax.plot(x, y, label=label, marker=None if smoothable else "o", markersize=3)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    return ax


# --------------------------------------------------------------------------- 2-D data


def scatter2d(points, labels=None, ax=None, s=4, title=None):
    """Scatter plot of 2-D points, coloured by ``labels`` if given.

    Integer labels with at most 20 distinct values get one colour each and a legend; any other
    labels (e.g. a log-density) get a continuous colour map and a colour bar.

    Args:
        points: (N, 2) tensor or array.
        labels: optional (N,) tensor or array.
        ax: Axes to draw into; default a new figure.
        s: marker size.
        title: optional title.

    Returns:
        The matplotlib Axes (equal aspect ratio).
    """
    pts = _numpy(points, "points")
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {tuple(pts.shape)}")
    ax = _axes(ax)
    if labels is None:
        ax.scatter(pts[:, 0], pts[:, 1], s=s)
    else:
        lab = _numpy(labels, "labels")
        if lab.shape != (pts.shape[0],):
            raise ValueError(f"labels must have shape ({pts.shape[0]},) to match points, got {tuple(lab.shape)}")
        values = np.unique(lab)
        discrete = (np.issubdtype(lab.dtype, np.integer) or lab.dtype == bool) and len(values) <= 20
        if discrete:
            for v in values:
                keep = lab == v
                ax.scatter(pts[keep, 0], pts[keep, 1], s=s, label=str(v))
            ax.legend(markerscale=max(1.0, 3.0 / max(s, 1e-3) ** 0.5), fontsize="small")
        else:
            sc = ax.scatter(pts[:, 0], pts[:, 1], s=s, c=lab.astype(float), cmap="viridis")
            ax.figure.colorbar(sc, ax=ax)
    ax.set_aspect("equal")
    if title is not None:
        ax.set_title(title)
    return ax


def _check_lim(lim, name):
    try:
        lo, hi = (float(v) for v in lim)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a pair (low, high), got {lim!r}") from err
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{name} must be finite with low < high, got {lim!r}")
    return lo, hi


def _fn_device(fn) -> torch.device:
    """Device of the module behind ``fn`` (a Module or a bound method of one), else CPU."""
    owner = fn if isinstance(fn, torch.nn.Module) else getattr(fn, "__self__", None)
    if isinstance(owner, torch.nn.Module):
        for tensor in owner.parameters():
            return tensor.device
    return torch.device("cpu")


def density2d(log_prob_fn, xlim=(-4, 4), ylim=(-4, 4), n: int = 200, ax=None, title=None):
    """Heat map of the density p(x) = exp(log p(x)) on an n x n grid of points.

    The grid points are ``linspace(*xlim, n)`` x ``linspace(*ylim, n)``; each pixel is centred
    on its grid point (cell area ``dx * dy``, ``dx = (xlim[1] - xlim[0]) / (n - 1)``), so
    ``image.sum() * dx * dy`` approximates the probability mass inside the window. The image
    (rows = y, origin lower-left) is ``ax.images[-1].get_array()``.

    Args:
        log_prob_fn: maps a float32 tensor (M, 2) to log-densities (M,); called under
            ``torch.no_grad()``, on the device of its module if it is one (or a bound method
            of one), else on the CPU.
        xlim, ylim: window.
        n: grid points per axis (>= 2).
        ax: Axes to draw into; default a new figure.
        title: optional title.

    Returns:
        The matplotlib Axes.
    """
    x0, x1 = _check_lim(xlim, "xlim")
    y0, y1 = _check_lim(ylim, "ylim")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    if not callable(log_prob_fn):
        raise TypeError(f"log_prob_fn must be callable, got {type(log_prob_fn).__name__}")
    xs = torch.linspace(x0, x1, n)
    ys = torch.linspace(y0, y1, n)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # row i <-> y_i, column j <-> x_j
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).to(_fn_device(log_prob_fn))
    with torch.no_grad():
        logp = _numpy(log_prob_fn(grid), "log_prob_fn(grid)").astype(np.float64)
    if logp.size != n * n:
        raise ValueError(f"log_prob_fn must return {n * n} values for a ({n * n}, 2) input, got shape {logp.shape}")
    if np.isnan(logp).any():
        raise ValueError(f"log_prob_fn returned NaN at {int(np.isnan(logp).sum())} grid points")
    density = np.exp(logp.reshape(n, n))
    dx, dy = (x1 - x0) / (n - 1), (y1 - y0) / (n - 1)
    ax = _axes(ax)
    ax.imshow(
        density,
        origin="lower",
        extent=(x0 - dx / 2, x1 + dx / 2, y0 - dy / 2, y1 + dy / 2),
        cmap="viridis",
        interpolation="nearest",
        aspect="equal",
    )
    if title is not None:
        ax.set_title(title)
    return ax
