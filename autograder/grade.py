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
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from . import CONFIG_FILE, COURSE_ID, SOURCE_DIRNAME, course_root, list_assignments, run_nbgrader, source_notebooks
from . import samples as samples_mod
from . import sandbox
from .report import try_write_report
from .rows import Row, format_table, plain_number, sample_ok, write_csv
from .runner import autograde_one
from .scores import cell_kinds, read_scores, scores_file
from .submissions import collect, is_inside, copy_submission, precheck, prepare

DEFAULT_TIMEOUT = 1800  # seconds for one student's whole autograde of one assignment


class GradingError(RuntimeError):
    """Grading could not run at all (bad course, nbgrader cannot register it...)."""


# ---------------------------------------------------------------- assignments
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
    use_sandbox: bool = True,
) -> tuple[list[Row], Path]:
    """Grade ``submissions`` (default: the samples). Returns the rows and the CSV path.

    The phases, in order: find the rows to grade, copy each submission into the
    work dir and assemble what is graded, prepare the sandbox and the kernels'
    environment, autograde in parallel, read the scores, write the CSV and report.
    """
    root = Path(root or course_root())
    known = check_assignments(assignments, root)
    is_samples = submissions is None
    default_wd = root / "build" / "grading" / ("samples" if is_samples else "class")
    workdir = Path(workdir or default_wd).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    write_workdir_config(workdir, root)

    if is_samples:
        incoming, rows, graded, expected = sample_rows(assignments or known, known, workdir, root, log)
    else:
        incoming, rows, graded = class_rows(submissions, assignments, known, workdir, root, log)
        expected = {}
    copy_into_workdir(rows, incoming, workdir, root, expected if is_samples else None)
    todo = [r for r in rows if r.status == "pending"]
    sandboxed = prepare_sandbox(rows, workdir, use_sandbox, log)
    register_students(sorted({r.student for r in todo}), workdir)
    jobs = max(1, jobs or os.cpu_count() or 1)
    env_extra = kernel_environment(workdir, jobs, len(todo), sandboxed, device)

    log(f"grading {len(todo)} submission(s) of {', '.join(graded)} in {workdir} with {jobs} job(s)")
    run_jobs(todo, jobs, progress, lambda r: autograde_one(r, workdir, root, env_extra, timeout, sandboxed))
    read_scores(rows, workdir, root)
    finish_rows(rows, root)
    return rows, write_outputs(rows, workdir, root, log)


def check_assignments(assignments: list[str] | None, root: Path) -> list[str]:
    """The course's assignments; a :class:`GradingError` for none, or for an unknown one asked for."""
    known = list_assignments(root)
    if not known:
        raise GradingError(f"no assignments under {root / SOURCE_DIRNAME}")
    for a in assignments or []:
        if a not in known:
            raise GradingError(f"unknown assignment {a!r}; known: {', '.join(known)}")
    return known


def sample_rows(targets: list[str], known: list[str], workdir: Path, root: Path, log):
    """The bundled samples of ``targets``, built from the release nbgrader just generated
    (what ``make release`` ships; tests/test_release.py checks notebooks/ equals it)."""
    targets = list(targets)
    register_assignments(targets, workdir, root)
    incoming = workdir / "incoming-samples"
    shutil.rmtree(incoming, ignore_errors=True)
    expected: dict[tuple[str, str], float | None] = {}
    for a in targets:
        for s, e in samples_mod.build_samples(a, incoming, root, workdir / "release").items():
            expected[(s, a)] = e
    rows, graded = collect(incoming, targets, known, log)
    rows = [r for r in rows if r.status != "missing"]  # sample faults exist per assignment
    return incoming, rows, graded, expected


def class_rows(submissions: Path, assignments: list[str] | None, known: list[str], workdir: Path,
               root: Path, log):
    """The rows of a class's ``submitted`` folder; its assignments registered in the gradebook."""
    incoming = Path(submissions).resolve()
    if not incoming.is_dir():
        raise GradingError(f"--submissions {incoming}: not a directory")
    rows, graded = collect(incoming, assignments, known, log)
    if not rows:
        raise GradingError(f"no <student>/<assignment>/ folders for {', '.join(assignments or known)} "
                           f"under {incoming}")
    register_assignments(graded, workdir, root)
    return incoming, rows, graded


def copy_into_workdir(rows: list[Row], incoming: Path, workdir: Path, root: Path,
                      expected: dict | None) -> None:
    """Copy each submission into ``<workdir>/submitted/`` (the originals are never touched),
    clear what an earlier run left for it, and assemble the notebook that is graded."""
    submitted = workdir / "submitted"
    for r in rows:
        for stale in (workdir / "autograded" / r.student / r.assignment,
                      workdir / "feedback" / r.student / r.assignment):
            shutil.rmtree(stale, ignore_errors=True)
        scores_file(workdir, r.student, r.assignment).unlink(missing_ok=True)
        if r.status == "missing":
            continue
        src, dst = incoming / r.student / r.assignment, submitted / r.student / r.assignment
        if not is_inside(src, submitted):
            copy_submission(src, dst, r)
        if precheck(r, dst, root).status == "pending":
            prepare(r, dst, workdir / "release" / r.assignment, workdir / "originals" / r.student / r.assignment, root)
        if expected is not None:
            r.expected = expected.get((r.student, r.assignment), "")


