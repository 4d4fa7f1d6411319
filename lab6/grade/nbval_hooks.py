"""A pytest plugin that records nbval's per-cell outcomes for the grader.

The grader runs ``pytest --nbval-lax -p lab6.grade.nbval_hooks`` on a rebuilt notebook and
reads one JSON line per code cell from a results file. Lines are flushed as each cell ends,
so the cells finished before a submission is killed still count. With ``LAB6_GRADE_STDIN=1``
the plugin reads the file path and a nonce from the first line of stdin when it is imported,
before the kernel starts, so the student's code finds neither in its environment. Without it,
the plugin writes to the file named by ``LAB6_GRADE_RESULTS``, without a nonce.

nbval 0.11 waits for a cell's reply for the whole cell timeout even when the kernel has died
(``RunningKernel.await_reply`` only polls the shell channel). This plugin wraps that method to
poll in one-second slices and raise ``KernelDied`` as soon as the kernel process is gone.
"""

from __future__ import annotations

import json
import os
import sys
import time
from queue import Empty
from typing import Any

import pytest
from nbval import kernel as nbval_kernel

RESULTS_ENV = "LAB6_GRADE_RESULTS"
STDIN_ENV = "LAB6_GRADE_STDIN"
_POLL_SECONDS = 1.0
_TEXT_LIMIT = 4000


class KernelDied(RuntimeError):
    """The kernel process ended while a cell was running."""


def _await_reply_watching_kernel(self: Any, msg_id: str, timeout: float | None = None) -> None:
    """Wait for the reply to ``msg_id`` like nbval does, but fail fast when the kernel dies."""
    deadline = None if timeout is None else time.monotonic() + float(timeout)
    while True:
        wait = _POLL_SECONDS
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                raise Empty
        try:
            msg = self.get_message(stream="shell", timeout=wait)
        except Empty:
            if not self.is_alive():
                raise KernelDied("kernel died") from None
            continue
        if msg["parent_header"].get("msg_id") == msg_id:
            if msg["content"]["status"] == "aborted":
                raise RuntimeError("Kernel aborted execution request")
            return


nbval_kernel.RunningKernel.await_reply = _await_reply_watching_kernel


def _destination() -> tuple[str | None, str | None]:
    if os.environ.get(STDIN_ENV) == "1":
        line = sys.stdin.readline()
        try:
            settings = json.loads(line)
        except json.JSONDecodeError:
            return None, None
        return settings.get(RESULTS_ENV), settings.get("nonce")
    return os.environ.get(RESULTS_ENV), None


_RESULTS_PATH, _NONCE = _destination()


def _collect_outputs(outputs: list[Any] | None) -> tuple[str, list[str]]:
    """Return the cell's stdout text and its PNG images (base64) from nbval's output nodes."""
    text: list[str] = []
    images: list[str] = []
    for out in outputs or []:
        kind = out.get("output_type")
        if kind == "stream" and out.get("name") == "stdout":
            text.append(out.get("text", ""))
        elif kind in ("display_data", "execute_result"):
            data = out.get("data", {})
            if "image/png" in data:
                images.append(data["image/png"])
            elif kind == "execute_result" and "text/plain" in data:
                text.append(data["text/plain"] + "\n")
    return "".join(text)[:_TEXT_LIMIT], images


def _error_output(outputs: list[Any] | None) -> dict[str, str] | None:
    for out in outputs or []:
        if out.get("output_type") == "error":
            return {"ename": out.get("ename", ""), "evalue": str(out.get("evalue", ""))[:_TEXT_LIMIT]}
    return None


def _kernel_exit_code(item: Any) -> int | None:
    """Return the dead kernel's exit status (negative: the signal that ended it), if known."""
    try:
        process = item.parent.kernel.km.provisioner.process
        return process.poll()
    except AttributeError:
        return None


def _classify(item: Any, call: pytest.CallInfo) -> dict[str, Any]:
    """Summarise one cell's run: passed, and when it failed, why."""
    if call.excinfo is None:
        return {"status": "passed"}
    exc = call.excinfo.value
    if isinstance(exc, pytest.skip.Exception):
        return {"status": "skipped"}
    if isinstance(exc, KernelDied):
        return {"status": "kernel_died"}
    message = str(exc)
    if call.when == "setup":
        return {"status": "setup_failed", "evalue": message[:_TEXT_LIMIT]}
    if "Kernel dead on test start" in message:
        return {"status": "kernel_dead"}
    if "Timeout of" in message:
        return {"status": "timeout"}
    error = _error_output(getattr(item, "test_outputs", None))
    if error is not None:
        return {"status": "error", **error}
    if "Cell outputs differ" in message:
        return {"status": "output_mismatch"}
    return {"status": "grader_error", "evalue": message[:_TEXT_LIMIT]}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: pytest.CallInfo) -> Any:
    yield
    path = _RESULTS_PATH
    if not path or not hasattr(item, "cell"):
        return
    if call.when == "teardown" or (call.when == "setup" and call.excinfo is None):
        return
    cell = item.cell
    text, images = _collect_outputs(getattr(item, "test_outputs", None))
    record = {
        "index": item.cell_num,
        "id": cell.get("id"),
        "tags": list(cell.get("metadata", {}).get("tags", [])),
        "seconds": round(call.duration, 3),
        "stdout": text,
        "images": images,
        **_classify(item, call),
    }
    if record["status"] == "kernel_died":
        record["exit_code"] = _kernel_exit_code(item)
    if _NONCE is not None:
        record["nonce"] = _NONCE
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()
