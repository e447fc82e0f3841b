"""Benchmark: class-model visualisation, plain (the paper) vs recommended settings.

For 10 ImageNet classes optimised on EfficientNet-Lite0 in one batch, reports per setting: wall and
CPU seconds per class, the own network's probability of the target, and the rank of the target in
an independent judge network (EfficientNet-Lite1, input 240; the image is resized for it). Goals
(issue 3): judge top-5 for >= 8 of 10 classes; <= 20 s per class on a 2-core CPU.

One process; a short warm-up run first; each setting is run ``--repeats`` times and the median time
is reported (results are deterministic for the seed, so the quality figures come from one run).

With ``--classes K`` only the first K classes are run (a quick check, e.g. of λ on a loaded machine).

Usage: python benchmarks/class_model.py [--repeats 1] [--threads N] [--device cpu|cuda] [--classes K]
"""

from __future__ import annotations

import statistics
import time

import torch

from utils.class_model import PAPER_SETTINGS, class_model_run, judge_rank
from utils.course.timing import benchmark_parser, benchmark_setup
from utils.models import load_classifier

ALL_CLASSES = [1, 130, 207, 292, 323, 388, 417, 504, 950, 980]
SETTINGS = {
    "plain (paper preset)": PAPER_SETTINGS,
    "recommended (defaults)": {},
    "recommended, λ = 0": {"l2": 0.0},
    "cheap (notebook gallery)": dict(steps=64, size=128, jitter=8),
}


def main() -> None:
    parser = benchmark_parser(__doc__, repeats=1)
    parser.add_argument("--classes", type=int, default=len(ALL_CLASSES), help="run the first K classes")
    args = parser.parse_args()
    classes = ALL_CLASSES[:args.classes]
    dev = benchmark_setup(args, classes=len(classes), timing="median times")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model = load_classifier("efficientnet_lite0", device=dev)
    judge = load_classifier("efficientnet_lite1", device=dev)
    class_model_run(model, classes[:2], steps=3)  # warm-up
    print(f"{'setting':<27} {'wall s/class':>12} {'cpu s/class':>11} {'own p (median)':>14} "
          f"{'judge top-5':>11} {'judge ranks'}")
    results = {}
    for name, kw in SETTINGS.items():
        walls, cpus = [], []
        for _ in range(args.repeats):
            sync()
            t, c = time.perf_counter(), time.process_time()
            run = class_model_run(model, classes, **kw)
            sync()
            walls.append((time.perf_counter() - t) / len(classes))
            cpus.append((time.process_time() - c) / len(classes))
        _, own_p = judge_rank(model, run.images, classes)
        ranks, _ = judge_rank(judge, run.images, classes)
        top5 = int((ranks <= 5).sum())
        results[name] = (statistics.median(walls), top5)
        print(f"{name:<27} {statistics.median(walls):>12.2f} {statistics.median(cpus):>11.2f} "
              f"{float(own_p.median()):>14.3f} {top5:>8}/{len(classes)} {ranks.tolist()}")
    wall, top5 = results["recommended (defaults)"]
    plain_wall, _ = results["plain (paper preset)"]
    print(f"recommended/plain time ratio: {wall / plain_wall:.2f}")
    print(f"goal judge top-5 >= 80 %: {'met' if top5 >= 0.8 * len(classes) else 'NOT met'} "
          f"({top5}/{len(classes)}); "
          f"goal <= 20 s/class: {'met' if wall <= 20 else 'NOT met'} ({wall:.1f} s wall)")


if __name__ == "__main__":
    main()
