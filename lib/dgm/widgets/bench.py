"""Chapter 8: every family on one bench, two at a time.

Live (needs a kernel):

* :class:`BenchViewer` - two dropdowns, "family A" and "family B": their samples side by side,
  their metric rows in one table beside the real-data floor (bits/dim = nats / (D ln 2), exact
  or a bound, or a dash with "no likelihood"; classifier-FID, Eq. (M.1); KID; precision and
  recall; the memorisation ratio; sharpness, Eq. (8.5); training and sampling cost; size), and
  one precision/recall plane with every family at its (recall, precision), A and B highlighted
  and the floor marked.

Static twin: ``BenchViewer.gallery(pairs)``, one frame per pair of families (all pairs by
default), for :func:`~dgm.widgets.as_html`.

The rows are what :mod:`dgm.bench` measures (one per family, plus the real-data floor); the
viewer computes nothing, it shows them.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping
from itertools import combinations
from numbers import Integral, Real

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.animation import FuncAnimation
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image as PILImage

from dgm._checks import positive_int, positive_number
from dgm.widgets.autoregressive import _FRAME, _PaletteAnimation
from dgm.widgets.core import _figure_png, _grid, _LiveWidget, _rgb_of_figure

__all__ = ["BenchViewer", "KEYS", "LABELS", "FLOOR", "format_metric"]

#: The keys of a metric row, in the table's order.
KEYS = ("bpd", "bpd_kind", "fid", "kid", "precision", "recall", "memorisation", "sharpness",
        "train_s", "steps", "ms_per_sample", "params")
#: The table's label of each shown key (``bpd_kind`` is shown with ``bpd``).
LABELS = {
    "bpd": "bits/dim", "fid": "classifier-FID", "kid": "KID", "precision": "precision",
    "recall": "recall", "memorisation": "train / held-out", "sharpness": "sharpness",
    "train_s": "train s", "steps": "train steps", "ms_per_sample": "ms / sample",
    "params": "parameters",
}
#: The name the real-data floor row goes by in the table and the plot.
FLOOR = "real data"
_SHOWN = tuple(k for k in KEYS if k != "bpd_kind")
_AT_LEAST_0 = {"bpd", "fid", "memorisation", "sharpness", "train_s", "ms_per_sample"}
_UNIT = {"precision", "recall"}
_FLOOR_COLOUR = "#000000"
_MAX_SHOW = 64


# ----------------------------------------------------------------------------- checks
def _number(value, name: str):
    """A finite real number (a 0-d tensor or array: its item) or None, or a ValueError naming
    ``name``."""
    if value is None:
        return None
    if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number or None, got {value!r}")
    return value


def _check_row(row, name: str) -> dict:
    """A metric row with every key of :data:`KEYS` (missing ones None), or an error naming it."""
    if not isinstance(row, Mapping):
        raise TypeError(f"{name} must be a mapping of metric name -> value, "
                        f"got {type(row).__name__}")
    unknown = sorted(str(k) for k in row if k not in KEYS)
    if unknown:
        raise ValueError(f"{name} has unknown keys {unknown}; the known keys are {list(KEYS)}")
    out = {}
    for key in KEYS:
        value, where = row.get(key), f"{name}[{key!r}]"
        if key == "bpd_kind":
            if value not in (None, "exact", "bound"):
                raise ValueError(f"{where} must be 'exact', 'bound' or None, got {value!r}")
        elif key in ("steps", "params"):
            if value is not None and (isinstance(value, bool) or not isinstance(value, Integral)
                                      or value < 0):
                raise ValueError(f"{where} must be an int >= 0 or None, got {value!r}")
            value = None if value is None else int(value)
        else:
            value = _number(value, where)
            if value is not None:
                value = float(value)
                if key in _AT_LEAST_0 and value < 0:
                    raise ValueError(f"{where} must be >= 0, got {value!r}")
                if key in _UNIT and not 0.0 <= value <= 1.0:
                    raise ValueError(f"{where} must lie in [0, 1], got {value!r}")
        out[key] = value
    if (out["bpd"] is None) != (out["bpd_kind"] is None):
        raise ValueError(f"{name}: 'bpd_kind' must be 'exact' or 'bound' when 'bpd' is a number "
                         f"and None when it is None, got bpd={out['bpd']!r}, "
                         f"bpd_kind={out['bpd_kind']!r}")
    return out


def _check_images(x, name: str) -> np.ndarray:
    """Images ``(N, 1, H, W)`` with finite values in [0, 1], as an (N, H, W) float array."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of images (N, 1, H, W), "
                        f"got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() != 4 or x.shape[1] != 1 or min(x.shape) == 0:
        raise ValueError(f"{name} must have shape (N, 1, H, W) with N >= 1, got {tuple(x.shape)}")
    x = x.detach().float().cpu()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite pixel values")
    if float(x.min()) < 0.0 or float(x.max()) > 1.0:
        raise ValueError(f"{name} must have pixel values in [0, 1], got values in "
                         f"[{float(x.min()):.3g}, {float(x.max()):.3g}]")
    return x[:, 0].numpy()


