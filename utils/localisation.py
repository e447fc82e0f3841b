"""Weakly supervised object localisation from a class saliency map (Simonyan et al., 2013, §3.2).

The network was trained for classification only, yet its class saliency map tells where the object
is. The paper turns the map into a box in four steps, each a function or a field here:

1. **Seeds** — pixels whose saliency is above the 95 % quantile of the map are *foreground* seeds,
   those below the 30 % quantile *background* seeds (:attr:`Localisation.fg_seeds`, ``bg_seeds``).
2. **Colour models** — a Gaussian mixture of colours is fitted to each seed set. The seeds are
   used for this only (the paper: "the saliency map is used to ... fit the colour models").
3. **GraphCut** — every pixel, seeds included, gets the label that minimises colour likelihood plus
   a smoothness cost between neighbours; OpenCV's ``cv2.grabCut`` is the standard implementation
   (:attr:`Localisation.segmentation`). ``hard_seeds=True`` is the common variant that clamps the
   seeds to their labels instead.
4. **Box** — the bounding box of the largest connected foreground component
   (:attr:`Localisation.mask`, :attr:`Localisation.box`).

:func:`localise` does all four. :func:`box_iou` scores a box against the ground truth, and
:func:`saliency_box` / :func:`centred_box` are the baselines the notebook compares against. The
weakly-supervised-localisation literature adds two more that need no GraphCut:

* :func:`cam_box` — CAM's rule (Zhou et al., CVPR 2016): keep the pixels above a fraction (0.2) of
  the map's maximum, take the bounding box of the largest connected component;
* :func:`threshold_sweep` — MaxBoxAcc in the style of Choe et al. (CVPR 2020): the same rule at every
  threshold of a grid, the threshold chosen on one part of the photographs (calibration) and
  reported on the rest (:func:`cross_validated_sweep` rotates the parts, so that every photograph
  gets a held-out IoU).

Boxes are ``(x0, y0, x1, y1)`` ints in pixels of the given image, ``x1``/``y1`` exclusive (the
convention of :mod:`utils.images`).

The paper's ILSVRC evaluation (XML reader, error, command line) lives in :mod:`utils.ilsvrc`
(``python -m utils.ilsvrc evaluate ...``), which builds on this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ._validation import check_box, check_fraction, check_images, check_positive_int
from .images import Box

__all__ = [
    "Localisation",
    "localise",
    "graphcut_segmentation",
    "largest_component",
    "saliency_box",
    "cam_box",
    "threshold_box",
    "SweepResult",
    "threshold_sweep",
    "cross_validated_sweep",
    "SWEEP_THRESHOLDS",
    "centred_box",
    "mean_box_size",
    "box_iou",
    "localisation_ious",
    "format_table",
    "PAPER_TOP5_LOCALISATION_ERROR",
]

#: The paper's top-5 localisation error on ILSVRC-2013 (Simonyan et al., 2013, §3.2).
PAPER_TOP5_LOCALISATION_ERROR = 0.464

# OpenCV fits this many Gaussians to each seed set (fixed in cv2.grabCut); k-means needs as many
# pixels.
_GMM_COMPONENTS = 5


@dataclass(frozen=True)
class Localisation:
    """The result of :func:`localise`, with every intermediate step for teaching.

    Attributes:
        box: ``(x0, y0, x1, y1)`` of the largest connected foreground component, exclusive ends.
        mask: bool ``(H, W)``, the largest connected component of :attr:`segmentation`.
        segmentation: bool ``(H, W)``, GraphCut's foreground (before the component step).
        fg_seeds: bool ``(H, W)``, pixels with saliency ``>= fg_threshold``.
        bg_seeds: bool ``(H, W)``, pixels with saliency ``<= bg_threshold``.
        fg_threshold, bg_threshold: the saliency values at the two quantiles.
        hard_seeds: whether the cut clamped the seeds to their labels (``localise(hard_seeds=...)``).
        empty_cut: True when the cut labelled no pixel foreground (possible only without hard
            seeds); :attr:`segmentation` is then the foreground seeds, so that a box exists.
    """

    box: Box
    mask: torch.Tensor
    segmentation: torch.Tensor
    fg_seeds: torch.Tensor
    bg_seeds: torch.Tensor
    fg_threshold: float
    bg_threshold: float
    hard_seeds: bool = False
    empty_cut: bool = False


def _saliency_array(saliency: torch.Tensor | np.ndarray, name: str = "saliency") -> np.ndarray:
    """A finite, non-constant ``(H, W)`` map as float64 numpy, or a ValueError saying what is wrong."""
    if isinstance(saliency, torch.Tensor):
        a = saliency.detach().cpu().double().numpy()
    elif isinstance(saliency, np.ndarray):
        a = saliency.astype(np.float64)
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy array (H, W), got {type(saliency).__name__}.")
    if a.ndim != 2:
        raise ValueError(
            f"{name} must be one map (H, W), got shape {a.shape}; for a batch from "
            "utils.saliency.smoothgrad pass maps[i]."
        )
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {a.shape}); it needs at least one pixel.")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    if a.max() <= a.min():
        raise ValueError(
            f"{name} is constant (every pixel is {a.min():.3g}): it ranks no pixel above another, "
            "so there are no seeds. Check the target class and that the image is not blank."
        )
    return a


def _check_quantiles(fg_quantile: float, bg_quantile: float) -> tuple[float, float]:
    fq = check_fraction(fg_quantile, "fg_quantile")
    bq = check_fraction(bg_quantile, "bg_quantile")
    if bq >= fq:
        raise ValueError(
            f"bg_quantile={bg_quantile} must be below fg_quantile={fg_quantile} (the paper uses "
            "0.30 and 0.95): background seeds are the least salient pixels, foreground the most."
        )
    return fq, bq


def _to_uint8_bgr(image: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` in [0, 1] → contiguous uint8 ``(H, W, 3)`` in OpenCV's BGR order."""
    rgb = (image.detach().cpu().permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def largest_component(mask: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, Box]:
    """The largest 8-connected component of a bool mask ``(H, W)`` and its bounding box.

    Ties between components of equal area go to the one OpenCV labels first (top-left-most).

    Raises:
        ValueError: the mask has no True pixel.
    """
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {m.shape}.")
    count, labels, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    if count < 2:
        raise ValueError("The mask is empty (no foreground pixel), so it has no component or box.")
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[k, :4])
    return torch.from_numpy(labels == k), Box(x, y, x + w, y + h)


