"""Gradient-based class saliency (Simonyan, Vedaldi & Zisserman, 2013, section 3).

Calling convention shared by every method here (and by later ones added beside them):

* ``model`` — a classifier from :func:`utils.models.load_classifier` (images in [0, 1] → scores
  ``S_c``, pre-softmax). Any ``nn.Module`` with that contract works.
* ``images`` — ``(N, 3, H, W)`` float in [0, 1], or one image ``(3, H, W)`` (then the batch dimension
  is dropped from the result).
* ``target`` — an int (every image), a sequence, 1-D tensor or numpy array of N ints, or ``None``
  (each image's top-1 class); checked against the model's number of classes.
* no ``device`` argument (as in Captum): the work is done where the model is, and the results come
  back on the images' device.
* the name tells the shape: ``*_attribution`` (and :func:`gradient`) return ``(N, 3, H, W)``, a
  map (``saliency_map``, ``smoothgrad``, ``grad_cam``) returns ``(N, H, W)``;
  :func:`channel_max` turns an attribution into a map.

The image-specific class saliency is the derivative of the class score with respect to the image,
``w = ∂S_c/∂I`` at the image ``I₀`` (the weight of the first-order Taylor expansion
``S_c(I) ≈ wᵀI + b``), and the map is ``M_ij = max_c |w_{ijc}|`` over the colour channels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from ._validation import (
    check_fraction,
    check_images,
    check_positive_int,
    check_target,
    model_device,
    resolve_baseline,
    resolve_targets,
    to_model,
)
from .occlusion import occlusion  # re-exported: one calling convention for every map

__all__ = ["gradient", "saliency_map", "channel_max", "smoothgrad_attribution", "smoothgrad",
           "gradient_x_input_attribution", "integrated_gradients_attribution", "IG_METHODS",
           "completeness_error", "guided_backprop_attribution",
           "guided_relus", "GUIDED_ACTIVATIONS", "grad_cam", "grad_cam_layer", "occlusion",
           "saliency_methods"]

Target = int | Sequence[int] | torch.Tensor | np.ndarray | None


def _class_scores_and_grad(model: nn.Module, batch: torch.Tensor, target: Target
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward and one backward pass: ``(∂S_t/∂I (N, 3, H, W), targets (N,))``.

    The backward pass asks autograd for the gradient with respect to the input only
    (``torch.autograd.grad``), so no weight gradient is accumulated even if the model's
    parameters require grad.
    """
    if model.training:
        raise ValueError(
            "The model is in training mode (dropout and batch-norm statistics would change the "
            "scores); call model.eval() first."
        )
    x = batch.detach().requires_grad_(True)
    with torch.enable_grad():
        scores = model(x)
        if scores.dim() != 2 or scores.shape[0] != x.shape[0]:
            raise ValueError(f"The model must return scores (N, classes), got shape {tuple(scores.shape)}.")
        t = check_target(target, x.shape[0], num_classes=scores.shape[1], scores=scores.detach())
        t = t.to(scores.device)
        # The images are independent, so d(sum_n S_{t_n}(I_n))/dI_n = dS_{t_n}/dI_n for each n.
        selected = scores.gather(1, t[:, None]).sum()
        (grad,) = torch.autograd.grad(selected, x)
    return grad, t


def gradient(model: nn.Module, images: torch.Tensor, target: Target = None) -> torch.Tensor:
    """The class-score gradient ``w = ∂S_c/∂I`` at the image.

    Returns:
        ``(N, 3, H, W)`` (``(3, H, W)`` for one image), same dtype as float32, signed, unbounded.
    """
    batch, single = check_images(images)
    grad, _ = _class_scores_and_grad(model, to_model(batch, model, model_device(model)), target)
    return _finish(grad, images, single)


def channel_max(attribution: torch.Tensor) -> torch.Tensor:
    """``M_ij = max_c |a_{ijc}|``: ``(N, 3, H, W)`` → ``(N, H, W)`` (or ``(3, H, W)`` → ``(H, W)``)."""
    if attribution.dim() not in (3, 4) or attribution.shape[-3] != 3:
        raise ValueError(f"attribution must be (N, 3, H, W) or (3, H, W), got {tuple(attribution.shape)}.")
    return attribution.abs().amax(dim=-3)


