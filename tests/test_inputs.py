"""Images as users make them: torchvision's standard transforms, float64 and float16.

The most common preprocessing in the ecosystem, ``Resize(224, antialias=True)`` then
``CenterCrop(224)`` on a float tensor, overshoots [0, 1] by float rounding (1.0000002 on the coffee
photograph). Every public function must accept such an image (it is clamped), and a value really
outside [0, 1] must be refused with a message that shows it.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import v2

from utils._validation import RANGE_TOLERANCE, check_images
from utils.images import load_image, sample_path
from utils.localisation import localise
from utils.metrics import deletion_curve
from utils.models import predict_topk
from utils.saliency import saliency_map, saliency_methods

TRANSFORMS = {
    "v1": T.Compose([T.ToTensor(), T.Resize(224, antialias=True), T.CenterCrop(224)]),
    "v2": v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                      v2.Resize(224, antialias=True), v2.CenterCrop(224)]),
    "v2-float64": v2.Compose([v2.ToImage(), v2.ToDtype(torch.float64, scale=True),
                              v2.Resize(224, antialias=True), v2.CenterCrop(224)]),
}


@pytest.fixture(scope="module", params=sorted(TRANSFORMS))
def transformed(request) -> torch.Tensor:
    """The coffee photograph through a torchvision pipeline: values just above 1."""
    image = TRANSFORMS[request.param](Image.open(sample_path("coffee")).convert("RGB"))
    assert image.shape == (3, 224, 224) and 1.0 < float(image.max()) <= 1.0 + RANGE_TOLERANCE
    return image


def test_check_images_clamps_rounding_and_keeps_the_rest(transformed):
    batch, single = check_images(transformed)
    assert single and batch.shape == (1, 3, 224, 224)
    assert float(batch.max()) == 1.0 and float(batch.min()) >= 0.0
    inside = transformed <= 1.0
    assert torch.equal(batch[0][inside], transformed[inside].to(batch.dtype))


@pytest.mark.parametrize("method", sorted(saliency_methods()))
def test_every_method_accepts_a_torchvision_image(model, method):
    image = TRANSFORMS["v2"](Image.open(sample_path("coffee")).convert("RGB"))
    small = image[:, ::4, ::4].clone()  # 56×56 keeps the test fast; keep the overshooting value
    small[:, 0, 0] = image.flatten(1)[:, image.flatten(1).max(0).values.argmax()]
    assert float(small.max()) > 1.0
    fn = saliency_methods(samples=2, steps=2, patch=16, stride=16, batch_size=8)[method]
    m = fn(model, small, 967)
    assert m.shape == (56, 56) and torch.isfinite(m).all()


def test_other_public_functions_accept_a_torchvision_image(model, transformed):
    assert predict_topk(model, transformed, k=1)[0][0][1] == "espresso"
    assert torch.equal(load_image(transformed), load_image(transformed.clamp(0, 1)))
    m = saliency_map(model, transformed)
    assert localise(transformed, m).box is not None
    curve = deletion_curve(model, transformed[None, :, ::4, ::4], m[None, ::4, ::4], steps=4)
    assert len(curve.scores[0]) == 5


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_half_and_double_images(model, dtype):
    image = load_image("coffee")
    reference = saliency_map(model, image)
    m = saliency_map(model, image.to(dtype))
    assert m.dtype == torch.float32 and m.shape == reference.shape
    # float16 rounds the pixels (to ~5e-4): the map changes a little, the prediction does not.
    assert torch.corrcoef(torch.stack([m.flatten(), reference.flatten()]))[0, 1] > 0.9
    assert predict_topk(model, image.to(dtype), k=1)[0][0][1] == "espresso"


@pytest.mark.parametrize("value, shown", [(1.0002, "1.0002"), (-0.0003, "-0.0003"), (255.0, "255")])
def test_values_outside_the_tolerance_are_refused_with_their_range(value, shown):
    image = torch.full((3, 4, 4), 0.5)
    image[0, 0, 0] = value
    with pytest.raises(ValueError, match=r"values in \[0, 1\]") as err:
        check_images(image)
    assert shown in str(err.value)


def test_normalised_images_get_a_hint():
    image = (torch.rand(3, 8, 8) - 0.485) / 0.229
    with pytest.raises(ValueError, match="look normalised"):
        check_images(image)
