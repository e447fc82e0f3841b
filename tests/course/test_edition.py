"""The student edition (utils.course.edition) and the exercises' checkers (utils.course.exercises).

The generator must remove every solution and nothing else; every checker must accept the right
answer, turn a stub into a hint, and reject the typical wrong answers with their own hint. Executing
the student notebooks themselves is ``make test-student`` (minutes, not a unit test).
"""

from pathlib import Path

import nbformat
import pytest

from utils.course import exercises as ex
from utils.course.edition import (
    BEGIN,
    END,
    exercise_groups,
    strip_solutions,
    student_notebook,
    verify_student_run,
)

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("0[1-6]_*.ipynb"))


# --- the generator ----------------------------------------------------------------------------------

def test_strip_solutions_stubs():
    src = "a = None\n### BEGIN SOLUTION\na = 1\n### END SOLUTION\ndef f():\n    ### BEGIN SOLUTION\n" \
          "    return 2\n    ### END SOLUTION\n"
    out = strip_solutions(src, exercise="Exercise 7")
    assert out == ("a = None\n# YOUR CODE HERE\ndef f():\n    # YOUR CODE HERE\n"
                   '    raise NotImplementedError("Exercise 7: write this part.")\n')
    assert strip_solutions(f"Q?\n{BEGIN}\nsecret\n{END}", markdown=True) == "Q?\nYOUR ANSWER HERE"


@pytest.mark.parametrize("src", [f"{BEGIN}\nx", f"x\n{END}", f"{BEGIN}\n{BEGIN}\n{END}"])
def test_unbalanced_regions_are_refused(src):
    with pytest.raises(ValueError, match="SOLUTION"):
        strip_solutions(src)


def _without_regions(source: str) -> list[str]:
    lines, inside = [], False
    for line in source.split("\n"):
        if line.strip().startswith(BEGIN):
            inside = True
        elif line.strip().startswith(END):
            inside = False
        elif not inside:
            lines.append(line)
    return lines


def _region_lines(source: str) -> list[str]:
    lines, inside = [], False
    for line in source.split("\n"):
        if line.strip().startswith((BEGIN, END)):
            inside = line.strip().startswith(BEGIN)
        elif inside and len(line.strip()) > 12:
            lines.append(line.strip())
    return lines


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_edition_removes_every_solution_and_nothing_else(path):
    teacher = nbformat.read(path, as_version=4)
    student = student_notebook(teacher)
    assert len(student.cells) == len(teacher.cells)
    cleared = {i for g in exercise_groups(teacher) for i in g}
    for i, (t, s) in enumerate(zip(teacher.cells, student.cells, strict=True)):
        assert s.cell_type == t.cell_type and s.get("id") == t.get("id")
        assert BEGIN not in s.source and END not in s.source
        if BEGIN in t.source:
            stubs = ("# YOUR CODE HERE", "YOUR ANSWER HERE", "raise NotImplementedError(")
            kept = [ln for ln in s.source.split("\n") if not ln.strip().startswith(stubs)]
            assert kept == _without_regions(t.source), f"cell {i}: only the region may change"
            for line in _region_lines(t.source):
                assert line not in s.source, f"cell {i}: solution line left: {line}"
        else:
            assert s.source == t.source, f"cell {i} changed"
        if t.cell_type == "code":
            if i in cleared or "student-clear" in t.metadata.get("tags", []):
                assert s.outputs == [] and s.execution_count is None
            else:
                assert s.outputs == t.outputs, f"cell {i}: outputs outside the exercises must stay"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_three_open_exercises(path):
    nb = nbformat.read(path, as_version=4)
    exercises = [c for c in nb.cells if c.cell_type == "markdown" and "**Exercise " in c.source]
    assert len(exercises) >= 3
    # every exercise has a solution region between its prompt and the next prompt
    opened, has_region = 0, []
    for c in nb.cells:
        if c.cell_type == "markdown" and "**Exercise " in c.source:
            opened += 1
            has_region.append(False)
        elif opened and BEGIN in c.source:
            has_region[-1] = True
    assert all(has_region), has_region
    # the exercises' cells were executed in the teacher's edition, and passed
    for group in exercise_groups(nb):
        for i in group:
            assert not any(o.get("output_type") == "error" for o in nb.cells[i].outputs)


def test_verify_student_run_reports_silent_checks_and_other_errors():
    nb = nbformat.v4.new_notebook()
    err = nbformat.v4.new_output("error", ename="AssertionError", evalue="x: not yet", traceback=[])
    name_err = nbformat.v4.new_output("error", ename="NameError", evalue="y", traceback=[])
    nb.cells = [nbformat.v4.new_markdown_cell("**Exercise 1**"),
                nbformat.v4.new_code_cell(f"{BEGIN}\n{END}"), nbformat.v4.new_code_cell("check"),
                nbformat.v4.new_markdown_cell("**Exercise 2**"),   # as in the student edition:
                nbformat.v4.new_code_cell("x = None\n# YOUR CODE HERE"), nbformat.v4.new_code_cell("check"),
                nbformat.v4.new_markdown_cell("text"), nbformat.v4.new_code_cell("other")]
    nb.cells[2].outputs = [err]
    assert verify_student_run(nb) == ["cells [4, 5]: the self-check passed or was silent on the stub"]
    nb.cells[5].outputs = [err]
    assert verify_student_run(nb) == []
    nb.cells[7].outputs = [name_err]
    assert verify_student_run(nb) == ["cell 7: NameError: y"]


