"""The variants of utils.saliency against Captum, on small images (64×64) of the real model."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from utils.models import ImageClassifier, toy_linear_classifier
from utils.saliency import (
    channel_max,
    completeness_error,
    deconvnet_attribution,
    grad_cam,
    grad_cam_layer,
    gradient,
    gradient_x_input_attribution,
    guided_backprop_attribution,
    guided_relus,
    integrated_gradients_attribution,
    saliency_methods,
    smoothgrad_attribution,
)

SIZE = 64


@pytest.fixture(scope="module")
def small(samples):
    """Two sample photographs at 64×64 and their classes."""
    from utils.images import load_samples

    s = load_samples(SIZE, names=[samples[0].name, samples[1].name])
    return torch.stack([a.image for a in s]), [a.target for a in s]


def assert_matches(ours: torch.Tensor, ref: torch.Tensor, rtol: float = 1e-5) -> None:
    """Equal within float32 round-off, relative to the largest value."""
    assert ours.shape == ref.shape
    scale = max(1.0, ref.abs().max().item())
    assert (ours - ref.detach()).abs().max().item() <= rtol * scale


def no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
               for m in model.modules())


class _ReLU6AsReLU(nn.ReLU):
    """ReLU6 that Captum's GuidedBackprop recognises (it hooks nn.ReLU instances only)."""

    def forward(self, x):
        return nn.functional.hardtanh(x, 0.0, 6.0, self.inplace)


def test_gradient_x_input_matches_captum(model, small):
    from captum.attr import InputXGradient

    x, t = small
    ref = InputXGradient(model).attribute(x.clone().requires_grad_(True), target=t)
    assert_matches(gradient_x_input_attribution(model, x, t), ref)
    torch.testing.assert_close(gradient_x_input_attribution(model, x[0], t[0]), gradient(model, x[0], t[0]) * x[0])


@pytest.mark.parametrize("method, steps", [("gausslegendre", 5), ("riemann_trapezoid", 4),
                                           ("riemann_middle", 3), ("riemann_left", 3),
                                           ("riemann_right", 4)])
def test_integrated_gradients_matches_captum(model, small, method, steps):
    from captum.attr import IntegratedGradients

    x, t = small
    ref, delta = IntegratedGradients(model).attribute(
        x.clone(), target=t, n_steps=steps, method=method, internal_batch_size=5,
        return_convergence_delta=True)
    ours = integrated_gradients_attribution(model, x, t, steps=steps, method=method, batch_size=3)
    error = completeness_error(model, x, ours, t)
    # Captum's delta is Σ attributions − (S(x) − S(x')); ours is S(x) − S(x') − Σ attributions
    gap = ref.sum(dim=(1, 2, 3)) - delta
    torch.testing.assert_close(error, (gap - ours.sum(dim=(1, 2, 3))).float(), rtol=1e-4, atol=1e-3)
    if method == "riemann_trapezoid":
        # Captum's trapezoid weights are 1/n (they sum to 1 − 1/n); ours 1/(n − 1), summing to 1
        ref = ref * steps / (steps - 1)
    assert_matches(ours, ref)


def _smooth_toy() -> ImageClassifier:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3), nn.Softplus(), nn.Flatten(), nn.Linear(6 * 4 * 4, 3))
    return ImageClassifier(net, (0.5,) * 3, (0.25,) * 3, 6, ["a", "b", "c"], "smooth").eval()


def test_integrated_gradients_error_shrinks_with_steps(model, small):
    # a smooth network: the trapezoid rule's error falls steadily with the number of steps
    toy, xt = _smooth_toy(), torch.rand(2, 3, 6, 6)
    def error(m, x, t, **kw):
        return completeness_error(m, x, integrated_gradients_attribution(m, x, t, **kw), t)

    errors = [error(toy, xt, 1, steps=s, method="riemann_trapezoid").abs().max().item()
              for s in (2, 4, 8, 16, 32)]
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < errors[0] / 50
    # the real network (ReLU6 kinks): not monotonic for few steps, but small with many
    x, t = small[0][:1], small[1][0]
    few, many = (abs(float(error(model, x, t, steps=s, method="riemann_trapezoid", batch_size=64)[0]))
                 for s in (4, 128))
    assert many < few / 10


