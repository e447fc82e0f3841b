"""The self-checks of Notebook 05 (the quadtree speed-up)'s exercises."""

from __future__ import annotations

import functools

import numpy as np
import torch

from .checks import _call, check_close, check_true, refusing

__all__ = ["check_quadtree_fn", "check_next_windows_fn", "check_ring_count", "check_exact_macs",
           "check_level0_budget", "check_smallest_lattice"]


Box = tuple[int, int, int, int]


def _tree_cases() -> list[tuple[torch.Tensor, float, int]]:
    """``(image, threshold, min_size)`` triples; each usual slip of the recursive split fails one."""
    gen = torch.Generator().manual_seed(3)
    flat = torch.zeros(3, 8, 8)
    colours = flat.clone()
    colours[0], colours[1] = 1.0, 0.25                    # each channel constant, the channels differ
    edge = flat.clone()
    edge[1, :, 4:] = 0.5                                  # one channel with a range of exactly 0.5
    spread = flat.clone()
    spread[:, :, 4:] = 0.3                                # every channel 0.3: none exceeds 0.5, their sum does
    lone = flat.clone()
    lone[2, 5:, 6:] = 0.6                                 # one channel exceeds 0.5 alone; the mean does not
    wide = torch.zeros(3, 8, 16)
    wide[:, 1:3, 9:11] = torch.rand(3, 2, 2, generator=gen) + 0.5   # detail in the top right only
    return [(flat, 0.1, 1), (colours, 0.1, 1), (edge, 0.5, 1), (spread, 0.5, 1), (lone, 0.5, 1),
            (torch.rand(3, 16, 16, generator=gen), 0.6, 1),
            (torch.rand(3, 8, 8, generator=gen), 0.0, 2), (torch.rand(3, 8, 8, generator=gen), 0.0, 3),
            (wide, 0.2, 1), (torch.rand(3, 13, 11, generator=gen), 0.5, 1),
            (torch.rand(3, 10, 6, generator=gen), 0.0, 4)]


_TREE_HINTS = {
    1: "the range is taken per channel (max − min inside each channel), not across channels.",
    2: "split only when a range is strictly LARGER than the threshold.",
    3: "one channel must exceed the threshold on its own: adding the channels' ranges splits blocks "
       "whose every channel is below it.",
    4: "one channel whose range exceeds the threshold is enough: do not average the channels' ranges.",
    "coarse": "you stop splitting one level early: a leaf may be as small as min_size.",
    "fine": "a leaf is smaller than min_size: split a block only while its quadrants are still at least "
            "min_size wide.",
    8: "this image is wider than it is tall: x is the column (the last axis), y the row.",
    9: "For sides that are not a power of two, start from the smallest power-of-two square that holds "
       "the image, as section 1 describes.",
}


def _as_boxes(name: str, value) -> list[Box]:
    """The student's leaves as a list of int 4-tuples, or an AssertionError with a hint."""
    if isinstance(value, torch.Tensor | np.ndarray):
        value = value.tolist()
    try:
        rows = [tuple(box) for box in value]
    except TypeError:
        raise AssertionError(f"{name}: return the leaves as a list of (x0, y0, x1, y1) boxes (or a (K, 4) "
                             f"tensor), got {type(value).__name__}.") from None
    boxes = []
    for box in rows:
        try:
            ints = tuple(int(v) for v in box)
        except (TypeError, ValueError):
            ints = ()
        if len(ints) != 4 or any(float(a) != b for a, b in zip(box, ints, strict=True)):
            raise AssertionError(f"{name}: each leaf is four whole pixel coordinates (x0, y0, x1, y1), "
                                 f"got {box!r}.")
        boxes.append(ints)
    return boxes


