"""Interactive explorers (ipywidgets) for the notebooks, built on plain functions.

Each explorer is a function that returns a widget to display in a notebook cell (mark that cell
``# NBVAL_IGNORE_OUTPUT``; the static figure of the same idea stays beside it). All the work is
done by plain functions that tests, and readers, can call directly:

==========================  ========================================  ==============================
explorer                    plain functions                           used in
==========================  ========================================  ==============================
:func:`saliency_explorer`   :func:`class_probabilities`,              notebook 02
                            :func:`class_options`,
                            :func:`compute_saliency_view`,
                            :func:`saliency_panels`,
                            :func:`image_from_upload`
:func:`quadtree_explorer`   :func:`compute_quadtree_view`,            notebook 05
                            :func:`quadtree_panels`
==========================  ========================================  ==============================

Every explorer returns a ``VBox`` with an extra attribute ``controls``: a dict of its named child
widgets (documented per explorer), and ``state``: a dict holding the last computed view. Setting
a control's ``.value`` (or calling ``controls["run"].click()``) recomputes, exactly as a reader's
click does. Long computations show a progress bar. Errors (an unreadable upload, an unknown class
name) are shown in the explorer's status line instead of being lost in the kernel log.

The figures are rendered to PNG bytes with :mod:`utils.plotting` on a bare
:class:`matplotlib.figure.Figure` (no pyplot state, so nothing else appears in the cell).
"""

from __future__ import annotations

import html
import io
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ._validation import check_images, check_positive_int, model_device, to_model
from .images import load_image, load_sample, sample_names
from .models import class_index, load_classifier
from .plotting import draw_leaves, overlay, show_image, show_map
from .quadtree import build_quadtree, psnr, uniform_reconstruction
from .saliency import saliency_methods

__all__ = [
    "figure_png",
    "class_labels",
    "parse_class",
    "class_probabilities",
    "class_options",
    "image_from_upload",
    "compute_saliency_view",
    "saliency_panels",
    "saliency_explorer",
    "compute_quadtree_view",
    "quadtree_panels",
    "quadtree_explorer",
    "MIN_LEAF_CHOICES",
]

#: Minimum leaf sizes offered by :func:`quadtree_explorer` (pixels).
MIN_LEAF_CHOICES: tuple[int, ...] = (1, 2, 4, 8, 16)
_PANEL_INCHES = 2.6
_PANEL_DPI = 90


# ----------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------

