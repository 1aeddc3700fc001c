"""dgm.classifier: the MNIST judge of generated digits.

References: softmax probabilities chosen in closed form (logits = log p), labels known by
construction, and the real held-out MNIST test split.
"""

import math

import pytest
import torch
from torch import nn

from dgm import classifier, data


class _FixedLogits(nn.Module):
    """Returns logits log(p_i) for image i, so softmax gives back p_i exactly."""

    def __init__(self, probs):
        super().__init__()
        self.logits = nn.Parameter(torch.log(probs), requires_grad=False)

    def forward(self, x):
        return self.logits[x[:, 0, 0, 0].long()]


def test_confidence_report_matches_closed_form_probabilities():
    probs = torch.tensor([[0.95] + [0.05 / 9] * 9,            # confident 0
                          [0.02] * 3 + [0.82] + [0.02] * 6,   # not confident (0.82 < 0.9) 3
                          [0.01] * 7 + [0.91] + [0.01] * 2,   # confident 7
                          [0.1] * 10])                        # uniform: argmax 0, confidence 0.1
    images = torch.zeros(4, 1, 28, 28)
    images[:, 0, 0, 0] = torch.arange(4.0)
    report = classifier.confidence_report(images, labels=torch.tensor([0, 3, 1, 5]), classifier=_FixedLogits(probs))
    assert report["predicted"].tolist()[:3] == [0, 3, 7]
    assert torch.allclose(report["confidence"], torch.tensor([0.95, 0.82, 0.91, 0.1]), atol=1e-6)
    assert report["confident_fraction"] == pytest.approx(2 / 4)
    assert report["accuracy"] == pytest.approx(2 / 4)
    assert sum(report["class_counts"]) == 4 and report["class_counts"][7] == 1
    assert classifier.confidence_report(images, classifier=_FixedLogits(probs), threshold=0.8)["confident_fraction"] \
        == pytest.approx(3 / 4)
    assert classifier.confidence_report(images, classifier=_FixedLogits(probs))["accuracy"] is None


def _bars(n, seed):
    """Class k = a bright 4x4 square at a class-specific place, plus noise: labels known by construction."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = 0.2 * torch.rand(n, 1, 28, 28, generator=g)
    for i, k in enumerate(y.tolist()):
        r, c = 4 + 10 * (k // 5), 2 + 5 * (k % 5)
        x[i, 0, r:r + 4, c:c + 4] = 1.0
    return x, y


def test_train_classifier_learns_labels_known_by_construction(one_thread):
    x, y = _bars(600, seed=0)
    xt, yt = _bars(300, seed=1)
    model = classifier.train_classifier(x, y, epochs=3, device="cpu")
    report = classifier.confidence_report(xt, yt, classifier=model)
    assert report["accuracy"] > 0.95
    assert not model.training
    with torch.no_grad():  # e.g. mnist_classifier's first use from inside dgm.metrics.features
        again = classifier.train_classifier(x, y, epochs=3, device="cpu")
    for p, q in zip(model.parameters(), again.parameters()):
        assert torch.equal(p, q)


def test_course_classifier_recognises_real_test_digits_and_not_noise(one_thread):
    model = classifier.mnist_classifier(device="cpu")
    x, y = data.mnist("test")
    real = classifier.confidence_report(x, y, classifier=model)
    assert real["accuracy"] > 0.95
    assert model.test_accuracy == pytest.approx(real["accuracy"], abs=1e-6)
    g = torch.Generator().manual_seed(123)
    for not_digits in (torch.rand(300, 1, 28, 28, generator=g),                                  # pixel noise
                       torch.nn.functional.avg_pool2d(torch.rand(300, 1, 28, 28, generator=g), 5, 1, 2),
                       torch.zeros(20, 1, 28, 28)):
        noise = classifier.confidence_report(not_digits, classifier=model)
        assert noise["confident_fraction"] < real["confident_fraction"] - 0.5
    cached = list(data.data_dir().glob("mnist_classifier-v*-*.pt"))
    assert cached, "the trained classifier is cached in the data folder"
    assert classifier.mnist_classifier(device="cpu") is model     # in-memory cache
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(2, 28, 28), "images must have shape"),
    (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "images must be a floating-point"),
    (torch.full((2, 1, 28, 28), math.nan), "images contains NaN"),
    ([[0.0]], "images must be a torch.Tensor"),
])
def test_bad_images_are_named(bad, match):
    with pytest.raises((TypeError, ValueError), match=match):
        classifier.confidence_report(bad, classifier=classifier.DigitClassifier())


def test_bad_threshold_and_labels_are_named():
    images = torch.zeros(3, 1, 28, 28)
    with pytest.raises(ValueError, match="threshold"):
        classifier.confidence_report(images, threshold=1.5, classifier=classifier.DigitClassifier())
    with pytest.raises(ValueError, match="labels"):
        classifier.confidence_report(images, labels=torch.zeros(2), classifier=classifier.DigitClassifier())
    with pytest.raises(ValueError, match="y must"):
        classifier.train_classifier(images, torch.tensor([0, 1, 12]))
