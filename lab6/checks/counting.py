"""Check for notebook 3: the token count after every block of a keep-rate schedule.

Wrong answers are recognised by simulating the typical mistakes (floor for ceil, a fused
token that is not counted, a fused token added at blocks that do not prune, ...).
"""

from __future__ import annotations

import math
import numbers
from fractions import Fraction
from typing import Callable, Sequence

from lab6.checks.base import CheckFailed, announce_pass, call_student, fmt
from lab6.schedule import LAB_SCHEDULE

__all__ = ["check_token_counts", "verify_token_counts", "simulate_counts"]


def simulate_counts(
    schedule: Sequence[float],
    num_patches: int,
    fuse: bool,
    *,
    rounding: Callable[[Fraction], int] = math.ceil,
    count_cls: bool = False,
    count_fused: bool = True,
    add_fused: bool = True,
    every_block: bool = False,
) -> list[int]:
    """Count tokens after every block; the keyword switches reproduce typical mistakes.

    With the defaults this is the correct count: a block with rate r and N input tokens
    keeps ``ceil(r * (N - 1))`` image tokens; a block that would keep them all leaves the
    sequence alone, and with fusion a pruning block appends one fused token.
    """
    tokens = num_patches + 1
    has_fused = False
    counts = []
    for rate in schedule:
        candidates = tokens if count_cls else tokens - 1
        if has_fused and not count_fused:
            candidates -= 1
        kept = rounding(Fraction(repr(float(rate))) * candidates)
        prunes = kept < tokens - 1
        if prunes or every_block:
            appended = fuse and add_fused
            tokens = 1 + kept + (1 if appended else 0)
            has_fused = appended
        counts.append(tokens)
    return counts


def _first_difference(got: Sequence[int], expected: Sequence[int]) -> int:
    return next(i for i, (a, b) in enumerate(zip(got, expected)) if a != b)


Case = tuple[Sequence[float], int, bool]
"""One call: (schedule, num_patches, fuse)."""

_MISTAKES = (
    ("checks.token_counts.floor", dict(rounding=math.floor)),
    ("checks.token_counts.counted_cls", dict(count_cls=True)),
    ("checks.token_counts.fused_not_counted", dict(count_fused=False)),
    ("checks.token_counts.no_fused_token", dict(add_fused=False)),
    ("checks.token_counts.every_block", dict(every_block=True)),
)


def _student_counts(fn: Callable, case: Case, item: str) -> list[int]:
    schedule, num_patches, fuse = case
    original = list(schedule)
    got = call_student(item, fn, schedule, num_patches, fuse)
    if list(schedule) != original:
        raise CheckFailed(item, "checks.mutated", argument="schedule")
    if not isinstance(got, (list, tuple)) or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in got
    ):
        raise CheckFailed(item, "checks.token_counts.not_list", got=fmt(got), kind=type(got).__name__)
    if len(got) != len(schedule):
        raise CheckFailed(item, "checks.token_counts.length", got=len(got), depth=len(schedule))
    return [int(v) for v in got]


def verify_token_counts(fn: Callable, cases: Sequence[Case], item: str = "token_counts") -> None:
    """Raise unless ``fn(schedule, num_patches, fuse)`` lists the right count after every block.

    A wrong answer is named after the typical mistake that reproduces *every* case: on
    the lab's schedule alone, a floor keep count and a missing fused token give the
    same counts, and only the other cases tell them apart.
    """
    answers = [_student_counts(fn, case, item) for case in cases]
    wrong = [i for i, (case, got) in enumerate(zip(cases, answers)) if got != simulate_counts(*case)]
    if not wrong:
        return

    def describe(index: int, key: str) -> CheckFailed:
        schedule, num_patches, fuse = cases[index]
        block = _first_difference(answers[index], simulate_counts(*cases[index]))
        return CheckFailed(item, key, fuse=fuse, block=block + 1, got=answers[index][block], rate=schedule[block])

    for key, switches in _MISTAKES:
        if all(got == simulate_counts(*case, **switches) for case, got in zip(cases, answers)):
            raise describe(wrong[0], key)
    if all(got == simulate_counts(case[0], case[1], True) for case, got in zip(cases, answers)):
        raise describe(wrong[0], "checks.token_counts.fused_when_off")
    raise describe(wrong[0], "checks.token_counts.mismatch")


def check_token_counts(fn: Callable) -> None:
    """Public check of ``token_counts(schedule, num_patches, fuse)`` on the lab's schedule and one more."""
    item = "token_counts"
    half = (1, 1, 1, 0.5) + (1, 1, 0.5) + (1, 1, 0.5) + (1, 1)
    verify_token_counts(fn, [(LAB_SCHEDULE, 196, True), (LAB_SCHEDULE, 196, False), (half, 196, True)], item)
    announce_pass(item)
