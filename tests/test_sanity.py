"""utils.sanity: the cascading model-parameter randomisation test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from utils.models import ImageClassifier
from utils.saliency import saliency_map
from utils.sanity import SanityCheck, cascade_layers, model_randomisation


def test_cascade_layers_of_the_course_model(model):
    names = [n for n, _ in cascade_layers(model)]
    assert names[0] == "net.classifier" and names[-1] == "net.conv_stem"
    # BatchNorms are folded into their convolutions: net.bn2 keeps only its ReLU6, no parameters.
    assert names[1] == "net.conv_head" and "net.bn2" not in names
    assert names[2:9] == [f"net.blocks.{i}" for i in range(6, -1, -1)]


def test_randomisation_never_modifies_the_model(model, samples):
    x = samples[0].image[None, :, ::4, ::4].contiguous()  # 56×56
    before = {k: v.clone() for k, v in model.state_dict().items()}
    check = model_randomisation(model, x, None, saliency_map)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training and all(not p.requires_grad for p in model.parameters())
    assert check.layers[0] == "original" and len(check.layers) == len(cascade_layers(model)) + 1
    assert check.correlation.shape == (1, len(check.layers))
    assert check.correlation[0, 0] == pytest.approx(1.0)
    assert check.maps.shape == (len(check.layers), 1, 56, 56)
    # the plain gradient depends on the weights: fully randomised, it is far from the original
    assert abs(check.correlation[0, -1]) < 0.5
    # seeded: the same again
    again = model_randomisation(model, x, None, saliency_map,
                                layers=cascade_layers(model)[:2])
    assert again.correlation[0, 1:] == pytest.approx(check.correlation[0, 1:3], abs=1e-6)


def test_randomisation_on_a_toy_model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 6 * 6, 3))
    m = ImageClassifier(net, (0.5,) * 3, (0.5,) * 3, 6, ["a", "b", "c"], "toy").eval()
    check = model_randomisation(m, torch.rand(2, 3, 6, 6), [0, 1], saliency_map)
    assert check.layers == ["original", "net.3", "net.0"]
    np.testing.assert_allclose(check.mean_correlation, check.correlation.mean(axis=0))
    assert check.undefined == 0
    with_nan = SanityCheck(["a", "b", "c"], np.array([[1.0, np.nan, np.nan], [1.0, 0.5, np.nan]]),
                           torch.zeros(3, 2, 1, 1))
    np.testing.assert_allclose(with_nan.mean_correlation, [1.0, 0.5, np.nan])
    assert with_nan.undefined == 3
    with pytest.raises(ValueError, match="not part of the model"):
        model_randomisation(m, torch.rand(1, 3, 6, 6), 0, saliency_map,
                            layers=[("other", [nn.Linear(2, 2)])])
