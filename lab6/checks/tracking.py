"""Check for notebook 4: the student's ``get_real_idx``.

The expected answer comes from a tracker written with plain Python lists: it follows the
patch id (or the fused token) held by every token through each block's kept indices.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from lab6.checks.base import CheckFailed, announce_pass, call_student, expect_shape, expect_tensor, fmt
from lab6.index import FUSED

__all__ = ["check_get_real_idx", "verify_get_real_idx", "track_patch_ids"]


def track_patch_ids(idxs: Sequence[torch.Tensor], fuse: bool, num_patches: int) -> list[list[list[int]]]:
    """Follow patch ids through the blocks: result[step][sample] lists the kept tokens' patches."""
    batch = idxs[0].shape[0]
    result: list[list[list[int]]] = [[] for _ in idxs]
    for b in range(batch):
        carried = list(range(num_patches))  # patch id (or FUSED) of each non-CLS token
        for step, idx in enumerate(idxs):
            if step > 0 and fuse:
                carried = carried + [FUSED]  # the previous block appended its fused token
            carried = [carried[j] for j in idx[b].tolist()]
            result[step].append(carried)
    return result


def verify_get_real_idx(
    fn: Callable, idxs: Sequence[torch.Tensor], fuse: bool, num_patches: int, item: str = "get_real_idx"
) -> None:
    """Raise unless ``fn(idxs, fuse)`` maps every kept token to its patch, or FUSED for a fused token."""
    argument = list(idxs)
    saved = [t.clone() for t in argument]
    got = call_student(item, fn, argument, fuse)
    if any(a is not b for a, b in zip(argument, idxs)) or len(argument) != len(idxs):
        raise CheckFailed(item, "checks.real_idx.list_mutated")
    for step, (before, after) in enumerate(zip(saved, argument)):
        if not torch.equal(before, after):
            raise CheckFailed(item, "checks.real_idx.mutated", step=step + 1)
    if not isinstance(got, (list, tuple)):
        raise CheckFailed(item, "checks.real_idx.not_list", kind=type(got).__name__, expected=len(idxs))
    if len(got) != len(idxs):
        raise CheckFailed(item, "checks.real_idx.length", got=len(got), expected=len(idxs))

    expected = track_patch_ids(idxs, fuse, num_patches)
    for step, (mine, idx) in enumerate(zip(got, idxs)):
        what = f"get_real_idx(...)[{step}]"
        mine = expect_shape(item, expect_tensor(item, mine, what), tuple(idx.shape), what, "[B, K_i]")
        if mine.dtype.is_floating_point or mine.dtype == torch.bool:
            raise CheckFailed(item, "checks.real_idx.dtype", step=step + 1, dtype=str(mine.dtype))
        want = torch.tensor(expected[step], dtype=torch.long)  # [B, K_i]
        mine = mine.long()
        if torch.equal(mine, want):
            continue
        # Earlier steps matched, so the student's previous result equals expected[step - 1].
        previous = torch.tensor(expected[step - 1], dtype=torch.long) if step else None  # [B, K_{i-1}]
        _diagnose_step(item, step, mine, want, idx.long(), idxs, previous, fuse, num_patches)


def _lookup(table: torch.Tensor, idx: torch.Tensor, fuse: bool) -> torch.Tensor:
    """Return ``table[b, idx[b, j]]`` per sample, after appending the fused slot when ``fuse``.

    Indices wrap around like Python's negative indices, so ``idx - 1`` on position 0 reads the last slot.
    """
    if fuse:
        table = torch.cat([table, torch.full_like(table[:, :1], FUSED)], dim=1)  # [B, K_{i-1} + 1]
    return table.gather(1, idx % table.shape[1])  # [B, K_i]


def _diagnose_step(
    item: str,
    step: int,
    mine: torch.Tensor,
    want: torch.Tensor,
    idx: torch.Tensor,
    idxs: Sequence[torch.Tensor],
    previous: torch.Tensor | None,
    fuse: bool,
    num_patches: int,
) -> None:
    """Raise the :class:`CheckFailed` that names the student's mistake at one pruning block (0-based ``step``).

    Whole-block patterns (mixed samples, shifted lookups, chaining through raw indices) come
    before the per-entry diagnosis, so those bugs are not reported as a fused-token problem.
    """
    block = step + 1
    batch = mine.shape[0]
    if batch > 1 and bool((mine == mine[:1]).all()) and not bool((want == want[:1]).all()):
        raise CheckFailed(item, "checks.real_idx.samples_mixed", step=block)
    if step == 0:
        if torch.equal(mine, idx - 1) or torch.equal(mine, idx + 1):
            raise CheckFailed(item, "checks.real_idx.off_by_one", step=block)
        raise CheckFailed(item, "checks.real_idx.first_changed")
    if int(mine.min()) < FUSED or int(mine.max()) >= num_patches:
        raise CheckFailed(item, "checks.real_idx.range", step=block, low=int(mine.min()), high=int(mine.max()), patches=num_patches)
    if torch.equal(mine, idx):
        raise CheckFailed(item, "checks.real_idx.no_shift", step=block)
    if torch.equal(mine, _lookup(idxs[step - 1].long(), idx, fuse)):
        raise CheckFailed(item, "checks.real_idx.raw_previous", step=block)
    for shift in (-1, 1):
        if torch.equal(mine, _lookup(previous, idx + shift, fuse)):
            raise CheckFailed(item, "checks.real_idx.off_by_one", step=block)

    wrong = mine != want  # [B, K_i]
    fused_as_patch = wrong & (want == FUSED)
    if bool(fused_as_patch.any()) and torch.equal(wrong, fused_as_patch):
        # Every real patch is right and only fused tokens are wrong: the fused slot got a patch id.
        b, j = (int(v) for v in fused_as_patch.nonzero()[0])
        raise CheckFailed(item, "checks.real_idx.fused_to_patch", step=block, sample=b, position=j, value=int(mine[b, j]))
    patch_as_fused = wrong & (mine == FUSED)
    if torch.equal(wrong, patch_as_fused):
        b, j = (int(v) for v in patch_as_fused.nonzero()[0])
        raise CheckFailed(item, "checks.real_idx.patch_to_fused", step=block, sample=b, position=j)
    b, j = (int(v) for v in wrong.nonzero()[0])
    raise CheckFailed(
        item, "checks.real_idx.mismatch", step=block, sample=b, position=j, value=int(mine[b, j]), row=fmt(mine[b])
    )


def check_get_real_idx(fn: Callable) -> None:
    """Public check of ``get_real_idx(idxs, fuse)`` on 8 patches, with and without fusion."""
    item = "get_real_idx"
    with_fusion = [torch.tensor([[5, 2, 7, 0, 3]]), torch.tensor([[4, 5, 0, 2]]), torch.tensor([[3, 4, 1]])]
    verify_get_real_idx(fn, with_fusion, True, 8, item)
    without_fusion = [torch.tensor([[6, 1, 4, 3]]), torch.tensor([[2, 0]])]
    verify_get_real_idx(fn, without_fusion, False, 8, item)
    announce_pass(item)
