"""DeconvNet and the gradient (Simonyan, Vedaldi & Zisserman, 2013, section 4), on toy networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from utils.models import ImageClassifier, toy_linear_classifier
from utils.saliency import (
    deconvnet_attribution,
    gradient,
    guided_backprop_attribution,
    layerwise_backward,
    modified_relus,
)

CLASSES = [str(i) for i in range(5)]


def conv_pool_net(relu: bool, inplace: bool = False, seed: int = 0) -> nn.Sequential:
    """conv → (ReLU) → max-pool 2×2 → conv → (ReLU) → overlapping padded max-pool → linear."""
    torch.manual_seed(seed)
    layers = [nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(inplace=inplace), nn.MaxPool2d(2),
              nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(inplace=inplace),
              nn.MaxPool2d(3, stride=2, padding=1), nn.Flatten(), nn.Linear(8 * 3 * 3, 5)]
    return nn.Sequential(*(la for la in layers if relu or not isinstance(la, nn.ReLU)))


def as_classifier(net: nn.Module, mean: float = 0.0, std: float = 1.0) -> ImageClassifier:
    return ImageClassifier(net, (mean,) * 3, (std,) * 3, 12, CLASSES, "toy").eval()


def autograd_gradient(net: nn.Module, x: torch.Tensor, target: list[int]) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(net(x).gather(1, torch.tensor(target)[:, None]).sum(), x)
    return g


def no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


TARGET = [1, 3]


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("relu", [False, True])
def test_layerwise_gradient_rule_is_autograd(x, relu):
    # flipped-filter convolutions, max-pool switches and Wᵀ are the gradient, layer by layer
    net = conv_pool_net(relu)
    torch.testing.assert_close(layerwise_backward(net, x, TARGET, "gradient"),
                               autograd_gradient(net, x, TARGET), rtol=0, atol=1e-6)


def test_deconvnet_is_the_gradient_without_relus(x):
    """Section 4: without ReLUs (conv, max-pool, linear) the DeconvNet reconstruction is the
    gradient; every rule at the ReLU is then the same."""
    net = conv_pool_net(relu=False)
    grad = autograd_gradient(net, x, TARGET)
    for rule in ("deconvnet", "guided"):
        torch.testing.assert_close(layerwise_backward(net, x, TARGET, rule), grad, rtol=0, atol=1e-6)
    assert grad.abs().max() > 1e-2  # not trivially zero


@pytest.mark.parametrize("inplace", [False, True])
def test_deconvnet_differs_from_the_gradient_only_through_relus(x, inplace):
    net = conv_pool_net(relu=True, inplace=inplace)
    m = as_classifier(net)
    deconv, guided, grad = (f(m, x, TARGET) for f in (deconvnet_attribution,
                                                       guided_backprop_attribution, gradient))
    # the hooked autograd versions equal the layer-by-layer definitions
    torch.testing.assert_close(deconv, layerwise_backward(net, x, TARGET, "deconvnet"), rtol=0, atol=1e-6)
    torch.testing.assert_close(guided, layerwise_backward(net, x, TARGET, "guided"), rtol=0, atol=1e-6)
    # with ReLUs the three differ, by far more than round-off
    scale = grad.abs().max()
    assert (deconv - grad).abs().max() > 0.1 * scale
    assert (deconv - guided).abs().max() > 0.1 * scale
    assert no_hooks(m)


@pytest.mark.parametrize("act, upper", [(nn.ReLU(), None), (nn.ReLU(inplace=True), None),
                                        (nn.ReLU6(), 6.0), (nn.ReLU6(inplace=True), 6.0)])
def test_rules_at_one_activation(act, upper):
    """At the activation (first layer, input z = (x − 0.5)/0.05), with g the signal from above:
    gradient 1[z on] · g, DeconvNet max(g, 0), guided 1[z on] · max(g, 0) = both masks."""
    torch.manual_seed(0)
    top = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 10 * 10, 5))
    m = as_classifier(nn.Sequential(act, top), mean=0.5, std=0.05)
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    z = (x - 0.5) / 0.05
    y = torch.relu(z) if upper is None else z.clamp(0, upper)
    g = autograd_gradient(top, y, TARGET) / 0.05  # the incoming signal, times ∂z/∂x = 1/std
    on = (z > 0) if upper is None else (z > 0) & (z < upper)
    assert 0 < on.float().mean() < 1 and (g > 0).any() and (g < 0).any()
    if upper is not None:
        assert (z > upper).any()  # the cap is exercised
    torch.testing.assert_close(gradient(m, x, TARGET), g * on, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(deconvnet_attribution(m, x, TARGET), g.clamp(min=0), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(guided_backprop_attribution(m, x, TARGET), g * on * (g > 0),
                               rtol=1e-6, atol=1e-6)


def test_deconvnet_shapes_and_hooks_removed_on_error(x):
    m = as_classifier(conv_pool_net(relu=True, inplace=True))
    assert deconvnet_attribution(m, x, TARGET).shape == (2, 3, 12, 12)
    one = deconvnet_attribution(m, x[1], 3)
    assert one.shape == (3, 12, 12)
    torch.testing.assert_close(one, deconvnet_attribution(m, x, TARGET)[1])
    with pytest.raises(ValueError, match="0..4"):
        deconvnet_attribution(m, x, 7)
    assert no_hooks(m)
    with pytest.raises(RuntimeError, match="boom"), modified_relus(m, "deconvnet") as n:
        assert n == 2
        m(x)
        raise RuntimeError("boom")
    assert no_hooks(m)
    m.train()
    with pytest.raises(ValueError, match="eval"):
        deconvnet_attribution(m, x, TARGET)
    assert no_hooks(m)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: deconvnet_attribution(toy_linear_classifier(), torch.rand(3, 6, 5), 0), "ReLU"),
        (lambda: deconvnet_attribution(as_classifier(conv_pool_net(True)), torch.rand(1, 3, 12, 12) * 3, 0),
         r"\[0, 1\]"),
        (lambda: modified_relus(nn.ReLU(), "zeiler"), "deconvnet"),
        (lambda: layerwise_backward(conv_pool_net(True), torch.rand(1, 3, 12, 12), 0, "deconv"), "deconvnet"),
        (lambda: layerwise_backward(nn.Sequential(nn.Softplus(), nn.Flatten()), torch.rand(1, 2, 1, 1), 0),
         "Softplus"),
        (lambda: layerwise_backward(nn.Sequential(nn.Conv2d(3, 2, 3, stride=2), nn.Flatten()),
                                    torch.rand(1, 3, 3, 3), 0), "stride-1"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
