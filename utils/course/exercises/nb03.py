"""The self-checks of Notebook 03 (class-model visualisation)'s exercises."""

from __future__ import annotations

import torch

from .checks import _as_tensor, _call, _diagnose, check_answered, refusing

__all__ = ["check_ascent_fn", "check_first_step", "check_fooling_fn", "check_judge_rank"]


def _mean_image(size: int) -> torch.Tensor:
    from ...class_model import IMAGENET_MEAN

    return torch.tensor(IMAGENET_MEAN).view(3, 1, 1).expand(3, size, size)


def _score_grad(model, x: torch.Tensor, target: int, prob: bool = False) -> torch.Tensor:
    """``∂S_target/∂x`` (or ``∂P_target/∂x``) of one image ``(3, H, W)``, on the CPU."""
    dev = next(model.parameters()).device
    xg = x.detach().to(dev).requires_grad_(True)
    s = model(xg[None])
    s = s.softmax(1) if prob else s
    (g,) = torch.autograd.grad(s[0, target], xg)
    return g.cpu()


def check_first_step(my_step, model, target: int, *, lr: float, size: int) -> None:
    """Exercise 1: ``my_step`` ``(3, size, size)``, the change of the image in the first plain-ascent
    step for ``target`` (``PAPER_SETTINGS``, step ``lr``). The reference is the first step of
    :func:`utils.class_model.class_model_run`, computed here."""
    from ...class_model import PAPER_SETTINGS, class_model_run

    name = "first ascent step"
    check_answered(name, my_step=my_step)
    out = _as_tensor(name, my_step, (3, size, size))
    mean = _mean_image(size)
    run = class_model_run(model, target, **dict(PAPER_SETTINGS, steps=1, size=size, lr=lr))
    g = _score_grad(model, mean, target)
    wrong = {
        "the step goes uphill: ascent adds the gradient, it does not subtract it.": -lr * g,
        "the step size is missing: the change is the gradient scaled by the learning rate.": g,
        "that is the gradient of the softmax probability; the paper ascends the score S_c.":
            lr * _score_grad(model, mean, target, prob=True),
        "that is the image after the step, not the change of the image.": run.images[0].cpu(),
    }
    logp = _score_grad(model, mean, target, prob=True) / float(
        torch.softmax(model(mean[None].to(next(model.parameters()).device)), 1)[0, target])
    wrong["that is the gradient of log P_c; the paper ascends the score S_c itself."] = lr * logp.cpu()
    _diagnose(name, out, run.images[0].cpu() - mean, 1e-4, wrong,
              "Re-read the update rule of section 1 and where the ascent starts.")


def check_judge_rank(my_rank, judge, image: torch.Tensor, target: int, *, model=None) -> None:
    """Exercise 2: ``my_rank`` (an int), the judge's rank of ``target`` for ``image`` ``(1, 3, H, W)``
    (1 = the judge's top class), after resizing to the judge's input size. The reference is
    :func:`utils.class_model.judge_rank`, computed here; ``model`` (the optimised network), when
    given, lets the check recognise a rank taken from the wrong network."""
    from ..._validation import num_classes
    from ...class_model import judge_rank

    name = "judge rank"
    check_answered(name, my_rank=my_rank)
    try:
        value = int(my_rank)
    except (TypeError, ValueError):
        raise AssertionError(f"{name}: store one whole number (an int), got "
                             f"{type(my_rank).__name__}.") from None
    if value != float(my_rank):
        raise AssertionError(f"{name}: a rank is a whole number, got {my_rank}.")
    ref = int(judge_rank(judge, image, target)[0][0])
    if value == ref:
        print(f"✓ {name}: correct")
        return
    wrong: dict[int, str] = {}   # the first diagnosis of a value wins
    wrong.setdefault(ref - 1, "off by one: the judge's top class has rank 1, not 0.")
    wrong.setdefault(int(judge_rank(judge, image, target, resize=False)[0][0]),
                     "the judge was run on the image at its optimised size; resize it to the "
                     "judge's input size first.")
    wrong.setdefault(num_classes(judge) + 1 - ref, "counted from the wrong end: rank 1 is the "
                     "highest score.")
    if model is not None:
        wrong.setdefault(int(judge_rank(model, image, target, resize=False)[0][0]),
                         "that is the rank in the optimised network; ask the judge.")
    raise AssertionError(f"{name}: not yet. " + wrong.get(
        value, "a rank is the target's place when the judge's scores are sorted from the highest."))


