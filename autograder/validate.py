"""Run ``nbgrader validate`` on notebooks, with the course config and PYTHONPATH.

    python -m autograder.validate                     # every source and student notebook
    python -m autograder.validate NOTEBOOK ...        # these (all tests must pass)
    python -m autograder.validate --invert NOTEBOOK   # these (no test may pass)

Without paths, every ``solutions/*/*.ipynb`` must pass all its tests and every
``notebooks/*/*.ipynb`` must pass none of them (an untouched student notebook
that passes a test means the test does not test anything).

``--json`` prints ``{path: {"ok": bool, "invert": bool, "problems": [...]}}``.
Exit status 0 when every notebook is as required.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import CONFIG_FILE, RELEASE_DIRNAME, course_root, list_assignments, nbgrader_env, source_notebooks


def validate(path: Path, invert: bool = False) -> dict:
    """Validate one notebook in this process (starts a kernel). Returns a JSON-able dict."""
    from traitlets.config.loader import PyFileConfigLoader

    from nbgrader.validator import Validator

    cfg = PyFileConfigLoader(CONFIG_FILE.name, path=str(CONFIG_FILE.parent)).load_config()
    validator = Validator(config=cfg)
    validator.invert = invert
    try:
        results = validator.validate(str(Path(path).resolve()))
    except Exception as e:  # noqa: BLE001 - report, do not crash the batch
        return {"ok": False, "invert": invert, "problems": [f"{type(e).__name__}: {e}"]}
    problems = []
    for cell in results.get("type_changed", []):
        problems.append(f"cell type changed from {cell['old_type']} to {cell['new_type']}: {cell['source'][:80]!r}")
    for cell in results.get("changed", []):
        problems.append(f"locked/test cell changed: {cell['source'][:80]!r}")
    for cell in results.get("passed", []):
        problems.append(f"test passes on the untouched notebook: {cell['source'].splitlines()[0][:100]!r}")
    for cell in results.get("failed", []):
        err = (cell.get("raw_error") or "").strip().splitlines()
        problems.append(f"test fails: {cell['source'].splitlines()[0][:100]!r}: {err[-1] if err else '?'}")
    return {"ok": not problems, "invert": invert, "problems": problems}


def default_targets(root: Path | None = None) -> list[tuple[Path, bool]]:
    root = Path(root or course_root())
    targets = []
    for a in list_assignments(root):
        for src in source_notebooks(a, root):
            targets.append((src, False))
            rel = root / RELEASE_DIRNAME / a / src.name
            if rel.exists():
                targets.append((rel, True))
    return targets


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m autograder.validate", description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--invert", action="store_true", help="require that no test passes")
    ap.add_argument("--json", action="store_true", help="print results as JSON")
    args = ap.parse_args(argv)
    # Kernels inherit this process's environment: helpers/ must be importable.
    os.environ.update(nbgrader_env())
    targets = [(p, args.invert) for p in args.notebooks] if args.notebooks else default_targets()
    results = {}
    for path, invert in targets:
        results[str(path)] = r = validate(path, invert)
        if not args.json:
            mode = "no test may pass" if invert else "all tests must pass"
            print(f"{'ok  ' if r['ok'] else 'FAIL'} {path} ({mode})")
            for p in r["problems"]:
                print(f"     {p}")
    if args.json:
        print(json.dumps(results, indent=1))
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
