"""The catalogue of Notebook 06's self-checks: typical wrong answers are rejected with their hint
(an AssertionError, never another exception), correct answers written differently from the
teacher's are accepted, and the library's own function handed in is refused."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from utils import metrics, saliency
from utils.course import exercises as ex
from utils.models import ImageClassifier


@pytest.fixture(scope="module")
def tiny():
    """Two convolutions; the second (``net[3]``, 8 × 8 at 16²) is the Grad-CAM layer."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                        nn.Flatten(), nn.Linear(32, 10))
    return ImageClassifier(net, (0.45, 0.4, 0.35), (0.2, 0.25, 0.3), 16,
                           [f"k{i}" for i in range(10)], "tiny-two-conv").eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))


def _grad(model, x, target, prob=False):
    x = x.clone().requires_grad_(True)
    out = model(x)
    out = out.softmax(1) if prob else out
    t = torch.as_tensor(target).reshape(-1).expand(x.shape[0])
    return torch.autograd.grad(out.gather(1, t[:, None]).sum(), x)[0]


def _stub(*args, **kwargs):
    raise NotImplementedError("Exercise 1: write this part.")


def _rejects(match, check, *args, **kwargs):
    with pytest.raises(AssertionError, match=match):
        check(*args, **kwargs)


# --- Exercise 1 ---------------------------------------------------------------------------------------

def test_gradient_x_input(tiny, images):
    t = torch.tensor([1, 7])
    check = ex.check_gradient_x_input_fn
    check(lambda m, x, t: _grad(m, x, t) * x, tiny, images, t)
    # per image, one batch of two (the last bits differ) and float64
    check(lambda m, x, t: torch.stack([_grad(m, xi[None], int(ti))[0] * xi for xi, ti in zip(x, t, strict=True)]),
          tiny, images, t)
    check(lambda m, x, t: _grad(copy.deepcopy(m).double(), x.double(), t) * x.double(), tiny, images, t)
    _rejects("gradient alone", check, lambda m, x, t: _grad(m, x, t), tiny, images, t)
    _rejects("sign was lost", check, lambda m, x, t: _grad(m, x, t).abs() * x, tiny, images, t)
    _rejects("normalised image", check, lambda m, x, t: _grad(m, x, t) * m.normalise(x), tiny, images, t)
    _rejects("colour channels", check, lambda m, x, t: (_grad(m, x, t) * x).abs().amax(1), tiny, images, t)
    _rejects("colour channels", check, lambda m, x, t: (_grad(m, x, t) * x).abs().amax(1)[0], tiny, images, t)
    _rejects("not written yet", check, _stub, tiny, images, t)
    _rejects("write this yourself.*the course's own", check, saliency.gradient_x_input_attribution,
             tiny, images, t)
    _rejects("write this yourself", check, lambda m, x, t: saliency.integrated_gradients_attribution(
        m, x, t, steps=1, method="riemann_right"), tiny, images, t)
    # Captum's implementations are refused too, with a message that does not call them the course's
    captum = pytest.importorskip("captum.attr")
    _rejects("a library's implementation", check,
             lambda m, x, t: captum.InputXGradient(m).attribute(x, target=t), tiny, images, t)
    _rejects("write this yourself", check, lambda m, x, t: captum.IntegratedGradients(m).attribute(
        x, torch.zeros_like(x), target=t, n_steps=1, method="riemann_right"), tiny, images, t)
    assert captum.InputXGradient(tiny).attribute(images, target=t).shape == images.shape  # restored


# --- Exercise 2 ---------------------------------------------------------------------------------------

def test_score_gap(tiny, images):
    image, check = images[0], ex.check_score_gap_fn

    def gap(m, x, t):
        with torch.no_grad():
            s = m(torch.stack([x, torch.zeros_like(x)]))[:, t]
        return s[0] - s[1]

    check(gap, tiny, image, 3, steps=4)
    check(lambda m, x, t: m(x[None])[0, t].item() - m(0 * x[None])[0, t].item(), tiny, image, 3, steps=4)
    check(lambda m, x, t: np.float64(m(x[None].double().float())[0, t].item() - m(torch.zeros(1, *x.shape))[0, t].item()),
          tiny, image, 3, steps=4)
    _rejects("softmax probability", check, lambda m, x, t: (m(x[None]).softmax(1)[0, t]
                                                                 - m(0 * x[None]).softmax(1)[0, t]).item(),
             tiny, image, 3, steps=4)
    _rejects("sign is reversed", check, lambda m, x, t: -gap(m, x, t), tiny, image, 3, steps=4)
    _rejects("score alone", check, lambda m, x, t: m(x[None])[0, t], tiny, image, 3, steps=4)
    _rejects("one number", check, lambda m, x, t: m(x[None])[0], tiny, image, 3, steps=4)
    _rejects("write this yourself", check, lambda m, x, t: float(saliency.completeness_error(
        m, x, torch.zeros_like(x), t)), tiny, image, 3, steps=4)


