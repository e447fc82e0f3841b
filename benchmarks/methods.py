"""Benchmark: seconds per image of each saliency method (notebook 06's settings).

In one process, after a warm-up call, the median wall time of each method of
``utils.saliency.saliency_methods`` on a batch of the sample photographs (224×224), divided by the
batch size, with its ratio to the plain gradient map and the passes it makes per image
(``utils.metrics.count_passes``).

Usage: python benchmarks/methods.py [--batch 8] [--repeats 3] [--threads N] [--device cpu|cuda]
       [--samples 8] [--steps 8] [--patch 64] [--stride 40]
"""

from __future__ import annotations

import torch

from utils.images import load_samples
from utils.metrics import count_passes
from utils.models import load_classifier
from utils.saliency import saliency_methods
from utils.timing import benchmark_parser, benchmark_setup, median_time


def main() -> None:
    ap = benchmark_parser(__doc__, repeats=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--stride", type=int, default=40)
    args = ap.parse_args()
    dev = benchmark_setup(args, batch=args.batch, timing="medians, 224x224")
    model = load_classifier(device=dev)
    samples = load_samples()
    reps = (args.batch + len(samples) - 1) // len(samples)
    images = torch.stack([s.image for s in samples] * reps)[:args.batch].to(dev)
    targets = ([s.target for s in samples] * reps)[:args.batch]
    methods = saliency_methods(samples=args.samples, steps=args.steps, patch=args.patch,
                               stride=args.stride)
    print(f"{'method':22s} {'fwd/img':>8s} {'bwd/img':>8s} {'s/img':>8s} {'x gradient':>11s}")
    base = None
    for name, fn in methods.items():
        with count_passes(model) as c:
            fn(model, images, targets)  # warm-up, and the pass count
        med = median_time(lambda fn=fn: fn(model, images, targets), repeats=args.repeats,
                          warmup=0, device=dev) / args.batch
        base = med if base is None else base
        print(f"{name:22s} {c.forward / args.batch:8.1f} {c.backward / args.batch:8.1f} "
              f"{med:8.3f} {med / base:11.1f}")


if __name__ == "__main__":
    main()
