"""Benchmark: peak memory of SmoothGrad, all noisy copies at once (before #16) vs batch by batch.

SmoothGrad on 8 sample photographs (224×224) with 64 samples: the former implementation drew all
``samples × N`` noise images at once and kept a second, noisy copy of them (8 × 64 × 3 × 224² float32
= 308 MB each) before the first forward pass; ``utils.saliency.smoothgrad_attribution`` now draws
them ``batch_size`` at a time, from the same seed, with the same numbers. Goal (issue #16): the peak
grows with ``batch_size``, not with ``samples``.

Each setting runs in a fresh subprocess (a process's peak resident memory, ``ru_maxrss``, only
grows); the table gives the peak and its growth over the process after loading the model and the
images. CPU only. ``--batches K`` stops each run after K forward passes (a quick check: both
implementations reach their peak in the first batch, the former one allocating all the noise before
it); the default runs SmoothGrad to the end.

Usage: python benchmarks/memory.py [--images 8] [--batch-sizes 8 32] [--samples 16 64]
       [--batches K] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import torch

from utils.images import load_samples
from utils.models import load_classifier
from utils.saliency import smoothgrad_attribution


def _former_smoothgrad(model, x, targets, samples, noise, seed, batch_size):
    """The former implementation's memory pattern: all the noise, then all the noisy copies."""
    from utils.saliency import _class_scores_and_grad

    sigma = noise * (x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3)))
    eps = torch.randn((samples, *x.shape), generator=torch.Generator().manual_seed(seed))
    noisy = (x.unsqueeze(0) + eps * sigma.view(1, -1, 1, 1, 1)).reshape(-1, *x.shape[1:])
    t = torch.tensor(targets).repeat(samples)
    total = torch.zeros_like(x)
    for start in range(0, noisy.shape[0], batch_size):
        grad, _ = _class_scores_and_grad(model, noisy[start:start + batch_size], t[start:start + batch_size])
        total.index_add_(0, torch.arange(start, start + grad.shape[0]) % x.shape[0], grad.abs())
    return total / samples


class _Stop(Exception):
    pass


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(spec: dict) -> dict:
    """One measurement, in this (fresh) process."""
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    model = load_classifier("efficientnet_lite0", device="cpu")
    samples = load_samples()[:spec["images"]]
    x = torch.stack([s.image for s in samples])
    targets = [s.target for s in samples]
    loaded = _peak_mib()
    if spec["batches"]:
        calls = [0]

        def stop_after(module, inputs):
            calls[0] += 1
            if calls[0] > spec["batches"]:
                raise _Stop

        model.register_forward_pre_hook(stop_after)
    kw = dict(samples=spec["samples"], noise=0.15, seed=0, batch_size=spec["batch_size"])
    try:
        if spec["impl"] == "before":
            _former_smoothgrad(model, x, targets, **kw)
        else:
            smoothgrad_attribution(model, x, targets, **kw)
    except _Stop:
        pass
    return {"loaded": loaded, "peak": _peak_mib()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--samples", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--batches", type=int, default=None, help="stop each run after K forward passes")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    print(f"torch={torch.__version__} images={args.images} (224×224) "
          f"batches={'all' if args.batches is None else args.batches} threads={args.threads or 'default'}")
    print(f"{'implementation':<26} {'samples':>7} {'batch_size':>10} {'peak MiB':>9} {'growth MiB':>10}")
    for impl, label in (("before", "all at once (before #16)"), ("after", "batch by batch (now)")):
        for samples in args.samples:
            for batch_size in args.batch_sizes:
                spec = dict(impl=impl, samples=samples, batch_size=batch_size, images=args.images,
                            batches=args.batches, threads=args.threads)
                out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                                     capture_output=True, text=True, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"{label:<26} {samples:>7} {batch_size:>10} {r['peak']:>9.0f} "
                      f"{r['peak'] - r['loaded']:>10.0f}", flush=True)


if __name__ == "__main__":
    main()
