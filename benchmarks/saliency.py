"""Benchmark: the cost of a gradient saliency map.

In one process, after warm-up, median wall time of
  * a forward pass alone (no autograd),
  * utils.saliency.saliency_map (one forward + one backward with respect to the input only),
  * Captum's Saliency(abs=True) followed by the channel max,
  * a naive version: weights left trainable and ``loss.backward()`` (what a first attempt does;
    it also computes every weight gradient, which a saliency map never needs),
at batch 1 and 8 on 224×224 images, with the ratios. Goals (issue 2): no slower than Captum, and at
most 3× a forward pass.

Usage: python benchmarks/saliency.py [--repeats 15] [--threads N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from captum.attr import Saliency

from utils.images import load_samples
from utils.models import load_classifier
from utils.saliency import saliency_map


def median_time(fn, repeats: int, sync) -> float:
    fn()  # warm-up
    fn()
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model = load_classifier(device=dev)
    samples = load_samples()
    captum = Saliency(model)
    print(f"device={dev.type} threads={torch.get_num_threads()} torch={torch.__version__} "
          f"repeats={args.repeats} (medians)")
    naive_model = load_classifier(device=dev).requires_grad_(True)
    print(f"{'batch':>5} {'forward s':>10} {'saliency_map s':>15} {'captum s':>9} {'naive s':>8} "
          f"{'ours/forward':>13} {'ours/captum':>12} {'naive/forward':>14}")
    for n in (1, 8):
        x = torch.stack([samples[i % len(samples)].image for i in range(n)]).to(dev)
        t = [samples[i % len(samples)].target for i in range(n)]

        def forward(x=x):
            with torch.no_grad():
                model(x)

        def ours(x=x, t=t):
            saliency_map(model, x, t)

        def theirs(x=x, t=t):
            captum.attribute(x.clone().requires_grad_(True), target=t, abs=True).amax(1)

        def naive(x=x, t=t):
            xi = x.clone().requires_grad_(True)
            naive_model.zero_grad(set_to_none=True)
            naive_model(xi).gather(1, torch.tensor(t, device=dev)[:, None]).sum().backward()
            xi.grad.abs().amax(1)

        f, o, c, v = (median_time(fn, args.repeats, sync) for fn in (forward, ours, theirs, naive))
        print(f"{n:>5} {f:>10.3f} {o:>15.3f} {c:>9.3f} {v:>8.3f} {o / f:>13.2f} {o / c:>12.2f} "
              f"{v / f:>14.2f}")


if __name__ == "__main__":
    main()
