"""Benchmark: weakly supervised localisation (notebook 04): seconds per image, or accuracy.

Timing (default): in one process, after warm-up, median wall time per image of
  * utils.saliency.smoothgrad (the seed map: ``samples`` noisy forward + backward passes),
  * utils.localisation.localise (seeds, colour models, one GraphCut, largest component) on the CPU,
  * localise with 3 more GrabCut iterations,
over the eight 224×224 sample photographs, with the share of the total each step takes. It tells a
user of ``python -m utils.ilsvrc evaluate`` where the time goes (top-5 classes = 5× both).

Accuracy (``--accuracy``): on the evaluation set (``utils.images.sample_names("all")``, 24
photographs; ``--set course`` for the eight), for SmoothGrad maps (32 samples, noise 0.15, as in
notebook 04) and plain gradient maps of each photograph's labelled class, the mean IoU with a 95 %
bootstrap interval over photographs and BoxAcc (share with IoU ≥ 0.5) of
  * GraphCut as in the paper (seeds fit the colour models only) and with hard seeds,
  * CAM's rule (largest component above 0.2 of the maximum),
  * the MaxBoxAcc-style threshold sweep, threshold chosen on the other half (2-fold, held out),
  * the centred box of the mean true size and the whole image (no saliency);
then the pointing game (15 px tolerance) and mass-in-box ratio of each map. A photograph with two
objects of its class counts the better-matching box. Columns split the photographs by main-box
size (< 20 % of the 224² crop vs the rest). Paired differences (the same photographs, resampled
together) say whether two methods' gap exceeds the noise. ``--cache FILE`` saves the maps on the
first run and reuses them afterwards.

Usage: python benchmarks/localisation.py [--repeats 3] [--samples 32] [--threads N] [--device cpu|cuda]
       python benchmarks/localisation.py --accuracy [--set all|course] [--samples 32] [--cache maps.pt]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from utils.course.timing import benchmark_parser, benchmark_setup, median_time
from utils.images import load_samples, sample_names
from utils.localisation import (
    box_iou,
    cam_box,
    centred_box,
    cross_validated_sweep,
    localise,
    mean_box_size,
)
from utils.metrics import bootstrap_interval, mass_in_box, pointing_game
from utils.models import load_classifier
from utils.saliency import saliency_map, smoothgrad

#: Main boxes below this share of the 224² crop count as small objects in the accuracy table.
SMALL = 0.2


def timing(args, dev: torch.device) -> None:
    model = load_classifier(device=dev)
    samples = load_samples()
    images = torch.stack([s.image for s in samples]).to(dev)
    targets = [s.target for s in samples]
    n = len(samples)
    maps = smoothgrad(model, images, targets, samples=args.samples).cpu()
    cpu_images = images.cpu()

    def run_smoothgrad():
        smoothgrad(model, images, targets, samples=args.samples)

    def run_localise(iterations: int = 0):
        for im, m in zip(cpu_images, maps, strict=True):
            localise(im, m, grabcut_iterations=iterations)

    t_sg = median_time(run_smoothgrad, repeats=args.repeats, warmup=1, device=dev) / n
    t_loc = median_time(run_localise, repeats=args.repeats, warmup=1, device=dev) / n
    t_loc3 = median_time(lambda: run_localise(3), repeats=args.repeats, warmup=1, device=dev) / n
    print(f"{n} images, seconds per image")
    print(f"{'smoothgrad (' + str(args.samples) + ' samples)':<28} {t_sg:8.3f} s")
    print(f"{'localise (paper: one cut)':<28} {t_loc:8.3f} s")
    print(f"{'localise + 3 GrabCut iters':<28} {t_loc3:8.3f} s")
    print(f"localise share of saliency+localise: {t_loc / (t_sg + t_loc):.0%}; "
          f"3 more iterations cost {t_loc3 / t_loc:.1f}x one cut")
    print(f"ILSVRC evaluate, top-5: about {5 * (t_sg + t_loc):.2f} s per image on this device")


def _row(name: str, values: list[float], groups: dict[str, np.ndarray], hit: float | None = 0.5) -> str:
    """One table row: the mean [95 % interval] over all photographs, then per group."""
    v = np.asarray(values, float)
    cells = [str(bootstrap_interval(v))]
    if hit is not None:
        cells.append(f"{(v >= hit).mean():.2f}")
    for idx in groups.values():
        cells.append(str(bootstrap_interval(v[idx])) if idx.size >= 2 else f"{v[idx].mean():.2f}")
    return f"{name:<26}" + "".join(f"  {c:>18}" for c in cells)


def accuracy(args, dev: torch.device) -> None:
    model = load_classifier(device=dev)
    samples = load_samples(names=sample_names(args.set))
    images = torch.stack([s.image for s in samples])
    targets = [s.target for s in samples]
    # every true box of the labelled class (two for e.g. canoes, spaniels), main box first
    truths = [[b for c, b in s.objects if c == s.target] for s in samples]
    areas = np.array([(s.box[2] - s.box[0]) * (s.box[3] - s.box[1]) / 224**2 for s in samples])
    groups = {f"small (<{SMALL:.0%})": np.flatnonzero(areas < SMALL),
              f"rest (>={SMALL:.0%})": np.flatnonzero(areas >= SMALL)}
    cache = Path(args.cache) if args.cache else None
    key = {"names": [s.name for s in samples], "samples": args.samples}
    if cache is not None and cache.is_file() and torch.load(cache)["key"] == key:
        maps = torch.load(cache)["maps"]
        print(f"maps read from {cache}")
    else:
        maps = {
            "SG": smoothgrad(model, images.to(dev), targets, samples=args.samples, noise=0.15).cpu(),
            "grad": saliency_map(model, images.to(dev), targets).cpu(),
        }
        if cache is not None:
            torch.save({"key": key, "maps": maps}, cache)

    def best(box, truth) -> float:
        return max(box_iou(box, t) for t in truth)

    rows: dict[str, list[float]] = {}
    for key, m in maps.items():
        rows[f"GraphCut paper ({key})"] = [best(localise(im, mm).box, t)
                                           for im, mm, t in zip(images, m, truths, strict=True)]
        rows[f"GraphCut hard seeds ({key})"] = [best(localise(im, mm, hard_seeds=True).box, t)
                                                for im, mm, t in zip(images, m, truths, strict=True)]
        rows[f"CAM rule 0.2 ({key})"] = [best(cam_box(mm), t) for mm, t in zip(m, truths, strict=True)]
        swept, chosen = cross_validated_sweep(m, truths, folds=2)
        rows[f"sweep, held out ({key})"] = swept
        print(f"threshold sweep ({key}): thresholds chosen per fold {chosen}")
    centre = centred_box(224, 224, mean_box_size([s.box for s in samples]))
    rows["centred box (mean size)"] = [best(centre, t) for t in truths]
    rows["whole image"] = [best((0, 0, 224, 224), t) for t in truths]

    n = len(samples)
    sizes = "  ".join(f"{g}: n={idx.size}" for g, idx in groups.items())
    print(f"\n{n} photographs ({args.set}); {sizes}; mean [95 % bootstrap interval] over photographs")
    head = ["mean IoU, all", "BoxAcc@0.5", *[f"IoU, {g}" for g in groups]]
    print(f"{'method':<26}" + "".join(f"  {h:>18}" for h in head))
    for name, values in rows.items():
        print(_row(name, values, groups))

    print("\npaired differences of mean IoU (A − B) [95 % interval], all photographs and small ones")
    pairs = [("GraphCut paper (SG)", "GraphCut hard seeds (SG)"),
             ("GraphCut paper (grad)", "GraphCut hard seeds (grad)"),
             ("GraphCut paper (SG)", "whole image"), ("GraphCut paper (SG)", "centred box (mean size)"),
             ("CAM rule 0.2 (SG)", "whole image"), ("CAM rule 0.2 (SG)", "GraphCut paper (SG)"),
             ("sweep, held out (SG)", "whole image")]
    small = groups[f"small (<{SMALL:.0%})"]
    for a, b in pairs:
        d = np.asarray(rows[a]) - np.asarray(rows[b])
        print(f"{a + ' − ' + b:<50}  {bootstrap_interval(d)!s:>18}  {bootstrap_interval(d[small])!s:>18}")

    print(f"\n{'map':<26}" + "".join(f"  {h:>18}" for h in ["all", *groups]))
    for key, m in maps.items():
        hits = torch.stack([pointing_game(m, [t[k] if k < len(t) else t[0] for t in truths])
                            for k in range(max(len(t) for t in truths))]).any(dim=0)
        print(_row(f"pointing game ({key})", hits.float().tolist(), groups, hit=None))
        _, ratios = mass_in_box(m, [s.box for s in samples])
        print(_row(f"mass-in-box ratio ({key})", ratios, groups, hit=None))
    print("\nper photograph (IoU): name, main-box share of the crop, then the methods in order")
    for i, s in enumerate(samples):
        print(f"{s.name:<13} {areas[i]:5.2f} " + " ".join(f"{v[i]:.2f}" for v in rows.values()))


def main() -> None:
    ap = benchmark_parser(__doc__, repeats=3)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--accuracy", action="store_true", help="measure accuracy instead of time")
    ap.add_argument("--set", choices=["all", "course"], default="all", help="photographs (--accuracy)")
    ap.add_argument("--cache", default=None, help="file to save the maps to / read them from (--accuracy)")
    args = ap.parse_args()
    dev = benchmark_setup(args, timing="accuracy" if args.accuracy else "medians")
    (accuracy if args.accuracy else timing)(args, dev)


if __name__ == "__main__":
    main()
