"""Run one rebuilt notebook under nbval in a separate, limited process and read its cell results.

Each run is ``python -m pytest --nbval-lax`` in a fresh process group, with
:mod:`lab6.grade.nbval_hooks` recording every cell's outcome. The kernel nbval starts is a
child of that pytest process and inherits its resource limits:

- ``RLIMIT_CPU``: CPU seconds per process (the kernel gets SIGXCPU, then SIGKILL);
- ``RLIMIT_AS``: virtual memory per process, so a memory blow-up fails an allocation;
- a wall-clock limit per cell (nbval interrupts the kernel) and per submission (the grader
  kills pytest, the kernel and every other descendant).

The kernel always runs with the grader's own Python (``--nbval-current-env``), whatever
kernelspec the submission was saved with, on the CPU, with one thread, with zh-TW messages
(the language of the reference outputs) and with the Hugging Face Hub set offline.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import psutil

from lab6.grade.workbook import REPO_ROOT

__all__ = ["Limits", "RunResult", "run_notebook"]

# The same names as in lab6.grade.nbval_hooks, which is not imported here because importing it
# patches nbval and reads stdin.
RESULTS_ENV = "LAB6_GRADE_RESULTS"
STDIN_ENV = "LAB6_GRADE_STDIN"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Resource limits of one submission's run."""

    cell_seconds: float = 60.0
    """Wall-clock seconds one cell may run before nbval interrupts the kernel."""
    submission_seconds: float = 300.0
    """Wall-clock seconds for the whole notebook, kernel start included."""
    cpu_seconds: int = 300
    """CPU seconds each process (pytest, the kernel, anything the student starts) may use."""
    memory_mb: int = 6144
    """Virtual memory per process in MiB. Importing torch alone maps about 3.7 GiB."""
    call_seconds: float = 30.0
    """Wall-clock seconds for one call of a student's function in the trusted checks' worker."""
    load_seconds: float = 60.0
    """Wall-clock seconds for the worker to run the answer cells' imports and definitions."""


@dataclass
class RunResult:
    """The cells nbval reported on, in order, and how the run ended."""

    cells: list[dict[str, Any]] = field(default_factory=list)
    timed_out: bool = False
    returncode: int | None = None
    log_tail: str = ""
    seconds: float = 0.0


def limit_resources(limits: Limits) -> None:
    """Set CPU-time, memory and core-dump rlimits in a child before exec; its children inherit them."""
    cpu = max(1, int(limits.cpu_seconds))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    memory = int(limits.memory_mb) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


_GRADER_ONLY = ("LAB6_GRADE", "PYTEST_", "LAB6_HIDDEN_CHECKS")
"""Prefixes of environment variables that stay with the grader: results files, pytest's own
settings, and the hidden checks' path, which student code must not learn."""


def untrusted_environment(settings: dict[str, str], extra: dict[str, str] | None) -> dict[str, str]:
    """Return the environment of a process that runs student code.

    It is the grader's own, less the grader-only variables, with single-threaded CPU-only
    offline defaults, then ``settings`` (the caller's fixed values), then ``extra``
    (per-run values such as ``LAB6_LANG``), from which grader-only variables are dropped.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith(_GRADER_ONLY)}
    env.update(
        {
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "LAB6_DEVICE": "cpu",
            "CUDA_VISIBLE_DEVICES": "",
            "HF_HUB_OFFLINE": "1",
            "PYTHONHASHSEED": "0",
        }
    )
    env.update(settings)
    env.update({key: value for key, value in (extra or {}).items() if not key.startswith(_GRADER_ONLY)})
    return env


def _kernel_environment(extra: dict[str, str] | None) -> dict[str, str]:
    settings = {
        # The expected outputs that nbval compares were saved in zh-TW.
        "LAB6_LANG": "zh-TW",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        STDIN_ENV: "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])),
    }
    return untrusted_environment(settings, extra)


def _kill_tree(process: subprocess.Popen) -> None:
    """Kill pytest and every descendant, the kernel included (it runs in its own session).

    Call it only while ``process`` has not been waited for, so its pid cannot have been reused.
    NOTE: after a normal exit nbval has stopped the kernel, but a process that the student's
    code started and detached keeps running until its own RLIMIT_CPU ends it.
    """
    try:
        parent = psutil.Process(process.pid)
        family = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=5)
    process.wait()


def _read_results(path: Path, nonce: str) -> list[dict[str, Any]]:
    """Read the plugin's JSON lines, keeping only those carrying this run's nonce."""
    if not path.is_file():
        return []
    cells = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.pop("nonce", None) == nonce:
            cells.append(record)
    return cells


def run_notebook(notebook: nbformat.NotebookNode, limits: Limits, env: dict[str, str] | None = None) -> RunResult:
    """Execute ``notebook`` with nbval in a fresh kernel and return each code cell's outcome.

    The notebook runs in a new temporary directory, which is its working directory and is
    removed afterwards. The results file lives in a second private directory whose path and
    nonce reach the plugin through stdin, so the student's code does not see them in its
    environment.
    """
    import time

    workdir = Path(tempfile.mkdtemp(prefix="lab6-grade-run-"))
    private = Path(tempfile.mkdtemp(prefix="lab6-grade-results-"))
    results = private / "cells.jsonl"
    nonce = secrets.token_hex(16)
    notebook_path = workdir / "submission.ipynb"
    nbformat.write(notebook, str(notebook_path))
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "nbval.plugin",
        "-p",
        "lab6.grade.nbval_hooks",
        "-p",
        "no:cacheprovider",
        "--nbval-lax",
        "--nbval-current-env",
        f"--nbval-cell-timeout={limits.cell_seconds:g}",
        "--nbval-kernel-startup-timeout=60",
        f"--rootdir={workdir}",
        f"--confcutdir={workdir}",
        "-o",
        "addopts=",
        "-o",
        "testpaths=",
        "-W",
        "ignore",
        str(notebook_path),
    ]
    started = time.monotonic()
    result = RunResult()
    log_path = private / "pytest.log"
    try:
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                command,
                cwd=workdir,
                env=_kernel_environment(env),
                stdin=subprocess.PIPE,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=lambda: limit_resources(limits),
            )
            assert process.stdin is not None
            process.stdin.write(json.dumps({RESULTS_ENV: str(results), "nonce": nonce}).encode() + b"\n")
            process.stdin.close()
            try:
                result.returncode = process.wait(timeout=limits.submission_seconds)
            except subprocess.TimeoutExpired:
                result.timed_out = True
                log.warning("submission run exceeded %s s; killing pid %d and its children", limits.submission_seconds, process.pid)
                _kill_tree(process)
        result.cells = _read_results(results, nonce)
        result.log_tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
    finally:
        result.seconds = time.monotonic() - started
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
    return result
