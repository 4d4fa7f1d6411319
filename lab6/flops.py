"""FLOPs of an EViT model, measured with PyTorch's own counter and derived by hand for checking.

:func:`count_flops` runs one image through the model under
:class:`torch.utils.flop_counter.FlopCounterMode`, so whatever the pruning path really does
is what gets counted. :func:`analytic_flops` is the textbook formula for the same matrix
products; a test checks that the two agree exactly.

Both count one multiply-add as 2 FLOPs, as the counter does. Papers on ViTs, EViT's
included, usually quote multiply-adds under the name "FLOPs" (DeiT-S: 4.6 "GFLOPs"). Those
are half of the numbers here, and ratios between models are the same either way.

The counter counts matrix products and convolutions only: layer norms, softmax, GELU,
``topk`` and the fused token's weighted sum are left out, as in the analytic formula.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch
from timm.models.vision_transformer import VisionTransformer
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from lab6.evit import get_keep_rate, is_evit, set_keep_rate
from lab6.schedule import ScheduleLike, num_kept, parse_keep_rate

__all__ = ["count_flops", "analytic_flops", "temporary_keep_rate"]


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# NOTE: torch 2.14's counter has formulas for the CUDA flash, efficient and cuDNN attention
# kernels but not for the CPU flash kernel, so on the CPU it silently counted no attention
# products at all. This mapping adds the CPU kernel with torch's own formula.
_EXTRA_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops}
if hasattr(torch.ops.aten, "_scaled_dot_product_fused_attention_overrideable"):
    _EXTRA_FORMULAS[torch.ops.aten._scaled_dot_product_fused_attention_overrideable] = _sdpa_flops


@contextlib.contextmanager
def temporary_keep_rate(
    model: VisionTransformer, keep_rate: ScheduleLike, fuse: Optional[bool] = None
) -> Iterator[tuple[float, ...]]:
    """Set an EViT schedule (and fusion) for the ``with`` body, then restore the previous settings.

    A model that is not EViT yet is wrapped with :func:`lab6.evit.apply_evit` first, which
    keeps timm's outputs unchanged at keep rate 1.
    """
    if not is_evit(model):
        set_keep_rate(model, 1.0, fuse=True)
    previous_rates = get_keep_rate(model)
    previous_fuse = [block.fuse for block in model.blocks]
    try:
        yield set_keep_rate(model, keep_rate, fuse=fuse)
    finally:
        set_keep_rate(model, previous_rates)
        for block, fused in zip(model.blocks, previous_fuse):
            block.fuse = fused


def _input_shape(model: VisionTransformer) -> tuple[int, int, int, int]:
    height, width = model.patch_embed.img_size
    return (1, model.patch_embed.proj.in_channels, height, width)


def count_flops(model: VisionTransformer, keep_rate: Optional[ScheduleLike] = None, fuse: Optional[bool] = None) -> int:
    """Count the FLOPs of one forward pass of one image with :class:`FlopCounterMode`.

    Args:
        model: a timm ViT, EViT or not. Its schedule is used unless ``keep_rate`` is given.
        keep_rate: a schedule in any form :func:`lab6.schedule.parse_keep_rate` accepts, set
            only for this count.
        fuse: fusion for this count; the model's own setting when None.

    Returns:
        FLOPs for a batch of one, with a multiply-add counted as 2.
    """
    image = torch.zeros(_input_shape(model), device=next(model.parameters()).device)  # [1, 3, H, W]
    if keep_rate is None:
        keep_rate = get_keep_rate(model) if is_evit(model) else 1.0
    with temporary_keep_rate(model, keep_rate, fuse=fuse), torch.no_grad():
        with FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS) as counter:
            model.forward_evit(image)
    return int(counter.get_total_flops())


def analytic_flops(model: VisionTransformer, keep_rate: ScheduleLike = 1.0, fuse: bool = True) -> int:
    """Return the FLOPs of one image from the ViT's dimensions and the schedule's token counts.

    Per block with N tokens in and N' out, C channels and an MLP of width M: ``2*N*C*3C``
    (qkv) + ``2 * 2*N*N*C`` (scores and their product with v) + ``2*N*C*C`` (projection)
    + ``2*N'*C*M*2`` (MLP, which runs after pruning). A pruning block adds ``2*N*C`` for the
    CLS attention row it recomputes. The patch embedding and the head come on top.
    """
    schedule = parse_keep_rate(keep_rate, depth=len(model.blocks))
    channels = model.embed_dim
    mlp_width = model.blocks[0].mlp.fc1.out_features
    kernel = model.patch_embed.proj.kernel_size
    in_channels = model.patch_embed.proj.in_channels
    patches = model.patch_embed.num_patches

    total = 2 * patches * channels * in_channels * kernel[0] * kernel[1]
    tokens = patches + 1
    for rate in schedule:
        total += 2 * tokens * channels * 3 * channels + 4 * tokens * tokens * channels + 2 * tokens * channels * channels
        kept = num_kept(rate, tokens)
        if kept < tokens - 1:  # the block prunes
            total += 2 * tokens * channels
            tokens = 1 + kept + (1 if fuse else 0)
        total += 4 * tokens * channels * mlp_width
    total += 2 * channels * model.num_classes
    return total
