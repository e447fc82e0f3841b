"""The grader: ``make grade SUBMISSIONS=dir OUT=dir`` (``python -m utils.course.grading``).

nbgrader's ``autograde`` for this course. Submissions are laid out as
``SUBMISSIONS/<student>/<NN_topic>.ipynb`` (a file whose name starts with the notebook's number,
such as ``02_gradient_saliency (1).ipynb``, is taken when it is the only one). Each submission is
graded against the teacher's edition (``notebooks/``):

1. **Assemble.** The submission's exercise cells (those with a ``### BEGIN SOLUTION`` region in the
   teacher's edition, matched by cell id) and the cells the student added are kept; every other
   cell — the self-checks above all — is taken from the teacher's edition, so an edited or deleted
   check is restored. A check at the end of an exercise cell (below its region) that the student
   removed or changed is appended again.
2. **Execute** it top to bottom (errors allowed, as ``python -m utils.course.edition --verify``
   does) with nbclient, in a fresh kernel, in its own process and a temporary folder that holds a
   copy of the course's ``utils/`` and ``data/`` (``import utils`` and every relative path such as
   ``../data`` reach the copy, never the course). The kernel runs with the network blocked (the
   course's offline guard, and an audit hook on ``socket.connect``), without starting processes
   (``subprocess``, ``os.system``, ``!cmd``), without writing, deleting or renaming files outside the
   submission's own folder, under a wall-clock limit per notebook (``--timeout``, 300 s, kernel
   start included), a memory limit (``--memory-gb``, 6: ``RLIMIT_DATA``, so an allocation beyond it
   raises ``MemoryError``) and a file-size limit; printed output is capped at 100,000 characters per
   cell. When the limit is reached the kernel and everything it started are killed.
3. **Grade.** An exercise passes when every one of its code cells (the answer and its self-checks)
   ran without an error; otherwise its message is the first error: the self-check's hint (an
   ``AssertionError``), an error of the student's code, "timed out", "not run". A notebook that
   does not open as a notebook fails every exercise with the reason. A written answer (a markdown
   region) is graded by hand; so is a notebook without self-checks (the report, 07: "graded by hand
   (rubric)"). An exercise whose student-written code reaches into the course's checking machinery
   (``utils.course``, ``__code__``, ``sys.modules``, rebinding ``check_…``) is marked failed with
   "graded by hand", for the teacher to read.

It writes ``OUT/grades.csv`` (``student,notebook,exercise,passed,message``; ``passed`` is ``True``,
``False`` or empty for "graded by hand"), ``OUT/index.html`` (students × exercises, with the hint
of each failing check) and ``OUT/feedback/<student>/<notebook>.ipynb`` (the executed notebook, to
send back).

**Why not nbgrader.** nbgrader 0.9.6 installs from PyPI, with SQLAlchemy, Alembic, Notebook 7 and
four more packages; but its ``generate_assignment`` refuses the course's notebooks as they are
("Solution region detected in a non-solution cell": it wants its own metadata on every solution,
grade and locked cell), it needs a course directory, a gradebook database and ``alembic`` on the
``PATH``, it clears every output of the student edition (the course keeps its figures), and its
``autograde`` runs the submissions in the course directory itself, without a memory limit, network
block or guard on the files around it. The rules it enforces — locked check cells, a fresh kernel
and a timeout per notebook — are the ones this module implements on the course's own conventions.

**Limits.** The guards stop what a notebook does through Python (files, processes, sockets),
including on purpose; they are not a sandbox against native code (``ctypes``) or against a
student who deliberately monkeypatches the checkers in memory with an obfuscated name. For
untrusted submissions, run ``make grade`` as a user that cannot write to the course, or in a
container.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .edition import BEGIN, END, exercise_groups, has_solution, strip_solutions
from .leaks import exercise_spans

__all__ = ["Exercise", "Row", "course_exercises", "assemble", "grade_submission", "grade",
           "write_csv", "write_html", "main"]

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TIMEOUT = 300
DEFAULT_MEMORY_GB = 6.0
MAX_OUTPUT_CHARS = 100_000
MAX_FILE_BYTES = 1 << 30
MESSAGE_CHARS = 600
RUBRIC = "graded by hand (rubric)"
WRITTEN = "written answer: graded by hand"
_CHECK_CALL = re.compile(r"\bcheck_\w+\s*\(|\bassert\b")
_TAMPER = re.compile(r"utils\.course|\bExerciseRefusal\b|\brefusing\b|__code__|sys\.modules"
                     r"|\bcheck_\w+\s*=(?!=)|\bexercises\.\w+\s*=(?!=)")
_ENV_DROP = ("PYTHONPATH", "IPYTHONDIR", "SALIENCY_COURSE_FUZZ", "SALIENCY_COURSE_FUZZ_SCALE",
             "JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "MPLCONFIGDIR")


# --- the exercises of a notebook ----------------------------------------------------------------

@dataclass
class Exercise:
    """One exercise of the teacher's edition: its number, the keys (cell ids) of its code cells —
    answers and self-checks, in order — and whether it has a written (markdown) answer."""

    number: str
    code_cells: list[str] = field(default_factory=list)
    written: bool = False

    @property
    def checked(self) -> bool:
        return bool(self.code_cells)


@dataclass(frozen=True)
class Row:
    """One line of ``grades.csv``; ``passed`` is ``None`` for "graded by hand"."""

    student: str
    notebook: str
    exercise: str
    passed: bool | None
    message: str


def _key(cell, index: int) -> str:
    return cell.get("id") or f"#{index}"


def course_exercises(teacher) -> list[Exercise]:
    """The exercises of a teacher's notebook, in order. An exercise is a markdown ``**Exercise N``
    with the solution cells after it (:func:`utils.course.leaks.exercise_spans`); its code cells are
    :func:`utils.course.edition.exercise_groups`' groups (a solution cell and its self-checks)."""
    spans = exercise_spans(teacher)
    keys = [_key(c, i) for i, c in enumerate(teacher.cells)]
    by_number: dict[str, Exercise] = {}
    order: list[Exercise] = []

    def exercise_of(index: int) -> Exercise:
        span = next((s for s in reversed(spans) if index in s.cells), None)
        number = span.number if span else f"cell {index}"
        if number not in by_number:
            by_number[number] = Exercise(number)
            order.append(by_number[number])
        return by_number[number]

    for span in spans:
        exercise_of(span.prompt)
    for group in exercise_groups(teacher):
        exercise_of(group[0]).code_cells.extend(keys[i] for i in group)
    for span in spans:   # an exercise without a region (a leak the scanner reports): its code cells
        ex = by_number[span.number]
        if not ex.code_cells and not span.solution_cells:
            ex.code_cells.extend(keys[i] for i in span.cells if teacher.cells[i].cell_type == "code")
    for span in spans:
        if any(teacher.cells[i].cell_type == "markdown" and BEGIN in teacher.cells[i].source
               for i in span.cells):
            by_number[span.number].written = True
    return [e for e in order if e.checked or e.written]


