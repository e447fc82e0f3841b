"""The self-checks of Notebook 05 (the quadtree speed-up)'s exercises."""

from __future__ import annotations

import torch

from .checks import _call

__all__ = ["check_split_fn"]

def check_split_fn(fn) -> None:
    """Check ``fn(block (C, s, s), threshold) -> bool`` against :func:`utils.quadtree.build_quadtree`."""
    from ...quadtree import build_quadtree

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
