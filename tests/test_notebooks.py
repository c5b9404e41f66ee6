"""Every solution notebook runs top to bottom on CPU; every untouched student notebook says "not attempted yet"."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from autograder import course_root, list_assignments

ROOT = course_root()
ASSIGNMENTS = list_assignments()


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


def test_there_are_assignments():
    assert "01_pooling" in ASSIGNMENTS


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_notebook_runs_clean(assignment, monkeypatch):
    nb = execute(ROOT / "solutions" / assignment / f"{assignment}.ipynb", monkeypatch)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = [f"{o.ename}: {o.evalue}" for o in outputs(cell, "error")]
        stderr = [o.text for o in outputs(cell, "stream") if o.name == "stderr"]
        assert not errors, f"cell {index} raised {errors}:\n{cell.source}"
        assert not stderr, f"cell {index} wrote to stderr (nbgrader scores that 0): {stderr}"
        if cell.metadata.get("nbgrader", {}).get("grade"):
            printed = "".join(o.text for o in outputs(cell, "stream"))
            assert printed.startswith("✓"), f"check cell {index} did not pass: {printed!r}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_student_notebook_says_not_attempted(assignment, monkeypatch):
    nb = execute(ROOT / "notebooks" / assignment / f"{assignment}.ipynb", monkeypatch)
    graded = [c for c in nb.cells if c.cell_type == "code"
              and c.metadata.get("nbgrader", {}).get("grade")]
    assert graded, "no graded test cells found"
    for cell in graded:
        errors = outputs(cell, "error")
        assert len(errors) == 1, f"check cell {cell.metadata.nbgrader.grade_id} did not fail"
        rendered = "\n".join(errors[0].traceback)
        assert "not attempted yet" in rendered, rendered
        assert "Traceback" not in rendered, "checks should fail with a short message, not a traceback"
