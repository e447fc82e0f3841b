"""Quadtrees: adaptive image decomposition and the exact leaf convolution.

The course's own speed-up claim (notebook 05): a dense convolution of an ``H × W`` image with an
``M × M`` kernel from ``C_in`` to ``C_out`` channels costs ``M²·H·W·C_in·C_out`` multiply-adds
(MACs); over the ``N'`` leaves of a quadtree it "costs ``M²·N'·C``". This module makes each part of
that claim computable:

* :func:`build_quadtree` — split a square block while the per-channel range ``max − min`` inside it
  exceeds a threshold (Shuval, 1986; Chitta, Alvarez & Hebert, WACV 2020). Vectorised level by level
  on max/min pyramids; any ``H, W`` (leaves are squares that tile the image exactly once).
* :func:`quadtree_conv2d` — the *exact* convolution of the leaf-quantised image: an output whose
  window lies inside one constant leaf is ``(ΣW)·v + b``; only the *ring* pixels near a leaf edge
  (or the image border) are evaluated in full. :func:`per_leaf_conv2d` is the ``M²N'C``
  *approximation* (one evaluation per leaf); :func:`conv_macs` counts the multiply-adds of all three.
* the pictures live in :mod:`utils.plotting` (:func:`utils.plotting.draw_leaves`) and
  :mod:`utils.widgets` (the slider); this module draws nothing.

Occlusion saliency, where the number of forward passes is what a quadtree of lattice cells really
reduces, lives in :mod:`utils.occlusion` (which counts, with :func:`utils.occlusion.probe_macs`, the
network-wide version of the ``M²N'C`` claim for one occlusion probe).

Conventions: images are float tensors ``(C, H, W)`` (any ``C``; the models want ``C = 3`` in
[0, 1]); leaves are long tensors ``y, x, size`` (top-left corner and side, pixels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ._validation import check_nonnegative, check_positive_int

__all__ = [
    "QuadTree",
    "build_quadtree",
    "ring_mask",
    "quadtree_conv2d",
    "per_leaf_conv2d",
    "conv_macs",
    "uniform_reconstruction",
    "psnr",
]

# ----------------------------------------------------------------------------------------------
# Building the tree
# ----------------------------------------------------------------------------------------------

def _as_chw(image: torch.Tensor, name: str = "image") -> torch.Tensor:
    """Validate an image ``(C, H, W)`` or ``(H, W)`` and return it as a float ``(C, H, W)``."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (C, H, W) or (H, W), got {type(image).__name__}.")
    if image.dim() == 2:
        image = image.unsqueeze(0)
    if image.dim() != 3:
        raise ValueError(
            f"{name} must have shape (C, H, W) or (H, W) — one image, no batch dimension — got shape "
            f"{tuple(image.shape)}; for a batch, build one tree per image."
        )
    if image.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(image.shape)}).")
    if not torch.is_floating_point(image):
        image = image.float()
    if not torch.isfinite(image).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return image


