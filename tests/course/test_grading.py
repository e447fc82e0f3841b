"""The grader (utils.course.grading): assembling a submission on the teacher's edition, the verdicts,
the reports, the guard inside the kernel, and hostile submissions, on tiny synthetic notebooks.

One grading run (``graded``, a module fixture) executes every kernel-backed case at once, four at a
time; the rest needs no kernel.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from utils.course.edition import student_notebook
from utils.course.grading import (
    RUBRIC,
    WRITTEN,
    Row,
    _find,
    assemble,
    course_exercises,
    grade,
    grade_submission,
    write_csv,
    write_html,
)

ROOT = Path(__file__).resolve().parents[2]
md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
TIMEOUT = 240        # generous: a loaded 2-core CI machine starts a kernel with torch in ~20 s
LOOP_TIMEOUT = 15
MEMORY_GB = 2        # a kernel that imports torch needs well under 1 GiB of data


def toy_teacher():
    """Three exercises: a value, a function, a written answer; checks are plain asserts."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        md("# Toy\n\nA tiny course notebook."),
        code("x = 3"),
        md("## Exercises\n\n**Exercise 1.** Store twice `x` in `y`."),
        code("y = None\n### BEGIN SOLUTION\ny = 2 * x\n### END SOLUTION"),
        code('assert y is not None, "double: no answer yet — set y"\n'
             'assert y == 2 * x, "double: multiply by two, do not add"\nprint("✓ double: correct")'),
        md("**Exercise 2.** Write `inc(a)`."),
        code("def inc(a):\n    ### BEGIN SOLUTION\n    return a + 1\n    ### END SOLUTION\n"
             'assert inc(1) == 2, "inc: add one"'),
        md("**Exercise 3.** Why? Answer below.\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION"),
        md("## Summary\n\nDone."),
    ]
    return nb


def rubric_teacher():
    nb = nbformat.v4.new_notebook()
    nb.cells = [md("# Report"), md("## Results\n\n### BEGIN SOLUTION\nIt works.\n### END SOLUTION",
                                  metadata={"tags": ["analysis"]}), code("print(1)")]
    return nb


