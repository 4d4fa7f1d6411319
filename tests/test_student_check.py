"""The students' pre-submission check, on notebooks made from the source notebook 02."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest

from _grade_fixture import SOLUTION, SOURCE, answer_cell, make_workbook
from lab6.checks.items import ITEMS_BY_ID
from lab6.grade.student_check import check_notebook, execution_problems, question_number
from lab6.grade.workbook import Workbook, cell_roles
from lab6.i18n import Lab6Error, tr

pytestmark = pytest.mark.skipif(not SOLUTION.is_file(), reason="solutions/02_attentive_tokens.ipynb is missing")


@pytest.fixture(scope="module")
def public(tmp_path_factory: pytest.TempPathFactory) -> Workbook:
    """The fixture workbook with the student notebooks as reference, as students have it."""
    built = make_workbook(tmp_path_factory.mktemp("workbook"))
    return Workbook(built.student_dir, built.student_dir, built.items)


def _as_run(notebook: nbformat.NotebookNode, counts: list[int] | None = None) -> nbformat.NotebookNode:
    """Give the non-empty code cells execution counts, 1..n unless ``counts`` gives others."""
    cells = [cell for cell in notebook.cells if cell.cell_type == "code" and cell.source.strip()]
    for cell, count in zip(cells, counts or range(1, len(cells) + 1)):
        cell.execution_count = count
    return notebook


def _answered(public: Workbook) -> nbformat.NotebookNode:
    """The student notebook with the solution's answer and a written report answer."""
    notebook = public.reference(SOURCE)
    solution = nbformat.read(str(SOLUTION), as_version=4)
    answer_cell(notebook).source = answer_cell(solution).source
    for cell in notebook.cells:
        if ("report", "q1") in cell_roles(cell):
            cell.source = "我的答案：ceil 要先處理浮點誤差。"
    return notebook


def test_execution_problems_fresh_run() -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(f"x = {i}") for i in range(3)] + [nbformat.v4.new_code_cell("")]
    assert execution_problems(_as_run(notebook)) == []
    assert execution_problems(_as_run(notebook, [1, 2, 5])) == [tr("check.out_of_order", index=3, count=5)]
    notebook.cells[1].execution_count = None
    assert execution_problems(notebook) == [tr("check.not_run", count=1, first=2)]


def test_missing_file_raises(tmp_path: Path, public: Workbook) -> None:
    with pytest.raises(Lab6Error) as error:
        check_notebook(tmp_path / "nope.ipynb", workbook=public)
    assert error.value.key == "check.not_found"


@pytest.mark.parametrize(("lang", "expected"), [("zh-TW", "錯誤：找不到檔案 nosuch.ipynb。"), ("en", "error: File nosuch.ipynb not found.")])
def test_cli_missing_file_exits_2(lang: str, expected: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab6.cli import main

    monkeypatch.setenv("LAB6_LANG", lang)
    assert main(["check", "nosuch.ipynb"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == expected
    assert captured.out == ""


def test_cli_broken_json_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab6.cli import main

    monkeypatch.setenv("LAB6_LANG", "en")
    path = tmp_path / "broken.ipynb"
    path.write_text('{"cells": [', encoding="utf-8")
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The notebook's JSON is truncated or corrupt")


def test_question_and_cell_wording(monkeypatch: pytest.MonkeyPatch) -> None:
    assert question_number("q1") == "1"
    assert question_number("extra") == "extra"
    assert tr("check.report_empty", number=question_number("q1")) == "  ✗ 報告問題 1 還沒有作答。"
    assert "第 2 個程式碼儲存格" in tr("check.not_run", count=1, first=2)
    monkeypatch.setenv("LAB6_LANG", "en")
    assert tr("check.report_empty", number=question_number("q1")) == "  ✗ Report question 1 has no answer yet."
    assert "code cell 2" in tr("check.not_run", count=1, first=2)


@pytest.mark.slow
def test_complete_notebook_passes(tmp_path: Path, capsys: pytest.CaptureFixture, public: Workbook) -> None:
    path = tmp_path / f"{SOURCE}.ipynb"
    nbformat.write(_as_run(_answered(public)), str(path))
    assert check_notebook(path, cell_seconds=60, workbook=public) == 0
    out = capsys.readouterr().out
    assert tr("check.item_passed", title=public.items[0].title) in out
    assert tr("check.ok") in out


@pytest.mark.slow
def test_untouched_notebook_lists_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture, public: Workbook) -> None:
    path = tmp_path / f"{SOURCE}.ipynb"
    nbformat.write(public.reference(SOURCE), str(path))
    assert check_notebook(path, cell_seconds=60, workbook=public) == 1
    out = capsys.readouterr().out
    assert tr("check.item_failed", title=public.items[0].title, reason=tr("grade.reason.not_implemented")) in out
    assert tr("check.report_empty", number="1") in out
    assert tr("check.not_run", count=3, first=1) in out
    assert tr("check.missing_summary", count=3) in out


@pytest.mark.slow
def test_out_of_order_run_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture, public: Workbook) -> None:
    path = tmp_path / f"{SOURCE}.ipynb"
    notebook = _answered(public)
    notebook.cells.append(nbformat.v4.new_code_cell("helper = 1"))
    nbformat.write(_as_run(notebook, [1, 3, 2, 4]), str(path))
    assert check_notebook(path, cell_seconds=60, workbook=public) == 1
    out = capsys.readouterr().out
    assert tr("check.out_of_order", index=2, count=3) in out
    assert tr("check.extra_cells", count=1) in out
    assert tr("check.missing_summary", count=1) in out


@pytest.mark.slow
def test_untouched_notebook_in_english(tmp_path: Path, capsys: pytest.CaptureFixture, public: Workbook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB6_LANG", "en")
    titles = {item.id: item.title_en for item in ITEMS_BY_ID.values()}
    english = Workbook(public.reference_dir, public.student_dir, [replace(item, title=titles[item.id]) for item in public.items])
    path = tmp_path / f"{SOURCE}.ipynb"
    nbformat.write(english.reference(SOURCE), str(path))
    assert check_notebook(path, cell_seconds=60, workbook=english) == 1
    out = capsys.readouterr().out
    assert tr("check.item_failed", title=titles["num_keep"], reason=tr("grade.reason.not_implemented")) in out
    assert tr("check.report_empty", number="1") in out
    assert re.findall(r"[\u3000-\u9fff\uff00-\uffef]", out) == []
