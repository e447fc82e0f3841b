"""Property-based tests: random inputs give the documented result when they are valid (decided
here, independently of the code under test) and a clear ValueError/TypeError when they are not."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from utils.images import load_image
from utils.models import toy_linear_classifier
from utils.saliency import gradient, saliency_map, smoothgrad

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class _Conv(torch.nn.Module):
    """A tiny convolutional classifier with 4 classes that accepts any image size (global pooling)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))


CONV = _Conv().eval()
CLASSES = 4

shapes = st.lists(st.integers(0, 5), min_size=0, max_size=5).map(tuple)
values = st.sampled_from([0.0, 0.5, 1.0, -0.1, 1.5, float("nan"), float("inf")])
targets = st.one_of(st.none(), st.integers(-3, 6), st.lists(st.integers(-1, 4), max_size=4),
                    st.text(max_size=3), st.floats(allow_nan=True))


def _valid_images(shape: tuple, fill: float, dtype: torch.dtype) -> bool:
    """The documented contract: float (N, 3, H, W) or (3, H, W), not empty, finite, in [0, 1]."""
    return (dtype.is_floating_point and len(shape) in (3, 4) and shape[-3] == 3
            and math.prod(shape) > 0 and math.isfinite(fill) and 0.0 <= fill <= 1.0)


def _valid_target(target, n: int) -> bool:
    """None, an int class of the model, or a list of ``n`` of them."""
    if target is None:
        return True
    if isinstance(target, int):
        return 0 <= target < CLASSES
    if isinstance(target, list):
        return len(target) == n and all(0 <= t < CLASSES for t in target)
    return False


@SETTINGS
@given(shape=shapes, fill=values, target=targets, dtype=st.sampled_from([torch.float32, torch.float64,
                                                                         torch.uint8, torch.int64]))
def test_saliency_functions_work_or_raise_clearly(shape, fill, target, dtype):
    try:
        x = torch.full(shape, fill).to(dtype) if shape else torch.tensor(fill).to(dtype)
    except (RuntimeError, ValueError):
        return  # e.g. NaN to an integer dtype: not an input anyone can build
    n = shape[0] if len(shape) == 4 else 1
    valid = _valid_images(shape, fill, dtype) and _valid_target(target, n)
    for fn, out_shape in ((gradient, shape), (saliency_map, shape[:-3] + shape[-2:])):
        if valid:
            out = fn(CONV, x, target)
            assert tuple(out.shape) == out_shape and torch.isfinite(out).all()
            assert out.dtype == torch.float32
        else:
            with pytest.raises((ValueError, TypeError)):
                fn(CONV, x, target)


@SETTINGS
@given(h=st.integers(1, 12), w=st.integers(1, 12), n=st.integers(1, 3), seed=st.integers(0, 2**16),
       samples=st.integers(-1, 3), noise=st.floats(-0.5, 2.0, allow_nan=False))
def test_smoothgrad_random_sizes(h, w, n, seed, samples, noise):
    x = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))
    if samples >= 1 and noise >= 0:
        out = smoothgrad(CONV, x, 1, samples=samples, noise=noise, seed=seed)
        assert out.shape == (n, h, w) and (out >= 0).all() and torch.isfinite(out).all()
    else:
        with pytest.raises(ValueError, match="samples|noise"):
            smoothgrad(CONV, x, 1, samples=samples, noise=noise, seed=seed)


@SETTINGS
@given(h=st.integers(1, 40), w=st.integers(1, 40), channels=st.sampled_from([None, 1, 2, 3, 4]),
       dtype=st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.int32, np.bool_]),
       size=st.integers(-2, 30))
def test_load_image_arrays(h, w, channels, dtype, size):
    shape = (h, w) if channels is None else (h, w, channels)
    a = (np.random.default_rng(0).random(shape) * (255 if dtype == np.uint8 else 1)).astype(dtype)
    valid = (size >= 1 and channels in (None, 1, 3, 4)
             and dtype in (np.uint8, np.uint16, np.float32, np.float64, np.bool_))
    if valid:
        t = load_image(a, size)
        assert t.shape == (3, size, size) and 0 <= float(t.min()) and float(t.max()) <= 1
    else:
        with pytest.raises((ValueError, TypeError)):
            load_image(a, size)


def test_linear_toy_model_property():
    """Exactness holds for any image: the saliency of a linear model does not depend on I₀."""
    m = toy_linear_classifier(4, 4)
    a = saliency_map(m, torch.rand(3, 4, 4), 0)
    b = saliency_map(m, torch.rand(3, 4, 4), 0)
    torch.testing.assert_close(a, b)


@SETTINGS
@given(h=st.integers(1, 20), w=st.integers(1, 20), threshold=st.floats(-0.2, 1.2, allow_nan=False),
       min_size=st.integers(-1, 8), seed=st.integers(0, 2**16), levels=st.integers(1, 6))
def test_quadtree_random_images(h, w, threshold, min_size, seed, levels):
    """Any image and parameters: a valid tiling and an exact convolution, or a clear error."""
    import torch.nn.functional as F

    from utils.quadtree import build_quadtree, conv_macs, quadtree_conv2d

    g = torch.Generator().manual_seed(seed)
    image = (torch.rand(3, h, w, generator=g) * levels).round() / levels  # piecewise flat values
    try:
        tree = build_quadtree(image, threshold, min_size=min_size)
    except (ValueError, TypeError):
        assert threshold < 0 or min_size < 1
        return
    cover = torch.zeros(h, w)
    for y, x, s in zip(tree.y.tolist(), tree.x.tolist(), tree.size.tolist(), strict=True):
        cover[y:y + s, x:x + s] += 1
    assert torch.equal(cover, torch.ones(h, w))  # the leaves tile the image exactly once
    weight = torch.randn(2, 3, 3, 3, generator=g)
    out = quadtree_conv2d(tree, image, weight)
    ref = F.conv2d(tree.reconstruct(image)[None], weight, padding=1)[0]
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    macs = conv_macs(tree, 3, 3, 2)
    assert macs["quadtree_exact"] <= macs["dense"] + 9 * 3 * 2 * h * w


@SETTINGS
@given(shape=shapes, fill=values)
def test_quadtree_bad_images_raise_clearly(shape, fill):
    from utils.quadtree import build_quadtree

    x = torch.full(shape, fill) if shape else torch.tensor(fill)
    try:
        build_quadtree(x, 0.1)
    except (ValueError, TypeError):
        return
    assert x.dim() in (2, 3, 4) and torch.isfinite(x).all()


def test_float64_images_with_a_float32_model_are_computed_in_float32():
    """Found by hypothesis on a fresh clone: a float64 image reached a float32 layer (a bare
    RuntimeError from torch). Images now follow the model's dtype."""
    x64 = torch.rand(1, 3, 5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for fn in (gradient, saliency_map):
        out64, out32 = fn(CONV, x64, 0), fn(CONV, x64.float(), 0)
        torch.testing.assert_close(out64, out32)
