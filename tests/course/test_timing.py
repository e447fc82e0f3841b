"""utils.course.timing: interleaved timings reported as ratios (a fake clock, no wall-clock assert)."""

from __future__ import annotations

import pytest


def test_compare_times_interleaves_and_reports_ratios(monkeypatch):
    """A fake clock that each contender advances by its own cost: the ratios are exact, whatever
    the machine's load (no wall-clock assert)."""
    import utils.course.timing as timing
    from utils.course.timing import compare_times

    clock = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    calls: list[str] = []

    def work(name, seconds):
        def fn():
            calls.append(name)
            clock[0] += seconds
        return fn

    result = compare_times({"fast": work("fast", 0.002), "slow": work("slow", 0.006)}, rounds=6,
                           warmup_rounds=1, warmup_seconds=0.0)
    timed = calls[2:]  # after one warm-up round
    assert len(timed) == 12 and timed[:4] == ["fast", "slow", "slow", "fast"]  # rotated order
    assert result.baseline == "fast" and len(result.seconds["slow"]) == 6
    assert result.ratio("slow") == pytest.approx(3.0) and result.ratio("fast") == 1.0
    lo, hi = result.spread("slow")
    assert lo <= result.ratio("slow") <= hi
    assert "ratio to fast" in result.table() and "median s" in result.table()
    assert "median s" not in result.table(seconds=False) and "ratio to fast" in result.table(seconds=False)
    with pytest.raises(ValueError, match="baseline"):
        compare_times({"a": lambda: None}, baseline="b")