def test_integrated_gradients_exact_on_linear_model():
    m = toy_linear_classifier()
    x = torch.rand(2, 3, 6, 5)
    base = torch.full((3, 6, 5), 0.3)
    attr = integrated_gradients_attribution(m, x, [0, 2], steps=2, method="riemann_trapezoid",
                                            baseline=base)
    err = completeness_error(m, x, attr, [0, 2], baseline=base)
    assert err.shape == (2,) and err.abs().max() < 1e-4
    torch.testing.assert_close(attr, gradient(m, x, [0, 2]) * (x - 0.3), rtol=1e-5, atol=1e-6)
    a1 = integrated_gradients_attribution(m, x[0], 1, steps=3)
    e1 = completeness_error(m, x[0], a1, 1)
    assert a1.shape == (3, 6, 5) and e1.dim() == 0
    # a wrong baseline (not the attribution's) leaves a large error: the check can fail
    assert completeness_error(m, x, attr, [0, 2]).abs().max() > 1e-2
    with pytest.raises(ValueError, match="attribution must have the images' shape"):
        completeness_error(m, x, attr[:1], [0, 2])


# each ReLU-rule method and Captum's implementation of it (Captum hooks nn.ReLU modules only)
RELU_RULE_METHODS = {"guided": (guided_backprop_attribution, "GuidedBackprop"),
                     "deconvnet": (deconvnet_attribution, "Deconvolution")}


@pytest.mark.filterwarnings("ignore:Setting backward hooks:UserWarning")
@pytest.mark.parametrize("rule", list(RELU_RULE_METHODS))
def test_relu_rules_match_captum_on_relu6(model, small, rule):
    import captum.attr

    fn, captum_name = RELU_RULE_METHODS[rule]
    x, t = small
    twin = copy.deepcopy(model)
    for parent in list(twin.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU6):
                setattr(parent, name, _ReLU6AsReLU(inplace=child.inplace))
    ref = getattr(captum.attr, captum_name)(twin).attribute(x.clone().requires_grad_(True), target=t)
    ours = fn(model, x, t)
    assert_matches(ours, ref)
    assert not torch.allclose(ours, gradient(model, x, t))  # the ReLU6 were really hooked
    assert no_hooks(model)


@pytest.mark.filterwarnings("ignore:Setting backward hooks:UserWarning")
@pytest.mark.parametrize("rule", list(RELU_RULE_METHODS))
@pytest.mark.parametrize("inplace", [False, True])
def test_relu_rules_match_captum_on_relu_cnn(inplace, rule):
    import captum.attr

    fn, captum_name = RELU_RULE_METHODS[rule]
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=inplace),
                        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=inplace),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    m = ImageClassifier(net, (0.5,) * 3, (0.25,) * 3, 12, [str(i) for i in range(5)], "toy").eval()
    x = torch.rand(3, 3, 12, 12)
    ref = getattr(captum.attr, captum_name)(m).attribute(x.clone().requires_grad_(True), target=[0, 3, 4])
    assert_matches(fn(m, x, [0, 3, 4]), ref, rtol=1e-6)
    assert no_hooks(m)


def test_deconvnet_ignores_the_image_without_max_pooling(model, small):
    # EfficientNet-Lite0 has no max-pool switches, and the DeconvNet drops the ReLU6 masks: the
    # backward pass is then a fixed linear map of the class, the same for every image
    x, _ = small
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    deconv = deconvnet_attribution(model, torch.cat([x, torch.rand(1, 3, SIZE, SIZE)]), 7)
    for other in deconv[1:]:
        assert_matches(other, deconv[0])
    grads = gradient(model, x, 7)
    assert not torch.allclose(grads[0], grads[1], atol=1e-3 * float(grads.abs().max()))


def test_guided_hooks_removed_even_on_error(model, small):
    x, _ = small
    with pytest.raises(ValueError, match="0..999"):
        guided_backprop_attribution(model, x, 5000)
    assert no_hooks(model)
    with pytest.raises(RuntimeError, match="boom"), guided_relus(model) as n:
        assert n == sum(isinstance(m, (nn.ReLU, nn.ReLU6)) for m in model.modules()) > 0
        raise RuntimeError("boom")
    assert no_hooks(model)


def test_guided_backprop_needs_relus():
    with pytest.raises(ValueError, match="ReLU"):
        guided_backprop_attribution(toy_linear_classifier(), torch.rand(3, 6, 5), 0)


