"""One row of the grade table per student and assignment: the CSV and the printed table."""
from __future__ import annotations

import csv
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
            d["total_score"] = _num((self.auto_score or 0) + (self.manual_score or 0))
        else:
            d["total_score"] = ""
        d["total_max"] = _num((self.auto_max or 0) + (self.manual_max or 0)) if self.auto_max is not None else ""
        return {k: _num(d.get(k)) for k in CSV_FIELDS}


def _num(v):
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
        auto = f"{_num(r.auto_score)}/{_num(r.auto_max)}" if r.status in GRADED else "-"
        manual = f"{_num(r.manual_score)}/{_num(r.manual_max)}" if r.status in GRADED else "-"
        pending = str(_num(r.manual_pending)) if r.status in GRADED else "-"
        reason = "; ".join([r.error] * bool(r.error) + r.flags)
        cells = [r.student, r.assignment, r.status, auto, manual, pending, reason[:300]]
        if samples:
            cells.insert(6, "error" if r.expected is None else str(_num(r.expected)))
        lines.append(cells)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    widths[-1] = 0  # last column unpadded
    fmt = lambda cs: "  ".join(str(c).ljust(w) for c, w in zip(cs, widths)).rstrip()  # noqa: E731
    out = [fmt(head), fmt(["-" * w for w in widths[:-1]] + ["-----"])]
    out += [fmt(cs) for cs in lines]
    return "\n".join(out)


def write_csv(rows: list[Row], path: Path) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow(r.csv_dict())
    tmp.replace(path)


def sample_ok(row: Row) -> bool:
    if row.expected is None:
        return row.status == "error"
    return row.status == "graded" and row.auto_score == row.expected
