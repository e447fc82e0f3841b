"""Faithfulness: does removing what a map calls salient change the score? (RISE's deletion and insertion)

* :func:`deletion_curve` / :func:`insertion_curve` — the RISE protocol (Petsiuk, Das & Saenko,
  2018, section 4.1): remove (or insert) pixels from the most to the least salient and follow the
  class probability; a faithful map makes it fall fast (low deletion AUC) or rise fast (high
  insertion AUC). Every image of a curve goes through the model in batches.

Maps are ``(N, H, W)`` (larger = more salient), images ``(N, 3, H, W)`` in [0, 1], ``target`` as
in :mod:`utils.saliency`. Re-exported by :mod:`utils.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._validation import (
    Target,
    check_fraction,
    check_images,
    check_positive_int,
    model_device,
    resolve_targets,
    to_model,
)
from .images import gaussian_blur

__all__ = ["PerturbationCurve", "deletion_curve", "insertion_curve"]


@dataclass(frozen=True)
class PerturbationCurve:
    """A deletion or insertion curve.

    Attributes:
        fractions: ``(K + 1,)`` fraction of pixels removed/inserted, ``0, 1/K, …, 1``.
        scores: ``(N, K + 1)`` the class score (probability by default) at each fraction.
    """

    fractions: torch.Tensor
    scores: torch.Tensor

    @property
    def auc(self) -> torch.Tensor:
        """Area under each curve, ``(N,)``, by the trapezoid rule over ``fractions`` ∈ [0, 1]."""
        return torch.trapezoid(self.scores, self.fractions, dim=-1)


def _check_maps(maps: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"maps must be a torch.Tensor (N, H, W), got {type(maps).__name__}.")
    m = maps.unsqueeze(0) if maps.dim() == 2 else maps
    if m.dim() != 3 or m.shape[0] != batch.shape[0] or m.shape[1:] != batch.shape[2:]:
        raise ValueError(
            f"maps must be (N, H, W) matching the images {tuple(batch.shape)}, got "
            f"{tuple(maps.shape)}."
        )
    if not torch.isfinite(m).all():
        raise ValueError("maps contain NaN or infinite values.")
    return m


def _perturbation_curve(model: nn.Module, start: torch.Tensor, finish: torch.Tensor,
                        maps: torch.Tensor, targets: torch.Tensor, steps: int, score: str,
                        batch_size: int) -> PerturbationCurve:
    """Move pixels from ``start`` to ``finish`` in decreasing map order, ``steps`` equal chunks."""
    n, _, h, w = start.shape
    order = torch.argsort(maps.reshape(n, -1), dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w, device=order.device).expand(n, -1))
    counts = torch.round(torch.linspace(0, h * w, steps + 1, device=start.device)).long()
    jobs = [(i, k) for i in range(n) for k in range(steps + 1)]
    out = torch.empty(n, steps + 1)
    for s in range(0, len(jobs), batch_size):
        chunk = jobs[s:s + batch_size]
        idx = torch.tensor([i for i, _ in chunk], device=start.device)
        kk = torch.tensor([k for _, k in chunk], device=start.device)
        moved = (rank[idx] < counts[kk][:, None]).view(-1, 1, h, w)
        x = torch.where(moved, finish[idx], start[idx])
        with torch.no_grad():
            logits = model(x)
        values = logits.softmax(dim=1) if score == "probability" else logits
        picked = values.gather(1, targets[idx][:, None].to(values.device))[:, 0].float().cpu()
        out[idx.cpu(), kk.cpu()] = picked
    return PerturbationCurve(torch.linspace(0, 1, steps + 1), out)


def _curve_inputs(model, images, maps, target, steps, score, batch_size):
    batch, single = check_images(images)
    m = _check_maps(maps, batch)
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    if score not in ("probability", "logit"):
        raise ValueError(f"score={score!r} is not known; choose 'probability' or 'logit'.")
    dev = model_device(model)
    x = to_model(batch, model, dev)
    return x, m.to(dev), resolve_targets(model, x, target)


def deletion_curve(model: nn.Module, images: torch.Tensor, maps: torch.Tensor,
                   target: Target = None, *, steps: int = 16, baseline: float = 0.0,
                   score: str = "probability", batch_size: int = 32) -> PerturbationCurve:
    """RISE deletion: replace the most salient pixels by ``baseline`` (default 0, black), in
    ``steps`` equal chunks from 0 to all pixels, and record the class ``score``.

    ``(steps + 1)`` forward passes per image, ``batch_size`` images at a time. Ties in the map are
    broken by pixel index (row-major). Lower AUC = the map found what the score needs sooner.

    Args:
        maps: ``(N, H, W)`` saliency, larger = more important (signed maps are fine).
        score: ``"probability"`` (softmax, as in RISE) or ``"logit"`` (``S_c``).

    Returns:
        A :class:`PerturbationCurve`; ``.auc`` is ``(N,)``.
    """
    x, m, t = _curve_inputs(model, images, maps, target, steps, score, batch_size)
    check_fraction(baseline, "baseline", low=0.0, high=1.0, inclusive=True)
    return _perturbation_curve(model, x, torch.full_like(x, float(baseline)), m, t, steps, score,
                               batch_size)


def insertion_curve(model: nn.Module, images: torch.Tensor, maps: torch.Tensor,
                    target: Target = None, *, steps: int = 16, blur_kernel: int = 11,
                    blur_sigma: float = 5.0, score: str = "probability", batch_size: int = 32
                    ) -> PerturbationCurve:
    """RISE insertion: start from a blurred copy (:func:`utils.images.gaussian_blur`, RISE's 11×11,
    σ = 5) and put back the original pixels, most salient first. Higher AUC = better.

    Same arguments and cost as :func:`deletion_curve`.
    """
    x, m, t = _curve_inputs(model, images, maps, target, steps, score, batch_size)
    canvas = gaussian_blur(x, blur_sigma, kernel_size=blur_kernel)
    return _perturbation_curve(model, canvas, x, m, t, steps, score, batch_size)
