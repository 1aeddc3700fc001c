"""The flow itself, Eqs. (4.2)-(4.3), and the two ready-made flows of the lecture.

* :class:`Flow` composes transforms f_1, ..., f_K over the base p_Z = N(0, I): ``log_prob(x)`` by the
  change of variables (4.3), ``sample(n)``, and ``trajectory(z)`` (the layer-by-layer picture).
* :class:`RealNVP` is a ready 2-D (or D-dimensional) coupling flow, Eq. (4.4).
* :class:`GlowMLP` stacks ActNorm (4.5), mixing (1x1 convolution (4.6) or permutation) and coupling
  steps behind a pre-processing layer ((4.9) or (4.10)), for flattened images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dgm._checks import finite_number, positive_int, shape_tuple
from dgm.distributions import standard_normal_log_prob
from dgm.flows.base import Transform, _check_batch, _inside_flow
from dgm.flows.coupling import AffineCoupling, alternating_masks
from dgm.flows.elementwise import LogitTransform, PiecewiseLinearCDF
from dgm.flows.glow import ActNorm, Invertible1x1Conv, Permutation

__all__ = ["Flow", "GlowMLP", "RealNVP"]


class Flow(Transform):
    """A normalizing flow: transforms f_1, ..., f_K over the base p_Z = N(0, I), Eqs. (4.2)-(4.3).

    x = f_K o ... o f_1 (z) with z ~ p_Z. ``transforms[0]`` acts on the base sample z,
    ``transforms[-1]`` produces the data x.

    * ``forward(z) -> (x, log_det)`` and ``inverse(x) -> (z, log_det)``: the whole chain, a
      :class:`Transform` itself (log-dets summed over the layers).
    * ``log_prob(x)`` = log p_Z(f^{-1}(x)) + log |det J_{f^{-1}}(x)|, Eq. (4.3), shape ``(N,)``.
    * ``sample(n, temperature=1.0)``: x = f(T z), z ~ N(0, I) (T < 1 samples the "typical" core).
    * ``trajectory(z)``: [z_0 = z, z_1, ..., z_K = x], every intermediate result, for the
      layer-by-layer pictures.

    Args:
        transforms: the layers, a sequence of :class:`Transform`.
        event_shape: the shape of one z (and one x), e.g. ``(2,)`` or ``(784,)``.
    """

    def __init__(self, transforms: Sequence[Transform], event_shape):
        super().__init__()
        transforms = list(transforms)
        if not transforms:
            raise ValueError("transforms must be a non-empty sequence of Transform")
        for i, t in enumerate(transforms):
            if not isinstance(t, Transform):
                raise TypeError(f"transforms[{i}] must be a dgm.flows.Transform, got {type(t).__name__}")
        self.transforms = nn.ModuleList(transforms)
        self.event_shape = shape_tuple(event_shape, "event_shape")

    @property
    def num_layers(self) -> int:
        return len(self.transforms)

    def _param(self) -> torch.Tensor | None:
        for p in self.parameters():
            return p
        for b in self.buffers():
            if b.is_floating_point():
                return b
        return None

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = f(z) through every layer, and log |det J_f(z)| = sum_k log |det J_{f_k}(z_{k-1})|."""
        x = _check_batch(z, "z", self.event_shape)
        total = x.new_zeros(x.shape[0])
        with _inside_flow():
            for t in self.transforms:
                x, ld = t(x)
                total = total + ld
        return x, total

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = f^{-1}(x) through every layer in reverse, and log |det J_{f^{-1}}(x)|, Eq. (4.3)."""
        z = _check_batch(x, "x", self.event_shape)
        total = z.new_zeros(z.shape[0])
        with _inside_flow():
            for t in reversed(self.transforms):
                z, ld = t.inverse(z)
                total = total + ld
        return z, total

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p_X(x) = log p_Z(f^{-1}(x)) + log |det J_{f^{-1}}(x)|, Eqs. (4.2)-(4.3); shape ``(N,)``, nats."""
        z, log_det = self.inverse(x)
        return standard_normal_log_prob(z, event_dims=z.dim() - 1) + log_det

    def base_sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None):
        """z ~ N(0, T^2 I), ``(n, *event_shape)`` on the model's device."""
        n = positive_int(n, "n")
        temperature = finite_number(temperature, "temperature", minimum=0)
        ref = self._param()
        device = ref.device if ref is not None else torch.device("cpu")
        dtype = ref.dtype if ref is not None else torch.get_default_dtype()
        gen_device = generator.device if generator is not None else device
        z = torch.randn((n, *self.event_shape), generator=generator, device=gen_device, dtype=dtype)
        return temperature * z.to(device)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """x = f(T z), z ~ N(0, I): ``n`` samples ``(n, *event_shape)`` (no gradients)."""
        return self.forward(self.base_sample(n, temperature, generator))[0]

    @torch.no_grad()
    def trajectory(self, z: torch.Tensor) -> list[torch.Tensor]:
        """[z_0 = z, z_1 = f_1(z_0), ..., z_K = x]: K + 1 tensors (no gradients)."""
        x = _check_batch(z, "z", self.event_shape)
        out = [x]
        with _inside_flow():
            for t in self.transforms:
                x, _ = t(x)
                out.append(x)
        return out

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}, num_layers={self.num_layers}"


