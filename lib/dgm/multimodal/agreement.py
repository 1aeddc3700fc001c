"""Caption agreement: does an image show what its caption says? Eq. (7.3).

Every word of a caption is checkable on the image: the digit by the course's judge
(:func:`dgm.classifier.mnist_classifier`, the argmax of its logits) and the two attributes by the
measurements of :func:`dgm.data.captions.attributes`. For images x_1..x_N generated from captions
c_1..c_N, the agreement on an attribute a (digit, thickness, slant) is the fraction

    A_a = (1 / N) sum_i 1[a(x_i) = a(c_i)],     A_all = (1 / N) sum_i prod_a 1[a(x_i) = a(c_i)]   (7.3)

(``all``: the three at once). The same fractions compare two lists of captions (a captioner's
output with the true captions, or a round trip text -> image -> text), where a generated caption
that does not follow the grammar agrees on nothing.

* :func:`describe` - the caption of each image as the judge and the measurements read it.
* :func:`caption_agreement` - Eq. (7.3) for images and their requested captions.
* :func:`text_agreement` - Eq. (7.3) between predicted and target captions.
"""

from __future__ import annotations

import torch

from dgm.classifier import check_images
from dgm.data.captions import attributes, caption, detokenize, parse

__all__ = ["ATTRIBUTES", "describe", "caption_agreement", "text_agreement"]

ATTRIBUTES = ("digit", "thickness", "slant")


def _texts(captions, name: str) -> list[str]:
    if isinstance(captions, str):
        return [captions]
    if isinstance(captions, torch.Tensor):
        if captions.is_floating_point():
            raise TypeError(f"{name} must be caption strings or integer token ids, got dtype {captions.dtype}")
        return detokenize(captions)
    if not isinstance(captions, (list, tuple)):
        raise TypeError(f"{name} must be a list of caption strings or a token tensor, got {type(captions).__name__}")
    return [str(c) for c in captions]


@torch.no_grad()
def _judge_digits(x: torch.Tensor, classifier) -> torch.Tensor:
    if classifier is None:
        from dgm.classifier import mnist_classifier

        classifier = mnist_classifier()
    device = next(classifier.parameters()).device
    return torch.cat([classifier(x[i:i + 1000].to(device)).argmax(1).cpu() for i in range(0, len(x), 1000)])


def describe(x, classifier=None) -> list[str]:
    """The caption of each image ``(N, 1, 28, 28)``: the judge's digit, the measured attributes.

    ``classifier``: a module mapping images to 10 logits (default: the course's
    :func:`dgm.classifier.mnist_classifier`).
    """
    x = check_images(x, "x")
    digits = _judge_digits(x, classifier)
    thick, slanted = attributes(x)
    return [caption(d, t, s) for d, t, s in zip(digits.tolist(), thick.tolist(), slanted.tolist())]


def text_agreement(predicted, target) -> dict[str, float]:
    """Eq. (7.3) between captions: fractions of ``predicted[i]`` that agree with ``target[i]``.

    Args:
        predicted: caption strings, or token ids ``(N, L)``; one off the grammar agrees on nothing.
        target: caption strings or token ids of the grammar (else ValueError naming the caption).

    Returns:
        ``{"digit", "thickness", "slant", "all", "valid"}``: the fraction agreeing on each word,
        on all three, and the fraction of predicted captions that follow the grammar.
    """
    predicted, target = _texts(predicted, "predicted"), _texts(target, "target")
    if len(predicted) != len(target):
        raise ValueError(f"predicted has {len(predicted)} captions for {len(target)} in target")
    if not target:
        raise ValueError("target must hold at least one caption")
    wanted = []
    for i, text in enumerate(target):
        try:
            wanted.append(parse(text))
        except ValueError as err:
            raise ValueError(f"target[{i}] is not a caption of the grammar: {err}") from None
    got = []
    for text in predicted:
        try:
            got.append(parse(text))
        except ValueError:
            got.append(None)
    hits = torch.tensor([[g is not None and g[k] == w[k] for k in range(3)] for g, w in zip(got, wanted)],
                        dtype=torch.float64)
    # parse returns (digit, thick, slanted), the order of ATTRIBUTES
    out = {name: hits[:, k].mean().item() for k, name in enumerate(ATTRIBUTES)}
    out["all"] = hits.prod(1).mean().item()
    out["valid"] = sum(g is not None for g in got) / len(got)
    return out


def caption_agreement(x, captions, classifier=None) -> dict[str, float]:
    """Eq. (7.3): how often image ``x[i]`` shows what ``captions[i]`` asks for.

    Args:
        x: images ``(N, 1, 28, 28)`` in [0, 1] (e.g. generated from ``captions``).
        captions: N caption strings of the grammar, or their token ids ``(N, L)``.
        classifier: the digit judge (default :func:`dgm.classifier.mnist_classifier`).

    Returns:
        ``{"digit", "thickness", "slant", "all"}``: the fraction of images agreeing on each word
        and on all three.
    """
    x = check_images(x, "x")
    captions = _texts(captions, "captions")
    if len(captions) != len(x):
        raise ValueError(f"captions has {len(captions)} captions for {len(x)} images in x")
    for i, text in enumerate(captions):
        try:
            parse(text)
        except ValueError as err:
            raise ValueError(f"captions[{i}] is not a caption of the grammar: {err}") from None
    out = text_agreement(describe(x, classifier), captions)
    del out["valid"]
    return out