def refusing_teacher():
    """An exercise whose check refuses the library's own function (utils' rel_error here)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        md("# Refusal"),
        code("import utils.course.exercises.checks as C\nfrom utils.course.exercises.checks import refusing"),
        md("## Exercises\n\n**Exercise 1.** Write `err(a, b)`, the absolute difference."),
        code("def err(a, b):\n    ### BEGIN SOLUTION\n    return abs(a - b)\n    ### END SOLUTION"),
        code('with refusing("Exercise 1", C.rel_error):\n    v = err(1.0, 3.0)\n'
             'assert v == 2.0, "err: the absolute difference"'),
    ]
    return nb


def _with(nb, **sources):
    nb = nbformat.from_dict(nb)
    for index, source in sources.items():
        nb.cells[int(index[1:])].source = source
    return nb


def _write(folder: Path, name: str, nb) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(nb, str):
        (folder / name).write_text(nb)
    else:
        nbformat.write(nb, folder / name)


# --- without a kernel ---------------------------------------------------------------------------

def test_course_exercises():
    t = toy_teacher()
    exercises = course_exercises(t)
    assert [(e.number, e.checked, e.written) for e in exercises] == [
        ("1", True, False), ("2", True, False), ("3", False, True)]
    assert exercises[0].code_cells == [t.cells[3].id, t.cells[4].id]
    assert exercises[1].code_cells == [t.cells[6].id]
    assert course_exercises(rubric_teacher()) == []


def test_assemble_locks_the_checks_and_keeps_added_cells():
    teacher = toy_teacher()
    sub = student_notebook(teacher)
    sub.cells[3].source = "y = 6"
    sub.cells[4].source = "print('✓ double: correct')"           # an edited check …
    sub.cells[6].source = "def inc(a):\n    return a + 1"         # … and one deleted from the end
    helper = code("def helper():\n    return 1")
    sub.cells.insert(4, helper)                                     # a cell the student added
    graded, keys, notes = assemble(teacher, sub)
    sources = [c.source for c in graded.cells]
    assert sources[3] == "y = 6" and sources[4] == helper.source and keys[4] == ""
    assert sources[5] == teacher.cells[4].source                    # the check is the teacher's
    assert sources[7].endswith('assert inc(1) == 2, "inc: add one"')  # appended again
    assert notes == {}
    del sub.cells[3]                                                # the answer cell deleted
    graded, keys, notes = assemble(teacher, sub)
    assert notes == {teacher.cells[3].id: "missing"}
    stub = graded.cells[keys.index(teacher.cells[3].id)].source   # the student edition's stub
    assert "y = None" in stub and "2 * x" not in stub


def test_assemble_notes_code_that_touches_the_checks():
    teacher = refusing_teacher()
    sub = _with(teacher, c3="import utils.course.exercises.checks as K\nK.refusing = None\n"
                            "def err(a, b):\n    return 2.0")
    _, _, notes = assemble(teacher, sub)
    assert list(notes.values()) == ["utils.course"]
    # the teacher's own lines in an exercise cell (an import of a checker) are not the student's
    teacher.cells[3].source = "from utils.course.exercises import check_answered\n" + teacher.cells[3].source
    sub = student_notebook(teacher)
    assert assemble(teacher, sub)[2] == {}


def test_reports(tmp_path):
    rows = [Row("ann", "01_toy", "1", True, "passed"),
            Row("ann", "01_toy", "2", False, "inc: add one <not html>"),
            Row("bob", "01_toy", "1", False, "not submitted"),
            Row("ann", "07_report", "rubric", None, RUBRIC)]
    write_csv(rows, tmp_path / "grades.csv")
    with (tmp_path / "grades.csv").open() as f:
        read = list(csv.DictReader(f))
    assert list(read[0]) == ["student", "notebook", "exercise", "passed", "message"]
    assert [r["passed"] for r in read] == ["True", "False", "False", ""]
    write_html(rows, tmp_path / "index.html")
    page = (tmp_path / "index.html").read_text()
    assert "inc: add one &lt;not html&gt;" in page and RUBRIC in page and "1/2" in page
    assert page.count("<tr><th class=\"student\">") == 2


def test_find_the_submitted_file(tmp_path):
    teacher = tmp_path / "02_gradient_saliency.ipynb"
    (tmp_path / "ann").mkdir()
    assert _find(tmp_path / "ann", teacher) == (None, "")
    (tmp_path / "ann" / "02_gradient_saliency (1).ipynb").write_text("{}")
    assert _find(tmp_path / "ann", teacher)[0].name == "02_gradient_saliency (1).ipynb"
    (tmp_path / "ann" / "02_copy.ipynb").write_text("{}")
    assert "keep one" in _find(tmp_path / "ann", teacher)[1]
    (tmp_path / "ann" / teacher.name).write_text("{}")
    assert _find(tmp_path / "ann", teacher)[0].name == teacher.name


def test_unreadable_and_rubric_notebooks_need_no_kernel(tmp_path):
    teacher = tmp_path / "01_toy.ipynb"
    nbformat.write(toy_teacher(), teacher)
    (tmp_path / "bad.ipynb").write_text('{"cells": [')
    rows = grade_submission("ann", tmp_path / "bad.ipynb", teacher)
    assert [(r.exercise, r.passed) for r in rows] == [("1", False), ("2", False), ("3", None)]
    assert all("does not open as a notebook" in r.message for r in rows)
    report = tmp_path / "07_report.ipynb"
    nbformat.write(rubric_teacher(), report)
    assert grade_submission("ann", report, report) == [Row("ann", "07_report", "rubric", None, RUBRIC)]
    assert grade_submission("ann", None, report)[0].message == "not submitted"


GUARD_SCRIPT = r"""
import os, shutil, socket, subprocess, sys
sys.path.insert(0, sys.argv[1])
from utils.course import offline, sandbox
sandbox.install_submission_guard(offline, writable=[sys.argv[2]])
results = {}
def attempt(name, fn):
    try:
        fn()
        results[name] = "allowed"
    except PermissionError as err:
        results[name] = "refused"
    except Exception as err:
        results[name] = type(err).__name__
