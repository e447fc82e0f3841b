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
    # nor does the company an image keeps: its map is the same alone and inside a batch
    both = images[:3, :, :64, :64].contiguous()
    torch.testing.assert_close(smoothgrad(model, both, [282, 967, 282], samples=4, seed=1)[0], a[0],
                               rtol=1e-4, atol=1e-6)


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


# ---- bounded memory: noise and path drawn batch_size at a time, same numbers --------------------

def _bumpy_model(h: int, w: int, classes: int = 5) -> torch.nn.Module:
    """A small non-linear classifier (its gradient changes with the input, unlike a linear one)."""
    from torch import nn

    from utils.models import ImageClassifier

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Softplus(), nn.Flatten(),
                        nn.Linear(4 * h * w, classes))
    return ImageClassifier(net, (0.5,) * 3, (0.25,) * 3, h, [str(i) for i in range(classes)], "bumpy").eval()


def _input_grad(m, x, t):
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(m(x).gather(1, t[:, None]).sum(), x)
    return g


def _smoothgrad_all_at_once(m, x, t, samples, noise, seed):
    """Every noisy copy at once (samples × N images in memory), one noise image per sample shared
    by the batch's images."""
    sigma = noise * (x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3)))
    eps = torch.randn((samples, 1, *x.shape[1:]), generator=torch.Generator().manual_seed(seed))
    noisy = (x.unsqueeze(0) + eps * sigma.view(1, -1, 1, 1, 1)).reshape(-1, *x.shape[1:])
    return _input_grad(m, noisy, t.repeat(samples)).abs().view(samples, *x.shape).mean(0)


@pytest.mark.parametrize("h, w", [(6, 5), (5, 3), (1, 1), (8, 8)])  # 3·H·W not always a multiple of 16
@pytest.mark.parametrize("batch_size", [1, 3, 7, 100])
def test_smoothgrad_in_batches_equals_drawing_all_noise_at_once(h, w, batch_size):
    m = _bumpy_model(h, w)
    x, t = torch.rand(3, 3, h, w), torch.tensor([0, 4, 2])
    ours = smoothgrad_attribution(m, x, t, samples=5, noise=0.3, seed=7, batch_size=batch_size)
    ref = _smoothgrad_all_at_once(m, x, t, samples=5, noise=0.3, seed=7)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_integrated_gradients_in_batches_equals_the_whole_path(batch_size):
    from utils.saliency import integrated_gradients_attribution

    m = _bumpy_model(6, 5)
    x, t = torch.rand(2, 3, 6, 5), torch.tensor([1, 3])
    steps, base = 6, 0.2
    alphas = (torch.arange(steps) + 0.5) / steps  # riemann_middle, written out
    path = torch.cat([base + a * (x - base) for a in alphas])
    ref = _input_grad(m, path, t.repeat(steps)).view(steps, *x.shape).mean(0) * (x - base)
    ours = integrated_gradients_attribution(m, x, t, steps=steps, method="riemann_middle",
                                            baseline=base, batch_size=batch_size)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


# ---- targets: the model's real class count, numpy and tensor forms ------------------------------

def test_targets_in_numpy_and_tensor_forms():
    import numpy as np

    m, x = linear_model(), torch.rand(2, 3, 6, 5)
    ref = saliency_map(m, x, [1, 3])
    for t in (np.array([1, 3]), np.array([1, 3], dtype=np.int32), torch.tensor([1, 3]),
              (1, 3), [np.int64(1), np.int64(3)]):
        torch.testing.assert_close(saliency_map(m, x, t), ref)
    torch.testing.assert_close(saliency_map(m, x, np.int64(2)), saliency_map(m, x, 2))
    with pytest.raises(TypeError, match="must hold integers"):
        saliency_map(m, x, np.array([1.0, 3.0]))
    with pytest.raises(TypeError, match="must hold integers"):
        saliency_map(m, x, torch.tensor([1.0, 3.0]))
    with pytest.raises(ValueError, match="0-D or 1-D"):
        saliency_map(m, x, torch.tensor([[1, 3]]))
    with pytest.raises(ValueError, match="one per image"):
        saliency_map(m, x, np.array([1, 2, 3]))


@pytest.mark.parametrize("classes", [4, 1500])
def test_targets_checked_against_the_models_class_count(classes):
    from utils.saliency import integrated_gradients_attribution

    m, x = toy_linear_classifier(classes=classes), torch.rand(2, 3, 6, 5)
    last = classes - 1
    calls = [saliency_map, lambda m, x, t: smoothgrad(m, x, t, samples=2),
             lambda m, x, t: integrated_gradients_attribution(m, x, t, steps=2)]
    for call in calls:
        assert call(m, x, last).shape[0] == 2  # the last class is valid (1499 > 1000 too)
        with pytest.raises(ValueError, match=rf"0\.\.{last}"):
            call(m, x, classes)
