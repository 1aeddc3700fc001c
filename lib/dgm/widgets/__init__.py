"""Widgets: live ipywidgets for JupyterLab and their static twins for the book, one module per chapter.

A live widget needs a kernel; its static twin (plain matplotlib: a figure, or an animation shown
with :func:`as_html`) works in the rendered book without one.

Chapters 1-2, an autoencoder's or a VAE's code space:

* :mod:`dgm.widgets.latent` - :class:`LatentExplorer` (sliders over z = g(x_a), interpolation
  towards g(x_b)); static twins :func:`traversal_grid`, :func:`interpolation_animation`,
  :func:`traversal_animation`.
* :mod:`dgm.widgets.latent_plane` - :class:`LatentPlane` (click or drag in a 2-D code space, see
  f(z)).
* :mod:`dgm.widgets.manifold` - its static twins :func:`manifold_grid` (the "learned data
  manifold") and :func:`path_animation`.

Chapter 3, GANs:

* :mod:`dgm.widgets.gan` - :class:`GANLatentExplorer` (sliders over z, G(z_a) | G(z) | G(z_b)).
* :mod:`dgm.widgets.gan_game` - :class:`GANPlayground` (a 2-D GAN trained live) and
  :func:`gan_snapshot`, :func:`draw_gan_state`, :func:`gan_training_animation`.

Chapter 4, normalizing flows:

* :mod:`dgm.widgets.flows` - :class:`FlowLayerExplorer` (a 2-D flow layer by layer);
  :func:`flow_layer_panels`, :func:`flow_layers_animation`.
* :mod:`dgm.widgets.flows_temperature` - :class:`TemperatureExplorer` (x = f(T z));
  :func:`temperature_animation`.

Chapter 5, diffusion models:

* :mod:`dgm.widgets.diffusion` - :class:`TimestepScrubber` (forward and reverse process at step
  t) and :class:`GuidanceSlider` (the classifier-free guidance scale w), each with an
  ``animation`` method.

Chapter 6, autoregressive models:

* :mod:`dgm.widgets.autoregressive` - :class:`PixelSampler` (a slider over the steps of drawing an
  image pixel by pixel: x_{<i}, p(x_i | x_{<i}) and the context the masks let the model see; a
  "complete this digit" mode), with an ``animation`` method.

Chapter 7, conditional and multimodal generation:

* :mod:`dgm.widgets.multimodal` - :class:`CaptionStudio` (type a caption or pick its words, press
  generate: a grid of digits from any ``generate(caption, n, scale, seed)``, each with its
  measured caption marked word by word, the caption agreement of Eq. (7.3), a guidance-scale
  slider), with a ``gallery`` method (one frame per caption).

Chapter 8, every family on one bench:

* :mod:`dgm.widgets.bench` - :class:`BenchViewer` (pick two families: their samples side by
  side, their metric rows beside the real-data floor, and the precision/recall plane with every
  family, A and B highlighted), with a ``gallery`` method (one frame per pair of families).

Shared by all chapters:

* :mod:`dgm.widgets.core` - running a model (no_grad, eval mode, its own device; ``decode_mean``,
  else ``decode``, else the callable), pictures, tiling (:func:`dgm.plot.make_grid`) and PNGs.
* :mod:`dgm.widgets.player` - :func:`as_html`, the offline animation player, and the animation
  helpers.
* :mod:`dgm.widgets.explorer` - the sliders and interpolation that both latent explorers share.

Every function runs models under ``torch.no_grad()`` in eval mode on the model's own device and
restores the model's train/eval mode afterwards. Keep animations short (<= 24 frames) so the HTML
stays small. Every name below imports from ``dgm.widgets``.
"""

from dgm.widgets.autoregressive import PixelSampler
from dgm.widgets.bench import BenchViewer
from dgm.widgets.diffusion import GuidanceSlider, TimestepScrubber
from dgm.widgets.flows import FlowLayerExplorer, flow_layer_panels, flow_layers_animation
from dgm.widgets.flows_temperature import TemperatureExplorer, temperature_animation
from dgm.widgets.gan import GANLatentExplorer
from dgm.widgets.gan_game import GANPlayground, draw_gan_state, gan_snapshot, gan_training_animation
from dgm.widgets.latent import LatentExplorer, interpolation_animation, traversal_animation, traversal_grid
from dgm.widgets.latent_plane import LatentPlane
from dgm.widgets.manifold import manifold_grid, path_animation
from dgm.widgets.multimodal import CaptionStudio
from dgm.widgets.player import as_html

__all__ = [
    # chapters 1-2
    "LatentExplorer",
    "LatentPlane",
    "traversal_grid",
    "manifold_grid",
    "path_animation",
    "interpolation_animation",
    "traversal_animation",
    "as_html",
    # chapter 3
    "GANLatentExplorer",
    "GANPlayground",
    "gan_snapshot",
    "draw_gan_state",
    "gan_training_animation",
    # chapter 4
    "FlowLayerExplorer",
    "TemperatureExplorer",
    "flow_layer_panels",
    "flow_layers_animation",
    "temperature_animation",
    # chapter 5
    "TimestepScrubber",
    "GuidanceSlider",
    # chapter 6
    "PixelSampler",
    # chapter 7
    "CaptionStudio",
    # chapter 8
    "BenchViewer",
]
