"""Notebook 02's self-checks: right answers written in other ways accepted (batched, per-image
loop, float64, numpy), typical wrong answers rejected with a hint (an ``AssertionError``), and the
library's own function refused."""

import numpy as np
import pytest
import torch
from torch import nn

from utils import metrics
from utils.course import exercises as ex
from utils.images import box_mask
from utils.models import ImageClassifier
from utils.saliency import saliency_map, smoothgrad


@pytest.fixture(scope="module")
def net():
    """A small ReLU6 network on 16×16 images: non-linear, so noise and classes change its maps."""
    torch.manual_seed(1)
    layers = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU6(), nn.Conv2d(8, 8, 3, stride=2),
                           nn.ReLU6(), nn.Flatten(), nn.Linear(8 * 7 * 7, 6))
    return ImageClassifier(layers, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 16,
                           [f"k{i}" for i in range(6)], "net").eval()


def _grads(model, x, t, prob=False):
    x = x.clone().requires_grad_(True)
    out = model(x)
    out = out.softmax(1) if prob else out
    return torch.autograd.grad(out.gather(1, torch.as_tensor(t).view(-1, 1)).sum(), x)[0]


def _stub(*args, **kwargs):
    raise NotImplementedError("Exercise 1: write this part.")


# --- Exercise 1: the saliency maps -----------------------------------------------------------------

IMAGES = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
TARGETS = torch.tensor([1, 4])


def _every_target(m, x, t):
    """The slip ``model(x)[:, targets].sum()``: each image's gradient of every image's class."""
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(m(x)[:, t].sum(), x)
    return g


def test_saliency_right_answers(net):
    ex.check_saliency_fn(lambda m, x, t: _grads(m, x, t).abs().amax(1), net, IMAGES, TARGETS)
    ex.check_saliency_fn(lambda m, x, t: torch.stack([_grads(m, xi[None], ti)[0].abs().max(0).values
                                                      for xi, ti in zip(x, t, strict=True)]),
                         net, IMAGES, TARGETS)
    ex.check_saliency_fn(lambda m, x, t: _grads(m.double(), x.double(), t).abs().amax(1),
                         net.float(), IMAGES, TARGETS)
    net.float()


@pytest.mark.parametrize("fn, match", [
    (lambda m, x, t: _grads(m, x, t).abs().sum(1), "sum over channels"),
    (lambda m, x, t: _grads(m, x, t).abs().mean(1), "mean over channels"),
    (lambda m, x, t: _grads(m, x, t).sum(1).abs(), "take |w| first"),
    (lambda m, x, t: _grads(m, x, t).amax(1), "signed gradient"),
    (lambda m, x, t: _grads(m, x, t, prob=True).abs().amax(1), "softmax probability"),
    (lambda m, x, t: _grads(m, x, t.flip(0)).abs().amax(1), "does not match"),
    (lambda m, x, t: _every_target(m, x, t).abs().amax(1), r"scores\[:, targets\]"),
    (lambda m, x, t: _grads(m, x, t).abs(), "shape"),
    (_stub, "not written yet"),
])
def test_saliency_wrong_answers(net, fn, match):
    with pytest.raises(AssertionError, match=match):
        ex.check_saliency_fn(fn, net, IMAGES, TARGETS)


def test_saliency_library_refused(net):
    from captum.attr import Saliency

    from utils import saliency

    for fn in (saliency_map, lambda m, x, t: saliency.channel_max(saliency.gradient(m, x, t)),
               lambda m, x, t: Saliency(m).attribute(x.clone().requires_grad_(True), target=t, abs=True).amax(1)):
        with pytest.raises(ex.ExerciseRefusal, match="Exercise 1 asks you"):
            ex.check_saliency_fn(fn, net, IMAGES, TARGETS)
    assert saliency_map(net, IMAGES, TARGETS).shape == (2, 16, 16)      # restored afterwards


# --- Exercise 2: two classes' maps -----------------------------------------------------------------

def _corr(a, b):
    return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])


def _classes_and_letter(net):
    image = IMAGES[0]
    maps = saliency_map(net, torch.stack([image] * 6), list(range(6)))
    for label in range(6):
        for cls in range(6):
            r = _corr(maps[cls], maps[label])
            if cls != label and min(abs(r - 0.9), abs(r - 0.2)) > 0.05:
                return image, cls, label, maps, "a" if r > 0.9 else "b" if r > 0.2 else "c"
    raise AssertionError("no pair of classes decides")


def test_cat_maps_right_answers(net):
    image, cls, label, maps, letter = _classes_and_letter(net)
    ex.check_cat_maps(maps[cls], letter, net, image, cls, label, maps[label])     # a batch of 6
    alone = _grads(net, image[None], cls)[0].abs().amax(0)
    ex.check_cat_maps(alone.double(), f"({letter.upper()})", net, image, cls, label, maps[label])


def test_cat_maps_wrong_answers(net):
    image, cls, label, maps, letter = _classes_and_letter(net)
    other = {"a", "b", "c"} - {letter}
    with pytest.raises(AssertionError, match="map of the photograph's label"):
        ex.check_cat_maps(maps[label], letter, net, image, cls, label, maps[label])
    with pytest.raises(AssertionError, match="does not match"):
        ex.check_cat_maps(maps[cls] * 2, letter, net, image, cls, label, maps[label])
    for wrong in sorted(other):
        with pytest.raises(AssertionError, match="correlation"):
            ex.check_cat_maps(maps[cls], wrong, net, image, cls, label, maps[label])
    with pytest.raises(AssertionError, match="shape"):
        ex.check_cat_maps(maps[cls][None], letter, net, image, cls, label, maps[label])
    with pytest.raises(AssertionError, match="no answer yet"):
        ex.check_cat_maps(None, None, net, image, cls, label, maps[label])


