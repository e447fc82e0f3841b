"""Quadtree benchmark: tree building, leaf convolution vs F.conv2d, and occlusion saliency.

Run from the repository root: ``.venv/bin/python benchmarks/quadtree.py [--quick] [--threads N]``.
One process, fixed thread count, warm-up runs, medians. Prints three tables:

1. ``build_quadtree`` time at 224² on the sample images (goal: ≤ 50 ms).
2. ``quadtree_conv2d`` (tree build included) vs ``F.conv2d`` of the same image, over channels and
   leaf fractions, with the MAC ratio — where does the exact leaf convolution pay off?
3. ``quadtree_occlusion`` vs ``sliding_window_occlusion`` (patch 16, stride 8) on the sample images:
   forward passes, seconds, Spearman ρ between the maps (goal: ≥ 10× fewer passes at ρ ≥ 0.8), and
   ρ of the gradient map against the sliding window for comparison.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from utils.images import load_samples
from utils.metrics import spearman
from utils.models import load_classifier
from utils.quadtree import (
    build_quadtree,
    conv_macs,
    quadtree_conv2d,
    quadtree_occlusion,
    sliding_window_occlusion,
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


def bench_occlusion(model, samples, batch_size: int) -> None:
    print("\n## 3. Occlusion saliency: quadtree vs sliding window (patch 16, stride 8)")
    print(f"{'image':14s} {'passes sw':>9s} {'passes qt':>9s} {'fewer':>6s} {'s sw':>6s} {'s qt':>6s} "
          f"{'rho qt':>7s} {'rho grad':>8s}")
    rows = []
    for s in samples:
        t0 = time.perf_counter()
        sw = sliding_window_occlusion(model, s.image, s.target, batch_size=batch_size)
        t1 = time.perf_counter()
        qt = quadtree_occlusion(model, s.image, s.target, batch_size=batch_size)
        t2 = time.perf_counter()
        grad = saliency_map(model, s.image, s.target)
        r_qt, r_grad = spearman(qt.saliency, sw.saliency), spearman(grad, sw.saliency)
        rows.append((sw.n_forward / qt.n_forward, r_qt, r_grad, (t1 - t0) / (t2 - t1)))
        print(f"{s.name:14s} {sw.n_forward:9d} {qt.n_forward:9d} {rows[-1][0]:6.1f} {t1 - t0:6.1f} "
              f"{t2 - t1:6.1f} {r_qt:7.3f} {r_grad:8.3f}", flush=True)
    fewer = statistics.median(r[0] for r in rows)
    speed = statistics.median(r[3] for r in rows)
    rqt = [r[1] for r in rows]
    print(f"median: {fewer:.1f}× fewer passes, {speed:.1f}× less wall time; Spearman ρ quadtree vs "
          f"sliding window: median {statistics.median(rqt):.3f}, min {min(rqt):.3f}; "
          f"{sum(r >= 0.8 for r in rqt)}/{len(rqt)} images reach ρ ≥ 0.8; gradient map vs sliding "
          f"window: median ρ {statistics.median(r[2] for r in rows):.3f}")


def main() -> None:
    parser = benchmark_parser(__doc__, repeats=30)
    parser.add_argument("--quick", action="store_true", help="10 repeats, 2 images, smaller conv grid")
    parser.add_argument("--skip-occlusion", action="store_true")
    args = parser.parse_args()
    dev = benchmark_setup(args, timing="medians")
    torch.manual_seed(0)
    samples = load_samples()
    repeats = 10 if args.quick else args.repeats
    bench_build(samples, repeats)
    bench_conv(samples, repeats, args.quick)
    if not args.skip_occlusion:
        model = load_classifier("efficientnet_lite0", device=dev)
        bench_occlusion(model, samples[:2] if args.quick else samples, batch_size=32)


if __name__ == "__main__":
    main()
