"""The course's report: ``make report`` (``python -m utils.course.report``).

``python -m utils.course.report [--out reports] [--no-execute] [--offline-assets auto|yes|no]
[--timeout 900] [--notebooks DIR] [--only 07 ...]``

1. **Execute** every ``notebooks/NN_*.ipynb`` in order, each in a fresh ``python3`` kernel started in
   ``notebooks/`` with ``IPYTHONDIR=tests/ipython`` (the course's offline guard is active), into
   ``<out>/executed/``. The committed notebooks are never modified. ``--no-execute`` copies them
   with their committed outputs instead (fast; used by the tests).
2. **Render** one HTML page per notebook into ``<out>/`` (nbconvert's ``HTMLExporter``, lab
   template, figures embedded as data URIs, so each page is one self-contained file), and
   ``<out>/index.html`` linking them in order with each notebook's title and run time.
3. **Slides**: the report notebook (``07_*``) also becomes reveal.js slides,
   ``<out>/07_report.slides.html`` (nbconvert's ``SlidesExporter``, from the cells'
   ``metadata.slideshow.slide_type``), 1280 × 720, in type sizes that read from the back of a
   room. Open it in a browser; arrow keys move between slides.

**The report reads as a paper.** The report notebook's page and its slides show no code
(nbconvert's ``exclude_input``), and :func:`report_view` drops what belongs to the notebook only:
cells tagged ``template`` (the term-project checklist and rubric of the student edition) from
both, cells tagged ``slides-only`` (the talk's short slides) from the page, and the
``### BEGIN/END SOLUTION`` marker lines of the worked analysis from both; a figure's slide
shows the figure without the lines its cell prints. ``--only 07`` builds
just the named notebooks (a prefix or a file name), for iterating on the report.

**Offline reading.** nbconvert's pages load MathJax, and the slides reveal.js, from a CDN. With
``--offline-assets auto`` (the default) the builder vendors both once into ``<out>/_vendor/``
from the npm registry (``npm pack`` of ``reveal.js@4``, ``mathjax@3`` and the ``requirejs@2`` and
``jquery@2`` that nbconvert's templates load, about 30 MB unpacked with :mod:`tarfile`) when
``npm`` is on the PATH, and points the exporters at those relative copies
(``HTMLExporter.mathjax_url``/``require_js_url``/``jquery_url``,
``SlidesExporter.reveal_url_prefix``): the pages then read without any network. (nbconvert's templates configure MathJax 2; the pages load a small
``_vendor/mathjax-loader.js`` that sets MathJax 3's configuration, ``$…$`` inline math included,
and then loads ``mathjax/es5/tex-mml-chtml.js``.) Keep ``_vendor/`` beside the pages when copying
them elsewhere. A vendored copy is reused on the next build. When ``npm`` is missing or fails, the
pages fall back to the CDN URLs and the builder prints a note that math and slides then need a
network connection. ``--offline-assets yes`` makes vendoring failures an error, ``no`` skips it
(CDN URLs). Note that JupyterLab's own widget views (ipywidgets) are not rendered in static
pages; the notebooks keep a static figure beside every widget. Two CDN references stay in the
pages and are harmless offline: nbconvert's widget-state loader (only used by pages that saved
widget state; the widgets then show nothing, the figures beside them remain) and mermaid (only
loaded when a page contains a mermaid diagram; the course has none).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["NotebookPage", "find_notebooks", "report_view", "vendor_assets", "build_report",
           "preview_png", "update_readme", "main"]

ROOT = Path(__file__).resolve().parents[2]
CDN_MATHJAX = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/MathJax.js?config=TeX-AMS_CHTML-full,Safe"
CDN_REVEAL = "https://unpkg.com/reveal.js@4.0.2"
_VENDOR = {"reveal.js": "reveal.js@4", "mathjax": "mathjax@3", "requirejs": "requirejs@2",
           "jquery": "jquery@2"}
_NEEDED = ("mathjax/es5/tex-mml-chtml.js", "reveal.js/dist/reveal.js", "requirejs/require.js",
           "jquery/dist/jquery.min.js")
_MATHJAX_FILE = "mathjax/es5/tex-mml-chtml.js"
_MATHJAX_LOADER = "mathjax-loader.js"
# nbconvert's templates configure MathJax 2 (`$…$` inline math); MathJax 3 needs its configuration
# in `window.MathJax` before it loads, so the pages load this small file, which then loads MathJax.
_LOADER_JS = r"""window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
        processEscapes: true, processEnvironments: true, tags: 'ams'},
  options: {ignoreHtmlClass: 'tex2jax_ignore', processHtmlClass: 'tex2jax_process'}
};
(function () {
  var script = document.createElement('script');
  script.src = document.currentScript.src.replace(/[^/]*$/, '') + 'mathjax/es5/tex-mml-chtml.js';
  script.async = true;
  document.head.appendChild(script);
})();
"""


# --------------------------------------------------------------------------- the builder

@dataclass
class NotebookPage:
    """One rendered notebook: its source, title, page and run time (``None`` when not executed)."""

    source: Path
    title: str
    page: str
    seconds: float | None


def find_notebooks(folder: Path) -> list[Path]:
    """The course notebooks ``NN_*.ipynb`` in ``folder``, in order."""
    found = sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"No notebooks NN_*.ipynb in {folder}.")
    return found


def _title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, flags=re.M)
            if m:
                return m.group(1).strip()
    return "(untitled)"


TEMPLATE_TAG = "template"
SLIDES_ONLY_TAG = "slides-only"
_MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")
SLIDE_SIZE = (1280, 720)
# Readable from the back of a room: body text 28 px, headings 44-52 px, captions 22 px, figures
# scaled to the slide's width and at most 390 px high (the browser test checks that nothing
# overflows at 1280 × 720).
_SLIDE_CSS = """<style>
.reveal .slides section, .reveal .slides section .jp-RenderedHTMLCommon,
.reveal .slides section .jp-RenderedHTMLCommon p, .reveal .slides section .jp-RenderedHTMLCommon li {
  font-size: 28px !important; line-height: 1.3 !important; }
