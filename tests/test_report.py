"""The class report (autograder/report.py) on a small fake work dir."""

from __future__ import annotations

import base64
import csv
import html
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from autograder import COURSE_ROOT
from autograder import report

FIXTURE_COURSE = Path(__file__).parent / "fixtures" / "course"
A = "00_fixture"
FIELDS = ["student", "assignment", "status", "auto_score", "auto_max", "manual_score", "manual_pending",
          "manual_max", "total_score", "total_max", "error", "flags", "sandboxed"]
HOSTILE = '<script>alert("id")</script>'
HOSTILE_FLAG = "reads the gradebook <img src=x onerror=alert(1)>"
CHECK_MUL = "✗ mul: the values are wrong."


class Tables(HTMLParser):
    """Every <table> of a page as a list of rows of cell texts."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tables, self._cell = [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def find(self, first_header: str) -> list[list[str]]:
        return next(t for t in self.tables if t and t[0] and t[0][0] == first_header)


def row(student, status, auto="", error="", flags="", sandboxed="yes", assignment=A, manual_pending=1):
    scored = status in ("graded", "flagged")
    return dict(student=student, assignment=assignment, status=status, auto_score=auto,
                auto_max=4 if scored else "", manual_score=0 if scored else "",
                manual_pending=manual_pending if scored else "", manual_max=1 if scored else "",
                total_score=auto, total_max=5 if scored else "", error=error, flags=flags, sandboxed=sandboxed)


def write_csv(workdir: Path, rows: list[dict]) -> None:
    with open(workdir / "grades.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)


def grade_cell(grade_id: str, *outputs) -> nbformat.NotebookNode:
    cell = new_code_cell("check()", metadata={"nbgrader": {
        "grade": True, "grade_id": grade_id, "locked": True, "points": 2, "schema_version": 3,
        "solution": False, "task": False}})
    cell.outputs = list(outputs)
    return cell


def autograded(workdir: Path, student: str, add: list, mul: list) -> None:
    nb = new_notebook(cells=[new_markdown_cell("# Fixture"), grade_cell("test_add", *add),
                             grade_cell("test_mul", *mul)])
    path = workdir / "autograded" / student / A / f"{A}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def error(ename: str, evalue: str, traceback: list[str] | None = None):
    return new_output("error", ename=ename, evalue=evalue, traceback=traceback or [f"{ename}: {evalue}"])


@pytest.fixture
def course(tmp_path) -> Path:
    root = tmp_path / "course"
    shutil.copytree(FIXTURE_COURSE, root)
    return root


@pytest.fixture
def workdir(tmp_path) -> Path:
    """Six graded rows (one score unreadable, two notebooks absent, one broken), a flagged,
    an errored row with a hostile student id and a missing one."""
    wd = tmp_path / "work"
    wd.mkdir()
    write_csv(wd, [
        row("alice", "graded", 4), row("bob", "graded", 2), row("erin", "graded", 4),
        row("frank", "graded", 2), row("gina", "graded", "abc"), row("harry", "graded", 4),
        row("carol", "flagged", 0, flags=HOSTILE_FLAG),
        row(HOSTILE, "error", error="notebook is not valid JSON <b>bold</b>"),
        row("dave", "missing", error="no submission"),
        row("ivan", "missing", assignment="01_other"),
    ])
    ok = new_output("stream", name="stdout", text="passed\n")
    autograded(wd, "alice", [ok], [ok])
    autograded(wd, "bob", [ok], [error("CheckFailed", f"{CHECK_MUL}\n    expected: 6\n    got:      5")])
    autograded(wd, "carol", [error("AssertionError", "add(1, 2) should be 3")],  # check message only in the traceback
               [error("CheckFailed", "", [f"\x1b[0;31mCheckFailed\x1b[0m: {CHECK_MUL}\n    expected: 6\n    got: 0"])])
    autograded(wd, "frank", [], [error("AssertionError", "mul(2, 3) should be 6")])
    broken = wd / "autograded" / "harry" / A / f"{A}.ipynb"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"cells": [{"cell_type": "code", "metad')  # truncated JSON
    return wd


def test_exercise_stats(workdir, course):
    rows = [r for r in report.read_rows(workdir / "grades.csv") if r["status"] in ("graded", "flagged")]
    stats, unavailable, note = report.exercise_stats(A, rows, workdir, course)
    assert note == ""
    by_id = {s["grade_id"]: s for s in stats}
    assert [s["grade_id"] for s in stats] == ["test_add", "test_mul"]  # notebook order; written_why is manual
    assert (by_id["test_add"]["passed"], by_id["test_add"]["failed"], by_id["test_add"]["na"]) == (3, 1, 3)
    assert (by_id["test_mul"]["passed"], by_id["test_mul"]["failed"], by_id["test_mul"]["na"]) == (1, 3, 3)
    assert by_id["test_mul"]["messages"].most_common(2) == [(CHECK_MUL, 2), ("AssertionError: mul(2, 3) should be 6", 1)]
    assert by_id["test_add"]["messages"] == {"AssertionError: add(1, 2) should be 3": 1}
    assert sorted((s, why.split(":")[0]) for s, _, why in unavailable) == [
        ("erin", "not found"), ("gina", "not found"), ("harry", "unreadable")]


def test_report_content(workdir, course):
    path = report.write_report(workdir, course)
    assert path == workdir / "report.html"
    text = path.read_text(encoding="utf-8")
    tables = Tables(text)

    status = tables.find("assignment")
    assert status[0] == ["assignment", "graded", "flagged", "error", "missing", "total"]
    assert status[1] == [A, "6", "1", "1", "1", "9"]
    assert status[2] == ["01_other", "0", "0", "0", "1", "1"]

    exercises = tables.find("exercise")
    assert exercises[1:] == [["test_add", "2", "3", "1", "3", "75 % (3/4)"],
                             ["test_mul", "2", "1", "3", "3", "25 % (1/4)"]]
    messages = tables.find("message")  # the first failing exercise's top messages: test_add
    assert messages[1:] == [["AssertionError: add(1, 2) should be 3", "1"]]
    mul_messages = [t for t in tables.tables if t[0] == ["message", "count"]][1]
    assert mul_messages[1] == [CHECK_MUL, "2"]

    # autograded score (manual grades all pending): 100, 50, 100, 50, 100 and 0 (flagged); "abc" skipped
    assert "autograded score" in text and "1 without a readable score skipped" in text
    assert "mean 66.7 %, median 75.0 %" in text
    assert "No graded submission." in text  # 01_other

    attention = tables.find("student")
    assert {(r[0], r[2]) for r in attention[1:]} == {(HOSTILE, "error"), ("carol", "flagged"),
                                                     ("dave", "missing"), ("ivan", "missing")}
    assert [r[3] for r in attention[1:] if r[0] == "carol"] == [HOSTILE_FLAG]
    assert [r[3] for r in attention[1:] if r[0] == "ivan"] == ["no submission"]

    images = text.count('src="data:image/png;base64,')
    assert images == 2  # one histogram, one pass-rate chart (01_other has neither)
    b64 = text.split('src="data:image/png;base64,', 1)[1].split('"', 1)[0]
    assert base64.b64decode(b64).startswith(b"\x89PNG\r\n\x1a\n")
    assert "http://" not in text and "https://" not in text and "<script" not in text.lower()


def test_hostile_data_is_escaped(workdir, course):
    text = report.write_report(workdir, course).read_text(encoding="utf-8")
    assert "<script" not in text and "<img src=x" not in text and "<b>bold" not in text
    assert html.escape(HOSTILE) in text and html.escape(HOSTILE_FLAG) in text


def test_sandbox_warning_only_when_a_row_says_no(workdir, course):
    text = report.write_report(workdir, course).read_text(encoding="utf-8")
    assert "without the sandbox" not in text
    rows = report.read_rows(workdir / "grades.csv")
    rows[1]["sandboxed"] = "no"
    write_csv(workdir, rows)
    text = report.write_report(workdir, course).read_text(encoding="utf-8")
    assert 'class="warn"' in text and "1 submission(s) were graded without the sandbox" in text


def test_total_score_once_every_written_answer_is_marked(workdir, course):
    rows = report.read_rows(workdir / "grades.csv")
    for r in rows:
        if r["status"] in ("graded", "flagged"):
            r["manual_pending"], r["manual_score"] = "0", "1"
            r["total_score"] = "5" if r["student"] != "gina" else "x"
    write_csv(workdir, rows)
    text = report.write_report(workdir, course).read_text(encoding="utf-8")
    assert "total score (autograded + manual)" in text
    # One answer still waiting for a human: the totals are not comparable yet.
    next(r for r in rows if r["status"] == "flagged")["manual_pending"] = "1"
    write_csv(workdir, rows)
    text = report.write_report(workdir, course).read_text(encoding="utf-8")
    assert "autograded score" in text and "total score (autograded + manual)" not in text


@pytest.mark.parametrize("content", ["", ",".join(FIELDS) + "\n"])
def test_empty_csv(tmp_path, course, content):
    (tmp_path / "grades.csv").write_text(content)
    text = report.write_report(tmp_path, course).read_text(encoding="utf-8")
    assert "No submission in grades.csv." in text and "data:image/png" not in text


def test_missing_source_and_odd_notebooks(workdir, course):
    (course / "solutions" / A / f"{A}.ipynb").write_text("not json")
    (workdir / "autograded" / "harry" / A / f"{A}.ipynb").write_text('{"cells": 3}')
    text = report.write_report(workdir, course).read_text(encoding="utf-8")
    assert "source notebook unreadable" in text
    exercises = Tables(text).find("exercise")
    assert [r[0] for r in exercises[1:]] == ["test_add", "test_mul"]  # found in the submissions


def test_failure_message():
    assert report.failure_message({"ename": "AssertionError", "evalue": ""}) == "AssertionError"
    assert report.failure_message({"ename": "NameError", "evalue": "name 'x' is not defined"}) == (
        "NameError: name 'x' is not defined")
    assert report.failure_message({"ename": "CheckFailed", "evalue": f"{CHECK_MUL}\n  got: 1"}) == CHECK_MUL


def test_try_write_report_never_raises(tmp_path, course):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    path, err = report.try_write_report(not_a_dir, course)
    assert path is None and err.startswith("report not written:")
    path, err = report.try_write_report(tmp_path, course)  # no grades.csv at all
    assert path == tmp_path / "report.html" and err == ""


def test_cli(workdir, course):
    proc = subprocess.run([sys.executable, "-m", "autograder.report", str(workdir), "--root", str(course)],
                          cwd=COURSE_ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "error"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(workdir / "report.html") and proc.stderr == ""
    assert (workdir / "report.html").is_file()
