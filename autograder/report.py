"""A class report beside ``grades.csv``: ``<workdir>/report.html``.

    python -m autograder.report WORKDIR [--root COURSE_ROOT]

One self-contained HTML file (plots embedded as base64 PNG, no JavaScript):
submissions per status, the score distribution and the pass rate of every
exercise per assignment, the most frequent check messages, and the flagged,
errored and missing submissions with their reasons. Pass rates come from the
autograded notebooks (``autograded/<student>/<assignment>/<nb>.ipynb``) of the
``graded`` and ``flagged`` rows. Everything from the CSV or a notebook is
student data and is HTML-escaped. :func:`try_write_report` never raises, so a
report problem cannot break a grading run.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import json
import math
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from . import course_root, source_notebooks

STATUSES = ["graded", "flagged", "error", "missing"]
SCORED = ("graded", "flagged")  # rows whose score counts
TOP_MESSAGES = 5
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_CSS = """body{font-family:sans-serif;max-width:70em;margin:1em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #bbb;padding:.2em .6em;text-align:left;
vertical-align:top}th{background:#eee}td.n{text-align:right}.warn{background:#fdd;border:2px solid #c00;
padding:.6em;font-weight:bold}.note{color:#555}code{white-space:pre-wrap}"""

e = lambda x: html.escape(str(x), quote=True)  # noqa: E731 - every piece of data goes through this


# ----------------------------------------------------------------------- data
def read_rows(csv_path: Path) -> list[dict[str, str]]:
    """The rows of ``grades.csv`` as str dicts (missing cells are ``""``); none when absent or empty."""
    if not csv_path.is_file():
        return []
    with open(csv_path, newline="", encoding="utf-8", errors="replace") as f:
        return [{k: (v if isinstance(v, str) else "") for k, v in r.items() if isinstance(k, str)}
                for r in csv.DictReader(f)]


def _float(v) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _load_json_nb(path: Path) -> list[dict]:
    """The cells of a notebook, read as plain JSON (no nbformat validation, no warnings)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise ValueError("no list of cells")
    return [c for c in cells if isinstance(c, dict)]


def _nbgrader(cell: dict) -> dict:
    meta = cell.get("metadata")
    m = meta.get("nbgrader") if isinstance(meta, dict) else None
    return m if isinstance(m, dict) else {}


def _is_test(cell: dict) -> bool:
    m = _nbgrader(cell)
    return (cell.get("cell_type") == "code" and bool(m.get("grade")) and not m.get("solution")
            and not m.get("task") and isinstance(m.get("grade_id"), str))


def exercises(assignment: str, root: Path) -> list[tuple[str, str, float | None]]:
    """``(notebook, grade_id, points)`` of every autograded test cell, in notebook order."""
    out = []
    for path in source_notebooks(assignment, root):
        for cell in _load_json_nb(path):
            if _is_test(cell):
                out.append((path.stem, _nbgrader(cell)["grade_id"], _float(_nbgrader(cell).get("points"))))
    return out


def failure_message(out: dict) -> str:
    """The first line of a failure: ``✗ what: problem.`` for a check, else ``Ename: first line``."""
    ename = str(out.get("ename") or "Error")
    evalue = _ANSI.sub("", str(out.get("evalue") or ""))
    tb = out.get("traceback")
    tb_text = "\n".join(_ANSI.sub("", str(t)) for t in tb) if isinstance(tb, list) else ""
    for text in (evalue, tb_text):
        for line in text.splitlines():
            if "✗" in line:
                return _clip(line[line.index("✗"):])
    first = next((ln.strip() for ln in evalue.splitlines() if ln.strip()), "")
    return _clip(f"{ename}: {first}" if first else ename)


def _clip(s: str, n: int = 200) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


def cell_results(path: Path) -> dict[str, str | None]:
    """``{grade_id: None (passed) | first line of the failure}`` of an autograded notebook.

    A test cell fails on an error output, or on output to stderr (nbgrader gives it 0 too).
    """
    res: dict[str, str | None] = {}
    for cell in _load_json_nb(path):
        if not _is_test(cell):
            continue
        outs = [o for o in (cell.get("outputs") or []) if isinstance(o, dict)]
        msg = None
        errs = [o for o in outs if o.get("output_type") == "error"]
        if errs:
            msg = failure_message(errs[0])
        elif any(o.get("output_type") == "stream" and o.get("name") == "stderr" for o in outs):
            msg = "wrote to stderr (scored 0 by nbgrader)"
        res[_nbgrader(cell)["grade_id"]] = msg
    return res


def _inside(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
        return True
    except (ValueError, OSError):
        return False


def exercise_stats(assignment: str, rows: list[dict], workdir: Path, root: Path):
    """Pass counts and messages per exercise over ``rows`` (the graded and flagged ones).

    Returns ``(stats, unavailable, note)``: ``stats`` in notebook order, each a dict with
    ``notebook, grade_id, points, passed, failed, na, messages``; ``unavailable`` lists
    ``(student, notebook, reason)`` of the autograded notebooks that could not be read.
    """
    note, stats, unavailable = "", {}, []
    try:
        exs = exercises(assignment, root)
    except (OSError, ValueError) as exc:
        exs, note = [], f"source notebook unreadable ({type(exc).__name__}); exercises taken from the submissions"

    def stat(nb: str, gid: str, points: float | None = None) -> dict:
        return stats.setdefault((nb, gid), dict(notebook=nb, grade_id=gid, points=points, passed=0, failed=0,
                                                na=0, messages=Counter()))

    for nb, gid, points in exs:
        stat(nb, gid, points)
    notebooks = sorted({nb for nb, _, _ in exs})
    base = workdir / "autograded"
    for row in rows:
        folder = base / row.get("student", "") / assignment
        for path in [folder / f"{nb}.ipynb" for nb in notebooks] if exs else sorted(folder.glob("*.ipynb")):
            try:
                if not _inside(path, base):
                    raise ValueError("outside the work dir")
                results = cell_results(path)
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                why = "not found" if isinstance(exc, FileNotFoundError) else f"unreadable: {type(exc).__name__}"
                unavailable.append((row.get("student", ""), path.name, why))
                results = {}
            for gid in results:
                stat(path.stem, gid)
            for (nb, gid), s in stats.items():
                if nb != path.stem:
                    continue
                if gid not in results:
                    s["na"] += 1
                elif results[gid] is None:
                    s["passed"] += 1
                else:
                    s["failed"] += 1
                    s["messages"][results[gid]] += 1
    return list(stats.values()), unavailable, note


# -------------------------------------------------------------------- drawing
def _axes(height: float):
    """A figure on the Agg canvas, without pyplot: no global backend, no GUI, safe in any process."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, height))
    FigureCanvasAgg(fig)
    return fig.add_subplot()


def _png(ax) -> str:
    buf = io.BytesIO()
    ax.figure.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode("ascii")}">'


