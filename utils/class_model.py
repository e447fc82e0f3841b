"""Class-model visualisation (Simonyan, Vedaldi & Zisserman, 2013, section 2).

A *class model* is an image that the network scores highly for one class, found by gradient
ascent on the image with the weights fixed:

    I* = argmax_I  S_c(I) − λ‖I − Ī‖²₂

where ``S_c`` is the pre-softmax score of class ``c`` and ``Ī`` the ImageNet mean image (the
paper's optimisation variable is the image centred on the mean, starting from zero; the result is
shown by adding the mean back).

Plain ascent on a modern network is a trap: it reaches softmax 0.999 in a few steps with an
image that is adversarial noise, tuned to this one network. The regularisers below, taken from the
feature-visualisation literature, make the class evidence *transfer*, so that another network
that never took part in the optimisation (the "judge", see :func:`judge_rank`) also recognises
the class. Each one is switched by its own keyword of :func:`visualise_class`:

* ``jitter`` — random shifts (circular, whole pixels) of every copy at every step
  (Mordvintsev et al., 2015; Olah et al., 2017);
* ``blur_every`` / ``blur_sigma`` — periodic Gaussian blur of the image (Yosinski et al., 2015);
* ``clip`` — keep the image in the valid range [0, 1] (pixel parameterisation: projection after
  every step, Yosinski et al., 2015; Fourier parameterisation: a sigmoid, as in Lucid);
* ``scale`` / ``rotate`` — random rescaling and rotation of every copy (Olah et al., 2017);
* ``tv`` — a total-variation penalty (Mahendran & Vedaldi, 2015);
* ``parameterisation="fourier"`` — the image is optimised as a colour-decorrelated Fourier
  spectrum scaled by 1/frequency (Lucid / Lucent), which favours natural-image statistics;
* ``augment`` — several randomly transformed copies per class and step, gradients averaged.

:data:`PAPER_SETTINGS` turns all of them off (the paper's plain version); the defaults of
:func:`visualise_class` are the recommended, regularised settings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._validation import check_positive_int, check_target, resolve_device, to_model

__all__ = [
    "IMAGENET_MEAN",
    "PAPER_SETTINGS",
    "RECOMMENDED_SETTINGS",
    "ClassModelRun",
    "visualise_class",
    "class_model_run",
    "judge_rank",
    "stretch_contrast",
    "fourier_image",
    "gaussian_blur",
    "total_variation",
]

#: The mean ImageNet pixel (RGB, in [0, 1]): the paper's "mean image" Ī (a constant image).
IMAGENET_MEAN = (0.485, 0.456, 0.406)

# Square root of the ImageNet colour covariance (Lucid's ``color_correlation_svd_sqrt``), scaled so
# that its largest column has norm 1: maps decorrelated channels to correlated RGB.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                            [0.27, 0.00, -0.05],
                            [0.27, -0.09, 0.03]])
_COLOR_SQRT = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()

#: The paper's plain version: pixel parameterisation, plain gradient ascent, every regulariser off.
PAPER_SETTINGS: dict = {
    "parameterisation": "pixel", "optimiser": "sgd", "lr": 1.0, "l2": 1e-4, "jitter": 0,
    "scale": 0.0, "rotate": 0.0, "blur_every": 0, "clip": False, "tv": 0.0, "augment": 1,
}

#: The recommended settings (the defaults of :func:`visualise_class`), for reference.
RECOMMENDED_SETTINGS: dict = {
    "parameterisation": "fourier", "optimiser": "adam", "lr": 0.05, "l2": 0.0, "jitter": 16,
    "scale": 0.1, "rotate": 10.0, "blur_every": 0, "blur_sigma": 0.5, "clip": True, "tv": 0.0,
    "augment": 1, "steps": 96,
}


@dataclass
class ClassModelRun:
    """The result of one (batched) class-model optimisation.

    Attributes:
        images: ``(K, 3, H, W)`` class models in [0, 1] (the mean added back, clipped for display).
        targets: ``(K,)`` class indices.
        score: ``(steps, K)`` the target score ``S_c`` at every step (mean over the augmented copies
            that the step optimised; with every augmentation off, exactly ``S_c`` of the image).
        probability: ``(steps, K)`` the softmax probability ``P_c`` of the same copies.
        norm: ``(steps, K)`` ``‖I − Ī‖₂`` of the image before the step's update.
        settings: the keyword arguments the run used.
    """

    images: torch.Tensor
    targets: torch.Tensor
    score: torch.Tensor
    probability: torch.Tensor
    norm: torch.Tensor
    settings: dict


def _freqs(h: int, w: int) -> torch.Tensor:
    """Spatial frequencies (cycles per pixel) of the ``rfft2`` grid, shape ``(h, w // 2 + 1)``."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


def fourier_image(spectrum: torch.Tensor, size: int, *, decay: float = 1.0) -> torch.Tensor:
    """A colour-decorrelated image from a Fourier spectrum (Lucid's ``fft_image`` + colour map).

    Args:
        spectrum: ``(K, 3, size, size // 2 + 1, 2)`` real and imaginary parts (the parameters).
        size: side of the image.
        decay: the spectrum is scaled by ``1 / f^decay`` (``f`` in cycles per image), so that equal
            parameter steps change every scale by about as much as natural images vary there.

    Returns:
        ``(K, 3, size, size)`` unbounded, zero-mean image offsets (correlated RGB).
    """
    f = _freqs(size, size).to(spectrum.device)
    scale = 1.0 / torch.clamp(f, min=1.0 / size) ** decay
    scale = scale[None, None, :, :, None]
    x = torch.fft.irfft2(torch.view_as_complex((spectrum * scale).contiguous()), s=(size, size),
                         norm="ortho") / 4.0
    return torch.einsum("ij,kjhw->kihw", _COLOR_SQRT.to(x.device), x)


def _gaussian_kernel(sigma: float, device: torch.device) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflected borders: ``(K, 3, H, W)`` → same shape."""
    if sigma <= 0:
        return images
    k = _gaussian_kernel(sigma, images.device)
    r = k.numel() // 2
    c = images.shape[1]
    x = F.pad(images, (r, r, 0, 0), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, r, r), mode="reflect")
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation per image: ``(K, 3, H, W)`` → ``(K,)`` (sum of |differences|)."""
    dy = (images[:, :, 1:, :] - images[:, :, :-1, :]).abs().sum(dim=(1, 2, 3))
    dx = (images[:, :, :, 1:] - images[:, :, :, :-1]).abs().sum(dim=(1, 2, 3))
    return dx + dy


def _augment(images: torch.Tensor, copies: int, jitter: int, scale: float, rotate: float,
             gen: torch.Generator) -> torch.Tensor:
    """``copies`` randomly transformed versions of each image: ``(K, …)`` → ``(copies·K, …)``.

    Copy-major order (copy ``a`` of image ``k`` is row ``a·K + k``). The random numbers come from
    ``gen`` on the CPU, so a seed gives the same transformations on every device.
    """
    x = images.repeat(copies, 1, 1, 1)
    n, _, h, w = x.shape
    if jitter > 0:
        shifts = torch.randint(-jitter, jitter + 1, (n, 2), generator=gen).tolist()
        x = torch.stack([torch.roll(x[i], shifts=(dy, dx), dims=(1, 2))
                         for i, (dy, dx) in enumerate(shifts)])
    if scale > 0 or rotate > 0:
        s = 1.0 + (torch.rand(n, generator=gen) * 2 - 1) * scale
        a = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(rotate)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = torch.cos(a) / s
        theta[:, 0, 1] = -torch.sin(a) / s
        theta[:, 1, 0] = torch.sin(a) / s
        theta[:, 1, 1] = torch.cos(a) / s
        grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return x


def _check_nonneg(value: float, name: str, hint: str = "") -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}.") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name}={value!r} is not allowed; it must be a finite number >= 0.{hint}")
    return v


