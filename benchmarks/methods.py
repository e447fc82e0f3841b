"""Benchmark: seconds per image of each saliency method (notebook 06's settings).

In one process, after a warm-up call, the median wall time of each method of
``utils.saliency.saliency_methods`` on a batch of the sample photographs (224×224), divided by the
batch size, with its ratio to the plain gradient map and the passes it makes per image
(``utils.metrics.count_passes``).

Usage: python benchmarks/methods.py [--batch 8] [--repeats 3] [--threads N] [--device cpu|cuda]
       [--samples 8] [--steps 8] [--patch 64] [--stride 40]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from utils.images import load_samples
from utils.metrics import count_passes
from utils.models import load_classifier
from utils.saliency import saliency_methods


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--stride", type=int, default=40)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model = load_classifier(device=dev)
    samples = load_samples()
    reps = (args.batch + len(samples) - 1) // len(samples)
    images = torch.stack([s.image for s in samples] * reps)[:args.batch].to(dev)
    targets = ([s.target for s in samples] * reps)[:args.batch]
    methods = saliency_methods(samples=args.samples, steps=args.steps, patch=args.patch,
                               stride=args.stride)
    print(f"device={dev.type} threads={torch.get_num_threads()} torch={torch.__version__} "
          f"batch={args.batch} repeats={args.repeats} (medians, 224x224)")
    print(f"{'method':22s} {'fwd/img':>8s} {'bwd/img':>8s} {'s/img':>8s} {'x gradient':>11s}")
    base = None
    for name, fn in methods.items():
        with count_passes(model) as c:
            fn(model, images, targets)  # warm-up, and the pass count
        times = []
        for _ in range(args.repeats):
            sync()
            t = time.perf_counter()
            fn(model, images, targets)
            sync()
            times.append((time.perf_counter() - t) / args.batch)
        med = statistics.median(times)
        base = med if base is None else base
        print(f"{name:22s} {c.forward / args.batch:8.1f} {c.backward / args.batch:8.1f} "
              f"{med:8.3f} {med / base:11.1f}")


if __name__ == "__main__":
    main()
