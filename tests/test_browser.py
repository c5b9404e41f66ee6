"""A student's first minutes, in a real browser: JupyterLab from `make lab` in headless Chromium.

Opens the landing page, runs notebook 01 with Run → Run All Cells, sees every
code cell executed and the pooling explorer widget drawn, then fills in one
exercise and sees its ✓ line. Uses Debian's `chromium` driven by Playwright
(`.ci/run` installs both); set COURSE_REQUIRE_BROWSER=1 to fail instead of
skipping when they are missing.
"""
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from lab_server import ROOT, TOKEN, make_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NOTEBOOK = "notebooks/01_pooling/01_pooling.ipynb"
GAP_ANSWER = '''class GlobalAveragePooling(nn.Module):
    """(N, C, H, W) -> (N, C)."""

    def forward(self, x):
        return x.mean(dim=(2, 3))
'''


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if CHROMIUM is None:
        return "Debian's chromium is not installed (apt-get install chromium)"
    return None


if _missing():
    if os.environ.get("COURSE_REQUIRE_BROWSER"):
        raise RuntimeError(f"COURSE_REQUIRE_BROWSER is set but {_missing()}")
    pytest.skip(_missing(), allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def course_copy(tmp_path_factory) -> Path:
    """The tracked files of the course, so JupyterLab's autosave never touches the repository."""
    copy = tmp_path_factory.mktemp("course")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    return copy


@pytest.fixture(scope="module")
def page(course_copy, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lab")
    # Render every cell (JupyterLab 4 otherwise keeps only the visible cells in the page).
    settings = tmp / "settings"
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}')
    env = dict(os.environ, COURSE_BUDGET="tiny", COURSE_DEVICE="cpu", COURSE_DATA="synthetic",
               JUPYTERLAB_SETTINGS_DIR=str(settings))
    # The copy uses the repository's .venv, and must never re-install the course into it
    # (`-o`: take the install stamp as up to date), or the editable install would point at the copy.
    venv = ROOT / ".venv"
    with make_server("lab", tmp, f"VENV={venv}", "-o", f"{venv}/.course-installed", cwd=course_copy,
                     env=env) as (base, _):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(f"{base}/?token={TOKEN}")
            yield page
            browser.close()


def code_cells(page):
    return page.locator(".jp-Notebook .jp-CodeCell")


def test_landing_page_shows_the_notebooks(page):
    assert "/lab/tree/notebooks" in page.url
    listing = page.locator(".jp-DirListing-content")
    expect(listing.get_by_text("01_pooling", exact=True)).to_be_visible()
    expect(page.get_by_text("Formgrader")).to_have_count(0)


def test_run_all_on_the_untouched_notebook(page, course_copy):
    base = page.url.split("/lab")[0]
    page.goto(f"{base}/lab/tree/{NOTEBOOK}")
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1)

    def run_all():
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

    run_all()
    cells = code_cells(page)
    total = cells.count()
    assert total > 15
    # Every code cell gets an execution count: "[n]:", never "[ ]:" or "[*]:".
    prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt")
    start = time.monotonic()
    deadline, retried = start + 240, False
    while True:
        texts = [t.strip() for t in prompts.all_text_contents()]
        pending = [i for i, t in enumerate(texts) if not re.fullmatch(r"\[\d+\]:", t)]
        busy = any("*" in t for t in texts)
        started = busy or len(pending) < len(texts)
        if not started and not retried and time.monotonic() > start + 30:
            # On a loaded machine the kernel can still be connecting when the menu is used,
            # and the click queues nothing: ask once more.
            run_all()
            retried = True
        if not pending or (not busy and started and time.monotonic() > start + 40) \
                or (not started and time.monotonic() > start + 90) or time.monotonic() > deadline:
            break
        page.wait_for_timeout(1000)
    if pending:
        page.screenshot(path=str(course_copy / "run_all.png"), full_page=True)
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        raise AssertionError(f"Run All left code cells {pending} of {total} unexecuted "
                             f"(prompts {texts}); error outputs: {errors.all_text_contents()[:3]}")

    # No cell shows an error; the checks say "not attempted yet".
    expect(page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
           .filter(has_text="Traceback")).to_have_count(0)
    assert page.get_by_text("not attempted yet").count() >= 5
    # The pooling explorer widget is drawn: its sliders and its picture.
    widget = page.locator(".jp-OutputArea-output .widget-vbox, .jp-OutputArea-output .widget-box").first
    expect(widget).to_be_visible()
    expect(widget.locator(".widget-slider").first).to_be_visible()
    expect(widget.locator("img").first).to_be_visible()


def test_filling_in_an_exercise_shows_its_tick(page):
    cells = code_cells(page)
    answer = cells.filter(has_text="class GlobalAveragePooling")
    expect(answer).to_have_count(1)
    editor = answer.locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(GAP_ANSWER)
    page.keyboard.press("Shift+Enter")               # runs the answer, moves to the check cell
    page.keyboard.press("Shift+Enter")               # runs the check
    check = cells.filter(has_text="checks.check_global_average_pooling(GlobalAveragePooling)")
    expect(check.locator(".jp-OutputArea-output")).to_contain_text(
        "✓ GlobalAveragePooling: passed", timeout=60_000)
