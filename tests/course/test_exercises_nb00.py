"""Notebook 00's self-checks: each accepts right answers written in other ways, rejects the typical
wrong answers with a hint (an ``AssertionError``), and refuses the library's own function."""

import numpy as np
import pytest
import torch

from utils.course import exercises as ex
from utils.models import toy_linear_classifier


@pytest.fixture(scope="module")
def toy():
    return toy_linear_classifier(height=6, width=5, classes=4, seed=3)


@pytest.fixture(scope="module")
def image():
    return torch.rand(3, 6, 5, generator=torch.Generator().manual_seed(0))


def _rank(toy, image, name):
    index = [c.lower() for c in toy.categories].index(name)
    with torch.no_grad():
        scores = toy(image[None])[0]
    return index, scores, int((scores > scores[index]).sum()) + 1


def test_class_rank_right_answers(toy, image):
    index, scores, rank = _rank(toy, image, "class 2")
    ex.check_class_rank(index, rank, toy, image, "class 2")
    order = torch.argsort(scores, descending=True).tolist()          # sort and look up
    ex.check_class_rank(np.int64(index), order.index(index) + 1, toy, image, "class 2")
    ex.check_class_rank(index, int((scores.softmax(0) >= scores.softmax(0)[index]).sum()), toy, image,
                        "class 2")                                   # probabilities, >= counts itself


@pytest.mark.parametrize("shift, match", [(-1, "counted from 1"), (None, "lowest score"),
                                          (5, "not the rank")])
def test_class_rank_wrong_rank(toy, image, shift, match):
    index, _, rank = _rank(toy, image, "class 2")
    wrong = len(toy.categories) - rank + 1 if shift is None else rank + shift
    with pytest.raises(AssertionError, match=match):
        ex.check_class_rank(index, wrong, toy, image, "class 2")


def test_class_rank_wrong_index_and_stub(toy, image):
    index, _, rank = _rank(toy, image, "class 2")
    with pytest.raises(AssertionError, match="counts from 0"):
        ex.check_class_rank(index + 1, rank, toy, image, "class 2")
    with pytest.raises(AssertionError, match="class_index"):
        ex.check_class_rank(0, rank, toy, image, "class 2")
    with pytest.raises(AssertionError, match="no answer yet"):
        ex.check_class_rank(None, None, toy, image, "class 2")
    with pytest.raises(AssertionError, match="whole numbers"):
        ex.check_class_rank("two", rank, toy, image, "class 2")


def _stable(z):
    e = torch.exp(z - z.amax(dim=-1, keepdim=True))
    return e / e.sum(dim=-1, keepdim=True)


def test_softmax_right_answers():
    ex.check_softmax_fn(_stable)
    ex.check_softmax_fn(lambda z: torch.exp(z - torch.logsumexp(z, dim=1, keepdim=True)))
    ex.check_softmax_fn(lambda z: torch.from_numpy(                  # numpy, float64
        np.exp(z.double().numpy() - z.double().numpy().max(1, keepdims=True))
        / np.exp(z.double().numpy() - z.double().numpy().max(1, keepdims=True)).sum(1, keepdims=True)))
    ex.check_softmax_fn(lambda z: torch.stack([_stable(row) for row in z]))   # a loop over rows


@pytest.mark.parametrize("fn, match", [
    (lambda z: z.exp() / z.exp().sum(), "does not match"),            # over the whole tensor
    (lambda z: z.exp() / z.exp().sum(0, keepdim=True), "each column"),
    (lambda z: z / z.sum(1, keepdim=True), "exponential"),
    (lambda z: z - torch.logsumexp(z, 1, keepdim=True), "log-probabilities"),
    (lambda z: z.exp() / z.exp().sum(1, keepdim=True), "inf / inf is nan"),  # no shift
    (lambda z: (z - z.amin(1, keepdim=True)).exp() / (z - z.amin(1, keepdim=True)).exp().sum(1, keepdim=True),
     "no exponent is large"),                                         # shifted by the wrong constant
    (lambda z: (z - z.max()).exp() / (z - z.max()).exp().sum(1, keepdim=True), "row by row"),  # one shift for all
    (lambda z: _stable(z)[0], "shape"),
])
def test_softmax_wrong_answers(fn, match):
    with pytest.raises(AssertionError, match=match):
        ex.check_softmax_fn(fn)


@pytest.mark.parametrize("fn", [torch.softmax, lambda z: z.softmax(1),
                                lambda z: torch.nn.functional.softmax(z, dim=-1),
                                lambda z: torch.log_softmax(z, 1).exp()])
def test_softmax_library_refused(fn):
    with pytest.raises(ex.ExerciseRefusal, match="yourself"):
        ex.check_softmax_fn(fn)
    assert torch.allclose(torch.tensor([0.0, 0.0]).softmax(0), torch.tensor([0.5, 0.5]))  # restored