def _check_inputs(rows, samples, floor) -> tuple[dict, dict, dict | None]:
    for arg, value in (("rows", rows), ("samples", samples)):
        if not isinstance(value, Mapping):
            raise TypeError(f"{arg} must be a mapping of family name -> "
                            f"{'metric row' if arg == 'rows' else 'images'}, "
                            f"got {type(value).__name__}")
    for name in list(rows) + list(samples):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"family names must be non-empty strings, got {name!r}")
    if FLOOR in rows:
        raise ValueError(f"rows must not name a family {FLOOR!r}: that name is the floor's")
    for name in rows:
        if name not in samples:
            raise ValueError(f"samples has no images for the family {name!r} of rows")
    for name in samples:
        if name not in rows:
            raise ValueError(f"rows has no metric row for the family {name!r} of samples")
    if len(rows) < 2:
        raise ValueError(f"rows must hold at least 2 families to compare, got {len(rows)}")
    checked = {name: _check_row(rows[name], f"rows[{name!r}]") for name in rows}
    pictures = {name: _check_images(samples[name], f"samples[{name!r}]") for name in rows}
    return checked, pictures, None if floor is None else _check_row(floor, "floor")


# ----------------------------------------------------------------------------- formatting
def _sig(value: float) -> str:
    """About three significant digits: 1234, 123, 12.3, 1.23, 0.123, 0.0123, 0.00123, 1.23e-04."""
    rounded = float(f"{value:.3g}")                    # rounded first: 9.996 -> 10.0
    size = abs(rounded)
    if size == 0:
        return "0"
    if size < 1e-3:
        return f"{value:.2e}"
    if size < 1:
        return f"{rounded:.3g}"
    return f"{value:.{max(0, 2 - int(math.floor(math.log10(size))))}f}"


def format_metric(row: Mapping, key: str, floor: bool = False) -> str:
    """One cell of the table: ``row[key]`` formatted, a dash with its reason where it is None.

    bits/dim reads "0.152 (exact)" for an exact likelihood, "≤ 0.160 (bound)" for a bound (the
    negative ELBO or IWAE bound is an upper bound on the bits/dim) and "– (no likelihood)" for a
    model without one (a GAN, a diffusion model without its bound); a plain "–" in the ``floor``
    row (real data is not a model).
    """
    if key not in _SHOWN:
        raise ValueError(f"key must be one of {list(_SHOWN)}, got {key!r}")
    value = row.get(key)
    if key == "bpd":
        if value is None:
            return "–" if floor else "– (no likelihood)"
        kind = row.get("bpd_kind")
        if kind == "bound":
            return f"≤ {value:.3f} (bound)"
        return f"{value:.3f} ({kind})" if kind else f"{value:.3f}"
    if value is None:
        return "–"
    if key in ("precision", "recall", "memorisation"):
        return f"{value:.2f}"
    if key == "steps":
        return f"{value:,d}"
    if key == "params":
        if value >= 999_500:                            # 1.00 M, not 1000 k
            return f"{_sig(value / 1e6)} M"
        return f"{_sig(value / 1e3)} k" if value >= 1e4 else f"{value:d}"
    if key == "train_s":
        return f"{value:.1f}"
    return _sig(value)


