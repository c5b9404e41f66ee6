"""An OS-level sandbox for every grading kernel (Linux, bubblewrap).

nbgrader starts each kernel through a kernelspec. The grader installs one,
``course-sandbox``, whose command is this module::

    python -m autograder.sandbox kernel {connection_file} [kernel arguments...]

It runs (outside the sandbox, as the grader) in the submission's folder,
which nbclient makes the kernel's working directory, and replaces itself
with ``bwrap`` running ``ipykernel``. Inside, the kernel sees:

* its own submission folder (read-write), and nothing else of the grading
  work dir: no gradebook, no other student, no feedback;
* the course's student-facing ``helpers`` package, read-only; not
  ``solutions/``, not ``autograder/``, not the rest of the course;
* the Python environment and the system's libraries, read-only;
* a private, empty ``/tmp`` (also its ``HOME``), its own ``/proc`` and ``/dev``;
* no network (it talks to the grader over Unix sockets: ``transport = "ipc"``),
  its own PID namespace: every process it starts ends with it;
* limits: data memory (``COURSE_SANDBOX_MEMORY_MB``, default 3072), file
  size (512 MB), no core dumps.

Where ``bwrap`` is missing or cannot run (macOS, Windows, a container that
forbids namespaces), :func:`available` says why and the grader runs kernels
unsandboxed, marking every row "not sandboxed".
"""
from __future__ import annotations

import functools
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

KERNEL_NAME = "course-sandbox"
ENV_MEMORY_MB = "COURSE_SANDBOX_MEMORY_MB"
DEFAULT_MEMORY_MB = 3072
FILE_SIZE_LIMIT = 512 * 2**20
#: Variables a grading kernel may see; everything else of the grader's environment is dropped.
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "NBGRADER_EXECUTION", "COURSE_DEVICE",
              "COURSE_BUDGET", "COURSE_DATA", "COURSE_CELL_TIMEOUT", "COURSE_GRADING_SEED",
              "PYDEVD_DISABLE_FILE_VALIDATION", "CUDA_VISIBLE_DEVICES")
HELPERS_DIR = Path(__file__).resolve().parent.parent / "helpers"


@functools.lru_cache(maxsize=1)
def available() -> tuple[bool, str]:
    """(True, "") when bwrap can build the sandbox here, else (False, why not)."""
    if not sys.platform.startswith("linux"):
        return False, f"bubblewrap needs Linux (this is {sys.platform})"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False, "bubblewrap is not installed (Debian: apt-get install bubblewrap)"
    try:
        probe = subprocess.run([bwrap, *system_binds(), "--unshare-all", "--die-with-parent",
                                "--proc", "/proc", "--dev", "/dev", "--", "/bin/true"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bwrap could not run: {exc}"
    if probe.returncode != 0:
        return False, f"bwrap cannot create namespaces here: {probe.stderr.strip()[:200]}"
    return True, ""


def system_binds() -> list[str]:
    """Read-only binds of the system and of the Python environment."""
    paths = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc",
             sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(sys.executable).resolve().parent)]
    args, seen = [], set()
    for path in paths:
        real = os.path.realpath(path)
        if real in seen or not os.path.exists(real):
            continue
        seen.add(real)
        args += ["--ro-bind", real, real]
        if path != real and os.path.islink(path):
            args += ["--symlink", real, path]
    return args


def kernelspec(kernels_dir: Path) -> Path:
    """Write the ``course-sandbox`` kernelspec under ``kernels_dir``; return its folder."""
    folder = kernels_dir / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "autograder.sandbox", "kernel", "{connection_file}"],
        "display_name": "Python 3 (course grading sandbox)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
    return folder


def bwrap_command(submission: Path, connection_file: Path, kernel_args: list[str],
                  env: dict[str, str]) -> list[str]:
    """The bwrap command line that runs ipykernel for ``submission``."""
    submission, connection_dir = submission.resolve(), connection_file.resolve().parent
    helpers = HELPERS_DIR.resolve()
    # The private /tmp comes first: binds below it (a venv or a course under /tmp) go on top.
    cmd = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
           "--tmpfs", "/tmp", *system_binds(),
           "--proc", "/proc", "--dev", "/dev",
           "--ro-bind", str(helpers), str(helpers),
           "--bind", str(connection_dir), str(connection_dir),
           "--bind", str(submission), str(submission),
           "--chdir", str(submission), "--clearenv"]
    kernel_env = {k: env[k] for k in PASSED_ENV if k in env}
    kernel_env.update(HOME="/tmp", MPLCONFIGDIR="/tmp/matplotlib", PYTHONPATH=str(helpers.parent),
                      COURSE_SANDBOXED="1", PYTHONDONTWRITEBYTECODE="1")
    kernel_env.setdefault("PATH", "/usr/bin:/bin")
    for key, value in sorted(kernel_env.items()):
        cmd += ["--setenv", key, value]
    return cmd + ["--", sys.executable, "-m", "ipykernel_launcher", "-f", str(connection_file),
                  *kernel_args]


def _limit(kind: int, value: int) -> None:
    soft, hard = resource.getrlimit(kind)
    new = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(kind, (new, new))


def exec_kernel(connection_file: str, kernel_args: list[str]) -> None:
    """Replace this process with the sandboxed kernel (limits are inherited)."""
    memory_mb = int(os.environ.get(ENV_MEMORY_MB) or DEFAULT_MEMORY_MB)
    _limit(resource.RLIMIT_DATA, memory_mb * 2**20)
    _limit(resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT)
    _limit(resource.RLIMIT_CORE, 0)
    cmd = bwrap_command(Path.cwd(), Path(connection_file), kernel_args, dict(os.environ))
    os.execv(cmd[0], cmd)


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "kernel":
        exec_kernel(argv[1], argv[2:])
    ok, why = available()
    print("sandbox available" if ok else f"sandbox not available: {why}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
