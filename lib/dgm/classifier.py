"""A small MNIST classifier that judges generated digits (chapters 3 and 5).

Sample quality of an image model is hard to measure; the course uses the simplest honest proxy:
a convolutional classifier trained on the real training digits, asked whether a generated image
looks like *some* digit (maximum softmax probability above a threshold) and, for conditional
models, whether it is the digit that was asked for. This is the idea behind the Inception Score
(Salimans et al., 2016) at MNIST scale, without any downloaded weights.

* :class:`DigitClassifier` - two conv layers and a linear head, logits for the 10 classes.
* :func:`train_classifier` - train one on given images and labels.
* :func:`mnist_classifier` - the course's classifier, trained once on ``dgm.data.mnist("train")``
  and cached in :func:`dgm.data.data_dir` (written atomically).
* :func:`confidence_report` - the figures the benchmarks print.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dgm import data
from dgm.config import get_device
from dgm.train import fit, load_checkpoint, save_checkpoint

__all__ = ["DigitClassifier", "train_classifier", "mnist_classifier", "confidence_report"]

_VERSION = 2          # bump when the architecture or the training recipe changes: the cache is keyed on it
_CACHE: dict[tuple[str, str], "DigitClassifier"] = {}


class DigitClassifier(nn.Module):
    """Logits ``(N, 10)`` for images ``(N, 1, 28, 28)`` with values in [0, 1]."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),     # 16 x 14 x 14
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 32 x 7 x 7
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10))
        self.test_accuracy: float | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(check_images(x)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The 64 activations before the last layer, ``(N, 64)``: the features of :mod:`dgm.metrics`."""
        return self.head[:-1](self.features(check_images(x)))


def check_images(images, name: str = "images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, 1, 28, 28), got {type(images).__name__}")
    if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"{name} must have shape (N, 1, 28, 28), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor with values in [0, 1], got dtype {images.dtype}")
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return images


def train_classifier(x: torch.Tensor, y: torch.Tensor, *, epochs: int = 10, batch_size: int = 128,
                     lr: float = 2e-3, seed: int = 0, device=None) -> DigitClassifier:
    """Train a :class:`DigitClassifier` with cross-entropy and Adam; returns it in eval mode.

    Small random shifts (up to 2 pixels) augment the training images, so the classifier does not
    insist on perfectly centred digits, which generated ones rarely are. *Outlier exposure*
    (Hendrycks et al., 2019) keeps it honest on images that are not digits at all: each batch also
    holds random noise images whose target is the uniform distribution over the 10 classes, so
    noise, blobs and smudges get low confidence instead of an arbitrary confident label.
    """
    x = check_images(x, "x")
    if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != (len(x),):
        raise ValueError(f"y must be a LongTensor of shape ({len(x)},) with labels 0-9")
    if y.numel() and (y.min() < 0 or y.max() > 9):
        raise ValueError("y must hold labels 0-9")
    gen = torch.Generator().manual_seed(seed)  # the augmentations' randomness; fit shuffles with its own

    def loss_fn(model: DigitClassifier, batch) -> torch.Tensor:
        xb, yb = batch
        outliers = _outliers(len(xb) // 4 + 1, gen).to(xb.device)
        return F.cross_entropy(model(_shift(xb, gen)), yb) - F.log_softmax(model(outliers), 1).mean()

    torch.manual_seed(seed)
    model = DigitClassifier()
    with torch.enable_grad():  # also when called (e.g. by mnist_classifier's first use) under no_grad
        fit(model, loss_fn, (x, y), epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
            progress=False)
    return model.eval()


def _shift(x: torch.Tensor, gen: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    dx, dy = (torch.randint(-max_shift, max_shift + 1, (2,), generator=gen)).tolist()
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def _outliers(n: int, gen: torch.Generator) -> torch.Tensor:
    """Non-digits: pixel noise, smooth blobs (upsampled coarse noise) and their sparse thresholded versions."""
    fine = torch.rand(n, 1, 28, 28, generator=gen) * torch.rand(n, 1, 1, 1, generator=gen)
    coarse = F.interpolate(torch.rand(n, 1, 7, 7, generator=gen), size=28, mode="bilinear", align_corners=False)
    sparse = (coarse > 0.7).float()
    kind = torch.randint(0, 3, (n, 1, 1, 1), generator=gen)
    return torch.where(kind == 0, fine, torch.where(kind == 1, coarse, sparse))


@torch.no_grad()
def _accuracy(model: DigitClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    device = next(model.parameters()).device
    pred = torch.cat([model(x[i:i + 1000].to(device)).argmax(1).cpu() for i in range(0, len(x), 1000)])
    return (pred == y).float().mean().item()


def mnist_classifier(device=None) -> DigitClassifier:
    """The course's MNIST judge: trained once on the training split, cached on disk and in memory.

    The cache file ``mnist_classifier-v<version>-<variant>.pt`` lives in :func:`dgm.data.data_dir`
    and is written atomically; its test-split accuracy is stored with it and set as
    ``.test_accuracy``. Training is deterministic (CPU, seed 0) and takes about 20 s on one CPU core
    for the offline 8 004-digit split.
    """
    device = torch.device(device) if device is not None else get_device()
    variant = data.mnist_variant()
    key = (variant, str(device))
    if key in _CACHE:
        return _CACHE[key]
    path = data.data_dir() / f"mnist_classifier-v{_VERSION}-{variant}.pt"
    model = DigitClassifier()
    if path.exists():
        extra = load_checkpoint(path, model, map_location="cpu")
    else:
        x, y = data.mnist("train")
        model = train_classifier(x, y, device="cpu")
        xt, yt = data.mnist("test")
        extra = {"test_accuracy": _accuracy(model, xt, yt), "variant": variant}
        save_checkpoint(path, model, **extra)
    model.test_accuracy = float(extra["test_accuracy"])
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    _CACHE[key] = model
    return model


@torch.no_grad()
def confidence_report(images: torch.Tensor, labels: torch.Tensor | None = None, threshold: float = 0.9,
                      classifier: nn.Module | None = None) -> dict:
    """How confidently the classifier recognises ``images`` as digits.

    Returns a dict with ``predicted`` (argmax labels), ``confidence`` (maximum softmax probability),
    ``confident_fraction`` (share with confidence > ``threshold``), ``accuracy`` (share with
    ``predicted == labels``, or None without labels) and ``class_counts`` (predictions per class,
    a quick mode-collapse check).
    """
    images = check_images(images)
    if not (isinstance(threshold, (int, float)) and 0.0 <= threshold < 1.0):
        raise ValueError(f"threshold must be a number in [0, 1), got {threshold!r}")
    if labels is not None and (not isinstance(labels, torch.Tensor) or labels.shape != (len(images),)):
        raise ValueError(f"labels must be a tensor of shape ({len(images)},), got "
                         f"{getattr(labels, 'shape', type(labels).__name__)}")
    classifier = classifier if classifier is not None else mnist_classifier()
    device = next(classifier.parameters()).device
    probs = torch.cat([F.softmax(classifier(images[i:i + 1000].to(device)), dim=1).cpu()
                       for i in range(0, len(images), 1000)]) if len(images) else torch.zeros(0, 10)
    confidence, predicted = probs.max(dim=1) if len(images) else (torch.zeros(0), torch.zeros(0, dtype=torch.long))
    return {
        "predicted": predicted,
        "confidence": confidence,
        "confident_fraction": (confidence > threshold).float().mean().item() if len(images) else float("nan"),
        "accuracy": None if labels is None else (predicted == labels.cpu()).float().mean().item(),
        "class_counts": torch.bincount(predicted, minlength=10).tolist(),
    }
