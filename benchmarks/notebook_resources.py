"""Run time and peak memory of executing each notebook, per compute budget.

    python benchmarks/notebook_resources.py                       # solutions, tiny and cpu budgets
    python benchmarks/notebook_resources.py --budget tiny 03_vgg  # one notebook, one budget
    python benchmarks/notebook_resources.py --which student       # the untouched release

Each notebook runs in a fresh process that starts its own kernel (CPU,
offline data), so the peak resident memory reported is the kernel's: the
largest ``ru_maxrss`` among that process's children, read after the kernel
has exited. The course's budgets: ``tiny`` (what grading runs) at most 60 s,
``cpu`` at most 5 min on 2 cores, and at most 1.5 GB resident memory in every
case (Binder gives 1 to 2 GB). Exit status 1 when a budget is exceeded.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder import list_assignments  # noqa: E402

TIME_LIMIT_S = {"tiny": 60, "cpu": 300, "gpu": None}
MEMORY_LIMIT_MB = 1536

RUNNER = r"""
import json, resource, sys, time
import nbformat
from nbclient import NotebookClient
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
start = time.perf_counter()
NotebookClient(nb, timeout=900, kernel_name="python3", allow_errors=True,
               resources={"metadata": {"path": str(__import__("pathlib").Path(path).parent)}}).execute()
seconds = time.perf_counter() - start
errors = sum(1 for c in nb.cells if c.cell_type == "code"
             for o in c.get("outputs", []) if o.output_type == "error")
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss   # Linux: kilobytes
print(json.dumps({"seconds": seconds, "peak_mb": peak_kb / 1024, "errors": errors}))
"""


def measure(notebook: Path, budget: str) -> dict:
    """Execute ``notebook`` under ``budget`` in a fresh process; seconds, peak MB, error cells."""
    env = dict(os.environ, COURSE_BUDGET=budget, COURSE_DEVICE="cpu", COURSE_DATA="synthetic",
               PYTHONPATH=str(ROOT), PYDEVD_DISABLE_FILE_VALIDATION="1")
    env.pop("NBGRADER_EXECUTION", None)
    done = subprocess.run([sys.executable, "-c", RUNNER, str(notebook)], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{notebook} could not be executed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="*", help="default: every assignment")
    parser.add_argument("--budget", nargs="+", default=["tiny", "cpu"], choices=list(TIME_LIMIT_S))
    parser.add_argument("--which", choices=["solution", "student"], default="solution")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    folder = "solutions" if args.which == "solution" else "notebooks"
    assignments = args.assignments or list_assignments()

    print(f"{args.which} notebooks on {os.cpu_count()} CPU(s); limits: tiny <= 60 s, "
          f"cpu <= 300 s, peak memory <= {MEMORY_LIMIT_MB} MB")
    print(f"{'notebook':<18}{'budget':<8}{'seconds':>9}{'peak MB':>10}{'errors':>8}  verdict")
    results, ok = [], True
    for assignment in assignments:
        for budget in args.budget:
            r = measure(ROOT / folder / assignment / f"{assignment}.ipynb", budget)
            limit = TIME_LIMIT_S[budget]
            problems = []
            if limit is not None and r["seconds"] > limit:
                problems.append(f"over {limit} s")
            if r["peak_mb"] > MEMORY_LIMIT_MB:
                problems.append(f"over {MEMORY_LIMIT_MB} MB")
            if r["errors"] and args.which == "solution":
                problems.append(f"{r['errors']} cell(s) raised")
            ok &= not problems
            print(f"{assignment:<18}{budget:<8}{r['seconds']:>9.1f}{r['peak_mb']:>10.0f}"
                  f"{r['errors']:>8}  {'; '.join(problems) or 'ok'}", flush=True)
            results.append({"assignment": assignment, "budget": budget, **r})
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
