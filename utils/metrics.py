"""Does a saliency map point at what the model uses? Faithfulness metrics and a sanity check.

* :func:`deletion_curve` / :func:`insertion_curve` — the RISE protocol (Petsiuk, Das & Saenko,
  2018, section 4.1): remove (or insert) pixels from the most to the least salient and follow the
  class probability; a faithful map makes it fall fast (low deletion AUC) or rise fast (high
  insertion AUC). Every image of a curve goes through the model in batches.
* :func:`mass_in_box` — the share of a map's mass inside the object's box, relative to the box's
  area (1 = a uniform map).
* :func:`pointing_game` — Zhang et al. (2016, section 5.1): is the map's maximum inside the
  object's box?
* :func:`model_randomisation` — the model-parameter randomisation test of Adebayo et al. (2018,
  section 3.1): re-initialise the layers cascading from the top and measure how much the map
  changes (Spearman rank correlation with the original map). A map that barely changes when the
  weights are destroyed cannot explain the weights.
* :func:`bootstrap_interval` — the mean over photographs with a percentile-bootstrap interval
  (Efron & Tibshirani, 1993, ch. 13): how much a mean over a handful of photographs can be trusted.
* :func:`count_passes` and :func:`run_methods` — what a method costs: forward/backward passes and
  seconds per image.

Maps are ``(N, H, W)`` (larger = more salient), images ``(N, 3, H, W)`` in [0, 1], targets as in
:mod:`utils.saliency`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._validation import (
    check_fraction,
    check_images,
    check_positive_int,
    model_device,
    resolve_targets,
    to_model,
)
from .images import box_mask
from .saliency import Target

__all__ = [
    "PerturbationCurve",
    "deletion_curve",
    "insertion_curve",
    "gaussian_blur",
    "mass_in_box",
    "pointing_game",
    "centre_pointing",
    "cascade_layers",
    "spearman",
    "top_fraction_iou",
    "SanityCheck",
    "model_randomisation",
    "PassCount",
    "count_passes",
    "MethodRun",
    "run_methods",
    "format_table",
    "Interval",
    "bootstrap_interval",
]

MapFn = Callable[..., torch.Tensor]


# --------------------------------------------------------------------------- deletion, insertion

@dataclass(frozen=True)
class PerturbationCurve:
    """A deletion or insertion curve.

    Attributes:
        fractions: ``(K + 1,)`` fraction of pixels removed/inserted, ``0, 1/K, …, 1``.
        scores: ``(N, K + 1)`` the class score (probability by default) at each fraction.
    """

    fractions: torch.Tensor
    scores: torch.Tensor

    @property
    def auc(self) -> torch.Tensor:
        """Area under each curve, ``(N,)``, by the trapezoid rule over ``fractions`` ∈ [0, 1]."""
        return torch.trapezoid(self.scores, self.fractions, dim=-1)


def _check_maps(maps: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"maps must be a torch.Tensor (N, H, W), got {type(maps).__name__}.")
    m = maps.unsqueeze(0) if maps.dim() == 2 else maps
    if m.dim() != 3 or m.shape[0] != batch.shape[0] or m.shape[1:] != batch.shape[2:]:
        raise ValueError(
            f"maps must be (N, H, W) matching the images {tuple(batch.shape)}, got "
            f"{tuple(maps.shape)}."
        )
    if not torch.isfinite(m).all():
        raise ValueError("maps contain NaN or infinite values.")
    return m


def gaussian_blur(images: torch.Tensor, *, kernel: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """Gaussian blur ``(N, 3, H, W)`` → same shape (reflect padding): RISE's insertion canvas."""
    check_positive_int(kernel, "kernel")
    if kernel % 2 == 0:
        raise ValueError(f"kernel={kernel} must be odd.")
    check_fraction(sigma, "sigma", low=0.0, high=1e3)
    r = torch.arange(kernel, dtype=images.dtype, device=images.device) - kernel // 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    c = images.shape[1]
    x = F.pad(images, (kernel // 2,) * 4, mode="reflect")
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, kernel), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, kernel, 1), groups=c)


