"""Keep-rate schedules: parsing, and the number of tokens each pruning block keeps.

A schedule is a tuple with one keep rate per transformer block. A rate below 1 makes that
block prune. The lab's schedule prunes at blocks 4, 7 and 10 (1-based) with rate 0.7.
"""

from __future__ import annotations

import math
import numbers
from fractions import Fraction
from typing import Sequence, Union

from lab6.i18n import ScheduleError

__all__ = [
    "LAB_SCHEDULE",
    "LAB_BLOCKS",
    "ScheduleLike",
    "parse_keep_rate",
    "pruning_blocks",
    "num_kept",
    "token_counts",
    "format_schedule",
]

LAB_SCHEDULE: tuple[float, ...] = (1, 1, 1, 0.7) + (1, 1, 0.7) + (1, 1, 0.7) + (1, 1)
LAB_BLOCKS: tuple[int, ...] = (4, 7, 10)  # 1-based, as the lab's report counts them

ScheduleLike = Union[str, float, int, Sequence[float], tuple[float, Sequence[int]]]


_SHOWN_CHARS = 40  # longer input is cut in error messages, so one typo cannot flood the terminal


def _shown(value: object) -> object:
    """Return ``value`` for an error message, with strings over ``_SHOWN_CHARS`` characters cut short."""
    if isinstance(value, str) and len(value) > _SHOWN_CHARS:
        return value[: _SHOWN_CHARS - 3] + "..."
    return value


