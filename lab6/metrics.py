"""Accuracy, foreground retention and object recall of EViT's kept tokens on procedural scenes.

Definitions, per pruning block and per image, averaged over images:

* A patch *is object* when at least 50% of its 16 x 16 pixels lie on the object's mask
  (:func:`lab6.scenes.object_patches`).
* *Kept patches* are the patches still carried as their own token after the block. A kept
  fused token stands for many patches and is not counted as any of them.
* *Foreground retention*: the share of kept patches that are object.
* *Object share*: the share of all 196 patches that are object. Selection that ignores the
  image keeps object patches at this share, so retention above it means the ranking favours
  the object.
* *Object recall*: the share of the object's patches that are kept.
* *Random recall*: the recall expected if every block kept the same number of tokens chosen
  uniformly at random, i.e. the product over blocks so far of kept / candidate tokens (a
  fused candidate token included).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from timm.data import resolve_data_config
from timm.models.vision_transformer import VisionTransformer

from lab6.evit import apply_evit, get_keep_rate, is_evit, set_keep_rate
from lab6.i18n import tr
from lab6.index import get_real_idx, kept_patch_mask
from lab6.scenes import NUM_PATCHES, Scene, object_patches
from lab6.schedule import ScheduleLike, format_schedule, parse_keep_rate

__all__ = ["SceneMetrics", "BlockStats", "scenes_to_tensor", "block_stats", "evaluate_scenes", "format_metrics"]


@dataclass(frozen=True)
class BlockStats:
    """Per-image statistics of one pruning block; each field is [B]."""

    kept: torch.Tensor
    """Number of patches kept as their own token."""
    retention: torch.Tensor
    """Share of kept patches that are object (0 when nothing is kept)."""
    recall: torch.Tensor
    """Share of object patches kept (NaN for an image without object patches)."""


@dataclass(frozen=True)
class SceneMetrics:
    """Accuracy and per-pruning-block statistics of one model, schedule and fusion setting."""

    schedule: tuple[float, ...]
    fuse: bool
    num_scenes: int
    accuracy: float
    """Top-1 accuracy on the scenes, in [0, 1]."""
    blocks: tuple[int, ...]
    """1-based pruning blocks, in order; the per-block tuples below follow it."""
    kept_patches: tuple[float, ...]
    """Mean number of patches kept as their own token."""
    foreground_retention: tuple[float, ...]
    object_recall: tuple[float, ...]
    random_recall: tuple[float, ...]
    object_share: float
    """Mean share of the 196 patches that are object; retention of a selection blind to the image."""


def scenes_to_tensor(scenes: Sequence[Scene], model: torch.nn.Module) -> torch.Tensor:
    """Stack scenes into a normalised float32 batch [B, 3, 224, 224] with the model's mean and std."""
    config = resolve_data_config(model=model)
    images = torch.from_numpy(np.stack([s.image for s in scenes]))  # [B, H, W, 3] uint8
    x = images.permute(0, 3, 1, 2).float() / 255.0  # [B, 3, H, W]
    mean = torch.tensor(config["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(config["std"]).view(1, 3, 1, 1)
    return (x - mean) / std


def block_stats(real_idx: Sequence[torch.Tensor], is_object: torch.Tensor) -> list[BlockStats]:
    """Compute retention and recall per pruning block from kept patch ids.

    Args:
        real_idx: per pruning block, [B, K_i] patch ids from :func:`lab6.index.get_real_idx`;
            :data:`lab6.index.FUSED` entries are ignored.
        is_object: [B, P] bool, which patches are object.
    """
    num_patches = is_object.shape[1]
    object_count = is_object.sum(dim=1).float()  # [B]
    stats = []
    for idx in real_idx:
        kept = kept_patch_mask(idx, num_patches)  # [B, P]
        kept_count = kept.sum(dim=1).float()  # [B]
        kept_object = (kept & is_object).sum(dim=1).float()  # [B]
        retention = torch.where(kept_count > 0, kept_object / kept_count.clamp(min=1), torch.zeros_like(kept_count))
        recall = torch.where(object_count > 0, kept_object / object_count.clamp(min=1), torch.full_like(kept_count, float("nan")))
        stats.append(BlockStats(kept=kept_count, retention=retention, recall=recall))
    return stats


@torch.no_grad()
def evaluate_scenes(
    model: VisionTransformer,
    scenes: Sequence[Scene],
    keep_rate: ScheduleLike = "lab",
    fuse: bool = True,
    batch_size: int = 32,
    threshold: float = 0.5,
) -> SceneMetrics:
    """Run the model on the scenes with a keep-rate schedule and measure where kept tokens land.

    Applies EViT to ``model`` if needed, and then leaves it applied with keep rate 1. An EViT
    model gets its own schedule, fusion setting and train/eval mode back afterwards. ``threshold`` is the share of a patch's pixels
    that must lie on the object for it to count as object.
    """
    if not scenes:
        raise ValueError("evaluate_scenes needs at least one scene")
    was_training = model.training
    previous = get_keep_rate(model) if is_evit(model) else None
    previous_fuse = [getattr(b, "fuse", True) for b in model.blocks]
    if not is_evit(model):
        apply_evit(model, 1.0, fuse=fuse)
    schedule = set_keep_rate(model, parse_keep_rate(keep_rate, depth=len(model.blocks)), fuse=fuse)
    model.eval()

    correct = 0
    per_block: list[list[BlockStats]] = []
    random_recall: list[float] = []
    shares = []
    try:
        for start in range(0, len(scenes), batch_size):
            chunk = scenes[start : start + batch_size]
            x = scenes_to_tensor(chunk, model)
            labels = torch.tensor([s.label for s in chunk])
            out = model.forward_evit(x)
            correct += int((out.logits.argmax(dim=1) == labels).sum())

            masks = np.stack([s.mask for s in chunk])
            is_object = torch.from_numpy(object_patches(masks, threshold))  # [B, 196]
            shares.append(is_object.float().mean(dim=1))
            real = get_real_idx(out.kept_idx, fuse, NUM_PATCHES)
            per_block.append(block_stats(real, is_object))
            if not random_recall:
                survive = 1.0
                for record in out.records:
                    survive *= record.kept_idx.shape[1] / (record.tokens_in - 1)
                    random_recall.append(survive)
    finally:
        if previous is not None:
            set_keep_rate(model, previous)
        else:
            set_keep_rate(model, 1.0)
        for block, flag in zip(model.blocks, previous_fuse):
            block.fuse = flag
        model.train(was_training)

    def mean_over_batches(field: str, block: int) -> float:
        values = torch.cat([getattr(stats[block], field) for stats in per_block])
        return float(values.nanmean())

    count = len(per_block[0])
    return SceneMetrics(
        schedule=tuple(schedule),
        fuse=fuse,
        num_scenes=len(scenes),
        accuracy=correct / len(scenes),
        blocks=tuple(i + 1 for i, rate in enumerate(schedule) if rate < 1)[:count],
        kept_patches=tuple(mean_over_batches("kept", b) for b in range(count)),
        foreground_retention=tuple(mean_over_batches("retention", b) for b in range(count)),
        object_recall=tuple(mean_over_batches("recall", b) for b in range(count)),
        random_recall=tuple(random_recall),
        object_share=float(torch.cat(shares).mean()),
    )


def format_metrics(metrics: SceneMetrics) -> str:
    """Format metrics as a short plain-text table in the user's language (see :func:`lab6.i18n.language`)."""
    fusion = tr("metrics.fusion_on" if metrics.fuse else "metrics.fusion_off")
    lines = [
        tr(
            "metrics.summary",
            schedule=format_schedule(metrics.schedule),
            fusion=fusion,
            scenes=metrics.num_scenes,
            accuracy=metrics.accuracy,
            share=metrics.object_share,
        )
    ]
    for i, block in enumerate(metrics.blocks):
        lines.append(
            tr(
                "metrics.block",
                block=block,
                kept=metrics.kept_patches[i],
                retention=metrics.foreground_retention[i],
                recall=metrics.object_recall[i],
                random=metrics.random_recall[i],
            )
        )
    return "\n".join(lines)