inside, outside = os.path.join(sys.argv[2], "a.txt"), sys.argv[3]
attempt("write inside", lambda: open(inside, "w").write("x"))
attempt("read outside", lambda: open(outside).read())
attempt("write outside", lambda: open(outside, "a").write("x"))
attempt("os.open outside", lambda: os.open(outside, os.O_WRONLY))
attempt("remove outside", lambda: os.remove(outside))
attempt("rename outside", lambda: os.rename(outside, inside))
attempt("rmtree outside", lambda: shutil.rmtree(os.path.dirname(outside)))
attempt("subprocess", lambda: subprocess.run(["true"]))
attempt("os.system", lambda: os.system("true"))
attempt("network", lambda: socket.create_connection(("192.0.2.1", 80), timeout=1))
offline.remove_network_guard()          # the audit hook stays: a student who removes the guard
attempt("network, guard removed", lambda: socket.create_connection(("192.0.2.1", 80), timeout=1))
attempt("remove inside", lambda: os.remove(inside))
print(results)
"""


def test_the_guard_inside_the_kernel(tmp_path):
    (tmp_path / "box").mkdir()
    (tmp_path / "keep").mkdir()
    sentinel = tmp_path / "keep" / "course.txt"
    sentinel.write_text("course")
    out = subprocess.run([sys.executable, "-c", GUARD_SCRIPT, str(ROOT), str(tmp_path / "box"),
                          str(sentinel)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": ""})
    assert out.returncode == 0, out.stderr
    results = eval(out.stdout.strip().splitlines()[-1])
    assert results == {"write inside": "allowed", "read outside": "allowed",
                       "write outside": "refused", "os.open outside": "refused",
                       "remove outside": "refused", "rename outside": "refused",
                       "rmtree outside": "refused", "subprocess": "refused", "os.system": "refused",
                       "network": "NetworkAccessError", "network, guard removed": "refused",
                       "remove inside": "allowed"}
    assert sentinel.read_text() == "course"


# --- one grading run with kernels ----------------------------------------------------------------

HOSTILE = """import os, shutil
for path in ("../utils", os.path.abspath("../data"), COURSE + "/utils", COURSE + "/data"):
    try:
        shutil.rmtree(path)
    except PermissionError:
        pass
for path in (COURSE + "/sentinel.txt", "../../../../../sentinel.txt"):
    try:
        os.remove(path)
    except (PermissionError, FileNotFoundError):
        pass
try:
    os.system("rm -rf " + COURSE)
except PermissionError:
    pass
