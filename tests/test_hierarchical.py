"""Tests of utils.hierarchical: hierarchical occlusion (HiPe) against the plain occlusion of its first
grid, on a model whose score depends on one small region, its budget, perturbations and errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from utils.hierarchical import hierarchical_occlusion, hipe_windows, select_windows
from utils.occlusion import field_to_map
from utils.occlusion import hierarchical_occlusion as from_occlusion


class RegionScore(nn.Module):
    """Two classes: ``±`` the mean of the pixels of one box ``(x0, y0, x1, y1)``; nothing else counts."""

    def __init__(self, box: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.box = box

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0, y0, x1, y1 = self.box
        v = x[:, :, y0:y1, x0:x1].mean(dim=(1, 2, 3))
        return torch.stack([v, -v], 1)


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 4)).eval()


def test_import_path_of_the_issue():
    assert from_occlusion is hierarchical_occlusion


def test_windows_cover_every_pixel_four_times():
    for h, w, n in [(224, 224, 4), (224, 224, 16), (61, 47, 4)]:
        win = hipe_windows(h, w, n)
        assert win.shape == ((n + 1) ** 2, 4)
        cover = torch.zeros(h, w)
        for x0, y0, x1, y1 in win.tolist():
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            cover[y0:y1, x0:x1] += 1
        assert bool((cover == 4).all())


def test_first_level_alone_is_the_plain_occlusion_of_its_grid():
    model, g = tiny_cnn(1), torch.Generator().manual_seed(3)
    image = torch.rand(3, 64, 64, generator=g)
    r = hierarchical_occlusion(model, image, 2, min_cell=16, batch_size=7)
    assert r.n_forward == 26 and len(r.levels) == 1 and r.stopped == "min_cell"
    # the same windows probed one by one, by hand: 32-px windows at stride 16, starting at −16
    with torch.no_grad():
        clean = float(model(image[None])[0, 2])
        field = torch.zeros(5, 5)
        for i, y in enumerate(range(-16, 64, 16)):
            for j, x in enumerate(range(-16, 64, 16)):
                occluded = image.clone()
                occluded[:, max(y, 0) : y + 32, max(x, 0) : x + 32] = 0.5
                field[i, j] = clean - float(model(occluded[None])[0, 2])
    expected = field_to_map(field.clamp(min=0), (80, 80), patch=32, stride=16)[16:, 16:]
    assert torch.allclose(r.saliency, expected, atol=1e-5 * float(expected.abs().max()))
    assert torch.allclose(r.drops, field.flatten(), atol=1e-5)


@pytest.mark.parametrize("box", [(98, 56, 112, 70), (28, 140, 56, 168)])
def test_refinement_reaches_the_region_and_nowhere_else(box):
    r = hierarchical_occlusion(RegionScore(box).eval(), torch.ones(3, 224, 224), 0, min_cell=8)
    assert [lv.cell for lv in r.levels] == [56, 28, 14] and r.stopped == "min_cell"
    x0, y0, x1, y1 = box
    top = r.saliency >= r.saliency.max() * (1 - 1e-6)
    inside = torch.zeros(224, 224, dtype=torch.bool)
    inside[y0:y1, x0:x1] = True
    assert bool((top == inside).all())  # the map's maximum is the region, exactly
    finest = r.cells[r.cells[:, 4] == 2]
    assert bool((finest[:, 2] > x0 - 64).all() and (finest[:, 0] < x1 + 64).all()
                and (finest[:, 3] > y0 - 64).all() and (finest[:, 1] < y1 + 64).all())
    assert r.n_forward == 1 + r.cells.shape[0] == 1 + sum(lv.probed for lv in r.levels)


def test_cost_grows_with_the_region_not_with_the_image():
    def passes(size, box, min_cell=8):
        return hierarchical_occlusion(RegionScore(box).eval(), torch.ones(3, size, size), 0,
                                      min_cell=min_cell).n_forward

    small, large = passes(224, (100, 60, 110, 70)), passes(224, (40, 40, 180, 180))
    assert small < large
    # the same region in an image of 4× the area: one more level, far from the sliding window's 4×
    assert passes(448, (100, 60, 110, 70)) < 2 * small
    # the scene scaled 2× with cells 2× larger: the same tree
    assert passes(448, (200, 120, 220, 140), 16) == small


def test_budget_is_honoured_exactly():
    model, image = RegionScore((100, 60, 110, 70)).eval(), torch.ones(3, 224, 224)
    free = hierarchical_occlusion(model, image, 0, min_cell=8)
    for budget in (25, 40, free.n_forward - 2):
        r = hierarchical_occlusion(model, image, 0, min_cell=8, max_passes=budget)
        assert r.n_forward == budget + 1 and r.stopped == "budget"
        # the probes are a prefix of the unbudgeted ones: the most salient windows of the cut level
        assert torch.equal(r.cells, free.cells[:budget]) or r.levels[-1].probed < r.levels[-1].kept
    r = hierarchical_occlusion(model, image, 0, min_cell=8, max_passes=10_000)
    assert r.n_forward == free.n_forward and torch.equal(r.saliency, free.saliency)


def test_keep_fraction_refines_less_when_it_keeps_less():
    model, image = tiny_cnn(2), torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1))
    few = hierarchical_occlusion(model, image, 0, min_cell=4, keep=0.05)
    many = hierarchical_occlusion(model, image, 0, min_cell=4, keep=1.0)
    assert few.n_forward <= many.n_forward


def test_select_windows_orders_by_saliency_and_keeps_positive_only():
    sal = torch.zeros(8, 8)
    sal[0:2, 0:2], sal[6:8, 6:8] = 1.0, 3.0
    win = hipe_windows(8, 8, 4)
    idx, threshold = select_windows(sal, win)
    assert threshold == 1.5
    peaks = [float(sal[y0:y1, x0:x1].max()) for x0, y0, x1, y1 in win[idx].tolist()]
    assert peaks and all(p == 3.0 for p in peaks)
    idx, _ = select_windows(torch.zeros(8, 8), win)
    assert idx.numel() == 0  # nothing positive: nothing to refine


@pytest.mark.parametrize("perturbation, baseline", [("mean", 0.5), ("blur", 0.5), ("baseline", 1.0)])
def test_perturbations_that_change_nothing_find_nothing(perturbation, baseline):
    # a constant white image: its local mean, its blur and a white baseline are the image itself
    r = hierarchical_occlusion(RegionScore((10, 10, 20, 20)).eval(), torch.ones(3, 64, 64), 0, min_cell=4,
                               perturbation=perturbation, baseline=baseline)
    assert float(r.saliency.abs().max()) < 1e-6 and r.stopped == "nothing kept" and r.n_forward == 26


def test_perturbations_differ_on_a_textured_image():
    model, image = tiny_cnn(4), torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(2))
    maps = [hierarchical_occlusion(model, image, 1, min_cell=8, perturbation=p).drops for p in ("baseline", "mean", "blur")]
    assert not torch.allclose(maps[0], maps[1]) and not torch.allclose(maps[1], maps[2])


@pytest.mark.parametrize("kwargs, match", [
    (dict(min_cell=64), "min_cell=64 is larger than the level-0 cells"),
    (dict(min_cell=0), "min_cell"),
    (dict(max_passes=24), "max_passes >= 25"),
    (dict(keep="max"), "keep='max' is not known"),
    (dict(keep=0), "keep=0 would keep nothing"),
    (dict(keep=1.5), "keep"),
    (dict(perturbation="noise"), "perturbation='noise' is not known"),
    (dict(batch_size=0), "batch_size"),
])
def test_bad_arguments_say_what_to_do(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        hierarchical_occlusion(tiny_cnn(), torch.rand(3, 224, 224), 0, **kwargs)


def test_one_image_in_eval_mode():
    with pytest.raises(ValueError, match="one image"):
        hierarchical_occlusion(tiny_cnn(), torch.rand(2, 3, 64, 64), 0)
    with pytest.raises(ValueError, match="eval"):
        hierarchical_occlusion(tiny_cnn().train(), torch.rand(3, 64, 64), 0)
