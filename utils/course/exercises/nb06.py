"""The self-checks of Notebook 06 (beyond gradients)'s exercises.

Each checker computes its reference with the course's own function *before* it runs the student's
function, and runs the student's function inside :func:`~.checks.refusing`, so handing in (or
calling) the library's implementation fails. Hints name the typical mistake, not the answer.
"""

from __future__ import annotations

import torch
from torch import nn

from .checks import _as_tensor, _call, _diagnose, _scaled_error, check_choice, refusing


def _captum_attribute(*classes: str) -> list:
    """The ``attribute`` methods of these Captum classes (``"InputXGradient"``, …), to refuse them
    alongside the course's own implementation; none when Captum (a test dependency) is absent."""
    try:
        import captum.attr
    except ImportError:
        return []
    return [getattr(captum.attr, name).attribute for name in classes]

__all__ = ["check_gradient_x_input_fn", "check_score_gap_fn", "check_pointing_game_fn",
           "check_black_reference_choices", "check_integrated_gradients_fn", "check_grad_cam_fn",
           "check_deletion_curve_fn"]


def _tensor_answer(name: str, value, shape: tuple[int, ...], hints: dict[tuple[int, ...], str]
                   ) -> torch.Tensor:
    """``value`` as a float tensor of ``shape``; a shape listed in ``hints`` gets its own hint."""
    if isinstance(value, torch.Tensor) and tuple(value.shape) in hints and tuple(value.shape) != shape:
        raise AssertionError(f"{name}: expected shape {shape}, got {tuple(value.shape)}. "
                             f"{hints[tuple(value.shape)]}")
    return _as_tensor(name, value, shape)


# --- Exercise 1: gradient × input -------------------------------------------------------------------

def check_gradient_x_input_fn(fn, model: nn.Module, images: torch.Tensor, target) -> None:
    """Check ``fn(model, images (N, 3, H, W), target) -> (N, 3, H, W)``, gradient × input, against
    :func:`utils.saliency.gradient_x_input_attribution` (relative to the answer's scale).

    Recognises the gradient alone, its magnitude times the image, the image normalised the model's
    way, and the channel max (a map, not an attribution)."""
    from ...saliency import gradient, gradient_x_input_attribution, integrated_gradients_attribution

    name = "gradient × input"
    n = images.shape[0]
    ref = gradient_x_input_attribution(model, images, target).detach().cpu()
    g = gradient(model, images, target).detach().cpu()
    x = images.detach().cpu()
    with refusing("Exercise 1", gradient_x_input_attribution, integrated_gradients_attribution,
                  *_captum_attribute("InputXGradient", "IntegratedGradients")):
        out = _call(name, fn, model, images.clone(), target)
    shape_hint = "Gradient × input keeps the colour channels: no maximum or sum over them."
    out = _tensor_answer(name, out, tuple(images.shape),
                         {(n, *images.shape[2:]): shape_hint, tuple(images.shape[2:]): shape_hint})
    wrong = {"that is the gradient alone; the attribution also involves the input.": g,
             "the sign was lost: gradient × input is signed (take no absolute value).": g.abs() * x,
             "that multiplies by the normalised image; the input here is the image in [0, 1] that "
             "you passed to the model (it normalises inside).": g * model.normalise(x)}
    _diagnose(name, out, ref, 1e-4, wrong,
              "Compute it with `gradient` on the images you were given, element by element.")


# --- Exercise 2: the score gap of completeness ------------------------------------------------------

def _as_number(name: str, value) -> float:
    if isinstance(value, torch.Tensor) and value.numel() != 1:
        raise AssertionError(f"{name}: return one number (a float or a 0-D tensor), got a tensor of "
                             f"shape {tuple(value.shape)}.")
    try:
        return float(value.detach() if isinstance(value, torch.Tensor) else value)
    except (TypeError, ValueError):
        raise AssertionError(f"{name}: return one number (a float), got {type(value).__name__}.") from None