def _suffix(source: str) -> str:
    """The lines of a cell after its last region."""
    lines = source.split("\n")
    ends = [i for i, ln in enumerate(lines) if ln.strip().startswith(END)]
    return "\n".join(lines[ends[-1] + 1:]) if ends else ""


def _ends_with(source: str, suffix: str) -> bool:
    want = [ln.strip() for ln in suffix.split("\n") if ln.strip()]
    have = [ln.strip() for ln in source.split("\n") if ln.strip()]
    return not want or have[-len(want):] == want


def assemble(teacher, submission) -> tuple[nbformat.NotebookNode, list[str], dict[str, str]]:
    """The notebook to execute for ``submission`` (both nbformat notebooks): the teacher's cells,
    with the submission's answer cells (matched by id) and the cells the student added in between.

    Returns ``(notebook, keys, notes)``: ``keys[i]`` is the teacher's cell key of the graded cell
    ``i`` (``""`` for a cell the student added), ``notes`` maps a teacher key to a note on it
    (an answer cell missing from the submission; student-written code that touches the checks).
    """
    t_keys = [_key(c, i) for i, c in enumerate(teacher.cells)]
    known = set(t_keys)
    s_by_key, extras = {}, defaultdict(list)
    last = None
    for i, cell in enumerate(submission.cells):
        k = _key(cell, i)
        if k in known and k not in s_by_key:
            s_by_key[k] = cell
            last = k
        else:
            extras[last].append(cell)
    cells, keys, notes = [], [], {}

    def add_extras(after):
        for cell in extras.get(after, []):
            if cell.get("cell_type") not in ("code", "markdown", "raw"):
                continue
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else str(source)
            new = (nbformat.v4.new_code_cell(source) if cell.cell_type == "code"
                   else nbformat.v4.new_markdown_cell(source))
            cells.append(new)
            keys.append("")
            if cell.cell_type == "code" and (m := _TAMPER.search(source)):
                notes.setdefault(f"+{len(cells) - 1}", m.group(0))

    add_extras(None)
    for t, k in zip(teacher.cells, t_keys, strict=True):
        if has_solution(t):
            s = s_by_key.get(k)
            if s is None or s.get("cell_type") != t.cell_type:
                source = strip_solutions(t.source, markdown=t.cell_type == "markdown")
                notes[k] = "missing"
            else:
                source = "".join(s.source) if isinstance(s.source, list) else str(s.source)
                if t.cell_type == "code":
                    suffix = _suffix(t.source)
                    if _CHECK_CALL.search(suffix) and not _ends_with(source, suffix):
                        source = source.rstrip("\n") + "\n" + suffix.strip("\n")
                    given = {ln.strip() for ln in t.source.split("\n")}   # the teacher's lines
                    written = "\n".join(ln for ln in source.split("\n") if ln.strip() not in given)
                    if m := _TAMPER.search(written):
                        notes[k] = m.group(0)
        else:
            source = t.source
        new = (nbformat.v4.new_code_cell(source) if t.cell_type == "code"
               else nbformat.v4.new_markdown_cell(source) if t.cell_type == "markdown"
               else nbformat.v4.new_raw_cell(source))
        new.metadata = nbformat.from_dict(dict(t.get("metadata", {})))
        cells.append(new)
        keys.append(k)
        add_extras(k)
    nb = nbformat.v4.new_notebook(cells=cells, metadata=nbformat.from_dict(dict(teacher.metadata)))
    return nb, keys, notes


