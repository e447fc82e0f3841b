"""Saliency-aware cropping: a thumbnail window that keeps the object (an application of saliency maps).

A thumbnail of fixed shape (a square, a 16:9 banner) must leave part of a photograph out. Three ways
to place the window, each a function here:

* :func:`max_mass_window` — the window that keeps the largest share of a saliency map's mass
  (exhaustive over every position, with an integral image);
* :func:`centred_window` — the window in the middle of the image, whatever it shows (the baseline);
* :func:`window_around` — the window centred on a given box (e.g. the GraphCut box of
  :func:`utils.localisation.localise`), moved inside the image where it would stick out.

:func:`window_size` gives the window of an aspect ratio and an area share; :func:`box_survival`
scores a window by the share of the object's ground-truth box that it keeps (1 = the whole object
survives the crop).

Windows and boxes are ``(x0, y0, x1, y1)`` ints in pixels, ``x1``/``y1`` exclusive.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ._validation import check_box, check_fraction
from .images import Box

__all__ = ["window_size", "centred_window", "max_mass_window", "window_around", "box_survival"]


def _check_size(height: int, width: int) -> None:
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be a positive int (the image's size in pixels), got {v!r}.")


def _check_window(size: tuple[int, int], height: int, width: int) -> tuple[int, int]:
    _check_size(height, width)
    if len(size) != 2:
        raise ValueError(f"size must be (window_width, window_height), got {size!r}.")
    cw, ch = (int(v) for v in size)
    if not (1 <= cw <= width and 1 <= ch <= height):
        raise ValueError(f"window {cw}×{ch} does not fit a {width}×{height} image; use window_size().")
    return cw, ch


def window_size(height: int, width: int, aspect: float, area: float = 1.0) -> tuple[int, int]:
    """``(window_width, window_height)`` of aspect ratio ``aspect`` (width / height: 1 = square,
    16/9 = a banner), covering at most the share ``area`` of the image and fitting inside it.

    With ``area = 1`` it is the largest window of that aspect inside the image (224 × 126 for 16:9
    in a 224² photograph); a square inside a square image needs ``area < 1`` to crop anything.
    """
    _check_size(height, width)
    if not (isinstance(aspect, int | float) and aspect > 0 and np.isfinite(aspect)):
        raise ValueError(f"aspect must be a positive number (width / height, e.g. 16 / 9), got {aspect!r}.")
    area = check_fraction(area, "area", low=1e-9, inclusive=True)
    ch = min(height, width / aspect, np.sqrt(area * height * width / aspect))
    cw = min(width, ch * aspect)
    return max(1, round(cw)), max(1, round(cw / aspect))


def centred_window(height: int, width: int, size: tuple[int, int]) -> Box:
    """The window of ``size = (w, h)`` in the middle of a ``height × width`` image."""
    cw, ch = _check_window(size, height, width)
    x0, y0 = (width - cw) // 2, (height - ch) // 2
    return Box(x0, y0, x0 + cw, y0 + ch)


def max_mass_window(saliency: torch.Tensor | np.ndarray, size: tuple[int, int]) -> Box:
    """The window of ``size = (w, h)`` holding the largest sum of ``saliency`` (``(H, W)``, >= 0).

    Every position is scored with an integral image (float64); among windows of equal mass the
    top-left-most is returned.

    Raises:
        ValueError: a map that is not ``(H, W)``, not finite, or negative somewhere.
    """
    s = saliency.detach().cpu().double().numpy() if isinstance(saliency, torch.Tensor) else np.asarray(
        saliency, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"saliency must be one map (H, W), got shape {s.shape}; pass maps[i].")
    if not np.isfinite(s).all() or (s < 0).any():
        raise ValueError("saliency must be finite and non-negative (a saliency map, e.g. |gradient|).")
    h, w = s.shape
    cw, ch = _check_window(size, h, w)
    integral = np.zeros((h + 1, w + 1))
    integral[1:, 1:] = s.cumsum(0).cumsum(1)
    mass = integral[ch:, cw:] - integral[:-ch, cw:] - integral[ch:, :-cw] + integral[:-ch, :-cw]
    y0, x0 = np.unravel_index(int(np.argmax(mass)), mass.shape)
    return Box(int(x0), int(y0), int(x0) + cw, int(y0) + ch)


def window_around(box: Sequence[float], height: int, width: int, size: tuple[int, int]) -> Box:
    """The window of ``size = (w, h)`` centred on ``box``'s centre, shifted inside the image where it
    would stick out (a box larger than the window is cut on both sides equally)."""
    cw, ch = _check_window(size, height, width)
    x0, y0, x1, y1 = check_box(box, "box")
    left = int(np.clip(round((x0 + x1 - cw) / 2), 0, width - cw))
    top = int(np.clip(round((y0 + y1 - ch) / 2), 0, height - ch))
    return Box(left, top, left + cw, top + ch)


def box_survival(window: Sequence[float], box: Sequence[float]) -> float:
    """Share of ``box``'s area inside ``window``, in [0, 1] (1 = the whole object is kept)."""
    wx0, wy0, wx1, wy1 = check_box(window, "window")
    bx0, by0, bx1, by1 = check_box(box, "box")
    inter = max(0.0, min(wx1, bx1) - max(wx0, bx0)) * max(0.0, min(wy1, by1) - max(wy0, by0))
    return inter / ((bx1 - bx0) * (by1 - by0))
