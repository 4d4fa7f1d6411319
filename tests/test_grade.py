"""The autograder on a fixture class of real notebooks, made here from the source notebooks.

The class is graded against a trimmed copy of ``solutions/02_attentive_tokens.ipynb``: its
setup cell and the ``num_keep`` exercise, whose hidden checks catch a float-ceil answer that
passes the public check. Every submission is a variant of that notebook. One batch grades
the whole class (``graded_class``); each test then checks one student's exact row.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import nbformat
import pytest

from _grade_fixture import SOLUTION, SOURCE, answer_cell, make_workbook
from lab6.checks import CheckFailed, check_num_keep
from lab6.checks.hidden import run_hidden
from lab6.grade.batch import find_submissions, grade_batch, student_id
from lab6.grade.commands import progress_line
from lab6.grade.rebuild import SubmissionError, identify_notebook, read_submission, rebuild
from lab6.grade.report import collect_students, write_csv, write_feedback, write_written_pages
from lab6.grade.score import Figure, ItemResult, SubmissionResult, failed_submission, section_headings
from lab6.grade.run import Limits
from lab6.grade.workbook import GradedItem, Workbook, cell_roles, load_workbook
from lab6.i18n import tr

CELL_SECONDS = 20

pytestmark = pytest.mark.skipif(not SOLUTION.is_file(), reason="solutions/02_attentive_tokens.ipynb is missing")


@pytest.fixture(scope="module")
def workbook(tmp_path_factory: pytest.TempPathFactory) -> Workbook:
    return make_workbook(tmp_path_factory.mktemp("workbook"))


FLOOR = "import math\n\ndef num_keep(keep_rate, num_tokens):\n    return math.floor(keep_rate * (num_tokens - 1))\n"
FLOAT_CEIL = "import math\n\ndef num_keep(keep_rate, num_tokens):\n    return math.ceil(keep_rate * (num_tokens - 1))\n"
RENAMED = FLOAT_CEIL.replace("def num_keep", "def keep_count")
REFERENCE_CALL = "from lab6.schedule import num_kept as k\n\ndef num_keep(keep_rate, num_tokens):\n    return k(keep_rate, num_tokens)\n"


def _patched_checks() -> str:
    """Return an answer cell that makes the kernel's check pass whatever num_keep returns."""
    passed = tr("checks.passed", item="num_keep")
    return (
        "import lab6.checks\nimport lab6.checks.base\nimport lab6.checks.selection\n\n"
        f"def _accept(fn):\n    print({passed!r})\n\n"
        "lab6.checks.check_num_keep = _accept\nlab6.checks.selection.check_num_keep = _accept\n"
        "lab6.checks.CheckFailed = lab6.checks.base.CheckFailed = KeyboardInterrupt\n\n" + FLOOR
    )


def _floor(keep_rate: float, num_tokens: int) -> int:
    return math.floor(keep_rate * (num_tokens - 1))


def _float_ceil(keep_rate: float, num_tokens: int) -> int:
    return math.ceil(keep_rate * (num_tokens - 1))


def _public_message(fn) -> str:  # noqa: ANN001 - the student's function
    with pytest.raises(CheckFailed) as failure:
        check_num_keep(fn)
    return str(failure.value)


def _hidden_detail(fn) -> str:  # noqa: ANN001 - the student's function
    with pytest.raises(CheckFailed) as failure:
        run_hidden("num_keep", fn)
    return failure.value.detail


def _variant(workbook: Workbook, answer: str | None = None, edit=None) -> nbformat.NotebookNode:  # noqa: ANN001
    notebook = workbook.reference(SOURCE)
    if answer is not None:
        answer_cell(notebook).source = answer
    if edit is not None:
        edit(notebook)
    return notebook


def _tamper(notebook: nbformat.NotebookNode) -> None:
    """Edit the check cell to print the pass line and fake every stored output."""
    passed = tr("checks.passed", item="num_keep")
    for count, cell in enumerate((c for c in notebook.cells if c.cell_type == "code"), start=1):
        cell.execution_count = count
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=passed + "\n")]
        if ("check", "num_keep") in cell_roles(cell):
            cell.source = f"print({passed!r})"


