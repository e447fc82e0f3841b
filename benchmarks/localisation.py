"""Benchmark: seconds per image of weakly supervised localisation (notebook 04).

In one process, after warm-up, median wall time per image of
  * utils.saliency.smoothgrad (the seed map: ``samples`` noisy forward + backward passes),
  * utils.localisation.localise (seeds, colour models, one GraphCut, largest component) on the CPU,
  * localise with 3 more GrabCut iterations,
over the eight 224×224 sample photographs, with the share of the total each step takes. It tells a
user of ``python -m utils.localisation evaluate`` where the time goes (top-5 classes = 5× both).

Usage: python benchmarks/localisation.py [--repeats 3] [--samples 32] [--threads N] [--device cpu|cuda]
"""

from __future__ import annotations

import torch

from utils.images import load_samples
from utils.localisation import localise
from utils.models import load_classifier
from utils.saliency import smoothgrad
from utils.timing import benchmark_parser, benchmark_setup, median_time


def main() -> None:
    ap = benchmark_parser(__doc__, repeats=3)
    ap.add_argument("--samples", type=int, default=32)
    args = ap.parse_args()
    dev = benchmark_setup(args, timing="medians")
    model = load_classifier(device=dev)
    samples = load_samples()
    images = torch.stack([s.image for s in samples]).to(dev)
    targets = [s.target for s in samples]
    n = len(samples)
    maps = smoothgrad(model, images, targets, samples=args.samples).cpu()
    cpu_images = images.cpu()

    def run_smoothgrad():
        smoothgrad(model, images, targets, samples=args.samples)

    def run_localise(iterations: int = 0):
        for im, m in zip(cpu_images, maps, strict=True):
            localise(im, m, grabcut_iterations=iterations)

    t_sg = median_time(run_smoothgrad, repeats=args.repeats, warmup=1, device=dev) / n
    t_loc = median_time(run_localise, repeats=args.repeats, warmup=1, device=dev) / n
    t_loc3 = median_time(lambda: run_localise(3), repeats=args.repeats, warmup=1, device=dev) / n
    print(f"{n} images, seconds per image")
    print(f"{'smoothgrad (' + str(args.samples) + ' samples)':<28} {t_sg:8.3f} s")
    print(f"{'localise (paper: one cut)':<28} {t_loc:8.3f} s")
    print(f"{'localise + 3 GrabCut iters':<28} {t_loc3:8.3f} s")
    print(f"localise share of saliency+localise: {t_loc / (t_sg + t_loc):.0%}; "
          f"3 more iterations cost {t_loc3 / t_loc:.1f}x one cut")
    print(f"ILSVRC evaluate, top-5: about {5 * (t_sg + t_loc):.2f} s per image on this device")


if __name__ == "__main__":
    main()