def figure_png(draw: Callable[[Any], object], *, size: tuple[float, float] = (_PANEL_INCHES, _PANEL_INCHES),
               dpi: int = _PANEL_DPI) -> bytes:
    """Render one panel to PNG bytes: ``draw(ax)`` draws into axes that fill a bare figure.

    Uses :class:`matplotlib.figure.Figure` directly (not pyplot), so no figure is left open and
    nothing is displayed by the notebook's inline backend.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    draw(ax)
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _status(text: str, *, error: bool = False) -> str:
    """HTML for a status line (escaped; red for errors)."""
    colour = "#b00020" if error else "inherit"
    return f'<span style="color:{colour}">{html.escape(text)}</span>'


def _publish(state: dict, status, view: dict, panels: dict, targets: dict, message: str) -> None:
    """Show ``panels[key]`` in each image widget ``targets[key]``, remember ``view``, report ``message``."""
    for key, w in targets.items():
        w.value = panels[key]
    state["view"] = view
    state["computations"] += 1
    status.value = _status(message)


def _show_error(status, error: Exception) -> None:
    """Report an exception in the status line (shown to the reader, not lost in the kernel log)."""
    status.value = _status(f"{type(error).__name__}: {error}", error=True)


def _image_widget(css_class: str):
    import ipywidgets as widgets

    w = widgets.Image(format="png", layout=widgets.Layout(width="234px", height="234px"))
    w.add_class(css_class)
    return w


def _captioned(widget, caption: str):
    import ipywidgets as widgets

    return widgets.VBox([widgets.HTML(f"<b>{html.escape(caption)}</b>"), widget])


def _default_model(model: nn.Module | None) -> nn.Module:
    if model is not None:
        return model
    return load_classifier()


# ----------------------------------------------------------------------------------------------
# Classes: labels, names, probabilities
# ----------------------------------------------------------------------------------------------

def class_labels(categories: Sequence[str]) -> list[str]:
    """One unique label per class, for a name box: the class name, or ``"name (index)"`` for the
    names ImageNet uses twice (``"crane"`` is a bird, 134, and a machine, 517)."""
    counts: dict[str, int] = {}
    for c in categories:
        counts[c] = counts.get(c, 0) + 1
    return [c if counts[c] == 1 else f"{c} ({i})" for i, c in enumerate(categories)]


_LABEL_WITH_INDEX = re.compile(r"^(.*) \((\d+)\)$")


def parse_class(text: str | int, categories: Sequence[str]) -> int:
    """The class index a reader means: an index (``282``, ``"282"``), a name (``"tiger cat"``,
    case-insensitive) or a :func:`class_labels` label (``"crane (517)"``).

    Raises:
        ValueError: no such class (the message suggests close names, see
            :func:`utils.models.class_index`).
    """
    n = len(categories)
    if isinstance(text, int) and not isinstance(text, bool):
        if 0 <= text < n:
            return text
        raise ValueError(f"Class index {text} is outside 0..{n - 1}.")
    s = str(text).strip()
    if s.isdigit():
        return parse_class(int(s), categories)
    m = _LABEL_WITH_INDEX.match(s)
    if m and int(m.group(2)) < n and categories[int(m.group(2))].lower() == m.group(1).strip().lower():
        return int(m.group(2))
    return class_index(list(categories), s)


@torch.no_grad()
def class_probabilities(model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities ``P_c`` of one image ``(3, H, W)`` in [0, 1]: ``(classes,)`` on the CPU."""
    batch, single = check_images(image, name="image")
    if not single:
        raise ValueError(f"image must be one image (3, H, W), got shape {tuple(image.shape)}.")
    return model(to_model(batch, model, model_device(model))).softmax(dim=1)[0].cpu()


def _format_p(p: float) -> str:
    return f"{p:.2f}" if p >= 0.01 else f"{p:.1e}"