def _old_version(notebook: nbformat.NotebookNode) -> None:
    """Give every cell a new id, as an older workbook or pasted cells would, and another kernelspec."""
    for index, cell in enumerate(notebook.cells):
        cell.id = f"old-{index}"
    notebook.metadata["lab6"]["workbook_version"] = 0
    notebook.metadata["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}


def _delete_answer(notebook: nbformat.NotebookNode) -> None:
    notebook.cells = [cell for cell in notebook.cells if ("answer", "num_keep") not in cell_roles(cell)]


def _write_class(workbook: Workbook, folder: Path) -> None:
    folder.mkdir()
    solution = workbook.reference(SOURCE)
    student = workbook.student_version(SOURCE)
    notebooks = {
        "perfect": solution,
        "untouched": student,
        "floor": _variant(workbook, FLOOR),
        "floatceil": _variant(workbook, FLOAT_CEIL),
        "tampered": _variant(workbook, FLOOR, _tamper),
        "patched": _variant(workbook, _patched_checks()),
        "refcall": _variant(workbook, REFERENCE_CALL),
        "loop": _variant(workbook, "while True:\n    pass\n"),
        "exit": _variant(workbook, "import os\n\nos._exit(3)\n"),
        "segfault": _variant(workbook, "import ctypes\n\nctypes.string_at(0)\n"),
        "memory": _variant(workbook, "blob = bytearray(64 * 1024**3)\n"),
        "renamed": _variant(workbook, RENAMED),
        "noimport": _variant(workbook, "import einops_is_not_installed\n\n" + FLOAT_CEIL),
        "oldversion": _variant(workbook, None, _old_version),
        "deleted": _variant(workbook, None, _delete_answer),
    }
    for name, notebook in notebooks.items():
        nbformat.write(notebook, str(folder / f"{name}_{SOURCE}.ipynb"))
    text = json.dumps(nbformat.writes(solution))
    (folder / f"truncated_{SOURCE}.ipynb").write_text(nbformat.writes(solution)[:200], encoding="utf-8")
    (folder / f"binary_{SOURCE}.ipynb").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00" + text[:10].encode())
    (folder / "listjson.ipynb").write_text("[1, 2, 3]", encoding="utf-8")


@pytest.fixture(scope="module")
def graded_class(workbook: Workbook, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("class")
    _write_class(workbook, root / "submissions")
    limits = Limits(cell_seconds=CELL_SECONDS, submission_seconds=240, cpu_seconds=240, memory_mb=6144)
    output = grade_batch([root / "submissions"], workbook, root / "out" / "grades.csv", jobs=2, limits=limits)
    with open(output.csv_path, encoding="utf-8-sig") as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    return {"rows": rows, "output": output, "root": root, "limits": limits}


def _reasons(row: dict) -> list[str]:
    return row["reasons"].split(" | ") if row["reasons"] else []


def _assert_row(row: dict, public: int, hidden: int, reasons: list[str]) -> None:
    assert row["num_keep"] == str(public)
    assert row["num_keep.hidden"] == str(hidden)
    assert row["total"] == str(public + hidden)
    assert _reasons(row) == reasons


# --- the fixture class, graded once --------------------------------------------------------


@pytest.mark.slow
def test_class_has_one_row_per_file(graded_class: dict) -> None:
    rows = graded_class["rows"]
    expected = {
        "perfect", "untouched", "floor", "floatceil", "tampered", "patched", "refcall", "loop", "exit", "segfault", "memory",
        "renamed", "noimport", "oldversion", "deleted", "truncated", "binary", "listjson",
    }
    assert set(rows) == expected
    header = list(next(iter(rows.values())).keys())
    assert header == ["student", "num_keep", "num_keep.hidden", "total", "q1", "reasons", "notes", "files"]
    assert all(row["q1"] == "" for row in rows.values())


@pytest.mark.slow
def test_perfect_gets_full_points(graded_class: dict) -> None:
    _assert_row(graded_class["rows"]["perfect"], 3, 2, [])
    assert graded_class["rows"]["perfect"]["notes"] == ""


@pytest.mark.slow
def test_untouched_student_version_gets_zero(graded_class: dict) -> None:
    stub = tr("grade.reason.not_implemented")
    _assert_row(graded_class["rows"]["untouched"], 0, 0, [f"num_keep: {stub}", f"num_keep.hidden: {stub}"])


@pytest.mark.slow
def test_floor_answer_fails_with_check_message(graded_class: dict) -> None:
    public = _public_message(_floor)
    hidden = tr("grade.reason.hidden_failed", message=_hidden_detail(_floor))
    _assert_row(graded_class["rows"]["floor"], 0, 0, [f"num_keep: {public}", f"num_keep.hidden: {hidden}"])


@pytest.mark.slow
def test_hidden_check_catches_public_pass(graded_class: dict) -> None:
    check_num_keep(_float_ceil)  # the public check alone accepts the float ceil
    hidden = tr("grade.reason.hidden_failed", message=_hidden_detail(_float_ceil))
    _assert_row(graded_class["rows"]["floatceil"], 3, 0, [f"num_keep.hidden: {hidden}"])


@pytest.mark.slow
def test_tampered_checks_and_outputs_change_nothing(graded_class: dict) -> None:
    assert graded_class["rows"]["tampered"]["num_keep"] == "0"
    assert _reasons(graded_class["rows"]["tampered"]) == _reasons(graded_class["rows"]["floor"])


@pytest.mark.slow
def test_patched_checks_pass_kernel_but_score_nothing(graded_class: dict) -> None:
    row = graded_class["rows"]["patched"]
    _assert_row(row, 0, 0, _reasons(graded_class["rows"]["floor"]))
    assert row["notes"] == tr("grade.note.internals", words="CheckFailed, lab6.checks")


@pytest.mark.slow
def test_reference_call_scores_nothing(graded_class: dict) -> None:
    dotted = "lab6.schedule.num_kept"
    public = str(CheckFailed("num_keep", "isolation.reference_call", name="num_kept", dotted=dotted))
    hidden = tr("grade.reason.hidden_failed", message=tr("isolation.reference_call", name="num_kept", dotted=dotted))
    _assert_row(graded_class["rows"]["refcall"], 0, 0, [f"num_keep: {public}", f"num_keep.hidden: {hidden}"])


@pytest.mark.slow
def test_infinite_loop_times_out(graded_class: dict) -> None:
    reason = tr("grade.reason.timeout", seconds=str(CELL_SECONDS))
    _assert_row(graded_class["rows"]["loop"], 0, 0, [f"num_keep: {reason}", f"num_keep.hidden: {reason}"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("student", "cause"),
    [("exit", ("grade.cause.exit", {"code": 3})), ("segfault", ("grade.cause.signal", {"signal": 11}))],
)
def test_kernel_death_is_reported(graded_class: dict, student: str, cause: tuple) -> None:
    reason = tr("grade.reason.kernel_died", cause=tr(cause[0], **cause[1]))
    _assert_row(graded_class["rows"][student], 0, 0, [f"num_keep: {reason}", f"num_keep.hidden: {reason}"])


@pytest.mark.slow
def test_memory_blowup_hits_the_limit(graded_class: dict) -> None:
    reason = tr("grade.reason.answer_error", ename="MemoryError", evalue="")
    _assert_row(graded_class["rows"]["memory"], 0, 0, [f"num_keep: {reason}", f"num_keep.hidden: {reason}"])


@pytest.mark.slow
def test_renamed_function_is_named(graded_class: dict) -> None:
    public = tr("grade.reason.name_missing", name="num_keep")
    hidden = tr("grade.reason.hidden_failed", message=tr("grade.hidden.name_missing", name="num_keep"))
    _assert_row(graded_class["rows"]["renamed"], 0, 0, [f"num_keep: {public}", f"num_keep.hidden: {hidden}"])


@pytest.mark.slow
def test_missing_import_is_reported(graded_class: dict) -> None:
    reason = tr(
        "grade.reason.answer_error", ename="ModuleNotFoundError", evalue="No module named 'einops_is_not_installed'"
    )
    _assert_row(graded_class["rows"]["noimport"], 0, 0, [f"num_keep: {reason}", f"num_keep.hidden: {reason}"])


@pytest.mark.slow
def test_old_version_matched_by_tag(graded_class: dict) -> None:
    row = graded_class["rows"]["oldversion"]
    _assert_row(row, 3, 2, [])
    notes = row["notes"].split(" | ")
    assert notes == [
        tr("grade.note.old_version", version=0),
        tr("grade.note.matched_by_tag", exercises="num_keep"),
        tr("grade.note.kernelspec", name="ir"),
    ]


@pytest.mark.slow
def test_deleted_answer_cell_is_missing(graded_class: dict) -> None:
    reason = tr("grade.reason.answer_missing", exercise="num_keep")
    _assert_row(graded_class["rows"]["deleted"], 0, 0, [f"num_keep: {reason}", f"num_keep.hidden: {reason}"])


@pytest.mark.slow
def test_unreadable_files_get_a_row(graded_class: dict) -> None:
    rows = graded_class["rows"]
    truncated = read_error(graded_class["root"] / "submissions" / f"truncated_{SOURCE}.ipynb")
    assert _reasons(rows["truncated"]) == [f"truncated_{SOURCE}.ipynb: {truncated}"]
    binary = tr("grade.reason.not_notebook", detail="not UTF-8 text")
    assert _reasons(rows["binary"]) == [f"binary_{SOURCE}.ipynb: {binary}"]
    assert rows["listjson"]["total"] == "0"
    not_notebook = tr("grade.reason.not_notebook", detail="no 'cells' list")
    assert _reasons(rows["listjson"])[0] == f"listjson.ipynb: {not_notebook}"


def read_error(path: Path) -> str:
    with pytest.raises(SubmissionError) as error:
        read_submission(path)
    return tr(error.value.key, **error.value.values)


@pytest.mark.slow
def test_feedback_and_written_pages(graded_class: dict, workbook: Workbook) -> None:
    output = graded_class["output"]
    feedback = (output.feedback_dir / "floatceil.md").read_text(encoding="utf-8")
    assert tr("grade.feedback.total", total="3", max_total="5") in feedback
    assert tr("grade.feedback.public_passed", item="num_keep") in feedback
    assert tr("grade.feedback.hidden_failed", title=workbook.items[1].title) in feedback
    stale = tr("checks.passed", item="num_keep").split("。")[1].split(". ")[-1]
    assert stale not in feedback  # grading is over, so no "hidden checks follow"
    assert _hidden_detail(_float_ceil).split("。")[0] in feedback
    assert "verify_num_keep" not in feedback  # no hidden check code
    assert "(0.55, 101)" not in feedback  # no hidden inputs
    page = (output.written_dir / "perfect.html").read_text(encoding="utf-8")
    assert "報告問題 1" in page
    assert sorted(path.name for path in output.feedback_dir.iterdir()) == sorted(
        f"{name}.md" for name in graded_class["rows"]
    )


@pytest.mark.slow
def test_rerun_gives_identical_rows(graded_class: dict, workbook: Workbook, tmp_path: Path) -> None:
    chosen = ["perfect", "floor", "truncated"]
    folder = tmp_path / "again"
    folder.mkdir()
    for name in chosen:
        shutil.copy(graded_class["root"] / "submissions" / f"{name}_{SOURCE}.ipynb", folder)
    output = grade_batch([folder], workbook, tmp_path / "grades.csv", jobs=2, limits=graded_class["limits"])
    with open(output.csv_path, encoding="utf-8-sig") as handle:
        again = {row["student"]: row for row in csv.DictReader(handle)}
    for name in chosen:
        first = {key: value for key, value in graded_class["rows"][name].items() if key != "files"}
        second = {key: value for key, value in again[name].items() if key != "files"}
        assert second == first


# --- fast parts, no kernel --------------------------------------------------------------------


def test_rebuild_ignores_edited_check_cells(workbook: Workbook) -> None:
    submission = _variant(workbook, FLOOR, _tamper)
    rebuilt = rebuild(submission, SOURCE, workbook)
    reference = workbook.reference(SOURCE)
    for cell in rebuilt.notebook.cells:
        if ("check", "num_keep") in cell_roles(cell):
            original = next(c for c in reference.cells if c.get("id") == cell.get("id"))
            assert cell.source == original.source
            assert cell.outputs == original.outputs
        if ("answer", "num_keep") in cell_roles(cell):
            assert cell.source == FLOOR
            assert cell.outputs == []
            assert cell.execution_count is None


def test_rebuild_adds_no_hidden_cells(workbook: Workbook) -> None:
    rebuilt = rebuild(workbook.reference(SOURCE), SOURCE, workbook)
    roles = [cell_roles(cell) for cell in rebuilt.notebook.cells if cell_roles(cell)]
    assert roles == [[("answer", "num_keep")], [("check", "num_keep")], [("report", "q1")]]
    assert all("hidden" not in cell.source for cell in rebuilt.notebook.cells if cell.cell_type == "code")
    assert rebuilt.notebook.metadata["kernelspec"]["name"] == "python3"


def test_rebuild_disables_nbval_markers(workbook: Workbook) -> None:
    rebuilt = rebuild(_variant(workbook, "# NBVAL_SKIP\n" + FLOOR), SOURCE, workbook)
    answer = answer_cell(rebuilt.notebook)
    assert "NBVAL_SKIP" not in answer.source.replace("LAB6_IGNORED_NBVAL_SKIP", "")


def test_rebuild_flags_grading_internals(workbook: Workbook) -> None:
    source = "import lab6.checks\nlab6.checks.check_num_keep = print\n" + FLOOR
    rebuilt = rebuild(_variant(workbook, source), SOURCE, workbook)
    assert rebuilt.internals == ["lab6.checks"]


def test_identify_notebook_by_cells_then_name(workbook: Workbook) -> None:
    assert identify_notebook(workbook.reference(SOURCE), "anything.ipynb", workbook) == SOURCE
    assert identify_notebook(None, f"x_{SOURCE}.ipynb", workbook) == SOURCE
    assert identify_notebook(None, "x.ipynb", workbook) is None


def test_student_id_from_file_name(tmp_path: Path) -> None:
    names = [SOURCE, "01_patch_embedding"]
    assert student_id(Path(f"b10901234_{SOURCE}.ipynb"), SOURCE, names) == "b10901234"
    assert student_id(tmp_path / "alice" / f"{SOURCE}.ipynb", SOURCE, names) == "alice"
    assert student_id(Path("carol.ipynb"), None, names) == "carol"


def test_find_submissions_skips_checkpoints(tmp_path: Path) -> None:
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "a-checkpoint.ipynb").write_text("{}")
    (tmp_path / "a.ipynb").write_text("{}")
    (tmp_path / "notes.txt").write_text("")
    assert find_submissions([tmp_path]) == [tmp_path / "a.ipynb"]


@pytest.mark.parametrize(
    ("content", "key"),
    [
        (b"", "grade.reason.empty_file"),
        (b'{"cells": [', "grade.reason.bad_json"),
        (b'{"cells": [], "nbformat": 3}', "grade.reason.old_format"),
        (b"[1]", "grade.reason.not_notebook"),
    ],
)
def test_read_submission_rejects_bad_files(tmp_path: Path, content: bytes, key: str) -> None:
    path = tmp_path / "bad.ipynb"
    path.write_bytes(content)
    with pytest.raises(SubmissionError) as error:
        read_submission(path)
    assert error.value.key == key


def test_cli_grades_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from lab6.cli import main

    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / f"zoe_{SOURCE}.ipynb").write_text('{"cells": [', encoding="utf-8")
    out = tmp_path / "grades.csv"
    assert main(["grade", str(tmp_path / "subs"), "--out", str(out), "--jobs", "1"]) == 0
    with open(out, encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["student"] for row in rows] == ["zoe"]
    assert rows[0]["total"] == "0"
    assert (tmp_path / "feedback" / "zoe.md").is_file()
    assert (tmp_path / "written" / "zoe.html").is_file()


def test_cli_rejects_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from lab6.cli import main

    assert main(["grade", str(tmp_path), "--out", str(tmp_path / "g.csv")]) == 2
    assert tr("grade.cli.no_submissions", paths=str(tmp_path)) in capsys.readouterr().err


# --- the reports, from results made here ------------------------------------------------------


def _items(workbook: Workbook) -> list[GradedItem]:
    return workbook.items_for(SOURCE)


def _result(workbook: Workbook, hidden_passed: bool = False) -> SubmissionResult:
    """A graded submission: public item passed with the kernel's message, hidden item as given."""
    public, hidden, report = _items(workbook)
    result = SubmissionResult(student="amy", file=f"amy_{SOURCE}.ipynb", notebook=SOURCE)
    result.items = [
        ItemResult(public, True, public.points, message=tr("checks.passed", item="num_keep")),
        ItemResult(hidden, hidden_passed, hidden.points if hidden_passed else 0, reason="" if hidden_passed else "wrong on 101 tokens"),
        ItemResult(report, False, 0),
    ]
    result.report_answers = {"q1": "ceil 要先**處理**浮點誤差。"}
    result.report_prompts = {"q1": "## 報告問題 1：num_keep\n\n說明 ceil 的陷阱。"}
    result.figures = [Figure(SOURCE, "nb2-keep-check", "2.2 要保留幾個 token", "iVBORw0KGgo=")]
    return result


def test_csv_starts_with_byte_order_mark(workbook: Workbook, tmp_path: Path) -> None:
    students = collect_students([_result(workbook)], _items(workbook))
    write_csv(tmp_path / "grades.csv", students, _items(workbook))
    raw = (tmp_path / "grades.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfstudent,")
    with open(tmp_path / "grades.csv", encoding="utf-8-sig") as handle:
        row = next(csv.DictReader(handle))
    assert row["student"] == "amy"
    assert row["reasons"] == "num_keep.hidden: wrong on 101 tokens"


def test_written_page_shows_prompt_answer_figure(workbook: Workbook, tmp_path: Path) -> None:
    students = collect_students([_result(workbook)], _items(workbook))
    page = write_written_pages(tmp_path, students[0], _items(workbook)).read_text(encoding="utf-8")
    assert "說明 ceil 的陷阱。" in page
    assert page.index("說明 ceil 的陷阱。") < page.index("<strong>處理</strong>")
    label = tr("grade.written.figure_label", notebook=SOURCE, cell_id="nb2-keep-check", heading="2.2 要保留幾個 token")
    assert f"<figcaption>1. {label}</figcaption>" in page
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in page
    assert tr("grade.written.empty") not in page


def test_written_page_names_unreadable_file(workbook: Workbook, tmp_path: Path) -> None:
    reason = tr("grade.reason.bad_json", line=1, column=12)
    broken = failed_submission("zoe", f"/subs/zoe_{SOURCE}.ipynb", SOURCE, _items(workbook), reason)
    record = collect_students([broken], _items(workbook))[0]
    page = write_written_pages(tmp_path, record, _items(workbook)).read_text(encoding="utf-8")
    file = f"zoe_{SOURCE}.ipynb"
    assert tr("grade.written.unreadable", file=file, reason=reason) in page
    assert tr("grade.written.unreadable_answer", file=file) in page
    assert tr("grade.written.empty") not in page


def test_written_page_marks_unanswered_question(workbook: Workbook, tmp_path: Path) -> None:
    result = _result(workbook)
    result.report_answers = {"q1": ""}
    record = collect_students([result], _items(workbook))[0]
    page = write_written_pages(tmp_path, record, _items(workbook)).read_text(encoding="utf-8")
    assert tr("grade.written.empty") in page


def test_rebuild_blanks_untouched_placeholder() -> None:
    full = load_workbook()
    name = "04_get_real_idx"
    student = full.student_version(name)
    if student is None:
        pytest.skip("notebooks/04_get_real_idx.ipynb is missing")
    placeholder = "（請刪掉這一行，在這裡寫下你的回答。）"
    assert any(placeholder in cell.source for cell in student.cells)
    rebuilt = rebuild(student, name, full)
    assert rebuilt.report_answers == {"q1": "", "q3": ""}
    assert rebuilt.report_prompts["q1"].startswith("## 報告問題 1：")
    assert rebuilt.report_prompts["q3"].startswith("## 報告問題 3：")
    for cell in student.cells:
        if ("report", "q1") in cell_roles(cell):
            cell.source = cell.source.replace(placeholder, "索引是相對於上一個 block 的輸出。")
    assert rebuild(student, name, full).report_answers["q1"].endswith("索引是相對於上一個 block 的輸出。")


def test_section_headings_follow_markdown() -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell("## 1. Patches\n\ntext"),
        nbformat.v4.new_code_cell("y = 2"),
        nbformat.v4.new_markdown_cell("plain text, no heading"),
        nbformat.v4.new_code_cell("z = 3"),
    ]
    ids = [cell.id for cell in notebook.cells]
    headings = section_headings(notebook)
    assert headings[ids[0]] == ""
    assert headings[ids[2]] == "1. Patches"
    assert headings[ids[4]] == "1. Patches"