def saliency_map(model: nn.Module, images: torch.Tensor, target: Target = None) -> torch.Tensor:
    """The image-specific class saliency map ``M_ij = max_c |∂S_c/∂I_{ijc}|`` (paper, eq. 3).

    One forward and one backward pass for the whole batch.

    Returns:
        ``(N, H, W)`` (``(H, W)`` for one image), non-negative, in the units of ``S_c`` per unit
        of image intensity (not normalised; divide by ``.amax()`` to display).
    """
    return channel_max(gradient(model, images, target))


def _noise_batches(gen: torch.Generator, total: int, shape: torch.Size, rows: int
                   ) -> Iterator[torch.Tensor]:
    """Standard-normal images ``(rows, *shape)`` (the last batch shorter): the stream of ``total``
    images that one call ``torch.randn((total, *shape), generator=gen)`` gives, drawn a few at a
    time so that only about ``rows`` of them are in memory.

    PyTorch's CPU ``randn`` fills blocks of 16 numbers (Box–Muller on 16 uniforms; a last partial
    block is redrawn), so consecutive draws continue one stream exactly when every draw but the
    last is a multiple of 16 numbers and the last one has at least 16: the draws are sized so.
    """
    per_row = math.prod(shape)
    align = 16 // math.gcd(16, per_row)
    buffer = torch.empty((0, *shape))
    drawn = 0
    for start in range(0, total, rows):
        need = min(rows, total - start)
        if buffer.shape[0] < need:
            extra = min(-(-(need - buffer.shape[0]) // align) * align, total - drawn)
            if (total - drawn - extra) * per_row < 16:
                extra = total - drawn
            buffer = torch.cat([buffer, torch.randn((extra, *shape), generator=gen)])
            drawn += extra
        yield buffer[:need]
        buffer = buffer[need:]


def smoothgrad_attribution(model: nn.Module, images: torch.Tensor, target: Target = None, *,
                           samples: int = 32, noise: float = 0.15, seed: int = 0,
                           batch_size: int = 16) -> torch.Tensor:
    """SmoothGrad of the absolute gradient (Smilkov et al., 2017), per colour channel.

    ``mean_k |∂S_c/∂I (I + σ ε_k)|`` with ``ε_k ~ N(0, 1)``, ``σ = noise · (max(I) − min(I))`` per
    image: what Captum's ``NoiseTunnel(Saliency(model)).attribute(..., nt_type='smoothgrad',
    abs=True)`` computes. The noise images ``ε_1 … ε_samples`` are drawn on the CPU from ``seed``
    (the same on every device) and **shared by every image of the batch**, so an image's map does
    not depend on which other images share its batch (with one draw per image, a photograph's
    SmoothGrad, and a GraphCut seeded from it, changed with the batch it came in). The noisy copies
    go through the model ``batch_size`` at a time, each noise image drawn when first needed: memory
    grows with ``batch_size``, not with ``samples``. When ``target`` is ``None`` it is each clean
    image's top-1 class.

    Returns:
        ``(N, 3, H, W)`` (``(3, H, W)`` for one image), non-negative.
    """
    batch, single = check_images(images)
    check_positive_int(samples, "samples")
    check_positive_int(batch_size, "batch_size")
    check_fraction(noise, "noise", low=0.0, high=10.0, inclusive=True)
    dev = model_device(model)
    x = to_model(batch, model, dev)
    targets = resolve_targets(model, x, target)
    sigma = noise * (x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3)))  # (N,)
    n = x.shape[0]
    # ε_k in order k = 0, 1, …: the stream of one randn((samples, 3, H, W)) draw, one image at a time
    stream = _noise_batches(torch.Generator().manual_seed(seed), samples, x.shape[1:], 1)
    drawn: dict[int, torch.Tensor] = {}
    total = torch.zeros_like(x)
    for start in range(0, samples * n, batch_size):
        rows = torch.arange(start, min(start + batch_size, samples * n))  # sample-major (k, i) pairs
        ks = (rows // n).tolist()
        for k in range(max(drawn, default=-1) + 1, ks[-1] + 1):
            drawn[k] = next(stream)[0].to(dev)
        eps = torch.stack([drawn[k] for k in ks])
        drawn = {k: e for k, e in drawn.items() if k >= ks[-1]}
        idx = (rows % n).to(dev)
        noisy = x[idx] + eps * sigma[idx].view(-1, 1, 1, 1)
        grad, _ = _class_scores_and_grad(model, noisy, targets[idx])
        total.index_add_(0, idx, grad.abs())
    return _finish(total / samples, images, single)


def smoothgrad(model: nn.Module, images: torch.Tensor, target: Target = None, *,
               samples: int = 32, noise: float = 0.15, seed: int = 0, batch_size: int = 16
               ) -> torch.Tensor:
    """SmoothGrad saliency map: the channel max of :func:`smoothgrad_attribution`.

    Much less noisy than :func:`saliency_map` on this course's default network (32 samples at
    noise 0.15 are the recommended settings). Costs ``samples`` forward and backward passes.

    Returns:
        ``(N, H, W)`` (``(H, W)`` for one image), non-negative.
    """
    return channel_max(smoothgrad_attribution(model, images, target, samples=samples, noise=noise,
                                              seed=seed, batch_size=batch_size))


# ---------------------------------------------------------------------------------------------
# Beyond the plain gradient: gradient × input, integrated gradients, guided backpropagation,
# Grad-CAM, with the calling convention above (occlusion, the same convention, lives in
# utils.occlusion and is re-exported here). Each is checked against Captum's implementation of the
# same method in tests/test_saliency_variants.py and tests/test_occlusion.py.
# ---------------------------------------------------------------------------------------------

IG_METHODS = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right",
              "riemann_middle")


