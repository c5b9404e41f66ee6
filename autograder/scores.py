"""The scores of autograded submissions: read from nbgrader's gradebook by each worker, summed here."""
from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat

from . import source_notebooks
from .rows import Row, plain_number


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


def grades_of(gb, assignment: str, student: str) -> list[dict]:
    """Every grade of one submission, read from an open nbgrader ``Gradebook`` (in the worker)."""
    sub = gb.find_submission(assignment, student)
    return [{"notebook": snb.name, "name": g.name, "auto_score": g.auto_score,
             "manual_score": g.manual_score, "score": g.score, "max_score": g.max_score,
             "needs_manual_grade": bool(g.needs_manual_grade)}
            for snb in sub.notebooks for g in snb.grades]


def scores_file(workdir: Path, student: str, assignment: str) -> Path:
    return workdir / "scores" / student / f"{assignment}.json"


def read_scores(rows: list[Row], workdir: Path, root: Path) -> None:
    """Fill the scores of the autograded rows from what their workers read from the gradebook.

    The workers have nbgrader imported already; reading here would import it
    (5 s) in the grader's own process, serially.
    """
    todo = [r for r in rows if r.status == "autograded"]
    kinds = {a: cell_kinds(a, root) for a in {r.assignment for r in todo}}
    for row in todo:
        try:
            path = scores_file(workdir, row.student, row.assignment)
            if not path.exists():
                row.fail("no scores were read from the gradebook after autograde (see the log)")
                continue
            _read_row(json.loads(path.read_text()), row, kinds[row.assignment], workdir)
        except Exception as e:  # noqa: BLE001 - one bad row must not stop the class
            row.fail(f"scores could not be read: {type(e).__name__}: {e}")


def _read_row(grades: list[dict], row: Row, kinds: dict, workdir: Path) -> None:
    auto = auto_max = manual = pending = manual_max = 0.0
    timed_out, missing_tests = [], []
    for notebook in sorted({g["notebook"] for g in grades}):
        nb_path = workdir / "autograded" / row.student / row.assignment / f"{notebook}.ipynb"
        if not nb_path.exists():
            row.fail(f"nbgrader wrote no autograded {nb_path.name}")
            return
        timed_out += kernel_failures(nb_path)
    for g in grades:
        k, _ = kinds.get(g["notebook"], {}).get(g["name"], ("auto", 0))
        if k == "auto" and g["auto_score"] is None and g["manual_score"] is None:
            missing_tests.append(g["name"])
        if k == "auto":
            auto += g["score"]
            auto_max += g["max_score"]
        else:
            manual_max += g["max_score"]
            if g["needs_manual_grade"]:
                pending += g["max_score"]
            else:
                manual += g["score"]
    row.auto_score, row.auto_max = auto, auto_max
    row.manual_score, row.manual_pending, row.manual_max = manual, pending, manual_max
    if missing_tests:
        row.fail(f"test cell(s) {', '.join(missing_tests)} not run: missing from the submitted "
                 "notebook (deleted, or copied into a new notebook?); partial autograded score "
                 f"{plain_number(auto)}/{plain_number(auto_max)}")
    elif timed_out:
        row.fail(f"{'; '.join(timed_out)} (partial autograded score {plain_number(auto)}/{plain_number(auto_max)})")
    else:
        row.status = "graded"
