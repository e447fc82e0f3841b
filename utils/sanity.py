"""The sanity check of a saliency method: does its map change when the model's weights are destroyed?

* :func:`model_randomisation` — the model-parameter randomisation test of Adebayo et al. (2018,
  section 3.1): re-initialise the layers cascading from the top (:func:`cascade_layers`) and
  measure how much the map changes (Spearman rank correlation with the original map). A map that
  barely changes when the weights are destroyed cannot explain the weights.

Re-exported by :mod:`utils.metrics`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ._validation import MapFn, Target, check_images, model_device, resolve_targets, to_model
from .stats import spearman

__all__ = ["cascade_layers", "SanityCheck", "model_randomisation"]


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
