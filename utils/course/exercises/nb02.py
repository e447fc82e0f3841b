"""The self-checks of Notebook 02 (gradient saliency)'s exercises."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .checks import _as_tensor, _call, _diagnose, _scaled_error, check_answered, refusing

__all__ = ["check_saliency_fn", "check_cat_maps", "check_mass_ratio_fn", "check_smoothgrad_fn"]

def _score_grads(model, images: torch.Tensor, targets: torch.Tensor, *, prob: bool = False):
    x = images.clone().requires_grad_(True)
    out = model(x)
    if prob:
        out = out.softmax(1)
    (g,) = torch.autograd.grad(out.gather(1, targets[:, None]).sum(), x)
    return g


def check_saliency_fn(fn, model, images: torch.Tensor, targets) -> None:
    """Check ``fn(model, images, targets) -> (N, H, W)`` against :func:`utils.saliency.saliency_map`.

    ``images``: ``(N, 3, H, W)`` in [0, 1]; ``targets``: N class indices. Recognises the typical
    mistakes: the channel sum or mean instead of the max, the signed gradient instead of its
    magnitude, the gradient of the softmax probability instead of the score.
    """
    from ...saliency import channel_max, gradient, saliency_map, smoothgrad, smoothgrad_attribution

    name = "saliency maps"
    targets = torch.as_tensor(targets).long()
    reference = saliency_map(model, images, targets).detach().cpu()
    others = []
    try:  # Captum's saliency (notebook 02, section 7) is a library answer too
        from captum.attr import Saliency
        others.append(Saliency.attribute)
    except ImportError:
        pass
    with refusing("Exercise 1", saliency_map, gradient, channel_max, smoothgrad, smoothgrad_attribution, *others):
        answer = _call(name, fn, model, images.clone(), targets.clone())
    out = _as_tensor(name, answer, (images.shape[0], *images.shape[2:]))
    g = _score_grads(model, images, targets)
    gp = _score_grads(model, images, targets, prob=True)
    xa = images.clone().requires_grad_(True)
    (g_all,) = torch.autograd.grad(model(xa)[:, targets].sum(), xa)   # (N, N) scores: every image, every target
    wrong = {
        "each image's map mixes in the other images' classes: scores[:, targets] is an N × N block "
        "(every image's score for every target); pick one score per image, its own class.":
            g_all.abs().amax(1),
        "that is the sum over channels; the paper takes the maximum of |w| over channels.":
            g.abs().sum(1),
        "that is the mean over channels; the paper takes the maximum of |w| over channels.":
            g.abs().mean(1),
        "that is |sum of the channels|; take |w| first, then the max over channels.": g.sum(1).abs(),
        "that is the max of the signed gradient; take its magnitude |w| before the max.": g.amax(1),
        "that is the gradient of the softmax probability; differentiate the score S_c (the "
        "logit, before softmax).": gp.abs().amax(1),
    }
    _diagnose(name, out, reference, 1e-4, wrong,
              "Differentiate each image's own class score; then one number per pixel from the "
              "gradient's colour channels, as in section 1.")


def check_mass_ratio_fn(fn) -> None:
    """Check ``fn(saliency (H, W), box (x0, y0, x1, y1)) -> float``: box mass share / box area share."""
    name = "mass ratio"
    gen = torch.Generator().manual_seed(0)
    m = torch.rand(20, 30, generator=gen)
    box = (3, 5, 13, 9)  # x0, y0, x1, y1 (exclusive ends): columns 3..12, rows 5..8
    inside = torch.zeros(20, 30, dtype=torch.bool)
    inside[5:9, 3:13] = True
    share = float(m[inside].sum() / m.sum())
    swapped = torch.zeros_like(inside)
    swapped[3:13, 5:9] = True
    from ...metrics import mass_in_box

    with refusing("Exercise 3", mass_in_box):
        value = _call(name, fn, m.clone(), box)
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise AssertionError(f"{name}: return one number (a float), got {type(value).__name__}.") from None
    wrong = {
        "that is the mass share only; divide it by the box's share of the area.": share,
        "the box is (x0, y0, x1, y1): x indexes columns, y rows — rows y0:y1, columns x0:x1.":
            float((m[swapped].sum() / m.sum()) / swapped.float().mean()),
    }
    _diagnose(name, torch.tensor([value]), torch.tensor([share / float(inside.float().mean())]),
              1e-5, {k: torch.tensor([v]) for k, v in wrong.items()},
              "Compare the map's share of its mass in the box with the box's share of the image.")


def check_cat_maps(my_map, resemblance, model, image: torch.Tensor, cls: int, label: int,
                   other_map: torch.Tensor) -> None:
    """Check Exercise 2: ``my_map`` ``(H, W)`` is the saliency map of class ``cls`` for ``image``,
    and ``resemblance`` the letter of its correlation with ``other_map`` (the map of the
    photograph's label ``label``): (a) above 0.9, (b) 0.2 to 0.9, (c) below 0.2.

    The map is compared relative to its scale (a map computed in a batch rounds differently from
    one computed alone); the letter is decided here from the reference map, and only when the
    correlation is at least 0.05 away from both bounds.
    """
    from ...saliency import saliency_map

    name = "the class-285 map"
    check_answered("two cats", my_map=my_map, resemblance=resemblance)
    reference = saliency_map(model, image, cls).detach().cpu()
    out = _as_tensor(name, my_map, tuple(reference.shape))
    wrong = {"that is the map of the photograph's label; pass the other cat class.":
             saliency_map(model, image, label).detach().cpu()}
    _diagnose(name, out, reference, 5e-3, wrong, "Compute it with your function of Exercise 1.")
    r = float(torch.corrcoef(torch.stack([reference.flatten(), other_map.detach().cpu().flatten()]))[0, 1])
    if min(abs(r - 0.9), abs(r - 0.2)) < 0.05:
        raise RuntimeError(f"The maps' correlation ({r:.2f}) is too near a bound of the options to "
                           "decide; report this to the course's maintainers.")
    correct = "a" if r > 0.9 else "b" if r > 0.2 else "c"
    letter = str(resemblance).strip().lower().strip("()")
    if letter not in ("a", "b", "c"):
        raise AssertionError(f"how alike are the two cat maps?: answer a, b or c (got {resemblance!r}).")
    if letter != correct:
        raise AssertionError(f"how alike are the two cat maps?: not ({letter}). Judge by a number, "
                             "not by eye: compute the correlation of the two flattened maps.")
    print("✓ how alike are the two cat maps?: correct")


def check_smoothgrad_fn(fn, model, image: torch.Tensor, target: int, *, samples: int = 8,
                        noise: float = 0.15, seed: int = 0, size: int | None = 112) -> None:
    """Check ``fn(model, image, target, samples, noise, generator) -> (H, W)``, SmoothGrad written
    from the score gradient (autograd, or the student's Exercise-1 function: the noisy copies leave
    [0, 1], which :func:`utils.saliency.gradient` refuses).

    The course's definition: ``σ = noise · (max I − min I)`` (the image's value range), ``samples``
    noise images ``ε_k ~ N(0, 1)`` drawn in order from ``generator`` (or from the global generator:
    it is seeded with the same seed), and the mean over k of the saliency maps
    ``max_channels |∂S_c/∂I (I + σ ε_k)|``; averaging ``|w|`` before the channel max (what
    :func:`utils.saliency.smoothgrad` does) is accepted too. The check runs on a low-contrast copy
    of ``image`` (values in [0.58, 0.98], range 0.4, resized to ``size`` pixels), so that noise not
    scaled to the range is told apart, and near the top of [0, 1], so that clamping the noisy copies
    is too. With the same draws the reference is exact up to float
    rounding (compared relative to the map's scale, 1e-2).

    Recognises: noise not scaled to the range, no noise, the same noise image for every sample,
    ``|mean w|`` instead of the mean of ``|w|``, a sum instead of a mean, the channels not merged,
    noisy copies clamped to [0, 1].
    """
    from ...saliency import smoothgrad, smoothgrad_attribution

    name = "SmoothGrad"
    x = image.detach().float().cpu()
    if size is not None and x.shape[-1] != size:
        x = F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False)[0]
    x = 0.58 + 0.4 * (x - x.min()) / (x.max() - x.min()).clamp_min(1e-8)
    if x.numel() % 16:
        raise ValueError("The check needs an image whose 3·H·W is a multiple of 16 (so that drawing "
                         "the noise one image at a time or all at once gives the same numbers).")
    eps = torch.randn((samples, *x.shape), generator=torch.Generator().manual_seed(seed))
    sigma = noise * float(x.max() - x.min())
    batch = torch.full((samples,), int(target))
    grads = _score_grads(model, x[None] + sigma * eps, batch).detach().cpu()
    reference = grads.abs().amax(1).mean(0)
    library_order = grads.abs().mean(0).amax(0)
    wrong = {
        "the noise is not scaled to the image's value range: σ is a fraction of max − min.":
            _score_grads(model, x[None] + noise * eps, batch).detach().cpu().abs().amax(1).mean(0),
        "that is the map of the clean image; add the noise before each gradient.":
            _score_grads(model, x[None], batch[:1]).detach().cpu()[0].abs().amax(0),
        "every sample used the same noise image; draw a new one for each sample.":
            grads[0].abs().amax(0),
        "that is |mean of w|: positive and negative gradients cancel. Average the maps (magnitudes).":
            grads.mean(0).abs().amax(0),
        "that is the sum over the samples; average them.": reference * samples,
        "the noisy copies were clamped to [0, 1]; SmoothGrad adds the noise as it is.":
            _score_grads(model, (x[None] + sigma * eps).clamp(0, 1), batch).detach().cpu()
            .abs().amax(1).mean(0),
    }
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        with refusing("Exercise 4", smoothgrad, smoothgrad_attribution):
            answer = _call(name, fn, model, x.clone(), target, samples, noise,
                           torch.Generator().manual_seed(seed))
    finally:
        torch.set_rng_state(state)
    if isinstance(answer, torch.Tensor) and tuple(answer.shape) == tuple(x.shape):
        raise AssertionError(f"{name}: one number per pixel, shape {tuple(x.shape[1:])}: merge the "
                             "colour channels of each map as in section 1.")
    out = _as_tensor(name, answer, tuple(x.shape[1:]))
    if _scaled_error(out, library_order) <= 1e-2:
        print(f"✓ {name}: correct (averaging |w| before the channel max, as utils.saliency does)")
        return
    _diagnose(name, out, reference, 1e-2, wrong,
              "Draw each noise image from `generator` with torch.randn, in order, one per sample; "
              "average the saliency maps of the noisy copies.")
