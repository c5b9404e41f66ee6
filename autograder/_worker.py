"""One grading job: ``nbgrader autograde`` then ``generate_feedback`` for one
student and assignment, in one process (importing nbgrader costs ~5 s, so the
two steps share it). Run by :mod:`autograder.grade`, one process per submission:

    python -m autograder._worker WORKDIR ASSIGNMENT STUDENT

With ``COURSE_SANDBOX_RUNTIME`` set (a folder of this job's own), the kernel
is the ``course-sandbox`` kernelspec (:mod:`autograder.sandbox`) and talks to
nbgrader over Unix sockets in that folder; otherwise the plain ``python3``
kernel. Either way the kernel named in the submission is ignored.

Between the two steps the autograded notebook is made safe to hand back:
each cell's output is capped (``COURSE_OUTPUT_CAP`` characters, default
20,000), any line of a hidden test that a cell printed is removed, and a
"grading notes" cell lists what the grader noticed
(``<workdir>/notes/<student>/<assignment>.json``).

Exit status: 0 graded and feedback written; 3 autograde failed; 4 feedback failed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

OUTPUT_CAP = int(os.environ.get("COURSE_OUTPUT_CAP") or 20_000)
IMAGE_CAP = 2_000_000          # characters of base64 images per cell
MIN_SECRET = 20                # hidden-test lines shorter than this are too generic to redact


def hidden_lines(source_dir: Path) -> set[str]:
    lines = set()
    for path in source_dir.glob("*.ipynb"):
        for cell in json.loads(path.read_text(encoding="utf-8")).get("cells", []):
            inside = False
            for line in "".join(cell.get("source", "")).splitlines():
                if "BEGIN HIDDEN TESTS" in line:
                    inside = True
                elif "END HIDDEN TESTS" in line:
                    inside = False
                elif inside and len(line.strip()) >= MIN_SECRET:
                    lines.add(line.strip())
    return lines


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def sanitise(nb: dict, secrets: set[str]) -> int:
    """Cap and redact the outputs of ``nb`` in place; return how many cells were changed."""
    changed = 0

    def clean(text: str) -> str:
        if secrets and any(s in text for s in secrets):
            text = "\n".join("[line of a hidden test removed]" if ln.strip() in secrets
                             or any(s in ln for s in secrets) else ln for ln in text.split("\n"))
        return text

    for cell in nb.get("cells", []):
        if not isinstance(cell.get("outputs"), list):
            continue
        budget, images, before = OUTPUT_CAP, IMAGE_CAP, json.dumps(cell.get("outputs", []))
        kept = []
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "stream" or kind == "error":
                key = "text" if kind == "stream" else "traceback"
                text = clean(_text(out.get(key, "")) if kind == "stream" else "\n".join(out.get(key, [])))
                if kind == "error":
                    out["evalue"] = clean(str(out.get("evalue", "")))[:OUTPUT_CAP]
                if len(text) > budget:
                    text = text[:max(budget, 0)] + f"\n[output cut: over {OUTPUT_CAP:,} characters]\n"
                budget -= len(text)
                out[key] = text if kind == "stream" else text.split("\n")
                if budget < -200:       # the cut notice is written once; drop what follows
                    continue
            elif kind in ("display_data", "execute_result"):
                data = out.get("data", {})
                for mime in list(data):
                    if not isinstance(data[mime], (str, list)):
                        continue                  # JSON data (a widget's model id): keep as it is
                    value = _text(data[mime])
                    if mime.startswith("image/"):
                        images -= len(value)
                        if images < 0:
                            data.pop(mime)
                            data.setdefault("text/plain", "[image removed: too many images]")
                    else:
                        value = clean(value)
                        if len(value) > budget:
                            value = value[:max(budget, 0)] + "\n[output cut]"
                        budget -= len(value)
                        data[mime] = value
            kept.append(out)
        cell["outputs"] = kept
        if json.dumps(kept) != before:
            changed += 1
    return changed


def add_notes(nb: dict, notes: dict) -> None:
    lines = []
    if notes.get("sandboxed", "").startswith("no"):
        lines.append(f"* Graded without the sandbox: {notes['sandboxed']}.")
    lines += [f"* Flagged for your instructor to review: {f}" for f in notes.get("flags", [])]
    lines += [f"* {n}" for n in notes.get("notes", [])]
    if lines:
        nb["cells"].insert(0, {"cell_type": "markdown", "metadata": {}, "source":
                               "## Grading notes\n\n" + "\n".join(lines)})


def postprocess(workdir: Path, assignment: str, student: str, source_dir: Path, log) -> None:
    notes_file = workdir / "notes" / student / f"{assignment}.json"
    notes = json.loads(notes_file.read_text()) if notes_file.exists() else {}
    secrets = hidden_lines(source_dir)
    for path in (workdir / "autograded" / student / assignment).glob("*.ipynb"):
        nb = json.loads(path.read_text(encoding="utf-8"))
        changed = sanitise(nb, secrets)
        add_notes(nb, notes)
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        if changed:
            log.info("capped or redacted the output of %d cell(s) in %s", changed, path.name)


def main(argv: list[str]) -> int:
    workdir, assignment, student = Path(argv[0]), argv[1], argv[2]
    from traitlets.config.loader import PyFileConfigLoader

    from nbgrader.converters import Autograde, GenerateFeedback
    from nbgrader.coursedir import CourseDirectory

    from . import CONFIG_FILE, COURSE_ID, SOURCE_DIRNAME, course_root
    from .assemble import SKIP_TAG
    from .sandbox import KERNEL_NAME

    cfg = PyFileConfigLoader(CONFIG_FILE.name, path=str(CONFIG_FILE.parent)).load_config()
    cfg.CourseDirectory.root = str(workdir)
    cfg.CourseDirectory.source_directory = str(course_root() / SOURCE_DIRNAME)
    cfg.CourseDirectory.release_directory = str(workdir / "release")
    cfg.CourseDirectory.db_url = f"sqlite:///{workdir / 'gradebook.db'}"
    cfg.CourseDirectory.course_id = COURSE_ID
    runtime = os.environ.get("COURSE_SANDBOX_RUNTIME")
    if runtime:
        cfg.Execute.kernel_name = KERNEL_NAME
        cfg.KernelManager.transport = "ipc"
        cfg.KernelManager.ip = str(Path(runtime) / "ipc")
        cfg.KernelManager.connection_file = str(Path(runtime) / "kernel.json")
    else:
        cfg.Execute.kernel_name = "python3"

    def announce(cell=None, cell_index=None, **_):
        # The grader names the cell in which a kernel died or timed out from this line.
        gid = (cell or {}).get("metadata", {}).get("nbgrader", {}).get("grade_id")
        print(f"[course] running cell {gid or f'#{cell_index}'}", flush=True)

    cfg.Execute.on_cell_execute = announce
    cfg.Execute.skip_cells_with_tag = SKIP_TAG   # the demonstrations (see assemble.skip_demonstrations)

    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="[%(name)s | %(levelname)s] %(message)s")
    log = logging.getLogger("autograder")

    coursedir = CourseDirectory(config=cfg)
    coursedir.assignment_id = assignment
    coursedir.student_id = student
    for step, cls, code in (("autograde", Autograde, 3), ("generate_feedback", GenerateFeedback, 4)):
        if step == "generate_feedback":
            try:
                postprocess(workdir, assignment, student, course_root() / SOURCE_DIRNAME / assignment, log)
            except Exception as e:  # noqa: BLE001 - a broken notebook must not stop the feedback
                log.error("post-processing the autograded notebook failed: %s: %s", type(e).__name__, e)
        app = cls(coursedir=coursedir, config=cfg)
        app.log = log
        app.force = True
        if step == "autograde":
            app.create_student = True
        log.info("%s %s for %s", step, assignment, student)
        try:
            app.start()
        except Exception as e:  # noqa: BLE001 - nbgrader raises NbGraderException and others
            log.error("%s failed: %s: %s", step, type(e).__name__, e)
            if step == "autograde":
                return code
            status = code
            break
    else:
        status = 0
    try:
        write_scores(workdir, assignment, student, cfg.CourseDirectory.db_url, COURSE_ID)
    except Exception as e:  # noqa: BLE001
        log.error("reading the scores failed: %s: %s", type(e).__name__, e)
        return 3
    return status


def write_scores(workdir: Path, assignment: str, student: str, db_url: str, course_id: str) -> None:
    """Read this submission's grades from the gradebook into ``<workdir>/scores/`` (JSON)."""
    import warnings

    from .scores import grades_of, scores_file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # SQLAlchemy deprecations inside nbgrader
        from nbgrader.api import Gradebook

        with Gradebook(db_url, course_id) as gb:
            grades = grades_of(gb, assignment, student)
    path = scores_file(workdir, student, assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(grades))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
