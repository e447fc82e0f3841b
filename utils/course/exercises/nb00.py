"""The self-checks of Notebook 00 (introduction)'s exercises."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from .checks import ExerciseRefusal, _as_tensor, _call, _diagnose, check_answered

__all__ = ["check_class_rank", "check_softmax_fn"]


def check_class_rank(index, rank, model, image: torch.Tensor, name: str = "tabby") -> None:
    """Check Exercise 1: ``index`` is the class called ``name`` and ``rank`` its rank (1 = top)
    among all the model's classes for ``image`` ``(3, H, W)`` in [0, 1].

    Recognises the typical mistakes: a rank counted from 0, a rank counted from the bottom, an
    index counted from 1, a rank read off the top-5 list only.
    """
    label = f"{name} index and rank"
    check_answered(label, **{f"{name} index": index, f"{name} rank": rank})
    cats = [c.lower() for c in model.categories]
    true_index = cats.index(name.lower())
    try:
        index, rank = int(index), int(rank)
    except (TypeError, ValueError):
        raise AssertionError(f"{label}: the index and the rank are whole numbers (int), "
                             f"got {type(index).__name__} and {type(rank).__name__}.") from None
    if index != true_index:
        hint = ("model.categories counts from 0: the class's position in that list is its index."
                if index == true_index + 1 else "look the name up with class_index or in model.categories.")
        raise AssertionError(f"{label}: that is not the index of {name!r}; {hint}")
    with torch.no_grad():
        scores = model(image[None].to(next(model.parameters()).device))[0].float().cpu()
    above = int((scores > scores[true_index]).sum())
    if rank == above + 1:
        print(f"✓ {label}: correct")
        return
    if rank == above:
        raise AssertionError(f"{label}: the rank is counted from 1 (the top class has rank 1).")
    if rank == len(cats) - above:
        raise AssertionError(f"{label}: that counts from the lowest score; rank 1 is the highest score.")
    raise AssertionError(f"{label}: not the rank. Count how many classes score higher than "
                         f"{name!r} among all {len(cats)} classes (not only the top five).")


@contextmanager
def _torch_softmax_refused(exercise: str) -> Iterator[None]:
    """Inside the block, ``torch.softmax``, ``Tensor.softmax`` and ``F.softmax`` (and their log
    versions) raise :class:`ExerciseRefusal`; restored on exit."""
    message = (f"{exercise} asks you to write the softmax yourself: your function called PyTorch's "
               "softmax. Write it with torch.exp and a sum instead.")

    def refuse(*args, **kwargs):
        raise ExerciseRefusal(message)

    targets = [(torch, "softmax"), (torch, "log_softmax"), (torch.Tensor, "softmax"),
               (torch.Tensor, "log_softmax"), (F, "softmax"), (F, "log_softmax")]
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr in targets]
    try:
        for owner, attr in targets:
            setattr(owner, attr, refuse)
        yield
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)


def check_softmax_fn(fn) -> None:
    """Check Exercise 2: ``fn(scores (N, K)) -> (N, K)``, the softmax over the last dimension,
    written with exponentials (PyTorch's own softmax is refused) and safe for large scores.

    Recognises the typical mistakes: a normalisation over the wrong dimension, no exponential, the
    log-probabilities, and an overflow on scores in the hundreds (the shift that makes it safe is
    missing).
    """
    name = "softmax"
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 6, generator=gen) * 3
    reference = scores.softmax(1)
    builtins = {id(torch.softmax), id(F.softmax), id(torch.Tensor.softmax), id(torch.log_softmax),
                id(F.log_softmax), id(torch.Tensor.log_softmax)}
    if id(fn) in builtins:
        raise ExerciseRefusal("Exercise 2 asks you to write the softmax yourself, not to hand in "
                              "PyTorch's; write it with torch.exp and a sum.")
    with _torch_softmax_refused("Exercise 2"):
        out = _as_tensor(name, _call(name, fn, scores.clone()), tuple(scores.shape))
        large = _as_tensor(name, _call(name, fn, scores.clone() * 100 + 500), tuple(scores.shape))
    wrong = {
        "each column sums to 1 instead of each row: normalise over the classes (the last "
        "dimension).": scores.exp() / scores.exp().sum(0, keepdim=True),
        "the probabilities are proportional to the exponential of the scores, not to the scores.":
            scores / scores.sum(1, keepdim=True),
        "those are the log-probabilities; exponentiate.": scores.log_softmax(1),
    }
    _diagnose(name, out, reference, 1e-5, wrong,
              "Each row must be positive and sum to 1, larger scores getting larger probabilities.")
    if not torch.isfinite(large).all():
        bad_rows = ~torch.isfinite(large).all(-1)
        if not bad_rows.all():
            raise AssertionError(f"{name}: on scores in the hundreds some rows come out nan and others "
                                 "right: in those rows every exponential underflowed to 0, and 0 / 0 is nan. "
                                 "A constant shared by the whole batch suits only the row it came from; "
                                 "choose the constant row by row.")
        what = ("nan: the exponential of a score in the hundreds is inf in float32, and inf / inf is nan"
                if large.isnan().any() else "inf: the exponential of a score in the hundreds overflows float32")
        raise AssertionError(f"{name}: on scores in the hundreds your softmax gives {what}. The softmax "
                             "does not change when the same constant is added to every score of a row; "
                             "choose the constant so that no exponent is large.")
    _diagnose(f"{name} of large scores", large, (scores * 100 + 500).softmax(1), 1e-5, {},
              "Large scores must give the same probabilities as the formula.")
