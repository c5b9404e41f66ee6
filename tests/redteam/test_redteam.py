"""The red-team suite: every kind of bad or dishonest submission in `cases.py` is graded
in one batch, sandboxed, beside honest victims, and its exact outcome asserted."""
from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import COURSE_ROOT, samples, sandbox
from cases import CASES, VICTIM_SECRET, VICTIMS

COURSE = Path(__file__).parent / "course"
ASSIGNMENT = "00_redteam"
SANDBOXED, WHY_NOT = sandbox.available()
if not SANDBOXED and os.environ.get("COURSE_REQUIRE_SANDBOX"):
    raise RuntimeError(f"COURSE_REQUIRE_SANDBOX is set but the sandbox cannot run: {WHY_NOT}")
CELL_TIMEOUT, JOB_TIMEOUT = "8", "40"


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def grade(subs: Path, workdir: Path, root: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COURSE_ROOT": str(root), "COURSE_CELL_TIMEOUT": CELL_TIMEOUT}
    return subprocess.run([sys.executable, "-m", "autograder.grade", "--no-progress", "--submissions",
                           str(subs), "--workdir", str(workdir), "--jobs", "2",
                           "--timeout", JOB_TIMEOUT, *extra],
                          cwd=workdir.parent, env=env, capture_output=True, text=True, timeout=1200)


def write_submission(subs: Path, student: str, answers: dict, root: Path, edit=None, folder=None):
    src = nbformat.read(root / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    release = nbformat.read(root / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    nb = samples.fill_solutions(release, src, answers)
    if edit:
        nb = edit(nb)
    path = subs / student / ASSIGNMENT
    path.mkdir(parents=True)
    nbformat.write(nb, path / f"{ASSIGNMENT}.ipynb")
    if folder:
        folder(path)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("redteam_course")
    shutil.copytree(COURSE, root, dirs_exist_ok=True)
    released = subprocess.run([sys.executable, "-m", "autograder.release"], cwd=root,
                              env={**os.environ, "COURSE_ROOT": str(root)}, capture_output=True, text=True)
    assert released.returncode == 0, released.stderr
    subs = tmp_path_factory.mktemp("submissions")
    cases = [c for c in CASES if SANDBOXED or not c.sandbox_only]
    for case in cases:
        write_submission(subs, case.name, case.answers, root, case.edit, case.folder)
    for student, (answers, _) in VICTIMS.items():
        write_submission(subs, student, answers, root)
    before, helpers_before = digest(subs), digest(COURSE_ROOT / "helpers")
    workdir = tmp_path_factory.mktemp("grading") / "work"
    proc = grade(subs, workdir, root)
    with (workdir / "grades.csv").open(encoding="utf-8") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    return dict(proc=proc, rows=rows, workdir=workdir, cases=cases, subs=subs, root=root,
                before=before, after=digest(subs), helpers_before=helpers_before)


def test_there_are_at_least_25_kinds():
    assert len({c.kind for c in CASES}) >= 25


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_outcome(batch, case):
    if case not in batch["cases"]:
        pytest.skip(f"needs the sandbox: {WHY_NOT}")
    row = batch["rows"][case.name]
    status, score, words = case.expect
    text = f"{row['flags']} {row['error']}"
    assert row["status"] == status, (case.kind, row, batch["proc"].stdout[-3000:])
    if score is None:
        assert row["auto_score"] == ""
    else:
        assert float(row["auto_score"]) == score, (case.kind, row)
    for word in words:
        assert word in text, (case.kind, text)
    if status == "graded":
        assert row["flags"] == "", f"{case.kind} should not be flagged: {row['flags']}"


def test_victims_keep_their_scores_and_files(batch):
    for student, (_, (status, score)) in VICTIMS.items():
        row = batch["rows"][student]
        assert (row["status"], float(row["auto_score"])) == (status, score), row
        assert row["flags"] == "", row
    assert batch["before"] == batch["after"], "the submitted folders changed"
    assert digest(COURSE_ROOT / "helpers") == batch["helpers_before"], "the course's helpers changed"
    # Same submission, same score: victim_a and its twin.
    assert batch["rows"]["victim_a"]["auto_score"] == batch["rows"]["twin_of_a"]["auto_score"]


def test_every_row_and_the_report_are_written(batch):
    expected = {c.name for c in batch["cases"]} | set(VICTIMS)
    assert set(batch["rows"]) == expected
    assert batch["proc"].returncode == 1            # some rows are errors, by design
    assert (batch["workdir"] / "report.html").stat().st_size > 1000
    sandboxed = {r["sandboxed"] for r in batch["rows"].values()}
    assert sandboxed == ({"yes"} if SANDBOXED else {f"no: {WHY_NOT}"})


def test_feedback_is_small_and_keeps_secrets(batch):
    feedback = batch["workdir"] / "feedback"
    huge = feedback / "huge_output" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    assert huge.exists() and huge.stat().st_size < 600_000, huge.stat().st_size
    for student in ("print_history", "read_classmate"):
        html = (feedback / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
        assert "REDTEAM_HIDDEN" not in html, f"{student}'s feedback shows a hidden test"
        if SANDBOXED:
            assert VICTIM_SECRET not in html, f"{student}'s feedback shows a classmate's answer"
    flagged = (feedback / "print_history" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "Flagged for your instructor to review" in flagged


@pytest.mark.skipif(not SANDBOXED, reason="without the sandbox a kernel's processes may outlive it")
def test_no_process_outlives_its_grading(batch):
    survivors = subprocess.run(["pgrep", "-f", "sleep 987"], capture_output=True, text=True).stdout
    assert survivors.strip() == "", "a process started by a submission is still running"


def test_without_the_sandbox_every_row_says_so(batch, tmp_path):
    subs = tmp_path / "subs"
    write_submission(subs, "honest", {}, batch["root"])
    proc = grade(subs, tmp_path / "work", batch["root"], "--no-sandbox")
    with (tmp_path / "work" / "grades.csv").open(encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    assert (row["status"], row["auto_score"]) == ("graded", "4"), proc.stdout
    assert row["sandboxed"].startswith("no: switched off")
    assert "WITHOUT the sandbox" in proc.stdout
