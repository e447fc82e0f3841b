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

import torch
from captum.attr import Saliency

from utils.images import load_samples
from utils.models import load_classifier
from utils.saliency import saliency_map
from utils.timing import benchmark_parser, benchmark_setup, median_time


def main() -> None:
    args = benchmark_parser(__doc__, repeats=15).parse_args()
    dev = benchmark_setup(args, timing="medians")
    model = load_classifier(device=dev)
    samples = load_samples()
    captum = Saliency(model)
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

        f, o, c, v = (median_time(fn, repeats=args.repeats, warmup=2, device=dev) for fn in (forward, ours, theirs, naive))
        print(f"{n:>5} {f:>10.3f} {o:>15.3f} {c:>9.3f} {v:>8.3f} {o / f:>13.2f} {o / c:>12.2f} "
              f"{v / f:>14.2f}")


if __name__ == "__main__":
    main()
