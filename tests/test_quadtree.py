"""Tests of utils.quadtree: decomposition, exact leaf convolution, MAC counts (occlusion: test_occlusion.py)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from utils.quadtree import (
    QuadTree,
    build_quadtree,
    conv_macs,
    per_leaf_conv2d,
    psnr,
    quadtree_conv2d,
    ring_mask,
    uniform_reconstruction,
)


def coverage(tree: QuadTree) -> torch.Tensor:
    """How many leaves cover each pixel (must be all ones)."""
    cover = torch.zeros(tree.height, tree.width, dtype=torch.long)
    for y, x, s in zip(tree.y.tolist(), tree.x.tolist(), tree.size.tolist(), strict=True):
        cover[y : y + s, x : x + s] += 1
    return cover


def blocky(c: int, h: int, w: int, block: int, seed: int = 0) -> torch.Tensor:
    """A piecewise-constant image: random colours on a grid of ``block``-sized cells."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(c, -(-h // block), -(-w // block), generator=g)
    return small.repeat_interleave(block, 1).repeat_interleave(block, 2)[:, :h, :w].contiguous()


# --- build_quadtree ---------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 64, 64), (3, 224, 224), (3, 37, 101), (1, 1, 1), (2, 5, 130)])
@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.6])
def test_leaves_tile_the_image_exactly_once(shape, threshold):
    image = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    tree = build_quadtree(image, threshold)
    assert torch.equal(coverage(tree), torch.ones(shape[1:], dtype=torch.long))
    # Squares of power-of-two side inside the image.
    assert torch.all((tree.size & (tree.size - 1)) == 0)
    assert torch.all(tree.y + tree.size <= shape[1]) and torch.all(tree.x + tree.size <= shape[2])
    assert tree.n_leaves == tree.y.numel() == tree.means.shape[1]
    labels = tree.labels()
    assert labels.shape == shape[1:] and int(labels.min()) >= 0


def test_tree_is_immutable_with_its_labels_and_boxes_computed_once():
    tree = build_quadtree(torch.rand(3, 24, 40, generator=torch.Generator().manual_seed(2)), 0.3)
    assert tree.labels() is tree.label_map  # computed by build_quadtree, not cached on first use
    with pytest.raises(dataclasses.FrozenInstanceError):
        tree.means = torch.zeros(3, tree.n_leaves)
    boxes = tree.boxes  # (x0, y0, x1, y1), exclusive ends
    for k, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        assert (tree.labels()[y0:y1, x0:x1] == k).all()


def test_constant_image_is_one_leaf():
    tree = build_quadtree(torch.full((3, 128, 128), 0.3), 0.0)
    assert tree.n_leaves == 1
    assert int(tree.size[0]) == 128
    assert torch.allclose(tree.reconstruct(), torch.full((3, 128, 128), 0.3))


def test_constant_non_power_of_two_image_has_few_leaves():
    tree = build_quadtree(torch.full((3, 224, 224), 0.7), 0.1)
    # 224 = 128 + 64 + 32: a 128 block, and per other 128-quadrant 6 blocks of 64 and 32 that
    # avoid leaving the image (only border blocks are split).
    assert tree.n_leaves == 1 + 3 * 6
    assert sorted(set(tree.size.tolist())) == [32, 64, 128]
    assert torch.equal(coverage(tree), torch.ones(224, 224, dtype=torch.long))


def test_threshold_zero_on_noise_gives_one_leaf_per_pixel():
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    tree = build_quadtree(image, 0.0)
    assert tree.n_leaves == 32 * 32
    assert torch.equal(tree.reconstruct(), image)


@pytest.mark.parametrize("block", [1, 4, 8, 16])
def test_reconstruction_exact_on_piecewise_constant_input(block):
    image = blocky(3, 64, 64, block)
    tree = build_quadtree(image, 0.0)
    assert tree.n_leaves <= (64 // block) ** 2
    assert torch.allclose(tree.reconstruct(), image, atol=1e-6)


def test_more_threshold_fewer_leaves_and_reconstruction_of_other_image():
    image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(2)) * 0.5
    counts = [build_quadtree(image, t).n_leaves for t in (0.0, 0.2, 0.4, 0.5)]
    assert counts == sorted(counts, reverse=True) and counts[-1] == 1
    tree = build_quadtree(image, 0.3)
    other = torch.rand(2, 64, 64)
    rec = tree.reconstruct(other)
    assert rec.shape == (2, 64, 64)
    # Leaf means preserve the image mean when leaves are weighted by area.
    assert math.isclose(float(rec.mean()), float(other.mean()), rel_tol=1e-5)


def test_min_and_max_size():
    image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(3))
    tree = build_quadtree(image, 0.0, min_size=4)
    assert int(tree.size.min()) == 4 and tree.n_leaves == 16 * 16
    tree = build_quadtree(torch.zeros(3, 64, 64), 1.0, max_size=16)
    assert int(tree.size.max()) == 16 and tree.n_leaves == 16


