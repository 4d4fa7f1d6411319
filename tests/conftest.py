"""Shared fixtures: small random-weight timm ViTs and the message language."""

from __future__ import annotations

import math
from typing import Callable

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer


def randomize_vit(model: VisionTransformer, seed: int = 0) -> VisionTransformer:
    """Give every parameter of ``model`` a random value of unit-scale effect, in place.

    timm's own initialisation makes the CLS token and the head almost zero, so the CLS
    attention is nearly uniform and the logits nearly constant. Here linear layers get a
    std of 1/sqrt(fan_in), so CLS attention rows are peaked and rankings are stable
    under float rounding. Norms and layer-scale gammas stay near 1 but not at 1.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if param.dim() >= 2 and not name.endswith(("pos_embed", "cls_token", "reg_token")):
                fan_in = math.prod(param.shape[1:])
                param.copy_(noise / math.sqrt(fan_in))
            elif name.endswith(("pos_embed", "cls_token", "reg_token")):
                param.copy_(noise * 0.5)
            elif name.endswith(("norm1.weight", "norm2.weight", "norm.weight", "gamma")):
                param.copy_(1.0 + 0.3 * noise)
            else:
                param.copy_(0.1 * noise)
    return model.eval()


@pytest.fixture(scope="session", name="randomize_vit")
def randomize_vit_fixture() -> Callable[..., VisionTransformer]:
    """Return :func:`randomize_vit`, for tests that build their ViT with ``timm.create_model``."""
    return randomize_vit


@pytest.fixture(scope="session")
def make_vit() -> Callable[..., VisionTransformer]:
    """Return a factory of small random 12-block ViTs on 224 x 224 images (196 patches)."""

    def build(seed: int = 0, embed_dim: int = 48, num_heads: int = 3, **kwargs: object) -> VisionTransformer:
        torch.manual_seed(seed)
        options = dict(img_size=224, patch_size=16, embed_dim=embed_dim, depth=12, num_heads=num_heads, num_classes=10)
        options.update(kwargs)
        return randomize_vit(VisionTransformer(**options), seed)

    return build


@pytest.fixture
def lang(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Return a setter of LAB6_LANG ("en" or "zh-TW") that is undone after the test."""

    def select(language: str) -> None:
        monkeypatch.setenv("LAB6_LANG", language)

    return select
