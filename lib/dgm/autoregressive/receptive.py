"""Which input pixels reach the output at one pixel: the receptive field, by autograd.

The gradient of the logits at pixel (r, c) with respect to the input image is non-zero exactly
where the input can change them. The masks make it *structurally* zero after (r, c) in raster
order; the plain PixelCNN's stack also leaves zeros *before* (r, c), above and to the right:
its blind spot. The gated PixelCNN's two stacks leave none, Eq. (6.5).
"""

from __future__ import annotations

import torch

from dgm._checks import positive_int, shape_tuple
from dgm.autoregressive.pixelcnn import ImageAutoregressive

__all__ = ["receptive_field"]


def receptive_field(model, shape, pixel, channel: int | None = None, c=None, trials: int = 3,
                    seed: int = 0) -> torch.Tensor:
    """The boolean ``(H, W)`` map of input pixels on which the logits at ``pixel`` depend.

    Computed with autograd: the gradient of a random projection of the logits at ``pixel`` (of
    data channel ``channel``, or of all channels) with respect to the first layer's input
    ``model.features(x)`` (2x - 1, or the one-hot levels of a categorical model, Eq. (6.8)) at
    ``trials`` random inputs, non-zero in any feature of a pixel in any trial (several trials so
    that no dependence cancels by chance).

    Args:
        model: a :class:`PixelCNN` or :class:`GatedPixelCNN`.
        shape: ``(H, W)`` or ``(C, H, W)``.
        pixel: ``(r, c)``, the output position.
        channel: the data channel of the output (None: any).
        c: one class label (int) for a class-conditional model.
        trials: random inputs tried.
        seed: seed of the random inputs and projections.
    """
    if not isinstance(model, ImageAutoregressive):
        raise TypeError(f"model must be a PixelCNN or GatedPixelCNN, got {type(model).__name__}")
    shape = shape_tuple(shape, "shape")
    if len(shape) == 2:
        shape = (model.in_channels, *shape)
    if len(shape) != 3 or shape[0] != model.in_channels:
        raise ValueError(f"shape must be (H, W) or ({model.in_channels}, H, W), got {shape!r}")
    _, height, width = shape
    if (not isinstance(pixel, (tuple, list)) or len(pixel) != 2
            or not all(isinstance(p, int) and not isinstance(p, bool) for p in pixel)
            or not (0 <= pixel[0] < height and 0 <= pixel[1] < width)):
        raise ValueError(f"pixel must be a pair (r, c) inside the {height}x{width} image, got {pixel!r}")
    if channel is not None and not (isinstance(channel, int) and 0 <= channel < model.in_channels):
        raise ValueError(f"channel must be None or an int in [0, {model.in_channels - 1}], got {channel!r}")
    trials = positive_int(trials, "trials")
    param = next(model.parameters())
    gen = torch.Generator().manual_seed(int(seed))
    labels = None if c is None else torch.tensor([int(c)], device=param.device)
    seen = torch.zeros(height, width, dtype=torch.bool)
    was_training = model.training
    model.eval()
    try:
        for _ in range(trials):
            u = torch.rand(1, model.input_features, height, width, generator=gen)
            u = u.to(param.device, param.dtype).requires_grad_(True)
            with torch.enable_grad():
                out = model.logits_from_features(u, labels)[0, :, :, pixel[0], pixel[1]]  # (K, C)
                if channel is not None:
                    out = out[:, channel]
                weights = torch.randn(out.shape, generator=gen).to(out)
                (grad,) = torch.autograd.grad((out * weights).sum(), u)
            seen |= (grad[0] != 0).any(dim=0).cpu()
    finally:
        model.train(was_training)
    return seen