# --- the guard inside the kernel ----------------------------------------------------------------

_STARTUP = """\
# Written by utils.course.grading for one graded submission: the guards, the thread count, the pid.
# The guards are loaded from their files, so that the kernel imports nothing heavy (utils imports
# torch) before the notebook asks for it.
import importlib.util as _util
import os as _os


def _load(name):
    path = _os.path.join(_os.environ["PYTHONPATH"], "utils", "course", name + ".py")
    spec = _util.spec_from_file_location("_grading_" + name, path)
    module = _util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


with open(_os.environ["SALIENCY_GRADING_PIDFILE"], "w") as _f:
    _f.write(str(_os.getpid()))
if _os.environ.get("SALIENCY_COURSE_THREADS"):
    import torch as _torch
    _torch.set_num_threads(int(_os.environ["SALIENCY_COURSE_THREADS"]))
    del _torch
_load("sandbox").install_submission_guard(_load("offline"))
del _util, _os, _load, _f
"""


# --- running one submission ----------------------------------------------------------------------

def _kill_tree(pgids: list[int], marker: str) -> None:
    for pgid in pgids:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass
    proc = Path("/proc")
    if not proc.is_dir():
        return
    needle = f"SALIENCY_GRADING_RUN={marker}".encode()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def _copy_course(course: Path, root: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(course / "utils", root / "utils", ignore=ignore)
    if (course / "data").is_dir():
        shutil.copytree(course / "data", root / "data", ignore=ignore)
    for sub in ("notebooks", "tmp", "home", "mpl", "runtime", "jupyter",
                "ipython/profile_default/startup"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "ipython/profile_default/startup/00_grading_guard.py").write_text(_STARTUP)
    (root / "ipython/profile_default/ipython_config.py").write_text(
        "c = get_config()  # noqa\nc.HistoryManager.enabled = False\n")
    try:
        import matplotlib

        for f in Path(matplotlib.get_cachedir()).glob("fontlist-*.json"):
            shutil.copy(f, root / "mpl" / f.name)
    except Exception:
        pass


def _run(nb, name: str, course: Path, timeout: int, memory_gb: float, threads: int | None,
         feedback: Path | None) -> tuple[dict[int, list | None], set[int], str, float]:
    """Execute the assembled notebook ``nb`` in a fresh process and temporary course copy; return
    ``(errors by cell, started cells, end reason, seconds)``."""
    marker = uuid.uuid4().hex
    with tempfile.TemporaryDirectory(prefix="saliency-grade-") as tmp:
        root = Path(tmp).resolve() / "course"
        _copy_course(course, root)
        notebook = root / "notebooks" / name
        nbformat.write(nb, notebook)
        events, executed, pidfile = Path(tmp) / "events.jsonl", Path(tmp) / "executed.ipynb", \
            Path(tmp) / "kernel.pid"
        writable = [root / d for d in ("notebooks", "tmp", "home", "mpl", "runtime", "jupyter", "ipython")]
        env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
        env.update(PYTHONPATH=str(root), IPYTHONDIR=str(root / "ipython"), HOME=str(root / "home"),
                   TMPDIR=str(root / "tmp"), MPLCONFIGDIR=str(root / "mpl"),
                   JUPYTER_RUNTIME_DIR=str(root / "runtime"), JUPYTER_CONFIG_DIR=str(root / "jupyter"),
                   SALIENCY_GRADING_RUN=marker, SALIENCY_GRADING_PIDFILE=str(pidfile),
                   SALIENCY_GRADING_WRITABLE=os.pathsep.join(map(str, writable)),
                   PYTHONDONTWRITEBYTECODE="1")
        if threads:
            env["SALIENCY_COURSE_THREADS"] = str(threads)
            env["OMP_NUM_THREADS"] = str(threads)
        for d in ("utils", "data"):   # read-only copies: the checks cannot be rewritten on disk
            for path in (root / d).rglob("*"):
                if path.is_file():
                    path.chmod(0o444)
        cmd = [sys.executable, str(root / "utils" / "course" / "grading_worker.py"), str(notebook),
               str(events), str(executed), str(timeout), str(MAX_OUTPUT_CHARS),
               str(int(memory_gb * (1 << 30))), str(MAX_FILE_BYTES)]
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=root / "notebooks", env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        reason = ""
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            reason = "timeout"
        seconds = time.monotonic() - start
        kernel = []
        try:
            kernel = [int(pidfile.read_text().strip())]
        except (OSError, ValueError):
            pass
        _kill_tree([proc.pid, *kernel], marker)
        proc.wait()
        errors: dict[int, list | None] = {}
        started: set[int] = set()
        if events.exists():
            for line in events.read_text(errors="replace").splitlines():
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("event") == "start":
                    started.add(e["cell"])
                elif e.get("event") == "done":
                    errors[e["cell"]] = e.get("error")
                elif e.get("event") == "end" and not reason:
                    reason = e.get("reason", "")
                    if e.get("detail"):
                        reason += ": " + e["detail"]
        if not reason:
            reason = f"crash: the grading process ended with status {proc.returncode}"
        if feedback is not None and executed.exists():
            feedback.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(executed, feedback)
        for path in (root / "utils").rglob("*"):   # let TemporaryDirectory remove the copy
            if path.is_file():
                path.chmod(0o644)
        for path in (root / "data").rglob("*"):
            if path.is_file():
                path.chmod(0o644)
    return errors, started, reason, seconds


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS - 1] + "…"


