"""utils.course.report: the `make report` builder (on tiny synthetic
notebooks, without executing the course's notebooks and without the npm registry)."""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from utils.course.report import (
    TABLE_END,
    TABLE_START,
    build_report,
    find_notebooks,
    main,
    preview_png,
    update_readme,
    vendor_assets,
)

# --------------------------------------------------------------------------- the builder

def _notebook(path, title, *, slides=False, executed=True):
    md = new_markdown_cell(f"# {title}\n\nSome math: $a^2 + b^2 = c^2$.")
    code = new_code_cell("print(6 * 7)")
    if executed:
        code.execution_count = 1
        code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="42\n")]
    if slides:
        md.metadata["slideshow"] = {"slide_type": "slide"}
        code.metadata["slideshow"] = {"slide_type": "subslide"}
    nb = new_notebook(cells=[md, code])
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nbformat.write(nb, path)


@pytest.fixture
def course(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "00_intro.ipynb", "Intro page")
    _notebook(folder / "07_report.ipynb", "The report", slides=True)
    (folder / "scratch.ipynb").write_text("{}")             # not a course notebook: ignored
    return folder


def test_find_notebooks_orders_and_filters(course, tmp_path):
    assert [p.name for p in find_notebooks(course)] == ["00_intro.ipynb", "07_report.ipynb"]
    with pytest.raises(FileNotFoundError, match="No notebooks"):
        find_notebooks(tmp_path)


def test_build_without_executing(course, tmp_path):
    out = tmp_path / "reports"
    before = (course / "07_report.ipynb").read_text()
    assert main(["--out", str(out), "--notebooks", str(course), "--no-execute",
                 "--offline-assets", "no"]) == 0
    index = (out / "index.html").read_text()
    assert index.index('href="00_intro.html"') < index.index('href="07_report.html"')
    assert "Intro page" in index and "The report" in index and 'href="07_report.slides.html"' in index
    page = (out / "07_report.html").read_text()
    assert "42" in page and "The report" in page
    deck = (out / "07_report.slides.html").read_text()
    assert "reveal" in deck.lower() and "The report" in deck
    assert (out / "executed" / "00_intro.ipynb").exists()
    assert (course / "07_report.ipynb").read_text() == before   # sources never modified
    assert not (out / "_vendor").exists()
    assert "https://" in deck                                   # CDN links with --offline-assets no


def test_build_executes_in_a_fresh_kernel(course, tmp_path):
    _notebook(course / "00_intro.ipynb", "Intro page", executed=False)
    out = tmp_path / "reports"
    pages = build_report(out, notebooks=course, execute=True, offline_assets="no", timeout=120)
    assert [p.seconds is not None and p.seconds >= 0 for p in pages] == [True, True]
    executed = nbformat.read(out / "executed" / "00_intro.ipynb", as_version=4)
    assert executed.cells[1].outputs[0]["text"] == "42\n"
    assert nbformat.read(course / "00_intro.ipynb", as_version=4).cells[1].outputs == []
    assert " s</td>" in (out / "index.html").read_text()


def test_vendor_assets_falls_back_to_the_cdn_without_npm(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("utils.course.report.shutil.which", lambda name: None)
    urls = vendor_assets(tmp_path, "auto")
    assert all(u.startswith("https://") for u in urls.values())
    assert "need" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="offline-assets no"):
        vendor_assets(tmp_path, "yes")
    with pytest.raises(ValueError, match="auto, yes or no"):
        vendor_assets(tmp_path, "maybe")


def test_vendor_assets_reuses_a_local_copy(tmp_path):
    vendor = tmp_path / "_vendor"
    for name, needed in [("mathjax", "es5/tex-mml-chtml.js"), ("reveal.js", "dist/reveal.js"),
                         ("requirejs", "require.js"), ("jquery", "dist/jquery.min.js")]:
        (vendor / name / needed).parent.mkdir(parents=True, exist_ok=True)
        (vendor / name / needed).write_text("")
        (vendor / name / "package.json").write_text("{}")
    urls = vendor_assets(tmp_path, "yes")
    assert urls["mathjax_url"] == "_vendor/mathjax-loader.js"
    assert urls["reveal_url_prefix"] == "_vendor/reveal.js"
    assert urls["require_js_url"] == "_vendor/requirejs/require.js"
    loader = (vendor / "mathjax-loader.js").read_text()
    assert "tex-mml-chtml.js" in loader and "inlineMath" in loader


# --------------------------------------------------------------------------- README previews

def _png(width: int, height: int, colour) -> str:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _figure_output(png: str):
    return nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})


def test_preview_png_prefers_the_tagged_cell_and_shrinks_it():
    import io

    from PIL import Image

    first, tagged = new_code_cell("plot()"), new_code_cell("plot()")
    first.outputs = [_figure_output(_png(800, 400, (255, 0, 0)))]
    tagged.outputs = [_figure_output(_png(640, 320, (0, 0, 255)))]
    tagged.metadata["tags"] = ["preview"]
    img = Image.open(io.BytesIO(preview_png(new_notebook(cells=[first, tagged]), width=160))).convert("RGB")
    assert img.size == (160, 80) and img.getpixel((80, 40)) == (0, 0, 255)
    img = Image.open(io.BytesIO(preview_png(new_notebook(cells=[first]), width=1000))).convert("RGB")
    assert img.size == (800, 400) and img.getpixel((0, 0)) == (255, 0, 0)  # never enlarged
    assert preview_png(new_notebook(cells=[new_code_cell("x = 1")])) is None