def class_model_run(model: nn.Module, target: int | Sequence[int], *, steps: int = 96,
                    lr: float = 0.05, l2: float = 0.0, seed: int = 0, size: int | None = None,
                    progress: bool = False, parameterisation: str = "fourier",
                    optimiser: str = "adam", objective: str = "score", jitter: int = 16,
                    scale: float = 0.1, rotate: float = 10.0, blur_every: int = 0,
                    blur_sigma: float = 0.5, clip: bool = True, tv: float = 0.0, augment: int = 1,
                    device: str | torch.device | None = None) -> ClassModelRun:
    """Optimise class models for one or several classes at once and return the whole run.

    Maximises, for every target class ``c`` independently (one batch, one optimisation),

        mean_a S_c(T_a(I)) − l2 · ‖I − Ī‖²₂ − tv · TV(I)

    where ``T_a`` are ``augment`` random transformations (jitter, scale, rotation; the identity
    when they are off) and ``Ī`` is :data:`IMAGENET_MEAN`. With ``objective="log_prob"`` the score
    ``S_c`` is replaced by ``log P_c`` (softmax), which the paper argues against: it can also grow
    by pushing the other classes down.

    Args:
        model: a classifier from :func:`utils.models.load_classifier` (images in [0, 1] → scores),
            in eval mode.
        target: a class index ``0..999`` or a sequence of them (one class model each).
        steps: number of ascent steps (> 0).
        lr: step size (> 0). Adam's step is about ``lr`` per parameter; plain SGD multiplies the
            raw gradient.
        l2: λ, the weight of ``‖I − Ī‖²₂`` (>= 0; the sum over all pixels and channels).
        seed: seeds the initial spectrum and the random transformations (same result every run).
        size: side of the optimised image (default: the model's ``input_size``).
        progress: show a progress bar (tqdm's notebook bar in JupyterLab); silent when False.
        parameterisation: ``"pixel"`` (the image itself, centred on the mean, starting at zero) or
            ``"fourier"`` (a colour-decorrelated 1/f-scaled spectrum, starting near zero).
        optimiser: ``"sgd"`` (plain gradient ascent, the paper) or ``"adam"``.
        objective: ``"score"`` (``S_c``, the paper's choice) or ``"log_prob"`` (``log P_c``).
        jitter: largest random shift in pixels per step (0 = off).
        scale: random rescaling by a factor in ``[1 − scale, 1 + scale]`` (0 = off).
        rotate: random rotation by up to ± ``rotate`` degrees (0 = off).
        blur_every: blur the image every this many steps (0 = off) ...
        blur_sigma: ... with a Gaussian of this standard deviation in pixels.
        clip: keep the image in [0, 1] (projection for ``"pixel"``, sigmoid for ``"fourier"``).
        tv: weight of the total-variation penalty (0 = off).
        augment: transformed copies per class and step (>= 1), gradients averaged.
        device: where to compute (default: the model's device).

    Returns:
        A :class:`ClassModelRun` (images ``(K, 3, size, size)`` in [0, 1], per-step records).

    Raises:
        ValueError: target outside 0..999, ``steps``/``augment`` <= 0, negative ``l2``/``tv``/
            ``jitter``/``scale``/``rotate``/``blur_sigma``, non-positive ``lr``, unknown names.
    """
    settings = {k: v for k, v in locals().items() if k not in ("model", "target", "progress", "device")}
    if getattr(model, "training", False):
        raise ValueError("The model is in training mode; call model.eval() first.")
    single = isinstance(target, int) or (hasattr(target, "__index__") and not isinstance(target, str))
    targets = check_target(target, 1 if single else len(target))  # type: ignore[arg-type]
    check_positive_int(steps, "steps")
    check_positive_int(augment, "augment")
    check_positive_int(blur_every, "blur_every", minimum=0)
    check_positive_int(jitter, "jitter", minimum=0)
    l2 = _check_nonneg(l2, "l2", " λ weighs the penalty λ‖I‖²; use 0 to switch it off.")
    tv = _check_nonneg(tv, "tv")
    scale = _check_nonneg(scale, "scale")
    rotate = _check_nonneg(rotate, "rotate")
    blur_sigma = _check_nonneg(blur_sigma, "blur_sigma")
    if _check_nonneg(lr, "lr") == 0:
        raise ValueError("lr=0 would never change the image; use a positive step size.")
    if scale >= 1:
        raise ValueError(f"scale={scale} must be < 1 (factors in [1 − scale, 1 + scale]).")
    for name, value, allowed in (("parameterisation", parameterisation, ("pixel", "fourier")),
                                 ("optimiser", optimiser, ("sgd", "adam")),
                                 ("objective", objective, ("score", "log_prob"))):
        if value not in allowed:
            raise ValueError(f"{name}={value!r} is unknown; choose one of {allowed}.")
    size = int(size if size is not None else getattr(model, "input_size", 224))
    check_positive_int(size, "size", minimum=16)
    dev = resolve_device(device, model)
    targets = targets.to(dev)
    k = targets.numel()
    gen = torch.Generator().manual_seed(int(seed))
    mean = torch.tensor(IMAGENET_MEAN, device=dev).view(1, 3, 1, 1)

    if parameterisation == "fourier":
        shape = (k, 3, size, size // 2 + 1, 2)
        param = (torch.randn(shape, generator=gen) * 0.01).to(dev)
        blur_gain = torch.exp(-2 * math.pi**2 * blur_sigma**2 * _freqs(size, size) ** 2)
        blur_gain = blur_gain.to(dev)[None, None, :, :, None]
        logit_mean = torch.logit(mean)

        def image_of(p: torch.Tensor) -> torch.Tensor:
            x = fourier_image(p, size)
            return torch.sigmoid(logit_mean + x) if clip else mean + x
    else:
        param = torch.zeros(k, 3, size, size, device=dev)

        def image_of(p: torch.Tensor) -> torch.Tensor:
            return mean + p
    param.requires_grad_(True)
    opt = (torch.optim.Adam([param], lr=lr) if optimiser == "adam"
           else torch.optim.SGD([param], lr=lr))
    scores, probs, norms = [], [], []
    from tqdm.auto import trange

    rows = torch.arange(k, device=dev).repeat(augment)
    for step in trange(steps, disable=not progress, desc="class model", leave=False):
        with torch.enable_grad():
            image = image_of(param)
            centred = image - mean
            x = _augment(image, augment, jitter, scale, rotate, gen)
            logits = model(x)
            logp = torch.log_softmax(logits, dim=1)
            tgt = targets.repeat(augment)[:, None]
            chosen = (logits if objective == "score" else logp).gather(1, tgt).squeeze(1)
            gain = torch.zeros(k, device=dev).index_add(0, rows, chosen) / augment
            objective_value = gain - l2 * centred.pow(2).sum(dim=(1, 2, 3))
            if tv > 0:
                objective_value = objective_value - tv * total_variation(image)
            (grad,) = torch.autograd.grad(-objective_value.sum(), param)
        with torch.no_grad():
            s = torch.zeros(k, device=dev).index_add(0, rows, logits.gather(1, tgt).squeeze(1))
            p = torch.zeros(k, device=dev).index_add(0, rows, logp.gather(1, tgt).squeeze(1).exp())
            scores.append((s / augment).cpu())
            probs.append((p / augment).cpu())
            norms.append(centred.flatten(1).norm(dim=1).cpu())
            param.grad = grad
            opt.step()
            if blur_every and (step + 1) % blur_every == 0 and blur_sigma > 0:
                if parameterisation == "fourier":
                    param.mul_(blur_gain)
                else:
                    param.copy_(gaussian_blur(mean + param, blur_sigma) - mean)
            if clip and parameterisation == "pixel":
                param.copy_(torch.clamp(mean + param, 0.0, 1.0) - mean)
    with torch.no_grad():
        images = image_of(param).clamp(0.0, 1.0).detach()
    return ClassModelRun(images=images, targets=targets.cpu(), score=torch.stack(scores),
                         probability=torch.stack(probs), norm=torch.stack(norms), settings=settings)


def visualise_class(model: nn.Module, target: int | Sequence[int], *, steps: int = 96,
                    lr: float = 0.05, l2: float = 0.0, seed: int = 0, size: int | None = None,
                    progress: bool = False, **regularisers) -> torch.Tensor:
    """The class model of ``target``: ``argmax_I S_c(I) − λ‖I − Ī‖²`` with the given regularisers.

    The defaults are the recommended, regularised settings (:data:`RECOMMENDED_SETTINGS`); the
    paper's plain version is ``visualise_class(model, c, **PAPER_SETTINGS)``. The keyword
    arguments are those of :func:`class_model_run`, which also returns the per-step record.

    Returns:
        ``(3, size, size)`` in [0, 1] for an int ``target``; ``(K, 3, size, size)`` for a sequence
        of ``K`` targets (one batched optimisation).
    """
    run = class_model_run(model, target, steps=steps, lr=lr, l2=l2, seed=seed, size=size,
                          progress=progress, **regularisers)
    single = isinstance(target, int) or (hasattr(target, "__index__") and not isinstance(target, str))
    return run.images[0] if single else run.images


@torch.no_grad()
def judge_rank(judge: nn.Module, images: torch.Tensor, target: int | Sequence[int], *,
               resize: bool = True, device: str | torch.device | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank and probability of the target class in an independent network (the "judge").

    The images are resized (bilinear, antialiased) to the judge's ``input_size`` unless
    ``resize=False`` (use that to score a class model in the network it was optimised on, at the
    size it was optimised at).

    Args:
        judge: a classifier, e.g. ``load_classifier("efficientnet_lite1")``.
        images: ``(K, 3, H, W)`` or ``(3, H, W)`` in [0, 1].
        target: one class index, or one per image.

    Returns:
        ``(ranks, probabilities)``, each ``(K,)``: rank 1 = the judge's top-1 class.
    """
    batch = images.unsqueeze(0) if images.dim() == 3 else images
    t = check_target(target, batch.shape[0])
    dev = resolve_device(device, judge)
    x = to_model(batch, judge, dev)
    size = getattr(judge, "input_size", x.shape[-1])
    if resize and (x.shape[-1] != size or x.shape[-2] != size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    scores = judge(x.clamp(0, 1)).cpu()
    own = scores.gather(1, t[:, None])
    ranks = (scores > own).sum(dim=1) + 1
    return ranks, torch.softmax(scores, dim=1).gather(1, t[:, None]).squeeze(1)


def stretch_contrast(images: torch.Tensor) -> torch.Tensor:
    """For display only: ``Ī + (I − Ī) · 0.5 / max|I − Ī|`` per image, so faint class models show.

    The paper's plain class models differ from the mean image by a few percent; this scales each
    image's deviation from :data:`IMAGENET_MEAN` to fill the range. ``(K, 3, H, W)`` or
    ``(3, H, W)`` → same shape, in [0, 1].
    """
    batch = images.unsqueeze(0) if images.dim() == 3 else images
    mean = torch.tensor(IMAGENET_MEAN, device=batch.device).view(1, 3, 1, 1)
    dev = batch - mean
    peak = dev.flatten(1).abs().amax(dim=1).clamp(min=1e-8).view(-1, 1, 1, 1)
    out = (mean + dev * (0.5 / peak)).clamp(0.0, 1.0)
    return out[0] if images.dim() == 3 else out
