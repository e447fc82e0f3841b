"""Tests of utils.class_model: shapes, ranges, determinism, λ, each regulariser, bad inputs."""

from __future__ import annotations

import pytest
import torch

from utils.class_model import (
    IMAGENET_MEAN,
    PAPER_SETTINGS,
    class_model_run,
    fourier_image,
    gaussian_blur,
    judge_rank,
    stretch_contrast,
    total_variation,
    visualise_class,
)
from utils.saliency import gradient

FAST = {"steps": 3, "size": 48}


def test_single_target_shape_and_range(model):
    img = visualise_class(model, 1, **FAST)
    assert img.shape == (3, 48, 48)
    assert img.min() >= 0 and img.max() <= 1


def test_batched_targets_and_record(model):
    run = class_model_run(model, [1, 130, 207], **FAST)
    assert run.images.shape == (3, 3, 48, 48)
    assert run.targets.tolist() == [1, 130, 207]
    for rec in (run.score, run.probability, run.norm):
        assert rec.shape == (3, 3)
    assert ((run.probability >= 0) & (run.probability <= 1)).all()
    assert (run.norm >= 0).all()
    assert visualise_class(model, [1, 130], **FAST).shape == (2, 3, 48, 48)


def test_default_size_is_model_input_size(model):
    assert visualise_class(model, 1, steps=1).shape == (3, model.input_size, model.input_size)


def test_batched_equals_separate(model):
    """Classes in one batch are optimised independently (augmentations off)."""
    kw = dict(PAPER_SETTINGS, **FAST)
    both = visualise_class(model, [1, 130], **kw)
    alone = visualise_class(model, 130, **kw)
    assert torch.allclose(both[1], alone, atol=1e-4)


def test_deterministic_for_seed(model):
    a = visualise_class(model, 1, seed=3, **FAST)
    b = visualise_class(model, 1, seed=3, **FAST)
    c = visualise_class(model, 1, seed=4, **FAST)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_paper_version_ascends_score_from_mean_image(model):
    run = class_model_run(model, 1, **dict(PAPER_SETTINGS, steps=4, size=64))
    assert run.norm[0, 0] == 0  # starts at the mean image
    assert run.score[-1, 0] > run.score[0, 0] + 1.0
    # first step of plain ascent is lr · ∂S_c/∂I at the mean image (λ term has zero gradient there)
    one = class_model_run(model, 1, **dict(PAPER_SETTINGS, steps=1, size=64, lr=0.5))
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1).expand(3, 64, 64)
    g = gradient(model, mean.contiguous(), 1)
    assert torch.allclose(one.images[0] - mean, 0.5 * g, atol=1e-5)


def test_l2_shrinks_norm(model):
    norms = []
    for lam in (0.0, 0.05, 0.5):
        run = class_model_run(model, 1, **dict(PAPER_SETTINGS, steps=6, size=48, l2=lam))
        norms.append(float(run.norm[-1, 0]))
    assert norms[0] > norms[1] > norms[2]


def test_log_prob_objective_differs(model):
    a = visualise_class(model, 1, objective="score", **FAST)
    b = visualise_class(model, 1, objective="log_prob", **FAST)
    assert not torch.allclose(a, b)


BASE = dict(steps=4, size=48, jitter=0, scale=0.0, rotate=0.0, blur_every=0, tv=0.0, clip=True,
            parameterisation="fourier")


@pytest.mark.parametrize("name,on", [
    ("jitter", {"jitter": 6}),
    ("scale", {"scale": 0.2}),
    ("rotate", {"rotate": 15.0}),
    ("blur", {"blur_every": 2, "blur_sigma": 1.0}),
    ("tv", {"tv": 0.01}),
    ("augment", {"augment": 2, "jitter": 4}),
    ("pixel_blur", {"parameterisation": "pixel", "optimiser": "sgd", "lr": 1.0, "blur_every": 2,
                    "blur_sigma": 1.0}),
])
def test_each_regulariser_changes_result_and_switches_off(model, name, on):
    off = dict(BASE, **{k: v for k, v in on.items() if k in ("parameterisation", "optimiser", "lr")})
    base = visualise_class(model, 1, **off)
    again = visualise_class(model, 1, **off)
    assert torch.equal(base, again), "with the regulariser off the run must be reproducible"
    changed = visualise_class(model, 1, **dict(BASE, **on))
    assert (changed - base).abs().max() > 1e-4, f"{name} had no effect"


def test_clip_keeps_valid_range(model):
    kw = dict(PAPER_SETTINGS, steps=5, size=48, lr=50.0, l2=0.0)
    run_off = class_model_run(model, 1, **kw)
    run_on = class_model_run(model, 1, **dict(kw, clip=True))
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    # without clipping the (unclipped) image leaves [0, 1]: its norm exceeds the clipped one's
    assert run_off.norm[-1, 0] > run_on.norm[-1, 0]
    assert ((run_on.images - mean).flatten(1).norm(dim=1) <= run_on.norm[-1] + 1e-3).all()


def test_progress_flag_is_silent_when_off(model, capsys):
    visualise_class(model, 1, steps=2, size=32)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    visualise_class(model, 1, steps=2, size=32, progress=True)
    assert "class model" in capsys.readouterr().err


def test_helpers():
    x = torch.rand(2, 3, 20, 20)
    assert gaussian_blur(x, 1.0).shape == x.shape
    assert gaussian_blur(x, 1.0).std() < x.std()
    assert torch.equal(gaussian_blur(x, 0.0), x)
    assert total_variation(torch.ones(1, 3, 8, 8)).item() == 0
    assert total_variation(x).shape == (2,)
    faint = torch.tensor(IMAGENET_MEAN).view(3, 1, 1) + 0.01 * (torch.rand(3, 8, 8) - 0.5)
    shown = stretch_contrast(faint)
    assert shown.shape == faint.shape and 0 <= shown.min() and shown.max() <= 1
    assert (shown - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)).abs().max() > 0.4
    img = fourier_image(torch.zeros(2, 3, 16, 9, 2), 16)
    assert img.shape == (2, 3, 16, 16) and img.abs().max() == 0


def test_judge_rank(model, samples):
    s = samples[0]
    ranks, probs = judge_rank(model, s.image, s.target)
    assert ranks.shape == (1,) and 1 <= int(ranks[0]) <= 1000
    scores = model(s.image[None])
    assert int(ranks[0]) == int((scores[0] > scores[0, s.target]).sum()) + 1
    assert 0 <= float(probs[0]) <= 1


@pytest.mark.parametrize("kwargs,match", [
    ({"target": 1000}, "outside"),
    ({"target": -1}, "outside"),
    ({"target": [1, 1000]}, "outside"),
    ({"steps": 0}, "steps"),
    ({"steps": -3}, "steps"),
    ({"l2": -0.1}, "l2"),
    ({"lr": 0.0}, "lr"),
    ({"tv": -1.0}, "tv"),
    ({"jitter": -1}, "jitter"),
    ({"scale": 1.5}, "scale"),
    ({"augment": 0}, "augment"),
    ({"parameterisation": "wavelet"}, "parameterisation"),
    ({"objective": "prob"}, "objective"),
])
def test_bad_inputs(model, kwargs, match):
    args = {"target": 1, "steps": 1, "size": 32} | kwargs
    target = args.pop("target")
    with pytest.raises(ValueError, match=match):
        visualise_class(model, target, **args)