def prepare_sandbox(rows: list[Row], workdir: Path, use_sandbox: bool, log) -> bool:
    """Whether the kernels run in the sandbox; each row's notes (read by the worker) written."""
    sandboxed, why_not = sandbox.available() if use_sandbox else (False, "switched off (--no-sandbox)")
    if sandboxed:
        sandbox.kernelspec(workdir / "jupyter" / "kernels")
    else:
        log(f"warning: grading WITHOUT the sandbox: {why_not}")
    for r in rows:
        r.sandboxed = "yes" if sandboxed else f"no: {why_not}"
        notes = workdir / "notes" / r.student / f"{r.assignment}.json"
        notes.parent.mkdir(parents=True, exist_ok=True)
        notes.write_text(json.dumps({"flags": r.flags, "notes": r.notes, "sandboxed": r.sandboxed}))
    return sandboxed


def kernel_environment(workdir: Path, jobs: int, n_todo: int, sandboxed: bool, device: str | None) -> dict:
    """What the grading kernels' environment adds: the work dir, the hidden seed, threads, device."""
    env_extra = {"COURSE_GRADING_DIR": str(workdir), "COURSE_GRADING_SEED": grading_seed(workdir)}
    if sandboxed:
        env_extra["JUPYTER_PATH"] = str(workdir / "jupyter")
    if "OMP_NUM_THREADS" not in os.environ:  # N kernels side by side must not oversubscribe the CPUs
        ncpu = os.cpu_count() or 1
        env_extra["OMP_NUM_THREADS"] = str(max(1, ncpu // min(jobs, max(1, n_todo))))
    if device:
        env_extra["COURSE_DEVICE"] = device
    return env_extra


def run_jobs(todo: list[Row], jobs: int, progress: bool, grade_one) -> None:
    """``grade_one(row)`` for every row, ``jobs`` at a time; a crash becomes the row's error."""
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="submission", file=sys.stderr)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(grade_one, r): r for r in todo}
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


def finish_rows(rows: list[Row], root: Path) -> None:
    """Final statuses: never an unread score, maxima known for errors, flags, the time graded."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
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
        if r.status == "graded" and r.flags:
            r.status = "flagged"
        if r.status != "missing":
            r.graded_at = now
    rows.sort(key=lambda r: (r.assignment, r.student))


def write_outputs(rows: list[Row], workdir: Path, root: Path, log) -> Path:
    """``grades.csv`` (this run's rows merged into the class's) and ``report.html``."""
    csv_path = workdir / "grades.csv"
    write_csv(rows, csv_path)
    _, problem = try_write_report(workdir, root)
    if problem:
        log(f"warning: {problem}")
    return csv_path


def grading_seed(workdir: Path) -> str:
    """The seed of the hidden random cases: made with the work dir, kept beside the gradebook.

    The public repository cannot fix the hidden cases: they depend on this
    seed, which only the instructor's work dir holds.
    """
    path = workdir / "grading_seed.txt"
    if not path.exists():
        path.write_text(f"{secrets.randbits(63)}\n")
    return path.read_text().strip()


def register_students(students: list[str], workdir: Path) -> None:
    """Create every student in the gradebook before the parallel jobs start.

    Two jobs creating the same new student at once fail with "UNIQUE
    constraint failed: student.id". One SQL statement per student, in this
    process, avoids the race without importing nbgrader here (5 s, serial).
    """
    if not students:
        return
    with sqlite3.connect(workdir / "gradebook.db", timeout=60) as db:
        db.executemany("INSERT OR IGNORE INTO student (id) VALUES (?)", [(s,) for s in students])
    db.close()


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
    ap.add_argument("--no-sandbox", action="store_true",
                    help="run grading kernels without bubblewrap (every row then says 'not sandboxed')")
    args = ap.parse_args(argv)
    if args.submissions_pos is not None:
        if args.submissions is not None and args.submissions != args.submissions_pos:
            ap.error("give the submissions folder once")
        args.submissions = args.submissions_pos

    t0 = time.monotonic()
    try:
        rows, csv_path = grade(args.submissions, args.assignments, args.workdir, args.jobs, args.timeout,
                               args.device, progress=not args.no_progress,
                               use_sandbox=not args.no_sandbox)
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
    print(f"report:   {workdir / 'report.html'}")
    print(f"feedback: {workdir / 'feedback'}/<student>/<assignment>/<notebook>.html")
    print(f"gradebook: {workdir / 'gradebook.db'} (manual grading: make formgrade GRADING_DIR={workdir})")
    if samples:
        bad = [r for r in rows if not sample_ok(r)]
        for r in bad:
            print(f"UNEXPECTED: sample {r.student}/{r.assignment}: {r.status} {plain_number(r.auto_score)} "
                  f"(expected {'error' if r.expected is None else plain_number(r.expected)}) {r.error}")
        if not bad:
            print("all samples graded as expected (the 'malformed' error row is intended)")
        return 1 if bad else 0
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
