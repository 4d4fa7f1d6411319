"""Run one exercise's hidden checks inside the grading kernel, reporting only their message.

The grader injects a cell calling :func:`run_hidden_checks` after each exercise. A failure
raises :class:`HiddenCheckFailed`, whose text is the check's own message: never the hidden
check's code, its inputs or its expected values. Errors from the student's function keep
their type and message. An ``AssertionError`` from the check code keeps neither, because its
text may contain an expected value.

The hidden checks come from ``lab6/checks/hidden.py`` (which itself merges an instructor's
private file named by ``LAB6_HIDDEN_CHECKS``). The file is loaded afresh from disk on each
call, so replacing ``lab6.checks.hidden`` in ``sys.modules`` from an answer cell does not
replace the checks. Code that patches the modules the checks import still can: see the
grading guide on what is and is not isolated.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from lab6.i18n import tr

__all__ = ["HiddenCheckFailed", "load_hidden_module", "run_hidden_checks"]

_MAX_TEXT = 300


class HiddenCheckFailed(Exception):
    """A hidden check that did not pass; its text is safe to show the student."""

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


def hidden_checks_path() -> Path:
    """Return the file the hidden checks are loaded from."""
    return Path(__file__).resolve().parents[1] / "checks" / "hidden.py"


def load_hidden_module(path: Path | None = None) -> ModuleType:
    """Load the hidden checks module from ``path`` as a new module object."""
    path = Path(path) if path is not None else hidden_checks_path()
    spec = importlib.util.spec_from_file_location("lab6_hidden_checks_private", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FileNotFoundError(f"hidden checks file not found: {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _short(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def run_hidden_checks(exercise: str, function: str | None, namespace: dict[str, Any]) -> None:
    """Run the hidden checks of ``exercise`` on the student's ``function`` from ``namespace``.

    The hidden module prints its own line when the checks pass.
    """
    if function is not None and function not in namespace:
        raise HiddenCheckFailed(tr("grade.hidden.name_missing", name=function))
    module = load_hidden_module()
    student_fn = namespace.get(function) if function is not None else None
    try:
        module.run_hidden(exercise, student_fn)
    except AssertionError:
        raise HiddenCheckFailed(tr("grade.hidden.failed_quietly")) from None
    except Exception as exc:  # any failure becomes one safe line
        detail = getattr(exc, "detail", None)
        if type(exc).__name__ == "CheckFailed" and detail:
            raise HiddenCheckFailed(_short(str(detail))) from None
        raise HiddenCheckFailed(tr("grade.hidden.raised", error=_short(f"{type(exc).__name__}: {exc}"))) from None
