"""utils.widgets: the plain functions behind the explorers, widget construction, and that changing a
control recomputes (exactly what a reader's click does; the real browser check is
tests/browser/browser_check.py, run by `make test-browser`)."""

from __future__ import annotations

import datetime
import html
import io

import pytest
import torch
from PIL import Image

from utils import widgets as W
from utils.saliency import grad_cam, saliency_map

PNG = b"\x89PNG"
FAST_METHODS = {"gradient": saliency_map, "Grad-CAM": grad_cam}


def _png_bytes(size=(300, 200), colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def _upload_value(name: str, content: bytes) -> tuple[dict, ...]:
    return ({"name": name, "type": "image/png", "size": len(content), "content": memoryview(content),
             "last_modified": datetime.datetime(2024, 1, 1)},)


# ---- classes -----------------------------------------------------------------------------------

def test_class_labels_are_unique_and_parse_back(model):
    labels = W.class_labels(model.categories)
    assert len(labels) == 1000 and len(set(labels)) == 1000
    assert labels[282] == "tiger cat"
    for i in (0, 134, 282, 517, 999):
        assert W.parse_class(labels[i], model.categories) == i
    twice = ["crane", "tabby", "crane"]  # some ImageNet name lists use a name twice
    assert W.class_labels(twice) == ["crane (0)", "tabby", "crane (2)"]
    assert [W.parse_class(x, twice) for x in W.class_labels(twice)] == [0, 1, 2]
    assert W.parse_class("Tiger Cat", model.categories) == 282
    assert W.parse_class("282", model.categories) == 282
    assert W.parse_class(5, model.categories) == 5


@pytest.mark.parametrize("bad", ["tigre cat", 1000, -1, "tabby (3)"])
def test_parse_class_refuses_unknown_classes(model, bad):
    with pytest.raises(ValueError):
        W.parse_class(bad, model.categories)


def test_class_options_top_k_then_extra_with_rank():
    cats = [f"c{i}" for i in range(6)]
    probs = torch.tensor([0.05, 0.5, 0.2, 0.15, 0.06, 0.04])
    opts = W.class_options(probs, cats, k=3, extra=[5, 2])
    assert [v for _, v in opts] == [1, 2, 3, 5]
    assert opts[0][0] == "c1 · p = 0.50"
    assert opts[-1][0] == "c5 · p = 0.04 · rank 6"
    with pytest.raises(ValueError):
        W.class_options(probs, cats[:4])


def test_class_probabilities_sum_to_one(model, samples):
    p = W.class_probabilities(model, samples[0].image)
    assert p.shape == (1000,) and abs(float(p.sum()) - 1) < 1e-4
    assert int(p.argmax()) in (281, 282, 285)  # a cat
    with pytest.raises(ValueError, match="one image"):
        W.class_probabilities(model, samples[0].image[None].repeat(2, 1, 1, 1))


# ---- uploads -----------------------------------------------------------------------------------

def test_image_from_upload_reads_the_bytes_through_load_image():
    name, image = W.image_from_upload(_upload_value("red.png", _png_bytes()), 64)
    assert name == "red.png" and image.shape == (3, 64, 64)
    assert torch.allclose(image[:, 0, 0], torch.tensor([200, 30, 30]) / 255, atol=1e-2)
    _, raw = W.image_from_upload(_png_bytes((10, 10)), 32)
    assert raw.shape == (3, 32, 32)


def _truncated_png() -> bytes:
    noise = (torch.rand(64, 64, 3, generator=torch.Generator().manual_seed(0)) * 255).byte().numpy()
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "PNG")
    return buf.getvalue()[: len(buf.getvalue()) // 2]


@pytest.mark.parametrize("value, message", [((), "No file"), (b"", "empty"),
                                            (b"not an image", "not an image"),
                                            (_truncated_png(), "could not be decoded")],
                         ids=["nothing", "empty", "text", "truncated"])
def test_image_from_upload_explains_bad_input(value, message):
    with pytest.raises(ValueError, match=message):
        W.image_from_upload(value, 32)


# ---- saliency ----------------------------------------------------------------------------------

def test_compute_saliency_view_matches_saliency_map(model, samples):
    cat = samples[0]
    view = W.compute_saliency_view(model, cat.image, 282, "gradient", methods=FAST_METHODS)
    assert view["map"].shape == (224, 224) and (view["map"] >= 0).all()
    assert torch.allclose(view["map"], saliency_map(model, cat.image, 282), atol=1e-6)
    assert view["class_name"] == "tiger cat" and view["target"] == 282
    assert 0 < view["probability"] < 1 and view["rank"] in (1, 2, 3)
    top = W.compute_saliency_view(model, cat.image, None, "Grad-CAM", methods=FAST_METHODS)
    assert top["rank"] == 1 and top["map"].shape == (224, 224)
    by_name = W.compute_saliency_view(model, cat.image, "tiger cat", methods=FAST_METHODS)
    assert by_name["target"] == 282


def test_compute_saliency_view_default_registry_and_errors(model, samples):
    with pytest.raises(ValueError, match="Unknown saliency method.*SmoothGrad"):
        W.compute_saliency_view(model, samples[0].image, 282, "gradients")
    with pytest.raises(ValueError, match="one image"):
        W.compute_saliency_view(model, samples[0].image[None], 282, methods=FAST_METHODS)


def test_saliency_panels_are_pngs(model, samples):
    view = W.compute_saliency_view(model, samples[0].image, 282, methods=FAST_METHODS)
    panels = W.saliency_panels(view)
    assert set(panels) == {"image", "map", "overlay"}
    assert all(p.startswith(PNG) for p in panels.values())
    assert len(set(panels.values())) == 3


@pytest.fixture
def explorer(model):
    """A fresh explorer for each test, so that no test depends on what another one clicked."""
    return W.saliency_explorer(model, samples=["chelsea", "astronaut"], methods=FAST_METHODS, k=3)


def test_saliency_explorer_is_built_with_its_controls(explorer):
    c = explorer.controls
    assert c["image"].options == ("chelsea", "astronaut")
    assert len(c["class"].options) == 3 and c["class"].value == c["class"].options[0][1]
    assert c["method"].options == ("gradient", "Grad-CAM") and c["method"].value == "gradient"
    assert len(c["name"].options) == 1000
    assert all(bytes(c[k].value).startswith(PNG) for k in ("image_view", "map_view", "overlay_view"))
    assert "saliency-explorer" in explorer._dom_classes
    assert explorer.state["view"]["rank"] == 1
    assert "p = " in c["status"].value and c["progress"].value == c["progress"].max


def test_changing_the_class_recomputes_the_map(explorer):
    c = explorer.controls
    c["image"].value = "chelsea"
    c["method"].value = "gradient"
    before, view = c["map_view"].value, explorer.state["view"]
    other = c["class"].options[1][1]
    c["class"].value = other
    after = explorer.state["view"]
    assert after["target"] == other and after is not view
    assert not torch.allclose(after["map"], view["map"])
    assert c["map_view"].value != before and bytes(c["image_view"].value).startswith(PNG)
    assert after["class_name"] in c["status"].value


def test_method_image_and_name_controls_recompute(explorer, model):
    c = explorer.controls
    n = explorer.state["computations"]
    c["method"].value = "Grad-CAM"
    assert explorer.state["view"]["method"] == "Grad-CAM" and explorer.state["computations"] == n + 1
    c["image"].value = "astronaut"  # new image: one recomputation, class list refilled, top-1
    assert explorer.state["computations"] == n + 2
    assert explorer.state["view"]["rank"] == 1
    c["name"].value = "goldfish"  # any class by name: added to the list with its rank, selected
    assert c["class"].value == 1 and explorer.state["view"]["class_name"] == "goldfish"
    assert c["class"].options[-1][0].startswith("goldfish · p = ") and "rank" in c["class"].options[-1][0]


def test_upload_adds_an_image_and_bad_uploads_are_reported(explorer):
    c = explorer.controls
    c["upload"].value = _upload_value("red.png", _png_bytes())
    assert c["image"].value == "upload: red.png"
    assert explorer.state["view"]["image"].shape == (3, 224, 224)
    assert torch.allclose(explorer.state["view"]["image"][:, 100, 100],
                          torch.tensor([200, 30, 30]) / 255, atol=1e-2)
    c["upload"].value = _upload_value("notes.png", b"hello")
    assert "#b00020" in c["status"].value and "not an image" in c["status"].value
    assert c["image"].value == "upload: red.png"


def test_saliency_explorer_refuses_bad_arguments(model):
    with pytest.raises(ValueError, match="Unknown saliency method"):
        W.saliency_explorer(model, methods=FAST_METHODS, method="SmoothGrad")
    with pytest.raises(ValueError, match="samples is empty"):
        W.saliency_explorer(model, samples=[], methods=FAST_METHODS)


# ---- quadtree ----------------------------------------------------------------------------------

def _two_tone(size: int = 64) -> torch.Tensor:
    image = torch.zeros(3, size, size)
    image[:, :, size // 2:] = 1.0
    return image


def test_compute_quadtree_view_on_a_two_tone_image():
    view = W.compute_quadtree_view(_two_tone(), 0.1)
    assert view["n_leaves"] == 4 and view["pixels"] == 64 * 64
    assert view["leaf_fraction"] == pytest.approx(4 / 4096)
    assert view["psnr"] == float("inf")  # four constant quadrants reconstruct exactly
    assert torch.equal(view["reconstruction"], _two_tone())
    noisy = _two_tone() * 0.8 + 0.1 * torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    coarse, fine = W.compute_quadtree_view(noisy, 0.3), W.compute_quadtree_view(noisy, 0.02)
    assert coarse["n_leaves"] < fine["n_leaves"] and coarse["psnr"] < fine["psnr"]
    assert W.compute_quadtree_view(noisy, 0.02, min_size=8)["n_leaves"] <= 64


def test_quadtree_panels_and_explorer_follow_the_sliders():
    view = W.compute_quadtree_view(_two_tone(), 0.1)
    panels = W.quadtree_panels(view)
    assert set(panels) == {"leaves", "reconstruction"} and all(p.startswith(PNG) for p in panels.values())
    noisy = _two_tone() * 0.8 + 0.1 * torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    box = W.quadtree_explorer(noisy, threshold=0.3)
    c = box.controls
    assert c["image"] is None and c["min_size"].options == W.MIN_LEAF_CHOICES
    first, picture = box.state["view"]["n_leaves"], c["leaves_view"].value
    status = html.unescape(c["status"].value)
    assert f"N' = {first} leaves" in status and "PSNR" in status
    c["threshold"].value = 0.02
    assert box.state["view"]["n_leaves"] > first and c["leaves_view"].value != picture
    fine = box.state["view"]["n_leaves"]
    c["min_size"].value = 8
    assert box.state["view"]["n_leaves"] < fine and box.state["computations"] == 3


def test_quadtree_explorer_with_samples_and_bad_min_size():
    box = W.quadtree_explorer(samples=["chelsea", "rocket"], threshold=0.4, size=64)
    c = box.controls
    assert c["image"].options == ("chelsea", "rocket")
    n = box.state["view"]["n_leaves"]
    c["image"].value = "rocket"
    assert box.state["view"]["n_leaves"] != n and box.state["view"]["pixels"] == 64 * 64
    with pytest.raises(ValueError, match="min_size"):
        W.quadtree_explorer(_two_tone(), min_size=3)