def class_options(probabilities: torch.Tensor, categories: Sequence[str], k: int = 5,
                  extra: Sequence[int] = ()) -> list[tuple[str, int]]:
    """Dropdown options ``[(label, class index), ...]``: the top-``k`` classes by probability,
    then the ``extra`` classes (chosen by name) that are not among them, each with its rank.

    Labels read ``"tiger cat · p = 0.52"`` (top-k) and ``"goldfish · p = 3.1e-06 · rank 412"``.
    """
    check_positive_int(k, "k")
    probs = torch.as_tensor(probabilities).flatten()
    if probs.numel() != len(categories):
        raise ValueError(f"{probs.numel()} probabilities for {len(categories)} categories.")
    order = probs.argsort(descending=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(1, order.numel() + 1)
    top = order[:k].tolist()
    options = [(f"{categories[i]} · p = {_format_p(float(probs[i]))}", i) for i in top]
    for i in extra:
        if i not in top:
            options.append((f"{categories[i]} · p = {_format_p(float(probs[i]))} · rank {int(rank[i])}", i))
            top.append(i)
    return options


def image_from_upload(upload_value: Sequence[Mapping] | Mapping | bytes, size: int | None = None
                      ) -> tuple[str, torch.Tensor]:
    """The image of an ``ipywidgets.FileUpload`` (its ``.value``: a tuple of file dicts with
    ``name`` and ``content``), or raw file bytes, through :func:`utils.images.load_image`.

    Returns:
        ``(name, image)`` with ``image`` ``(3, size, size)`` in [0, 1] (the last uploaded file).

    Raises:
        ValueError: nothing uploaded, or the bytes are not an image Pillow can read.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(upload_value, (bytes, bytearray, memoryview)):
        name, content = "upload", bytes(upload_value)
    else:
        files = [upload_value] if isinstance(upload_value, Mapping) else list(upload_value)
        if not files:
            raise ValueError("No file was uploaded; choose an image file (PNG, JPEG, …).")
        name, content = str(files[-1].get("name", "upload")), bytes(files[-1]["content"])
    if not content:
        raise ValueError(f"The uploaded file {name!r} is empty.")
    try:
        with Image.open(io.BytesIO(content)) as im:
            im.load()
            return name, load_image(im.copy(), size)
    except UnidentifiedImageError:
        raise ValueError(f"The uploaded file {name!r} is not an image Pillow can read; upload a "
                         "PNG, JPEG, GIF, BMP, TIFF or WebP file.") from None
    except (OSError, SyntaxError) as e:  # truncated or corrupt data
        raise ValueError(f"The uploaded file {name!r} could not be decoded (truncated or corrupt?): "
                         f"{e}") from None


# ----------------------------------------------------------------------------------------------
# Saliency explorer
# ----------------------------------------------------------------------------------------------

def _default_methods() -> dict[str, Callable[..., torch.Tensor]]:
    """The registry of :func:`utils.saliency.saliency_methods`, at interactive settings
    (SmoothGrad with 16 samples, integrated gradients with 16 steps)."""
    return saliency_methods(samples=16, steps=16)


def compute_saliency_view(model: nn.Module, image: torch.Tensor, target: int | None = None,
                          method: str = "gradient", *,
                          methods: Mapping[str, Callable[..., torch.Tensor]] | None = None,
                          probabilities: torch.Tensor | None = None) -> dict:
    """Everything the saliency explorer shows for one image, class and method.

    Args:
        model: a classifier from :func:`utils.models.load_classifier` (eval mode).
        image: ``(3, H, W)`` in [0, 1].
        target: class index (``None``: the top-1 class).
        method: a name in ``methods`` (default: :func:`utils.saliency.saliency_methods`, e.g.
            ``"gradient"``, ``"SmoothGrad"``, ``"Grad-CAM"``).
        methods: ``{name: fn(model, images, target)}`` returning maps ``(N, H, W)``.
        probabilities: the image's :func:`class_probabilities`, if already computed.

    Returns:
        A dict: ``image`` ``(3, H, W)``, ``map`` ``(H, W)`` (CPU, the method's units),
        ``target``, ``class_name``, ``probability`` (softmax ``P_c``), ``rank`` (1 = top-1),
        ``method``.

    Raises:
        ValueError: unknown ``method`` (the message lists the known ones), bad image or target.
    """
    methods = _default_methods() if methods is None else methods
    if method not in methods:
        raise ValueError(f"Unknown saliency method {method!r}; choose one of {list(methods)}.")
    batch, single = check_images(image, name="image")
    if not single:
        raise ValueError(f"image must be one image (3, H, W), got shape {tuple(image.shape)}.")
    probs = class_probabilities(model, image) if probabilities is None else probabilities
    cats = getattr(model, "categories", None) or [str(i) for i in range(probs.numel())]
    target = int(probs.argmax()) if target is None else parse_class(target, cats)
    saliency = methods[method](model, batch, [target])
    return {
        "image": image.detach().cpu(),
        "map": saliency[0].detach().float().cpu(),
        "target": target,
        "class_name": cats[target],
        "probability": float(probs[target]),
        "rank": int((probs > probs[target]).sum()) + 1,
        "method": method,
    }


def saliency_panels(view: Mapping) -> dict[str, bytes]:
    """PNG bytes of the three panels of a :func:`compute_saliency_view` result: ``"image"``,
    ``"map"`` (:func:`utils.plotting.show_map`) and ``"overlay"`` (:func:`utils.plotting.overlay`)."""
    return {
        "image": figure_png(lambda ax: show_image(view["image"], ax)),
        "map": figure_png(lambda ax: show_map(view["map"], ax)),
        "overlay": figure_png(lambda ax: overlay(view["image"], view["map"], ax)),
    }


def saliency_explorer(model: nn.Module | None = None, *, samples: Sequence[str] | None = None,
                      methods: Mapping[str, Callable[..., torch.Tensor]] | None = None,
                      method: str = "gradient", k: int = 5):
    """An explorer of saliency maps: choose an image (a sample or an upload), a class (top-``k``
    with probabilities, or any ImageNet class by name) and a method; see image, map and overlay.

    Args:
        model: the classifier (default: :func:`utils.models.load_classifier`'s default).
        samples: sample names to offer (default: :func:`utils.images.sample_names`).
        methods: ``{name: fn}`` as in :func:`compute_saliency_view` (default: the registry of
            :func:`utils.saliency.saliency_methods`, SmoothGrad with 16 samples).
        method: the method shown first. k: how many top classes the class list offers.

    Returns:
        A ``VBox``. ``.controls``: ``"image"`` (Dropdown of samples and uploads), ``"upload"``
        (FileUpload), ``"class"`` (Dropdown, value = class index), ``"name"`` (Combobox: type
        any class name, Enter adds it to the class list), ``"method"`` (Dropdown),
        ``"progress"`` (IntProgress), ``"status"`` (HTML), ``"image_view"``, ``"map_view"``,
        ``"overlay_view"`` (PNG Image widgets). ``.state["view"]``: the last
        :func:`compute_saliency_view` result.
    """
    import ipywidgets as widgets

    model = _default_model(model)
    methods = dict(_default_methods() if methods is None else methods)
    if method not in methods:
        raise ValueError(f"Unknown saliency method {method!r}; choose one of {list(methods)}.")
    check_positive_int(k, "k")
    names = list(samples) if samples is not None else sample_names()
    if not names:
        raise ValueError("samples is empty; give at least one sample name (see sample_names()).")
    size = int(getattr(model, "input_size", 224))
    cats = list(getattr(model, "categories", [str(i) for i in range(1000)]))
    images: dict[str, torch.Tensor] = {}
    state: dict[str, Any] = {"view": None, "probabilities": None, "extra": [], "quiet": False,
                             "computations": 0}

    image_box = widgets.Dropdown(options=names, value=names[0], description="image")
    upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload")
    class_box = widgets.Dropdown(description="class", layout=widgets.Layout(width="360px"))
    class_box.add_class("saliency-class")
    name_box = widgets.Combobox(options=class_labels(cats), placeholder="any ImageNet class…",
                                ensure_option=True, description="by name")
    name_box.add_class("saliency-name")
    method_box = widgets.Dropdown(options=list(methods), value=method, description="method")
    method_box.add_class("saliency-method")
    progress = widgets.IntProgress(value=0, min=0, max=3, description="", bar_style="info",
                                   layout=widgets.Layout(width="160px"))
    status = widgets.HTML()
    status.add_class("saliency-status")
    views = {key: _image_widget(f"saliency-{key}") for key in ("image", "map", "overlay")}

    def image_of(key: str) -> torch.Tensor:
        if key not in images:
            images[key] = load_sample(key, size).image
        return images[key]

    def recompute() -> None:
        if state["quiet"]:
            return
        t0 = time.perf_counter()
        progress.value, progress.bar_style = 0, "info"
        try:
            status.value = _status(f"computing the {method_box.value} map…")
            progress.value = 1
            view = compute_saliency_view(model, image_of(image_box.value), class_box.value,
                                         method_box.value, methods=methods,
                                         probabilities=state["probabilities"])
            progress.value = 2
            progress.value, progress.bar_style = 3, "success"
            _publish(state, status, view, saliency_panels(view), views,
                     f"{view['method']} map of '{view['class_name']}' (class {view['target']}, "
                     f"p = {_format_p(view['probability'])}, rank {view['rank']}) "
                     f"in {time.perf_counter() - t0:.1f} s")
        except Exception as e:
            progress.bar_style = "danger"
            _show_error(status, e)

    def set_classes(select: int | None = None) -> None:
        """Refill the class list for the current image (quietly) and select ``select`` or top-1."""
        state["quiet"] = True
        try:
            state["probabilities"] = class_probabilities(model, image_of(image_box.value))
            class_box.options = class_options(state["probabilities"], cats, k, state["extra"])
            class_box.value = select if select is not None else class_box.options[0][1]
        finally:
            state["quiet"] = False

    def on_image(change) -> None:
        try:
            set_classes()
        except Exception as e:
            _show_error(status, e)
            return
        recompute()

    def on_upload(change) -> None:
        if not change["new"]:
            return
        try:
            name, image = image_from_upload(change["new"], size)
        except ValueError as e:
            status.value = _status(str(e), error=True)
            return
        key = f"upload: {name}"
        images[key] = image
        if key not in image_box.options:
            image_box.options = [*image_box.options, key]
        if image_box.value == key:
            on_image(None)
        else:
            image_box.value = key  # → on_image

    def on_name(change) -> None:
        text = change["new"]
        if not text:
            return
        try:
            index = parse_class(text, cats)
        except ValueError as e:
            status.value = _status(str(e), error=True)
            return
        if index not in state["extra"]:
            state["extra"].append(index)
        if index in [v for _, v in class_box.options] and class_box.value == index:
            recompute()
            return
        set_classes(select=index)
        recompute()

    set_classes()
    image_box.observe(on_image, names="value")
    upload.observe(on_upload, names="value")
    class_box.observe(lambda change: recompute(), names="value")
    method_box.observe(lambda change: recompute(), names="value")
    name_box.observe(on_name, names="value")
    recompute()

    box = widgets.VBox([
        widgets.HBox([image_box, upload]),
        widgets.HBox([class_box, name_box]),
        widgets.HBox([method_box, progress, status]),
        widgets.HBox([_captioned(views["image"], "image"), _captioned(views["map"], "saliency map"),
                      _captioned(views["overlay"], "overlay")]),
    ])
    box.add_class("saliency-explorer")
    box.controls = {"image": image_box, "upload": upload, "class": class_box, "name": name_box,
                    "method": method_box, "progress": progress, "status": status,
                    "image_view": views["image"], "map_view": views["map"],
                    "overlay_view": views["overlay"]}
    box.state = state
    return box


# ----------------------------------------------------------------------------------------------
# Quadtree explorer
# ----------------------------------------------------------------------------------------------

def compute_quadtree_view(image: torch.Tensor, threshold: float, min_size: int = 1) -> dict:
    """A quadtree of ``image`` and what it costs and keeps (:func:`utils.quadtree.build_quadtree`).

    Args:
        image: ``(3, H, W)`` (or ``(C, H, W)``, ``(H, W)``).
        threshold: split while the per-channel range ``max − min`` in a block exceeds this.
        min_size: smallest leaf side in pixels.

    Returns:
        A dict: ``tree`` (:class:`utils.quadtree.QuadTree`), ``n_leaves`` (``N'``), ``pixels``
        (``N² = H·W``), ``leaf_fraction`` (``N'/N²``), ``reconstruction`` (the piecewise-constant
        image), ``psnr`` (dB, of the reconstruction), ``uniform_psnr`` (dB, of a regular grid of
        the same number of cells: what adaptivity buys), ``image``.
    """
    img = image.detach().cpu().float() if isinstance(image, torch.Tensor) else image
    tree = build_quadtree(img, threshold, min_size=min_size)  # validates the image
    if img.dim() == 2:
        img = img[None]
    rec = tree.reconstruct()
    return {"tree": tree, "n_leaves": tree.n_leaves, "pixels": tree.height * tree.width,
            "leaf_fraction": tree.leaf_fraction, "reconstruction": rec, "psnr": psnr(rec, img),
            "uniform_psnr": psnr(uniform_reconstruction(img, tree.n_leaves), img), "image": img}


def quadtree_panels(view: Mapping) -> dict[str, bytes]:
    """PNG bytes of a :func:`compute_quadtree_view` result: ``"leaves"`` (the leaves over the
    image, :func:`utils.plotting.draw_leaves`) and ``"reconstruction"`` (each leaf filled with its
    mean colour)."""
    tree, image = view["tree"], view["image"]
    lw = 0.3 if view["n_leaves"] > 2000 else 0.6
    return {
        "leaves": figure_png(lambda ax: draw_leaves(ax, tree, image, lw=lw)),
        "reconstruction": figure_png(lambda ax: draw_leaves(ax, tree, view["reconstruction"], lw=0)),
    }


def quadtree_explorer(image: torch.Tensor | None = None, *, samples: Sequence[str] | None = None,
                      threshold: float = 0.2, min_size: int = 1, size: int | None = None):
    """An explorer of quadtree decompositions: threshold and minimum leaf size → the leaves over
    the image, the reconstruction, ``N'/N²`` and PSNR (and a regular grid's PSNR at the same
    ``N'``, for comparison). Fast enough to follow the sliders.

    Args:
        image: ``(3, H, W)`` to decompose; ``None``: a dropdown of sample photographs.
        samples: sample names to offer when ``image`` is None (default: all).
        threshold, min_size: the initial values. size: side of loaded samples (default 224).

    Returns:
        A ``VBox``. ``.controls``: ``"image"`` (Dropdown, or None when an image was given),
        ``"threshold"`` (FloatSlider 0–0.6), ``"min_size"`` (SelectionSlider over
        :data:`MIN_LEAF_CHOICES`), ``"status"`` (HTML), ``"leaves_view"``,
        ``"reconstruction_view"`` (PNG Image widgets). ``.state["view"]``: the last
        :func:`compute_quadtree_view` result.
    """
    import ipywidgets as widgets

    if min_size not in MIN_LEAF_CHOICES:
        raise ValueError(f"min_size={min_size!r}; choose one of {MIN_LEAF_CHOICES}.")
    state: dict[str, Any] = {"view": None, "computations": 0}
    if image is None:
        names = list(samples) if samples is not None else sample_names()
        image_box = widgets.Dropdown(options=names, value=names[0], description="image")
        cache: dict[str, torch.Tensor] = {}

        def current() -> torch.Tensor:
            if image_box.value not in cache:
                cache[image_box.value] = load_sample(image_box.value, size).image
            return cache[image_box.value]
    else:
        image_box = None

        def current() -> torch.Tensor:
            return image

    thr = widgets.FloatSlider(value=threshold, min=0.0, max=0.6, step=0.01, description="threshold",
                              continuous_update=False, readout_format=".2f")
    leaf = widgets.SelectionSlider(options=list(MIN_LEAF_CHOICES), value=min_size,
                                   description="min leaf", continuous_update=False)
    status = widgets.HTML()
    status.add_class("quadtree-status")
    leaves_view, rec_view = _image_widget("quadtree-leaves"), _image_widget("quadtree-reconstruction")

    def update(_change=None) -> None:
        t0 = time.perf_counter()
        try:
            view = compute_quadtree_view(current(), thr.value, leaf.value)
            _publish(state, status, view, quadtree_panels(view),
                     {"leaves": leaves_view, "reconstruction": rec_view},
                     f"N' = {view['n_leaves']} leaves, N'/N² = {view['leaf_fraction']:.3f}; PSNR "
                     f"{view['psnr']:.1f} dB (regular grid with N' cells: {view['uniform_psnr']:.1f} dB) "
                     f"— {time.perf_counter() - t0:.2f} s")
        except Exception as e:
            _show_error(status, e)

    for w in (thr, leaf, image_box):
        if w is not None:
            w.observe(update, names="value")
    update()
    top = [w for w in (image_box, thr, leaf) if w is not None]
    box = widgets.VBox([
        widgets.HBox(top),
        status,
        widgets.HBox([_captioned(leaves_view, "leaves"), _captioned(rec_view, "reconstruction")]),
    ])
    box.add_class("quadtree-explorer")
    box.controls = {"image": image_box, "threshold": thr, "min_size": leaf, "status": status,
                    "leaves_view": leaves_view, "reconstruction_view": rec_view}
    box.state = state
    return box
