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
``S_c(I) ≈ wᵀI + b``), and the map is ``M_ij = max_k |w_{ijk}|`` over the colour channels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._validation import (
    Target,
    check_eval_mode,
    check_fraction,
    check_images,
    check_positive_int,
    check_scores,
    check_target,
    model_device,
    resolve_baseline,
    resolve_targets,
    to_model,
)
from .occlusion import occlusion  # re-exported: one calling convention for every map

__all__ = ["gradient", "saliency_map", "channel_max", "smoothgrad_attribution", "smoothgrad",
           "gradient_x_input_attribution", "integrated_gradients_attribution", "IG_METHODS",
           "completeness_error", "guided_backprop_attribution", "deconvnet_attribution",
           "guided_relus", "modified_relus", "RELU_RULES", "layerwise_backward",
           "GUIDED_ACTIVATIONS", "grad_cam", "grad_cam_layer", "occlusion",
           "saliency_methods"]

def _class_scores_and_grad(model: nn.Module, batch: torch.Tensor, target: Target
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward and one backward pass: ``(∂S_t/∂I (N, 3, H, W), targets (N,))``.

    The backward pass asks autograd for the gradient with respect to the input only
    (``torch.autograd.grad``), so no weight gradient is accumulated even if the model's
    parameters require grad.
    """
    check_eval_mode(model)
    x = batch.detach().requires_grad_(True)
    with torch.enable_grad():
        scores = check_scores(model(x), x.shape[0])
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
    """``M_ij = max_k |a_{ijk}|``: ``(N, 3, H, W)`` → ``(N, H, W)`` (or ``(3, H, W)`` → ``(H, W)``)."""
    if attribution.dim() not in (3, 4) or attribution.shape[-3] != 3:
        raise ValueError(f"attribution must be (N, 3, H, W) or (3, H, W), got {tuple(attribution.shape)}.")
    return attribution.abs().amax(dim=-3)


def saliency_map(model: nn.Module, images: torch.Tensor, target: Target = None) -> torch.Tensor:
    """The image-specific class saliency map ``M_ij = max_k |∂S_c/∂I_{ijk}|`` (paper, eq. 3).

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
RELU_RULES: tuple[str, ...] = ("guided", "deconvnet")


class _PositiveGradient(torch.autograd.Function):
    """Identity forward; backward lets only positive gradients through (guided backpropagation)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x.clone()  # a copy, so that later in-place activations do not touch a custom view

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return grad.clamp(min=0)


class _RectifiedSignal(torch.autograd.Function):
    """Forward: the activation's output ``y``; backward: ``max(g, 0)`` straight to the activation's
    input ``z``, so the activation's own backward (its forward mask) never runs (DeconvNet)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return y.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        return grad.clamp(min=0), None


def _guide(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    return _PositiveGradient.apply(output)


def _hook_deconvnet(module: nn.Module) -> list[torch.utils.hooks.RemovableHandle]:
    """A pre-hook keeps the activation's input ``z`` (an in-place activation then works on a copy,
    so ``z`` keeps its autograd history); the forward hook routes the output's gradient to ``z``."""
    kept: list[torch.Tensor] = []

    def keep(m: nn.Module, args: tuple) -> tuple | None:
        kept.append(args[0])
        return (args[0].clone(), *args[1:]) if getattr(m, "inplace", False) else None

    def route(m: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return _RectifiedSignal.apply(kept.pop(), output)

    return [module.register_forward_pre_hook(keep), module.register_forward_hook(route)]


@contextmanager
def _hooked_relus(model: nn.Module, rule: str) -> Iterator[int]:
    handles: list[torch.utils.hooks.RemovableHandle] = []
    hooked = 0
    try:
        for module in model.modules():
            if isinstance(module, GUIDED_ACTIVATIONS):
                if rule == "guided":
                    handles.append(module.register_forward_hook(_guide))
                else:
                    handles.extend(_hook_deconvnet(module))
                hooked += 1
        yield hooked
    finally:
        for h in handles:
            h.remove()


def modified_relus(model: nn.Module, rule: str = "guided") -> AbstractContextManager[int]:
    """Context manager: inside it, every ReLU/ReLU6 module of ``model`` backpropagates by ``rule``.

    With ``z`` the activation's input and ``g`` the gradient arriving from above, the gradient that
    the activation passes back is (Simonyan et al., 2013, section 4; Springenberg et al., 2015,
    section 3.4):

    * plain gradient (no hooks): ``1[z > 0] · g`` (ReLU6: ``1[0 < z < 6] · g``);
    * ``"deconvnet"`` (Zeiler & Fergus, 2014): ``max(g, 0)`` — the backward signal is rectified,
      and the forward mask is **not** applied. For ReLU6 the same ``max(g, 0)``, with no cap at 6:
      the 6 bounds activations, while ``g`` is in units of ``S_c`` per activation, so a cap would
      make the result depend on the scale of the scores; and with this choice guided = gradient
      mask ∧ DeconvNet mask holds for ReLU6 as for ReLU. Done by a pre-hook that keeps ``z`` and a
      forward hook whose output sends ``max(g, 0)`` to ``z`` directly.
    * ``"guided"``: ``1[z > 0] · max(g, 0)`` (ReLU6: ``1[0 < z < 6] · max(g, 0)``) — both masks.
      Done by a forward hook that puts an identity with gradient ``max(g, 0)`` after the
      activation, whose own backward then applies its mask.

    In-place activations (``inplace=True``, as in timm's ``BatchNormAct2d`` and torchvision's VGG)
    are fine; under ``"deconvnet"`` they run on a copy of their input, so the network must use the
    activation's returned value (as every ``x = act(x)`` does). Activations called as functions
    (``F.relu``) are not modules and keep their gradient. Every hook is removed on exit, also when
    the body raises. Yields the number of ReLU/ReLU6 modules hooked.

    Raises:
        ValueError: ``rule`` is not one of :data:`RELU_RULES` (raised at once, before any hook).
    """
    if rule not in RELU_RULES:
        raise ValueError(f"rule={rule!r} is not known; choose one of {list(RELU_RULES)}.")
    return _hooked_relus(model, rule)


def guided_relus(model: nn.Module) -> AbstractContextManager[int]:
    """``modified_relus(model, "guided")``: every ReLU/ReLU6 module backpropagates
    ``1[0 < z (< 6)] · max(g, 0)`` (Springenberg et al., 2015, section 3.4). Yields the number of
    hooked modules; every hook is removed on exit, also on error. See :func:`modified_relus`."""
    return modified_relus(model, "guided")


def _modified_relu_gradient(model: nn.Module, images: torch.Tensor, target: Target, rule: str
                            ) -> torch.Tensor:
    """The class-score gradient under :func:`modified_relus` ``(model, rule)``; ``images``' shape."""
    batch, single = check_images(images)
    dev = model_device(model)
    with modified_relus(model, rule) as hooked:
        if hooked == 0:
            raise ValueError(
                f"The model has no nn.ReLU or nn.ReLU6 modules, so the {rule} rule would give the "
                "plain gradient; use gradient() instead."
            )
        grad, _ = _class_scores_and_grad(model, to_model(batch, model, dev), target)
    return _finish(grad, images, single)


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
    return _modified_relu_gradient(model, images, target, "guided")


def deconvnet_attribution(model: nn.Module, images: torch.Tensor, target: Target = None
                          ) -> torch.Tensor:
    """DeconvNet reconstruction (Zeiler & Fergus, 2014) of the class score, as a gradient.

    Simonyan et al. (2013, section 4) show that a DeconvNet's backward step *is* the gradient's
    at a convolution (convolution with the flipped filter = the transposed convolution) and at a
    max-pool (the "switches" = the max-pool's gradient); only the ReLU differs: the DeconvNet
    passes back ``max(g, 0)`` where the gradient passes back ``1[z > 0] · g``. So this is the
    class-score gradient with every ReLU/ReLU6 module passing back ``max(g, 0)`` (see
    :func:`modified_relus`, also for the choice at ReLU6). Equals Captum's ``Deconvolution`` on
    networks whose activations are ``nn.ReLU`` modules (Captum hooks ``nn.ReLU`` only). One
    forward and one backward pass.

    Returns:
        ``(N, 3, H, W)`` (``(3, H, W)`` for one image), signed; :func:`channel_max` makes a map.

    Raises:
        ValueError: the model has no ReLU/ReLU6 module (the result would be the gradient).
    """
    return _modified_relu_gradient(model, images, target, "deconvnet")


def layerwise_backward(net: nn.Sequential, x: torch.Tensor, target: int | Sequence[int],
                       rule: str = "gradient") -> torch.Tensor:
    """The backward pass of a small ``nn.Sequential`` written out layer by layer, without autograd:
    the DeconvNet of Zeiler & Fergus (2014) as Simonyan et al. (2013, section 4) describe it.

    From the one-hot signal at ``target`` down to the input:

    * ``nn.Conv2d`` (stride 1, zero padding ≤ kernel − 1, no dilation, one group): convolution with
      the flipped filter, ``conv2d(R, W.flip(spatial).transpose(in, out))``;
    * ``nn.MaxPool2d``: the signal goes back to the position of each window's maximum (the
      "switches" recorded in the forward pass), summed where windows overlap;
    * ``nn.Linear``: ``R Wᵀ``; ``nn.Flatten``: reshape;
    * ``nn.ReLU``, with ``z`` its input: ``rule="gradient"`` ``R · 1[z > 0]``; ``"deconvnet"``
      ``R · 1[R > 0]``; ``"guided"`` ``R · 1[z > 0] · 1[R > 0]``.

    With ``rule="gradient"`` it is the gradient ``∂S_t/∂x`` of ``net`` (no normalisation: ``x``
    is the network's input); the other rules change the ReLU step only.

    Args:
        net: ``nn.Sequential`` of the layers above, returning scores ``(N, classes)``.
        x: ``(N, C, H, W)`` float input.
        target: one class for all rows or one per row.

    Returns:
        ``(N, C, H, W)``, the signal reconstructed at the input.

    Raises:
        ValueError: an unknown ``rule``, a layer of another kind, or an unsupported convolution.
    """
    rules = ("gradient", "deconvnet", "guided")
    if rule not in rules:
        raise ValueError(f"rule={rule!r} is not known; choose one of {list(rules)}.")
    inputs, switches = [], {}
    h = x.detach()
    with torch.no_grad():
        for i, layer in enumerate(net):
            inputs.append(h)
            if isinstance(layer, nn.MaxPool2d):
                h, switches[i] = F.max_pool2d(h, layer.kernel_size, layer.stride, layer.padding,
                                              layer.dilation, layer.ceil_mode, return_indices=True)
            elif isinstance(layer, nn.ReLU):
                h = torch.relu(h)  # out of place: the input z is kept for the gradient's mask
            elif isinstance(layer, (nn.Conv2d, nn.Linear, nn.Flatten)):
                h = layer(h)
            else:
                raise ValueError(f"layer {i} ({type(layer).__name__}) is not supported; use Conv2d, "
                                 "MaxPool2d, ReLU, Flatten and Linear layers.")
        t = check_target(target, h.shape[0], num_classes=h.shape[1]).to(h.device)
        r = torch.zeros_like(h).scatter_(1, t[:, None], 1.0)
        for i in reversed(range(len(net))):
            layer, z = net[i], inputs[i]
            if isinstance(layer, nn.Conv2d):
                (kh, kw), (ph, pw) = layer.kernel_size, layer.padding
                if (layer.stride != (1, 1) or layer.dilation != (1, 1) or layer.groups != 1
                        or layer.padding_mode != "zeros" or ph >= kh or pw >= kw):
                    raise ValueError(f"layer {i}: only stride-1, undilated, single-group, "
                                     "zero-padded convolutions with padding < kernel size.")
                flipped = layer.weight.flip(-2, -1).transpose(0, 1)
                r = F.conv2d(r, flipped, padding=(kh - 1 - ph, kw - 1 - pw))
            elif isinstance(layer, nn.MaxPool2d):
                flat = torch.zeros(z.shape[0], z.shape[1], z.shape[2] * z.shape[3], dtype=r.dtype,
                                   device=r.device)
                r = flat.scatter_add_(2, switches[i].flatten(2), r.flatten(2)).view_as(z)
            elif isinstance(layer, nn.ReLU):
                forward_mask, backward_mask = z > 0, r > 0
                mask = {"gradient": forward_mask, "deconvnet": backward_mask,
                        "guided": forward_mask & backward_mask}[rule]
                r = r * mask
            elif isinstance(layer, nn.Linear):
                r = r @ layer.weight
            else:
                r = r.reshape(z.shape)
    return r


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
    batch, single = check_images(images)
    dev = model_device(model)
    module = _resolve_layer(model, layer)
    check_eval_mode(model)
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
