"""The leak scanner: does the student edition give an exercise's answer away?

``make test-student`` (``python -m utils.course.edition --verify``) and ``python -m
utils.course.edition --scan`` compare each student notebook with its teacher's edition and report
every place where a student can read an answer instead of working it out:

* **structure** — a markdown ``**Exercise N`` with no ``### BEGIN SOLUTION`` region after it (before
  the next exercise or the next ``#``/``##`` heading): its worked answer stays in the student
  edition. A course notebook without any region is reported too (its student edition is the
  teacher's).
* **solution lines** — a non-trivial line of a teacher's region (12 characters or more without
  spaces), or a run of 8 code tokens of one, found anywhere in the student edition: a cell's source,
  a kept output, or a hint printed when the student edition runs on its stubs. Lines that the
  teacher's edition also shows outside every exercise (a technique taught in a section) do not
  count.
* **answer literals** — a constant assigned (or returned) in a code region (``reason = "c"``,
  ``changes_much = False``, ``start = 7``, ``answer_a, answer_b = "2", "2"``) that appears as a
  constant in the exercise's check code, in one of its hints, in a kept output, or in the
  exercise's own markdown. Short strings and booleans are options the prompt lists on purpose, so
  the prompt is not searched for them; small integers (−2 … 2) count only inside comparisons and
  never in text, and a kept output (a table full of counts) is searched only for strings, floats
  and integers of two digits or more. Elsewhere in the notebook's prose, a number counts when the same cell also shows
  another number of the solution's derivation (``start = 7   # (7 + 1)² = 64 …`` and a section
  that says "a 7×7 grid … 64 corner windows") that the prompt does not give.
* **check code** that states what the reference satisfies: ``check_choice(…, "b")`` with the correct
  letter written in the cell (or its ``hints`` dict, whose keys name the wrong letters), a bare
  ``assert`` (``assert 0.3 < r < 0.8``), a comparison of a value with a literal (``tabby == 281``),
  and a ``print`` of a fixed conclusion ("the mean IoU moves by less than 0.1"). Move such code and
  values into the checker in ``utils/course/exercises/``.

**Escape hatch.** A finding that is not a leak is waived by the cell's metadata key ``leak_ok``:
``true`` waives everything found in that cell, a list of strings waives the findings whose value is
in the list (the literal as it prints, e.g. ``"7"``, ``"'c'"``, or the solution line). On a
*solution* cell, the list (or ``true``) waives those of its literals and lines everywhere. In
JupyterLab: the property inspector's "Cell metadata", e.g. ``{"leak_ok": ["7"]}``. Use it
sparingly, and say why in the exercise's text or a comment.

What it cannot see: an answer computed rather than written (a rank, an IoU) that a figure or a
table elsewhere shows, and a hint that states a formula in words. Tag such outputs
``student-clear`` and word such hints as the course's rules say.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = ["Leak", "ExerciseSpan", "exercise_spans", "scan_notebook", "region_texts", "answer_literals"]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
WAIVE_KEY = "leak_ok"
_PROMPT = re.compile(r"\*\*Exercise\s+(\d+)")
_HEADING = re.compile(r"^\s*#{1,2}\s")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_NUMBER = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)(?![\d]|\.\d)")
MIN_LINE_CHARS = 12
NGRAM = 10
_CHECKER_PREFIX = "check_"


@dataclass(frozen=True)
class Leak:
    """One answer given away: where (cell index in the notebook, ``where`` ∈ {``source``,
    ``output``, ``hint``, ``structure``}), what kind, the value, and the exercise it belongs to."""

    notebook: str
    cell: int
    where: str
    kind: str
    value: str
    exercise: str
    detail: str = ""

    def __str__(self) -> str:
        value = self.value if len(self.value) <= 90 else self.value[:87] + "…"
        return (f"{self.notebook} cell {self.cell} ({self.exercise}, {self.where}): {self.kind}: "
                f"{value}{' — ' + self.detail if self.detail else ''}")


@dataclass
class ExerciseSpan:
    """The cells of one exercise: its prompt (markdown ``**Exercise N``) and the cells after it up
    to the next prompt or the next ``#``/``##`` heading (``stop``, exclusive)."""

    number: str
    prompt: int
    stop: int
    solution_cells: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"Exercise {self.number}"

    @property
    def cells(self) -> range:
        return range(self.prompt, self.stop)


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _waiver(cell) -> bool | set[str]:
    value = cell.get("metadata", {}).get(WAIVE_KEY, False)
    if value is True:
        return True
    if isinstance(value, list):
        return {str(v) for v in value}
    return False


