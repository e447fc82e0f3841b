"""RISE: randomised input sampling for explanation (Petsiuk, Das & Saenko, BMVC 2018).

``N`` random binary grids of ``s × s`` cells (each cell on with probability ``p``) are upsampled
bilinearly to ``(s + 1)·cell`` pixels and cropped to the image at a random shift of less than one
cell: smooth masks ``M_i (H, W)`` in [0, 1]. The image is shown through each mask
(``I·M_i + b·(1 − M_i)``, ``b`` the baseline: mid grey by default, what the authors' PyTorch code
shows, zero in normalised space) and the map is the score-weighted mean of the masks,
``Σ_i S(I ⊙ M_i)·M_i / (N·p)``: a Monte-Carlo estimate of ``E[S | pixel visible]``. Its cost is
``N`` forward passes: the authors use 4,000–8,000.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._validation import check_fraction, check_positive_int
from .occlusion import BASELINE, _prepare

__all__ = ["RiseResult", "rise_masks", "rise"]


@dataclass(frozen=True)
class RiseResult:
    """Result of :func:`rise`: ``saliency (H, W)`` float32 (units of the score), ``n_forward`` (the
    masks plus the clean pass), ``score`` (the clean image's score)."""

    saliency: torch.Tensor
    n_forward: int
    score: float


def rise_masks(count: int, height: int, width: int, *, s: int = 7, p: float = 0.5,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """``count`` RISE masks ``(count, H, W)`` in [0, 1]: an ``s × s`` binary grid (cells on with
    probability ``p``), bilinearly upsampled to ``(s + 1)`` cells of ``ceil(H / s) × ceil(W / s)``
    pixels, cropped at a random shift below one cell."""
    ch, cw = -(-height // s), -(-width // s)
    grid = (torch.rand(count, 1, s, s, generator=generator) < p).float()
    up = F.interpolate(grid, size=((s + 1) * ch, (s + 1) * cw), mode="bilinear", align_corners=False)[:, 0]
    dy = torch.randint(0, ch, (count,), generator=generator).tolist()
    dx = torch.randint(0, cw, (count,), generator=generator).tolist()
    crops = [up[k, y : y + height, x : x + width] for k, (y, x) in enumerate(zip(dy, dx, strict=True))]
    return torch.stack(crops).clamp_(0, 1)  # bilinear weights may round just past 1


def rise(model: nn.Module, image: torch.Tensor, target: int | None = None, *, n_masks: int = 4000, s: int = 7,
         p: float = 0.5, score: str = "probability", baseline=BASELINE, batch_size: int = 64,
         seed: int = 0) -> RiseResult:
    """The RISE map of one image (see the module's docstring).

    Args:
        model, image, target, baseline, batch_size: as :func:`utils.occlusion.occlusion` (one image).
        n_masks: masks, one forward pass each. s: grid cells per side (≤ the image side).
        p: probability that a cell is visible, in (0, 1).
        score: ``"probability"`` (the softmax probability of ``target``, as the paper) or ``"logit"``
            (``S_c``; a constant added to ``S_c`` adds about that constant to the whole map).
        seed: seeds the masks: the same seed, the same map.

    Returns:
        :class:`RiseResult`, its map on the image's device.
    """
    x, t, clean, base, single = _prepare(model, image, target, baseline)
    if not single:
        raise ValueError(f"rise takes one image (3, H, W), got shape {tuple(image.shape)}.")
    check_positive_int(n_masks, "n_masks")
    check_positive_int(batch_size, "batch_size")
    check_positive_int(s, "s", minimum=2)
    check_fraction(p, "p")
    if score not in ("probability", "logit"):
        raise ValueError(f"score={score!r} is not known; use 'probability' or 'logit'.")
    h, w = x.shape[-2:]
    if s > min(h, w):
        raise ValueError(f"s={s} grid cells do not fit a {h}×{w} image; use s <= {min(h, w)}.")
    g = torch.Generator().manual_seed(seed)
    total = torch.zeros(h, w, dtype=torch.float64)
    cls = int(t[0])
    with torch.no_grad():
        for first in range(0, n_masks, batch_size):
            m = rise_masks(min(batch_size, n_masks - first), h, w, s=s, p=p, generator=g).to(x.device)
            shown = x * m[:, None] + base * (1 - m[:, None])
            out = model(shown)
            v = out.softmax(1)[:, cls] if score == "probability" else out[:, cls]
            total += torch.einsum("k,khw->hw", v.double().cpu(), m.double().cpu())
    sal = (total / (n_masks * p)).float().to(image.device)
    clean_v = float(clean[0]) if score == "logit" else float(model(x).softmax(1)[0, cls])
    return RiseResult(sal, n_masks + 1, clean_v)
