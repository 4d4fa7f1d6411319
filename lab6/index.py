"""Index math that maps pruning-block indices back to the original patch grid.

Every function here is pure: tensors in, new tensors out, arguments never modified.

Patches are numbered row-major: on a 14 x 14 grid, patch p sits at row ``p // 14`` and
column ``p % 14``. A pruning block's kept indices are positions among the non-CLS tokens
*it received*, so from the second pruning block on they point into the previous block's
output, not into the patch grid.
"""

from __future__ import annotations

from typing import Sequence

import torch

from lab6.i18n import Lab6Error

__all__ = ["FUSED", "DROPPED", "get_real_idx", "patch_owner", "kept_patch_mask", "fused_patch_mask"]

FUSED = -1
"""Value :func:`get_real_idx` gives a kept token that is a fused token, not one patch."""

DROPPED = -1
"""Value :func:`patch_owner` gives a patch whose token was dropped without fusion."""


def _is_index_dtype(dtype: torch.dtype) -> bool:
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


def _check_idx(idx: object, width: int, step: int, batch: int | None = None) -> None:
    """Raise :class:`Lab6Error` unless ``idx`` is an integer [B, K] tensor of positions below ``width``.

    ``batch``, when given, is the batch size of the earlier blocks' indices, which ``idx`` must share.
    """
    if not isinstance(idx, torch.Tensor):
        raise Lab6Error("index.not_tensor", step=step + 1, kind=type(idx).__name__)
    if idx.dim() != 2 or not _is_index_dtype(idx.dtype):
        raise Lab6Error("index.bad_shape", step=step + 1, shape=tuple(idx.shape), dtype=str(idx.dtype))
    if batch is not None and idx.shape[0] != batch:
        raise Lab6Error("index.batch_mismatch", step=step + 1, got=idx.shape[0], batch=batch)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= width):
        raise Lab6Error("index.out_of_range", step=step + 1, low=int(idx.min()), high=int(idx.max()), width=width)


def get_real_idx(idxs: Sequence[torch.Tensor], fuse: bool, num_patches: int | None = None) -> list[torch.Tensor]:
    """Map each pruning block's kept indices to original patch positions.

    Args:
        idxs: per pruning block, in order, the kept positions [B, K_i] among that block's
            input non-CLS tokens (``PruneRecord.kept_idx``).
        fuse: whether the blocks appended a fused token. Then a block's input has
            ``K_{i-1} + 1`` non-CLS tokens, and position ``K_{i-1}`` is the fused token.
        num_patches: the patch count, for checking the first block's indices; optional.

    Returns:
        A new list of [B, K_i] long tensors. Entry ``p >= 0`` is the patch at row ``p // 14``,
        column ``p % 14`` (on DeiT-S's grid). Entry :data:`FUSED` marks a kept token that is
        a fused token and so stands for several patches; it is never mapped to a real patch.
        The first block's indices come back unchanged (as a copy).
    """
    real: list[torch.Tensor] = []
    for step, idx in enumerate(idxs):
        if step == 0:
            if num_patches is None:
                _check_idx(idx, width=torch.iinfo(torch.int64).max, step=step)
            else:
                _check_idx(idx, num_patches, step)
            real.append(idx.long().clone())  # [B, K_0]
            continue
        previous = real[-1]  # [B, K_{i-1}]
        if fuse:
            fused_slot = torch.full_like(previous[:, :1], FUSED)  # [B, 1]
            previous = torch.cat([previous, fused_slot], dim=1)  # [B, K_{i-1} + 1]
        _check_idx(idx, previous.shape[1], step, batch=previous.shape[0])
        # Indices of later blocks may sit on another device; the result follows the first block's.
        real.append(previous.gather(1, idx.to(previous.device).long()))  # [B, K_i]
    return real


def patch_owner(idxs: Sequence[torch.Tensor], fuse: bool, num_patches: int) -> list[torch.Tensor]:
    """Return, after each pruning block, which token carries each patch.

    Args:
        idxs: as for :func:`get_real_idx`.
        fuse: as for :func:`get_real_idx`.
        num_patches: the number of patches P (196 for a 224 x 224 image with patch 16).

    Returns:
        A list of [B, P] long tensors. Entry ``t >= 0`` means patch p lives in the block's
        output token at non-CLS position t; with fusion, the last position is the new fused
        token. :data:`DROPPED` marks a patch whose token was discarded (fusion off).
    """
    if not idxs:
        return []
    _check_idx(idxs[0], num_patches, 0)
    batch = idxs[0].shape[0]
    device = idxs[0].device
    owner = torch.arange(num_patches, device=device).expand(batch, num_patches)  # [B, P]
    width = num_patches
    owners = []
    for step, idx in enumerate(idxs):
        _check_idx(idx, width, step, batch=batch)
        idx = idx.to(device)
        kept = idx.shape[1]
        # new_position[b, j]: where input token j goes; kept tokens keep their rank in idx.
        fill = kept if fuse else DROPPED
        new_position = torch.full((batch, width), fill, dtype=torch.long, device=device)  # [B, width]
        ranks = torch.arange(kept, device=device).expand(batch, kept)  # [B, K]
        new_position = new_position.scatter(1, idx.long(), ranks)
        safe_owner = owner.clamp(min=0)  # DROPPED rows are restored just below
        owner = torch.where(owner >= 0, new_position.gather(1, safe_owner), DROPPED)  # [B, P]
        owners.append(owner)
        width = kept + (1 if fuse else 0)
    return owners


def kept_patch_mask(real_idx: torch.Tensor, num_patches: int) -> torch.Tensor:
    """Return a [B, P] bool mask of patches still carried as their own token.

    ``real_idx`` is one entry of :func:`get_real_idx`'s result; :data:`FUSED` entries are skipped.
    """
    batch = real_idx.shape[0]
    mask = torch.zeros(batch, num_patches + 1, dtype=torch.bool, device=real_idx.device)  # [B, P + 1]
    slot = torch.where(real_idx >= 0, real_idx, num_patches)  # FUSED goes to the spare column
    mask = mask.scatter(1, slot, True)
    return mask[:, :num_patches]  # [B, P]


def fused_patch_mask(owner: torch.Tensor, real_idx: torch.Tensor, num_patches: int) -> torch.Tensor:
    """Return a [B, P] bool mask of patches that live inside a fused token.

    A patch is inside a fused token when some token still carries it (``owner >= 0``) but
    not as its own token.
    """
    return (owner >= 0) & ~kept_patch_mask(real_idx, num_patches)
