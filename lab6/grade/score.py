"""Combine nbval's per-cell outcomes and the trusted re-checks into each item's points and reason.

A public item passes when its answer cell and its check cell both run without error in the
kernel (and the check cell's output matches the reference where nbval compares it) *and*
the grader's own run of the same public check passes (:mod:`lab6.grade.trusted`). A hidden
item's points come from the trusted hidden check alone. Report items get no points here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lab6.grade.rebuild import Rebuilt
from lab6.grade.run import Limits, RunResult
from lab6.grade.trusted import TrustedOutcome
from lab6.grade.workbook import GradedItem, cell_roles
from lab6.i18n import tr

__all__ = ["Figure", "ItemResult", "SubmissionResult", "score_run", "failed_submission", "section_headings"]

_NAME_ERROR = re.compile(r"name '([^']+)' is not defined")
_MAX_CELL_NOTES = 3


@dataclass
class ItemResult:
    """One item's outcome for one submission."""

    item: GradedItem
    passed: bool
    points: float
    reason: str = ""
    """Reason the points were lost, in the current language; empty when passed."""
    message: str = ""
    """Output of the check (public or hidden) when it passed, for the feedback file."""


@dataclass(frozen=True)
class Figure:
    """One PNG image a cell produced while grading, and where that cell is."""

    notebook: str
    cell_id: str
    heading: str
    """Title of the Markdown section the cell sits in, "" when no heading comes before it."""
    png: str
    """The image, base64-encoded."""


