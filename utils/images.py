"""Loading and converting images, and the course's sample photographs.

Every image the course reads goes through :func:`load_image`; every sample file goes through
:func:`sample_path`, which checks its SHA-256 against ``data/manifest.json``.

Convention: an image is a float32 tensor ``(3, H, W)`` with RGB values in [0, 1]; a batch is
``(N, 3, H, W)``. Boxes are ``(x0, y0, x1, y1)`` in pixels, ``x1``/``y1`` exclusive: the package's
one rectangle convention, as the named tuple :class:`Box` (a plain tuple too, so ``x0, y0, x1, y1 =
box`` works).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps, UnidentifiedImageError

from ._validation import check_box, check_fraction, check_images, check_positive_int

__all__ = [
    "Box",
    "DEFAULT_SIZE",
    "MAX_PIXELS",
    "Sample",
    "data_dir",
    "SAMPLE_SETS",
    "sample_names",
    "sample_info",
    "sample_objects",
    "sample_path",
    "load_image",
    "load_sample",
    "load_samples",
    "resize_crop_box",
    "crop_box_to_original",
    "box_mask",
    "gaussian_blur",
    "to_numpy",
]



class Box(NamedTuple):
    """A rectangle ``(x0, y0, x1, y1)`` in pixels: columns ``x0 ≤ x < x1``, rows ``y0 ≤ y < y1``
    (exclusive ends, so ``image[..., y0:y1, x0:x1]`` is its content). Ints, or floats for a box in
    another image's pixels (:func:`crop_box_to_original`). It prints as a plain tuple."""

    x0: float
    y0: float
    x1: float
    y1: float

    def __repr__(self) -> str:
        return repr(tuple(self))

    @property
    def width(self) -> float:
        """``x1 − x0``."""
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        """``y1 − y0``."""
        return self.y1 - self.y0


DEFAULT_SIZE = 224
#: Largest image (width × height) that :func:`load_image` decodes. Larger files are refused with a
#: ``ValueError`` before decoding (a guard against decompression bombs and out-of-memory crashes).
MAX_PIXELS = 40_000_000


def data_dir() -> Path:
    """The course's ``data/`` folder (override with the ``SALIENCY_COURSE_DATA`` variable)."""
    env = os.environ.get("SALIENCY_COURSE_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data"


@cache
def _manifest() -> dict[str, dict]:
    path = data_dir() / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"The sample manifest {path} is missing; run from a clone of the course repository "
            "(pip install -e .) or set SALIENCY_COURSE_DATA to its data/ folder."
        )
    entries = json.loads(path.read_text())["images"]
    return {e["name"]: e for e in entries}


#: The sets :func:`sample_names` can list: ``"course"``, the eight photographs the notebooks use;
#: ``"all"``, those and the extra photographs of the evaluation set (``data/README.md``).
SAMPLE_SETS = ("course", "all")


def sample_names(which: str = "course") -> list[str]:
    """Names of sample photographs in ``data/``, in manifest order.

    Args:
        which: ``"course"`` (default) for the eight photographs the notebooks use (chelsea, coffee,
            rocket, camera, grace_hopper, china, flower, astronaut); ``"all"`` for the whole
            evaluation set, those eight first, then the extra photographs (manifest ``"set":
            "evaluation"``), chosen so that at least half have a main object covering less than
            40 % of the 224² crop.
    """
    if which not in SAMPLE_SETS:
        raise ValueError(f"which must be one of {SAMPLE_SETS}, got {which!r}.")
    m = _manifest()
    if which == "all":
        return list(m)
    return [n for n, e in m.items() if e.get("set", "course") == "course"]


def sample_info(name: str) -> dict:
    """The manifest entry of a sample: file, ``class_index``, ``class_name``, ``box``, source, licence."""
    m = _manifest()
    if name not in m:
        close = difflib.get_close_matches(name, m, n=2)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"No sample image is called {name!r}; the samples are {list(m)}.{hint}")
    return dict(m[name])


