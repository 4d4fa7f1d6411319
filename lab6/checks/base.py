"""Shared machinery of the graded checks: the failure type, safe calls, and shape tests.

A check runs the student's function on small inputs, compares with answers computed
independently, and raises :class:`CheckFailed` with a message about the student's own
values. The message never contains the expected tensor itself.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Callable, Iterator, Sequence

import torch

from lab6.i18n import Lab6Error, tr
from lab6.references import find_reference_use

__all__ = [
    "CheckFailed",
    "call_student",
    "expect_tensor",
    "expect_shape",
    "expect_unchanged",
    "announce",
    "announce_pass",
    "collect_announcements",
    "fmt",
]

_MAX_ERROR_TEXT = 300

# Lines of the checks go here instead of stdout while set: the grader runs checks in threads.
_announcements: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("lab6_announcements", default=None)


class CheckFailed(Lab6Error):
    """A graded check that did not pass.

    ``item`` is the graded item (see :mod:`lab6.checks.items`), ``key`` names the cause
    (a message key in ``lab6/messages/checks.py``), so tests and the autograder can match
    the cause without parsing text. In Jupyter only the message is shown, not a traceback.
    """

    def __init__(self, item: str, key: str, **values: object) -> None:
        self.item = item
        self.key = key
        self.values = values
        self.detail = tr(_message_key(item, key), **values)
        ValueError.__init__(self, tr("checks.failed", item=item, detail=self.detail))

    def _render_traceback_(self) -> list[str]:
        """Show IPython users the message alone, without the Python frames behind it."""
        return [str(self)]


def _message_key(item: str, key: str) -> str:
    """Return the key of the message to show: a hidden item uses ``<key>.hidden`` where one exists.

    Those variants name the kind of mistake without the hidden inputs or the values computed on them.
    """
    from lab6.messages import MESSAGES

    general = f"{key}.hidden"
    if item.endswith(".hidden") and general in MESSAGES["en"]:
        return general
    return key


def fmt(value: Any) -> str:
    """Format a tensor, list or number compactly for a message."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def call_student(item: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the student's function; turn its exceptions into a short :class:`CheckFailed`."""
    name = getattr(fn, "__name__", repr(fn))
    if not callable(fn):
        raise CheckFailed(item, "checks.not_callable", kind=type(fn).__name__)
    reference = find_reference_use(fn)
    if reference is not None:
        raise CheckFailed(item, "isolation.reference_call", name=reference.rsplit(".", 1)[-1], dotted=reference)
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise CheckFailed(item, "checks.not_implemented", name=name) from None
    except CheckFailed:
        raise
    except Exception as exc:  # any error in student code becomes a message, not a traceback
        text = f"{type(exc).__name__}: {exc}"
        if len(text) > _MAX_ERROR_TEXT:
            text = text[: _MAX_ERROR_TEXT - 3] + "..."
        raise CheckFailed(item, "checks.raised", name=name, error=text) from None


def expect_tensor(item: str, value: Any, what: str) -> torch.Tensor:
    """Raise unless ``value`` is a tensor."""
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(item, "checks.not_tensor", what=what, kind=type(value).__name__)
    return value


def expect_shape(item: str, value: Any, shape: Sequence[int], what: str, meaning: str) -> torch.Tensor:
    """Raise unless ``value`` is a tensor of exactly ``shape``; ``meaning`` names the axes."""
    tensor = expect_tensor(item, value, what)
    if tuple(tensor.shape) != tuple(shape):
        raise CheckFailed(
            item, "checks.bad_shape", what=what, got=list(tensor.shape), expected=list(shape), meaning=meaning
        )
    return tensor


def expect_unchanged(item: str, before: torch.Tensor, after: torch.Tensor, argument: str) -> None:
    """Raise when the student's function modified an input tensor in place."""
    if before.shape != after.shape or not torch.equal(before, after):
        raise CheckFailed(item, "checks.mutated", argument=argument)


def announce(line: str) -> None:
    """Print one line of a check, or add it to the list of :func:`collect_announcements` in force."""
    lines = _announcements.get()
    if lines is None:
        print(line)
    else:
        lines.append(line)


def announce_pass(item: str) -> None:
    """Print the public check's pass line; it never mentions points or a grade."""
    announce(tr("checks.passed", item=item))


@contextlib.contextmanager
def collect_announcements() -> Iterator[list[str]]:
    """Collect the checks' lines in a list instead of printing them, in this thread only."""
    lines: list[str] = []
    token = _announcements.set(lines)
    try:
        yield lines
    finally:
        _announcements.reset(token)