@dataclass
class SubmissionResult:
    """Everything the reports need about one graded file."""

    student: str
    file: str
    notebook: str | None
    items: list[ItemResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    """Reason the whole file could not be graded, or None."""
    report_answers: dict[str, str] = field(default_factory=dict)
    report_prompts: dict[str, str] = field(default_factory=dict)
    """Each report question's prompt from the reference notebook, "" when it has none."""
    figures: list[Figure] = field(default_factory=list)
    """Images produced while grading, in cell order."""
    seconds: float = 0.0

    @property
    def total(self) -> float:
        return sum(result.points for result in self.items)


def _cause(record: dict[str, Any]) -> str:
    code = record.get("exit_code")
    if code is None:
        return tr("grade.cause.unknown")
    if code < 0:
        return tr("grade.cause.signal", signal=-code)
    return tr("grade.cause.exit", code=code)


def _generic_reason(record: dict[str, Any], limits: Limits) -> str:
    """Return the reason for a failed cell whose status is not an ordinary error."""
    status = record["status"]
    if status == "timeout":
        return tr("grade.reason.timeout", seconds=f"{limits.cell_seconds:g}")
    if status == "kernel_died":
        return tr("grade.reason.kernel_died", cause=_cause(record))
    if status == "kernel_dead":
        return tr("grade.reason.kernel_dead")
    if status == "setup_failed":
        return tr("grade.reason.setup_failed", detail=record.get("evalue", "")[:200])
    if status == "output_mismatch":
        return tr("grade.reason.output_mismatch")
    return tr("grade.reason.grader_error", detail=record.get("evalue", status)[:200])


def _missing_record(run: RunResult, limits: Limits) -> str:
    if run.timed_out:
        return tr("grade.reason.not_run", seconds=f"{limits.submission_seconds:g}")
    return tr("grade.reason.not_graded")


def _answer_reason(record: dict[str, Any] | None, run: RunResult, limits: Limits) -> str | None:
    """Return why the answer cell failed, or None when it ran cleanly."""
    if record is None:
        return _missing_record(run, limits)
    if record["status"] in ("passed", "skipped"):
        return None
    if record["status"] == "error":
        if record.get("ename") == "NotImplementedError":
            return tr("grade.reason.not_implemented")
        return tr("grade.reason.answer_error", ename=record.get("ename", ""), evalue=record.get("evalue", "")[:200])
    return _generic_reason(record, limits)


def _check_reason(record: dict[str, Any] | None, run: RunResult, limits: Limits) -> str | None:
    """Return why a check cell failed, or None when it passed."""
    if record is None:
        return _missing_record(run, limits)
    if record["status"] == "passed":
        return None
    if record["status"] == "error":
        ename, evalue = record.get("ename", ""), record.get("evalue", "")
        if ename == "CheckFailed":
            return evalue  # the check's own message, which already states that the check failed
        missing_name = _NAME_ERROR.search(evalue) if ename == "NameError" else None
        if missing_name:
            return tr("grade.reason.name_missing", name=missing_name.group(1))
        return tr("grade.reason.check_error", ename=ename, evalue=evalue[:200])
    if record["status"] == "skipped":
        return tr("grade.reason.not_graded")
    return _generic_reason(record, limits)


def score_run(
    student: str,
    file: str,
    rebuilt: Rebuilt,
    run: RunResult,
    items: list[GradedItem],
    limits: Limits,
    trusted: dict[str, TrustedOutcome] | None,
) -> SubmissionResult:
    """Score one executed submission against the items of its notebook.

    ``trusted`` contains the re-checks' outcome per public and hidden item id; an item
    without one scores 0, so a re-check that did not run never gives points. None scores
    the kernel's run alone, as the students' own check does: public items by their cells,
    hidden items not at all.
    """
    by_role: dict[tuple[str, str], dict[str, Any]] = {}
    result = SubmissionResult(student=student, file=file, notebook=rebuilt.name, seconds=run.seconds)
    cell_notes = 0
    headings = section_headings(rebuilt.notebook)
    for record in run.cells:
        roles = cell_roles({"metadata": {"tags": record.get("tags", [])}})
        for role in roles:
            by_role.setdefault(role, record)
        cell_id = str(record.get("id") or "?")
        for png in record.get("images", []):
            result.figures.append(Figure(rebuilt.name, cell_id, headings.get(cell_id, ""), png))
        if not roles and record["status"] == "error" and cell_notes < _MAX_CELL_NOTES:
            cell_notes += 1
            result.notes.append(tr("grade.note.cell_error", index=record["index"] + 1, ename=record.get("ename", "")))

    for item in items:
        if item.kind == "report":
            result.items.append(ItemResult(item=item, passed=False, points=0))
            continue
        exercise = item.exercise
        outcome = trusted.get(item.id) if trusted is not None else None
        message = ""
        if exercise in rebuilt.missing:
            reason: str | None = tr("grade.reason.answer_missing", exercise=exercise)
        elif item.kind == "public":
            reason = _answer_reason(by_role.get(("answer", exercise)), run, limits)
            if reason is None and not _has_no_check(rebuilt, exercise):
                record = by_role.get(("check", exercise))
                reason = _check_reason(record, run, limits)
                message = (record or {}).get("stdout", "").strip()
            if reason is None and trusted is not None:
                reason = _trusted_reason(outcome)
        else:
            reason = _trusted_reason(outcome)
            if reason is None:
                message = outcome.message if outcome is not None else ""
            elif outcome is not None and outcome.function_missing:
                # The worker has no function because the answer cell failed; the kernel says why.
                reason = _answer_reason(by_role.get(("answer", exercise)), run, limits) or reason
        passed = reason is None
        result.items.append(
            ItemResult(item=item, passed=passed, points=item.points if passed else 0, reason=reason or "", message=message)
        )

    if rebuilt.workbook_version is not None:
        result.notes.append(tr("grade.note.old_version", version=rebuilt.workbook_version))
    if rebuilt.matched_by_tag:
        result.notes.append(tr("grade.note.matched_by_tag", exercises=", ".join(rebuilt.matched_by_tag)))
    if rebuilt.internals:
        result.notes.append(tr("grade.note.internals", words=", ".join(rebuilt.internals)))
    if rebuilt.kernel_name and rebuilt.kernel_name != "python3":
        result.notes.append(tr("grade.note.kernelspec", name=rebuilt.kernel_name))
    if run.timed_out:
        result.notes.append(tr("grade.note.submission_timeout", seconds=f"{limits.submission_seconds:g}"))
    result.report_answers = dict(rebuilt.report_answers)
    result.report_prompts = dict(rebuilt.report_prompts)
    return result


_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def section_headings(notebook: Any) -> dict[str, str]:
    """Map each cell id to the last Markdown heading at or before that cell ("" before the first)."""
    headings: dict[str, str] = {}
    current = ""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            source = cell.get("source", "")
            found = _HEADING.findall("".join(source) if isinstance(source, list) else str(source))
            if found:
                current = found[-1]
        if cell.get("id"):
            headings[str(cell.get("id"))] = current
    return headings


def _trusted_reason(outcome: TrustedOutcome | None) -> str | None:
    if outcome is None:
        return tr("grade.reason.not_graded")
    return None if outcome.passed else outcome.reason


def _has_no_check(rebuilt: Rebuilt, exercise: str) -> bool:
    return not any(("check", exercise) in cell_roles(cell) for cell in rebuilt.notebook.cells)


def failed_submission(student: str, file: str, notebook: str | None, items: list[GradedItem], reason: str) -> SubmissionResult:
    """Return the result of a file that could not be run: every item lost, the reason given once."""
    result = SubmissionResult(student=student, file=file, notebook=notebook, error=reason)
    result.items = [ItemResult(item=item, passed=False, points=0) for item in items]
    return result
