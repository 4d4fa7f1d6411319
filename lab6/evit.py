"""EViT token pruning on top of timm's own VisionTransformer.

:func:`apply_evit` swaps the classes of an existing timm ViT, its blocks and their attention
modules for subclasses defined here. No parameter is added, copied or renamed, so every timm
checkpoint loads unchanged and ``state_dict`` keys stay timm's.

A pruning block (keep rate below 1) works as in EViT:

1. Attention runs on timm's usual path (``scaled_dot_product_attention`` when timm's
   ``fused_attn`` switch is on). The CLS token's attention row is computed once more,
   on its own and in float32, and averaged over heads.
2. After the attention residual, the block keeps the ``ceil(keep_rate * (N - 1))`` image
   tokens with the highest CLS attention (``topk``), where N counts the CLS token and any
   fused token from an earlier block.
3. With fusion on, the other tokens are summed into one fused token, each weighted by its
   CLS attention without renormalisation, and appended after the kept tokens.
4. The MLP then runs on the shorter sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from timm.layers import Attention
from timm.models.vision_transformer import Block, VisionTransformer

from lab6.i18n import ModelError
from lab6.schedule import LAB_SCHEDULE, ScheduleLike, num_kept, parse_keep_rate

__all__ = [
    "PruneRecord",
    "EViTOutput",
    "EViTAttention",
    "EViTBlock",
    "apply_evit",
    "set_keep_rate",
    "get_keep_rate",
    "is_evit",
    "complement_idx",
]


@dataclass(frozen=True)
class PruneRecord:
    """Record of one pruning block's work on a batch of B images.

    Indices are positions among the block's *input* non-CLS tokens (0 is the token right
    after CLS), so a deeper block's indices are relative to the previous block's output.
    :func:`lab6.index.get_real_idx` maps them back to patch positions.
    """

    block: int
    """0-based index of the block in ``model.blocks``."""
    keep_rate: float
    tokens_in: int
    """Tokens entering the block, CLS and any fused token included."""
    tokens_out: int
    """Tokens leaving the block, CLS and the new fused token (if any) included."""
    kept_idx: torch.Tensor
    """[B, K] kept positions, ordered by CLS attention, highest first."""
    fused_idx: Optional[torch.Tensor]
    """[B, N-1-K] positions summed into the new fused token, ascending; None without fusion."""
    cls_attn: torch.Tensor
    """[B, N-1] float32 head-averaged CLS attention over the input's non-CLS tokens."""
    input_has_fused: bool
    """Whether the input's last token is a fused token made by an earlier block."""

    @property
    def fuse(self) -> bool:
        """Whether this block appended a fused token."""
        return self.fused_idx is not None


@dataclass(frozen=True)
class EViTOutput:
    """The logits of a forward pass and what each pruning block did."""

    logits: torch.Tensor
    """[B, num_classes]"""
    records: tuple[PruneRecord, ...]
    """One record per block that pruned, in block order."""
    token_counts: tuple[int, ...]
    """Tokens (CLS and fused token included) after every block."""

    @property
    def kept_idx(self) -> list[torch.Tensor]:
        """The kept indices of every pruning block, each [B, K_i]."""
        return [r.kept_idx for r in self.records]


def complement_idx(idx: torch.Tensor, width: int) -> torch.Tensor:
    """Return, in ascending order, the positions in ``range(width)`` that ``idx`` lacks.

    ``idx`` is [B, K] with distinct entries per row; the result is [B, width - K].
    """
    batch, kept = idx.shape
    missing = torch.ones(batch, width, dtype=torch.bool, device=idx.device)  # [B, width]
    missing.scatter_(1, idx, False)
    return missing.nonzero()[:, 1].reshape(batch, width - kept)  # [B, width - K]