@dataclass(frozen=True)
class QuadTree:
    """The leaves of a quadtree decomposition of an ``height × width`` image.

    Attributes:
        y, x, size: long tensors ``(N',)``: top-left corner and side length of each square leaf, in
            pixels. Sides are powers of two; the leaves tile the image exactly once.
        means: ``(C, N')`` mean colour of each leaf (of the image the tree was built from).
        height, width: the image size.
        threshold, min_size, max_size: the parameters the tree was built with.
        label_map: ``(H, W)`` long, the index of the leaf each pixel belongs to (see :meth:`labels`).

    Built by :func:`build_quadtree`, which computes ``means`` and ``label_map`` once; the tree is
    immutable.
    """

    y: torch.Tensor
    x: torch.Tensor
    size: torch.Tensor
    means: torch.Tensor
    height: int
    width: int
    threshold: float
    min_size: int
    max_size: int | None
    label_map: torch.Tensor = field(repr=False, compare=False)

    @property
    def n_leaves(self) -> int:
        """``N'``, the number of leaves."""
        return int(self.size.numel())

    @property
    def boxes(self) -> torch.Tensor:
        """``(N', 4)`` long: each leaf as a box ``(x0, y0, x1, y1)``, exclusive ends (as :class:`utils.images.Box`)."""
        return torch.stack([self.x, self.y, self.x + self.size, self.y + self.size], 1)

    @property
    def leaf_fraction(self) -> float:
        """``N' / (H·W)``: leaves per pixel (1 = no compression)."""
        return self.n_leaves / (self.height * self.width)

    def labels(self) -> torch.Tensor:
        """``(H, W)`` long map: the index of the leaf each pixel belongs to (:attr:`label_map`)."""
        return self.label_map

    def leaf_means(self, image: torch.Tensor) -> torch.Tensor:
        """``(C, N')`` mean of ``image`` ``(C, H, W)`` over each leaf (an integral image: O(HW))."""
        image = _as_chw(image)
        if tuple(image.shape[1:]) != (self.height, self.width):
            raise ValueError(
                f"image is {tuple(image.shape[1:])} but the tree was built for "
                f"{(self.height, self.width)}; build a tree for this image size."
            )
        return _square_means(image, self.y, self.x, self.size)

    def reconstruct(self, image: torch.Tensor | None = None) -> torch.Tensor:
        """The piecewise-constant image ``(C, H, W)``: each leaf filled with its mean colour.

        With ``image`` given, that image's leaf means are used (quantise another image, or another
        feature map, with this tree's leaves); otherwise the means of the image the tree was built on.
        """
        means = self.means if image is None else self.leaf_means(image)
        return means[:, self.labels()]


def build_quadtree(image: torch.Tensor, threshold: float, *, min_size: int = 1,
                   max_size: int | None = None) -> QuadTree:
    """Quadtree decomposition: split a square block while its per-channel range exceeds ``threshold``.

    A block is split into its four quadrants when ``max_k (max − min)`` of the pixels inside it is
    larger than ``threshold`` and its children would still be at least ``min_size`` wide, or when it
    is wider than ``max_size``. The image is embedded in the smallest power-of-two square; blocks
    outside the image are dropped and blocks that straddle its right/bottom edge are always split,
    so the leaves are squares that tile the ``H × W`` image exactly once (for sides that are not a
    multiple of a power of two, the border blocks may be smaller than ``min_size``).

    Vectorised: one max-pool pyramid, then one pass per level (≈ log₂ N tensor operations).

    Args:
        image: ``(C, H, W)`` or ``(H, W)`` float tensor (any range; images in [0, 1] usually).
        threshold: ``≥ 0``, in the units of the image (0 splits every non-constant block).
        min_size: smallest leaf side in pixels (``≥ 1``).
        max_size: largest leaf side in pixels (``None``: no limit).

    Returns:
        A :class:`QuadTree`.
    """
    image = _as_chw(image)
    threshold = check_nonnegative(threshold, "threshold")
    check_positive_int(min_size, "min_size")
    if max_size is not None:
        check_positive_int(max_size, "max_size")
        if max_size < min_size:
            raise ValueError(f"max_size={max_size} is smaller than min_size={min_size}.")
    img = image.detach().cpu().float()
    c, h, w = img.shape
    levels = max(0, math.ceil(math.log2(max(h, w))))
    side = 2**levels
    pad = (0, side - w, 0, side - h)
    # Max/min pyramids (padding is irrelevant: straddling blocks are split regardless of content).
    hi = [F.pad(img, pad)]
    lo = [hi[0]]
    for _ in range(levels):
        hi.append(F.max_pool2d(hi[-1][None], 2)[0])
        lo.append(-F.max_pool2d(-lo[-1][None], 2)[0])
    spread = [(a - b).amax(0) for a, b in zip(hi, lo, strict=True)]  # level k: (side/2^k,)*2

    ys = torch.zeros(1, dtype=torch.long)
    xs = torch.zeros(1, dtype=torch.long)
    out_y, out_x, out_s = [], [], []
    for k in range(levels, -1, -1):
        s = 2**k
        inside = (ys * s < h) & (xs * s < w)
        ys, xs = ys[inside], xs[inside]
        straddle = ((ys + 1) * s > h) | ((xs + 1) * s > w)
        split = straddle.clone()
        if k > 0:
            if s // 2 >= min_size:
                split |= spread[k][ys, xs] > threshold
            if max_size is not None:
                split |= torch.tensor(s > max_size)
        leaf = ~split
        out_y.append(ys[leaf] * s)
        out_x.append(xs[leaf] * s)
        out_s.append(torch.full((int(leaf.sum()),), s, dtype=torch.long))
        ys, xs = ys[split], xs[split]
        if ys.numel() == 0:
            break
        ys = (2 * ys[:, None] + torch.tensor([0, 0, 1, 1])).reshape(-1)
        xs = (2 * xs[:, None] + torch.tensor([0, 1, 0, 1])).reshape(-1)
    y, x, sz = torch.cat(out_y), torch.cat(out_x), torch.cat(out_s)
    return QuadTree(y, x, sz, _square_means(img, y, x, sz), h, w, threshold, min_size, max_size,
                    _label_map(y, x, sz, h, w))