# --- Exercise 3 ---------------------------------------------------------------------------------------

def _pg_torch(maps, boxes, tolerance):
    n, h, w = maps.shape
    flat = maps.reshape(n, -1).argmax(1)
    rows, cols = flat // w, flat % w
    b = torch.tensor(boxes)
    return ((cols >= b[:, 0] - tolerance) & (cols < b[:, 2] + tolerance)
            & (rows >= b[:, 1] - tolerance) & (rows < b[:, 3] + tolerance))


def _pg_numpy(maps, boxes, tolerance):
    out = []
    for m, (x0, y0, x1, y1) in zip(maps.numpy(), boxes, strict=True):
        r, c = np.unravel_index(np.argmax(m), m.shape)
        out.append(bool(x0 - tolerance <= c <= x1 - 1 + tolerance and y0 - tolerance <= r <= y1 - 1 + tolerance))
    return out


def _pg_wrong(inclusive=0, tol=None, swap=False):
    def fn(maps, boxes, tolerance):
        k = tolerance if tol is None else tol
        out = []
        for m, (x0, y0, x1, y1) in zip(maps, boxes, strict=True):
            r, c = divmod(int(m.argmax()), m.shape[1])
            if swap:
                r, c = c, r
            out.append(x0 - k <= c < x1 + k + inclusive and y0 - k <= r < y1 + k + inclusive)
        return out
    return fn


def test_pointing_game():
    check = ex.check_pointing_game_fn
    check(_pg_torch)
    check(_pg_numpy)
    _rejects("not grown", check, _pg_wrong(tol=0))
    _rejects("exclusive ends", check, _pg_wrong(inclusive=1))
    _rejects("swapped", check, _pg_wrong(swap=True))
    _rejects("not 15", check, _pg_wrong(tol=15))
    _rejects("verdicts differ", check, lambda maps, boxes, tolerance: [True] * len(boxes))
    _rejects("one per map", check, lambda maps, boxes, tolerance: [True])
    _rejects("write this yourself", check, lambda m, b, tolerance: metrics.pointing_game(m, b, tolerance=tolerance))
    _rejects("write this yourself", check, metrics.pointing_game)
    _rejects("not written yet", check, _stub)


# --- Exercise 4 ---------------------------------------------------------------------------------------

def test_black_reference_choices():
    ex.check_black_reference_choices("2", " 2")
    _rejects("other factor", ex.check_black_reference_choices, "1", "2")
    _rejects("normalisation", ex.check_black_reference_choices, "3", "2")
    _rejects("Neither.*reference image.*multiplied by I", ex.check_black_reference_choices, "2", "1")
    _rejects("not multiplied by it.*multiplied by I", ex.check_black_reference_choices, "2", "3")
    _rejects("no answer yet", ex.check_black_reference_choices, None, None)


# --- Exercise 5 ---------------------------------------------------------------------------------------

def test_integrated_gradients(tiny, images):
    image, check = images[0], ex.check_integrated_gradients_fn

    def ig(alphas, scale=True):
        def fn(model, x, target, steps):
            a = torch.tensor(alphas(steps), dtype=x.dtype).view(-1, 1, 1, 1)
            g = _grad(model, a * x, target).mean(0)
            return g * x if scale else g
        return fn

    right = ig(lambda m: [k / m for k in range(1, m + 1)])
    check(right, tiny, image, 2, steps=4)
    # a loop, one image at a time, summed and divided
    check(lambda m, x, t, s: x * sum(_grad(m, (k / s * x)[None], t)[0] for k in range(1, s + 1)) / s,
          tiny, image, 2, steps=4)
    _rejects("left endpoints", check, ig(lambda m: [k / m for k in range(m)]), tiny, image, 2, steps=4)
    _rejects("involves the image", check, ig(lambda m: [k / m for k in range(1, m + 1)], scale=False),
             tiny, image, 2, steps=4)
    _rejects("m times too large", check, lambda *a: right(*a) * 4, tiny, image, 2, steps=4)
    _rejects("at the photo only", check, lambda m, x, t, s: _grad(m, x[None], t)[0] * x, tiny, image, 2, steps=4)
    _rejects("write this yourself", check, lambda m, x, t, s: saliency.integrated_gradients_attribution(
        m, x, t, steps=s, method="riemann_right"), tiny, image, 2, steps=4)
    captum = pytest.importorskip("captum.attr")
    _rejects("a library's implementation", check, lambda m, x, t, s: captum.IntegratedGradients(m).attribute(
        x[None], torch.zeros_like(x[None]), target=t, n_steps=s, method="riemann_right")[0], tiny, image, 2, steps=4)


# --- Exercise 6 ---------------------------------------------------------------------------------------

