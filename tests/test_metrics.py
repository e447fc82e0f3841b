"""Faithfulness metrics and the randomisation sanity check, on hand-made cases and the real model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from utils.metrics import (
    SanityCheck,
    cascade_layers,
    count_passes,
    deletion_curve,
    format_table,
    gaussian_blur,
    insertion_curve,
    mass_in_box,
    model_randomisation,
    pointing_game,
    run_methods,
    spearman,
    top_fraction_iou,
)
from utils.models import ImageClassifier, toy_linear_classifier
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
        p_blur = model(gaussian_blur(x)).softmax(1)[[0, 1], t]
    torch.testing.assert_close(d.scores[:, 0], p, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(d.scores[:, -1], p_black, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(i.scores[:, 0], p_blur, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(i.scores[:, -1], p, rtol=1e-4, atol=1e-6)
    assert ((0 <= d.auc) & (d.auc <= 1)).all()


def test_gaussian_blur_keeps_constants_and_smooths():
    flat = torch.full((1, 3, 16, 16), 0.3)
    torch.testing.assert_close(gaussian_blur(flat), flat)
    noise = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert gaussian_blur(noise).std() < noise.std() / 2
    with pytest.raises(ValueError, match="odd"):
        gaussian_blur(noise, kernel=4)


def test_pointing_game_hand_made():
    maps = torch.zeros(3, 10, 10)
    maps[0, 2, 3] = 1  # inside (x=3, y=2) of box 0
    maps[1, 9, 9] = 1  # outside box 1
    maps[2, 5, 8] = 1  # just right of box 2 (x1 = 8 is exclusive)
    boxes = [(1, 1, 5, 5), (0, 0, 4, 4), (4, 4, 8, 8)]
    assert pointing_game(maps, boxes, tolerance=0).tolist() == [True, False, False]
    assert pointing_game(maps, boxes, tolerance=1).tolist() == [True, False, True]
    assert bool(pointing_game(maps[0], boxes[0], tolerance=0))
    # a map that points exactly at the object scores 1 in the pointing game
    obj = torch.zeros(2, 10, 10)
    obj[:, 6:9, 1:4] = torch.rand(2, 3, 3) + 1
    assert pointing_game(obj, [(1, 6, 4, 9)] * 2, tolerance=0).float().mean() == 1.0


@pytest.mark.parametrize(
    "maps, boxes, kwargs, match",
    [(torch.zeros(2, 4, 4), [(0, 0, 2, 2)], {}, "one box per map"),
     (torch.zeros(1, 4, 4), [(0, 0, 5, 2)], {}, "inside"),
     (torch.zeros(1, 4, 4), [(0, 0, 2, 2)], {"tolerance": -1}, "tolerance"),
     (torch.zeros(4), [(0, 0, 2, 2)], {}, "maps")],
)
def test_pointing_game_bad_inputs(maps, boxes, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pointing_game(maps, boxes, **kwargs)


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


def test_cascade_layers_of_the_course_model(model):
    names = [n for n, _ in cascade_layers(model)]
    assert names[0] == "net.classifier" and names[-1] == "net.conv_stem"
    # BatchNorms are folded into their convolutions: net.bn2 keeps only its ReLU6, no parameters.
    assert names[1] == "net.conv_head" and "net.bn2" not in names
    assert names[2:9] == [f"net.blocks.{i}" for i in range(6, -1, -1)]


def test_randomisation_never_modifies_the_model(model, samples):
    x = samples[0].image[None, :, ::4, ::4].contiguous()  # 56×56
    before = {k: v.clone() for k, v in model.state_dict().items()}
    check = model_randomisation(model, x, None, saliency_map)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training and all(not p.requires_grad for p in model.parameters())
    assert check.layers[0] == "original" and len(check.layers) == len(cascade_layers(model)) + 1
    assert check.correlation.shape == (1, len(check.layers))
    assert check.correlation[0, 0] == pytest.approx(1.0)
    assert check.maps.shape == (len(check.layers), 1, 56, 56)
    # the plain gradient depends on the weights: fully randomised, it is far from the original
    assert abs(check.correlation[0, -1]) < 0.5
    # seeded: the same again
    again = model_randomisation(model, x, None, saliency_map,
                                layers=cascade_layers(model)[:2])
    assert again.correlation[0, 1:] == pytest.approx(check.correlation[0, 1:3], abs=1e-6)


def test_randomisation_on_a_toy_model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 6 * 6, 3))
    m = ImageClassifier(net, (0.5,) * 3, (0.5,) * 3, 6, ["a", "b", "c"], "toy").eval()
    check = model_randomisation(m, torch.rand(2, 3, 6, 6), [0, 1], saliency_map)
    assert check.layers == ["original", "net.3", "net.0"]
    np.testing.assert_allclose(check.mean_correlation, check.correlation.mean(axis=0))
    assert check.undefined == 0
    with_nan = SanityCheck(["a", "b", "c"], np.array([[1.0, np.nan, np.nan], [1.0, 0.5, np.nan]]),
                           torch.zeros(3, 2, 1, 1))
    np.testing.assert_allclose(with_nan.mean_correlation, [1.0, 0.5, np.nan])
    assert with_nan.undefined == 3
    with pytest.raises(ValueError, match="not part of the model"):
        model_randomisation(m, torch.rand(1, 3, 6, 6), 0, saliency_map,
                            layers=[("other", [nn.Linear(2, 2)])])


def test_count_passes_and_run_methods():
    m = toy_linear_classifier()
    x = torch.rand(3, 3, 6, 5)
    with count_passes(m) as c:
        saliency_map(m, x, 0)
        with torch.no_grad():
            m(x)
    assert (c.forward, c.backward) == (6, 3)
    assert not m._forward_hooks and not m._forward_pre_hooks
    runs = run_methods({"gradient": saliency_map}, m, x, 1)
    r = runs["gradient"]
    assert r.maps.shape == (3, 6, 5) and (r.forward, r.backward) == (1.0, 1.0) and r.seconds >= 0
    text = format_table([{"method": "a", "auc": 0.1234}, {"method": "bb", "auc": 1.0}])
    assert text.splitlines() == ["method   auc", "a       0.12", "bb      1.00"]


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_photographs():
    from utils.metrics import bootstrap_interval

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
    from utils.metrics import bootstrap_interval

    with pytest.raises(ValueError, match="at least 2 finite"):
        bootstrap_interval(bad)


def test_compare_times_interleaves_and_reports_ratios(monkeypatch):
    """A fake clock that each contender advances by its own cost: the ratios are exact, whatever
    the machine's load (no wall-clock assert)."""
    import utils.course.timing as timing
    from utils.course.timing import compare_times

    clock = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    calls: list[str] = []

    def work(name, seconds):
        def fn():
            calls.append(name)
            clock[0] += seconds
        return fn

    result = compare_times({"fast": work("fast", 0.002), "slow": work("slow", 0.006)}, rounds=6,
                           warmup_rounds=1, warmup_seconds=0.0)
    timed = calls[2:]  # after one warm-up round
    assert len(timed) == 12 and timed[:4] == ["fast", "slow", "slow", "fast"]  # rotated order
    assert result.baseline == "fast" and len(result.seconds["slow"]) == 6
    assert result.ratio("slow") == pytest.approx(3.0) and result.ratio("fast") == 1.0
    lo, hi = result.spread("slow")
    assert lo <= result.ratio("slow") <= hi
    assert "ratio to fast" in result.table() and "median s" in result.table()
    assert "median s" not in result.table(seconds=False) and "ratio to fast" in result.table(seconds=False)
    with pytest.raises(ValueError, match="baseline"):
        compare_times({"a": lambda: None}, baseline="b")


