"""Sweep the keep rate: accuracy, agreement with the unpruned model, GFLOPs and retention.

:func:`sweep_keep_rates` runs one schedule per rate, pruning at the same blocks (the lab's
4, 7 and 10 by default), on a list of scenes with object masks. :func:`plot_tradeoff` and
:func:`plot_retention` draw the results. Retention and recall follow the definitions of
:mod:`lab6.metrics` and reuse its functions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch
from timm.models.vision_transformer import VisionTransformer

from lab6.evit import EViTOutput
from lab6.flops import count_flops, temporary_keep_rate
from lab6.i18n import tr
from lab6.index import get_real_idx
from lab6.metrics import block_stats, scenes_to_tensor
from lab6.scenes import NUM_PATCHES, Scene, object_patches
from lab6.schedule import LAB_BLOCKS

__all__ = ["SweepResult", "sweep_keep_rates", "plot_tradeoff", "plot_retention", "LAB_RATE", "DEFAULT_RATES"]

LAB_RATE = 0.7
"""The lab's keep rate, marked in the plots and always part of a sweep."""

# Counts only, without tqdm's elapsed time and rate, so the bar looks the same on every run.
PROGRESS_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}"

DEFAULT_RATES: tuple[float, ...] = tuple(round(float(r), 4) for r in np.linspace(0.4, 1.0, 13))
"""0.40, 0.45, ..., 1.00."""


@dataclass(frozen=True)
class SweepResult:
    """One row per keep rate; per-block fields have one entry per block in ``blocks``."""

    rates: tuple[float, ...]
    blocks: tuple[int, ...]
    """1-based blocks whose keep rate the sweep sets."""
    fuse: bool
    num_scenes: int
    gflops: tuple[float, ...]
    """GFLOPs per image, measured with ``FlopCounterMode`` (a multiply-add counts as 2)."""
    gflops_unpruned: float
    accuracy: tuple[float, ...]
    """Top-1 accuracy, in [0, 1]."""
    agreement: tuple[float, ...]
    """Share of scenes whose top-1 class equals the unpruned model's, in [0, 1]."""
    accuracy_unpruned: float
    token_counts: tuple[tuple[int, ...], ...]
    """Tokens after every block (CLS and fused token included), per rate."""
    foreground_retention: tuple[tuple[float, ...], ...]
    """[rate][block] share of kept patches that are object."""
    object_recall: tuple[tuple[float, ...], ...]
    """[rate][block] share of object patches still kept as their own token."""
    random_recall: tuple[tuple[float, ...], ...]
    """[rate][block] recall that uniformly random selection would give."""
    object_share: float
    """Mean share of the 196 patches that are object."""
    seconds: float = field(default=0.0, compare=False)
    """Wall time of the sweep."""

    def rows(self) -> list[dict[str, object]]:
        """Return the table as one dict per keep rate."""
        table = []
        for i, rate in enumerate(self.rates):
            row: dict[str, object] = {
                "keep_rate": rate,
                "gflops": self.gflops[i],
                "gflops_ratio": self.gflops[i] / self.gflops_unpruned,
                "accuracy": self.accuracy[i],
                "agreement": self.agreement[i],
                "tokens_out": self.token_counts[i][-1],
            }
            for j, block in enumerate(self.blocks):
                row[f"retention_b{block}"] = self.foreground_retention[i][j]
                row[f"recall_b{block}"] = self.object_recall[i][j]
            table.append(row)
        return table

    def format_table(self) -> str:
        """Format the table as plain text, one line per keep rate.

        The summary and legend lines follow the user's language; the columns are ASCII.
        """
        header = f"{'rate':>5} {'GFLOPs':>7} {'ratio':>6} {'acc':>6} {'agree':>6}"
        header += "".join(f" {'ret@' + str(b):>7} {'rec@' + str(b):>7}" for b in self.blocks)
        summary = tr(
            "sweep.summary",
            scenes=self.num_scenes,
            fusion=tr("metrics.fusion_on" if self.fuse else "metrics.fusion_off"),
            share=self.object_share,
            gflops=self.gflops_unpruned,
            accuracy=self.accuracy_unpruned,
        )
        lines = [summary, tr("sweep.legend"), header]
        for row in self.rows():
            line = (
                f"{row['keep_rate']:5.2f} {row['gflops']:7.3f} {row['gflops_ratio']:6.1%} "
                f"{row['accuracy']:6.1%} {row['agreement']:6.1%}"
            )
            for block in self.blocks:
                line += f" {row[f'retention_b{block}']:7.1%} {row[f'recall_b{block}']:7.1%}"
            lines.append(line)
        return "\n".join(lines)