def localise(image: torch.Tensor, saliency: torch.Tensor | np.ndarray, *,
             fg_quantile: float = 0.95, bg_quantile: float = 0.30,
             grabcut_iterations: int = 0, seed: int = 0, hard_seeds: bool = False) -> Localisation:
    """Segment the object from its class saliency map and return its box (paper, §3.2).

    The foreground and background colour models (OpenCV's 5-component Gaussian mixtures) are
    fitted to the seed pixels only; then one GraphCut labels every pixel. As in the paper, the
    seeds serve only to fit the colour models: the cut may relabel a seed whose colour fits the
    other model better (default). With ``hard_seeds=True`` the seeds are clamped to their labels
    (GrabCut's usual user-scribble constraints), the variant the course used before. With
    ``grabcut_iterations > 0`` GrabCut then alternates that many times between refitting the models
    to the current segmentation and cutting again.

    Args:
        image: ``(3, H, W)`` RGB in [0, 1] (e.g. from :func:`utils.images.load_image`).
        saliency: ``(H, W)`` class saliency map of that image, larger = more salient. A
            SmoothGrad map (:func:`utils.saliency.smoothgrad`) works better than the plain gradient
            on the course's network.
        fg_quantile: pixels with saliency at or above this quantile seed the foreground (0.95).
        bg_quantile: pixels at or below this quantile seed the background (0.30).
        grabcut_iterations: extra GrabCut iterations after the paper's single cut (0 = paper).
        seed: seed of OpenCV's random generator (its k-means initialises the mixtures), so that the
            result is reproducible.
        hard_seeds: clamp the seeds to their labels in the cut (False = the paper).

    Returns:
        A :class:`Localisation` with ``.box``, ``.mask`` and the intermediate steps. If the cut
        labels no pixel foreground (possible only without hard seeds), the foreground seeds are
        taken as the segmentation and ``.empty_cut`` is True.

    Raises:
        ValueError: image and map of different sizes; an empty, constant or non-finite map;
            quantiles outside (0, 1) or ``bg_quantile >= fg_quantile``; too few seed pixels.
    """
    batch, single = check_images(image, name="image")
    if not single:
        raise ValueError(f"localise takes one image (3, H, W), got shape {tuple(image.shape)}.")
    sal = _saliency_array(saliency)
    h, w = batch.shape[-2:]
    if sal.shape != (h, w):
        raise ValueError(
            f"saliency has shape {sal.shape} but the image is {h}×{w}; compute the map on this "
            "image (or resize one to the other) so that pixels correspond."
        )
    fq, bq = _check_quantiles(fg_quantile, bg_quantile)
    check_positive_int(grabcut_iterations, "grabcut_iterations", minimum=0)
    if not isinstance(hard_seeds, (bool, np.bool_)):
        raise TypeError(f"hard_seeds must be True or False, got {hard_seeds!r}.")
    fg_t, bg_t = (float(v) for v in np.quantile(sal, [fq, bq]))
    fg_seeds = sal >= fg_t
    bg_seeds = (sal <= bg_t) & ~fg_seeds
    for name, s in (("foreground", fg_seeds), ("background", bg_seeds)):
        if int(s.sum()) < _GMM_COMPONENTS:
            raise ValueError(
                f"Only {int(s.sum())} {name} seed pixels (GraphCut's colour model needs at least "
                f"{_GMM_COMPONENTS}); use a larger image or quantiles further from the ends."
            )
    segmentation, empty_cut = graphcut_segmentation(batch[0], fg_seeds, bg_seeds, hard_seeds=hard_seeds,
                                                    grabcut_iterations=grabcut_iterations, seed=seed)
    # 4. The largest connected component and its box.
    mask, box = largest_component(segmentation)
    return Localisation(box=box, mask=mask, segmentation=torch.from_numpy(segmentation),
                        fg_seeds=torch.from_numpy(fg_seeds), bg_seeds=torch.from_numpy(bg_seeds),
                        fg_threshold=fg_t, bg_threshold=bg_t, hard_seeds=bool(hard_seeds),
                        empty_cut=empty_cut)


