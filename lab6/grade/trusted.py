"""Trusted re-checks: the grader runs every public and hidden check itself, outside the kernel.

The kernel that nbval drives runs the student's answer cells next to the check cells, so an
answer cell can patch ``lab6.checks``, ``CheckFailed`` or IPython's error display and pass
every check cell. The re-checks here close that hole:

- the student's code runs only in a separate worker process (:mod:`lab6.grade.worker`),
  started per submission with ``RLIMIT_CPU`` and ``RLIMIT_AS``, a wall-clock limit per
  request, and killed at the end;
- the worker gets only the imports, function and class definitions and literal constants of
  the answer cells (:func:`keep_definitions`), with the notebook's imports available;
- the checks run in this (the grader's) process and call the student's function through a
  :class:`StudentFunction` proxy, which copies in-place changes of the arguments back, so
  the checks that reject a mutated input still work;
- messages in both directions are ``torch.save`` payloads, and replies are loaded with
  ``weights_only=True``, so a reply cannot make this process run code.

Hidden checks run only here, so their code and expected values never enter a student's
process. Their inputs do, because the student's function must receive them.
"""

from __future__ import annotations

import ast
import contextlib
import keyword
import logging
import os
import pickle
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import torch

from lab6.checks.base import collect_announcements
from lab6.grade import worker as protocol
from lab6.grade.run import Limits, limit_resources, untrusted_environment
from lab6.grade.workbook import REPO_ROOT, GradedItem, cell_roles
from lab6.i18n import tr

__all__ = ["TrustedOutcome", "WorkerFailed", "Worker", "StudentFunction", "keep_definitions", "recheck_submission"]

log = logging.getLogger(__name__)

MAX_REPLY_BYTES = 64 * 1024 * 1024
_WORKER_BOOT = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
_STARTUP_SECONDS = 120.0
_MAX_WORKER_STARTS = 3
_MAX_MESSAGE = 300
_MAX_FILE_BYTES = 64 * 1024 * 1024
"""Largest file the worker may write (RLIMIT_FSIZE), its stderr log included."""

# Grading runs on the CPU (LAB6_DEVICE=cpu), so the kernel's `device` from the setup cell is the CPU too.
_CONTEXT_DEFAULTS = {"device": "import torch\ndevice = torch.device('cpu')\n"}


@dataclass(frozen=True)
class TrustedOutcome:
    """One item's result from the trusted re-check."""

    passed: bool
    reason: str = ""
    """The reason the item failed, in the grader's language; empty when it passed."""
    message: str = ""
    """The check's pass line."""
    function_missing: bool = False
    """The worker has no function of that name, e.g. because the answer cell failed."""


class WorkerFailed(BaseException):
    """The worker timed out, died or broke the protocol; ``reason`` is for the student.

    It derives from BaseException so that the checks' ``except Exception`` around the
    student's call does not turn it into an ordinary wrong answer.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- which code the worker gets ----------------------------------------------------------------


def _python_source(source: str) -> str:
    """Turn IPython syntax (``%magic``, ``!shell``) into Python, as the kernel does before running it."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _simple_targets(targets: list[ast.expr]) -> bool:
    for target in targets:
        if isinstance(target, ast.Tuple):
            if not all(isinstance(element, ast.Name) for element in target.elts):
                return False
        elif not isinstance(target, ast.Name):
            return False
    return True


def _is_definition(node: ast.stmt) -> bool:
    """Return whether a top-level statement is an import, a def, a class or a literal constant."""
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, ast.Assign):
        return _simple_targets(node.targets) and _is_literal(node.value)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.value is not None and _is_literal(node.value)
    return False


def keep_definitions(source: str) -> tuple[str, set[str]]:
    """Return the imports, defs, classes and literal constants of a cell, and the names its code reads.

    Raises SyntaxError when the cell is not valid Python (with IPython syntax allowed).
    """
    tree = ast.parse(_python_source(source))
    kept = [node for node in tree.body if _is_definition(node)]
    module = ast.Module(body=kept, type_ignores=[])
    used = {node.id for node in ast.walk(module) if isinstance(node, ast.Name)}
    return ast.unparse(module), used