def test_update_readme_rewrites_the_table_and_keeps_descriptions(course, tmp_path):
    nb = nbformat.read(course / "00_intro.ipynb", as_version=4)
    nb.cells[1].outputs.append(_figure_output(_png(400, 200, (0, 128, 0))))
    nbformat.write(nb, course / "00_intro.ipynb")
    readme = tmp_path / "README.md"
    readme.write_text(f"# Course\n\n{TABLE_START}\n| notebook | what it teaches |\n|---|---|\n"
                      "| [`00_intro`](notebooks/00_intro.ipynb) | a kept description |\n"
                      f"{TABLE_END}\n\nMore text.\n", encoding="utf-8")
    pages = build_report(tmp_path / "out", notebooks=course, execute=False, offline_assets="no")
    text = update_readme(readme, pages, course / "previews")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0] == "| preview | notebook | what it teaches | run time |"
    assert rows[1] == ("| [![00_intro](notebooks/previews/00_intro.png)](notebooks/00_intro.ipynb) | "
                       "[`00_intro`](notebooks/00_intro.ipynb) | a kept description | – |")
    assert rows[2] == "|  | [`07_report`](notebooks/07_report.ipynb) | The report | – |"  # no figure: no preview
    assert (course / "previews" / "00_intro.png").exists() and text.endswith("\n\nMore text.\n")
    # Run times: written when the pages were executed, kept otherwise.
    for page, seconds in zip(pages, (12.4, 30.0), strict=True):
        page.seconds = seconds
    text = update_readme(readme, pages, course / "previews")
    assert "| a kept description | 12 s |" in text and "| The report | 30 s |" in text
    assert "Run times: each notebook executed" in text and "total 42 s" in text
    for page in pages:
        page.seconds = None
    text = update_readme(readme, pages, course / "previews")
    assert "| a kept description | 12 s |" in text and "total 42 s" in text


def test_update_readme_needs_the_markers(tmp_path, course):
    readme = tmp_path / "README.md"
    readme.write_text("# no table\n", encoding="utf-8")
    pages = build_report(tmp_path / "out", notebooks=course, execute=False, offline_assets="no")
    with pytest.raises(ValueError, match="course table markers"):
        update_readme(readme, pages, tmp_path / "previews")


def test_the_course_readme_table_lists_every_notebook_with_preview_and_run_time():
    from pathlib import Path

    from utils.course.report import ROOT

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    for nb in find_notebooks(ROOT / "notebooks"):
        row = next((line for line in table.splitlines() if f"[`{nb.stem}`]" in line), None)
        assert row is not None, f"README course table misses {nb.stem}; run make readme"
        cells = [c.strip() for c in row.strip().strip("|").split(" | ")]
        assert len(cells) == 4 and cells[3].endswith(" s"), row
        assert (ROOT / "notebooks" / "previews" / f"{nb.stem}.png").exists(), f"no preview for {nb.stem}"
        assert f"(notebooks/previews/{nb.stem}.png)" in cells[0]
    assert Path(ROOT / "notebooks" / "previews").is_dir()


# --------------------------------------------------------------------------- the report as a paper

def _report_notebook(path):
    cells = [new_markdown_cell("# The report\n\n### BEGIN SOLUTION\nWe found it.\n### END SOLUTION",
                               metadata={"tags": ["analysis"], "slideshow": {"slide_type": "skip"}}),
             new_markdown_cell("> **Term project.** Rubric (5 points)", metadata={"tags": ["template"]}),
             new_markdown_cell("## A slide only\n\n- one idea",
                               metadata={"tags": ["slides-only"], "slideshow": {"slide_type": "slide"}}),
             new_code_cell("import secret_module_name\nprint(6 * 7)",
                           metadata={"slideshow": {"slide_type": "slide"}})]
    cells[3].execution_count = 1
    cells[3].outputs = [nbformat.v4.new_output("stream", name="stdout", text="42\n")]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nbformat.write(nb, path)


def test_report_view_drops_template_slides_only_and_markers(tmp_path):
    from utils.course.report import report_view

    _report_notebook(tmp_path / "07_report.ipynb")
    nb = nbformat.read(tmp_path / "07_report.ipynb", as_version=4)
    page = report_view(nb)
    assert [c.cell_type for c in page.cells] == ["markdown", "code"]
    assert page.cells[0].source == "# The report\n\nWe found it."
    deck = report_view(nb, slides=True)
    assert any("A slide only" in c.source for c in deck.cells)
    assert not any("Rubric" in c.source for c in deck.cells)
    assert len(nb.cells) == 4 and "BEGIN SOLUTION" in nb.cells[0].source   # the source is untouched


def test_report_page_and_slides_hide_code_and_only_builds_the_named(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "00_intro.ipynb", "Intro page")
    _report_notebook(folder / "07_report.ipynb")
    out = tmp_path / "reports"
    assert main(["--out", str(out), "--notebooks", str(folder), "--no-execute",
                 "--offline-assets", "no", "--only", "07"]) == 0
    assert not (out / "00_intro.html").exists()
    page = (out / "07_report.html").read_text()
    deck = (out / "07_report.slides.html").read_text()
    for text in (page, deck):
        assert "secret_module_name" not in text and "42" in text       # outputs, no code
        assert "BEGIN SOLUTION" not in text and "Rubric" not in text
    assert "We found it" in page and "A slide only" in deck and "A slide only" not in page
    assert "width: 1280" in deck and "font-size: 28px" in deck
    with pytest.raises(FileNotFoundError, match="starts with 09"):
        build_report(out, notebooks=folder, execute=False, offline_assets="no", only=["09"])
