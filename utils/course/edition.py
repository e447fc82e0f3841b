"""The student edition: the committed notebooks with their worked solutions taken out.

The notebooks in ``notebooks/`` are the teacher's edition: complete and tested. Solutions are
marked with nbgrader's conventions, and ``python -m utils.course.edition`` (``make student``) writes the
student edition to ``student/``:

* in a **code** cell, the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` become
  ``# YOUR CODE HERE``, plus, when the region is indented (the body of a function the student
  writes), ``raise NotImplementedError("Exercise N: …")``, which the self-check turns into a hint.
  A region at the top level of a cell only becomes the comment: the cell sets its answers to
  ``None`` before the region, and the self-check says what to set. (nbgrader always raises; here
  the student notebook runs top to bottom and every self-check speaks.)
* in a **markdown** cell (a written answer), the region becomes ``YOUR ANSWER HERE``;
* the outputs of solution cells, and of the code cells after them up to the next markdown cell
  (their self-checks), are cleared; so are the outputs of every cell tagged ``student-clear`` (a
  figure or table elsewhere that shows an exercise's answer). Every other cell keeps its outputs,
  so the notebook still reads;
* a markdown cell tagged ``analysis`` (the report's sections, which the student edition turns into
  a term-project template) gets ``YOUR ANALYSIS HERE`` instead of ``YOUR ANSWER HERE``;
* a cell tagged ``slides-only`` (the worked report's slide summaries) or ``teacher-only`` (its
  findings cell) keeps its place but not its text: a one-line note replaces it, and its outputs go.

``--verify`` (``make test-student``) executes the student edition and checks that every exercise
fails with its hint on the stub and that nothing else fails; then :mod:`utils.course.leaks` scans
it against the teacher's edition (``--teacher``, default ``notebooks/``) for answers given away in
its sources, kept outputs and the hints it printed. ``--scan`` runs only the scan (seconds, no
execution). Either fails (exit status 1) on a problem. Grading submissions is
:mod:`utils.course.grading` (``make grade``).

nbgrader itself (0.9.6) is not used: it needs JupyterLab 4, Notebook 7, SQLAlchemy and a course
directory with a gradebook database, requires its own cell metadata on solution cells, and clears
every output by default.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

__all__ = ["BEGIN", "END", "strip_solutions", "has_solution", "student_notebook", "write_student_edition",
           "exercise_groups", "verify_student_run", "execute_and_verify", "scan_edition"]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
CODE_STUB = "# YOUR CODE HERE"
TEXT_STUB = "YOUR ANSWER HERE"
ANALYSIS_STUB = "YOUR ANALYSIS HERE"
CLEAR_TAG = "student-clear"
ANALYSIS_TAG = "analysis"
HIDDEN_TAGS = ("slides-only", "teacher-only")
HIDDEN_MARKDOWN = "*(In the teacher's edition: a summary of the worked report, for the slides.)*"
HIDDEN_CODE = "# (In the teacher's edition: the worked report's own findings, computed here.)"
_EXERCISE = re.compile(r"\*\*Exercise\s+(\d+)")


def has_solution(cell) -> bool:
    """Whether a cell holds a solution region."""
    return BEGIN in cell.source


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def strip_solutions(source: str, *, markdown: bool = False, exercise: str = "this exercise",
                    text_stub: str = TEXT_STUB) -> str:
    """Replace every ``BEGIN``/``END SOLUTION`` region of ``source`` with its stub (``text_stub``
    in a markdown cell).

    Raises:
        ValueError: a region that is not closed, or an ``END`` without a ``BEGIN``.
    """
    out: list[str] = []
    inside = False
    for line in source.split("\n"):
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if inside:
                raise ValueError(f"Nested '{BEGIN}' in {exercise}; close the first region with '{END}'.")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            if markdown:
                out.append(indent + text_stub)
            else:
                out.append(indent + CODE_STUB)
                if indent:
                    out.append(f'{indent}raise NotImplementedError("{exercise}: write this part.")')
        elif stripped.startswith(END):
            if not inside:
                raise ValueError(f"'{END}' without '{BEGIN}' in {exercise}.")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"'{BEGIN}' without '{END}' in {exercise}; close the region.")
    return "\n".join(out)


def student_notebook(nb):
    """A copy of the notebook ``nb`` (nbformat) with solutions stubbed and the outputs of the
    exercises' cells (:func:`exercise_groups`) cleared."""
    nb = nbformat.from_dict(nb)
    cleared = {i for group in exercise_groups(nb) for i in group}
    exercise = "this exercise"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and (m := _EXERCISE.search(cell.source)):
            exercise = f"Exercise {m.group(1)}"
        if has_solution(cell):
            stub = ANALYSIS_STUB if ANALYSIS_TAG in _tags(cell) else TEXT_STUB
            cell.source = strip_solutions(cell.source, markdown=cell.cell_type == "markdown",
                                          exercise=exercise, text_stub=stub)
        if any(t in _tags(cell) for t in HIDDEN_TAGS):   # the worked report's summaries: not a template's
            cell.source = HIDDEN_MARKDOWN if cell.cell_type == "markdown" else HIDDEN_CODE
        if i in cleared or (cell.cell_type == "code" and (CLEAR_TAG in _tags(cell)
                                                          or any(t in _tags(cell) for t in HIDDEN_TAGS))):
            cell.outputs = []
            cell.execution_count = None
    return nb