def graphcut_segmentation(image: torch.Tensor, fg_seeds: torch.Tensor | np.ndarray,
                          bg_seeds: torch.Tensor | np.ndarray, *, hard_seeds: bool = False,
                          grabcut_iterations: int = 0, seed: int = 0) -> tuple[np.ndarray, bool]:
    """Steps 2-3 of :func:`localise`: colour models fitted to the seed pixels, then one GraphCut.

    Args:
        image: ``(3, H, W)`` RGB in [0, 1].
        fg_seeds, bg_seeds: bool ``(H, W)`` seed masks (disjoint), at least 5 pixels each.
        hard_seeds, grabcut_iterations, seed: as in :func:`localise`.

    Returns:
        ``(segmentation, empty_cut)``: bool ``(H, W)`` numpy foreground, and whether the cut labelled
        no pixel foreground (the foreground seeds are then returned as the segmentation).
    """
    batch, single = check_images(image, name="image")
    if not single:
        raise ValueError(f"graphcut_segmentation takes one image (3, H, W), got shape {tuple(image.shape)}.")
    h, w = batch.shape[-2:]
    masks = []
    for name, m in (("fg_seeds", fg_seeds), ("bg_seeds", bg_seeds)):
        a = m.detach().cpu().numpy() if isinstance(m, torch.Tensor) else np.asarray(m)
        if a.shape != (h, w):
            raise ValueError(f"{name} has shape {a.shape} but the image is {h}×{w}; give one bool per pixel.")
        a = a.astype(bool)
        if int(a.sum()) < _GMM_COMPONENTS:
            raise ValueError(f"{name} holds {int(a.sum())} pixels; GraphCut's colour model needs at "
                             f"least {_GMM_COMPONENTS}.")
        masks.append(a)
    fg_seeds, bg_seeds = masks
    if (fg_seeds & bg_seeds).any():
        raise ValueError("fg_seeds and bg_seeds overlap; a seed pixel is either foreground or background.")
    check_positive_int(grabcut_iterations, "grabcut_iterations", minimum=0)
    bgr = _to_uint8_bgr(batch[0])
    # 1-2. Colour models from the seed pixels only: GrabCut with zero iterations just fits the
    # mixtures, here to a 1-row "image" made of the seed pixels.
    seed_pixels = np.ascontiguousarray(np.concatenate([bgr[fg_seeds], bgr[bg_seeds]])[None])
    seed_labels = np.concatenate([np.full(int(fg_seeds.sum()), cv2.GC_FGD, np.uint8),
                                  np.full(int(bg_seeds.sum()), cv2.GC_BGD, np.uint8)])[None]
    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(int(seed))
    cv2.grabCut(seed_pixels, seed_labels, None, bgd_model, fgd_model, 0, cv2.GC_INIT_WITH_MASK)
    # 3. One graph cut with those frozen models. A "probable" label (GC_PR_*) leaves a pixel to the
    # cut (its data term is the two mixtures' likelihoods); a sure label (GC_FGD/GC_BGD) clamps it.
    labels = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    if hard_seeds:
        labels[fg_seeds] = cv2.GC_FGD
        labels[bg_seeds] = cv2.GC_BGD
    cv2.grabCut(bgr, labels, None, bgd_model, fgd_model, 1, cv2.GC_EVAL_FREEZE_MODEL)
    if grabcut_iterations and _both_labels(labels):
        cv2.grabCut(bgr, labels, None, bgd_model, fgd_model, grabcut_iterations, cv2.GC_EVAL)
    segmentation = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    empty_cut = not segmentation.any()
    if empty_cut:
        segmentation = fg_seeds.copy()
    return segmentation, empty_cut


