"""Chapter 2, measuring disentanglement: the mutual information gap (MIG) of Chen et al. (2018),
Eq. (2.8), between a VAE's latent codes and the known factors that generated the data (the
beta-VAE experiment of the lecture).

* :func:`mutual_info_gap` - the MIG score, per-factor gaps and the normalised mutual informations,
  returned as a :class:`MIGResult`.
* :func:`discretize` - the equal-width binning of the codes that the plug-in estimates use.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from dgm._checks import positive_int

__all__ = ["MIGResult", "discretize", "mutual_info_gap"]


class MIGResult(NamedTuple):
    """What :func:`mutual_info_gap` returns.

    Attributes:
        score: the MIG, Eq. (2.8), a float in [0, 1].
        gaps: ``(K,)`` the normalised gap of each factor, whose mean is ``score``.
        mi: ``(K, d)`` the normalised mutual information I(z_j; v_k) / H(v_k) of every
            factor k (row) and latent j (column), each in [0, 1].
        entropy: ``(K,)`` the entropy H(v_k) of each factor, nats.
    """

    score: float
    gaps: torch.Tensor
    mi: torch.Tensor
    entropy: torch.Tensor


def _labels_2d(a, name: str, n: int | None = None) -> torch.Tensor:
    a = torch.as_tensor(a)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or len(a) < 2:
        raise ValueError(f"{name} must have shape (N, columns) with N >= 2, got {tuple(a.shape)}")
    if n is not None and len(a) != n:
        raise ValueError(f"{name} must have one row per example ({n}), got {len(a)}")
    if a.is_floating_point() and not torch.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a.detach().cpu()


def discretize(codes, bins: int = 20) -> torch.Tensor:
    """Bin every column of ``codes`` ``(N, d)`` into ``bins`` equal-width bins over its range.

    Returns int64 ``(N, d)`` bin indices in ``0 .. bins - 1`` (a constant column is all 0s).
    """
    codes = _labels_2d(codes, "codes").double()
    bins = positive_int(bins, "bins")
    lo, hi = codes.min(0).values, codes.max(0).values
    width = torch.where(hi > lo, (hi - lo) / bins, torch.ones_like(hi))
    return ((codes - lo) / width).floor().clamp(0, bins - 1).long()


def mutual_info_gap(codes, factors, bins: int = 20) -> MIGResult:
    """The mutual information gap (MIG) of Chen et al. (2018), Eq. (2.8):

        MIG = (1/K) sum_k [ I(z_{j_k}; v_k) - max_{j != j_k} I(z_j; v_k) ] / H(v_k),
        j_k = argmax_j I(z_j; v_k),

    for K known generating factors v_k and d latents z_j: for each factor, how much more the
    most informative latent knows about it than the runner-up, as a fraction of all there is
    to know. 1 means every factor lives in its own latent alone; 0 that the two best latents
    share it equally. The mutual informations are histogram (plug-in) estimates: each latent is
    cut into ``bins`` equal-width bins over its range (:func:`discretize`), each factor is
    already discrete (its distinct values are the categories).

    Args:
        codes: ``(N, d)`` latent codes, e.g. the encoder means mu_phi(x), d >= 2.
        factors: ``(N, K)`` the factor values of the same N examples (discrete).
        bins: number of bins per latent.

    Returns:
        a :class:`MIGResult` (``score``, per-factor ``gaps``, normalised ``mi`` matrix, ``entropy``).
    """
    codes = _labels_2d(codes, "codes")
    if codes.shape[1] < 2:
        raise ValueError(f"codes needs at least 2 latents (columns) for a gap, got {codes.shape[1]}")
    factors = _labels_2d(factors, "factors", len(codes))
    # plug-in I(A; B) in nats, I(A; A) = H(A); imported here because sklearn is slow to import and
    # only the MIG needs it
    from sklearn.metrics import mutual_info_score

    z, factors_np = discretize(codes, bins).numpy(), factors.numpy()
    entropy = torch.tensor([mutual_info_score(v, v) for v in factors_np.T], dtype=torch.float64)
    if not torch.all(entropy > 0):
        raise ValueError("every factor must take at least two values (a constant has no information)")
    mi = torch.tensor([[mutual_info_score(v, zj) for zj in z.T] for v in factors_np.T],
                      dtype=torch.float64) / entropy[:, None]
    top2 = torch.topk(mi, 2, dim=1).values
    gaps = top2[:, 0] - top2[:, 1]
    return MIGResult(float(gaps.mean()), gaps, mi, entropy)
