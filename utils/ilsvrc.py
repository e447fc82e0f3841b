"""The paper's ILSVRC localisation evaluation (Simonyan et al., 2013, §3.2), for users with ILSVRC data.

``python -m utils.ilsvrc evaluate --images DIR --boxes DIR`` computes the ILSVRC localisation error of SmoothGrad saliency +
GraphCut (:func:`utils.localisation.localise`): top-5 classes; a prediction is right when its class
is one of the image's objects and its box overlaps a box of that class with IoU ≥ 0.5.

The class index ↔ WordNet id (``n01440764`` …) mapping is the sorted ILSVRC-2012 synset list that
``timm`` ships (``timm.data.ImageNetInfo``), the order of the course's models' 1000 outputs.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import torch

from ._validation import check_positive_int, resolve_device
from .images import crop_box_to_original, load_image
from .localisation import PAPER_TOP5_LOCALISATION_ERROR, _check_quantiles, box_iou, localise
from .models import WeightsNotAvailableError, load_classifier
from .saliency import smoothgrad

__all__ = [
    "imagenet_wnids",
    "read_ilsvrc_boxes",
    "find_ilsvrc_pairs",
    "ImageResult",
    "EvaluationResult",
    "evaluate_ilsvrc",
    "format_summary",
    "main",
]


@cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ILSVRC-2012 WordNet ids, sorted; index = class index of the course's models.

    Read offline from ``timm`` (``timm.data.ImageNetInfo().label_names()``).
    """
    from timm.data import ImageNetInfo

    wnids = tuple(ImageNetInfo("imagenet-1k").label_names())
    if len(wnids) != 1000 or list(wnids) != sorted(wnids):
        raise RuntimeError("timm's ImageNet-1k synset list is not the 1000 sorted ILSVRC-2012 ids.")
    return wnids


