"""The self-checks of Notebook 01 (saliency theory)'s exercises."""

from __future__ import annotations

import torch

from .checks import _as_tensor, _call, _diagnose

__all__ = ["check_probability_gradient_fn"]

def check_probability_gradient_fn(fn) -> None:
    """Check ``fn(p (K,), score_grads (K, D), c) -> (D,)``, the chain rule through the softmax."""
    name = "∂P_c/∂I from the score gradients"
    gen = torch.Generator().manual_seed(1)
    s = torch.randn(5, generator=gen) * 2
    grads = torch.randn(5, 7, generator=gen)
    p, c = s.softmax(0), 2
    out = _as_tensor(name, _call(name, fn, p.clone(), grads.clone(), c), (7,))
    expected = p[c] * (grads[c] - (p[:, None] * grads).sum(0))
    wrong = {
        "the factor P_c in front of the bracket is missing.": grads[c] - (p[:, None] * grads).sum(0),
        "the sum over k of P_k ∂S_k/∂I is missing (it is the competition term).": p[c] * grads[c],
        "the sign is reversed: P_c (∂S_c/∂I − Σ_k P_k ∂S_k/∂I).": -expected,
    }
    _diagnose(name, out, expected, 1e-5, wrong, "∂P_c/∂I = P_c (∂S_c/∂I − Σ_k P_k ∂S_k/∂I).")
