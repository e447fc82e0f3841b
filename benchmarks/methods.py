"""Benchmark: seconds per image of each saliency method (notebook 06's settings).

In one process, every method of ``utils.saliency.saliency_methods`` runs on a batch of the sample
photographs (224×224), interleaved round by round after a warm-up (``utils.course.timing.compare_times``):
the median wall time per image, its ratio to the plain gradient map (the median of the per-round
ratios, with quartiles) and the passes each method makes per image (``utils.metrics.count_passes``).

Usage: python benchmarks/methods.py [--batch 8] [--repeats 5] [--threads N] [--device cpu|cuda]
       [--samples 8] [--steps 8] [--patch 64] [--stride 40]
"""

from __future__ import annotations

import torch

from utils.course.timing import benchmark_parser, benchmark_setup, compare_times
from utils.images import load_samples
from utils.metrics import count_passes
from utils.models import load_classifier
from utils.saliency import saliency_methods


def main() -> None:
    ap = benchmark_parser(__doc__, repeats=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--stride", type=int, default=40)
    args = ap.parse_args()
    dev = benchmark_setup(args, batch=args.batch, timing="interleaved rounds, 224x224")
    model = load_classifier(device=dev)
    samples = load_samples()
    reps = (args.batch + len(samples) - 1) // len(samples)
    images = torch.stack([s.image for s in samples] * reps)[:args.batch].to(dev)
    targets = ([s.target for s in samples] * reps)[:args.batch]
    methods = saliency_methods(samples=args.samples, steps=args.steps, patch=args.patch,
                               stride=args.stride)
    passes = {}
    for name, fn in methods.items():
        with count_passes(model) as c:
            fn(model, images, targets)  # the pass count
        passes[name] = (c.forward / args.batch, c.backward / args.batch)
    result = compare_times({name: (lambda fn=fn: fn(model, images, targets)) for name, fn in methods.items()},
                           rounds=args.repeats, warmup_rounds=1, warmup_seconds=0.0, device=dev)
    print(f"{'method':22s} {'fwd/img':>8s} {'bwd/img':>8s} {'s/img':>8s} {'x gradient':>11s}  quartiles")
    for name in methods:
        lo, hi = result.spread(name)
        print(f"{name:22s} {passes[name][0]:8.1f} {passes[name][1]:8.1f} "
              f"{result.median(name) / args.batch:8.3f} {result.ratio(name):11.1f}  [{lo:.1f}, {hi:.1f}]")


if __name__ == "__main__":
    main()
