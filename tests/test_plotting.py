"""utils.plotting: display scaling, and that each figure helper draws what it promises."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from utils.plotting import (  # noqa: E402
    draw_box,
    draw_leaves,
    image_grid,
    normalise_map,
    overlay,
    saliency_row,
    show_image,
    show_map,
)
from utils.quadtree import build_quadtree  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_normalise_map_scales_to_unit_range_and_clips_at_the_percentile():
    m = torch.arange(100.0).reshape(10, 10)
    m[0, 0] = 1e6                              # one extreme gradient; the minimum is now 1
    out = normalise_map(m, percentile=99.0)
    assert out.shape == (10, 10) and out.min() == 0.0 and out.max() == 1.0
    assert out[0, 0] == 1.0 and np.isclose(out[5, 5], (55 - 1) / (np.percentile(m.numpy(), 99.0) - 1))
    assert np.all(normalise_map(torch.full((4, 4), 3.0)) == 0)   # a constant map is all dark


def test_normalise_map_rejects_a_batch():
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        normalise_map(torch.zeros(2, 4, 4))


def test_show_image_map_and_overlay_draw_the_pixels():
    img = torch.rand(3, 8, 6)
    ax = show_image(img, title="photo")
    assert ax.get_title() == "photo" and ax.get_xticks().size == 0
    np.testing.assert_allclose(ax.get_images()[0].get_array(), img.permute(1, 2, 0).numpy(), atol=1e-6)
    m = torch.rand(8, 6)
    ax = show_map(m)
    np.testing.assert_allclose(ax.get_images()[0].get_array(), normalise_map(m))
    ax = overlay(img, m, alpha=0.4)
    base, top = ax.get_images()
    np.testing.assert_allclose(base.get_array(), img.permute(1, 2, 0).numpy() * 0.6, atol=1e-6)
    assert top.get_alpha() == 0.4


def test_draw_box_uses_exclusive_ends():
    _, ax = plt.subplots()
    draw_box(ax, (2, 3, 7, 5))                  # columns 2..6, rows 3..4
    (rect,) = ax.patches
    assert rect.get_xy() == (1.5, 2.5) and (rect.get_width(), rect.get_height()) == (5, 2)


def test_image_grid_hides_the_spare_axes():
    fig, axes = image_grid(5, 3)
    assert len(axes) == 5 and len(fig.axes) == 6 and not fig.axes[5].axison


def test_saliency_row_puts_images_above_their_maps_with_boxes():
    imgs, maps = [torch.rand(3, 8, 8)] * 2, [torch.rand(8, 8)] * 2
    fig = saliency_row(imgs, maps, titles=["a", "b"], boxes=[(0, 0, 4, 4), (1, 1, 8, 8)])
    assert len(fig.axes) == 4 and fig.axes[1].get_title() == "b"
    assert all(len(ax.patches) == 1 for ax in fig.axes)


def test_draw_leaves_runs():
    image = torch.rand(3, 32, 32)
    tree = build_quadtree(image, 0.5)
    fig, axes = plt.subplots(1, 2)
    draw_leaves(axes[0], tree, image, reconstruct=True, title="t")
    draw_leaves(axes[1], torch.tensor([[0, 0, 16, 16], [16, 16, 32, 32]]))  # (x0, y0, x1, y1)
    assert len(axes[0].collections) == 1 and len(axes[1].collections) == 1
    plt.close(fig)
