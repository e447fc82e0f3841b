"""Tensors on another device than the model (issue #8).

Every public function that runs a model moves the images to the model's device (or to an explicit
``device=``) and returns its maps on the *images'* device. The cross-device tests need a CUDA GPU
and are skipped without one; run them with ``pytest tests/test_devices.py`` on a GPU machine. The
CPU-only tests check the other half of the contract: asking for CUDA where there is none is a clear
``ValueError`` from every entry point, before any work is done.
"""

from __future__ import annotations

import copy

import pytest
import torch

from utils.class_model import class_model_run
from utils.metrics import deletion_curve, insertion_curve
from utils.models import load_classifier, predict_topk
from utils.occlusion import occlusion_field, quadtree_occlusion
from utils.saliency import gradient, saliency_methods

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
SIZE = 64  # EfficientNet-Lite0 accepts any size; 64² keeps every method fast

# name → fn(model, image (3, H, W), device) running one entry point on one image
def _one_image(fn):
    return lambda m, x, device=None: fn(m, x[None], 1, device=device)[0]


METHODS = {name: _one_image(fn)
           for name, fn in saliency_methods(samples=4, steps=4, patch=32, stride=32).items()}
ENTRY_POINTS = {
    **METHODS,
    "gradient (3-channel)": lambda m, x, device=None: gradient(m, x, 1, device=device),
    "occlusion_field": lambda m, x, device=None: occlusion_field(
        m, x, 1, patch=32, stride=32, device=device),
    "quadtree_occlusion": lambda m, x, device=None: quadtree_occlusion(
        m, x, 1, patch=16, stride=16, start=2, max_passes=12, device=device).saliency,
    "deletion_curve": lambda m, x, device=None: deletion_curve(
        m, x[None], x.mean(0)[None], 1, steps=4, device=device).scores,
    "insertion_curve": lambda m, x, device=None: insertion_curve(
        m, x[None], x.mean(0)[None], 1, steps=4, device=device).scores,
}


@pytest.fixture(scope="module")
def image(samples):
    return torch.nn.functional.interpolate(samples[0].image[None], size=(SIZE, SIZE), mode="area")[0]


@pytest.mark.skipif(CUDA, reason="checks the message shown where CUDA is missing")
@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_cuda_requested_without_cuda_is_a_clear_error(name, model, image):
    with pytest.raises(ValueError, match="CUDA is not available; use 'cpu'"):
        ENTRY_POINTS[name](model, image, device="cuda")


@pytest.mark.skipif(CUDA, reason="checks the message shown where CUDA is missing")
def test_class_model_cuda_without_cuda_is_a_clear_error(model):
    with pytest.raises(ValueError, match="CUDA is not available"):
        class_model_run(model, 1, steps=1, size=32, device="cuda")


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_explicit_cpu_device_matches_default(name, model, image):
    default = ENTRY_POINTS[name](model, image)
    explicit = ENTRY_POINTS[name](model, image, device="cpu")
    assert explicit.device.type == "cpu"
    torch.testing.assert_close(explicit, default)


@pytest.fixture(scope="module")
def cuda_model():
    return load_classifier("efficientnet_lite0", device="cuda")


@needs_cuda
@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_cpu_image_with_cuda_model(name, model, cuda_model, image):
    """The image stays on the CPU, the model is on the GPU: result on the CPU, same numbers."""
    on_gpu = ENTRY_POINTS[name](cuda_model, image)
    assert on_gpu.device.type == "cpu"
    reference = ENTRY_POINTS[name](model, image)
    torch.testing.assert_close(on_gpu, reference, atol=2e-3 * float(reference.abs().max()) + 1e-6, rtol=2e-2)


@needs_cuda
@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_cuda_image_with_cpu_model(name, model, image):
    """The image is on the GPU, the model on the CPU: computed on the CPU, result back on the GPU."""
    out = ENTRY_POINTS[name](model, image.cuda())
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), ENTRY_POINTS[name](model, image))


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_explicit_device_other_than_the_models_is_a_clear_error(name, model, image):
    """``device=`` names where to compute; a model elsewhere is refused with what to do, before any
    forward pass (here the model is a copy on PyTorch's data-less ``meta`` device)."""
    elsewhere = copy.deepcopy(model).to("meta")
    with pytest.raises(ValueError, match=r"the model is on 'meta'; move the model with model.to\('cpu'\)"):
        ENTRY_POINTS[name](elsewhere, image, device="cpu")


@needs_cuda
def test_predict_topk_across_devices(model, cuda_model, image):
    cpu = predict_topk(model, image, 3)[0]
    gpu = predict_topk(cuda_model, image, 3)[0]
    assert [c for c, _, _ in gpu] == [c for c, _, _ in cpu]
    assert predict_topk(model, image.cuda(), 3)[0][0][0] == cpu[0][0]
