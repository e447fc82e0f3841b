"""Input validation shared by every public function of :mod:`utils`.

Each check raises an error that names the bad value and what is allowed, so that a student
sees *what to change* instead of a traceback from deep inside torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import chain

import numpy as np
import torch

__all__ = ["Target", "MapFn", "check_images", "check_target", "resolve_targets", "check_fraction", "check_nonnegative",
           "check_positive_int", "check_box", "check_eval_mode", "check_scores", "model_device", "resolve_device",
           "num_classes", "to_model", "resolve_baseline"]

#: A class target, as every function that takes ``target`` accepts it: one class index for every
#: image, one per image (sequence, tensor or array), or ``None`` (each image's top-1 class).
Target = int | Sequence[int] | torch.Tensor | np.ndarray | None
#: A saliency method as the measures call it: ``fn(model, images (N, 3, H, W), target) -> maps (N, H, W)``.
MapFn = Callable[..., torch.Tensor]


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's parameters (or buffers); CPU for a model without either.

    Every function of :mod:`utils` computes where the model is (as Captum does: there is no
    ``device=`` argument); the images are moved to the model, never the model to the images, and
    the results come back on the images' device.
    """
    return next((t.device for t in chain(model.parameters(), model.buffers())), torch.device("cpu"))


def resolve_device(device: str | torch.device | None, model: torch.nn.Module | None = None) -> torch.device:
    """Return the device to compute on, for the functions that still take ``device=``.

    ``device=None`` means "where the model's parameters are" (:func:`model_device`; CPU for a
    model without parameters). A string such as ``"cuda"`` is checked for availability, and
    against the model's device: the images are moved to the model, never the model to the images.

    Raises:
        ValueError: CUDA requested but not available, or ``device`` differs from the model's.
    """
    model_dev = None if model is None else model_device(model)
    if device is None:
        return model_dev if model_dev is not None else torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} was requested but CUDA is not available; use 'cpu'.")
    if model_dev is not None and (
        dev.type != model_dev.type
        or (dev.index is not None and model_dev.index is not None and dev.index != model_dev.index)
    ):
        raise ValueError(
            f"device={str(device)!r} but the model is on {str(model_dev)!r}; move the model with "
            f"model.to({str(device)!r}) or leave device=None to compute where the model is."
        )
    return dev


def num_classes(model: torch.nn.Module) -> int | None:
    """The model's number of classes when it says so (``len(model.categories)`` or
    ``model.num_classes``), else ``None`` (known only from its scores)."""
    cats = getattr(model, "categories", None)
    if cats:
        return len(cats)
    n = getattr(model, "num_classes", None)
    return int(n) if isinstance(n, int) and not isinstance(n, bool) else None


def to_model(x: torch.Tensor, model: torch.nn.Module, device: torch.device) -> torch.Tensor:
    """``x`` on ``device`` in the model's floating-point dtype.

    Images may come as float32 or float64; a layer refuses an input whose dtype differs from its
    weights (a bare ``RuntimeError`` deep inside torch), so the work is done in the model's dtype
    (float64 images for a float32 model are computed in float32).
    """
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    return x.to(device=device, dtype=dtype) if dtype is not None else x.to(device)


#: How far outside [0, 1] an image value may lie and still count as rounding (it is then clamped).
#: torchvision's ``Resize(antialias=True)`` gives values up to 1.0000002 on a photograph.
RANGE_TOLERANCE = 1e-4


