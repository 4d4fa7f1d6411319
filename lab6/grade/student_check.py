"""The students' check before they submit: ``python -m lab6 check notebooks/04_*.ipynb``.

It grades the notebook the way the grader will, without the hidden checks and without
points: the answer cells are placed into a fresh copy of the course's student notebook and
run in a fresh kernel. It also reads the saved file, to confirm that every answer cell is
there, that every report question has an answer, and that the notebook was run from a
fresh kernel in order (execution counts 1, 2, 3, ... down the notebook).
"""

from __future__ import annotations

from pathlib import Path

from nbformat import NotebookNode

from lab6.grade.rebuild import SubmissionError, identify_notebook, read_submission, rebuild
from lab6.grade.run import Limits, run_notebook
from lab6.grade.score import score_run
from lab6.grade.workbook import REPO_ROOT, Workbook, cell_roles, load_workbook
from lab6.i18n import Lab6Error, language, tr

__all__ = ["check_notebook", "execution_problems", "public_workbook"]


def public_workbook() -> Workbook:
    """Return the workbook with the student notebooks (``notebooks/``) as the reference."""
    student_dir = REPO_ROOT / "notebooks"
    if student_dir.is_dir():
        return load_workbook(student_dir, student_dir)
    return load_workbook()


def _code_cells(notebook: NotebookNode) -> list[NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code" and str(cell.get("source", "")).strip()]


def execution_problems(notebook: NotebookNode) -> list[str]:
    """Return messages about code cells that were not run, or not run in order from a fresh kernel."""
    cells = _code_cells(notebook)
    unrun = [index for index, cell in enumerate(cells, start=1) if cell.get("execution_count") is None]
    if unrun:
        return [tr("check.not_run", count=len(unrun), first=unrun[0])]
    for index, cell in enumerate(cells, start=1):
        if cell.execution_count != index:
            return [tr("check.out_of_order", index=index, count=cell.execution_count)]
    return []


def _unanswered_reports(submission: NotebookNode, rebuilt_answers: dict[str, str], reference: NotebookNode) -> list[str]:
    prompts = {
        exercise: str(cell.get("source", "")).strip()
        for cell in reference.cells
        for role, exercise in cell_roles(cell)
        if role == "report"
    }
    return [
        question
        for question, prompt in sorted(prompts.items())
        if not rebuilt_answers.get(question, "").strip() or rebuilt_answers.get(question, "").strip() == prompt
    ]


def _extra_code_cells(submission: NotebookNode, reference: NotebookNode) -> int:
    known = {cell.get("id") for cell in reference.cells}
    return sum(1 for cell in _code_cells(submission) if cell.get("id") not in known and not cell_roles(cell))


def question_number(question: str) -> str:
    """Return the number students see for a report question id: ``"q1"`` gives ``"1"``."""
    return question[1:] if question[:1] == "q" and question[1:].isdigit() else question


def check_notebook(path: Path, cell_seconds: float = 120.0, workbook: Workbook | None = None) -> int:
    """Check one notebook, print a summary in the user's language, and return 0 or 1 (something missing).

    Raises :class:`~lab6.i18n.Lab6Error` when the file is missing, cannot be read, or is not
    one of the course's notebooks.
    """
    workbook = workbook or public_workbook()
    if not path.is_file():
        raise Lab6Error("check.not_found", path=path)
    try:
        submission = read_submission(path)
    except SubmissionError as error:
        raise Lab6Error(error.key, **error.values) from None
    name = identify_notebook(submission, path.name, workbook)
    if name is None:
        raise Lab6Error("check.unknown_notebook", file=path.name)
    print(tr("check.header", file=path, notebook=name))

    rebuilt = rebuild(submission, name, workbook)
    reference = workbook.reference(name)
    items = [item for item in workbook.items_for(name) if item.kind == "public"]
    problems: list[str] = []
    warnings: list[str] = []
    titles = {item.exercise: item.title for item in items}
    for exercise in rebuilt.missing:
        problems.append(tr("check.answer_missing", exercise=exercise, title=titles.get(exercise, exercise)))
    warnings += [tr("check.by_tag", exercise=exercise) for exercise in rebuilt.matched_by_tag]
    for question in _unanswered_reports(submission, rebuilt.report_answers, reference):
        problems.append(tr("check.report_empty", number=question_number(question)))
    problems += execution_problems(submission)
    extra = _extra_code_cells(submission, reference)
    if extra:
        warnings.append(tr("check.extra_cells", count=extra))

    limits = Limits(cell_seconds=cell_seconds, submission_seconds=max(600.0, cell_seconds * 5), cpu_seconds=3600)
    # The kernel prints the checks' messages, so it runs in the student's language. The graders
    # keep zh-TW there because the reference outputs that nbval compares were saved in zh-TW.
    run = run_notebook(rebuilt.notebook, limits, env={"LAB6_LANG": language()})
    result = score_run("-", str(path), rebuilt, run, items, limits, trusted=None)
    lines = []
    for item_result in result.items:
        if item_result.item.exercise in rebuilt.missing:
            continue
        if item_result.passed:
            lines.append(tr("check.item_passed", title=item_result.item.title))
        else:
            lines.append(tr("check.item_failed", title=item_result.item.title, reason=item_result.reason))
            problems.append(item_result.reason)
    for record in run.cells:
        if record["status"] == "error" and not cell_roles({"metadata": {"tags": record.get("tags", [])}}):
            warnings.append(tr("check.other_errors", index=record["index"] + 1, ename=record.get("ename", ""), evalue=record.get("evalue", "")[:200]))

    print("\n".join(lines + [line for line in problems if line.startswith("  ")] + warnings))
    if problems:
        print(tr("check.missing_summary", count=len(problems)))
        return 1
    print(tr("check.ok"))
    return 0
