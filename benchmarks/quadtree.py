"""Quadtree benchmark: tree building, leaf convolution vs F.conv2d, and occlusion saliency.

Run from the repository root: ``.venv/bin/python benchmarks/quadtree.py [--quick] [--threads N]``.
One process, fixed thread count, warm-up runs, medians. Prints three tables:

1. ``build_quadtree`` time at 224² on the sample images (goal: ≤ 50 ms).
2. ``quadtree_conv2d`` (tree build included) vs ``F.conv2d`` of the same image, over channels and
   leaf fractions, with the MAC ratio — where does the exact leaf convolution pay off? 2b. the
   crossover: very few leaves (4 or 16 at 256²) and 256–1024 channels.
3. ``quadtree_occlusion`` vs the sliding window (patch 16, stride 8) on the sample images: forward
   passes, seconds, Spearman ρ between the maps (goal: ≥ 10× fewer passes at ρ ≥ 0.8), ρ of the
   gradient map against the sliding window, and the sliding window's own reproducibility (ρ
   against the same window on a lattice moved by 4 px), the ceiling any approximation faces.
4. The budget curve: ρ and top-10% IoU against the sliding window for 72–300 passes, for a uniform
   lattice and for the quadtree's two refinement rules, replayed on the measured fields.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from utils.images import load_samples
from utils.metrics import spearman, top_fraction_iou
from utils.models import load_classifier
from utils.quadtree import (
    DEFAULT_FILL,
    _occluded_scores,
    _occlusion_setup,
    build_quadtree,
    conv_macs,
    field_to_map,
    occlusion_field,
    quadtree_conv2d,
    quadtree_occlusion,
    replay_lattice,
)
from utils.saliency import saliency_map
from utils.timing import benchmark_parser, benchmark_setup, median_time


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


def bench_crossover(quick: bool) -> None:
    print("\n## 2b. Where does the leaf convolution pay off? 256² piecewise-constant images aligned with "
          "the quadtree (4 or 16 leaves), 3×3 kernel, C → C channels, median of 3 runs (big layers)")
    print(f"{'leaves':>6s} {'C':>5s} {'MAC ratio':>9s} {'dense ms':>9s} {'quadtree ms':>11s} {'speed-up':>8s}")
    channels = (256, 512) if quick else (256, 512, 1024)
    for block in (128, 64):
        rgb = blocky_image(256, block, 0)
        for c in channels:
            x = rgb.repeat(-(-c // 3), 1, 1)[:c].contiguous()
            w = torch.randn(c, c, 3, 3) / (3 * c**0.5)
            tree = build_quadtree(rgb, 0.0)
            macs = conv_macs(tree, 3, c, c)
            t_dense = median_time(lambda x=x, w=w: F.conv2d(x[None], w, padding=1), repeats=3)
            t_quad = median_time(lambda x=x, w=w, rgb=rgb: quadtree_conv2d(build_quadtree(rgb, 0.0), x, w),
                                 repeats=3)
            print(f"{tree.n_leaves:6d} {c:5d} {macs['dense'] / macs['quadtree_exact']:9.1f} {t_dense * 1e3:9.1f} "
                  f"{t_quad * 1e3:11.1f} {t_dense / t_quad:8.2f}", flush=True)


def blocky_image(size: int, block: int, seed: int) -> torch.Tensor:
    """Piecewise-constant test image: random colours on a grid of ``block`` cells (plus noise-free)."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(3, size // block, size // block, generator=g)
    return small.repeat_interleave(block, 1).repeat_interleave(block, 2)


