"""The catalogue of notebook 03's exercises: each checker accepts right answers written in other
ways than the teacher's, rejects the typical wrong ones with a hint (an AssertionError), turns a
stub into a hint, and refuses the course's own function handed in as the answer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from utils.course import exercises as ex
from utils.models import ImageClassifier

MEAN = (0.485, 0.456, 0.406)


@pytest.fixture(scope="module")
def net():
    """A 10-class convolutional network on 16×16 images (fast, deterministic)."""
    torch.manual_seed(1)
    body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 8, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 10))
    return ImageClassifier(body, (0.45, 0.45, 0.45), (0.25, 0.25, 0.25), 16,
                           [f"k{i}" for i in range(10)], "net03").eval()


def _not_written(*args, **kwargs):
    raise NotImplementedError


def _score_grad(model, x, target, prob=False):
    xg = x.clone().requires_grad_(True)
    s = model(xg[None])
    s = s.softmax(1) if prob else s
    return torch.autograd.grad(s[0, target], xg)[0]


def _mean(size, dtype=torch.float32):
    return torch.tensor(MEAN, dtype=dtype).view(3, 1, 1).expand(3, size, size)


# --- Exercise 2: the ascent loop -----------------------------------------------------------------

def _ascent(sign=1.0, factor=2.0, prob=False, centre=True, lr_on_l2=True):
    def fn(model, target, steps, lr, l2, size):
        mean = _mean(size)
        x = mean.clone()
        for _ in range(steps):
            g = _score_grad(model, x, target, prob=prob)
            pull = sign * factor * l2 * (x - mean if centre else x)
            x = x + lr * g - (lr * pull if lr_on_l2 else pull)
        return x.clamp(0, 1)
    return fn


def _ascent_sgd(model, target, steps, lr, l2, size):
    """Written with torch.optim: minimise −(S_c − λ‖x‖²) over the centred image x."""
    mean = _mean(size)
    x = torch.zeros(3, size, size, requires_grad=True)
    opt = torch.optim.SGD([x], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        (-(model((mean + x)[None])[0, target] - l2 * (x ** 2).sum())).backward()
        opt.step()
    return (mean + x).detach().clamp(0, 1)


def _ascent_float64(model, target, steps, lr, l2, size):
    """In float64 for the image, the network in float32, the L2 gradient by autograd."""
    mean = _mean(size, torch.float64)
    x = mean.clone()
    for _ in range(steps):
        xg = x.clone().requires_grad_(True)
        obj = model(xg.float()[None])[0, target].double() - l2 * ((xg - mean) ** 2).sum()
        (g,) = torch.autograd.grad(obj, xg)
        x = x + lr * g
    return x.clamp(0, 1).float()


def test_ascent(net):
    from utils.class_model import PAPER_SETTINGS, class_model_run

    kw = {"size": 16}
    for right in (_ascent(), _ascent_sgd, _ascent_float64):
        ex.check_ascent_fn(right, net, 3, **kw)
    for hint, fn in {"wrong sign": _ascent(sign=-1), "factor 2": _ascent(factor=1),
                     "softmax probability": _ascent(prob=True), "not I": _ascent(centre=False),
                     "learning rate multiplies it": _ascent(lr_on_l2=False)}.items():
        with pytest.raises(AssertionError, match=hint):
            ex.check_ascent_fn(fn, net, 3, **kw)
    with pytest.raises(AssertionError, match="not written yet"):
        ex.check_ascent_fn(_not_written, net, 3, **kw)

    def log_prob(model, target, steps, lr, l2, size):            # ascends log P_c
        mean = _mean(size)
        x = mean.clone()
        for _ in range(steps):
            xg = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(model(xg[None]).log_softmax(1)[0, target], xg)
            x = x + lr * (g - 2 * l2 * (x - mean))
        return x.clamp(0, 1)

    with pytest.raises(AssertionError, match="log P_c"):
        ex.check_ascent_fn(log_prob, net, 3, **kw)

    def library(model, target, steps, lr, l2, size):
        return class_model_run(model, target, **dict(PAPER_SETTINGS, steps=steps, lr=lr, l2=l2,
                                                     size=size)).images[0]

    with pytest.raises(ex.ExerciseRefusal, match="Exercise 2"):
        ex.check_ascent_fn(library, net, 3, **kw)
    assert class_model_run(net, 3, **dict(PAPER_SETTINGS, steps=1, size=16)).images.shape == (1, 3, 16, 16)


# --- Exercise 3: a fooling image -----------------------------------------------------------------

def _pgd(project_each_step=True, descend=False):
    def fn(model, image, target, epsilon, steps=10, step_size=0.5 / 255):
        x = image.clone()
        for _ in range(steps):
            g = _score_grad(model, x, target)
            x = x + (-1 if descend else 1) * step_size * g.sign()
            if project_each_step:
                x = (image + (x - image).clamp(-epsilon, epsilon)).clamp(0, 1)
        return (image + (x - image).clamp(-epsilon, epsilon)).clamp(0, 1)
    return fn


def _pgd_batched_numpy(model, image, target, epsilon, steps=10, step_size=0.5 / 255):
    """A batch of one, the projection with numpy's clip, torch.min/max instead of clamp."""
    import numpy as np

    x = image[None].clone()
    for _ in range(steps):
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(model(x)[:, target].sum(), x)
        x = x.detach() + step_size * torch.sign(g)
        x = torch.maximum(torch.minimum(x, image + epsilon), image - epsilon)
        x = torch.from_numpy(np.clip(x.numpy(), 0.0, 1.0))
    return x[0]


