"""utils.cost: pass counting, run_methods and the results table."""

from __future__ import annotations

import torch

from utils.cost import count_passes, format_table, run_methods
from utils.models import toy_linear_classifier
from utils.saliency import saliency_map


def test_count_passes_and_run_methods():
    m = toy_linear_classifier()
    x = torch.rand(3, 3, 6, 5)
    with count_passes(m) as c:
        saliency_map(m, x, 0)
        with torch.no_grad():
            m(x)
    assert (c.forward, c.backward) == (6, 3)
    assert not m._forward_hooks and not m._forward_pre_hooks
    runs = run_methods({"gradient": saliency_map}, m, x, 1)
    r = runs["gradient"]
    assert r.maps.shape == (3, 6, 5) and (r.forward, r.backward) == (1.0, 1.0) and r.seconds >= 0
    text = format_table([{"method": "a", "auc": 0.1234}, {"method": "bb", "auc": 1.0}])
    assert text.splitlines() == ["method   auc", "a       0.12", "bb      1.00"]
