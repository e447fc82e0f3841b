"""Gradient saliency: exactness on a linear model, Captum agreement, batching, bad input."""

from __future__ import annotations

import pytest
import torch

from utils.models import toy_linear_classifier
from utils.saliency import channel_max, gradient, saliency_map, smoothgrad, smoothgrad_attribution


def linear_model(h: int = 6, w: int = 5) -> torch.nn.Module:
    """S_c(I) = w_cᵀ((I − 0.4)/0.2) + b_c: its saliency is known in closed form."""
    return toy_linear_classifier(h, w)


def test_exact_on_linear_model():
    m = linear_model()
    x = torch.rand(2, 3, 6, 5)
    g = gradient(m, x, [1, 3])
    w = m.net[1].weight.detach().view(4, 3, 6, 5) / 0.2
    torch.testing.assert_close(g, torch.stack([w[1], w[3]]), rtol=0, atol=1e-6)
    torch.testing.assert_close(saliency_map(m, x, [1, 3]), w[[1, 3]].abs().amax(1), rtol=0, atol=1e-6)


def test_top1_target_by_default():
    m = linear_model()
    x = torch.rand(3, 3, 6, 5)
    with torch.no_grad():
        top = m(x).argmax(1).tolist()
    torch.testing.assert_close(saliency_map(m, x), saliency_map(m, x, top))


def test_shapes_and_range(model, batch):
    images, targets = batch
    m = saliency_map(model, images[:3], targets[:3])
    assert m.shape == (3, 224, 224) and float(m.min()) >= 0 and float(m.max()) > 0
    single = saliency_map(model, images[0], targets[0])
    assert single.shape == (224, 224)
    assert gradient(model, images[0], targets[0]).shape == (3, 224, 224)


def test_batch_equals_single_images(model, batch):
    images, targets = batch
    maps = saliency_map(model, images[:4], targets[:4])
    for i in range(4):
        torch.testing.assert_close(maps[i], saliency_map(model, images[i], targets[i]),
                                   rtol=1e-4, atol=1e-6)


def test_agrees_with_captum(model, batch):
    from captum.attr import Saliency

    images, targets = batch
    x = images[:2].clone().requires_grad_(True)
    ref = Saliency(model).attribute(x, target=targets[:2], abs=True).amax(1)
    ours = saliency_map(model, images[:2], targets[:2])
    assert (ours - ref).abs().max().item() <= 1e-6 * max(1.0, ref.abs().max().item())


def test_class_specific(model, samples):
    cat = samples[0].image
    a, b = saliency_map(model, cat, 282), saliency_map(model, cat, 967)
    assert not torch.allclose(a, b)


def test_no_weight_gradients_accumulate():
    m = linear_model()
    m.requires_grad_(True)
    saliency_map(m, torch.rand(1, 3, 6, 5), 0)
    assert all(p.grad is None for p in m.parameters())


def test_training_mode_is_refused():
    m = linear_model().train()
    with pytest.raises(ValueError, match="eval"):
        saliency_map(m, torch.rand(3, 6, 5), 0)


def test_smoothgrad_basics():
    m = linear_model()
    x = torch.rand(2, 3, 6, 5)
    # for a linear model every noisy copy has the same gradient: SmoothGrad = |w|
    torch.testing.assert_close(smoothgrad_attribution(m, x, 2, samples=5), gradient(m, x, 2).abs())
    assert smoothgrad(m, x[0], 1, samples=3).shape == (6, 5)
    torch.testing.assert_close(smoothgrad(m, x, 1, samples=1, noise=0.0), saliency_map(m, x, 1))


def test_smoothgrad_deterministic_and_seeded(model, batch):
    images, targets = batch
    x = images[:1, :, :64, :64].contiguous()
    a = smoothgrad(model, x, 282, samples=4, seed=1)
    torch.testing.assert_close(a, smoothgrad(model, x, 282, samples=4, seed=1))
    assert not torch.allclose(a, smoothgrad(model, x, 282, samples=4, seed=2))
    # batching the noisy copies does not change the result
    torch.testing.assert_close(a, smoothgrad(model, x, 282, samples=4, seed=1, batch_size=3),
                               rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(
    "images, error, match",
    [
        ("not a tensor", TypeError, "torch.Tensor"),
        (torch.zeros(3, 8, 8, dtype=torch.uint8), TypeError, "floating-point"),
        (torch.rand(8, 8), ValueError, "shape"),
        (torch.rand(1, 1, 3, 8, 8), ValueError, "shape"),
        (torch.rand(1, 4, 8, 8), ValueError, "3 colour channels"),
        (torch.rand(1, 3, 8, 8) * 255, ValueError, r"\[0, 1\]"),
        (torch.full((1, 3, 8, 8), float("nan")), ValueError, "NaN"),
        (torch.rand(0, 3, 8, 8), ValueError, "empty"),
    ],
)
def test_bad_images(images, error, match):
    with pytest.raises(error, match=match):
        saliency_map(linear_model(8, 8), images, 0)


@pytest.mark.parametrize(
    "target, error, match",
    [(-1, ValueError, "0..3"), (4, ValueError, "0..3"), ([0], ValueError, "one per image"),
     ([0, 1, 2], ValueError, "one per image"), ("cat", TypeError, "class_index"),
     (1.5, TypeError, "int"), (True, TypeError, "bool")],
)
def test_bad_targets(target, error, match):
    with pytest.raises(error, match=match):
        saliency_map(linear_model(), torch.rand(2, 3, 6, 5), target)


def test_channel_max_checks_shape():
    with pytest.raises(ValueError):
        channel_max(torch.rand(2, 4, 5, 5))
