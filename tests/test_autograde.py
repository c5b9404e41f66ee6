"""End-to-end autograding: the sample submissions get exactly their expected scores.

The grader runs as a subprocess (``python -m autograder.grade``), exactly as the
Makefile and an instructor run it, from a directory other than the course root.
Each grading run happens once per module (they take tens of seconds).
"""

from __future__ import annotations

import csv
import hashlib
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import COURSE_ROOT, list_assignments, source_notebooks
from autograder import samples
from autograder.assemble import SKIP_TAG

FIXTURE_COURSE = Path(__file__).parent / "fixtures" / "course"
#: COURSE_TEST_ONLY=05_efficientnet (comma-separated) grades and tests only those notebooks,
#: for an author working on one; the full suite grades them all.
ONLY = [a for a in os.environ.get("COURSE_TEST_ONLY", "").split(",") if a]
ASSIGNMENTS = [a for a in list_assignments(COURSE_ROOT) if not ONLY or a in ONLY]


def run_grade(*args: str, cwd: Path, root: Path = COURSE_ROOT, timeout: float = 900):
    return subprocess.run(
        [sys.executable, "-m", "autograder.grade", "--no-progress", *args],
        cwd=cwd, env={**os.environ, "COURSE_ROOT": str(root)},
        capture_output=True, text=True, timeout=timeout,
    )


