"""Checks for notebook 2: the CLS attention row, the keep count, top-k selection and fusion.

The inputs are small enough to work out by hand; expected values come from explicit
formulas written here, not from the solution notebook.
"""

from __future__ import annotations

import math
import numbers
from fractions import Fraction
from typing import Callable, Sequence

import torch

from lab6.checks.base import CheckFailed, announce_pass, call_student, expect_shape, expect_tensor, expect_unchanged, fmt

__all__ = [
    "check_cls_attention",
    "check_num_keep",
    "check_topk_select",
    "check_fuse",
    "verify_cls_attention",
    "verify_num_keep",
    "verify_topk_select",
    "verify_fuse",
    "exact_num_keep",
]

TOLERANCE = 1e-6


def exact_num_keep(keep_rate: float, num_tokens: int) -> int:
    """``ceil(keep_rate * (num_tokens - 1))``, with the rate read as the decimal it prints as."""
    return math.ceil(Fraction(repr(float(keep_rate))) * (num_tokens - 1))


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), atol=TOLERANCE, rtol=0))


# --- the CLS attention row ---------------------------------------------------------------


def verify_cls_attention(fn: Callable, attn: torch.Tensor, item: str = "cls_attention") -> None:
    """Raise unless ``fn(attn)`` is the CLS row over image tokens, averaged over heads: [B, N-1]."""
    batch, heads, tokens, _ = attn.shape
    original = attn.clone()
    got = call_student(item, fn, attn)
    expect_unchanged(item, original, attn, "attn")
    got = expect_tensor(item, got, "cls_attention")
    if tuple(got.shape) == (batch, tokens):
        raise CheckFailed(item, "checks.cls_attention.kept_cls", got=list(got.shape))
    if tuple(got.shape) == (batch, heads, tokens - 1):
        raise CheckFailed(item, "checks.cls_attention.no_head_mean", got=list(got.shape), heads=heads)
    got = expect_shape(item, got, (batch, tokens - 1), "cls_attention", "[B, N-1]")

    expected = attn[:, :, 0, 1:].mean(dim=1)  # [B, N-1]
    if _close(got, expected):
        return
    if _close(got, attn[:, :, 0, 1:].sum(dim=1)):
        raise CheckFailed(item, "checks.cls_attention.head_sum", heads=heads)
    for head in range(heads):
        if _close(got, attn[:, head, 0, 1:]):
            raise CheckFailed(item, "checks.cls_attention.one_head", head=head, heads=heads)
    if _close(got, attn[:, :, 1:, 0].mean(dim=1)):
        raise CheckFailed(item, "checks.cls_attention.column")
    if _close(got, expected / expected.sum(dim=1, keepdim=True)):
        raise CheckFailed(item, "checks.cls_attention.renormalized", total=f"{float(got[0].sum()):.3f}")
    wrong = ((got.double() - expected.double()).abs() > TOLERANCE).nonzero()[0]
    raise CheckFailed(
        item,
        "checks.cls_attention.mismatch",
        sample=int(wrong[0]),
        position=int(wrong[1]),
        got=f"{float(got[wrong[0], wrong[1]]):.4f}",
    )


