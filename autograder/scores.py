"""Reading the scores of autograded submissions from nbgrader's gradebook."""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import nbformat

from . import COURSE_ID, source_notebooks
from .rows import Row, _num


def cell_kinds(assignment: str, root: Path) -> dict[str, dict[str, tuple[str, float]]]:
    """``{notebook: {grade_id: ("auto" | "manual", points)}}`` from the source notebooks."""
    kinds: dict[str, dict[str, tuple[str, float]]] = {}
    for path in source_notebooks(assignment, root):
        nb = nbformat.read(path, as_version=4)
        cells = {}
        for cell in nb.cells:
            m = cell.get("metadata", {}).get("nbgrader", {})
            if m.get("grade") or m.get("task"):
                manual = bool(m.get("solution") or m.get("task"))
                cells[m["grade_id"]] = ("manual" if manual else "auto", float(m.get("points", 0)))
        kinds[path.stem] = cells
    return kinds


def kernel_failures(nb_path: Path) -> list[str]:
    """Why cells did not finish: "the kernel died in cell X", "cell X timed out after N s"."""
    nb = nbformat.read(nb_path, as_version=4)
    timeout = os.environ.get("COURSE_CELL_TIMEOUT", "300")
    reasons = []
    for index, cell in enumerate(nb.cells):
        name = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or f"#{index}"
        for out in cell.get("outputs", []) or []:
            if out.get("output_type") != "error":
                continue
            if out.get("ename") == "CellTimeoutError":
                reasons.append(f"time-out in cell {name} after {timeout} s (COURSE_CELL_TIMEOUT)")
            elif out.get("ename") == "DeadKernelError":
                reasons.append(f"the kernel died in cell {name} (it exited, crashed or ran out of memory)")
    return reasons


def read_scores(rows: list[Row], workdir: Path, root: Path) -> None:
    """Fill scores of the autograded rows from the gradebook."""
    todo = [r for r in rows if r.status == "autograded"]
    if not todo:
        return
    with warnings.catch_warnings():
        # nbgrader's gradebook uses SQLAlchemy patterns that newer SQLAlchemy
        # versions flag with deprecation warnings; they are not ours to fix.
        warnings.simplefilter("ignore")
        from nbgrader.api import Gradebook, MissingEntry

        kinds = {a: cell_kinds(a, root) for a in {r.assignment for r in todo}}
        env_path = os.environ.get("PATH", "")
        os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env_path])  # for alembic
        try:
            with Gradebook(f"sqlite:///{workdir / 'gradebook.db'}", COURSE_ID) as gb:
                for row in todo:
                    try:
                        _read_row(gb, row, kinds[row.assignment], workdir)
                    except MissingEntry:
                        row.fail("no submission in the gradebook after autograde")
                    except Exception as e:  # noqa: BLE001 - one bad row must not stop the class
                        row.fail(f"scores could not be read: {type(e).__name__}: {e}")
        finally:
            os.environ["PATH"] = env_path


def _read_row(gb, row: Row, kinds: dict, workdir: Path) -> None:
    sub = gb.find_submission(row.assignment, row.student)
    auto = auto_max = manual = pending = manual_max = 0.0
    timed_out, missing_tests = [], []
    for snb in sub.notebooks:
        kind = kinds.get(snb.name, {})
        nb_path = workdir / "autograded" / row.student / row.assignment / f"{snb.name}.ipynb"
        if not nb_path.exists():
            row.fail(f"nbgrader wrote no autograded {nb_path.name}")
            break
        timed_out += kernel_failures(nb_path)
        for g in snb.grades:
            k, _ = kind.get(g.name, ("auto", 0))
            if k == "auto" and g.auto_score is None and g.manual_score is None:
                missing_tests.append(g.name)
            if k == "auto":
                auto += g.score
                auto_max += g.max_score
            else:
                manual_max += g.max_score
                if g.needs_manual_grade:
                    pending += g.max_score
                else:
                    manual += g.score
    if row.status == "error":
        return
    row.auto_score, row.auto_max = auto, auto_max
    row.manual_score, row.manual_pending, row.manual_max = manual, pending, manual_max
    if missing_tests:
        row.fail(f"test cell(s) {', '.join(missing_tests)} not run: missing from the submitted "
                 "notebook (deleted, or copied into a new notebook?); partial autograded score "
                 f"{_num(auto)}/{_num(auto_max)}")
    elif timed_out:
        row.fail(f"{'; '.join(timed_out)} (partial autograded score "
                 f"{_num(auto)}/{_num(auto_max)})")
    else:
        row.status = "graded"
