"""Chapter 4: normalizing flows.

Lecture notation: a base variable z ~ p_Z (here N(0, I)), an invertible, differentiable flow map
x = f(z) with inverse z = f^{-1}(x) and Jacobian J. The density of x follows from the change of
variables formula,

    1-D:  p_X(x) = p_Z(f^{-1}(x)) |d f^{-1}(x) / dx|                                      (4.1)

    n-D:  p_X(x) = p_Z(f^{-1}(x)) |det J_{f^{-1}}(x)| = p_Z(z) |det J_f(z)|^{-1},  z = f^{-1}(x)   (4.2)

and for a composition x = f_K o ... o f_1 (z_0), z_k = f_k(z_{k-1}), x = z_K, the log-likelihood
is a sum over the layers,

    log p_X(x) = log p_Z(z_0) - sum_{k=1}^K log |det J_{f_k}(z_{k-1})|.                   (4.3)

Every transform is a bijection with the interface of :class:`Transform`: ``forward(x) -> (y,
log_det)`` from the base towards the data (sampling), ``inverse(y) -> (x, log_det)`` from the data
towards the base (density evaluation, Eq. (4.3)). The modules, in the order of the lecture:

* :mod:`dgm.flows.base` - :class:`Transform`, the interface, and the input check of every layer.
* :mod:`dgm.flows.coupling` - :class:`AffineCoupling`, RealNVP's affine coupling layer (Dinh et
  al., 2017), Eq. (4.4), and its masks (:func:`alternating_masks`, :func:`checkerboard_mask`).
* :mod:`dgm.flows.glow` - :class:`ActNorm`, Eq. (4.5), :class:`Invertible1x1Conv`, Eq. (4.6)
  (Kingma & Dhariwal, 2018), and the fixed :class:`Permutation` (log-det 0).
* :mod:`dgm.flows.elementwise` - :class:`LogitTransform`, Eq. (4.9), and
  :class:`PiecewiseLinearCDF`, per-pixel histogram marginals, Eq. (4.10).
* :mod:`dgm.flows.models` - :class:`Flow` (transforms over a standard normal base, with
  ``log_prob(x)``, ``sample(n)`` and ``trajectory(z)``), :class:`RealNVP` (a ready coupling flow
  for vectors) and :class:`GlowMLP` (ActNorm, mixing and coupling steps behind a pre-processing
  layer, for flattened images).
* :mod:`dgm.flows.images` - :func:`dequantize` (uniform dequantization, Eq. (4.7)) and
  :func:`bits_per_dim` (Eq. (4.8)).
* :mod:`dgm.flows.training` - :func:`flow_loss`, the negative log-likelihood with the
  ``loss_fn(model, batch)`` signature of :func:`dgm.train.fit`, and :func:`fit_flow`, that fit with
  gradient clipping and a cosine learning-rate decay (maximum likelihood on sharp data is spiky
  without them).

The base density log p_Z is :func:`dgm.distributions.standard_normal_log_prob` with
``event_dims=z.dim() - 1``. Nothing here picks a device: a model lives where you ``.to()`` it, and
every function works on the device of its inputs.
"""

from dgm.flows.base import Transform
from dgm.flows.coupling import AffineCoupling, alternating_masks, checkerboard_mask
from dgm.flows.elementwise import LogitTransform, PiecewiseLinearCDF
from dgm.flows.glow import ActNorm, Invertible1x1Conv, Permutation
from dgm.flows.images import bits_per_dim, dequantize
from dgm.flows.models import Flow, GlowMLP, RealNVP
from dgm.flows.training import fit_flow, flow_loss

__all__ = [
    "Transform",
    "AffineCoupling",
    "ActNorm",
    "Invertible1x1Conv",
    "LogitTransform",
    "Permutation",
    "PiecewiseLinearCDF",
    "Flow",
    "RealNVP",
    "GlowMLP",
    "alternating_masks",
    "checkerboard_mask",
    "dequantize",
    "bits_per_dim",
    "flow_loss",
    "fit_flow",
]