def _square_means(image: torch.Tensor, y: torch.Tensor, x: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """``(C, K)`` mean of ``image (C, H, W)`` over the squares ``(y, x, size)`` (an integral image: O(HW))."""
    sat = F.pad(image.double().cumsum(1).cumsum(2), (1, 0, 1, 0))  # (C, H+1, W+1)
    y1, x1 = y + size, x + size
    sums = sat[:, y1, x1] - sat[:, y, x1] - sat[:, y1, x] + sat[:, y, x]
    return (sums / (size * size).double()).to(image.dtype)


def _label_map(y: torch.Tensor, x: torch.Tensor, size: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(H, W)`` long: the index of the square leaf ``(y, x, size)`` that holds each pixel."""
    lab = torch.full((height, width), -1, dtype=torch.long)
    for s in torch.unique(size).tolist():
        sel = torch.nonzero(size == s).squeeze(1)
        grid = torch.full((-(-height // s), -(-width // s)), -1, dtype=torch.long)
        grid[y[sel] // s, x[sel] // s] = sel
        up = grid.repeat_interleave(s, 0).repeat_interleave(s, 1)[:height, :width]
        lab = torch.where(up >= 0, up, lab)
    return lab


# ----------------------------------------------------------------------------------------------
# Convolution over the leaves
# ----------------------------------------------------------------------------------------------

def _kernel_geometry(weight_or_size, padding: int | None) -> tuple[int, int, int]:
    """``(kh, kw, padding)`` for a weight ``(C_out, C_in, kh, kw)`` or a kernel size."""
    if isinstance(weight_or_size, torch.Tensor):
        if weight_or_size.dim() != 4:
            raise ValueError(
                f"weight must be (C_out, C_in, M, M) as for F.conv2d, got shape {tuple(weight_or_size.shape)}."
            )
        kh, kw = weight_or_size.shape[-2:]
    elif isinstance(weight_or_size, Sequence):
        kh, kw = weight_or_size
    else:
        kh = kw = weight_or_size
    kh = check_positive_int(int(kh) if not isinstance(kh, bool) else kh, "kernel height")
    kw = check_positive_int(int(kw) if not isinstance(kw, bool) else kw, "kernel width")
    if kh != kw:
        raise ValueError(f"Only square kernels are supported, got {kh}×{kw}.")
    if padding is None:
        if kh % 2 == 0:
            raise ValueError(
                f"An even kernel size ({kh}) has no centred 'same' padding (F.conv2d with padding "
                f"M // 2 = {kh // 2} returns H + 1 rows); pass padding=... explicitly or use an odd M."
            )
        padding = kh // 2
    if isinstance(padding, bool) or not isinstance(padding, int) or not 0 <= padding < kh:
        raise ValueError(f"padding must be an int in 0 .. {kh - 1} (kernel size {kh}), got {padding!r}.")
    return kh, kw, padding


def ring_mask(tree: QuadTree, kernel_size: int, *, padding: int | None = None) -> torch.Tensor:
    """Bool map of the outputs that need a full evaluation (the *ring*), shape ``(H_out, W_out)``.

    An output ``(i, j)`` of a stride-1 convolution with zero padding ``p`` reads the input window
    rows ``i − p … i − p + M − 1`` (and likewise columns). It is *interior* (``False`` here) when that
    window lies inside one leaf — a leaf is a rectangle, so it suffices that the window's top-left
    and bottom-right corners are in the same leaf. Windows that touch the zero padding are ring.
    ``padding=None`` means ``M // 2`` (odd ``M`` only): ``H_out = H``.
    """
    m, _, p = _kernel_geometry(kernel_size, padding)
    lab = F.pad(tree.labels(), (p, p, p, p), value=-1)
    ho, wo = tree.height + 2 * p - m + 1, tree.width + 2 * p - m + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"A {m}×{m} kernel with padding {p} gives no output on a {tree.height}×{tree.width} image.")
    tl = lab[:ho, :wo]
    br = lab[m - 1 : m - 1 + ho, m - 1 : m - 1 + wo]
    return ~((tl == br) & (tl >= 0))


def _check_conv_inputs(tree: QuadTree, image: torch.Tensor, weight: torch.Tensor,
                       bias: torch.Tensor | None) -> torch.Tensor:
    image = _as_chw(image)
    if tuple(image.shape[1:]) != (tree.height, tree.width):
        raise ValueError(f"image is {tuple(image.shape[1:])}, the tree is {(tree.height, tree.width)}.")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        raise ValueError("weight must be a tensor (C_out, C_in, M, M), as for F.conv2d.")
    if weight.shape[1] != image.shape[0]:
        raise ValueError(f"weight expects C_in = {weight.shape[1]} channels, the image has {image.shape[0]}.")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}.")
    return image


def _windows(padded: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, m: int) -> torch.Tensor:
    """im2col at chosen outputs: the ``m × m`` windows of ``padded (C, Hp, Wp)`` whose top-left
    pixels are ``(rows[k], cols[k])``, as ``(K, C·m²)`` rows (channel-major, as ``weight.reshape``)."""
    offs = torch.arange(m)
    flat = ((rows[:, None, None] + offs[None, :, None]) * padded.shape[2]
            + (cols[:, None, None] + offs[None, None, :])).reshape(rows.numel(), m * m)
    patches = padded.reshape(padded.shape[0], -1)[:, flat]  # (C, K, m²)
    return patches.permute(1, 0, 2).reshape(rows.numel(), -1)


def quadtree_conv2d(tree: QuadTree, image: torch.Tensor, weight: torch.Tensor,
                    bias: torch.Tensor | None = None, *, padding: int | None = None) -> torch.Tensor:
    """Exact stride-1 convolution of the leaf-quantised image, evaluating only the ring in full.

    The input is ``tree.reconstruct(image)`` (every leaf replaced by its mean ``v``). Where an output's
    window lies inside one leaf, the output is ``(ΣW)·v + b`` — one ``C_out × C_in`` product per
    leaf; the ``R`` ring outputs (see :func:`ring_mask`) are evaluated in full by a gather + GEMM.
    Cost ``C_in·C_out·(M²·R + N')`` multiply-adds (plus ``ΣW`` once). The result equals
    ``F.conv2d(tree.reconstruct(image)[None], weight, bias, padding=p)[0]`` up to float rounding.

    Args:
        tree: from :func:`build_quadtree`, for an image of the same ``H × W``.
        image: ``(C_in, H, W)`` — usually the image the tree was built from.
        weight: ``(C_out, C_in, M, M)``; bias: ``(C_out,)`` or ``None``.
        padding: zero padding ``p`` (default ``M // 2``, "same" output, odd ``M`` only; an even
            ``M`` needs an explicit ``p``).

    Returns:
        ``(C_out, H + 2p − M + 1, W + 2p − M + 1)`` — ``(C_out, H, W)`` by default.
    """
    image = _check_conv_inputs(tree, image, weight, bias)
    m, _, p = _kernel_geometry(weight, padding)
    dtype = torch.promote_types(image.dtype, weight.dtype)
    means = tree.leaf_means(image).to(dtype)  # (C_in, N')
    w = weight.to(dtype)
    const = w.sum(dim=(2, 3)) @ means  # (C_out, N')
    if bias is not None:
        const = const + bias.to(dtype)[:, None]
    ring = ring_mask(tree, m, padding=p)
    ho, wo = ring.shape
    labels = tree.labels()
    # Interior outputs: the leaf containing the window's top-left input pixel.
    lab_pad = F.pad(labels, (p, p, p, p), value=0)[:ho, :wo]
    out = const[:, lab_pad]  # (C_out, Ho, Wo); ring entries overwritten below
    ri, rj = torch.nonzero(ring, as_tuple=True)
    if ri.numel():
        q = F.pad(means[:, labels], (p, p, p, p))  # quantised image, zero padded
        vals = _windows(q, ri, rj, m) @ w.reshape(w.shape[0], -1).T  # (R, C_out)
        if bias is not None:
            vals = vals + bias.to(dtype)
        out[:, ri, rj] = vals.T
    return out


def per_leaf_conv2d(tree: QuadTree, image: torch.Tensor, weight: torch.Tensor,
                    bias: torch.Tensor | None = None) -> torch.Tensor:
    """The ``M²·N'·C`` approximation: one full evaluation per leaf, painted over the whole leaf.

    The convolution of ``image`` (the *original*, not quantised; zero padding ``M // 2``, odd
    ``M``) is evaluated at each leaf's centre pixel (``y + size // 2, x + size // 2``) and that
    value is copied to every pixel of the leaf. Compare with ``F.conv2d`` of the original image to
    see the approximation error.

    Returns:
        ``(C_out, H, W)``.
    """
    image = _check_conv_inputs(tree, image, weight, bias)
    m, _, p = _kernel_geometry(weight, None)
    dtype = torch.promote_types(image.dtype, weight.dtype)
    x = F.pad(image.to(dtype), (p, p, p, p))
    cy, cx = tree.y + tree.size // 2, tree.x + tree.size // 2
    vals = _windows(x, cy, cx, m) @ weight.to(dtype).reshape(weight.shape[0], -1).T  # (N', C_out)
    if bias is not None:
        vals = vals + bias.to(dtype)
    return vals.T[:, tree.labels()]


def conv_macs(tree: QuadTree, kernel_size: int, c_in: int, c_out: int) -> dict[str, int]:
    """Multiply-adds of one stride-1, "same" convolution (odd ``M``) on the tree's image.

    Returns:
        ``{"dense": M²·H·W·C_in·C_out, "quadtree_exact": C_in·C_out·(M²·R + N'),
        "per_leaf": M²·N'·C_in·C_out, "ring": R, "leaves": N', "pixels": H·W}`` (ints). The exact
        count leaves out the one-off ``ΣW`` (``M²·C_in·C_out``), which does not grow with the image.
    """
    m, _, _ = _kernel_geometry(kernel_size, None)
    check_positive_int(c_in, "c_in")
    check_positive_int(c_out, "c_out")
    r = int(ring_mask(tree, m).sum())
    n, px = tree.n_leaves, tree.height * tree.width
    cc = c_in * c_out
    return {"dense": m * m * px * cc, "quadtree_exact": cc * (m * m * r + n),
            "per_leaf": m * m * n * cc, "ring": r, "leaves": n, "pixels": px}


# ----------------------------------------------------------------------------------------------
# Comparisons
# ----------------------------------------------------------------------------------------------

def uniform_reconstruction(image: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Uniform downsampling at a sample budget: ``(C, H, W)`` → block means on a regular grid.

    The grid has ``≈ n_samples`` cells (``gh × gw`` with ``gh/gw ≈ H/W``); each cell is replaced by its
    mean (``adaptive_avg_pool2d``) and blown back up (nearest), the same piecewise-constant kind of
    picture as :meth:`QuadTree.reconstruct` with ``N' = n_samples`` leaves.
    """
    image = _as_chw(image)
    check_positive_int(n_samples, "n_samples")
    h, w = image.shape[1:]
    gh = min(h, max(1, round(math.sqrt(n_samples * h / w))))
    gw = min(w, max(1, round(n_samples / gh)))
    small = F.adaptive_avg_pool2d(image[None], (gh, gw))
    # Map each pixel to its pooling cell (adaptive pooling's cells: floor(i·gh/h)).
    iy = torch.arange(h) * gh // h
    ix = torch.arange(w) * gw // w
    return small[0][:, iy][:, :, ix]


def psnr(reconstruction: torch.Tensor, reference: torch.Tensor, *, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, ``10·log10(peak² / MSE)`` (``inf`` for identical images)."""
    if reconstruction.shape != reference.shape:
        raise ValueError(f"Shapes differ: {tuple(reconstruction.shape)} vs {tuple(reference.shape)}.")
    mse = float(((reconstruction.double() - reference.double()) ** 2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(peak**2 / mse)