class EViTAttention(Attention):
    """timm's Attention with a second output: the CLS token's head-averaged attention row."""

    def forward_with_cls_attn(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run attention on x [B, N, C]; return the output [B, N, C] and CLS attention [B, N-1].

        The output follows timm's own path, so its fast kernel stays in use. The CLS row is
        recomputed from the same q and k in float32, with autocast off, at the cost of one
        [1 x N] row per head.
        """
        batch, tokens, _ = x.shape
        gate = self.gate(x).sigmoid() if getattr(self, "gate", None) is not None else None
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [B, H, N, D]
        q, k = self.q_norm(q), self.k_norm(k)

        if self.fused_attn:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)  # [B, H, N, N]
            out = self.attn_drop(attn.softmax(dim=-1)) @ v  # [B, H, N, D]

        with torch.autocast(device_type=x.device.type, enabled=False):
            cls_logits = (q[:, :, :1].float() * self.scale) @ k.float().transpose(-2, -1)  # [B, H, 1, N]
            cls_attn = cls_logits.softmax(dim=-1).mean(dim=1)[:, 0, 1:]  # [B, N-1]

        out = out.transpose(1, 2).reshape(batch, tokens, self.num_heads * self.head_dim)  # [B, N, H*D]
        out = self.norm(out)
        if gate is not None:
            out = out * gate
        out = self.proj_drop(self.proj(out))
        return out, cls_attn


class EViTBlock(Block):
    """timm's Block that prunes and fuses tokens after attention when ``keep_rate < 1``.

    ``keep_rate`` and ``fuse`` are plain settings written by :func:`apply_evit` and
    :func:`set_keep_rate`; nothing is stored during ``forward``.
    """

    keep_rate: float = 1.0
    fuse: bool = True

    def forward_evit(self, x: torch.Tensor, input_has_fused: bool) -> tuple[torch.Tensor, Optional[PruneRecord]]:
        """Run the block on x [B, N, C]; return the new tokens and a record if it pruned."""
        tokens = x.shape[1]
        kept = num_kept(self.keep_rate, tokens)
        if kept >= tokens - 1:  # keep rate 1, or too few tokens to drop any: timm's own forward
            return super().forward(x), None

        attn_out, cls_attn = self.attn.forward_with_cls_attn(self.norm1(x))
        x = x + self.drop_path1(self.ls1(attn_out))
        channels = x.shape[2]

        kept_idx = cls_attn.topk(kept, dim=1, largest=True, sorted=True).indices  # [B, K]
        non_cls = x[:, 1:]  # [B, N-1, C]
        kept_tokens = non_cls.gather(1, kept_idx.unsqueeze(-1).expand(-1, -1, channels))  # [B, K, C]
        parts = [x[:, :1], kept_tokens]

        fused_idx = None
        if self.fuse:
            fused_idx = complement_idx(kept_idx, tokens - 1)  # [B, N-1-K]
            dropped = non_cls.gather(1, fused_idx.unsqueeze(-1).expand(-1, -1, channels))  # [B, N-1-K, C]
            weight = cls_attn.gather(1, fused_idx).to(dropped.dtype)  # [B, N-1-K]
            parts.append((dropped * weight.unsqueeze(-1)).sum(dim=1, keepdim=True))  # [B, 1, C]

        x = torch.cat(parts, dim=1)  # [B, 1 + K (+ 1), C]
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        record = PruneRecord(
            block=-1,  # filled in by the model, which tracks the block's position
            keep_rate=self.keep_rate,
            tokens_in=tokens,
            tokens_out=x.shape[1],
            kept_idx=kept_idx,
            fused_idx=fused_idx,
            cls_attn=cls_attn,
            input_has_fused=input_has_fused,
        )
        return x, record


class EViTMixin:
    """Methods added to a timm VisionTransformer class by :func:`apply_evit`.

    NOTE: the blocks are run through ``EViTBlock.forward_evit``, not ``Block.__call__``, so
    forward hooks registered on ``model.blocks[i]`` (and on the ``attn`` of pruning blocks)
    do not fire. Hook ``model.norm`` or read :class:`EViTOutput` instead.
    """

    def forward_evit_features(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[PruneRecord, ...], tuple[int, ...]]:
        """Embed images x [B, 3, H, W] and run every block; return normed tokens, records and counts.

        Raises:
            ModelError: ``x`` is not a tensor of the shape, dtype and device the model expects.
        """
        _check_input(self, x)
        x = self.patch_embed(x)
        x = self._pos_embed(x)
        x = self.patch_drop(x)
        x = self.norm_pre(x)  # [B, 1 + P, C]

        records = []
        counts = []
        has_fused = False
        for index, block in enumerate(self.blocks):
            x, record = block.forward_evit(x, has_fused)
            if record is not None:
                records.append(_with_block(record, index))
                has_fused = record.fuse
            counts.append(x.shape[1])
        return self.norm(x), tuple(records), tuple(counts)

    def forward_features(
        self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None, is_causal: bool = False
    ) -> torch.Tensor:
        """Run timm's feature stage with pruning; attention masks are not supported."""
        if attn_mask is not None or is_causal:
            raise NotImplementedError("EViT pruning changes the token count, so attention masks cannot be applied")
        return self.forward_evit_features(x)[0]

    def forward_evit(self, x: torch.Tensor) -> EViTOutput:
        """Classify images x [B, 3, H, W] and report what every pruning block did."""
        features, records, counts = self.forward_evit_features(x)
        return EViTOutput(logits=self.forward_head(features), records=records, token_counts=counts)


def _check_input(model: VisionTransformer, x: object) -> None:
    """Raise :class:`ModelError` for input that timm would reject with an error from deep inside torch."""
    name = _model_name(model)
    if not isinstance(x, torch.Tensor):
        raise ModelError("model.input_not_tensor", name=name, kind=type(x).__name__)
    weight = model.patch_embed.proj.weight
    channels = weight.shape[1]
    dynamic = getattr(model.patch_embed, "dynamic_img_size", False) or model.patch_embed.img_size is None
    height, width = (None, None) if dynamic else model.patch_embed.img_size
    size_ok = dynamic or tuple(x.shape[-2:]) == (height, width)
    if x.dim() != 4 or x.shape[1] != channels or not size_ok:
        raise ModelError(
            "model.input_shape", name=name, shape=tuple(x.shape), channels=channels,
            height=height or "H", width=width or "W",
        )
    if not x.is_floating_point():
        raise ModelError("model.input_not_float", name=name, dtype=str(x.dtype))
    if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
        raise ModelError("model.input_dtype", name=name, dtype=str(x.dtype), model_dtype=str(weight.dtype))
    if x.device != weight.device and weight.device.type != "meta":
        raise ModelError("model.input_device", name=name, device=str(x.device), model_device=str(weight.device))


def _with_block(record: PruneRecord, index: int) -> PruneRecord:
    return PruneRecord(**{**record.__dict__, "block": index})


_EVIT_CLASSES: dict[type, type] = {}


def _evit_class(cls: type) -> type:
    if issubclass(cls, EViTMixin):
        return cls
    if cls not in _EVIT_CLASSES:
        _EVIT_CLASSES[cls] = type(f"EViT{cls.__name__}", (EViTMixin, cls), {})
    return _EVIT_CLASSES[cls]


def _model_name(model: torch.nn.Module) -> str:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return cfg.get("architecture") or type(model).__name__


def _check_supported(model: torch.nn.Module) -> None:
    name = _model_name(model)
    if not isinstance(model, VisionTransformer):
        raise ModelError("model.not_vit", name=name, kind=type(model).__name__)
    if getattr(model, "cls_token", None) is None:
        raise ModelError("model.no_cls", name=name)
    if model.num_prefix_tokens != 1:
        raise ModelError("model.prefix_tokens", name=name, count=model.num_prefix_tokens)
    if model.global_pool != "token":
        raise ModelError("model.unsupported_pool", name=name, pool=model.global_pool)
    for index, block in enumerate(model.blocks):
        # Exact types: a subclass may change forward in ways the pruning path would not follow.
        block_ok = type(block) in (Block, EViTBlock)
        attn_ok = type(getattr(block, "attn", None)) in (Attention, EViTAttention)
        if not (block_ok and attn_ok):
            kind = type(block).__name__ if not block_ok else type(block.attn).__name__
            raise ModelError("model.unsupported_block", name=name, index=index + 1, kind=kind)


def apply_evit(
    model: VisionTransformer, keep_rate: ScheduleLike = LAB_SCHEDULE, fuse: bool = True
) -> VisionTransformer:
    """Turn a timm ViT into EViT in place and return it.

    Args:
        model: a timm ``VisionTransformer`` with one CLS token, ``global_pool='token'`` and
            timm's standard ``Block``/``Attention`` (DeiT, DeiT III, ViT with patch 16 all qualify).
        keep_rate: any form :func:`lab6.schedule.parse_keep_rate` accepts; the lab's
            schedule by default.
        fuse: sum the dropped tokens into one fused token, as EViT does.

    After this, ``model(x)`` returns logits as before and ``model.forward_evit(x)``
    returns an :class:`EViTOutput`. Parameters and ``state_dict`` keys are unchanged.
    """
    _check_supported(model)
    schedule = parse_keep_rate(keep_rate, depth=len(model.blocks))
    model.__class__ = _evit_class(type(model))
    for block in model.blocks:
        block.__class__ = EViTBlock
        block.attn.__class__ = EViTAttention
    set_keep_rate(model, schedule, fuse=fuse)
    return model


def is_evit(model: torch.nn.Module) -> bool:
    """Return whether :func:`apply_evit` has been applied to ``model``."""
    return isinstance(model, EViTMixin)


def set_keep_rate(model: VisionTransformer, keep_rate: ScheduleLike, fuse: Optional[bool] = None) -> tuple[float, ...]:
    """Set the keep-rate schedule (and optionally fusion) of an EViT model; return the schedule."""
    if not is_evit(model):
        return get_keep_rate(apply_evit(model, keep_rate, fuse=True if fuse is None else fuse))
    schedule = parse_keep_rate(keep_rate, depth=len(model.blocks))
    for block, rate in zip(model.blocks, schedule):
        block.keep_rate = float(rate)
        if fuse is not None:
            block.fuse = bool(fuse)
    return schedule


def get_keep_rate(model: VisionTransformer) -> tuple[float, ...]:
    """Return the keep-rate schedule of an EViT model, one rate per block."""
    return tuple(getattr(block, "keep_rate", 1.0) for block in model.blocks)