def _tree_problem(boxes: list[Box], want: set[Box], h: int, w: int) -> str | None:
    """What is wrong with a leaf list that is not ``want`` (the reference's leaves), if it can tell."""
    got = set(boxes)
    if len(got) != len(boxes):
        return "a leaf appears twice in your list: each block is either split or kept, once."
    if {(y0, x0, y1, x1) for x0, y0, x1, y1 in got} == want:
        return "x and y are swapped: a box is (x0, y0, x1, y1), and x is the column (the last axis)."
    if {(x0, y0, x1 + 1, y1 + 1) for x0, y0, x1, y1 in got} == want:
        return ("the box ends are exclusive: x1 and y1 are the first column and row after the leaf, not its "
                "last ones.")
    if any(x1 - x0 != y1 - y0 or x1 <= x0 for x0, y0, x1, y1 in got):
        return ("every leaf is a square block of the quadtree: a block that crosses the image border is "
                "split into quadrants, not cut at the border.")
    if any(x0 < 0 or y0 < 0 or x1 > w or y1 > h for x0, y0, x1, y1 in got):
        return ("a leaf sticks out of the image: a block that crosses the right or bottom border is never "
                "a leaf (it is split, even where its quadrants are smaller than min_size), and a block "
                "entirely outside is dropped.")
    cover = torch.zeros(h, w, dtype=torch.long)
    for x0, y0, x1, y1 in got:
        cover[y0:y1, x0:x1] += 1
    if bool((cover != 1).any()):
        odd = "" if _power_of_two(h) and _power_of_two(w) else " " + _TREE_HINTS[9]
        return (f"your leaves do not tile the image exactly once ({int((cover == 0).sum())} pixels uncovered, "
                f"{int((cover > 1).sum())} covered more than once): check where each of the four quadrants "
                f"starts, relative to its parent block's corner, and how wide it is.{odd}")
    return None


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def check_quadtree_fn(fn) -> None:
    """Check ``fn(image (C, H, W), threshold, min_size) -> leaves`` against
    :func:`utils.quadtree.build_quadtree`: the same set of ``(x0, y0, x1, y1)`` boxes (exclusive ends),
    in any order, on images chosen so that each usual slip answers one of them wrongly.

    The references are computed first; while ``fn`` runs, ``build_quadtree`` refuses (the exercise
    asks for the split itself). An exception inside ``fn`` becomes a hint.
    """
    from ...quadtree import build_quadtree

    name = "quadtree"
    cases = _tree_cases()

    def leaves(image: torch.Tensor, t: float, min_size: int) -> set[Box]:
        tree = build_quadtree(image, t, min_size=min_size)
        return {(x, y, x + s, y + s) for y, x, s in zip(tree.y.tolist(), tree.x.tolist(), tree.size.tolist(),
                                                        strict=True)}

    # the answer, and the trees of a split that stops one level early or goes one level too deep
    expected = [(leaves(im, t, m), leaves(im, t, 2 * m), {frozenset(leaves(im, t, k)) for k in range(1, m)})
                for im, t, m in cases]
    for i, ((image, t, min_size), (want, early, deep)) in enumerate(zip(cases, expected, strict=True)):
        with refusing("Exercise 5", build_quadtree):
            try:
                answer = _call(name, fn, image.clone(), t, min_size)
            except AssertionError:
                raise
            except RecursionError:
                raise AssertionError(f"{name}: your recursion never stops on a {tuple(image.shape)} image: a "
                                     "block of side 1 can never be split.") from None
            except Exception as e:  # a shape or type slip: a hint, not a traceback
                raise AssertionError(f"{name}: your function raised {type(e).__name__} ({e}) on a "
                                     f"{tuple(image.shape)} image; it takes a (C, H, W) tensor, a float and "
                                     "an int, and returns the leaves as (x0, y0, x1, y1) boxes.") from None
        boxes = _as_boxes(name, answer)
        if set(boxes) == want and len(boxes) == len(want):
            continue
        h, w = image.shape[1:]
        problem = _tree_problem(boxes, want, h, w)
        if problem is None and set(boxes) == early:
            problem = _TREE_HINTS["coarse"]
        if problem is None and frozenset(boxes) in deep:
            problem = _TREE_HINTS["fine"]
        if problem is None:
            problem = _TREE_HINTS.get(i, "compare each channel's own range (max − min inside the block) with "
                                         "the threshold, and split into the four quadrants until min_size.")
        raise AssertionError(f"{name}: wrong leaves on case {i} (a {h}×{w} image, threshold {t}, min_size "
                             f"{min_size}). {problem}")
    print(f"✓ {name}: correct")