def test_feedback_states_hidden_outcome(workbook: Workbook, tmp_path: Path) -> None:
    stale = tr("checks.passed", item="num_keep")
    outcomes = [
        (True, tr("grade.feedback.hidden_passed")),
        (False, tr("grade.feedback.hidden_failed", title=_items(workbook)[1].title)),
    ]
    for hidden_passed, expected in outcomes:
        record = collect_students([_result(workbook, hidden_passed)], _items(workbook))[0]
        feedback = write_feedback(tmp_path, record, _items(workbook)).read_text(encoding="utf-8")
        assert stale not in feedback
        assert tr("grade.feedback.public_passed", item="num_keep") in feedback
        assert expected in feedback


def test_feedback_rows_of_broken_file_have_reason(workbook: Workbook, tmp_path: Path) -> None:
    reason = tr("grade.reason.bad_json", line=1, column=12)
    broken = failed_submission("zoe", f"/subs/zoe_{SOURCE}.ipynb", SOURCE, _items(workbook), reason)
    record = collect_students([broken], _items(workbook))[0]
    feedback = write_feedback(tmp_path, record, _items(workbook)).read_text(encoding="utf-8")
    explained = tr("grade.feedback.file_not_graded", file=f"zoe_{SOURCE}.ipynb", reason=reason)
    rows = [line for line in feedback.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 3
    for row in rows[:2]:
        assert row.rstrip(" |").endswith(explained)


def test_progress_line_explains_zero_points(workbook: Workbook) -> None:
    graded = _result(workbook)
    graded.seconds = 1.25
    values = {"done": 1, "count": 2, "student": "amy", "file": f"amy_{SOURCE}.ipynb"}
    assert progress_line(1, 2, graded) == tr("grade.cli.progress", points="3", max_points="5", seconds=1.25, **values)
    broken = failed_submission("amy", f"amy_{SOURCE}.ipynb", None, [], "bad JSON")
    assert progress_line(1, 2, broken) == tr("grade.cli.progress_error", reason="bad JSON", **values)
    report_only = SubmissionResult(student="amy", file=f"amy_{SOURCE}.ipynb", notebook=SOURCE, seconds=1.25)
    report_only.items = [ItemResult(_items(workbook)[2], False, 0)]
    assert progress_line(1, 2, report_only) == tr("grade.cli.progress_report_only", seconds=1.25, **values)
    assert "0 / 0" not in progress_line(1, 2, report_only)
