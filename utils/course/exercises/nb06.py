"""The self-checks of Notebook 06 (beyond gradients)'s exercises."""

from __future__ import annotations

import torch

from .checks import _as_tensor, _call, _diagnose

__all__ = ["check_integrated_gradients_fn"]

def check_integrated_gradients_fn(fn, model, image: torch.Tensor, target: int, *, steps: int = 8) -> None:
    """Check ``fn(model, image, target, steps) -> (3, H, W)``, IG from the black baseline by the
    right Riemann sum, against :func:`utils.saliency.integrated_gradients_attribution` (``method="riemann_right"``)."""
    from ...saliency import gradient, integrated_gradients_attribution

    name = "integrated gradients"
    out = _as_tensor(name, _call(name, fn, model, image.clone(), target, steps), tuple(image.shape))
    ref = integrated_gradients_attribution(model, image, target, steps=steps, method="riemann_right").detach().cpu()

    def riemann(alphas) -> torch.Tensor:
        grads = gradient(model, torch.stack([a * image for a in alphas]), target)
        return grads.mean(0).cpu()

    right = riemann([k / steps for k in range(1, steps + 1)])
    wrong = {
        "multiply the averaged gradient by (x − baseline) = x at the end.": right,
        "divide the sum of gradients by the number of steps m.": ref * steps,
        "that is the left Riemann sum; this exercise uses α = k/m for k = 1 … m.":
            riemann([k / steps for k in range(steps)]) * image.cpu(),
        "that is gradient × input at the photo only; average the gradient along the path.":
            gradient(model, image, target).cpu() * image.cpu(),
    }
    _diagnose(name, out, ref, 1e-3, wrong,
              "IG = x · (1/m) Σ_{k=1..m} ∂S_c/∂I at (k/m)·x (black baseline).")
