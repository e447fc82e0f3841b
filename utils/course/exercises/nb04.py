"""The self-checks of Notebook 04 (weakly supervised localisation)'s exercises.

Every reference is computed here, from :mod:`utils.localisation`, before the student's function runs;
while it runs, the library's pipeline functions refuse (:func:`~.checks.refusing`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torchvision.ops import box_iou as tv_box_iou

from .checks import _call, check_answered, check_close, refusing

__all__ = ["check_seeds_fn", "check_refined_ious", "check_localise_photo_fn", "check_top5_fn", "check_iou_by_hand", "check_whole_image_iou"]


# --- exercise 4: the seeds ----------------------------------------------------------------------

def _seed_test_maps() -> list[torch.Tensor]:
    """Three made-up maps: continuous (no ties); quantised, with ties spanning both quantiles'
    positions (so that every quantile interpolation and a sort-and-index or top-k threshold give the
    same value, while ``>`` and ``>=`` differ); a plateau holding both quantiles (the 30 % and 95 %
    quantiles are equal, so only a background that excludes the foreground is right)."""
    gen = torch.Generator().manual_seed(2)
    smooth = torch.rand(32, 32, generator=gen) ** 2

    def from_runs(runs: list[tuple[float, float | None, float, float]], side: int) -> torch.Tensor:
        n = side * side
        parts = []
        for start, level, low, high in runs:
            count = round(start * n)
            parts.append((count, level, low, high))
        values = torch.empty(n)
        bounds = [c for c, *_ in parts] + [n]
        for (count, level, low, high), end in zip(parts, bounds[1:], strict=True):
            k = end - count
            values[count:end] = level if level is not None else low + (high - low) * torch.rand(k, generator=gen)
        return values[torch.randperm(n, generator=gen)].reshape(side, side)

    tied = from_runs([(0.0, None, 0.0, 0.2), (0.2, 0.3, 0, 0), (0.4, None, 0.35, 0.8),
                      (0.9, 0.85, 0, 0), (0.98, None, 0.9, 1.0)], 64)
    plateau = from_runs([(0.0, 0.0, 0, 0), (0.1, 0.5, 0, 0), (0.98, None, 0.6, 1.0)], 40)
    return [smooth, tied, plateau]


def _reference_seeds(sal: torch.Tensor, fq: float, bq: float) -> tuple[torch.Tensor, torch.Tensor]:
    s = sal.double()
    fg = s >= torch.quantile(s, fq)
    return fg, (s <= torch.quantile(s, bq)) & ~fg


def _as_mask(name: str, m, shape: tuple[int, ...]) -> torch.Tensor:
    try:
        a = torch.as_tensor(np.asarray(m.detach().cpu() if isinstance(m, torch.Tensor) else m))
    except (TypeError, ValueError):
        raise AssertionError(f"{name}: each mask must be a boolean tensor or array of the map's shape.") from None
    if tuple(a.shape) != tuple(shape):
        raise AssertionError(f"{name}: the masks must have the map's shape {tuple(shape)}, got {tuple(a.shape)}.")
    if a.dtype != torch.bool and not bool(((a == 0) | (a == 1)).all()):
        raise AssertionError(f"{name}: return boolean masks (True = seed), not the saliency values.")
    return a.bool()


def _close(a: torch.Tensor, b: torch.Tensor, slack: int = 2) -> bool:
    """Masks equal up to ``slack`` pixels: the quantile's interpolation may move one pixel of a
    continuous map across the threshold."""
    return int((a ^ b).sum()) <= slack


def check_seeds_fn(fn) -> None:
    """Check ``fn(saliency (H, W), fg_quantile, bg_quantile) -> (fg, bg)`` boolean masks against the
    seeds of :func:`utils.localisation.localise`, on three made-up maps (one with ties)."""
    from ...localisation import graphcut_segmentation, localise

    name = "GraphCut seeds"
    maps = _seed_test_maps()
    refs = [_reference_seeds(m, 0.95, 0.30) for m in maps]
    with refusing("Exercise 4", localise, graphcut_segmentation):
        outs = [_call(name, fn, m.clone(), 0.95, 0.30) for m in maps]
    for sal, (rfg, rbg), out in zip(maps, refs, outs, strict=True):
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise AssertionError(f"{name}: return a pair (fg, bg) of boolean masks.")
        fg, bg = (_as_mask(name, m, sal.shape) for m in out)
        if _close(fg, rfg) and _close(bg, rbg):
            continue
        s = sal.double()
        if _close(fg, s >= 0.95 * s.max()):
            raise AssertionError(f"{name}: 0.95 is a quantile of the map's values, not a fraction of "
                                 "its maximum.")
        if _close(fg, s <= torch.quantile(s, 0.05)) or _close(bg, s >= torch.quantile(s, 0.70)):
            raise AssertionError(f"{name}: the foreground seeds are the MOST salient pixels, the "
                                 "background seeds the least salient.")
        strict_fg = s > torch.quantile(s, 0.95)
        strict_bg = (s < torch.quantile(s, 0.30)) & ~rfg
        if ((not _close(strict_fg, rfg) and _close(fg, strict_fg))
                or (not _close(strict_bg, rbg) and _close(bg, strict_bg))):
            raise AssertionError(f"{name}: this map has many pixels exactly at a quantile; a pixel "
                                 "equal to the quantile is a seed too (\"at or above\", \"at or below\").")
        if _close(fg, rfg) and bool((fg & bg).any()):
            raise AssertionError(f"{name}: the foreground is right, but some pixels are in both masks: "
                                 "on a map with a plateau the background must exclude the foreground.")
        if _close(fg, rfg):
            raise AssertionError(f"{name}: the foreground is right; the background is not (the least "
                                 "salient pixels, at or below their quantile, and not foreground).")
        raise AssertionError(f"{name}: the masks do not match the seeds of section 1; re-read its two "
                             "set definitions.")
    print(f"✓ {name}: correct")


# --- exercise 3: GrabCut's iterations -----------------------------------------------------------

def check_refined_ious(ious_refined, changes_much, images, maps, boxes, ious_once, *,
                       threshold: float = 0.1) -> None:
    """04's GrabCut question: the IoUs of :func:`~utils.localisation.localise` with
    ``grabcut_iterations=3`` on ``images``/``maps``/``boxes`` (recomputed here), and whether their
    mean differs from the one-cut mean (``ious_once``) by more than ``threshold``."""
    from ...localisation import localisation_ious

    name = "GrabCut iterations"
    check_answered(name, ious_refined=ious_refined, changes_much=changes_much)
    try:
        got = np.asarray(ious_refined, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise AssertionError(f"{name}: ious_refined must be a list of numbers, one per photograph.") from None
    if got.size != len(boxes) or not np.all((got >= 0) & (got <= 1)):
        raise AssertionError(f"{name}: expected {len(boxes)} IoUs in [0, 1], one per photograph.")
    ref = np.asarray(localisation_ious(images, maps, boxes, grabcut_iterations=3))
    once = np.asarray(ious_once, dtype=float)
    if not np.allclose(got, ref, atol=1e-6):
        if np.allclose(got, once, atol=1e-6):
            raise AssertionError(f"{name}: these are the one-cut IoUs; ask localise for the extra "
                                 "GrabCut iterations.")
        raise AssertionError(f"{name}: these are not the IoUs of localise with 3 GrabCut iterations on "
                             "the eight SmoothGrad maps; compute them, do not estimate them.")
    if not isinstance(changes_much, bool | np.bool_):
        raise AssertionError(f"{name}: changes_much must be True or False.")
    # The verdict follows from the IoUs just recomputed on this CPU, so no grey zone is needed; only a
    # difference within rounding of the threshold itself accepts both verdicts.
    delta = abs(float(got.mean()) - float(once.mean()))
    if abs(delta - threshold) > 1e-9 and bool(changes_much) != (delta > threshold):
        raise AssertionError(f"{name}: the IoUs are right; compare the two MEAN IoUs, and how far apart "
                             "they are, with the threshold the question names.")
    print(f"✓ {name}: correct")


# --- exercise 5: the whole pipeline, then the top-5 protocol --------------------------------------

def _squares_scene(side: int = 48) -> tuple[torch.Tensor, list[tuple[int, int, int, int]]]:
    """A grey, slightly noisy ``(3, side, side)`` image with four coloured squares (red, green, blue
    and a second, smaller red one), and their boxes."""
    gen = torch.Generator().manual_seed(4)
    image = 0.45 + 0.05 * torch.rand(3, side, side, generator=gen)
    boxes = [(4, 4, 18, 18), (20, 20, 32, 32), (34, 34, 46, 46), (36, 4, 44, 12)]
    colours = [(0.9, 0.1, 0.1), (0.1, 0.8, 0.1), (0.1, 0.1, 0.9), (0.9, 0.1, 0.1)]
    for (x0, y0, x1, y1), c in zip(boxes, colours, strict=True):
        image[:, y0:y1, x0:x1] = torch.tensor(c)[:, None, None]
    return image, boxes


def _bump(side: int, box: Sequence[int]) -> torch.Tensor:
    """A saliency map peaked at ``box``'s centre, inside it only."""
    x0, y0, x1, y1 = box
    yy, xx = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32),
                            indexing="ij")
    cx, cy = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2
    bump = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * ((x1 - x0) / 3) ** 2))
    inside = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
    return bump * inside + 1e-3 * torch.rand(side, side, generator=torch.Generator().manual_seed(5))