def _both_labels(labels: np.ndarray) -> bool:
    """Whether a GrabCut label map holds foreground and background (refitting needs both)."""
    fg = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    return bool(fg.any() and not fg.all())


def saliency_box(saliency: torch.Tensor | np.ndarray, quantile: float = 0.95) -> Box:
    """Baseline without GraphCut: the box of the largest component of ``saliency >= quantile``.

    Args:
        saliency: ``(H, W)`` map.
        quantile: in (0, 1); pixels at or above this quantile of the map are kept.
    """
    sal = _saliency_array(saliency)
    q = check_fraction(quantile, "quantile")
    return largest_component(sal >= np.quantile(sal, q))[1]


#: The threshold grid of :func:`threshold_sweep`: fractions 0.05, 0.10, …, 0.95 of the min–max
#: normalised map (Choe et al. sweep a finer grid on ~1000s of images; 19 steps suit ~24 photographs).
SWEEP_THRESHOLDS: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))


def threshold_box(saliency: torch.Tensor | np.ndarray, threshold: float) -> Box:
    """Box of the largest 8-connected component of the map's pixels at or above ``threshold``.

    The map is min–max normalised to [0, 1] first (as in Choe et al.'s evaluation), so ``threshold``
    is a fraction of its range; for the course's non-negative gradient maps, whose minimum is about
    0, that is a fraction of the maximum.

    Args:
        saliency: ``(H, W)`` map, larger = more salient.
        threshold: in (0, 1).
    """
    sal = _saliency_array(saliency)
    t = check_fraction(threshold, "threshold")
    normalised = (sal - sal.min()) / (sal.max() - sal.min())
    return largest_component(normalised >= t)[1]