def _bound_names(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.asname or alias.name.split(".")[0] for alias in node.names}
    if isinstance(node, ast.ImportFrom):
        return {alias.asname or alias.name for alias in node.names if alias.name != "*"}
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)}
    return set()


def _context_sources(cells: list[nbformat.NotebookNode], used: set[str]) -> list[str]:
    """Return the notebook's own definitions (not the answers') that bind a name the answers use."""
    sources: list[str] = []
    assigned: set[str] = set()
    for cell in cells:
        if cell.cell_type != "code" or any(role == "answer" for role, _ in cell_roles(cell)):
            continue
        try:
            tree = ast.parse(_python_source(cell.source))
        except SyntaxError:
            continue
        for node in tree.body:
            names = _bound_names(node)
            if _is_definition(node) and names & used:
                sources.append(ast.unparse(node))
            assigned |= names
    for name, source in _CONTEXT_DEFAULTS.items():
        if name in used and name in assigned:
            sources.append(source)
    return sources


def answer_sources(notebook: nbformat.NotebookNode) -> tuple[list[str], list[list[str]], dict[str, str]]:
    """Return the context, the cut-down answer cells ``[exercise, source]`` and each cell's syntax error."""
    cells: list[list[str]] = []
    errors: dict[str, str] = {}
    used: set[str] = set()
    for cell in notebook.cells:
        for role, exercise in cell_roles(cell):
            if role != "answer" or cell.cell_type != "code":
                continue
            try:
                source, names = keep_definitions(cell.source)
            except SyntaxError as exc:
                errors[exercise] = f"SyntaxError: {exc.msg} (line {exc.lineno})"
                continue
            cells.append([exercise, source])
            used |= names
    return _context_sources(notebook.cells, used), cells, errors


# --- the worker process --------------------------------------------------------------------------


def _worker_environment(extra: dict[str, str] | None) -> dict[str, str]:
    return untrusted_environment({"MPLBACKEND": "Agg"}, extra)


def _limit_worker(limits: Limits) -> None:
    """Set the kernel's rlimits in the worker before exec, plus a cap on the size of files it writes."""
    limit_resources(limits)
    resource.setrlimit(resource.RLIMIT_FSIZE, (_MAX_FILE_BYTES, _MAX_FILE_BYTES))


