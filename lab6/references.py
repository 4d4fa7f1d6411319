"""lab6's own implementations that answer an exercise, and detection of student code that calls them.

The workbook asks students to write functions that lab6 already ships: ``num_keep`` is
:func:`lab6.schedule.num_kept`, ``get_real_idx`` is :func:`lab6.index.get_real_idx`, and the
checks in ``lab6.checks`` compute every expected answer. A graded answer must not call them.

Two places enforce it:

- the public checks scan the student's function before calling it
  (:func:`find_reference_use`): its code, the helper functions and classes it reaches through
  its globals, closures and default values, and the attributes it reads from lab6 modules;
- the grader's worker process replaces these functions and the ``lab6.checks`` and
  ``lab6.grade`` packages with stubs that raise (:mod:`lab6.grade.worker`).

This module imports nothing from lab6, so the worker can read the table before any lab6
module is loaded.
"""

from __future__ import annotations

import functools
import types
from typing import Any, Iterator

__all__ = ["REFERENCE_FUNCTIONS", "PROTECTED_PACKAGES", "is_reference_function", "is_protected_name", "find_reference_use"]

REFERENCE_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "lab6.index": ("get_real_idx", "patch_owner"),
    "lab6.schedule": ("num_kept", "token_counts"),
    "lab6.evit": ("complement_idx",),
}
"""Module name to the functions in it that answer an exercise.

``patch_owner`` is listed because inverting its result gives ``get_real_idx``'s, and
``complement_idx`` because it returns the fused tokens' indices of ``fuse_tokens``.
"""

PROTECTED_PACKAGES = ("lab6.checks", "lab6.grade")
"""Packages that a graded answer may not use at all: they hold the checks and the grader."""

_SCANNED_OBJECTS = 2000


def is_protected_name(module_name: str) -> bool:
    """Return whether ``module_name`` is one of :data:`PROTECTED_PACKAGES` or inside one."""
    return any(module_name == package or module_name.startswith(package + ".") for package in PROTECTED_PACKAGES)


def is_reference_function(module_name: str, name: str) -> bool:
    """Return whether ``module_name.name`` is listed in :data:`REFERENCE_FUNCTIONS`."""
    return name in REFERENCE_FUNCTIONS.get(module_name, ())


def _reference_name(obj: Any) -> str | None:
    """Return the dotted name of ``obj`` when it is a reference function or a protected object."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__ if is_protected_name(obj.__name__) else None
    if not isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, type)):
        return None
    module = getattr(obj, "__module__", None) or ""
    qualname = getattr(obj, "__qualname__", "")
    if is_reference_function(module, qualname) or is_protected_name(module):
        return f"{module}.{qualname}"
    return None


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    """Yield ``code`` and every code object nested in it: inner functions, lambdas, comprehensions."""
    yield code
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _code_objects(constant)


def _lab6_attributes(module: types.ModuleType, names: set[str], depth: int = 3) -> Iterator[Any]:
    """Yield the attributes named in ``names`` of a lab6 module and of its submodules in ``names``."""
    for name in names:
        value = getattr(module, name, None)
        if value is None:
            continue
        yield value
        if isinstance(value, types.ModuleType) and value.__name__.startswith("lab6") and depth > 1:
            yield from _lab6_attributes(value, names, depth - 1)


def find_reference_use(fn: Any) -> str | None:
    """Return the dotted name of a reference implementation that ``fn`` may call, or None.

    Scanned: ``fn``'s code and nested code, the globals it names, its closure cells and
    default values, and the same for every function and class defined next to it (same
    globals). A lab6 module that ``fn`` names is searched for the attribute names in its
    code, so ``import lab6.index as ix; ix.get_real_idx(...)`` is found. Library functions
    are not scanned inside.

    NOTE: a name built at run time (``getattr(ix, "get_" + "real_idx")``) is not found here.
    The grader's worker replaces the reference functions with stubs, which catch that case.
    """
    if not isinstance(fn, types.FunctionType) and type(fn).__module__.split(".")[0] == "lab6":
        return None  # a callable object of lab6 itself, such as the grader's proxy of the student's function
    home = getattr(fn, "__globals__", None)
    if home is None:  # a callable object: its class's __call__ has the globals it was defined with
        home = getattr(getattr(type(fn), "__call__", None), "__globals__", None)
    pending: list[Any] = [fn]
    seen: set[int] = set()
    attribute_names: set[str] = set()
    lab6_modules: list[types.ModuleType] = []
    while pending and len(seen) < _SCANNED_OBJECTS:
        obj = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        found = _reference_name(obj)
        if found is not None:
            return found
        if isinstance(obj, functools.partial):
            pending.extend([obj.func, *obj.args, *obj.keywords.values()])
        elif isinstance(obj, (staticmethod, classmethod, types.MethodType)):
            pending.append(obj.__func__)
        elif isinstance(obj, types.FunctionType) and obj.__globals__ is home:
            pending.extend(_function_references(obj, attribute_names))
        elif isinstance(obj, type) and home is not None and getattr(obj, "__module__", None) == home.get("__name__"):
            pending.extend(vars(obj).values())
        elif isinstance(obj, types.ModuleType) and obj.__name__.split(".")[0] == "lab6":
            lab6_modules.append(obj)
        elif not isinstance(obj, (types.FunctionType, type, types.ModuleType)) and callable(obj):
            call = getattr(type(obj), "__call__", None)
            if isinstance(call, types.FunctionType):
                pending.append(call)
    for module in lab6_modules:
        for value in _lab6_attributes(module, attribute_names):
            found = _reference_name(value)
            if found is not None:
                return found
    return None


def _function_references(fn: types.FunctionType, attribute_names: set[str]) -> list[Any]:
    """Return the objects a function's code can reach by name; collect the names it reads."""
    reached: list[Any] = []
    for code in _code_objects(fn.__code__):
        for name in code.co_names:
            attribute_names.add(name)
            if name in fn.__globals__:
                reached.append(fn.__globals__[name])
    for cell in fn.__closure__ or ():
        try:
            reached.append(cell.cell_contents)
        except ValueError:  # an empty cell: the closed-over name is not bound yet
            continue
    reached.extend(fn.__defaults__ or ())
    reached.extend((fn.__kwdefaults__ or {}).values())
    return reached
