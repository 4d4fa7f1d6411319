"""Grade a generated class of mixed submissions on the CPU and print the time per submission.

The class is made from the workbook itself, cycling over the five notebooks: complete
solutions, untouched student versions, partly solved notebooks (one answer left as the
stub), wrong answers (one answer raises), truncated files, and every twentieth submission
an infinite loop. Each notebook runs with the bundled model, as the notebooks default to.

    python benchmarks/grade_class.py                # 60 submissions, one job per core
    python benchmarks/grade_class.py --count 6 --jobs 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab6.grade.batch import grade_batch  # noqa: E402
from lab6.grade.run import Limits  # noqa: E402
from lab6.grade.workbook import cell_roles, load_workbook  # noqa: E402

KINDS = ("perfect", "untouched", "partial", "wrong", "perfect", "truncated")


def _answers(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if any(role == "answer" for role, _ in cell_roles(cell))]


def make_submission(index: int, workbook, folder: Path) -> str:  # noqa: ANN001 - a Workbook
    """Write submission ``index`` into ``folder``; return its kind."""
    names = workbook.notebooks
    name = names[index % len(names)]
    kind = "loop" if index % 20 == 19 else KINDS[(index // len(names)) % len(KINDS)]
    solution = workbook.reference(name)
    path = folder / f"s{index:03d}_{name}.ipynb"
    if kind == "truncated":
        path.write_text(nbformat.writes(solution)[:500], encoding="utf-8")
        return kind
    if kind == "untouched":
        notebook = workbook.student_version(name) or solution
    else:
        notebook = solution
        answers = _answers(notebook)
        student = workbook.student_version(name)
        if answers and kind == "partial" and student is not None:
            stub = _answers(student)[-1]
            answers[-1].source = stub.source
        elif answers and kind == "wrong":
            answers[0].source += "\nraise ValueError('a wrong answer')\n"
        elif answers and kind == "loop":
            answers[0].source = "while True:\n    pass\n"
    nbformat.write(notebook, str(path))
    return kind


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60, help="number of submissions (default: 60)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="submissions graded at once (default: CPU cores)")
    parser.add_argument("--timeout-cell", type=float, default=30.0, help="seconds per cell (default: 30)")
    parser.add_argument("--keep", type=Path, help="keep the class and the outputs in this folder")
    args = parser.parse_args()

    workbook = load_workbook()
    root = args.keep or Path(tempfile.mkdtemp(prefix="lab6-grade-bench-"))
    submissions = root / "submissions"
    if submissions.exists():
        shutil.rmtree(submissions)
    submissions.mkdir(parents=True)
    kinds = [make_submission(index, workbook, submissions) for index in range(args.count)]
    print(f"class: {args.count} submissions ({', '.join(f'{kinds.count(k)} {k}' for k in sorted(set(kinds)))}), {args.jobs} jobs")

    limits = Limits(cell_seconds=args.timeout_cell, submission_seconds=600, cpu_seconds=600)
    per_file: list[tuple[str, float]] = []

    def progress(done: int, count: int, result) -> None:  # noqa: ANN001 - a SubmissionResult
        per_file.append((Path(result.file).name, result.seconds))
        print(f"  [{done}/{count}] {Path(result.file).name}: {result.total:g} points, {result.seconds:.1f} s", flush=True)

    started = time.monotonic()
    output = grade_batch([submissions], workbook, root / "out" / "grades.csv", jobs=args.jobs, limits=limits, progress=progress)
    total = time.monotonic() - started
    ran = [seconds for _, seconds in per_file if seconds > 0]
    print(f"total: {total:.1f} s for {len(output.results)} submissions with {args.jobs} jobs")
    print(f"wall time per submission (total / count): {total / max(1, len(output.results)):.2f} s")
    if ran:
        print(f"run time of one submission that ran: mean {sum(ran) / len(ran):.1f} s, max {max(ran):.1f} s")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"outputs: {output.csv_path.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