def _check_pair(name: str, out) -> tuple[tuple[int, int, int, int], float]:
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise AssertionError(f"{name}: return a pair (box, iou).")
    box, iou = out
    try:
        box = tuple(int(v) for v in box)
        iou = float(iou)
    except (TypeError, ValueError):
        raise AssertionError(f"{name}: box must be four ints (x0, y0, x1, y1) and iou one number.") from None
    if len(box) != 4:
        raise AssertionError(f"{name}: box must be four ints (x0, y0, x1, y1), got {box}.")
    return box, iou


def check_localise_photo_fn(fn: Callable, image: torch.Tensor, saliency: torch.Tensor,
                            truth: Sequence[int]) -> None:
    """Check ``fn(image (3, H, W), saliency (H, W), truth box) -> (box, iou)``: the pipeline of
    section 1 on the photograph given and on a made-up scene with two objects of one colour."""
    from ...localisation import box_iou, localisation_ious, localise

    name = "Pipeline for one photograph"
    scene, scene_boxes = _squares_scene()
    cases = [(image, saliency, tuple(truth)),
             (scene, _bump(scene.shape[-1], scene_boxes[0]) + _bump(scene.shape[-1], scene_boxes[3]),
              scene_boxes[0])]
    refs = [localise(im, sal) for im, sal, _ in cases]
    with refusing("Exercise 5", localise, localisation_ious, box_iou, tv_box_iou):
        outs = [_call(name, fn, im.clone(), sal.clone(), t) for im, sal, t in cases]
    for (_, _, t), ref, out in zip(cases, refs, outs, strict=True):
        box, iou = _check_pair(name, out)
        # before the 2-px slack (another quantile method can move a seed or two): inclusive ends
        if box != tuple(ref.box) and box == tuple(ref.box[:2]) + tuple(v - 1 for v in ref.box[2:]):
            raise AssertionError(f"{name}: boxes have exclusive ends (x1 = last column + 1).")
        if max(abs(a - b) for a, b in zip(box, ref.box, strict=True)) > 2:
            ys, xs = np.nonzero(ref.segmentation.numpy())
            if ys.size and box == (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1):
                raise AssertionError(f"{name}: this box encloses the whole GraphCut foreground; the "
                                     "method keeps one connected piece of it.")
            raise AssertionError(f"{name}: the box differs from the method's; check the seeds (exercise 4), "
                                 "which seed set trains which colour model, and the component step.")
        want = box_iou(box, t)
        if abs(iou - want) > 1e-6:
            if abs(iou - _area_share(box, t)) <= 1e-6 or abs(iou - _area_share(t, box)) <= 1e-6:
                raise AssertionError(f"{name}: the box is right; the IoU divides by the UNION of the two "
                                     "boxes, not by one of them.")
            raise AssertionError(f"{name}: the box is right, the IoU is not; ends are exclusive, so a "
                                 "box's width is x1 − x0 (exercise 1).")
    print(f"✓ {name}: correct")


