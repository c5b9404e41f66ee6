"""Every untouched student notebook runs top to bottom (Run All), its checks saying "not
attempted yet" without stopping the run; every solution notebook runs top to bottom with
every check passing and every demonstration running in full.

Grading skips the demonstrations (``autograder.assemble.skip_demonstrations``), so the
solutions' demonstrations run here, once per session: each notebook (student and solution)
is executed once."""
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from helpers.demos import BROKEN, SKIPPED

from autograder import course_root, list_assignments

ROOT = course_root()
ONLY = [a for a in os.environ.get("COURSE_TEST_ONLY", "").split(",") if a]   # see test_autograde.py
ASSIGNMENTS = [a for a in list_assignments() if not ONLY or a in ONLY]


def execute(path: Path, monkeypatch) -> nbformat.NotebookNode:
    """Run a notebook in its own folder with the tiny budget on CPU, keeping going after errors."""
    monkeypatch.setenv("COURSE_BUDGET", "tiny")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    monkeypatch.setenv("COURSE_DATA", "synthetic")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")   # debugpy's start-up notice on stderr
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def outputs(cell, kind):
    return [o for o in cell.get("outputs", []) if o.output_type == kind]


def printed(cell) -> str:
    return "".join(o.text for o in outputs(cell, "stream") if o.name == "stdout")


def test_there_are_assignments():
    assert "01_pooling" in list_assignments()


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_student_notebook_runs_all(assignment, monkeypatch):
    """Run All on the untouched release: every code cell executes and none raises.

    Checks print one short "not attempted yet" line; demos that need the
    student's code print one line and carry on.
    """
    nb = execute(ROOT / "notebooks" / assignment / f"{assignment}.ipynb", monkeypatch)
    graded = [c for c in nb.cells if c.cell_type == "code"
              and c.metadata.get("nbgrader", {}).get("grade")]
    assert graded, "no graded test cells found"
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = [f"{o.ename}: {o.evalue}" for o in outputs(cell, "error")]
        assert not errors, f"Run All would stop at cell {index}: {errors}\n{cell.source}"
        assert cell.get("execution_count"), f"cell {index} did not run"
        stderr = [o.text for o in outputs(cell, "stream") if o.name == "stderr"]
        assert not stderr, f"cell {index} wrote to stderr: {stderr}"
        assert "Traceback" not in printed(cell), f"cell {index} printed a traceback"
    for cell in graded:
        text = printed(cell)
        assert text.startswith("✗") and "not attempted yet" in text, (
            f"check cell {cell.metadata.nbgrader.grade_id} printed {text!r}")
        assert "✓" not in text


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_notebook_runs_clean(assignment, monkeypatch):
    """The solution, as a student who solved every exercise runs it (tiny budget, CPU):
    every cell runs, none raises or writes to stderr, every check passes and no demo is
    skipped or stopped."""
    path = ROOT / "solutions" / assignment / f"{assignment}.ipynb"
    nb = execute(path, monkeypatch)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.get("execution_count"), f"cell {index} did not run"
        errors = [f"{o.ename}: {o.evalue}" for o in outputs(cell, "error")]
        assert not errors, f"cell {index} raised {errors}:\n{cell.source}"
        stderr = [o.text for o in outputs(cell, "stream") if o.name == "stderr"]
        assert not stderr, f"cell {index} wrote to stderr: {stderr}"
        text = printed(cell)
        if cell.metadata.get("nbgrader", {}).get("grade"):
            assert text.startswith("✓"), f"check cell {index} did not pass: {text!r}"
        for mark in (SKIPPED, BROKEN):
            assert mark not in text, f"cell {index} skipped or stopped its demo: {text!r}"
