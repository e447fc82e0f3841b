"""Statistics over maps and photographs: rank correlation, top-fraction overlap, the bootstrap.

* :func:`spearman` and :func:`top_fraction_iou` — how alike two maps are (every pixel's rank, or
  only where each puts its highest values).
* :func:`bootstrap_interval` — the mean over photographs with a percentile-bootstrap interval
  (Efron & Tibshirani, 1993, ch. 13): how much a mean over a handful of photographs can be trusted.

Re-exported by :mod:`utils.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr

from ._validation import check_fraction, check_positive_int

__all__ = ["spearman", "top_fraction_iou", "Interval", "bootstrap_interval"]


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two maps (flattened); ``nan`` if either is constant."""
    x = a.detach().flatten().double().cpu().numpy()
    y = b.detach().flatten().double().cpu().numpy()
    if x.shape != y.shape:
        raise ValueError(f"maps differ in size: {tuple(a.shape)} vs {tuple(b.shape)}.")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def top_fraction_iou(a: torch.Tensor, b: torch.Tensor, fraction: float = 0.1) -> float:
    """IoU of the pixels where each of two maps has its top ``fraction`` of values.

    Spearman's ρ scores the order of *every* pixel, background included; this scores only where
    the two maps put their highest values (ties at the threshold are included).

    Args:
        a, b: maps of the same shape, e.g. ``(H, W)``.
        fraction: in (0, 1]; 0.1 compares the top 10 %.
    """
    fraction = check_fraction(fraction, "fraction", low=0.0, high=1.0, inclusive=True)
    if fraction == 0:
        raise ValueError("fraction=0 selects no pixel; use a value in (0, 1].")
    if a.shape != b.shape:
        raise ValueError(f"maps differ in size: {tuple(a.shape)} vs {tuple(b.shape)}.")
    x, y = a.detach().flatten().double().cpu(), b.detach().flatten().double().cpu()
    ta, tb = x >= x.quantile(1 - fraction), y >= y.quantile(1 - fraction)
    return float((ta & tb).sum() / (ta | tb).sum())


@dataclass(frozen=True)
class Interval:
    """A mean with its percentile-bootstrap interval: ``low <= mean <= high`` (usually)."""

    mean: float
    low: float
    high: float
    confidence: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.2f} [{self.low:.2f}, {self.high:.2f}]"


def bootstrap_interval(values: Sequence[float] | np.ndarray | torch.Tensor, *, confidence: float = 0.95,
                       n_resamples: int = 2000, seed: int = 0) -> Interval:
    """Mean of ``values`` (one number per photograph) and its percentile-bootstrap interval.

    The photographs are resampled with replacement ``n_resamples`` times (a fixed ``seed``, so the
    interval is reproducible); the interval holds the central ``confidence`` share of the resampled
    means. With few photographs the interval is wide, which is the point: it says how much a
    difference between two methods' means can be trusted.

    Args:
        values: one finite value per photograph, at least 2.
        confidence: in (0, 1), e.g. 0.95.
        n_resamples: number of bootstrap resamples, >= 100.
        seed: seed of the resampling generator (NumPy's PCG64).
    """
    v = values.detach().cpu().double().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
    v = v.reshape(-1)
    if v.size < 2 or not np.all(np.isfinite(v)):
        raise ValueError(f"values must hold at least 2 finite numbers (one per photograph), got {v.tolist()!r}.")
    confidence = check_fraction(confidence, "confidence")
    n_resamples = check_positive_int(n_resamples, "n_resamples", minimum=100)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_resamples, v.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(v.mean()), float(low), float(high), confidence, int(v.size))
