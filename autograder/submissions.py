"""Finding, copying and checking the submissions of a class before they are graded."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat

from . import SOURCE_DIRNAME, source_notebooks
from .assemble import assemble
from .integrity import scan_cells
from .rows import Row


def is_inside(path: Path, parent: Path) -> bool:
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


def copy_submission(src: Path, dst: Path, row: Row | None = None) -> None:
    """Copy the submission's notebooks, and nothing else, into the work dir.

    Other files are left behind: a submitted ``helpers/`` folder would
    otherwise come first on the kernel's ``sys.path`` (its working directory)
    and replace the course's checks.
    """
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    others = []
    for path in sorted(src.iterdir()):
        if path.is_file() and not path.is_symlink() and path.suffix == ".ipynb":
            shutil.copy2(path, dst / path.name)
        elif path.name not in (".ipynb_checkpoints", "__pycache__"):
            others.append(path.name)
    if others and row is not None:
        row.notes.append(f"files other than notebooks were not used: {', '.join(others[:10])}")


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


def forbidden_apis(source: Path) -> dict[str, list[str]]:
    """``{answer grade id: forbidden APIs}`` declared in the source notebook's cell metadata."""
    out = {}
    for cell in nbformat.read(source, as_version=4).cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        forbidden = cell.get("metadata", {}).get("course", {}).get("forbidden")
        if gid and forbidden:
            out[gid] = list(forbidden)
    return out


def prepare(row: Row, subdir: Path, release_dir: Path, originals: Path, root: Path) -> Row:
    """Replace each submitted notebook by the notebook that is graded (see :mod:`assemble`).

    The submitted notebook is kept in ``originals``; the assembly's findings
    and the integrity scan of the student's cells go to ``row.flags`` and
    ``row.notes``.
    """
    for source in source_notebooks(row.assignment, root):
        path = subdir / source.name
        submitted = nbformat.read(path, as_version=4)
        release = nbformat.read(release_dir / source.name, as_version=4)
        result = assemble(submitted, release)
        if result.error:
            return row.fail(f"{source.name}: {result.error}")
        originals.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, originals / source.name)
        nbformat.write(result.notebook, path)
        row.flags += [f.message for f in result.findings if f.flag]
        row.notes += [f.message for f in result.findings if not f.flag]
        row.flags += scan_cells(result.student_cells, forbidden_apis(source))
    return row
