"""The trusted re-checks: answers that tamper with the checks, call lab6's reference code, or break the worker.

These tests run the grader's re-checks (:mod:`lab6.grade.trusted`) on small notebooks made
here, without a kernel: each starts a real worker process and runs the real public and
hidden checks against it. The kernel side of the same cases is in ``tests/test_grade.py``.
"""

from __future__ import annotations

import io
import math
import os
import pickle
from pathlib import Path

import nbformat
import pytest
import torch

from lab6.checks import CheckFailed, check_get_real_idx, check_num_keep
from lab6.checks.hidden import run_hidden
from lab6.checks.items import ITEMS_BY_ID
from lab6.grade import worker as protocol
from lab6.grade.run import Limits
from lab6.grade.trusted import StudentFunction, TrustedChecker, Worker, keep_definitions
from lab6.grade.workbook import GradedItem
from lab6.i18n import tr
from lab6.index import FUSED, get_real_idx

LIMITS = Limits(cell_seconds=20, submission_seconds=120, cpu_seconds=120, memory_mb=6144, call_seconds=20)
CORRECT_NUM_KEEP = (
    "import math\nfrom fractions import Fraction\n\n"
    "def num_keep(keep_rate, num_tokens):\n    return math.ceil(Fraction(str(keep_rate)) * (num_tokens - 1))\n"
)
FLOOR_NUM_KEEP = "import math\n\ndef num_keep(keep_rate, num_tokens):\n    return math.floor(keep_rate * (num_tokens - 1))\n"


def _items(*exercises: str) -> list[GradedItem]:
    table = [ITEMS_BY_ID[f"{exercise}{suffix}"] for exercise in exercises for suffix in ("", ".hidden")]
    return [GradedItem(i.id, i.kind, i.points, i.notebook, i.exercise, i.function, i.title_zh) for i in table]


def _notebook(answers: dict[str, str], setup: str = "import torch\n") -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.cells.append(nbformat.v4.new_code_cell(setup))
    for exercise, source in answers.items():
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = [f"lab6:answer:{exercise}"]
        notebook.cells.append(cell)
    return notebook


def _recheck(answers: dict[str, str], limits: Limits = LIMITS) -> dict:
    with TrustedChecker(limits) as checker:
        outcomes = checker.recheck(_notebook(answers), _items(*answers))
    return {item_id: (outcome.passed, outcome.reason) for item_id, outcome in outcomes.items()}


def _floor(keep_rate: float, num_tokens: int) -> int:
    return math.floor(keep_rate * (num_tokens - 1))


def _public_reason(check, fn) -> str:  # noqa: ANN001 - a check and a student's function
    with pytest.raises(CheckFailed) as failure:
        check(fn)
    return str(failure.value)


def _hidden_reason(exercise: str, fn) -> str:  # noqa: ANN001 - the student's function
    with pytest.raises(CheckFailed) as failure:
        run_hidden(exercise, fn)
    return tr("grade.reason.hidden_failed", message=failure.value.detail)


def _reference_reason(item: str, dotted: str) -> str:
    return str(CheckFailed(item, "isolation.reference_call", name=dotted.rsplit(".", 1)[-1], dotted=dotted))


# --- what reaches the worker ------------------------------------------------------------------


def test_keep_definitions_drops_top_level_code() -> None:
    source = (
        "%matplotlib inline\nimport math\nLIMIT = (1, 2)\nscores = torch.zeros(3)\nprint('hi')\n"
        "lab6.checks.check_num_keep = print\n\ndef f(x):\n    return math.ceil(x)\n"
    )
    kept, used = keep_definitions(source)
    assert kept.splitlines() == ["import math", "LIMIT = (1, 2)", "", "def f(x):", "    return math.ceil(x)"]
    assert {"math", "x", "LIMIT"} <= used


def test_correct_answer_passes_everything() -> None:
    assert _recheck({"num_keep": CORRECT_NUM_KEEP}) == {"num_keep": (True, ""), "num_keep.hidden": (True, "")}


# --- tampering with the checks ---------------------------------------------------------------