class RealNVP(Flow):
    """A ready RealNVP (Dinh et al., 2017) for D-dimensional vectors (default D = 2):
    ``num_layers`` affine couplings, Eq. (4.4), whose masks alternate (for D = 2: the first layer
    transforms x_2 given x_1, the next x_1 given x_2, ...). Each conditioner is an MLP with
    ``num_hidden_layers`` hidden layers of width ``hidden``.

    Args:
        dim: D.
        num_layers: number of coupling layers K (>= 2 so that every coordinate is transformed).
        hidden: hidden width of the conditioners.
        num_hidden_layers: hidden layers per conditioner.
        activation: ``"relu"``, ``"silu"``, ``"tanh"`` or ``"leaky_relu"``.
    """

    def __init__(self, dim: int = 2, num_layers: int = 8, hidden: int = 64, num_hidden_layers: int = 2,
                 activation: str = "relu"):
        num_layers = positive_int(num_layers, "num_layers")
        if num_layers < 2:
            raise ValueError(f"num_layers must be >= 2 so that every coordinate is transformed, got {num_layers}")
        masks = alternating_masks(dim, num_layers)
        super().__init__([AffineCoupling(m, hidden, num_hidden_layers, activation) for m in masks], (dim,))
        self.dim = dim


class GlowMLP(Flow):
    """A Glow-style flow for flattened images (or any vectors) of D features:

        data y -> [pre-processing] -> K x (ActNorm -> mixing -> AffineCoupling) -> z

    read from the data side. The pre-processing maps [0, 1]^D to R^D: the logit, Eq. (4.9)
    (``"logit"``), or per-pixel histogram CDFs followed by the normal quantile, Eq. (4.10)
    (``"histogram"``: every pixel's marginal is right from the start; initialise it with
    ``model.preprocess.initialize(y_train)``), or nothing (None: data already on R^D). Then each
    step normalises (ActNorm, Eq. (4.5)), mixes the features and applies an affine coupling with an
    MLP conditioner, Eq. (4.4), whose mask alternates between the even and the odd features. The
    mixing is Glow's invertible 1x1 convolution of one "pixel" with D channels, Eq. (4.6)
    (``mixing="lu"``: O(D^2) per example, fine for D = 64), or a fixed random
    :class:`Permutation` (``"permutation"``: free, the choice for D = 784 on a CPU), or nothing.

    Args:
        dim: D (e.g. 64 for 8x8 digits, 784 for MNIST).
        num_layers: K, the number of steps.
        hidden: hidden width of the coupling MLPs.
        num_hidden_layers: hidden layers per coupling MLP.
        mixing: ``"lu"``, ``"permutation"`` or None.
        preprocess: ``"logit"``, ``"histogram"`` or None.
        logit_alpha: alpha of the logit (default 1e-6, as for MNIST in the MAF paper; 0.05, the
            RealNVP choice, is much worse on MNIST's many exactly-black pixels).
        num_bins: bins of the ``"histogram"`` pre-processing (the number of pixel levels).
        conv_init: initial W of the 1x1 convolutions, ``"identity"`` (default; well conditioned
            for hundreds of features) or ``"rotation"``.
        seed: seed of the random permutations / rotations.

    Attributes:
        preprocess: the pre-processing layer (the last transform), or None.
    """

    def __init__(self, dim: int, num_layers: int = 8, hidden: int = 256, num_hidden_layers: int = 1,
                 mixing: str | None = "lu", preprocess: str | None = "logit", logit_alpha: float = 1e-6,
                 num_bins: int = 256, conv_init: str = "identity", seed: int = 0):
        num_layers = positive_int(num_layers, "num_layers")
        if mixing not in ("lu", "permutation", None):
            raise ValueError(f"mixing must be 'lu', 'permutation' or None, got {mixing!r}")
        if preprocess not in ("logit", "histogram", None):
            raise ValueError(f"preprocess must be 'logit', 'histogram' or None, got {preprocess!r}")
        masks = alternating_masks(dim, num_layers)
        gen = torch.Generator().manual_seed(seed)
        layers: list[Transform] = []
        for m in masks:  # base side first
            layers.append(AffineCoupling(m, hidden, num_hidden_layers))
            if mixing == "lu":
                layers.append(Invertible1x1Conv(dim, lu=True, init=conv_init, generator=gen))
            elif mixing == "permutation":
                layers.append(Permutation(dim, generator=gen))
            layers.append(ActNorm(dim))
        pre = None
        if preprocess == "logit":
            pre = LogitTransform(logit_alpha)
        elif preprocess == "histogram":
            pre = PiecewiseLinearCDF(dim, num_bins)
        if pre is not None:
            layers.append(pre)
        super().__init__(layers, (dim,))
        self.dim = dim
        self.mixing = mixing
        self.preprocess = pre
