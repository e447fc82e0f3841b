"""Notebook 01's self-checks: right answers written in other ways accepted, typical wrong answers
rejected with a hint (an ``AssertionError``)."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from utils.course import exercises as ex
from utils.models import toy_linear_classifier


def _right(p, g, c):
    return p[c] * (g[c] - (p[:, None] * g).sum(0))


def test_probability_gradient_right_answers():
    ex.check_probability_gradient_fn(_right)
    ex.check_probability_gradient_fn(lambda p, g, c: p[c] * g[c] - p[c] * (p @ g))   # matrix product
    ex.check_probability_gradient_fn(                                               # numpy, float64
        lambda p, g, c: torch.from_numpy(p.double().numpy()[c] * (g.double().numpy()[c]
                                         - p.double().numpy() @ g.double().numpy())))
    ex.check_probability_gradient_fn(                                               # the Jacobian row
        lambda p, g, c: (p[c] * (torch.eye(len(p))[c] - p)) @ g)


@pytest.mark.parametrize("fn, match", [
    (lambda p, g, c: g[c] - (p[:, None] * g).sum(0), "factor P_c"),
    (lambda p, g, c: p[c] * g[c], "competition"),
    (lambda p, g, c: p[c] * (1 - p[c]) * g[c], "other classes"),             # the diagonal term only
    (lambda p, g, c: -_right(p, g, c), "sign"),
    (lambda p, g, c: p[c] * (g[c] - g.mean(0)), "does not match"),
    (lambda p, g, c: None, "returned None"),
    (lambda p, g, c: _right(p, g, c)[None], "shape"),
])
def test_probability_gradient_wrong_answers(fn, match):
    with pytest.raises(AssertionError, match=match):
        ex.check_probability_gradient_fn(fn)


class _Channels(torch.nn.Module):
    """A toy classifier whose gradient channels are equal, proportional, or different patterns."""

    def __init__(self, kind: str):
        super().__init__()
        base = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
        other = torch.randn(3, 6, 5, generator=torch.Generator().manual_seed(1))
        w = {"equal": base.expand(3, 6, 5), "scaled": base * torch.tensor([1.0, 2.0, -0.5]).view(3, 1, 1),
             "pattern": other}[kind]
        self.w = torch.nn.Parameter(w.reshape(1, -1).clone(), requires_grad=False)
        self.training = False

    def forward(self, x):
        return x.flatten(1) @ self.w.T


def _photo(target=0):
    return SimpleNamespace(image=torch.full((3, 6, 5), 0.5), target=target)


@pytest.mark.parametrize("kind, letter", [("equal", "a"), ("scaled", "b"), ("pattern", "c")])
def test_grayscale_right_answers(kind, letter):
    model, photo = _Channels(kind), _photo()
    ex.check_grayscale_gradient(kind == "equal", letter, model, photo)
    ex.check_grayscale_gradient(np.bool_(kind == "equal"), f"({letter.upper()})", model, photo)


@pytest.mark.parametrize("kind, equal, letter, match", [
    ("pattern", True, "c", "channels equal"),          # wrong measurement
    ("pattern", False, "a", "own computation"),
    ("pattern", False, "b", "correlation"),
    ("scaled", False, "c", "re-read"),
    ("pattern", False, "d", "one letter"),
    ("pattern", None, None, "no answer yet"),
])
def test_grayscale_wrong_answers(kind, equal, letter, match):
    with pytest.raises(AssertionError, match=match):
        ex.check_grayscale_gradient(equal, letter, _Channels(kind), _photo())


def test_grayscale_on_toy_classifier():
    toy = toy_linear_classifier()
    ex.check_grayscale_gradient(False, "c", toy, _photo(1))


# --- Exercise 1: the softmax Jacobian (reference computed in the checker) ------------------------

def test_softmax_jacobian_right_and_wrong():
    s = torch.randn(40, generator=torch.Generator().manual_seed(0)) * 3
    p = s.softmax(0)
    ex.check_softmax_jacobian(torch.diag(p) - torch.outer(p, p), s)                  # the formula
    pn = p.double().numpy()
    ex.check_softmax_jacobian(np.diag(pn) - pn[:, None] * pn[None, :], s)            # numpy, float64
    ex.check_softmax_jacobian(torch.stack([p[c] * ((torch.arange(40) == c).float() - p)
                                           for c in range(40)]), s)                   # row by row
    for wrong, hint in [(torch.diag(p), "c' ≠ c"), (-torch.outer(p, p), "c' = c"),
                        (torch.diag(p - p * p), "only the diagonal"), (torch.outer(p, p), "two cases"),
                        (None, "no answer yet"), (torch.zeros(3), "shape")]:
        with pytest.raises(AssertionError, match=hint):
            ex.check_softmax_jacobian(wrong, s)