@pytest.fixture(scope="module")
def photo(net):
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        target = int(net(image[None])[0].argsort()[-2])   # the runner-up: reachable within ε
    return image, target


def test_fooling(net, photo):
    from utils.adversarial import fooling_image

    image, target = photo
    kw = {"epsilon": 0.2, "margin": 0.05, "steps": 40, "step_size": 0.02}
    out = ex.check_fooling_fn(_pgd(), net, image, target, **kw)
    assert float((out - image).abs().max()) <= 0.2 + 1e-6
    ex.check_fooling_fn(_pgd_batched_numpy, net, image, target, **kw)
    with pytest.raises(AssertionError, match="only once, at the end"):
        ex.check_fooling_fn(_pgd(project_each_step=False), net, image, target, **kw)
    with pytest.raises(AssertionError, match="L∞ bound"):
        ex.check_fooling_fn(lambda m, x, t, epsilon, **k: (x + 1.5 * epsilon).clamp(0, 1),
                            net, image, target, **kw)
    with pytest.raises(AssertionError, match="differs from projected"):
        ex.check_fooling_fn(_pgd(descend=True), net, image, target, **kw)
    with pytest.raises(AssertionError, match="outside"):
        ex.check_fooling_fn(lambda m, x, t, epsilon, **k: x + 2, net, image, target, **kw)
    with pytest.raises(AssertionError, match="not written yet"):
        ex.check_fooling_fn(_not_written, net, image, target, **kw)
    with pytest.raises(ex.ExerciseRefusal, match="Exercise 3"):
        ex.check_fooling_fn(fooling_image, net, image, target, **kw)
    assert fooling_image(net, image, target, epsilon=0.2).shape == image.shape   # restored


# --- Exercise 1: the judge's rank ----------------------------------------------------------------

@pytest.fixture(scope="module")
def judge():
    """A second 10-class network, at 24 px: the image must be resized to it."""
    torch.manual_seed(2)
    body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(32, 10))
    return ImageClassifier(body, (0.45, 0.45, 0.45), (0.25, 0.25, 0.25), 24,
                           [f"k{i}" for i in range(10)], "judge03").eval()


def _scores(judge, img, size=24):
    x = torch.nn.functional.interpolate(img, size=(size, size), mode="bilinear", antialias=True,
                                        align_corners=False)
    with torch.no_grad():
        return judge(x)[0]


def test_judge_rank(net, judge):
    torch.manual_seed(3)
    img = torch.rand(1, 3, 16, 16)
    s = _scores(judge, img)
    target = int(s.argsort(descending=True)[2])        # rank 3 of 10
    right = int((s > s[target]).sum()) + 1
    ex.check_judge_rank(right, judge, img, target, model=net)
    order = s.argsort(descending=True)                 # written differently: position in the sort
    ex.check_judge_rank(float(int((order == target).nonzero()) + 1), judge, img, target)
    with pytest.raises(AssertionError, match="off by one"):
        ex.check_judge_rank(right - 1, judge, img, target, model=net)
    if 11 - right not in (right - 1, r_unresized := _unresized_rank(judge, img, target)):
        with pytest.raises(AssertionError, match="wrong end"):
            ex.check_judge_rank(11 - right, judge, img, target)
    if r_unresized not in (right, right - 1):
        with pytest.raises(AssertionError, match="resize"):
            ex.check_judge_rank(r_unresized, judge, img, target)
    with pytest.raises(AssertionError, match="no answer yet"):
        ex.check_judge_rank(None, judge, img, target)
    with pytest.raises(AssertionError, match="whole number"):
        ex.check_judge_rank(2.5, judge, img, target)
    with pytest.raises(AssertionError, match="an int"):
        ex.check_judge_rank("three", judge, img, target)


def _unresized_rank(judge, img, target):
    with torch.no_grad():
        s = judge(img)[0]
    return int((s > s[target]).sum()) + 1


# --- Exercise 4: the regularised step ------------------------------------------------------------

