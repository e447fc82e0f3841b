"""Catalogue of notebook 05's self-checks: typical wrong answers get a hint, other right answers pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from utils.course import exercises as ex
from utils.course.exercises.checks import ExerciseRefusal
from utils.quadtree import build_quadtree


def ranges(b: torch.Tensor) -> torch.Tensor:
    f = b.reshape(b.shape[0], -1)
    return f.amax(1) - f.amin(1)


def test_split_fn_accepts_right_answers_written_differently():
    ex.check_split_fn(lambda b, t: bool((ranges(b) > t).any()))                         # the teacher's, per channel
    ex.check_split_fn(lambda b, t: bool(np.ptp(b.numpy().reshape(b.shape[0], -1), axis=1).max() > t))  # numpy
    ex.check_split_fn(lambda b, t: any(float(c.max() - c.min()) > t for c in b.double()))  # a loop, float64
    ex.check_split_fn(lambda b, t: (ranges(b).max() > t))                                  # a 0-d tensor


@pytest.mark.parametrize("wrong, match", [
    (lambda b, t: bool(b.max() - b.min() > t), "per channel"),
    (lambda b, t: bool(ranges(b).max() >= t), "strictly"),
    (lambda b, t: bool(ranges(b).mean() > t), "average"),
    (lambda b, t: bool(ranges(b).sum() > t), "adding"),
    (lambda b, t: bool(b.std() > t), "case"),
])
def test_split_fn_rejects_typical_slips_with_a_hint(wrong, match):
    with pytest.raises(AssertionError, match=match):
        ex.check_split_fn(wrong)


def test_split_fn_refuses_the_library_and_hints_on_exceptions():
    with pytest.raises(ExerciseRefusal, match="Exercise 5"):
        ex.check_split_fn(lambda b, t: build_quadtree(b, t).n_leaves > 1)
    with pytest.raises(AssertionError, match="raised IndexError"):
        ex.check_split_fn(lambda b, t: bool(b[3].max() > t))
    with pytest.raises(AssertionError, match="one True or False"):
        ex.check_split_fn(lambda b, t: ranges(b) > t)
    with pytest.raises(AssertionError, match="no function yet"):
        ex.check_split_fn(None)
    # the library works again after the check
    assert build_quadtree(torch.zeros(3, 4, 4), 0.1).n_leaves == 1


def teacher_next(sal, win):
    thr = (sal.max() + sal.min()) / 2
    peak = torch.stack([sal[y0:y1, x0:x1].max() for x0, y0, x1, y1 in win.tolist()])
    keep = torch.nonzero((peak >= thr) & (peak > 0)).flatten()
    return keep[torch.sort(peak[keep], descending=True, stable=True).indices]


def loop_next(sal, win):  # plain Python, float64, a list
    s = sal.double()
    thr = (float(s.max()) + float(s.min())) / 2
    peaks = [(float(s[y0:y1, x0:x1].max()), k) for k, (x0, y0, x1, y1) in enumerate(win.tolist())]
    kept = [(p, k) for p, k in peaks if p >= thr and p > 0]
    return [k for p, k in sorted(kept, key=lambda pk: (-pk[0], pk[1]))]


def numpy_next(sal, win):
    a = sal.numpy()
    peak = np.array([a[y0:y1, x0:x1].max() for x0, y0, x1, y1 in win.tolist()])
    keep = np.flatnonzero((peak >= (a.max() + a.min()) / 2) & (peak > 0))
    return keep[np.argsort(-peak[keep], kind="stable")]


@pytest.mark.parametrize("right", [teacher_next, loop_next, numpy_next])
def test_next_windows_accepts_right_answers(right):
    ex.check_next_windows_fn(right)


def inclusive_ends(sal, win):
    thr = (sal.max() + sal.min()) / 2
    peak = torch.stack([sal[y0 : y1 + 1, x0 : x1 + 1].max() for x0, y0, x1, y1 in win.tolist()])
    keep = torch.nonzero((peak >= thr) & (peak > 0)).flatten()
    return keep[torch.sort(peak[keep], descending=True, stable=True).indices]


def swapped_axes(sal, win):
    return teacher_next(sal, win[:, [1, 0, 3, 2]])


def mean_threshold(sal, win):
    peak = torch.stack([sal[y0:y1, x0:x1].max() for x0, y0, x1, y1 in win.tolist()])
    keep = torch.nonzero((peak >= sal.mean()) & (peak > 0)).flatten()
    return keep[torch.sort(peak[keep], descending=True, stable=True).indices]


def half_the_max(sal, win):  # the reviewer's case: max / 2, not the midpoint of the range
    peak = torch.stack([sal[y0:y1, x0:x1].max() for x0, y0, x1, y1 in win.tolist()])
    keep = torch.nonzero((peak >= sal.max() / 2) & (peak > 0)).flatten()
    return keep[torch.sort(peak[keep], descending=True, stable=True).indices]


def unordered(sal, win):
    return sorted(teacher_next(sal, win).tolist())


def not_only_positive(sal, win):
    thr = (sal.max() + sal.min()) / 2
    peak = torch.stack([sal[y0:y1, x0:x1].max() for x0, y0, x1, y1 in win.tolist()])
    keep = torch.nonzero(peak >= thr).flatten()
    return keep[torch.sort(peak[keep], descending=True, stable=True).indices]


@pytest.mark.parametrize("wrong, match", [(inclusive_ends, "exclusive"), (swapped_axes, "exclusive"),
                                          (mean_threshold, "midpoint"), (half_the_max, "halfway"),
                                          (unordered, "wrong order"),
                                          (not_only_positive, "nothing to refine|positive")])
def test_next_windows_rejects_typical_slips_with_a_hint(wrong, match):
    with pytest.raises(AssertionError, match=match):
        ex.check_next_windows_fn(wrong)


def test_next_windows_refuses_the_library():
    from utils.hierarchical import select_windows

    with pytest.raises(ExerciseRefusal, match="Exercise 6"):
        ex.check_next_windows_fn(lambda s, w: select_windows(s, w)[0])
    with pytest.raises(AssertionError, match="window indices"):
        ex.check_next_windows_fn(lambda s, w: [None])
    with pytest.raises(AssertionError, match="raised"):
        ex.check_next_windows_fn(lambda s, w: s[w])
