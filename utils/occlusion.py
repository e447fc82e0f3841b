"""Occlusion saliency: the sliding window, its lattice of positions, and coarse-to-fine sampling.

Occlusion (Zeiler & Fergus, 2014, section 4.2) hides a ``patch × patch`` square of the image behind
a ``baseline`` (default mid grey) and records the drop of the class score ``S_c(I) − S_c(I
occluded)``. The window starts at the positions of a *lattice*, ``offset + (i·stride, j·stride)``
(Captum's convention: the last window may stick out of the image and is then cut at its edge);
the drop at every position is the *field* ``(Py, Px)``, and a pixel's saliency is the mean drop
of the windows that cover it (:func:`field_to_map`).

* :func:`occlusion` — the dense sliding window: every position probed, one forward pass each.
  Equals Captum's ``Occlusion`` with the same patch, stride and baseline.
* :func:`occlusion_field` — the field of one image (the sliding window's work, kept so that
  samplers can be replayed on it without new forward passes).
* :func:`refine_lattice` / :func:`replay_lattice` — estimate a field from a few probes, refining a
  quadtree of lattice cells level by level (rules ``"max"``, ``"range"`` and ``"hipe"``, the
  hierarchical perturbation of Cooper et al., 2022), on a model or on a measured field.
* :func:`quadtree_occlusion` — the coarse-to-fine map of one image within a budget of passes.
* :func:`probe_macs` — what one occlusion probe costs a network layer by layer: the dense
  multiply-adds against those of the changed region's bounding box (the projective field).

Conventions: images ``(3, H, W)`` or ``(N, 3, H, W)`` in [0, 1]; ``target`` as in
:mod:`utils.saliency`; maps are signed (positive: hiding the region lowers the score).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._validation import (
    Target,
    check_eval_mode,
    check_images,
    check_positive_int,
    check_scores,
    check_target,
    model_device,
    resolve_baseline,
    to_model,
)
from .images import Box

__all__ = [
    "PATCH",
    "STRIDE",
    "BASELINE",
    "RECOMMENDED_PASSES",
    "REFINE_RULES",
    "window_starts",
    "occlusion",
    "occlusion_field",
    "field_to_map",
    "LatticeSampling",
    "refine_lattice",
    "replay_lattice",
    "QuadtreeOcclusion",
    "quadtree_occlusion",
    "LayerMACs",
    "ProbeMACs",
    "probe_macs",
]

PATCH = 16
"""Default occluder side in pixels."""
STRIDE = 8
"""Default lattice step in pixels: half the patch, so every pixel is covered by up to four windows."""
BASELINE = 0.5
"""Default occluder value: mid grey. It is close to the ImageNet mean colour (0.485, 0.456, 0.406),
which the models normalise to ≈ 0, so an occluded patch carries (almost) no signal."""
RECOMMENDED_PASSES = 72
"""The budget of occluded passes :func:`quadtree_occlusion` uses by default: an 8 × 8 level-0
lattice (``start=7``) and one refinement level, ≈ 10 % of the 729 windows at 224², patch 16,
stride 8 (notebook 05)."""
REFINE_RULES = ("max", "range", "hipe")

Offset = int | tuple[int, int]


# ----------------------------------------------------------------------------------------------
# The lattice and the sliding window
# ----------------------------------------------------------------------------------------------

def _offsets(offset: Offset) -> tuple[int, int]:
    oy, ox = (offset, offset) if isinstance(offset, int) and not isinstance(offset, bool) else tuple(offset)
    for v in (oy, ox):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"offset must be an int >= 0 or a pair (oy, ox) of them, got {offset!r}.")
    return oy, ox


def window_starts(size: int, *, patch: int = PATCH, stride: int = STRIDE, offset: int = 0) -> list[int]:
    """Start pixels of the windows along one axis: ``offset, offset + s, …`` up to the first window
    that reaches the image's edge (it may stick out and is then cut there; Captum's convention).

    Raises:
        ValueError: ``patch`` larger than ``size − offset``, or ``stride > patch`` (pixels would be
            left uncovered).
    """
    check_positive_int(patch, "patch")
    check_positive_int(stride, "stride")
    if stride > patch:
        raise ValueError(f"stride={stride} > patch={patch} would leave pixels never occluded; use stride <= patch.")
    if patch > size - offset:
        raise ValueError(f"patch={patch} is larger than the image side {size} minus offset {offset}; "
                         f"use patch <= {size - offset}.")
    count = -(-(size - offset - patch) // stride) + 1
    return [offset + i * stride for i in range(count)]


def field_to_map(field: torch.Tensor, size: tuple[int, int], *, patch: int = PATCH, stride: int = STRIDE
                 ) -> torch.Tensor:
    """The sliding window's map from its field: each pixel gets the mean drop of the windows covering it.

    Args:
        field: ``(Py, Px)`` drop of the window starting at pixel ``(i·stride, j·stride)`` of the
            covered region.
        size: ``(H, W)`` of the covered region: the image for ``offset=0``; for a field measured with
            ``offset=(oy, ox)``, ``(H − oy, W − ox)``, and the map is that of the pixels ``[oy:, ox:]``.
            Windows sticking out of it are cut at its edge.

    Returns:
        ``(H, W)`` float32; equals :func:`occlusion`'s map for the measured field.
    """
    if not isinstance(field, torch.Tensor) or field.dim() != 2:
        raise ValueError(f"field must be a tensor (Py, Px), got {getattr(field, 'shape', type(field))}.")
    check_positive_int(patch, "patch")
    check_positive_int(stride, "stride")
    ones = torch.ones(1, 1, patch, patch, dtype=torch.float64, device=field.device)
    f = field.double()[None, None]
    num = F.conv_transpose2d(f, ones, stride=stride)[0, 0, : size[0], : size[1]]
    cnt = F.conv_transpose2d(torch.ones_like(f), ones, stride=stride)[0, 0, : size[0], : size[1]]
    if num.shape != tuple(size) or bool((cnt == 0).any()):
        raise ValueError(f"a {tuple(field.shape)} field of {patch}-px windows at stride {stride} does not "
                         f"cover a {size[0]}×{size[1]} image.")
    return (num / cnt).float()


def _prepare(model: nn.Module, images: torch.Tensor, target, baseline):
    """Validate; return ``(x (N,3,H,W) on the device, targets (N,), clean scores (N,), baselines)``."""
    check_eval_mode(model)
    batch, single = check_images(images)
    x = to_model(batch, model, model_device(model))
    with torch.no_grad():
        scores = check_scores(model(x), x.shape[0])
    t = check_target(target, x.shape[0], num_classes=scores.shape[1], scores=scores).to(scores.device)
    clean = scores.gather(1, t[:, None])[:, 0].double().cpu()
    return x, t.cpu(), clean, resolve_baseline(baseline, x), single


def _drops(model: nn.Module, x: torch.Tensor, target: int, clean: float, base: torch.Tensor,
           starts: torch.Tensor, patch: int, batch_size: int) -> torch.Tensor:
    """``S_t(x) − S_t(x with the window at each start (K, 2) replaced by base)``, ``(K,)`` float64."""
    out = []
    with torch.no_grad():
        for first in range(0, starts.shape[0], batch_size):
            chunk = starts[first : first + batch_size].tolist()
            b = x.unsqueeze(0).repeat(len(chunk), 1, 1, 1)
            for k, (r, c) in enumerate(chunk):
                b[k, :, r : r + patch, c : c + patch] = base[:, r : r + patch, c : c + patch]
            out.append(model(b)[:, target].double().cpu())
    return clean - (torch.cat(out) if out else torch.empty(0, dtype=torch.float64))


def _lattice(size, patch: int, stride: int, offset: Offset) -> tuple[list[int], list[int]]:
    oy, ox = _offsets(offset)
    return (window_starts(size[0], patch=patch, stride=stride, offset=oy),
            window_starts(size[1], patch=patch, stride=stride, offset=ox))


def occlusion_field(model: nn.Module, image: torch.Tensor, target: int | None = None, *,
                    patch: int = PATCH, stride: int = STRIDE, baseline=BASELINE, offset: Offset = 0,
                    batch_size: int = 64) -> torch.Tensor:
    """The score drop of every sliding-window position of one image, ``(Py, Px)`` (a pass each).

    ``field_to_map(occlusion_field(...), (H, W), patch=p, stride=s)`` is :func:`occlusion`'s map;
    keeping the field lets a notebook replay :func:`refine_lattice` at any budget without new
    forward passes. With ``offset=(oy, ox)`` the lattice starts at that pixel (the photograph moved
    against the window grid, e.g. by half a stride: a stability check); the field then covers the
    pixels ``[oy:, ox:]``.

    Args: as :func:`occlusion`, for one image ``(3, H, W)``.

    Returns:
        ``(Py, Px)`` float32 on the image's device.
    """
    x, t, clean, base, single = _prepare(model, image, target, baseline)
    if not single:
        raise ValueError(f"occlusion_field takes one image (3, H, W), got shape {tuple(image.shape)}.")
    check_positive_int(batch_size, "batch_size")
    ys, xs = _lattice(x.shape[-2:], patch, stride, offset)
    starts = torch.cartesian_prod(torch.tensor(ys), torch.tensor(xs))
    drops = _drops(model, x[0], int(t[0]), float(clean[0]), base[0], starts, patch, batch_size)
    return drops.float().reshape(len(ys), len(xs)).to(image.device)


def occlusion(model: nn.Module, images: torch.Tensor, target: Target = None, *, patch: int = PATCH,
              stride: int = STRIDE, baseline=BASELINE, batch_size: int = 64) -> torch.Tensor:
    """Occlusion saliency (Zeiler & Fergus, 2014, section 4.2) with a sliding square window.

    Each ``patch × patch`` window (all three channels), at ``0, s, 2s, …`` along each axis (the
    last one cut at the image's edge), is replaced by ``baseline``; a pixel's saliency is the mean
    drop ``S_c(x) − S_c(x_occluded)`` over the windows that cover it. Equals Captum's
    ``Occlusion(model).attribute(x, sliding_window_shapes=(3, patch, patch), strides=(3, stride,
    stride), baselines=baseline, target=target)[:, 0]`` (Captum's three channels are equal).
    Forward passes only: ``1 + Py·Px`` per image (730 at 224² with the defaults), ``batch_size``
    occluded copies at a time.

    Args:
        model: a classifier (images in [0, 1] → scores), in eval mode.
        images: ``(N, 3, H, W)`` or ``(3, H, W)`` in [0, 1].
        target: an int, N ints, or ``None`` (each image's top-1 class).
        patch: window side in pixels (≤ the image side). stride: lattice step (≤ ``patch``).
        baseline: what the window shows: a grey level in [0, 1] (default 0.5), a colour ``(3,)``,
            ``"mean"`` (the image's mean colour) or images ``(3, H, W)`` / ``(N, 3, H, W)``.
        batch_size: occluded images per forward pass.

    Returns:
        ``(N, H, W)`` (``(H, W)`` for one image) float32 on the images' device, signed, in units of
        ``S_c``.
    """
    x, t, clean, base, single = _prepare(model, images, target, baseline)
    check_positive_int(batch_size, "batch_size")
    h, w = x.shape[-2:]
    ys, xs = _lattice((h, w), patch, stride, 0)
    starts = torch.cartesian_prod(torch.tensor(ys), torch.tensor(xs))
    maps = [field_to_map(_drops(model, x[i], int(t[i]), float(clean[i]), base[i], starts, patch, batch_size)
                         .reshape(len(ys), len(xs)), (h, w), patch=patch, stride=stride)
            for i in range(x.shape[0])]
    out = torch.stack(maps).to(images.device)
    return out[0] if single else out


# ----------------------------------------------------------------------------------------------
# Coarse to fine: a quadtree of lattice cells
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LatticeSampling:
    """Result of :func:`refine_lattice`: an estimate of a field from a few probes.

    Attributes:
        field: ``(Py, Px)`` estimate: probed values, bilinear inside each leaf cell elsewhere.
        probed: ``(Py, Px)`` bool mask of the probed positions.
        probes, values, levels: ``(K, 2)`` positions, ``(K,)`` values and refinement levels, in order.
        cells: ``(L, 4)`` long leaf cells as boxes ``(x0, y0, x1, y1)`` of lattice positions,
            exclusive ends: the cell's corner probes are at rows ``y0, y1 − 1`` and columns
            ``x0, x1 − 1``.
    """

    field: torch.Tensor
    probed: torch.Tensor
    probes: torch.Tensor
    values: torch.Tensor
    levels: torch.Tensor
    cells: torch.Tensor


def _choose_cells(cells, value: torch.Tensor, rule: str, refine: int, min_step: int) -> list:
    """The splittable cells to refine next, most urgent first (the budget is applied by the caller)."""
    def corners(c):
        return value[[c[0], c[0], c[1], c[1]], [c[2], c[3], c[2], c[3]]]

    splittable = [c for c in cells if c[1] - c[0] >= 2 * min_step or c[3] - c[2] >= 2 * min_step]
    if rule == "max":
        return sorted(splittable, key=lambda c: float(corners(c).max()), reverse=True)[:refine]
    if rule == "range":
        def spread(c):
            v = corners(c)
            return float(v.max() - v.min()) * (c[1] - c[0]) * (c[3] - c[2])
        return sorted(splittable, key=spread, reverse=True)[:refine]
    # "hipe": every cell whose mean (its bilinear average) is above the middle of the range (all of
    # them when the range is empty: nothing tells the cells apart).
    means = {c: float(corners(c).mean()) for c in splittable}
    if not means:
        return []
    hi, lo = max(means.values()), min(means.values())
    return sorted((c for c in splittable if means[c] > (hi + lo) / 2 or hi == lo), key=means.get, reverse=True)


def _split(cell: tuple[int, int, int, int], min_step: int) -> list[tuple[int, int, int, int]]:
    """A cell ``(i0, i1, j0, j1)`` cut at its middle position: into quadrants, or into halves across
    its long side when the other side is too short (``< 2·min_step``) to be cut."""
    a, b, c, d = cell
    rows = [(a, (a + b) // 2), ((a + b) // 2, b)] if b - a >= 2 * min_step else [(a, b)]
    cols = [(c, (c + d) // 2), ((c + d) // 2, d)] if d - c >= 2 * min_step else [(c, d)]
    return [(r0, r1, c0, c1) for r0, r1 in rows for c0, c1 in cols]


def _level0(size: int, start: int) -> torch.Tensor:
    """Level-0 corner positions along a lattice side of ``size``: ``round(linspace(0, size − 1,
    start + 1))`` (fewer when the side is shorter than ``start``)."""
    return torch.linspace(0, size - 1, min(start, size - 1) + 1).round().long().unique()


def _check_budget(budget: int, name: str, ey: torch.Tensor, ex: torch.Tensor, start: int) -> int:
    """``budget`` (called ``name`` in the message) if it covers the level-0 corners ``ey × ex``."""
    budget = check_positive_int(budget, name)
    if budget < len(ey) * len(ex):
        raise ValueError(f"{name}={budget} is below the {len(ey)}×{len(ex)} = {len(ey) * len(ex)} probes of "
                         f"the level-0 lattice; raise {name} or lower start={start}.")
    return budget


def refine_lattice(probe: Callable[[torch.Tensor], torch.Tensor], shape: tuple[int, int], *, start: int = 7,
                   max_probes: int = RECOMMENDED_PASSES, refine: int = 4, rule: str = "max",
                   min_step: int = 1) -> LatticeSampling:
    """Estimate a field on a ``Py × Px`` lattice from few probes, refining a quadtree of cells.

    Level 0 cuts the lattice into ``start × start`` cells (corners at ``round(linspace(0, P − 1,
    start + 1))``) and probes every corner. At each further level some splittable cells are cut
    into quadrants at their middle position, and the new corners are probed together (one batch),
    while the total stays within ``max_probes``. Which cells:

    * ``rule="max"``: the ``refine`` cells with the largest value at a corner (refine where
      occlusion lowers the score most);
    * ``"range"``: the ``refine`` cells with the largest (max − min of the corners) × area (refine
      where bilinear interpolation is least trustworthy);
    * ``"hipe"``: every cell whose mean corner value is above the midpoint of that level's range
      over the splittable cells (every cell if they are all equal) (hierarchical perturbation, Cooper et al., "Believe the
      HiPe", Pattern Recognition 2022), most salient first; ``refine`` is not used.

    A cell is split into quadrants while both sides span at least ``2·min_step`` positions, and into
    two halves across its long side while only that one does (a thin cell left by an odd split). With
    ``max_probes ≥ Py·Px`` and ``min_step=1`` every position ends up probed (rules ``"max"`` and
    ``"range"`` with ``refine`` large enough; ``"hipe"`` always) and the estimate is the field.

    Args:
        probe: ``probe(positions (n, 2) long) -> (n,)`` values at lattice positions ``(i, j)``.
        shape: ``(Py, Px)``, each ≥ 2.
        start, max_probes, refine, rule, min_step: as above; ``max_probes ≥ (start + 1)²``.

    Returns:
        :class:`LatticeSampling`.
    """
    py, px = (check_positive_int(int(s), "lattice size", minimum=2) for s in shape)
    start = check_positive_int(start, "start")
    refine = check_positive_int(refine, "refine")
    min_step = check_positive_int(min_step, "min_step")
    if rule not in REFINE_RULES:
        raise ValueError(f"rule must be one of {REFINE_RULES}, got {rule!r}.")
    ey, ex = _level0(py, start), _level0(px, start)
    max_probes = _check_budget(max_probes, "max_probes", ey, ex, start)
    value = torch.full((py, px), float("nan"), dtype=torch.float64)
    order: list[torch.Tensor] = []
    levels: list[torch.Tensor] = []

    def measure(points: torch.Tensor, level: int) -> None:
        v = torch.as_tensor(probe(points)).detach().double().cpu().reshape(-1)
        if v.shape[0] != points.shape[0]:
            raise ValueError(f"probe returned {v.shape[0]} values for {points.shape[0]} positions.")
        value[points[:, 0], points[:, 1]] = v
        order.append(points)
        levels.append(torch.full((points.shape[0],), level, dtype=torch.long))

    measure(torch.cartesian_prod(ey, ex), 0)
    cells = [(int(ey[a]), int(ey[a + 1]), int(ex[b]), int(ex[b + 1]))
             for a in range(len(ey) - 1) for b in range(len(ex) - 1)]
    used, level = len(ey) * len(ex), 0
    while True:
        chosen, new = [], set()
        for cell in _choose_cells(cells, value, rule, refine, min_step):
            children = _split(cell, min_step)
            extra = {p for ch in children for p in ((ch[0], ch[2]), (ch[0], ch[3]), (ch[1], ch[2]), (ch[1], ch[3]))
                     if torch.isnan(value[p]) and p not in new}
            if used + len(new) + len(extra) <= max_probes:
                chosen.append(cell)
                new |= extra
        if not chosen:
            break
        level += 1
        if new:
            measure(torch.tensor(sorted(new), dtype=torch.long).reshape(-1, 2), level)
        used += len(new)
        for cell in chosen:
            cells.remove(cell)
            cells += _split(cell, min_step)
    est = value.clone()
    for a, b, c, d in cells:  # bilinear inside each leaf from its four probed corners
        ty = torch.linspace(0, 1, b - a + 1, dtype=torch.float64)[:, None]
        tx = torch.linspace(0, 1, d - c + 1, dtype=torch.float64)[None]
        v00, v01, v10, v11 = value[a, c], value[a, d], value[b, c], value[b, d]
        bilinear = (1 - ty) * ((1 - tx) * v00 + tx * v01) + ty * ((1 - tx) * v10 + tx * v11)
        block = est[a : b + 1, c : d + 1]
        est[a : b + 1, c : d + 1] = torch.where(torch.isnan(block), bilinear, block)
    points = torch.cat(order)
    boxes = torch.tensor([(c, a, d + 1, b + 1) for a, b, c, d in cells], dtype=torch.long).reshape(-1, 4)
    return LatticeSampling(est.float(), ~torch.isnan(value), points, value[points[:, 0], points[:, 1]].float(),
                           torch.cat(levels), boxes)


def replay_lattice(field: torch.Tensor, **kwargs) -> LatticeSampling:
    """:func:`refine_lattice` on a field already measured (e.g. by :func:`occlusion_field`).

    Each probe reads ``field[i, j]`` instead of running the model, so a notebook or benchmark can
    compare budgets and rules without a single new forward pass; the probes are exactly those the
    model would have been asked for. ``kwargs``: :func:`refine_lattice`'s keywords.
    """
    if not isinstance(field, torch.Tensor) or field.dim() != 2:
        raise ValueError(f"field must be a tensor (Py, Px), got {getattr(field, 'shape', type(field))}.")
    return refine_lattice(lambda p: field[p[:, 0], p[:, 1]], tuple(field.shape), **kwargs)


@dataclass(frozen=True)
class QuadtreeOcclusion:
    """Result of :func:`quadtree_occlusion`.

    The occluder sits at a lattice of ``Py × Px`` positions (window ``(i, j)`` starts at pixel
    ``offset + (i·stride, j·stride)``); the score drop at every position is the *field*.

    Attributes:
        saliency: ``(H, W)`` float (``(H − oy, W − ox)``, the pixels ``[oy:, ox:]``, with an offset);
            higher = occluding there lowers ``S_c`` more. :func:`field_to_map` of :attr:`field`.
        n_forward: forward passes used: the probed windows plus the clean image.
        field: ``(Py, Px)`` the drop at every window position: measured where probed, interpolated
            bilinearly inside each quadtree leaf elsewhere.
        probed: ``(Py, Px)`` bool, where a window was really occluded.
        probes: ``(K, 2)`` long lattice positions ``(i, j)`` probed, in the order they were probed.
        deltas: ``(K,)`` the measured drop ``S_c(I) − S_c(I occluded)`` of each probe.
        levels: ``(K,)`` refinement level of each probe (0 = the initial lattice).
        leaves: ``(L, 4)`` long, the final quadtree cells as pixel boxes ``(x0, y0, x1, y1)``
            (exclusive ends) of the image, spanning the centres of their four corner windows (for
            :func:`utils.plotting.draw_leaves`).
        score: ``S_c`` of the clean image.
    """

    saliency: torch.Tensor
    n_forward: int
    field: torch.Tensor
    probed: torch.Tensor
    probes: torch.Tensor
    deltas: torch.Tensor
    levels: torch.Tensor
    leaves: torch.Tensor
    score: float


def quadtree_occlusion(model: nn.Module, image: torch.Tensor, target: int | None = None, *,
                       patch: int = PATCH, stride: int = STRIDE, max_passes: int | None = None,
                       rule: str = "max", start: int = 7, refine: int = 4, min_size: int | None = None,
                       baseline=BASELINE, offset: Offset = 0, batch_size: int = 64
                       ) -> QuadtreeOcclusion:
    """Coarse-to-fine occlusion: probe a few sliding-window positions, refine a quadtree where it matters.

    The sliding window (:func:`occlusion`) occludes a ``patch × patch`` square at every position of
    a lattice with step ``stride`` (27 × 27 = 729 at 224², patch 16, stride 8). Here only the
    corners of a quadtree of lattice cells are occluded (:func:`refine_lattice`): ``start × start``
    cells first, then, level by level, the cells the ``rule`` picks are split until ``max_passes``
    occluded passes are spent or cells are ``min_size`` pixels apart. The drop at unprobed positions
    is bilinear within each leaf; the map is then the sliding window's own (:func:`field_to_map`).
    With a budget of every position it *is* the sliding window's map.

    Args:
        model, image, target, baseline, batch_size: as :func:`occlusion` (one image).
        patch, stride: the sliding window's occluder and lattice step (pixels).
        max_passes: budget of occluded forward passes (the clean pass is extra); ``None``:
            :data:`RECOMMENDED_PASSES` (72).
        rule: ``"max"``, ``"range"`` or ``"hipe"`` (see :func:`refine_lattice`).
        start: level-0 cells per side (lattice corners: ``(start + 1)²`` passes).
        refine: cells split per level for ``"max"`` and ``"range"`` (each level is one batch).
        min_size: smallest distance between probes in pixels (default ``stride``: neighbours).
        offset: first window's pixel ``(oy, ox)`` (or one int for both), as :func:`occlusion_field`.

    Returns:
        :class:`QuadtreeOcclusion`. At 224² with the defaults: 64 level-0 passes and up to 8 more,
        plus the clean image: at most 73 forward passes (sliding window: 730).
    """
    x, t, clean, base, single = _prepare(model, image, target, baseline)
    if not single:
        raise ValueError(f"quadtree_occlusion takes one image (3, H, W), got shape {tuple(image.shape)}.")
    check_positive_int(batch_size, "batch_size")
    h, w = x.shape[-2:]
    oy, ox = _offsets(offset)
    ys, xs = _lattice((h, w), patch, stride, (oy, ox))
    start = check_positive_int(start, "start")
    max_passes = _check_budget(RECOMMENDED_PASSES if max_passes is None else max_passes, "max_passes",
                               _level0(len(ys), start), _level0(len(xs), start), start)
    min_size = stride if min_size is None else check_positive_int(min_size, "min_size")
    origin = torch.tensor([oy, ox])

    def probe(points: torch.Tensor) -> torch.Tensor:
        return _drops(model, x[0], int(t[0]), float(clean[0]), base[0], points * stride + origin, patch,
                      batch_size)

    s = refine_lattice(probe, (len(ys), len(xs)), start=start, max_probes=max_passes, refine=refine,
                       rule=rule, min_step=-(-min_size // stride))
    sal = field_to_map(s.field, (h - oy, w - ox), patch=patch, stride=stride)
    # lattice cells (exclusive ends) → pixel boxes between the centres of their corner windows
    leaves = (s.cells - torch.tensor([0, 0, 1, 1])) * stride + torch.tensor([ox, oy, ox, oy]) + patch // 2
    return QuadtreeOcclusion(sal.to(image.device), int(s.probes.shape[0]) + 1, s.field, s.probed,
                             s.probes, s.values, s.levels, leaves, float(clean[0]))


# ----------------------------------------------------------------------------------------------
# What one probe costs a network: the projective field, layer by layer
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerMACs:
    """One row of :func:`probe_macs`.

    Attributes:
        name: the module's name in ``model.named_modules()``.
        kind: ``"Conv2d"`` or ``"Linear"``.
        output: the output shape without the batch, ``(C, H, W)`` or ``(features,)``.
        box: :class:`utils.images.Box` ``(x0, y0, x1, y1)`` (exclusive ends) of the outputs a probe
            changes, in the output's pixels; ``Box(0, 0, 1, 1)`` (the whole output) for a Linear layer;
            ``None`` when nothing changes.
        dense: multiply-adds of the whole layer.
        changed: multiply-adds of recomputing only the box.
    """

    name: str
    kind: str
    output: tuple[int, ...]
    box: Box | None
    dense: int
    changed: int


@dataclass(frozen=True)
class ProbeMACs:
    """Result of :func:`probe_macs`: the per-layer rows and their totals."""

    layers: list[LayerMACs]
    patch: int
    position: tuple[int, int]
    image_size: int

    @property
    def dense(self) -> int:
        """Multiply-adds of one dense forward pass (Conv2d and Linear layers)."""
        return sum(r.dense for r in self.layers)

    @property
    def changed(self) -> int:
        """Multiply-adds of recomputing only each layer's changed box."""
        return sum(r.changed for r in self.layers)

    @property
    def saving(self) -> float:
        """``dense / changed``: the best speed-up an incremental forward pass could reach."""
        return self.dense / self.changed if self.changed else float("inf")

    def table(self) -> str:
        """The rows as aligned text, with a total line."""
        lines = [f"{'layer':34s} {'output':>16s} {'changed box':>20s} {'dense MACs':>12s} {'box MACs':>12s}"]
        for r in self.layers:
            box = "-" if r.box is None else f"{r.box.height}×{r.box.width} at {r.box.y0},{r.box.x0}"
            lines.append(f"{r.name[:34]:34s} {'×'.join(map(str, r.output)):>16s} {box:>20s} "
                         f"{r.dense:12,d} {r.changed:12,d}")
        lines.append(f"{'total':34s} {'':>16s} {'':>20s} {self.dense:12,d} {self.changed:12,d}  "
                     f"(saving {self.saving:.2f}×)")
        return "\n".join(lines)


def _tainted_box(t: torch.Tensor) -> Box | None:
    """Bounding box ``(x0, y0, x1, y1)`` (exclusive ends) of the NaN entries of a ``(N, C, H, W)`` tensor."""
    mask = torch.isnan(t).flatten(0, 1).any(0)
    if not mask.any():
        return None
    rows, cols = torch.nonzero(mask.any(1)).flatten(), torch.nonzero(mask.any(0)).flatten()
    return Box(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


@contextmanager
def _hooks(modules: Sequence[tuple[str, nn.Module]], hook) -> Iterator[None]:
    handles = []
    try:
        for name, m in modules:
            handles.append(m.register_forward_hook(lambda mod, inp, out, name=name: hook(name, mod, inp, out)))
        yield
    finally:
        for h in handles:
            h.remove()


def probe_macs(model: nn.Module, patch: int = PATCH, position: tuple[int, int] | str = "centre", *,
               image_size: int = 224) -> ProbeMACs:
    """Count, layer by layer, what an occlusion probe really needs recomputing.

    One probe changes a ``patch × patch`` square of the image. A convolution's output changes only
    where its window reads a changed input: the changed box of each layer's output follows from its
    input's by the layer's kernel, stride, padding and dilation (the *projective field*; output
    ``o`` reads inputs ``o·stride − padding + dilation·k``), and after a global pool or a Linear
    layer everything has changed. The changed region is followed through the network by a NaN
    planted in the patch: NaN spreads through every multiply-add (even by a zero weight) and every
    residual addition, but not into zero padding, so each layer's NaN outputs are exactly its
    projective field, whatever padding the layer applies inside its ``forward`` (timm's TF-"same"
    ``Conv2dSame`` pads asymmetrically). Forward hooks on every ``Conv2d`` and ``Linear`` count:

    * dense MACs: ``H_out·W_out·C_out·(C_in/groups)·k_h·k_w`` (Conv2d), ``rows·in·out`` (Linear);
    * changed MACs: the same over the bounding box of the changed outputs (Conv2d), or the dense
      count if any input changed (Linear).

    The hooks are removed on exit, also on error. The model sees one ``image_size²`` grey image.

    Args:
        model: a classifier in eval mode (any architecture built of modules; activations and
            normalisations are not counted).
        patch: the occluder's side in pixels, ``1 … image_size``.
        position: top-left pixel ``(y, x)`` of the patch, ``"centre"`` or ``"corner"`` (top-left).
        image_size: side of the square input image.

    Returns:
        :class:`ProbeMACs`; ``.table()`` prints it, ``.saving`` is ``dense / changed``.
    """
    check_eval_mode(model)
    image_size = check_positive_int(image_size, "image_size")
    patch = check_positive_int(patch, "patch")
    if patch > image_size:
        raise ValueError(f"patch={patch} is larger than the image ({image_size}); use patch <= {image_size}.")
    if position in ("centre", "center"):
        pos = ((image_size - patch) // 2,) * 2
    elif position == "corner":
        pos = (0, 0)
    elif (isinstance(position, Sequence) and not isinstance(position, str) and len(position) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) for v in position)):
        pos = (position[0], position[1])
        if not all(0 <= v <= image_size - patch for v in pos):
            raise ValueError(f"position={position!r} puts the patch outside the image; each coordinate must "
                             f"be in 0 .. {image_size - patch}.")
    else:
        raise ValueError(f"position must be 'centre', 'corner' or a pair (y, x) of ints, got {position!r}.")
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not layers:
        raise ValueError("The model has no nn.Conv2d or nn.Linear module to count.")
    rows: list[LayerMACs] = []

    def count(name: str, m: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        x = inputs[0]
        if isinstance(m, nn.Linear):
            n_rows = x.numel() // x.shape[-1]
            dense = n_rows * m.in_features * m.out_features
            changed = bool(torch.isnan(x).any())
            rows.append(LayerMACs(name, "Linear", tuple(out.shape[1:]), Box(0, 0, 1, 1) if changed else None,
                                  dense, dense if changed else 0))
            return
        c_out, c_in_g, kh, kw = m.weight.shape
        ho, wo = out.shape[-2:]
        per_output = c_out * c_in_g * kh * kw
        box = _tainted_box(out)  # the outputs whose window read a changed input
        area = 0 if box is None else box.width * box.height
        rows.append(LayerMACs(name, "Conv2d", tuple(out.shape[1:]), box, ho * wo * per_output, area * per_output))

    image = torch.full((1, 3, image_size, image_size), 0.5)
    image[:, :, pos[0] : pos[0] + patch, pos[1] : pos[1] + patch] = float("nan")
    dev = model_device(model)
    with _hooks(layers, count), torch.no_grad():
        model(to_model(image, model, dev))
    return ProbeMACs(rows, patch, pos, image_size)


def __getattr__(name: str):
    """``utils.occlusion.hierarchical_occlusion`` and its result type live in :mod:`utils.hierarchical`
    (imported on first use: that module builds on this one)."""
    if name in ("hierarchical_occlusion", "HierarchicalOcclusion"):
        from . import hierarchical

        return getattr(hierarchical, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
