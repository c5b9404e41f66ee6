"""Feedback that does not show an unmarked written answer as a 0.

nbgrader's feedback gives every written answer "Score: 0.0 / 2.0" until a
human marks it, and counts it in the notebook's total. :class:`PendingGrades`
(in place of nbgrader's ``GetGrades``) marks such a cell ``pending`` and leaves
it out of the total; the template ``templates/course_feedback`` shows
"pending (2 points, marked by hand)" there and says in its header how many
points wait for a human, and that demonstrations are not re-run at grading.
"""
from __future__ import annotations

from nbgrader.preprocessors import GetGrades


class PendingGrades(GetGrades):
    """``GetGrades``, and ``pending`` on each cell still waiting for a human's mark."""

    def preprocess(self, nb, resources):
        self.pending_points = 0.0
        self.pending_scores = 0.0
        nb, resources = super().preprocess(nb, resources)
        nbgrader = resources["nbgrader"]
        nbgrader["score"] -= self.pending_scores
        nbgrader["max_score"] -= self.pending_points
        nbgrader["pending_points"] = self.pending_points
        return nb, resources

    def _get_score(self, cell, resources):
        super()._get_score(cell, resources)
        grade = self.gradebook.find_grade(cell.metadata["nbgrader"]["grade_id"], self.notebook_id,
                                          self.assignment_id, self.student_id)
        pending = bool(grade.needs_manual_grade) and grade.manual_score is None
        cell.metadata.nbgrader["pending"] = pending
        if pending:
            self.pending_points += grade.max_score or 0.0
            self.pending_scores += grade.score or 0.0
