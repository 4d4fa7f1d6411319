"""Checks for notebook 1: patchify, the patch projection as a linear layer, CLS and positions.

Expected answers come from plain loops over the image and from ``F.conv2d``, never from
the solution code, so a check cannot agree with a wrong reference by construction.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from lab6.checks.base import CheckFailed, announce_pass, call_student, expect_shape, expect_unchanged

__all__ = [
    "check_patchify",
    "check_patch_embed",
    "check_add_cls_pos",
    "verify_patchify",
    "verify_patch_embed",
    "verify_add_cls_pos",
]

TOLERANCE = 1e-5


def patchify_by_loops(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Cut [B, C, H, W] into [B, (H/p)(W/p), C*p*p], row-major, each patch flattened as (C, p, p)."""
    batch, _, height, width = images.shape
    rows, cols = height // patch, width // patch
    out = []
    for r in range(rows):
        for c in range(cols):
            block = images[:, :, r * patch : (r + 1) * patch, c * patch : (c + 1) * patch]  # [B, C, p, p]
            out.append(block.reshape(batch, -1))
    return torch.stack(out, dim=1)  # [B, rows * cols, C*p*p]


def _column_major(images: torch.Tensor, patch: int) -> torch.Tensor:
    batch, _, height, width = images.shape
    rows, cols = height // patch, width // patch
    row_major = patchify_by_loops(images, patch)
    order = [r * cols + c for c in range(cols) for r in range(rows)]
    return row_major[:, order]


def _channels_last(images: torch.Tensor, patch: int) -> torch.Tensor:
    batch, channels = images.shape[:2]
    pieces = patchify_by_loops(images, patch).reshape(batch, -1, channels, patch, patch)  # [B, N, C, p, p]
    return pieces.permute(0, 1, 3, 4, 2).reshape(batch, -1, channels * patch * patch)  # (p, p, C) order


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.float(), b.float(), atol=TOLERANCE, rtol=0))


def verify_patchify(fn: Callable, images: torch.Tensor, patch: int, item: str = "patchify") -> None:
    """Raise :class:`CheckFailed` unless ``fn(images, patch)`` cuts the patches right."""
    batch, channels, height, width = images.shape
    rows, cols = height // patch, width // patch
    original = images.clone()
    got = call_student(item, fn, images, patch)
    expect_unchanged(item, original, images, "images")
    shape = (batch, rows * cols, channels * patch * patch)
    got = expect_shape(item, got, shape, "patchify", "[B, (H/p)*(W/p), C*p*p]")

    expected = patchify_by_loops(images, patch)
    if _close(got, expected):
        return
    if rows > 1 and _close(got, _column_major(images, patch)):
        raise CheckFailed(item, "checks.patchify.column_major", rows=rows, cols=cols)
    if _close(got, _channels_last(images, patch)):
        raise CheckFailed(item, "checks.patchify.channels_last", channels=channels, patch=patch)
    wrong = (got.float() - expected.float()).abs().amax(dim=(0, 2)) > TOLERANCE  # [N]
    first = int(wrong.nonzero()[0, 0])
    raise CheckFailed(
        item, "checks.patchify.content", index=first, row=first // cols, col=first % cols, cols=cols, patch=patch
    )


def check_patchify(fn: Callable) -> None:
    """Public check of ``patchify(images, patch_size)`` on a 4 x 4 image and on a 224 x 224 one."""
    item = "patchify"
    small = torch.arange(1 * 3 * 4 * 4, dtype=torch.float32).reshape(1, 3, 4, 4)
    verify_patchify(fn, small, 2, item)
    generator = torch.Generator().manual_seed(0)
    full = torch.rand(1, 3, 224, 224, generator=generator)
    verify_patchify(fn, full, 16, item)
    announce_pass(item)


