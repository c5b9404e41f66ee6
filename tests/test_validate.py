"""nbgrader validate: every source notebook passes all its tests, every student notebook none.

nbgrader runs in a subprocess (``python -m autograder.validate``), which keeps the
Jupyter stack's deprecation warnings out of this process (pytest turns
warnings into errors) and gives the kernels the course's PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import COURSE_ROOT, list_assignments, source_notebooks

FIXTURE_COURSE = Path(__file__).parent / "fixtures" / "course"
ASSIGNMENTS = list_assignments(COURSE_ROOT)


def run_validate(*args: str, root: Path = COURSE_ROOT) -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "autograder.validate", "--json", *args],
        cwd=root, env={**os.environ, "COURSE_ROOT": str(root)},
        capture_output=True, text=True, timeout=1200,
    )
    assert r.stdout.strip(), f"no output from autograder.validate:\n{r.stderr[-3000:]}"
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def course_results() -> dict:
    """Validate every source (all tests pass) and student (no test passes) notebook, once."""
    if not ASSIGNMENTS:
        pytest.skip("no assignment in solutions/ yet")
    return run_validate()


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_notebook_passes_every_test(course_results, assignment):
    for src in source_notebooks(assignment, COURSE_ROOT):
        res = course_results[str(src)]
        assert not res["invert"]
        assert res["ok"], f"{src}: " + "\n".join(res["problems"])


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_notebook_passes_no_test(course_results, assignment):
    for src in source_notebooks(assignment, COURSE_ROOT):
        path = COURSE_ROOT / "notebooks" / assignment / src.name
        assert str(path) in course_results, f"{path} missing: run `make release`"
        res = course_results[str(path)]
        assert res["invert"]
        assert res["ok"], f"{path}: " + "\n".join(res["problems"])


def test_validate_detects_failures():
    """The check can fail: a source notebook validated with --invert passes its tests."""
    src = FIXTURE_COURSE / "solutions" / "00_fixture" / "00_fixture.ipynb"
    res = run_validate("--invert", str(src), root=FIXTURE_COURSE)[str(src)]
    assert not res["ok"]
    assert len(res["problems"]) == 2 and all("test passes" in p for p in res["problems"])
