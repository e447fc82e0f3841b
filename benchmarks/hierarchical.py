"""Hierarchical occlusion (HiPe) against the sliding window, the uniform lattice, the lattice quadtree and RISE.

Run from the repository root: ``.venv/bin/python benchmarks/hierarchical.py [--photos all] [--subset ...]``.
One process; methods run in turn on each photograph (so their wall times are interleaved).

1. The scaling curve and the cheap samplers, on ``--photos`` (default: the 24 photographs):
   ``hierarchical_occlusion`` run once to a finest cell of 7 px (cells 56, 28, 14, 7 at 224²); the
   maps of coarser finest cells are the same run's first levels (the same probes). Beside it the
   sliding window's pass count at patch 2c / stride c (analytic), a uniform lattice of 16-px windows
   at about the passes of the hierarchical map at 14 px (``quadtree_occlusion`` with no refinement
   budget), and today's lattice quadtree (``quadtree_occlusion`` defaults, 72 + 1 passes).
2. On ``--subset`` (default: 6 photographs, 3 small objects and 3 large): the dense sliding window
   16/8 (730 passes) and RISE (``--masks``, default 1000: a quarter of the paper's 4,000), judged
   with the same measures, and the wall time of each method per photograph (median of per-photo ratios);
   with ``--fine N`` also the 8/4 sliding window (3,026 passes) on the first N of them (its rows cover those only).

Measures: forward passes, pointing game (15 px), share of positive mass in the box, IoU of the box
of the top-10 % region, deletion AUC (probability, ``--steps`` steps), stability (Spearman ρ of the map
against the same method on the photograph moved by 4 px, on the overlap; section 1 only). Mean [95 %
bootstrap interval]; small = box < 20 % of the image.
"""

from __future__ import annotations

import math
import statistics
import time

import torch
import torch.nn.functional as F

from benchmarks.quadtree import SMALL, TOP, positive_share_in_box
from utils.course.timing import benchmark_parser, benchmark_setup
from utils.hierarchical import hierarchical_occlusion
from utils.images import load_samples, sample_names
from utils.localisation import box_iou, saliency_box
from utils.metrics import bootstrap_interval, deletion_curve, pointing_game, spearman
from utils.models import load_classifier
from utils.occlusion import occlusion, quadtree_occlusion, window_starts
from utils.rise import rise

SHIFT = 4
SUBSET = ("rocket", "canoes", "ladybird", "camera", "china", "bee")


def moved(image: torch.Tensor) -> torch.Tensor:
    """The photograph moved ``SHIFT`` px right and down (the new border repeats the edge)."""
    return F.pad(image[None, :, :-SHIFT, :-SHIFT], (SHIFT, 0, SHIFT, 0), mode="replicate")[0]


def stability(m: torch.Tensor, m_moved: torch.Tensor) -> float:
    return spearman(m[:-SHIFT, :-SHIFT], m_moved[SHIFT:, SHIFT:])


def level_maps(r, shape) -> list[tuple[int, torch.Tensor]]:
    """``[(passes, map)]`` of the run's first 1, 2, … levels (the map a coarser ``min_cell`` gives)."""
    out, sal = [], torch.zeros(shape, dtype=torch.float64)
    for lv in r.levels:
        pick = r.cells[:, 4] == lv.level
        for (x0, y0, x1, y1, _), d in zip(r.cells[pick].tolist(), r.drops[pick].tolist(), strict=True):
            if d > 1e-6 * max(1.0, abs(r.score)):
                sal[y0:y1, x0:x1] += d / 4
        out.append((int((r.cells[:, 4] <= lv.level).sum()) + 1, sal.float().clone()))
    return out


def judge(model, s, m: torch.Tensor, steps: int) -> dict:
    return {"pointing": float(pointing_game(m, s.box)), "mass in box": positive_share_in_box(m, s.box),
            "box IoU": box_iou(saliency_box(m, 1 - TOP), s.box),
            "deletion AUC": float(deletion_curve(model, s.image, m, s.target, steps=steps).auc)}


