"""Build the notebook that is graded from a submission: the release plus the student's answers.

A submission is untrusted. What nbgrader executes is not the submitted
notebook but the notebook as released, with only the contents of the answer
cells (nbgrader ``solution`` cells, matched by grade id) taken from the
submission. So:

* cells the student added are not run (they are still scanned, see
  :mod:`autograder.integrity`);
* test cells, demo cells and every cell's metadata come from the release: a
  deleted, edited or re-tagged test cell (``skip-execution``, ...) is put back
  as released, and a changed kernelspec is ignored;
* an answer cell that is missing keeps its stub (that exercise scores 0).

Each such event is reported as a :class:`Finding`; the ones that can only be
deliberate (test cell edited or deleted, metadata changed) flag the row.

Grading runs what decides the score and nothing else: the setup and imports
cells (the first two code cells), the answer cells and the test cells. Every
other code cell (demonstrations, training runs) is kept, with its source, and
tagged ``skip-execution`` (:func:`skip_demonstrations`), so it is not run; the
feedback says so.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import nbformat


@dataclass
class Finding:
    """Something the assembly noticed. ``flag`` findings make the row ``flagged``."""

    message: str
    flag: bool = True


@dataclass
class Assembly:
    notebook: nbformat.NotebookNode
    findings: list[Finding] = field(default_factory=list)
    #: (label, source) of every cell the student could edit: answers and added cells.
    student_cells: list[tuple[str, str]] = field(default_factory=list)
    error: str = ""          # non-empty: the submission cannot be graded


class DuplicateGradeId(ValueError):
    pass


#: nbclient's tag for a cell it does not execute (``NotebookClient.skip_cells_with_tag``).
SKIP_TAG = "skip-execution"
#: The setup cell and the imports cell, which every notebook starts with (AUTHORING.md §1).
SETUP_CELLS = 2


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _grade_id(cell) -> str | None:
    return _nbgrader(cell).get("grade_id")


def assemble(submitted: nbformat.NotebookNode, release: nbformat.NotebookNode) -> Assembly:
    """The graded notebook: ``release`` with the answers of ``submitted``."""
    by_id: dict[str, object] = {}
    duplicates: list[str] = []
    added: list[tuple[int, object]] = []
    # Cells of the release without a grade id (text, imports, demos): a submitted cell
    # that is one of them, unchanged, is not the student's; any other one is.
    released = {c.get("source", "") for c in release.cells if _grade_id(c) is None}
    for index, cell in enumerate(submitted.cells):
        gid = _grade_id(cell)
        if gid is None:
            if cell.get("source", "") not in released:
                added.append((index, cell))
            continue
        if gid in by_id:
            duplicates.append(gid)
        by_id[gid] = cell

    result = Assembly(notebook=copy.deepcopy(release))
    if duplicates:
        ids = ", ".join(sorted(set(duplicates)))
        result.error = (f"duplicate grade id {ids}: the notebook has two cells with that id "
                        "(a copied answer or test cell); keep one and resubmit")
        return result

    release_ids = {_grade_id(c) for c in release.cells} - {None}
    for cell in result.notebook.cells:
        gid, meta = _grade_id(cell), _nbgrader(cell)
        if gid is None:
            continue
        mine = by_id.get(gid)
        if meta.get("solution"):
            if mine is None:
                result.findings.append(Finding(f"answer cell {gid} is missing from the submission: "
                                               "graded as released (unanswered)", flag=False))
                continue
            if mine.get("cell_type") != cell.cell_type:
                result.findings.append(Finding(f"answer cell {gid} changed type to "
                                               f"{mine.get('cell_type')}: graded as unanswered"))
                continue
            cell.source = mine.get("source", "")
            result.student_cells.append((f"answer cell {gid}", cell.source))
            if _nbgrader(mine) != meta or _tags(mine) != _tags(cell):
                result.findings.append(Finding(f"metadata of answer cell {gid} was changed: "
                                               "the released metadata was used"))
        else:  # a test cell or another locked cell: always as released
            if mine is None:
                result.findings.append(Finding(f"test cell {gid} was deleted: restored from the release"))
                continue
            if mine.get("source", "") != cell.source:
                result.findings.append(Finding(f"test cell {gid} was edited: restored from the release"))
                result.student_cells.append((f"edited test cell {gid}", mine.get("source", "")))
            if _nbgrader(mine) != meta or _tags(mine) != _tags(cell):
                result.findings.append(Finding(f"metadata of test cell {gid} was changed "
                                               f"(tags {sorted(_tags(mine))}): restored from the release"))
    for gid in sorted(set(by_id) - release_ids):
        result.findings.append(Finding(f"cell with unknown grade id {gid} was not run"))
        result.student_cells.append((f"cell {gid}", by_id[gid].get("source", "")))

    code_added = [(i, c) for i, c in added if c.get("cell_type") == "code" and c.get("source", "").strip()]
    for index, cell in code_added:
        result.student_cells.append((f"added cell {index}", cell.get("source", "")))
    if code_added:
        result.findings.append(Finding(f"{len(code_added)} code cell(s) you added or changed outside "
                                       "the exercises were not run in grading: only the exercise "
                                       "cells are graded", flag=False))
    spec = submitted.get("metadata", {}).get("kernelspec", {}).get("name")
    if spec and spec != release.get("metadata", {}).get("kernelspec", {}).get("name"):
        result.findings.append(Finding(f"the notebook's kernel was changed to {spec!r}: "
                                       "graded with the course's kernel"))
    skip_demonstrations(result.notebook)
    return result


def _tags(cell) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []) or [])


def skip_demonstrations(notebook: nbformat.NotebookNode) -> int:
    """Tag every code cell that decides no score ``skip-execution``; return how many.

    Kept running: the first :data:`SETUP_CELLS` code cells and every cell with
    nbgrader metadata (answers, tests, locked cells).
    """
    skipped = 0
    code_cells = [c for c in notebook.cells if c.get("cell_type") == "code"]
    for cell in code_cells[SETUP_CELLS:]:
        if _nbgrader(cell):
            continue
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if SKIP_TAG not in tags:
            tags.append(SKIP_TAG)
        skipped += 1
    return skipped
