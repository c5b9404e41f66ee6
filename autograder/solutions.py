"""Reading the reference solutions out of the source notebooks.

Tests and benchmarks use this to exercise exactly the code the course
teaches, without a second copy of it anywhere.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from . import course_root, source_notebooks


def grade_id(cell) -> str | None:
    """The nbgrader grade id of a cell, or None for an ordinary cell."""
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def is_solution(cell) -> bool:
    """Whether nbgrader treats the cell as an answer cell."""
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


def strip_markers(source: str) -> str:
    """A source cell's text with the solution marker lines removed."""
    return "\n".join(line for line in source.splitlines()
                     if "BEGIN SOLUTION" not in line and "END SOLUTION" not in line)


def solution_sources(assignment: str, root: Path | None = None) -> dict[str, str]:
    """``{grade_id: solution code}`` for every solution cell of ``assignment``, markers removed."""
    sources: dict[str, str] = {}
    for path in source_notebooks(assignment, root):
        for cell in nbformat.read(path, as_version=4).cells:
            if is_solution(cell) and grade_id(cell):
                sources[grade_id(cell)] = strip_markers(cell.source)
    return sources


def load_solutions(assignment: str, grade_ids: list[str], namespace: dict | None = None) -> dict:
    """Execute the named solution cells, in the given order, and return their namespace.

    ``namespace`` supplies the imports those cells expect (``np``, ``nn``, ...).
    """
    sources = solution_sources(assignment)
    missing = [g for g in grade_ids if g not in sources]
    if missing:
        raise KeyError(f"{assignment} has no solution cell {missing}; known: {sorted(sources)}")
    ns = dict(namespace or {})
    for grade_id in grade_ids:
        exec(compile(sources[grade_id], f"<{assignment}:{grade_id}>", "exec"), ns)
    return ns