def _histogram(values: list[float], label: str) -> str:
    ax = _axes(2.8)
    ax.hist([min(100.0, max(0.0, v)) for v in values], bins=list(range(0, 101, 10)), color="#4a7ab5", edgecolor="white")
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"{label} (%)")
    ax.set_ylabel("submissions")
    ax.yaxis.get_major_locator().set_params(integer=True)
    return _png(ax)


def _pass_bars(stats: list[dict]) -> str:
    ax = _axes(0.6 + 0.35 * len(stats))
    labels = [s["grade_id"] for s in stats][::-1]
    rates = [100 * s["passed"] / max(1, s["passed"] + s["failed"]) for s in stats][::-1]
    ax.barh(range(len(labels)), rates, color="#5a9e5a")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlim(0, 100)
    ax.set_xlabel("passed (% of available submissions)")
    return _png(ax)


# ----------------------------------------------------------------------- html
def _table(head: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    th = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f'<td{" class=n" if i in numeric else ""}>{e(c)}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _assignment_section(a: str, rows: list[dict], workdir: Path, root: Path) -> str:
    scored = [r for r in rows if r.get("status") in SCORED]
    out = [f"<h2>Assignment {e(a)}</h2>"]
    # The total means something once every written answer is marked; until then, the autograded score.
    manual = (any((_float(r.get("manual_max")) or 0) > 0 for r in scored)
              and not any((_float(r.get("manual_pending")) or 0) > 0 for r in scored))
    key, label = ("total", "total score (autograded + manual)") if manual else ("auto", "autograded score")
    values = []
    for r in scored:
        s, m = _float(r.get(f"{key}_score")), _float(r.get(f"{key}_max"))
        if s is not None and m:
            values.append(100 * s / m)
    skipped = len(scored) - len(values)
    out.append(f"<h3>Scores</h3><p>{e(label)}: {key}_score / {key}_max over {len(scored)} graded or flagged "
               f"submission(s)" + (f"; {skipped} without a readable score skipped" if skipped else "") + ".</p>")
    if values:
        out.append(f"<p>mean {statistics.mean(values):.1f} %, median {statistics.median(values):.1f} %</p>")
        out.append(_histogram(values, label))
    else:
        out.append('<p class="note">No graded submission.</p>')
    stats, unavailable, note = exercise_stats(a, scored, workdir, root)
    out.append("<h3>Exercises</h3>")
    if note:
        out.append(f'<p class="note">{e(note)}</p>')
    if unavailable:
        shown = "; ".join(f"{s} / {nb}: {why}" for s, nb, why in unavailable[:10])
        more = f" and {len(unavailable) - 10} more" if len(unavailable) > 10 else ""
        out.append(f'<p class="note">{len(unavailable)} autograded notebook(s) not available: {e(shown)}{e(more)}</p>')
    if not stats:
        out.append('<p class="note">No test cell found.</p>')
        return "\n".join(out)
    many = len({s["notebook"] for s in stats}) > 1
    table = []
    for s in stats:
        n = s["passed"] + s["failed"]
        rate = f"{100 * s['passed'] / n:.0f} % ({s['passed']}/{n})" if n else "n/a"
        table.append([(f"{s['notebook']}: " if many else "") + s["grade_id"], "" if s["points"] is None else f"{s['points']:g}",
                      s["passed"], s["failed"], s["na"], rate])
    if any(s["passed"] + s["failed"] for s in stats):
        out.append(_pass_bars(stats))
    out.append(_table(["exercise", "points", "passed", "failed", "not available", "pass rate"], table, {1, 2, 3, 4}))
    failing = [s for s in stats if s["messages"]]
    if failing:
        out.append("<h3>Most frequent failures</h3>")
        for s in failing:
            out.append(f"<h4>{e(s['grade_id'])}</h4>" + _table(
                ["message", "count"], [[m, c] for m, c in s["messages"].most_common(TOP_MESSAGES)], {1}))
    return "\n".join(out)


def render(rows: list[dict], workdir: Path, root: Path) -> str:
    assignments = list(dict.fromkeys(r.get("assignment", "") for r in rows))
    statuses = STATUSES + sorted({r.get("status", "") for r in rows} - set(STATUSES))
    counts = Counter((r.get("assignment", ""), r.get("status", "")) for r in rows)
    parts = [f"<h1>Class report</h1><p class=note>{e(workdir / 'grades.csv')}, "
             f"{e(time.strftime('%Y-%m-%d %H:%M'))}</p>"]
    unsandboxed = sum(1 for r in rows if r.get("sandboxed", "").strip().lower() == "no")
    if unsandboxed:
        parts.append(f'<p class="warn" id="not-sandboxed">Warning: {unsandboxed} submission(s) were graded '
                     "without the sandbox (sandboxed = no): their code ran unconfined, with the grader's access.</p>")
    parts.append("<h2>Submissions</h2>")
    if not rows:
        parts.append('<p class="note">No submission in grades.csv.</p>')
    else:
        parts.append(_table(["assignment", *statuses, "total"],
                            [[a, *(counts[(a, s)] for s in statuses), sum(counts[(a, s)] for s in statuses)]
                             for a in assignments], set(range(1, len(statuses) + 2))))
    for a in assignments:
        parts.append(_assignment_section(a, [r for r in rows if r.get("assignment", "") == a], workdir, root))
    attention = [r for r in rows if r.get("status") != "graded" or r.get("flags") or r.get("error")]
    parts.append("<h2>Submissions needing attention (flagged, errors, missing)</h2>")
    if attention:
        parts.append(_table(["student", "assignment", "status", "reason"], [
            [r.get("student", ""), r.get("assignment", ""), r.get("status", ""),
             "; ".join(x for x in (r.get("flags", ""), r.get("error", "")) if x)
             or ("no submission" if r.get("status") == "missing" else "")] for r in attention]))
    else:
        parts.append('<p class="note">None.</p>')
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Class report</title>'
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def write_report(workdir: Path, root: Path | None = None) -> Path:
    """Write ``<workdir>/report.html`` from ``<workdir>/grades.csv``; return its path."""
    workdir = Path(workdir)
    root = Path(root or course_root())
    text = render(read_rows(workdir / "grades.csv"), workdir, root)
    path = workdir / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def try_write_report(workdir: Path, root: Path | None = None) -> tuple[Path | None, str]:
    """:func:`write_report` that never raises: ``(path, "")`` or ``(None, reason)``."""
    try:
        return write_report(workdir, root), ""
    except Exception as exc:  # noqa: BLE001 - a report must never break the grading run
        return None, f"report not written: {type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m autograder.report", description="Write <workdir>/report.html from <workdir>/grades.csv.")
    p.add_argument("workdir", type=Path, help="grading work dir holding grades.csv")
    p.add_argument("--root", type=Path, default=None, help="course root (default: this repository)")
    args = p.parse_args(argv)
    path, err = try_write_report(args.workdir, args.root)
    print(path if path else err, file=sys.stdout if path else sys.stderr)
    return 0 if path else 1


if __name__ == "__main__":
    sys.exit(main())
