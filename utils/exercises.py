"""Self-check helpers for the notebooks' exercises (in the spirit of CS231n's ``rel_error``).

A self-check cell calls one of these on the student's answer; it prints a short verdict and raises
``AssertionError`` with a hint when the answer is wrong, so a notebook run fails loudly.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["rel_error", "check_close", "check_true", "check_answered", "check_choice",
           "check_saliency_fn", "check_mass_ratio_fn", "check_probability_gradient_fn",
           "check_ascent_fn", "check_fooling_fn", "check_seeds_fn", "check_refined_ious",
           "check_split_fn", "check_integrated_gradients_fn"]


def rel_error(x, y) -> float:
    """Maximum relative error ``max |x − y| / max(1e-8, |x| + |y|)`` (CS231n's definition)."""
    x = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=float)
    y = y.detach().cpu().double().numpy() if isinstance(y, torch.Tensor) else np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"Shapes differ: {x.shape} vs {y.shape}.")
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def check_close(name: str, value, expected, *, tol: float = 1e-5, hint: str = "") -> None:
    """Assert that ``value`` matches ``expected`` to relative error ``tol``; print a verdict."""
    if value is None:
        raise AssertionError(f"{name}: no answer yet — replace the None in the exercise cell.")
    err = rel_error(value, expected)
    if err > tol:
        raise AssertionError(f"{name}: relative error {err:.2e} > {tol:.0e}. {hint}".strip())
    print(f"✓ {name}: correct (relative error below {tol:.0e})")


def check_true(name: str, condition: bool, *, hint: str = "") -> None:
    """Assert a condition about the student's answer; print a verdict."""
    if not bool(condition):
        raise AssertionError(f"{name}: not yet. {hint}".strip())
    print(f"✓ {name}: correct")


# --- helpers shared by the function checkers -------------------------------------------------------

def check_answered(name: str, **answers) -> None:
    """Raise ``AssertionError`` (a hint, not a traceback) while any answer is still ``None``.

    The student edition replaces each worked solution by a stub that leaves its answers ``None``;
    a self-check calls this first so that the student reads what to do.
    """
    missing = [k for k, v in answers.items() if v is None]
    if missing:
        raise AssertionError(f"{name}: no answer yet — set {', '.join(missing)} in the exercise cell.")


def _call(name: str, fn, *args, **kwargs):
    """Call the student's function; a stub (``None`` or ``NotImplementedError``) becomes a hint."""
    if fn is None or not callable(fn):
        raise AssertionError(f"{name}: no function yet — define it in the exercise cell.")
    try:
        out = fn(*args, **kwargs)
    except NotImplementedError:
        raise AssertionError(f"{name}: not written yet — replace `raise NotImplementedError` "
                             "in the exercise cell with your code.") from None
    if out is None:
        raise AssertionError(f"{name}: your function returned None — did you forget `return`?")
    return out


