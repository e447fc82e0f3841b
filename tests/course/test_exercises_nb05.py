"""Catalogue of notebook 05's self-checks: typical wrong answers get a hint, other right answers pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from utils.course import exercises as ex
from utils.course.exercises.checks import ExerciseRefusal
from utils.quadtree import build_quadtree


def quadtree(image, threshold, min_size=1, *, rng="channel", cmp=">", stop="ok", border="split",
             root="pow2", offsets="ok", axes="ok", ends="exclusive"):
    """The recursive split, with one switch per typical slip (the defaults are right)."""
    c, h, w = image.shape
    if axes == "swapped":
        h, w = w, h
    side = 1
    while side < max(h, w):
        side *= 2
    if root == "max":
        side = max(h, w)
    leaves = []

    def spread(block):
        flat = block.reshape(c, -1)
        r = flat.amax(1) - flat.amin(1)
        return {"channel": r.max(), "across": flat.max() - flat.min(), "sum": r.sum(), "mean": r.mean()}[rng]

    def visit(x0, y0, s):
        if x0 >= w or y0 >= h:
            return
        block = image[:, x0:x0 + s, y0:y0 + s] if axes == "swapped" else image[:, y0:y0 + s, x0:x0 + s]
        out = x0 + s > w or y0 + s > h
        allowed = {"ok": s // 2 >= min_size, "early": s // 2 > min_size, "below": s > min_size}[stop]
        if out and border == "drop":
            return
        if out and border == "clip":
            leaves.append((x0, y0, min(x0 + s, w), min(y0 + s, h)))
            return
        if out and border == "min_size_first" and not allowed:
            leaves.append((x0, y0, x0 + s, y0 + s))
            return
        detail = spread(block) >= threshold if cmp == ">=" else spread(block) > threshold
        if allowed and s > 1 and bool(detail) or out:
            half = s // 2
            base = (0, 0) if offsets == "from_origin" else (x0, y0)
            for dx, dy in ((0, 0), (half, 0), (0, half), (half, half)):
                visit(base[0] + dx, base[1] + dy, half)
        else:
            leaves.append((x0, y0, x0 + s, y0 + s))

    visit(0, 0, side)
    if ends == "inclusive":
        return [(x0, y0, x1 - 1, y1 - 1) for x0, y0, x1, y1 in leaves]
    return leaves


def quadtree_iterative(image, threshold, min_size=1):
    """A stack instead of recursion, numpy, float64, the other quadrant order; an (N', 4) array."""
    a = image.double().numpy()
    h, w = a.shape[1:]
    side = 2 ** int(np.ceil(np.log2(max(h, w))))
    todo, leaves = [(0, 0, side)], []
    while todo:
        x, y, s = todo.pop()
        if x >= w or y >= h:
            continue
        if x + s > w or y + s > h or (s >= 2 * min_size and np.ptp(a[:, y:y + s, x:x + s].reshape(len(a), -1),
                                                                    axis=1).max() > threshold):
            todo += [(x + dx, y + dy, s // 2) for dy in (s // 2, 0) for dx in (s // 2, 0)]
        else:
            leaves.append((x, y, x + s, y + s))
    return np.array(leaves)


def quadtree_as_tensor(image, threshold, min_size=1):
    """Breadth first, per-channel loop, a (N', 4) long tensor in yet another order."""
    h, w = image.shape[1:]
    side = 1 << (max(h, w) - 1).bit_length()
    level, leaves = [(0, 0)], []
    while level:
        nxt = []
        for x, y in level:
            if x >= w or y >= h:
                continue
            block = image[:, y:y + side, x:x + side]
            big = max(float(ch.max() - ch.min()) for ch in block)
            if x + side > w or y + side > h or (side // 2 >= min_size and big > threshold):
                nxt += [(x + dx, y + dy) for dx in (0, side // 2) for dy in (0, side // 2)]
            else:
                leaves.append([x, y, x + side, y + side])
        level, side = nxt, side // 2
    return torch.tensor(leaves[::-1], dtype=torch.long)


@pytest.mark.parametrize("right", [quadtree, quadtree_iterative, quadtree_as_tensor])
def test_quadtree_fn_accepts_right_answers_written_differently(right):
    ex.check_quadtree_fn(right)


def test_quadtree_references_match_the_library_on_the_cases():
    from utils.course.exercises.nb05 import _tree_cases

    for image, t, min_size in _tree_cases():
        tree = build_quadtree(image, t, min_size=min_size)
        ref = {(x, y, x + s, y + s) for y, x, s in zip(tree.y.tolist(), tree.x.tolist(), tree.size.tolist(), strict=True)}
        assert set(quadtree(image, t, min_size)) == ref


@pytest.mark.parametrize("slip, match", [
    (dict(rng="across"), "per channel"),
    (dict(cmp=">="), "strictly"),
    (dict(rng="sum"), "adding"),
    (dict(rng="mean"), "average"),
    (dict(stop="early"), "one level early"),
    (dict(stop="below"), "smaller than min_size"),
    (dict(ends="inclusive"), "exclusive"),
    (dict(border="clip"), "not cut at the border"),
    (dict(border="drop"), "uncovered"),
    (dict(border="min_size_first"), "sticks out"),
    (dict(root="max"), "power-of-two"),
    (dict(offsets="from_origin"), "parent block's corner"),
    (dict(axes="swapped"), "raised|x is the column"),
])
def test_quadtree_fn_rejects_typical_slips_with_a_hint(slip, match):
    with pytest.raises(AssertionError, match=match):
        ex.check_quadtree_fn(lambda im, t, m: quadtree(im, t, m, **slip))


def test_quadtree_fn_hints_on_swapped_boxes_and_bad_returns():
    with pytest.raises(AssertionError, match="x and y are swapped"):
        ex.check_quadtree_fn(lambda im, t, m: [(y0, x0, y1, x1) for x0, y0, x1, y1 in quadtree(im, t, m)])
    with pytest.raises(AssertionError, match="appears twice"):
        ex.check_quadtree_fn(lambda im, t, m: quadtree(im, t, m) * 2)
    with pytest.raises(AssertionError, match="four whole pixel coordinates"):
        ex.check_quadtree_fn(lambda im, t, m: [(x0 + 0.5, y0, x1, y1) for x0, y0, x1, y1 in quadtree(im, t, m)])
    with pytest.raises(AssertionError, match="list of"):
        ex.check_quadtree_fn(lambda im, t, m: 3)
    with pytest.raises(AssertionError, match="raised"):
        ex.check_quadtree_fn(lambda im, t: quadtree(im, t))


def test_quadtree_fn_refuses_the_library():
    def library(im, t, m):
        tree = build_quadtree(im, t, min_size=m)
        return torch.stack([tree.x, tree.y, tree.x + tree.size, tree.y + tree.size], 1)

    with pytest.raises(ExerciseRefusal, match="Exercise 5"):
        ex.check_quadtree_fn(library)
    with pytest.raises(AssertionError, match="no function yet"):
        ex.check_quadtree_fn(None)
    assert build_quadtree(torch.zeros(3, 4, 4), 0.1).n_leaves == 1   # the library works again after


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


# --- exercise 3: the level-0 budget ------------------------------------------------------------

@pytest.fixture(scope="module")
def photo():
    return torch.rand(3, 224, 224, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("right", [7, np.int64(7), torch.tensor(7), 7.0])
def test_level0_budget_accepts_the_answer_in_any_number_type(right, photo):
    ex.check_level0_budget(right, photo)


@pytest.mark.parametrize("wrong, match", [
    (8, "corners alone exceed"),          # (s + 1)² ≤ 72 without room for a refinement
    (6, "not the largest"),
    (64, "corners alone exceed"),         # the number of corners, not the cells per side
    (0, "at least 1"),
    ("7", "whole number"),
    (7.5, "whole number"),
    (None, "no answer yet"),
])
def test_level0_budget_rejects_typical_slips_with_a_hint(wrong, match, photo):
    with pytest.raises(AssertionError, match=match):
        ex.check_level0_budget(wrong, photo)


# --- exercise 4: the budget for a target ρ -----------------------------------------------------

@pytest.fixture(scope="module")
def bumpy():
    """A 12 × 12 field whose ρ(n) is not monotone: 0.904 at n = 7, 0.889 at n = 9, 0.957 at n = 10."""
    from utils.occlusion import field_to_map

    gen = torch.Generator().manual_seed(3)
    field = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 14, 14, generator=gen), 3, 1)[0, 0]
    return field, field_to_map(field, (104, 104))


@pytest.mark.parametrize("right", [7, np.int32(7), torch.tensor([7])])
def test_smallest_lattice_accepts_the_first_crossing(right, bumpy):
    ex.check_smallest_lattice(right, *bumpy, target=0.895)


@pytest.mark.parametrize("wrong, match", [
    (10, "a smaller lattice already"),   # ρ(9) < target ≤ ρ(10): only n − 1 checked would accept it
    (8, "a smaller lattice already"),
    (6, "too small"),
    (49, "2 to 12 positions"),           # the passes n·n, not the side n
    (None, "no answer yet"),
])
def test_smallest_lattice_rejects_typical_slips_with_a_hint(wrong, match, bumpy):
    with pytest.raises(AssertionError, match=match):
        ex.check_smallest_lattice(wrong, *bumpy, target=0.895)


def search_down(field, reference, target):
    """The tempting search: walk down from the full lattice while ρ stays above the target."""
    from utils.metrics import spearman
    from utils.occlusion import field_to_map, replay_lattice

    def rho(m):
        return spearman(field_to_map(replay_lattice(field, start=m - 1, max_probes=m * m).field,
                                     tuple(reference.shape)), reference)

    n = min(field.shape)
    while n > 2 and rho(n - 1) >= target:
        n -= 1
    return n


def test_smallest_lattice_rejects_the_downward_search(bumpy):
    n = search_down(*bumpy, 0.895)
    assert n == 10
    with pytest.raises(AssertionError, match="not only the one just below"):
        ex.check_smallest_lattice(n, *bumpy, target=0.895)
