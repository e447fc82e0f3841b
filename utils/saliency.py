"""Gradient-based class saliency (Simonyan, Vedaldi & Zisserman, 2013, section 3).

Calling convention shared by every method here (and by later ones added beside them):

* ``model`` — a classifier from :func:`utils.models.load_classifier` (images in [0, 1] → scores
  ``S_c``, pre-softmax). Any ``nn.Module`` with that contract works.
* ``images`` — ``(N, 3, H, W)`` float in [0, 1], or one image ``(3, H, W)`` (then the batch dimension
  is dropped from the result).
* ``target`` — an int (every image), a sequence of N ints, or ``None`` (each image's top-1 class).
* ``device`` — where to compute; ``None`` = the model's device. Results come back on the images'
  device.

The image-specific class saliency is the derivative of the class score with respect to the image,
``w = ∂S_c/∂I`` at the image ``I₀`` (the weight of the first-order Taylor expansion
``S_c(I) ≈ wᵀI + b``), and the map is ``M_ij = max_c |w_{ijc}|`` over the colour channels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from ._validation import (
    check_fraction,
    check_images,
    check_positive_int,
    check_target,
    resolve_baseline,
    resolve_device,
    resolve_targets,
    to_model,
)
from .occlusion import occlusion  # re-exported: one calling convention for every map

__all__ = ["gradient", "saliency_map", "channel_max", "smoothgrad_attribution", "smoothgrad",
           "gradient_x_input", "integrated_gradients", "IG_METHODS", "guided_backprop",
           "guided_relus", "GUIDED_ACTIVATIONS", "grad_cam", "grad_cam_layer", "occlusion",
           "saliency_methods"]

Target = int | Sequence[int] | torch.Tensor | None


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


def gradient(model: nn.Module, images: torch.Tensor, target: Target = None, *,
             device: str | torch.device | None = None) -> torch.Tensor:
    """The class-score gradient ``w = ∂S_c/∂I`` at the image.

    Returns:
        ``(N, 3, H, W)`` (``(3, H, W)`` for one image), same dtype as float32, signed, unbounded.
    """
    batch, single = check_images(images)
    dev = resolve_device(device, model)
    grad, _ = _class_scores_and_grad(model, to_model(batch, model, dev), target)
    grad = grad.to(images.device)
    return grad[0] if single else grad


def channel_max(attribution: torch.Tensor) -> torch.Tensor:
    """``M_ij = max_c |a_{ijc}|``: ``(N, 3, H, W)`` → ``(N, H, W)`` (or ``(3, H, W)`` → ``(H, W)``)."""
    if attribution.dim() not in (3, 4) or attribution.shape[-3] != 3:
        raise ValueError(f"attribution must be (N, 3, H, W) or (3, H, W), got {tuple(attribution.shape)}.")
    return attribution.abs().amax(dim=-3)


def saliency_map(model: nn.Module, images: torch.Tensor, target: Target = None, *,
                 device: str | torch.device | None = None) -> torch.Tensor:
    """The image-specific class saliency map ``M_ij = max_c |∂S_c/∂I_{ijc}|`` (paper, eq. 3).

    One forward and one backward pass for the whole batch.

    Returns:
        ``(N, H, W)`` (``(H, W)`` for one image), non-negative, in the units of ``S_c`` per unit
        of image intensity (not normalised; divide by ``.amax()`` to display).
    """
    return channel_max(gradient(model, images, target, device=device))


def smoothgrad_attribution(model: nn.Module, images: torch.Tensor, target: Target = None, *,
                           samples: int = 32, noise: float = 0.15, seed: int = 0,
                           batch_size: int = 16, device: str | torch.device | None = None
                           ) -> torch.Tensor:
    """SmoothGrad of the absolute gradient (Smilkov et al., 2017), per colour channel.

    ``mean_k |∂S_c/∂I (I + ε_k)|`` with ``ε_k ~ N(0, σ²)``, ``σ = noise · (max(I) − min(I))`` per
    image: what Captum's ``NoiseTunnel(Saliency(model)).attribute(..., nt_type='smoothgrad',
    abs=True)`` computes. The noise is drawn on the CPU from ``seed`` (the same on every device) and
    the noisy copies go through the model ``batch_size`` at a time. When ``target`` is ``None`` it is
    each clean image's top-1 class.

    Returns:
        ``(N, 3, H, W)`` (``(3, H, W)`` for one image), non-negative.
    """
    batch, single = check_images(images)
    check_positive_int(samples, "samples")
    check_positive_int(batch_size, "batch_size")
    check_fraction(noise, "noise", low=0.0, high=10.0, inclusive=True)
    dev = resolve_device(device, model)
    x = to_model(batch, model, dev)
    targets = resolve_targets(model, x, target)
    sigma = noise * (x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3)))  # (N,)
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn((samples, *x.shape), generator=gen).to(dev) * sigma.view(1, -1, 1, 1, 1)
    noisy = (x.unsqueeze(0) + eps).reshape(-1, *x.shape[1:])  # (samples·N, 3, H, W), sample-major
    noisy_targets = targets.repeat(samples)
    total = torch.zeros_like(x)
    n = x.shape[0]
    for start in range(0, noisy.shape[0], batch_size):
        chunk = slice(start, start + batch_size)
        grad, _ = _class_scores_and_grad(model, noisy[chunk], noisy_targets[chunk])
        idx = torch.arange(start, start + grad.shape[0], device=dev) % n
        total.index_add_(0, idx, grad.abs())
    out = (total / samples).to(images.device)
    return out[0] if single else out


def smoothgrad(model: nn.Module, images: torch.Tensor, target: Target = None, *,
               samples: int = 32, noise: float = 0.15, seed: int = 0, batch_size: int = 16,
               device: str | torch.device | None = None) -> torch.Tensor:
    """SmoothGrad saliency map: the channel max of :func:`smoothgrad_attribution`.

    Much less noisy than :func:`saliency_map` on this course's default network (32 samples at
    noise 0.15 are the recommended settings). Costs ``samples`` forward and backward passes.

    Returns:
        ``(N, H, W)`` (``(H, W)`` for one image), non-negative.
    """
    return channel_max(smoothgrad_attribution(model, images, target, samples=samples, noise=noise,
                                              seed=seed, batch_size=batch_size, device=device))


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


def gradient_x_input(model: nn.Module, images: torch.Tensor, target: Target = None, *,
                     device: str | torch.device | None = None) -> torch.Tensor:
    """Gradient × input, ``I ⊙ ∂S_c/∂I`` (Shrikumar et al., 2016; Captum's ``InputXGradient``).

    The input is the image in [0, 1] (the model normalises inside), so a black pixel gets zero
    attribution whatever its gradient. One forward and one backward pass.

    Returns:
        ``(N, 3, H, W)`` (``(3, H, W)`` for one image), signed; :func:`channel_max` makes a map.
    """
    batch, single = check_images(images)
    dev = resolve_device(device, model)
    x = to_model(batch, model, dev)
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


def integrated_gradients(model: nn.Module, images: torch.Tensor, target: Target = None, *,
                         baseline: float | torch.Tensor = 0.0, steps: int = 32,
                         method: str = "gausslegendre", batch_size: int = 32,
                         return_error: bool = False, device: str | torch.device | None = None
                         ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Integrated gradients (Sundararajan, Taly & Yan, 2017, section 3).

    ``IG_i(x) = (x_i − x'_i) · ∫₀¹ ∂S_c/∂I_i (x' + α (x − x')) dα``, the integral approximated by
    ``steps`` nodes of ``method`` (the quadratures of Captum's ``IntegratedGradients``:
    ``"gausslegendre"`` — Captum's default — or ``"riemann_trapezoid"``, ``"riemann_left"``,
    ``"riemann_right"``, ``"riemann_middle"``; identical to Captum's except the trapezoid rule,
    whose weights here sum to 1 as they should, Captum's to ``1 − 1/steps``). The ``steps · N`` interpolated images go through
    the model ``batch_size`` at a time: ``steps`` forward and backward passes per image, plus two
    forward passes for the completeness error.

    Args:
        baseline: the reference image ``x'``: a grey level in [0, 1] (default 0 = black) or
            images ``(3, H, W)`` / ``(N, 3, H, W)`` in [0, 1].
        steps: number of quadrature nodes (≥ 1; ≥ 2 for the Riemann rules).
        return_error: also return the completeness error.

    Returns:
        The attribution ``(N, 3, H, W)`` (``(3, H, W)`` for one image), signed, in units of
        ``S_c``. With ``return_error=True``, ``(attribution, error)`` where ``error`` ``(N,)``
        (a 0-D tensor for one image) is ``S_c(x) − S_c(x') − Σ_i IG_i(x)``: zero for the exact
        integral (the completeness axiom), shrinking as ``steps`` grows.
    """
    batch, single = check_images(images)
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    alphas, weights = _ig_nodes(steps, method)
    dev = resolve_device(device, model)
    x = to_model(batch, model, dev)
    base = resolve_baseline(baseline, x)
    targets = resolve_targets(model, x, target)
    n = x.shape[0]
    alpha = torch.tensor(alphas, device=dev, dtype=x.dtype).view(-1, 1, 1, 1, 1)
    weight = torch.tensor(weights, device=dev, dtype=x.dtype)
    path = (base.unsqueeze(0) + alpha * (x - base).unsqueeze(0)).reshape(-1, *x.shape[1:])
    path_targets = targets.repeat(steps)  # step-major, as the path
    total = torch.zeros_like(x)
    for start in range(0, path.shape[0], batch_size):
        chunk = slice(start, start + batch_size)
        grad, _ = _class_scores_and_grad(model, path[chunk], path_targets[chunk])
        k = torch.arange(start, start + grad.shape[0], device=dev)
        total.index_add_(0, k % n, grad * weight[k // n].view(-1, 1, 1, 1))
    attribution = total * (x - base)
    if not return_error:
        return _finish(attribution, images, single)
    gap = _selected_scores(model, x, targets) - _selected_scores(model, base, targets)
    error = gap - attribution.sum(dim=(1, 2, 3))
    return _finish(attribution, images, single), _finish(error, images, single)


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


def guided_backprop(model: nn.Module, images: torch.Tensor, target: Target = None, *,
                    device: str | torch.device | None = None) -> torch.Tensor:
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
    dev = resolve_device(device, model)
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
             layer: nn.Module | str | None = None, upsample: bool = True,
             device: str | torch.device | None = None) -> torch.Tensor:
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
    dev = resolve_device(device, model)
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
        ``{name: fn}`` where ``fn(model, images, target=None, *, device=None)`` returns maps
        ``(N, H, W)``: the channel max of the absolute attribution for the gradient family
        (gradient, SmoothGrad, gradient × input, integrated gradients, guided backprop), the
        upsampled Grad-CAM, and the (signed) occlusion score drop.
    """
    sg = dict(samples=samples, noise=noise, batch_size=batch_size)
    return {
        "gradient": saliency_map,
        "SmoothGrad": lambda m, x, t=None, *, device=None: smoothgrad(m, x, t, device=device, **sg),
        "gradient × input": lambda m, x, t=None, *, device=None: channel_max(
            gradient_x_input(m, x, t, device=device)),
        "integrated gradients": lambda m, x, t=None, *, device=None: channel_max(
            integrated_gradients(m, x, t, steps=steps, batch_size=batch_size, device=device)),
        "guided backprop": lambda m, x, t=None, *, device=None: channel_max(
            guided_backprop(m, x, t, device=device)),
        "Grad-CAM": grad_cam,
        "occlusion": lambda m, x, t=None, *, device=None: occlusion(
            m, x, t, patch=patch, stride=stride, batch_size=batch_size, device=device),
    }
