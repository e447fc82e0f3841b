"""What a saliency method costs: forward and backward passes, seconds per image, and a table.

* :func:`count_passes` and :func:`run_methods` — forward/backward passes and seconds per image
  (one wall-clock timing each; compare methods with :mod:`utils.course.timing` instead).
* :func:`format_table` — rows of results (dicts) as aligned plain text.

Re-exported by :mod:`utils.metrics`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ._validation import MapFn, Target, check_images, model_device, to_model

__all__ = ["PassCount", "count_passes", "MethodRun", "run_methods", "format_table"]


@dataclass
class PassCount:
    """Images sent through the model's forward and backward passes inside :func:`count_passes`."""

    forward: int = 0
    backward: int = 0


@contextmanager
def count_passes(model: nn.Module) -> Iterator[PassCount]:
    """Count the images that go forward through ``model`` and the images whose score receives a
    gradient (backward passes). The hooks are removed on exit, also on error."""
    count = PassCount()

    def before(module, inputs):
        count.forward += int(inputs[0].shape[0])

    def after(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.requires_grad:
            def on_grad(grad):
                count.backward += int(grad.shape[0])
            output.register_hook(on_grad)

    handles = [model.register_forward_pre_hook(before), model.register_forward_hook(after)]
    try:
        yield count
    finally:
        for h in handles:
            h.remove()


@dataclass(frozen=True)
class MethodRun:
    """One method's maps for a batch and what they cost (per image)."""

    maps: torch.Tensor
    seconds: float
    forward: float
    backward: float


def run_methods(methods: dict[str, MapFn], model: nn.Module, images: torch.Tensor,
                target: Target = None) -> dict[str, MethodRun]:
    """Compute each method's maps once, timing it and counting its passes.

    Returns:
        ``{name: MethodRun(maps (N, H, W) on the CPU, seconds per image, forward passes per
        image, backward passes per image)}``. Seconds are wall-clock and vary between runs.
    """
    batch, _ = check_images(images)
    dev = model_device(model)
    x = to_model(batch, model, dev)
    n = x.shape[0]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    runs = {}
    for name, fn in methods.items():
        with count_passes(model) as c:
            sync()
            t0 = time.perf_counter()
            maps = fn(model, x, target)
            sync()
            seconds = time.perf_counter() - t0
        runs[name] = MethodRun(maps.detach().cpu(), seconds / n, c.forward / n, c.backward / n)
    return runs


def format_table(rows: list[dict[str, object]], *, digits: int = 2) -> str:
    """A plain-text table of ``rows`` (dicts with the same keys); floats rounded to ``digits``."""
    if not rows:
        return ""
    keys = list(rows[0])

    def fmt(v: object) -> str:
        if isinstance(v, (float, np.floating)):
            return f"{v:.{digits}f}"
        return str(v)

    cells = [[fmt(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[j]) for c in cells)) for j, k in enumerate(keys)]
    lines = ["  ".join(k.ljust(widths[0]) if j == 0 else k.rjust(widths[j])
                       for j, k in enumerate(keys))]
    for c in cells:
        lines.append("  ".join(v.ljust(widths[0]) if j == 0 else v.rjust(widths[j])
                               for j, v in enumerate(c)))
    return "\n".join(lines)
