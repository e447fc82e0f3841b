"""The leak scanner (utils.course.leaks): the answers issue #20 found given away, on small synthetic
notebooks shaped like the course's exercises; a clean exercise gives no finding; the escape hatch."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from utils.course.edition import main as edition_main
from utils.course.edition import student_notebook
from utils.course.leaks import answer_literals, exercise_spans, scan_notebook

md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("0[0-7]_*.ipynb"))


def _nb(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [md("# Title\n\nSome prose."), code("import torch\nx = torch.ones(3)"), *cells,
                md("## Summary\n\nDone.")]
    return nb


def _scan(nb, executed=None):
    return scan_notebook(nb, student_notebook(nb), executed=executed, name="nb")


def _kinds(leaks):
    return {leak.kind for leak in leaks}


def test_clean_exercises_give_no_finding():
    nb = _nb(md("## Exercises\n\n**Exercise 1.** Pick (a), (b) or (c); set `reason`."),
             code('reason = None\n### BEGIN SOLUTION\nreason = "c"\n### END SOLUTION'),
             code('from utils.course.exercises import check_reason\n\ncheck_reason(reason)'),
             md("**Exercise 2.** Write `double(v)`, twice the tensor."),
             code("def double(v):\n    ### BEGIN SOLUTION\n    return v.mul(2).clone().contiguous()\n"
                  "    ### END SOLUTION"),
             code("check_double_fn(double)"),
             md("**Exercise 3.** Why? Write it below.\n\n### BEGIN SOLUTION\nBecause the gradient of "
                "a linear model is its weight vector.\n### END SOLUTION"))
    assert _scan(nb) == []


def test_an_exercise_without_a_region_is_reported():   # notebook 00's two exercises
    nb = _nb(md("## Exercises\n\n**Exercise 1.** Find the tabby's index."),
             code('tabby = class_index(model, "tabby")'),
             code('check_true("tabby index", tabby == 281, hint="Look the name up.")'),
             md("**Exercise 2.** Verify the shift invariance."), code("diff = 0.0"))
    leaks = _scan(nb)
    assert [(x.kind, x.exercise) for x in leaks if x.where == "structure"] == [
        ("no solution region", "notebook"),
        ("exercise without a solution region", "Exercise 1"),
        ("exercise without a solution region", "Exercise 2")]


def test_the_letter_in_the_check_cell():   # 01 exercise 2
    nb = _nb(md("## Exercises\n\n**Exercise 2.** Store in `reason` the letter (a), (b) or (c)."),
             code('channels_equal, reason = None, None\n### BEGIN SOLUTION\nchannels_equal = False\n'
                  'reason = "c"\n### END SOLUTION'),
             code('check_answered("grayscale photo", reason=reason)\n'
                  'assert not torch.allclose(x, 2 * x, rtol=0.1)   # so (b) is wrong\n'
                  'check_choice("why", reason, "c", hints={"a": "differ.", "b": "scale is not it."})'))
    leaks = _scan(nb)
    assert {"answer literal in the check code", "the correct choice in the check code",
            "the wrong choices named in the check code", "bare assert in the check code"} <= _kinds(leaks)
    assert any(x.value == "'c'" for x in leaks)


def test_check_choice_and_bounds_in_the_check_cell():   # 02 exercise 2
    nb = _nb(md("## Exercises\n\n**Exercise 2.** (a) above 0.9, (b) between 0.2 and 0.9, (c) below 0.2."),
             code('my_map, resemblance = None, None\n### BEGIN SOLUTION\nmy_map = x * 2\n'
                  'corr = float(torch.corrcoef(torch.stack([my_map, x]))[0, 1])\n'
                  'resemblance = "a" if corr > 0.9 else "b" if corr > 0.2 else "c"\n### END SOLUTION'),
             code('r = float(torch.corrcoef(torch.stack([x * 2, x]))[0, 1])\n'
                  'assert 0.3 < r < 0.8   # far from both boundaries\n'
                  'check_choice("how alike?", resemblance, "b", hints={"a": "Compute it.", "c": "Compute it."})'))
    leaks = _scan(nb)
    assert any(x.kind == "the correct choice in the check code" and x.value == "'b'" for x in leaks)
    assert any(x.kind == "bare assert in the check code" and "0.3 < r < 0.8" in x.value for x in leaks)
    assert any(x.kind == "the wrong choices named in the check code" for x in leaks)


def test_two_answers_in_the_check_cell():   # 06 exercise 4
    nb = _nb(md('## Exercises\n\n**Exercise 4.** Store `answer_a` and `answer_b`, e.g. `"2"`.\n\n'
                '(a) `"1"` … `"2"` … `"3"` …'),
             code('answer_a, answer_b = None, None\n### BEGIN SOLUTION\nanswer_a, answer_b = "2", "2"\n'
                  '### END SOLUTION'),
             code('check_choice("(a)", answer_a, "2", hints={"1": "no", "3": "no"})\n'
                  'check_choice("(b)", answer_b, correct="2")'))
    leaks = _scan(nb)
    assert answer_literals('answer_a, answer_b = "2", "2"') == ["2"]
    assert any(x.kind == "answer literal in the check code" and x.value == "'2'" for x in leaks)
    # the prompt lists the options on purpose: "2" there is not a leak
    assert not any(x.where == "text" or x.cell == 3 for x in leaks if x.kind.startswith("answer literal"))


def test_a_number_and_its_derivation_in_the_prose_above():   # 05 exercise 3
    nb = _nb(md("## Section\n\nThe sampler probes a $7\\times7$ grid of cells first ($8\\times8 = 64$ "
                "corner windows) within its budget of 72 passes."),
             md("A $7\\times7$ kernel has a wider ring."),   # 7 alone: not the answer's derivation
             md("## Exercises\n\n**Exercise 3.** With `start = s`, level 0 probes $(s+1)^2$ corners and a "
                "refinement adds 5. Largest `start` within `max_passes=72`?"),
             code("start = None\n### BEGIN SOLUTION\nstart = 7   # (7 + 1)² = 64 ≤ 72 − 5, while "
                  "(8 + 1)² = 81 > 72.\n### END SOLUTION\ncheck_answered('largest start', start=start)"),
             code("check_level0(start)"))
    leaks = _scan(nb)
    prose = [x for x in leaks if x.kind == "answer with its derivation in the prose"]
    assert [(x.cell, x.value) for x in prose] == [(2, "7")]
    assert "64" in prose[0].detail


def test_the_answer_in_the_exercise_text_and_in_a_kept_output():
    nb = _nb(md("## Exercises\n\n**Exercise 1.** Compute the ratio (it is 1.46)."),
             code("ratio = None\n### BEGIN SOLUTION\nratio = 1.46\n### END SOLUTION"),
             code("check_ratio(ratio)"))
    table = code("print(table)")
    table.outputs = [nbformat.v4.new_output("stream", text="t  ratio\n0.2  1.46\n")]
    nb.cells.insert(1, table)
    kinds = _kinds(_scan(nb))
    assert {"answer literal in the exercise's text", "answer literal in a kept output"} <= kinds
    table.metadata["tags"] = ["student-clear"]                       # cleared: no longer kept
    assert "answer literal in a kept output" not in _kinds(_scan(nb))


def test_a_solution_line_in_a_check_cell_and_in_a_hint():   # 04 exercise 3, 05 exercise 2
    nb = _nb(md("## Exercises\n\n**Exercise 3.** Store `changes_much`."),
             code("ious, changes_much = None, None\n### BEGIN SOLUTION\nious = refine(images, maps)\n"
                  "changes_much = abs(float(np.mean(ious)) - mean_sg) > 0.1\n### END SOLUTION"),
             code("check_refined(ious, changes_much)\n"
                  "assert abs(float(np.mean(ious)) - mean_sg) < 0.08\n"
                  'print("the mean IoU moves by less than 0.1")'))
    leaks = _scan(nb)
    assert {"solution line", "bare assert in the check code",
            "a fixed conclusion printed by the check code"} <= _kinds(leaks)
    # a hint printed on the stub that repeats the solution: found in the executed notebook
    nb2 = _nb(md("## Exercises\n\n**Exercise 1.** Write the step."),
              code("def step(v):\n    ### BEGIN SOLUTION\n    return v + lr * (grad - 2 * l2 * (v - mean))\n"
                   "    ### END SOLUTION"),
              code("check_step(step)"))
    executed = student_notebook(nb2)
    executed.cells[4].outputs = [nbformat.v4.new_output(
        "error", ename="AssertionError", evalue="step: use v + lr * (grad - 2 * l2 * (v - mean))",
        traceback=[])]
    assert _scan(nb2) == []
    hints = [x for x in _scan(nb2, executed) if x.where == "hint"]
    assert [x.kind for x in hints] == ["solution line"]


def test_a_technique_taught_in_a_section_is_not_a_leak():
    nb = _nb(code("x = images.clone().requires_grad_(True)\nscores = model(x).gather(1, t[:, None]).sum()"),
             md("## Exercises\n\n**Exercise 1.** Write `maps(model, images, t)`."),
             code("def maps(model, images, t):\n    ### BEGIN SOLUTION\n"
                  "    x = images.clone().requires_grad_(True)\n"
                  "    scores = model(x).gather(1, t[:, None]).sum()\n"
                  "    return torch.autograd.grad(scores, x)[0].abs().amax(1)\n    ### END SOLUTION"),
             code("check_maps(maps)"))
    assert _scan(nb) == []


def test_the_escape_hatch():
    def build(meta_on_check=None, meta_on_solution=None):
        nb = _nb(md("## Exercises\n\n**Exercise 1.** Which? (a) or (b)."),
                 code('ans = None\n### BEGIN SOLUTION\nans = "b"\n### END SOLUTION',
                      metadata=meta_on_solution or {}),
                 code('check_choice("q", ans, "b")', metadata=meta_on_check or {}))
        return _scan(nb)

    assert build()
    assert build(meta_on_check={"leak_ok": True}) == []
    assert build(meta_on_solution={"leak_ok": ["'b'"]}) == [
        x for x in build() if x.value != "'b'"]


def test_spans_end_at_the_next_heading():
    nb = _nb(md("## Exercises\n\n**Exercise 1.** A."), code("a = 1"), md("**Exercise 2.** B."),
             code("### BEGIN SOLUTION\nb = 2\n### END SOLUTION"))
    spans = exercise_spans(nb)
    assert [(s.number, s.prompt, s.stop, s.solution_cells) for s in spans] == [
        ("1", 2, 4, []), ("2", 4, 6, [5])]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_scanner_runs_on_the_course(path):
    """Findings on the course itself are `make test-student`'s business; here: it runs, and every
    finding names its cell and exercise."""
    teacher = nbformat.read(path, as_version=4)
    for leak in scan_notebook(teacher, student_notebook(teacher), name=path.name):
        assert 0 <= leak.cell < len(teacher.cells) and leak.exercise


def test_scan_command_line(tmp_path, capsys):
    nb = _nb(md("## Exercises\n\n**Exercise 1.** Which?"),
             code('ans = None\n### BEGIN SOLUTION\nans = "b"\n### END SOLUTION'),
             code('check_choice("q", ans, "b")'))
    teacher, out = tmp_path / "teacher", tmp_path / "student"
    teacher.mkdir()
    nbformat.write(nb, teacher / "01_x.ipynb")
    assert edition_main(["--out", str(out), str(teacher / "01_x.ipynb")]) == 0
    assert edition_main(["--scan", "--out", str(out), "--teacher", str(teacher)]) == 1
    assert "the correct choice in the check code: 'b'" in capsys.readouterr().out
