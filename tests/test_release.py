"""The student notebooks in notebooks/ are exactly what solutions/ generates, and leak nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import COURSE_ROOT, list_assignments, source_notebooks
from autograder import release as rel

FIXTURE_COURSE = Path(__file__).parent / "fixtures" / "course"
ASSIGNMENTS = list_assignments(COURSE_ROOT)


@pytest.fixture(scope="module")
def generated() -> dict[str, dict[str, str]]:
    """A fresh generation of every assignment (nbgrader runs once per session)."""
    if not ASSIGNMENTS:
        pytest.skip("no assignment in solutions/ yet")
    return rel.generate(ASSIGNMENTS, COURSE_ROOT)


def test_release_is_in_sync_with_solutions(generated):
    rel.assert_release_in_sync(root=COURSE_ROOT, generated=generated)


def test_sync_check_fails_when_out_of_date(generated, tmp_path):
    """Prove the sync check can fail: a stale, missing or extra notebook is reported."""
    a = ASSIGNMENTS[0]
    shutil.copytree(COURSE_ROOT / "solutions", tmp_path / "solutions")
    shutil.copytree(COURSE_ROOT / "notebooks", tmp_path / "notebooks")
    nb_path = tmp_path / "notebooks" / a / f"{source_notebooks(a, COURSE_ROOT)[0].name}"
    rel.assert_release_in_sync(root=tmp_path, generated=generated)  # the copy is in sync

    nb = nbformat.read(nb_path, as_version=4)
    nb.cells[0].source += "\nAn edit made to the student notebook instead of the source."
    nbformat.write(nb, nb_path)
    (tmp_path / "notebooks" / a / "stray.ipynb").write_text(nb_path.read_text())
    with pytest.raises(rel.ReleaseOutOfDate) as err:
        rel.assert_release_in_sync(root=tmp_path, generated=generated)
    msg = str(err.value)
    assert "make release" in msg
    assert f"notebooks/{a}/{nb_path.name} differs" in msg
    assert "stray.ipynb has no source notebook" in msg

    nb_path.unlink()
    assert any("is missing" in p for p in rel.release_problems(root=tmp_path, generated=generated))


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_notebooks_have_no_outputs_and_no_secrets(assignment):
    for src in source_notebooks(assignment, COURSE_ROOT):
        path = COURSE_ROOT / "notebooks" / assignment / src.name
        assert path.exists(), f"{path} missing: run `make release`"
        text = path.read_text(encoding="utf-8")
        for marker in rel.MARKERS:
            assert marker not in text, f"{path} contains {marker!r}"
        student = nbformat.reads(text, as_version=4)
        for cell in student.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path}: cell {cell.id} has outputs"
        assert rel.find_leaks(nbformat.read(src, as_version=4), student, path) == []
        # The stubs students start from.
        assert "raise NotImplementedError" in text


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_committed_release_is_normalised(assignment):
    """Normalising a committed notebook changes nothing: the bytes are stable."""
    for path in sorted((COURSE_ROOT / "notebooks" / assignment).glob("*.ipynb")):
        text = path.read_text(encoding="utf-8")
        assert rel.dumps(rel.normalise(nbformat.reads(text, as_version=4))) == text


def test_leak_detection_catches_solution_and_hidden_lines():
    src = nbformat.read(FIXTURE_COURSE / "solutions" / "00_fixture" / "00_fixture.ipynb", as_version=4)
    leaky = nbformat.from_dict(src)
    for cell in leaky.cells:
        # What a broken release would look like: markers stripped but content kept.
        cell.source = "\n".join(ln for ln in cell.source.splitlines() if "###" not in ln)
        cell.metadata.get("nbgrader", {}).pop("checksum", None)
    problems = rel.find_leaks(src, leaky, "x.ipynb")
    text = "\n".join(problems)
    assert "FIXTURE_SOLUTION_ADD" in text and "FIXTURE_HIDDEN_SENTINEL_ADD" in text
    assert "FIXTURE_WRITTEN_ANSWER" in text
    assert rel.find_leaks(src, src, "x.ipynb"), "markers themselves are leaks"


def test_malformed_source_gives_a_clear_error(tmp_path):
    bad = tmp_path / "solutions" / "99_bad" / "99_bad.ipynb"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"cells": [', encoding="utf-8")
    with pytest.raises(rel.ReleaseError, match=r"99_bad\.ipynb: not a valid notebook"):
        rel.generate(["99_bad"], tmp_path)
    with pytest.raises(rel.ReleaseError, match="no source notebook for assignment 'nope'"):
        rel.generate(["nope"], tmp_path)


def test_release_cli_from_another_directory(tmp_path):
    """`python -m autograder.release` on the fixture course, run from an unrelated cwd."""
    course = tmp_path / "course"
    shutil.copytree(FIXTURE_COURSE, course)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "COURSE_ROOT": str(course)}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "autograder.release", *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=300)

    r = cli()
    assert r.returncode == 0, r.stdout + r.stderr
    out = course / "notebooks" / "00_fixture" / "00_fixture.ipynb"
    text = out.read_text(encoding="utf-8")
    assert "FIXTURE_SOLUTION" not in text and "FIXTURE_HIDDEN" not in text and "FIXTURE_WRITTEN" not in text
    assert 'raise NotImplementedError(\\"Replace this line with your solution.\\")' in text
    assert list((course / "notebooks" / "00_fixture").iterdir()) == [out], "only notebooks are released"
    assert not list(elsewhere.iterdir()), "nothing written to the current directory"

    # The source changes, the release does not: --check fails and says what to do.
    src = course / "solutions" / "00_fixture" / "00_fixture.ipynb"
    nb = nbformat.read(src, as_version=4)
    nb.cells[0].source += "\nNew text."
    nbformat.write(nb, src)
    r = cli("--check")
    assert r.returncode == 1
    assert "make release" in r.stderr and "00_fixture.ipynb differs" in r.stderr