def _finish(out: torch.Tensor, images: torch.Tensor, single: bool) -> torch.Tensor:
    """Move a batched result back to the images' device and drop the batch dimension if needed."""
    out = out.to(images.device)
    return out[0] if single else out


def _selected_scores(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Forward pass without autograd: ``S_{t_n}(x_n)`` for each image, ``(N,)``."""
    with torch.no_grad():
        scores = model(x)
    if targets.max() >= scores.shape[1]:
        check_target(targets.tolist(), x.shape[0], num_classes=scores.shape[1])
    return scores.gather(1, targets[:, None].to(scores.device))[:, 0]


def gradient_x_input_attribution(model: nn.Module, images: torch.Tensor, target: Target = None
                                 ) -> torch.Tensor:
    """Gradient × input, ``I ⊙ ∂S_c/∂I`` (Shrikumar et al., 2016; Captum's ``InputXGradient``).

    The input is the image in [0, 1] (the model normalises inside), so a black pixel gets zero
    attribution whatever its gradient. One forward and one backward pass.

    Returns:
        ``(N, 3, H, W)`` (``(3, H, W)`` for one image), signed; :func:`channel_max` makes a map.
    """
    batch, single = check_images(images)
    x = to_model(batch, model, model_device(model))
    grad, _ = _class_scores_and_grad(model, x, target)
    return _finish(grad * x, images, single)


def _ig_nodes(steps: int, method: str) -> tuple[list[float], list[float]]:
    """Quadrature nodes ``alphas`` in [0, 1] and weights (summing to 1), as Captum defines them."""
    if method not in IG_METHODS:
        raise ValueError(f"method={method!r} is not known; choose one of {list(IG_METHODS)}.")
    if method == "gausslegendre":
        import numpy as np

        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (0.5 * (nodes + 1)).tolist(), (0.5 * weights).tolist()
    if steps < 2:
        raise ValueError(f"steps={steps} is too few for {method}; use steps >= 2.")
    n = steps
    kind = method.split("_")[1]
    deltas = [1 / n] * n
    if kind == "trapezoid":
        # nodes 0, 1/(n−1), …, 1: weights 1/(n−1), halved at both ends (they sum to 1). Captum
        # 0.9 uses 1/n here (its weights sum to 1 − 1/n), so its result is ours · (n−1)/n.
        deltas = [1 / (n - 1)] * n
        deltas[0] /= 2
        deltas[-1] /= 2
        alphas = torch.linspace(0, 1, n)
    elif kind == "left":
        alphas = torch.linspace(0, 1 - 1 / n, n)
    elif kind == "middle":
        alphas = torch.linspace(1 / (2 * n), 1 - 1 / (2 * n), n)
    else:
        alphas = torch.linspace(1 / n, 1, n)
    return alphas.tolist(), deltas


def integrated_gradients_attribution(model: nn.Module, images: torch.Tensor, target: Target = None,
                                     *, baseline: float | torch.Tensor = 0.0, steps: int = 32,
                                     method: str = "gausslegendre", batch_size: int = 32
                                     ) -> torch.Tensor:
    """Integrated gradients (Sundararajan, Taly & Yan, 2017, section 3).

    ``IG_i(x) = (x_i − x'_i) · ∫₀¹ ∂S_c/∂I_i (x' + α (x − x')) dα``, the integral approximated by
    ``steps`` nodes of ``method`` (the quadratures of Captum's ``IntegratedGradients``:
    ``"gausslegendre"`` — Captum's default — or ``"riemann_trapezoid"``, ``"riemann_left"``,
    ``"riemann_right"``, ``"riemann_middle"``; identical to Captum's except the trapezoid rule,
    whose weights here sum to 1 as they should, Captum's to ``1 − 1/steps``). The ``steps · N``
    interpolated images are built and go through the model ``batch_size`` at a time (memory grows
    with ``batch_size``, not ``steps``): ``steps`` forward and backward passes per image.
    :func:`completeness_error` measures how far the sum of the attribution is from the exact
    integral.

    Args:
        baseline: the reference image ``x'``: a grey level in [0, 1] (default 0 = black) or
            images ``(3, H, W)`` / ``(N, 3, H, W)`` in [0, 1].
        steps: number of quadrature nodes (≥ 1; ≥ 2 for the Riemann rules).

    Returns:
        ``(N, 3, H, W)`` (``(3, H, W)`` for one image), signed, in units of ``S_c``;
        :func:`channel_max` makes a map.
    """
    batch, single = check_images(images)
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    alphas, weights = _ig_nodes(steps, method)
    dev = model_device(model)
    x = to_model(batch, model, dev)
    base = resolve_baseline(baseline, x)
    targets = resolve_targets(model, x, target)
    n = x.shape[0]
    alpha = torch.tensor(alphas, device=dev, dtype=x.dtype)
    weight = torch.tensor(weights, device=dev, dtype=x.dtype)
    diff = x - base
    total = torch.zeros_like(x)
    for start in range(0, steps * n, batch_size):
        k = torch.arange(start, min(start + batch_size, steps * n), device=dev)  # step-major rows
        path = base[k % n] + alpha[k // n].view(-1, 1, 1, 1) * diff[k % n]
        grad, _ = _class_scores_and_grad(model, path, targets[k % n])
        total.index_add_(0, k % n, grad * weight[k // n].view(-1, 1, 1, 1))
    return _finish(total * diff, images, single)


def completeness_error(model: nn.Module, images: torch.Tensor, attribution: torch.Tensor,
                       target: Target = None, *, baseline: float | torch.Tensor = 0.0
                       ) -> torch.Tensor:
    """``S_c(x) − S_c(x') − Σ_i a_i``: how far an attribution is from the completeness axiom.

    Zero for exact integrated gradients (Sundararajan et al., 2017, proposition 1), shrinking as
    :func:`integrated_gradients_attribution`'s ``steps`` grows. Two forward passes.

    Args:
        attribution: ``(N, 3, H, W)`` (``(3, H, W)`` for one image) for ``images``.
        target: as given to the attribution (``None``: each image's top-1 class).
        baseline: the baseline ``x'`` the attribution used.

    Returns:
        ``(N,)`` in units of ``S_c`` (a 0-D tensor for one image).
    """
    batch, single = check_images(images)
    attr = attribution.unsqueeze(0) if single else attribution
    if tuple(attr.shape) != tuple(batch.shape):
        raise ValueError(f"attribution must have the images' shape {tuple(images.shape)}, got "
                         f"{tuple(attribution.shape)}.")
    x = to_model(batch, model, model_device(model))
    base = resolve_baseline(baseline, x)
    targets = resolve_targets(model, x, target)
    gap = _selected_scores(model, x, targets) - _selected_scores(model, base, targets)
    return _finish(gap - attr.to(x.device).sum(dim=(1, 2, 3)), images, single)


GUIDED_ACTIVATIONS: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6)


class _PositiveGradient(torch.autograd.Function):
    """Identity forward; backward lets only positive gradients through (guided backpropagation)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x.clone()  # a copy, so that later in-place activations do not touch a custom view

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return grad.clamp(min=0)


def _guide(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    return _PositiveGradient.apply(output)


@contextmanager
def guided_relus(model: nn.Module) -> Iterator[int]:
    """Context manager: inside it, every ReLU/ReLU6 module of ``model`` backpropagates guided.

    A forward hook puts an identity with gradient ``max(g, 0)`` after each activation module, so
    the activation's own backward then applies its mask: ``∂/∂z = 1[0 < z (< 6)] · max(g, 0)``,
    Springenberg et al.'s rule (2015, section 3.4). In-place activations (``inplace=True``, as in
    timm's ``BatchNormAct2d`` and torchvision's VGG) are fine. Activations called as functions
    (``F.relu``) are not modules and are not guided. Every hook is removed on exit, also when the
    body raises. Yields the number of hooked modules.
    """
    handles = []
    try:
        for module in model.modules():
            if isinstance(module, GUIDED_ACTIVATIONS):
                handles.append(module.register_forward_hook(_guide))
        yield len(handles)
    finally:
        for h in handles:
            h.remove()


def guided_backprop_attribution(model: nn.Module, images: torch.Tensor, target: Target = None
                                ) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al., 2015): the gradient with every ReLU/ReLU6
    passing back only positive gradients (see :func:`guided_relus`).

    Equals Captum's ``GuidedBackprop`` on networks whose activations are ``nn.ReLU`` modules;
    Captum hooks ``nn.ReLU`` only, so on this course's EfficientNet (``ReLU6``) Captum's result is
    the plain gradient, while this function guides the ``ReLU6`` as well. One forward and one
    backward pass.

    Returns:
        ``(N, 3, H, W)`` (``(3, H, W)`` for one image), signed; :func:`channel_max` makes a map.

    Raises:
        ValueError: the model has no ReLU/ReLU6 module (guided backprop would be the gradient).
    """
    batch, single = check_images(images)
    dev = model_device(model)
    with guided_relus(model) as hooked:
        if hooked == 0:
            raise ValueError(
                "The model has no nn.ReLU or nn.ReLU6 modules, so guided backpropagation would be "
                "the plain gradient; use gradient() instead."
            )
        grad, _ = _class_scores_and_grad(model, to_model(batch, model, dev), target)
    return _finish(grad, images, single)


def grad_cam_layer(model: nn.Module) -> nn.Module:
    """The default Grad-CAM layer of a :func:`utils.models.load_classifier` model.

    * EfficientNet-Lite0/1 (timm): ``net.bn2``, the rectified output of ``conv_head`` — the last
      feature map before global pooling (1280 channels, 7×7 at 224², 8×8 at 240²);
    * VGG-16 (torchvision): the last ReLU of ``features`` (conv5_3 rectified, 512×14×14 — the
      layer Selvaraju et al. use; ``features[-1]`` is the max-pool after it);
    * ResNet-50 (torchvision): ``net.layer4`` (2048×7×7).

    Raises:
        ValueError: another architecture; pass ``layer=`` to :func:`grad_cam` then.
    """
    net = getattr(model, "net", model)
    if hasattr(net, "conv_head") and hasattr(net, "bn2"):
        return net.bn2
    features = getattr(net, "features", None)
    if isinstance(features, nn.Sequential):
        relus = [m for m in features if isinstance(m, nn.ReLU)]
        if relus:
            return relus[-1]
    if hasattr(net, "layer4"):
        return net.layer4
    raise ValueError(
        f"No default Grad-CAM layer for {type(net).__name__}; pass layer= (a module of the model, "
        "or its name from model.named_modules()), usually the last convolutional block."
    )


def _resolve_layer(model: nn.Module, layer: nn.Module | str | None) -> nn.Module:
    if layer is None:
        return grad_cam_layer(model)
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules:
            raise ValueError(f"layer {layer!r} is not a module of the model; see model.named_modules().")
        return modules[layer]
    if not isinstance(layer, nn.Module) or not any(m is layer for m in model.modules()):
        raise ValueError("layer must be a module of the model (or its name), e.g. model.net.bn2.")
    return layer


def grad_cam(model: nn.Module, images: torch.Tensor, target: Target = None, *,
             layer: nn.Module | str | None = None, upsample: bool = True) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al., 2017, section 3): ``ReLU(Σ_k α_k A^k)`` with
    ``α_k = mean_{ij} ∂S_c/∂A^k_{ij}``, at a convolutional ``layer`` (default
    :func:`grad_cam_layer`), bilinearly upsampled to the image (``align_corners=False``).

    Equals Captum's ``LayerGradCam(model, layer).attribute(x, target, relu_attributions=True)``
    followed by ``LayerAttribution.interpolate(..., (H, W), "bilinear")``. One forward and one
    backward pass; the layer's hook is removed even on error.

    Returns:
        ``(N, H, W)`` (``(H, W)`` for one image; ``(N, h, w)`` at the layer's resolution when
        ``upsample=False``), non-negative, in units of ``S_c``.
    """
    import torch.nn.functional as F

    batch, single = check_images(images)
    dev = model_device(model)
    module = _resolve_layer(model, layer)
    if model.training:
        raise ValueError("The model is in training mode; call model.eval() first.")
    store: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda m, i, o: store.append(o))
    try:
        x = to_model(batch, model, dev).detach().requires_grad_(True)
        with torch.enable_grad():
            scores = model(x)
            t = check_target(target, x.shape[0], num_classes=scores.shape[1],
                             scores=scores.detach()).to(scores.device)
            if len(store) != 1 or not isinstance(store[0], torch.Tensor) or store[0].dim() != 4:
                raise ValueError("The Grad-CAM layer must run once per forward pass and return a "
                                 "feature map (N, K, h, w); choose a convolutional layer.")
            acts = store[0]
            (grads,) = torch.autograd.grad(scores.gather(1, t[:, None]).sum(), acts)
    finally:
        handle.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * acts.detach()).sum(dim=1, keepdim=True))
    if upsample:
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return _finish(cam[:, 0], images, single)


def saliency_methods(*, samples: int = 32, noise: float = 0.15, steps: int = 32,
                     patch: int = 32, stride: int = 16, batch_size: int = 32
                     ) -> dict[str, Callable[..., torch.Tensor]]:
    """Every map of this module under one signature, for galleries, tables and metrics.

    Returns:
        ``{name: fn}`` where ``fn(model, images, target=None)`` returns maps ``(N, H, W)``: the
        channel max of the absolute attribution for the gradient family (gradient, SmoothGrad,
        gradient × input, integrated gradients, guided backprop), the upsampled Grad-CAM, and the
        (signed) occlusion score drop.
    """
    def smooth(m, x, t=None):
        return smoothgrad(m, x, t, samples=samples, noise=noise, batch_size=batch_size)

    def ig(m, x, t=None):
        return channel_max(integrated_gradients_attribution(m, x, t, steps=steps, batch_size=batch_size))

    def occ(m, x, t=None):
        return occlusion(m, x, t, patch=patch, stride=stride, batch_size=batch_size)

    return {
        "gradient": saliency_map,
        "SmoothGrad": smooth,
        "gradient × input": lambda m, x, t=None: channel_max(gradient_x_input_attribution(m, x, t)),
        "integrated gradients": ig,
        "guided backprop": lambda m, x, t=None: channel_max(guided_backprop_attribution(m, x, t)),
        "Grad-CAM": grad_cam,
        "occlusion": occ,
    }
