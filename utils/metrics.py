"""Does a saliency map point at what the model uses? The measures, re-exported from flat modules.

Notebooks import them from here (``from utils.metrics import …``); each lives in the module of its
job: :mod:`utils.faithfulness` (deletion, insertion), :mod:`utils.box_measures` (mass in box,
pointing game), :mod:`utils.sanity` (model randomisation), :mod:`utils.stats` (Spearman,
top-fraction IoU, bootstrap) and :mod:`utils.cost` (passes, seconds, the results table).

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

from .box_measures import centre_pointing, mass_in_box, pointing_game
from .cost import MethodRun, PassCount, count_passes, format_table, run_methods
from .faithfulness import PerturbationCurve, deletion_curve, insertion_curve
from .sanity import SanityCheck, cascade_layers, model_randomisation
from .stats import Interval, bootstrap_interval, spearman, top_fraction_iou

__all__ = [
    "PerturbationCurve",
    "deletion_curve",
    "insertion_curve",
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
