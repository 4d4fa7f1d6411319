"""Graded checks that the workbook's check cells call.

Each ``check_*`` function runs the student's function on small inputs whose answers can be
worked out by hand, prints one line when it passes, and raises :class:`CheckFailed` with a
message about the student's own values when it does not, so the cell fails under Jupyter,
nbval and the autograder alike. Messages follow ``LAB6_LANG`` (zh-TW by default).

The stronger hidden checks live in :mod:`lab6.checks.hidden`; the points in
:mod:`lab6.checks.items`.
"""

from lab6.checks.base import CheckFailed
from lab6.checks.counting import check_token_counts
from lab6.checks.embedding import check_add_cls_pos, check_patch_embed, check_patchify
from lab6.checks.hidden import run_hidden
from lab6.checks.items import ITEMS, ITEMS_BY_ID, TOTAL_POINTS
from lab6.checks.selection import check_cls_attention, check_fuse, check_num_keep, check_topk_select
from lab6.checks.tracking import check_get_real_idx

__all__ = [
    "CheckFailed",
    "check_patchify",
    "check_patch_embed",
    "check_add_cls_pos",
    "check_cls_attention",
    "check_num_keep",
    "check_topk_select",
    "check_fuse",
    "check_token_counts",
    "check_get_real_idx",
    "run_hidden",
    "ITEMS",
    "ITEMS_BY_ID",
    "TOTAL_POINTS",
]
