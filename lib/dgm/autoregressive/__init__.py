"""Chapter 6: autoregressive models, the exact likelihood by the chain rule.

Lecture notation: an observation x = (x_1, ..., x_D) (binary vector, or an image whose D pixels,
each channel included, take K = ``levels`` values), an order of its dimensions, and for each i the
conditional p(x_i | x_{<i}) given by the model's ``logits``. Every model of the chapter is the
chain rule

    p(x) = prod_{i=1}^D p(x_i | x_{<i}),      log p(x) = sum_{i=1}^D log p(x_i | x_{<i}),        (6.1)

with a network that computes all D conditionals in one pass without looking ahead:

    FVBN:      p(x_i = 1 | x_{<i}) = sigmoid(b_i + sum_{j<i} W_ij x_j)                            (6.2)
    MADE:      masks M^l[k, k'] = 1[m_l(k) >= m_{l-1}(k')],  M^out[i, k] = 1[m_0(i) > m_L(k)]      (6.3)
    PixelCNN:  masked convolutions, type A (centre excluded) then type B (centre included)       (6.4)
    gated:     y = tanh(W_f * x + V_f c) (.) sigmoid(W_g * x + V_g c), vertical + horizontal    (6.5)
    likelihood: log P(x) = sum_i log softmax(logits_i)[x_i],  bpd = -log2 P(x) / D             (6.6)
    sampling:  x_i ~ softmax(logits_i / T), i = 1..D in order (completion: known x_i copied)    (6.7)
    categorical input: u[k * C + c] = 1[x_c = k], the one-hot of each level (K per channel)      (6.8)

The modules, in the order of the lecture:

* :mod:`dgm.autoregressive.binary` - :func:`all_binary` (the 2^D patterns of a small D),
  :class:`BinaryAutoregressive` (Eq. (6.1) for Bernoulli conditionals: ``log_prob``, ``sample``)
  and :class:`FVBN`, Eq. (6.2).
* :mod:`dgm.autoregressive.made` - :class:`MaskedLinear`, :func:`made_degrees`, :func:`made_masks`
  and :class:`MADE` (Germain et al., 2015), Eq. (6.3), for any order.
* :mod:`dgm.autoregressive.masked_conv` - :func:`conv_mask` and :class:`MaskedConv2d`, Eq. (6.4).
* :mod:`dgm.autoregressive.pixelcnn` - :class:`ImageAutoregressive` (the interface of the image
  models: ``model(x, c=None)`` -> logits ``(N, K, C, H, W)``; ``categorical=True`` reads the
  levels as categories, Eq. (6.8): codebook indices, characters) and :class:`PixelCNN` (van den
  Oord et al., 2016).
* :mod:`dgm.autoregressive.gated` - :class:`GatedPixelCNN` (van den Oord et al., "Conditional image
  generation with PixelCNN decoders", 2016), Eq. (6.5), optionally class-conditional.
* :mod:`dgm.autoregressive.receptive` - :func:`receptive_field`, by autograd: the plain stack's
  blind spot and the gated stacks' full view.
* :mod:`dgm.autoregressive.likelihood` - :func:`log_prob` (nats per image), :func:`bits_per_dim`,
  Eq. (6.6), and :func:`nll_loss`, the loss of :func:`dgm.train.fit`.
* :mod:`dgm.autoregressive.sampling` - :func:`sample`, Eq. (6.7), with temperature and completion.

Images follow the course's data convention: floats k / (K - 1) in [0, 1] (binarised digits with
K = 2, MNIST / 255 with K = 256); integer levels are accepted wherever images are scored. The
bits/dim of Eq. (6.6) are in the unit of chapter 4's :func:`dgm.flows.bits_per_dim` on the same
K-level data (see :mod:`dgm.autoregressive.likelihood`). Nothing here picks a device.
"""

from dgm.autoregressive.binary import FVBN, BinaryAutoregressive, all_binary, bernoulli_log_prob
from dgm.autoregressive.gated import GatedLayer, GatedPixelCNN, gate
from dgm.autoregressive.likelihood import bits_per_dim, log_prob, nll_loss
from dgm.autoregressive.made import MADE, MaskedLinear, made_degrees, made_masks
from dgm.autoregressive.masked_conv import MASK_TYPES, MaskedConv2d, conv_mask
from dgm.autoregressive.pixelcnn import ImageAutoregressive, PixelCNN
from dgm.autoregressive.receptive import receptive_field
from dgm.autoregressive.sampling import sample

__all__ = [
    "all_binary",
    "bernoulli_log_prob",
    "BinaryAutoregressive",
    "FVBN",
    "MaskedLinear",
    "made_degrees",
    "made_masks",
    "MADE",
    "MASK_TYPES",
    "conv_mask",
    "MaskedConv2d",
    "ImageAutoregressive",
    "PixelCNN",
    "gate",
    "GatedLayer",
    "GatedPixelCNN",
    "receptive_field",
    "log_prob",
    "bits_per_dim",
    "nll_loss",
    "sample",
]
