"""Tests of utils.localisation (GraphCut localisation, IoU, baselines) and utils.ilsvrc (the evaluate command)."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from utils.ilsvrc import find_ilsvrc_pairs, imagenet_wnids, main, read_ilsvrc_boxes
from utils.images import crop_box_to_original, load_image, resize_crop_box, sample_info
from utils.localisation import (
    SWEEP_THRESHOLDS,
    box_iou,
    cam_box,
    centred_box,
    cross_validated_sweep,
    largest_component,
    localise,
    mean_box_size,
    saliency_box,
    threshold_box,
    threshold_sweep,
)

H = W = 64
DISC_BOX = (20, 14, 45, 39)  # the disc of radius 12.5 centred at (32, 26), exclusive ends


def _disc_scene() -> tuple[torch.Tensor, torch.Tensor]:
    """A red disc on a green, slightly textured background, and a blurry saliency bump on it."""
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    r2 = (xx - 32.0) ** 2 + (yy - 26.0) ** 2
    inside = r2 <= 12.5**2
    image = torch.empty(3, H, W)
    image[0] = torch.where(inside, 0.85, 0.15)
    image[1] = torch.where(inside, 0.15, 0.7)
    image[2] = 0.2
    image = (image + 0.03 * torch.randn(image.shape, generator=gen)).clamp(0, 1)
    saliency = torch.exp(-r2 / (2 * 9.0**2)) + 0.05 * torch.rand(H, W, generator=gen)
    return image, saliency


@pytest.mark.parametrize("hard_seeds", [False, True])
def test_localise_finds_the_disc(hard_seeds):
    image, saliency = _disc_scene()
    loc = localise(image, saliency, hard_seeds=hard_seeds)
    assert loc.hard_seeds is hard_seeds and not loc.empty_cut
    assert loc.mask.dtype == torch.bool and loc.mask.shape == (H, W)
    assert all(isinstance(v, int) for v in loc.box)
    assert box_iou(loc.box, DISC_BOX) > 0.85
    # The steps nest: segmentation ⊇ mask, and the box is the mask's bounding box; with hard seeds
    # the seeds keep their labels (without, they only fit the colour models).
    if hard_seeds:
        assert not (loc.fg_seeds & ~loc.segmentation).any()
        assert not (loc.bg_seeds & loc.segmentation).any()
    assert not (loc.mask & ~loc.segmentation).any()
    ys, xs = torch.nonzero(loc.mask, as_tuple=True)
    assert loc.box == (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    # Quantile thresholds: ~5 % of pixels are fg seeds, ~30 % bg seeds.
    assert abs(loc.fg_seeds.float().mean().item() - 0.05) < 0.01
    assert abs(loc.bg_seeds.float().mean().item() - 0.30) < 0.01
    assert loc.fg_threshold > loc.bg_threshold


def test_paper_cut_relabels_seeds_that_the_colour_models_reject():
    """The saliency bump sits on the disc's right edge, so part of the top 5 % lies on the green
    background. The paper's cut (seeds fit the colour models only) labels those pixels background
    and finds the disc exactly; clamping the seeds drags the box out over them."""
    image, _ = _disc_scene()
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    saliency = torch.exp(-((xx - 44.0) ** 2 + (yy - 26.0) ** 2) / (2 * 6.0**2))
    paper = localise(image, saliency)
    hard = localise(image, saliency, hard_seeds=True)
    assert paper.box == DISC_BOX
    assert (paper.fg_seeds & ~paper.segmentation).sum() > 20  # seeds the cut overruled
    assert not (hard.fg_seeds & ~hard.segmentation).any()
    assert hard.box[2] > DISC_BOX[2] + 4 and box_iou(hard.box, DISC_BOX) < 0.85


def test_empty_cut_falls_back_to_the_foreground_seeds():
    """A flat grey image gives both colour models the same colours: the cut may label nothing
    foreground. The result then says so and boxes the foreground seeds' largest component."""
    gen = torch.Generator().manual_seed(0)
    image = (0.5 + 0.01 * torch.randn(3, 32, 32, generator=gen)).clamp(0, 1)
    loc = localise(image, torch.rand(32, 32, generator=gen))
    assert loc.empty_cut and torch.equal(loc.segmentation, loc.fg_seeds)
    assert loc.box == largest_component(loc.fg_seeds)[1]
    with pytest.raises(TypeError, match="hard_seeds"):
        localise(image, torch.rand(32, 32), hard_seeds="yes")


def test_localise_is_deterministic_and_accepts_numpy():
    image, saliency = _disc_scene()
    a = localise(image, saliency, grabcut_iterations=2)
    b = localise(image, saliency.numpy(), grabcut_iterations=2)
    assert a.box == b.box and torch.equal(a.mask, b.mask)


