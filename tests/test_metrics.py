"""utils.metrics re-exports the measures of its flat modules, so that notebooks keep
``from utils.metrics import …``."""

from __future__ import annotations

import utils.metrics
from utils import box_measures, cost, faithfulness, sanity, stats


def test_metrics_re_exports_every_public_name_of_its_modules():
    modules = (faithfulness, box_measures, sanity, stats, cost)
    assert sorted(utils.metrics.__all__) == sorted(n for m in modules for n in m.__all__)
    for m in modules:
        for name in m.__all__:
            assert getattr(utils.metrics, name) is getattr(m, name)
