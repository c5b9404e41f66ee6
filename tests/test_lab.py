"""`make lab` starts a JupyterLab server that serves the course's notebooks."""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "course-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def test_make_lab_serves_the_notebooks(tmp_path):
    port = free_port()
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    log = tmp_path / "lab.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            ["make", "--no-print-directory", "lab", f"PORT={port}",
             f"LAB_ARGS=--ServerApp.token={TOKEN} --ServerApp.ip=127.0.0.1"],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}/api/contents/notebooks?token={TOKEN}"
        listing, deadline = None, time.monotonic() + 120
        while listing is None and time.monotonic() < deadline:
            assert server.poll() is None, log.read_text()[-2000:]
            try:
                listing = get_json(base)
            except OSError:
                time.sleep(1)
        assert listing is not None, "JupyterLab did not answer within 120 s"
        assert "01_pooling" in {item["name"] for item in listing["content"]}
        inner = get_json(base.replace("/notebooks?", "/notebooks/01_pooling?"))
        assert "01_pooling.ipynb" in {item["name"] for item in inner["content"]}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
