"""Honest wall-time measurement, shared by the notebooks and ``benchmarks/``.

Time every contender in the same process, with the thread count fixed, after a real warm-up, and
report medians and ratios: on a shared machine single timings are noise. :func:`compare_times`
interleaves the contenders round by round (each round runs each contender once, in a rotating
order), so that a slow spell of the machine, or a process that is still warming up, hits all of
them alike; the ratio of two contenders is then taken *within* each round and summarised by its
median and spread across rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from .._validation import check_positive_int

__all__ = ["median_time", "compare_times", "Comparison", "benchmark_parser", "benchmark_setup"]


def median_time(fn: Callable[[], object], *, repeats: int = 30, warmup: int = 3,
                device: str | torch.device | None = None) -> float:
    """Median wall time in seconds of ``fn()`` over ``repeats`` runs, after ``warmup`` untimed runs.

    With a CUDA ``device`` the GPU is synchronised before and after each run, so that queued
    kernels are counted. Fix ``torch.set_num_threads`` before calling.
    """
    check_positive_int(repeats, "repeats")
    sync = _synchroniser(device)
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


def _synchroniser(device: str | torch.device | None) -> Callable[[], None]:
    if device is not None and torch.device(device).type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare_times` measured.

    Attributes:
        seconds: ``{name: [s, ...]}``, one wall time per round.
        baseline: the contender the ratios are relative to.
    """

    seconds: dict[str, list[float]]
    baseline: str

    def median(self, name: str) -> float:
        """Median seconds of one contender."""
        return statistics.median(self.seconds[name])

    def ratios(self, name: str) -> list[float]:
        """Per-round ratios ``time(name) / time(baseline)``."""
        return [a / b for a, b in zip(self.seconds[name], self.seconds[self.baseline], strict=True)]

    def ratio(self, name: str) -> float:
        """Median of the per-round ratios to the baseline."""
        return statistics.median(self.ratios(name))

    def spread(self, name: str) -> tuple[float, float]:
        """Quartiles (25 %, 75 %) of the per-round ratios to the baseline."""
        r = sorted(self.ratios(name))
        if len(r) < 4:
            return r[0], r[-1]
        q = statistics.quantiles(r, n=4)
        return q[0], q[2]

    def table(self, *, seconds: bool = True) -> str:
        """One line per contender: median seconds, median ratio to the baseline and its quartiles.

        ``seconds=False`` leaves out the seconds column: ratios measured in one process survive a
        busy machine far better than seconds do, so notebooks print only those.
        """
        width = max(len(n) for n in self.seconds)
        head = f"{'median s':>9}  " if seconds else ""
        lines = [f"{'':<{width}}  {head}{'ratio to ' + self.baseline:>24}  quartiles"]
        for name in self.seconds:
            lo, hi = self.spread(name)
            sec = f"{self.median(name):>9.4f}  " if seconds else ""
            lines.append(f"{name:<{width}}  {sec}{self.ratio(name):>24.2f}  [{lo:.2f}, {hi:.2f}]")
        return "\n".join(lines)


def compare_times(contenders: Mapping[str, Callable[[], object]], *, baseline: str | None = None,
                  rounds: int = 15, warmup_rounds: int = 3, warmup_seconds: float = 2.0,
                  device: str | torch.device | None = None) -> Comparison:
    """Time several contenders interleaved, round by round, in this process.

    Warm-up: at least ``warmup_rounds`` untimed rounds, and more until ``warmup_seconds`` have
    passed (allocator caches, oneDNN kernel selection and CPU frequency settle; the first forward
    pass of a network can take twice as long as the tenth). Then ``rounds`` timed rounds; in round
    ``k`` the contenders run in an order rotated by ``k``, so no one always runs first.

    Args:
        contenders: ``{name: fn}``, each ``fn()`` doing one complete unit of work.
        baseline: the contender ratios are relative to (default: the first).
        rounds: timed rounds, >= 1 (use >= 10 for a spread worth reading).
        device: with a CUDA device the GPU is synchronised around every run.

    Returns:
        A :class:`Comparison`; ``.ratio(name)`` is the median of the per-round ratios.
    """
    if not contenders:
        raise ValueError("contenders is empty: give at least one {name: fn}.")
    names = list(contenders)
    baseline = names[0] if baseline is None else baseline
    if baseline not in contenders:
        raise ValueError(f"baseline={baseline!r} is not one of the contenders {names}.")
    check_positive_int(rounds, "rounds")
    check_positive_int(warmup_rounds, "warmup_rounds", minimum=0)
    sync = _synchroniser(device)
    start, done = time.perf_counter(), 0
    while done < warmup_rounds or time.perf_counter() - start < warmup_seconds:
        for name in names:
            contenders[name]()
        sync()
        done += 1
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for k in range(rounds):
        for name in names[k % len(names):] + names[:k % len(names)]:
            sync()
            t0 = time.perf_counter()
            contenders[name]()
            sync()
            seconds[name].append(time.perf_counter() - t0)
    return Comparison(seconds, baseline)


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
