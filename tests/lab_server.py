"""Start `make lab` / `make formgrade` on a free port for a test, and fetch pages from it."""
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
def make_server(target: str, tmp_path: Path, *extra: str, cwd: Path = ROOT, env: dict | None = None):
    """Run `make <target>` in ``cwd`` on a free port; yield (base URL, log path) once it answers."""
    port = free_port()
    env = dict(os.environ if env is None else env, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    log = tmp_path / f"{target}.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            ["make", "--no-print-directory", target, f"PORT={port}", *extra,
             f"LAB_ARGS=--ServerApp.token={TOKEN} --ServerApp.ip=127.0.0.1"],
            cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT,
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
