"""The real browser check of the saliency explorer (run by `make test-browser`, not by pytest).

What it does, end to end:

1. copies ``notebooks/02_gradient_saliency.ipynb`` (outputs and saved widget state stripped, so
   nothing stale can pass for a live widget) into a temporary folder;
2. starts the virtual environment's JupyterLab on a free loopback port with a random token,
   headless (``--no-browser``), ``--allow-root``, with ``IPYTHONDIR=tests/ipython`` (the kernels'
   offline guard) and its own config/runtime/settings folders (autosave and news off, every cell
   rendered);
3. opens the notebook in headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright's
   Python API; no browser download), runs the first code cell (imports, model) and the explorer's
   cell by clicking them and pressing Shift+Enter;
4. checks that the widget renders (a class ``<select>`` with the top-5 classes, the map image),
   chooses another class and checks that the map image's bytes change and the status names the
   new class, then types a class by name (``goldfish``) and checks again;
5. saves screenshots under ``reports/browser/`` and stops everything it started (kernels, server,
   browser), also when a check fails.

6. **The report's slides** (``reports/07_report.slides.html``; when it is missing, the check
   builds it from the committed report notebook with ``python -m utils.course.report --no-execute
   --only 07 --out reports/browser/deck``): opens the deck at 1280 × 720, visits every slide
   (reveal.js's own API, transitions off), keeps a screenshot of each under
   ``reports/browser/slides/`` and fails when a slide's content reaches outside the slide or is
   cut off (an element with a scroll bar), naming the slide and the element.

``--explorer-only`` / ``--slides-only`` run one part; ``--deck PATH`` checks another deck.
Exit status 0 when every check passed, 1 when one failed, 2 when Chromium or Playwright is missing.
The last line reads ``browser: N passed, M failed``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "02_gradient_saliency.ipynb"
SHOTS = ROOT / "reports" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
EXPLORER_CELL = "saliency_explorer(model)"
SETTINGS = {  # JupyterLab user settings for this run only
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
}
SERVER_START_S = 90
KERNEL_CELL_S = 150  # one cell on a loaded 2-core machine (model load, first map)
UPDATE_S = 90  # one recomputation after a click
DECK = ROOT / "reports" / "07_report.slides.html"
SLIDE_VIEWPORT = {"width": 1280, "height": 720}
# Elements of the current slide that reach outside the slide's frame, or that scroll (cut off).
OVERFLOW_JS = """() => {
  const slide = Reveal.getCurrentSlide();
  const frame = Reveal.getSlidesElement().getBoundingClientRect();
  const bad = [];
  for (const el of [slide, ...slide.querySelectorAll('*')]) {
    const b = el.getBoundingClientRect();
    if (b.width === 0 || b.height === 0 || getComputedStyle(el).visibility === 'hidden') continue;
    if (el.closest('mjx-assistive-mml')) continue;   // MathJax's screen-reader copy, clipped on purpose
    const name = el.tagName.toLowerCase() + (el.className && el.className.baseVal === undefined
                 ? '.' + String(el.className).trim().split(/\\s+/).slice(0, 2).join('.') : '');
    const out = Math.max(frame.top - b.top, b.bottom - frame.bottom, frame.left - b.left,
                         b.right - frame.right);
    if (out > 2) bad.push(`${name} reaches ${Math.round(out)} px outside the slide`);
    const st = getComputedStyle(el);
    if ((el.scrollWidth > el.clientWidth + 2 && /auto|scroll|hidden/.test(st.overflowX)) ||
        (el.scrollHeight > el.clientHeight + 2 && /auto|scroll|hidden/.test(st.overflowY)))
      bad.push(`${name} is cut off (${el.scrollWidth}×${el.scrollHeight} in ${el.clientWidth}×${el.clientHeight})`);
  }
  return bad;
}"""


class CheckFailed(AssertionError):
    pass


class Checks:
    """Counts the checks; prints each one as it passes."""

    def __init__(self) -> None:
        self.passed = 0
        self.t0 = time.perf_counter()

    def ok(self, condition: bool, what: str) -> None:
        if not condition:
            raise CheckFailed(what)
        self.passed += 1
        print(f"  ok  {what}  ({time.perf_counter() - self.t0:.0f} s)", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(tmp: Path) -> dict[str, str]:
    """The notebook copy, settings and folders; returns the server's environment."""
    nb = json.loads(NOTEBOOK.read_text())
    nb["metadata"].pop("widgets", None)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    (tmp / "nb").mkdir()
    (tmp / "nb" / NOTEBOOK.name).write_text(json.dumps(nb, indent=1))
    for rel, value in SETTINGS.items():
        path = tmp / "settings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    env = dict(os.environ)
    env.update({
        "IPYTHONDIR": str(ROOT / "tests" / "ipython"),
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
    })
    return env