def _window_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(map so far, candidate windows) pairs; each usual slip of the refinement step fails one."""
    from ...hierarchical import hipe_windows

    gen = torch.Generator().manual_seed(5)
    win8 = hipe_windows(16, 16, 8)                 # 2-px cells, 81 windows of a 16 × 16 map
    smooth = torch.rand(16, 16, generator=gen)
    edge = torch.zeros(16, 16)
    edge[6, 10] = 1.0                              # one hot pixel: which windows contain it?
    two = torch.zeros(16, 16)
    two[2:4, 2:4], two[12:14, 12:14] = 0.4, 1.0    # a weak and a strong spot: the weak one is not kept
    wide = torch.rand(16, 16, generator=gen) * 0.1
    wide[4:12, 4:12] += 0.5                        # a broad kept region, ordered by each window's peak
    odd = torch.rand(13, 11, generator=gen)
    lifted = torch.full((16, 16), 0.5)
    lifted[3, 12], lifted[11, 4] = 1.0, 0.6        # min 0.5, max 1: half the max is not the midpoint
    return [(edge, win8), (two, win8), (wide, win8), (torch.zeros(16, 16), win8),
            (odd - 0.5, hipe_windows(13, 11, 4)), (smooth, win8), (lifted, win8)]


_WINDOW_HINTS = {
    0: "a window (x0, y0, x1, y1) covers rows y0 … y1 − 1 and columns x0 … x1 − 1: the ends are exclusive, "
       "and x is the column.",
    1: "keep a window when its most salient pixel reaches the midpoint of the map's range (halfway "
       "between its smallest and largest value), not the mean of the map.",
    2: "order the kept windows by their largest value inside, most salient first.",
    3: "a map with nothing positive has nothing to refine: keep no window.",
    4: "only positive saliency is worth refining, even when it reaches the midpoint.",
    6: "on this map the smallest value is far from 0: the threshold sits halfway between the map's "
       "smallest and largest values.",
}


def check_next_windows_fn(fn) -> None:
    """Check ``fn(saliency (H, W), windows (K, 4)) -> indices`` against
    :func:`utils.hierarchical.select_windows` (midrange rule); the library refuses while ``fn`` runs."""
    from ... import hierarchical

    name = "refinement step"
    cases = _window_cases()
    expected = [hierarchical.select_windows(m, w)[0].tolist() for m, w in cases]
    for i, ((m, w), want) in enumerate(zip(cases, expected, strict=True)):
        with refusing("Exercise 6", hierarchical.select_windows, hierarchical.window_maxima,
                      hierarchical.hierarchical_occlusion):
            try:
                got = _call(name, fn, m.clone(), w.clone())
            except AssertionError:
                raise
            except Exception as e:
                raise AssertionError(f"{name}: your function raised {type(e).__name__} ({e}) on a "
                                     f"{tuple(m.shape)} map with {w.shape[0]} windows; it takes the map and the "
                                     "(K, 4) long boxes and returns window indices.") from None
        try:
            got = [int(v) for v in (got.flatten().tolist() if isinstance(got, torch.Tensor) else got)]
        except (TypeError, ValueError):
            raise AssertionError(f"{name}: return a list (or 1-d tensor) of window indices, got {got!r}.") from None
        if got != want:
            if sorted(got) == sorted(want):
                raise AssertionError(f"{name}: the right windows in the wrong order on case {i}. "
                                     + _WINDOW_HINTS[2])
            raise AssertionError(f"{name}: wrong windows on case {i}. " + _WINDOW_HINTS.get(
                i, "keep the windows whose box holds a positive pixel at or above the midpoint of the map's range."))
    print(f"✓ {name}: correct")


def check_ring_count(r, tree, m: int) -> None:
    """Exercise 1: ``r``, the number of ring outputs of an ``m × m`` convolution over ``tree``; the
    reference is :func:`utils.quadtree.conv_macs`'s ``"ring"``, computed here."""
    from ...quadtree import conv_macs

    check_close("ring outputs R", r, conv_macs(tree, m, 3, 3)["ring"],
                hint="R counts the outputs whose window reads more than one leaf or reaches past the "
                     "image border into the padding: start from all the outputs and take away those "
                     "whose window stays inside one leaf (how far does an M × M window reach?).")


def check_exact_macs(exact, ratio, tree, m: int, c_in: int, c_out: int) -> None:
    """Exercise 2: ``exact``, the multiply-adds of the exact quadtree convolution, and ``ratio``, the
    dense convolution's over it; the references come from :func:`utils.quadtree.conv_macs`."""
    from ...quadtree import conv_macs

    macs = conv_macs(tree, m, c_in, c_out)
    check_close("exact MACs", exact, macs["quadtree_exact"],
                hint="the ring outputs each need a full window on every channel pair; each leaf's "
                     "interior needs one product per channel pair. Count the ring with ring_mask for "
                     "this M.")
    check_close("saving over the dense convolution", ratio, macs["dense"] / macs["quadtree_exact"],
                hint="the saving is the dense convolution's multiply-adds (a full window at every "
                     "output) over your exact count, not the other way round.")
    check_true("the exact saving is below 2× here", ratio < 2)


