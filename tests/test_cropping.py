"""Tests of utils.cropping: window sizes, the three placements and the survival score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from utils.cropping import box_survival, centred_window, max_mass_window, window_around, window_size


def test_window_size():
    assert window_size(224, 224, 16 / 9) == (224, 126)
    assert window_size(224, 224, 1.0, area=0.5) == (158, 158)
    assert window_size(100, 300, 1.0) == (100, 100)
    with pytest.raises(ValueError, match="aspect"):
        window_size(224, 224, 0)
    with pytest.raises(ValueError, match="area"):
        window_size(224, 224, 1.0, area=1.5)


def test_centred_and_around():
    assert centred_window(224, 224, (224, 126)) == (0, 49, 224, 175)
    assert window_around((150, 10, 160, 20), 224, 224, (100, 100)) == (105, 0, 205, 100)
    assert window_around((0, 200, 10, 224), 224, 224, (50, 50)) == (0, 174, 50, 224)
    with pytest.raises(ValueError, match="does not fit"):
        centred_window(100, 100, (120, 50))


def test_max_mass_window_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    s = torch.rand(20, 24, generator=gen) ** 4
    size = (7, 5)
    best = max((float(s[y:y + 5, x:x + 7].sum()), -y, -x) for y in range(16) for x in range(18))
    _, ny, nx = best
    assert max_mass_window(s, size) == (-nx, -ny, -nx + 7, -ny + 5)
    assert max_mass_window(s.numpy(), size) == max_mass_window(s, size)


def test_max_mass_window_finds_a_blob_and_rejects_bad_maps():
    m = torch.zeros(224, 224)
    m[10:20, 150:160] = 1
    x0, y0, x1, y1 = max_mass_window(m, (50, 50))
    assert x0 <= 150 and x1 >= 160 and y0 <= 10 and y1 >= 20
    with pytest.raises(ValueError, match="non-negative"):
        max_mass_window(-m - 1, (10, 10))
    with pytest.raises(ValueError, match="one map"):
        max_mass_window(m[None], (10, 10))


def test_box_survival():
    assert box_survival((0, 0, 10, 10), (5, 5, 15, 15)) == pytest.approx(0.25)
    assert box_survival((0, 0, 224, 224), (3, 4, 50, 60)) == 1.0
    assert box_survival((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert np.isclose(box_survival((0, 49, 224, 175), (0, 0, 224, 224)), 126 / 224)
