"""The graded items of the workbook and their points: the table the autograder reads.

Each exercise has a public item, checked by the check cell the student sees, and a hidden
item, checked only when grading (:mod:`lab6.checks.hidden`). Report questions are graded
by hand. The points add up to 100.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

__all__ = ["Item", "ITEMS", "ITEMS_BY_ID", "NOTEBOOKS", "TOTAL_POINTS", "items_for_notebook", "exercise_points"]

Kind = Literal["public", "hidden", "report"]


@dataclass(frozen=True)
class Item:
    """One graded item."""

    id: str
    """Unique id; a public item's id is also the ``<item>`` in its cells' tags."""
    kind: Kind
    points: int
    notebook: str
    """Notebook stem, e.g. ``"01_patch_embedding"``, the same in ``solutions/`` and ``notebooks/``."""
    title_zh: str
    title_en: str
    exercise: str
    """Id of the exercise: the ``<item>`` of its ``lab6:answer:<item>`` cell, or ``q1``..``q4``."""
    function: Optional[str]
    """Name of the student's function that the checks call; None for report questions."""


NOTEBOOKS = (
    "01_patch_embedding",
    "02_attentive_tokens",
    "03_pruning_schedule",
    "04_get_real_idx",
    "05_visualization",
)

# (exercise, notebook, function, zh-TW title, English title, public points, hidden points)
_EXERCISES = (
    ("patchify", NOTEBOOKS[0], "patchify", "把影像切成 patch", "Cut an image into patches", 7, 3),
    ("patch_embed", NOTEBOOKS[0], "patch_embed_as_linear", "卷積等於 unfold 加線性層", "Convolution as unfold plus linear", 4, 1),
    ("add_cls_pos", NOTEBOOKS[0], "add_cls_and_pos", "CLS token 與位置嵌入", "CLS token and position embeddings", 4, 1),
    ("cls_attention", NOTEBOOKS[1], "cls_attention", "CLS attention（對 head 平均）", "Head-averaged CLS attention", 7, 3),
    ("num_keep", NOTEBOOKS[1], "num_keep", "要保留幾個 token", "How many tokens to keep", 3, 2),
    ("topk_select", NOTEBOOKS[1], "topk_select", "選出 attentive tokens", "Select the attentive tokens", 7, 3),
    ("fuse", NOTEBOOKS[1], "fuse_tokens", "融合 inattentive tokens", "Fuse the inattentive tokens", 7, 3),
    ("token_counts", NOTEBOOKS[2], "token_counts", "每個 block 後的 token 數", "Token count after every block", 7, 3),
    ("get_real_idx", NOTEBOOKS[3], "get_real_idx", "實作 get_real_idx", "Implement get_real_idx", 10, 5),
)

_REPORTS = (
    ("q1", NOTEBOOKS[3], "報告問題 1：get_real_idx 的作用", "Report question 1: what get_real_idx does", 5),
    ("q2", NOTEBOOKS[2], "報告問題 2：每層的 token 數與計算量", "Report question 2: tokens and compute per layer", 5),
    ("q3", NOTEBOOKS[3], "報告問題 3：沒有 get_real_idx 的圖", "Report question 3: the picture without get_real_idx", 5),
    ("q4", NOTEBOOKS[4], "報告問題 4：視覺化分析", "Report question 4: analysing the visualization", 5),
)


def _build() -> tuple[Item, ...]:
    items = []
    for exercise, notebook, function, zh, en, public, hidden in _EXERCISES:
        items.append(Item(exercise, "public", public, notebook, zh, en, exercise, function))
        items.append(Item(f"{exercise}.hidden", "hidden", hidden, notebook, f"{zh}（隱藏檢查）", f"{en} (hidden checks)", exercise, function))
    for question, notebook, zh, en, points in _REPORTS:
        items.append(Item(question, "report", points, notebook, zh, en, question, None))
    return tuple(items)


ITEMS: tuple[Item, ...] = _build()
ITEMS_BY_ID: dict[str, Item] = {item.id: item for item in ITEMS}
TOTAL_POINTS: int = sum(item.points for item in ITEMS)


def items_for_notebook(notebook: str) -> list[Item]:
    """Return the items graded in one notebook (by stem), in table order."""
    return [item for item in ITEMS if item.notebook == notebook]


def exercise_points(exercise: str) -> int:
    """Return all points of an exercise or report question, public and hidden together."""
    return sum(item.points for item in ITEMS if item.exercise == exercise)