def exercise_groups(nb) -> list[list[int]]:
    """Indices of the cells of each exercise: a code cell with a solution region (or, in the student
    edition, its stub) and the code cells after it up to the next markdown cell (its self-checks);
    the cells whose outputs the student edition clears."""
    groups: list[list[int]] = []
    current: list[int] | None = None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            current = None
        elif has_solution(cell) or any(ln.strip() == CODE_STUB for ln in cell.source.split("\n")):
            current = [i]
            groups.append(current)
        elif current is not None:
            current.append(i)
    return groups


def _error(cell) -> tuple[str, str] | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return out.get("ename", ""), out.get("evalue", "")
    return None


def verify_student_run(nb) -> list[str]:
    """Problems with an *executed* student notebook (executed with errors allowed), ``[]`` if none.

    Every exercise must fail with a hint (an ``AssertionError`` in one of its cells, raised by a
    self-check); no cell may raise anything else, and no cell outside the exercises may fail.
    """
    problems = []
    in_group = {i: g for g in exercise_groups(nb) for i in g}
    hinted = set()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or (err := _error(cell)) is None:
            continue
        ename, evalue = err
        if i in in_group and ename == "AssertionError" and evalue.strip():
            hinted.add(in_group[i][0])
        else:
            problems.append(f"cell {i}: {ename}: {evalue[:200]}")
    for g in exercise_groups(nb):
        if g[0] not in hinted:
            problems.append(f"cells {g}: the self-check passed or was silent on the stub")
    return problems


def _leak_problems(path: Path, student, teacher_dir: Path | None, executed=None) -> list[str]:
    from .leaks import scan_notebook

    if teacher_dir is None:
        return []
    teacher_path = Path(teacher_dir) / Path(path).name
    if not teacher_path.exists():
        return [f"no teacher's edition {teacher_path} to scan against"]
    teacher = nbformat.read(teacher_path, as_version=4)
    try:
        leaks = scan_notebook(teacher, student, executed=executed, name=Path(path).name)
    except ValueError as err:
        return [str(err)]
    return [f"leak: {str(leak).split(' ', 1)[1]}" for leak in leaks]


def scan_edition(paths: list[Path], teacher_dir: Path = Path("notebooks")) -> dict[str, list[str]]:
    """Scan each student notebook (unexecuted) against its teacher's edition in ``teacher_dir``
    (same file name) with :func:`utils.course.leaks.scan_notebook`; the leaks per notebook."""
    return {str(p): _leak_problems(p, nbformat.read(p, as_version=4), teacher_dir) for p in paths}


def execute_and_verify(paths: list[Path], *, timeout: int = 600,
                       teacher_dir: Path | None = None) -> dict[str, list[str]]:
    """Execute each student notebook top to bottom (errors allowed, in its own folder) and return
    :func:`verify_student_run`'s problems per notebook; with ``teacher_dir``, also the leaks that
    :func:`utils.course.leaks.scan_notebook` finds in the notebook and in the hints it printed."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    results = {}
    for path in paths:
        student = nbformat.read(path, as_version=4)
        nb = nbformat.from_dict(student)
        try:
            NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                           resources={"metadata": {"path": str(Path(path).parent)}}).execute()
        except (CellTimeoutError, DeadKernelError) as err:   # report it, go on with the others
            results[str(path)] = [f"the run stopped: {type(err).__name__}: {str(err).splitlines()[0]}"]
            results[str(path)] += _leak_problems(path, student, teacher_dir)
            continue
        results[str(path)] = verify_student_run(nb) + _leak_problems(path, student, teacher_dir, nb)
    return results


def write_student_edition(sources: list[Path], out: Path) -> list[Path]:
    """Write the student edition of each notebook in ``sources`` into ``out``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for src in sources:
        nb = nbformat.read(src, as_version=4)
        target = out / src.name
        nbformat.write(student_notebook(nb), target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.course.edition", description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="source notebooks (default: notebooks/[0-9]*.ipynb); with --verify, the "
                             "student notebooks to execute (default: every notebook in --out)")
    parser.add_argument("--out", type=Path, default=Path("student"), help="output folder (student/)")
    parser.add_argument("--verify", action="store_true",
                        help="execute the given student notebooks and check that every exercise "
                             "fails with its hint and nothing else fails, then scan them for leaks "
                             "(make test-student)")
    parser.add_argument("--scan", action="store_true",
                        help="only scan the given student notebooks for answers given away (no execution)")
    parser.add_argument("--teacher", type=Path, default=Path("notebooks"),
                        help="the teacher's edition to scan against (notebooks/)")
    args = parser.parse_args(argv)
    if args.verify or args.scan:
        failed = False
        paths = args.notebooks or sorted(args.out.glob("[0-9]*.ipynb"))
        if not paths:
            parser.error(f"no student notebooks in {args.out}; run `make student` first.")
        results = (scan_edition(paths, args.teacher) if args.scan
                   else execute_and_verify(paths, teacher_dir=args.teacher))
        for path, problems in results.items():
            print(f"{path}: {'ok' if not problems else 'FAILED'}")
            for p in problems:
                print("   ", p)
            failed |= bool(problems)
        return 1 if failed else 0
    sources = args.notebooks or sorted(Path("notebooks").glob("[0-9]*.ipynb"))
    if not sources:
        parser.error("no notebooks found; run from the repository root or name them.")
    for path in write_student_edition(sources, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