def check_images(images: torch.Tensor, *, name: str = "images") -> tuple[torch.Tensor, bool]:
    """Validate an image batch and return ``(batch, was_single)``.

    Args:
        images: float tensor ``(N, 3, H, W)`` or one image ``(3, H, W)``, values in [0, 1].

    Returns:
        The batch as ``(N, 3, H, W)``, float32 or float64 (a view when possible; a clamped copy when
        values lie within :data:`RANGE_TOLERANCE` outside [0, 1]), and whether it was a single image
        (callers then squeeze the batch dimension of their result).

    Raises:
        TypeError: not a tensor, or not a floating-point tensor.
        ValueError: wrong rank or channel count, empty, NaN/inf, or values more than
            :data:`RANGE_TOLERANCE` outside [0, 1].
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (N, 3, H, W) or (3, H, W) with values in [0, 1], "
            f"got {type(images).__name__}; use utils.images.load_image(...) to make one."
        )
    if not torch.is_floating_point(images):
        raise TypeError(
            f"{name} must be a floating-point tensor with values in [0, 1], got dtype {images.dtype}; "
            "for uint8 pixels divide by 255 first (or use utils.images.load_image)."
        )
    single = images.dim() == 3
    if images.dim() not in (3, 4):
        raise ValueError(
            f"{name} must have shape (N, 3, H, W) or (3, H, W), got shape {tuple(images.shape)}."
        )
    batch = images.unsqueeze(0) if single else images
    if batch.shape[1] != 3:
        raise ValueError(
            f"{name} must have 3 colour channels in dimension {0 if single else 1} (RGB), got shape "
            f"{tuple(images.shape)}; convert grayscale with images.expand(3, -1, -1) or use load_image."
        )
    if batch.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(images.shape)}); give at least one 1×1 image.")
    if not torch.isfinite(batch).all():
        raise ValueError(f"{name} contains NaN or infinite values; images must be finite, in [0, 1].")
    lo, hi = float(batch.min()), float(batch.max())
    if lo < -RANGE_TOLERANCE or hi > 1.0 + RANGE_TOLERANCE:
        hint = "for 0..255 pixels divide by 255" if hi > 2.0 and lo >= 0.0 else (
            "these look normalised (mean/std already applied): pass the un-normalised image, the "
            "model normalises inside" if lo < -0.1 else "clamp them with images.clamp(0, 1)")
        raise ValueError(
            f"{name} must have values in [0, 1] (the model normalises internally); values up to "
            f"{RANGE_TOLERANCE:g} outside are accepted as rounding and clamped, but these span "
            f"[{lo:.7g}, {hi:.7g}]; {hint}."
        )
    if lo < 0.0 or hi > 1.0:  # float rounding of a resize or colour conversion, e.g. 1.0000002
        batch = batch.clamp(0.0, 1.0)
    if batch.dtype not in (torch.float32, torch.float64):
        batch = batch.float()  # half precision is computed in float32; float64 is kept
    return batch, single


def check_target(
    target: Target,
    n: int,
    *,
    num_classes: int | None = None,
    scores: torch.Tensor | None = None,
) -> torch.Tensor:
    """Turn ``target`` into a long tensor of ``n`` class indices.

    Args:
        target: an int or numpy integer (same class for every image), a sequence, 1-D integer
            tensor or 1-D numpy integer array of ``n`` class indices, or ``None`` for each image's
            top-1 class (then ``scores`` ``(n, classes)`` is needed).
        n: batch size.
        num_classes: classes are ``0 .. num_classes - 1``: the model's real count (default: the
            width of ``scores`` when given, else only ``>= 0`` is checked).

    Raises:
        TypeError: not integers (floats, bools, strings); ValueError: wrong count, wrong rank, or
        a class outside the model's range.
    """
    if num_classes is None and scores is not None:
        num_classes = scores.shape[1]
    if target is None:
        if scores is None:
            raise ValueError("target=None needs the model's scores to pick each image's top-1 class.")
        return scores.argmax(dim=1)
    if isinstance(target, bool):
        raise TypeError(f"target must be an int, a sequence of ints or None, got bool {target}.")
    if isinstance(target, np.ndarray):
        if target.dtype.kind not in "iu":
            raise TypeError(f"a numpy target must hold integers, got dtype {target.dtype}; "
                            "use e.g. np.asarray(target, dtype=int).")
        target = torch.from_numpy(np.ascontiguousarray(target, dtype=np.int64))
    if isinstance(target, torch.Tensor):
        if target.dim() > 1:
            raise ValueError(f"target tensor must be 0-D or 1-D, got shape {tuple(target.shape)}.")
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(f"a target tensor must hold integers, got dtype {target.dtype}; "
                            "use target.long().")
        values = [int(target)] * n if target.dim() == 0 else target.tolist()
    elif isinstance(target, int) or (hasattr(target, "__index__") and not isinstance(target, str)):
        values = [int(target)] * n
    elif isinstance(target, Sequence) and not isinstance(target, str):
        values = list(target)
    else:
        raise TypeError(
            f"target must be an int, a sequence of ints or None, got {type(target).__name__}; "
            "to use a class name, look it up with utils.models.class_index(model, name)."
        )
    if len(values) != n:
        raise ValueError(f"target has {len(values)} entries but there are {n} images; give one per image.")
    out = []
    for v in values:
        if isinstance(v, bool) or not (isinstance(v, int) or hasattr(v, "__index__")):
            raise TypeError(f"target entries must be ints, got {v!r} ({type(v).__name__}).")
        v = int(v)
        if v < 0 or (num_classes is not None and v >= num_classes):
            top = "" if num_classes is None else f"..{num_classes - 1}"
            raise ValueError(f"target {v} is outside the model's class range 0{top}.")
        out.append(v)
    return torch.tensor(out, dtype=torch.long)


def check_box(box: Sequence[float], name: str = "box") -> tuple[float, float, float, float]:
    """Check a box ``(x0, y0, x1, y1)`` (finite, ``x0 < x1``, ``y0 < y1``) and return it as floats."""
    if len(box) != 4:
        raise ValueError(f"{name} must be (x0, y0, x1, y1), got {tuple(box)}.")
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
        raise ValueError(f"{name}={tuple(box)} must have finite coordinates with x0 < x1 and y0 < y1.")
    return x0, y0, x1, y1


def _as_float(value: float, name: str) -> float:
    """``float(value)``, or a ``TypeError`` that names the argument."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}.") from None


