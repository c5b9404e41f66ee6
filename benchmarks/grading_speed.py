"""Seconds per submission, the speed-up of parallel grading, and the cost of the sandbox.

    python benchmarks/grading_speed.py [--students 8]

Grades the same class (honest submissions of the red-team fixture
assignment, half right, half untouched) three times, each in a copy of a work
dir where the assignment is already registered (as when an instructor
grades a second batch), so the runs time the grading itself:
``--jobs 1`` and ``--jobs 2`` in the sandbox, and ``--jobs 1`` without it.
Prints the seconds per submission of each run, the speed-up of two jobs over
one, and what the sandbox adds per submission. Targets on 2 cores: speed-up
at least 1.7x, sandbox at most 1 s per submission (exit status 1 otherwise).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder import samples, sandbox  # noqa: E402

COURSE = ROOT / "tests" / "redteam" / "course"
ASSIGNMENT = "00_redteam"


def make_class(root: Path, subs: Path, students: int) -> None:
    src = nbformat.read(root / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    release = nbformat.read(root / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    for i in range(students):
        nb = samples.fill_solutions(release, src) if i % 2 == 0 else release
        path = subs / f"student{i:02d}" / ASSIGNMENT
        path.mkdir(parents=True)
        nbformat.write(nb, path / f"{ASSIGNMENT}.ipynb")


def timed_grade(root: Path, subs: Path, work: Path, *args: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "autograder.grade", "--no-progress", "--submissions",
                           str(subs), "--workdir", str(work), *args],
                          env={**os.environ, "COURSE_ROOT": str(root)}, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"grading failed ({' '.join(args)}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=8)
    args = parser.parse_args()
    ok_sandbox, why = sandbox.available()
    with tempfile.TemporaryDirectory() as tmp:
        root, subs = Path(tmp) / "course", Path(tmp) / "subs"
        shutil.copytree(COURSE, root)
        subprocess.run([sys.executable, "-m", "autograder.release"], cwd=root, check=True,
                       env={**os.environ, "COURSE_ROOT": str(root)}, capture_output=True)
        make_class(root, subs, args.students)
        n = args.students
        warm = Path(tmp) / "warm"                          # registers the assignment once
        one = Path(tmp) / "one"
        shutil.copytree(subs / "student00", one / "student00")
        timed_grade(root, one, warm, "--jobs", "1")
        for folder in ("submitted", "autograded", "feedback", "scores", "originals", "notes", "logs"):
            shutil.rmtree(warm / folder, ignore_errors=True)
        runs = {"jobs 1, sandbox": ("--jobs", "1"), "jobs 2, sandbox": ("--jobs", "2"),
                "jobs 1, no sandbox": ("--jobs", "1", "--no-sandbox")}
        if not ok_sandbox:
            print(f"the sandbox is not available ({why}): the 'sandbox' runs are unsandboxed")
        seconds = {}
        for i, (name, flags) in enumerate(runs.items()):
            work = Path(tmp) / f"work{i}"
            shutil.copytree(warm, work)
            seconds[name] = timed_grade(root, subs, work, *flags)
    print(f"{n} submissions on {os.cpu_count()} CPU(s)")
    for name, s in seconds.items():
        print(f"  {name:<20} {s:6.1f} s   {s / n:5.2f} s per submission")
    speedup = seconds["jobs 1, sandbox"] / seconds["jobs 2, sandbox"]
    overhead = (seconds["jobs 1, sandbox"] - seconds["jobs 1, no sandbox"]) / n
    print(f"speed-up of --jobs 2 over --jobs 1: {speedup:.2f}x (target >= 1.7x on 2 cores)")
    print(f"sandbox cost: {overhead:+.2f} s per submission (target <= 1 s)")
    return 0 if speedup >= 1.7 and overhead <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
