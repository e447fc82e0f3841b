"""Gradient-based class saliency (Simonyan, Vedaldi & Zisserman, 2013, section 3).

Calling convention shared by every method here (and by later ones added beside them):

* ``model`` — a classifier from :func:`utils.models.load_classifier` (images in [0, 1] → scores
  ``S_c``, pre-softmax). Any ``nn.Module`` with that contract works.
* ``images`` — ``(N, 3, H, W)`` float in [0, 1], or one image ``(3, H, W)`` (then the batch dimension
  is dropped from the result).
* ``target`` — an int (every image), a sequence of N ints, or ``None`` (each image's top-1 class).
* ``device`` — where to compute; ``None`` = the model's device. Results come back on the images'
  device.

The image-specific class saliency is the derivative of the class score with respect to the image,
``w = ∂S_c/∂I`` at the image ``I₀`` (the weight of the first-order Taylor expansion
``S_c(I) ≈ wᵀI + b``), and the map is ``M_ij = max_c |w_{ijc}|`` over the colour channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._checks import check_fraction, check_images, check_positive_int, check_target, resolve_device

__all__ = ["gradient", "saliency_map", "channel_max", "smoothgrad_attribution", "smoothgrad"]

Target = int | Sequence[int] | torch.Tensor | None


def _class_scores_and_grad(model: nn.Module, batch: torch.Tensor, target: Target
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward and one backward pass: ``(∂S_t/∂I (N, 3, H, W), targets (N,))``.

    The backward pass asks autograd for the gradient with respect to the input only
    (``torch.autograd.grad``), so no weight gradient is accumulated even if the model's
    parameters require grad.
    """
    if model.training:
        raise ValueError(
            "The model is in training mode (dropout and batch-norm statistics would change the "
            "scores); call model.eval() first."
        )
    x = batch.detach().requires_grad_(True)
    with torch.enable_grad():
        scores = model(x)
        if scores.dim() != 2 or scores.shape[0] != x.shape[0]:
            raise ValueError(f"The model must return scores (N, classes), got shape {tuple(scores.shape)}.")
        t = check_target(target, x.shape[0], num_classes=scores.shape[1], scores=scores.detach())
        t = t.to(scores.device)
        # The images are independent, so d(sum_n S_{t_n}(I_n))/dI_n = dS_{t_n}/dI_n for each n.
        selected = scores.gather(1, t[:, None]).sum()
        (grad,) = torch.autograd.grad(selected, x)
    return grad, t


def gradient(model: nn.Module, images: torch.Tensor, target: Target = None, *,
             device: str | torch.device | None = None) -> torch.Tensor:
    """The class-score gradient ``w = ∂S_c/∂I`` at the image.

    Returns:
        ``(N, 3, H, W)`` (``(3, H, W)`` for one image), same dtype as float32, signed, unbounded.
    """
    batch, single = check_images(images)
    dev = resolve_device(device, model)
    grad, _ = _class_scores_and_grad(model, batch.to(dev), target)
    grad = grad.to(images.device)
    return grad[0] if single else grad


def channel_max(attribution: torch.Tensor) -> torch.Tensor:
    """``M_ij = max_c |a_{ijc}|``: ``(N, 3, H, W)`` → ``(N, H, W)`` (or ``(3, H, W)`` → ``(H, W)``)."""
    if attribution.dim() not in (3, 4) or attribution.shape[-3] != 3:
        raise ValueError(f"attribution must be (N, 3, H, W) or (3, H, W), got {tuple(attribution.shape)}.")
    return attribution.abs().amax(dim=-3)


def saliency_map(model: nn.Module, images: torch.Tensor, target: Target = None, *,
                 device: str | torch.device | None = None) -> torch.Tensor:
    """The image-specific class saliency map ``M_ij = max_c |∂S_c/∂I_{ijc}|`` (paper, eq. 3).

    One forward and one backward pass for the whole batch.

    Returns:
        ``(N, H, W)`` (``(H, W)`` for one image), non-negative, in the units of ``S_c`` per unit
        of image intensity (not normalised; divide by ``.amax()`` to display).
    """
    return channel_max(gradient(model, images, target, device=device))


def smoothgrad_attribution(model: nn.Module, images: torch.Tensor, target: Target = None, *,
                           samples: int = 32, noise: float = 0.15, seed: int = 0,
                           batch_size: int = 16, device: str | torch.device | None = None
                           ) -> torch.Tensor:
    """SmoothGrad of the absolute gradient (Smilkov et al., 2017), per colour channel.

    ``mean_k |∂S_c/∂I (I + ε_k)|`` with ``ε_k ~ N(0, σ²)``, ``σ = noise · (max(I) − min(I))`` per
    image: what Captum's ``NoiseTunnel(Saliency(model)).attribute(..., nt_type='smoothgrad',
    abs=True)`` computes. The noise is drawn on the CPU from ``seed`` (the same on every device) and
    the noisy copies go through the model ``batch_size`` at a time. When ``target`` is ``None`` it is
    each clean image's top-1 class.

    Returns:
        ``(N, 3, H, W)`` (``(3, H, W)`` for one image), non-negative.
    """
    batch, single = check_images(images)
    check_positive_int(samples, "samples")
    check_positive_int(batch_size, "batch_size")
    check_fraction(noise, "noise", low=0.0, high=10.0, inclusive=True)
    dev = resolve_device(device, model)
    x = batch.to(dev)
    if target is None:
        with torch.no_grad():
            target = model(x).argmax(dim=1)
    targets = check_target(target, x.shape[0]).to(dev)
    sigma = noise * (x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3)))  # (N,)
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn((samples, *x.shape), generator=gen).to(dev) * sigma.view(1, -1, 1, 1, 1)
    noisy = (x.unsqueeze(0) + eps).reshape(-1, *x.shape[1:])  # (samples·N, 3, H, W), sample-major
    noisy_targets = targets.repeat(samples)
    total = torch.zeros_like(x)
    n = x.shape[0]
    for start in range(0, noisy.shape[0], batch_size):
        chunk = slice(start, start + batch_size)
        grad, _ = _class_scores_and_grad(model, noisy[chunk], noisy_targets[chunk])
        idx = torch.arange(start, start + grad.shape[0], device=dev) % n
        total.index_add_(0, idx, grad.abs())
    out = (total / samples).to(images.device)
    return out[0] if single else out


def smoothgrad(model: nn.Module, images: torch.Tensor, target: Target = None, *,
               samples: int = 32, noise: float = 0.15, seed: int = 0, batch_size: int = 16,
               device: str | torch.device | None = None) -> torch.Tensor:
    """SmoothGrad saliency map: the channel max of :func:`smoothgrad_attribution`.

    Much less noisy than :func:`saliency_map` on this course's default network (32 samples at
    noise 0.15 are the recommended settings). Costs ``samples`` forward and backward passes.

    Returns:
        ``(N, H, W)`` (``(H, W)`` for one image), non-negative.
    """
    return channel_max(smoothgrad_attribution(model, images, target, samples=samples, noise=noise,
                                              seed=seed, batch_size=batch_size, device=device))