def _verdicts(student: str, notebook: str, exercises: list[Exercise], keys: list[str],
              notes: dict[str, str], errors: dict[int, list | None], started: set[int], reason: str,
              timeout: int, memory_gb: float, graded) -> list[Row]:
    index = {k: i for i, k in enumerate(keys) if k}
    rows = []
    tampered_extras = sorted(int(k[1:]) for k in notes if k.startswith("+"))
    for ex in exercises:
        if not ex.checked:
            rows.append(Row(student, notebook, ex.number, None, WRITTEN))
            continue
        cells = [index[k] for k in ex.code_cells if k in index]
        touched = [notes[k] for k in ex.code_cells if notes.get(k) not in (None, "missing")]
        touched += [notes[f"+{i}"] for i in tampered_extras if cells and i < cells[-1]]
        if touched:
            rows.append(Row(student, notebook, ex.number, False,
                            f"graded by hand: the code you wrote touches the course's self-checks "
                            f"(`{touched[0]}`); your teacher will read it."))
            continue
        message = ""
        for i in cells:
            if not graded.cells[i].source.strip():
                continue
            if i in errors:
                err = errors[i]
                if err is None:
                    continue
                ename, evalue = err
                if ename in ("AssertionError", "ExerciseRefusal"):
                    message = evalue or "a self-check failed without a message"
                elif ename == "NotImplementedError":
                    message = f"not written yet ({evalue})" if evalue else "not written yet"
                elif ename == "MemoryError":
                    message = f"ran out of memory (the limit is {memory_gb:g} GiB)"
                else:
                    message = f"{ename}: {evalue}"
            elif reason.startswith("timeout"):
                message = (f"timed out: the notebook ran past its limit of {timeout} s here"
                           if i in started else
                           f"not run: the notebook ran past its limit of {timeout} s before this exercise")
            elif reason.startswith("dead"):
                message = "not run: the kernel died (too much memory, or the code ended the process)"
            else:
                message = f"not run ({reason})"
            break
        if not message and any(notes.get(k) == "missing" for k in ex.code_cells):
            message = "the exercise cell is missing from the submission (was it deleted?)"
        note = " (its written part is graded by hand)" if ex.written else ""
        rows.append(Row(student, notebook, ex.number, not message,
                        _short(message) if message else ("passed" + note)))
    return rows