def _cam(hooks="finally", relu=True, pool="mean", score="logit", tensor_hook=False, need_grad=True):
    def fn(model, x, target, layer):
        store = {}

        def keep(m, i, o):
            store["a"] = o
            if tensor_hook:
                o.register_hook(lambda g: store.__setitem__("g", g))

        handle = layer.register_forward_hook(keep)
        try:
            x = x.clone().requires_grad_(need_grad)
            out = model(x)
            out = out.softmax(1) if score == "prob" else out
            t = torch.as_tensor(target).reshape(-1).expand(x.shape[0])
            s = out.gather(1, t[:, None]).sum()
            if tensor_hook:
                s.backward()
                g = store["g"]
            else:
                (g,) = torch.autograd.grad(s, store["a"])
        finally:
            if hooks == "finally":
                handle.remove()
        if hooks == "after":
            handle.remove()
        a = store["a"].detach()
        w = g.mean((2, 3), keepdim=True) if pool == "mean" else g.sum((2, 3), keepdim=True)
        cam = (w * a).sum(1) if pool != "channel-mean" else (g.mean((2, 3), keepdim=True) * a).mean(1)
        return torch.relu(cam) if relu else cam
    return fn


def test_grad_cam(tiny, images):
    layer, t, check = tiny.net[3], [1, 7], ex.check_grad_cam_fn
    check(_cam(), tiny, images, t, layer)
    check(_cam(tensor_hook=True), tiny, images, t, layer)        # tensor hooks and .backward()
    check(lambda m, x, tt, lay: torch.cat([_cam()(m, xi[None], ti, lay) for xi, ti in zip(x, tt, strict=True)]),
          tiny, images, t, layer)                                 # one image at a time
    _rejects("negative values", check, _cam(relu=False), tiny, images, t, layer)
    _rejects("times", check, _cam(pool="sum"), tiny, images, t, layer)
    _rejects("times", check, _cam(pool="channel-mean"), tiny, images, t, layer)
    _rejects("softmax probability", check, _cam(score="prob"), tiny, images, t, layer)
    _rejects("still registered", check, _cam(hooks="never"), tiny, images, t, layer)
    _rejects("whatever happens", check, _cam(hooks="after"), tiny, images, t, layer)
    _rejects("without upsampling", check, lambda *a: F.interpolate(_cam()(*a)[:, None], size=(16, 16),
                                                                   mode="bilinear")[:, 0], tiny, images, t, layer)
    _rejects("write this yourself", check, lambda m, x, tt, lay: saliency.grad_cam(
        m, x, tt, layer=lay, upsample=False), tiny, images, t, layer)
    assert not layer._forward_hooks and not layer._backward_hooks  # the check cleaned up after them
    frozen = copy.deepcopy(tiny).requires_grad_(False)          # as load_classifier's models are
    check(_cam(), frozen, images, t, frozen.net[3])
    _rejects("frozen", check, _cam(need_grad=False), frozen, images, t, frozen.net[3])
    assert not frozen.net[3]._forward_hooks


# --- Exercise 7 ---------------------------------------------------------------------------------------

def _deletion(order="desc", score="prob", fill=0.0, start=0, sort="argsort"):
    def fn(model, x, sal, target, steps):
        h, w = sal.shape
        if sort == "argsort":
            rank = torch.argsort(sal.flatten(), descending=(order == "desc"))
        else:
            rank = torch.from_numpy(np.argsort(-sal.numpy().ravel(), kind="stable"))
        out = []
        for k in range(start, steps + 1):
            keep = torch.ones(h * w)
            keep[rank[: k * h * w // steps]] = 0
            y = x * keep.view(1, h, w) + fill * (1 - keep.view(1, h, w))
            with torch.no_grad():
                s = model(y[None])
            out.append((s.softmax(1) if score == "prob" else s)[0, target])
        return torch.stack(out)
    return fn


def test_deletion_curve(tiny, images):
    image = images[0]
    sal = saliency.saliency_map(tiny, image, 3)
    check = ex.check_deletion_curve_fn
    check(_deletion(), tiny, image, sal, 3, steps=8)
    check(_deletion(sort="numpy"), tiny, image, sal, 3, steps=8)
    check(lambda *a: _deletion()(*a).double().numpy().tolist(), tiny, image, sal, 3, steps=8)
    _rejects("least salient", check, _deletion(order="asc"), tiny, image, sal, 3, steps=8)
    _rejects("logit", check, _deletion(score="logit"), tiny, image, sal, 3, steps=8)
    _rejects("grey", check, _deletion(fill=0.5), tiny, image, sal, 3, steps=8)
    _rejects("one more", check, _deletion(start=1), tiny, image, sal, 3, steps=8)
    _rejects("write this yourself", check, lambda m, x, s, t, k: metrics.deletion_curve(
        m, x[None], s[None], [t], steps=k).scores[0], tiny, image, sal, 3, steps=8)
