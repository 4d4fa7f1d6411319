"""The workbook: student notebooks generated from solutions/, their tags, points and failures.

The slow tests execute notebooks: the solutions under nbval (the checked outputs must
match) and the untouched student versions (they must fail exactly at their TODO cells).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lab6.checks.items import ITEMS, NOTEBOOKS, exercise_points

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
STUDENT = ROOT / "notebooks"


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_student_notebooks", ROOT / "scripts" / "make_student_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = _load_generator()


def read(path: Path):
    return nbformat.read(path, as_version=4)


def tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


def tag_suffix(cell, prefix: str) -> str | None:
    return next((t[len(prefix) :] for t in tags(cell) if t.startswith(prefix)), None)


def solution_regions(source: str) -> list[str]:
    """Return the lines inside BEGIN/END SOLUTION markers."""
    inside, lines = False, []
    for line in source.split("\n"):
        if line.strip() == generator.BEGIN:
            inside = True
        elif line.strip() == generator.END:
            inside = False
        elif inside:
            lines.append(line)
    return lines


PAIRS = [(SOLUTIONS / f"{stem}.ipynb", STUDENT / f"{stem}.ipynb") for stem in NOTEBOOKS]


def test_all_notebooks_exist():
    for solution, student in PAIRS:
        assert solution.is_file(), solution
        assert student.is_file(), student
    assert sorted(p.name for p in SOLUTIONS.glob("*.ipynb")) == sorted(p.name for p, _ in PAIRS)


def test_generator_has_no_drift():
    """notebooks/ is exactly what the generator makes from solutions/ (run it after editing a solution)."""
    generated = generator.generate()
    for path, text in generated.items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name} is out of date: run scripts/make_student_notebooks.py"
    assert generator.main(["--check"]) == 0


def test_generator_is_deterministic():
    assert generator.generate() == generator.generate()


def test_check_mode_detects_drift(tmp_path, monkeypatch):
    monkeypatch.setattr(generator, "NOTEBOOKS", tmp_path)
    assert generator.main(["--check"]) == 1  # nothing generated yet
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0
    target = tmp_path / PAIRS[0][1].name
    target.write_text(target.read_text(encoding="utf-8").replace("TODO", "done"), encoding="utf-8")
    assert generator.main(["--check"]) == 1


@pytest.mark.parametrize("solution, student", PAIRS, ids=NOTEBOOKS)
def test_student_mirrors_solution(solution, student):
    sol, stu = read(solution), read(student)
    assert [c.id for c in sol.cells] == [c.id for c in stu.cells]
    assert [c.cell_type for c in sol.cells] == [c.cell_type for c in stu.cells]
    assert [tags(c) for c in sol.cells] == [tags(c) for c in stu.cells]
    for a, b in zip(sol.cells, stu.cells):
        if tag_suffix(a, "lab6:answer:") is None and tag_suffix(a, "lab6:report:") is None:
            assert a.source == b.source, a.id


@pytest.mark.parametrize("solution, student", PAIRS, ids=NOTEBOOKS)
def test_no_solution_leaks(solution, student):
    sol, stu = read(solution), read(student)
    student_text = student.read_text(encoding="utf-8")
    for a, b in zip(sol.cells, stu.cells):
        if tag_suffix(a, "lab6:answer:") is not None:
            assert "raise NotImplementedError" in b.source
            assert generator.BEGIN not in b.source and generator.END not in b.source
            outside = set(line.strip() for line in a.source.split("\n")) - set(line.strip() for line in solution_regions(a.source))
            for line in solution_regions(a.source):
                code = line.strip()
                if len(code) >= 8 and not code.startswith("#") and code not in outside:
                    assert code not in b.source, f"{a.id}: solution line leaked: {code}"
        if tag_suffix(a, "lab6:report:") is not None:
            assert "參考答案" in a.source
            assert "參考答案" not in b.source
            for sentence in re.split(r"[。\n]", a.source):
                if len(sentence) > 20:
                    assert sentence not in student_text, f"{a.id}: model answer leaked"


@pytest.mark.parametrize("solution, student", PAIRS, ids=NOTEBOOKS)
def test_outputs_are_small_and_stable(solution, student):
    for path in (solution, student):
        nb = read(path)
        assert nb.metadata.kernelspec.name == "python3"
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            assert "execution" not in cell.metadata  # no timings
            for output in cell.outputs:
                assert "image/png" not in output.get("data", {}), f"{path.name}:{cell.id} stores a figure"
    for cell in read(student).cells:
        if cell.cell_type == "code":
            assert cell.execution_count is None, cell.id
            assert cell.outputs == [], cell.id


@pytest.mark.parametrize("solution", [s for s, _ in PAIRS], ids=NOTEBOOKS)
def test_solutions_keep_expected_outputs(solution):
    """Every checked cell of a solution stores the output that nbval and the grader compare."""
    checked = [c for c in read(solution).cells if c.cell_type == "code" and "nbval-check-output" in tags(c)]
    for cell in checked:
        assert cell.execution_count is not None, cell.id
        assert cell.outputs, cell.id
        assert all(output["output_type"] != "error" for output in cell.outputs), cell.id


def test_items_match_tags_and_headings():
    answers, reports = {}, {}
    for stem in NOTEBOOKS:
        cells = read(SOLUTIONS / f"{stem}.ipynb").cells
        for i, cell in enumerate(cells):
            item = tag_suffix(cell, "lab6:answer:")
            if item is not None:
                answers[item] = stem
                assert tag_suffix(cells[i + 1], "lab6:check:") == item, f"{item}: the next cell must be its check"
                assert f"（{exercise_points(item)} 分" in cells[i - 1].source, f"{item}: the heading must show its points"
            question = tag_suffix(cell, "lab6:report:")
            if question is not None:
                reports[question] = stem
                assert f"（{exercise_points(question)} 分" in cells[i - 1].source, f"{question}: the heading must show its points"
    public = {item.id: item.notebook for item in ITEMS if item.kind == "public"}
    report_items = {item.id: item.notebook for item in ITEMS if item.kind == "report"}
    assert answers == public
    assert reports == report_items


def test_explorer_placeholder():
    cells = read(SOLUTIONS / "05_visualization.ipynb").cells
    index = next(i for i, c in enumerate(cells) if "lab6:explorer" in tags(c))
    assert cells[index].cell_type == "code"
    assert "## 互動探索" in cells[index - 1].source


def test_first_code_cell_sets_device_and_seed():
    for stem in NOTEBOOKS:
        first = next(c for c in read(SOLUTIONS / f"{stem}.ipynb").cells if c.cell_type == "code")
        assert "pick_device()" in first.source and "seed_everything(" in first.source


def test_models_switch_with_one_line():
    for stem in NOTEBOOKS[2:]:
        sources = [c.source for c in read(SOLUTIONS / f"{stem}.ipynb").cells if c.cell_type == "code"]
        assert sum(s.count('MODEL = "bundled"') for s in sources) == 1, stem


def _kernel_env() -> dict[str, str]:
    env = dict(os.environ, LAB6_LANG="zh-TW", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env.pop("LAB6_DEVICE", None)
    return env


@pytest.mark.slow
def test_solutions_pass_nbval():
    """The solutions run top to bottom, and every nbval-check-output cell prints what is stored."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", "-q", str(SOLUTIONS)],
        cwd=ROOT,
        env=_kernel_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_untouched_student_fails_at_todos(stem, monkeypatch):
    """Run All on an untouched student notebook errors in the answer and check cells, nowhere else."""
    from nbclient import NotebookClient

    for key, value in _kernel_env().items():
        monkeypatch.setenv(key, value)
    nb = read(STUDENT / f"{stem}.ipynb")
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(STUDENT)}}).execute()

    errors = {}
    for cell in nb.cells:
        for output in getattr(cell, "outputs", []):
            if output["output_type"] == "error":
                errors[cell.id] = output
    expected = {c.id for c in nb.cells if tag_suffix(c, "lab6:answer:") or tag_suffix(c, "lab6:check:")}
    assert set(errors) == expected
    for cell in nb.cells:
        if tag_suffix(cell, "lab6:answer:"):
            assert errors[cell.id]["ename"] == "NotImplementedError"
        if tag_suffix(cell, "lab6:check:"):
            assert errors[cell.id]["ename"] == "CheckFailed"
            assert "還沒有完成" in errors[cell.id]["evalue"]
            assert errors[cell.id]["traceback"] == [errors[cell.id]["evalue"]] or len(errors[cell.id]["traceback"]) == 1


