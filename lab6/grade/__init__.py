"""The instructors' autograder and the students' pre-submission check.

``python -m lab6 grade SUBMISSION_OR_FOLDER... --out grades.csv`` rebuilds each submission
from the reference notebooks (:mod:`lab6.grade.rebuild`), runs it under nbval in a separate,
resource-limited process (:mod:`lab6.grade.run`), scores it (:mod:`lab6.grade.score`) and
writes the CSV, feedback files and written-answer pages (:mod:`lab6.grade.report`).
``python -m lab6 check NOTEBOOK`` is the students' side (:mod:`lab6.grade.student_check`).

This package file imports nothing heavy, because the nbval plugin in
:mod:`lab6.grade.nbval_hooks` is imported by every grading subprocess.
"""