def test_localise_on_a_sample_with_smoothgrad_is_better_than_the_plain_gradient(model, samples):
    from utils.saliency import saliency_map, smoothgrad

    s = next(s for s in samples if s.name == "flower")
    sg = smoothgrad(model, s.image, s.target, samples=16)
    plain = saliency_map(model, s.image, s.target)
    iou_sg = box_iou(localise(s.image, sg).box, s.box)
    iou_plain = box_iou(localise(s.image, plain).box, s.box)
    assert iou_sg >= 0.6 and iou_sg > iou_plain


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"saliency": torch.rand(32, 64)}, "shape"),
        ({"saliency": torch.ones(H, W)}, "constant"),
        ({"saliency": torch.zeros(0, 0)}, "empty"),
        ({"saliency": torch.full((H, W), float("nan"))}, "NaN"),
        ({"saliency": torch.rand(1, H, W)}, "one map"),
        ({"fg_quantile": 0.3, "bg_quantile": 0.5}, "below"),
        ({"fg_quantile": 0.5, "bg_quantile": 0.5}, "below"),
        ({"fg_quantile": 1.0}, "fg_quantile"),
        ({"bg_quantile": 0.0}, "bg_quantile"),
        ({"bg_quantile": -0.1}, "bg_quantile"),
    ],
)
def test_localise_rejects_bad_input(kwargs, message):
    image, saliency = _disc_scene()
    kwargs = {"saliency": saliency, **kwargs}
    with pytest.raises(ValueError, match=message):
        localise(image, kwargs.pop("saliency"), **kwargs)


def test_localise_rejects_batches_and_too_few_seeds():
    image, saliency = _disc_scene()
    with pytest.raises(ValueError, match="one image"):
        localise(image[None], saliency)
    with pytest.raises(ValueError, match="seed pixels"):
        localise(torch.rand(3, 4, 4), torch.rand(4, 4))


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching, exclusive ends
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 4, 4), (1, 1, 3, 3)) == box_iou((1, 1, 3, 3), (0, 0, 4, 4)) == 0.25
    with pytest.raises(ValueError, match="x0 < x1"):
        box_iou((5, 0, 5, 10), (0, 0, 1, 1))
    with pytest.raises(ValueError, match="x0, y0, x1, y1"):
        box_iou((0, 0, 1), (0, 0, 1, 1))


def test_largest_component_and_baselines():
    mask = np.zeros((20, 30), bool)
    mask[2:5, 3:6] = True  # 9 pixels
    mask[10:18, 12:27] = True  # 120 pixels
    comp, box = largest_component(mask)
    assert box == (12, 10, 27, 18) and int(comp.sum()) == 120
    with pytest.raises(ValueError, match="empty"):
        largest_component(np.zeros((4, 4), bool))
    sal = torch.from_numpy(mask.astype(np.float32))
    sal[3, 4] = 2.0  # the brightest pixel is in the small blob, the largest component is not
    assert saliency_box(sal, quantile=0.9) == (12, 10, 27, 18)
    assert centred_box(224, 224, (100, 50)) == (62, 87, 162, 137)
    assert centred_box(10, 10, (40, 40)) == (0, 0, 10, 10)
    assert mean_box_size([(0, 0, 10, 20), (0, 0, 30, 40)]) == (20.0, 30.0)


def test_resize_crop_box_maps_manifest_boxes():
    # chelsea (451×300) is labelled with the box (0, 0, 400, 300): after resizing the short side to
    # 224 and cropping the centre, the box covers the whole crop.
    info = sample_info("chelsea")
    assert resize_crop_box(info["box"], (info["width"], info["height"]), 224) == (0, 0, 224, 224)
    # A box drawn on a synthetic image lands on the same pixels after load_image.
    w, h = 300, 200
    a = np.zeros((h, w, 3), np.uint8)
    a[50:150, 120:210] = 255
    box = resize_crop_box((120, 50, 210, 150), (w, h), 100)
    loaded = load_image(a, 100)[0] > 0.5
    ys, xs = torch.nonzero(loaded, as_tuple=True)
    found = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    assert max(abs(p - q) for p, q in zip(box, found, strict=True)) <= 1


def test_crop_box_to_original_inverts_resize_crop_box():
    size, original = 224, (640, 427)
    for box in [(300, 125, 342, 410), (200, 50, 400, 300)]:
        crop = resize_crop_box(box, original, size)
        back = crop_box_to_original(crop, original, size)
        assert max(abs(p - q) for p, q in zip(back, box, strict=True)) <= 2


def test_imagenet_wnids_match_the_model_classes(model):
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 and list(wnids) == sorted(wnids)
    assert wnids[0] == "n01440764" and model.categories[0] == "tench"
    assert wnids[282] == "n02123159" and model.categories[282] == "tiger cat"


