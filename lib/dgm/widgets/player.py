"""Animations, the static twins of the live widgets: what the rendered book shows without a kernel.

* :func:`_animate` - one picture per frame with a title (a code moving through latent space).
* :func:`_frames_animation` - pre-rendered RGB or grey frames, one per slider position.
* :func:`as_html` - an animation as a self-contained JS/HTML player (``anim.to_jshtml()``) that
  loads nothing from another host: matplotlib's Font Awesome icons become inline SVG.

Keep animations short (<= 24 frames) so the HTML stays small.
"""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import HTML
from matplotlib.animation import FuncAnimation


def _animate(pictures: np.ndarray, titles: list[str], interval: int = 150) -> FuncAnimation:
    """A FuncAnimation showing one picture per frame with its title (Agg-safe)."""
    fig, ax = plt.subplots(figsize=(2.2, 2.4), dpi=80)
    artist = ax.imshow(pictures[0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    title = ax.set_title(titles[0], fontsize=9)

    def update(i):
        artist.set_data(pictures[i])
        title.set_text(titles[i])
        return artist, title

    return FuncAnimation(fig, update, frames=len(pictures), interval=interval, blit=False)


def _frames_animation(frames: list[np.ndarray], titles: list[str], interval: int = 200,
                      width: float = 6.0) -> FuncAnimation:
    """A FuncAnimation showing pre-rendered RGB/gray frames, one per step, with a title each."""
    h, w = frames[0].shape[:2]
    fig, ax = plt.subplots(figsize=(width, width * h / w + 0.35), dpi=80)
    gray = frames[0].ndim == 2
    artist = ax.imshow(frames[0], cmap="gray" if gray else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    title = ax.set_title(titles[0], fontsize=10)
    fig.tight_layout()

    def update(i):
        artist.set_data(frames[i])
        title.set_text(titles[i])
        return artist, title

    return FuncAnimation(fig, update, frames=len(frames), interval=interval, blit=False)


# Inline SVG icons (16x16, currentColor) for the player's buttons, replacing matplotlib's
# Font Awesome 4 icons, whose stylesheet would be fetched from a CDN by every reader.
_SVG = '<svg width="12" height="12" viewBox="0 0 16 16" fill="currentColor" aria-hidden="true">{}</svg>'
_PLAYER_ICONS = {
    "minus": '<rect x="2" y="7" width="12" height="2"/>',
    "plus": '<rect x="2" y="7" width="12" height="2"/><rect x="7" y="2" width="2" height="12"/>',
    "play": '<path d="M4 2 L14 8 L4 14 Z"/>',
    "play fa-flip-horizontal": '<path d="M12 2 L2 8 L12 14 Z"/>',
    "pause": '<rect x="3" y="2" width="3.5" height="12"/><rect x="9.5" y="2" width="3.5" height="12"/>',
    "step-forward": '<path d="M2 2 L11 8 L2 14 Z"/><rect x="11.5" y="2" width="2.5" height="12"/>',
    "step-backward": '<path d="M14 2 L5 8 L14 14 Z"/><rect x="2" y="2" width="2.5" height="12"/>',
    "fast-forward": '<path d="M1 2 L7 8 L1 14 Z M7 2 L13 8 L7 14 Z"/><rect x="13" y="2" width="2" height="12"/>',
    "fast-backward": '<path d="M15 2 L9 8 L15 14 Z M9 2 L3 8 L9 14 Z"/><rect x="1" y="2" width="2" height="12"/>',
}


def _offline_player(html: str) -> str:
    """``to_jshtml()`` output without its one external resource (Font Awesome from a CDN).

    The ``<link>`` to the stylesheet is dropped and each ``<i class="fa fa-NAME">`` icon becomes
    an inline SVG, so the player works offline and the book loads nothing from another host.
    """
    html = re.sub(r'<link rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*">\s*', "", html)

    def icon(match):
        name = match.group(1)
        if name not in _PLAYER_ICONS:
            raise ValueError(f"unexpected icon fa-{name} in matplotlib's animation player")
        return _SVG.format(_PLAYER_ICONS[name])

    return re.sub(r'<i class="fa fa-([a-z -]+?)"></i>', icon, html)


def as_html(anim: FuncAnimation) -> HTML:
    """The static twin: ``anim`` as a self-contained JS/HTML player for the book.

    Self-contained means offline too: the player's icons are inline SVG (see
    :func:`_offline_player`), not matplotlib's Font Awesome stylesheet from a CDN.
    Closes the animation's figure so the notebook does not also print a static frame.
    """
    if not isinstance(anim, FuncAnimation):
        raise TypeError(f"anim must be a matplotlib FuncAnimation, got {type(anim).__name__}")
    try:
        html = anim.to_jshtml()
    finally:
        plt.close(anim._fig)
    return HTML(_offline_player(html))
