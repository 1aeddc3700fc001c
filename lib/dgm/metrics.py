"""Sample quality, measured: Fréchet and kernel distances, precision and recall, memorisation.

A generative model is judged by how its samples compare with real data. Every measure here
compares two sets of feature vectors: real digits and generated ones, embedded by the course's
MNIST classifier (:func:`features`, the 64 activations before its last layer).

* :func:`frechet_distance` / :func:`fid` - fit a Gaussian to each feature set and compute
  (Heusel et al., 2017)

      FID = ||mu_r - mu_g||^2 + tr(S_r + S_g - 2 (S_r^{1/2} S_g S_r^{1/2})^{1/2}).        (M.1)

* :func:`kid` - the kernel inception distance (Bińkowski et al., 2018): the unbiased estimate of
  the squared MMD with the cubic kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets,
  with its standard error. Unlike FID it has no bias that depends on the sample size.
* :func:`precision_recall` - Kynkäänniemi et al. (2019): the real manifold is the union of balls
  around each real feature reaching its k-th nearest real neighbour; precision is the share of
  generated samples inside it (are samples realistic?), recall the share of real samples inside
  the generated manifold (is all of the data covered?). Blurry models lose precision,
  mode-dropping models lose recall.
* :func:`memorisation` - distance of each sample to its nearest training image and to its nearest
  test image (pixels): a model that copies its training set is much closer to train than to test.
* :func:`sharpness` - the gradient energy per unit of ink, s(x) = sum |grad x|^2 / sum x (forward
  differences, Eq. 8.5): an edge from 0 to 1 contributes 1, the same edge blurred over w pixels
  1 / w. Binary digits score their edge length per ink pixel; decoded means (a VAE's) score less.
* :func:`sample_quality` / :func:`real_data_floor` - all of the above for a batch of generated
  digits, and the same figures for real test digits at the same sample size (the best a model
  can hope for at that n: FID and KID of real data are not 0 on a finite sample).

**Classifier-FID is not Inception-FID.** Published FIDs embed images with an ImageNet Inception
network whose weights the course cannot download; the course embeds with its own small MNIST
classifier. The numbers are comparable across this course's models and with the real-data floor
printed beside them, not with papers.
"""

from __future__ import annotations

import math

import torch

from dgm import data
from dgm._checks import float_tensor, positive_int
from dgm.classifier import DigitClassifier, check_images, mnist_classifier

__all__ = [
    "features",
    "frechet_distance",
    "fid",
    "kid",
    "precision_recall",
    "memorisation",
    "sharpness",
    "sample_quality",
    "real_data_floor",
]


