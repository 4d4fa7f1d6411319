"""Hidden checks: stronger cases that the student notebooks never show.

The autograder calls :func:`run_hidden` after the student's code, with the exercise id
(``"patchify"``, or the hidden item id ``"patchify.hidden"``) and the student's function.
These checks use other shapes, batches with B > 1 whose rows differ, and edge cases
(floating-point traps in the keep count, a fused token kept by a later block).

Keeping a private copy
----------------------
The cases below ship with the repository, so a student who reads ``lab6/`` can see them.
An instructor who wants cases the students cannot read writes a Python file outside the
repository that defines ``HIDDEN_CHECKS``: a dict from exercise id to a function that
takes the student's function and raises :class:`lab6.checks.CheckFailed` when it is wrong
(the ``verify_*`` functions in :mod:`lab6.checks` do the comparing). Then set::

    export LAB6_HIDDEN_CHECKS=/path/outside/the/repo/my_hidden_checks.py

before grading. Entries in that file replace the shipped entries with the same id; the
other exercises keep the shipped checks.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Callable

import torch

from lab6.checks.base import CheckFailed, announce
from lab6.checks.counting import verify_token_counts
from lab6.checks.embedding import verify_add_cls_pos, verify_patch_embed, verify_patchify
from lab6.checks.selection import small_attention, verify_cls_attention, verify_fuse, verify_num_keep, verify_topk_select
from lab6.checks.tracking import verify_get_real_idx
from lab6.i18n import Lab6Error, tr
from lab6.schedule import LAB_SCHEDULE

__all__ = ["HIDDEN_CHECKS", "ENV_VAR", "run_hidden", "hidden_checks"]

ENV_VAR = "LAB6_HIDDEN_CHECKS"


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _hidden_patchify(fn: Callable) -> None:
    item = "patchify.hidden"
    g = _generator(10)
    verify_patchify(fn, torch.randn(2, 3, 6, 8, generator=g), 2, item)  # 3 x 4 patches, not square
    verify_patchify(fn, torch.randn(2, 1, 12, 12, generator=g), 4, item)
    verify_patchify(fn, torch.rand(3, 3, 224, 224, generator=g), 16, item)


def _hidden_patch_embed(fn: Callable) -> None:
    item = "patch_embed.hidden"
    g = _generator(11)
    images = torch.randn(2, 3, 8, 12, generator=g)
    verify_patch_embed(fn, images, torch.randn(7, 3, 4, 4, generator=g), torch.randn(7, generator=g), item)
    images = torch.rand(3, 3, 224, 224, generator=g)
    weight = torch.randn(16, 3, 16, 16, generator=g) * 0.02
    verify_patch_embed(fn, images, weight, torch.randn(16, generator=g), item)


def _hidden_add_cls_pos(fn: Callable) -> None:
    item = "add_cls_pos.hidden"
    g = _generator(12)
    tokens = torch.randn(3, 196, 8, generator=g)
    verify_add_cls_pos(fn, tokens, torch.randn(1, 1, 8, generator=g), torch.randn(1, 197, 8, generator=g), item)


def _hidden_cls_attention(fn: Callable) -> None:
    item = "cls_attention.hidden"
    verify_cls_attention(fn, small_attention(3, 6, 197, seed=13).float(), item)
    verify_cls_attention(fn, small_attention(2, 1, 5, seed=14).float(), item)  # a single head


def _hidden_num_keep(fn: Callable) -> None:
    # 0.55 * 100, 0.9 * 70 and 0.7 * 10 all land just above an integer in floating point.
    cases = ((0.55, 101), (0.9, 71), (0.7, 11), (0.3, 11), (0.5, 2), (0.1, 5), (0.7, 72))
    verify_num_keep(fn, cases, "num_keep.hidden")


def _distinct_scores(batch: int, width: int, seed: int) -> torch.Tensor:
    g = _generator(seed)
    ranks = torch.stack([torch.randperm(width, generator=g) for _ in range(batch)])  # [B, width]
    return (ranks.float() + 1) / (width * (width + 1) / 2)  # distinct, each row sums to 1


def _hidden_topk_select(fn: Callable) -> None:
    item = "topk_select.hidden"
    scores = _distinct_scores(3, 196, seed=15)
    verify_topk_select(fn, scores, 0.7, item)
    verify_topk_select(fn, scores, 0.3, item)
    verify_topk_select(fn, _distinct_scores(1, 99, seed=16), 0.7, item)


def _hidden_fuse(fn: Callable) -> None:
    item = "fuse.hidden"
    g = _generator(17)
    tokens = torch.randn(3, 196, 8, generator=g)
    scores = _distinct_scores(3, 196, seed=18)
    kept = torch.stack([torch.randperm(196, generator=g)[:138] for _ in range(3)])  # unsorted, rows differ
    verify_fuse(fn, tokens, scores, kept, item)


def _hidden_token_counts(fn: Callable) -> None:
    item = "token_counts.hidden"
    short = (1, 0.6, 1, 0.6, 0.6, 1)
    cases = [
        (short, 64, True),
        (short, 64, False),
        ((1, 1, 1, 0.55) + (1, 1, 0.55) + (1, 1, 0.55) + (1, 1), 196, True),
        ((0.9,) * 12, 196, True),
        ((1.0,) * 12, 196, True),
        (LAB_SCHEDULE, 49, True),
    ]
    verify_token_counts(fn, cases, item)


def _random_kept(batch: int, widths: list[int], keeps: list[int], fuse: bool, seed: int) -> list[torch.Tensor]:
    """Random kept indices per block; with fusion, sample 1 always keeps the fused slot."""
    g = _generator(seed)
    idxs = []
    for step, (width, keep) in enumerate(zip(widths, keeps)):
        rows = []
        for b in range(batch):
            row = torch.randperm(width, generator=g)[:keep]
            if fuse and step > 0 and b == 1 and (row != width - 1).all():
                row[0] = width - 1  # the previous block's fused token is the last position
            rows.append(row)
        idxs.append(torch.stack(rows))
    return idxs


def _hidden_get_real_idx(fn: Callable) -> None:
    item = "get_real_idx.hidden"
    # The lab's schedule on 196 patches: widths 196, 139, 99 with fusion, 196, 138, 98 without.
    verify_get_real_idx(fn, _random_kept(3, [196, 139, 99], [138, 98, 70], True, seed=19), True, 196, item)
    verify_get_real_idx(fn, _random_kept(2, [196, 138, 98], [138, 98, 70], False, seed=20), False, 196, item)
    verify_get_real_idx(fn, _random_kept(3, [16, 9, 6, 4], [8, 5, 3, 2], True, seed=21), True, 16, item)


HIDDEN_CHECKS: dict[str, Callable[[Callable], None]] = {
    "patchify": _hidden_patchify,
    "patch_embed": _hidden_patch_embed,
    "add_cls_pos": _hidden_add_cls_pos,
    "cls_attention": _hidden_cls_attention,
    "num_keep": _hidden_num_keep,
    "topk_select": _hidden_topk_select,
    "fuse": _hidden_fuse,
    "token_counts": _hidden_token_counts,
    "get_real_idx": _hidden_get_real_idx,
}
"""The shipped hidden checks, by exercise id."""


def hidden_checks() -> dict[str, Callable[[Callable], None]]:
    """Return the hidden checks in force: the shipped ones, overridden by ``$LAB6_HIDDEN_CHECKS``."""
    checks = dict(HIDDEN_CHECKS)
    path_text = os.environ.get(ENV_VAR, "").strip()
    if not path_text:
        return checks
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise Lab6Error("checks.hidden_file_missing", path=str(path), var=ENV_VAR)
    spec = importlib.util.spec_from_file_location("lab6_private_hidden_checks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    overrides = getattr(module, "HIDDEN_CHECKS", None)
    if not isinstance(overrides, dict):
        raise Lab6Error("checks.hidden_file_invalid", path=str(path))
    checks.update(overrides)
    return checks


def run_hidden(item: str, fn: Callable) -> None:
    """Run the hidden checks of one exercise on the student's function ``fn``.

    ``item`` is the exercise id or its hidden item id (``"fuse"`` or ``"fuse.hidden"``).
    Prints one line when the checks pass and raises :class:`CheckFailed` when they do not.
    The message describes the student's result, never the hidden inputs' expected values.
    """
    exercise = item.removesuffix(".hidden")
    checks = hidden_checks()
    if exercise not in checks:
        raise Lab6Error("checks.unknown_item", item=item, known=", ".join(sorted(checks)))
    try:
        checks[exercise](fn)
    except CheckFailed as failure:
        if failure.item != f"{exercise}.hidden":  # a private check that reused a public item id
            raise CheckFailed(f"{exercise}.hidden", failure.key, **failure.values) from None
        raise
    announce(tr("checks.hidden_passed", item=f"{exercise}.hidden"))
