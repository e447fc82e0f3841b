"""utils.seed_everything (seeds only) and utils.deterministic (the opt-in, as a context manager)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from utils import deterministic, seed_everything


def _draws():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_seed_everything_repeats_every_generator_and_seeds_differ():
    seed_everything(3)
    first = _draws()
    seed_everything(3)
    assert _draws() == first
    seed_everything(4)
    other = _draws()
    assert all(a != b for a, b in zip(first, other, strict=True))


def test_seed_everything_changes_no_global_setting():
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    seed_everything(0)
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark) == before


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_seed_everything_refuses_bad_seeds(seed):
    with pytest.raises(ValueError, match="non-negative int"):
        seed_everything(seed)


def test_deterministic_is_switched_on_inside_and_restored_after():
    assert not torch.are_deterministic_algorithms_enabled()
    with deterministic():
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert not torch.are_deterministic_algorithms_enabled()
    with deterministic(warn_only=False):
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
    assert not torch.are_deterministic_algorithms_enabled()


def test_deterministic_restores_even_when_the_body_raises():
    with pytest.raises(RuntimeError, match="boom"), deterministic():
        raise RuntimeError("boom")
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.deterministic
