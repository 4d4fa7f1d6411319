"""The ``grade`` and ``check`` commands of ``python -m lab6`` (also ``python -m lab6.grade``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from lab6.i18n import tr

__all__ = ["add_grade_command", "add_check_command", "progress_line", "run_grade", "run_check"]

log = logging.getLogger(__name__)


def run_grade(args: argparse.Namespace) -> int:
    """Grade the submissions named in ``args``; return 0, or 2 when there is nothing to grade."""
    from lab6.grade.batch import find_submissions, grade_batch
    from lab6.grade.run import Limits
    from lab6.grade.workbook import load_workbook

    workbook = load_workbook(args.reference, args.student_notebooks)
    if not workbook.reference_dir.is_dir() or not workbook.notebooks:
        print(tr("cli.error_prefix") + tr("grade.cli.no_reference", path=workbook.reference_dir), file=sys.stderr)
        return 2
    if not find_submissions(args.submissions):
        print(tr("cli.error_prefix") + tr("grade.cli.no_submissions", paths=", ".join(map(str, args.submissions))), file=sys.stderr)
        return 2
    limits = Limits(
        cell_seconds=args.timeout_cell,
        submission_seconds=args.timeout_submission,
        cpu_seconds=int(args.cpu_limit or args.timeout_submission),
        memory_mb=args.memory_limit,
    )
    if args.hidden_checks:
        # Read by lab6.checks.hidden in this process, where the hidden checks run; never passed to student code.
        os.environ["LAB6_HIDDEN_CHECKS"] = str(Path(args.hidden_checks).resolve())

    def progress(done: int, count: int, result) -> None:  # noqa: ANN001 - a SubmissionResult
        print(progress_line(done, count, result), flush=True)

    output = grade_batch(
        args.submissions,
        workbook,
        args.out,
        feedback_dir=args.feedback,
        written_dir=args.written,
        jobs=args.jobs,
        limits=limits,
        progress=progress,
        rebuilt_dir=args.keep_rebuilt,
    )
    print(
        tr(
            "grade.cli.done",
            count=len(output.results),
            seconds=output.seconds,
            csv=output.csv_path,
            feedback=output.feedback_dir,
            written=output.written_dir,
        )
    )
    return 0


def progress_line(done: int, count: int, result) -> str:  # noqa: ANN001 - a SubmissionResult
    """Return the progress line of one graded file: its points, or why it has none."""
    values = {"done": done, "count": count, "student": result.student, "file": Path(result.file).name}
    if result.error:
        return tr("grade.cli.progress_error", reason=result.error, **values)
    max_points = sum(item.item.points for item in result.items if item.item.kind != "report")
    if max_points == 0:
        return tr("grade.cli.progress_report_only", seconds=result.seconds, **values)
    return tr("grade.cli.progress", points=f"{result.total:g}", max_points=f"{max_points:g}", seconds=result.seconds, **values)


def run_check(args: argparse.Namespace) -> int:
    """Check the student's notebooks; return 0 when nothing is missing, 1 when something is, 2 for a bad file."""
    from lab6.grade.student_check import check_notebook
    from lab6.i18n import Lab6Error

    status = 0
    for path in args.notebooks:
        try:
            status = max(status, check_notebook(Path(path), cell_seconds=args.timeout_cell))
        except Lab6Error as error:
            print(tr("cli.error_prefix") + str(error), file=sys.stderr)
            status = 2
    return status


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} <= 0")
    return value


def _add_grade_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submissions", nargs="+", type=Path, metavar="SUBMISSION_OR_FOLDER")
    parser.add_argument("--out", type=Path, default=Path("grades.csv"), help=tr("grade.cli.out_help"))
    parser.add_argument("--feedback", type=Path, help=tr("grade.cli.feedback_help"))
    parser.add_argument("--written", type=Path, help=tr("grade.cli.written_help"))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help=tr("grade.cli.jobs_help"))
    parser.add_argument("--timeout-cell", type=_positive, default=60.0, metavar="S", help=tr("grade.cli.timeout_cell_help"))
    parser.add_argument("--timeout-submission", type=_positive, default=300.0, metavar="S", help=tr("grade.cli.timeout_submission_help"))
    parser.add_argument("--cpu-limit", type=_positive, metavar="S", help=tr("grade.cli.cpu_limit_help"))
    parser.add_argument("--memory-limit", type=int, default=6144, metavar="MIB", help=tr("grade.cli.memory_limit_help"))
    parser.add_argument("--reference", type=Path, help=tr("grade.cli.reference_help"))
    parser.add_argument("--student-notebooks", type=Path, help=tr("grade.cli.student_notebooks_help"))
    parser.add_argument("--hidden-checks", type=Path, help=tr("grade.cli.hidden_checks_help"))
    parser.add_argument("--keep-rebuilt", type=Path, metavar="DIR", help=tr("grade.cli.keep_rebuilt_help"))


def _add_check_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebooks", nargs="+", type=Path, metavar="NOTEBOOK")
    parser.add_argument("--timeout-cell", type=_positive, default=120.0, metavar="S", help=tr("check.timeout_cell_help"))


def add_grade_command(subparsers) -> None:  # noqa: ANN001 - argparse's private subparsers type
    """Register ``grade`` on ``python -m lab6``'s subparsers."""
    from lab6.cli import add_command

    parser = add_command(subparsers, "grade", run_grade, tr("grade.cli.description"), tr("grade.cli.description"))
    _add_grade_options(parser)


def add_check_command(subparsers) -> None:  # noqa: ANN001 - argparse's private subparsers type
    """Register ``check`` on ``python -m lab6``'s subparsers."""
    from lab6.cli import add_command

    parser = add_command(subparsers, "check", run_check, tr("check.description"), tr("check.description"))
    _add_check_options(parser)


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m lab6.grade grade|check ...`` without the main command line."""
    parser = argparse.ArgumentParser(prog="python -m lab6.grade")
    subparsers = parser.add_subparsers(dest="command", required=True)
    grade = subparsers.add_parser("grade", description=tr("grade.cli.description"))
    _add_grade_options(grade)
    grade.set_defaults(run=run_grade)
    check = subparsers.add_parser("check", description=tr("check.description"))
    _add_check_options(check)
    check.set_defaults(run=run_check)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return int(args.run(args))
