"""Quadtree benchmark: tree building, leaf convolution vs F.conv2d, and occlusion saliency.

Run from the repository root: ``.venv/bin/python benchmarks/quadtree.py [--quick] [--threads N]``.
One process, fixed thread count, warm-up runs; contenders interleaved round by round
(``utils.course.timing.compare_times``) and compared by the median of the per-round ratios. Prints:

1. ``build_quadtree`` time at 224² on the sample images (goal: ≤ 50 ms).
2. ``quadtree_conv2d`` (tree build included) vs ``F.conv2d`` of the same image, over channels and
   leaf fractions, with the MAC ratio — where does the exact leaf convolution pay off? 2b. the
   crossover: very few leaves (4 or 16 at 256²) and 256–1024 channels.
3. ``quadtree_occlusion`` vs the sliding window (patch 16, stride 8) on the sample images: forward
   passes, seconds, Spearman ρ between the maps (goal: ≥ 10× fewer passes at ρ ≥ 0.8), ρ of the
   gradient map against the sliding window, and the sliding window's own reproducibility (ρ
   against the same window on a lattice moved by 4 px), the ceiling any approximation faces.
4. The budget curve: ρ and top-10% IoU against the sliding window for 72–300 passes, for a uniform
   lattice and for the quadtree's refinement rules (max, range, hipe), replayed on the measured fields.
5. Maps judged by what they are for, on :func:`evaluation_samples` (``--photos``): pointing game,
   share of positive mass in the box, top-region box IoU, deletion/insertion AUC, stability (the
   same method on the lattice moved by half a stride) and agreement with the dense map, for the
   dense sliding window, a uniform lattice and the quadtree rules at 5, 10, 20 and 40 % of the dense
   passes; split by object size (box < 20 % of the image, and the rest); bootstrap intervals.
6. Wall time of ``quadtree_occlusion`` vs the dense ``occlusion``, one process, interleaved rounds.
7. What one occlusion probe costs the whole network (``probe_macs``): patches 8, 16, 32 px at the
   centre and in a corner.
"""

from __future__ import annotations

import math
import statistics
import time

import torch
import torch.nn.functional as F

from utils.course.timing import benchmark_parser, benchmark_setup, compare_times, median_time
from utils.images import Sample, load_samples, sample_names
from utils.localisation import box_iou, saliency_box
from utils.metrics import (
    bootstrap_interval,
    deletion_curve,
    insertion_curve,
    mass_in_box,
    pointing_game,
    spearman,
    top_fraction_iou,
)
from utils.models import load_classifier
from utils.occlusion import (
    RECOMMENDED_PASSES,
    STRIDE,
    field_to_map,
    occlusion,
    occlusion_field,
    probe_macs,
    quadtree_occlusion,
    replay_lattice,
)
from utils.quadtree import build_quadtree, conv_macs, quadtree_conv2d
from utils.saliency import saliency_map


def bench_build(samples, repeats: int) -> None:
    print("\n## 1. build_quadtree at 224² (median of", repeats, "runs, ms)")
    print(f"{'image':14s} {'t=0.05':>8s} {'t=0.1':>8s} {'t=0.2':>8s}  N'/N² at 0.1")
    worst = 0.0
    for s in samples:
        ts = [median_time(lambda t=t, s=s: build_quadtree(s.image, t), repeats=repeats) * 1e3
              for t in (0.05, 0.1, 0.2)]
        worst = max(worst, *ts)
        frac = build_quadtree(s.image, 0.1).leaf_fraction
        print(f"{s.name:14s} {ts[0]:8.1f} {ts[1]:8.1f} {ts[2]:8.1f}  {frac:.3f}")
    print(f"slowest median: {worst:.1f} ms (goal ≤ 50 ms)")


