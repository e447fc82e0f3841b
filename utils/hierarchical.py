"""Hierarchical occlusion: a quadtree over the image whose masks halve at every level.

Hierarchical perturbation (HiPe; Cooper, Arandjelović & Harrison, "Believe the HiPe", Pattern
Recognition 2022) occludes a coarse grid first and refines only where occluding mattered:

* Level 0 cuts the image into ``4 × 4`` cells (56 px at 224²) and occludes every *window* of
  ``2 × 2`` neighbouring cells, the windows overlapping by one cell and starting one cell before
  the image (cut at its edge), so that every pixel is covered by exactly four windows:
  ``5 × 5 = 25`` windows at level 0.
* Level ``l`` halves the cell side (``4·2^l`` cells per side) and occludes only the windows that
  touch the region *kept* by the map so far: the pixels whose accumulated saliency is at least the
  midpoint of the map's range (``keep="midrange"``, HiPe's rule) or in its top fraction
  (``keep=0.2``), and positive. Refinement stops when the cells would be smaller than ``min_cell``,
  when nothing is kept, or when ``max_passes`` is spent.
* Each probed window adds its *positive* drop ``max(0, S_c(I) − S_c(I occluded))`` to the pixels it
  covers, divided by four (the windows covering a pixel at one level): level 0 alone is thus the
  plain occlusion map of its grid (positive part of the drops), and each level adds its own.
  HiPe sums without the ``1/4``: the same map up to a constant factor. A drop below
  ``1e-6·max(1, |S_c(I)|)`` is round-off (a blur of a flat region) and counts as none.

The cost follows the number of windows near the salient region, not the number of positions:
a quadtree over the image. Conventions as :mod:`utils.occlusion`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._validation import check_fraction, check_positive_int
from .images import gaussian_blur
from .occlusion import BASELINE, _prepare

__all__ = ["GRID", "KEEP_RULES", "PERTURBATIONS", "HierarchyLevel", "HierarchicalOcclusion",
           "hipe_windows", "window_maxima", "select_windows", "hierarchical_occlusion"]

GRID = 4
"""Cells per side at level 0 (HiPe's coarse grid)."""
KEEP_RULES = ("midrange",)
"""Named keep rules; a float in (0, 1] is a top fraction."""
PERTURBATIONS = ("baseline", "blur", "mean")


@dataclass(frozen=True)
class HierarchyLevel:
    """One level of :func:`hierarchical_occlusion`.

    Attributes:
        level: 0 for the coarse grid. cell: cell side in pixels (``min(H, W) / (4·2^level)``).
        windows: candidate windows of the level (``(cells + 1)²``). kept: windows that touch the
            kept region (all of them at level 0). probed: windows occluded (fewer than ``kept``
            only when the budget ran out). threshold: the keep threshold on the map (``nan`` at
            level 0).
    """

    level: int
    cell: float
    windows: int
    kept: int
    probed: int
    threshold: float


@dataclass(frozen=True)
class HierarchicalOcclusion:
    """Result of :func:`hierarchical_occlusion`.

    Attributes:
        saliency: ``(H, W)`` float32, ``≥ 0``, in units of ``S_c``: accumulated positive drops.
        n_forward: forward passes, the clean image included (``1 + len(cells)``).
        cells: ``(K, 5)`` long, every occluded window ``(x0, y0, x1, y1, level)`` in probing
            order (exclusive ends, cut at the image's edge).
        drops: ``(K,)`` float32, the signed drop ``S_c(I) − S_c(I occluded)`` of each window.
        levels: one :class:`HierarchyLevel` per level run.
        stopped: why refinement ended: ``"min_cell"``, ``"nothing kept"`` or ``"budget"``.
        score: ``S_c`` of the clean image.
    """

    saliency: torch.Tensor
    n_forward: int
    cells: torch.Tensor
    drops: torch.Tensor
    levels: tuple[HierarchyLevel, ...]
    stopped: str
    score: float


def _edges(size: int, n: int) -> list[int]:
    return [round(k * size / n) for k in range(n + 1)]


def hipe_windows(height: int, width: int, cells: int) -> torch.Tensor:
    """The ``(cells + 1)²`` windows of ``2 × 2`` cells of a ``cells × cells`` grid, ``(K, 4)`` long.

    Window ``(i, j)``, ``i, j ∈ −1 … cells − 1``, covers cell rows ``i, i + 1`` and columns
    ``j, j + 1`` of the grid, cut at the image's edge; boxes ``(x0, y0, x1, y1)``, exclusive ends,
    row-major order. Every pixel lies in exactly four windows.
    """
    ey, ex = _edges(height, cells), _edges(width, cells)
    rows = [(ey[max(i, 0)], ey[min(i + 2, cells)]) for i in range(-1, cells)]
    cols = [(ex[max(j, 0)], ex[min(j + 2, cells)]) for j in range(-1, cells)]
    return torch.tensor([(x0, y0, x1, y1) for y0, y1 in rows for x0, x1 in cols], dtype=torch.long)


def window_maxima(saliency: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """The largest value of ``saliency (H, W)`` inside each box of ``windows (K, 4)``, ``(K,)``."""
    return torch.stack([saliency[y0:y1, x0:x1].max() for x0, y0, x1, y1 in windows.tolist()])


def select_windows(saliency: torch.Tensor, windows: torch.Tensor, keep: str | float = "midrange",
                   ) -> tuple[torch.Tensor, float]:
    """Which windows of the next level to occlude: those touching the kept region, most salient first.

    The kept region is the pixels of ``saliency (H, W)`` (the map accumulated so far) at or above
    the threshold, and positive: the midpoint ``(max + min) / 2`` of the map (``"midrange"``) or
    the ``1 − keep`` quantile (a top fraction ``keep`` in (0, 1]).

    Returns:
        ``(indices into windows, ordered by decreasing window maximum (ties: in order), threshold)``.
    """
    if keep == "midrange":
        threshold = float(saliency.max() + saliency.min()) / 2
    else:
        threshold = float(torch.quantile(saliency.flatten().double(), 1 - keep))
    peak = window_maxima(saliency, windows)
    chosen = torch.nonzero((peak >= threshold) & (peak > 0)).flatten()
    order = torch.sort(peak[chosen], descending=True, stable=True).indices
    return chosen[order], threshold


def _check_keep(keep) -> str | float:
    if isinstance(keep, str):
        if keep not in KEEP_RULES:
            raise ValueError(f"keep={keep!r} is not known; use 'midrange' or a top fraction in (0, 1].")
        return keep
    v = check_fraction(keep, "keep", low=0.0, high=1.0, inclusive=True)
    if v == 0:
        raise ValueError("keep=0 would keep nothing; use a top fraction in (0, 1] or 'midrange'.")
    return v


def _substrate(kind: str, x: torch.Tensor, base: torch.Tensor) -> torch.Tensor | None:
    """What an occluded window shows, ``(3, H, W)``; ``None`` for ``"mean"`` (computed per window)."""
    if kind == "baseline":
        return base
    if kind == "blur":
        return gaussian_blur(x, 5.0, kernel_size=11)  # RISE's insertion blur
    return None


def _window_drops(model: nn.Module, x: torch.Tensor, target: int, clean: float, fill: torch.Tensor | None,
                  boxes: list[tuple[int, int, int, int]], batch_size: int) -> torch.Tensor:
    """``S_t(x) − S_t(x with each box filled)``, ``(K,)`` float64; ``fill=None``: the box's mean colour."""
    out = []
    with torch.no_grad():
        for first in range(0, len(boxes), batch_size):
            chunk = boxes[first : first + batch_size]
            b = x.unsqueeze(0).repeat(len(chunk), 1, 1, 1)
            for k, (x0, y0, x1, y1) in enumerate(chunk):
                region = x[:, y0:y1, x0:x1]
                b[k, :, y0:y1, x0:x1] = (region.mean(dim=(1, 2), keepdim=True) if fill is None
                                         else fill[:, y0:y1, x0:x1])
            out.append(model(b)[:, target].double().cpu())
    return clean - torch.cat(out)


def hierarchical_occlusion(model: nn.Module, image: torch.Tensor, target: int | None = None, *,
                           min_cell: int = 8, max_passes: int | None = None, keep: str | float = "midrange",
                           perturbation: str = "baseline", baseline=BASELINE, batch_size: int = 64
                           ) -> HierarchicalOcclusion:
    """Hierarchical occlusion (HiPe): occlude a coarse grid, then halve the cells where it mattered.

    See the module's docstring for the rule. At 224² the cells are 56, 28, 14 and 7 px: ``min_cell``
    8 runs three levels (56, 28, 14), 16 two, 32 or 56 one (the plain occlusion of a 4 × 4 grid
    with 112-px windows at stride 56, 25 passes).

    Args:
        model, image, target, baseline: as :func:`utils.occlusion.occlusion` (one image ``(3, H, W)``
            in [0, 1], at least 4 px per side).
        min_cell: smallest cell side in pixels; levels run while ``min(H, W) / (4·2^l) ≥ min_cell``.
            At most the level-0 cell side.
        max_passes: budget of occluded passes (the clean pass is extra), at least the 25 windows of
            level 0; a level the budget cannot finish probes its most salient windows and ends the
            refinement, so exactly ``min(max_passes, unbudgeted passes)`` windows are occluded.
            ``None``: no budget.
        keep: ``"midrange"`` (HiPe) or a top fraction in (0, 1] of the map.
        perturbation: ``"baseline"`` (the window shows ``baseline``, default mid grey), ``"blur"``
            (a Gaussian blur of the image, σ 5 px) or ``"mean"`` (the window's own mean colour, HiPe's
            local mean).
        batch_size: occluded copies per forward pass (each level in batches).

    Returns:
        :class:`HierarchicalOcclusion`, its map on the image's device.
    """
    x, t, clean, base, single = _prepare(model, image, target, baseline)
    if not single:
        raise ValueError(f"hierarchical_occlusion takes one image (3, H, W), got shape {tuple(image.shape)}.")
    check_positive_int(batch_size, "batch_size")
    check_positive_int(min_cell, "min_cell")
    keep = _check_keep(keep)
    if perturbation not in PERTURBATIONS:
        raise ValueError(f"perturbation={perturbation!r} is not known; use one of {PERTURBATIONS}.")
    h, w = x.shape[-2:]
    side0 = min(h, w) / GRID
    if side0 < 1 or min_cell > side0:
        raise ValueError(f"min_cell={min_cell} is larger than the level-0 cells ({side0:g} px for a {h}×{w} "
                         f"image: {GRID}×{GRID} cells); use min_cell <= {int(side0)} (and an image of at least "
                         f"{GRID} px per side).")
    first = (GRID + 1) ** 2
    if max_passes is not None:
        check_positive_int(max_passes, "max_passes")
        if max_passes < first:
            raise ValueError(f"max_passes={max_passes} cannot cover level 0's {first} windows; use "
                             f"max_passes >= {first} (or None for no budget).")
    fill = _substrate(perturbation, x[0], base[0])
    sal = torch.zeros(h, w, dtype=torch.float64)
    noise = 1e-6 * max(1.0, abs(float(clean[0])))  # round-off, not a drop: it must not steer refinement
    cells, drops, levels = [], [], []
    level, stopped = 0, "min_cell"
    while side0 / 2**level >= min_cell:
        n = GRID * 2**level
        windows = hipe_windows(h, w, n)
        if level == 0:
            order, threshold = torch.arange(windows.shape[0]), float("nan")
        else:
            order, threshold = select_windows(sal, windows, keep)
        kept = int(order.numel())
        if kept == 0:
            levels.append(HierarchyLevel(level, side0 / 2**level, windows.shape[0], 0, 0, threshold))
            stopped = "nothing kept"
            break
        left = None if max_passes is None else max_passes - len(cells)
        if left is not None and left < kept:
            order, stopped = order[:left], "budget"
        boxes = [tuple(b) for b in windows[order].tolist()]
        d = _window_drops(model, x[0], int(t[0]), float(clean[0]), fill, boxes, batch_size)
        for (x0, y0, x1, y1), v in zip(boxes, d.tolist(), strict=True):
            if v > noise:
                sal[y0:y1, x0:x1] += v / 4
        cells += [(*b, level) for b in boxes]
        drops.append(d)
        levels.append(HierarchyLevel(level, side0 / 2**level, windows.shape[0], kept, len(boxes), threshold))
        if stopped == "budget":
            break
        level += 1
        if max_passes is not None and len(cells) == max_passes and side0 / 2**level >= min_cell:
            stopped = "budget"
            break
    return HierarchicalOcclusion(sal.float().to(image.device), len(cells) + 1,
                                 torch.tensor(cells, dtype=torch.long).reshape(-1, 5),
                                 torch.cat(drops).float(), tuple(levels), stopped, float(clean[0]))