def bench_conv(samples, repeats: int, quick: bool) -> None:
    print(f"\n## 2. quadtree_conv2d (tree build included) vs F.conv2d, 3×3 kernel, median of {repeats} runs")
    print("Input: C_in channels made by repeating the RGB image; 'natural' = chelsea at threshold t,"
          " 'blocks b' = piecewise-constant b×b cells (threshold 0).")
    size = 112 if quick else 224
    chelsea = F.interpolate(samples[0].image[None], size=(size, size), mode="area")[0]
    inputs = [("natural t=0.1", chelsea, 0.1), ("natural t=0.3", chelsea, 0.3),
              ("blocks 16", blocky_image(size, 16, 0), 0.0), ("blocks 56", blocky_image(size, 56, 0), 0.0)]
    channels = (3, 16, 64) if quick else (3, 16, 64, 128)
    print(f"{'input':15s} {'C':>4s} {'N/N²':>6s} {'R/N²':>6s} {'MAC ratio':>9s} {'dense ms':>9s} "
          f"{'quadtree ms':>11s} {'speed-up':>8s}")
    for name, rgb, thr in inputs:
        for c in channels:
            x = rgb.repeat(-(-c // 3), 1, 1)[:c].contiguous()
            w = torch.randn(c, c, 3, 3) / (3 * c**0.5)
            tree = build_quadtree(rgb, thr)
            macs = conv_macs(tree, 3, c, c)
            r = max(3, repeats // (4 if c >= 64 else 1))
            t_dense = median_time(lambda x=x, w=w: F.conv2d(x[None], w, padding=1), repeats=r)
            t_quad = median_time(lambda x=x, w=w, rgb=rgb, thr=thr: quadtree_conv2d(
                build_quadtree(rgb, thr), x, w), repeats=r)
            print(f"{name:15s} {c:4d} {tree.leaf_fraction:6.3f} {macs['ring'] / macs['pixels']:6.3f} "
                  f"{macs['dense'] / macs['quadtree_exact']:9.1f} {t_dense * 1e3:9.2f} "
                  f"{t_quad * 1e3:11.2f} {t_dense / t_quad:8.2f}")


def shifted_sliding_window(model, image, target, batch_size: int) -> torch.Tensor:
    """The same sliding window on a lattice moved by half a stride (4 px): 26 × 26 windows; the map
    of the inner ``216 × 216`` pixels (4 … 219) that both lattices cover."""
    x, t, base, fill, _ = _occlusion_setup(model, image, target, DEFAULT_FILL, None)
    starts = list(range(4, 224 - 16 + 1, 8))
    field = base - _occluded_scores(model, x, torch.tensor([(y, xx, 16, 16) for y in starts for xx in starts]),
                                    t, fill, batch_size)
    # Windows at 4, 12, …, 204 tile the pixels 4 … 219: a 216² image for field_to_map.
    return field_to_map(field.reshape(len(starts), len(starts)), (216, 216))


BUDGETS = ((72, 8), (100, 10), (150, 12), (200, 14), (300, 17))  # (passes, uniform n with n² ≈ passes)


def bench_occlusion(model, samples, batch_size: int, ceiling: bool) -> None:
    print("\n## 3. Occlusion saliency: quadtree vs sliding window (patch 16, stride 8, 729 windows)")
    print("sliding window = occlusion_field + field_to_map (the unit tests check it equals "
          "sliding_window_occlusion); quadtree = quadtree_occlusion with its defaults (rule 'max').")
    print(f"{'image':14s} {'passes sw':>9s} {'passes qt':>9s} {'fewer':>6s} {'s sw':>6s} {'s qt':>6s} "
          f"{'rho qt':>7s} {'rho grad':>8s} {'rho shift':>9s}")
    rows, fields = [], []
    for s in samples:
        t0 = time.perf_counter()
        field = occlusion_field(model, s.image, s.target, batch_size=batch_size)
        sw = field_to_map(field, (224, 224))
        t1 = time.perf_counter()
        qt = quadtree_occlusion(model, s.image, s.target, batch_size=batch_size)
        t2 = time.perf_counter()
        grad = saliency_map(model, s.image, s.target)
        r_shift = spearman(shifted_sliding_window(model, s.image, s.target, batch_size), sw[4:220, 4:220]) \
            if ceiling else float("nan")
        r_qt, r_grad = spearman(qt.saliency, sw), spearman(grad, sw)
        n_sw = field.numel() + 1  # every window, plus the clean image
        rows.append((n_sw / qt.n_forward, r_qt, r_grad, (t1 - t0) / (t2 - t1), r_shift))
        fields.append((field, sw))
        print(f"{s.name:14s} {n_sw:9d} {qt.n_forward:9d} {rows[-1][0]:6.1f} {t1 - t0:6.1f} "
              f"{t2 - t1:6.1f} {r_qt:7.3f} {r_grad:8.3f} {r_shift:9.3f}", flush=True)
    rqt = [r[1] for r in rows]
    print(f"median: {statistics.median(r[0] for r in rows):.1f}× fewer passes, "
          f"{statistics.median(r[3] for r in rows):.1f}× less wall time; Spearman ρ quadtree vs "
          f"sliding window: median {statistics.median(rqt):.3f}, min {min(rqt):.3f}; "
          f"{sum(r >= 0.8 for r in rqt)}/{len(rqt)} images reach ρ ≥ 0.8 (goal: all at ≥ 10× fewer); "
          f"gradient map vs sliding window: median ρ {statistics.median(r[2] for r in rows):.3f}")
    if ceiling:
        shift = [r[4] for r in rows]
        print(f"reference's own reproducibility (lattice moved 4 px, inner 216²): median ρ "
              f"{statistics.median(shift):.3f}, min {min(shift):.3f}")
    print("\n## 4. Budget curve (replayed on the measured fields: a probe reads the field, no new passes)")
    print(f"{'passes':>6s} {'sampler':16s} {'rho median':>10s} {'rho min':>7s} {'≥0.8':>5s} {'top-10% IoU':>11s}")
    for budget, n in BUDGETS:
        samplers = {f"uniform {n}×{n}": dict(start=n - 1, max_probes=n * n),
                    "quadtree max": dict(max_probes=budget, rule="max"),
                    "quadtree range": dict(max_probes=budget, rule="range")}
        for name, kw in samplers.items():
            rs, ious = [], []
            for field, sw in fields:
                est = replay_lattice(field, **kw)
                m = field_to_map(est.field, (224, 224))
                rs.append(spearman(m, sw))
                ious.append(top_fraction_iou(m, sw, 0.1))
            print(f"{int(est.probed.sum()) + 1:6d} {name:16s} {statistics.median(rs):10.3f} {min(rs):7.3f} "
                  f"{sum(r >= 0.8 for r in rs):2d}/{len(rs)} {statistics.median(ious):11.3f}", flush=True)


def main() -> None:
    parser = benchmark_parser(__doc__, repeats=30)
    parser.add_argument("--quick", action="store_true", help="10 repeats, 2 images, smaller conv grid")
    parser.add_argument("--sections", default="build,conv,crossover,occlusion",
                        help="comma-separated subset of build,conv,crossover,occlusion (default: all)")
    parser.add_argument("--skip-occlusion", action="store_true")
    parser.add_argument("--skip-ceiling", action="store_true",
                        help="skip the shifted sliding window (676 more passes per image)")
    args = parser.parse_args()
    dev = benchmark_setup(args, timing="medians")
    torch.manual_seed(0)
    samples = load_samples()
    repeats = 10 if args.quick else args.repeats
    sections = {name.strip() for name in args.sections.split(",")}
    unknown = sections - {"build", "conv", "crossover", "occlusion"}
    if unknown:
        parser.error(f"unknown --sections {sorted(unknown)}; choose from build, conv, crossover, occlusion")
    if "build" in sections:
        bench_build(samples, repeats)
    if "conv" in sections:
        bench_conv(samples, repeats, args.quick)
    if "crossover" in sections:
        bench_crossover(args.quick)
    if "occlusion" in sections and not args.skip_occlusion:
        model = load_classifier("efficientnet_lite0", device=dev)
        bench_occlusion(model, samples[:2] if args.quick else samples, batch_size=32,
                        ceiling=not args.skip_ceiling)


if __name__ == "__main__":
    main()
