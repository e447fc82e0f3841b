"""Figures for the notebooks. No computation of its own beyond display scaling.

Every function draws into matplotlib axes and returns the figure (or axes), so a notebook cell can
end with ``;`` and nbval compares no figure text.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.collections import LineCollection
from matplotlib.patches import Rectangle

from .images import to_numpy
from .quadtree import QuadTree

__all__ = ["normalise_map", "show_image", "show_map", "overlay", "draw_box", "draw_leaves", "image_grid",
           "saliency_row"]


def normalise_map(saliency: torch.Tensor | np.ndarray, *, percentile: float = 99.0) -> np.ndarray:
    """Scale a map ``(H, W)`` to [0, 1] for display, clipping at the given percentile.

    Clipping at the 99th percentile keeps a few extreme gradients from washing the picture out.
    """
    a = saliency.detach().cpu().numpy() if isinstance(saliency, torch.Tensor) else np.asarray(saliency)
    if a.ndim != 2:
        raise ValueError(f"A saliency map must be (H, W), got shape {a.shape}.")
    a = a.astype(np.float64)
    lo, hi = a.min(), np.percentile(a, percentile)
    if hi <= lo:
        return np.zeros_like(a)
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0)


def _ax(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def show_image(image: torch.Tensor, ax=None, title: str | None = None):
    """Show an image ``(3, H, W)`` in [0, 1]."""
    ax = _ax(ax)
    ax.imshow(to_numpy(image))
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def show_map(saliency: torch.Tensor, ax=None, title: str | None = None, cmap: str = "gray",
             percentile: float = 99.0):
    """Show a saliency map ``(H, W)``, scaled by :func:`normalise_map` (bright = salient)."""
    ax = _ax(ax)
    ax.imshow(normalise_map(saliency, percentile=percentile), cmap=cmap, vmin=0, vmax=1)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def overlay(image: torch.Tensor, saliency: torch.Tensor, ax=None, title: str | None = None,
            alpha: float = 0.55, cmap: str = "inferno", percentile: float = 99.0):
    """Show a saliency map over a dimmed copy of the image."""
    ax = _ax(ax)
    ax.imshow(to_numpy(image) * 0.6)
    ax.imshow(normalise_map(saliency, percentile=percentile), cmap=cmap, alpha=alpha, vmin=0, vmax=1)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def draw_box(ax, box: Sequence[int], color: str = "lime", label: str | None = None, lw: float = 2):
    """Draw a box ``(x0, y0, x1, y1)`` (exclusive ends, pixel coordinates) on ``ax``."""
    x0, y0, x1, y1 = box
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=color,
                           linewidth=lw, label=label))
    return ax


def image_grid(n: int, cols: int, size: float = 2.4):
    """A grid of ``n`` empty axes (extra axes hidden); returns ``(fig, axes_list)``."""
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.axis("off")
    for ax in flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, flat[:n]


def saliency_row(images: Sequence[torch.Tensor], maps: Sequence[torch.Tensor],
                 titles: Sequence[str] | None = None, boxes: Sequence[Sequence[int]] | None = None,
                 size: float = 2.2):
    """Two rows: images (with optional boxes) on top, their saliency maps below."""
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(n * size, 2 * size), squeeze=False)
    for i in range(n):
        show_image(images[i], axes[0, i], titles[i] if titles else None)
        show_map(maps[i], axes[1, i])
        if boxes is not None:
            draw_box(axes[0, i], boxes[i])
            draw_box(axes[1, i], boxes[i])
    fig.tight_layout()
    return fig


def draw_leaves(ax, leaves: QuadTree | torch.Tensor, image: torch.Tensor | None = None, *,
                color: str = "yellow", lw: float = 0.4, title: str | None = None,
                reconstruct: bool = False):
    """Draw leaf outlines on ``ax``, optionally over ``image`` ``(3, H, W)``.

    Args:
        leaves: a :class:`utils.quadtree.QuadTree`, or a ``(K, 4)`` tensor of boxes ``(x0, y0, x1, y1)``, exclusive
            ends (e.g. ``utils.occlusion.QuadtreeOcclusion.leaves``).
        image: drawn underneath (or, with ``reconstruct=True`` and a tree, the tree's
            piecewise-constant reconstruction of it).
    """
    if isinstance(leaves, QuadTree):
        if reconstruct:
            image = leaves.reconstruct(image)
        boxes = leaves.boxes
    else:
        boxes = torch.as_tensor(leaves).reshape(-1, 4)
    if image is not None:
        shown = to_numpy(image.clamp(0, 1)) if image.shape[0] == 3 else image[0].cpu().numpy()
        ax.imshow(shown, cmap=None if image.shape[0] == 3 else "gray")
    b = boxes.cpu().numpy().astype(float)
    x0, y0, x1, y1 = (b[:, k] - 0.5 for k in range(4))  # pixel edges, not centres
    segs = np.concatenate([np.stack([np.stack([x0, y0], 1), np.stack([x1, y0], 1)], 1),
                           np.stack([np.stack([x0, y0], 1), np.stack([x0, y1], 1)], 1),
                           np.stack([np.stack([x1, y0], 1), np.stack([x1, y1], 1)], 1),
                           np.stack([np.stack([x0, y1], 1), np.stack([x1, y1], 1)], 1)])
    ax.add_collection(LineCollection(segs, colors=color, linewidths=lw))
    if image is None:
        ax.set_xlim(float(x0.min()), float(x1.max()))
        ax.set_ylim(float(y1.max()), float(y0.min()))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax
