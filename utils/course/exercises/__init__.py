"""The notebooks' self-checks: one module per notebook, the shared primitives in :mod:`.checks`.

A notebook imports its checkers from here (``from utils.course.exercises import check_saliency_fn``).
Each notebook's module lists its checkers in its own ``__all__``; this package re-exports them all.
"""

from . import nb00, nb01, nb02, nb03, nb04, nb05, nb06, nb07
from .checks import (
    ExerciseRefusal,
    check_answered,
    check_choice,
    check_close,
    check_true,
    refusing,
    rel_error,
)
from .nb00 import *  # noqa: F403
from .nb01 import *  # noqa: F403
from .nb02 import *  # noqa: F403
from .nb03 import *  # noqa: F403
from .nb04 import *  # noqa: F403
from .nb05 import *  # noqa: F403
from .nb06 import *  # noqa: F403
from .nb07 import *  # noqa: F403

__all__ = [
    "ExerciseRefusal", "check_answered", "check_choice", "check_close", "check_true", "refusing",
    "rel_error",
    *nb00.__all__, *nb01.__all__, *nb02.__all__, *nb03.__all__,
    *nb04.__all__, *nb05.__all__, *nb06.__all__, *nb07.__all__,
]