PATCHED_CHECKS = (
    "import lab6.checks\nimport lab6.checks.base\nimport lab6.checks.selection\n\n"
    "def _accept(fn):\n    print('公開檢查通過（num_keep）。')\n\n"
    "class Quiet(Exception):\n    pass\n\n"
    "lab6.checks.check_num_keep = _accept\nlab6.checks.selection.check_num_keep = _accept\n"
    "lab6.checks.CheckFailed = Quiet\nlab6.checks.base.CheckFailed = Quiet\n"
    "get_ipython().showtraceback = lambda *a, **k: None\n\n" + FLOOR_NUM_KEEP
)


def test_patched_checks_score_nothing() -> None:
    outcomes = _recheck({"num_keep": PATCHED_CHECKS})
    assert outcomes == {
        "num_keep": (False, _public_reason(check_num_keep, _floor)),
        "num_keep.hidden": (False, _hidden_reason("num_keep", _floor)),
    }


def test_patching_inside_the_function_changes_nothing() -> None:
    source = (
        "import math\n\ndef num_keep(keep_rate, num_tokens):\n"
        "    import lab6.checks\n    lab6.checks.CheckFailed = ValueError\n    lab6.checks.check_num_keep = print\n"
        "    return math.floor(keep_rate * (num_tokens - 1))\n"
    )
    outcomes = _recheck({"num_keep": source})
    assert outcomes["num_keep"] == (False, _public_reason(check_num_keep, _floor))
    assert CheckFailed.__module__ == "lab6.checks.base"  # the grader's own module is untouched


def test_hidden_checks_stay_out_of_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB6_HIDDEN_CHECKS", "/private/hidden_checks.py")
    probe = (
        "import os, sys\n\ndef probe():\n    import lab6.checks.hidden as hidden\n"
        "    return [type(hidden.HIDDEN_CHECKS).__name__, os.environ.get('LAB6_HIDDEN_CHECKS', ''),\n"
        "            sorted(name for name in sys.modules if name.startswith('lab6'))]\n"
    )
    with Worker(LIMITS) as worker:
        worker.request({"op": "load", "context": [], "cells": [["probe", probe]]}, 60, "load")
        kind, path, modules = StudentFunction(worker, "probe", "probe", 20)()
    assert kind == "function"  # a stub, not the dict of hidden checks
    assert path == ""
    assert "lab6.checks.selection" not in modules


# --- calling lab6's reference implementations ----------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "from lab6.schedule import num_kept\n\ndef num_keep(keep_rate, num_tokens):\n    return num_kept(keep_rate, num_tokens)\n",
        "from lab6.schedule import num_kept as k\n\ndef num_keep(keep_rate, num_tokens):\n    return k(keep_rate, num_tokens)\n",
        "import lab6\n\ndef num_keep(keep_rate, num_tokens):\n    return lab6.schedule.num_kept(keep_rate, num_tokens)\n",
        "import lab6.schedule as s\n\ndef num_keep(keep_rate, num_tokens):\n"
        "    try:\n        return getattr(s, 'num_' + 'kept')(keep_rate, num_tokens)\n    except Exception:\n        return 0\n",
        "import math\nfrom fractions import Fraction\nfrom lab6.schedule import num_kept\n\ndef _checked(fn):\n    try:\n        num_kept(0.5, 3)\n    except Exception:\n"
        "        pass\n    return fn\n\n@_checked\n" + CORRECT_NUM_KEEP.split("\n\n", 1)[1],
    ],
    ids=["direct", "alias", "package", "dynamic-caught", "at-definition"],
)
def test_reference_call_fails_item(source: str) -> None:
    dotted = "lab6.schedule.num_kept"
    assert _recheck({"num_keep": source}) == {
        "num_keep": (False, _reference_reason("num_keep", dotted)),
        "num_keep.hidden": (False, tr("grade.reason.hidden_failed", message=tr("isolation.reference_call", name="num_kept", dotted=dotted))),
    }