def sample_objects(name: str) -> list[tuple[int, Box]]:
    """Every labelled object of a sample as ``(class_index, box)``, the main object first.

    Boxes are ``(x0, y0, x1, y1)`` in the stored file's pixels (exclusive ends). Most photographs
    have one object (their ``class_index`` and ``box``); those with a manifest ``objects`` list
    (e.g. ``"canoes"``, ``"spaniels"``, ``"astronaut"``) have two.
    """
    info = sample_info(name)
    objects = info.get("objects") or [{"class_index": info["class_index"], "box": info["box"]}]
    return [(int(o["class_index"]), Box(*(int(v) for v in o["box"]))) for o in objects]


def sample_path(name: str) -> Path:
    """Path of a sample image, after checking the file's SHA-256 against the manifest."""
    info = sample_info(name)
    path = data_dir() / info["file"]
    if not path.is_file():
        raise FileNotFoundError(f"Sample image file is missing: {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != info["sha256"]:
        raise ValueError(
            f"Sample image {path.name} has SHA-256 {digest[:12]}…, the manifest expects "
            f"{info['sha256'][:12]}…; restore it with: git checkout -- data/{info['file']}"
        )
    return path


def _open(path: Path) -> Image.Image:
    if not path.exists():
        raise FileNotFoundError(f"No image file at {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not an image file.")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes), not an image.")
    try:
        with warnings.catch_warnings():  # our own MAX_PIXELS check below replaces Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            _check_pixels(im.size, path.name)
            im.load()
            return ImageOps.exif_transpose(im)
    except UnidentifiedImageError:
        raise ValueError(f"{path} is not an image file that Pillow can read (PNG, JPEG, …).") from None
    except (OSError, SyntaxError) as e:  # truncated or corrupt data
        raise ValueError(f"{path} could not be decoded, the file may be truncated or corrupt: {e}") from None
    except Image.DecompressionBombError as e:
        raise ValueError(f"{path} is too large to load safely: {e}") from None


def _check_pixels(size: tuple[int, int], label: str) -> None:
    w, h = size
    if w * h > MAX_PIXELS:
        raise ValueError(
            f"{label} is {w}×{h} = {w * h:,} pixels, above the limit of {MAX_PIXELS:,} "
            "(utils.images.MAX_PIXELS); downscale it first."
        )
    if w < 1 or h < 1:
        raise ValueError(f"{label} has size {w}×{h}; an image needs at least 1×1 pixels.")


def _pil_to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode → 8-bit RGB. Alpha is composited over white; 16-bit and float are rescaled."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(a / top, 0.0, 1.0) if im.mode != "F" else np.clip(a, 0.0, 1.0)
        im = Image.fromarray((a * 255 + 0.5).astype(np.uint8), mode="L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    return im.convert("RGB")


def _array_to_pil(a: np.ndarray) -> Image.Image:
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] > 4:
        a = np.moveaxis(a, 0, -1)  # (C, H, W) → (H, W, C)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise ValueError(
            f"An image array must be (H, W), (H, W, 3) or (H, W, 4) (or channels first), got shape {a.shape}."
        )
    _check_pixels((a.shape[1], a.shape[0]), "The array")
    if a.dtype == np.uint8:
        u8 = a
    elif a.dtype == np.uint16:
        u8 = (a.astype(np.float64) / 65535.0 * 255 + 0.5).astype(np.uint8)
    elif a.dtype == np.bool_:
        u8 = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ValueError("The image array contains NaN or infinite values.")
        if a.min() < 0 or a.max() > 1:
            raise ValueError(
                f"A float image array must have values in [0, 1], got [{a.min():.3g}, {a.max():.3g}]."
            )
        u8 = (a * 255 + 0.5).astype(np.uint8)
    else:
        raise TypeError(f"Unsupported image array dtype {a.dtype}; use uint8, uint16 or float in [0, 1].")
    return Image.fromarray(u8)