def _as_tensor(name: str, value, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise AssertionError(f"{name}: expected a torch.Tensor, got {type(value).__name__}.")
    value = value.detach().float().cpu()
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise AssertionError(f"{name}: expected shape {tuple(shape)}, got {tuple(value.shape)}.")
    return value


def _scaled_error(x: torch.Tensor, y: torch.Tensor) -> float:
    """``max |x − y| / max |y|``: an error relative to the answer's scale, so that entries near
    zero (where float rounding dominates any relative error) do not decide."""
    return float((x.double() - y.double()).abs().max() / y.double().abs().max().clamp_min(1e-12))


def _diagnose(name: str, value: torch.Tensor, expected: torch.Tensor, tol: float,
              wrong: dict[str, torch.Tensor], hint: str) -> None:
    """Pass if ``value`` matches ``expected`` to ``tol`` (relative to the scale of ``expected``);
    else name the typical mistake that it matches, if any."""
    expected = expected.detach().float().cpu()
    if _scaled_error(value, expected) <= tol:
        print(f"✓ {name}: correct")
        return
    for mistake, candidate in wrong.items():
        candidate = candidate.detach().float().cpu()
        if candidate.shape == value.shape and _scaled_error(value, candidate) <= tol:
            raise AssertionError(f"{name}: {mistake}")
    raise AssertionError(f"{name}: does not match the reference. {hint}".strip())


def check_choice(name: str, answer, correct: str, hints: dict[str, str] | None = None) -> None:
    """Check a multiple-choice answer (a letter); a wrong letter gets its own hint."""
    check_answered(name, answer=answer)
    letter = str(answer).strip().lower()
    if letter != correct.lower():
        hint = (hints or {}).get(letter, "Re-read the options and test them against your computation.")
        raise AssertionError(f"{name}: not ({letter}). {hint}")
    print(f"✓ {name}: correct")


# --- 02: the saliency map ---------------------------------------------------------------------------

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
    from .saliency import saliency_map

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


# --- 01: the probability's gradient ---------------------------------------------------------------

def check_probability_gradient_fn(fn) -> None:
    """Check ``fn(p (K,), score_grads (K, D), c) -> (D,)``, the chain rule through the softmax."""
    name = "∂P_c/∂I from the score gradients"
    gen = torch.Generator().manual_seed(1)
    s = torch.randn(5, generator=gen) * 2
    grads = torch.randn(5, 7, generator=gen)
    p, c = s.softmax(0), 2
    out = _as_tensor(name, _call(name, fn, p.clone(), grads.clone(), c), (7,))
    expected = p[c] * (grads[c] - (p[:, None] * grads).sum(0))
    wrong = {
        "the factor P_c in front of the bracket is missing.": grads[c] - (p[:, None] * grads).sum(0),
        "the sum over k of P_k ∂S_k/∂I is missing (it is the competition term).": p[c] * grads[c],
        "the sign is reversed: P_c (∂S_c/∂I − Σ_k P_k ∂S_k/∂I).": -expected,
    }
    _diagnose(name, out, expected, 1e-5, wrong, "∂P_c/∂I = P_c (∂S_c/∂I − Σ_k P_k ∂S_k/∂I).")


# --- 03: the class-model ascent and fooling images -------------------------------------------------

def check_ascent_fn(fn, model, target: int, *, steps: int = 3, lr: float = 1.0, l2: float = 0.05,
                    size: int = 64) -> None:
    """Check ``fn(model, target, steps, lr, l2, size) -> (3, size, size)`` against plain ascent.

    The reference is :func:`utils.class_model.class_model_run` with ``PAPER_SETTINGS``: from the
    mean image Ī, ``I ← I + lr (∂S_c/∂I − 2λ (I − Ī))``, the result clamped to [0, 1].
    """
    from .class_model import IMAGENET_MEAN, PAPER_SETTINGS, class_model_run

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


# --- 04: GraphCut seeds --------------------------------------------------------------------------

def check_seeds_fn(fn) -> None:
    """Check ``fn(saliency (H, W), fg_quantile, bg_quantile) -> (fg, bg)`` boolean masks against
    the seeds that :func:`utils.localisation.localise` uses."""
    from .localisation import localise

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


# --- 05: the quadtree split rule ------------------------------------------------------------------

def check_split_fn(fn) -> None:
    """Check ``fn(block (C, s, s), threshold) -> bool`` against :func:`utils.quadtree.build_quadtree`."""
    from .quadtree import build_quadtree

    name = "quadtree split rule"
    gen = torch.Generator().manual_seed(3)
    flat = torch.zeros(3, 4, 4)
    colours = flat.clone()
    colours[0], colours[1] = 1.0, 0.0   # each channel constant, channels differ: no split
    edge = flat.clone()
    edge[1, :, 2:] = 0.5                # one channel with range exactly 0.5
    cases = [(flat, 0.1), (colours, 0.1), (edge, 0.5), (edge, 0.4), (edge, 0.2),
             (torch.rand(3, 8, 8, generator=gen) * 0.3, 0.25), (torch.rand(3, 8, 8, generator=gen), 0.9)]
    hints = {
        1: "the range is taken per channel (max − min inside each channel), not across channels.",
        2: "split only when the range is strictly LARGER than the threshold.",
        3: "split when the largest per-channel range exceeds the threshold, not the mean of them.",
    }
    for i, (block, t) in enumerate(cases):
        answer = _call(name, fn, block.clone(), t)
        expected = build_quadtree(block, t).n_leaves > 1
        if bool(answer) != expected:
            raise AssertionError(f"{name}: wrong on case {i}. " + hints.get(
                i, "split when max over channels of (max − min) inside the block > threshold."))
    print(f"✓ {name}: correct")


# --- 06: integrated gradients ---------------------------------------------------------------------

def check_integrated_gradients_fn(fn, model, image: torch.Tensor, target: int, *, steps: int = 8) -> None:
    """Check ``fn(model, image, target, steps) -> (3, H, W)``, IG from the black baseline by the
    right Riemann sum, against :func:`utils.saliency.integrated_gradients_attribution` (``method="riemann_right"``)."""
    from .saliency import gradient, integrated_gradients_attribution

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
