"""Honest wall-time measurement, shared by the notebooks and ``benchmarks/``.

Time every contender in the same process, with the thread count fixed, after warm-up runs, and
report medians and ratios: on a shared machine single timings are noise.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from ._validation import check_positive_int

__all__ = ["median_time", "benchmark_parser", "benchmark_setup"]


def median_time(fn: Callable[[], object], *, repeats: int = 30, warmup: int = 3,
                device: str | torch.device | None = None) -> float:
    """Median wall time in seconds of ``fn()`` over ``repeats`` runs, after ``warmup`` untimed runs.

    With a CUDA ``device`` the GPU is synchronised before and after each run, so that queued
    kernels are counted. Fix ``torch.set_num_threads`` before calling.
    """
    check_positive_int(repeats, "repeats")
    sync = torch.cuda.synchronize if device is not None and torch.device(device).type == "cuda" \
        else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def benchmark_parser(doc: str, *, repeats: int) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes: --repeats, --threads, --device."""
    ap = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    ap.add_argument("--repeats", type=int, default=repeats, help="timed runs per measurement")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return ap


def benchmark_setup(args: argparse.Namespace, **info: object) -> torch.device:
    """Apply ``--threads``, print the run's header line, and return the device."""
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    extra = " ".join(f"{k}={v}" for k, v in info.items())
    print(f"device={dev.type} threads={torch.get_num_threads()} torch={torch.__version__} "
          f"repeats={args.repeats} {extra}".rstrip())
    return dev
