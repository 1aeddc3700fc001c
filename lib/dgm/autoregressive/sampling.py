"""Sequential sampling, Eq. (6.7), and completions.

Generation follows the order of the chain rule (6.1): pixel by pixel in raster order (and channel
by channel inside a pixel),

    x_i ~ p_T(x_i | x_{<i}) = softmax(logits_i / T),                                           (6.7)

one forward pass per pixel, so the cost grows with the number of pixels D, while the likelihood
(6.6) needs a single pass. (The pass for a pixel of row r runs on rows 0..r only: the masks give
the rows below no weight, so cropping them changes nothing and halves the average cost.) T < 1 sharpens the conditionals, T > 1 flattens them. In *completion*
mode the pixels where ``known`` is True are copied from ``given`` and only the others are drawn,
each from its conditional given everything before it (the "image completions" figure).
"""

from __future__ import annotations

import torch

from dgm._checks import finite_number, positive_int, shape_tuple
from dgm.autoregressive.binary import BinaryAutoregressive
from dgm.autoregressive.likelihood import _check_model

__all__ = ["sample"]


def _expand(t, shape: tuple[int, int, int, int], name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    n, c, h, w = shape
    if t.shape == (h, w):
        return t[None, None].expand(shape)
    if c == 1 and t.shape == (n, h, w):
        t = t.unsqueeze(1)
    if t.dim() == 3:
        t = t.unsqueeze(0)
    if t.dim() != 4 or t.shape[-3:] != (c, h, w) or t.shape[0] not in (1, n):
        raise ValueError(f"{name} must have shape (H, W), (C, H, W) or (n, C, H, W) = {shape}, got {tuple(t.shape)}")
    return t.expand(shape)


@torch.no_grad()
def sample(model, n: int, shape=None, generator: torch.Generator | None = None, temperature: float = 1.0,
           given=None, known=None, c=None) -> torch.Tensor:
    """Draw n images pixel by pixel in raster order, Eq. (6.7); with ``known``, complete ``given``.

    Args:
        model: an image model (:class:`PixelCNN`, :class:`GatedPixelCNN`), or a binary-vector
            model (:class:`MADE`, :class:`FVBN`: its own ``sample``, in its order).
        n: number of images.
        shape: ``(C, H, W)`` or ``(H, W)`` of one image (vector models: None or ``(D,)``).
        generator: a ``torch.Generator`` on the model's device, for reproducible draws.
        temperature: T > 0 of Eq. (6.7).
        given: images whose ``known`` pixels are kept: levels or floats k / (K - 1), shape
            ``(C, H, W)``, ``(n, C, H, W)`` (or ``(H, W)`` / ``(n, H, W)`` when C = 1).
        known: boolean mask of the pixels to copy from ``given``, ``(H, W)``, ``(C, H, W)`` or
            ``(n, C, H, W)``.
        c: class labels ``(n,)`` for a class-conditional model.

    Returns:
        The images as floats k / (K - 1) in [0, 1] (the data's convention), ``(n, C, H, W)``;
        ``model.to_levels`` turns them into integer levels.
    """
    _check_model(model)
    n = positive_int(n, "n")
    temperature = finite_number(temperature, "temperature")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if isinstance(model, BinaryAutoregressive):
        if shape is not None and shape_tuple(shape, "shape") != (model.dim,):
            raise ValueError(f"shape must be None or ({model.dim},) for this vector model, got {shape!r}")
        return model.sample(n, generator, temperature, given, known)
    if shape is None:
        raise ValueError("shape must be given for an image model: (C, H, W) or (H, W)")
    shape = shape_tuple(shape, "shape")
    if len(shape) == 2:
        shape = (model.in_channels, *shape)
    if len(shape) != 3 or shape[0] != model.in_channels:
        raise ValueError(f"shape must be (H, W) or ({model.in_channels}, H, W), got {shape!r}")
    full = (n, *shape)
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    levels = torch.zeros(full, dtype=torch.long, device=device)
    fixed = torch.zeros(full, dtype=torch.bool, device=device)
    if known is not None:
        if given is None:
            raise ValueError("given must be provided with known (the images to complete)")
        if not isinstance(known, torch.Tensor) or known.dtype != torch.bool:
            raise TypeError("known must be a boolean tensor (True where the pixel is copied from given)")
        fixed = _expand(known, full, "known").to(device)
        levels = torch.where(fixed, _expand(model.to_levels(given, "given"), full, "given").to(device), levels)
    if c is not None:
        c = torch.as_tensor(c, device=device)
    was_training = model.training
    model.eval()
    try:
        k = model.levels
        for r in range(shape[1]):
            for col in range(shape[2]):
                for ch in range(shape[0]):
                    keep = fixed[:, ch, r, col]
                    if bool(keep.all()):
                        continue
                    # rows below r never reach row r (every mask zeroes them): crop them away
                    logits = model(levels[:, :, : r + 1].to(dtype) / (k - 1), c)[:, :, ch, r, col]
                    probs = torch.softmax(logits.double() / temperature, dim=1)
                    draw = torch.multinomial(probs, 1, generator=generator).squeeze(1)
                    levels[:, ch, r, col] = torch.where(keep, levels[:, ch, r, col], draw)
    finally:
        model.train(was_training)
    return levels.to(dtype) / (k - 1)