def small_attention(batch: int, heads: int, tokens: int, seed: int) -> torch.Tensor:
    """Random row-stochastic attention [B, H, N, N] with distinct entries."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, heads, tokens, tokens, generator=generator, dtype=torch.float64).mul(2).softmax(dim=-1)


def check_cls_attention(fn: Callable) -> None:
    """Public check of ``cls_attention(attn)`` on B = 1, 2 heads, 4 tokens."""
    item = "cls_attention"
    attn = small_attention(1, 2, 4, seed=2).float()
    attn[0, 0, 0] = torch.tensor([0.1, 0.2, 0.3, 0.4])  # the CLS rows, easy to average by hand
    attn[0, 1, 0] = torch.tensor([0.1, 0.4, 0.4, 0.1])
    verify_cls_attention(fn, attn, item)
    announce_pass(item)


# --- the keep count ------------------------------------------------------------------------


def _floor_keep(keep_rate: float, tokens: int) -> int:
    return math.floor(Fraction(repr(float(keep_rate))) * (tokens - 1))


def _float_ceil_keep(keep_rate: float, tokens: int) -> int:
    return math.ceil(keep_rate * (tokens - 1))  # the float product can overshoot an exact integer


def _rounded_keep(keep_rate: float, tokens: int) -> int:
    return round(keep_rate * (tokens - 1))


def _cls_counted_keep(keep_rate: float, tokens: int) -> int:
    return math.ceil(Fraction(repr(float(keep_rate))) * tokens)


_NUM_KEEP_MISTAKES = (
    ("checks.num_keep.floor", _floor_keep),
    ("checks.num_keep.float_error", _float_ceil_keep),
    ("checks.num_keep.round", _rounded_keep),
    ("checks.num_keep.counted_cls", _cls_counted_keep),
)


def verify_num_keep(fn: Callable, cases: Sequence[tuple[float, int]], item: str = "num_keep") -> None:
    """Raise unless ``fn(keep_rate, num_tokens)`` gives the right int for every case.

    A wrong answer is named after the typical mistake that reproduces *every* case, so
    one case where two mistakes agree cannot mislabel it.
    """
    answers = []
    for keep_rate, tokens in cases:
        got = call_student(item, fn, keep_rate, tokens)
        if isinstance(got, bool) or not isinstance(got, numbers.Integral):
            raise CheckFailed(item, "checks.num_keep.not_int", got=fmt(got), kind=type(got).__name__)
        answers.append(int(got))
    wrong = [i for i, (case, got) in enumerate(zip(cases, answers)) if got != exact_num_keep(*case)]
    if not wrong:
        return
    for key, mistake in _NUM_KEEP_MISTAKES:
        if all(got == mistake(*case) for case, got in zip(cases, answers)):
            shown = next(i for i in wrong if answers[i] == mistake(*cases[i]))
            keep_rate, tokens = cases[shown]
            product = repr(keep_rate * (tokens - 1))
            raise CheckFailed(item, key, keep_rate=keep_rate, tokens=tokens, got=answers[shown], product=product)
    keep_rate, tokens = cases[wrong[0]]
    raise CheckFailed(item, "checks.num_keep.mismatch", keep_rate=keep_rate, tokens=tokens, got=answers[wrong[0]])


PUBLIC_NUM_KEEP_CASES = ((0.7, 197), (0.7, 140), (0.5, 11), (0.64, 11), (0.68, 11), (1.0, 197))


def check_num_keep(fn: Callable) -> None:
    """Public check of ``num_keep(keep_rate, num_tokens)``."""
    item = "num_keep"
    verify_num_keep(fn, PUBLIC_NUM_KEEP_CASES, item)
    announce_pass(item)


# --- top-k selection -----------------------------------------------------------------------


def verify_topk_select(fn: Callable, cls_attn: torch.Tensor, keep_rate: float, item: str = "topk_select") -> None:
    """Raise unless ``fn(cls_attn, keep_rate)`` returns the top-K positions per row, highest first."""
    batch, width = cls_attn.shape
    keep = exact_num_keep(keep_rate, width + 1)
    original = cls_attn.clone()
    got = call_student(item, fn, cls_attn, keep_rate)
    expect_unchanged(item, original, cls_attn, "cls_attn")
    got = expect_tensor(item, got, "topk_select")
    if got.dim() != 2 or got.shape[0] != batch:
        raise CheckFailed(item, "checks.bad_shape", what="topk_select", got=list(got.shape), expected=[batch, keep], meaning="[B, K]")
    count = got.shape[1]
    if count != keep:
        values = dict(got=count, keep_rate=keep_rate, width=width)
        if count == math.floor(Fraction(repr(keep_rate)) * width):
            raise CheckFailed(item, "checks.topk.floor", **values)
        raise CheckFailed(item, "checks.topk.count", **values)
    if got.dtype not in (torch.int64, torch.int32):
        raise CheckFailed(item, "checks.topk.dtype", dtype=str(got.dtype))
    if int(got.min()) < 0 or int(got.max()) >= width:
        raise CheckFailed(item, "checks.topk.range", low=int(got.min()), high=int(got.max()), width=width)

    for b in range(batch):
        row = got[b].tolist()
        if len(set(row)) != len(row):
            raise CheckFailed(item, "checks.topk.duplicates", sample=b, row=fmt(row))
        scores = cls_attn[b]
        top = set(scores.argsort(descending=True)[:keep].tolist())
        if set(row) != top:
            if set(row) == set(scores.argsort()[:keep].tolist()):
                raise CheckFailed(item, "checks.topk.smallest", sample=b)
            weakest = min((p for p in row if p not in top), key=lambda p: float(scores[p]))
            raise CheckFailed(
                item, "checks.topk.wrong_set", sample=b, position=weakest, score=f"{float(scores[weakest]):.4f}"
            )
        chosen = scores[got[b].long()]
        if bool((chosen[1:] > chosen[:-1]).any()):
            raise CheckFailed(item, "checks.topk.order", sample=b, row=fmt(row))


def check_topk_select(fn: Callable) -> None:
    """Public check of ``topk_select(cls_attn, keep_rate)`` on 10 tokens, B = 2."""
    item = "topk_select"
    cls_attn = torch.tensor(
        [
            [0.05, 0.20, 0.01, 0.15, 0.03, 0.12, 0.08, 0.02, 0.30, 0.04],
            [0.11, 0.02, 0.09, 0.25, 0.06, 0.01, 0.18, 0.14, 0.07, 0.05],
        ]
    )
    verify_topk_select(fn, cls_attn, 0.45, item)
    verify_topk_select(fn, cls_attn, 0.64, item)
    announce_pass(item)


# --- fusion --------------------------------------------------------------------------------


def _gather_tokens(tokens: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return tokens.gather(1, idx.long().unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))  # [B, K, C]


def verify_fuse(
    fn: Callable, tokens: torch.Tensor, cls_attn: torch.Tensor, kept_idx: torch.Tensor, item: str = "fuse"
) -> None:
    """Raise unless ``fn`` returns the kept tokens in ``kept_idx`` order plus one fused token."""
    batch, width, channels = tokens.shape
    keep = kept_idx.shape[1]
    saved = (tokens.clone(), cls_attn.clone(), kept_idx.clone())
    got = call_student(item, fn, tokens, cls_attn, kept_idx)
    for before, after, name in zip(saved, (tokens, cls_attn, kept_idx), ("tokens", "cls_attn", "kept_idx")):
        expect_unchanged(item, before, after, name)
    got = expect_tensor(item, got, "fuse_tokens")
    if tuple(got.shape) == (batch, keep, channels):
        raise CheckFailed(item, "checks.fuse.no_fused", got=list(got.shape))
    got = expect_shape(item, got, (batch, keep + 1, channels), "fuse_tokens", "[B, K+1, C]")

    kept = _gather_tokens(tokens, kept_idx)  # [B, K, C]
    dropped_mask = torch.ones(batch, width, dtype=torch.bool)
    dropped_mask[torch.arange(batch).unsqueeze(1), kept_idx.long()] = False  # [B, M]
    weights = torch.where(dropped_mask, cls_attn, torch.zeros_like(cls_attn))  # [B, M]
    fused = (tokens * weights.unsqueeze(-1)).sum(dim=1, keepdim=True)  # [B, 1, C]

    if _close(got, torch.cat([kept, fused], dim=1)):
        return
    if _close(got, torch.cat([fused, kept], dim=1)):
        raise CheckFailed(item, "checks.fuse.fused_first")
    if not _close(got[:, :keep], kept):
        if _close(got[:, :keep], _gather_tokens(tokens, kept_idx.sort(dim=1).values)):
            raise CheckFailed(item, "checks.fuse.kept_order")
        raise CheckFailed(item, "checks.fuse.kept_wrong")

    got_fused = got[:, keep:]
    mask = dropped_mask.unsqueeze(-1).to(tokens.dtype)  # [B, M, 1]
    if _close(got_fused, fused / weights.sum(dim=1).view(batch, 1, 1)):
        raise CheckFailed(item, "checks.fuse.renormalized")
    if _close(got_fused, (tokens * mask).sum(dim=1, keepdim=True)) or _close(
        got_fused, (tokens * mask).sum(dim=1, keepdim=True) / mask.sum(dim=1, keepdim=True)
    ):
        raise CheckFailed(item, "checks.fuse.unweighted")
    if _close(got_fused, (tokens * cls_attn.unsqueeze(-1)).sum(dim=1, keepdim=True)):
        raise CheckFailed(item, "checks.fuse.included_kept")
    raise CheckFailed(item, "checks.fuse.mismatch", got=fmt(got_fused[0, 0].double().round(decimals=4)))


def check_fuse(fn: Callable) -> None:
    """Public check of ``fuse_tokens(tokens, cls_attn, kept_idx)`` on 5 tokens of 2 channels."""
    item = "fuse"
    tokens = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [3.0, -1.0], [-1.0, 4.0]]])
    cls_attn = torch.tensor([[0.1, 0.4, 0.2, 0.05, 0.25]])
    kept_idx = torch.tensor([[1, 4, 2]])
    verify_fuse(fn, tokens, cls_attn, kept_idx, item)
    announce_pass(item)