def _per_block_real_idx(out: EViTOutput, blocks: Sequence[int], fuse: bool, batch: int) -> list[torch.Tensor]:
    """Return, for each 1-based block, the patch ids still carried as own tokens after it.

    A block that did not prune (its rate keeps every token) leaves the previous state as it
    was. Before the first pruning block, every patch is kept.
    """
    real = get_real_idx(out.kept_idx, fuse, NUM_PATCHES)
    after = {record.block: idx for record, idx in zip(out.records, real)}
    current = torch.arange(NUM_PATCHES).expand(batch, NUM_PATCHES)  # [B, P]
    chosen = []
    for block in range(max(blocks)):
        current = after.get(block, current)
        if block + 1 in blocks:
            chosen.append(current)
    return chosen


def _random_recall(out: EViTOutput, blocks: Sequence[int]) -> tuple[float, ...]:
    survive = 1.0
    by_block = {}
    for record in out.records:
        survive *= record.kept_idx.shape[1] / (record.tokens_in - 1)
        by_block[record.block] = survive
    result = []
    current = 1.0
    for block in range(max(blocks)):
        current = by_block.get(block, current)
        if block + 1 in blocks:
            result.append(current)
    return tuple(result)


@torch.no_grad()
def sweep_keep_rates(
    model: VisionTransformer,
    scenes: Sequence[Scene],
    rates: Sequence[float] = DEFAULT_RATES,
    fuse: bool = True,
    blocks: Sequence[int] = LAB_BLOCKS,
    batch_size: int = 32,
    progress: bool = True,
) -> SweepResult:
    """Evaluate one schedule per keep rate, pruning at ``blocks``, on scenes with object masks.

    Args:
        model: a timm ViT (EViT or not); its schedule and mode are restored afterwards.
        scenes: scenes with labels and masks, e.g. :func:`lab6.scenes.load_heldout`.
        rates: keep rates in (0, 1]; :data:`LAB_RATE` is added when missing, and the rates
            are sorted.
        fuse: whether pruning blocks fuse the dropped tokens.
        blocks: 1-based pruning blocks.
        batch_size: scenes per forward pass.
        progress: show a ``tqdm.auto`` progress bar over the rates.
    """
    from tqdm.auto import tqdm

    if not scenes:
        raise ValueError("sweep_keep_rates needs at least one scene")
    if not blocks:
        raise ValueError("sweep_keep_rates needs at least one pruning block")
    blocks = tuple(sorted(int(b) for b in blocks))
    rates = tuple(sorted({round(float(r), 4) for r in rates} | {LAB_RATE}))
    device = next(model.parameters()).device
    depth = len(model.blocks)
    started = time.perf_counter()

    batches = []
    for start in range(0, len(scenes), batch_size):
        chunk = scenes[start : start + batch_size]
        x = scenes_to_tensor(chunk, model).to(device)  # [B, 3, 224, 224]
        labels = torch.tensor([s.label for s in chunk], device=device)
        is_object = torch.from_numpy(object_patches(np.stack([s.mask for s in chunk])))  # [B, 196]
        batches.append((x, labels, is_object))

    was_training = model.training
    model.eval()
    try:
        with temporary_keep_rate(model, 1.0, fuse=fuse):
            reference = [model.forward_evit(x).logits.argmax(dim=1) for x, _, _ in batches]
            gflops_unpruned = count_flops(model) / 1e9
        correct_unpruned = sum(int((pred == labels).sum()) for pred, (_, labels, _) in zip(reference, batches))

        rows = []
        for rate in tqdm(rates, desc="keep rate", bar_format=PROGRESS_FORMAT, disable=not progress):
            schedule = tuple(rate if i + 1 in blocks else 1.0 for i in range(depth))
            with temporary_keep_rate(model, schedule, fuse=fuse):
                correct = agree = 0
                retention, recall = [], []
                counts: tuple[int, ...] = ()
                random_recall: tuple[float, ...] = ()
                for (x, labels, is_object), ref in zip(batches, reference):
                    out = model.forward_evit(x)
                    pred = out.logits.argmax(dim=1)
                    correct += int((pred == labels).sum())
                    agree += int((pred == ref).sum())
                    stats = block_stats([i.cpu() for i in _per_block_real_idx(out, blocks, fuse, x.shape[0])], is_object)
                    retention.append(torch.stack([s.retention for s in stats], dim=1))  # [B, blocks]
                    recall.append(torch.stack([s.recall for s in stats], dim=1))  # [B, blocks]
                    counts = out.token_counts
                    random_recall = _random_recall(out, blocks)
                flops = count_flops(model) / 1e9
            rows.append(
                {
                    "gflops": flops,
                    "correct": correct,
                    "agree": agree,
                    "counts": tuple(counts),
                    "retention": tuple(float(v) for v in torch.cat(retention).nanmean(dim=0)),
                    "recall": tuple(float(v) for v in torch.cat(recall).nanmean(dim=0)),
                    "random_recall": random_recall,
                }
            )
    finally:
        model.train(was_training)

    shares = torch.cat([is_object.float().mean(dim=1) for _, _, is_object in batches])
    count = len(scenes)
    return SweepResult(
        rates=rates,
        blocks=blocks,
        fuse=fuse,
        num_scenes=count,
        gflops=tuple(row["gflops"] for row in rows),
        gflops_unpruned=gflops_unpruned,
        accuracy=tuple(row["correct"] / count for row in rows),
        agreement=tuple(row["agree"] / count for row in rows),
        accuracy_unpruned=correct_unpruned / count,
        token_counts=tuple(row["counts"] for row in rows),
        foreground_retention=tuple(row["retention"] for row in rows),
        object_recall=tuple(row["recall"] for row in rows),
        random_recall=tuple(row["random_recall"] for row in rows),
        object_share=float(shares.mean()),
        seconds=time.perf_counter() - started,
    )


