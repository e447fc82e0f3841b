"""The self-checks of Notebook 01 (saliency theory)'s exercises."""

from __future__ import annotations

import torch

from .checks import _as_tensor, _call, _diagnose, check_answered, check_close, check_true

__all__ = ["check_probability_gradient_fn", "check_grayscale_gradient", "check_softmax_jacobian"]


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
        "every partial derivative ∂P_c/∂S_c' carries the factor P_c; yours lacks it.":
            grads[c] - (p[:, None] * grads).sum(0),
        "only the score of class c itself was followed; P_c depends on every class's score (the "
        "competition term).": p[c] * grads[c],
        "only the c' = c term of the chain rule is there; add the terms of the other classes.":
            p[c] * (1 - p[c]) * grads[c],
        "the sign is reversed.": -expected,
    }
    _diagnose(name, out, expected, 1e-5, wrong,
              "Sum over every class c': the softmax's partial derivative ∂P_c/∂S_c' (Exercise 1) times "
              "that class's score gradient.")


def check_grayscale_gradient(channels_equal, reason, model, sample) -> None:
    """Check Exercise 2: whether the three channels of ``∂S_c/∂I`` at a grayscale photograph
    (``sample.image`` ``(3, H, W)`` in [0, 1], class ``sample.target``, e.g. a
    :class:`utils.images.Sample`) are equal (``channels_equal``), and the letter of the
    explanation (``reason``).

    The answer is computed here from the gradient: equal channels give (a); channels that are
    constant multiples of each other (every pairwise correlation above 0.99 in magnitude) give (b);
    otherwise (c). The check refuses to decide when the measured correlation is near that bound.
    """
    from ...saliency import gradient

    check_answered("grayscale photo", channels_equal=channels_equal, reason=reason)
    g = gradient(model, sample.image, sample.target).detach().double().cpu()
    equal = bool(torch.allclose(g[0], g[1]) and torch.allclose(g[1], g[2]))
    check_true("are the gradient channels equal?", bool(channels_equal) == equal,
               hint="Compute the gradient and compare its channels with torch.allclose.")
    corr = torch.corrcoef(g.flatten(1)).abs()
    weakest = float(corr.min())
    if not equal and 0.9 < weakest < 0.999:
        raise RuntimeError(f"The channels' correlation ({weakest:.3f}) is too near the bound to "
                           "decide (b) against (c); report this to the course's maintainers.")
    correct = "a" if equal else ("b" if weakest >= 0.999 else "c")
    letter = str(reason).strip().lower().strip("()")
    hints = {
        "a": "your own computation says whether the channels are equal; the answer must agree with it.",
        "b": "if the channels differed only by a constant factor, each pair would be perfectly "
             "correlated. Measure the correlation between the channels (torch.corrcoef).",
        "c": "re-read (c) against what you measured: equal or proportional channels need no "
             "different kernels.",
    }
    if letter not in hints:
        raise AssertionError(f"why: answer with one letter, a, b or c (got {reason!r}).")
    if letter != correct:
        raise AssertionError(f"why: not ({letter}); {hints[letter]}")
    print("✓ why: correct")


def check_softmax_jacobian(j_formula, scores: torch.Tensor) -> None:
    """Exercise 1: ``j_formula`` ``(C, C)``, the softmax Jacobian ``∂P_c/∂S_c'`` at ``scores`` ``(C,)``
    from the formula; the reference is autograd's ``torch.autograd.functional.jacobian``, computed
    here (so the exercise cell holds no reference to copy)."""
    name = "softmax Jacobian"
    check_answered(name, J_formula=j_formula)
    s = scores.detach().double()
    ref = torch.autograd.functional.jacobian(lambda z: z.softmax(0), s)
    if hasattr(j_formula, "__array__") and not isinstance(j_formula, torch.Tensor):
        j_formula = torch.as_tensor(j_formula)              # a numpy answer is fine too
    out = _as_tensor(name, j_formula, tuple(ref.shape)).double()
    p = s.softmax(0)
    wrong = {
        "only the diagonal is filled; P_c depends on every other class's score too.":
            torch.diag(torch.diag(ref)),
        "the term for c' = c is missing: P_c depends on its own score S_c too.": -torch.outer(p, p),
        "the terms for c' ≠ c are missing: raising another class's score lowers P_c.": torch.diag(p),
    }
    for mistake, candidate in wrong.items():
        if torch.allclose(out, candidate, rtol=1e-4, atol=1e-12):
            raise AssertionError(f"{name}: {mistake}")
    check_close(name, out, ref, tol=1e-4,
                hint="Differentiate P_c with respect to its own score and to another class's score: "
                     "two cases.")
