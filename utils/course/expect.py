"""Measured numbers for the reader, checked with a tolerance for the machine.

A notebook's table of measured numbers (IoUs, AUCs, ratios) is the point of its cell, but the last
digits of every number depend on the CPU: PyTorch, oneDNN and MKL choose kernels by processor, so
``0.535`` prints ``0.54`` on one laptop and ``0.53`` on another, and a text comparison (``pytest
--nbval``) fails on a correct result. :func:`expect_table` separates the two jobs:

* it **prints** the table, rounded for reading, in a cell marked ``# NBVAL_IGNORE_OUTPUT`` (nbval
  does not compare its text), and
* it **asserts** every value against the expected one written in the notebook, within a stated
  tolerance, so that a real change of result still fails the notebook, on any CPU.

Tolerances are absolute (``atol``) and relative (``rtol``): a value passes when
``|value − expected| <= atol + rtol·|expected|`` (NumPy's ``isclose`` rule).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["expect_table", "expect_value"]

Table = Mapping[str, float] | Mapping[str, Mapping[str, float]]


def _flatten(table: Table, name: str) -> dict[tuple[str, str], float]:
    if not isinstance(table, Mapping) or not table:
        raise TypeError(f"{name} must be a non-empty dict {{row: value}} or {{row: {{column: value}}}}, "
                        f"got {type(table).__name__}.")
    flat: dict[tuple[str, str], float] = {}
    for row, value in table.items():
        if isinstance(value, Mapping):
            for col, v in value.items():
                flat[(str(row), str(col))] = float(v)
        else:
            flat[(str(row), "")] = float(value)
    return flat


def expect_table(values: Table, expected: Table, *, atol: float, rtol: float = 0.0, digits: int = 2,
                 title: str | None = None, show: bool = True) -> None:
    """Print a table of measured values and assert each against its expected value.

    Args:
        values: the measured numbers, ``{row: value}`` or ``{row: {column: value}}``.
        expected: the same keys (a subset is not allowed: every number shown is checked), with the
            values the notebook's prose reports.
        atol, rtol: the tolerance, ``|value − expected| <= atol + rtol·|expected|``; state it in the
            prose. Choose it from what a different CPU can change (a few units in the last printed
            digit for a rounded mean, more for a value that goes through a threshold or an argmax).
        digits: decimals printed.
        title: a line printed above the table.
        show: print the table (``False``: only check).

    Raises:
        KeyError: ``values`` and ``expected`` do not have the same rows and columns.
        AssertionError: a value is outside its tolerance; the message lists every such value.
    """
    got, want = _flatten(values, "values"), _flatten(expected, "expected")
    if set(got) != set(want):
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        raise KeyError(f"values and expected differ: missing {missing}, unexpected {extra}.")
    if atol < 0 or rtol < 0:
        raise ValueError(f"atol={atol} and rtol={rtol} must be >= 0.")
    bad = [f"{r}{' / ' + c if c else ''}: {got[(r, c)]:.{digits + 2}f}, expected "
           f"{want[(r, c)]:.{digits}f} ± {atol + rtol * abs(want[(r, c)]):.{digits + 1}f}"
           for (r, c) in want
           if not (math.isfinite(got[(r, c)])
                   and abs(got[(r, c)] - want[(r, c)]) <= atol + rtol * abs(want[(r, c)]))]
    if show:
        if title:
            print(title)
        print(_format(values, digits))
        print(f"(checked against the expected values within ±{atol:g}"
              f"{f' + {rtol:g}·|expected|' if rtol else ''}: "
              f"{'all ' + str(len(want)) + ' agree' if not bad else str(len(bad)) + ' differ'})")
    if bad:
        raise AssertionError("Measured values differ from the expected ones by more than the "
                             "tolerance:\n  " + "\n  ".join(bad) + "\nIf the change is intended "
                             "(a new setting, new data), update the prose and paste the new values:\n"
                             + _literal(values, digits))


def expect_value(name: str, value: float, expected: float, *, atol: float, rtol: float = 0.0,
                 digits: int = 2, show: bool = True) -> None:
    """:func:`expect_table` for one number: print ``name = value`` and check it."""
    if show:
        print(f"{name} = {float(value):.{digits}f}")
    expect_table({name: value}, {name: expected}, atol=atol, rtol=rtol, digits=digits, show=False)


def _literal(table: Table, digits: int) -> str:
    """``table`` as a Python literal with rounded values, for pasting into the notebook."""
    def one(v) -> str:
        if isinstance(v, Mapping):
            return "{" + ", ".join(f"{k!r}: {one(x)}" for k, x in v.items()) + "}"
        return f"{float(v):.{digits}f}"
    return one(table)


def _format(table: Table, digits: int) -> str:
    rows = list(table)
    if all(not isinstance(table[r], Mapping) for r in rows):
        width = max(len(str(r)) for r in rows)
        return "\n".join(f"{str(r):<{width}}  {float(table[r]):.{digits}f}" for r in rows)
    cols: list = []
    for r in rows:
        cols += [c for c in table[r] if c not in cols]
    width = max(len(str(r)) for r in rows)
    widths = [max(len(str(c)), digits + 3) for c in cols]
    lines = [" " * width + "".join(f"  {str(c):>{w}}" for c, w in zip(cols, widths, strict=True))]
    for r in rows:
        cells = [f"{float(table[r][c]):.{digits}f}" if c in table[r] else "" for c in cols]
        lines.append(f"{str(r):<{width}}" + "".join(f"  {v:>{w}}" for v, w in zip(cells, widths, strict=True)))
    return "\n".join(lines)
