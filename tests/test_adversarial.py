"""utils.adversarial.fooling_image: the bound holds, the target wins, bad arguments are refused."""

import pytest
import torch

from utils.adversarial import fooling_image
from utils.models import toy_linear_classifier


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    return toy_linear_classifier(height=8, width=8, classes=5).eval()


def test_target_wins_within_the_bound(toy):
    image = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = toy(image[None])[0]
    target = int(before.argmin())
    x = fooling_image(toy, image, target, epsilon=0.2, steps=50, margin=0.5)
    with torch.no_grad():
        after = toy(x[None])[0]
    assert int(after.argmax()) == target != int(before.argmax())
    assert float((x - image).abs().max()) <= 0.2 + 1e-6
    assert float(x.min()) >= 0 and float(x.max()) <= 1


def test_a_tight_bound_is_respected_even_when_the_target_cannot_win(toy):
    image = torch.full((3, 8, 8), 0.5)
    x = fooling_image(toy, image, 0, epsilon=1e-3, steps=5, step_size=0.01, margin=None)
    assert float((x - image).abs().max()) == pytest.approx(1e-3, abs=1e-6)


def test_margin_stops_early(toy):
    image = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        top = int(toy(image[None])[0].argmax())
    # Already the winner by a large margin? Then no step is needed beyond the first.
    x = fooling_image(toy, image, top, epsilon=0.1, steps=100, margin=-1e9)
    assert float((x - image).abs().max()) <= 0.1 / 4 + 1e-6


@pytest.mark.parametrize("kwargs, match", [
    ({"epsilon": 0.0}, "epsilon"), ({"epsilon": 1.5}, "epsilon"), ({"steps": 0}, "steps"),
    ({"step_size": 0.0}, "step_size"), ({"target": 7}, "7"),
])
def test_bad_arguments_are_refused(toy, kwargs, match):
    args = {"target": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        fooling_image(toy, torch.rand(3, 8, 8), args.pop("target"), **args)


def test_a_batch_is_refused(toy):
    with pytest.raises(ValueError, match="one image"):
        fooling_image(toy, torch.rand(2, 3, 8, 8), 1)