def read_ilsvrc_boxes(path: str | os.PathLike) -> tuple[tuple[int, int], list[tuple[str, tuple[float, float, float, float]]]]:
    """Read an ILSVRC (PASCAL VOC-style) XML annotation.

    Returns:
        ``((width, height), [(wnid, (x0, y0, x1, y1)), ...])``. ILSVRC's ``xmax``/``ymax`` are
        inclusive pixel indices; they become exclusive ends (+1), clipped to the image.

    Raises:
        ValueError: not XML, or missing ``size`` / ``object`` / ``bndbox`` fields.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{path.name} is not a readable XML annotation: {e}") from None

    def number(node: ET.Element, tag: str) -> float:
        child = node.find(tag)
        if child is None or child.text is None:
            raise ValueError(f"{path.name}: <{tag}> is missing (expected ILSVRC/PASCAL VOC XML).")
        try:
            return float(child.text)
        except ValueError:
            raise ValueError(f"{path.name}: <{tag}> is {child.text!r}, not a number.") from None

    size = root.find("size")
    if size is None:
        raise ValueError(f"{path.name}: <size> is missing (expected ILSVRC/PASCAL VOC XML).")
    width, height = int(number(size, "width")), int(number(size, "height"))
    objects = []
    for obj in root.iter("object"):
        name = obj.findtext("name")
        bnd = obj.find("bndbox")
        if not name or bnd is None:
            raise ValueError(f"{path.name}: an <object> lacks <name> or <bndbox>.")
        x0, y0 = max(0.0, number(bnd, "xmin")), max(0.0, number(bnd, "ymin"))
        x1, y1 = min(float(width), number(bnd, "xmax") + 1), min(float(height), number(bnd, "ymax") + 1)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"{path.name}: box {(x0, y0, x1, y1)} of {name} is empty.")
        objects.append((name.strip(), (x0, y0, x1, y1)))
    if not objects:
        raise ValueError(f"{path.name} has no <object> with a box.")
    return (width, height), objects


_IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".webp"}


def find_ilsvrc_pairs(images: str | os.PathLike, boxes: str | os.PathLike,
                      limit: int | None = None) -> tuple[list[tuple[Path, Path]], int]:
    """Pair image files with their XML annotations by file name (searching both folders recursively).

    Returns:
        ``(pairs sorted by image name, number of images without an annotation)``; at most ``limit``
        pairs.
    """
    images, boxes = Path(images), Path(boxes)
    for p, what in ((images, "--images"), (boxes, "--boxes")):
        if not p.is_dir():
            raise FileNotFoundError(f"{what} folder {p} does not exist.")
    xml = {p.stem: p for p in boxes.rglob("*.xml")}
    files = sorted((p for p in images.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES),
                   key=lambda p: p.name)
    pairs = [(p, xml[p.stem]) for p in files if p.stem in xml]
    unmatched = len(files) - len(pairs)
    if not pairs:
        raise ValueError(
            f"No image in {images} has an annotation of the same name in {boxes} "
            f"({len(files)} images, {len(xml)} XML files); ILSVRC pairs X.JPEG with X.xml."
        )
    if limit is not None:
        pairs = pairs[:check_positive_int(limit, "limit")]
    return pairs, unmatched


@dataclass(frozen=True)
class ImageResult:
    """One image's evaluation: predicted classes (best first), their boxes (original pixels),
    the best IoU of each with a ground-truth box of that class (0 when the class is wrong)."""

    image: str
    classes: tuple[int, ...]
    boxes: tuple[tuple[float, float, float, float], ...]
    ious: tuple[float, ...]
    true_classes: tuple[int, ...]


@dataclass(frozen=True)
class EvaluationResult:
    """ILSVRC localisation error over a set of images (fractions in [0, 1])."""

    results: list[ImageResult] = field(repr=False)
    top1_cls_error: float
    topk_cls_error: float
    top1_loc_error: float
    topk_loc_error: float
    skipped: int = 0
    settings: dict = field(default_factory=dict)


def _loc_error(results: Sequence[ImageResult], k: int, threshold: float = 0.5) -> float:
    return float(np.mean([not any(v >= threshold for v in r.ious[:k]) for r in results]))


def _cls_error(results: Sequence[ImageResult], k: int) -> float:
    return float(np.mean([not set(r.classes[:k]) & set(r.true_classes) for r in results]))


def evaluate_ilsvrc(model: torch.nn.Module, pairs: Sequence[tuple[Path, Path]], *, k: int = 5,
                    samples: int = 32, noise: float = 0.15, fg_quantile: float = 0.95,
                    bg_quantile: float = 0.30, batch_size: int = 4, progress: bool = True
                    ) -> EvaluationResult:
    """ILSVRC localisation error of saliency + GraphCut (the paper's §3.2 protocol, top-``k``).

    Each image is loaded as the model sees it (:func:`utils.images.load_image`, shorter side
    resized, centre crop). For each of its top-``k`` classes a SmoothGrad map is computed, localised
    with :func:`localise`, and the box mapped back to the original image. A prediction is right
    when its class is among the image's objects and IoU ≥ 0.5 with a box of that class; the image
    counts as an error when none of the ``k`` predictions is right. Objects outside the centre crop
    cannot be covered: a limitation of evaluating on one crop.

    Args:
        model: classifier from :func:`utils.models.load_classifier` (1000 ILSVRC classes).
        pairs: ``(image path, XML path)`` from :func:`find_ilsvrc_pairs`.
        batch_size: images per step; SmoothGrad runs on ``batch_size × k`` maps at once.
    """
    from tqdm.auto import tqdm

    check_positive_int(k, "k")
    check_positive_int(batch_size, "batch_size")
    _check_quantiles(fg_quantile, bg_quantile)
    wnids = imagenet_wnids()
    index = {w: i for i, w in enumerate(wnids)}
    size = int(getattr(model, "input_size", 224))
    device = resolve_device(None, model)
    results: list[ImageResult] = []
    with tqdm(total=len(pairs), unit="img", desc="localising", disable=not progress,
              file=sys.stderr) as bar:
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            annotations = []
            for _, xml_path in chunk:
                (w, h), objects = read_ilsvrc_boxes(xml_path)
                unknown = sorted({n for n, _ in objects if n not in index})
                if unknown:
                    raise ValueError(f"{xml_path.name}: {unknown} are not ILSVRC-2012 classes.")
                annotations.append(((w, h), [(index[n], b) for n, b in objects]))
            images = torch.stack([load_image(p, size) for p, _ in chunk]).to(device)
            with torch.no_grad():
                top = model(images).topk(k, dim=1).indices.cpu()  # (B, k)
            maps = smoothgrad(model, images.repeat_interleave(k, dim=0), top.flatten().tolist(),
                              samples=samples, noise=noise, batch_size=max(16, len(chunk) * k))
            maps = maps.cpu().view(len(chunk), k, size, size)
            for i, ((img_path, _), ((w, h), objects)) in enumerate(zip(chunk, annotations, strict=True)):
                classes, boxes, ious = [], [], []
                for j in range(k):
                    c = int(top[i, j])
                    loc = localise(images[i].cpu(), maps[i, j], fg_quantile=fg_quantile,
                                   bg_quantile=bg_quantile)
                    box = crop_box_to_original(loc.box, (w, h), size)
                    best = max((box_iou(box, b) for oc, b in objects if oc == c), default=0.0)
                    classes.append(c)
                    boxes.append(box)
                    ious.append(best)
                results.append(ImageResult(img_path.name, tuple(classes), tuple(boxes), tuple(ious),
                                           tuple(sorted({oc for oc, _ in objects}))))
            bar.update(len(chunk))
    settings = {"model": getattr(model, "name", type(model).__name__), "k": k, "samples": samples,
                "noise": noise, "fg_quantile": fg_quantile, "bg_quantile": bg_quantile}
    return EvaluationResult(results, _cls_error(results, 1), _cls_error(results, k),
                            _loc_error(results, 1), _loc_error(results, k), settings=settings)


def format_summary(result: EvaluationResult) -> str:
    """A plain-text table of an :class:`EvaluationResult`, with the paper's figure for context."""
    s = result.settings
    k = s.get("k", 5)
    rows = [
        ("images", f"{len(result.results)}"),
        ("top-1 classification error", f"{100 * result.top1_cls_error:.1f} %"),
        (f"top-{k} classification error", f"{100 * result.topk_cls_error:.1f} %"),
        ("top-1 localisation error", f"{100 * result.top1_loc_error:.1f} %"),
        (f"top-{k} localisation error", f"{100 * result.topk_loc_error:.1f} %"),
        ("paper, top-5 loc. error (ILSVRC-2013)", f"{100 * PAPER_TOP5_LOCALISATION_ERROR:.1f} %"),
    ]
    width = max(len(r[0]) for r in rows)
    head = (f"ILSVRC localisation: {s.get('model')}, SmoothGrad {s.get('samples')} samples × noise "
            f"{s.get('noise')}, seeds at quantiles {s.get('fg_quantile')} / {s.get('bg_quantile')}")
    lines = [head, "-" * len(head)] + [f"{a:<{width}}  {b:>8}" for a, b in rows]
    if result.skipped:
        lines.append(f"({result.skipped} images without an annotation were skipped)")
    return "\n".join(lines)


def _write_csv(result: EvaluationResult, path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "rank", "class", "wnid", "x0", "y0", "x1", "y1", "iou"])
        wnids = imagenet_wnids()
        for r in result.results:
            for rank, (c, b, v) in enumerate(zip(r.classes, r.boxes, r.ious, strict=True), 1):
                writer.writerow([r.image, rank, c, wnids[c], *(f"{x:.1f}" for x in b), f"{v:.4f}"])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m utils.ilsvrc",
                                description="Weakly supervised localisation from saliency maps.")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("evaluate", help="ILSVRC top-5 localisation error (paper, section 3.2)",
                       description="Compute the ILSVRC localisation error of SmoothGrad saliency + "
                                   "GraphCut on images with ILSVRC XML box files.")
    e.add_argument("--images", required=True, type=Path, help="folder of images (searched recursively)")
    e.add_argument("--boxes", required=True, type=Path, help="folder of ILSVRC XML files (same names)")
    e.add_argument("--model", default="efficientnet_lite0", help="a name from utils.models.available_models()")
    e.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    e.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    e.add_argument("--batch-size", type=int, default=4, help="images per step (default 4)")
    e.add_argument("--samples", type=int, default=32, help="SmoothGrad samples (default 32)")
    e.add_argument("--noise", type=float, default=0.15, help="SmoothGrad noise (default 0.15)")
    e.add_argument("--fg-quantile", type=float, default=0.95)
    e.add_argument("--bg-quantile", type=float, default=0.30)
    e.add_argument("--top", type=int, default=5, help="classes per image (default 5)")
    e.add_argument("--csv", type=Path, default=None, help="also write per-prediction results here")
    e.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 bad input).

    ``python -m utils.ilsvrc evaluate --images DIR --boxes DIR [--model NAME]
    [--device cuda] [--limit N]``
    """
    args = _parser().parse_args(argv)
    try:
        pairs, unmatched = find_ilsvrc_pairs(args.images, args.boxes, args.limit)
        model = load_classifier(args.model, device=args.device)
        result = evaluate_ilsvrc(model, pairs, k=args.top, samples=args.samples, noise=args.noise,
                                 fg_quantile=args.fg_quantile, bg_quantile=args.bg_quantile,
                                 batch_size=args.batch_size, progress=not args.no_progress)
    except (ValueError, TypeError, FileNotFoundError, WeightsNotAvailableError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = EvaluationResult(**{**result.__dict__, "skipped": unmatched})
    print(format_summary(result))
    if args.csv is not None:
        _write_csv(result, args.csv)
        print(f"per-prediction results written to {args.csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