def _write_xml(path, width, height, objects):
    parts = [f"<annotation><filename>{path.stem}</filename><size><width>{width}</width>"
             f"<height>{height}</height><depth>3</depth></size>"]
    for name, (x0, y0, x1, y1) in objects:
        parts.append(f"<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
                     f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")
    path.write_text("".join(parts) + "</annotation>")


def test_read_ilsvrc_boxes(tmp_path):
    p = tmp_path / "a.xml"
    _write_xml(p, 50, 40, [("n02123159", (0, 5, 49, 39)), ("n01440764", (10, 10, 19, 14))])
    size, objects = read_ilsvrc_boxes(p)
    assert size == (50, 40)
    assert objects == [("n02123159", (0.0, 5.0, 50.0, 40.0)), ("n01440764", (10.0, 10.0, 20.0, 15.0))]
    (tmp_path / "bad.xml").write_text("<annotation><size>")
    with pytest.raises(ValueError, match="not a readable XML"):
        read_ilsvrc_boxes(tmp_path / "bad.xml")
    _write_xml(tmp_path / "none.xml", 5, 5, [])
    with pytest.raises(ValueError, match="no <object>"):
        read_ilsvrc_boxes(tmp_path / "none.xml")


@pytest.fixture()
def ilsvrc_fixture(tmp_path, samples):
    """Two JPEGs (the samples chelsea and flower, 224×224) and their ILSVRC-style XML files."""
    images, boxes = tmp_path / "val", tmp_path / "bbox"
    images.mkdir()
    boxes.mkdir()
    wnids = imagenet_wnids()
    for i, s in enumerate(x for x in samples if x.name in ("chelsea", "flower")):
        stem = f"ILSVRC2012_val_{i + 1:08d}"
        pixels = (s.image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        Image.fromarray(pixels).save(images / f"{stem}.JPEG", quality=95)
        x0, y0, x1, y1 = s.box
        _write_xml(boxes / f"{stem}.xml", 224, 224, [(wnids[s.target], (x0, y0, x1 - 1, y1 - 1))])
    (images / "no_annotation.JPEG").write_bytes((images / f"{stem}.JPEG").read_bytes())
    return images, boxes


def test_evaluate_command_end_to_end(ilsvrc_fixture, tmp_path, capsys):
    images, boxes = ilsvrc_fixture
    out_csv = tmp_path / "results.csv"
    code = main(["evaluate", "--images", str(images), "--boxes", str(boxes), "--device", "cpu",
                 "--samples", "2", "--batch-size", "2", "--no-progress", "--csv", str(out_csv)])
    out = capsys.readouterr().out
    assert code == 0
    assert "images" in out and " 2\n" in out.split("top-1 classification")[0]
    assert any(x.startswith("paper, top-5") and x.endswith("46.4 %") for x in out.splitlines())
    assert "1 images without an annotation were skipped" in out
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 2 * 5
    # The printed top-5 localisation error is the fraction of images without a right prediction.
    right = {r["image"] for r in rows if float(r["iou"]) >= 0.5}
    expected = 100 * (1 - len(right) / 2)
    line = next(x for x in out.splitlines() if x.startswith("top-5 localisation error"))
    assert float(line.split()[-2]) == pytest.approx(expected)
    # Both samples' true class is among the network's top 5 (tiger cat, daisy).
    line = next(x for x in out.splitlines() if x.startswith("top-5 classification error"))
    assert float(line.split()[-2]) == 0.0
    # The predictions' boxes lie inside the 224×224 originals.
    for r in rows:
        x0, y0, x1, y1 = (float(r[k]) for k in ("x0", "y0", "x1", "y1"))
        assert 0 <= x0 < x1 <= 224 and 0 <= y0 < y1 <= 224


def test_evaluate_command_limit_and_errors(ilsvrc_fixture, tmp_path, capsys):
    images, boxes = ilsvrc_fixture
    pairs, unmatched = find_ilsvrc_pairs(images, boxes, limit=1)
    assert len(pairs) == 1 and unmatched == 1 and pairs[0][0].stem == pairs[0][1].stem
    assert main(["evaluate", "--images", str(tmp_path / "missing"), "--boxes", str(boxes)]) == 2
    assert "does not exist" in capsys.readouterr().err
    _write_xml(next(boxes.glob("*.xml")), 224, 224, [("n99999999", (0, 0, 10, 10))])
    assert main(["evaluate", "--images", str(images), "--boxes", str(boxes), "--device", "cpu",
                 "--samples", "1", "--no-progress"]) == 2
    assert "not ILSVRC-2012 classes" in capsys.readouterr().err


def test_module_runs_as_a_command():
    """``python -m utils.ilsvrc evaluate`` is the command (the old ``utils.localisation`` alias, and
    the import cycle it needed, are gone)."""
    done = subprocess.run([sys.executable, "-m", "utils.ilsvrc", "evaluate", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--images" in done.stdout and "--limit" in done.stdout
    assert not hasattr(__import__("utils.localisation").localisation, "main")


def _halo_maps(n: int = 6) -> tuple[torch.Tensor, list[tuple[int, int, int, int]], list[tuple[int, int, int, int]]]:
    """Maps of 1.0 on an inner box and 0.5 on a halo around it: thresholds above 0.5 box the inner
    box exactly, thresholds at or below 0.5 box the halo."""
    maps = torch.zeros(n, 48, 48)
    inner, outer = [], []
    for i in range(n):
        x, y = 4 + 3 * i, 6 + 2 * i
        maps[i, y - 4:y + 18, x - 4:x + 20] = 0.5
        maps[i, y:y + 14, x:x + 16] = 1.0
        inner.append((x, y, x + 16, y + 14))
        outer.append((x - 4, y - 4, x + 20, y + 18))
    return maps, inner, outer


def test_cam_box_and_threshold_box():
    sal = torch.zeros(40, 60)
    sal[5:25, 5:30] = 0.3  # a large, dim blob
    sal[30:34, 40:44] = 1.0  # a small, bright blob
    assert cam_box(sal) == (5, 5, 30, 25)  # 0.2 × max: both blobs kept, the larger wins
    assert cam_box(sal, 0.5) == (40, 30, 44, 34)  # only the bright blob is above half the maximum
    assert threshold_box(sal + 7.0, 0.2) == (5, 5, 30, 25)  # min–max normalised: an offset changes nothing
    with pytest.raises(ValueError, match="threshold"):
        threshold_box(sal, 1.0)
    with pytest.raises(ValueError, match="constant"):
        cam_box(torch.ones(8, 8))


def test_threshold_sweep_chooses_on_calibration_and_reports_held_out():
    maps, inner, outer = _halo_maps()
    result = threshold_sweep(maps, inner, calibration=[0, 2, 4])
    assert result.threshold == 0.55  # the smallest threshold above the halo (ties → mean IoU → smaller)
    assert result.heldout == (1, 3, 5) and result.heldout_ious == (1.0, 1.0, 1.0)
    assert result.heldout_boxacc == 1.0 and len(result.calibration_boxacc) == len(SWEEP_THRESHOLDS)
    # The choice sees only the calibration photographs: if their truth is the halo, the threshold
    # drops below 0.5 and the held-out photographs (whose truth is the inner box) fail.
    truth = [outer[i] if i % 2 == 0 else inner[i] for i in range(6)]
    mixed = threshold_sweep(maps, truth, calibration=[True, False] * 3)
    assert mixed.threshold <= 0.5 and mixed.heldout_boxacc == 0.0
    assert all(v < 0.5 for v in mixed.heldout_ious)
    # Several true boxes: the best-matching one counts.
    both = threshold_sweep(maps, [[inner[i], outer[i]] for i in range(6)], calibration=[0, 1, 2])
    assert both.heldout_boxacc == 1.0


def test_cross_validated_sweep_gives_every_photograph_a_held_out_iou():
    maps, inner, outer = _halo_maps()
    ious, chosen = cross_validated_sweep(maps, inner, folds=3)
    assert ious == [1.0] * 6 and chosen == [0.55] * 3
    truth = [outer[i] if i % 2 == 0 else inner[i] for i in range(6)]
    ious, chosen = cross_validated_sweep(maps, truth, folds=2)
    # fold 0 (even, halo truth) gets the threshold chosen on the odd ones (inner), and vice versa
    assert chosen[0] > 0.5 >= chosen[1] and max(ious) < 0.5


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"calibration": []}, ValueError, "both"),
        ({"calibration": list(range(6))}, ValueError, "both"),
        ({"calibration": [0, 9]}, ValueError, r"\[0, 6\)"),
        ({"calibration": [True, False]}, ValueError, "one per map"),
        ({"calibration": [0], "thresholds": []}, ValueError, "empty"),
        ({"calibration": [0], "thresholds": [0.0]}, ValueError, "threshold"),
        ({"calibration": [0], "iou_threshold": 1.5}, ValueError, "iou_threshold"),
    ],
)
def test_threshold_sweep_rejects_bad_input(kwargs, error, message):
    maps, inner, _ = _halo_maps()
    with pytest.raises(error, match=message):
        threshold_sweep(maps, inner, **kwargs)
    with pytest.raises(ValueError, match="boxes"):
        threshold_sweep(maps, inner[:5], calibration=[0])
    with pytest.raises(ValueError, match="folds"):
        cross_validated_sweep(maps, inner, folds=7)