def read_csv(path: Path) -> dict[tuple[str, str], dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return {(r["student"], r["assignment"]): r for r in csv.DictReader(f)}


def visible_text(path: Path) -> str:
    """The text a browser shows for an HTML file (tags removed, entities decoded)."""
    raw = path.read_text(encoding="utf-8")
    raw = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def hidden_lines(src: Path) -> list[str]:
    """Substantial lines of the hidden-test regions of a source notebook."""
    lines = []
    for cell in nbformat.read(src, as_version=4).cells:
        inside = False
        for ln in cell.source.splitlines():
            if "BEGIN HIDDEN TESTS" in ln:
                inside = True
            elif "END HIDDEN TESTS" in ln:
                inside = False
            elif inside and len(ln.strip()) >= 20:
                lines.append(ln.strip())
    return lines


# ------------------------------------------------------------ the real course
@pytest.fixture(scope="module")
def course_run(tmp_path_factory):
    if not ASSIGNMENTS:
        pytest.skip("no assignment in solutions/ yet")
    workdir = tmp_path_factory.mktemp("grading")
    only = [arg for a in ONLY for arg in ("--assignment", a)]
    proc = run_grade("--workdir", str(workdir), *only, cwd=tmp_path_factory.mktemp("cwd"))
    return proc, workdir


def test_samples_run_succeeds(course_run):
    proc, workdir = course_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "all samples graded as expected" in proc.stdout
    assert str(workdir / "grades.csv") in proc.stdout


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_sample_scores(course_run, assignment):
    _, workdir = course_run
    rows = read_csv(workdir / "grades.csv")
    ref = rows[("reference", assignment)]
    assert ref["status"] == "graded" and float(ref["auto_score"]) == float(ref["auto_max"]) > 0
    untouched = rows[("untouched", assignment)]
    assert untouched["status"] == "graded" and float(untouched["auto_score"]) == 0
    for student, fault in samples.FAULTS.get(assignment, {}).items():
        row = rows[(student, assignment)]
        assert row["status"] == "graded", row
        assert float(row["auto_score"]) == fault.expected, row
    bad = rows[("malformed", assignment)]
    assert bad["status"] == "error" and bad["auto_score"] == "" and "not valid JSON" in bad["error"]


def _outputs(cell, kind):
    return [o for o in cell.get("outputs", []) if o.output_type == kind]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_reference_notebook_runs_clean(course_run, assignment):
    """The reference solution as graded (tiny budget, CPU): the setup, answer and test cells
    run, none raises or writes to stderr, every check cell passes; the demonstrations (tagged
    by assemble.skip_demonstrations) are not run at all. ``test_notebooks.py`` runs the
    solutions in full, demonstrations included."""
    _, workdir = course_run
    for src in source_notebooks(assignment, COURSE_ROOT):
        graded = workdir / "autograded" / samples.REFERENCE / assignment / src.name
        nb = nbformat.read(graded, as_version=4)
        skipped = 0
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if SKIP_TAG in cell.metadata.get("tags", []):
                assert not cell.get("execution_count"), f"{src.name} cell {index} is a demonstration, yet it ran"
                assert not cell.metadata.get("nbgrader"), f"{src.name} cell {index} is graded, yet it was skipped"
                skipped += 1
                continue
            assert cell.get("execution_count"), f"{src.name} cell {index} did not run"
            errors = [f"{o.ename}: {o.evalue}" for o in _outputs(cell, "error")]
            assert not errors, f"{src.name} cell {index} raised {errors}:\n{cell.source}"
            stderr = [o.text for o in _outputs(cell, "stream") if o.name == "stderr"]
            assert not stderr, f"{src.name} cell {index} wrote to stderr (nbgrader scores that 0): {stderr}"
            printed = "".join(o.text for o in _outputs(cell, "stream") if o.name == "stdout")
            if cell.metadata.get("nbgrader", {}).get("grade"):
                assert printed.startswith("✓"), f"{src.name} check cell {index} did not pass: {printed!r}"
        assert skipped, f"{src.name}: no demonstration was skipped at grading"


# The exact (status, autograded score, autograded max) of every sample, per assignment.
# A new notebook adds its row here and its fault in autograder/samples.py.
EXPECTED_SCORES = {
    "01_pooling": {
        "reference": ("graded", "12", "12"),
        "untouched": ("graded", "0", "12"),
        "wrong_max_pool": ("graded", "10", "12"),
        "malformed": ("error", "", "12"),
    },
    "02_stride": {
        "reference": ("graded", "8", "8"),
        "untouched": ("graded", "0", "8"),
        "wrong_output_size": ("graded", "5", "8"),
        "malformed": ("error", "", "8"),
    },
    "03_vgg": {
        "reference": ("graded", "6", "6"),
        "untouched": ("graded", "0", "6"),
        "wrong_vgg_block": ("graded", "4", "6"),
        "malformed": ("error", "", "6"),
    },
    "04_resnet": {
        "reference": ("graded", "11", "11"),
        "untouched": ("graded", "0", "11"),
        "wrong_bottleneck_stride": ("graded", "9", "11"),
        "malformed": ("error", "", "11"),
    },
    # 05_efficientnet: expected scores go here
    "05_efficientnet": {
        "reference": ("graded", "11", "11"),
        "untouched": ("graded", "0", "11"),
        "wrong_mbconv_activation": ("graded", "8", "11"),
        "malformed": ("error", "", "11"),
    },
    # 06_design_principles: expected scores go here
    "06_design_principles": {
        "reference": ("graded", "9", "9"),
        "untouched": ("graded", "0", "9"),
        "relu_after_addition": ("graded", "6", "9"),
        "malformed": ("error", "", "9"),
    },
    # 07_exercises: expected scores go here
    "07_exercises": {
        "reference": ("graded", "21", "21"),
        "untouched": ("graded", "0", "21"),
        "wrong_lp_pooling": ("graded", "19", "21"),
        "malformed": ("error", "", "21"),
    },
}


def test_every_assignment_has_expected_scores():
    assert set(ASSIGNMENTS) <= set(EXPECTED_SCORES), "add the new notebook to EXPECTED_SCORES"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_scores_are_the_documented_ones(course_run, assignment):
    rows = read_csv(course_run[1] / "grades.csv")
    got = {s: (r["status"], r["auto_score"], r["auto_max"]) for (s, a), r in rows.items() if a == assignment}
    assert got == EXPECTED_SCORES[assignment]
    # The written answers wait for a human unless left untouched.
    written = sum(c.metadata["nbgrader"]["points"] for src in source_notebooks(assignment, COURSE_ROOT)
                  for c in nbformat.read(src, as_version=4).cells
                  if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade"))
    assert written > 0, "every notebook has a written question"
    assert float(rows[("reference", assignment)]["manual_pending"]) == written
    assert rows[("untouched", assignment)]["manual_pending"] == "0"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_feedback_hides_the_hidden_tests(course_run, assignment):
    _, workdir = course_run
    secrets = [ln for src in source_notebooks(assignment, COURSE_ROOT) for ln in hidden_lines(src)]
    assert secrets, "the assignment should have hidden tests"
    for student in ("reference", "untouched", *samples.FAULTS.get(assignment, {})):
        for src in source_notebooks(assignment, COURSE_ROOT):
            fb = workdir / "feedback" / student / assignment / f"{src.stem}.html"
            assert fb.exists(), fb
            text = visible_text(fb)
            assert "HIDDEN TESTS" not in text
            leaked = [s for s in secrets if s in text]
            assert not leaked, f"{fb} shows hidden test lines: {leaked[:3]}"
    assert not (workdir / "feedback" / "malformed").exists()


# ---------------------------------------------------------- the fixture course
@pytest.fixture(scope="module")
def fixture_class(tmp_path_factory):
    """A class of fixture submissions, graded with --submissions like a real one."""
    root = tmp_path_factory.mktemp("fixture_course")
    import shutil

    shutil.copytree(FIXTURE_COURSE, root, dirs_exist_ok=True)
    subs = tmp_path_factory.mktemp("submissions")
    # The release, as students would get it, then the samples built from it.
    r = subprocess.run([sys.executable, "-m", "autograder.release"], cwd=root,
                       env={**os.environ, "COURSE_ROOT": str(root)}, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    samples.build_samples("00_fixture", subs, root)
    src = nbformat.read(root / "solutions" / "00_fixture" / "00_fixture.ipynb", as_version=4)
    student_nb = nbformat.read(root / "notebooks" / "00_fixture" / "00_fixture.ipynb", as_version=4)
    crash = samples.fill_solutions(student_nb, src, {"mul": "import os\nos._exit(1)"})
    (subs / "crasher" / "00_fixture").mkdir(parents=True)
    nbformat.write(crash, subs / "crasher" / "00_fixture" / "00_fixture.ipynb")
    (subs / "wrong_name" / "00_fixture").mkdir(parents=True)
    nbformat.write(student_nb, subs / "wrong_name" / "00_fixture" / "homework.ipynb")
    (subs / "reference" / "99_unknown").mkdir()
    deleted = samples.fill_solutions(student_nb, src)
    deleted.cells = [c for c in deleted.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_mul"]
    (subs / "deleted_test" / "00_fixture").mkdir(parents=True)
    nbformat.write(deleted, subs / "deleted_test" / "00_fixture" / "00_fixture.ipynb")

    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in subs.rglob("*") if p.is_file()}
    workdir = tmp_path_factory.mktemp("fixture_grading")
    proc = run_grade("--submissions", str(subs), "--workdir", str(workdir), "--jobs", "2",
                     cwd=tmp_path_factory.mktemp("cwd"), root=root)
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in subs.rglob("*") if p.is_file()}
    return proc, workdir, subs, root, before, after


def test_class_grading_reports_every_submission(fixture_class):
    proc, workdir, *_ = fixture_class
    assert proc.returncode == 1, "errors in a class run give exit status 1"
    rows = read_csv(workdir / "grades.csv")
    got = {s: (r["status"], r["auto_score"]) for (s, _), r in rows.items()}
    assert got == {
        "reference": ("graded", "4"),
        "untouched": ("graded", "0"),
        "wrong_add": ("graded", "2"),
        "malformed": ("error", ""),
        "crasher": ("error", ""),
        "wrong_name": ("error", ""),
        # A deleted test cell is put back from the release and graded; the row is flagged.
        "deleted_test": ("flagged", "4"),
    }, proc.stdout
    assert "test cell test_mul was deleted" in rows[("deleted_test", "00_fixture")]["flags"]
    assert "00_fixture.ipynb not found in the submission (found: homework.ipynb)" in rows[("wrong_name", "00_fixture")]["error"]
    assert "the kernel died in cell mul" in rows[("crasher", "00_fixture")]["error"]
    assert "99_unknown" in proc.stdout + proc.stderr  # unknown assignment folders are pointed out
    # The table names the errors too.
    table = proc.stdout
    assert re.search(r"malformed\s+00_fixture\s+error", table)
    assert rows[("reference", "00_fixture")]["manual_max"] == "1"


def test_submissions_are_never_modified(fixture_class):
    _, _, _, _, before, after = fixture_class
    assert before == after


def test_fixture_feedback_and_tracebacks(fixture_class):
    _, workdir, *_ = fixture_class
    auto = (workdir / "autograded" / "wrong_add" / "00_fixture" / "00_fixture.ipynb").read_text()
    assert "FIXTURE_HIDDEN_SENTINEL_ADD" in auto  # the hidden tests did run
    fb = visible_text(workdir / "feedback" / "wrong_add" / "00_fixture" / "00_fixture.html")
    assert "FIXTURE_HIDDEN_SENTINEL" not in fb and "HIDDEN TESTS" not in fb
    assert "add(1, 2) should be 3" in fb  # the assertion message is shown...
    assert "Traceback" not in fb and "----> " not in fb  # ...as a minimal traceback


def test_grading_skips_the_demonstrations(fixture_class):
    """Only setup, answers and tests run at grading; a demo keeps its source, unrun, and the
    feedback says demonstrations are not re-run."""
    _, workdir, *_ = fixture_class
    nb = nbformat.read(workdir / "autograded" / "reference" / "00_fixture" / "00_fixture.ipynb", as_version=4)
    demo = next(c for c in nb.cells if "FIXTURE_DEMO_RAN" in c.source)
    assert not demo.get("outputs") and not demo.get("execution_count")
    ran = [c for c in nb.cells if c.cell_type == "code" and c is not demo]
    assert all(c.get("execution_count") for c in ran)
    fb = visible_text(workdir / "feedback" / "reference" / "00_fixture" / "00_fixture.html")
    assert "demonstrations and training runs were not re-run" in fb


def test_feedback_shows_unmarked_written_answers_as_pending(fixture_class):
    """An answered, unmarked written answer reads "pending", not 0, and is not in the total."""
    _, workdir, *_ = fixture_class
    fb = visible_text(workdir / "feedback" / "reference" / "00_fixture" / "00_fixture.html")
    assert "Score: pending (1 point, marked by hand)" in fb
    assert "(Score: 4.0 / 4.0, and 1 point pending: written answers marked by hand)" in " ".join(fb.split())
    assert "Score: 0.0 / 1.0" not in fb
    # An untouched written answer is not pending: it is marked 0 by nbgrader.
    untouched = visible_text(workdir / "feedback" / "untouched" / "00_fixture" / "00_fixture.html")
    assert "pending" not in untouched and "Score: 0.0 / 1.0" in untouched


def test_regrading_keeps_manual_grades(fixture_class, tmp_path):
    """Re-running on the same work dir keeps the gradebook and its manual grades."""
    _, workdir, subs, root, *_ = fixture_class
    set_grade = (
        "import sys, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "from nbgrader.api import Gradebook\n"
        "with Gradebook(sys.argv[1], 'cnn-design') as gb:\n"
        "    g = gb.find_grade('written_why', '00_fixture', '00_fixture', 'reference')\n"
        "    g.manual_score = 1.0\n"
        "    gb.db.commit()\n"
    )
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    r = subprocess.run([sys.executable, "-c", set_grade, f"sqlite:///{workdir / 'gradebook.db'}"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    before = read_csv(workdir / "grades.csv")
    before_ref_time = before[("reference", "00_fixture")]["graded_at"]
    only_ref = tmp_path / "subs"
    import shutil

    shutil.copytree(subs / "reference", only_ref / "reference")
    proc = run_grade("--submissions", str(only_ref), "--workdir", str(workdir), "--assignment", "00_fixture",
                     cwd=tmp_path, root=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = read_csv(workdir / "grades.csv")[("reference", "00_fixture")]
    assert (row["status"], row["auto_score"], row["manual_max"]) == ("graded", "4", "1")
    # nbgrader keeps the manual score and flags it for review after a regrade.
    assert row["manual_pending"] == "1"
    # grades.csv and the report still cover the whole class: the other rows are kept as they were.
    rows = read_csv(workdir / "grades.csv")
    assert rows[("wrong_add", "00_fixture")] == before[("wrong_add", "00_fixture")]
    assert set(rows) >= set(before) and rows[("reference", "00_fixture")]["graded_at"] >= before_ref_time
    assert all(r["graded_at"] for r in rows.values() if r["status"] != "missing")
    report = visible_text(workdir / "report.html")
    # The report counts the whole class (7 submissions, not the 1 re-graded) and still lists the others' problems.
    raw = (workdir / "report.html").read_text(encoding="utf-8")
    assert re.search(r"<td>00_fixture</td>(<td class=n>\d+</td>){4}<td class=n>7</td>", raw), raw
    assert "crasher" in report and "wrong_name" in report
    # The feedback of a marked answer shows its mark, not "pending".
    fb = visible_text(workdir / "feedback" / "reference" / "00_fixture" / "00_fixture.html")
    assert "Score: 1.0 / 1.0" in fb and "Score: pending" not in fb


def test_timeout_is_an_error(fixture_class, tmp_path):
    _, workdir, subs, root, *_ = fixture_class
    import shutil

    shutil.copytree(subs / "untouched", tmp_path / "subs" / "untouched")
    proc = run_grade("--submissions", str(tmp_path / "subs"), "--workdir", str(workdir), "--timeout", "1",
                     cwd=tmp_path, root=root)
    assert proc.returncode == 1
    row = read_csv(workdir / "grades.csv")[("untouched", "00_fixture")]
    assert row["status"] == "error" and "timed out" in row["error"]
