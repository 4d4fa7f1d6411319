"""Grade a batch of submissions in parallel and write the CSV, feedback files and written-answer pages.

Every file is graded on its own: a file that cannot be read, a kernel that dies or a cell
that never ends costs that student points with a reason, and the batch goes on. Results are
sorted by student and notebook, so a rerun writes the same CSV.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import nbformat

from lab6.grade.rebuild import SubmissionError, identify_notebook, read_submission, rebuild
from lab6.grade.report import collect_students, safe_name, write_csv, write_feedback, write_written_pages
from lab6.grade.run import Limits, run_notebook
from lab6.grade.score import SubmissionResult, failed_submission, score_run
from lab6.grade.trusted import TrustedChecker
from lab6.grade.workbook import GradedItem, Workbook
from lab6.i18n import tr

__all__ = ["Submission", "find_submissions", "student_id", "grade_file", "grade_batch", "BatchOutput"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    """A file to grade, the student it belongs to, and the notebook it answers (None if unknown)."""

    path: Path
    student: str
    notebook: str | None


@dataclass
class BatchOutput:
    results: list[SubmissionResult]
    csv_path: Path
    feedback_dir: Path
    written_dir: Path
    seconds: float


def find_submissions(paths: Iterable[Path]) -> list[Path]:
    """List the files to grade: files given directly, and every ``*.ipynb`` inside given folders.

    Jupyter's ``.ipynb_checkpoints`` folders are skipped.
    """
    found: set[Path] = set()
    for path in map(Path, paths):
        if path.is_dir():
            for candidate in path.rglob("*.ipynb"):
                if ".ipynb_checkpoints" not in candidate.parts and candidate.is_file():
                    found.add(candidate)
        elif path.exists():
            found.add(path)
    return sorted(found)


def student_id(path: Path, notebook: str | None, notebooks: list[str]) -> str:
    """Derive the student id from the file name.

    ``b10901234_04_get_real_idx.ipynb`` gives ``b10901234``: the notebook's name is removed
    from the file name. ``b10901234/04_get_real_idx.ipynb``, a folder per student, gives the
    folder's name. Any other file name gives its stem.
    """
    stem = Path(path).stem
    names = ([notebook] if notebook else []) + sorted(notebooks, key=len, reverse=True)
    for name in names:
        if name and name in stem:
            rest = stem.replace(name, "").strip("_- .")
            return rest or Path(path).resolve().parent.name
    return stem


def _notebook_of(path: Path, workbook: Workbook) -> str | None:
    try:
        return identify_notebook(read_submission(path), path.name, workbook)
    except SubmissionError:
        return identify_notebook(None, path.name, workbook)


def plan_submissions(paths: list[Path], workbook: Workbook) -> tuple[list[Submission], dict[tuple[str, str], list[Path]]]:
    """Assign each file a student and notebook; keep the first file per (student, notebook).

    Returns the submissions to grade and, for each (student, notebook) that had several
    files, all of them in sorted order (the first is graded).
    """
    chosen: dict[tuple[str, str], Submission] = {}
    duplicates: dict[tuple[str, str], list[Path]] = {}
    for path in paths:
        notebook = _notebook_of(path, workbook)
        student = student_id(path, notebook, workbook.notebooks)
        key = (student, notebook if notebook is not None else f"?{path}")
        if key in chosen:
            duplicates.setdefault(key, [chosen[key].path]).append(path)
            continue
        chosen[key] = Submission(path=path, student=student, notebook=notebook)
    return sorted(chosen.values(), key=lambda s: (s.student, s.notebook or "", str(s.path))), duplicates


def grade_file(
    submission: Submission,
    workbook: Workbook,
    limits: Limits,
    env: dict[str, str] | None = None,
    rebuilt_dir: Path | None = None,
) -> SubmissionResult:
    """Grade one file. A problem in the file, or an exception in the grader, becomes the row's reason.

    With ``rebuilt_dir`` the rebuilt notebook is also saved there, for ``pytest --nbval-lax``.
    """
    file = str(submission.path)
    items = workbook.items_for(submission.notebook) if submission.notebook else []
    try:
        notebook = read_submission(submission.path)
    except SubmissionError as error:
        return failed_submission(submission.student, file, submission.notebook, items, tr(error.key, **error.values))
    if submission.notebook is None:
        return failed_submission(submission.student, file, None, items, tr("grade.reason.unknown_notebook"))
    try:
        rebuilt = rebuild(notebook, submission.notebook, workbook)
        if rebuilt_dir is not None:
            rebuilt_dir.mkdir(parents=True, exist_ok=True)
            nbformat.write(rebuilt.notebook, str(rebuilt_dir / f"{safe_name(submission.student)}_{submission.notebook}.ipynb"))
        # The worker imports torch while the kernel runs; it gets the answers only afterwards.
        with TrustedChecker(limits, env, start=any(item.function for item in items)) as checker:
            run = run_notebook(rebuilt.notebook, limits, env)
            trusted = checker.recheck(rebuilt.notebook, items)
        result = score_run(submission.student, file, rebuilt, run, items, limits, trusted)
        result.seconds += checker.seconds
        return result
    except Exception as exc:  # a grader bug must not stop the batch, so the row reports it
        log.exception("grading %s failed", file)
        return failed_submission(
            submission.student, file, submission.notebook, items, tr("grade.reason.grader_error", detail=f"{type(exc).__name__}: {exc}")
        )


def _involved_items(workbook: Workbook, notebooks: set[str]) -> list[GradedItem]:
    return [item for item in workbook.items if item.notebook in notebooks]


def grade_batch(
    paths: Iterable[Path],
    workbook: Workbook,
    out_csv: Path,
    feedback_dir: Path | None = None,
    written_dir: Path | None = None,
    jobs: int | None = None,
    limits: Limits = Limits(),
    env: dict[str, str] | None = None,
    progress: Callable[[int, int, SubmissionResult], None] | None = None,
    rebuilt_dir: Path | None = None,
) -> BatchOutput:
    """Grade every submission under ``paths`` and write all outputs; returns the per-file results.

    ``jobs`` submissions run at once (default: the number of CPU cores). Feedback and
    written-answer pages go next to the CSV, in ``feedback/`` and ``written/``, unless given.
    """
    started = time.monotonic()
    out_csv = Path(out_csv)
    feedback_dir = Path(feedback_dir) if feedback_dir else out_csv.parent / "feedback"
    written_dir = Path(written_dir) if written_dir else out_csv.parent / "written"
    files = find_submissions(paths)
    submissions, duplicates = plan_submissions(files, workbook)
    jobs = max(1, jobs or os.cpu_count() or 1)

    results: list[SubmissionResult] = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(grade_file, submission, workbook, limits, env, rebuilt_dir) for submission in submissions]
        for done, future in enumerate(futures, start=1):
            result = future.result()
            results.append(result)
            if progress is not None:
                progress(done, len(futures), result)

    for (student, notebook), group in duplicates.items():
        for result in results:
            if result.student == student and result.notebook == notebook:
                result.notes.append(
                    tr(
                        "grade.note.duplicate",
                        notebook=notebook,
                        kept=group[0].name,
                        skipped=", ".join(path.name for path in group[1:]),
                    )
                )

    notebooks = {result.notebook for result in results if result.notebook}
    items = _involved_items(workbook, notebooks)
    students = collect_students(results, items)
    write_csv(out_csv, students, items)
    for record in students:
        write_feedback(feedback_dir, record, items)
        write_written_pages(written_dir, record, items)
    return BatchOutput(results, out_csv, feedback_dir, written_dir, time.monotonic() - started)