def check_score_gap_fn(fn, model: nn.Module, image: torch.Tensor, target: int, *, steps: int = 8) -> None:
    """Check ``fn(model, image (3, H, W), target) -> float``, the score difference that integrated
    gradients' completeness axiom refers to (black baseline), then show that the IG attribution plus
    :func:`utils.saliency.completeness_error` adds up to it."""
    from ...saliency import completeness_error, integrated_gradients_attribution

    name = "S(I) − S(black)"
    with torch.no_grad():
        logits = model(torch.stack([image, torch.zeros_like(image)])).cpu()[:, target].double()
        probs = model(torch.stack([image, torch.zeros_like(image)])).softmax(1).cpu()[:, target].double()
    attr = integrated_gradients_attribution(model, image, target, steps=steps)
    closure = float(attr.sum() + completeness_error(model, image, attr, target))
    with refusing("Exercise 2", completeness_error):
        value = _as_number(name, _call(name, fn, model, image.clone(), target))
    ref = float(logits[0] - logits[1])
    wrong = {"that is the gap in softmax probability; completeness is stated for the score S_c.":
             float(probs[0] - probs[1]),
             "the sign is reversed: the photo comes first.": -ref,
             "that is the photo's score alone; completeness compares it with the baseline's.":
             float(logits[0])}
    _diagnose(name, torch.tensor([value]), torch.tensor([ref]), 1e-3,
              {k: torch.tensor([v]) for k, v in wrong.items()},
              "Two forward passes: the photograph and the baseline of this exercise.")
    if abs(closure - value) > 1e-3 * max(1.0, abs(ref)):
        raise AssertionError(f"{name}: Σ IG + error differs from your gap.")
    print("✓ and the IG attributions plus their completeness error add up to it")


# --- Exercise 3: the pointing game ------------------------------------------------------------------

