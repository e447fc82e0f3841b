"""Benchmark: the cost of a gradient saliency map.

Contenders, interleaved round by round in one process after a real warm-up
(``utils.course.timing.compare_times``), at batch 1 and 8 on 224×224 photographs:
  * ``forward``: a no-grad forward pass of the *plain* network (BatchNorms as timm builds them);
    every ratio is relative to it;
  * ``forward (folded)``: the same on the course's default model (BatchNorms folded);
  * ``saliency_map``: utils.saliency.saliency_map on the default (folded) model;
  * ``saliency_map (plain)``: the same on the plain network;
  * ``captum (plain)``: Captum's ``Saliency(abs=True)`` + channel max on the plain network (what a
    user of Captum would run on the model as timm builds it);
  * ``naive (plain)``: weights left trainable and ``loss.backward()``: it also computes every
    weight gradient, which a saliency map never needs.
Goals (issue #12): saliency_map ≤ 2.5× the plain forward, and ≤ 0.8× Captum on the plain network.
Reported: median seconds, the median of the per-round ratios and their quartiles.

Usage: python benchmarks/saliency.py [--repeats 15] [--threads N] [--device cpu|cuda]
"""

from __future__ import annotations

import torch
from captum.attr import Saliency

from utils.course.timing import benchmark_parser, benchmark_setup, compare_times
from utils.images import load_samples
from utils.models import load_classifier
from utils.saliency import saliency_map


def main() -> None:
    args = benchmark_parser(__doc__, repeats=15).parse_args()
    dev = benchmark_setup(args, timing="interleaved rounds, median of per-round ratios")
    folded = load_classifier(device=dev)
    plain = load_classifier(device=dev, fold_batchnorm=False)
    naive_model = load_classifier(device=dev, fold_batchnorm=False).requires_grad_(True)
    captum = Saliency(plain)
    samples = load_samples()
    for n in (1, 8):
        x = torch.stack([samples[i % len(samples)].image for i in range(n)]).to(dev)
        t = [samples[i % len(samples)].target for i in range(n)]

        def forward(model, x=x):
            with torch.no_grad():
                model(x)

        def naive(x=x, t=t):
            xi = x.clone().requires_grad_(True)
            naive_model.zero_grad(set_to_none=True)
            naive_model(xi).gather(1, torch.tensor(t, device=dev)[:, None]).sum().backward()
            xi.grad.abs().amax(1)

        result = compare_times({
            "forward": lambda: forward(plain),
            "forward (folded)": lambda: forward(folded),
            "saliency_map": lambda x=x, t=t: saliency_map(folded, x, t),
            "saliency_map (plain)": lambda x=x, t=t: saliency_map(plain, x, t),
            "captum (plain)": lambda x=x, t=t: captum.attribute(
                x.clone().requires_grad_(True), target=t, abs=True).amax(1),
            "naive (plain)": naive,
        }, rounds=args.repeats, device=dev)
        print(f"\nbatch {n}:")
        print(result.table())
        ours, theirs = result.ratios("saliency_map"), result.ratios("captum (plain)")
        vs_captum = sorted(a / b for a, b in zip(ours, theirs, strict=True))
        print(f"saliency_map / captum (plain), per round: median {vs_captum[len(vs_captum) // 2]:.2f}, "
              f"range [{vs_captum[0]:.2f}, {vs_captum[-1]:.2f}]")


if __name__ == "__main__":
    main()
