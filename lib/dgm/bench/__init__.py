"""Chapter 8: evaluating generative models, and every family of the course on one bench.

The decks end every chapter with the same summary table of the families (VAEs: fast, a likelihood
bound, blurry; GANs: sharp, no likelihood, unstable; flows: exact likelihood, restricted
architectures; autoregressive models: exact likelihood, slow sampling; diffusion: the best samples,
slow sampling). This package measures it: the same data (binarized MNIST), the same CPU-time
budget per model, the same metrics (``dgm.metrics``):

    FID    = ||mu_r - mu_g||^2 + tr(S_r + S_g - 2 (S_r^1/2 S_g S_r^1/2)^1/2)                   (M.1)
    precision = share of samples inside the k-NN balls of the real features; recall the reverse
    memorisation = median_i min_j ||x_i - train_j|| / median_i min_j ||x_i - heldout_j||
    sharpness s(x) = sum |grad x|^2 / sum x   (forward differences; 1 per unit edge)           (8.5)
    bits/dim = -log2 P(x) / D   (exact, an upper bound, or none)                                (8.6)

* :mod:`dgm.bench.families` - :class:`Family` and the six families (VAE, DCGAN, Glow-MLP flow,
  gated PixelCNN, pixel diffusion, latent diffusion), each from its chapter's library model.
* :mod:`dgm.bench.runner` - :func:`train` (steps until the CPU-time budget is spent, with
  checkpoints), :func:`evaluate` / :func:`measure` (a row), :func:`run` (the whole bench) and
  :class:`BenchData` (the binarized split: train, floor half and held-out half of the test set).
* :mod:`dgm.bench.table` - the table as text and HTML, the decks' table :data:`DECK` and
  :func:`claims`, each qualitative claim decided by the measured rows.
"""

from dgm.bench.families import (FAMILIES, DiffusionFamily, Family, FlowFamily, GANFamily,
                                LatentDiffusionFamily, PixelCNNFamily, VAEFamily, binarize, make_family)
from dgm.bench.runner import BenchData, BenchResult, evaluate, measure, run, train
from dgm.bench.table import COLUMNS, DECK, claims, table_html, table_text

__all__ = ["FAMILIES", "Family", "VAEFamily", "GANFamily", "FlowFamily", "PixelCNNFamily", "DiffusionFamily",
           "LatentDiffusionFamily", "binarize", "make_family", "BenchData", "BenchResult", "evaluate", "measure",
           "run", "train", "COLUMNS", "DECK", "claims", "table_html", "table_text"]
