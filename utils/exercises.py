"""Self-check helpers for the notebooks' exercises (in the spirit of CS231n's ``rel_error``).

A self-check cell calls one of these on the student's answer; it prints a short verdict and raises
``AssertionError`` with a hint when the answer is wrong, so a notebook run fails loudly.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["rel_error", "check_close", "check_true"]


def rel_error(x, y) -> float:
    """Maximum relative error ``max |x − y| / max(1e-8, |x| + |y|)`` (CS231n's definition)."""
    x = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=float)
    y = y.detach().cpu().double().numpy() if isinstance(y, torch.Tensor) else np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"Shapes differ: {x.shape} vs {y.shape}.")
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def check_close(name: str, value, expected, *, tol: float = 1e-5, hint: str = "") -> None:
    """Assert that ``value`` matches ``expected`` to relative error ``tol``; print a verdict."""
    if value is None:
        raise AssertionError(f"{name}: no answer yet — replace the None in the exercise cell.")
    err = rel_error(value, expected)
    if err > tol:
        raise AssertionError(f"{name}: relative error {err:.2e} > {tol:.0e}. {hint}".strip())
    print(f"✓ {name}: correct (relative error below {tol:.0e})")


def check_true(name: str, condition: bool, *, hint: str = "") -> None:
    """Assert a condition about the student's answer; print a verdict."""
    if not bool(condition):
        raise AssertionError(f"{name}: not yet. {hint}".strip())
    print(f"✓ {name}: correct")