# ----------------------------------------------------------------------------- the picture
class _Sheet:
    """The picture: sample grids A | B under their titles, then the metric table (A, B, real
    data) with the precision/recall plane beside it (below it if ``width`` < 8 inches)."""

    LINE, SIDE = 0.2, 2.3            # inches: a table line, the side of the P/R plane

    def __init__(self, n_show: int, shape: tuple[int, int], colours: dict, has_floor: bool,
                 width: float):
        self.colours, self.has_floor, self.names = colours, has_floor, list(colours)
        ncol = min(n_show, 8)
        nrow = math.ceil(n_show / ncol)
        gw, gh = ncol * (shape[1] + 1) + 1, nrow * (shape[0] + 1) + 1  # make_grid, padding 1
        half = width / 2
        grid_w = min(half - 0.3, 3.3 * ncol / 8)          # digits of about 32 px at most
        grid_h = grid_w * gh / gw
        wide = width >= 8.0
        table_h = (len(_SHOWN) + 1) * self.LINE + 0.1
        block_w, block_h = 0.6 + self.SIDE + 0.25, 0.45 + self.SIDE + 0.3   # the plane, labelled
        below = max(table_h, block_h) if wide else table_h + block_h
        height = 0.1 + 0.3 + grid_h + 0.15 + below
        self.fig = Figure(figsize=(width, height), dpi=80)
        FigureCanvasAgg(self.fig)
        top = height - 0.4
        self.grids, self.titles, self.images = [], [], []
        blank = np.ones((gh, gw))
        for k in range(2):
            left = k * half + (half - grid_w) / 2
            ax = self.fig.add_axes((left / width, (top - grid_h) / height, grid_w / width,
                                    grid_h / height))
            ax.set_axis_off()
            self.images.append(ax.imshow(blank, cmap="gray", vmin=0.0, vmax=1.0,
                                         interpolation="nearest"))
            self.grids.append(ax)
            self.titles.append(self.fig.text((k * half + half / 2) / width, (top + 0.06) / height,
                                             "", ha="center", va="bottom", fontsize=10,
                                             fontweight="bold"))
        # the table: metric | A | B | real data
        y0 = top - grid_h - 0.15
        table_w = width - block_w if wide else width
        xs = [0.1 + c * (table_w - 0.1) / 4 * (1.1 if c else 1) for c in range(4)]
        self.cells = []
        for r in range(len(_SHOWN) + 1):
            y = (y0 - r * self.LINE) / height
            self.cells.append([
                self.fig.text(x / width, y, "", ha="left", va="top", fontsize=9,
                              fontweight="bold" if r == 0 else "normal")
                for x in xs
            ])
        for c, text in enumerate(("metric", "", "", FLOOR if has_floor else "")):
            self.cells[0][c].set_text(text)
        for r, key in enumerate(_SHOWN, start=1):
            self.cells[r][0].set_text(LABELS[key])
        # the precision/recall plane
        x0 = table_w + 0.6 if wide else 0.7
        y1 = y0 - 0.3 if wide else y0 - table_h - 0.3        # the plane's top
        self.pr = self.fig.add_axes((x0 / width, (y1 - self.SIDE) / height, self.SIDE / width,
                                     self.SIDE / height))
        self.notes = self.fig.text((x0 + 0.1) / width, (y1 - 0.1) / height, "", ha="left",
                                   va="top", fontsize=7.5, zorder=7)

    def draw(self, s: dict) -> None:
        """Show the state ``s`` of :meth:`BenchViewer._state`."""
        names = (s["first"], s["second"])
        for k, name in enumerate(names):
            self.images[k].set_data(s["grids"][k])
            self.titles[k].set_text(f"{'AB'[k]}: {name}")
            self.titles[k].set_color(self.colours[name])
            short = name if len(name) <= 14 else name[:13] + "…"
            self.cells[0][k + 1].set_text(f"{'AB'[k]}: {short}")
            self.cells[0][k + 1].set_color(self.colours[name])
        for r, key in enumerate(_SHOWN, start=1):
            for k, row in enumerate((s["rows"][0], s["rows"][1], s["floor"])):
                text = "" if row is None else format_metric(row, key, floor=k == 2)
                self.cells[r][k + 1].set_text(text)
        self._draw_pr(s)

    def _draw_pr(self, s: dict) -> None:
        ax = self.pr
        ax.clear()
        ax.set_xlim(-0.03, 1.05), ax.set_ylim(-0.03, 1.05)
        ax.set_xlabel("recall (data covered)", fontsize=8.5)
        ax.set_ylabel("precision (samples realistic)", fontsize=8.5)
        ax.tick_params(labelsize=7.5)
        ax.set_aspect("equal")
        ax.grid(True, color="0.9", linewidth=0.6)
        ax.set_title("precision / recall (large: A, B; ★: real data)", fontsize=8.5)
        chosen = (s["first"], s["second"])
        missing = []
        for name, row in s["all_rows"].items():
            if row["precision"] is None or row["recall"] is None:
                missing.append(name)
                continue
            big = name in chosen
            ax.plot([row["recall"]], [row["precision"]], linestyle="none", marker="o",
                    markersize=11 if big else 6.5, color=self.colours[name],
                    markeredgecolor="black" if big else self.colours[name],
                    markeredgewidth=1.6 if big else 0.5, zorder=4 if big else 3, label=name)
            left = row["recall"] > 0.6                   # labels point into the plane
            low = self.names.index(name) % 2 == 1          # neighbours' labels apart
            ax.annotate(name, (row["recall"], row["precision"]),
                        xytext=((-1 if left else 1) * (7 if big else 5), -11 if low else 4),
                        textcoords="offset points", ha="right" if left else "left",
                        fontsize=8 if big else 7, fontweight="bold" if big else "normal",
                        color=self.colours[name], zorder=6)
        floor = s["floor"]
        if floor is not None and floor["precision"] is not None and floor["recall"] is not None:
            ax.plot([floor["recall"]], [floor["precision"]], linestyle="none", marker="*",
                    markersize=14, color=_FLOOR_COLOUR, zorder=5, label=FLOOR)
            ax.annotate(FLOOR, (floor["recall"], floor["precision"]), xytext=(0, -15),
                        textcoords="offset points", ha="center", fontsize=7.5,
                        color=_FLOOR_COLOUR, zorder=6)
        self.notes.set_text("no precision / recall:\n" + "\n".join(missing) if missing else "")