def _reg_step(undo=True, decay="after", clamp=True, blur_all=False, prob=False, swap=False, factor=2,
              cs231n=False):
    from utils.class_model import gaussian_blur

    def fn(model, image, target, *, lr, l2, jitter, blur_every, blur_sigma, step_index, gen):
        dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=gen).tolist()
        if swap:
            dy, dx = dx, dy
        mean = _mean(image.shape[-1])
        x = torch.roll(image, shifts=(dy, dx), dims=(1, 2))
        if decay == "before":
            x = x - lr * 2 * l2 * (x - mean)
        g = _score_grad(model, x, target)
        if prob:
            with torch.no_grad():
                p = model(x[None]).softmax(1)[0][:, None, None, None]
            g = g - (p * torch.stack([_score_grad(model, x, j) for j in range(10)])).sum(0)
        if decay == "after":
            x = x + lr * (g - factor * l2 * (x - mean))
        elif decay == "no_lr":
            x = x + lr * g - 2 * l2 * (x - mean)
        else:
            x = x + lr * g
        if undo:
            x = torch.roll(x, shifts=(-dy, -dx), dims=(1, 2))
        if clamp:
            x = x.clamp(0, 1)
        if blur_all or (blur_every and (step_index + (0 if cs231n else 1)) % blur_every == 0):
            x = gaussian_blur(x[None], blur_sigma)[0]
        return x
    return fn


def _reg_step_numpy_float64(model, image, target, *, lr, l2, jitter, blur_every, blur_sigma,
                            step_index, gen):
    """numpy's roll and clip, float64 arithmetic, the blur before the clamp."""
    import numpy as np

    from utils.class_model import gaussian_blur

    dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=gen))
    x = np.roll(image.double().numpy(), (dy, dx), axis=(1, 2))
    xt = torch.from_numpy(x).requires_grad_(True)
    (g,) = torch.autograd.grad(model(xt.float()[None])[0, target], xt)
    mean = np.array(MEAN).reshape(3, 1, 1)
    x = np.roll(x + lr * (g.numpy() - 2 * l2 * (x - mean)), (-dy, -dx), axis=(1, 2))
    if blur_every and (step_index + 1) % blur_every == 0:
        x = gaussian_blur(torch.from_numpy(x)[None], blur_sigma)[0].numpy()
    return torch.from_numpy(np.clip(x, 0.0, 1.0)).float()


def _reg_step_optim(model, image, target, *, lr, l2, jitter, blur_every, blur_sigma, step_index, gen):
    """One torch.optim.SGD step on −(S_c − λ‖I − Ī‖²) at the shifted image."""
    from utils.class_model import gaussian_blur

    shift = torch.randint(-jitter, jitter + 1, (2,), generator=gen)
    x = torch.roll(image, shifts=tuple(shift.tolist()), dims=(1, 2)).clone().requires_grad_(True)
    opt = torch.optim.SGD([x], lr=lr)
    (-(model(x[None])[0, target] - l2 * ((x - _mean(image.shape[-1])) ** 2).sum())).backward()
    opt.step()
    out = torch.roll(x.detach(), shifts=tuple((-shift).tolist()), dims=(1, 2)).clamp(0, 1)
    if blur_every and (step_index + 1) % blur_every == 0:
        out = gaussian_blur(out[None], blur_sigma)[0]
    return out


REG = {"size": 16, "lr": 3.0, "l2": 0.002, "run_steps": 12, "run_lr": 4.0, "min_rise": 0.03}


def test_regularised_step_accepts_right_answers(net):
    out = ex.check_regularised_step(_reg_step(), net, 3, **REG)
    assert out["image"].shape == (3, 16, 16) and 0 <= out["image"].min() <= out["image"].max() <= 1
    ex.check_regularised_step(_reg_step_numpy_float64, net, 3, **REG)
    ex.check_regularised_step(_reg_step_optim, net, 3, **REG)


@pytest.mark.parametrize("slip, hint", [
    (dict(undo=False), "not undone"), (dict(decay="before"), "before the gradient step"),
    (dict(decay="no_lr"), "learning rate"), (dict(clamp=False), "outside"),
    (dict(blur_all=True), "every step"), (dict(prob=True), "log P_c"), (dict(swap=True), "swapped"),
    (dict(cs231n=True), "wrong steps"), (dict(factor=1), "factor 2")])
def test_regularised_step_names_slips(net, slip, hint):
    with pytest.raises(AssertionError, match=hint):
        ex.check_regularised_step(_reg_step(**slip), net, 3, **REG)


def test_regularised_step_stub_library_and_errors(net):
    from utils.class_model import regularised_step

    with pytest.raises(AssertionError, match="not written yet"):
        ex.check_regularised_step(_not_written, net, 3, **REG)
    with pytest.raises(ex.ExerciseRefusal, match="Exercise 4"):
        ex.check_regularised_step(regularised_step, net, 3, **REG)
    assert regularised_step(net, torch.rand(3, 16, 16), 3, lr=0.1).shape == (3, 16, 16)  # restored
    with pytest.raises(AssertionError, match="shape"):
        ex.check_regularised_step(lambda m, image, t, **k: image[0], net, 3, **REG)
    with pytest.raises(AssertionError, match="raised TypeError"):
        ex.check_regularised_step(lambda m, image, t: image, net, 3, **REG)

    def no_jitter(model, image, target, **kw):
        kw["gen"] = torch.Generator()
        return _reg_step()(model, image, target, **dict(kw, jitter=0))

    with pytest.raises(AssertionError, match="not jittered"):
        ex.check_regularised_step(no_jitter, net, 3, **REG)