.reveal .slides section .jp-RenderedHTMLCommon h1 { font-size: 52px !important; }
.reveal .slides section .jp-RenderedHTMLCommon h2 { font-size: 44px !important; }
.reveal .slides section .jp-RenderedHTMLCommon small { font-size: 22px !important; }
.reveal .slides section .jp-RenderedHTMLCommon li { margin-bottom: .25em; }
.reveal .slides section .celltag_caption p { font-size: 22px !important; }
.reveal .slides section .jp-OutputArea-output img { width: 100%; height: auto; max-height: 390px;
  object-fit: contain; display: block; margin: 0 auto; }
.reveal .slides section .jp-OutputArea-output pre { font-size: 22px !important; }
.reveal .slides section .jp-Cell { padding: 0; }
</style>
<script>
// nbconvert's deck re-renders math with MathJax 2's `MathJax.Hub` on every slide change; the
// vendored MathJax 3 has typeset every slide at load and has no Hub: give it a no-op one.
var _hubShim = setInterval(function () {
  if (window.MathJax && window.MathJax.startup && !window.MathJax.Hub) {
    window.MathJax.Hub = {getAllJax: function () { return null; }, Rerender: function () {}};
  }
  if (window.MathJax && window.MathJax.Hub) { clearInterval(_hubShim); }
}, 100);
</script>
"""


def report_view(nb, *, slides: bool = False):
    """The report notebook as a reader sees it: a copy of ``nb`` without the cells tagged
    :data:`TEMPLATE_TAG` (and :data:`SLIDES_ONLY_TAG` unless ``slides``) and without the solution
    markers' lines in markdown cells. Code is hidden by the exporters (``exclude_input``)."""
    import nbformat

    nb = nbformat.from_dict(nb)
    drop = {TEMPLATE_TAG} if slides else {TEMPLATE_TAG, SLIDES_ONLY_TAG}
    nb.cells = [c for c in nb.cells if not drop & set(c.get("metadata", {}).get("tags", []))]
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = "\n".join(ln for ln in cell.source.split("\n") if not _MARKER.match(ln))
        elif slides and any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])):
            # a figure's slide shows the figure; its printed lines stay in the report
            cell.outputs = [o for o in cell.outputs if o.get("output_type") != "stream"]
    return nb


