"""The offline guard blocks the network in tests and in notebook kernels, and loading never downloads."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from utils.course.offline import NetworkAccessError
from utils.models import WeightsNotAvailableError, load_classifier

ROOT = Path(__file__).resolve().parents[2]


def test_guard_blocks_remote_addresses():
    with socket.socket() as s, pytest.raises(NetworkAccessError, match="offline"):
        s.connect(("93.184.216.34", 80))


def test_guard_allows_loopback():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.socket() as client:
            client.connect(server.getsockname())


def test_missing_torchvision_weights_fail_fast(tmp_path, monkeypatch):
    """Missing weights raise at once: no download is even attempted (no wall-clock assert)."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def no_download(*args, **kwargs):
        raise AssertionError("load_classifier tried to download weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    with pytest.raises(WeightsNotAvailableError):
        load_classifier("resnet50", device="cpu")


def test_notebook_kernels_get_the_guard():
    """The IPython start-up file that `make test` points kernels to installs the guard."""
    code = (
        "import runpy, socket; "
        f"runpy.run_path({str(ROOT / 'tests/ipython/profile_default/startup/00_offline_guard.py')!r}); "
        "s = socket.socket()\n"
        "try:\n    s.connect(('10.1.2.3', 80))\nexcept Exception as e:\n    print(type(e).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "NetworkAccessError", out.stderr


def test_makefile_points_nbval_kernels_at_the_guard():
    text = (ROOT / "Makefile").read_text()
    assert "IPYTHONDIR=$(CURDIR)/tests/ipython" in text
