"""One row of the grade table per student and assignment: the CSV and the printed table."""
from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

CSV_FIELDS = [
    "student",
    "assignment",
    "status",
    "auto_score",
    "auto_max",
    "manual_score",
    "manual_pending",
    "manual_max",
    "total_score",
    "total_max",
    "error",
    "flags",
    "notes",
    "sandboxed",
    "graded_at",
]
GRADED = ("graded", "flagged")   # statuses that carry a score


@dataclass
class Row:
    student: str
    assignment: str
    status: str = "pending"  # graded | flagged | error | missing
    auto_score: float | None = None
    auto_max: float | None = None
    manual_score: float | None = None
    manual_pending: float | None = None
    manual_max: float | None = None
    error: str = ""
    flags: list[str] = field(default_factory=list)    # integrity findings: the row is "flagged"
    notes: list[str] = field(default_factory=list)    # what the student should know, not suspicious
    sandboxed: str = ""
    graded_at: str = ""      # when this row was last graded (UTC, ISO 8601): the CSV keeps older rows
    expected: float | None | str = field(default="", repr=False)  # samples only
    seconds: float = field(default=0.0, repr=False)

    def fail(self, reason: str) -> "Row":
        self.status, self.error = "error", reason
        return self

    def csv_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k in CSV_FIELDS}
        d["flags"], d["notes"] = "; ".join(self.flags), "; ".join(self.notes)
        if self.status not in GRADED:  # never a score that looks like a grade
            d.update(auto_score=None, manual_score=None, manual_pending=None)
        if self.status in GRADED:
            d["total_score"] = plain_number((self.auto_score or 0) + (self.manual_score or 0))
        else:
            d["total_score"] = ""
        d["total_max"] = plain_number((self.auto_max or 0) + (self.manual_max or 0)) if self.auto_max is not None else ""
        return {k: plain_number(d.get(k)) for k in CSV_FIELDS}


def plain_number(v):
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def format_table(rows: list[Row], samples: bool) -> str:
    head = ["student", "assignment", "status", "auto", "manual", "pending", "error / flags"]
    if samples:
        head.insert(6, "expected")
    lines = []
    for r in rows:
        auto = f"{plain_number(r.auto_score)}/{plain_number(r.auto_max)}" if r.status in GRADED else "-"
        manual = f"{plain_number(r.manual_score)}/{plain_number(r.manual_max)}" if r.status in GRADED else "-"
        pending = str(plain_number(r.manual_pending)) if r.status in GRADED else "-"
        reason = "; ".join([r.error] * bool(r.error) + r.flags)
        cells = [r.student, r.assignment, r.status, auto, manual, pending, reason[:300]]
        if samples:
            cells.insert(6, "error" if r.expected is None else str(plain_number(r.expected)))
        lines.append(cells)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    widths[-1] = 0  # last column unpadded
    fmt = lambda cs: "  ".join(str(c).ljust(w) for c, w in zip(cs, widths)).rstrip()  # noqa: E731
    out = [fmt(head), fmt(["-" * w for w in widths[:-1]] + ["-----"])]
    out += [fmt(cs) for cs in lines]
    return "\n".join(out)


def write_csv(rows: list[Row], path: Path) -> None:
    """Write ``grades.csv`` for the whole class: this run's rows, and every earlier row kept.

    A row of this run replaces the earlier row of the same student and
    assignment, except that a "missing" row (no folder this time) never
    replaces a row that was graded before. The file is replaced atomically.
    """
    try:
        earlier = read_csv_rows(path)
    except (OSError, csv.Error, UnicodeDecodeError):   # unreadable: keep it aside, never lose it
        earlier = []
        path.replace(path.with_name(f"{path.stem}.unreadable-{int(time.time())}.csv"))
    merged = {(r["student"], r["assignment"]): r for r in earlier}
    for row in rows:
        new = row.csv_dict()
        old = merged.get((row.student, row.assignment))
        if row.status == "missing" and old and old.get("status") != "missing":
            continue
        merged[(row.student, row.assignment)] = new
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore", restval="")
        w.writeheader()
        for key in sorted(merged, key=lambda k: (k[1], k[0])):   # by assignment, then student
            w.writerow(merged[key])
    tmp.replace(path)


def read_csv_rows(path: Path) -> list[dict]:
    """The rows of an existing ``grades.csv`` (none when there is none yet)."""
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r.get("student") and r.get("assignment")]


def sample_ok(row: Row) -> bool:
    if row.expected is None:
        return row.status == "error"
    return row.status == "graded" and row.auto_score == row.expected
