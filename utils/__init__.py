"""saliency-course helpers: one module per concept, imported by the notebooks.

Modules: ``models`` (offline classifiers), ``images`` (loading, samples), ``saliency``
(gradient maps), ``plotting`` (figures), ``exercises`` (self-check cells), ``env`` (environment
report). See the README for the course map.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["seed_everything", "__version__"]
__version__ = "0.1.0"


def seed_everything(seed: int = 0, *, deterministic: bool = True) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) so that a notebook gives the same numbers.

    With ``deterministic=True`` PyTorch is also asked for deterministic algorithms where it has
    them (``warn_only``: an operation without one warns instead of failing).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        if torch.backends.cudnn.is_available():
            torch.backends.cudnn.benchmark = False
