"""The self-checks of Notebook 04 (weakly supervised localisation)'s exercises."""

from __future__ import annotations

import numpy as np
import torch

from .checks import _call, check_answered

__all__ = ["check_seeds_fn", "check_refined_ious"]

def check_seeds_fn(fn) -> None:
    """Check ``fn(saliency (H, W), fg_quantile, bg_quantile) -> (fg, bg)`` boolean masks against
    the seeds that :func:`utils.localisation.localise` uses."""
    from ...localisation import localise

    name = "GraphCut seeds"
    gen = torch.Generator().manual_seed(2)
    sal = torch.rand(32, 32, generator=gen) ** 2
    image = torch.rand(3, 32, 32, generator=gen)
    out = _call(name, fn, sal.clone(), 0.95, 0.30)
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise AssertionError(f"{name}: return a pair (fg, bg) of boolean masks.")
    fg, bg = (torch.as_tensor(np.asarray(m)).bool() for m in out)
    ref = localise(image, sal)
    if fg.shape != sal.shape or bg.shape != sal.shape:
        raise AssertionError(f"{name}: the masks must have the map's shape {tuple(sal.shape)}.")
    if torch.equal(fg, ref.fg_seeds) and torch.equal(bg, ref.bg_seeds):
        print(f"✓ {name}: correct")
        return
    if torch.equal(fg, sal >= 0.95 * sal.max()):
        raise AssertionError(f"{name}: 0.95 is a quantile of the map (torch.quantile), not a "
                             "fraction of its maximum.")
    if torch.equal(fg, sal <= torch.quantile(sal, 0.05)) or torch.equal(bg, sal >= torch.quantile(sal, 0.70)):
        raise AssertionError(f"{name}: foreground = the MOST salient pixels (at or above the 95 % "
                             "quantile); background = the least salient (at or below the 30 % quantile).")
    if torch.equal(fg, ref.fg_seeds):
        raise AssertionError(f"{name}: the foreground is right; the background is the pixels at or "
                             "below the 30 % quantile (and not foreground).")
    raise AssertionError(f"{name}: fg = saliency ≥ its 95 % quantile, bg = saliency ≤ its 30 % "
                         "quantile.")


def check_refined_ious(ious_refined, changes_much, ious_once, *, threshold: float = 0.1) -> None:
    """04's GrabCut question: eight IoUs from 3 iterations, and whether the mean moved by > ``threshold``."""
    name = "GrabCut iterations"
    check_answered(name, ious_refined=ious_refined, changes_much=changes_much)
    if len(ious_refined) != len(ious_once) or not all(0 <= v <= 1 for v in ious_refined):
        raise AssertionError(f"{name}: expected {len(ious_once)} IoUs in [0, 1], one per photograph.")
    if np.allclose(ious_refined, ious_once):
        raise AssertionError(f"{name}: these are the one-cut IoUs; pass grabcut_iterations=3.")
    moved = abs(float(np.mean(ious_refined)) - float(np.mean(ious_once))) > threshold
    if bool(changes_much) != moved:
        raise AssertionError(f"{name}: compare |mean(ious_refined) − mean(one cut)| with {threshold}.")
    print(f"✓ {name}: correct")
