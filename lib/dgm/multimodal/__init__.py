"""Chapter 7: conditional and multimodal generation, caption <-> digit.

The second modality is text: every MNIST digit's caption ``"a <thin|thick> <upright|slanted>
<digit>"`` is computed from its pixels by :mod:`dgm.data.captions` (grammar, vocabulary, tokens).
Equation numbers are those of ``lectures/07_multimodal.md``:

* (7.1) caption embedding   e(c) = W (1/|c|) sum_{j in c} h_j,  h = Transformer(E[t_j] + P_j),
                            padding masked out
* (7.2) captioner           p_theta(t | x) = prod_{j=1}^L p_theta(t_j | t_{<j}, x)  (chapter 6's chain rule)
* (7.3) caption agreement   A_a = (1/N) sum_i 1[a(x_i) = a(c_i)],  a in {digit, thickness, slant}
* (7.4) Bayes for scores    grad log p(x | c) = grad log p(x) + grad log p(c | x)
* (7.5) classifier guidance s_gamma = grad log p(x) + gamma grad log p(c | x)
* (7.6) classifier-free     s_w = s(x, null) + w (s(x, c) - s(x, null))  (= Eq. (5.10))
* (7.7) FiLM conditioning   h <- SiLU((1 + gamma(u)) (W h + b) + beta(u)),  u = SiLU(emb(t) + e(c))
* (7.8) guidance on eps     eps_gamma = eps(z_t, t, "") - gamma sqrt(1 - abar_t) grad log p_phi(c | z_t, t)
* (7.9) DALL-E joint        log p(c, x) = sum_j log p(t_j | t_<j) + sum_m log p(k_m | t, k_<m)
* (7.10) summary caption    c_hat = argmax_c sum_i log p_theta(c | x_i)  (the lecture, with the captioner)

The modules, in the order of the lecture:

* :mod:`dgm.multimodal.text`      - :class:`CaptionEncoder`, Eq. (7.1); :func:`caption_mask`
* :mod:`dgm.multimodal.captioner` - :class:`Captioner` (``log_prob``, greedy / sampled ``sample``),
  :func:`captioner_loss`, Eq. (7.2)
* :mod:`dgm.multimodal.agreement` - :func:`describe`, :func:`caption_agreement`,
  :func:`text_agreement`, Eq. (7.3), the digit judged by :func:`dgm.classifier.mnist_classifier`
* :mod:`dgm.multimodal.guidance`  - :func:`gaussian_mixture`, :func:`mixture_scores` (the three
  exact scores of Eq. (7.4)), :func:`classifier_guided_score` (7.5), :func:`guided_score` (7.6)

Images are ``(N, 1, 28, 28)`` floats in [0, 1]; captions are strings of the grammar or token ids
``(N, L)`` starting with ``<bos>``. Nothing here picks a device.
"""

from dgm.multimodal.agreement import ATTRIBUTES, caption_agreement, describe, text_agreement
from dgm.multimodal.captioner import Captioner, captioner_loss
from dgm.multimodal.dalle import TokenTransformer, token_loss
from dgm.multimodal.guidance import classifier_guided_score, gaussian_mixture, guided_score, mixture_scores
from dgm.multimodal.latent import (CaptionDenoiser, CaptionEpsLoss, CaptionGuided, ClassifierGuided,
                                   NoisyCaptionClassifier, NoisyClassifierLoss, drop_words, word_targets)
from dgm.multimodal.text import CaptionEncoder, caption_mask

__all__ = [
    "CaptionEncoder",
    "caption_mask",
    "Captioner",
    "captioner_loss",
    "ATTRIBUTES",
    "describe",
    "caption_agreement",
    "text_agreement",
    "gaussian_mixture",
    "mixture_scores",
    "classifier_guided_score",
    "guided_score",
    "drop_words",
    "CaptionDenoiser",
    "CaptionEpsLoss",
    "CaptionGuided",
    "word_targets",
    "NoisyCaptionClassifier",
    "NoisyClassifierLoss",
    "ClassifierGuided",
    "TokenTransformer",
    "token_loss",
]
