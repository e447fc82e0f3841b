"""Tensors on another device than the model (issues #8 and #16).

Every public function that runs a model computes where the model is (there is no ``device=``
argument, as in Captum), moves the images there and returns its results on the *images'* device.
The cross-device tests need a CUDA GPU and are skipped without one; run them with
``pytest tests/test_devices.py`` on a GPU machine. The CPU-only tests check the calling convention:
no ``device`` parameter in the functions that infer it from the model.
"""

from __future__ import annotations

import inspect

import pytest
import torch

import utils.class_model
import utils.metrics
import utils.occlusion
import utils.saliency
import utils.widgets
from utils.adversarial import fooling_image
from utils.class_model import class_model_run, judge_rank
from utils.metrics import deletion_curve, insertion_curve
from utils.models import load_classifier, predict_topk
from utils.occlusion import occlusion_field, quadtree_occlusion
from utils.saliency import gradient, saliency_methods

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
SIZE = 64  # EfficientNet-Lite0 accepts any size; 64² keeps every method fast


# name → fn(model, image (3, H, W)) running one entry point on one image
def _one_image(fn):
    return lambda m, x: fn(m, x[None], 1)[0]


METHODS = {name: _one_image(fn)
           for name, fn in saliency_methods(samples=4, steps=4, patch=32, stride=32).items()}
ENTRY_POINTS = {
    **METHODS,
    "gradient (3-channel)": lambda m, x: gradient(m, x, 1),
    "occlusion_field": lambda m, x: occlusion_field(m, x, 1, patch=32, stride=32),
    "quadtree_occlusion": lambda m, x: quadtree_occlusion(
        m, x, 1, patch=16, stride=16, start=2, max_passes=12).saliency,
    "deletion_curve": lambda m, x: deletion_curve(m, x[None], x.mean(0)[None], 1, steps=4).scores,
    "insertion_curve": lambda m, x: insertion_curve(m, x[None], x.mean(0)[None], 1, steps=4).scores,
    "judge_rank": lambda m, x: judge_rank(m, x, 1, resize=False)[1],
    "fooling_image": lambda m, x: fooling_image(m, x, 1, steps=2),
}

@pytest.mark.parametrize("module", [utils.saliency, utils.occlusion, utils.metrics, utils.class_model,
                                    utils.widgets])
def test_functions_of_a_model_take_no_device_argument(module):
    checked = 0
    for name in module.__all__:
        fn = getattr(module, name)
        if not inspect.isfunction(fn):
            continue
        params = inspect.signature(fn).parameters
        if next(iter(params), None) in ("model", "judge"):
            checked += 1
            assert "device" not in params, f"{module.__name__}.{name}"
    assert checked > 0


@pytest.fixture(scope="module")
def image(samples):
    return torch.nn.functional.interpolate(samples[0].image[None], size=(SIZE, SIZE), mode="area")[0]


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
    """The image is on the GPU, the model on the CPU: computed on the CPU, result back on the GPU
    (the judge's ranks and probabilities always come back on the CPU)."""
    out = ENTRY_POINTS[name](model, image.cuda())
    assert out.device.type == ("cpu" if name == "judge_rank" else "cuda")
    torch.testing.assert_close(out.cpu(), ENTRY_POINTS[name](model, image))


@needs_cuda
def test_class_model_runs_on_the_models_device(cuda_model):
    run = class_model_run(cuda_model, 1, steps=2, size=32)
    assert run.images.device.type == "cuda" and run.score.device.type == "cpu"


@needs_cuda
def test_predict_topk_across_devices(model, cuda_model, image):
    cpu = predict_topk(model, image, 3)[0]
    gpu = predict_topk(cuda_model, image, 3)[0]
    assert [c for c, _, _ in gpu] == [c for c, _, _ in cpu]
    assert predict_topk(model, image.cuda(), 3)[0][0][0] == cpu[0][0]