def check_ascent_fn(fn, model, target: int, *, steps: int = 4, lr: float = 0.5, l2: float = 0.1,
                    size: int = 64) -> None:
    """Exercise 3: ``fn(model, target, steps, lr, l2, size) -> (3, size, size)`` against plain ascent.

    The reference is :func:`utils.class_model.class_model_run` with ``PAPER_SETTINGS``, computed
    before the student's function runs; while it runs, ``class_model_run`` refuses. The images are
    compared by their offsets from the mean image (relative to the offset's scale), so that the L2
    term's share of each step counts; ``lr`` ≠ 1 so that a step size left off the L2 term shows.
    """
    from ...class_model import PAPER_SETTINGS, class_model_run

    name = "class-model ascent"
    run = class_model_run(model, target, **dict(PAPER_SETTINGS, steps=steps, size=size, lr=lr, l2=l2))
    mean = _mean_image(size)

    def variant(sign: float, factor: float, centre: bool, prob: bool, lr_on_l2: bool) -> torch.Tensor:
        x = mean.clone()
        for _ in range(steps):
            pull = sign * factor * l2 * (x - mean if centre else x)
            g = _score_grad(model, x, target, prob=prob)
            x = x + lr * g - (lr * pull if lr_on_l2 else pull)
        return x.clamp(0, 1) - mean

    wrong = {
        "the L2 term has the wrong sign: the penalty −λ‖I − Ī‖² pulls I back towards Ī.":
            variant(-1, 2, True, False, True),
        "the derivative of λ‖I − Ī‖² has a factor 2 that is missing.": variant(1, 1, True, False, True),
        "penalise I − Ī (the image minus the mean image), not I.": variant(1, 2, False, False, True),
        "ascend the score S_c (the logit), not the softmax probability.": variant(1, 2, True, True, True),
        "the L2 term is part of the gradient of the objective: the learning rate multiplies it too.":
            variant(1, 2, True, False, False),
    }
    with refusing("Exercise 3", class_model_run):
        out = _as_tensor(name, _call(name, fn, model, target, steps, lr, l2, size), (3, size, size))
    _diagnose(name, out.clamp(0, 1) - mean, run.images[0].cpu() - mean, 1e-4, wrong,
              "Start from the mean image; each step follows the gradient of the whole objective.")


def _pgd(model, image: torch.Tensor, target: int, epsilon: float, steps: int, step_size: float,
         project_each_step: bool) -> torch.Tensor:
    x = image.clone()
    for _ in range(steps):
        x = x + step_size * _score_grad(model, x, target).sign()
        if project_each_step:
            x = (image + (x - image).clamp(-epsilon, epsilon)).clamp(0, 1)
    return (image + (x - image).clamp(-epsilon, epsilon)).clamp(0, 1)


def check_fooling_fn(fn, model, image: torch.Tensor, target: int, *, epsilon: float,
                     margin: float = 1.0, **kwargs) -> torch.Tensor:
    """Exercise 4: ``fn(model, image, target, epsilon=…, steps=…, step_size=…)``.

    First the trajectory: with large steps (``step_size = ε/2``, 8 steps) the result must match
    projected ascent that projects onto the ε-ball and [0, 1] after *every* step (computed here;
    at most 1 % of the pixels may differ, for signs of near-zero gradients). Then the outcome
    with ``**kwargs``: in [0, 1], within ``epsilon`` of ``image`` in L∞, and ``target`` the top
    class by at least ``margin`` in score. While ``fn`` runs, :func:`utils.adversarial.fooling_image`
    refuses. Returns the fooling image ``(3, H, W)``.
    """
    from ...adversarial import fooling_image

    name = "fooling image"
    image = image.detach().cpu()
    probe = dict(steps=8, step_size=epsilon / 2)
    ref = _pgd(model, image, target, epsilon, project_each_step=True, **probe)
    once = _pgd(model, image, target, epsilon, project_each_step=False, **probe)
    with refusing("Exercise 4", fooling_image):
        traj = _as_tensor(name, _call(name, fn, model, image.clone(), target, epsilon=epsilon, **probe),
                          tuple(image.shape))
        out = _as_tensor(name, _call(name, fn, model, image.clone(), target, epsilon=epsilon, **kwargs),
                         tuple(image.shape))
    for x in (traj, out):
        if x.min() < 0 or x.max() > 1:
            raise AssertionError(f"{name}: pixels outside [0, 1]; keep the image valid after each step.")
        if float((x - image).abs().max()) > epsilon + 1e-6:
            raise AssertionError(f"{name}: the change exceeds the L∞ bound ε; keep every pixel within "
                                 "ε of the photo.")

    def differing(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(((a - b).abs() > epsilon / 4).float().mean())

    if differing(traj, ref) > 0.01:
        if differing(traj, once) <= 0.01:
            raise AssertionError(f"{name}: you project onto the ε-ball only once, at the end; the next "
                                 "gradient must be taken at a point inside the ball, after every step.")
        raise AssertionError(f"{name}: with steps={probe['steps']} and step_size=ε/2 your result differs "
                             "from projected sign-gradient ascent on the target's score S_c; check the "
                             "direction of each step and the projection after it.")
    with torch.no_grad():
        s = model(out[None].to(next(model.parameters()).device))[0].cpu()
    rival = float(torch.cat([s[:target], s[target + 1:]]).max())
    if float(s[target]) - rival < margin:
        raise AssertionError(f"{name}: the target does not lead the other classes by {margin} in "
                             "score; ascend the target's score S_c (not its probability) with the "
                             "sign of the gradient, or take more steps.")
    print(f"✓ {name}: correct (the target class wins, the change stays within ε)")
    return out
