"""Captions computed from the pixels: a second modality for MNIST (chapter 7).

Every digit gets a short caption built from its label and two attributes **measured on the image**,
so text and image share real, checkable content:

* **thickness** of the stroke, in pixels: ``2 * area / perimeter`` of the binarized digit (pixels
  > 0.5). A stroke of width w and length L has area ~ w L and perimeter ~ 2 L, so the ratio is w
  (Morpho-MNIST, Castro et al. 2019, measures thickness as area / length too, with a skeleton for
  L). The perimeter is the number of unit edges between an ink pixel and a background pixel
  (4-neighbours, the image padded with background) times pi / 4: on a pixel grid a curve's edge
  count overstates its length by 4 / pi on average over its orientations (exactly so for a
  circle), and digits are curves.
* **slant**: the shear of the ink, from the gray image's second moments about its centre of mass,
  ``slant = -mu11 / mu02`` with rows counted downward: how many pixels the stroke moves to the right
  per pixel it goes **up** (0 for an upright digit, > 0 leaning right, < 0 leaning left); the
  same quantity that "deskewing" undoes.

The caption grammar is fixed: ``"a <thickness> <slant> <digit>"``, with thickness ``thin`` (below
:data:`THICK_PIXELS` pixels) or ``thick``, slant ``upright`` (``|slant|`` below :data:`SLANTED`) or
``slanted``, and the digit's English name, e.g. ``"a thick slanted seven"``. The two thresholds are
about the medians of the course's MNIST training split, so every word is common and each of the
40 captions has training examples. Tokens come from the fixed :data:`VOCAB`.

* :func:`measure` - thickness and slant of a batch of images.
* :func:`attributes` - the word indices (thick?, slanted?) of a batch.
* :func:`caption` / :func:`captions` - caption strings from labels and images.
* :func:`tokenize` / :func:`detokenize` - strings <-> token ids with ``<bos>``/``<eos>``/``<pad>``.
* :func:`parse` - a caption string back to (digit, thick, slanted), with a clear error otherwise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dgm._checks import float_tensor

__all__ = ["DIGIT_NAMES", "THICKNESS_WORDS", "SLANT_WORDS", "VOCAB", "THICK_PIXELS", "SLANTED",
           "measure", "attributes", "caption", "captions", "tokenize", "detokenize", "parse"]

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
THICKNESS_WORDS = ("thin", "thick")
SLANT_WORDS = ("upright", "slanted")
VOCAB = ("<pad>", "<bos>", "<eos>", "a") + THICKNESS_WORDS + SLANT_WORDS + DIGIT_NAMES
THICK_PIXELS = 2.5   # stroke width at or above which a digit is "thick"
SLANTED = 0.2        # |shear| at or above which a digit is "slanted"
CAPTION_LENGTH = 6   # <bos> a thickness slant digit <eos>

_INDEX = {word: i for i, word in enumerate(VOCAB)}


def _images(x, name="x") -> torch.Tensor:
    x = float_tensor(x, name)
    if x.dim() == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.dim() != 3:
        raise ValueError(f"{name} must have shape (N, 1, H, W) or (N, H, W), got {tuple(x.shape)}")
    return x.detach().float().cpu()


def measure(x) -> tuple[torch.Tensor, torch.Tensor]:
    """Stroke thickness (pixels) and slant (horizontal shift per row upward) of each image.

    Args:
        x: images ``(N, 1, H, W)`` or ``(N, H, W)`` in [0, 1] (ink is bright).

    Returns:
        ``(thickness, slant)``, two float tensors of shape ``(N,)``; an image without ink gets
        thickness 0 and slant 0.
    """
    x = _images(x)
    ink = (x > 0.5).float()
    area = ink.sum((1, 2))
    padded = F.pad(ink, (1, 1, 1, 1))
    edges = ((padded[:, 1:] != padded[:, :-1]).sum((1, 2))
             + (padded[:, :, 1:] != padded[:, :, :-1]).sum((1, 2))).float()
    perimeter = edges * (math.pi / 4)
    thickness = torch.where(perimeter > 0, 2 * area / perimeter.clamp(min=1), torch.zeros_like(area))

    h, w = x.shape[1:]
    rows = torch.arange(h, dtype=x.dtype)[None, :, None]
    cols = torch.arange(w, dtype=x.dtype)[None, None, :]
    mass = x.sum((1, 2)).clamp(min=1e-12)
    cy = (x * rows).sum((1, 2)) / mass
    cx = (x * cols).sum((1, 2)) / mass
    dy, dx = rows - cy[:, None, None], cols - cx[:, None, None]
    mu11 = (x * dx * dy).sum((1, 2)) / mass
    mu02 = (x * dy * dy).sum((1, 2)) / mass
    slant = torch.where(mu02 > 0, -mu11 / mu02.clamp(min=1e-12), torch.zeros_like(mu02))
    return thickness, slant


def attributes(x) -> tuple[torch.Tensor, torch.Tensor]:
    """``(thick, slanted)``: int64 tensors of 0/1 (indices into THICKNESS_WORDS, SLANT_WORDS)."""
    thickness, slant = measure(x)
    return (thickness >= THICK_PIXELS).long(), (slant.abs() >= SLANTED).long()


def caption(digit: int, thick: int, slanted: int) -> str:
    """The caption ``"a <thickness> <slant> <digit>"`` of one set of attributes."""
    if not 0 <= int(digit) <= 9:
        raise ValueError(f"digit must be in 0..9, got {digit}")
    for name, v in (("thick", thick), ("slanted", slanted)):
        if int(v) not in (0, 1):
            raise ValueError(f"{name} must be 0 or 1, got {v}")
    return f"a {THICKNESS_WORDS[int(thick)]} {SLANT_WORDS[int(slanted)]} {DIGIT_NAMES[int(digit)]}"


def captions(x, y) -> list[str]:
    """The caption of every image ``x[i]`` with label ``y[i]``, its attributes measured on the pixels."""
    y = torch.as_tensor(y).long().flatten()
    thick, slanted = attributes(x)
    if len(y) != len(thick):
        raise ValueError(f"y has {len(y)} labels for {len(thick)} images in x")
    return [caption(d, t, s) for d, t, s in zip(y.tolist(), thick.tolist(), slanted.tolist())]


def parse(text: str) -> tuple[int, int, int]:
    """``(digit, thick, slanted)`` of a caption of the grammar, or ValueError naming the problem."""
    words = str(text).split()
    if len(words) != 4 or words[0] != "a":
        raise ValueError(f"a caption reads 'a <thin|thick> <upright|slanted> <digit name>', got {text!r}")
    _, thickness, slant, name = words
    for word, allowed in ((thickness, THICKNESS_WORDS), (slant, SLANT_WORDS), (name, DIGIT_NAMES)):
        if word not in allowed:
            raise ValueError(f"{word!r} in {text!r} is not one of {allowed}")
    return DIGIT_NAMES.index(name), THICKNESS_WORDS.index(thickness), SLANT_WORDS.index(slant)


def tokenize(texts) -> torch.Tensor:
    """Token ids ``(N, CAPTION_LENGTH)``: ``<bos>`` the words ``<eos>``, padded with ``<pad>``."""
    if isinstance(texts, str):
        texts = [texts]
    out = torch.full((len(texts), CAPTION_LENGTH), _INDEX["<pad>"], dtype=torch.long)
    for i, text in enumerate(texts):
        words = str(text).split()
        unknown = [w for w in words if w not in _INDEX or w.startswith("<")]
        if unknown:
            raise ValueError(f"texts[{i}] has words outside VOCAB: {unknown}")
        if len(words) > CAPTION_LENGTH - 2:
            raise ValueError(f"texts[{i}] has {len(words)} words, at most {CAPTION_LENGTH - 2} fit")
        ids = [_INDEX["<bos>"]] + [_INDEX[w] for w in words] + [_INDEX["<eos>"]]
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def detokenize(tokens) -> list[str]:
    """Strings from token ids: the words after ``<bos>`` up to the first ``<eos>``, ``<pad>`` dropped."""
    tokens = torch.as_tensor(tokens)
    if tokens.dim() == 1:
        tokens = tokens[None]
    if tokens.dim() != 2 or tokens.is_floating_point():
        raise ValueError(f"tokens must be integer ids of shape (N, L), got {tuple(tokens.shape)}")
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= len(VOCAB)):
        raise ValueError(f"tokens must be in 0..{len(VOCAB) - 1}")
    texts = []
    for row in tokens.tolist():
        words = []
        for t in row:
            if VOCAB[t] == "<eos>":
                break
            if VOCAB[t] not in ("<bos>", "<pad>"):
                words.append(VOCAB[t])
        texts.append(" ".join(words))
    return texts
