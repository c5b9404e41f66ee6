"""Running one grading job in its own process: time-outs, killing every process it started."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import nbgrader_env
from .rows import Row


def _kill_tree(pid: int) -> None:
    """Kill a process, its group and every descendant: jupyter_client starts each
    kernel in a session of its own, which a process-group kill would miss."""
    victims = []
    try:
        import psutil  # a dependency of ipykernel

        victims = psutil.Process(pid).children(recursive=True)
    except Exception:  # noqa: BLE001 - psutil missing or the process already gone
        pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for v in victims:
        try:
            v.kill()
        except Exception:  # noqa: BLE001 - already exited
            pass


def _run_logged(cmd: list[str], cwd: Path, env: dict, log_path: Path, timeout: float) -> tuple[int | None, str]:
    """Run ``cmd`` in its own process group; kill the group (kernels too) on time-out."""
    t0 = time.monotonic()
    with open(log_path, "a", encoding="utf-8") as logf:
        logf.write(f"$ {' '.join(cmd)}\n# started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        logf.flush()
        proc = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(proc.pid)
            proc.wait()
            rc = None
        logf.write(f"# exit status {rc} after {time.monotonic() - t0:.1f} s\n")
    return rc, log_path.read_text(encoding="utf-8", errors="replace")


def _kernel_reason(log: str) -> str | None:
    """The cause, named, when the kernel died or a cell timed out (see the worker's announcements)."""
    running = [ln.split("running cell", 1)[1].strip() for ln in log.splitlines() if "[course] running cell" in ln]
    cell = f" in cell {running[-1]}" if running else ""
    if "DeadKernelError" in log or "Kernel died" in log:
        return f"the kernel died{cell} (the code ended the process, crashed it or ran out of memory)"
    if "CellTimeoutError" in log or "Timeout waiting for execute reply" in log or "TimeoutError" in log:
        timeout = os.environ.get("COURSE_CELL_TIMEOUT", "300")
        return f"time-out{cell} after {timeout} s (COURSE_CELL_TIMEOUT)"
    return None


def _last_error(log: str) -> str:
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    errs = [ln for ln in lines if "ERROR" in ln or "Error" in ln]
    pick = errs[-1] if errs else (lines[-1] if lines else "no output")
    return pick[:300]


def autograde_one(row: Row, workdir: Path, root: Path, env_extra: dict, timeout: float,
                  sandboxed: bool = False) -> Row:
    """``nbgrader autograde`` then ``generate_feedback`` for one student and assignment.

    With ``sandboxed``, the job gets a private folder for its kernel's
    connection file and sockets (short, for the 108-byte limit of a socket
    path), which the sandbox binds and nothing else sees.
    """
    t0 = time.monotonic()
    logs = workdir / "logs" / row.student
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{row.assignment}.log"
    log_path.write_text("")
    env = nbgrader_env(root, env_extra)
    env.pop("COURSE_SANDBOX_RUNTIME", None)
    runtime = tempfile.mkdtemp(prefix="cnn-grade-") if sandboxed else None
    if runtime:
        env["COURSE_SANDBOX_RUNTIME"] = runtime
    cmd = [sys.executable, "-m", "autograder._worker", str(workdir), row.assignment, row.student]
    try:
        return _attempts(row, cmd, workdir, env, log_path, timeout, t0)
    finally:
        if runtime:
            shutil.rmtree(runtime, ignore_errors=True)


def _attempts(row: Row, cmd: list[str], workdir: Path, env: dict, log_path: Path, timeout: float,
              t0: float) -> Row:
    for attempt in range(3):
        rc, log = _run_logged(cmd, workdir, env, log_path, timeout)
        if rc is None:
            row.seconds = time.monotonic() - t0
            return row.fail(f"autograde timed out after {timeout:.0f} s (log: {log_path})")
        if rc != 3 or "database is locked" not in log:
            break
        time.sleep(1 + attempt)  # concurrent sqlite writers: retry
    if rc == 4:
        row.error = f"feedback not generated: {_last_error(log)} (log: {log_path})"
    elif rc != 0:
        row.seconds = time.monotonic() - t0
        reason = _kernel_reason(log) or f"nbgrader autograde failed: {_last_error(log)}"
        return row.fail(f"{reason} (log: {log_path})")
    row.status = "autograded"
    row.seconds = time.monotonic() - t0
    return row