# --------------------------------------------------------------------------- mass_in_box

def test_mass_in_box_uniform_map_is_one_and_concentrated_map_is_inverse_area():
    maps = torch.ones(2, 10, 10)
    maps[1] = 0
    maps[1, 2:4, 2:7] = 1.0                     # all mass in the box below
    areas, ratios = mass_in_box(maps, [(2, 2, 7, 4), (2, 2, 7, 4)])
    assert areas == pytest.approx([0.1, 0.1])
    assert ratios == pytest.approx([1.0, 10.0])


@pytest.mark.parametrize("maps, boxes, message", [
    (torch.ones(10, 10), [(0, 0, 5, 5)], "N, H, W"),
    (torch.ones(2, 10, 10), [(0, 0, 5, 5)], "one box per map"),
    (-torch.ones(1, 10, 10), [(0, 0, 5, 5)], "non-negative"),
    (torch.zeros(1, 10, 10), [(0, 0, 5, 5)], "zero everywhere"),
    (torch.ones(1, 10, 10), [(0, 0, 11, 5)], "not inside"),
])
def test_mass_in_box_rejects_bad_input(maps, boxes, message):
    with pytest.raises(ValueError, match=message):
        mass_in_box(maps, boxes)


def test_centre_pointing_hits_boxes_around_the_centre_only():
    from utils.metrics import centre_pointing

    boxes = [(100, 100, 124, 124), (0, 0, 40, 40), (70, 70, 98, 98), (0, 0, 224, 224)]
    assert centre_pointing(boxes, 224, 224).tolist() == [True, False, True, True]
    assert centre_pointing(boxes, 224, 224, tolerance=0).tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="height"):
        centre_pointing(boxes, 0, 224)