def exercise_spans(nb) -> list[ExerciseSpan]:
    """Every exercise of the notebook ``nb`` (teacher's edition), in order, with the indices of the
    cells in its span that hold a solution region."""
    spans: list[ExerciseSpan] = []
    cells = nb.cells
    for i, cell in enumerate(cells):
        if cell.cell_type != "markdown":
            continue
        numbers = _PROMPT.findall(cell.source)
        if not numbers:
            continue
        for n in numbers[:-1]:          # two prompts in one cell: only the last owns what follows
            spans.append(ExerciseSpan(n, i, i + 1))
        stop = len(cells)
        for j in range(i + 1, len(cells)):
            c = cells[j]
            if c.cell_type == "markdown" and (_PROMPT.search(c.source) or _HEADING.match(c.source)):
                stop = j
                break
        spans.append(ExerciseSpan(numbers[-1], i, stop))
    for span in spans:
        start = span.prompt + 1 if span.stop > span.prompt + 1 else span.prompt
        span.solution_cells = [j for j in range(start, span.stop) if BEGIN in cells[j].source]
        if BEGIN in cells[span.prompt].source and span.prompt not in span.solution_cells:
            span.solution_cells.insert(0, span.prompt)
    return spans


def region_texts(source: str) -> list[str]:
    """The text of each ``BEGIN``/``END SOLUTION`` region of ``source`` (without the markers)."""
    regions, current = [], None
    for line in source.split("\n"):
        s = line.strip()
        if s.startswith(BEGIN):
            current = []
        elif s.startswith(END):
            if current is not None:
                regions.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return regions


def _outside_regions(source: str) -> str:
    out, inside = [], False
    for line in source.split("\n"):
        s = line.strip()
        if s.startswith(BEGIN):
            inside = True
        elif s.startswith(END):
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def _parse_with_text(code: str) -> tuple[ast.AST | None, str]:
    """The syntax tree of a cell's code or of a region (an indented function body, parsed inside a
    function), and the text that was parsed; ``(None, "")`` for code that does not parse."""
    code = textwrap.dedent(code)
    for candidate in (code, "def _region():\n" + textwrap.indent(code or "pass", "    ")):
        try:
            return ast.parse(candidate), candidate
        except SyntaxError:
            continue
    return None, ""


def _parse(code: str) -> ast.AST | None:
    return _parse_with_text(code)[0]


def _constants(node: ast.AST) -> list | None:
    """The constants of a literal (a constant, or a tuple/list of constants), else ``None``."""
    if isinstance(node, ast.Constant) and node.value is not None and not isinstance(node.value, bytes):
        return [node.value]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and isinstance(node.operand.value, int | float) and not isinstance(node.operand.value, bool):
        return [-node.operand.value]
    if isinstance(node, ast.Tuple | ast.List):
        parts = [_constants(e) for e in node.elts]
        if parts and all(p is not None for p in parts):
            return [v for p in parts for v in p]
    return None


def answer_literals(code: str) -> list:
    """The constants that a code region assigns or returns as its answer: ``x = 7``, ``a, b = "2",
    "2"``, ``return "c"`` (``None`` is a stub's value, never an answer)."""
    tree = _parse(code)
    if tree is None:
        return []
    found = []
    for node in ast.walk(tree):
        value = None
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.Return) and node.value is not None:
            value = node.value
        if value is not None and (consts := _constants(value)) is not None:
            found.extend(consts)
    seen, unique = set(), []
    for v in found:
        key = (type(v).__name__, v)
        if key not in seen:
            seen.add(key)
            unique.append(v)
    return unique


def _show(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _is_option(value) -> bool:
    """A multiple-choice letter/number, a boolean or a short keyword: the prompt lists it on purpose."""
    return isinstance(value, bool) or (isinstance(value, str) and len(value) <= 12 and " " not in value)


def _small_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -2 <= value <= 2


def _notable(value) -> bool:
    """Whether a literal is rare enough to search for in the numbers of a kept output (tables are
    full of booleans and one-digit integers)."""
    if isinstance(value, bool):
        return False
    return not isinstance(value, int) or abs(value) >= 10


def _equal(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(b)))


