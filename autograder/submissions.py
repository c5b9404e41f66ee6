"""Finding, copying and checking the submissions of a class before they are graded."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat

from . import SOURCE_DIRNAME, source_notebooks
from .rows import Row


def _is_inside(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def collect(incoming: Path, assignments: list[str] | None, known: list[str], log) -> tuple[list[Row], list[str]]:
    """Rows for every student × assignment found in ``incoming``."""
    students = sorted(p.name for p in incoming.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = {p.name for s in students for p in (incoming / s).iterdir() if p.is_dir() and not p.name.startswith(".")}
    for a in sorted(found - set(known)):
        log(f"warning: ignoring folder(s) named {a!r}: no such assignment in {SOURCE_DIRNAME}/")
    if assignments:
        graded = list(assignments)
    else:
        graded = [a for a in known if a in found]
    rows = []
    for s in students:
        for a in graded:
            row = Row(s, a)
            if not (incoming / s / a).is_dir():
                row.status, row.error = "missing", "no submission"
            rows.append(row)
    return rows, graded


def copy_submission(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))


def precheck(row: Row, subdir: Path, root: Path) -> Row:
    """Catch what nbgrader would crash on or silently score 0: missing or malformed notebooks."""
    expected = [p.name for p in source_notebooks(row.assignment, root)]
    present = sorted(p.name for p in subdir.glob("*.ipynb"))
    for name in expected:
        path = subdir / name
        if not path.exists():
            return row.fail(f"notebook {name} not found in the submission (found: {', '.join(present) or 'none'})")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            return row.fail(f"{name} cannot be read: {e}")
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            return row.fail(f"{name} is not valid JSON ({e.msg}: line {e.lineno} column {e.colno}): "
                            "the file is truncated or was edited outside Jupyter")
        try:
            nbformat.validate(nbformat.reads(text, as_version=4))
        except Exception as e:  # noqa: BLE001 - any failure means: not a notebook
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return row.fail(f"{name} is not a valid notebook: {msg[:200]}")
    return row
