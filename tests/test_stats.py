"""utils.stats: rank correlation, top-fraction IoU and the bootstrap interval."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from utils.stats import bootstrap_interval, spearman, top_fraction_iou


def test_spearman():
    a = torch.rand(5, 5, generator=torch.Generator().manual_seed(0))
    assert spearman(a, a) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, a**3) == pytest.approx(1.0)  # ranks only
    assert math.isnan(spearman(a, torch.zeros(5, 5)))


def test_top_fraction_iou():
    a = torch.arange(100.0).reshape(10, 10)
    assert top_fraction_iou(a, a) == 1.0
    assert top_fraction_iou(a, -a) == 0.0
    b = a.clone()
    b.view(-1)[90:95] = -1  # b's top 10 becomes 85..89 and 95..99: 5 shared, 15 in the union
    assert top_fraction_iou(a, b) == pytest.approx(5 / 15)
    assert top_fraction_iou(a, a, fraction=1.0) == 1.0
    with pytest.raises(ValueError, match="fraction"):
        top_fraction_iou(a, b, fraction=0)
    with pytest.raises(ValueError, match="differ in size"):
        top_fraction_iou(a, b[:5])


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_photographs():
    rng = np.random.default_rng(1)
    small = bootstrap_interval(rng.normal(0.5, 0.2, 8))
    large = bootstrap_interval(rng.normal(0.5, 0.2, 128))
    for iv in (small, large):
        assert iv.low < iv.mean < iv.high
    assert (large.high - large.low) < 0.5 * (small.high - small.low)
    # Independent check: the 95 % interval of 128 normals is about mean ± 1.96 σ/√n.
    assert abs((large.high - large.low) / 2 - 1.96 * 0.2 / np.sqrt(128)) < 0.015
    assert bootstrap_interval([0.2, 0.4]).mean == pytest.approx(0.3)
    assert str(bootstrap_interval([1.0, 1.0, 1.0])) == "1.00 [1.00, 1.00]"


@pytest.mark.parametrize("bad", [[1.0], [0.1, float("nan")], []])
def test_bootstrap_interval_rejects_too_few_or_non_finite_values(bad):
    with pytest.raises(ValueError, match="at least 2 finite"):
        bootstrap_interval(bad)