class Worker:
    """One worker process and its two pipes. Start it early: importing torch takes a while."""

    def __init__(self, limits: Limits, env: dict[str, str] | None = None) -> None:
        self.limits = limits
        self.env = env
        self.process: subprocess.Popen | None = None
        self._to_worker = -1
        self._from_worker = -1
        self._ready = False
        self._workdir: tempfile.TemporaryDirectory | None = None

    def start(self) -> None:
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        self._workdir = tempfile.TemporaryDirectory(prefix="lab6-grade-worker-")
        command = [
            sys.executable,
            "-c",
            _WORKER_BOOT,
            protocol.__file__,
            str(request_read),
            str(reply_write),
            str(REPO_ROOT),
        ]
        self._log_path = Path(self._workdir.name) / "worker.log"
        try:
            with open(self._log_path, "wb") as log_file:
                self.process = subprocess.Popen(
                    command,
                    cwd=self._workdir.name,
                    env=_worker_environment(self.env),
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    pass_fds=(request_read, reply_write),
                    start_new_session=True,
                    preexec_fn=lambda: _limit_worker(self.limits),
                )
        finally:
            os.close(request_read)
            os.close(reply_write)
        self._to_worker, self._from_worker = request_write, reply_read
        self._ready = False

    def _log_tail(self) -> str:
        try:
            return self._log_path.read_bytes()[-1500:].decode("utf-8", errors="replace")
        except (OSError, AttributeError):
            return ""

    def request(self, message: dict[str, Any], seconds: float, what: str) -> dict[str, Any]:
        """Send one request and return the reply; raise :class:`WorkerFailed` on any failure."""
        if self.process is None:
            self.start()
        deadline = time.monotonic() + seconds
        if not self._ready:
            self._read_reply(time.monotonic() + _STARTUP_SECONDS, what)
            self._ready = True
        try:
            self._write(protocol.encode(message))
        except OSError:
            raise self._failure(what) from None
        return self._read_reply(deadline, what, seconds)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._to_worker, view)
            view = view[written:]

    def _read_exactly(self, size: int, deadline: float, what: str, seconds: float) -> bytes:
        chunks: list[bytes] = []
        while size:
            remaining = deadline - time.monotonic()
            ready = select.select([self._from_worker], [], [], max(0.0, remaining))[0] if remaining > 0 else []
            if not ready:
                self.close()
                raise WorkerFailed(tr("isolation.reason.timeout", name=what, seconds=f"{seconds:g}"))
            chunk = os.read(self._from_worker, min(size, 1 << 20))
            if not chunk:
                raise self._failure(what)
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _read_reply(self, deadline: float, what: str, seconds: float = _STARTUP_SECONDS) -> dict[str, Any]:
        size = protocol.HEADER.unpack(self._read_exactly(protocol.HEADER.size, deadline, what, seconds))[0]
        if size > MAX_REPLY_BYTES:
            self.close()
            raise WorkerFailed(tr("isolation.reason.too_large", name=what, megabytes=MAX_REPLY_BYTES >> 20))
        payload = self._read_exactly(size, deadline, what, seconds)
        try:
            reply = protocol.decode(payload)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError) as exc:
            log.warning("rejected a worker reply for %s: %s", what, exc)
            self.close()
            raise WorkerFailed(tr("isolation.reason.unsafe_reply", name=what)) from None
        if not isinstance(reply, dict):
            self.close()
            raise WorkerFailed(tr("isolation.reason.unsafe_reply", name=what))
        return reply

    def _failure(self, what: str) -> WorkerFailed:
        """Describe a worker that stopped answering, then clean it up."""
        code = None
        if self.process is not None:
            try:
                code = self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
        log.warning("the trusted-check worker stopped during %s (status %s); its output ends with: %s", what, code, self._log_tail())
        self.close()
        if code is None:
            cause = tr("grade.cause.unknown")
        elif code < 0:
            cause = tr("grade.cause.signal", signal=-code)
        else:
            cause = tr("grade.cause.exit", code=code)
        return WorkerFailed(tr("isolation.reason.died", name=what, cause=cause))

    def close(self) -> None:
        """Kill the worker's process group and close the pipes; safe to call twice."""
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)  # its own session: the worker and its children
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        for fd in (self._to_worker, self._from_worker):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._to_worker = self._from_worker = -1
        self._ready = False
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --- calling the student's function --------------------------------------------------------------


