"""Localisation measures of a map against an object's box: mass in the box and the pointing game.

* :func:`mass_in_box` — the share of a map's mass inside the object's box, relative to the box's
  area (1 = a uniform map).
* :func:`pointing_game` — Zhang et al. (2016, section 5.1): is the map's maximum inside the
  object's box? :func:`centre_pointing` is its centre baseline.

Maps are ``(N, H, W)``; boxes ``(x0, y0, x1, y1)``, exclusive ends (:class:`utils.images.Box`).
Re-exported by :mod:`utils.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .images import box_mask

__all__ = ["mass_in_box", "pointing_game", "centre_pointing"]


def mass_in_box(maps: torch.Tensor, boxes: Sequence[Sequence[int]]) -> tuple[list[float], list[float]]:
    """How much of each saliency map lies inside its object's box, relative to the box's area.

    Args:
        maps: ``(N, H, W)`` non-negative saliency maps (e.g. :func:`utils.saliency.saliency_map`).
        boxes: N boxes ``(x0, y0, x1, y1)`` in the maps' pixels, exclusive ends (``Sample.box``).

    Returns:
        ``(areas, ratios)``, two lists of N floats: the box's share of the image in (0, 1], and the
        map's share of its total mass inside the box divided by that area (1 = no better than a
        uniform map; ``1 / area`` = all the mass inside).
    """
    if not isinstance(maps, torch.Tensor) or maps.dim() != 3:
        raise ValueError(f"maps must be a tensor (N, H, W), got {getattr(maps, 'shape', type(maps))}.")
    if len(boxes) != maps.shape[0]:
        raise ValueError(f"Got {maps.shape[0]} maps and {len(boxes)} boxes; give one box per map.")
    if (maps < 0).any():
        raise ValueError("maps must be non-negative (take .abs() or a channel max first).")
    h, w = maps.shape[1:]
    areas, ratios = [], []
    for m, box in zip(maps, boxes, strict=True):
        inside = box_mask(box, h, w).to(m.device)
        area = inside.float().mean().item()
        total = m.sum().item()
        if total <= 0:
            raise ValueError("A map is zero everywhere; its mass in the box is undefined.")
        areas.append(area)
        ratios.append(m[inside].sum().item() / total / area)
    return areas, ratios


def pointing_game(maps: torch.Tensor, boxes: Sequence[Sequence[int]], *, tolerance: int = 15
                  ) -> torch.Tensor:
    """Zhang et al.'s pointing game: a hit when the map's maximum lies in the box (grown by
    ``tolerance`` pixels on each side; 15 as in the paper, 0 for the strict version).

    Args:
        maps: ``(N, H, W)`` (or ``(H, W)``); the first maximum in row-major order is the point.
        boxes: N boxes ``(x0, y0, x1, y1)``, exclusive ends (as ``Sample.box``).

    Returns:
        ``(N,)`` bool (a 0-D bool for one map); ``.float().mean()`` is the accuracy.
    """
    if not isinstance(maps, torch.Tensor) or maps.dim() not in (2, 3):
        raise ValueError("maps must be a torch.Tensor (N, H, W) or (H, W).")
    single = maps.dim() == 2
    m = maps.unsqueeze(0) if single else maps
    if single and len(boxes) == 4 and all(isinstance(v, (int, np.integer)) for v in boxes):
        boxes = [boxes]
    if len(boxes) != m.shape[0]:
        raise ValueError(f"{len(boxes)} boxes for {m.shape[0]} maps; give one box per map.")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"tolerance must be an int >= 0 (pixels), got {tolerance!r}.")
    h, w = m.shape[-2:]
    flat = m.reshape(m.shape[0], -1).argmax(dim=1).cpu()
    ys, xs = (flat // w).tolist(), (flat % w).tolist()
    hits = []
    for (x0, y0, x1, y1), y, x in zip(boxes, ys, xs, strict=True):
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise ValueError(f"box {(x0, y0, x1, y1)} is not inside a {w}×{h} map.")
        hits.append(x0 - tolerance <= x < x1 + tolerance and y0 - tolerance <= y < y1 + tolerance)
    out = torch.tensor(hits)
    return out[0] if single else out


def centre_pointing(boxes: Sequence[Sequence[int]], height: int, width: int, *, tolerance: int = 15
                    ) -> torch.Tensor:
    """The pointing game's centre baseline (TorchRay's "center" row): always point at the image
    centre, pixel ``(height // 2, width // 2)``, and score it as :func:`pointing_game` does.

    A map is worth its pointing-game score only by how far it beats this: photographs centre their
    objects, so the centre alone already hits most boxes.

    Returns:
        ``(N,)`` bool, one hit per box.
    """
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int (the maps' size), got {v!r}.")
    centre = torch.zeros(len(boxes), height, width)
    centre[:, height // 2, width // 2] = 1.0
    return pointing_game(centre, boxes, tolerance=tolerance)