# --- the shared primitives (each notebook's checkers: tests/course/test_exercises_nbNN.py) ---

def test_check_choice_and_answered():
    ex.check_choice("q", " B ", "b")
    with pytest.raises(AssertionError, match="look again"):
        ex.check_choice("q", "a", "b", hints={"a": "look again"})
    with pytest.raises(AssertionError, match="no answer yet"):
        ex.check_choice("q", None, "b")
    with pytest.raises(AssertionError, match="set x, y"):
        ex.check_answered("q", x=None, y=None, z=1)


def test_tagged_outputs_are_cleared_and_analysis_cells_get_their_stub():
    import nbformat as nbf

    from utils.course.edition import ANALYSIS_STUB, student_notebook

    nb = nbf.v4.new_notebook()
    figure = nbf.v4.new_code_cell("print(0.54)", metadata={"tags": ["student-clear"]})
    figure.outputs = [nbf.v4.new_output("stream", text="0.54\n")]
    kept = nbf.v4.new_code_cell("print(1)")
    kept.outputs = [nbf.v4.new_output("stream", text="1\n")]
    analysis = nbf.v4.new_markdown_cell("## Results\n### BEGIN SOLUTION\nIt works.\n### END SOLUTION",
                                        metadata={"tags": ["analysis"]})
    nb.cells = [figure, kept, analysis]
    out = student_notebook(nb)
    assert out.cells[0].outputs == [] and out.cells[1].outputs
    assert ANALYSIS_STUB in out.cells[2].source and "It works" not in out.cells[2].source


# --- 07: the student edition of the report is a term-project template ----------------------------

REPORT = Path(__file__).parents[2] / "notebooks" / "07_report.ipynb"


def _sections(nb) -> list[list[int]]:
    """The report's sections: cell indices between markdown headings (#, ##, ###), the talk's
    slides-only cells left out."""
    import re

    sections: list[list[int]] = [[]]
    for i, cell in enumerate(nb.cells):
        if "slides-only" in cell.get("metadata", {}).get("tags", []):
            continue
        if cell.cell_type == "markdown" and re.match(r"#{1,3} ", cell.source) \
                and not cell.source.startswith(BEGIN):
            sections.append([])
        sections[-1].append(i)
    return [s for s in sections if s]


def test_report_student_edition_is_a_template_with_checklists_and_a_rubric():
    import re

    from utils.course.edition import ANALYSIS_STUB, HIDDEN_CODE, HIDDEN_MARKDOWN

    teacher = nbformat.read(REPORT, as_version=4)
    student = student_notebook(teacher)
    tags = [set(c.get("metadata", {}).get("tags", [])) for c in teacher.cells]
    analysis = [i for i, t in enumerate(tags) if "analysis" in t]
    templates = [i for i, t in enumerate(tags) if "template" in t]
    assert len(analysis) >= 10 and len(templates) >= 10
    for i in analysis:   # the worked analysis is gone, the stub and the headings stay
        s, t = student.cells[i].source, teacher.cells[i].source
        assert ANALYSIS_STUB in s and BEGIN not in s
        for line in _region_lines(t):
            assert line not in s, f"cell {i}: the teacher's analysis is left: {line}"
        assert [ln for ln in s.split("\n") if ln.startswith("#")] == \
               [ln for ln in _without_regions(t) if ln.startswith("#")]
    total = 0
    for i in templates:  # each template: a prompt, a checklist and a rubric with points
        src = student.cells[i].source
        assert src == teacher.cells[i].source and "**Term project" in src
        assert "- [ ]" in src and "must show" in src
        points = [int(p) for p in re.findall(r"\((\d+) points?\)", src)]
        rubric = int(re.search(r"Rubric \((\d+) points\)", src).group(1))
        assert points[0] == rubric == sum(points[1:]) > 0
        total += rubric
    assert total == 100
    for section in _sections(teacher):   # every section the student writes has its template
        if any(i in analysis for i in section):
            assert any(i in templates for i in section), f"section at cell {section[0]} has no template"
    hidden = [i for i, t in enumerate(tags) if t & {"slides-only", "teacher-only"}]
    assert len(hidden) >= 10
    for i in hidden:     # the worked report's slide summaries and findings: a note, no text, no output
        s, t = student.cells[i], teacher.cells[i]
        assert s.source in (HIDDEN_MARKDOWN, HIDDEN_CODE) and s.get("outputs", []) == []
        for line in (ln for ln in t.source.split("\n") if len(ln.strip()) > 12):
            assert line not in s.source
    for i, (t, s) in enumerate(zip(teacher.cells, student.cells, strict=True)):  # the experiments stay
        if t.cell_type == "code" and i not in hidden:
            assert s.source == t.source and s.outputs == t.outputs, f"cell {i} changed"
    assert exercise_groups(student) == []


def test_report_template_leaves_nothing_for_the_scan():
    from utils.course.leaks import scan_notebook

    teacher = nbformat.read(REPORT, as_version=4)
    assert scan_notebook(teacher, student_notebook(teacher), name=REPORT.name) == []