def _area_share(box: Sequence[int], truth: Sequence[int]) -> float:
    iw = max(0, min(box[2], truth[2]) - max(box[0], truth[0]))
    ih = max(0, min(box[3], truth[3]) - max(box[1], truth[1]))
    return iw * ih / ((truth[2] - truth[0]) * (truth[3] - truth[1]))


class _FixedScores(nn.Module):
    """A stand-in classifier whose scores do not depend on the image (for the top-5 check)."""

    def __init__(self, scores: Sequence[float]):
        super().__init__()
        self.register_buffer("scores", torch.tensor(scores, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scores.expand(x.shape[0], -1).clone()


def check_top5_fn(fn: Callable) -> None:
    """Check ``fn(model, image, truth, label, saliency_for) -> (best_iou, correct)`` on a made-up scene:
    a classifier with fixed scores, and one map per class pointing at a different square."""
    from ...localisation import box_iou, localisation_ious, localise

    name = "Top-5 protocol"
    scene, boxes = _squares_scene()
    side = scene.shape[-1]
    # Classes by score: 3 > 7 > 1 > 9 > 0 > the rest. Class 7's map points at the true box.
    scores = [0.0] * 10
    for rank, c in enumerate((3, 7, 1, 9, 0)):
        scores[c] = 10.0 - rank
    target_of = {3: 0, 7: 1, 1: 2, 9: 3, 0: 0, 2: 0, 4: 2, 5: 0, 6: 2, 8: 0}
    maps = {c: _bump(side, boxes[k]) for c, k in target_of.items()}
    truth = boxes[1]
    ious = {c: box_iou(localise(scene, maps[c]).box, truth) for c in (3, 7, 1, 9, 0)}
    best = max(ious.values())
    calls: list[int] = []

    def saliency_for(c):
        c = int(c)
        calls.append(c)
        if c not in maps:
            raise AssertionError(f"{name}: saliency_for was asked for class {c}, which has no map here.")
        return maps[c].clone()

    for label in (1, 7):
        correct = ious[label] >= 0.5
        calls.clear()
        with refusing("Exercise 5", localise, localisation_ious, box_iou, tv_box_iou):
            out = _call(name, fn, _FixedScores(scores), scene.clone(), truth, label, saliency_for)
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise AssertionError(f"{name}: return a pair (best_iou, correct).")
        try:
            got, flag = float(out[0]), out[1]
        except (TypeError, ValueError):
            raise AssertionError(f"{name}: best_iou must be a number and correct True or False.") from None
        if not isinstance(flag, bool | np.bool_):
            raise AssertionError(f"{name}: correct must be True or False.")
        if abs(got - best) > 0.02:
            if sorted(set(calls)) != [0, 1, 3, 7, 9]:
                raise AssertionError(f"{name}: your function asked for the maps of classes "
                                     f"{sorted(set(calls))}; a guess is one of the five classes the "
                                     "model scores highest.")
            if abs(got - float(np.mean(list(ious.values())))) <= 0.02:
                raise AssertionError(f"{name}: the protocol keeps the BEST of the five guesses, not "
                                     "their average.")
            raise AssertionError(f"{name}: best_iou is not the best IoU among the five guesses' boxes.")
        if bool(flag) != correct:
            raise AssertionError(f"{name}: best_iou is right, correct is not: a guess counts only when "
                                 "its class is the label AND its box overlaps enough (ILSVRC's rule).")
    print(f"✓ {name}: correct")


def check_iou_by_hand(my_iou, a: Sequence[int], b: Sequence[int]) -> None:
    """Exercise 1: ``my_iou``, the IoU of boxes ``a`` and ``b`` ``(x0, y0, x1, y1)`` (exclusive ends)
    computed by hand; the reference is :func:`utils.localisation.box_iou`, computed here."""
    from ...localisation import box_iou

    name = "IoU by hand"
    check_answered(name, my_iou=my_iou)
    check_close(name, my_iou, box_iou(a, b), tol=1e-9,
                hint="Intersection: overlap in x times overlap in y; union: sum of areas minus it.")


def check_whole_image_iou(fn, boxes: Sequence[Sequence[int]], size: int = 224) -> float:
    """Exercise 2: ``fn(box, width, height) -> float``, the IoU of a box ``(x0, y0, x1, y1)`` (exclusive
    ends, inside the image) with the whole image, from the box's area alone. Checked on boxes of
    several image shapes against :func:`utils.localisation.box_iou` (computed here, then refused
    while ``fn`` runs); returns the mean over ``boxes`` in a ``size × size`` image, computed with ``fn``.

    Recognises the typical mistakes: inclusive ends, the image's side fixed at 224, the intersection
    over the box instead of over the union.
    """
    from ...localisation import box_iou

    name = "whole-image IoU"
    check_answered(name, whole_image_iou=fn)
    if not callable(fn):
        raise AssertionError(f"{name}: whole_image_iou must be a function of (box, width, height).")
    cases = [((10, 20, 60, 40), 100, 50), ((0, 0, 30, 70), 30, 90), ((5, 5, 6, 9), 8, 12),
             ((40, 26, 183, 199), 224, 224), ((0, 0, 64, 48), 64, 48)]
    refs = [box_iou((0, 0, w, h), b) for b, w, h in cases]
    with refusing("Exercise 2", box_iou, tv_box_iou):
        got = []
        for b, w, h in cases:
            v = _call(name, fn, tuple(b), w, h)
            try:
                got.append(float(v))
            except (TypeError, ValueError):
                raise AssertionError(f"{name}: return one number (a float), got {type(v).__name__}.") from None
        mean = float(np.mean([float(fn(tuple(b), size, size)) for b in boxes]))
    slips = {
        "the box's ends are exclusive: x1 − x0 columns, not x1 − x0 + 1.":
            [(b[2] - b[0] + 1) * (b[3] - b[1] + 1) / (w * h) for b, w, h in cases],
        "the image's size is an argument: use width and height, not 224.":
            [(b[2] - b[0]) * (b[3] - b[1]) / 224**2 for b, w, h in cases],
        "the intersection is the box itself; divide by the union, not by the box's own area.":
            [1.0 for _ in cases],
    }
    if not np.allclose(got, refs, rtol=1e-9, atol=1e-12):
        for hint, vals in slips.items():
            if np.allclose(got, vals, rtol=1e-9, atol=1e-12):
                raise AssertionError(f"{name}: {hint}")
        raise AssertionError(f"{name}: not the IoU on {sum(not np.isclose(g, r) for g, r in zip(got, refs, strict=True))} "
                             f"of {len(cases)} test boxes. What are the intersection and the union of a box "
                             "inside the image with the whole image?")
    print(f"✓ {name}: correct")
    return mean