def grade_submission(student: str, path: Path | None, teacher_path: Path, *, course: Path = ROOT,
                     timeout: int = DEFAULT_TIMEOUT, memory_gb: float = DEFAULT_MEMORY_GB,
                     threads: int | None = None, feedback: Path | None = None) -> list[Row]:
    """Grade one student's notebook ``path`` (``None``: not submitted) against the teacher's
    edition ``teacher_path``; the rows of ``grades.csv``."""
    teacher = nbformat.read(teacher_path, as_version=4)
    name = teacher_path.stem
    exercises = course_exercises(teacher)
    if not any(e.checked for e in exercises):
        message = RUBRIC if path is not None else "not submitted"
        return [Row(student, name, "rubric", None if path is not None else False, message)]
    if path is None:
        return [Row(student, name, e.number, False, "not submitted") for e in exercises]
    try:
        submission = nbformat.read(path, as_version=4)
        if not isinstance(submission.get("cells"), list):
            raise ValueError("it has no cells")
    except Exception as err:
        reason = _short(f"the file does not open as a notebook ({type(err).__name__}: {err})")
        return [Row(student, name, e.number, False if e.checked else None, reason) for e in exercises]
    try:
        graded, keys, notes = assemble(teacher, submission)
    except Exception as err:
        reason = _short(f"the notebook's cells could not be read ({type(err).__name__}: {err})")
        return [Row(student, name, e.number, False if e.checked else None, reason) for e in exercises]
    errors, started, reason, _ = _run(graded, teacher_path.name, course, timeout, memory_gb,
                                      threads, feedback)
    return _verdicts(student, name, exercises, keys, notes, errors, started, reason, timeout,
                     memory_gb, graded)


