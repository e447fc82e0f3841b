"""Shared fixtures, and the offline guard: no test may open a network connection."""

from __future__ import annotations

import socket

import pytest
import torch

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) else address
    return host in ("localhost", "::1", "") or str(host).startswith("127.")


def _guarded(real):
    def connect(self, address):
        if not _is_local(address):
            raise RuntimeError(
                f"Network access attempted during the tests (to {address!r}). The course must run "
                "offline: load weights and data from installed packages and data/, never download."
            )
        return real(self, address)

    return connect


@pytest.fixture(autouse=True, scope="session")
def _no_network():
    socket.socket.connect = _guarded(_real_connect)
    socket.socket.connect_ex = _guarded(_real_connect_ex)
    yield
    socket.socket.connect = _real_connect
    socket.socket.connect_ex = _real_connect_ex


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
