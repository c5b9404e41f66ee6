"""Instructor tooling: release student notebooks and autograde submissions.

Everything here drives nbgrader through :data:`CONFIG_FILE`
(``autograder/nbgrader_config.py``) with absolute paths, so it behaves the
same whatever the current directory is.

* ``python -m autograder.release [ASSIGNMENT ...]`` regenerates ``notebooks/``.
* ``python -m autograder.grade [--submissions PATH] ...`` grades a class (or,
  with no arguments, the bundled sample submissions).
* ``python -m autograder.validate [--invert] NOTEBOOK ...`` runs
  ``nbgrader validate`` and reports per notebook.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_FILE = PACKAGE_DIR / "nbgrader_config.py"
COURSE_ID = "cnn-design"

#: Directory names inside the course root (fixed layout of the course).
SOURCE_DIRNAME = "solutions"
RELEASE_DIRNAME = "notebooks"


def course_root() -> Path:
    """The course (repository) root: the directory holding ``solutions/``.

    ``COURSE_ROOT`` in the environment overrides it (the tests use this for
    fixture courses); otherwise it is the parent of this package.
    """
    env = os.environ.get("COURSE_ROOT")
    if env:
        return Path(env).resolve()
    return PACKAGE_DIR.parent


COURSE_ROOT = PACKAGE_DIR.parent


def list_assignments(root: Path | None = None) -> list[str]:
    """Assignment names: the sub-directories of ``solutions/`` holding a notebook."""
    src = Path(root or course_root()) / SOURCE_DIRNAME
    if not src.is_dir():
        return []
    return sorted(
        p.name
        for p in src.iterdir()
        if p.is_dir() and not p.name.startswith((".", "_")) and any(p.glob("*.ipynb"))
    )


def source_notebooks(assignment: str, root: Path | None = None) -> list[Path]:
    """The source notebooks of one assignment (checkpoints excluded)."""
    d = Path(root or course_root()) / SOURCE_DIRNAME / assignment
    return sorted(p for p in d.glob("*.ipynb") if p.is_file())


def nbgrader_env(root: Path | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for an nbgrader subprocess and the kernels it starts.

    The kernel runs inside ``autograded/<student>/<assignment>/``, so the course
    root goes on ``PYTHONPATH`` to make ``import helpers`` work there.
    """
    env = dict(os.environ)
    roots = [str(Path(root or course_root()))]
    if str(COURSE_ROOT) not in roots:
        roots.append(str(COURSE_ROOT))  # the real helpers/, also for fixture courses
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join(roots + ([old] if old else []))
    env["COURSE_ROOT"] = roots[0]
    # nbgrader's Gradebook runs the `alembic` executable: the venv's bin/ must be
    # on PATH even when the venv is not activated (e.g. `.venv/bin/python -m ...`).
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    # debugpy's "frozen modules" notice goes to stderr at kernel start-up.
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    if extra:
        env.update(extra)
    return env


def nbgrader_command(subcommand: str, *args: str, root: Path | None = None) -> list[str]:
    """``python -m nbgrader SUBCOMMAND --config=<ours> --CourseDirectory.*=<absolute> ARGS``."""
    r = Path(root or course_root())
    return [
        sys.executable,
        "-m",
        "nbgrader",
        subcommand,
        # nbgrader apps have no --config alias; the trait itself works. Given
        # without ".py" because nbgrader checks that "<config_file>.py" exists.
        f"--NbGrader.config_file={CONFIG_FILE.with_suffix('')}",
        f"--CourseDirectory.source_directory={r / SOURCE_DIRNAME}",
        *args,
    ]


def run_nbgrader(
    subcommand: str,
    *args: str,
    cwd: Path,
    root: Path | None = None,
    env_extra: dict[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess:
    """Run one nbgrader command in a subprocess; stdout and stderr merged."""
    return subprocess.run(
        nbgrader_command(subcommand, *args, root=root),
        cwd=str(cwd),
        env=nbgrader_env(root, env_extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