def _whole_number(name: str, value, what: str) -> int:
    """``value`` as an int, or an AssertionError with a hint (``None``: not answered yet)."""
    if value is None:
        raise AssertionError(f"{name}: no answer yet — set {what} in the exercise cell.")
    if isinstance(value, torch.Tensor) and value.numel() == 1 or isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) \
            or float(value) != int(value):
        raise AssertionError(f"{name}: {what} is a whole number, got {value!r}.")
    return int(value)


@functools.lru_cache(maxsize=2)
def _level0_fits(shape: tuple[int, ...], data: bytes) -> tuple[bool, ...]:
    """Entry ``s``: whether ``start=s`` leaves room for a refinement level of
    :func:`utils.occlusion.quadtree_occlusion` (default budget, a linear toy model, no network) on
    the image of ``shape`` whose float32 bytes are ``data``; up to the first ``s`` whose level-0
    corners alone exceed the budget (entry 0: no grid)."""
    from ...models import toy_linear_classifier
    from ...occlusion import quadtree_occlusion

    image = torch.frombuffer(bytearray(data), dtype=torch.float32).reshape(shape)
    toy = toy_linear_classifier(*shape[1:])
    fits = [False]
    while True:
        try:
            fits.append(int(quadtree_occlusion(toy, image, 0, start=len(fits)).levels.max()) >= 1)
        except ValueError:
            return tuple(fits)


def check_level0_budget(start, image: torch.Tensor) -> None:
    """Exercise 3: ``start``, the largest level-0 grid (cells per side) of
    :func:`utils.occlusion.quadtree_occlusion` whose default budget still leaves room for one
    refinement level on ``image`` ``(3, H, W)``. The reference is found here by running the sampler
    with a linear toy model (no network) at every ``start`` until the budget refuses one.
    """
    name = "largest start"
    start = _whole_number(name, start, "start")
    if start < 1:
        raise AssertionError(f"{name}: start counts the level-0 cells per side: at least 1.")
    image = image.detach().cpu().float()
    fits = _level0_fits(tuple(image.shape), image.numpy().tobytes())
    best = max(k for k, ok in enumerate(fits) if ok)
    if start > best:
        why = ("the level-0 corners alone exceed the budget of passes" if start >= len(fits) else
               "the level-0 corners fit, but no refinement level is left in the budget")
        raise AssertionError(f"{name}: with this start {why}; try a smaller one.")
    if start < best:
        raise AssertionError(f"{name}: a refinement level fits with this start, but it is not the largest "
                             "one; try a larger one.")
    print(f"✓ {name}: correct (its corners and one refinement level fit the budget; start + 1 does not)")


def check_smallest_lattice(n, field: torch.Tensor, reference: torch.Tensor, *, target: float = 0.9) -> None:
    """Exercise 4: ``n``, the smallest uniform ``n × n`` lattice (``start=n − 1``, ``max_probes=n·n``)
    whose map, replayed on the measured ``field`` ``(Py, Px)``, reaches Spearman ρ ≥ ``target``
    against ``reference`` (the sliding window's map, ``(H, W)``).

    Every smaller lattice is replayed here, not only ``n − 1``: ρ need not grow with ``n`` (a lattice
    can fall between the peaks that a smaller one hits), so the answer is the first crossing.
    """
    from ...metrics import spearman
    from ...occlusion import field_to_map, replay_lattice

    name = "smallest lattice"
    n = _whole_number(name, n, "n")
    largest = min(field.shape)
    if not 2 <= n <= largest:
        raise AssertionError(f"{name}: a uniform lattice has 2 to {largest} positions per side (start=n − 1 "
                             f"cells between them); got n = {n}.")

    def rho(m: int) -> float:
        s = replay_lattice(field, start=m - 1, max_probes=m * m)
        return spearman(field_to_map(s.field, tuple(reference.shape)), reference)

    if rho(n) < target:
        raise AssertionError(f"{name}: the map of this lattice does not reach ρ ≥ {target} yet; it is too small.")
    if any(rho(m) >= target for m in range(2, n)):
        raise AssertionError(f"{name}: a smaller lattice already reaches ρ ≥ {target}. ρ need not grow with n: "
                             "check every smaller lattice, not only the one just below yours.")
    print(f"✓ {name}: correct (ρ ≥ {target} at n, below it at every smaller lattice)")
