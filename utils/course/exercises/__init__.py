"""The notebooks' self-checks: one module per notebook, the shared primitives in :mod:`.checks`.

A notebook imports its checkers from here (``from utils.course.exercises import check_saliency_fn``).
"""

from .checks import (
    ExerciseRefusal,
    check_answered,
    check_choice,
    check_close,
    check_true,
    refusing,
    rel_error,
)
from .nb01 import check_probability_gradient_fn
from .nb02 import check_mass_ratio_fn, check_saliency_fn
from .nb03 import check_ascent_fn, check_fooling_fn
from .nb04 import check_refined_ious, check_seeds_fn
from .nb05 import check_split_fn
from .nb06 import check_integrated_gradients_fn

__all__ = [
    "ExerciseRefusal", "check_answered", "check_choice", "check_close", "check_true", "refusing",
    "rel_error",
    "check_probability_gradient_fn",
    "check_mass_ratio_fn", "check_saliency_fn",
    "check_ascent_fn", "check_fooling_fn",
    "check_refined_ious", "check_seeds_fn",
    "check_split_fn",
    "check_integrated_gradients_fn",
]