def test_grad_cam_matches_captum(model, small):
    from captum.attr import LayerAttribution, LayerGradCam

    x, t = small
    layer_map = LayerGradCam(model, model.net.bn2).attribute(x.clone(), target=t,
                                                            relu_attributions=True)
    ref = LayerAttribution.interpolate(layer_map, (SIZE, SIZE), "bilinear")[:, 0]
    assert_matches(grad_cam(model, x, t), ref)
    assert_matches(grad_cam(model, x, t, upsample=False), layer_map[:, 0])
    # another layer, by name
    inner = LayerGradCam(model, model.net.blocks[5]).attribute(x.clone(), target=t,
                                                              relu_attributions=True)
    assert_matches(grad_cam(model, x, t, layer="net.blocks.5", upsample=False), inner[:, 0])
    assert grad_cam(model, x[0], t[0]).shape == (SIZE, SIZE)
    assert float(grad_cam(model, x, t).min()) >= 0
    assert no_hooks(model)
    with pytest.raises(ValueError, match="0..999"):
        grad_cam(model, x, 1000)
    assert no_hooks(model)


def test_grad_cam_default_layers():
    import torchvision.models as tvm

    cats = [str(i) for i in range(1000)]
    vgg = ImageClassifier(tvm.vgg16(weights=None), (0.5,) * 3, (0.5,) * 3, 224, cats, "vgg16").eval()
    assert grad_cam_layer(vgg) is vgg.net.features[29]
    res = ImageClassifier(tvm.resnet50(weights=None), (0.5,) * 3, (0.5,) * 3, 224, cats,
                          "resnet50").eval()
    assert grad_cam_layer(res) is res.net.layer4
    from captum.attr import LayerAttribution, LayerGradCam

    x = torch.rand(1, 3, 64, 64)  # in-place ReLU layer of VGG: still equal to Captum
    ref = LayerGradCam(vgg, vgg.net.features[29]).attribute(x.clone(), target=3)
    ref = LayerAttribution.interpolate(torch.relu(ref), (64, 64), "bilinear")[:, 0]
    assert_matches(grad_cam(vgg, x, 3), ref)
    with pytest.raises(ValueError, match="layer="):
        grad_cam_layer(toy_linear_classifier())


def test_smoothgrad_matches_captum_noise_tunnel(model, small):
    """Same noise: Captum draws it from torch's global generator, ours from a generator seeded
    with ``seed``; with one image both are the same stream of N(0, 1) numbers times σ."""
    from captum.attr import NoiseTunnel, Saliency

    x, t = small[0][:1], small[1][0]
    sigma = 0.15 * float(x.max() - x.min())
    ours = smoothgrad_attribution(model, x, t, samples=4, noise=0.15, seed=3, batch_size=3)
    torch.manual_seed(3)
    ref = NoiseTunnel(Saliency(model)).attribute(x.clone(), nt_type="smoothgrad", nt_samples=4,
                                                 stdevs=sigma, target=t, abs=True)
    assert_matches(ours, ref, rtol=1e-5)


def test_saliency_methods_shapes(model, small):
    x, t = small
    methods = saliency_methods(samples=2, steps=2, patch=32, stride=32)
    assert len(methods) == 7
    for name, fn in methods.items():
        maps = fn(model, x, t)
        assert maps.shape == (2, SIZE, SIZE), name
        assert torch.isfinite(maps).all(), name
    torch.testing.assert_close(methods["gradient × input"](model, x, t),
                               channel_max(gradient_x_input_attribution(model, x, t)))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda m, x: integrated_gradients_attribution(m, x, 0, method="simpson"), ValueError, "gausslegendre"),
        (lambda m, x: integrated_gradients_attribution(m, x, 0, steps=1, method="riemann_left"), ValueError,
         "steps >= 2"),
        (lambda m, x: integrated_gradients_attribution(m, x, 0, steps=0), ValueError, "steps"),
        (lambda m, x: integrated_gradients_attribution(m, x, 0, baseline=2.0), ValueError, "baseline"),
        (lambda m, x: integrated_gradients_attribution(m, x, 0, baseline=torch.zeros(3, 4, 4)), ValueError,
         "shape"),
        (lambda m, x: gradient_x_input_attribution(m, x * 3, 0), ValueError, r"\[0, 1\]"),
        (lambda m, x: grad_cam(m, x, 0, layer="nope"), ValueError, "named_modules"),
        (lambda m, x: grad_cam(m, x, 0, layer=nn.ReLU()), ValueError, "module of the model"),
    ],
)
def test_bad_inputs(call, error, match):
    m = toy_linear_classifier(6, 5)
    with pytest.raises(error, match=match):
        call(m, torch.rand(2, 3, 6, 5))