def _cell(path: Path, cell_id: str):
    (cell,) = [c for c in read(path).cells if c.get("id") == cell_id]
    return cell


def _pad_zero_real_idx(idxs, fuse):
    """EViT's original lookup: the fused slot is padded with patch 0."""
    import torch

    real = [idxs[0].clone()]
    for idx in idxs[1:]:
        previous = real[-1]
        if fuse:
            previous = torch.cat([previous, torch.zeros_like(previous[:, :1])], dim=1)
        real.append(previous.gather(1, idx))
    return real


def _demo_lines(get_real_idx) -> list[str]:
    """Run notebook 4's comparison under the get_real_idx TODO on a case where fused tokens are kept."""
    import contextlib
    import io
    from types import SimpleNamespace

    import torch

    from lab6.index import FUSED, patch_owner

    source = _cell(SOLUTIONS / "04_get_real_idx.ipynb", "nb4-answer").source
    demo = source.split(generator.END, 1)[1]
    g = torch.Generator().manual_seed(0)
    first = (torch.randperm(195, generator=g) + 1)[:138]  # patch 0 is dropped, so it lives in the fused token
    second = torch.cat([torch.tensor([138]), torch.randperm(138, generator=g)[:97]])  # keeps the fused token
    third = torch.cat([torch.tensor([98]), torch.randperm(98, generator=g)[:69]])  # keeps it again
    idxs = [first[None], second[None], third[None]]
    out = SimpleNamespace(records=[SimpleNamespace(block=b) for b in (3, 6, 9)])
    namespace = {"torch": torch, "FUSED": FUSED, "patch_owner": patch_owner, "idxs": idxs, "out": out}
    namespace["get_real_idx"] = get_real_idx
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(demo, namespace)
    return printed.getvalue().splitlines()