def _lab_index(result: SweepResult) -> Optional[int]:
    return result.rates.index(LAB_RATE) if LAB_RATE in result.rates else None


def plot_tradeoff(result: SweepResult):
    """Plot accuracy and agreement with the unpruned model against GFLOPs; return the Figure.

    Each point is one keep rate; the lab's rate is marked with a star.
    """
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    lab = _lab_index(result)
    series = (("accuracy", result.accuracy, "top-1 accuracy (%)"), ("agreement", result.agreement, "agreement with unpruned (%)"))
    for ax, (name, values, label) in zip(axes, series):
        percent = [100 * v for v in values]
        ax.plot(result.gflops, percent, "o-", color="tab:blue", label=f"keep rate at blocks {','.join(map(str, result.blocks))}")
        for rate, x, y in zip(result.rates, result.gflops, percent):
            ax.annotate(f"{rate:g}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
        if lab is not None:
            ax.plot(result.gflops[lab], percent[lab], marker="*", markersize=16, color="tab:red", linestyle="none", label=f"lab: {LAB_RATE:g}")
        ax.axvline(result.gflops_unpruned, color="gray", linestyle="--", linewidth=1, label="unpruned")
        ax.set_xlabel("GFLOPs per image")
        ax.set_ylabel(label)
        ax.set_title(f"GFLOPs vs {name} (fusion {'on' if result.fuse else 'off'})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    return figure


def plot_retention(result: SweepResult):
    """Plot foreground retention and object recall per pruning block against keep rate; return the Figure."""
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(result.blocks)))
    for j, (block, color) in enumerate(zip(result.blocks, colors)):
        left.plot(result.rates, [100 * r[j] for r in result.foreground_retention], "o-", color=color, label=f"after block {block}")
        right.plot(result.rates, [100 * r[j] for r in result.object_recall], "o-", color=color, label=f"after block {block}")
        right.plot(result.rates, [100 * r[j] for r in result.random_recall], ":", color=color, label=f"random, block {block}")
    left.axhline(100 * result.object_share, color="gray", linestyle="--", label="object share (blind selection)")
    left.set_ylabel("foreground retention (%)")
    left.set_title("kept patches that lie on the object")
    right.set_ylabel("object recall (%)")
    right.set_title("object patches still kept")
    for ax in (left, right):
        ax.axvline(LAB_RATE, color="tab:red", linewidth=1, alpha=0.6, label=f"lab: {LAB_RATE:g}")
        ax.set_xlabel("keep rate")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return figure