@pytest.mark.parametrize(
    ("kwargs", "image", "match"),
    [
        ({"threshold": -0.1}, torch.rand(3, 8, 8), "threshold"),
        ({"threshold": float("nan")}, torch.rand(3, 8, 8), "threshold"),
        ({"threshold": 0.1, "min_size": 0}, torch.rand(3, 8, 8), "min_size"),
        ({"threshold": 0.1, "min_size": 4, "max_size": 2}, torch.rand(3, 8, 8), "max_size"),
        ({"threshold": 0.1}, torch.rand(1, 3, 8, 8), "shape"),
        ({"threshold": 0.1}, torch.rand(8), "shape"),
        ({"threshold": 0.1}, torch.full((3, 8, 8), float("nan")), "NaN"),
    ],
)
def test_bad_inputs_raise_clear_value_errors(kwargs, image, match):
    with pytest.raises(ValueError, match=match):
        build_quadtree(image, **kwargs)


def test_non_tensor_raises_type_error():
    with pytest.raises(TypeError, match="torch.Tensor"):
        build_quadtree([[0.0]], 0.1)


# --- convolution ------------------------------------------------------------------------------

@pytest.mark.parametrize("m", [1, 3, 5, 7])
@pytest.mark.parametrize(("c_in", "c_out"), [(3, 1), (3, 16), (8, 4)])
@pytest.mark.parametrize("threshold", [0.0, 0.15, 0.5])
def test_quadtree_conv2d_equals_dense_conv_of_reconstruction(m, c_in, c_out, threshold):
    g = torch.Generator().manual_seed(m * 100 + c_in)
    image = torch.rand(c_in, 48, 40, generator=g)
    tree = build_quadtree(image, threshold)
    weight = torch.randn(c_out, c_in, m, m, generator=g) / math.sqrt(c_in * m * m)
    bias = torch.randn(c_out, generator=g)
    out = quadtree_conv2d(tree, image, weight, bias)
    ref = F.conv2d(tree.reconstruct(image)[None], weight, bias, padding=m // 2)[0]
    assert out.shape == (c_out, 48, 40)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("m", "padding"), [(3, 0), (3, 2), (5, 1), (4, 1), (4, 2), (2, 0), (6, 5)])
def test_quadtree_conv2d_other_paddings_and_even_kernels(m, padding):
    image = blocky(3, 40, 40, 8) * 0.5 + torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(4)) * 0.1
    tree = build_quadtree(image, 0.05)
    weight = torch.randn(5, 3, m, m) / (3 * m)
    out = quadtree_conv2d(tree, image, weight, None, padding=padding)
    ref = F.conv2d(tree.reconstruct()[None], weight, padding=padding)[0]
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_quadtree_conv2d_float64_is_exact_to_rounding():
    image = blocky(4, 64, 64, 8).double()
    tree = build_quadtree(image, 0.0)
    weight = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    out = quadtree_conv2d(tree, image, weight, torch.ones(6, dtype=torch.float64))
    ref = F.conv2d(image[None], weight, torch.ones(6, dtype=torch.float64), padding=1)[0]
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-12)


def test_even_kernel_without_padding_raises():
    image = torch.rand(3, 16, 16)
    tree = build_quadtree(image, 0.1)
    with pytest.raises(ValueError, match="even kernel"):
        quadtree_conv2d(tree, image, torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="C_in"):
        quadtree_conv2d(tree, image, torch.randn(2, 5, 3, 3))
    with pytest.raises(ValueError, match="tree"):
        quadtree_conv2d(tree, torch.rand(3, 8, 8), torch.randn(2, 3, 3, 3))


def test_ring_and_macs_on_blocks():
    # 64×64 in 16×16 constant blocks, all different: 16 leaves; a 3×3 kernel's ring is one pixel
    # either side of every block edge (and the image border).
    image = blocky(3, 64, 64, 16)
    tree = build_quadtree(image, 0.0)
    assert tree.n_leaves == 16
    ring = ring_mask(tree, 3)
    assert int((~ring).sum()) == 16 * 14 * 14
    macs = conv_macs(tree, 3, 3, 8)
    r = 64 * 64 - 16 * 14 * 14
    assert macs == {"dense": 9 * 64 * 64 * 24, "quadtree_exact": 24 * (9 * r + 16),
                    "per_leaf": 9 * 16 * 24, "ring": r, "leaves": 16, "pixels": 64 * 64}
    assert macs["per_leaf"] < macs["quadtree_exact"] < macs["dense"]
    # A 1×1 kernel has no ring: the exact cost is one product per leaf.
    assert conv_macs(tree, 1, 3, 8)["ring"] == 0


def test_per_leaf_conv_is_exact_only_where_the_image_is_constant():
    image = blocky(3, 64, 64, 16)
    tree = build_quadtree(image, 0.0)
    weight = torch.randn(4, 3, 3, 3)
    approx = per_leaf_conv2d(tree, image, weight)
    dense = F.conv2d(image[None], weight, padding=1)[0]
    interior = ~ring_mask(tree, 3)
    torch.testing.assert_close(approx[:, interior], dense[:, interior], atol=1e-5, rtol=1e-5)
    assert float((approx - dense).abs().max()) > 1e-3  # the ring is where it is wrong


def test_uniform_reconstruction_and_psnr():
    image = torch.rand(3, 60, 80, generator=torch.Generator().manual_seed(5))
    rec = uniform_reconstruction(image, 12)
    assert rec.shape == image.shape
    assert len(torch.unique(rec[0])) <= 12
    assert torch.equal(uniform_reconstruction(image, 60 * 80), image)
    assert psnr(image, image) == math.inf
    assert math.isclose(psnr(torch.zeros(1, 2, 2), torch.full((1, 2, 2), 0.1)), 20.0, rel_tol=1e-6)
