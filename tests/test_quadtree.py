"""Tests of utils.quadtree: decomposition, exact leaf convolution, MAC counts, occlusion."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from utils.quadtree import (
    REFINE_RULES,
    QuadTree,
    build_quadtree,
    conv_macs,
    draw_leaves,
    field_to_map,
    occlusion_field,
    per_leaf_conv2d,
    psnr,
    quadtree_conv2d,
    quadtree_occlusion,
    refine_lattice,
    replay_lattice,
    ring_mask,
    sliding_window_occlusion,
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


def test_draw_leaves_runs():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image = torch.rand(3, 32, 32)
    tree = build_quadtree(image, 0.5)
    fig, axes = plt.subplots(1, 2)
    draw_leaves(axes[0], tree, image, reconstruct=True, title="t")
    draw_leaves(axes[1], torch.tensor([[0, 0, 16, 16], [16, 16, 16, 16]]))
    assert len(axes[0].collections) == 1 and len(axes[1].collections) == 1
    plt.close(fig)


# --- occlusion --------------------------------------------------------------------------------

class LinearScores(nn.Module):
    """Two classes with scores ``±Σ w·x``: occlusion drops are computable by hand."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("w", weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x * self.w).sum(dim=(1, 2, 3))
        return torch.stack([s, -s], 1)


def test_sliding_window_matches_hand_computation():
    g = torch.Generator().manual_seed(6)
    w = torch.randn(3, 32, 32, generator=g)
    image = torch.rand(3, 32, 32, generator=g)
    model = LinearScores(w).eval()
    sal, n = sliding_window_occlusion(model, image, 0, patch=8, stride=4, batch_size=7)
    assert n == 7 * 7 + 1 and sal.shape == (32, 32)
    contrib = (w * (image - 0.5)).sum(0)  # drop caused by filling one pixel with grey
    total, count = torch.zeros(32, 32), torch.zeros(32, 32)
    for y in range(0, 25, 4):
        for x in range(0, 25, 4):
            total[y : y + 8, x : x + 8] += contrib[y : y + 8, x : x + 8].sum()
            count[y : y + 8, x : x + 8] += 1
    torch.testing.assert_close(sal, total / count, atol=1e-4, rtol=1e-4)
    result = sliding_window_occlusion(model, image, 0, patch=8, stride=5)  # 0,5,..,20 + flush 24
    assert result.n_forward == 6 * 6 + 1 and torch.isfinite(result.saliency).all()


def test_quadtree_occlusion_counts_and_finds_the_important_patch():
    w = torch.zeros(3, 64, 64)
    w[:, 36:48, 20:32] = 1.0  # only this 12×12 patch matters
    image = torch.full((3, 64, 64), 0.9)
    model = LinearScores(w).eval()
    # Lattice of 8-px windows at stride 4: positions 0..14 per axis (15 × 15 = 225); level 0 probes
    # positions {0, 5, 9, 14}², and window (9, 5) (pixels 36..43 × 20..27) sees the patch.
    res = quadtree_occlusion(model, image, 0, patch=8, stride=4, start=3, max_passes=40, refine=1,
                             batch_size=5)
    assert res.field.shape == (15, 15) and res.probed.shape == (15, 15)
    assert res.n_forward == int(res.probed.sum()) + 1 == res.probes.shape[0] + 1 <= 41
    assert res.levels[:16].tolist() == [0] * 16 and res.levels.max() >= 2
    assert res.saliency.shape == (64, 64) and res.deltas.shape == (res.n_forward - 1,)
    assert math.isclose(res.score, 0.9 * 3 * 144, rel_tol=1e-5)
    # Each probe's drop is exact: 0.4 per grey pixel of the important patch inside the window.
    for (i, j), d in zip(res.probes.tolist(), res.deltas.tolist(), strict=True):
        overlap = max(0, min(4 * i + 8, 48) - max(4 * i, 36)) * max(0, min(4 * j + 8, 32) - max(4 * j, 20))
        assert math.isclose(d, 0.4 * 3 * overlap, abs_tol=1e-4)
    # "max" refines the cells around the patch: the last level's probes lie within 4 positions.
    last = res.probes[res.levels == res.levels.max()]
    assert ((last[:, 0] - 9.5).abs() <= 4).all() and ((last[:, 1] - 5.5).abs() <= 4).all()
    top = torch.nonzero(res.saliency == res.saliency.max())
    assert torch.all((top[:, 0] >= 36) & (top[:, 0] < 48) & (top[:, 1] >= 20) & (top[:, 1] < 32))
    # Leaves: pixel boxes between window centres, tiling the centres' span (4 .. 60) exactly once.
    cover = torch.zeros(64, 64)
    for y, x, h, wd in res.leaves.tolist():
        cover[y : y + h, x : x + wd] += 1
    assert (cover[4:60, 4:60] == 1).all()


