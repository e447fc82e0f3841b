"""saliency-course helpers: one module per concept, imported by the notebooks.

The package is in layers; a module imports only from its own layer or the layers below it, and
``make lint`` checks that with import-linter (the contracts are in ``pyproject.toml``; no cycles):

* **core** — ``_validation`` (argument checks shared by every function, errors that say what to
  change: the one eval-mode guard, the ``Target`` type); ``models`` (the offline classifiers:
  images in [0, 1] → scores ``S_c``); ``images`` (loading images, the sample photographs, the one
  rectangle convention ``Box (x0, y0, x1, y1)`` with exclusive ends, the one blur);
* **method** — ``saliency`` (gradient maps and attributions: gradient, SmoothGrad, gradient ×
  input, integrated gradients, guided backprop, DeconvNet, Grad-CAM; ``occlusion`` re-exported);
  ``occlusion`` (the sliding window, its lattice field, coarse-to-fine sampling of it, the
  multiply-adds of one probe); ``hierarchical`` (hierarchical perturbation, HiPe: cells that halve
  where occluding matters); ``rise`` (RISE, random masks); ``adversarial`` (fooling images);
  ``class_model`` (class-model visualisation: parameterisation, transforms, objective; presets);
  ``localisation`` (saliency → GraphCut → box, IoU and baselines); ``ilsvrc`` (the paper's ILSVRC
  evaluation, ``python -m utils.ilsvrc evaluate``); ``cropping`` (saliency-aware thumbnails);
  ``quadtree`` (the image quadtree, the exact leaf convolution, its cost model); ``metrics``
  (re-exports the measures from ``faithfulness`` (deletion, insertion), ``box_measures``
  (pointing game, mass in box), ``sanity`` (model randomisation), ``stats`` (Spearman, bootstrap)
  and ``cost`` (passes, seconds, the results table));
* **pictures** — ``plotting``, ``widgets`` (figures, quadtree leaves included, and interactive
  explorers; the method modules draw nothing);
* **course** — ``utils.course``: the course machinery (self-checks, the student edition and its
  leak scan, grading, report, timing, the network guard, environment report). The method never
  imports it.

Here: :func:`seed_everything` (seeds only) and :func:`deterministic` (opt-in deterministic
algorithms, as a context manager). See the README for the course map.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["seed_everything", "deterministic", "__version__"]
__version__ = "0.1.0"


def seed_everything(seed: int = 0) -> None:
    """Seed Python's ``random``, NumPy and PyTorch (CPU and every CUDA device).

    Only seeds: it changes no other global setting. For bit-reproducible GPU runs, also compute
    inside :func:`deterministic`.

    Raises:
        ValueError: ``seed`` is not a non-negative int.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


@contextmanager
def deterministic(*, warn_only: bool = True) -> Iterator[None]:
    """Context manager: inside it, PyTorch uses deterministic algorithms where it has them.

    Sets ``torch.use_deterministic_algorithms(True, warn_only=warn_only)`` (an operation without a
    deterministic version warns, or raises when ``warn_only=False``) and cuDNN's
    ``deterministic=True, benchmark=False``; the previous settings are restored on exit, also when
    the body raises. On the CPU the course's computations are deterministic anyway; this matters
    on a GPU.
    """
    previous = (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=warn_only)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[2], previous[3]
