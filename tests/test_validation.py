"""The shared argument checks of utils._validation: one eval-mode guard, one scores check, one
float parser, used by every method module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from utils._validation import check_eval_mode, check_fraction, check_nonnegative, check_scores
from utils.occlusion import occlusion, probe_macs
from utils.saliency import grad_cam, saliency_map


class Tiny(nn.Module):
    """Scores ``(N, 2)`` from a 1-channel convolution; ``dropout`` makes training mode matter."""

    def __init__(self, out_shape: str = "scores") -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.drop = nn.Dropout(0.5)
        self.out_shape = out_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.drop(self.conv(x)).mean(dim=(2, 3))
        return s[:, 0] if self.out_shape == "one score" else s


def test_one_eval_mode_guard_for_every_method():
    model, image = Tiny().train(), torch.rand(3, 8, 8)
    calls = [lambda: check_eval_mode(model), lambda: saliency_map(model, image, 0),
             lambda: occlusion(model, image, 0, patch=4, stride=4), lambda: probe_macs(model, 4, image_size=8),
             lambda: grad_cam(model, image, 0, layer="conv")]
    for call in calls:
        with pytest.raises(ValueError, match=r"training mode .*call model\.eval\(\) first"):
            call()
    check_eval_mode(model.eval())  # no error


def test_scores_must_be_n_by_classes():
    assert check_scores(torch.zeros(2, 5), 2).shape == (2, 5)
    for bad in (torch.zeros(2), torch.zeros(3, 5), torch.zeros(2, 5, 1)):
        with pytest.raises(ValueError, match=r"scores \(N, classes\)"):
            check_scores(bad, 2)
    with pytest.raises(ValueError, match=r"scores \(N, classes\)"):
        saliency_map(Tiny("one score").eval(), torch.rand(2, 3, 8, 8), 0)


def test_numbers_are_parsed_once_with_the_argument_named():
    assert check_nonnegative("0.5", "sigma") == 0.5 and check_fraction(0.25, "q") == 0.25
    for check in (lambda v: check_nonnegative(v, "sigma"), lambda v: check_fraction(v, "sigma")):
        with pytest.raises(TypeError, match="sigma must be a number"):
            check([1.0])
    with pytest.raises(ValueError, match=r"sigma=-1 is not allowed; it must be a finite number >= 0\. hint"):
        check_nonnegative(-1, "sigma", " hint")
    with pytest.raises(ValueError, match="finite"):
        check_nonnegative(float("inf"), "sigma")