class Opaque:
    """Stands in for an object of a type the worker could not send; it has that type's name."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


def _named_class(name: str, base: type) -> type:
    """Return a new class called ``name`` (when it is a valid identifier) deriving from ``base``."""
    name = str(name)[:60]
    if not name.isidentifier() or keyword.iskeyword(name):
        name = base.__name__
    return type(name, (base,), {"__module__": "student"})


def _from_worker(value: Any, depth: int = 0) -> Any:
    """Replace the worker's opaque markers with :class:`Opaque` objects of the same type name."""
    if depth > 64:
        return value
    if isinstance(value, dict):
        if len(value) == 1 and protocol.OPAQUE_KEY in value:
            return _named_class(value[protocol.OPAQUE_KEY], Opaque)()
        return {key: _from_worker(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_worker(item, depth + 1) for item in value]
    if isinstance(value, tuple):
        return tuple(_from_worker(item, depth + 1) for item in value)
    return value


def _copy_tensor(target: torch.Tensor, source: torch.Tensor) -> None:
    if target.shape == source.shape and target.dtype == source.dtype:
        if not torch.equal(target, source):
            with torch.no_grad():
                target.copy_(source)
        return
    with torch.no_grad():
        target.data = source.clone()  # the student changed the shape or dtype in place


def sync_arguments(original: Any, after: Any, flags: list[Any]) -> None:
    """Make ``original`` (the caller's argument) match ``after`` (the worker's, after the call).

    ``flags`` is the worker's ``[same, children]`` tree. Objects that are still the same in
    the worker are updated in place. Objects it replaced are replaced here by new ones, so a
    check that compares identities sees the replacement.
    """
    _, children = flags
    if isinstance(original, torch.Tensor):
        if isinstance(after, torch.Tensor):
            _copy_tensor(original, after)
        return
    if isinstance(original, list) and isinstance(after, list):
        if children is None:
            original[:] = after
            return
        for index, child in enumerate(children):
            if child[0]:
                sync_arguments(original[index], after[index], child)
            else:
                original[index] = after[index]
        return
    if isinstance(original, dict) and isinstance(after, dict):
        if children is None:
            original.clear()
            original.update(after)
            return
        for key, child in children.items():
            if child[0]:
                sync_arguments(original[key], after[key], child)
            else:
                original[key] = after[key]
        return
    if isinstance(original, tuple) and isinstance(after, tuple) and children is not None:
        for item, new, child in zip(original, after, children):
            if child[0]:
                sync_arguments(item, new, child)


class StudentFunction:
    """A callable that runs the student's function ``name`` in the worker.

    The student's exceptions come back as exceptions of the same type name and message, so
    the checks word them as they would in the kernel. A call of a lab6 reference
    implementation raises :class:`lab6.checks.CheckFailed` with its own message.
    """

    def __init__(self, worker: Worker, name: str, item: str, seconds: float) -> None:
        self.worker = worker
        self.item = item
        self.seconds = seconds
        self.__name__ = self.__qualname__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from lab6.checks import CheckFailed

        request = {"op": "call", "name": self.__name__, "args": list(args), "kwargs": dict(kwargs)}
        reply = self.worker.request(request, self.seconds, self.__name__)
        if reply.get("ok"):
            after_args, after_kwargs = _from_worker(reply.get("args")), _from_worker(reply.get("kwargs"))
            same = reply.get("same") or [[True, None], [True, None]]
            try:
                self._sync(args, kwargs, after_args, after_kwargs, same)
            except (IndexError, KeyError, TypeError, ValueError, RuntimeError) as exc:
                log.warning("could not copy the arguments back from the worker: %s", exc)
            return _from_worker(reply.get("result"))
        kind = reply.get("kind")
        if kind == "reference":
            dotted = str(reply.get("name", "lab6"))
            raise CheckFailed(self.item, "isolation.reference_call", name=dotted.rsplit(".", 1)[-1], dotted=dotted)
        if kind == "raised":
            message = str(reply.get("message", ""))
            if reply.get("not_implemented"):
                raise NotImplementedError(message)
            raise _named_class(str(reply.get("type", "Exception")), Exception)(message)
        if kind == "missing":
            raise NameError(f"name {self.__name__!r} is not defined")
        raise WorkerFailed(tr("isolation.reason.unsendable", name=self.__name__, kind=str(reply.get("type", kind))))

    @staticmethod
    def _sync(args: tuple, kwargs: dict, after_args: Any, after_kwargs: Any, same: list[Any]) -> None:
        arg_flags, kwarg_flags = same
        if isinstance(after_args, list) and arg_flags[1] is not None and len(after_args) == len(args):
            for original, after, flags in zip(args, after_args, arg_flags[1]):
                sync_arguments(original, after, flags)
        if isinstance(after_kwargs, dict) and kwarg_flags[1] is not None:
            for key, flags in kwarg_flags[1].items():
                if key in kwargs and key in after_kwargs:
                    sync_arguments(kwargs[key], after_kwargs[key], flags)


# --- running the checks --------------------------------------------------------------------------


def _short(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _public_outcome(exercise: str, proxy: StudentFunction) -> TrustedOutcome:
    import lab6.checks

    check = getattr(lab6.checks, f"check_{exercise}", None)
    if check is None:
        log.warning("no public check function check_%s; the kernel's check cell alone decides", exercise)
        return TrustedOutcome(passed=True)
    with collect_announcements() as lines:
        try:
            check(proxy)
        except lab6.checks.CheckFailed as failure:
            if failure.key == "checks.not_implemented":
                return TrustedOutcome(passed=False, reason=tr("grade.reason.not_implemented"))
            return TrustedOutcome(passed=False, reason=_with_hint(str(failure), failure))
        except Exception as exc:  # noqa: BLE001 - the check cell would show the same error
            return TrustedOutcome(passed=False, reason=tr("grade.reason.check_error", ename=type(exc).__name__, evalue=_short(str(exc))))
    return TrustedOutcome(passed=True, message="\n".join(lines))


def _hidden_outcome(exercise: str, proxy: StudentFunction) -> TrustedOutcome:
    from lab6.checks import CheckFailed
    from lab6.checks.hidden import run_hidden

    def failed(message: str) -> TrustedOutcome:
        return TrustedOutcome(passed=False, reason=tr("grade.reason.hidden_failed", message=message))

    with collect_announcements() as lines:
        try:
            run_hidden(exercise, proxy)
        except CheckFailed as failure:
            if failure.key == "checks.not_implemented":
                return TrustedOutcome(passed=False, reason=tr("grade.reason.not_implemented"))
            return failed(_with_hint(_short(str(failure.detail)), failure))
        except AssertionError:  # its text may contain an expected value
            return failed(tr("grade.hidden.failed_quietly"))
        except Exception as exc:  # noqa: BLE001 - any failure becomes one safe line
            return failed(tr("grade.hidden.raised", error=_short(f"{type(exc).__name__}: {exc}")))
    return TrustedOutcome(passed=True, message="\n".join(lines))


def _with_hint(text: str, failure: Exception) -> str:
    """Add why a name can be missing in the worker when the student's function raised NameError."""
    error = str(getattr(failure, "values", {}).get("error", ""))
    if error.startswith("NameError"):
        return f"{text} {tr('isolation.hint.definitions_only')}"
    return text


def _missing_outcomes(item: GradedItem, function: str, load_error: list[str] | None) -> TrustedOutcome:
    if load_error is not None:
        reason = tr("grade.reason.answer_error", ename=load_error[0], evalue=_short(load_error[1]))
    elif item.kind == "hidden":
        reason = tr("grade.reason.hidden_failed", message=tr("grade.hidden.name_missing", name=function))
    else:
        reason = tr("grade.reason.name_missing", name=function)
    return TrustedOutcome(passed=False, reason=reason, function_missing=True)


class TrustedChecker:
    """Re-checks one submission's exercises in the grader, with a worker started on construction."""

    def __init__(self, limits: Limits, env: dict[str, str] | None = None, start: bool = True) -> None:
        self.limits = limits
        self.env = env
        self.worker = Worker(limits, env)
        self.starts = 0
        self.seconds = 0.0
        if start:
            self._start_worker()

    def _start_worker(self) -> None:
        self.worker.close()
        self.worker = Worker(self.limits, self.env)
        self.worker.start()
        self.starts += 1

    def _load(self, context: list[str], cells: list[list[str]], seconds: float) -> dict[str, Any]:
        what = tr("isolation.what.load")
        reply = self.worker.request({"op": "load", "context": context, "cells": cells}, seconds, what)
        if not reply.get("ok"):
            raise WorkerFailed(tr("isolation.reason.unsendable", name=what, kind=str(reply.get("kind"))))
        return reply

    def recheck(self, notebook: nbformat.NotebookNode, items: list[GradedItem]) -> dict[str, TrustedOutcome]:
        """Run the public and hidden checks of ``items`` on the answers in ``notebook``.

        Returns an outcome per public and hidden item id. A worker that fails costs the item
        it was checking and that exercise's other item. The next exercise gets a fresh worker,
        up to ``_MAX_WORKER_STARTS`` workers per submission, within the submission's time limit.
        """
        started = time.monotonic()
        deadline = started + self.limits.submission_seconds
        context, cells, syntax_errors = answer_sources(notebook)
        outcomes: dict[str, TrustedOutcome] = {}
        loaded: dict[str, Any] | None = None
        broken: dict[str, str] = {}
        load_failure: str | None = None
        try:
            for item in items:
                if item.kind not in ("public", "hidden") or not item.function:
                    continue
                reason = load_failure or broken.get(item.exercise)  # the same code already hung or crashed the worker
                if reason is None and time.monotonic() >= deadline:
                    reason = tr("grade.reason.not_run", seconds=f"{self.limits.submission_seconds:g}")
                if reason is not None:
                    outcomes[item.id] = TrustedOutcome(passed=False, reason=reason)
                    continue
                seconds_left = deadline - time.monotonic()
                seconds = min(self.limits.call_seconds, seconds_left)
                try:
                    if self.starts == 0:
                        self._start_worker()
                    if loaded is None:
                        try:
                            loaded = self._load(context, cells, min(self.limits.load_seconds, seconds_left))
                        except WorkerFailed as failure:
                            load_failure = failure.reason
                            raise
                    outcomes[item.id] = self._check_item(item, loaded, syntax_errors, seconds)
                except WorkerFailed as failure:
                    outcomes[item.id] = TrustedOutcome(passed=False, reason=failure.reason)
                    broken[item.exercise] = failure.reason
                    loaded = None
                    if load_failure is not None:
                        continue  # every item gets the load's reason; a new worker would fail the same way
                    if self.starts >= _MAX_WORKER_STARTS:
                        break
                    self._start_worker()
        finally:
            self.seconds += time.monotonic() - started
        for item in items:
            if item.kind in ("public", "hidden") and item.function and item.id not in outcomes:
                outcomes[item.id] = TrustedOutcome(passed=False, reason=tr("isolation.reason.gave_up", starts=self.starts))
        return outcomes

    def _check_item(
        self, item: GradedItem, loaded: dict[str, Any], syntax_errors: dict[str, str], seconds: float
    ) -> TrustedOutcome:
        function = item.function or ""
        reference = (loaded.get("references") or {}).get(item.exercise)
        if reference:  # a stub was called while the answer cell was loaded, e.g. by a decorator
            from lab6.checks import CheckFailed

            values = {"name": reference.rsplit(".", 1)[-1], "dotted": reference}
            if item.kind == "hidden":
                return TrustedOutcome(False, tr("grade.reason.hidden_failed", message=tr("isolation.reference_call", **values)))
            return TrustedOutcome(False, str(CheckFailed(item.exercise, "isolation.reference_call", **values)))
        if function not in loaded.get("callables", []):
            error = (loaded.get("errors") or {}).get(item.exercise)
            if error is None and item.exercise in syntax_errors:
                error = ["SyntaxError", syntax_errors[item.exercise]]
            return _missing_outcomes(item, function, error)
        proxy = StudentFunction(self.worker, function, item.exercise, seconds)
        if item.kind == "public":
            return _public_outcome(item.exercise, proxy)
        return _hidden_outcome(item.exercise, proxy)

    def close(self) -> None:
        self.worker.close()

    def __enter__(self) -> "TrustedChecker":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def recheck_submission(
    notebook: nbformat.NotebookNode, items: list[GradedItem], limits: Limits, env: dict[str, str] | None = None
) -> dict[str, TrustedOutcome]:
    """Start a worker, re-check ``items`` on the answers in ``notebook``, and stop the worker."""
    with TrustedChecker(limits, env) as checker:
        return checker.recheck(notebook, items)