# --- Exercise 3: the mass ratio ---------------------------------------------------------------------

def _ratio(m, box):
    inside = box_mask(box, *m.shape)
    return float(m[inside].sum() / m.sum() / inside.float().mean())


def test_mass_ratio_right_answers():
    ex.check_mass_ratio_fn(_ratio)
    ex.check_mass_ratio_fn(lambda m, b: float(m.double().numpy()[b[1]:b[3], b[0]:b[2]].sum()
                                               / m.double().numpy().sum()
                                               / ((b[2] - b[0]) * (b[3] - b[1]) / m.numel())))
    ex.check_mass_ratio_fn(lambda m, b: np.float32(_ratio(m, b)))


@pytest.mark.parametrize("fn, match", [
    (lambda m, b: float(m[b[1]:b[3], b[0]:b[2]].sum() / m.sum()), "mass share only"),
    (lambda m, b: _ratio(m, (b[1], b[0], b[3], b[2])), "x indexes columns"),
    (lambda m, b: _ratio(m, (b[0], b[1], b[2] + 1, b[3] + 1)), "does not match"),   # inclusive ends
    (lambda m, b: torch.tensor([_ratio(m, b), 1.0]), "one number"),
    (None, "no function"),
])
def test_mass_ratio_wrong_answers(fn, match):
    with pytest.raises(AssertionError, match=match):
        ex.check_mass_ratio_fn(fn)


def test_mass_ratio_library_refused():
    with pytest.raises(ex.ExerciseRefusal, match="Exercise 3 asks you"):
        ex.check_mass_ratio_fn(lambda m, b: metrics.mass_in_box(m[None], [b])[1][0])


# --- Exercise 4: SmoothGrad ------------------------------------------------------------------------

SG = {"samples": 6, "noise": 0.15, "size": None}
SG_IMAGE = IMAGES[1]


def _loop(model, image, target, samples, noise, generator):
    sigma = noise * (image.max() - image.min())
    total = torch.zeros(image.shape[1:])
    for _ in range(samples):
        noisy = image + sigma * torch.randn(image.shape, generator=generator)
        total += _grads(model, noisy[None], target)[0].abs().amax(0)
    return total / samples


def _batched(model, image, target, samples, noise, generator, *, scale=True, mean_first=False,
             clamp=False):
    eps = torch.randn((samples, *image.shape), generator=generator)
    sigma = noise * (image.max() - image.min()) if scale else noise
    noisy = image + sigma * eps
    g = _grads(model, noisy.clamp(0, 1) if clamp else noisy, [target] * samples)
    return g.mean(0).abs().amax(0) if mean_first else g.abs().amax(1).mean(0)


def test_smoothgrad_right_answers(net):
    ex.check_smoothgrad_fn(_loop, net, SG_IMAGE, 2, **SG)
    ex.check_smoothgrad_fn(_batched, net, SG_IMAGE, 2, **SG)
    ex.check_smoothgrad_fn(                                  # the global generator, randn_like
        lambda m, x, t, k, s, gen: torch.stack([
            _grads(m, (x + s * (x.max() - x.min()) * torch.randn_like(x))[None], t)[0].abs().amax(0)
            for _ in range(k)]).mean(0), net, SG_IMAGE, 2, **SG)
    ex.check_smoothgrad_fn(                                  # |w| averaged before the channel max
        lambda m, x, t, k, s, gen: _grads(m, x + s * (x.max() - x.min())
                                          * torch.randn((k, *x.shape), generator=gen), [t] * k
                                          ).abs().mean(0).amax(0), net, SG_IMAGE, 2, **SG)


def _same_noise(model, image, target, samples, noise, generator):
    eps = torch.randn(image.shape, generator=generator)
    g = _grads(model, (image + noise * (image.max() - image.min()) * eps)[None].expand(samples, -1, -1, -1),
               [target] * samples)
    return g.abs().amax(1).mean(0)


@pytest.mark.parametrize("fn, match", [
    (lambda *a: _batched(*a, scale=False), "not scaled to the image's value range"),
    (lambda *a: _batched(*a, mean_first=True), "mean of w"),
    (_same_noise, "same noise image"),
    (lambda *a: _batched(*a, clamp=True), "clamped"),
    (lambda m, x, t, k, s, gen: _grads(m, x[None], t)[0].abs().amax(0), "clean image"),
    (lambda *a: _batched(*a) * a[3], "sum over the samples"),
    (lambda m, x, t, k, s, gen: _grads(m, x + s * (x.max() - x.min()) * torch.randn(
        (k, *x.shape), generator=gen), [t] * k).abs().mean(0), "merge the colour channels"),
    (lambda m, x, t, k, s, gen: _batched(m, x, t, k, s, torch.Generator().manual_seed(7)),
     "from `generator`"),
    (_stub, "not written yet"),
])
def test_smoothgrad_wrong_answers(net, fn, match):
    with pytest.raises(AssertionError, match=match):
        ex.check_smoothgrad_fn(fn, net, SG_IMAGE, 2, **SG)


def test_smoothgrad_library_refused(net):
    with pytest.raises(ex.ExerciseRefusal, match="Exercise 4 asks you"):
        ex.check_smoothgrad_fn(lambda m, x, t, k, s, gen: smoothgrad(m, x, t, samples=k, noise=s),
                               net, SG_IMAGE, 2, **SG)