def _numbers(text: str) -> list[float]:
    return [float(m) for m in _NUMBER.findall(text) if not (len(m) > 1 and m[0] == "0" and m[1] != ".")]


def _text_has(text: str, value) -> bool:
    """Whether a literal shows in free text (a hint, an output, prose)."""
    if isinstance(value, bool):
        return re.search(rf"\b{value}\b", text) is not None
    if isinstance(value, str):
        v = re.escape(value)
        if len(value) <= 2:
            return re.search(rf"[\"'`]{v}[\"'`]|\({v}\)", text) is not None
        return re.search(rf"[\"'`]{v}[\"'`]", text) is not None or (len(value) >= 6 and value in text)
    if _small_int(value):
        return False
    return any(_equal(n, value) for n in _numbers(text))


def _norm(line: str) -> str:
    return re.sub(r"\s+", "", line)


def _tokens(line: str) -> list[str]:
    return _TOKEN.findall(line)


def _ngrams(tokens: list[str], n: int = NGRAM) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def output_text(output) -> str:
    """The readable text of one output (streams, text/plain, HTML, markdown, LaTeX, errors' values)."""
    kind = output.get("output_type")
    if kind == "stream":
        text = output.get("text", "")
        return "".join(text) if isinstance(text, list) else text
    if kind == "error":
        return f"{output.get('ename', '')}: {output.get('evalue', '')}"
    data = output.get("data", {})
    parts = []
    for mime in ("text/plain", "text/html", "text/markdown", "text/latex"):
        if mime in data:
            value = data[mime]
            parts.append("".join(value) if isinstance(value, list) else str(value))
    return "\n".join(parts)


def _cell_outputs_text(cell) -> str:
    return "\n".join(output_text(o) for o in cell.get("outputs", [])) if cell.cell_type == "code" else ""


