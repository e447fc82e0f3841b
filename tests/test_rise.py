"""Tests of utils.rise: the masks, and the map of a model whose true map is known."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from utils.rise import rise, rise_masks


class RegionSum(nn.Module):
    """Two classes: ``±`` the sum of the pixels of one box (a linear score on one region)."""

    def __init__(self, box: tuple[int, int, int, int], bias: float = 0.0) -> None:
        super().__init__()
        self.box, self.bias = box, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0, y0, x1, y1 = self.box
        v = x[:, :, y0:y1, x0:x1].sum(dim=(1, 2, 3)) / ((x1 - x0) * (y1 - y0)) + self.bias
        return torch.stack([v, -v], 1)


def test_masks_are_smooth_shifted_and_in_range():
    g = torch.Generator().manual_seed(0)
    m = rise_masks(200, 48, 40, s=6, p=0.3, generator=g)
    assert m.shape == (200, 48, 40) and float(m.min()) >= 0 and float(m.max()) <= 1
    assert abs(float(m.mean()) - 0.3) < 0.05
    assert float((m[:, 1:] - m[:, :-1]).abs().max()) < 0.2  # bilinear: no hard cell edges


def test_linear_score_on_one_region_is_found():
    box = (40, 8, 56, 24)
    model, image = RegionSum(box).eval(), torch.ones(3, 64, 64)
    r = rise(model, image, 0, n_masks=800, s=8, score="logit", baseline=0.0, batch_size=100)
    assert r.n_forward == 801 and r.saliency.shape == (64, 64)
    x0, y0, x1, y1 = box
    inside = torch.zeros(64, 64, dtype=torch.bool)
    inside[y0:y1, x0:x1] = True
    top = r.saliency >= torch.quantile(r.saliency.flatten(), 1 - float(inside.float().mean()))
    assert float((top & inside).sum() / (top | inside).sum()) > 0.5
    far = r.saliency[40:, :24]
    assert float(r.saliency[inside].mean()) > float(far.mean()) + 0.1


def test_weights_are_normalised_and_seeded():
    # a constant score c: E[c·M]/p = c everywhere
    model, image = RegionSum((0, 0, 4, 4), bias=2.0).eval(), torch.full((3, 32, 32), 0.0)
    a = rise(model, image, 0, n_masks=1000, s=4, p=0.5, score="logit", baseline=0.0)
    assert abs(float(a.saliency.mean()) - 2.0) < 0.1
    b = rise(model, image + 0.2, 0, n_masks=50, s=4, score="logit", seed=3)
    c = rise(model, image + 0.2, 0, n_masks=50, s=4, score="logit", seed=3)
    d = rise(model, image + 0.2, 0, n_masks=50, s=4, score="logit", seed=4)
    assert torch.equal(b.saliency, c.saliency) and not torch.equal(b.saliency, d.saliency)


@pytest.mark.parametrize("kwargs, match", [(dict(n_masks=0), "n_masks"), (dict(s=1), "s"), (dict(p=1.0), "p"),
                                           (dict(score="softmax"), "score='softmax'"), (dict(s=40), "s=40")])
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        rise(RegionSum((0, 0, 4, 4)).eval(), torch.rand(3, 32, 32), 0, **kwargs)
