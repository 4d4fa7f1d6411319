"""The worker process that runs a student's functions for the grader's trusted checks.

The grader (:mod:`lab6.grade.trusted`) starts one worker per submission with resource limits
and talks to it over two pipes. Every message is a frame: an 8-byte big-endian length, then
a ``torch.save`` payload of plain data (tensors, numbers, strings, lists, tuples, dicts).

Requests and replies:

- ``{"op": "load", "context": [source, ...], "cells": [[exercise, source], ...]}`` runs the
  notebook's imports, then the student's answer cells, which the grader has already cut down
  to imports, function and class definitions and constants. The reply lists the callable
  names and each cell's error, if any.
- ``{"op": "call", "name": ..., "args": [...], "kwargs": {...}}`` calls one function. The
  reply carries the result and the arguments as they are after the call (with a tree of
  flags saying which objects inside them are still the same objects), or the error.

Before any student code runs, the worker replaces lab6's reference implementations (see
:mod:`lab6.references`) and the ``lab6.checks`` and ``lab6.grade`` packages with stubs that
raise, and records every stub call, so an answer that calls one is reported even when it
catches the error.

This file runs as ``__main__`` through :func:`runpy.run_path`, never as ``lab6.grade.worker``,
so the worker never imports ``lab6/__init__.py`` (and timm) unless the student's code needs
``lab6.evit``. At module level it imports only the standard library; the grader imports it
for the framing helpers.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import numbers
import os
import struct
import sys
import types
from pathlib import Path
from typing import Any, BinaryIO, Callable

HEADER = struct.Struct(">Q")
OPAQUE_KEY = "__lab6_opaque__"
"""Key of a one-entry dict that replaces an object the worker cannot send; the value is its type name."""

_MAX_DEPTH = 32
_MAX_ERROR_TEXT = 1000


def encode(message: Any) -> bytes:
    """Serialise ``message`` with ``torch.save`` and prefix its length."""
    import torch

    buffer = io.BytesIO()
    torch.save(message, buffer)
    payload = buffer.getvalue()
    return HEADER.pack(len(payload)) + payload


def decode(payload: bytes) -> Any:
    """Load a ``torch.save`` payload with ``weights_only=True``: plain data only, no code runs."""
    import torch

    return torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


# --- stubs for lab6's reference implementations ------------------------------------------------

REFERENCE_CALLS: list[str] = []
"""Dotted names of the stubs called since the current request began."""


class ReferenceCallError(RuntimeError):
    """Raised by a stub that replaces one of lab6's reference implementations."""


_stubs: dict[str, Callable[..., Any]] = {}
_references: Any = None
"""The module :mod:`lab6.references`, imported by :func:`install_lab6_guard` before the guard is in place."""


def stub_for(dotted: str) -> Callable[..., Any]:
    """Return the one stub of ``dotted`` (``"lab6.index.get_real_idx"``): it records the call and raises."""
    if dotted not in _stubs:
        short = dotted.rsplit(".", 1)[-1]

        def stub(*args: Any, **kwargs: Any) -> Any:
            REFERENCE_CALLS.append(dotted)
            from lab6.i18n import tr

            raise ReferenceCallError(tr("isolation.reference_call", name=short, dotted=dotted))

        stub.__name__ = stub.__qualname__ = short
        stub.__module__ = "lab6.grade.worker"
        _stubs[dotted] = stub
    return _stubs[dotted]


def replace_references(module: types.ModuleType) -> None:
    """Replace every reference function that ``module`` defines or imported with its stub."""
    is_reference_function = _references.is_reference_function
    for name, value in list(vars(module).items()):
        if isinstance(value, types.FunctionType) and is_reference_function(value.__module__, value.__qualname__):
            setattr(module, name, stub_for(f"{value.__module__}.{value.__qualname__}"))


