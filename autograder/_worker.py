"""One grading job: ``nbgrader autograde`` then ``generate_feedback`` for one
student and assignment, in one process (importing nbgrader costs ~5 s, so the
two steps share it). Run by :mod:`autograder.grade`, one process per submission:

    python -m autograder._worker WORKDIR ASSIGNMENT STUDENT

Exit status: 0 graded and feedback written; 3 autograde failed; 4 feedback failed.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    workdir, assignment, student = Path(argv[0]), argv[1], argv[2]
    from traitlets.config.loader import PyFileConfigLoader

    from nbgrader.converters import Autograde, GenerateFeedback
    from nbgrader.coursedir import CourseDirectory

    from . import CONFIG_FILE, COURSE_ID, SOURCE_DIRNAME, course_root

    cfg = PyFileConfigLoader(CONFIG_FILE.name, path=str(CONFIG_FILE.parent)).load_config()
    cfg.CourseDirectory.root = str(workdir)
    cfg.CourseDirectory.source_directory = str(course_root() / SOURCE_DIRNAME)
    cfg.CourseDirectory.release_directory = str(workdir / "release")
    cfg.CourseDirectory.db_url = f"sqlite:///{workdir / 'gradebook.db'}"
    cfg.CourseDirectory.course_id = COURSE_ID

    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="[%(name)s | %(levelname)s] %(message)s")
    log = logging.getLogger("autograder")

    coursedir = CourseDirectory(config=cfg)
    coursedir.assignment_id = assignment
    coursedir.student_id = student
    for step, cls, code in (("autograde", Autograde, 3), ("generate_feedback", GenerateFeedback, 4)):
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
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
