"""`make lab` serves JupyterLab on notebooks/ without nbgrader's instructor tools;
`make formgrade` serves the instructor's view."""
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
TOKEN = "course-test-token"
INSTRUCTOR_PLUGINS = ["@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:course-list",
                      "@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:assignment-list"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url: str, follow: bool = True):
    """(status, headers, body) of a GET, without following redirects unless asked."""
    opener = urllib.request.build_opener(*([] if follow else [NoRedirect()]))
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, ""


@contextmanager
def make_server(target: str, tmp_path: Path, *extra: str):
    """Run `make <target>` on a free port; yield (base URL, log path) once it answers."""
    port = free_port()
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    log = tmp_path / f"{target}.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            ["make", "--no-print-directory", target, f"PORT={port}", *extra,
             f"LAB_ARGS=--ServerApp.token={TOKEN} --ServerApp.ip=127.0.0.1"],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "JupyterLab did not answer within 120 s"
            try:
                fetch(f"{base}/api/status?token={TOKEN}")
                break
            except OSError:
                time.sleep(1)
        yield base, log
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def page_config(html: str) -> dict:
    match = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                      html, re.S)
    assert match, "no page config in the JupyterLab page"
    return json.loads(match.group(1))


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
