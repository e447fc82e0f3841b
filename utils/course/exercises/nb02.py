"""The self-checks of Notebook 02 (gradient saliency)'s exercises."""

from __future__ import annotations

import torch

from .checks import _as_tensor, _call, _diagnose

__all__ = ["check_saliency_fn", "check_mass_ratio_fn"]

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
    from ...saliency import saliency_map

    name = "saliency maps"
    targets = torch.as_tensor(targets).long()
    out = _as_tensor(name, _call(name, fn, model, images.clone(), targets.clone()),
                     (images.shape[0], *images.shape[2:]))
    g = _score_grads(model, images, targets)
    gp = _score_grads(model, images, targets, prob=True)
    wrong = {
        "that is the sum over channels; the paper takes the maximum of |w| over channels.":
            g.abs().sum(1),
        "that is the mean over channels; the paper takes the maximum of |w| over channels.":
            g.abs().mean(1),
        "that is |sum of the channels|; take |w| first, then the max over channels.": g.sum(1).abs(),
        "that is the max of the signed gradient; take its magnitude |w| before the max.": g.amax(1),
        "that is the gradient of the softmax probability; differentiate the score S_c (the "
        "logit, before softmax).": gp.abs().amax(1),
    }
    _diagnose(name, out, saliency_map(model, images, targets).detach().cpu(), 1e-4, wrong,
              "M_ij = max_c |∂S_c/∂I_cij|, with S_c the logit of class c for each image.")


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
              "ratio = (sum of the map inside the box / sum of the map) / (box area / image area).")