def start_server(tmp: Path, env: dict[str, str], port: int, token: str) -> subprocess.Popen:
    jupyter = Path(sys.executable).parent / "jupyter"
    cmd = [str(jupyter), "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={tmp / 'nb'}", "--LabApp.expose_app_in_browser=True",
           "--ServerApp.terminals_enabled=False"]
    log = open(tmp / "server.log", "w")  # the server's output, shown on failure
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp,
                            start_new_session=True)


def api(port: int, token: str, path: str, method: str = "GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
    return json.loads(body) if body else None


def wait_for_server(proc: subprocess.Popen, port: int, token: str) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CheckFailed(f"JupyterLab exited with status {proc.returncode} while starting")
        try:
            api(port, token, "/api/status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise CheckFailed(f"JupyterLab did not answer on port {port} within {SERVER_START_S} s")


def stop_server(proc: subprocess.Popen | None, port: int, token: str, tmp: Path) -> None:
    """Shut the kernels down through the API, then the server (its process group); kill what is
    left of the kernels this server started (their connection files are in our runtime folder)."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            for kernel in api(port, token, "/api/kernels") or []:
                api(port, token, f"/api/kernels/{kernel['id']}", method="DELETE")
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    marker = str(tmp / "runtime")
    for pid_dir in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            try:
                os.kill(int(pid_dir.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


# ---- in the page ------------------------------------------------------------------------------

KERNEL_IDLE_JS = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle';
}"""

DIGEST_JS = """async (img) => {
  const data = await (await fetch(img.src)).arrayBuffer();
  const hash = await crypto.subtle.digest('SHA-256', data);
  return [...new Uint8Array(hash)].map(b => b.toString(16).padStart(2, '0')).join('')
         + ':' + data.byteLength;
}"""


def run_cell(page, cell, checks: Checks, what: str) -> None:
    """Click into a code cell, press Shift+Enter, wait for its execution count."""
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    prompt = cell.locator(".jp-InputPrompt")
    deadline = time.monotonic() + KERNEL_CELL_S
    while time.monotonic() < deadline:
        text = prompt.inner_text().strip()
        if text.startswith("[") and text[1:-2].strip().isdigit():
            break
        page.wait_for_timeout(250)
    else:
        raise CheckFailed(f"{what} did not finish within {KERNEL_CELL_S} s (prompt {text!r})")
    stderr = cell.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    errors = [t for t in stderr.all_inner_texts() if "Error" in t or "Traceback" in t]
    checks.ok(not errors, f"{what} ran without an error {text}" + (f": {errors[0][:300]}" if errors else ""))


def wait_for_update(page, explorer, old_digest: str, class_name: str) -> str:
    """Wait until the map image holds new bytes and the status names ``class_name``."""
    status = explorer.locator(".saliency-status")
    img = explorer.locator("img.saliency-map")
    deadline = time.monotonic() + UPDATE_S
    digest = old_digest
    while time.monotonic() < deadline:
        if class_name in status.inner_text():
            digest = img.evaluate(DIGEST_JS)
            if digest != old_digest:
                return digest
        page.wait_for_timeout(300)
    raise CheckFailed(f"the map did not change to '{class_name}' within {UPDATE_S} s "
                      f"(status: {status.inner_text()!r})")


def browser_checks(page, url: str, checks: Checks) -> None:
    page.goto(url, wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=120_000)
    page.wait_for_function(KERNEL_IDLE_JS, timeout=120_000)
    checks.ok(True, "JupyterLab opened the notebook and its kernel is idle")

    cells = page.locator(".jp-Notebook .jp-CodeCell")
    run_cell(page, cells.first, checks, "first code cell (imports, model, samples)")
    explorer_cell = cells.filter(has_text=EXPLORER_CELL)
    checks.ok(explorer_cell.count() == 1, "the notebook has one saliency-explorer cell")
    run_cell(page, explorer_cell, checks, "the explorer cell")

    explorer = explorer_cell.locator(".saliency-explorer")
    explorer.wait_for(state="visible", timeout=60_000)
    select = explorer.locator(".saliency-class select")
    img = explorer.locator("img.saliency-map")
    img.wait_for(state="visible", timeout=60_000)
    page.wait_for_function("(el) => el.src && el.naturalWidth > 0", arg=img.element_handle(),
                           timeout=60_000)
    labels = [t.replace("\xa0", " ").strip() for t in select.locator("option").all_inner_texts()]
    checks.ok(len(labels) == 5 and all(" · p = " in t for t in labels),
              f"the widget renders: a class list with the top 5 ({labels[0]!r}, …)")
    status = explorer.locator(".saliency-status").inner_text()
    top1 = labels[0].split(" · ")[0]
    checks.ok(top1 in status and "map of" in status, f"the map is computed for the top class ({status!r})")
    before = img.evaluate(DIGEST_JS)
    checks.ok(int(before.split(":")[1]) > 1000, "the map image is a real picture")
    explorer.scroll_into_view_if_needed()
    explorer.screenshot(path=str(SHOTS / "01_saliency_explorer.png"))

    third = labels[2].split(" · ")[0]
    select.select_option(index=2)
    after = wait_for_update(page, explorer, before, third)
    checks.ok(after != before, f"choosing another class ({third!r}) changes the map")
    explorer.screenshot(path=str(SHOTS / "02_class_changed.png"))

    name_box = explorer.locator(".saliency-name input")
    name_box.fill("goldfish")
    name_box.press("Enter")
    by_name = wait_for_update(page, explorer, after, "goldfish")
    chosen = select.evaluate("(el) => el.options[el.selectedIndex].text").replace("\xa0", " ")
    checks.ok(by_name not in (before, after) and chosen.startswith("goldfish"),
              f"a class typed by name is added to the list and mapped ({chosen!r})")
    explorer.screenshot(path=str(SHOTS / "03_class_by_name.png"))
    page.screenshot(path=str(SHOTS / "04_jupyterlab.png"))


def ensure_deck(deck: Path) -> Path:
    """The deck to check: ``deck`` if it exists, else one built from the committed report."""
    if deck.is_file():
        return deck
    if deck != DECK:
        raise CheckFailed(f"no slides at {deck}")
    out = SHOTS / "deck"
    print(f"  (no {deck.relative_to(ROOT)}: building the deck from the committed report into "
          f"{out.relative_to(ROOT)}/)", flush=True)
    subprocess.run([sys.executable, "-m", "utils.course.report", "--no-execute", "--only", "07",
                    "--out", str(out)], cwd=ROOT, check=True, timeout=600)
    built = out / DECK.name
    if not built.is_file():
        raise CheckFailed(f"the report builder wrote no {built}")
    return built


def slides_checks(page, deck: Path, checks: Checks) -> None:
    """Every slide of ``deck`` at 1280 × 720: a screenshot each, and no content outside the slide."""
    shots = SHOTS / "slides"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(deck.resolve().as_uri(), wait_until="load", timeout=60_000)
    # nbconvert's deck loads reveal.js as a require.js module: fetch the same module as `Reveal`
    page.evaluate("""() => new Promise((done, fail) => {
        const src = [...document.scripts].map(s => s.text).join('\\n').match(/"([^"]*dist\\/reveal\\.js)"/);
        if (!src) { fail(new Error('the page loads no reveal.js')); return; }
        require([src[1]], (R) => { window.Reveal = R; done(true); }, fail);
    })""")
    page.wait_for_function("() => window.Reveal && Reveal.isReady && Reveal.isReady()", timeout=60_000)
    page.evaluate("() => Reveal.configure({transition: 'none', backgroundTransition: 'none'})")
    slides = page.evaluate("""() => Reveal.getSlides().map(s => {
        const i = Reveal.getIndices(s); return [i.h, i.v || 0]; })""")
    checks.ok(len(slides) >= 8, f"the deck opens with reveal.js: {len(slides)} slides")
    overflowing = []
    for n, (h, v) in enumerate(slides, 1):
        page.evaluate(f"() => Reveal.slide({h}, {v}, 999)")   # every fragment shown
        page.wait_for_timeout(400)                               # layout and MathJax settle
        page.screenshot(path=str(shots / f"slide_{n:02d}.png"))
        bad = page.evaluate(OVERFLOW_JS)
        if bad:
            title = page.evaluate("() => (Reveal.getCurrentSlide().querySelector('h1,h2,h3,p,img') "
                                  "|| {textContent: ''}).textContent.trim().slice(0, 60)")
            overflowing.append(f"slide {n} ({title!r}): {'; '.join(bad[:3])}")
    if errors:
        print(f"  note: the deck's scripts reported {len(errors)} error(s), first: {errors[0][:200]}")
    checks.ok(not overflowing, f"no slide overflows 1280 × 720 (screenshots in "
              f"{shots.relative_to(ROOT)}/)" + ("" if not overflowing else ":\n    "
                                                 + "\n    ".join(overflowing)))


def run_slides(deck: Path, checks: Checks) -> Exception | None:
    """The slides part of the check; the failure (or ``None``)."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    try:
        deck = ensure_deck(deck)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport=SLIDE_VIEWPORT)
                page.set_default_timeout(60_000)
                slides_checks(page, deck, checks)
            finally:
                browser.close()
    except (CheckFailed, PlaywrightError, OSError, subprocess.SubprocessError) as e:
        return e
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The browser checks: the saliency explorer in "
                                     "JupyterLab, and the report's slides at 1280 × 720.")
    part = parser.add_mutually_exclusive_group()
    part.add_argument("--explorer-only", action="store_true", help="only the explorer in JupyterLab")
    part.add_argument("--slides-only", action="store_true", help="only the report's slides")
    parser.add_argument("--deck", type=Path, default=DECK, help=f"the slides to check ({DECK.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).is_file():
        print(f"browser: Chromium is missing at {CHROMIUM}; install Debian's package: "
              "apt-get update && apt-get install -y chromium", file=sys.stderr)
        return 2
    try:
        import playwright.sync_api  # noqa: F401  (only whether it is there)
    except ImportError:
        print("browser: the playwright package is missing; pip install -e '.[browser]' "
              "(never `playwright install`: the check uses Debian's Chromium)", file=sys.stderr)
        return 2
    SHOTS.mkdir(parents=True, exist_ok=True)
    checks = Checks()
    failed = None if args.explorer_only else run_slides(args.deck, checks)
    if failed is None and not args.slides_only:
        failed = run_explorer(checks)
    return report(checks, failed)


def run_explorer(checks: Checks) -> Exception | None:
    """The explorer part of the check (JupyterLab); the failure (or ``None``)."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="saliency-browser-"))
    port, token = free_port(), secrets.token_hex(16)
    proc = None
    failed = None
    try:
        env = prepare(tmp)
        proc = start_server(tmp, env, port, token)
        wait_for_server(proc, port, token)
        checks.ok(True, f"JupyterLab answers on 127.0.0.1:{port} (token auth)")
        url = f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK.name}?token={token}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.set_default_timeout(60_000)
                try:
                    browser_checks(page, url, checks)
                except (CheckFailed, PlaywrightError) as e:
                    failed = e
                    try:
                        page.screenshot(path=str(SHOTS / "failure.png"))
                    except PlaywrightError:
                        pass
            finally:
                browser.close()
    except (CheckFailed, OSError) as e:
        failed = e
    finally:
        stop_server(proc, port, token, tmp)
        if failed is not None and (tmp / "server.log").is_file():
            print("---- last lines of the JupyterLab log ----", file=sys.stderr)
            print("\n".join((tmp / "server.log").read_text().splitlines()[-30:]), file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
    return failed


def report(checks: Checks, failed: Exception | None) -> int:
    """Print the verdict; the exit status."""
    elapsed = time.perf_counter() - checks.t0
    if failed is not None:
        print(f"FAILED: {type(failed).__name__}: {failed}", file=sys.stderr)
        print(f"screenshots in {SHOTS.relative_to(ROOT)}/ ({elapsed:.0f} s)")
        print(f"browser: {checks.passed} passed, 1 failed")
        return 1
    print(f"screenshots in {SHOTS.relative_to(ROOT)}/ ({elapsed:.0f} s)")
    print(f"browser: {checks.passed} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