class _Scan:
    def __init__(self, name: str, teacher, student, executed):
        self.name, self.teacher, self.student, self.executed = name, teacher, student, executed
        self.leaks: list[Leak] = []
        self.spans = exercise_spans(teacher)
        in_span = {j for s in self.spans for j in s.cells}
        taught_lines: set[str] = set()
        taught_grams: set[tuple[str, ...]] = set()
        for i, cell in enumerate(teacher.cells):
            if i in in_span:
                continue
            for line in _outside_regions(cell.source).split("\n"):
                taught_lines.add(_norm(line))
                taught_grams |= _ngrams(_tokens(line))
        self.taught_lines, self.taught_grams = taught_lines, taught_grams
        self._places: list | None = None

    def add(self, cell: int, where: str, kind: str, value: str, exercise: str, detail: str = "",
            source_waiver: bool | set[str] = False) -> None:
        for waiver in (_waiver(self.student.cells[cell]) if cell < len(self.student.cells) else False,
                       source_waiver):
            if waiver is True or (isinstance(waiver, set) and value in waiver):
                return
        leak = Leak(self.name, cell, where, kind, value, exercise, detail)
        if leak not in self.leaks:
            self.leaks.append(leak)

    # --- the places a student reads ---------------------------------------------------------------
    def places(self) -> list[tuple[int, str, str, str, set[tuple[str, ...]]]]:
        """(cell, where, text, text without spaces, its token n-grams) of everything the student
        sees: sources, kept outputs, hints."""
        if self._places is None:
            self._places = [(i, where, text, _norm(text), _ngrams(_tokens(text)))
                            for i, where, text in self._texts()]
        return self._places

    def _texts(self) -> Iterator[tuple[int, str, str]]:
        for i, cell in enumerate(self.student.cells):
            yield i, "source" if cell.cell_type == "code" else "text", cell.source
            if cell.cell_type == "code" and cell.get("outputs"):
                yield i, "output", _cell_outputs_text(cell)
        if self.executed is not None:
            for i in self.hint_cells():
                yield i, "hint", _cell_outputs_text(self.executed.cells[i])

    def hint_cells(self, span: ExerciseSpan | None = None) -> list[int]:
        if self.executed is None:
            return []
        spans = [span] if span is not None else self.spans
        return [i for s in spans for i in s.cells if i < len(self.executed.cells)
                and self.executed.cells[i].cell_type == "code"]

    def check_sources(self, span: ExerciseSpan) -> Iterator[tuple[int, str]]:
        """The check code of an exercise: its code cells without regions, and the part of its
        solution cells outside the regions (a check at the end of the exercise cell)."""
        for i in span.cells:
            cell = self.teacher.cells[i]
            if cell.cell_type == "code":
                yield i, _outside_regions(cell.source)

    # --- the rules --------------------------------------------------------------------------------
    def run(self) -> list[Leak]:
        if not any(BEGIN in c.source for c in self.teacher.cells):
            self.add(0, "structure", "no solution region", "the student edition is the teacher's",
                     "notebook", "mark the answers with ### BEGIN SOLUTION / ### END SOLUTION")
        for span in self.spans:
            if not span.solution_cells:
                self.add(span.prompt, "structure", "exercise without a solution region",
                         f"**{span.name}", span.name,
                         "its worked answer stays in the student edition; put it between "
                         "### BEGIN SOLUTION and ### END SOLUTION")
                continue
            self.solution_lines(span)
            self.literals(span)
            self.check_code(span)
        return self.leaks

    def solution_lines(self, span: ExerciseSpan) -> None:
        for j in span.solution_cells:
            waiver = _waiver(self.teacher.cells[j])
            for region in region_texts(self.teacher.cells[j].source):
                for line in region.split("\n"):
                    norm = _norm(line)
                    if len(norm) < MIN_LINE_CHARS or norm in self.taught_lines:
                        continue
                    grams = _ngrams(_tokens(line)) - self.taught_grams
                    for i, where, _, flat, place_grams in self.places():
                        # a prompt names the calls to use: only a whole line counts in prose
                        if norm in flat or (where != "text" and grams & place_grams):
                            self.add(i, where, "solution line", line.strip(), span.name,
                                     source_waiver=waiver)

    def literals(self, span: ExerciseSpan) -> None:
        prompt_md = "\n".join(_outside_regions(self.teacher.cells[i].source) for i in span.cells
                              if self.teacher.cells[i].cell_type == "markdown")
        prompt_numbers = _numbers(prompt_md)
        for j in span.solution_cells:
            cell = self.teacher.cells[j]
            if cell.cell_type != "code":
                continue
            waiver = _waiver(cell)
            regions = region_texts(cell.source)
            derivation = [n for n in _numbers("\n".join(regions))
                          if n > 2 and not any(_equal(n, p) for p in prompt_numbers)]
            for value in (v for r in regions for v in answer_literals(r)):
                shown = _show(value)
                for i, code in self.check_sources(span):
                    if self._constant_in(code, value):
                        self.add(i, "source", "answer literal in the check code", shown, span.name,
                                 "move the correct value into the checker", waiver)
                for i in self.hint_cells(span):
                    if _text_has(_cell_outputs_text(self.executed.cells[i]), value):
                        self.add(i, "hint", "answer literal in a hint", shown, span.name, "", waiver)
                for i, cell_s in enumerate(self.student.cells):
                    if cell_s.cell_type == "code" and cell_s.get("outputs") and _notable(value) \
                            and _text_has(_cell_outputs_text(cell_s), value):
                        self.add(i, "output", "answer literal in a kept output", shown, span.name,
                                 "tag the cell student-clear", waiver)
                if isinstance(value, bool) or _small_int(value):
                    continue
                for i in span.cells:
                    md = self.teacher.cells[i]
                    if md.cell_type == "markdown" and not _is_option(value) \
                            and _text_has(_outside_regions(md.source), value):
                        self.add(i, "source", "answer literal in the exercise's text", shown, span.name,
                                 "", waiver)
                if isinstance(value, int | float):
                    for i, md in enumerate(self.teacher.cells):
                        if md.cell_type != "markdown" or i in span.cells:
                            continue
                        text = _outside_regions(md.source)
                        numbers = _numbers(text)
                        if any(_equal(n, value) for n in numbers):
                            also = sorted({_fmt(d) for d in derivation if not _equal(d, value)
                                           and any(_equal(n, d) for n in numbers)})
                            if len(also) >= 2:
                                self.add(i, "source", "answer with its derivation in the prose", shown,
                                         span.name, f"the cell also shows {', '.join(also)}", waiver)

    @staticmethod
    def _constant_in(code: str, value) -> bool:
        tree = _parse(code)
        if tree is None:
            return False
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                if any(isinstance(o, ast.Constant) and _equal_const(o.value, value) for o in operands):
                    return True
            elif isinstance(node, ast.Constant) and not _small_int(value) and not isinstance(value, bool) \
                    and _equal_const(node.value, value):
                return True
            elif isinstance(node, ast.Call):
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    if isinstance(arg, ast.Constant) and _equal_const(arg.value, value) \
                            and (isinstance(value, bool) or _small_int(value)) \
                            and _func_name(node).startswith(_CHECKER_PREFIX):
                        return True
        return False

    def span_waiver(self, span: ExerciseSpan) -> bool | set[str]:
        """What the exercise's solution cells waive (``leak_ok``) for the whole exercise."""
        waived: set[str] = set()
        for j in span.solution_cells:
            w = _waiver(self.teacher.cells[j])
            if w is True:
                return True
            waived |= w or set()
        return waived

    def check_code(self, span: ExerciseSpan) -> None:
        waiver = self.span_waiver(span)
        for i, code in self.check_sources(span):
            tree, parsed = _parse_with_text(code)
            if tree is None:
                continue
            for node in ast.walk(tree):
                line = ast.get_source_segment(parsed, node) or ""
                line = line.split("\n")[0].strip()
                if isinstance(node, ast.Assert):
                    self.add(i, "source", "bare assert in the check code", line, span.name,
                             "it shows what the reference satisfies; move it into the checker",
                             source_waiver=waiver)
                elif isinstance(node, ast.Call) and _func_name(node) == "check_choice":
                    correct = node.args[2] if len(node.args) > 2 else next(
                        (k.value for k in node.keywords if k.arg == "correct"), None)
                    if isinstance(correct, ast.Constant):
                        self.add(i, "source", "the correct choice in the check code", _show(correct.value),
                                 span.name, "move the letter into the checker", waiver)
                    hints = node.args[3] if len(node.args) > 3 else next(
                        (k.value for k in node.keywords if k.arg == "hints"), None)
                    if isinstance(hints, ast.Dict) and hints.keys:
                        keys = [_show(k.value) for k in hints.keys if isinstance(k, ast.Constant)]
                        self.add(i, "source", "the wrong choices named in the check code",
                                 ", ".join(keys), span.name, "the missing letter is the answer; move "
                                 "the hints into the checker", waiver)
                elif isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                    operands = [node.left, *node.comparators]
                    consts = [o.value for o in operands if isinstance(o, ast.Constant)
                              and o.value is not None and not isinstance(o.value, bool)
                              and not (_small_int(o.value) and not isinstance(o.value, float))]
                    if consts and any(not isinstance(o, ast.Constant) for o in operands):
                        self.add(i, "source", "a value compared with a literal in the check code", line,
                                 span.name, "the literal is the answer; compute it in the checker", waiver)
                elif isinstance(node, ast.Call) and _func_name(node) == "print" and node.args \
                        and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args):
                    self.add(i, "source", "a fixed conclusion printed by the check code", line,
                             span.name, "print verdicts from the checker, after the answer is checked", waiver)


def _equal_const(const, value) -> bool:
    if const is None or isinstance(const, bytes) or isinstance(const, complex):
        return False
    if isinstance(value, str) != isinstance(const, str):
        return False
    return _equal(const, value)


def _func_name(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def scan_notebook(teacher, student, *, executed=None, name: str = "notebook") -> list[Leak]:
    """Every answer that the student edition ``student`` of ``teacher`` gives away (both nbformat
    notebooks, cell for cell; :func:`utils.course.edition.student_notebook` writes one). With
    ``executed`` (the student edition run on its stubs), the hints it printed are scanned too."""
    if len(student.cells) != len(teacher.cells):
        raise ValueError(f"{name}: the student edition has {len(student.cells)} cells, the teacher's "
                         f"{len(teacher.cells)}; regenerate it with `make student`.")
    if executed is not None and len(executed.cells) != len(student.cells):
        raise ValueError(f"{name}: the executed student notebook does not match its edition.")
    return _Scan(name, teacher, student, executed).run()


def format_leaks(leaks: Iterable[Leak]) -> str:
    """One line per leak."""
    return "\n".join(str(leak) for leak in leaks)