def _feature_set(x, name: str, min_n: int = 2) -> torch.Tensor:
    """A float64 matrix ``(N, d)`` of finite feature vectors with N >= min_n."""
    x = float_tensor(x, name)
    if x.dim() != 2:
        raise ValueError(f"{name} must be a matrix of feature vectors (N, d), got shape {tuple(x.shape)}")
    if x.shape[0] < min_n:
        raise ValueError(f"{name} must hold at least {min_n} samples, got {x.shape[0]}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x.detach().to(torch.float64)


def _same_dim(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{name_a} and {name_b} must have the same feature dimension, got {a.shape[1]} and {b.shape[1]}")


def features(images, classifier: DigitClassifier | None = None, batch_size: int = 1000) -> torch.Tensor:
    """The classifier's 64 penultimate activations for images ``(N, 1, 28, 28)`` in [0, 1], on the CPU."""
    images = check_images(images)
    classifier = classifier if classifier is not None else mnist_classifier()
    device = next(classifier.parameters()).device
    batch_size = positive_int(batch_size, "batch_size")
    with torch.no_grad():
        out = [classifier.embed(images[i:i + batch_size].to(device)).cpu()
               for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, 64)


def _sqrt_psd(a: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    vals, vecs = torch.linalg.eigh(a)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """Eq. (M.1) between N(mu1, cov1) and N(mu2, cov2): the squared 2-Wasserstein distance of two Gaussians.

    The trace term uses tr((S1^{1/2} S2 S1^{1/2})^{1/2}) = tr((S1 S2)^{1/2}) with symmetric
    matrices only, so it stays real for singular covariances.
    """
    mu1, mu2 = (float_tensor(m, n).to(torch.float64) for m, n in ((mu1, "mu1"), (mu2, "mu2")))
    cov1, cov2 = (float_tensor(c, n).to(torch.float64) for c, n in ((cov1, "cov1"), (cov2, "cov2")))
    d = mu1.shape[-1] if mu1.dim() == 1 else -1
    for name, m in (("mu1", mu1), ("mu2", mu2)):
        if m.dim() != 1 or m.shape[0] != d:
            raise ValueError(f"{name} must be a vector of length d = {d}, got shape {tuple(m.shape)}")
    for name, c in (("cov1", cov1), ("cov2", cov2)):
        if c.shape != (d, d):
            raise ValueError(f"{name} must be a ({d}, {d}) covariance matrix, got shape {tuple(c.shape)}")
        if not bool(torch.isfinite(c).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
    root1 = _sqrt_psd((cov1 + cov1.T) / 2)
    middle = root1 @ ((cov2 + cov2.T) / 2) @ root1
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    value = (mu1 - mu2).pow(2).sum() + cov1.trace() + cov2.trace() - 2 * trace_sqrt
    return max(float(value), 0.0)


def fid(real_features, fake_features) -> float:
    """Classifier-FID: Eq. (M.1) between Gaussians fitted to two feature sets ``(N, d)`` and ``(M, d)``."""
    real = _feature_set(real_features, "real_features")
    fake = _feature_set(fake_features, "fake_features")
    _same_dim(real, fake, "real_features", "fake_features")
    return frechet_distance(real.mean(0), torch.cov(real.T), fake.mean(0), torch.cov(fake.T))


def _mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased squared MMD with the cubic polynomial kernel: diagonal terms k(x_i, x_i) left out."""
    d = x.shape[1]
    kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    m, n = len(x), len(y)
    return ((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
            - 2 * kxy.mean())


def kid(real_features, fake_features, subsets: int = 50, subset_size: int | None = None,
        seed: int = 0) -> tuple[float, float]:
    """Kernel inception distance: the mean of the unbiased squared MMD over random subsets, and its
    standard error (std over subsets / sqrt(subsets)).

    Each subset draws ``min(subset_size, N, M)`` real and generated features without replacement;
    the default is half the smaller set, so that the subsets differ. The estimate is unbiased: its
    expectation is the population MMD^2, 0 when both sets come from one distribution, so it can come
    out slightly negative. The subsets overlap, so the standard error describes the subsampling, not
    a fresh draw of samples: seed-to-seed spread is several times larger (compare models over seeds).
    """
    real = _feature_set(real_features, "real_features")
    fake = _feature_set(fake_features, "fake_features")
    _same_dim(real, fake, "real_features", "fake_features")
    subsets = positive_int(subsets, "subsets")
    smaller = min(len(real), len(fake))
    size = max(2, smaller // 2) if subset_size is None else min(positive_int(subset_size, "subset_size"), smaller)
    gen = torch.Generator().manual_seed(seed)
    values = torch.stack([
        _mmd2_unbiased(real[torch.randperm(len(real), generator=gen)[:size]],
                       fake[torch.randperm(len(fake), generator=gen)[:size]])
        for _ in range(subsets)
    ])
    se = float(values.std() / math.sqrt(subsets)) if subsets > 1 else float("nan")
    return float(values.mean()), se


def _kth_neighbour_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each row of x to its k-th nearest other row."""
    dist = torch.cdist(x, x)
    return dist.kthvalue(k + 1, dim=1).values  # the 1st smallest is the point itself (0)


def precision_recall(real_features, fake_features, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019) with k-nearest-neighbour balls.

    precision = share of fake samples within the k-NN ball of at least one real sample;
    recall    = share of real samples within the k-NN ball of at least one fake sample.
    """
    k = positive_int(k, "k")
    real = _feature_set(real_features, "real_features", min_n=k + 1)
    fake = _feature_set(fake_features, "fake_features", min_n=k + 1)
    _same_dim(real, fake, "real_features", "fake_features")

    def coverage(points: torch.Tensor, centres: torch.Tensor) -> float:
        radius = _kth_neighbour_radius(centres, k)
        inside = torch.cdist(points, centres) <= radius[None, :]
        return inside.any(dim=1).double().mean().item()

    return coverage(fake, real), coverage(real, fake)


def _flat_images(x, name: str) -> torch.Tensor:
    x = float_tensor(x, name)
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch of images (N, ...), got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x.detach().reshape(len(x), -1).to(torch.float64)  # float64: a copy is at distance ~1e-7, not ~1e-3


def memorisation(samples, train, test) -> dict:
    """Pixel distance of every sample to its nearest training image and to its nearest test image.

    Returns ``{"train": (N,), "test": (N,), "ratio": median(train) / median(test)}``. A model that
    generalises is about as close to unseen test digits as to its training digits (ratio near 1,
    as real test digits are); one that memorises sits on its training images (ratio near 0).
    """
    s = _flat_images(samples, "samples")
    tr = _flat_images(train, "train")
    te = _flat_images(test, "test")
    for name, ref in (("train", tr), ("test", te)):
        if ref.shape[1] != s.shape[1]:
            raise ValueError(f"{name} images must have the samples' size ({s.shape[1]} values), got {ref.shape[1]}")
    near_train = torch.cat([torch.cdist(s[i:i + 500], tr).min(1).values for i in range(0, len(s), 500)])
    near_test = torch.cat([torch.cdist(s[i:i + 500], te).min(1).values for i in range(0, len(s), 500)])
    return {"train": near_train, "test": near_test, "ratio": float(near_train.median() / near_test.median())}


def sharpness(images) -> torch.Tensor:
    """Eq. (8.5): per image, sum over pixels of the squared forward differences along rows and
    columns, divided by the image's total intensity (its ink). Images ``(N, C, H, W)`` with values
    >= 0; an image without ink scores 0. Returns a float64 tensor ``(N,)``."""
    x = float_tensor(images, "images")
    if x.dim() != 4 or x.shape[0] == 0 or x.shape[2] < 2 or x.shape[3] < 2:
        raise ValueError(f"images must be a non-empty batch (N, C, H, W) with H, W >= 2, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()) or bool((x < 0).any()):
        raise ValueError("images must be finite and non-negative (intensities)")
    x = x.detach().to(torch.float64)
    rows, cols = x[:, :, 1:] - x[:, :, :-1], x[..., 1:] - x[..., :-1]  # forward differences
    energy = rows.pow(2).sum((1, 2, 3)) + cols.pow(2).sum((1, 2, 3))
    ink = x.sum((1, 2, 3))
    return torch.where(ink > 0, energy / ink.clamp(min=1e-12), torch.zeros_like(ink))


def sample_quality(images, real_images, classifier: DigitClassifier | None = None, k: int = 3,
                   kid_subset_size: int | None = None, seed: int = 0) -> dict:
    """classifier-FID, KID (mean, standard error), precision and recall of ``images`` against ``real_images``.

    ``real_images`` are subsampled (seeded) to as many as ``images``, so that every measure compares
    two sets of one size n: FID is biased upwards at small n, and a model's figures mean something
    only beside the real-data floor at the same n (:func:`real_data_floor`).
    """
    fake = features(images, classifier)
    real_images = check_images(real_images, "real_images")
    if len(real_images) < len(fake):
        raise ValueError(f"real_images must hold at least as many images as images ({len(fake)}), got {len(real_images)}")
    pick = torch.randperm(len(real_images), generator=torch.Generator().manual_seed(seed))[:len(fake)]
    real = features(real_images[pick], classifier)
    precision, recall = precision_recall(real, fake, k)
    kid_mean, kid_se = kid(real, fake, subset_size=kid_subset_size)
    return {"fid": fid(real, fake), "kid": kid_mean, "kid_se": kid_se, "precision": precision, "recall": recall,
            "n": len(images)}


def real_data_floor(n: int, classifier: DigitClassifier | None = None, seed: int = 0, **kwargs) -> dict:
    """:func:`sample_quality` of ``n`` real test digits against the training digits: what a perfect
    model scores at this sample size (the floor to print beside every model's figures)."""
    n = positive_int(n, "n")
    x_train, _ = data.mnist("train")
    x_test, _ = data.mnist("test")
    if n > len(x_test):
        raise ValueError(f"n must be at most the {len(x_test)} test digits, got {n}")
    pick = torch.randperm(len(x_test), generator=torch.Generator().manual_seed(seed))[:n]
    return sample_quality(x_test[pick], x_train, classifier, seed=seed, **kwargs)