open("notes.txt", "w").write("a file of my own")   # allowed: the notebook's folder
open(COURSE + "/sentinel.txt", "w").write("gone")
y = 6"""


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("grading")
    course = base / "course"                       # the course the grader copies
    shutil.copytree(ROOT / "utils", course / "utils", ignore=shutil.ignore_patterns("__pycache__"))
    (course / "data").mkdir()
    (course / "data" / "manifest.json").write_text("{}")
    (course / "sentinel.txt").write_text("course")
    teachers = base / "notebooks"
    t01, t02, t07 = toy_teacher(), refusing_teacher(), rubric_teacher()
    for name, nb in (("01_toy.ipynb", t01), ("02_refusal.ipynb", t02), ("07_report.ipynb", t07)):
        _write(teachers, name, nb)
    subs = base / "submissions"
    _write(subs / "teacher", "01_toy.ipynb", t01)
    _write(subs / "teacher", "02_refusal.ipynb", t02)
    _write(subs / "teacher", "07_report.ipynb", t07)
    _write(subs / "student", "01_toy.ipynb", student_notebook(t01))
    _write(subs / "garbage", "01_toy.ipynb", "this is not a notebook")
    _write(base / "loop" / "loop", "01_toy.ipynb", _with(t01, c3="y = 6\nwhile True:\n    pass"))
    _write(subs / "hostile", "01_toy.ipynb",
           _with(t01, c3=f"COURSE = {str(course)!r}\n" + HOSTILE))
    _write(subs / "tamper", "01_toy.ipynb",   # megabytes of output, a wrong answer, an edited check
           _with(t01, c3="for i in range(20000):\n    print('x' * 100)\ny = 7",
                 c4="print('✓ double: correct')", c6="def inc(a):\n    return a + 1"))
    _write(subs / "library", "02_refusal.ipynb", _with(t02, c3="err = C.rel_error"))
    _write(subs / "hog", "01_toy.ipynb", _with(t01, c3="y = 6\nhoard = bytearray(3 * 2**30)"))
    out = base / "out"
    before = sorted(p.relative_to(course) for p in course.rglob("*"))
    with ThreadPoolExecutor(2) as pool:   # the endless loop under its own, short limit
        loop = pool.submit(grade, base / "loop", base / "out-loop", teacher_dir=teachers,
                           course=course, timeout=LOOP_TIMEOUT, progress=lambda _: None)
        rows = grade(subs, out, teacher_dir=teachers, course=course, timeout=TIMEOUT, jobs=3,
                     memory_gb=MEMORY_GB, progress=lambda _: None)
        rows += loop.result()
    after = sorted(p.relative_to(course) for p in course.rglob("*"))
    return {"rows": rows, "out": out, "course": course, "unchanged": before == after}


def _verdicts(graded, student, notebook="01_toy"):
    return [(r.exercise, r.passed, r.message) for r in graded["rows"]
            if r.student == student and r.notebook == notebook]


def test_the_teachers_edition_passes(graded):
    assert _verdicts(graded, "teacher") == [("1", True, "passed"), ("2", True, "passed"),
                                            ("3", None, WRITTEN)]
    assert _verdicts(graded, "teacher", "02_refusal") == [("1", True, "passed")]
    assert _verdicts(graded, "teacher", "07_report") == [("rubric", None, RUBRIC)]


def test_the_student_edition_fails_with_its_hints(graded):
    assert _verdicts(graded, "student") == [
        ("1", False, "double: no answer yet — set y"),
        ("2", False, "not written yet (Exercise 2: write this part.)"), ("3", None, WRITTEN)]
    assert _verdicts(graded, "student", "07_report") == [("rubric", False, "not submitted")]


def test_hostile_submissions(graded):
    garbage = _verdicts(graded, "garbage")
    assert [v[1] for v in garbage] == [False, False, None]
    assert all("does not open as a notebook" in v[2] for v in garbage)
    loop = _verdicts(graded, "loop")
    assert loop[0][1] is False and f"ran past its limit of {LOOP_TIMEOUT} s" in loop[0][2]
    assert loop[1][1] is False and loop[1][2].startswith("not run")
    hostile = _verdicts(graded, "hostile")
    assert hostile[0][1] is False and "PermissionError" in hostile[0][2]
    assert hostile[1][1] is True                    # the others go on
    assert graded["unchanged"] and (graded["course"] / "sentinel.txt").read_text() == "course"
    assert _verdicts(graded, "tamper")[:2] == [("1", False, "double: multiply by two, do not add"),
                                               ("2", True, "passed")]
    spam = nbformat.read(graded["out"] / "feedback" / "tamper" / "01_toy.ipynb", as_version=4)
    assert len(json.dumps([c.get("outputs") for c in spam.cells])) < 200_000   # output capped
    assert _verdicts(graded, "hog")[:2] == [
        ("1", False, f"ran out of memory (the limit is {MEMORY_GB} GiB)"), ("2", True, "passed")]
    library = _verdicts(graded, "library", "02_refusal")
    assert library[0][1] is False and "Exercise 1 asks you to write this yourself" in library[0][2]


def test_the_reports_are_written(graded):
    out = graded["out"]
    with (out / "grades.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len([r for r in graded["rows"] if r.student != "loop"])
    assert {r["student"] for r in rows} == {"teacher", "student", "garbage", "hostile", "tamper",
                                           "library", "hog"}
    page = (out / "index.html").read_text()
    assert "double: multiply by two, do not add" in page
    assert (out / "feedback" / "teacher" / "01_toy.ipynb").exists()