def table(rows: dict[str, list[dict]], small: list[bool], keys: tuple[str, ...]) -> None:
    groups = {"all": [True] * len(small), f"small (< {SMALL:.0%})": small, "large": [not v for v in small]}
    for group, keep in groups.items():
        n = sum(keep)
        print(f"\n### {group}: {n} photograph{'s' if n != 1 else ''}")
        if n == 0:
            continue
        print(f"{'map':26s} " + " ".join(f"{k:>18s}" for k in keys))
        for name, per in rows.items():
            cells = []
            for k in keys:
                vals = [r[k] for r, kept in zip(per, keep, strict=False) if kept and k in r]  # 8/4: first --fine only
                cells.append("-" if not vals else f"{vals[0]:.2f}" if len(vals) == 1 else str(bootstrap_interval(vals)))
            print(f"{name:26s} " + " ".join(f"{c:>18s}" for c in cells), flush=True)


def paired(rows: dict[str, list[dict]], small: list[bool], a: str, b: str,
           keys: tuple[str, ...] = ("mass in box", "box IoU", "pointing", "deletion AUC", "stability rho")) -> None:
    """Print the paired difference ``a − b`` per measure, mean [95 % bootstrap], for all / small / large."""
    for group, keep in (("all", [True] * len(small)), ("small", small), ("large", [not v for v in small])):
        pairs = [(x, y) for x, y, k in zip(rows[a], rows[b], keep, strict=True) if k]
        if len(pairs) > 1:
            print(f"  {a} − {b}, {group} ({len(pairs)}): " + "  ".join(
                f"{k} {bootstrap_interval([x[k] - y[k] for x, y in pairs])}" for k in keys if k in pairs[0][0]))


def main() -> None:
    parser = benchmark_parser(__doc__, repeats=1)
    parser.add_argument("--photos", default="all",
                        help="section 1: comma-separated names, 'all' (24) or 'none' (skip section 1)")
    parser.add_argument("--subset", default=",".join(SUBSET), help="section 2: comma-separated names ('' skips)")
    parser.add_argument("--masks", type=int, default=1000, help="RISE masks (section 2)")
    parser.add_argument("--steps", type=int, default=16, help="deletion curve steps")
    parser.add_argument("--fine", type=int, default=0,
                        help="section 2: also run the 8/4 sliding window (3,026 passes) on the first FINE photographs")
    args = parser.parse_args()
    dev = benchmark_setup(args, date=time.strftime("%Y-%m-%d"))
    model = load_classifier("efficientnet_lite0", device=dev)
    if args.photos != "none":
        section1(model, args)
    subset = [n for n in args.subset.split(",") if n]
    if subset:
        section2(model, subset, args)


def section1(model, args) -> None:
    bs = 32
    names = sample_names("all") if args.photos == "all" else args.photos.split(",")
    photos = load_samples(None, names=names)

    print("\n## 1. The scaling curve: forward passes against the finest cell (224²)")
    sw = {c: len(window_starts(224, patch=2 * c, stride=c)) ** 2 + 1 for c in (56, 32, 28, 16, 14, 8, 7, 4)}
    print("sliding window, patch 2c / stride c (passes incl. the clean one): "
          + ", ".join(f"c={c}: {n}" for c, n in sw.items()))
    rows: dict[str, list[dict]] = {}
    small, per_level = [], []
    for s in photos:
        t0 = time.perf_counter()
        x0, y0, x1, y1 = s.box
        small.append((x1 - x0) * (y1 - y0) / (224 * 224) < SMALL)
        r = hierarchical_occlusion(model, s.image, s.target, min_cell=7, batch_size=bs)
        r_m = hierarchical_occlusion(model, moved(s.image), s.target, min_cell=7, batch_size=bs)
        lm, lm_m = level_maps(r, (224, 224)), level_maps(r_m, (224, 224))
        per_level.append([p for p, _ in lm])
        for (p, m), (_, mm), cell in zip(lm, lm_m, (56, 28, 14, 7), strict=True):
            rows.setdefault(f"hierarchical, cell {cell}", []).append(
                {"passes": p, **judge(model, s, m, args.steps), "stability rho": stability(m, mm)})
        n = max(2, round(math.sqrt(lm[2][0] - 1)))  # a uniform lattice at about the 14-px map's passes
        for name, kw in (("uniform lattice ≈ cell 14", dict(start=n - 1, max_passes=n * n)),
                         ("lattice quadtree (72)", {})):
            q = quadtree_occlusion(model, s.image, s.target, batch_size=bs, **kw)
            q_m = quadtree_occlusion(model, moved(s.image), s.target, batch_size=bs, **kw)
            rows.setdefault(name, []).append({"passes": q.n_forward, **judge(model, s, q.saliency, args.steps),
                                              "stability rho": stability(q.saliency, q_m.saliency)})
        for name, per in rows.items():
            print(f"    {name:26s} " + "  ".join(f"{k} {v:.2f}" for k, v in per[-1].items()), flush=True)
        print(f"  {s.name}: {'small' if small[-1] else 'large'}, hierarchical passes by finest cell "
              f"56/28/14/7 = {per_level[-1]}, {time.perf_counter() - t0:.0f} s", flush=True)
    growth = [b / a for a, b, *_ in ((p[1], p[2]) for p in per_level)]
    growth2 = [p[3] / p[2] for p in per_level]
    print(f"passes, finest cell 28 → 14: ×{statistics.median(growth):.2f} median (range {min(growth):.2f}–"
          f"{max(growth):.2f}); 14 → 7: ×{statistics.median(growth2):.2f} median (range {min(growth2):.2f}–"
          f"{max(growth2):.2f}); sliding window 16/8 → 8/4: ×{(sw[4] - 1) / (sw[8] - 1):.2f}")
    table(rows, small, ("passes", "pointing", "mass in box", "box IoU", "deletion AUC", "stability rho"))
    print("\npaired differences at about equal passes (mean [95 % bootstrap]):")
    paired(rows, small, "hierarchical, cell 14", "uniform lattice ≈ cell 14")