def cam_box(saliency: torch.Tensor | np.ndarray, fraction: float = 0.2) -> Box:
    """CAM's localisation rule (Zhou et al., CVPR 2016, §2): keep the pixels above ``fraction`` of
    the map's maximum (0.2 in the paper) and take the bounding box of the largest connected
    component. See :func:`threshold_box` for the normalisation."""
    return threshold_box(saliency, fraction)


def _box_list(boxes: Sequence, index: int) -> list[tuple[float, float, float, float]]:
    """One image's ground truth as a list of boxes: a single box or a sequence of boxes."""
    if len(boxes) == 4 and all(isinstance(v, (int, float, np.integer, np.floating)) for v in boxes):
        return [check_box(boxes, f"boxes[{index}]")]
    if len(boxes) == 0:
        raise ValueError(f"boxes[{index}] is empty; give at least one box (x0, y0, x1, y1).")
    return [check_box(b, f"boxes[{index}]") for b in boxes]


def _best_iou(box: Box, truth: list[tuple[float, float, float, float]]) -> float:
    return max(box_iou(box, t) for t in truth)


def _sweep_ious(maps: torch.Tensor | Sequence, boxes: Sequence, thresholds: Sequence[float]
                ) -> np.ndarray:
    """``(N, T)`` IoU of :func:`threshold_box` at every threshold with the best-matching true box."""
    if len(maps) != len(boxes):
        raise ValueError(f"Got {len(maps)} maps and {len(boxes)} boxes; give one entry of boxes per map.")
    if len(thresholds) == 0:
        raise ValueError("thresholds is empty; give at least one value in (0, 1) (e.g. SWEEP_THRESHOLDS).")
    ts = [check_fraction(t, "threshold") for t in thresholds]
    truths = [_box_list(b, i) for i, b in enumerate(boxes)]
    return np.array([[_best_iou(threshold_box(m, t), truth) for t in ts]
                     for m, truth in zip(maps, truths, strict=True)])


@dataclass(frozen=True)
class SweepResult:
    """The result of :func:`threshold_sweep`.

    Attributes:
        threshold: the threshold chosen on the calibration photographs (highest BoxAcc there, ties
            broken by mean IoU, then by the smaller threshold).
        thresholds: the grid that was swept.
        calibration_boxacc: BoxAcc on the calibration photographs at each threshold of the grid.
        calibration: indices of the calibration photographs.
        heldout: indices of the held-out photographs, in increasing order.
        heldout_ious: IoU of each held-out photograph's box at the chosen threshold.
        heldout_boxacc: share of held-out photographs with IoU ≥ ``iou_threshold``.
        iou_threshold: the IoU a box needs to count as correct (0.5).
    """

    threshold: float
    thresholds: tuple[float, ...]
    calibration_boxacc: tuple[float, ...]
    calibration: tuple[int, ...]
    heldout: tuple[int, ...]
    heldout_ious: tuple[float, ...]
    heldout_boxacc: float
    iou_threshold: float


def _choose(ious: np.ndarray, rows: Sequence[int], iou_threshold: float) -> tuple[int, np.ndarray]:
    acc = (ious[rows] >= iou_threshold).mean(axis=0)
    mean = ious[rows].mean(axis=0)
    best = max(range(ious.shape[1]), key=lambda j: (acc[j], mean[j], -j))
    return best, acc


