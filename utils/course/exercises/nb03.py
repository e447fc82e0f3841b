"""The self-checks of Notebook 03 (class-model visualisation)'s exercises."""

from __future__ import annotations

import torch

from .checks import _as_tensor, _call, _diagnose, _scaled_error, check_answered, refusing

__all__ = ["check_ascent_fn", "check_fooling_fn", "check_judge_rank", "check_regularised_step"]


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


def check_judge_rank(my_rank, judge, image: torch.Tensor, target: int, *, model=None) -> None:
    """Exercise 1: ``my_rank`` (an int), the judge's rank of ``target`` for ``image`` ``(1, 3, H, W)``
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
    size = (getattr(judge, "input_size", image.shape[-1]),) * 2
    dev = next(judge.parameters()).device
    for mode, kw in (("nearest", {}), ("bilinear", dict(align_corners=False, antialias=False))):
        with torch.no_grad():
            s = judge(torch.nn.functional.interpolate(image, size=size, mode=mode, **kw).to(dev))[0].cpu()
        wrong.setdefault(int((s > s[target]).sum()) + 1,
                         "resize as the exercise says (bilinear, with antialias): another resampling "
                         "gives the judge a different image.")
    if model is not None:
        wrong.setdefault(int(judge_rank(model, image, target, resize=False)[0][0]),
                         "that is the rank in the optimised network; ask the judge.")
    raise AssertionError(f"{name}: not yet. " + wrong.get(
        value, "a rank is the target's place when the judge's scores are sorted from the highest."))


def check_ascent_fn(fn, model, target: int, *, steps: int = 4, lr: float = 0.5, l2: float = 0.1,
                    size: int = 64) -> None:
    """Exercise 2: ``fn(model, target, steps, lr, l2, size) -> (3, size, size)`` against plain ascent.

    The reference is :func:`utils.class_model.class_model_run` with ``PAPER_SETTINGS``, computed
    before the student's function runs; while it runs, ``class_model_run`` refuses. The images are
    compared by their offsets from the mean image (relative to the offset's scale), so that the L2
    term's share of each step counts; ``lr`` ≠ 1 so that a step size left off the L2 term shows.
    """
    from ...class_model import PAPER_SETTINGS, class_model_run

    name = "class-model ascent"
    run = class_model_run(model, target, **dict(PAPER_SETTINGS, steps=steps, size=size, lr=lr, l2=l2))
    mean = _mean_image(size)

    def variant(sign: float, factor: float, centre: bool, prob: bool | str, lr_on_l2: bool) -> torch.Tensor:
        x = mean.clone()
        for _ in range(steps):
            pull = sign * factor * l2 * (x - mean if centre else x)
            g = _score_grad(model, x, target, prob=bool(prob))
            if prob == "log":   # ∂ log P_c / ∂I = (∂P_c / ∂I) / P_c
                with torch.no_grad():
                    g = g / torch.softmax(model(x[None].to(next(model.parameters()).device)), 1)[0, target].cpu()
            x = x + lr * g - (lr * pull if lr_on_l2 else pull)
        return x.clamp(0, 1) - mean

    wrong = {
        "the L2 term has the wrong sign: the penalty −λ‖I − Ī‖² pulls I back towards Ī.":
            variant(-1, 2, True, False, True),
        "the derivative of λ‖I − Ī‖² has a factor 2 that is missing.": variant(1, 1, True, False, True),
        "penalise I − Ī (the image minus the mean image), not I.": variant(1, 2, False, False, True),
        "ascend the score S_c (the logit), not the softmax probability.": variant(1, 2, True, True, True),
        "that ascends log P_c (section 1's alternative); ascend the score S_c (the logit).":
            variant(1, 2, True, "log", True),
        "the L2 term is part of the gradient of the objective: the learning rate multiplies it too.":
            variant(1, 2, True, False, False),
    }
    with refusing("Exercise 2", class_model_run):
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
    """Exercise 3: ``fn(model, image, target, epsilon=…, steps=…, step_size=…)``.

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
    with refusing("Exercise 3", fooling_image):
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


# --- the regularised class-visualisation step (CS231n's ``class_visualization_update_step``) ----

def _step_variant(model, x: torch.Tensor, target: int, shift: tuple[int, int], *, lr: float, l2: float,
                  blur: bool, blur_sigma: float, undo: bool = True, flip: bool = False,
                  swap: bool = False, decay: str = "after", centre: bool = True, clamp: str = "before",
                  prob: bool = False, factor: float = 2.0) -> torch.Tensor:
    """One step written with one typical slip (or none): ``decay`` is ``"after"`` (right),
    ``"before"`` (the decay applied before the gradient step) or ``"no_lr"``; ``clamp`` is
    ``"before"`` the blur (right), ``"after"`` it (also right) or ``"never"``."""
    from ...class_model import gaussian_blur

    dy, dx = shift
    if swap:
        dy, dx = dx, dy
    if flip:
        dy, dx = -dy, -dx
    mean = _mean_image(x.shape[-1])
    y = torch.roll(x, shifts=(dy, dx), dims=(1, 2))
    pull = factor * l2 * (y - mean if centre else y)
    if decay == "before":
        y = y - lr * pull
    g = _score_grad(model, y, target)
    if prob:
        with torch.no_grad():
            p = torch.softmax(model(y[None].to(next(model.parameters()).device)), 1)[0, target].cpu()
        g = _score_grad(model, y, target, prob=True) / p      # ∂ log P_c / ∂I
    if decay == "after":
        y = y + lr * (g - pull)
    elif decay == "no_lr":
        y = y + lr * g - pull
    else:
        y = y + lr * g
    if undo:
        y = torch.roll(y, shifts=(-dy, -dx), dims=(1, 2))
    if clamp == "before":
        y = y.clamp(0, 1)
    if blur:
        y = gaussian_blur(y[None], blur_sigma)[0]
    if clamp == "after":
        y = y.clamp(0, 1)
    return y


def _high_frequency_share(x: torch.Tensor) -> float:
    """``‖I − blur_1px(I)‖ / ‖I − Ī‖``: how much of the image's departure from the mean is detail
    finer than a 1-px Gaussian."""
    from ...class_model import gaussian_blur

    return float((x - gaussian_blur(x[None], 1.0)[0]).norm()
                 / (x - _mean_image(x.shape[-1])).norm().clamp_min(1e-12))


_STEP_SLIPS = [
    (dict(undo=False), "the jitter is not undone: shift the image back by the opposite amount after "
                       "the step, or the class model drifts across the frame."),
    (dict(flip=True), "the image is shifted the wrong way: roll by (dy, dx) first, and by (−dy, −dx) "
                      "after the step."),
    (dict(swap=True), "dy and dx are swapped: dy shifts the rows (dim 1), dx the columns (dim 2)."),
    (dict(decay="before"), "the L2 decay is applied before the gradient step; take the gradient at "
                           "the shifted image, then add the whole update at once."),
    (dict(decay="no_lr"), "the L2 term is part of the gradient of the objective: the learning rate "
                          "multiplies it too."),
    (dict(centre=False), "the L2 term penalises I − Ī (the image minus the mean image), not I."),
    (dict(factor=1.0), "the derivative of λ‖I − Ī‖² has a factor 2 that is missing."),
    (dict(prob=True), "that is the gradient of log P_c; ascend the score S_c (the logit)."),
    (dict(blur="wrong"), "the blur comes on the wrong steps (or on every step): step_index counts "
                         "from 0, and the blur follows steps blur_every, 2·blur_every, … only (CS231n's "
                         "loop blurs already at its first step; this exercise does not)."),
    (dict(shift=(0, 0)), "the image is not jittered: roll it by the shift (dy, dx) drawn from gen "
                         "before you take the gradient."),
]


def _step_slip(model, x: torch.Tensor, out: torch.Tensor, target: int, shift: tuple[int, int],
               kw: dict) -> str:
    """The hint for a step ``x → out`` that differs from the reference: the first typical slip
    that reproduces it, else a general hint."""
    for slip, hint in _STEP_SLIPS:
        args = dict(kw, **slip)
        if "blur" in slip:
            args["blur"] = not kw["blur"]     # blurring where the reference does not, or not where it does
        v = _step_variant(model, x, target, args.pop("shift", shift), **args)
        if _scaled_error(out - x, v - x) <= 1e-3:
            return hint
    return ("does not match the reference. Check the order: shift, gradient step with the decay, "
            "shift back, clamp, and the periodic blur.")


def check_regularised_step(fn, model, target: int, *, size: int = 64, lr: float = 0.2,
                           l2: float = 0.1, jitter: int = 4, blur_every: int = 3,
                           blur_sigma: float = 1.0, steps: int = 6, run_steps: int = 24,
                           run_lr: float = 0.05, min_rise: float = 2.0, seed: int = 5,
                           judge=None) -> dict:
    """The regularised step: ``fn(model, image, target, *, lr, l2, jitter, blur_every, blur_sigma,
    step_index, gen) -> (3, H, W)`` in [0, 1], with ``image`` ``(3, H, W)`` in [0, 1].

    First, ``steps`` single steps from a structured start image (saturated pixels, so that the
    clamp matters), each from the reference's state, with a copy of the same generator: each must
    match :func:`utils.class_model.regularised_step` (computed here, before the student's function
    runs) to 1e-3 of the step's scale. Clamping before or after the blur are both accepted. On a
    mismatch the typical slips are named (jitter not undone, decay before the step or without the
    learning rate, blur every step, no clamp, ``log P_c``, …). Then a ``run_steps``-step run of
    ``fn`` from the mean image (step ``run_lr``, jitter 4, a blur every 4 steps, λ = 0) against
    plain ascent with the same step size: the run must raise ``S_c`` by at least ``min_rise`` and leave less fine
    detail than plain ascent (:func:`_high_frequency_share` below 0.6 × plain's; measured on
    EfficientNet-Lite0 at 64 px: 0.26–0.35 against 0.75). While ``fn`` runs,
    :func:`utils.class_model.regularised_step`, :func:`utils.class_model.class_model_run` and
    :func:`utils.class_model.visualise_class` refuse.

    Returns:
        ``{"image": the run's image, "plain": plain ascent's image}`` (each ``(3, size, size)``),
        and with ``judge`` also ``"judge_rank"`` / ``"plain_judge_rank"`` (ints; not asserted: at
        this size and step count the judge's ranks of both move a lot between runs).
    """
    from ...class_model import (
        class_model_run,
        gaussian_blur,
        judge_rank,
        regularised_step,
        visualise_class,
    )

    name = "regularised step"
    settings = dict(lr=lr, l2=l2, jitter=jitter, blur_every=blur_every, blur_sigma=blur_sigma)
    start = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))
    start = ((gaussian_blur(start, 1.0)[0] - 0.5) * 4 + 0.5).clamp(0, 1)
    gen = torch.Generator().manual_seed(seed)
    states, refs, xs = [], [], [start]
    for t in range(steps):
        states.append(gen.get_state())
        refs.append(regularised_step(model, xs[-1], target, step_index=t, gen=gen, **settings))
        xs.append(refs[-1])

    def call_step(t: int, state: torch.Tensor, x: torch.Tensor, kw: dict) -> torch.Tensor:
        g = torch.Generator()
        g.set_state(state)
        try:
            out = _call(name, fn, model, x.clone(), target, step_index=t, gen=g, **kw)
        except AssertionError:
            raise
        except Exception as err:                  # a hint, not a traceback from inside torch
            raise AssertionError(f"{name}: step {t} raised {type(err).__name__}: {err}") from None
        return _as_tensor(name, out, tuple(x.shape))

    plain_kw = dict(lr=run_lr, l2=0.0, jitter=0, blur_every=0, blur_sigma=blur_sigma)
    run_kw = dict(lr=run_lr, l2=0.0, jitter=4, blur_every=4, blur_sigma=1.0)
    mean = _mean_image(size).contiguous()
    plain = mean.clone()
    for t in range(run_steps):
        plain = regularised_step(model, plain, target, step_index=t, **plain_kw)
    refused = (regularised_step, class_model_run, visualise_class)
    with refusing("Exercise 4", *refused):
        outs = [call_step(t, states[t], xs[t], settings) for t in range(steps)]

    for t in range(steps):
        x, out = xs[t], outs[t]
        if out.min() < -1e-6 or out.max() > 1 + 1e-6:
            raise AssertionError(f"{name}: step {t} leaves pixels outside [0, 1]; a valid image "
                                 "comes out of every step (the clamp is missing).")
        if _scaled_error(out - x, refs[t] - x) <= 1e-3:
            continue
        g = torch.Generator()
        g.set_state(states[t])
        shift = tuple(torch.randint(-jitter, jitter + 1, (2,), generator=g).tolist())
        kw = dict(lr=lr, l2=l2, blur=bool(blur_every) and (t + 1) % blur_every == 0,
                  blur_sigma=blur_sigma)
        if _scaled_error(out - x, _step_variant(model, x, target, shift, clamp="after", **kw) - x) > 1e-3:
            raise AssertionError(f"{name}: step {t}: " + _step_slip(model, x, out, target, shift, kw))

    with refusing("Exercise 4", *refused):
        run_gen = torch.Generator().manual_seed(seed + 1)
        image = mean.clone()
        for t in range(run_steps):
            state = run_gen.get_state()
            image = call_step(t, state, image, run_kw)
            run_gen.set_state(state)
            torch.randint(-4, 5, (2,), generator=run_gen)   # the draw of one step, whatever fn drew
    with torch.no_grad():
        dev = next(model.parameters()).device
        s0, s1 = (float(model(v[None].to(dev))[0, target]) for v in (mean, image))
    if s1 - s0 < min_rise:
        raise AssertionError(f"{name}: over {run_steps} steps from the mean image your step does not "
                             "raise the class score S_c; it must ascend it.")
    share, plain_share = _high_frequency_share(image), _high_frequency_share(plain)
    if share > 0.6 * plain_share:
        raise AssertionError(f"{name}: after {run_steps} steps your image has about as much pixel-level "
                             "detail as plain ascent's; the jitter and the periodic blur should remove "
                             "most of it.")
    print(f"✓ {name}: correct ({steps} single steps match the reference; over {run_steps} steps "
          "S_c rises and the image keeps less fine detail than plain ascent's)")
    result = {"image": image, "plain": plain}
    if judge is not None:
        ranks, _ = judge_rank(judge, torch.stack([image, plain]), [target, target])
        result.update(judge_rank=int(ranks[0]), plain_judge_rank=int(ranks[1]))
    return result
