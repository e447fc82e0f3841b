"""The self-checks of Notebook 03 (class-model visualisation)'s exercises."""

from __future__ import annotations

import torch

from .checks import _as_tensor, _call, _diagnose

__all__ = ["check_ascent_fn", "check_fooling_fn"]

def check_ascent_fn(fn, model, target: int, *, steps: int = 3, lr: float = 1.0, l2: float = 0.05,
                    size: int = 64) -> None:
    """Check ``fn(model, target, steps, lr, l2, size) -> (3, size, size)`` against plain ascent.

    The reference is :func:`utils.class_model.class_model_run` with ``PAPER_SETTINGS``: from the
    mean image Ī, ``I ← I + lr (∂S_c/∂I − 2λ (I − Ī))``, the result clamped to [0, 1].
    """
    from ...class_model import IMAGENET_MEAN, PAPER_SETTINGS, class_model_run

    name = "class-model ascent"
    out = _as_tensor(name, _call(name, fn, model, target, steps, lr, l2, size), (3, size, size))
    run = class_model_run(model, target, **dict(PAPER_SETTINGS, steps=steps, size=size, lr=lr, l2=l2))
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1).expand(3, size, size)

    def variant(sign: float, factor: float, centre: bool, objective: str) -> torch.Tensor:
        x = mean.clone()
        for _ in range(steps):
            xg = x.clone().requires_grad_(True)
            s = model(xg[None])
            s = s.softmax(1) if objective == "prob" else s
            (g,) = torch.autograd.grad(s[0, target], xg)
            x = x + lr * (g - sign * factor * l2 * (x - mean if centre else x))
        return x.clamp(0, 1)

    wrong = {
        "the L2 term has the wrong sign: the penalty −λ‖I − Ī‖² pulls I back towards Ī.":
            variant(-1, 2, True, "score"),
        "the derivative of λ‖I − Ī‖² is 2λ(I − Ī): the factor 2 is missing.": variant(1, 1, True, "score"),
        "penalise I − Ī (the image minus the mean image), not I.": variant(1, 2, False, "score"),
        "ascend the score S_c (the logit), not the softmax probability.": variant(1, 2, True, "prob"),
    }
    _diagnose(name, out.clamp(0, 1), run.images[0].cpu(), 1e-4, wrong,
              "Start from the mean image; each step adds lr · (∂S_c/∂I − 2λ(I − Ī)).")


def check_fooling_fn(fn, model, image: torch.Tensor, target: int, *, epsilon: float,
                     margin: float = 1.0, **kwargs) -> torch.Tensor:
    """Check a fooling-image function: ``fn(model, image, target, epsilon=…, **kwargs)``.

    The result must stay in [0, 1], within ``epsilon`` of ``image`` in L∞, and make ``target``
    the top class by at least ``margin`` in score. Returns the fooling image ``(3, H, W)``.
    """
    name = "fooling image"
    out = _as_tensor(name, _call(name, fn, model, image.clone(), target, epsilon=epsilon, **kwargs),
                     tuple(image.shape))
    if out.min() < 0 or out.max() > 1:
        raise AssertionError(f"{name}: pixels outside [0, 1]; clamp the image after each step.")
    change = float((out - image.cpu()).abs().max())
    if change > epsilon + 1e-6:
        raise AssertionError(f"{name}: the change exceeds the L∞ bound ε; after each step project "
                             "the difference back: clamp(x − image, −ε, ε).")
    with torch.no_grad():
        s = model(out[None].to(image.device))[0].cpu()
    rival = float(torch.cat([s[:target], s[target + 1:]]).max())
    if float(s[target]) - rival < margin:
        raise AssertionError(f"{name}: the target does not lead the other classes by {margin} in "
                             "score; ascend the target's score S_c (not its probability) with the "
                             "sign of the gradient, or take more steps.")
    print(f"✓ {name}: correct (the target class wins, the change stays within ε)")
    return out