def _pointing_cases(tol: int) -> tuple[torch.Tensor, list[tuple[int, int, int, int]], list[tuple[int, int]]]:
    """Synthetic maps ``(N, 40, 50)`` whose single maximum sits on the edges that decide a hit."""
    h, w = 40, 50
    box = (15, 12, 30, 24)  # x0, y0, x1, y1, exclusive ends
    x0, y0, x1, y1 = box
    points = [((x0 + x1) // 2, (y0 + y1) // 2),        # inside
              (x1 - 1 + tol, (y0 + y1) // 2),          # the last column inside the grown box
              (x1 + tol, (y0 + y1) // 2),              # the first column past it (exclusive end)
              (x0 - tol, y0 - tol),                    # the grown box's top-left corner
              ((x0 + x1) // 2, y1 + tol),              # the first row past the grown box
              (x0 - tol - 1, (y0 + y1) // 2),          # one column left of it
              (x1 + 3, y0 + 2),                        # right of the box, within x/y swapped bounds
              (45, 3)]                                 # far outside
    gen = torch.Generator().manual_seed(6)
    maps = torch.rand(len(points), h, w, generator=gen) * 0.5
    for i, (x, y) in enumerate(points):
        maps[i, y, x] = 1.0
    return maps, [box] * len(points), points


def _manual_pointing(maps: torch.Tensor, boxes, tol: int, *, inclusive: bool = False,
                     swap: bool = False) -> torch.Tensor:
    hits = []
    for m, (x0, y0, x1, y1) in zip(maps, boxes, strict=True):
        y, x = divmod(int(m.flatten().argmax()), m.shape[1])
        if swap:
            x, y = y, x
        end = 1 if inclusive else 0
        hits.append(x0 - tol <= x < x1 + tol + end and y0 - tol <= y < y1 + tol + end)
    return torch.tensor(hits)


def check_pointing_game_fn(fn) -> None:
    """Check ``fn(maps (N, H, W), boxes, tolerance) -> (N,)`` hits (bools) on synthetic maps whose
    maxima sit on the edges of the grown boxes, at two tolerances, against
    :func:`utils.metrics.pointing_game`."""
    from ...metrics import centre_pointing, pointing_game

    name = "pointing game"
    for tol in (15, 4):
        maps, boxes, _ = _pointing_cases(tol)
        ref = pointing_game(maps, boxes, tolerance=tol)
        wrong = {"the box is not grown: a point within the tolerance of the box is a hit too.":
                 _manual_pointing(maps, boxes, 0),
                 "x1 and y1 are exclusive ends: the box covers columns x0 … x1 − 1 (before growing).":
                 _manual_pointing(maps, boxes, tol, inclusive=True),
                 "rows and columns are swapped: the flat index divided by the width gives the row (y).":
                 _manual_pointing(maps, boxes, tol, swap=True)}
        if tol != 15:
            wrong = {"the tolerance is an argument: use the one you are given, not 15.":
                     _manual_pointing(maps, boxes, 15), **wrong}
        with refusing("Exercise 3", pointing_game, centre_pointing):
            out = _call(name, fn, maps.clone(), boxes, tol)
        try:
            out = torch.as_tensor(out).reshape(-1).bool()
        except (TypeError, ValueError, RuntimeError):
            raise AssertionError(f"{name}: return one hit (True/False) per map, got "
                                 f"{type(out).__name__}.") from None
        if out.numel() != len(boxes):
            raise AssertionError(f"{name}: expected {len(boxes)} hits (one per map), got {out.numel()}.")
        if torch.equal(out, ref):
            continue
        for mistake, candidate in wrong.items():
            if torch.equal(out, candidate):
                raise AssertionError(f"{name}: {mistake}")
        raise AssertionError(f"{name}: {int((out != ref).sum())} of {len(boxes)} verdicts differ. The "
                             "point is the map's maximum; compare it with the box grown on every side.")
    print(f"✓ {name}: correct")


# --- Exercise 4: think, then answer -----------------------------------------------------------------

def check_black_reference_choices(answer_a, answer_b) -> None:
    """Exercise 4's two multiple-choice answers, (a) and (b)."""
    check_choice("(a) black pixels", answer_a, "2",
                 hints={"1": "The gallery's plain gradient is not zero on the dark parts of the "
                             "photographs: look at the other factor of the product.",
                        "3": "Where is the normalisation (I − μ)/σ applied, and what does it do to "
                             "a black pixel?"})
    check_choice("(b) black baselines", answer_b, "2",
                 hints={"1": "Neither of these formulas contains a reference image. Re-read section "
                             "1's table: which attributions are multiplied by I or by I − I′?",
                        "3": "These two are gradients evaluated at I, not multiplied by it. Re-read "
                             "section 1's table: which attributions are multiplied by I or by I − I′?"})


# --- Exercise 5: integrated gradients ---------------------------------------------------------------

def check_integrated_gradients_fn(fn, model, image: torch.Tensor, target: int, *, steps: int = 8) -> None:
    """Check ``fn(model, image, target, steps) -> (3, H, W)``, IG from the black baseline by the
    right Riemann sum, against :func:`utils.saliency.integrated_gradients_attribution`
    (``method="riemann_right"``), which refuses to run inside the student's function."""
    from ...saliency import gradient, gradient_x_input_attribution, integrated_gradients_attribution

    name = "integrated gradients"
    ref = integrated_gradients_attribution(model, image, target, steps=steps, method="riemann_right").detach().cpu()

    def riemann(alphas) -> torch.Tensor:
        grads = gradient(model, torch.stack([a * image for a in alphas]), target)
        return grads.mean(0).cpu()

    right = riemann([k / steps for k in range(1, steps + 1)])
    wrong = {
        "that is the averaged gradient along the path; the attribution also involves the image.": right,
        "the result is m times too large: the integral is approximated by a mean, not a sum.": ref * steps,
        "those are the left endpoints α = k/m for k = 0 … m − 1; this exercise uses the right ones.":
            riemann([k / steps for k in range(steps)]) * image.cpu(),
        "that is gradient × input at the photo only; the gradient is taken along the path.":
            gradient(model, image, target).cpu() * image.cpu(),
    }
    with refusing("Exercise 5", integrated_gradients_attribution, gradient_x_input_attribution,
                  *_captum_attribute("IntegratedGradients", "InputXGradient")):
        out = _as_tensor(name, _call(name, fn, model, image.clone(), target, steps), tuple(image.shape))
    _diagnose(name, out, ref, 1e-3, wrong,
              "Check the path's end points, what you average, and what multiplies the average.")


# --- Exercise 6: Grad-CAM from hooks ----------------------------------------------------------------

class _Planted(RuntimeError):
    """The error the hook check plants after the forward pass."""


class _FailingAfterForward(nn.Module):
    """``model``'s forward pass (the hooked layer runs), then an error: do the hooks come off?"""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        self.model(x)
        raise _Planted("planted by the self-check after the forward pass")


_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def _hook_keys(layer: nn.Module) -> dict[str, set]:
    return {d: set(getattr(layer, d, {})) for d in _HOOK_DICTS}


def _left_hooks(layer: nn.Module, before: dict[str, set]) -> bool:
    """Remove the hooks added to ``layer`` since ``before``; whether there were any."""
    left = False
    for d, keys in before.items():
        hooks = getattr(layer, d, {})
        for k in set(hooks) - keys:
            del hooks[k]
            left = True
    return left


def _cam_parts(model: nn.Module, images: torch.Tensor, target, layer: nn.Module):
    """The layer's activations ``A`` ``(N, K, h, w)``, ``∂S_t/∂A``, ``∂P_t/∂A`` (on the CPU) and the
    scores ``(N, classes)`` of one forward pass, with the hook removed whatever happens."""
    acts: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda m, i, o: acts.append(o))
    try:
        x = images.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            scores = model(x)
            t = torch.as_tensor(target).long().reshape(-1).expand(images.shape[0]).to(scores.device)
            a = acts[0]
            (g,) = torch.autograd.grad(scores.gather(1, t[:, None]).sum(), a, retain_graph=True)
            (gp,) = torch.autograd.grad(scores.softmax(1).gather(1, t[:, None]).sum(), a)
    finally:
        handle.remove()
    return a.detach().cpu(), g.cpu(), gp.cpu(), scores.detach().cpu()


def check_grad_cam_fn(fn, model: nn.Module, images: torch.Tensor, target, layer: nn.Module) -> None:
    """Check ``fn(model, images (N, 3, H, W), target, layer) -> (N, h, w)``, Grad-CAM at ``layer``'s
    resolution (no upsampling), against :func:`utils.saliency.grad_cam` (``upsample=False``), and
    that the function leaves no hook on the layer, also when the model raises after its forward pass.
    """
    from ...saliency import grad_cam

    name = "Grad-CAM"
    model.eval()
    ref = grad_cam(model, images, target, layer=layer, upsample=False).detach().cpu()
    a, g, gp, scores = _cam_parts(model, images, target, layer)
    weights = g.mean(dim=(2, 3), keepdim=True)
    wrong = {
        "your map has negative values where the reference has none: look again at the last step.":
            (weights * a).sum(1),
        "each position is weighted by its own gradient there; a channel's weight is one number.":
            torch.relu((g * a).sum(1)),
        "that is the gradient of the softmax probability; Grad-CAM differentiates the score S_c.":
            torch.relu((gp.mean(dim=(2, 3), keepdim=True) * a).sum(1)),
    }
    before = _hook_keys(layer)
    try:
        with refusing("Exercise 6", grad_cam):
            out = _call(name, fn, model, images.clone(), target, layer)
    except RuntimeError as e:
        if "does not require grad" not in str(e):
            raise
        _left_hooks(layer, before)
        raise AssertionError(f"{name}: autograd found nothing to differentiate: the model's parameters "
                             "are frozen, so the activations have a gradient only if the images "
                             "require one.") from None
    leaked = _left_hooks(layer, before)
    if leaked:
        raise AssertionError(f"{name}: a hook is still registered on the layer after your function "
                             "returned; remove every hook you add (keep its handle).")
    out = _tensor_answer(name, out, tuple(ref.shape), {
        tuple(images.shape[-2:]): "Return the map at the layer's resolution, without upsampling.",
        (images.shape[0], *images.shape[-2:]): "Return the map at the layer's resolution, without "
                                               "upsampling."})
    scale = float((out.double() * ref.double()).sum() / ref.double().pow(2).sum().clamp_min(1e-30))
    if _scaled_error(out, ref) > 1e-3 and abs(scale - 1) > 1e-3 and _scaled_error(out, scale * ref) <= 1e-3:
        raise AssertionError(f"{name}: your map is the reference times {scale:.3g}: check which of the "
                             "two reductions is a mean and which a sum.")
    _diagnose(name, out, ref, 1e-3, wrong,
              "Check the four steps: the layer's activations, their gradients, the channel weights, "
              "and the last step.")
    # Once more for each image's least likely class: its weighted map has negative parts, so a
    # missing last step shows even where the top class's map is positive everywhere.
    low = scores.argmin(1)
    ref_low = grad_cam(model, images, low, layer=layer, upsample=False).detach().cpu()
    a_low, g_low, _, _ = _cam_parts(model, images, low, layer)
    with refusing("Exercise 6", grad_cam):
        out_low = _tensor_answer(name, _call(name, fn, model, images.clone(), low, layer),
                                 tuple(ref_low.shape), {})
    if _scaled_error(out_low, ref_low) > 1e-3:
        unclipped = (g_low.mean(dim=(2, 3), keepdim=True) * a_low).sum(1)
        if _scaled_error(out_low, unclipped) <= 1e-3:
            raise AssertionError(f"{name}: for a class the network finds unlikely, your map has "
                                 "negative values where the reference has none: look again at the "
                                 "last step.")
        raise AssertionError(f"{name}: right for the top classes, but not for each image's least "
                             "likely class: does your function use the target it is given?")
    before = _hook_keys(layer)
    try:
        with refusing("Exercise 6", grad_cam):
            fn(_FailingAfterForward(model).eval(), images.clone(), target, layer)
    except Exception:  # noqa: BLE001 — the planted error (or whatever the student's code made of it)
        pass
    if _left_hooks(layer, before):
        raise AssertionError(f"{name}: when the model raises, your hook stays on the layer; remove it "
                             "whatever happens (try/finally, or a context manager).")
    print("✓ and no hook is left on the layer, also when the model raises")


# --- Exercise 7: the deletion curve -----------------------------------------------------------------

def check_deletion_curve_fn(fn, model: nn.Module, image: torch.Tensor, saliency: torch.Tensor,
                            target: int, *, steps: int = 8) -> None:
    """Check ``fn(model, image (3, H, W), saliency (H, W), target, steps) -> (steps + 1,)`` class
    probabilities, against :func:`utils.metrics.deletion_curve` (black, most salient first; ``H·W``
    must be a multiple of ``steps``, so every way of counting the pixels agrees)."""
    from ...faithfulness import _perturbation_curve
    from ...metrics import deletion_curve, insertion_curve

    name = "deletion curve"
    h, w = saliency.shape
    if (h * w) % steps:
        raise ValueError(f"choose steps dividing H·W = {h * w}.")
    ref = deletion_curve(model, image[None], saliency[None], [target], steps=steps).scores[0]
    worst = deletion_curve(model, image[None], -saliency[None], [target], steps=steps).scores[0]
    logit = deletion_curve(model, image[None], saliency[None], [target], steps=steps,
                           score="logit").scores[0]
    grey = deletion_curve(model, image[None], saliency[None], [target], steps=steps,
                          baseline=0.5).scores[0]
    wrong = {"you delete the least salient pixels first; deletion starts with the most salient.": worst,
             "that follows the logit S_c; the curve follows the class probability (softmax).": logit,
             "deleted pixels are grey here; in this protocol they become black.": grey}
    with refusing("Exercise 7", deletion_curve, insertion_curve, _perturbation_curve):
        out = _call(name, fn, model, image.clone(), saliency.clone(), target, steps)
    if isinstance(out, torch.Tensor) and out.numel() == steps:
        raise AssertionError(f"{name}: {steps} points; the curve has one more: it starts with nothing "
                             "deleted.")
    out = _as_tensor(name, torch.as_tensor(out).reshape(-1) if isinstance(out, (list, tuple)) else out,
                     (steps + 1,))
    _diagnose(name, out, ref, 1e-3, wrong,
              "Check the order of the pixels, how many are deleted at each step, and what is recorded.")