def _perturbation_curve(model: nn.Module, start: torch.Tensor, finish: torch.Tensor,
                        maps: torch.Tensor, targets: torch.Tensor, steps: int, score: str,
                        batch_size: int) -> PerturbationCurve:
    """Move pixels from ``start`` to ``finish`` in decreasing map order, ``steps`` equal chunks."""
    n, _, h, w = start.shape
    order = torch.argsort(maps.reshape(n, -1), dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w, device=order.device).expand(n, -1))
    counts = torch.round(torch.linspace(0, h * w, steps + 1, device=start.device)).long()
    jobs = [(i, k) for i in range(n) for k in range(steps + 1)]
    out = torch.empty(n, steps + 1)
    for s in range(0, len(jobs), batch_size):
        chunk = jobs[s:s + batch_size]
        idx = torch.tensor([i for i, _ in chunk], device=start.device)
        kk = torch.tensor([k for _, k in chunk], device=start.device)
        moved = (rank[idx] < counts[kk][:, None]).view(-1, 1, h, w)
        x = torch.where(moved, finish[idx], start[idx])
        with torch.no_grad():
            logits = model(x)
        values = logits.softmax(dim=1) if score == "probability" else logits
        picked = values.gather(1, targets[idx][:, None].to(values.device))[:, 0].float().cpu()
        out[idx.cpu(), kk.cpu()] = picked
    return PerturbationCurve(torch.linspace(0, 1, steps + 1), out)


def _curve_inputs(model, images, maps, target, steps, score, batch_size):
    batch, single = check_images(images)
    m = _check_maps(maps, batch)
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    if score not in ("probability", "logit"):
        raise ValueError(f"score={score!r} is not known; choose 'probability' or 'logit'.")
    dev = model_device(model)
    x = to_model(batch, model, dev)
    return x, m.to(dev), resolve_targets(model, x, target)


def deletion_curve(model: nn.Module, images: torch.Tensor, maps: torch.Tensor,
                   target: Target = None, *, steps: int = 16, baseline: float = 0.0,
                   score: str = "probability", batch_size: int = 32) -> PerturbationCurve:
    """RISE deletion: replace the most salient pixels by ``baseline`` (default 0, black), in
    ``steps`` equal chunks from 0 to all pixels, and record the class ``score``.

    ``(steps + 1)`` forward passes per image, ``batch_size`` images at a time. Ties in the map are
    broken by pixel index (row-major). Lower AUC = the map found what the score needs sooner.

    Args:
        maps: ``(N, H, W)`` saliency, larger = more important (signed maps are fine).
        score: ``"probability"`` (softmax, as in RISE) or ``"logit"`` (``S_c``).

    Returns:
        A :class:`PerturbationCurve`; ``.auc`` is ``(N,)``.
    """
    x, m, t = _curve_inputs(model, images, maps, target, steps, score, batch_size)
    check_fraction(baseline, "baseline", low=0.0, high=1.0, inclusive=True)
    return _perturbation_curve(model, x, torch.full_like(x, float(baseline)), m, t, steps, score,
                               batch_size)


def insertion_curve(model: nn.Module, images: torch.Tensor, maps: torch.Tensor,
                    target: Target = None, *, steps: int = 16, blur_kernel: int = 11,
                    blur_sigma: float = 5.0, score: str = "probability", batch_size: int = 32
                    ) -> PerturbationCurve:
    """RISE insertion: start from a blurred copy (:func:`gaussian_blur`, RISE's 11×11, σ = 5) and
    put back the original pixels, most salient first. Higher AUC = better.

    Same arguments and cost as :func:`deletion_curve`.
    """
    x, m, t = _curve_inputs(model, images, maps, target, steps, score, batch_size)
    canvas = gaussian_blur(x, kernel=blur_kernel, sigma=blur_sigma)
    return _perturbation_curve(model, canvas, x, m, t, steps, score, batch_size)


# --------------------------------------------------------------------------- pointing game

def mass_in_box(maps: torch.Tensor, boxes: Sequence[Sequence[int]]) -> tuple[list[float], list[float]]:
    """How much of each saliency map lies inside its object's box, relative to the box's area.

    Args:
        maps: ``(N, H, W)`` non-negative saliency maps (e.g. :func:`utils.saliency.saliency_map`).
        boxes: N boxes ``(x0, y0, x1, y1)`` in the maps' pixels, exclusive ends (``Sample.box``).

    Returns:
        ``(areas, ratios)``, two lists of N floats: the box's share of the image in (0, 1], and the
        map's share of its total mass inside the box divided by that area (1 = no better than a
        uniform map; ``1 / area`` = all the mass inside).
    """
    if not isinstance(maps, torch.Tensor) or maps.dim() != 3:
        raise ValueError(f"maps must be a tensor (N, H, W), got {getattr(maps, 'shape', type(maps))}.")
    if len(boxes) != maps.shape[0]:
        raise ValueError(f"Got {maps.shape[0]} maps and {len(boxes)} boxes; give one box per map.")
    if (maps < 0).any():
        raise ValueError("maps must be non-negative (take .abs() or a channel max first).")
    h, w = maps.shape[1:]
    areas, ratios = [], []
    for m, box in zip(maps, boxes, strict=True):
        inside = box_mask(box, h, w).to(m.device)
        area = inside.float().mean().item()
        total = m.sum().item()
        if total <= 0:
            raise ValueError("A map is zero everywhere; its mass in the box is undefined.")
        areas.append(area)
        ratios.append(m[inside].sum().item() / total / area)
    return areas, ratios


