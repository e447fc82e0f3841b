"""utils.course.expect: tables printed for the reader, checked with a tolerance."""

from __future__ import annotations

import pytest

from utils.course.expect import expect_table, expect_value


def test_values_within_tolerance_pass_and_are_printed(capsys):
    expect_table({"gradient": {"IoU": 0.534, "AUC": 0.151}, "SmoothGrad": {"IoU": 0.61, "AUC": 0.07}},
                 {"gradient": {"IoU": 0.53, "AUC": 0.15}, "SmoothGrad": {"IoU": 0.61, "AUC": 0.07}},
                 atol=0.01, title="Table 1")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Table 1"
    assert out[1].split() == ["IoU", "AUC"]
    assert out[2].split() == ["gradient", "0.53", "0.15"]
    assert "all 4 agree" in out[-1]


def test_a_value_outside_its_tolerance_fails_and_is_named():
    with pytest.raises(AssertionError, match=r"(?s)SmoothGrad / IoU: 0\.7000, expected 0\.61 ± 0\.020.*\{.SmoothGrad.: \{.IoU.: 0\.70\}\}"):
        expect_table({"SmoothGrad": {"IoU": 0.70}}, {"SmoothGrad": {"IoU": 0.61}}, atol=0.02)
    with pytest.raises(AssertionError, match="ratio"):
        expect_value("ratio", 3.0, 2.0, atol=0.0, rtol=0.25, show=False)
    expect_value("ratio", 2.4, 2.0, atol=0.0, rtol=0.25, show=False)


def test_nan_never_passes_and_keys_must_match():
    with pytest.raises(AssertionError):
        expect_table({"a": float("nan")}, {"a": 0.0}, atol=1.0, show=False)
    with pytest.raises(KeyError, match="missing"):
        expect_table({"a": 1.0}, {"a": 1.0, "b": 2.0}, atol=0.1, show=False)
    with pytest.raises(TypeError, match="non-empty dict"):
        expect_table({}, {}, atol=0.1)
    with pytest.raises(ValueError, match="atol"):
        expect_table({"a": 1.0}, {"a": 1.0}, atol=-1)


def test_flat_tables_print_one_value_per_row(capsys):
    expect_table({"whole image": 0.54, "centred box": 0.43}, {"whole image": 0.54, "centred box": 0.43},
                 atol=0.005, digits=3)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-1] == "0.540" and lines[1].startswith("centred box")