def verify_patch_embed(
    fn: Callable, images: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, item: str = "patch_embed"
) -> None:
    """Raise unless ``fn(images, weight, bias)`` equals the stride-p convolution, as [B, N, D]."""
    dim, _, patch, _ = weight.shape
    batch, _, height, width = images.shape
    saved = (images.clone(), weight.clone(), bias.clone())
    got = call_student(item, fn, images, weight, bias)
    for before, after, name in zip(saved, (images, weight, bias), ("images", "weight", "bias")):
        expect_unchanged(item, before, after, name)
    tokens = (height // patch) * (width // patch)
    got = expect_shape(item, got, (batch, tokens, dim), "patch_embed_as_linear", "[B, N, D]")

    expected = F.conv2d(images, weight, bias, stride=patch).flatten(2).transpose(1, 2)  # [B, N, D]
    if _close(got, expected):
        return
    no_bias = F.conv2d(images, weight, None, stride=patch).flatten(2).transpose(1, 2)
    if _close(got, no_bias):
        raise CheckFailed(item, "checks.patch_embed.no_bias")
    swapped = F.conv2d(images, weight.transpose(2, 3), bias, stride=patch).flatten(2).transpose(1, 2)
    if _close(got, swapped):
        raise CheckFailed(item, "checks.patch_embed.weight_order")
    error = float((got.float() - expected).abs().max())
    raise CheckFailed(item, "checks.patch_embed.mismatch", error=f"{error:.2e}", tolerance=f"{TOLERANCE:.0e}")


def check_patch_embed(fn: Callable) -> None:
    """Public check of ``patch_embed_as_linear(images, weight, bias)`` against ``F.conv2d``."""
    item = "patch_embed"
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(1, 3, 8, 8, generator=generator)
    weight = torch.randn(5, 3, 4, 4, generator=generator)
    bias = torch.randn(5, generator=generator)
    verify_patch_embed(fn, images, weight, bias, item)
    announce_pass(item)


def verify_add_cls_pos(
    fn: Callable, tokens: torch.Tensor, cls_token: torch.Tensor, pos_embed: torch.Tensor, item: str = "add_cls_pos"
) -> None:
    """Raise unless ``fn`` prepends the CLS token and adds position embeddings to all tokens."""
    batch, count, dim = tokens.shape
    saved = (tokens.clone(), cls_token.clone(), pos_embed.clone())
    got = call_student(item, fn, tokens, cls_token, pos_embed)
    for before, after, name in zip(saved, (tokens, cls_token, pos_embed), ("patch_tokens", "cls_token", "pos_embed")):
        expect_unchanged(item, before, after, name)
    if isinstance(got, torch.Tensor) and tuple(got.shape) == (batch, count, dim):
        raise CheckFailed(item, "checks.add_cls_pos.no_cls", got=list(got.shape), count=count)
    got = expect_shape(item, got, (batch, count + 1, dim), "add_cls_and_pos", "[B, 1 + N, D]")

    cls = cls_token.expand(batch, -1, -1)  # [B, 1, D]
    expected = torch.cat([cls, tokens], dim=1) + pos_embed  # [B, 1 + N, D]
    if _close(got, expected):
        return
    if _close(got, torch.cat([tokens, cls], dim=1) + pos_embed):
        raise CheckFailed(item, "checks.add_cls_pos.cls_last")
    if _close(got, torch.cat([cls, tokens], dim=1)):
        raise CheckFailed(item, "checks.add_cls_pos.no_pos")
    if _close(got[:, 1:], expected[:, 1:]) and _close(got[:, :1], cls):
        raise CheckFailed(item, "checks.add_cls_pos.cls_without_pos")
    wrong = (got - expected).abs().amax(dim=(0, 2)) > TOLERANCE  # [1 + N]
    first = int(wrong.nonzero()[0, 0])
    raise CheckFailed(item, "checks.add_cls_pos.mismatch", position=first)


def check_add_cls_pos(fn: Callable) -> None:
    """Public check of ``add_cls_and_pos(patch_tokens, cls_token, pos_embed)`` with B = 2."""
    item = "add_cls_pos"
    tokens = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    cls_token = torch.full((1, 1, 3), -1.0)
    pos_embed = torch.arange(5 * 3, dtype=torch.float32).reshape(1, 5, 3) / 100
    verify_add_cls_pos(fn, tokens, cls_token, pos_embed, item)
    announce_pass(item)