class _Animation(_PaletteAnimation):
    """The JS-HTML player of the static twin, its frames 64-colour palette PNGs chosen by
    maximum coverage (about 15 % smaller than median cut for these text-heavy frames)."""

    def to_jshtml(self, *args, **kwargs) -> str:
        return _FRAME.sub(_coverage_png, FuncAnimation.to_jshtml(self, *args, **kwargs))


def _coverage_png(match) -> str:
    raw = base64.b64decode(match.group(2).replace("\\\n", ""))
    buf = io.BytesIO()
    picture = PILImage.open(io.BytesIO(raw)).convert("RGB")
    picture.quantize(64, method=PILImage.Quantize.MAXCOVERAGE).save(buf, format="png",
                                                                    optimize=True)
    return f'{match.group(1)}{base64.b64encode(buf.getvalue()).decode("ascii")}"'


# ----------------------------------------------------------------------------- the widget
class BenchViewer(_LiveWidget):
    """Two families of the bench side by side: samples, metric rows, precision/recall.

    Args:
        rows: family name -> its metric row, a mapping with keys among :data:`KEYS`
            (a missing key counts as None): "bpd" (bits per binary pixel, or None) and
            "bpd_kind" ("exact", "bound", or None with it), "fid" (classifier-FID, Eq. (M.1)),
            "kid", "precision", "recall" (in [0, 1]), "memorisation" (median nearest-train /
            nearest-held-out pixel distance), "sharpness", "train_s", "steps" (int),
            "ms_per_sample", "params" (int, the model's size). At least two families.
        samples: the same names -> images ``(N, 1, H, W)`` with values in [0, 1].
        floor: the real-data row (same keys), shown as a column of the table and a star in the
            plane, or None.
        n_show: digits per grid (1 ... 64; the first ``n_show`` samples, blank cells if a
            family has fewer).
        first, second: the families shown at the start (default: the first two of ``rows``).
        width: inches of the picture at 80 dpi (9.0: 720 px; from 8 on the table and the
            plane side by side, below 8 one under the other).

    Attributes:
        first, second (Dropdowns "family A", "family B"), image (PNG), caption (HTML: the
        headline figures of A, B and the floor as text), widget (VBox); names, rows, floor,
        colours (name -> colour, matplotlib's cycle in the order of ``rows``), shown (the pair
        on screen); frame(first, second), compare(first, second), gallery(pairs) -> the
        static twin.
    """

    def __init__(self, rows, samples, floor=None, *, n_show: int = 32, first=None, second=None,
                 width: float = 9.0):
        self.rows, self._pictures, self.floor = _check_inputs(rows, samples, floor)
        self.names = tuple(self.rows)
        n_show = positive_int(n_show, "n_show")
        if n_show > _MAX_SHOW:
            raise ValueError(f"n_show must be at most {_MAX_SHOW}, got {n_show}")
        self.n_show = n_show
        shapes = {p.shape[1:] for p in self._pictures.values()}
        if len(shapes) != 1:
            raise ValueError(f"samples must all have one image size, got {sorted(shapes)}")
        self._shape = shapes.pop()
        first = self.names[0] if first is None else self._name(first, "first")
        second = self._default_second(first) if second is None else self._name(second, "second")
        self._width = positive_number(width, "width")
        self.colours = {name: f"C{i % 10}" for i, name in enumerate(self.names)}
        self._sheet = self._new_sheet(self._width, n_show)

        narrow = widgets.Layout(width="260px")
        self.first = widgets.Dropdown(options=self.names, value=first, description="family A",
                                      layout=narrow)
        self.second = widgets.Dropdown(options=self.names, value=second, description="family B",
                                       layout=narrow)
        self.caption = widgets.HTML()
        self.image = widgets.Image(format="png")
        for dropdown in (self.first, self.second):
            dropdown.observe(lambda change: self._render(), names="value")
        self.widget = widgets.VBox([widgets.HBox([self.first, self.second]), self.image,
                                    self.caption])
        self.shown: tuple[str, str] | None = None
        self._render()

    def _name(self, name, arg: str) -> str:
        if name not in self.rows:
            raise ValueError(f"{arg} must be one of the families {list(self.names)}, got {name!r}")
        return name

    def _default_second(self, first: str) -> str:
        return next(n for n in self.names if n != first)

    def _new_sheet(self, width: float, n_show: int) -> _Sheet:
        return _Sheet(n_show, self._shape, self.colours, self.floor is not None, width)

    def _grid(self, name: str, n_show: int) -> np.ndarray:
        """The first ``n_show`` samples of a family tiled 8 per row (white cells if fewer)."""
        pictures = self._pictures[name][:n_show]
        if len(pictures) < n_show:
            pad = np.ones((n_show - len(pictures), *self._shape))
            pictures = np.concatenate([pictures, pad])
        return _grid(pictures, nrow=min(n_show, 8))

    def _state(self, first=None, second=None, n_show: int | None = None) -> dict:
        first = self.first.value if first is None else self._name(first, "first")
        second = self.second.value if second is None else self._name(second, "second")
        n_show = self.n_show if n_show is None else n_show
        return {"first": first, "second": second,
                "grids": (self._grid(first, n_show), self._grid(second, n_show)),
                "rows": (self.rows[first], self.rows[second]), "floor": self.floor,
                "all_rows": self.rows}

    # -- what the lecture and the tests read
    def compare(self, first=None, second=None) -> dict[str, dict]:
        """The metric rows of two families (default: the dropdowns'), ``{first: row, second:
        row}`` in that order (one entry if they are the same family)."""
        s = self._state(first, second)
        return {s["first"]: dict(s["rows"][0]), s["second"]: dict(s["rows"][1])}

    def frame(self, first=None, second=None) -> np.ndarray:
        """The picture for two families (default: the dropdowns'), ``(H, W, 3)`` in [0, 1]."""
        self._sheet.draw(self._state(first, second))
        return _rgb_of_figure(self._sheet.fig)

    # -- controls
    def _render(self) -> None:
        s = self._state()
        self._sheet.draw(s)
        self.image.value = _figure_png(self._sheet.fig)
        self.shown = (s["first"], s["second"])
        self.caption.value = self._summary(s)

    def _summary(self, s: dict) -> str:
        """One line under the picture: the headline figures of A, B and the floor, as text."""
        parts = []
        named = [(f"A: {s['first']}", s["rows"][0], False),
                 (f"B: {s['second']}", s["rows"][1], False)]
        if self.floor is not None:
            named.append((FLOOR, self.floor, True))
        for name, row, floor in named:
            figures = ", ".join(f"{LABELS[key]} {format_metric(row, key, floor)}"
                                for key in ("bpd", "fid", "precision", "recall"))
            parts.append(f"<b>{html.escape(name)}</b>: {html.escape(figures)}")
        return " &nbsp;·&nbsp; ".join(parts)

    # -- static twin
    def gallery(self, pairs=None, n_show: int | None = None, interval: int = 1500,
                width: float | None = None) -> _Animation:
        """Static twin: one frame per pair ``(first, second)`` of ``pairs`` (default: every pair
        of families, in the order of ``rows``; keep it <= 24 frames), each the picture the
        widget shows for it with ``n_show`` digits per grid (default: the widget's, at most 16,
        so that 15 frames for 6 families stay under 300 KB of HTML), ``width`` inches at 80 dpi
        (default: the widget's), for :func:`~dgm.widgets.as_html`; frames are 64-colour palette
        PNGs."""
        n_show = min(self.n_show, 16) if n_show is None else positive_int(n_show, "n_show")
        if n_show > _MAX_SHOW:
            raise ValueError(f"n_show must be at most {_MAX_SHOW}, got {n_show}")
        if pairs is None:
            pairs = list(combinations(self.names, 2))
        if isinstance(pairs, (str, Mapping)) or not hasattr(pairs, "__iter__"):
            raise TypeError(f"pairs must be a list of (first, second) family names, "
                            f"got {type(pairs).__name__}")
        checked = []
        for i, pair in enumerate(pairs):
            if isinstance(pair, str) or not hasattr(pair, "__len__") or len(pair) != 2:
                raise ValueError(f"pairs[{i}] must be a pair (first, second) of family names, "
                                 f"got {pair!r}")
            checked.append((self._name(pair[0], f"pairs[{i}][0]"),
                            self._name(pair[1], f"pairs[{i}][1]")))
        if not checked:
            raise ValueError("pairs must hold at least one pair of families")
        states = [self._state(a, b, n_show) for a, b in checked]
        width = self._width if width is None else positive_number(width, "width")
        sheet = self._new_sheet(width, n_show)
        return _Animation.of_states(sheet, states, interval)