def _find(folder: Path, teacher_path: Path) -> tuple[Path | None, str]:
    exact = folder / teacher_path.name
    if exact.is_file():
        return exact, ""
    number = teacher_path.name[:2]
    candidates = sorted(p for p in folder.glob(f"{number}*.ipynb") if p.is_file())
    if len(candidates) == 1:
        return candidates[0], ""
    if candidates:
        return None, f"{len(candidates)} files start with {number}: keep one, named {teacher_path.name}"
    return None, ""


def grade(submissions: Path, out: Path, *, teacher_dir: Path = ROOT / "notebooks", course: Path = ROOT,
          timeout: int = DEFAULT_TIMEOUT, memory_gb: float = DEFAULT_MEMORY_GB, jobs: int = 1,
          notebooks: Sequence[str] | None = None, progress=print) -> list[Row]:
    """Grade every ``submissions/<student>/<NN_topic>.ipynb``; write ``out/grades.csv``,
    ``out/index.html`` and ``out/feedback/``; return the rows. Notebooks that no student handed in
    are left out (``notebooks``: grade only these numbers or names, e.g. ``["02", "03"]``)."""
    submissions, out = Path(submissions), Path(out)
    if not submissions.is_dir():
        raise FileNotFoundError(f"No submissions folder {submissions}: lay them out as "
                                "SUBMISSIONS/<student>/<NN_topic>.ipynb.")
    teachers = sorted(Path(teacher_dir).glob("[0-9][0-9]_*.ipynb"))
    if not teachers:
        raise FileNotFoundError(f"No teacher's notebooks in {teacher_dir}.")
    if notebooks:
        teachers = [t for t in teachers if t.name[:2] in notebooks or t.stem in notebooks]
    students = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = {(s.name, t.name): _find(s, t) for s in students for t in teachers}
    handed_in = [t for t in teachers if any(found[(s.name, t.name)][0] for s in students)]
    out.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    tasks = [(s.name, t) for s in students for t in handed_in]

    def one(task):
        student, teacher = task
        path, problem = found[(student, teacher.name)]
        started = time.monotonic()
        if problem:
            exercises = course_exercises(nbformat.read(teacher, as_version=4))
            rows = [Row(student, teacher.stem, e.number, False, problem) for e in exercises]
        else:
            rows = grade_submission(student, path, teacher, course=course, timeout=timeout,
                                    memory_gb=memory_gb, threads=threads,
                                    feedback=out / "feedback" / student / teacher.name)
        passed = sum(r.passed is True for r in rows)
        checked = sum(r.passed is not None for r in rows)
        progress(f"{student}/{teacher.stem}: {passed}/{checked} passed "
                 f"({time.monotonic() - started:.0f} s)")
        return rows

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        rows = [r for rs in pool.map(one, tasks) for r in rs]
    write_csv(rows, out / "grades.csv")
    write_html(rows, out / "index.html")
    return rows


# --- the reports ---------------------------------------------------------------------------------

def write_csv(rows: Sequence[Row], path: Path) -> None:
    """``student,notebook,exercise,passed,message``; ``passed`` empty for "graded by hand"."""
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "notebook", "exercise", "passed", "message"])
        for r in rows:
            w.writerow([r.student, r.notebook, r.exercise, "" if r.passed is None else r.passed,
                        r.message])