def test_quadtree_occlusion_with_every_position_is_the_sliding_window():
    g = torch.Generator().manual_seed(3)
    model = LinearScores(torch.randn(3, 40, 40, generator=g)).eval()
    image = torch.rand(3, 40, 40, generator=g)
    sw = sliding_window_occlusion(model, image, 0, patch=8, stride=4)  # 9 × 9 windows
    qt = quadtree_occlusion(model, image, 0, patch=8, stride=4, start=2, max_passes=81, refine=64)
    assert qt.probed.all() and qt.n_forward == sw.n_forward
    torch.testing.assert_close(qt.saliency, sw.saliency, atol=1e-5, rtol=1e-5)
    field = occlusion_field(model, image, 0, patch=8, stride=4)
    torch.testing.assert_close(field, qt.field, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(field_to_map(field, (40, 40), patch=8, stride=4), sw.saliency)


def test_field_to_map_with_cut_windows_matches_sliding_window():
    g = torch.Generator().manual_seed(4)
    model = LinearScores(torch.randn(3, 30, 27, generator=g)).eval()
    image = torch.rand(3, 30, 27, generator=g)
    sw = sliding_window_occlusion(model, image, 0, patch=8, stride=5)  # last windows stick out
    field = occlusion_field(model, image, 0, patch=8, stride=5)
    assert field.shape == (6, 5)
    torch.testing.assert_close(field_to_map(field, (30, 27), patch=8, stride=5), sw.saliency)
    with pytest.raises(ValueError, match="does not cover"):
        field_to_map(field[:2], (30, 27), patch=8, stride=5)


@pytest.mark.parametrize("rule", REFINE_RULES)
def test_refine_lattice_on_a_known_field(rule):
    i, j = torch.meshgrid(torch.arange(27.0), torch.arange(27.0), indexing="ij")
    plane = 2 * i - j + 3  # bilinear interpolation reproduces a plane exactly
    s = refine_lattice(lambda p: plane[p[:, 0], p[:, 1]], (27, 27), start=3, max_probes=16, rule=rule)
    assert s.probes.shape == (16, 2) and s.probed.sum() == 16
    torch.testing.assert_close(s.field, plane)
    bump = torch.exp(-((i - 20) ** 2 + (j - 5) ** 2) / 8)
    s = refine_lattice(lambda p: bump[p[:, 0], p[:, 1]], (27, 27), start=3, max_probes=60, rule=rule)
    assert len(s.probes) <= 60 and s.levels.max() >= 1
    near = ((s.probes[:, 0] - 20).abs() <= 4) & ((s.probes[:, 1] - 5).abs() <= 4)
    assert near[s.levels > 0].float().mean() > 0.4  # refinement goes to the bump (uniform: 11%)
    full = replay_lattice(bump, max_probes=729, refine=1000, rule=rule)
    assert full.probed.all() and torch.equal(full.field, bump)
    with pytest.raises(ValueError, match="field must be a tensor"):
        replay_lattice(bump[0])


def test_refine_lattice_bad_arguments():
    def probe(p):
        return torch.zeros(len(p))

    with pytest.raises(ValueError, match="max_probes=10 is below"):
        refine_lattice(probe, (27, 27), start=7, max_probes=10)
    with pytest.raises(ValueError, match="rule must be one of"):
        refine_lattice(probe, (27, 27), rule="min")
    with pytest.raises(TypeError, match="max_probes must be an int"):
        refine_lattice(probe, (27, 27), max_probes=72.5)
    with pytest.raises(ValueError, match="lattice size"):
        refine_lattice(probe, (1, 27))
    with pytest.raises(ValueError, match="probe returned 1 values"):
        refine_lattice(lambda p: torch.zeros(1), (5, 5), start=2)


def test_occlusion_bad_inputs():
    model = LinearScores(torch.ones(3, 16, 16)).eval()
    image = torch.rand(3, 16, 16)
    with pytest.raises(ValueError, match="one image"):
        sliding_window_occlusion(model, image[None].repeat(2, 1, 1, 1), 0)
    with pytest.raises(ValueError, match="patch"):
        sliding_window_occlusion(model, image, 0, patch=32)
    with pytest.raises(ValueError, match="fill"):
        sliding_window_occlusion(model, image, 0, patch=4, fill=2.0)
    with pytest.raises(ValueError, match="refine"):
        quadtree_occlusion(model, image, 0, patch=4, stride=2, refine=0)
    with pytest.raises(ValueError, match="max_passes=20 is below"):
        quadtree_occlusion(model, image, 0, patch=4, stride=2, start=6, max_passes=20)
    with pytest.raises(ValueError, match="min_size"):
        quadtree_occlusion(model, image, 0, patch=4, stride=2, min_size=0)
    with pytest.raises(ValueError, match="patch"):
        quadtree_occlusion(model, image, 0, patch=32)
    with pytest.raises(ValueError, match="training mode"):
        quadtree_occlusion(model.train(), image, 0, patch=4, stride=2)


def test_quadtree_occlusion_on_the_real_model(model, samples):
    sample = samples[0]
    res = quadtree_occlusion(model, sample.image, sample.target)
    assert 65 <= res.n_forward <= 73  # 8 × 8 level-0 corners, ≤ 8 refinement probes, the clean pass
    assert res.field.shape == (27, 27) and res.probed.sum() == res.n_forward - 1
    assert res.saliency.shape == (224, 224) and torch.isfinite(res.saliency).all()
    # The refinement probes sit where occlusion lowers the score: their mean drop is far above
    # level 0's (measured: 0.15 vs 0.01).
    assert float(res.deltas[res.levels > 0].mean()) > float(res.deltas[res.levels == 0].mean()) + 0.05
