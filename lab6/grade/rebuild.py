"""Rebuild a submission: the student's answer cells placed into a fresh copy of the reference.

Only the source of the student's ``lab6:answer:*`` code cells and the text of their
``lab6:report:*`` markdown cells are taken. Check cells, other cells, stored outputs and
notebook metadata come from the reference, so editing them in the submission changes nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from lab6.grade.workbook import Workbook, cell_roles

__all__ = ["SubmissionError", "Rebuilt", "read_submission", "identify_notebook", "rebuild", "GRADING_INTERNALS"]

# Words in answer cells that suggest code reaching into the checks or the kernel's error
# reporting. They are flagged for a TA to read, never penalised automatically.
GRADING_INTERNALS = (
    "lab6.checks",
    "lab6.grade",
    "CheckFailed",
    "sys.modules",
    "builtins",
    "importlib",
    "__import__",
    "showtraceback",
    "excepthook",
    "get_ipython",
)

# nbval reads these markers from comment lines; a student's answer must not switch off checking.
_NBVAL_MARKER = re.compile(r"(#.*?)\b(NBVAL_|PYTEST_VALIDATE_)", re.IGNORECASE)


class SubmissionError(Exception):
    """A submission that cannot be graded at all; ``key`` is a message key in messages/grade.py."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


@dataclass
class Rebuilt:
    """The notebook to run, with what the rebuild noticed on the way."""

    notebook: NotebookNode
    name: str
    missing: list[str] = field(default_factory=list)
    """Exercises whose answer cell was not found in the submission."""
    matched_by_tag: list[str] = field(default_factory=list)
    """Exercises whose answer cell was found by tag because its cell id differs from the reference."""
    report_answers: dict[str, str] = field(default_factory=dict)
    """Each report question's answer; empty when the cell is missing or still contains the placeholder."""
    report_prompts: dict[str, str] = field(default_factory=dict)
    """Each report question's prompt: the reference's Markdown cell just before the answer cell."""
    internals: list[str] = field(default_factory=list)
    """Words from :data:`GRADING_INTERNALS` found in the answer cells."""
    kernel_name: str | None = None
    """The kernelspec name the submission was saved with (it always runs with python3)."""
    workbook_version: object = None
    """The submission's ``metadata.lab6.workbook_version`` when it differs from the reference's."""


def read_submission(path: Path) -> NotebookNode:
    """Read a submitted file as a notebook, or raise :class:`SubmissionError` saying why not."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SubmissionError("grade.reason.unreadable", detail=exc.strerror or type(exc).__name__) from None
    if not raw.strip():
        raise SubmissionError("grade.reason.empty_file")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SubmissionError("grade.reason.not_notebook", detail="not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise SubmissionError("grade.reason.bad_json", line=exc.lineno, column=exc.colno) from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise SubmissionError("grade.reason.not_notebook", detail="no 'cells' list")
    if data.get("nbformat") != 4:
        raise SubmissionError("grade.reason.old_format", version=data.get("nbformat"))
    try:
        return nbformat.from_dict(data)
    except Exception as exc:  # nbformat raises several types on malformed cell dicts
        raise SubmissionError("grade.reason.not_notebook", detail=type(exc).__name__) from None


def _answer_ids(notebook: dict[str, Any]) -> tuple[set[str], set[str]]:
    ids, exercises = set(), set()
    for cell in notebook.get("cells", []):
        if not isinstance(cell, dict):
            continue
        for role, exercise in cell_roles(cell):
            if role in ("answer", "report"):
                exercises.add(exercise)
                if cell.get("id"):
                    ids.add(cell["id"])
    return ids, exercises


def identify_notebook(submission: dict[str, Any] | None, filename: str, workbook: Workbook) -> str | None:
    """Return the stem of the reference notebook that a submission answers, or None.

    The answer cells' ids and tags decide. The file name decides only when they match no
    notebook, as for a file that is not a notebook or one whose tags were all removed.
    """
    best, best_score = None, 0
    if submission is not None:
        ids, exercises = _answer_ids(submission)
        for name in workbook.notebooks:
            ref_ids, ref_exercises = _answer_ids(workbook.reference(name))
            score = 2 * len(ids & ref_ids) + len(exercises & ref_exercises)
            if score > best_score:
                best, best_score = name, score
    if best is not None:
        return best
    stem = Path(filename).stem
    for name in sorted(workbook.notebooks, key=len, reverse=True):
        if name in stem:
            return name
    return None


def _student_cells(submission: NotebookNode) -> tuple[dict[str, NotebookNode], dict[str, NotebookNode]]:
    """Index the submission's cells by id and by answer or report tag (first one wins)."""
    by_id: dict[str, NotebookNode] = {}
    by_tag: dict[str, NotebookNode] = {}
    for cell in submission.cells:
        if cell.get("id") and cell["id"] not in by_id:
            by_id[cell["id"]] = cell
        for role, exercise in cell_roles(cell):
            by_tag.setdefault(f"{role}:{exercise}", cell)
    return by_id, by_tag


