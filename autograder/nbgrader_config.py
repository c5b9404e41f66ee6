"""nbgrader configuration of the course.

Every path is absolute, so this file works from any current directory:

    nbgrader <command> --config=autograder/nbgrader_config.py ...

``python -m autograder.release`` and ``python -m autograder.grade`` pass it
for you (and override the grading work dir / gradebook where they need to).

Environment variables read here:

* ``COURSE_ROOT``         course root (default: the parent of autograder/);
* ``COURSE_GRADING_DIR``  nbgrader "course directory" for grading, holding
  submitted/, autograded/, feedback/ and gradebook.db
  (default: ``build/grading/class``, git-ignored);
* ``COURSE_CELL_TIMEOUT`` seconds one cell may run during autograde/validate
  (default 300).
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821  (provided by traitlets when it loads this file)

_ROOT = Path(os.environ.get("COURSE_ROOT") or Path(__file__).resolve().parent.parent).resolve()
_GRADING = Path(os.environ.get("COURSE_GRADING_DIR") or _ROOT / "build" / "grading" / "class").resolve()

# --- where things live --------------------------------------------------------
c.CourseDirectory.course_id = "cnn-design"
c.CourseDirectory.root = str(_GRADING)
c.CourseDirectory.source_directory = str(_ROOT / "solutions")   # nbgrader "source"
c.CourseDirectory.release_directory = str(_ROOT / "notebooks")  # nbgrader "release"
# The gradebook is outside every git-tracked path (build/ is git-ignored).
c.CourseDirectory.db_url = "sqlite:///" + str(_GRADING / "gradebook.db")
# Only notebooks go into a release; never editor/OS/cache debris.
c.CourseDirectory.include = ["*.ipynb"]
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints",
    "__pycache__",
    "*.pyc",
    "feedback",
    ".DS_Store",
    "*~",
    ".~*",
]

# --- what students get --------------------------------------------------------
c.ClearSolutions.code_stub = {
    "python": '# YOUR CODE HERE\nraise NotImplementedError("Replace this line with your solution.")'
}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# --- executing notebooks (autograde, validate) --------------------------------
c.Execute.timeout = int(os.environ.get("COURSE_CELL_TIMEOUT", "300"))
# Minimal tracebacks: a failing hidden test shows only "AssertionError: <message>",
# never the hidden source lines (IPython's default traceback quotes them).
# stderr goes to stdout in grading kernels: nbgrader scores any test cell that
# wrote to stderr 0, and a warning from a correct answer must cost nothing.
c.Execute.extra_arguments = [
    "--HistoryManager.hist_file=:memory:",
    "--InteractiveShell.xmode=Minimal",
    "--IPKernelApp.exec_lines=import sys as _sys; _sys.stderr = _sys.stdout; del _sys",
]

# --- feedback -----------------------------------------------------------------
# nbgrader's feedback shows the autograded notebook, hidden tests included,
# unless ClearHiddenTests runs; it must run after GetGrades (which needs the
# cells' nbgrader metadata).
# autograder.feedback.PendingGrades is GetGrades that shows an unmarked written answer as
# "pending" (not 0) and leaves it out of the total, with the course's feedback template.
c.GenerateFeedback.preprocessors = [
    "autograder.feedback.PendingGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    "nbgrader.preprocessors.ClearHiddenTests",
]

c.HTMLExporter.template_name = "course_feedback"
c.HTMLExporter.extra_template_basedirs = [str(Path(__file__).resolve().parent / "templates")]
