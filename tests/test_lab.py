"""`make lab` serves JupyterLab on notebooks/ without nbgrader's instructor tools;
`make formgrade` serves the instructor's view."""
import json
import re

from lab_server import INSTRUCTOR_PLUGINS, TOKEN, fetch, make_server, page_config


def test_make_lab_opens_on_the_notebooks_without_instructor_tools(tmp_path):
    with make_server("lab", tmp_path) as (base, log):
        # The URL it prints, and the redirect of /, both lead to notebooks/.
        printed = re.findall(r"http://127\.0\.0\.1:\d+(/\S*)\?token=", log.read_text())
        assert printed and all(path == "/lab/tree/notebooks" for path in printed), printed
        status, headers, _ = fetch(f"{base}/?token={TOKEN}", follow=False)
        assert status == 302 and headers["Location"].startswith("/lab/tree/notebooks")

        _, _, listing = fetch(f"{base}/api/contents/notebooks?token={TOKEN}")
        assert "01_pooling" in {item["name"] for item in json.loads(listing)["content"]}

        # nbgrader's instructor plugins are off in the browser and on the server.
        _, _, html = fetch(f"{base}/lab/tree/notebooks?token={TOKEN}")
        disabled = page_config(html)["disabledExtensions"]
        assert set(INSTRUCTOR_PLUGINS) <= set(disabled)
        assert "@jupyter/nbgrader:validate-assignment" not in disabled   # students may validate
        assert fetch(f"{base}/formgrader?token={TOKEN}", follow=False)[0] == 404


def test_make_formgrade_gives_instructors_the_formgrader(tmp_path):
    grading = tmp_path / "grading"
    with make_server("formgrade", tmp_path, f"GRADING_DIR={grading}") as (base, _):
        status, headers, _ = fetch(f"{base}/?token={TOKEN}", follow=False)
        assert status == 302 and headers["Location"].startswith("/formgrader")
        status, _, html = fetch(f"{base}/formgrader?token={TOKEN}")
        assert status == 200 and "nbgrader" in html.lower()
        _, _, lab = fetch(f"{base}/lab?token={TOKEN}")
        assert not set(INSTRUCTOR_PLUGINS) & set(page_config(lab)["disabledExtensions"])