def pointing_game(maps: torch.Tensor, boxes: Sequence[Sequence[int]], *, tolerance: int = 15
                  ) -> torch.Tensor:
    """Zhang et al.'s pointing game: a hit when the map's maximum lies in the box (grown by
    ``tolerance`` pixels on each side; 15 as in the paper, 0 for the strict version).

    Args:
        maps: ``(N, H, W)`` (or ``(H, W)``); the first maximum in row-major order is the point.
        boxes: N boxes ``(x0, y0, x1, y1)``, exclusive ends (as ``Sample.box``).

    Returns:
        ``(N,)`` bool (a 0-D bool for one map); ``.float().mean()`` is the accuracy.
    """
    if not isinstance(maps, torch.Tensor) or maps.dim() not in (2, 3):
        raise ValueError("maps must be a torch.Tensor (N, H, W) or (H, W).")
    single = maps.dim() == 2
    m = maps.unsqueeze(0) if single else maps
    if single and len(boxes) == 4 and all(isinstance(v, (int, np.integer)) for v in boxes):
        boxes = [boxes]
    if len(boxes) != m.shape[0]:
        raise ValueError(f"{len(boxes)} boxes for {m.shape[0]} maps; give one box per map.")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"tolerance must be an int >= 0 (pixels), got {tolerance!r}.")
    h, w = m.shape[-2:]
    flat = m.reshape(m.shape[0], -1).argmax(dim=1).cpu()
    ys, xs = (flat // w).tolist(), (flat % w).tolist()
    hits = []
    for (x0, y0, x1, y1), y, x in zip(boxes, ys, xs, strict=True):
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise ValueError(f"box {(x0, y0, x1, y1)} is not inside a {w}×{h} map.")
        hits.append(x0 - tolerance <= x < x1 + tolerance and y0 - tolerance <= y < y1 + tolerance)
    out = torch.tensor(hits)
    return out[0] if single else out


def centre_pointing(boxes: Sequence[Sequence[int]], height: int, width: int, *, tolerance: int = 15
                    ) -> torch.Tensor:
    """The pointing game's centre baseline (TorchRay's "center" row): always point at the image
    centre, pixel ``(height // 2, width // 2)``, and score it as :func:`pointing_game` does.

    A map is worth its pointing-game score only by how far it beats this: photographs centre their
    objects, so the centre alone already hits most boxes.

    Returns:
        ``(N,)`` bool, one hit per box.
    """
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int (the maps' size), got {v!r}.")
    centre = torch.zeros(len(boxes), height, width)
    centre[:, height // 2, width // 2] = 1.0
    return pointing_game(centre, boxes, tolerance=tolerance)


# --------------------------------------------------------------------------- sanity check

def cascade_layers(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """The layer groups of the cascading randomisation, from the top (logits) down.

    Walks the network (``model.net`` for a course classifier) child by child in reverse; a
    ``nn.Sequential`` child with several parametrised children is split into them (timm's
    ``blocks.6 … blocks.0``, VGG's ``features.28 … features.0``, ResNet's ``layer4.2 …``).
    Children without parameters (pooling, activations) are skipped.

    Returns:
        ``[(name, [modules]), ...]``, names relative to ``model`` (e.g. ``"net.classifier"``).
    """
    root_name, root = ("net.", model.net) if isinstance(getattr(model, "net", None), nn.Module) \
        else ("", model)
    groups: list[tuple[str, list[nn.Module]]] = []
    for name, child in reversed(list(root.named_children())):
        if not any(True for _ in child.parameters()):
            continue
        inner = [(n, c) for n, c in child.named_children() if any(True for _ in c.parameters())]
        if isinstance(child, nn.Sequential) and len(inner) > 1:
            groups += [(f"{root_name}{name}.{n}", [c]) for n, c in reversed(inner)]
        else:
            groups.append((f"{root_name}{name}", [child]))
    if not groups:
        raise ValueError("The model has no parameters to randomise.")
    return groups


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two maps (flattened); ``nan`` if either is constant."""
    from scipy.stats import spearmanr

    x = a.detach().flatten().double().cpu().numpy()
    y = b.detach().flatten().double().cpu().numpy()
    if x.shape != y.shape:
        raise ValueError(f"maps differ in size: {tuple(a.shape)} vs {tuple(b.shape)}.")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def top_fraction_iou(a: torch.Tensor, b: torch.Tensor, fraction: float = 0.1) -> float:
    """IoU of the pixels where each of two maps has its top ``fraction`` of values.

    Spearman's ρ scores the order of *every* pixel, background included; this scores only where
    the two maps put their highest values (ties at the threshold are included).

    Args:
        a, b: maps of the same shape, e.g. ``(H, W)``.
        fraction: in (0, 1]; 0.1 compares the top 10 %.
    """
    fraction = check_fraction(fraction, "fraction", low=0.0, high=1.0, inclusive=True)
    if fraction == 0:
        raise ValueError("fraction=0 selects no pixel; use a value in (0, 1].")
    if a.shape != b.shape:
        raise ValueError(f"maps differ in size: {tuple(a.shape)} vs {tuple(b.shape)}.")
    x, y = a.detach().flatten().double().cpu(), b.detach().flatten().double().cpu()
    ta, tb = x >= x.quantile(1 - fraction), y >= y.quantile(1 - fraction)
    return float((ta & tb).sum() / (ta | tb).sum())


@dataclass(frozen=True)
class SanityCheck:
    """Result of :func:`model_randomisation`.

    Attributes:
        layers: ``["original", top group, …, bottom group]`` (``L + 1`` names).
        correlation: ``(N, L + 1)`` Spearman rank correlation of each map with the original one
            after randomising all groups up to and including that one (1 for ``"original"``).
        maps: ``(L + 1, N, H, W)`` the maps themselves, on the CPU.
    """

    layers: list[str]
    correlation: np.ndarray
    maps: torch.Tensor = field(repr=False)

    @property
    def mean_correlation(self) -> np.ndarray:
        """``(L + 1,)`` mean over the images, ignoring undefined (``nan``) entries — a map that
        became constant has no ranks; ``nan`` where every image's is undefined."""
        defined = ~np.isnan(self.correlation)
        total = np.where(defined, self.correlation, 0.0).sum(axis=0)
        count = defined.sum(axis=0)
        return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)

    @property
    def undefined(self) -> int:
        """How many (image, step) correlations are undefined because a map became constant."""
        return int(np.isnan(self.correlation).sum())


def _reinitialise(modules: Sequence[nn.Module], seed: int) -> None:
    """Re-initialise every submodule with ``reset_parameters`` (its own default init), seeded."""
    devices = sorted({p.device.index or 0 for m in modules for p in m.parameters()
                      if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        for module in modules:
            for sub in module.modules():
                if hasattr(sub, "reset_parameters"):
                    sub.reset_parameters()


def model_randomisation(model: nn.Module, images: torch.Tensor, target: Target, method: MapFn, *,
                        layers: list[tuple[str, list[nn.Module]]] | None = None, seed: int = 0
                        ) -> SanityCheck:
    """Cascading model-parameter randomisation (Adebayo et al., 2018, section 3.1).

    On a deep copy of ``model`` (the caller's model is never modified), re-initialise the layer
    groups of :func:`cascade_layers` one after another from the top, each with its modules' own
    default initialisation (``reset_parameters``: Kaiming-uniform convolutions and linear layers,
    batch-norm reset to identity statistics), seeded. After each group, recompute the map with
    ``method`` for the *same* target classes and compare it with the original map.

    Args:
        method: ``fn(model, images, target)`` → maps ``(N, H, W)``, e.g. one of
            :func:`utils.saliency.saliency_methods`.
        target: as usual; ``None`` → the original model's top-1 classes, kept for every step.
        layers: the groups, as names and modules **of ``model``** (default
            ``cascade_layers(model)``); they are found in the copy by name.

    Returns:
        A :class:`SanityCheck`. Cost: ``L + 1`` calls of ``method``.
    """
    batch, _ = check_images(images)
    dev = model_device(model)
    x = to_model(batch, model, dev)
    targets = resolve_targets(model, x, target).tolist()
    groups = cascade_layers(model) if layers is None else layers
    names_of = {id(m): n for n, m in model.named_modules()}
    resolved = []
    for name, mods in groups:
        missing = [m for m in mods if id(m) not in names_of]
        if missing:
            raise ValueError(f"layer group {name!r} holds modules that are not part of the model.")
        resolved.append((name, [names_of[id(m)] for m in mods]))
    original = method(model, x, targets).detach()
    twin = copy.deepcopy(model).eval()
    twin_modules = dict(twin.named_modules())
    maps = [original.cpu()]
    for k, (_, mod_names) in enumerate(resolved):
        _reinitialise([twin_modules[n] for n in mod_names], seed + k)
        maps.append(method(twin, x, targets).detach().cpu())
    corr = np.array([[spearman(maps[0][i], mk[i]) for mk in maps] for i in range(x.shape[0])])
    return SanityCheck(["original"] + [n for n, _ in resolved], corr, torch.stack(maps))


# --------------------------------------------------------------------------- cost

@dataclass
class PassCount:
    """Images sent through the model's forward and backward passes inside :func:`count_passes`."""

    forward: int = 0
    backward: int = 0


@contextmanager
def count_passes(model: nn.Module) -> Iterator[PassCount]:
    """Count the images that go forward through ``model`` and the images whose score receives a
    gradient (backward passes). The hooks are removed on exit, also on error."""
    count = PassCount()

    def before(module, inputs):
        count.forward += int(inputs[0].shape[0])

    def after(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.requires_grad:
            def on_grad(grad):
                count.backward += int(grad.shape[0])
            output.register_hook(on_grad)

    handles = [model.register_forward_pre_hook(before), model.register_forward_hook(after)]
    try:
        yield count
    finally:
        for h in handles:
            h.remove()


@dataclass(frozen=True)
class MethodRun:
    """One method's maps for a batch and what they cost (per image)."""

    maps: torch.Tensor
    seconds: float
    forward: float
    backward: float


def run_methods(methods: dict[str, MapFn], model: nn.Module, images: torch.Tensor,
                target: Target = None) -> dict[str, MethodRun]:
    """Compute each method's maps once, timing it and counting its passes.

    Returns:
        ``{name: MethodRun(maps (N, H, W) on the CPU, seconds per image, forward passes per
        image, backward passes per image)}``. Seconds are wall-clock and vary between runs.
    """
    batch, _ = check_images(images)
    dev = model_device(model)
    x = to_model(batch, model, dev)
    n = x.shape[0]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    runs = {}
    for name, fn in methods.items():
        with count_passes(model) as c:
            sync()
            t0 = time.perf_counter()
            maps = fn(model, x, target)
            sync()
            seconds = time.perf_counter() - t0
        runs[name] = MethodRun(maps.detach().cpu(), seconds / n, c.forward / n, c.backward / n)
    return runs


def format_table(rows: list[dict[str, object]], *, digits: int = 2) -> str:
    """A plain-text table of ``rows`` (dicts with the same keys); floats rounded to ``digits``."""
    if not rows:
        return ""
    keys = list(rows[0])

    def fmt(v: object) -> str:
        if isinstance(v, (float, np.floating)):
            return f"{v:.{digits}f}"
        return str(v)

    cells = [[fmt(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[j]) for c in cells)) for j, k in enumerate(keys)]
    lines = ["  ".join(k.ljust(widths[0]) if j == 0 else k.rjust(widths[j])
                       for j, k in enumerate(keys))]
    for c in cells:
        lines.append("  ".join(v.ljust(widths[0]) if j == 0 else v.rjust(widths[j])
                               for j, v in enumerate(c)))
    return "\n".join(lines)


# --------------------------------------------------------------------------- uncertainty

@dataclass(frozen=True)
class Interval:
    """A mean with its percentile-bootstrap interval: ``low <= mean <= high`` (usually)."""

    mean: float
    low: float
    high: float
    confidence: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.2f} [{self.low:.2f}, {self.high:.2f}]"


def bootstrap_interval(values: Sequence[float] | np.ndarray | torch.Tensor, *, confidence: float = 0.95,
                       n_resamples: int = 2000, seed: int = 0) -> Interval:
    """Mean of ``values`` (one number per photograph) and its percentile-bootstrap interval.

    The photographs are resampled with replacement ``n_resamples`` times (a fixed ``seed``, so the
    interval is reproducible); the interval holds the central ``confidence`` share of the resampled
    means. With few photographs the interval is wide, which is the point: it says how much a
    difference between two methods' means can be trusted.

    Args:
        values: one finite value per photograph, at least 2.
        confidence: in (0, 1), e.g. 0.95.
        n_resamples: number of bootstrap resamples, >= 100.
        seed: seed of the resampling generator (NumPy's PCG64).
    """
    v = values.detach().cpu().double().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
    v = v.reshape(-1)
    if v.size < 2 or not np.all(np.isfinite(v)):
        raise ValueError(f"values must hold at least 2 finite numbers (one per photograph), got {v.tolist()!r}.")
    confidence = check_fraction(confidence, "confidence")
    n_resamples = check_positive_int(n_resamples, "n_resamples", minimum=100)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_resamples, v.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(v.mean()), float(low), float(high), confidence, int(v.size))