def write_html(rows: Sequence[Row], path: Path) -> None:
    """One self-contained page: students × exercises, with the hint of each failing check."""
    columns = list(dict.fromkeys((r.notebook, r.exercise) for r in rows))
    students = list(dict.fromkeys(r.student for r in rows))
    cell = {(r.student, r.notebook, r.exercise): r for r in rows}
    notebooks = list(dict.fromkeys(n for n, _ in columns))
    esc = html.escape
    head1 = "".join(f'<th colspan="{sum(1 for n, _ in columns if n == nb)}">{esc(nb)}</th>'
                    for nb in notebooks)
    head2 = "".join(f"<th>{'ex. ' + esc(e) if e != 'rubric' else 'rubric'}</th>" for _, e in columns)
    body = []
    for s in students:
        mine = [r for r in rows if r.student == s]
        score = f"{sum(r.passed is True for r in mine)}/{sum(r.passed is not None for r in mine)}"
        tds = []
        for nb, e in columns:
            r = cell.get((s, nb, e))
            if r is None:
                tds.append('<td class="none">—</td>')
            elif r.passed is True:
                tds.append(f'<td class="pass" title="{esc(r.message)}">✓</td>')
            elif r.passed is None:
                tds.append(f'<td class="hand">{esc(r.message)}</td>')
            else:
                tds.append(f'<td class="fail">✗<div class="hint">{esc(r.message)}</div></td>')
        body.append(f"<tr><th class=\"student\">{esc(s)}</th>{''.join(tds)}<td class=\"score\">{score}</td></tr>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Grades</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 4px 6px; vertical-align: top; font-size: 0.9em; }}
td.pass {{ background: #e6f4e6; text-align: center; }}
td.fail {{ background: #fbe9e9; max-width: 22em; }}
td.hand {{ background: #f2f2f2; color: #555; max-width: 14em; }}
td.score {{ font-weight: bold; text-align: center; }}
.hint {{ font-size: 0.85em; color: #7a1f1f; }}
</style></head><body>
<h1>Grades</h1>
<p>{len(students)} students. ✓ passed its self-checks; ✗ failed, with the hint its check gave;
grey: graded by hand. Score: exercises passed / exercises checked. Details: <code>grades.csv</code>;
the executed notebooks: <code>feedback/</code>.</p>
<table>
<tr><th rowspan="2">student</th>{head1}<th rowspan="2">score</th></tr>
<tr>{head2}</tr>
{chr(10).join(body)}
</table></body></html>
"""
    Path(path).write_text(page, encoding="utf-8")


# --- command line --------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m utils.course.grading",
                                     description="Grade SUBMISSIONS/<student>/<NN_topic>.ipynb against "
                                                 "the teacher's edition (make grade).")
    parser.add_argument("submissions", type=Path, help="folder of one folder per student")
    parser.add_argument("out", type=Path, help="where grades.csv, index.html and feedback/ go")
    parser.add_argument("--teacher", type=Path, default=ROOT / "notebooks",
                        help="the teacher's edition (notebooks/)")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT,
                        help=f"seconds per notebook, kernel start included ({DEFAULT_TIMEOUT})")
    parser.add_argument("--memory-gb", type=float, default=DEFAULT_MEMORY_GB,
                        help=f"memory limit per notebook in GiB ({DEFAULT_MEMORY_GB:g})")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks graded at once (1)")
    parser.add_argument("--notebooks", nargs="*", help="grade only these (numbers or names)")
    args = parser.parse_args(argv)
    rows = grade(args.submissions, args.out, teacher_dir=args.teacher, timeout=args.timeout,
                 memory_gb=args.memory_gb, jobs=args.jobs, notebooks=args.notebooks)
    checked = [r for r in rows if r.passed is not None]
    print(f"{sum(r.passed is True for r in checked)}/{len(checked)} checked exercises passed; "
          f"{len(rows) - len(checked)} graded by hand. Wrote {args.out / 'grades.csv'} and "
          f"{args.out / 'index.html'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
