"""Notebook hygiene: every committed notebook is executed, clean, structured and portable."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
LEAK = re.compile(r"(/work/|/root/|/home/|/Users/|/tmp/|/farm/|C:\\\\Users)")
SECTIONS = ["Learning objectives", "Prerequisites", "Exercises", "Summary", "References"]
# The term-project report is a paper, not a lesson: no learning objectives or exercises (issue #14).
REPORT_SECTIONS = ["Introduction", "Method", "Experiments", "Results", "Discussion", "Conclusion",
                   "References"]


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_executed_in_order_from_a_fresh_kernel(path):
    code = [c for c in _load(path)["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), f"re-run {path.name} top to bottom: {counts[:8]}…"
    assert any(c.get("outputs") for c in code), "outputs must be committed"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_kernel_size_and_clean_outputs(path):
    nb = _load(path)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert path.stat().st_size < 5_000_000, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB"
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error" or "raises-exception" in cell["metadata"].get("tags", []), \
                f"cell {i} of {path.name} has an error output"
            text = json.dumps({k: v for k, v in out.items() if k != "data"})
            text += json.dumps(out.get("data", {}).get("text/plain", ""))
            text += json.dumps(out.get("data", {}).get("text/html", ""))
            leak = LEAK.search(text)
            assert not leak, f"cell {i} of {path.name} shows a machine path ({leak.group(0)})"
            if out["output_type"] == "stream":
                assert out["name"] != "stderr" or "NBVAL_IGNORE_OUTPUT" in "".join(cell["source"]), \
                    f"cell {i} of {path.name} writes to stderr (a warning?): {''.join(out['text'])[:200]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_structure(path):
    nb = _load(path)
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert markdown.lstrip().startswith("# "), "a notebook starts with its title"
    sections = REPORT_SECTIONS if path.name == "07_report.ipynb" else SECTIONS
    missing = [s for s in sections if not re.search(rf"^#+ .*{s}", markdown, flags=re.M | re.I)]
    assert not missing, f"{path.name} lacks the sections {missing}"
    sources = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "sys.path" not in sources, "import utils as an installed package, no sys.path edits"
    assert "assert" in sources or "check_" in sources, "a notebook checks its own results"
