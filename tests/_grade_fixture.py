"""A small workbook made from the source notebook 02, shared by the grader and student-check tests."""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from pathlib import Path

import nbformat

from lab6.checks.items import ITEMS_BY_ID
from lab6.grade.workbook import REPO_ROOT, GradedItem, Workbook, cell_roles

SOURCE = "02_attentive_tokens"
SOLUTION = REPO_ROOT / "solutions" / f"{SOURCE}.ipynb"
STUDENT = REPO_ROOT / "notebooks" / f"{SOURCE}.ipynb"
KEEP_CELLS = ("nb2-setup", "nb2-keep-task", "nb2-keep-answer", "nb2-keep-check")


def trim(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Keep the setup cell, the num_keep exercise and one report question of a source notebook."""
    trimmed = copy.deepcopy(notebook)
    trimmed.cells = [cell for cell in notebook.cells if cell.get("id") in KEEP_CELLS]
    report = nbformat.v4.new_markdown_cell("**報告問題 1**：請說明你的作答。")
    report.id = "fixture-report-q1"
    report.metadata["tags"] = ["lab6:report:q1"]
    trimmed.cells.append(report)
    return trimmed


def stub_source(source: str) -> str:
    """Replace the solution region the way the student-notebook generator does, for a missing notebooks/ copy."""
    return re.sub(r"# BEGIN SOLUTION.*?# END SOLUTION\n?", 'raise NotImplementedError("TODO")\n', source, flags=re.S)


def answer_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return next(cell for cell in notebook.cells if ("answer", "num_keep") in cell_roles(cell))


def make_workbook(root: Path) -> Workbook:
    """Write the trimmed solution and student notebooks under ``root`` and return their workbook."""
    (root / "solutions").mkdir()
    (root / "notebooks").mkdir()
    solution = trim(nbformat.read(str(SOLUTION), as_version=4))
    nbformat.write(solution, str(root / "solutions" / f"{SOURCE}.ipynb"))
    if STUDENT.is_file():
        student = trim(nbformat.read(str(STUDENT), as_version=4))
    else:
        student = copy.deepcopy(solution)
        answer_cell(student).source = stub_source(answer_cell(student).source)
    nbformat.write(student, str(root / "notebooks" / f"{SOURCE}.ipynb"))
    table = [ITEMS_BY_ID["num_keep"], ITEMS_BY_ID["num_keep.hidden"], replace(ITEMS_BY_ID["q1"], notebook=SOURCE)]
    items = [GradedItem(i.id, i.kind, i.points, i.notebook, i.exercise, i.function, i.title_zh) for i in table]
    return Workbook(root / "solutions", root / "notebooks", items)