class _ProtectedModule(types.ModuleType):
    """Replaces ``lab6.checks``, ``lab6.grade`` and their submodules: every name is a stub."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return stub_for(f"{self.__name__}.{name}")


class _ProtectedLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _ProtectedModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__path__ = []  # a package, so that its submodules come through the finder too


class _StubbingLoader(importlib.abc.Loader):
    """Runs a lab6 module as usual, then replaces its reference functions with stubs."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self.loader.exec_module(module)
        replace_references(module)


class _Lab6Guard(importlib.abc.MetaPathFinder):
    """Serves stub packages for ``lab6.checks`` and ``lab6.grade``; stubs references in other lab6 modules."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if _references.is_protected_name(name):
            return importlib.util.spec_from_loader(name, _ProtectedLoader(), is_package=True)
        if not name.startswith("lab6."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _StubbingLoader(spec.loader)
        return spec


def _package_exports(init_file: Path) -> dict[str, str]:
    """Map each name that ``lab6/__init__.py`` imports from a submodule to that submodule."""
    exports: dict[str, str] = {}
    tree = ast.parse(init_file.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                exports[alias.asname or alias.name] = node.module
    return exports


def install_lab6_guard(repo_root: Path) -> None:
    """Make ``lab6`` a lazy package (its ``__init__`` does not run) and install the import guard.

    ``from lab6 import get_real_idx`` still works: the package imports the submodule on first
    use, through the guard, so it returns the stub.
    """
    package_dir = repo_root / "lab6"
    spec = importlib.machinery.ModuleSpec("lab6", None, is_package=True)
    spec.submodule_search_locations = [str(package_dir)]
    package = importlib.util.module_from_spec(spec)
    package.__file__ = str(package_dir / "__init__.py")
    exports = _package_exports(package_dir / "__init__.py")

    def lazy_attribute(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        if (package_dir / f"{name}.py").is_file() or (package_dir / name / "__init__.py").is_file():
            return importlib.import_module(f"lab6.{name}")  # the real __init__ imports these as a side effect
        raise AttributeError(f"module 'lab6' has no attribute {name!r}")

    package.__getattr__ = lazy_attribute  # type: ignore[attr-defined]
    package.__all__ = sorted(exports)  # type: ignore[attr-defined]
    for name in [name for name in sys.modules if name == "lab6" or name.startswith("lab6.")]:
        del sys.modules[name]
    sys.modules["lab6"] = package
    global _references
    _references = importlib.import_module("lab6.references")
    sys.meta_path.insert(0, _Lab6Guard())


# --- sending results and arguments -------------------------------------------------------------


def sendable(value: Any, depth: int = 0) -> Any:
    """Return a copy of ``value`` made of types that ``weights_only`` loading accepts.

    Tensors lose their autograd graph and any subclass and move to the CPU; numbers and
    strings of subclasses (numpy scalars among them) become plain ones. Any other object
    becomes ``{OPAQUE_KEY: its type name}``, so a check reports the type the student returned.
    """
    import torch

    if depth > _MAX_DEPTH:
        return {OPAQUE_KEY: type(value).__name__}
    if value is None or type(value) in (bool, int, float, complex, str, bytes):
        return value
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        if type(tensor) is not torch.Tensor:
            tensor = tensor.as_subclass(torch.Tensor)
        return tensor.cpu()
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list):
        return [sendable(item, depth + 1) for item in value]
    if isinstance(value, tuple):
        return tuple(sendable(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return {sendable(key, depth + 1): sendable(item, depth + 1) for key, item in value.items()}
    return {OPAQUE_KEY: type(value).__name__}


def snapshot(value: Any, depth: int = 0) -> tuple[Any, Any]:
    """Record ``value`` and, for lists, tuples and dicts, the objects inside it."""
    if depth > _MAX_DEPTH:
        return value, None
    if isinstance(value, (list, tuple)):
        return value, [snapshot(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return value, {key: snapshot(item, depth + 1) for key, item in value.items()}
    return value, None


def identity_flags(before: tuple[Any, Any], after: Any) -> list[Any]:
    """Return ``[same, children]``: whether ``after`` is the object recorded in ``before``, and below it.

    ``children`` is None for a leaf, or when a list or dict changed length or keys.
    """
    original, children = before
    if after is not original or children is None:
        return [after is original, None]
    if isinstance(original, dict):
        if set(after) != set(children):
            return [True, None]
        return [True, {key: identity_flags(children[key], after[key]) for key in children}]
    if len(after) != len(children):
        return [True, None]
    return [True, [identity_flags(child, item) for child, item in zip(children, after)]]


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 3] + "..."


# --- the session -------------------------------------------------------------------------------


class Session:
    """The student's namespace and the requests that run code in it."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("op") == "load":
            return self.load(request.get("context", []), request.get("cells", []))
        if request.get("op") == "call":
            return self.call(request["name"], request.get("args", []), request.get("kwargs", {}))
        return {"ok": False, "kind": "protocol", "message": f"unknown request {request.get('op')!r}"}

    def load(self, context: list[str], cells: list[list[str]]) -> dict[str, Any]:
        for source in context:  # the notebook's own imports: one that fails only leaves its names out
            try:
                exec(compile(source, "<notebook context>", "exec"), self.namespace)
            except Exception:  # noqa: BLE001 - a missing optional package must not stop grading
                continue
        errors: dict[str, list[str]] = {}
        references: dict[str, str] = {}
        for exercise, source in cells:
            REFERENCE_CALLS.clear()
            try:
                exec(compile(source, f"<answer {exercise}>", "exec"), self.namespace)
            except BaseException as exc:  # noqa: BLE001 - the student's error is the reply
                errors[exercise] = [type(exc).__name__, _error_text(exc)]
            if REFERENCE_CALLS:
                references[exercise] = REFERENCE_CALLS[0]
        callables = sorted(name for name, value in self.namespace.items() if callable(value))
        return {"ok": True, "callables": callables, "errors": errors, "references": references}

    def call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        fn = self.namespace.get(name)
        if not callable(fn):
            return {"ok": False, "kind": "missing", "name": name}
        before = (snapshot(args), snapshot(kwargs))
        REFERENCE_CALLS.clear()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt are answers too
            if REFERENCE_CALLS:
                return {"ok": False, "kind": "reference", "name": REFERENCE_CALLS[0]}
            return {
                "ok": False,
                "kind": "raised",
                "type": type(exc).__name__,
                "message": _error_text(exc),
                "not_implemented": isinstance(exc, NotImplementedError),
            }
        if REFERENCE_CALLS:
            return {"ok": False, "kind": "reference", "name": REFERENCE_CALLS[0]}
        return {
            "ok": True,
            "result": sendable(result),
            "args": sendable(args),
            "kwargs": sendable(kwargs),
            "same": [identity_flags(before[0], args), identity_flags(before[1], kwargs)],
        }


def serve(reader: BinaryIO, writer: BinaryIO) -> None:
    """Serve requests until the grader closes the pipe."""
    import torch

    session = Session()
    writer.write(encode({"ok": True, "ready": True}))
    writer.flush()
    while True:
        header = _read_exactly(reader, HEADER.size)
        if header is None:
            return
        payload = _read_exactly(reader, HEADER.unpack(header)[0])
        if payload is None:
            return
        reply = session.handle(decode(payload))
        try:
            frame = encode(reply)
        except Exception as exc:  # noqa: BLE001 - e.g. a tensor type that torch.save cannot write
            frame = encode({"ok": False, "kind": "unsendable", "type": type(exc).__name__, "message": _error_text(exc)})
        writer.write(frame)
        writer.flush()
        del reply
        torch.set_grad_enabled(True)  # a student's call may have switched autograd off for the next one


def main(argv: list[str]) -> int:
    read_fd, write_fd, repo_root = int(argv[1]), int(argv[2]), Path(argv[3])
    sys.path.insert(0, str(repo_root))
    import torch

    torch.set_num_threads(1)
    install_lab6_guard(repo_root)
    with os.fdopen(read_fd, "rb") as reader, os.fdopen(write_fd, "wb") as writer:
        serve(reader, writer)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