def _npm_pack(spec: str, dest: Path) -> None:
    """Download ``spec`` with ``npm pack`` and unpack its ``package/`` into ``dest``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", tmp],
                             capture_output=True, text=True, timeout=300, check=True)
        tgz = Path(tmp) / out.stdout.strip().splitlines()[-1]
        unpacked = Path(tmp) / "unpacked"
        with tarfile.open(tgz) as tar:
            tar.extractall(unpacked, filter="data")
        if dest.exists():
            shutil.rmtree(dest)
        shutil.move(str(unpacked / "package"), dest)


def vendor_assets(out: Path, mode: str = "auto") -> dict[str, str]:
    """The pages' JavaScript: ``{"mathjax_url", "reveal_url_prefix", "require_js_url",
    "jquery_url"}`` (the exporters' trait names).

    Local copies under ``out/_vendor`` (relative URLs) when they exist or ``npm`` can fetch them;
    otherwise (``mode="auto"``) the CDN URLs with a printed note; ``mode="no"``: CDN without
    trying; ``mode="yes"``: raise when vendoring fails.
    """
    if mode not in ("auto", "yes", "no"):
        raise ValueError(f"offline assets mode {mode!r} is not known; choose auto, yes or no.")
    if mode == "no":
        return {"mathjax_url": CDN_MATHJAX, "reveal_url_prefix": CDN_REVEAL}
    vendor = out / "_vendor"
    try:
        vendor.mkdir(parents=True, exist_ok=True)
        for name, spec in _VENDOR.items():
            if not (vendor / name / "package.json").exists():
                if shutil.which("npm") is None:
                    raise RuntimeError("npm is not on the PATH")
                print(f"vendoring {spec} into {vendor.name}/{name} (npm pack)")
                _npm_pack(spec, vendor / name)
        missing = [f for f in _NEEDED if not (vendor / f).exists()]
        if missing:
            raise RuntimeError(f"the vendored packages lack {', '.join(missing)}")
        (vendor / _MATHJAX_LOADER).write_text(_LOADER_JS, encoding="utf-8")
    except (RuntimeError, OSError, subprocess.SubprocessError, tarfile.TarError) as err:
        if mode == "yes":
            raise RuntimeError(f"Could not vendor reveal.js and MathJax: {err}. Use "
                               "--offline-assets no to build with CDN links instead.") from err
        print(f"NOTE: could not vendor reveal.js/MathJax ({err}); the pages use CDN links and need "
              "a network connection for math and slides.")
        return {"mathjax_url": CDN_MATHJAX, "reveal_url_prefix": CDN_REVEAL}
    return {"mathjax_url": f"_vendor/{_MATHJAX_LOADER}", "reveal_url_prefix": "_vendor/reveal.js",
            "require_js_url": "_vendor/requirejs/require.js",
            "jquery_url": "_vendor/jquery/dist/jquery.min.js"}


def _execute(nb, cwd: Path, timeout: int) -> float:
    """Run ``nb`` in place in a fresh python3 kernel started in ``cwd``; return the seconds."""
    from nbclient import NotebookClient

    env_dir = ROOT / "tests" / "ipython"
    old = os.environ.get("IPYTHONDIR")
    os.environ["IPYTHONDIR"] = str(env_dir)   # the kernel inherits it: the offline guard
    try:
        t0 = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(cwd)}}).execute()
        return time.perf_counter() - t0
    finally:
        if old is None:
            os.environ.pop("IPYTHONDIR", None)
        else:
            os.environ["IPYTHONDIR"] = old


def _index(pages: list[NotebookPage], slides: str | None, executed: bool, mathjax_url: str) -> str:
    rows = []
    for p in pages:
        run = f"{p.seconds:.0f} s" if p.seconds is not None else "not executed (committed outputs)"
        rows.append(f'<tr><td><a href="{html.escape(p.page)}">{html.escape(p.source.stem)}</a></td>'
                    f"<td>{html.escape(p.title)}</td><td>{run}</td></tr>")
    extra = (f'<p>Seminar slides of the report: <a href="{html.escape(slides)}">{html.escape(slides)}</a> '
             "(reveal.js; arrow keys to move)</p>" if slides else "")
    how = ("each executed top to bottom in a fresh kernel by <code>make report</code>" if executed
           else "with their committed outputs (built with <code>--no-execute</code>)")
    total = sum(p.seconds or 0.0 for p in pages)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>saliency-course: notebooks and report</title>
<script src="{html.escape(mathjax_url)}"></script>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td{{padding:.3em 1em}}
tr:nth-child(even){{background:#f3f3f3}}</style></head>
<body><h1>saliency-course</h1>
<p>The course notebooks in order, {how}. Total run time {total:.0f} s.</p>
<table><tr><th>notebook</th><th>title</th><th>run time</th></tr>
{chr(10).join(rows)}
</table>
{extra}
</body></html>
"""


def build_report(out: Path | str = "reports", *, notebooks: Path | str | None = None,
                 execute: bool = True, offline_assets: str = "auto", timeout: int = 900,
                 only: Sequence[str] | None = None) -> list[NotebookPage]:
    """Execute (or copy) the notebooks and render ``out``: pages, index, report slides.

    ``only``: build just the notebooks whose file name starts with one of these (``["07"]``).

    Returns the rendered pages in order. Raises ``nbclient``'s ``CellExecutionError`` when a
    notebook fails (its partial output is still written to ``out/executed/``).
    """
    import nbformat
    from nbconvert import HTMLExporter, SlidesExporter

    out = Path(out)
    src_dir = Path(notebooks) if notebooks is not None else ROOT / "notebooks"
    sources = find_notebooks(src_dir)
    if only:
        sources = [p for p in sources if any(p.name.startswith(o) for o in only)]
        if not sources:
            raise FileNotFoundError(f"No notebook in {src_dir} starts with {', '.join(only)}.")
    (out / "executed").mkdir(parents=True, exist_ok=True)
    urls = vendor_assets(out, offline_assets)
    page_urls = {k: v for k, v in urls.items() if k != "reveal_url_prefix"}
    html_exporter = HTMLExporter(template_name="lab", embed_images=True, **page_urls)
    paper_exporter = HTMLExporter(template_name="lab", embed_images=True, exclude_input=True,
                                  exclude_input_prompt=True, exclude_output_prompt=True, **page_urls)
    pages, slides = [], None
    for src in sources:
        nb = nbformat.read(src, as_version=4)
        seconds = None
        if execute:
            print(f"executing {src.name} …", flush=True)
            try:
                seconds = _execute(nb, src_dir.resolve(), timeout)
            finally:
                nbformat.write(nb, out / "executed" / src.name)
            print(f"  {seconds:.1f} s", flush=True)
        else:
            nbformat.write(nb, out / "executed" / src.name)
        report = src.name.startswith("07_")
        exporter, view = (paper_exporter, report_view(nb)) if report else (html_exporter, nb)
        body, _ = exporter.from_notebook_node(view, resources={"metadata": {"name": _title(nb)}})
        page = f"{src.stem}.html"
        (out / page).write_text(body, encoding="utf-8")
        pages.append(NotebookPage(src, _title(nb), page, seconds))
        if report or (slides is None and src is sources[-1]):
            slide_exporter = SlidesExporter(embed_images=True, exclude_input=True,
                                            exclude_input_prompt=True, exclude_output_prompt=True,
                                            reveal_width=str(SLIDE_SIZE[0]),
                                            reveal_height=str(SLIDE_SIZE[1]), **urls)
            deck, _ = slide_exporter.from_notebook_node(report_view(nb, slides=True),
                                                        resources={"metadata": {"name": _title(nb)}})
            deck = deck.replace("</head>", _SLIDE_CSS + "</head>", 1)
            slides = f"{src.stem}.slides.html"
            (out / slides).write_text(deck, encoding="utf-8")
    (out / "index.html").write_text(_index(pages, slides, execute, urls["mathjax_url"]), encoding="utf-8")
    (out / "index.json").write_text(json.dumps(
        [{"notebook": p.source.name, "title": p.title, "page": p.page, "seconds": p.seconds}
         for p in pages], indent=1), encoding="utf-8")
    return pages


# --------------------------------------------------------------------------- README previews

TABLE_START = "<!-- course-table: `make readme` regenerates the preview and run-time columns; edit descriptions here -->"
TABLE_END = "<!-- /course-table -->"
PREVIEW_WIDTH = 320


def preview_png(nb, width: int = PREVIEW_WIDTH) -> bytes | None:
    """A thumbnail (PNG bytes, ``width`` pixels wide) of a notebook's preview figure.

    The figure is the first PNG output of the first code cell tagged ``preview`` (cell metadata
    ``tags``), or else the first PNG output of the notebook; ``None`` when it has no figure.
    """
    import base64
    import io

    from PIL import Image

    cells = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in cells if "preview" in c.get("metadata", {}).get("tags", [])]
    for cell in tagged + cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {}).get("image/png")
            if data:
                img = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
                if img.width > width:
                    img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
                buf = io.BytesIO()  # 256 colours: a thumbnail, a fraction of the bytes
                img.quantize(256, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
                return buf.getvalue()
    return None


def _table_rows(text: str) -> dict[str, list[str]]:
    """``{notebook stem: cells}`` of the rows already between the README markers."""
    rows = {}
    for line in text.splitlines():
        m = re.search(r"\[`(\d\d_[^`]+)`\]", line)
        if m and line.startswith("|"):
            rows[m.group(1)] = [c.strip() for c in line.strip().strip("|").split(" | ")]
    return rows


def update_readme(readme: Path | str, pages: Sequence[NotebookPage], previews: Path | str) -> str:
    """Rewrite the README's course table (between :data:`TABLE_START` and :data:`TABLE_END`).

    One row per notebook: preview thumbnail (written to ``previews/<stem>.png`` from the notebook's
    outputs), link, what it teaches (kept from the existing row; the notebook's title for a new
    one) and run time (this build's when the notebooks were executed, else the existing row's).
    Returns the new README text (also written to ``readme``).
    """
    import nbformat

    readme, previews = Path(readme), Path(previews)
    text = readme.read_text(encoding="utf-8")
    if TABLE_START not in text or TABLE_END not in text:
        raise ValueError(f"{readme} has no course table markers; add the lines\n{TABLE_START}\n{TABLE_END}")
    head, rest = text.split(TABLE_START, 1)
    old_table, tail = rest.split(TABLE_END, 1)
    old = _table_rows(old_table)
    previews.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(previews, readme.parent).replace(os.sep, "/")
    lines = ["| preview | notebook | what it teaches | run time |", "|---|---|---|---|"]
    total = 0.0
    for page in pages:
        stem = page.source.stem
        link = os.path.relpath(page.source, readme.parent).replace(os.sep, "/")
        png = preview_png(nbformat.read(page.source, as_version=4))
        picture = ""
        if png is not None:
            (previews / f"{stem}.png").write_bytes(png)
            picture = f"[![{stem}]({rel}/{stem}.png)]({link})"
        previous = old.get(stem, [])
        teaches = {4: previous[2:3], 2: previous[1:2]}.get(len(previous), [html.escape(page.title)])[0]
        seconds = f"{page.seconds:.0f} s" if page.seconds is not None else (previous[3] if len(previous) == 4 else "–")
        total += page.seconds or 0.0
        lines.append(f"| {picture} | [`{stem}`]({link}) | {teaches} | {seconds} |")
    note = ""
    if all(p.seconds is not None for p in pages):
        note = (f"\nRun times: each notebook executed top to bottom in a fresh kernel by `make readme` "
                f"(total {total:.0f} s; {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}).\n")
    else:
        kept = re.search(r"\nRun times: [^\n]*\n", old_table)
        note = kept.group(0) if kept else ""
    new = head + TABLE_START + "\n" + "\n".join(lines) + "\n" + note + TABLE_END + tail
    readme.write_text(new, encoding="utf-8")
    return new


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m utils.course.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="reports", help="output folder (default: reports)")
    p.add_argument("--notebooks", default=None, help="folder of NN_*.ipynb (default: notebooks/)")
    p.add_argument("--no-execute", action="store_true",
                   help="render the committed outputs instead of re-executing every notebook")
    p.add_argument("--offline-assets", choices=("auto", "yes", "no"), default="auto",
                   help="vendor reveal.js and MathJax via npm (auto: fall back to CDN links)")
    p.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    p.add_argument("--only", nargs="+", default=None, metavar="PREFIX",
                   help="build only the notebooks whose name starts with PREFIX (e.g. --only 07)")
    p.add_argument("--readme", nargs="?", const="README.md", default=None, metavar="PATH",
                   help="also rewrite PATH's course table (previews in notebooks/previews/, run times)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    t0 = time.perf_counter()
    pages = build_report(args.out, notebooks=args.notebooks, execute=not args.no_execute,
                         offline_assets=args.offline_assets, timeout=args.timeout, only=args.only)
    print(f"{len(pages)} notebooks rendered into {args.out}/ (index.html) in "
          f"{time.perf_counter() - t0:.0f} s")
    if args.readme:
        src = Path(args.notebooks) if args.notebooks else ROOT / "notebooks"
        update_readme(args.readme, pages, src / "previews")
        print(f"{args.readme}: course table rewritten; previews in {os.path.relpath(src / 'previews')}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
