"""Autograde submissions with nbgrader and write a gradebook CSV.

    python -m autograder.grade                          # the bundled sample submissions
    python -m autograder.grade --submissions PATH       # a class: PATH/<student>/<assignment>/*.ipynb
    python -m autograder.grade PATH                     # the same
        [--assignment A ...] [--workdir DIR] [--jobs N] [--timeout S] [--device cuda]

Submissions are copied into ``<workdir>/submitted/`` (the originals are never
modified); each (student, assignment) is autograded by its own
``nbgrader autograde`` process, ``--jobs`` at a time, then feedback is generated
with the hidden tests removed. Scores are read from the gradebook
(``<workdir>/gradebook.db``) into ``<workdir>/grades.csv`` and printed.

Re-running on the same work dir is safe: the gradebook, and the manual grades
in it, are kept; submissions are re-copied and re-autograded (nbgrader keeps a
manual grade and flags the cell for review again).

A submission that cannot be graded (missing notebook, invalid JSON, nbgrader
crash, time-out) gets status ``error`` and a reason, never a silent 0.

Exit status: with ``--submissions``, 0 when every submission was graded and 1
when any has status ``error`` (the CSV is written either way); for the samples,
0 when every sample got exactly its expected outcome (the ``malformed`` sample
*must* be an error), 1 otherwise; 2 when grading could not run at all.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from . import (
    CONFIG_FILE,
    COURSE_ID,
    SOURCE_DIRNAME,
    course_root,
    list_assignments,
    nbgrader_env,
    run_nbgrader,
    source_notebooks,
)
from . import samples as samples_mod

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
]
DEFAULT_TIMEOUT = 1800  # seconds for one student's whole autograde of one assignment


class GradingError(RuntimeError):
    """Grading could not run at all (bad course, nbgrader cannot register it...)."""


@dataclass
class Row:
    student: str
    assignment: str
    status: str = "pending"  # graded | error | missing
    auto_score: float | None = None
    auto_max: float | None = None
    manual_score: float | None = None
    manual_pending: float | None = None
    manual_max: float | None = None
    error: str = ""
    expected: float | None | str = field(default="", repr=False)  # samples only
    seconds: float = field(default=0.0, repr=False)

    def fail(self, reason: str) -> "Row":
        self.status, self.error = "error", reason
        return self

    def csv_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k in CSV_FIELDS}
        if self.status != "graded":  # never a score that looks like a grade
            d.update(auto_score=None, manual_score=None, manual_pending=None)
        if self.status == "graded":
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


# ---------------------------------------------------------------- assignments
def cell_kinds(assignment: str, root: Path) -> dict[str, dict[str, tuple[str, float]]]:
    """``{notebook: {grade_id: ("auto" | "manual", points)}}`` from the source notebooks."""
    kinds: dict[str, dict[str, tuple[str, float]]] = {}
    for path in source_notebooks(assignment, root):
        nb = nbformat.read(path, as_version=4)
        cells = {}
        for cell in nb.cells:
            m = cell.get("metadata", {}).get("nbgrader", {})
            if m.get("grade") or m.get("task"):
                manual = bool(m.get("solution") or m.get("task"))
                cells[m["grade_id"]] = ("manual" if manual else "auto", float(m.get("points", 0)))
        kinds[path.stem] = cells
    return kinds


def _sources_digest(assignment: str, root: Path) -> str:
    h = hashlib.sha256()
    for p in source_notebooks(assignment, root):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    h.update(CONFIG_FILE.read_bytes())
    return h.hexdigest()


def register_assignments(assignments: list[str], workdir: Path, root: Path) -> None:
    """Make the gradebook know each assignment (nbgrader generate_assignment).

    Skipped when the source notebooks did not change since the last run.
    """
    stamp_file = workdir / ".registered.json"
    stamps = json.loads(stamp_file.read_text()) if stamp_file.exists() else {}
    for a in assignments:
        digest = _sources_digest(a, root)
        if stamps.get(a) == digest and (workdir / "gradebook.db").exists() and (workdir / "release" / a).is_dir():
            continue
        proc = run_nbgrader(
            "generate_assignment", a, "--force", *_course_args(workdir), cwd=workdir, root=root,
            env_extra={"COURSE_GRADING_DIR": str(workdir)},
        )
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.strip().splitlines()[-20:])
            raise GradingError(f"nbgrader could not register {root / SOURCE_DIRNAME / a} in the gradebook:\n{tail}")
        stamps[a] = digest
        stamp_file.write_text(json.dumps(stamps, indent=1, sort_keys=True))


def _course_args(workdir: Path) -> list[str]:
    return [
        f"--CourseDirectory.root={workdir}",
        f"--CourseDirectory.release_directory={workdir / 'release'}",
        f"--CourseDirectory.db_url=sqlite:///{workdir / 'gradebook.db'}",
        f"--CourseDirectory.course_id={COURSE_ID}",
    ]


def write_workdir_config(workdir: Path, root: Path) -> None:
    """``<workdir>/nbgrader_config.py``: lets ``cd <workdir> && jupyter lab``
    (formgrader) open this gradebook for manual grading."""
    text = (
        "# Written by python -m autograder.grade: the course config, pointed at this work dir.\n"
        "# For manual grading: cd here and run `jupyter lab` (nbgrader's formgrader).\n"
        "import os\n"
        f"os.environ.setdefault('COURSE_ROOT', {str(root)!r})\n"
        f"os.environ['COURSE_GRADING_DIR'] = {str(workdir)!r}\n"
        "c = get_config()  # noqa: F821\n"
        f"load_subconfig({str(CONFIG_FILE)!r})  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(workdir)!r}\n"
        f"c.CourseDirectory.db_url = {('sqlite:///' + str(workdir / 'gradebook.db'))!r}\n"
        f"c.CourseDirectory.release_directory = {str(workdir / 'release')!r}\n"
    )
    path = workdir / "nbgrader_config.py"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


# ---------------------------------------------------------------- submissions
def _is_inside(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def collect(incoming: Path, assignments: list[str] | None, known: list[str], log) -> tuple[list[Row], list[str]]:
    """Rows for every student × assignment found in ``incoming``."""
    students = sorted(p.name for p in incoming.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = {p.name for s in students for p in (incoming / s).iterdir() if p.is_dir() and not p.name.startswith(".")}
    for a in sorted(found - set(known)):
        log(f"warning: ignoring folder(s) named {a!r}: no such assignment in {SOURCE_DIRNAME}/")
    if assignments:
        graded = list(assignments)
    else:
        graded = [a for a in known if a in found]
    rows = []
    for s in students:
        for a in graded:
            row = Row(s, a)
            if not (incoming / s / a).is_dir():
                row.status, row.error = "missing", "no submission"
            rows.append(row)
    return rows, graded


def copy_submission(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))


def precheck(row: Row, subdir: Path, root: Path) -> Row:
    """Catch what nbgrader would crash on or silently score 0: missing or malformed notebooks."""
    expected = [p.name for p in source_notebooks(row.assignment, root)]
    present = sorted(p.name for p in subdir.glob("*.ipynb"))
    for name in expected:
        path = subdir / name
        if not path.exists():
            return row.fail(f"notebook {name} not found in the submission (found: {', '.join(present) or 'none'})")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            return row.fail(f"{name} cannot be read: {e}")
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            return row.fail(f"{name} is not valid JSON ({e.msg}: line {e.lineno} column {e.colno}): "
                            "the file is truncated or was edited outside Jupyter")
        try:
            nbformat.validate(nbformat.reads(text, as_version=4))
        except Exception as e:  # noqa: BLE001 - any failure means: not a notebook
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return row.fail(f"{name} is not a valid notebook: {msg[:200]}")
    return row


# -------------------------------------------------------------------- running
def _kill_tree(pid: int) -> None:
    """Kill a process, its group and every descendant: jupyter_client starts each
    kernel in a session of its own, which a process-group kill would miss."""
    victims = []
    try:
        import psutil  # a dependency of ipykernel

        victims = psutil.Process(pid).children(recursive=True)
    except Exception:  # noqa: BLE001 - psutil missing or the process already gone
        pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for v in victims:
        try:
            v.kill()
        except Exception:  # noqa: BLE001 - already exited
            pass


def _run_logged(cmd: list[str], cwd: Path, env: dict, log_path: Path, timeout: float) -> tuple[int | None, str]:
    """Run ``cmd`` in its own process group; kill the group (kernels too) on time-out."""
    t0 = time.monotonic()
    with open(log_path, "a", encoding="utf-8") as logf:
        logf.write(f"$ {' '.join(cmd)}\n# started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        logf.flush()
        proc = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(proc.pid)
            proc.wait()
            rc = None
        logf.write(f"# exit status {rc} after {time.monotonic() - t0:.1f} s\n")
    return rc, log_path.read_text(encoding="utf-8", errors="replace")


def _last_error(log: str) -> str:
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    errs = [ln for ln in lines if "ERROR" in ln or "Error" in ln]
    pick = errs[-1] if errs else (lines[-1] if lines else "no output")
    return pick[:300]


def autograde_one(row: Row, workdir: Path, root: Path, env_extra: dict, timeout: float) -> Row:
    """``nbgrader autograde`` then ``generate_feedback`` for one student and assignment."""
    t0 = time.monotonic()
    logs = workdir / "logs" / row.student
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{row.assignment}.log"
    log_path.write_text("")
    env = nbgrader_env(root, env_extra)
    cmd = [sys.executable, "-m", "autograder._worker", str(workdir), row.assignment, row.student]
    for attempt in range(3):
        rc, log = _run_logged(cmd, workdir, env, log_path, timeout)
        if rc is None:
            row.seconds = time.monotonic() - t0
            return row.fail(f"autograde timed out after {timeout:.0f} s (log: {log_path})")
        if rc != 3 or "database is locked" not in log:
            break
        time.sleep(1 + attempt)  # concurrent sqlite writers: retry
    if rc == 4:
        row.error = f"feedback not generated: {_last_error(log)} (log: {log_path})"
    elif rc != 0:
        row.seconds = time.monotonic() - t0
        return row.fail(f"nbgrader autograde failed: {_last_error(log)} (log: {log_path})")
    row.status = "autograded"
    row.seconds = time.monotonic() - t0
    return row


def _timeouts_in(nb_path: Path) -> list[str]:
    nb = nbformat.read(nb_path, as_version=4)
    bad = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and out.get("ename") in ("CellTimeoutError", "DeadKernelError"):
                bad.append(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or cell.get("id", "?"))
    return bad


def read_scores(rows: list[Row], workdir: Path, root: Path) -> None:
    """Fill scores of the autograded rows from the gradebook."""
    todo = [r for r in rows if r.status == "autograded"]
    if not todo:
        return
    with warnings.catch_warnings():
        # nbgrader's gradebook uses SQLAlchemy patterns that newer SQLAlchemy
        # versions flag with deprecation warnings; they are not ours to fix.
        warnings.simplefilter("ignore")
        from nbgrader.api import Gradebook, MissingEntry

        kinds = {a: cell_kinds(a, root) for a in {r.assignment for r in todo}}
        env_path = os.environ.get("PATH", "")
        os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env_path])  # for alembic
        try:
            with Gradebook(f"sqlite:///{workdir / 'gradebook.db'}", COURSE_ID) as gb:
                for row in todo:
                    try:
                        sub = gb.find_submission(row.assignment, row.student)
                    except MissingEntry:
                        row.fail("no submission in the gradebook after autograde")
                        continue
                    auto = auto_max = manual = pending = manual_max = 0.0
                    timed_out, missing_tests = [], []
                    for snb in sub.notebooks:
                        kind = kinds[row.assignment].get(snb.name, {})
                        nb_path = workdir / "autograded" / row.student / row.assignment / f"{snb.name}.ipynb"
                        if not nb_path.exists():
                            row.fail(f"nbgrader wrote no autograded {nb_path.name}")
                            break
                        timed_out += _timeouts_in(nb_path)
                        for g in snb.grades:
                            k, _ = kind.get(g.name, ("auto", 0))
                            if k == "auto" and g.auto_score is None and g.manual_score is None:
                                missing_tests.append(g.name)
                            if k == "auto":
                                auto += g.score
                                auto_max += g.max_score
                            else:
                                manual_max += g.max_score
                                if g.needs_manual_grade:
                                    pending += g.max_score
                                else:
                                    manual += g.score
                    if row.status == "error":
                        continue
                    row.auto_score, row.auto_max = auto, auto_max
                    row.manual_score, row.manual_pending, row.manual_max = manual, pending, manual_max
                    if missing_tests:
                        row.fail(f"test cell(s) {', '.join(missing_tests)} not run: missing from the submitted "
                                 "notebook (deleted, or copied into a new notebook?); partial autograded score "
                                 f"{_num(auto)}/{_num(auto_max)}")
                    elif timed_out:
                        row.fail(
                            f"cell(s) {', '.join(timed_out)} timed out or killed the kernel "
                            f"(COURSE_CELL_TIMEOUT; partial autograded score {_num(auto)}/{_num(auto_max)})"
                        )
                    else:
                        row.status = "graded"
        finally:
            os.environ["PATH"] = env_path


# ---------------------------------------------------------------------- output
def format_table(rows: list[Row], samples: bool) -> str:
    head = ["student", "assignment", "status", "auto", "manual", "pending", "error"]
    if samples:
        head.insert(6, "expected")
    lines = []
    for r in rows:
        auto = f"{_num(r.auto_score)}/{_num(r.auto_max)}" if r.status == "graded" else "-"
        manual = f"{_num(r.manual_score)}/{_num(r.manual_max)}" if r.status == "graded" else "-"
        pending = str(_num(r.manual_pending)) if r.status == "graded" else "-"
        cells = [r.student, r.assignment, r.status, auto, manual, pending, r.error]
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


# ------------------------------------------------------------------------ main
def grade(
    submissions: Path | None = None,
    assignments: list[str] | None = None,
    workdir: Path | None = None,
    jobs: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    device: str | None = None,
    root: Path | None = None,
    progress: bool = True,
    log=print,
) -> tuple[list[Row], Path]:
    """Grade ``submissions`` (default: the samples). Returns the rows and the CSV path."""
    root = Path(root or course_root())
    known = list_assignments(root)
    if not known:
        raise GradingError(f"no assignments under {root / SOURCE_DIRNAME}")
    for a in assignments or []:
        if a not in known:
            raise GradingError(f"unknown assignment {a!r}; known: {', '.join(known)}")
    is_samples = submissions is None
    default_wd = root / "build" / "grading" / ("samples" if is_samples else "class")
    workdir = Path(workdir or default_wd).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    write_workdir_config(workdir, root)

    if is_samples:
        targets = list(assignments or known)
        register_assignments(targets, workdir, root)
        incoming = workdir / "incoming-samples"
        shutil.rmtree(incoming, ignore_errors=True)
        expected: dict[tuple[str, str], float | None] = {}
        for a in targets:
            # The release nbgrader just generated from solutions/ (what `make release`
            # ships; tests/test_release.py checks the committed notebooks/ equal it).
            for s, e in samples_mod.build_samples(a, incoming, root, workdir / "release").items():
                expected[(s, a)] = e
        rows, graded = collect(incoming, targets, known, log)
        rows = [r for r in rows if r.status != "missing"]  # sample faults exist per assignment
    else:
        incoming = Path(submissions).resolve()
        if not incoming.is_dir():
            raise GradingError(f"--submissions {incoming}: not a directory")
        rows, graded = collect(incoming, assignments, known, log)
        if not rows:
            raise GradingError(f"no <student>/<assignment>/ folders for {', '.join(assignments or known)} "
                               f"under {incoming}")
        register_assignments(graded, workdir, root)

    # Copy each submission into the work dir (the originals are never touched).
    submitted = workdir / "submitted"
    for r in rows:
        dst = submitted / r.student / r.assignment
        for stale in (workdir / "autograded" / r.student / r.assignment, workdir / "feedback" / r.student / r.assignment):
            shutil.rmtree(stale, ignore_errors=True)
        if r.status == "missing":
            continue
        src = incoming / r.student / r.assignment
        if not _is_inside(src, submitted):
            copy_submission(src, dst)
        precheck(r, dst, root)
        if is_samples:
            e = expected.get((r.student, r.assignment), "")
            r.expected = e
    todo = [r for r in rows if r.status == "pending"]

    ncpu = os.cpu_count() or 1
    jobs = max(1, jobs or ncpu)
    env_extra = {"COURSE_GRADING_DIR": str(workdir)}
    if "OMP_NUM_THREADS" not in os.environ:  # N kernels side by side must not oversubscribe the CPUs
        env_extra["OMP_NUM_THREADS"] = str(max(1, ncpu // min(jobs, max(1, len(todo)))))
    if device:
        env_extra["COURSE_DEVICE"] = device

    log(f"grading {len(todo)} submission(s) of {', '.join(graded)} in {workdir} with {jobs} job(s)")
    bar = None
    if progress and todo:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), unit="submission", file=sys.stderr)
        except ImportError:  # pragma: no cover - tqdm is a dependency
            bar = None
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(autograde_one, r, workdir, root, env_extra, timeout): r for r in todo}
        for fut in as_completed(futures):
            r = futures[fut]
            try:
                fut.result()
            except Exception as e:  # noqa: BLE001 - a grading crash is an error row, not a crash
                r.fail(f"grader crashed: {type(e).__name__}: {e}")
            if bar is not None:
                bar.set_postfix_str(f"{r.student}/{r.assignment}")
                bar.update()
    if bar is not None:
        bar.close()

    read_scores(rows, workdir, root)
    for r in rows:
        if r.status == "autograded":  # should not happen; never report it as a score
            r.fail("autograded but no scores read")
        if r.status == "error" and r.auto_max is None:
            # the maximum is known even when the submission could not be graded
            k = [v for nb in cell_kinds(r.assignment, root).values() for v in nb.values()]
            r.auto_max = sum(p for kind, p in k if kind == "auto")
            r.manual_max = sum(p for kind, p in k if kind == "manual")

        if r.expected == float("inf"):  # the reference sample: full marks
            r.expected = r.auto_max

    rows.sort(key=lambda r: (r.assignment, r.student))
    csv_path = workdir / "grades.csv"
    write_csv(rows, csv_path)
    return rows, csv_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m autograder.grade",
        description="Autograde submissions with nbgrader; write <workdir>/grades.csv and feedback.",
        epilog="Without --submissions the bundled sample submissions are graded (a self-test).",
    )
    ap.add_argument("--submissions", type=Path, metavar="PATH",
                    help="folder laid out as PATH/<student>/<assignment>/<notebook>.ipynb (never modified)")
    ap.add_argument("submissions_pos", nargs="?", type=Path, metavar="PATH",
                    help="same as --submissions PATH (so `make grade SUBMISSIONS=PATH` works)")
    ap.add_argument("--assignment", action="append", metavar="A", dest="assignments",
                    help="grade only this assignment (repeatable); default: all found")
    ap.add_argument("--workdir", type=Path, metavar="DIR",
                    help="persistent grading dir (gradebook, feedback, CSV); default build/grading/class, "
                         "or build/grading/samples for the samples")
    ap.add_argument("--jobs", "-j", type=int, default=None, help="parallel autograde processes (default: CPUs)")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                    help=f"seconds per submission before it is killed and marked error (default {DEFAULT_TIMEOUT})")
    ap.add_argument("--device", metavar="DEV",
                    help="COURSE_DEVICE for the grading kernels (cpu, cuda, cuda:1, mps); default: automatic")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.submissions_pos is not None:
        if args.submissions is not None and args.submissions != args.submissions_pos:
            ap.error("give the submissions folder once")
        args.submissions = args.submissions_pos

    t0 = time.monotonic()
    try:
        rows, csv_path = grade(args.submissions, args.assignments, args.workdir, args.jobs, args.timeout,
                               args.device, progress=not args.no_progress)
    except GradingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    samples = args.submissions is None
    print()
    print(format_table(rows, samples))
    print()
    workdir = csv_path.parent
    errors = [r for r in rows if r.status == "error"]
    print(f"{len(rows)} submission(s), {len(errors)} error(s), {time.monotonic() - t0:.0f} s")
    print(f"grades:   {csv_path}")
    print(f"feedback: {workdir / 'feedback'}/<student>/<assignment>/<notebook>.html")
    print(f"gradebook: {workdir / 'gradebook.db'} (manual grading: cd {workdir} && jupyter lab)")
    if samples:
        bad = [r for r in rows if not sample_ok(r)]
        for r in bad:
            print(f"UNEXPECTED: sample {r.student}/{r.assignment}: {r.status} {_num(r.auto_score)} "
                  f"(expected {'error' if r.expected is None else _num(r.expected)}) {r.error}")
        if not bad:
            print("all samples graded as expected (the 'malformed' error row is intended)")
        return 1 if bad else 0
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
