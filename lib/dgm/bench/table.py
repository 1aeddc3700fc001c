"""The bench's table, as text (benchmarks, CSV) and as HTML (the lecture), and the decks' summary
table of the families, whose claims :func:`claims` checks against the measured rows.
"""

from __future__ import annotations

import html
import math

__all__ = ["COLUMNS", "DECK", "cell", "claims", "table_html", "table_text"]

#: (row key, header, format of one number); a None value is printed as "-".
COLUMNS = (
    ("bpd", "bits/dim", ".3f"),
    ("fid", "FID", ".1f"),
    ("kid", "KID", ".1f"),
    ("precision", "precision", ".2f"),
    ("recall", "recall", ".2f"),
    ("memorisation", "train/held-out", ".2f"),
    ("sharpness", "sharpness", ".2f"),
    ("train_s", "train s", ".0f"),
    ("steps", "steps", "d"),
    ("ms_per_sample", "ms/sample", ".1f"),
)

#: The decks' summary table: family -> the qualitative claims, in the lectures' words.
DECK = {
    "VAE": "fast sampling; a likelihood bound; blurry samples",
    "GAN (DCGAN)": "sharp samples; no likelihood; unstable, mode collapse",
    "flow (Glow-MLP)": "exact likelihood (density); restricted architectures, weaker samples",
    "autoregressive (PixelCNN)": "exact likelihood, the best; slow sampling (one pass per pixel)",
    "diffusion (pixel U-Net)": "best samples; slow sampling (many network passes); no likelihood here",
    "latent diffusion": "diffusion in an autoencoder's code space: fast, sharp enough",
}


def cell(values, fmt: str) -> str:
    """One value, or "mean +- sd" over several (seeds); "-" where there is none."""
    if not isinstance(values, (list, tuple)):
        values = [values]
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if fmt == "d":
        values = [int(v) for v in values]
    m = sum(values) / len(values)
    if len(values) == 1:
        return format(values[0], fmt)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))
    fmt = ".0f" if fmt == "d" else fmt
    return f"{format(m, fmt)} +- {format(sd, fmt)}"


def _cells(rows: dict, floor: dict | None, columns) -> tuple[list[str], list[list[str]]]:
    names = list(rows) + (["real digits (floor)"] if floor is not None else [])
    table = [[cell(rows[name][key], fmt) if name in rows else cell(floor.get(key), fmt) for key, _, fmt in columns]
             for name in names]
    return names, table


def table_text(rows: dict, floor: dict | None = None, columns=COLUMNS) -> str:
    """The rows as a fixed-width text table (values, or lists of values over seeds)."""
    names, table = _cells(rows, floor, columns)
    name_w = max(len("family"), *map(len, names)) + 1
    widths = [max(len(h), *(len(r[i]) for r in table)) + 2 for i, (_, h, _) in enumerate(columns)]
    lines = [f"{'family':<{name_w}}" + "".join(f"{h:>{w}}" for (_, h, _), w in zip(columns, widths))]
    lines.append("-" * len(lines[0]))
    lines += [f"{name:<{name_w}}" + "".join(f"{c:>{w}}" for c, w in zip(r, widths)) for name, r in zip(names, table)]
    return "\n".join(lines)


def table_html(rows: dict, floor: dict | None = None, columns=COLUMNS) -> str:
    """The rows as an HTML table (the lecture displays it with ``IPython.display.HTML``)."""
    names, table = _cells(rows, floor, columns)
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in columns)
    body = "".join(f"<tr><th style='text-align:left'>{html.escape(name)}</th>"
                   + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for name, r in zip(names, table))
    return (f"<div style='overflow-x:auto'><table class='dgm-bench' style='font-size:0.85em'><thead><tr>"
            f"<th>family</th>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def claims(rows: dict, floor: dict) -> list[tuple[str, str, bool]]:
    """Each claim of :data:`DECK` that a measured row can check: ``(family, claim, holds)``.

    Needs the rows of every family of :data:`dgm.bench.FAMILIES` (by name) and the floor.
    """
    vae, gan, flow = rows["VAE"], rows["GAN (DCGAN)"], rows["flow (Glow-MLP)"]
    ar, diff = rows["autoregressive (PixelCNN)"], rows["diffusion (pixel U-Net)"]
    likelihoods = {name: r["bpd"] for name, r in rows.items() if r["bpd_kind"] is not None}
    ms = {name: r["ms_per_sample"] for name, r in rows.items()}
    return [
        ("VAE", "fast sampling: one decoder pass, > 10x faster than PixelCNN and pixel diffusion",
         10 * vae["ms_per_sample"] < min(ar["ms_per_sample"], diff["ms_per_sample"])),
        ("VAE", "a likelihood bound", vae["bpd_kind"] == "bound" and vae["bpd"] is not None),
        ("VAE", "blurry: its decoded means have less than half the sharpness of real digits",
         vae["sharpness"] < 0.5 * floor["sharpness"]),
        ("GAN", "no likelihood", gan["bpd"] is None and gan["bpd_kind"] is None),
        ("GAN", "sharp: more than twice as sharp as the VAE's samples", gan["sharpness"] > 2 * vae["sharpness"]),
        ("flow", "a likelihood (a density; on binary pixels a bound)", flow["bpd"] is not None),
        ("autoregressive", "exact likelihood, the best of the likelihood models",
         ar["bpd_kind"] == "exact" and ar["bpd"] == min(likelihoods.values())),
        ("autoregressive", "slow sampling: the slowest per sample",
         ar["ms_per_sample"] == max(ms.values())),
        ("diffusion", "slow sampling: > 10x slower per sample than the GAN",
         diff["ms_per_sample"] > 10 * gan["ms_per_sample"]),
    ]