def check_nonnegative(value: float, name: str, hint: str = "") -> float:
    """Check that ``value`` is a finite number ``>= 0`` and return it as a float (``hint``: appended
    to the error message)."""
    v = _as_float(value, name)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name}={value!r} is not allowed; it must be a finite number >= 0.{hint}")
    return v


def check_fraction(value: float, name: str, *, low: float = 0.0, high: float = 1.0,
                   inclusive: bool = False) -> float:
    """Check ``low < value < high`` (or ``<=`` when ``inclusive``) and return it as a float."""
    v = _as_float(value, name)
    ok = (low <= v <= high) if inclusive else (low < v < high)
    if not ok:
        bounds = f"[{low}, {high}]" if inclusive else f"({low}, {high})"
        raise ValueError(f"{name}={value!r} is outside the allowed range {bounds}.")
    return v


def check_positive_int(value: int, name: str, *, minimum: int = 1) -> int:
    """Check that ``value`` is an int ``>= minimum`` and return it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name}={value} is not allowed; it must be an int >= {minimum}.")
    return value


def check_eval_mode(model: torch.nn.Module) -> None:
    """Refuse a model in training mode: dropout and batch-norm statistics would change the scores.

    Raises:
        ValueError: ``model.training`` is True (call ``model.eval()`` first).
    """
    if getattr(model, "training", False):
        raise ValueError(
            "The model is in training mode (dropout and batch-norm statistics would change the "
            "scores); call model.eval() first."
        )


def check_scores(scores: torch.Tensor, n: int) -> torch.Tensor:
    """Check that a model returned class scores ``(n, classes)`` for ``n`` images, and return them.

    Raises:
        ValueError: any other shape (a model that returns features, or one score per image).
    """
    if scores.dim() != 2 or scores.shape[0] != n:
        raise ValueError(f"The model must return scores (N, classes), got shape {tuple(scores.shape)}.")
    return scores


def resolve_targets(model: torch.nn.Module, x: torch.Tensor, target: Target) -> torch.Tensor:
    """``target`` as ``(N,)`` long on ``x``'s device, checked against the model's class count;
    ``None`` → each image's top-1 class.

    Refuses a model in training mode (:func:`check_eval_mode`).
    """
    check_eval_mode(model)
    classes = num_classes(model)
    if target is None or classes is None:
        with torch.no_grad():
            scores = model(x if target is None else x[:1])
        classes = scores.shape[1]
        if target is None:
            target = scores.argmax(dim=1)
    return check_target(target, x.shape[0], num_classes=classes).to(x.device)


def resolve_baseline(baseline, x: torch.Tensor) -> torch.Tensor:
    """A baseline (reference image) as ``x``'s shape ``(N, 3, H, W)``, on ``x``'s device.

    ``baseline`` is a grey level in [0, 1], a colour ``(3,)`` in [0, 1], ``"mean"`` (each image's
    mean colour), or images ``(3, H, W)`` / ``(N, 3, H, W)`` in [0, 1].
    """
    if isinstance(baseline, str):
        if baseline != "mean":
            raise ValueError(f"baseline={baseline!r} is not known; use a grey level in [0, 1], a (3,) colour, "
                             "'mean' or images of the input's shape.")
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    if isinstance(baseline, torch.Tensor) and baseline.dim() == 1:
        if baseline.numel() != 3 or not torch.isfinite(baseline).all() or baseline.min() < 0 or baseline.max() > 1:
            raise ValueError(f"a colour baseline must be 3 values in [0, 1], got {baseline.tolist()}.")
        return baseline.to(device=x.device, dtype=x.dtype).view(1, 3, 1, 1).expand_as(x)
    if isinstance(baseline, torch.Tensor) and baseline.dim() > 1:
        b, _ = check_images(baseline, name="baseline")
        if b.shape[1:] != x.shape[1:] or b.shape[0] not in (1, x.shape[0]):
            raise ValueError(
                f"baseline must have the images' shape (3, H, W) or (N, 3, H, W) = "
                f"{tuple(x.shape)}, got {tuple(baseline.shape)}."
            )
        return b.to(device=x.device, dtype=x.dtype).expand_as(x)
    value = check_fraction(baseline, "baseline", low=0.0, high=1.0, inclusive=True)
    return torch.full_like(x, value)
