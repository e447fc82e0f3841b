"""Fooling images: an imperceptible change that makes the network see another class.

Szegedy et al. (2014) found that a tiny, structured perturbation changes a network's decision;
CS231n's assignment 3 asks students to push a photo to a chosen class by gradient ascent on that
class's score. :func:`fooling_image` does it with projected gradient ascent under an L∞ bound
(Madry et al., 2018): steps along the sign of ``∂S_target/∂I``, each followed by projection onto the
ε-ball around the photo and onto the valid range [0, 1]. It is the same gradient as a saliency map
(notebook 02) and the same ascent as a class model (notebook 03), started at a photo instead of the
mean image, and held close to it.
"""

from __future__ import annotations

import torch
from torch import nn

from ._validation import (
    check_fraction,
    check_images,
    check_positive_int,
    check_target,
    model_device,
)
from .saliency import gradient

__all__ = ["fooling_image"]


def fooling_image(model: nn.Module, image: torch.Tensor, target: int, *, epsilon: float = 2 / 255,
                  steps: int = 10, step_size: float | None = None, margin: float | None = 1.0
                  ) -> torch.Tensor:
    """Push ``image`` towards class ``target`` by projected gradient ascent on its score.

    ``x ← clip_[0,1](image + clip_[−ε,ε](x + step_size · sign(∂S_target/∂x) − image))``, from
    ``x = image``, for at most ``steps`` steps.

    Args:
        model: classifier in eval mode taking RGB images in [0, 1] (it normalises inside).
        image: one photo ``(3, H, W)`` in [0, 1].
        target: the class to reach, ``0 ≤ target < classes``.
        epsilon: the L∞ bound on the change, in (0, 1); 2/255 (two grey levels) is invisible.
        steps: the most ascent steps (≥ 1).
        step_size: per-step change of each pixel; ``None`` means ``epsilon / 4``.
        margin: stop as soon as the target's score exceeds every other class's by this much
            (``None``: always take ``steps`` steps).

    Returns:
        The fooling image ``(3, H, W)`` in [0, 1], with ``max |x − image| ≤ epsilon``, on the
        image's device; the work is done on the model's device (the image is moved there).
        Whether the target won is for the caller to check (``model(x)``).

    Raises:
        ValueError: a batch instead of one image, values outside [0, 1], ``epsilon`` outside
            (0, 1), ``steps < 1``, non-positive ``step_size``, or ``target`` out of range.
    """
    batch, single = check_images(image, name="image")
    if not single:
        raise ValueError(f"fooling_image takes one image (3, H, W), got shape {tuple(image.shape)}.")
    eps = check_fraction(epsilon, "epsilon")
    check_positive_int(steps, "steps")
    alpha = eps / 4 if step_size is None else float(step_size)
    if not alpha > 0:
        raise ValueError(f"step_size={step_size!r} must be > 0 (about epsilon / 4 works).")
    original = batch[0].detach().to(model_device(model))
    with torch.no_grad():
        scores = model(original[None])[0]
    t = int(check_target(target, 1, num_classes=scores.shape[0])[0])
    x = original.clone()
    for _ in range(steps):
        g = gradient(model, x, t)
        with torch.no_grad():
            x = (original + (x + alpha * g.sign() - original).clamp(-eps, eps)).clamp(0.0, 1.0)
            if margin is not None:
                s = model(x[None])[0]
                if float(s[t] - torch.cat([s[:t], s[t + 1:]]).max()) >= margin:
                    break
    return x.to(image.device)
