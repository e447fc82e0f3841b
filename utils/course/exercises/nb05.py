"""The self-checks of Notebook 05 (the quadtree speed-up)'s exercises."""

from __future__ import annotations

import torch

from .checks import _call, check_close, check_true, refusing

__all__ = ["check_split_fn", "check_next_windows_fn", "check_ring_count", "check_exact_macs"]


def _split_cases() -> list[tuple[torch.Tensor, float]]:
    """Blocks chosen so that each usual slip answers one of them wrongly."""
    gen = torch.Generator().manual_seed(3)
    flat = torch.zeros(3, 4, 4)
    colours = flat.clone()
    colours[0], colours[1] = 1.0, 0.0   # each channel constant, channels differ: no split
    edge = flat.clone()
    edge[1, :, 2:] = 0.5                # one channel with range exactly 0.5
    spread = flat.clone()
    spread[:, :, 2:] = 0.3              # every channel has range 0.3: none exceeds 0.5, their sum does
    odd = torch.rand(3, 5, 5, generator=gen)
    return [(flat, 0.1), (colours, 0.1), (edge, 0.5), (edge, 0.4), (edge, 0.2),
            (torch.rand(3, 8, 8, generator=gen) * 0.3, 0.25), (torch.rand(3, 8, 8, generator=gen), 0.9),
            (spread, 0.5), (odd, 0.5)]


_SPLIT_HINTS = {
    1: "the range is taken per channel (max − min inside each channel), not across channels.",
    2: "split only when the range is strictly LARGER than the threshold.",
    3: "one channel whose range exceeds the threshold is enough: do not average the channels' ranges.",
    7: "one channel must exceed the threshold on its own: adding the channels' ranges splits blocks "
       "whose every channel is below it.",
}


def check_split_fn(fn) -> None:
    """Check ``fn(block (C, s, s), threshold) -> bool`` against :func:`utils.quadtree.build_quadtree`.

    The reference answers are computed first; while ``fn`` runs, ``build_quadtree`` refuses (the
    exercise asks for the rule itself). An exception inside ``fn`` becomes a hint.
    """
    from ...quadtree import build_quadtree

    name = "quadtree split rule"
    cases = _split_cases()
    expected = [build_quadtree(block, t).n_leaves > 1 for block, t in cases]
    for i, ((block, t), want) in enumerate(zip(cases, expected, strict=True)):
        with refusing("Exercise 5", build_quadtree):
            try:
                answer = _call(name, fn, block.clone(), t)
            except AssertionError:
                raise
            except Exception as e:  # a shape or type slip: a hint, not a traceback
                raise AssertionError(f"{name}: your function raised {type(e).__name__} ({e}) on a "
                                     f"{tuple(block.shape)} block; it takes a (C, s, s) tensor and a float "
                                     "and returns True or False.") from None
        if not isinstance(answer, bool | torch.Tensor) or (isinstance(answer, torch.Tensor) and answer.numel() != 1):
            raise AssertionError(f"{name}: return one True or False, got {answer!r}.")
        if bool(answer) != want:
            raise AssertionError(f"{name}: wrong on case {i}. " + _SPLIT_HINTS.get(
                i, "compare each channel's own range (max − min inside the block) with the threshold."))
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
                hint="R counts the outputs whose window reads more than one leaf: start from all the "
                     "outputs and take away what stays inside each leaf (how far does an M × M window "
                     "reach?).")


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