def test_get_real_idx_alias_fails() -> None:
    alias = (
        "from lab6.index import get_real_idx as g\n\n"
        "def get_real_idx(idxs, fuse):\n    return g(idxs, fuse)\n"
    )
    outcomes = _recheck({"get_real_idx": alias})
    assert outcomes["get_real_idx"] == (False, _reference_reason("get_real_idx", "lab6.index.get_real_idx"))

    own = (
        "import torch\nfrom lab6.index import FUSED\n\n"
        "def get_real_idx(idxs, fuse):\n    real = [idxs[0].clone()]\n    for idx in idxs[1:]:\n"
        "        previous = real[-1]\n        if fuse:\n"
        "            previous = torch.cat([previous, torch.full_like(previous[:, :1], FUSED)], dim=1)\n"
        "        real.append(previous.gather(1, idx))\n    return real\n"
    )
    assert _recheck({"get_real_idx": own}) == {"get_real_idx": (True, ""), "get_real_idx.hidden": (True, "")}


def test_public_check_rejects_reference_in_kernel() -> None:
    from lab6.schedule import num_kept as k

    def by_alias(keep_rate, num_tokens):  # noqa: ANN001, ANN202 - a student's function
        return k(keep_rate, num_tokens)

    def helper(idxs, fuse):  # noqa: ANN001, ANN202
        return get_real_idx(idxs, fuse)

    def through_helper(idxs, fuse):  # noqa: ANN001, ANN202
        return helper(idxs, fuse)

    assert _public_reason(check_num_keep, by_alias) == _reference_reason("num_keep", "lab6.schedule.num_kept")
    assert _public_reason(check_get_real_idx, through_helper) == _reference_reason("get_real_idx", "lab6.index.get_real_idx")


def test_public_check_accepts_fused_constant(capsys: pytest.CaptureFixture) -> None:
    def own(idxs, fuse):  # noqa: ANN001, ANN202 - a student's function that uses FUSED
        real = [idxs[0].clone()]
        for idx in idxs[1:]:
            previous = real[-1]
            if fuse:
                previous = torch.cat([previous, torch.full_like(previous[:, :1], FUSED)], dim=1)
            real.append(previous.gather(1, idx))
        return real

    check_get_real_idx(own)
    assert "get_real_idx" in capsys.readouterr().out


# --- arguments changed in place ---------------------------------------------------------------


def test_mutated_arguments_are_seen_by_checks() -> None:
    appends = "def get_real_idx(idxs, fuse):\n    idxs.append(idxs[0])\n    return [i.clone() for i in idxs[:-1]]\n"
    in_place = "def get_real_idx(idxs, fuse):\n    idxs[0].add_(0)\n    idxs[-1][0, 0] = 7\n    return [i.clone() for i in idxs]\n"
    outcomes = _recheck({"get_real_idx": appends})
    assert outcomes["get_real_idx"][1] == str(CheckFailed("get_real_idx", "checks.real_idx.list_mutated"))
    outcomes = _recheck({"get_real_idx": in_place})
    assert outcomes["get_real_idx"][1] == str(CheckFailed("get_real_idx", "checks.real_idx.mutated", step=3))


# --- a malicious reply -----------------------------------------------------------------------


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (os.system, (f"touch {self.marker}",))


def test_decode_rejects_code_in_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    buffer = io.BytesIO()
    torch.save({"ok": True, "result": _Evil(marker)}, buffer)
    with pytest.raises(pickle.UnpicklingError):
        protocol.decode(buffer.getvalue())
    assert not marker.exists()