def bench_crossover(quick: bool, rounds: int = 5) -> None:
    print("\n## 2b. Where does the leaf convolution pay off? 256² piecewise-constant images aligned with "
          f"the quadtree (4 or 16 leaves), 3×3 kernel, C → C channels; dense and quadtree interleaved, {rounds} "
          "rounds; speed-up = dense time / quadtree time, median of the per-round ratios [quartiles]")
    print(f"{'leaves':>6s} {'C':>5s} {'MAC ratio':>9s} {'dense ms':>9s} {'speed-up':>8s}  quartiles")
    channels = (256, 512) if quick else (256, 512, 1024)
    for block in (128, 64):
        rgb = blocky_image(256, block, 0)
        for c in channels:
            x = rgb.repeat(-(-c // 3), 1, 1)[:c].contiguous()
            w = torch.randn(c, c, 3, 3) / (3 * c**0.5)
            tree = build_quadtree(rgb, 0.0)
            macs = conv_macs(tree, 3, c, c)
            _print_speedup(f"{tree.n_leaves:6d} {c:5d} {macs['dense'] / macs['quadtree_exact']:9.1f}",
                           lambda x=x, w=w: F.conv2d(x[None], w, padding=1),
                           lambda x=x, w=w, rgb=rgb: quadtree_conv2d(build_quadtree(rgb, 0.0), x, w), rounds)


def _print_speedup(head: str, dense, quad, rounds: int) -> None:
    """Time ``dense`` and ``quad`` interleaved (:func:`compare_times`) and print one table row:
    ``head``, the dense median in ms, and dense/quadtree as the median of per-round ratios."""
    c = compare_times({"quadtree": quad, "dense": dense}, baseline="quadtree", rounds=rounds,
                      warmup_rounds=1, warmup_seconds=0.5)
    lo, hi = c.spread("dense")
    print(f"{head} {c.median('dense') * 1e3:9.2f} {c.ratio('dense'):8.2f}  [{lo:.2f}, {hi:.2f}]", flush=True)


def blocky_image(size: int, block: int, seed: int) -> torch.Tensor:
    """Piecewise-constant test image: random colours on a grid of ``block`` cells (plus noise-free)."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(3, size // block, size // block, generator=g)
    return small.repeat_interleave(block, 1).repeat_interleave(block, 2)


def bench_conv(samples, repeats: int, quick: bool) -> None:
    print(f"\n## 2. quadtree_conv2d (tree build included) vs F.conv2d, 3×3 kernel, interleaved rounds "
          f"({repeats}, or {max(5, repeats // 4)} from 64 channels on); speed-up = dense time / quadtree time, "
          "median of the per-round ratios [quartiles]")
    print("Input: C_in channels made by repeating the RGB image; 'natural' = chelsea at threshold t,"
          " 'blocks b' = piecewise-constant b×b cells (threshold 0).")
    size = 112 if quick else 224
    chelsea = F.interpolate(samples[0].image[None], size=(size, size), mode="area")[0]
    inputs = [("natural t=0.1", chelsea, 0.1), ("natural t=0.3", chelsea, 0.3),
              ("blocks 16", blocky_image(size, 16, 0), 0.0), ("blocks 56", blocky_image(size, 56, 0), 0.0)]
    channels = (3, 16, 64) if quick else (3, 16, 64, 128)
    print(f"{'input':15s} {'C':>4s} {'N/N²':>6s} {'R/N²':>6s} {'MAC ratio':>9s} {'dense ms':>9s} "
          f"{'speed-up':>8s}  quartiles")
    for name, rgb, thr in inputs:
        for c in channels:
            x = rgb.repeat(-(-c // 3), 1, 1)[:c].contiguous()
            w = torch.randn(c, c, 3, 3) / (3 * c**0.5)
            tree = build_quadtree(rgb, thr)
            macs = conv_macs(tree, 3, c, c)
            _print_speedup(f"{name:15s} {c:4d} {tree.leaf_fraction:6.3f} {macs['ring'] / macs['pixels']:6.3f} "
                           f"{macs['dense'] / macs['quadtree_exact']:9.1f}",
                           lambda x=x, w=w: F.conv2d(x[None], w, padding=1),
                           lambda x=x, w=w, rgb=rgb, thr=thr: quadtree_conv2d(build_quadtree(rgb, thr), x, w),
                           max(5, repeats // (4 if c >= 64 else 1)))


HALF = STRIDE // 2  # the stability check moves the window grid by half a stride (4 px)


def shifted_dense(model, image, target, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The sliding window on a lattice moved by half a stride: its field and the map of the pixels
    ``[4:, 4:]`` it covers (``(220, 220)`` at 224²)."""
    field = occlusion_field(model, image, target, offset=HALF, batch_size=batch_size)
    size = (image.shape[1] - HALF, image.shape[2] - HALF)
    return field, field_to_map(field, size)


BUDGETS = ((72, 8), (100, 10), (150, 12), (200, 14), (300, 17))  # (passes, uniform n with n² ≈ passes)


def bench_occlusion(model, samples, batch_size: int, ceiling: bool) -> None:
    print("\n## 3. Occlusion saliency: quadtree vs sliding window (patch 16, stride 8, 729 windows)")
    print("sliding window = occlusion_field + field_to_map (the unit tests check it equals "
          "occlusion); quadtree = quadtree_occlusion with its defaults (rule 'max').")
    print("(wall time: section walltime, which interleaves the two)")
    print(f"{'image':14s} {'passes sw':>9s} {'passes qt':>9s} {'fewer':>6s} "
          f"{'rho qt':>7s} {'rho grad':>8s} {'rho shift':>9s}")
    rows, fields = [], []
    for s in samples:
        field = occlusion_field(model, s.image, s.target, batch_size=batch_size)
        sw = field_to_map(field, (224, 224))
        qt = quadtree_occlusion(model, s.image, s.target, batch_size=batch_size)
        grad = saliency_map(model, s.image, s.target)
        r_shift = spearman(shifted_dense(model, s.image, s.target, batch_size)[1], sw[HALF:, HALF:]) \
            if ceiling else float("nan")
        r_qt, r_grad = spearman(qt.saliency, sw), spearman(grad, sw)
        n_sw = field.numel() + 1  # every window, plus the clean image
        rows.append((n_sw / qt.n_forward, r_qt, r_grad, r_shift))
        fields.append((field, sw))
        print(f"{s.name:14s} {n_sw:9d} {qt.n_forward:9d} {rows[-1][0]:6.1f} "
              f"{r_qt:7.3f} {r_grad:8.3f} {r_shift:9.3f}", flush=True)
    rqt = [r[1] for r in rows]
    print(f"median: {statistics.median(r[0] for r in rows):.1f}× fewer passes; Spearman ρ quadtree vs "
          f"sliding window: median {statistics.median(rqt):.3f}, min {min(rqt):.3f}; "
          f"{sum(r >= 0.8 for r in rqt)}/{len(rqt)} images reach ρ ≥ 0.8 (goal: all at ≥ 10× fewer); "
          f"gradient map vs sliding window: median ρ {statistics.median(r[2] for r in rows):.3f}")
    if ceiling:
        shift = [r[3] for r in rows]
        print(f"reference's own reproducibility (lattice moved {HALF} px, pixels [{HALF}:, {HALF}:]): median ρ "
              f"{statistics.median(shift):.3f}, min {min(shift):.3f}")
    print("\n## 4. Budget curve (replayed on the measured fields: a probe reads the field, no new passes)")
    print(f"{'passes':>6s} {'sampler':16s} {'rho median':>10s} {'rho min':>7s} {'≥0.8':>5s} {'top-10% IoU':>11s}")
    for budget, n in BUDGETS:
        samplers = {f"uniform {n}×{n}": dict(start=n - 1, max_probes=n * n),
                    "quadtree max": dict(max_probes=budget, rule="max"),
                    "quadtree range": dict(max_probes=budget, rule="range"),
                    "quadtree hipe": dict(max_probes=budget, rule="hipe")}
        for name, kw in samplers.items():
            rs, ious = [], []
            for field, sw in fields:
                est = replay_lattice(field, **kw)
                m = field_to_map(est.field, (224, 224))
                rs.append(spearman(m, sw))
                ious.append(top_fraction_iou(m, sw, 0.1))
            print(f"{int(est.probed.sum()) + 1:6d} {name:16s} {statistics.median(rs):10.3f} {min(rs):7.3f} "
                  f"{sum(r >= 0.8 for r in rs):2d}/{len(rs)} {statistics.median(ious):11.3f}", flush=True)


# --------------------------------------------------------------------------------------------
# 5. Occlusion maps judged by what they are for
# --------------------------------------------------------------------------------------------

SHARES = (0.05, 0.10, 0.20, 0.40)  # budgets as shares of the dense sliding window's passes
RULES = ("max", "range", "hipe")
SMALL = 0.20  # an object is small when its box covers less than this share of the image
TOP = 0.10  # the "top region" of a map: this share of its pixels (box IoU, stability and agreement IoU)
METRICS = ("passes", "pointing", "mass in box", "box IoU", "deletion AUC", "insertion AUC",
           "stability rho", "stability IoU", "rho vs dense", "IoU vs dense")


def evaluation_samples(names: list[str] | None = None, size: int | None = None) -> list[Sample]:
    """The photographs the evaluation runs on: every sample of the manifest
    (:func:`utils.images.sample_names`) unless ``names`` picks some. Point this at a larger photo
    set (``--photos``) to narrow the intervals."""
    return load_samples(size, names=names or sample_names())


def level0_start(budget: int) -> int:
    """Level-0 cells per side for a quadtree at ``budget`` passes: about half the budget on the
    initial lattice (``(start + 1)² ≈ budget / 2``), half left for refining."""
    return max(1, int(math.sqrt(budget / 2)) - 1)


def samplers(n_dense: int) -> dict[str, dict]:
    """``{name: replay_lattice keywords}``: a uniform lattice and each quadtree rule at each share."""
    out = {}
    for share in SHARES:
        budget = round(share * n_dense)
        n = max(2, round(math.sqrt(budget)))
        out[f"uniform {share:.0%}"] = dict(start=n - 1, max_probes=n * n)
        for rule in RULES:
            out[f"{rule} {share:.0%}"] = dict(start=level0_start(budget), max_probes=budget, rule=rule)
    return out


def positive_share_in_box(m: torch.Tensor, box) -> float:
    """Share of the map's positive mass inside the box (0 when the map has no positive mass)."""
    pos = m.clamp(min=0)[None]
    if float(pos.sum()) <= 0:
        return 0.0
    areas, ratios = mass_in_box(pos, [box])
    return areas[0] * ratios[0]


def judge_map(model, s, m: torch.Tensor, shifted: torch.Tensor, dense: torch.Tensor, steps: int) -> dict:
    """Every metric of one map ``m`` (224²) of sample ``s`` (``shifted``: the same method on the
    lattice moved by half a stride, pixels ``[4:, 4:]``)."""
    inner = m[HALF:, HALF:]
    return {
        "pointing": float(pointing_game(m, s.box)),
        "mass in box": positive_share_in_box(m, s.box),
        "box IoU": box_iou(saliency_box(m, 1 - TOP), s.box),
        "deletion AUC": float(deletion_curve(model, s.image, m, s.target, steps=steps).auc),
        "insertion AUC": float(insertion_curve(model, s.image, m, s.target, steps=steps).auc),
        "stability rho": spearman(inner, shifted),
        "stability IoU": top_fraction_iou(inner, shifted, TOP),
        "rho vs dense": spearman(m, dense),
        "IoU vs dense": top_fraction_iou(m, dense, TOP),
    }


def bench_judge(model, samples, batch_size: int, steps: int) -> None:
    print(f"\n## 5. Occlusion maps judged by what they are for ({tuple(samples[0].image.shape[1:])} images, "
          "patch 16, stride 8; the samplers are "
          "replayed on each photograph's measured fields, the same probes quadtree_occlusion makes)")
    print(f"pointing game (tolerance 15 px), share of positive mass in the box, IoU of the box of the largest "
          f"component of the map's top {TOP:.0%} with the ground truth (at most about {TOP:.0%} of the image, so "
          f"low for large objects), deletion/insertion AUC ({steps} steps, probability), "
          f"stability (ρ and top-{TOP:.0%} IoU against the same method on the lattice moved {HALF} px), "
          f"agreement with the dense map. Mean [95 % bootstrap interval] over photographs; 'small' = box "
          f"< {SMALL:.0%} of the image.")
    rows: dict[str, list[dict]] = {}
    small: list[bool] = []
    for s in samples:
        t0 = time.perf_counter()
        field = occlusion_field(model, s.image, s.target, batch_size=batch_size)
        field_s, dense_s = shifted_dense(model, s.image, s.target, batch_size)
        h, w = s.image.shape[1:]
        dense = field_to_map(field, (h, w))
        x0, y0, x1, y1 = s.box
        small.append((x1 - x0) * (y1 - y0) / (h * w) < SMALL)
        rows.setdefault("dense", []).append({"passes": field.numel() + 1,
                                             **judge_map(model, s, dense, dense_s, dense, steps)})
        for name, kw in samplers(field.numel()).items():
            est, est_s = replay_lattice(field, **kw), replay_lattice(field_s, **kw)
            m = field_to_map(est.field, (h, w))
            m_s = field_to_map(est_s.field, (h - HALF, w - HALF))
            rows.setdefault(name, []).append({"passes": int(est.probed.sum()) + 1,
                                              **judge_map(model, s, m, m_s, dense, steps)})
        print(f"  {s.name}: {'small' if small[-1] else 'large'} object, {time.perf_counter() - t0:.0f} s",
              flush=True)
    groups = {"all": [True] * len(samples), f"small (< {SMALL:.0%})": small, "large": [not v for v in small]}
    for group, keep in groups.items():
        n = sum(keep)
        print(f"\n### {group}: {n} photograph{'s' if n != 1 else ''}")
        if n == 0:
            continue
        print(f"{'map':14s} " + " ".join(f"{k:>18s}" for k in METRICS))
        for name, per_photo in rows.items():
            cells = []
            for k in METRICS:
                vals = [r[k] for r, kept in zip(per_photo, keep, strict=True) if kept]
                cells.append(f"{vals[0]:.2f}" if n == 1 else str(bootstrap_interval(vals)))
            print(f"{name:14s} " + " ".join(f"{c:>18s}" for c in cells), flush=True)


def bench_walltime(model, samples, batch_size: int, rounds: int) -> None:
    print(f"\n## 6. Wall time, one process, interleaved (compare_times): quadtree_occlusion (defaults: "
          f"{RECOMMENDED_PASSES} occluded passes + 1) vs occlusion (the dense sliding window), {rounds} "
          "round(s) per photograph; 'less' = median of the per-round ratios dense / quadtree [quartiles]")
    quadtree_occlusion(model, samples[0].image, samples[0].target, batch_size=batch_size)  # warm-up
    occlusion(model, samples[0].image, samples[0].target, batch_size=batch_size)
    ratios = []
    for s in samples:
        c = compare_times({"quadtree": lambda s=s: quadtree_occlusion(model, s.image, s.target, batch_size=batch_size),
                           "dense": lambda s=s: occlusion(model, s.image, s.target, batch_size=batch_size)},
                          rounds=rounds, warmup_rounds=0, warmup_seconds=0.0)
        ratios.append(c.ratio("dense"))
        lo, hi = c.spread("dense")
        print(f"{s.name:14s} dense {c.median('dense'):6.2f} s   quadtree {c.median('quadtree'):6.2f} s   "
              f"{ratios[-1]:5.1f}× less [{lo:.1f}, {hi:.1f}]", flush=True)
    print(f"median over photographs: {statistics.median(ratios):.1f}× less wall time "
          f"(range {min(ratios):.1f}–{max(ratios):.1f}; goal ≥ 8×)")


def bench_probe(model) -> None:
    print("\n## 7. One occlusion probe through the whole network (utils.occlusion.probe_macs, 224²): "
          "dense MACs vs the MACs of each layer's changed bounding box")
    print(f"{'patch':>5s} {'position':>8s} {'dense MACs':>14s} {'box MACs':>14s} {'saving':>7s}")
    for patch in (8, 16, 32):
        for position in ("centre", "corner"):
            r = probe_macs(model, patch, position)
            print(f"{patch:5d} {position:>8s} {r.dense:14,d} {r.changed:14,d} {r.saving:6.2f}×")


SECTIONS = ("build", "conv", "crossover", "occlusion", "judge", "walltime", "probe")


def main() -> None:
    parser = benchmark_parser(__doc__, repeats=30)
    parser.add_argument("--quick", action="store_true",
                        help="10 repeats, 2 images, smaller conv grid, 8 deletion steps, 1 wall-time round")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    parser.add_argument("--photos", default=None,
                        help="comma-separated sample names for sections occlusion, judge and walltime, "
                             "or 'all' for the 24 photographs of sample_names('all') (default: the 8 course "
                             "photographs; --quick: the first 2)")
    parser.add_argument("--rounds", type=int, default=3, help="wall-time rounds (section walltime)")
    parser.add_argument("--size", type=int, default=None,
                        help="image side for sections judge and walltime (default 224; --quick: 112, "
                             "to check that they run)")
    parser.add_argument("--skip-occlusion", action="store_true")
    parser.add_argument("--skip-ceiling", action="store_true",
                        help="skip the shifted sliding window in section occlusion (729 more passes per image)")
    args = parser.parse_args()
    dev = benchmark_setup(args, timing="medians")
    torch.manual_seed(0)
    samples = load_samples()
    repeats = 10 if args.quick else args.repeats
    sections = {name.strip() for name in args.sections.split(",")}
    unknown = sections - set(SECTIONS)
    if unknown:
        parser.error(f"unknown --sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    if "build" in sections:
        bench_build(samples, repeats)
    if "conv" in sections:
        bench_conv(samples, repeats, args.quick)
    if "crossover" in sections:
        bench_crossover(args.quick)
    if args.skip_occlusion or not sections & {"occlusion", "judge", "walltime", "probe"}:
        return
    model = load_classifier("efficientnet_lite0", device=dev)
    chosen = sample_names("all") if args.photos == "all" else args.photos.split(",") if args.photos else None
    photos = evaluation_samples(chosen)
    if args.quick and not args.photos:
        photos = photos[:2]
    if "occlusion" in sections:
        bench_occlusion(model, photos, batch_size=32, ceiling=not args.skip_ceiling)
    size = args.size or (112 if args.quick else None)
    judged = photos if size is None else evaluation_samples([p.name for p in photos], size)
    if "judge" in sections:
        bench_judge(model, judged, batch_size=32, steps=8 if args.quick else 16)
    if "walltime" in sections:
        bench_walltime(model, judged[:1] if args.quick else judged, batch_size=32,
                       rounds=1 if args.quick else args.rounds)
    if "probe" in sections:
        bench_probe(model)


if __name__ == "__main__":
    main()