def load_image(source: str | os.PathLike | Image.Image | np.ndarray | torch.Tensor,
               size: int | None = None) -> torch.Tensor:
    """Load an image as a float tensor ``(3, size, size)`` with RGB values in [0, 1].

    The shorter side is resized to ``size`` (bicubic, antialiased) and the centre is cropped, as
    for ImageNet evaluation. Grayscale, palette, RGBA (over white), CMYK and 16-bit images become
    RGB; a photo's EXIF orientation is honoured.

    Args:
        source: a file path; the name of a sample image (see :func:`sample_names`, e.g.
            ``"chelsea"``); a PIL image; a numpy array ``(H, W)``/``(H, W, 3|4)`` (uint8, uint16, or
            float in [0, 1]); or a tensor ``(3, H, W)`` in [0, 1].
        size: output side length, default 224.

    Raises:
        FileNotFoundError: the path does not exist (the message names it).
        ValueError: the file is not a readable image, is too large (:data:`MAX_PIXELS`), or
            ``size`` is not a positive int.
    """
    size = DEFAULT_SIZE if size is None else size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int (e.g. 224), got {size!r}.")
    if isinstance(source, torch.Tensor):
        t, single = check_images(source.detach().cpu(), name="source")
        if not single:
            raise ValueError(f"load_image takes one image (3, H, W), got shape {tuple(source.shape)}.")
        im = Image.fromarray((t[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
    elif isinstance(source, Image.Image):
        _check_pixels(source.size, "The PIL image")
        im = ImageOps.exif_transpose(source)
    elif isinstance(source, np.ndarray):
        im = _array_to_pil(source)
    elif isinstance(source, (str, os.PathLike)):
        s = str(source)
        if s in _manifest():
            path = sample_path(s)
        else:
            path = Path(s).expanduser()
            if not path.exists() and not path.suffix and os.sep not in s:
                close = difflib.get_close_matches(s, _manifest(), n=2)
                hint = f" Did you mean the sample {' or '.join(map(repr, close))}?" if close else ""
                raise FileNotFoundError(
                    f"No image file at {path} and no sample image called {s!r}; samples: "
                    f"{sample_names('all')}.{hint}"
                )
        im = _open(path)
    else:
        raise TypeError(
            f"source must be a path, a sample name, a PIL image, a numpy array or a tensor, got "
            f"{type(source).__name__}."
        )
    im = _pil_to_rgb(im)
    nw, nh, left, top = _resize_crop_geometry(im.size, size)
    im = im.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=None)
    im = im.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


# The resize-and-centre-crop of :func:`load_image`, and boxes mapped through it both ways.

def _resize_crop_geometry(original_size: tuple[int, int], size: int) -> tuple[int, int, int, int]:
    """``(new_width, new_height, left, top)``: the shorter side of a ``(width, height)`` image is
    resized to ``size``, then the ``size × size`` crop starting at ``(left, top)`` is kept."""
    w, h = original_size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    return nw, nh, (nw - size) // 2, (nh - size) // 2


def resize_crop_box(box: Sequence[float], original_size: tuple[int, int],
                    size: int | None = None) -> Box:
    """Map a box through :func:`load_image`'s resize and centre crop (inverse:
    :func:`crop_box_to_original`).

    Args:
        box: ``(x0, y0, x1, y1)`` in the original image's pixels, ``x1``/``y1`` exclusive.
        original_size: the original image's ``(width, height)``.
        size: the ``size`` given to :func:`load_image` (default 224).

    Returns:
        The box in the loaded ``(size, size)`` image's pixels, clipped to it (ints, exclusive ends).
    """
    size = DEFAULT_SIZE if size is None else size
    w, h = original_size
    x0, y0, x1, y1 = check_box(box)
    if not (0 <= x0 and x1 <= w and 0 <= y0 and y1 <= h):
        raise ValueError(f"box {tuple(box)} is not inside a {w}×{h} image with x0 < x1 and y0 < y1.")
    nw, nh, left, top = _resize_crop_geometry(original_size, size)
    sx, sy = nw / w, nh / h

    def clip(v: float) -> int:
        return int(min(max(round(v), 0), size))

    out = Box(clip(x0 * sx - left), clip(y0 * sy - top), clip(x1 * sx - left), clip(y1 * sy - top))
    if out[2] <= out[0] or out[3] <= out[1]:
        raise ValueError(f"box {tuple(box)} falls outside the centre crop of a {w}×{h} image.")
    return out


def crop_box_to_original(box: Sequence[float], original_size: tuple[int, int],
                         size: int | None = None) -> Box:
    """Inverse of :func:`resize_crop_box`: a box in the loaded ``size × size`` crop → the original
    ``(width, height)`` image's pixels (floats, exclusive ends, clipped to the image)."""
    size = DEFAULT_SIZE if size is None else size
    w, h = original_size
    x0, y0, x1, y1 = check_box(box)
    nw, nh, left, top = _resize_crop_geometry(original_size, size)
    sx, sy = w / nw, h / nh
    return Box(min(max((x0 + left) * sx, 0.0), w), min(max((y0 + top) * sy, 0.0), h),
            min(max((x1 + left) * sx, 0.0), w), min(max((y1 + top) * sy, 0.0), h))


def box_mask(box: Sequence[int], height: int, width: int) -> torch.Tensor:
    """Boolean mask ``(height, width)``, True inside the box ``(x0, y0, x1, y1)`` (exclusive ends)."""
    x0, y0, x1, y1 = (int(v) for v in box)
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValueError(f"box {tuple(box)} is not inside a {width}×{height} image with x0 < x1, y0 < y1.")
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[y0:y1, x0:x1] = True
    return mask


@dataclass(frozen=True)
class Sample:
    """A sample photograph, loaded: ``image`` ``(3, size, size)`` in [0, 1], its class and box."""

    name: str
    image: torch.Tensor
    target: int
    class_name: str
    box: Box  # in the loaded image's pixels, exclusive ends
    #: every labelled object ``(class_index, box)`` in the loaded image's pixels, main object first
    #: (see :func:`sample_objects`); objects outside the centre crop are left out.
    objects: tuple[tuple[int, Box], ...] = ()


def load_sample(name: str, size: int | None = None) -> Sample:
    """Load one sample photograph with its ImageNet class and its boxes mapped to the loaded image."""
    info = sample_info(name)
    image = load_image(name, size)
    original = (info["width"], info["height"])
    box = resize_crop_box(info["box"], original, image.shape[-1])
    objects = [(c, resize_crop_box(b, original, image.shape[-1])) for c, b in sample_objects(name)
               if _in_crop(b, original)]
    return Sample(name, image, int(info["class_index"]), info["class_name"], box, tuple(objects))


def _in_crop(box: Sequence[float], original_size: tuple[int, int]) -> bool:
    try:
        resize_crop_box(box, original_size)
    except ValueError:
        return False
    return True


def load_samples(size: int | None = None, names: list[str] | None = None) -> list[Sample]:
    """Load the course's sample photographs (or those in ``names``, e.g. ``sample_names("all")``)."""
    return [load_sample(n, size) for n in (names or sample_names())]


def gaussian_blur(images: torch.Tensor, sigma: float, *, kernel_size: int | None = None) -> torch.Tensor:
    """The package's one blur: torchvision's ``gaussian_blur`` (separable Gaussian, reflected borders).

    Args:
        images: ``(N, C, H, W)`` or ``(C, H, W)`` float tensor; returned in the same shape and dtype.
        sigma: the Gaussian's standard deviation in pixels, in [0, 1000); ``0`` returns ``images``.
        kernel_size: odd side of the kernel; ``None``: ``2·ceil(3σ) + 1`` (the Gaussian to 3σ).
            RISE's insertion canvas uses 11 with σ = 5.

    Raises:
        ValueError: an even or non-positive ``kernel_size``, or ``sigma`` outside [0, 1000).
    """
    sigma = check_fraction(sigma, "sigma", low=0.0, high=1e3, inclusive=True)
    if sigma == 0:
        return images
    k = 2 * max(1, math.ceil(3 * sigma)) + 1 if kernel_size is None else check_positive_int(kernel_size, "kernel_size")
    if k % 2 == 0:
        raise ValueError(f"kernel_size={k} must be odd (a kernel centred on each pixel).")
    return TF.gaussian_blur(images, [k, k], [sigma, sigma])


def to_numpy(image: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` tensor in [0, 1] → ``(H, W, 3)`` float numpy array, for plotting."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"to_numpy expects one image (3, H, W), got shape {tuple(image.shape)}.")
    return image.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy()