def section2(model, subset: list[str], args) -> None:
    bs = 32
    sw = {c: len(window_starts(224, patch=2 * c, stride=c)) ** 2 + 1 for c in (8, 4)}
    print(f"\n## 2. Dense sliding window 16/8 and RISE ({args.masks} masks, s=7, p=0.5, probability) on "
          f"{len(subset)} photographs: {', '.join(subset)}; wall time per photograph, methods in turn")
    rows2: dict[str, list[dict]] = {}
    small2 = []
    times: dict[str, list[float]] = {"hierarchical, cell 14": [], "hierarchical, cell 7": [], "dense 16/8": [],
                                     f"RISE {args.masks}": [], "dense 8/4": []}
    chosen = load_samples(None, names=subset)
    hierarchical_occlusion(model, chosen[0].image, chosen[0].target, min_cell=14, batch_size=bs)  # warm-up
    for i, s in enumerate(chosen):
        x0, y0, x1, y1 = s.box
        small2.append((x1 - x0) * (y1 - y0) / (224 * 224) < SMALL)
        runs = {"hierarchical, cell 14": lambda s=s: hierarchical_occlusion(model, s.image, s.target, min_cell=14,
                                                                          batch_size=bs),
                "hierarchical, cell 7": lambda s=s: hierarchical_occlusion(model, s.image, s.target, min_cell=7,
                                                                         batch_size=bs),
                "dense 16/8": lambda s=s: occlusion(model, s.image, s.target, batch_size=bs),
                f"RISE {args.masks}": lambda s=s: rise(model, s.image, s.target, n_masks=args.masks, batch_size=bs)}
        if i < args.fine:
            runs["dense 8/4"] = lambda s=s: occlusion(model, s.image, s.target, patch=8, stride=4, batch_size=bs)
        for name, fn in runs.items():
            t0 = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - t0)
            m = out if isinstance(out, torch.Tensor) else out.saliency
            passes = sw[4 if name == "dense 8/4" else 8] if isinstance(out, torch.Tensor) else out.n_forward
            rows2.setdefault(name, []).append({"passes": passes, **judge(model, s, m, args.steps)})
            print(f"    {name:26s} " + "  ".join(f"{k} {v:.2f}" for k, v in rows2[name][-1].items()), flush=True)
        print(f"  {s.name}: " + ", ".join(f"{k} {times[k][-1]:.1f} s" for k in runs), flush=True)
    table(rows2, small2, ("passes", "pointing", "mass in box", "box IoU", "deletion AUC"))
    for cell in (14, 7):
        h = times[f"hierarchical, cell {cell}"]
        for name in ("dense 16/8", f"RISE {args.masks}", "dense 8/4"):
            ratios = [b / a for a, b in zip(h, times[name], strict=False)]  # 8/4: first --fine only
            if ratios:
                print(f"wall time {name} / hierarchical cell {cell}: ×{statistics.median(ratios):.1f} median "
                      f"(range {min(ratios):.1f}–{max(ratios):.1f}, {len(ratios)} photographs)")


if __name__ == "__main__":
    main()
