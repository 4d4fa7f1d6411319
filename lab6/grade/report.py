"""Write the grading outputs: the points CSV, one feedback file and one written-answer page per student."""

from __future__ import annotations

import csv
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from lab6.grade.score import Figure, ItemResult, SubmissionResult
from lab6.grade.workbook import GradedItem
from lab6.i18n import tr

__all__ = ["StudentRecord", "collect_students", "write_csv", "write_feedback", "write_written_pages", "safe_name"]


@dataclass
class StudentRecord:
    """One CSV row: a student's results over every notebook in the batch."""

    student: str
    results: dict[str, ItemResult] = field(default_factory=dict)
    submissions: list[SubmissionResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing_notebooks: set[str] = field(default_factory=set)

    @property
    def total(self) -> float:
        return sum(result.points for result in self.results.values())


def safe_name(student: str) -> str:
    """Return ``student`` made safe as a file name."""
    return re.sub(r"[^\w.-]", "_", student).strip(".") or "student"


def _points(value: float) -> str:
    return f"{value:g}"


def collect_students(submissions: list[SubmissionResult], items: list[GradedItem]) -> list[StudentRecord]:
    """Group results by student; items of a notebook a student did not submit get 0 with a reason."""
    records: dict[str, StudentRecord] = {}
    for submission in submissions:
        record = records.setdefault(submission.student, StudentRecord(submission.student))
        record.submissions.append(submission)
        record.notes.extend(submission.notes)
        for result in submission.items:
            record.results[result.item.id] = result
    for record in records.values():
        for item in items:
            if item.id not in record.results:
                record.missing_notebooks.add(item.notebook)
                reason = "" if item.kind == "report" else tr("grade.reason.no_submission", notebook=item.notebook)
                record.results[item.id] = ItemResult(item=item, passed=False, points=0, reason=reason)
    return [records[name] for name in sorted(records)]


def write_csv(path: Path, students: list[StudentRecord], items: list[GradedItem]) -> None:
    """Write one row per student: points per item, total, empty report columns, reasons, notes, files."""
    scored = [item for item in items if item.kind != "report"]
    reports = [item for item in items if item.kind == "report"]
    header = ["student"] + [item.id for item in scored] + ["total"] + [item.id for item in reports]
    header += ["reasons", "notes", "files"]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The byte order mark makes Excel on Windows read the file as UTF-8, so the zh-TW reasons show.
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for record in students:
            reasons = []
            for item in scored:
                result = record.results[item.id]
                if result.passed or not result.reason:
                    continue
                # A notebook the student did not submit gets one entry, not one per item.
                label = item.notebook if item.notebook in record.missing_notebooks else item.id
                reasons.append(f"{label}: {result.reason}")
            errors = [f"{Path(s.file).name}: {s.error}" for s in record.submissions if s.error]
            row = [record.student]
            row += [_points(record.results[item.id].points) for item in scored]
            row += [_points(sum(record.results[item.id].points for item in scored))]
            row += ["" for _ in reports]
            row += [" | ".join(_dedupe(errors + reasons)), " | ".join(_dedupe(record.notes))]
            row += [";".join(sorted(s.file for s in record.submissions))]
            writer.writerow(row)


def _dedupe(lines: list[str]) -> list[str]:
    seen: list[str] = []
    for line in lines:
        if line not in seen:
            seen.append(line)
    return seen


def _cell(text: str) -> str:
    """Make text safe for one Markdown table cell."""
    return " ".join(text.replace("|", "\\|").split())


def _file_errors(record: StudentRecord) -> dict[str, str]:
    """Map each notebook whose submitted file could not be graded to a message naming the file and why."""
    graded = {s.notebook for s in record.submissions if not s.error}
    return {
        s.notebook: tr("grade.feedback.file_not_graded", file=Path(s.file).name, reason=s.error)
        for s in record.submissions
        if s.error and s.notebook and s.notebook not in graded
    }


def _check_passed_pattern() -> re.Pattern[str]:
    """Match the kernel check's "public check passed" line in either language.

    That line also states that grading runs hidden checks, which is stale once grading is done.
    """
    from lab6.messages import MESSAGES

    forms = []
    for catalogue in MESSAGES.values():
        before, _, after = catalogue["checks.passed"].partition("{item}")
        forms.append(re.escape(before) + ".+?" + re.escape(after))
    return re.compile("^(?:" + "|".join(forms) + ")$")


def _public_detail(item: GradedItem, message: str, record: StudentRecord, items: list[GradedItem]) -> str:
    """Return a passed public item's message with the kernel's "hidden checks follow" line replaced by their outcome."""
    pattern = _check_passed_pattern()
    lines = [line for line in message.splitlines() if not pattern.match(line.strip())]
    if len(lines) == len(message.splitlines()):
        return message
    lines.insert(0, tr("grade.feedback.public_passed", item=item.exercise))
    hidden = [other for other in items if other.kind == "hidden" and other.notebook == item.notebook and other.exercise == item.exercise]
    for other in hidden:
        if record.results[other.id].passed:
            lines.append(tr("grade.feedback.hidden_passed"))
        else:
            lines.append(tr("grade.feedback.hidden_failed", title=other.title))
    return " ".join(lines)


def write_feedback(folder: Path, record: StudentRecord, items: list[GradedItem]) -> Path:
    """Write ``<student>.md``: every item's result and message, in the current language."""
    scored = [item for item in items if item.kind != "report"]
    max_total = sum(item.points for item in scored)
    lines = [tr("grade.feedback.title", student=record.student), ""]
    lines += [tr("grade.feedback.total", total=_points(record.total), max_total=_points(max_total)), ""]
    for submission in record.submissions:
        if submission.error:
            lines += [tr("grade.feedback.file_error", file=Path(submission.file).name, reason=submission.error), ""]
    file_errors = _file_errors(record)

    for notebook in _dedupe([item.notebook for item in items]):
        lines += [tr("grade.feedback.notebook", notebook=notebook), "", tr("grade.feedback.header")]
        for item in items:
            if item.notebook != notebook:
                continue
            result = record.results[item.id]
            if item.kind == "report":
                status, detail, shown = tr("grade.feedback.report"), "", f"– / {_points(item.points)}"
            else:
                status = tr("grade.feedback.passed") if result.passed else tr("grade.feedback.failed")
                detail = result.message if result.passed else result.reason
                if result.passed and item.kind == "public":
                    detail = _public_detail(item, detail, record, items)
                shown = f"{_points(result.points)} / {_points(item.points)}"
            if not result.passed and not detail and item.notebook in file_errors:
                detail = file_errors[item.notebook]
            lines.append(f"| {_cell(item.title)} | {shown} | {status} | {_cell(detail)} |")
        lines.append("")

    if record.notes:
        lines += [tr("grade.feedback.notes"), ""] + [f"- {note}" for note in _dedupe(record.notes)] + [""]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{safe_name(record.student)}.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _markdown_to_html(text: str) -> str:
    """Render a student's Markdown with raw HTML escaped, so nothing in it runs in the TA's browser."""
    try:
        import mistune
    except ImportError:  # mistune comes with nbconvert; plain text is still readable without it
        return f"<pre>{html.escape(text)}</pre>"
    return mistune.create_markdown(escape=True)(text)


_PAGE = """<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.5}}
section{{border-top:1px solid #ccc;margin-top:1.5em}}img{{max-width:100%;border:1px solid #eee;margin:.5em 0}}
.prompt{{background:#f6f6f6;padding:.2em 1em;border-left:4px solid #bbb}}figcaption{{color:#555;font-size:90%}}
.empty{{color:#a00}}</style></head><body>
<h1>{title}</h1>
{body}
</body></html>
"""


def _empty(text: str) -> str:
    return f'<p class="empty">{html.escape(text)}</p>'


def _figure_html(figure: Figure, number: int) -> str:
    if figure.heading:
        label = tr("grade.written.figure_label", notebook=figure.notebook, cell_id=figure.cell_id, heading=figure.heading)
    else:
        label = tr("grade.written.figure_label_no_heading", notebook=figure.notebook, cell_id=figure.cell_id)
    return (
        f'<figure><img alt="figure {number}" src="data:image/png;base64,{figure.png.strip()}">'
        f"<figcaption>{number}. {html.escape(label)}</figcaption></figure>"
    )


def _answer_html(item: GradedItem, record: StudentRecord, answers: dict[str, str], unreadable: dict[str, str]) -> str:
    """Return the HTML of one report answer, or of why there is none."""
    if item.notebook in unreadable:
        return _empty(tr("grade.written.unreadable_answer", file=unreadable[item.notebook]))
    if item.notebook in record.missing_notebooks:
        return _empty(tr("grade.written.not_submitted", notebook=item.notebook))
    text = answers.get(item.exercise, "").strip()
    return _markdown_to_html(text) if text else _empty(tr("grade.written.empty"))


def write_written_pages(folder: Path, record: StudentRecord, items: list[GradedItem]) -> Path:
    """Write ``<student>.html``: each report question's prompt and answer, then the figures, embedded as PNG.

    A file that could not be read is named with its reason at the top, and its questions
    point there instead of showing "no answer".
    """
    from lab6.i18n import language

    answers: dict[str, str] = {}
    prompts: dict[str, str] = {}
    figures: list[Figure] = []
    parts = []
    graded = {s.notebook for s in record.submissions if not s.error}
    unreadable: dict[str, str] = {}
    for submission in record.submissions:
        if submission.error:
            name = Path(submission.file).name
            parts.append(_empty(tr("grade.written.unreadable", file=name, reason=submission.error)))
            if submission.notebook and submission.notebook not in graded:
                unreadable[submission.notebook] = name
        answers.update(submission.report_answers)
        prompts.update(submission.report_prompts)
        figures.extend(submission.figures)
    for item in items:
        if item.kind != "report":
            continue
        section = [f"<section><h2>{html.escape(item.title)}</h2>"]
        prompt = prompts.get(item.exercise, "")
        if prompt:
            section.append(f'<div class="prompt"><h3>{html.escape(tr("grade.written.prompt"))}</h3>\n{_markdown_to_html(prompt)}</div>')
            section.append(f"<h3>{html.escape(tr('grade.written.answer'))}</h3>")
        section.append(_answer_html(item, record, answers, unreadable))
        parts.append("\n".join(section) + "</section>")
    parts.append(f"<section><h2>{html.escape(tr('grade.written.figures'))}</h2>")
    if figures:
        parts += [_figure_html(figure, number) for number, figure in enumerate(figures, start=1)]
    else:
        parts.append(f"<p>{html.escape(tr('grade.written.no_figures'))}</p>")
    parts.append("</section>")
    title = html.escape(tr("grade.written.title", student=record.student))
    page = _PAGE.format(lang="en" if language() == "en" else "zh-Hant-TW", title=title, body="\n".join(parts))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{safe_name(record.student)}.html"
    path.write_text(page, encoding="utf-8")
    return path
