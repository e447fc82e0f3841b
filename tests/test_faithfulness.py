"""utils.faithfulness: RISE's deletion and insertion curves, on hand-made cases and the real model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from utils.faithfulness import deletion_curve, insertion_curve
from utils.images import gaussian_blur
from utils.saliency import saliency_map


class RegionModel(nn.Module):
    """Class 0's score is 20 × the mean brightness of rows 0–3 × columns 0–3, class 1's is 0:
    only that corner matters, and the brighter the more."""

    def forward(self, x):
        s = 20 * x[:, :, :4, :4].mean(dim=(1, 2, 3))
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def corner_maps(n: int = 2, size: int = 8) -> dict[str, torch.Tensor]:
    perfect = torch.zeros(n, size, size)
    perfect[:, :4, :4] = 1.0
    gen = torch.Generator().manual_seed(0)
    return {"perfect": perfect, "random": torch.rand(n, size, size, generator=gen),
            "inverse": 1.0 - perfect}


@pytest.fixture()
def bright():
    return torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 0.5 + 0.5


def test_deletion_of_a_perfect_map_drops_fastest(bright):
    m = RegionModel().eval()
    auc = {k: deletion_curve(m, bright, v, 0, steps=16).auc for k, v in corner_maps().items()}
    assert (auc["perfect"] < auc["random"]).all() and (auc["random"] < auc["inverse"]).all()
    logit = deletion_curve(m, bright, corner_maps()["perfect"], 0, steps=4, score="logit")
    # a quarter of the pixels = the whole corner: after the first step the score is 0
    assert logit.scores.shape == (2, 5) and torch.equal(logit.fractions, torch.linspace(0, 1, 5))
    assert logit.scores[:, 1:].abs().max() < 1e-6 and (logit.scores[:, 0] > 5).all()


def test_insertion_of_a_perfect_map_rises_fastest():
    m = RegionModel().eval()
    lit = torch.zeros(2, 3, 8, 8)
    lit[:, :, :4, :4] = 1.0  # a bright corner on black: the blurred canvas dims the corner
    auc = {k: insertion_curve(m, lit, v, 0, steps=16, blur_kernel=5, blur_sigma=2.0,
                              score="logit").auc for k, v in corner_maps().items()}
    assert (auc["perfect"] > auc["random"]).all() and (auc["random"] > auc["inverse"]).all()


def test_curve_end_points(model, samples):
    x = torch.stack([s.image for s in samples[:2]])[:, :, ::4, ::4].contiguous()  # 56×56
    t = [s.target for s in samples[:2]]
    maps = saliency_map(model, x, t)
    d = deletion_curve(model, x, maps, t, steps=3, batch_size=3)
    i = insertion_curve(model, x, maps, t, steps=3, batch_size=5)
    with torch.no_grad():
        p = model(x).softmax(1)[[0, 1], t]
        p_black = model(torch.zeros_like(x)).softmax(1)[[0, 1], t]
        p_blur = model(gaussian_blur(x, 5.0, kernel_size=11)).softmax(1)[[0, 1], t]
    torch.testing.assert_close(d.scores[:, 0], p, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(d.scores[:, -1], p_black, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(i.scores[:, 0], p_blur, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(i.scores[:, -1], p, rtol=1e-4, atol=1e-6)
    assert ((0 <= d.auc) & (d.auc <= 1)).all()


def test_curves_bad_inputs(bright):
    m = RegionModel().eval()
    good = corner_maps()["perfect"]
    with pytest.raises(ValueError, match="matching"):
        deletion_curve(m, bright, good[:1], 0)
    with pytest.raises(ValueError, match="steps"):
        deletion_curve(m, bright, good, 0, steps=0)
    with pytest.raises(ValueError, match="score"):
        insertion_curve(m, bright, good, 0, score="softmax")
    with pytest.raises(ValueError, match="baseline"):
        deletion_curve(m, bright, good, 0, baseline=-1.0)
    with pytest.raises(ValueError, match="NaN"):
        deletion_curve(m, bright, good * float("nan"), 0)
    with pytest.raises(ValueError, match="eval"):
        deletion_curve(RegionModel().train(), bright, good, 0)
