"""Regenerate the student notebooks (``notebooks/``) from the sources (``solutions/``).

    python -m autograder.release                 # every assignment
    python -m autograder.release 01_pooling      # just these
    python -m autograder.release --check         # only verify notebooks/ is up to date

For each assignment, nbgrader ``generate_assignment`` runs into a temporary
directory (with a throw-away gradebook); the result is then

* stripped of outputs and execution counts,
* normalised (notebook metadata reduced to the kernelspec and language name,
  cell metadata to a fixed allow-list), so the bytes do not depend on who
  released it or on which Python/Jupyter they used,
* checked for leaks (no solution / hidden-test markers, no solution or
  hidden-test line of the source in the matching student cell),

and only then written to ``notebooks/<assignment>/<notebook>.ipynb``. Only
notebooks are released; stale notebooks in ``notebooks/<assignment>/`` that no
longer have a source are removed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

from . import RELEASE_DIRNAME, SOURCE_DIRNAME, course_root, list_assignments, run_nbgrader, source_notebooks
from .solutions import grade_id

MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
KEEP_CELL_METADATA = ("nbgrader", "editable", "deletable", "tags", "jupyter")
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
# A solution / hidden-test line shorter than this (after stripping) is too
# generic to count as a leak ("return out", "pass", "x = x.float()").
MIN_LEAK_LINE = 16
FIX_HINT = "Run `make release` (python -m autograder.release) and commit notebooks/."


class ReleaseError(RuntimeError):
    """A source notebook could not be released (malformed, nbgrader failed, leak)."""


class ReleaseOutOfDate(AssertionError):
    """The committed notebooks/ differ from what solutions/ generates."""


# --------------------------------------------------------------------------- io
def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read and schema-validate a notebook; a clear error names the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ReleaseError(f"{path}: cannot read notebook: {e}") from e
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as e:  # json.JSONDecodeError, nbformat.reader.NotJSONError, ...
        raise ReleaseError(f"{path}: not a valid notebook (bad JSON?): {e}") from e
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as e:
        raise ReleaseError(f"{path}: notebook fails the nbformat schema: {e.message}") from e
    return nb


def dumps(nb: nbformat.NotebookNode) -> str:
    """Stable serialisation (nbformat's own layout, trailing newline)."""
    return nbformat.writes(nb, version=4) + "\n"


# -------------------------------------------------------------------- normalise
def normalise(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Strip outputs and volatile metadata so the bytes are stable."""
    lang = nb.metadata.get("language_info", {}).get("name", "python")
    nb.metadata = nbformat.from_dict({"kernelspec": dict(KERNELSPEC), "language_info": {"name": lang}})
    nb.nbformat, nb.nbformat_minor = 4, max(5, nb.get("nbformat_minor", 5))
    for i, cell in enumerate(nb.cells):
        cell.metadata = nbformat.from_dict(
            {k: cell.metadata[k] for k in KEEP_CELL_METADATA if k in cell.metadata}
        )
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        else:
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
        if cell.cell_type != "markdown" and cell.cell_type != "raw":
            cell.pop("attachments", None)
        if not cell.get("id"):
            # nbformat 4.5 needs ids; derive them deterministically.
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            cell.id = gid or f"cell-{i}"
    return nb


# ------------------------------------------------------------------------- leaks
def _region_lines(source: str, begin: str, end: str) -> list[str]:
    """Lines strictly between ``### begin`` and ``### end`` markers."""
    out, inside = [], False
    for line in source.splitlines():
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            out.append(line)
    return out


def secret_lines(cell) -> list[str]:
    """The substantial lines of a source cell that students must never see."""
    nbg = cell.get("metadata", {}).get("nbgrader", {})
    src = cell.source
    lines: list[str] = []
    if nbg.get("solution"):
        if "BEGIN SOLUTION" in src:
            lines += _region_lines(src, "BEGIN SOLUTION", "END SOLUTION")
        else:  # a solution cell without markers is replaced entirely
            lines += src.splitlines()
    if "BEGIN HIDDEN TESTS" in src:
        lines += _region_lines(src, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
    keep = []
    for line in lines:
        s = line.strip()
        if len(s) >= MIN_LEAK_LINE and not s.startswith("#"):
            keep.append(s)
    return keep


def find_leaks(source_nb, release_nb, release_path: Path | str = "") -> list[str]:
    """Problems if the release shows markers, solution code or hidden tests."""
    problems = []
    for i, cell in enumerate(release_nb.cells):
        for m in MARKERS:
            if m in cell.source:
                problems.append(f"{release_path}: cell {i} ({grade_id(cell)}) contains the marker {m!r}")
    released = {grade_id(c): c for c in release_nb.cells if grade_id(c)}
    for cell in source_nb.cells:
        gid = grade_id(cell)
        if not gid or gid not in released:
            continue
        student_lines = {ln.strip() for ln in released[gid].source.splitlines()}
        for s in secret_lines(cell):
            if s in student_lines:
                problems.append(f"{release_path}: cell {gid!r} leaks source line {s!r}")
    for i, cell in enumerate(release_nb.cells):
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None):
            problems.append(f"{release_path}: cell {i} ({grade_id(cell)}) has outputs or an execution count")
    return problems


# ------------------------------------------------------------------- generation
def generate(assignments: list[str] | None = None, root: Path | None = None) -> dict[str, dict[str, str]]:
    """Generate the release text of each assignment, without touching notebooks/.

    Returns ``{assignment: {notebook file name: notebook text}}``.
    Raises :class:`ReleaseError` with the offending file named.
    """
    root = Path(root or course_root())
    names = list(assignments) if assignments else list_assignments(root)
    known = set(list_assignments(root))
    for a in names:
        if a not in known:
            raise ReleaseError(f"no source notebook for assignment {a!r} under {root / SOURCE_DIRNAME}")
    result: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="release-") as tmp:
        tmpdir = Path(tmp)
        for a in names:
            sources = {p.name: read_notebook(p) for p in source_notebooks(a, root)}
            out = tmpdir / "release"
            proc = run_nbgrader(
                "generate_assignment",
                a,
                "--force",
                f"--CourseDirectory.root={tmpdir}",
                f"--CourseDirectory.release_directory={out}",
                f"--CourseDirectory.db_url=sqlite:///{tmpdir / f'gradebook-{a}.db'}",
                cwd=tmpdir,
                root=root,
            )
            if proc.returncode != 0:
                tail = "\n".join(proc.stdout.strip().splitlines()[-25:])
                raise ReleaseError(
                    f"nbgrader generate_assignment failed for {root / SOURCE_DIRNAME / a}:\n{tail}"
                )
            result[a] = {}
            for name, src_nb in sources.items():
                path = out / a / name
                if not path.exists():
                    raise ReleaseError(f"nbgrader produced no {path.name} for {root / SOURCE_DIRNAME / a / name}")
                nb = normalise(read_notebook(path))
                rel_path = Path(RELEASE_DIRNAME) / a / name
                leaks = find_leaks(src_nb, nb, rel_path)
                if leaks:
                    raise ReleaseError("solution or hidden-test text would leak:\n" + "\n".join(leaks))
                result[a][name] = dumps(nb)
    return result


def release(assignments: list[str] | None = None, root: Path | None = None, log=print) -> list[Path]:
    """Regenerate ``notebooks/<a>/`` for the given (default: all) assignments."""
    root = Path(root or course_root())
    written = []
    for a, files in generate(assignments, root).items():
        dest = root / RELEASE_DIRNAME / a
        dest.mkdir(parents=True, exist_ok=True)
        for stale in sorted(dest.glob("*.ipynb")):
            if stale.name not in files:
                log(f"removing stale {stale.relative_to(root)} (no source notebook)")
                stale.unlink()
        shutil.rmtree(dest / ".ipynb_checkpoints", ignore_errors=True)
        for name, text in files.items():
            path = dest / name
            old = path.read_text(encoding="utf-8") if path.exists() else None
            if old != text:
                path.write_text(text, encoding="utf-8")
                log(f"wrote     {path.relative_to(root)}")
            else:
                log(f"unchanged {path.relative_to(root)}")
            written.append(path)
    return written


def release_problems(assignments: list[str] | None = None, root: Path | None = None,
                     generated: dict[str, dict[str, str]] | None = None) -> list[str]:
    """What differs between the committed notebooks/ and a fresh generation (empty: in sync)."""
    root = Path(root or course_root())
    generated = generated if generated is not None else generate(assignments, root)
    problems = []
    for a, files in generated.items():
        dest = root / RELEASE_DIRNAME / a
        for name, text in files.items():
            path = dest / name
            rel = path.relative_to(root)
            if not path.exists():
                problems.append(f"{rel} is missing")
            elif path.read_text(encoding="utf-8") != text:
                problems.append(f"{rel} differs from what {SOURCE_DIRNAME}/{a}/{name} generates")
        if dest.is_dir():
            for extra in sorted(dest.glob("*.ipynb")):
                if extra.name not in files:
                    problems.append(f"{extra.relative_to(root)} has no source notebook")
    return problems


def assert_release_in_sync(assignments: list[str] | None = None, root: Path | None = None,
                           generated: dict[str, dict[str, str]] | None = None) -> None:
    """Raise :class:`ReleaseOutOfDate` (telling the author to run ``make release``) if stale."""
    problems = release_problems(assignments, root, generated)
    if problems:
        raise ReleaseOutOfDate(
            "notebooks/ is out of date with solutions/:\n  " + "\n  ".join(problems) + f"\n{FIX_HINT}"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m autograder.release", description=__doc__.split("\n\n")[0])
    ap.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="default: every assignment in solutions/")
    ap.add_argument("--check", action="store_true", help="only check that notebooks/ is up to date")
    args = ap.parse_args(argv)
    try:
        if args.check:
            assert_release_in_sync(args.assignments or None)
            print("notebooks/ is up to date with solutions/")
        else:
            if not (args.assignments or list_assignments()):
                print(f"no assignments found under {course_root() / SOURCE_DIRNAME}", file=sys.stderr)
                return 1
            release(args.assignments or None)
    except (ReleaseError, ReleaseOutOfDate) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