def test_get_real_idx_demo_accepts_right_answer():
    from lab6.index import get_real_idx

    lines = _demo_lines(get_real_idx)
    assert len(lines) == 3
    assert all("一致：True" in line for line in lines)
    assert lines[1].endswith("保留的 fused token：1 個")
    assert lines[2].endswith("保留的 fused token：2 個")  # the older fused token is kept again


def test_get_real_idx_demo_rejects_pad_zero():
    lines = _demo_lines(_pad_zero_real_idx)
    assert "一致：True" in lines[0]  # the first block has no fused token yet
    assert "一致：False" in lines[1]
    assert "一致：False" in lines[2]


def test_num_keep_hint_leaves_fix_to_student():
    for stem, cell_id in (("02_attentive_tokens", "nb2-keep-answer"), ("03_pruning_schedule", "nb3-counts-answer")):
        assert "Fraction" not in _cell(STUDENT / f"{stem}.ipynb", cell_id).source
    task = _cell(STUDENT / "02_attentive_tokens.ipynb", "nb2-keep-task").source
    assert "Fraction" not in task
    assert "`0.55 * 100` 在 Python 裡等於多少？" in task


def test_visualization_prints_chinese():
    notebook = SOLUTIONS / "05_visualization.ipynb"

    def text(cell_id):
        return "".join(output.get("text", "") for output in _cell(notebook, cell_id).outputs)

    assert "條紋 (stripes)、棋盤格 (checker)" in text("nb5-model")
    assert "正確類別：條紋 (stripes)，預測：條紋 (stripes)" in text("nb5-figures")
    metrics = text("nb5-metrics")
    assert metrics.startswith("排程 0.7@4,7,10，fusion 開啟，48 張場景：")
    assert "第  4 個 block 之後：保留 138.0 個 patch" in metrics
    assert "scenes" not in metrics and "block  4:" not in metrics