def _rate(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        raise ScheduleError("schedule.not_number", value=_shown(value))
    try:
        rate = float(value)
    except ValueError:
        raise ScheduleError("schedule.not_number", value=_shown(value)) from None
    if not (0.0 < rate <= 1.0):  # also rejects NaN
        raise ScheduleError("schedule.bad_rate", value=_shown(value))
    return rate


def _block(value: object, depth: int) -> int:
    try:
        text = str(value).strip()
        block = int(text)
    except ValueError:
        raise ScheduleError("schedule.bad_block", value=_shown(value), depth=depth) from None
    if not 1 <= block <= depth:
        raise ScheduleError("schedule.bad_block", value=_shown(value), depth=depth)
    return block


def _at_blocks(rate: object, blocks: Sequence[object], depth: int) -> tuple[float, ...]:
    keep = _rate(rate)
    if len(blocks) == 0:
        raise ScheduleError("schedule.no_blocks", depth=depth)
    chosen = {_block(b, depth) for b in blocks}
    return tuple(keep if i + 1 in chosen else 1.0 for i in range(depth))


def _parse_string(text: str, depth: int) -> tuple[float, ...]:
    compact = "".join(text.split()).strip("()[]")
    if not compact:
        raise ScheduleError("schedule.empty")
    if any(bracket in compact for bracket in "()[]"):
        # Nested brackets, as in the Python tuple "(0.7, (4, 7))", belong to no accepted string form.
        raise ScheduleError("schedule.bad_string", text=_shown(text), depth=depth)
    if compact.lower() in ("lab", "default"):
        if depth != len(LAB_SCHEDULE):
            raise ScheduleError("schedule.wrong_length", got=len(LAB_SCHEDULE), depth=depth)
        return tuple(float(rate) for rate in LAB_SCHEDULE)
    if compact.count("@") == 1:
        rate, _, blocks = compact.partition("@")
        if not rate or not blocks:
            raise ScheduleError("schedule.bad_string", text=_shown(text), depth=depth)
        return _at_blocks(rate, blocks.split(","), depth)
    if "@" in compact:
        raise ScheduleError("schedule.bad_string", text=_shown(text), depth=depth)
    parts = compact.split(",")
    if any(p == "" for p in parts):
        raise ScheduleError("schedule.bad_string", text=_shown(text), depth=depth)
    if len(parts) == 1:
        return _parse_number_everywhere(parts[0], depth)
    rates = tuple(_rate(p) for p in parts)
    if len(rates) != depth:
        raise ScheduleError("schedule.wrong_length", got=len(rates), depth=depth)
    return rates


def _parse_number_everywhere(text: object, depth: int) -> tuple[float, ...]:
    """Read a lone rate: 1 turns pruning off, any other rate prunes at the lab's blocks."""
    rate = _rate(text)
    if rate == 1.0:
        return (1.0,) * depth
    if depth != len(LAB_SCHEDULE):
        raise ScheduleError("schedule.wrong_length", got=1, depth=depth)
    return _at_blocks(rate, LAB_BLOCKS, depth)


def parse_keep_rate(spec: ScheduleLike, depth: int = 12) -> tuple[float, ...]:
    """Turn any accepted schedule form into one keep rate per block.

    Accepted forms, for a model with ``depth`` blocks:

    * a tuple or list of ``depth`` rates, e.g. ``LAB_SCHEDULE``;
    * a base rate and 1-based pruning blocks, e.g. ``(0.7, (4, 7, 10))``;
    * a single number: ``1`` turns pruning off, any other rate prunes at the lab's
      blocks 4, 7 and 10 (12-block models only);
    * a string: ``"0.7@4,7,10"``, ``"lab"``, a single number, or ``depth``
      comma-separated numbers;
    * a NumPy array or torch tensor, read as the number or list its ``tolist()`` returns.

    A block listed twice, as in ``"0.7@4,4"``, prunes once.

    Every rate must lie in (0, 1]. Raises :class:`~lab6.i18n.ScheduleError` with a
    bilingual message naming the problem otherwise.
    """
    if isinstance(spec, str):
        return _parse_string(spec, depth)
    if not isinstance(spec, (bytes, bytearray)) and callable(getattr(spec, "tolist", None)):
        spec = spec.tolist()  # a NumPy array or torch tensor: a plain number or (nested) list
    if isinstance(spec, numbers.Real) and not isinstance(spec, bool):
        return _parse_number_everywhere(spec, depth)
    if isinstance(spec, (tuple, list)):
        if not spec:
            raise ScheduleError("schedule.empty")
        if len(spec) == 2 and isinstance(spec[1], (tuple, list, range)):
            return _at_blocks(spec[0], spec[1], depth)
        # Check the length first: a wrong count, such as (0.7, 4), is the likelier mistake
        # than a bad value, and "4 is outside (0, 1]" would hide it.
        if len(spec) != depth:
            raise ScheduleError("schedule.wrong_length", got=len(spec), depth=depth)
        return tuple(_rate(r) for r in spec)
    raise ScheduleError("schedule.bad_type", kind=type(spec).__name__, depth=depth)


def pruning_blocks(schedule: Sequence[float]) -> list[int]:
    """Return the 0-based indices of the blocks whose keep rate is below 1."""
    return [i for i, rate in enumerate(schedule) if rate < 1]


def num_kept(keep_rate: float, num_tokens: int) -> int:
    """Return how many image tokens a pruning block keeps: ``ceil(keep_rate * (num_tokens - 1))``.

    ``num_tokens`` counts the CLS token and any fused token already present, as in EViT.
    The rate is read as the decimal it prints as (``repr``), so the product is exact:
    ``0.55 * 100`` is 55.000000000000007 in floating point, whose ceil would be 56,
    while ``num_kept(0.55, 101)`` is 55.
    """
    candidates = num_tokens - 1
    exact = Fraction(repr(float(keep_rate))) * candidates
    return max(1, min(candidates, math.ceil(exact)))


def token_counts(schedule: Sequence[float], num_patches: int = 196, fuse: bool = True) -> list[int]:
    """Return the token count (CLS and fused token included) after every block.

    With the lab's schedule on 196 patches this gives 140, 100 and 72 tokens after blocks
    4, 7 and 10 with fusion, and 139, 98 and 69 without.
    """
    tokens = num_patches + 1
    counts = []
    for rate in schedule:
        kept = num_kept(rate, tokens)
        if kept < tokens - 1:  # a block that would keep every token leaves the sequence alone
            tokens = 1 + kept + (1 if fuse else 0)
        counts.append(tokens)
    return counts


def format_schedule(schedule: Sequence[float]) -> str:
    """Format a schedule compactly, e.g. ``"0.7@4,7,10"``, falling back to the full list."""
    blocks = pruning_blocks(schedule)
    rates = {schedule[i] for i in blocks}
    if not blocks:
        return "1"  # every rate 1: nothing is pruned
    if len(rates) == 1:
        return f"{rates.pop():g}@" + ",".join(str(i + 1) for i in blocks)
    return ",".join(f"{r:g}" for r in schedule)