def threshold_sweep(maps: torch.Tensor | Sequence, boxes: Sequence, calibration: Sequence[int] | Sequence[bool],
                    *, thresholds: Sequence[float] = SWEEP_THRESHOLDS, iou_threshold: float = 0.5
                    ) -> SweepResult:
    """MaxBoxAcc-style threshold sweep (Choe et al., CVPR 2020), honest about the choice.

    Every map is turned into a box with :func:`threshold_box` at every threshold of the grid; the
    threshold with the highest BoxAcc (share of boxes with IoU ≥ ``iou_threshold``) on the
    calibration photographs is chosen and then reported on the held-out rest, so that the number
    is not tuned on the photographs it describes. (Choe et al. report the maximum over thresholds,
    MaxBoxAcc, and select hyper-parameters on a separate split.) A photograph with several true
    boxes counts its best-matching one.

    Args:
        maps: ``(N, H, W)`` saliency maps (or a list of ``(H, W)``).
        boxes: N ground truths, each a box ``(x0, y0, x1, y1)`` or a list of boxes, in the maps'
            pixels.
        calibration: indices of the calibration photographs, or N bools (True = calibration). The
            rest are held out; both parts must be non-empty.
        thresholds: values in (0, 1) to sweep (default :data:`SWEEP_THRESHOLDS`).
        iou_threshold: IoU for a correct box, in (0, 1) (0.5 as in ILSVRC and Choe et al.).
    """
    n = len(maps)
    iou_threshold = check_fraction(iou_threshold, "iou_threshold")
    cal = _calibration_indices(calibration, n)
    ious = _sweep_ious(maps, boxes, thresholds)
    held = sorted(set(range(n)) - set(cal))
    best, acc = _choose(ious, cal, iou_threshold)
    held_ious = ious[held, best]
    return SweepResult(threshold=float(thresholds[best]), thresholds=tuple(float(t) for t in thresholds),
                       calibration_boxacc=tuple(float(a) for a in acc), calibration=tuple(cal),
                       heldout=tuple(held), heldout_ious=tuple(float(v) for v in held_ious),
                       heldout_boxacc=float((held_ious >= iou_threshold).mean()),
                       iou_threshold=iou_threshold)


def _calibration_indices(calibration: Sequence[int] | Sequence[bool], n: int) -> list[int]:
    c = list(calibration)
    if c and all(isinstance(v, (bool, np.bool_)) for v in c):
        if len(c) != n:
            raise ValueError(f"calibration has {len(c)} bools for {n} maps; give one per map.")
        idx = [i for i, v in enumerate(c) if v]
    else:
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in c):
            raise ValueError("calibration must be indices (ints) or one bool per map.")
        idx = sorted({int(v) for v in c})
        if idx and not (0 <= idx[0] and idx[-1] < n):
            raise ValueError(f"calibration indices must lie in [0, {n}), got {c}.")
    if not 0 < len(idx) < n:
        raise ValueError(f"calibration selects {len(idx)} of {n} maps; both the calibration part and "
                         "the held-out part need at least one photograph.")
    return idx


def cross_validated_sweep(maps: torch.Tensor | Sequence, boxes: Sequence, *, folds: int = 2,
                          thresholds: Sequence[float] = SWEEP_THRESHOLDS, iou_threshold: float = 0.5
                          ) -> tuple[list[float], list[float]]:
    """:func:`threshold_sweep` with the parts rotated, so that every photograph gets a held-out IoU.

    Photograph ``i`` belongs to fold ``i % folds``. For each fold, the threshold is chosen on the
    other folds and the fold's photographs are boxed with it.

    Returns:
        ``(ious, chosen)``: N held-out IoUs in the maps' order, and the threshold chosen for each
        fold.
    """
    n = len(maps)
    check_positive_int(folds, "folds", minimum=2)
    if folds > n:
        raise ValueError(f"folds={folds} is more than the {n} maps; use at most one fold per map.")
    iou_threshold = check_fraction(iou_threshold, "iou_threshold")
    ious = _sweep_ious(maps, boxes, thresholds)
    out = np.zeros(n)
    chosen = []
    for f in range(folds):
        held = [i for i in range(n) if i % folds == f]
        best, _ = _choose(ious, [i for i in range(n) if i % folds != f], iou_threshold)
        out[held] = ious[held, best]
        chosen.append(float(thresholds[best]))
    return out.tolist(), chosen


