"""Loading images: every source type, modes, sizes, boxes and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from utils import images
from utils.images import (
    load_image,
    load_sample,
    resize_crop_box,
    sample_info,
    sample_names,
    sample_objects,
)

#: The course's eight photographs, in the order the notebooks print them.
COURSE = ["chelsea", "coffee", "rocket", "camera", "grace_hopper", "china", "flower", "astronaut"]


def _check(t: torch.Tensor, size: int = 224):
    assert t.shape == (3, size, size) and t.dtype == torch.float32
    assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0


def test_samples_manifest():
    """Every entry is complete, its file matches its SHA-256 and size, every box lies inside."""
    import hashlib

    from utils.models import imagenet_categories

    categories = imagenet_categories()
    names = sample_names("all")
    assert len(names) == len(set(names)) >= 24
    for n in names:
        info = sample_info(n)
        for key in ("file", "source", "licence", "credit", "sha256", "set", "mode"):
            assert info.get(key), f"{n}: {key} missing"
        assert info["set"] in ("course", "evaluation")
        assert 0 <= info["class_index"] < 1000 and info["class_name"] == categories[info["class_index"]]
        path = images.data_dir() / info["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == info["sha256"], n
        with Image.open(path) as im:
            assert im.size == (info["width"], info["height"]) and im.mode == info["mode"], n
        objects = sample_objects(n)
        assert objects[0] == (info["class_index"], tuple(info["box"])), f"{n}: objects[0] is not the main object"
        for c, (x0, y0, x1, y1) in objects:
            assert 0 <= c < 1000
            assert 0 <= x0 < x1 <= info["width"] and 0 <= y0 < y1 <= info["height"], n
            resize_crop_box((x0, y0, x1, y1), (info["width"], info["height"]))  # inside the crop
        if "objects" in info:
            assert all(o["class_name"] == categories[o["class_index"]] for o in info["objects"])
        _check(load_image(n))


def test_course_samples_stay_the_default():
    assert sample_names() == sample_names("course") == COURSE
    assert [s.name for s in images.load_samples(64)] == COURSE
    everything = sample_names("all")
    assert everything[:8] == COURSE and len(everything) >= 24
    assert all(sample_info(n)["set"] == "evaluation" for n in everything[8:])
    with pytest.raises(ValueError, match="course"):
        sample_names("extended")


def test_evaluation_set_has_small_objects_and_pairs():
    """At least half of all photographs have a main box under 40 % of the 224² crop; several hold two
    labelled objects."""
    small = 0
    for n in sample_names("all"):
        info = sample_info(n)
        x0, y0, x1, y1 = resize_crop_box(info["box"], (info["width"], info["height"]), 224)
        small += (x1 - x0) * (y1 - y0) < 0.4 * 224**2
    assert 2 * small >= len(sample_names("all"))
    assert sum(len(sample_objects(n)) >= 2 for n in sample_names("all")) >= 4


def test_load_sample_maps_every_object():
    s = load_sample("spaniels")
    info = sample_info("spaniels")
    assert len(s.objects) == 2 and s.objects[0] == (s.target, s.box)
    assert s.objects[1][1] == resize_crop_box(info["objects"][1]["box"], (info["width"], info["height"]))
    assert load_sample("chelsea").objects == ((282, (0, 0, 224, 224)),)


def test_sources_agree(tmp_path):
    path = images.sample_path("coffee")
    ref = load_image("coffee")
    pil = Image.open(path)
    assert torch.equal(load_image(path), ref)
    assert torch.equal(load_image(str(path)), ref)
    assert torch.equal(load_image(pil), ref)
    assert torch.equal(load_image(np.asarray(pil)), ref)
    assert (load_image(np.asarray(pil) / 255.0) - ref).abs().max() <= 1 / 255 + 1e-6


def test_size_and_centre_crop():
    t = load_image("chelsea", 100)
    _check(t, 100)
    # a wide image keeps its centre: a 20×10 array with a bright centre column band
    a = np.zeros((10, 20), dtype=np.uint8)
    a[:, 5:15] = 255
    assert load_image(a, 10).min() > 0.9


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F", "1"])
def test_modes_become_rgb(mode, tmp_path):
    base = Image.open(images.sample_path("chelsea"))
    if mode == "I;16":
        im = Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257)
    elif mode in ("I", "F"):
        im = base.convert("L").convert(mode)
    else:
        im = base.convert(mode)
    _check(load_image(im, 64), 64)


def test_sixteen_bit_png_keeps_brightness(tmp_path):
    a = np.full((32, 32), 65535 // 2, dtype=np.uint16)
    path = tmp_path / "grey16.png"
    Image.fromarray(a).save(path)
    t = load_image(path, 16)
    assert abs(float(t.mean()) - 0.5) < 0.01


def test_rgba_is_composited_on_white():
    a = np.zeros((8, 8, 4), dtype=np.uint8)  # fully transparent black
    assert torch.allclose(load_image(a, 8), torch.ones(3, 8, 8))


def test_exif_orientation_is_honoured(tmp_path):
    a = np.zeros((20, 40, 3), dtype=np.uint8)
    a[:, :20] = 255  # left half white
    im = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "rotated.jpg"
    im.save(path, exif=exif.tobytes(), quality=95)
    t = load_image(path, 20)
    # displayed upright: the white half is now on top
    assert t[:, :8].mean() > 0.9 and t[:, 12:].mean() < 0.1


def test_box_mapping_through_resize_and_crop():
    # 400×200 image → shorter side 100 → 200×100, crop 50 on each side
    assert resize_crop_box((100, 0, 300, 200), (400, 200), 100) == (0, 0, 100, 100)
    assert resize_crop_box((150, 50, 250, 150), (400, 200), 100) == (25, 25, 75, 75)
    # the box of a bright rectangle lands on the bright pixels of the loaded image
    a = np.zeros((200, 400), dtype=np.uint8)
    a[50:150, 150:250] = 255
    x0, y0, x1, y1 = resize_crop_box((150, 50, 250, 150), (400, 200), 100)
    t = load_image(a, 100)[0]
    assert t[y0 + 1:y1 - 1, x0 + 1:x1 - 1].min() > 0.9
    assert t[:, : x0 - 1].max() < 0.1 and t[:, x1 + 1:].max() < 0.1
    with pytest.raises(ValueError, match="outside the centre crop"):
        resize_crop_box((0, 0, 40, 200), (400, 200), 100)
    with pytest.raises(ValueError, match="not inside"):
        resize_crop_box((0, 0, 500, 10), (400, 200), 100)


def test_load_sample_maps_box():
    s = load_sample("flower")
    info = sample_info("flower")
    assert s.box == resize_crop_box(info["box"], (info["width"], info["height"]), 224)
    assert s.target == info["class_index"] == 985


def test_missing_file_names_the_path(tmp_path):
    p = tmp_path / "nope.jpg"
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        load_image(p)
    with pytest.raises(FileNotFoundError, match="chelsea"):
        load_image("chelsae")  # a misspelt sample name suggests the right one


@pytest.mark.parametrize("content", [b"", b"this is text, not a JPEG", b"\xff\xd8\xff\xe0" + b"\0" * 50])
def test_not_an_image(tmp_path, content):
    p = tmp_path / "fake.jpg"
    p.write_bytes(content)
    with pytest.raises(ValueError):
        load_image(p)


@pytest.mark.parametrize("sample, suffix, keep", [("rocket", ".jpg", 3), ("coffee", ".png", 2)])
def test_truncated_file(tmp_path, sample, suffix, keep):
    """A JPEG cut to a third, a PNG cut in half: a clear error, not a half-decoded image."""
    data = images.sample_path(sample).read_bytes()
    p = tmp_path / f"truncated{suffix}"
    p.write_bytes(data[: len(data) // keep])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_image(p)


def test_pixel_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    with pytest.raises(ValueError, match="MAX_PIXELS"):
        load_image(np.zeros((40, 40), dtype=np.uint8))


def test_bad_arguments():
    with pytest.raises(ValueError, match="size"):
        load_image("coffee", 0)
    with pytest.raises(TypeError):
        load_image(3.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_image(np.full((4, 4), 2.0))
    with pytest.raises(ValueError, match="shape"):
        load_image(np.zeros((4, 4, 2)))


def test_sample_checksum(tmp_path, monkeypatch):
    import shutil

    for f in images.data_dir().iterdir():
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "coffee.png").write_bytes(b"tampered")
    monkeypatch.setenv("SALIENCY_COURSE_DATA", str(tmp_path))
    images._manifest.cache_clear()
    try:
        with pytest.raises(ValueError, match="SHA-256"):
            load_image("coffee")
    finally:
        monkeypatch.delenv("SALIENCY_COURSE_DATA")
        images._manifest.cache_clear()


def test_box_mask():
    from utils.images import box_mask

    m = box_mask((1, 2, 4, 3), 5, 6)
    assert m.shape == (5, 6) and m.sum() == 3 and m[2, 1:4].all()
    with pytest.raises(ValueError):
        box_mask((0, 0, 7, 1), 5, 6)


def test_one_pixel_image(tmp_path):
    p = tmp_path / "one.png"
    Image.new("RGB", (1, 1), (255, 0, 0)).save(p)
    t = load_image(p, 4)
    assert t.shape == (3, 4, 4) and torch.allclose(t[0], torch.ones(4, 4)) and t[1:].max() == 0


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    """A real 10000×10000 PNG (a few hundred kB on disk) is refused by its header alone."""
    p = tmp_path / "huge.png"
    Image.new("1", (10_000, 10_000)).save(p)
    with pytest.raises(ValueError, match="above the limit"):
        load_image(p)


def test_palette_with_transparency(tmp_path):
    im = Image.new("P", (6, 6), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.info["transparency"] = 0
    p = tmp_path / "palette.png"
    im.save(p, transparency=0)
    assert torch.allclose(load_image(p, 6), torch.ones(3, 6, 6))  # transparent → white


def test_box_is_a_tuple_that_prints_as_one():
    box = images.Box(2, 3, 10, 7)
    x0, y0, x1, y1 = box
    assert (x0, y0, x1, y1) == (2, 3, 10, 7) == box and isinstance(box, tuple)
    assert (box.width, box.height) == (8, 4) and repr(box) == str(box) == "(2, 3, 10, 7)"
    assert isinstance(images.resize_crop_box((0, 0, 100, 50), (200, 100)), images.Box)


def test_gaussian_blur_keeps_constants_and_smooths():
    flat = torch.full((1, 3, 16, 16), 0.3)
    torch.testing.assert_close(images.gaussian_blur(flat, 5.0, kernel_size=11), flat)
    noise = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert images.gaussian_blur(noise, 5.0, kernel_size=11).std() < noise.std() / 2
    assert images.gaussian_blur(noise[0], 1.0).shape == (3, 16, 16)  # one image, default 7×7 kernel
    assert images.gaussian_blur(noise, 0.0) is noise
    # separable and normalised: the same as two 1-D passes with a hand-made kernel (reflected borders)
    r = torch.arange(7.0) - 3
    g = torch.exp(-(r**2) / 2)
    g = g / g.sum()
    x = torch.nn.functional.pad(noise, (3, 3, 3, 3), mode="reflect")
    hand = torch.nn.functional.conv2d(x.reshape(3, 1, 22, 22), g.view(1, 1, 1, 7))
    hand = torch.nn.functional.conv2d(hand, g.view(1, 1, 7, 1)).reshape(1, 3, 16, 16)
    torch.testing.assert_close(images.gaussian_blur(noise, 1.0), hand, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="odd"):
        images.gaussian_blur(noise, 1.0, kernel_size=4)

