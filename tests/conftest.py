"""Shared fixtures, and the offline guard: no test may open a network connection."""

from __future__ import annotations

import pytest
import torch

from utils.course.offline import install_network_guard, remove_network_guard


@pytest.fixture(autouse=True, scope="session")
def _no_network():
    install_network_guard()
    yield
    remove_network_guard()


@pytest.fixture(scope="session")
def model():
    """The offline default classifier, on the CPU, loaded once per test session."""
    from utils.models import load_classifier

    torch.set_num_threads(max(1, torch.get_num_threads()))
    return load_classifier("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="session")
def samples():
    """All sample photographs at 224×224."""
    from utils.images import load_samples

    return load_samples()


@pytest.fixture(scope="session")
def batch(samples):
    """``(images (8, 3, 224, 224), targets list)`` of the sample photographs."""
    return torch.stack([s.image for s in samples]), [s.target for s in samples]