def mean_box_size(boxes: Sequence[Sequence[int]]) -> tuple[float, float]:
    """Mean ``(width, height)`` of boxes ``(x0, y0, x1, y1)``."""
    if len(boxes) == 0:
        raise ValueError("mean_box_size needs at least one box.")
    a = np.asarray(boxes, dtype=np.float64)
    return float(np.mean(a[:, 2] - a[:, 0])), float(np.mean(a[:, 3] - a[:, 1]))


def centred_box(height: int, width: int, box_size: tuple[float, float]) -> Box:
    """Baseline without any saliency: a ``(box_w, box_h)`` box centred in an ``height × width`` image.

    With ``box_size = mean_box_size(ground_truth)`` it is the best a method that ignores the image
    can guess (up to the position).
    """
    bw, bh = (min(float(s), float(lim)) for s, lim in zip(box_size, (width, height), strict=True))
    if bw <= 0 or bh <= 0:
        raise ValueError(f"box_size must be positive (width, height), got {box_size}.")
    x0, y0 = round((width - bw) / 2), round((height - bh) / 2)
    return Box(x0, y0, min(width, x0 + max(1, round(bw))), min(height, y0 + max(1, round(bh))))


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes ``(x0, y0, x1, y1)`` (exclusive ends), in [0, 1]."""
    ax0, ay0, ax1, ay1 = check_box(a, "a")
    bx0, by0, bx1, by1 = check_box(b, "b")
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union


def localisation_ious(images: torch.Tensor | Sequence[torch.Tensor],
                      maps: torch.Tensor | Sequence[torch.Tensor], boxes: Sequence[Sequence[int]],
                      **kwargs) -> list[float]:
    """IoU of :func:`localise`'s box with the ground truth, image by image.

    Args:
        images: ``(N, 3, H, W)`` (or a list of ``(3, H, W)``) in [0, 1].
        maps: ``(N, H, W)`` saliency maps of those images.
        boxes: N ground-truth boxes ``(x0, y0, x1, y1)``.
        **kwargs: passed to :func:`localise` (``fg_quantile``, ``bg_quantile``, …).
    """
    if not len(images) == len(maps) == len(boxes):
        raise ValueError(f"Got {len(images)} images, {len(maps)} maps and {len(boxes)} boxes; "
                         "give one map and one box per image.")
    return [box_iou(localise(im, m, **kwargs).box, b) for im, m, b in zip(images, maps, boxes, strict=True)]


def format_table(rows: Sequence[str], columns: dict[str, Sequence[float]], *, digits: int = 2,
                 mean: bool = True) -> str:
    """A plain-text table of numbers (e.g. IoUs): one row per name, one column per method,
    with a final row of column means when ``mean``."""
    for name, values in columns.items():
        if len(values) != len(rows):
            raise ValueError(f"Column {name!r} has {len(values)} values for {len(rows)} rows.")
    first = max([len(r) for r in rows] + [4])
    widths = [max(len(c), digits + 3) for c in columns]
    lines = [" " * first + "".join(f"  {c:>{w}}" for c, w in zip(columns, widths, strict=True))]
    table = list(zip(*columns.values(), strict=True))
    for name, values in zip(rows, table, strict=True):
        lines.append(f"{name:<{first}}" + "".join(f"  {v:>{w}.{digits}f}"
                                                  for v, w in zip(values, widths, strict=True)))
    if mean:
        means = [float(np.mean(v)) for v in columns.values()]
        lines.append(f"{'mean':<{first}}" + "".join(f"  {v:>{w}.{digits}f}"
                                                   for v, w in zip(means, widths, strict=True)))
    return "\n".join(lines)