def _find(cell: NotebookNode, role: str, exercise: str, by_id: dict, by_tag: dict) -> tuple[NotebookNode | None, bool]:
    """Return the submission's cell for a reference cell and whether the tag (not the id) found it."""
    candidate = by_id.get(cell.get("id"))
    expected_type = cell.cell_type
    if candidate is not None and candidate.cell_type == expected_type:
        other_roles = [r for r in cell_roles(candidate) if r != (role, exercise)]
        if not other_roles:
            return candidate, False
    candidate = by_tag.get(f"{role}:{exercise}")
    if candidate is not None and candidate.cell_type == expected_type:
        return candidate, True
    return None, False


def _source(cell: NotebookNode) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _neutralise_markers(source: str) -> str:
    return _NBVAL_MARKER.sub(lambda m: m.group(1) + "LAB6_IGNORED_" + m.group(2), source)


def _stub_for(exercise: str, workbook: Workbook, name: str) -> str:
    """Return the student version's stub of an answer cell, which raises NotImplementedError."""
    student = workbook.student_version(name)
    if student is not None:
        for cell in student.cells:
            if ("answer", exercise) in cell_roles(cell):
                return _source(cell)
    return f'raise NotImplementedError("answer cell {exercise} is missing")\n'


def _report_templates(workbook: Workbook, name: str) -> dict[str, set[str]]:
    """Return, per report question, the lines of the student version's answer cell.

    Those lines are the cell's heading and placeholder, such as
    "（請刪掉這一行，在這裡寫下你的回答。）", so an answer made only of them is no answer.
    """
    student = workbook.student_version(name)
    templates: dict[str, set[str]] = {}
    for cell in student.cells if student is not None else []:
        for role, exercise in cell_roles(cell):
            if role == "report":
                templates[exercise] = {line.strip() for line in _source(cell).splitlines()}
    return templates


def _answer_text(source: str, template: set[str]) -> str:
    """Return ``source``, or "" when every non-blank line of it comes from the template."""
    if all(line.strip() in template for line in source.splitlines() if line.strip()):
        return ""
    return source


def _prompt_before(cells: list[NotebookNode], index: int) -> str:
    """Return the Markdown cell just before ``cells[index]`` when it has no lab6 role, else ""."""
    if index > 0 and cells[index - 1].cell_type == "markdown" and not cell_roles(cells[index - 1]):
        return _source(cells[index - 1]).strip()
    return ""


def rebuild(submission: NotebookNode, name: str, workbook: Workbook) -> Rebuilt:
    """Place the submission's answers into a fresh copy of reference notebook ``name``.

    No hidden checks go into the notebook: the grader runs them in its own process
    (:mod:`lab6.grade.trusted`), so their code never enters the student's kernel.
    """
    reference = workbook.reference(name)
    by_id, by_tag = _student_cells(submission)
    kernel = submission.get("metadata", {}).get("kernelspec", {})
    result = Rebuilt(notebook=reference, name=name, kernel_name=kernel.get("name") if isinstance(kernel, dict) else None)

    version = submission.get("metadata", {}).get("lab6", {})
    version = version.get("workbook_version") if isinstance(version, dict) else None
    if version != reference.get("metadata", {}).get("lab6", {}).get("workbook_version"):
        result.workbook_version = version if version is not None else "?"

    templates = _report_templates(workbook, name)
    cells: list[NotebookNode] = []
    for index, cell in enumerate(reference.cells):
        roles = cell_roles(cell)
        for role, exercise in roles:
            if role == "answer":
                found, by_tag_only = _find(cell, role, exercise, by_id, by_tag)
                if found is None:
                    result.missing.append(exercise)
                    cell.source = _stub_for(exercise, workbook, name)
                else:
                    if by_tag_only:
                        result.matched_by_tag.append(exercise)
                    source = _source(found)
                    result.internals.extend(word for word in GRADING_INTERNALS if word in source)
                    cell.source = _neutralise_markers(source)
                cell.outputs = []
                cell.execution_count = None
            elif role == "report":
                found, _ = _find(cell, role, exercise, by_id, by_tag)
                answer = _source(found) if found is not None else ""
                result.report_answers[exercise] = _answer_text(answer, templates.get(exercise, set()))
                result.report_prompts[exercise] = _prompt_before(reference.cells, index)
        if cell.cell_type == "code" and cell.get("outputs") and cell.get("execution_count") is None:
            # nbval fails a cell whose stored outputs lack an execution count ("Unrun reference
            # cell has outputs"); a generated student notebook may store them that way.
            cell.execution_count = 1
        cells.append(cell)

    reference.cells = cells
    reference.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    result.internals = sorted(set(result.internals))
    return result