def test_malicious_result_is_rejected(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    returns_evil = (
        "import os\n\nclass Evil:\n    def __reduce__(self):\n"
        f"        return (os.system, ('touch {marker}',))\n\n"
        "def num_keep(keep_rate, num_tokens):\n    return Evil()\n"
    )
    outcomes = _recheck({"num_keep": returns_evil})
    assert outcomes["num_keep"] == (False, str(CheckFailed("num_keep", "checks.num_keep.not_int", got="<Evil>", kind="Evil")))
    assert not marker.exists()

    forges_reply = (
        "import os, sys\n\nclass Evil:\n    def __reduce__(self):\n"
        f"        return (os.system, ('touch {marker}',))\n\n"
        "def num_keep(keep_rate, num_tokens):\n    sys.modules['__main__'].encode = _forged\n    return 3\n\n"
        "def _forged(message):\n    import io, torch\n    buffer = io.BytesIO()\n"
        "    torch.save({'ok': True, 'result': Evil()}, buffer)\n    payload = buffer.getvalue()\n"
        "    return sys.modules['__main__'].HEADER.pack(len(payload)) + payload\n"
    )
    outcomes = _recheck({"num_keep": forges_reply})
    assert outcomes["num_keep"] == (False, tr("isolation.reason.unsafe_reply", name="num_keep"))
    assert not marker.exists()


# --- a worker that hangs or dies --------------------------------------------------------------


def test_hanging_function_times_out() -> None:
    limits = Limits(cell_seconds=20, submission_seconds=60, cpu_seconds=60, memory_mb=6144, call_seconds=2)
    outcomes = _recheck({"num_keep": "def num_keep(keep_rate, num_tokens):\n    while True:\n        pass\n"}, limits)
    reason = tr("isolation.reason.timeout", name="num_keep", seconds="2")
    assert outcomes == {"num_keep": (False, reason), "num_keep.hidden": (False, reason)}


def test_hanging_class_body_times_out_on_load() -> None:
    limits = Limits(cell_seconds=20, submission_seconds=60, cpu_seconds=60, memory_mb=6144, load_seconds=3)
    outcomes = _recheck({"num_keep": "class Slow:\n    while True:\n        pass\n\n" + CORRECT_NUM_KEEP}, limits)
    reason = tr("isolation.reason.timeout", name=tr("isolation.what.load"), seconds="3")
    assert outcomes == {"num_keep": (False, reason), "num_keep.hidden": (False, reason)}


def test_crashing_worker_gives_reason_and_restarts() -> None:
    exits = "import os\n\ndef num_keep(keep_rate, num_tokens):\n    os._exit(3)\n"
    segfault = "import ctypes\n\ndef token_counts(schedule, num_patches=196, fuse=True):\n    ctypes.string_at(0)\n"
    with TrustedChecker(LIMITS) as checker:
        outcomes = checker.recheck(_notebook({"num_keep": exits, "token_counts": segfault}), _items("num_keep", "token_counts"))
    died = "isolation.reason.died"
    assert outcomes["num_keep"].reason == tr(died, name="num_keep", cause=tr("grade.cause.exit", code=3))
    assert outcomes["num_keep.hidden"].reason == outcomes["num_keep"].reason  # not run again
    assert outcomes["token_counts"].reason == tr(died, name="token_counts", cause=tr("grade.cause.signal", signal=11))
    assert outcomes["token_counts.hidden"].reason == outcomes["token_counts"].reason
    assert checker.starts == 3


# --- the notebook's context ---------------------------------------------------------------------


def test_device_global_is_the_cpu() -> None:
    uses_device = CORRECT_NUM_KEEP.replace("    return math", "    assert torch.zeros(1, device=device).device.type == 'cpu'\n    return math")
    setup = "import torch\nfrom lab6.device import pick_device\n\ndevice = pick_device()\nmodel = object()\n"
    items = _items("num_keep")
    with TrustedChecker(LIMITS) as checker:
        outcomes = checker.recheck(_notebook({"num_keep": uses_device}, setup), items)
    assert outcomes["num_keep"].passed
    assert outcomes["num_keep.hidden"].passed


def test_notebook_variable_gets_hint() -> None:
    uses_model = CORRECT_NUM_KEEP.replace("    return math", "    model.eval()\n    return math")
    setup = "import torch\nmodel = torch.nn.Linear(1, 1)\n"
    with TrustedChecker(LIMITS) as checker:
        outcomes = checker.recheck(_notebook({"num_keep": uses_model}, setup), _items("num_keep"))
    reason = outcomes["num_keep"].reason
    assert "NameError: name 'model' is not defined" in reason
    assert reason.endswith(tr("isolation.hint.definitions_only"))
