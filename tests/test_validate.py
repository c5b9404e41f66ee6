"""`python -m autograder.validate` (nbgrader validate) tells passing from failing notebooks.

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

from autograder import COURSE_ROOT

FIXTURE_COURSE = Path(__file__).parent / "fixtures" / "course"


def run_validate(*args: str, root: Path = COURSE_ROOT) -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "autograder.validate", "--json", *args],
        cwd=root, env={**os.environ, "COURSE_ROOT": str(root)},
        capture_output=True, text=True, timeout=1200,
    )
    assert r.stdout.strip(), f"no output from autograder.validate:\n{r.stderr[-3000:]}"
    return json.loads(r.stdout)


# The course's own notebooks are not validated here: tests/test_autograde.py
# grades the reference (full marks: every test passes) and the untouched
# release (0: no test passes) of every assignment, which executes the same
# notebooks under nbgrader once per test session instead of twice.


def test_validate_passes_a_solution():
    src = FIXTURE_COURSE / "solutions" / "00_fixture" / "00_fixture.ipynb"
    res = run_validate(str(src), root=FIXTURE_COURSE)[str(src)]
    assert res["ok"] and not res["invert"], res["problems"]


def test_validate_detects_failures():
    """The check can fail: a source notebook validated with --invert passes its tests."""
    src = FIXTURE_COURSE / "solutions" / "00_fixture" / "00_fixture.ipynb"
    res = run_validate("--invert", str(src), root=FIXTURE_COURSE)[str(src)]
    assert not res["ok"]
    assert len(res["problems"]) == 2 and all("test passes" in p for p in res["problems"])
